"""Give the shipped model a bfloat16 twin of its generator, without its training run.

    python experiments/compute_shipped.py OUT_DIR --tests OUT_WITH_TEST_SETS [--install]

1. ``kgan export kgan/pretrained/export/1 OUT_DIR/export --weights float16 --compute both``: the stored
   float16 weights, chord network, level gains and high band exported again, with ``serving_default``
   and ``spectrogram`` in float32 and their twins ``serving_bfloat16`` and ``spectrogram_bfloat16``
   computing the generator in bfloat16 on the same weights (``kgan.export``). ``kgan generate``,
   ``serve`` and ``evaluate`` run the twins on a CPU with bf16 dot products.
2. ``kgan evaluate OUT_DIR/export --compute bfloat16 --compare shipped=...``: the twin, as those
   commands run it here, against the installed export (which has no twin, so it runs in float32), each
   song in its own style, on the test renderings ``TESTS/test-*`` of ``experiments/pretrained.py``.
3. ``OUT_DIR/compute.md``: the comparison; with ``--install``, the export replaces the installed one,
   and the card (its size and sha256 line, and a "bfloat16 twin" section) and ``metrics.json``
   (``compute``) are updated.

Every step is skipped when its output exists.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _steps import ROOT  # noqa: E402
from recalibrate_shipped import publish, reexport_and_compare, reexport_parser, report_table  # noqa: E402


def main(argv=None) -> None:
    args = reexport_parser(__doc__, overlap=False).parse_args(argv)
    out = os.path.abspath(args.out)
    reexport_and_compare(out, args.tests, ["--compute", "both"], ["--compute", "bfloat16"])
    section = ["## bfloat16 twin", "",
               "The export was made again from its own stored weights with `kgan export ... --compute both` "
               "(`experiments/compute_shipped.py`). `serving_default` and `spectrogram` still compute in float32, "
               "which is what stock TF Serving runs; beside them, `serving_bfloat16` and `spectrogram_bfloat16` run "
               "the same generator in bfloat16 on the same stored weights (no second copy). `kgan generate`, "
               "`kgan serve` and `kgan evaluate` run the twins on a CPU with bf16 dot products (AVX512_BF16, AMX) "
               "under oneDNN's kernels, and the float32 signatures elsewhere (`--compute` chooses). Griffin-Lim "
               "imposes the magnitude without `atan2`, `sin` and `cos` since this export, which changes its output "
               "by float rounding only. `kgan evaluate` of the twin against the export before it (float32, each "
               "song in its own style; mean ± 95 % CI):", "",
               *report_table(out, rows=(("report", "model", "bfloat16 twin"), ("report", "shipped", "before"))), ""]
    publish(out, "compute.md", section, args.install, "compute", {"signatures": "both"}, model={"compute": "both"})

if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
