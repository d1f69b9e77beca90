"""Export the shipped model again with the phase-locked start of Griffin-Lim, or with the learned vocoder.

    python experiments/phase_shipped.py OUT_DIR --tests OUT_WITH_TEST_SETS [--vocoder DIR [--refine N]] [--install]

1. ``kgan export kgan/pretrained/export/1 OUT_DIR/export --weights float16 --compute both``: the stored
   weights, chord network, level gains, overlap, high band and Griffin-Lim settings exported again, so the
   graph picks up ``kgan.spectrogram.integrated_phase`` with every bin of a partial's lobe locked to its peak;
   with ``--vocoder DIR`` (a ``kgan vocoder train`` folder), that vocoder makes the waveform instead
   (``--phase vocoder``), refined by ``--refine`` accelerated Griffin-Lim iterations (default: the export's).
2. ``kgan evaluate OUT_DIR/export --compute bfloat16 --compare shipped=...``: both exports' bfloat16 twins,
   each song in its own style, on the test renderings ``TESTS/test-*`` of ``experiments/pretrained.py``.
3. ``OUT_DIR/phase.md``: the comparison; with ``--install``, the export replaces the installed one and the
   card (size and sha256, and a section) and ``metrics.json`` (``phase``) are updated.

Every step is skipped when its output exists.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _steps import ROOT  # noqa: E402
from recalibrate_shipped import reexport_parser, reexport_twins_and_publish  # noqa: E402


def main(argv=None) -> None:
    parser = reexport_parser(__doc__, overlap=False)
    parser.add_argument("--vocoder", help="A kgan vocoder train folder: the export's phase (--phase vocoder).")
    parser.add_argument("--refine", type=int, help="With --vocoder: Griffin-Lim iterations after the network.")
    args = parser.parse_args(argv)
    export_args = () if args.vocoder is None else (
        "--phase", "vocoder", "--vocoder", os.path.abspath(args.vocoder),
        *(() if args.refine is None else ("--griffin-lim-iters", str(args.refine))))
    common = ("The export was made again from its own stored weights (`experiments/phase_shipped.py`). The "
              "weights, chord network, levels and high band are unchanged. ")
    if args.vocoder is None:
        title, value = "## The phase-locked start of Griffin-Lim", {"phase": "griffin-lim", "start": "lobes locked"}
        text = (common + "Griffin-Lim now starts from the phase-locked integrated phase: every bin of a partial's "
                "lobe advances at the partial's frequency and keeps the peak's phase, where each bin had followed "
                "its own estimate and a lobe's bins drifted apart. Its iterations are unchanged.")
    else:
        with open(os.path.join(args.vocoder, "vocoder.json"), encoding="utf-8") as f:
            trained = json.load(f)["settings"]
        refine = "its folder's" if args.refine is None else str(args.refine)
        title, value = "## The learned vocoder", {"phase": "vocoder", "vocoder": trained, "refine": args.refine}
        text = (common + f"Its waveform now comes from the learned vocoder (`kgan.vocoder`: {trained['channels']} "
                f"channels, {trained['blocks']} blocks, {trained['steps']} steps on the corpus' accompaniments) "
                f"and {refine} accelerated Griffin-Lim iterations after it, aimed at the generated magnitude except "
                f"in the bins at or below {trained.get('quiet_db', -70.0):g} dB, which keep the network's.")
    text += (" `kgan evaluate` of its bfloat16 twin against the export before it (its twin too; each song in its "
             "own style; mean ± 95 % CI):")
    reexport_twins_and_publish(args, title, text, "phase.md", "phase", value, export_args)


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
