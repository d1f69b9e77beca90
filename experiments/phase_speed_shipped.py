"""Export the shipped model again with the faster inverse STFT, and score the change.

    python experiments/phase_speed_shipped.py OUT_DIR --tests OUT_WITH_TEST_SETS [--accelerated N] [--install]

1. ``kgan export kgan/pretrained/export/1 OUT_DIR/export --weights float16 --compute both``: the stored
   weights, chord network, level gains, overlap and high band exported again, so the graph picks up
   ``kgan.spectrogram.overlap_add`` in every inverse STFT, Griffin-Lim's cheaper projections, two Griffin-Lim
   segments at a time, the high band in blocks of frames and the generator's weights cast once a request;
   with ``--accelerated N``, ``N`` iterations of the accelerated Griffin-Lim algorithm instead of 16 fast ones.
2. ``kgan evaluate OUT_DIR/export --compute bfloat16 --compare shipped=...``: both exports' bfloat16 twins,
   each song in its own style, on the test renderings ``TESTS/test-*`` of ``experiments/pretrained.py``.
3. ``OUT_DIR/phase_speed.md``: the comparison; with ``--install``, the export replaces the installed one and
   the card (size and sha256, and a section) and ``metrics.json`` (``phase_speed``) are updated.

Every step is skipped when its output exists.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _steps import ROOT  # noqa: E402
from recalibrate_shipped import publish, reexport_and_compare, reexport_parser, report_table  # noqa: E402


def main(argv=None) -> None:
    parser = reexport_parser(__doc__, overlap=False)
    parser.add_argument("--accelerated", type=int, default=None, metavar="N",
                        help="N accelerated Griffin-Lim iterations (default: 16 fast ones, as before)")
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)
    phase = [] if args.accelerated is None else ["--griffin-lim-algorithm", "accelerated",
                                                 "--griffin-lim-iters", str(args.accelerated)]
    reexport_and_compare(out, args.tests, ["--compute", "both", *phase], ["--compute", "bfloat16"])
    algorithm = ("16 fast Griffin-Lim iterations" if args.accelerated is None else
                 f"{args.accelerated} iterations of the accelerated Griffin-Lim algorithm (Nenov, Peer & Balazs "
                 f"2023) instead of 16 fast ones")
    section = ["## A faster inverse STFT", "",
               "The export was made again from its own stored weights (`experiments/phase_speed_shipped.py`) so "
               "that every inverse STFT in its graph overlap-adds through `kgan.spectrogram.overlap_add` (the sums "
               "TensorFlow's own computes, 4-6x faster), Griffin-Lim's projections crop by a mask and impose the "
               "magnitude by one complex product, two Griffin-Lim segments run at a time, the high band is made "
               "512 frames at a time, and the generator's weights are cast once a request instead of once a "
               f"chunk. It runs {algorithm}. The weights, chord network, levels and high band are unchanged. "
               "`kgan evaluate` of its bfloat16 twin against the export before it (its twin too; each song in its "
               "own style; mean ± 95 % CI):", "",
               *report_table(out, rows=(("report", "model", "now"), ("report", "shipped", "before"))), ""]
    publish(out, "phase_speed.md", section, args.install, "phase_speed",
            {"overlap_add": "shifted blocks", "high_band_block_frames": 512,
             "griffin_lim": {"algorithm": "fast" if args.accelerated is None else "accelerated",
                             "iterations": 16 if args.accelerated is None else args.accelerated}})


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
