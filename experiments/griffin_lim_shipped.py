"""Export the shipped model again with the cheaper Griffin-Lim, and score the change.

    python experiments/griffin_lim_shipped.py OUT_DIR --tests OUT_WITH_TEST_SETS [--overlap 0.125] [--install]

1. ``kgan export kgan/pretrained/export/1 OUT_DIR/export --weights float16 --compute both``: the stored
   weights, chord network, level gains, overlap and high band exported again, so the graph picks up
   ``kgan.spectrogram``'s integrated phase summed blockwise in turns (no float64 ``cumsum`` over the
   frames), its magnitude projection through one ``rsqrt``, and Griffin-Lim in segments on long inputs
   (``Spectrogram.griffin_lim_in_segments``); with ``--overlap``, that window overlap.
2. ``kgan evaluate OUT_DIR/export --compute bfloat16 --compare shipped=...``: both exports' bfloat16 twins,
   each song in its own style, on the test renderings ``TESTS/test-*`` of ``experiments/pretrained.py``.
3. ``OUT_DIR/griffin_lim.md``: the comparison; with ``--install``, the export replaces the installed one and
   the card (size and sha256, and a section) and ``metrics.json`` (``griffin_lim``) are updated.

Every step is skipped when its output exists.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _steps import ROOT  # noqa: E402
from recalibrate_shipped import publish, reexport_and_compare, reexport_parser, report_table  # noqa: E402


def main(argv=None) -> None:
    args = reexport_parser(__doc__).parse_args(argv)
    out = os.path.abspath(args.out)
    overlap = [] if args.overlap is None else ["--overlap", str(args.overlap)]
    reexport_and_compare(out, args.tests, ["--compute", "both", *overlap], ["--compute", "bfloat16"])
    title = "## A cheaper Griffin-Lim" + (f", overlap {args.overlap}" if overlap else "")
    section = [title, "",
               "The export was made again from its own stored weights (`experiments/griffin_lim_shipped.py`) so that "
               "its graph has the integrated phase summed blockwise in turns instead of a float64 `cumsum` over the "
               "frames (closer to a float64 computation, and 4-5x faster), a magnitude projection through one "
               "`rsqrt`, and Griffin-Lim run in segments of 11.9 s on longer inputs"
               + (f", and consecutive windows overlapping by {args.overlap} of their frames" if overlap else "")
               + ". The weights, chord network, levels and high band are unchanged. `kgan evaluate` "
               "of its bfloat16 twin against the export before it (its twin too; each song in its own style; "
               "mean ± 95 % CI):", "",
               *report_table(out, rows=(("report", "model", "now"), ("report", "shipped", "before"))), ""]
    publish(out, "griffin_lim.md", section, args.install, "griffin_lim",
            {"integrated_phase": "blockwise turns", "projection": "rsqrt", "segments": True},
            model=None if args.overlap is None else {"overlap": args.overlap})


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
