"""Export the shipped model again so that it takes a chord chart, and measure what a chart gives.

    python experiments/chart_shipped.py OUT_DIR --tests OUT_WITH_TEST_SETS [--install]

1. ``kgan export kgan/pretrained/export/1 OUT_DIR/export --weights float16 --compute both``: the stored
   weights, chord network, level gains, overlap, high band and Griffin-Lim settings exported again, so the
   serving signatures take the optional ``chords`` input (``kgan.chart``); the graph also picks up the
   phase-locked start of Griffin-Lim (``kgan.spectrogram.integrated_phase``).
2. ``kgan evaluate OUT_DIR/export --compute bfloat16 --compare shipped=...``: both exports' bfloat16 twins,
   each song in its own style, without a chart, on the test renderings ``TESTS/test-*`` of
   ``experiments/pretrained.py``.
3. ``kgan evaluate OUT_DIR/export --chords score``: the same songs, each given its own score's chords as a
   chart (what a singer who knows the chords types into ``kgan generate --chords``); the real song has no
   score and is left out.
4. ``OUT_DIR/chart.md``: the three rows per test set; with ``--install``, the export replaces the installed
   one and the card (size and sha256, and a section) and ``metrics.json`` (``chart``) are updated.

Every step is skipped when its output exists.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _steps import ROOT, done, kgan  # noqa: E402
from pretrained import TESTS  # noqa: E402
from recalibrate_shipped import publish, reexport_and_compare, reexport_parser, report_table  # noqa: E402

SCORED = tuple(t for t in TESTS if t != "musdb-real")  # the sets whose songs have score chords


def main(argv=None) -> None:
    args = reexport_parser(__doc__, overlap=False).parse_args(argv)
    out = os.path.abspath(args.out)
    reexport_and_compare(out, args.tests, ["--compute", "both"], ["--compute", "bfloat16"])
    for test in SCORED:
        if not done(f"{out}/report-score-{test}/report.json"):
            kgan("evaluate", f"{out}/export/1", f"{args.tests}/test-{test}", "-o", f"{out}/report-score-{test}",
                 "--split", "test", "--baselines", "", "--style", "label", "--compute", "bfloat16",
                 "--chords", "score", "--no-progress", log=f"{out}/evaluate.log")
    rows = (("report-score", "model", "now, told the score's chords"), ("report", "model", "now, its own plan"),
            ("report", "shipped", "before"))
    text = ("The export was made again from its own stored weights (`experiments/chart_shipped.py`); the weights, "
            "chord network, levels and high band are unchanged. Its serving signatures take a chord chart "
            "(`chords`: a chord per STFT frame, -1 where the chord network's guess stays; `kgan generate "
            "--chords`), and Griffin-Lim starts from the phase-locked integrated phase. `kgan evaluate` of its "
            "bfloat16 twin, each song in its own style (mean ± 95 % CI): told each song's score chords as a "
            "chart (`--chords score`), without a chart, and the export before it:")
    section = ["## Chord charts", "", text, "", *report_table(out, rows=rows), ""]
    summaries = {}
    for test in SCORED:
        with open(f"{out}/report-score-{test}/report.json", encoding="utf-8") as f:
            summaries[test] = json.load(f)["systems"]["model"]["summary"]
    publish(out, "chart.md", section, args.install, "chart", {"input": "chords", "told_score_chords": summaries})


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
