"""Corpus render speed: seconds of audio rendered per second, with 1 and with N processes.

    python benchmarks/corpus.py [--folk 120] [--chorales 30] [--jobs 2]

Renders the same songs (folk songs in every style and chorales, every voice but
Festival's, plus a Festival-only set) into fresh folders with ``--jobs 1`` and
with ``--jobs N``, and prints x real time (audio seconds / wall seconds, higher
is better) and the minutes that 20 h of audio would take at that rate (the
goal: <= 30 min on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folk", type=int, default=120)
    parser.add_argument("--chorales", type=int, default=30)
    parser.add_argument("--festival", type=int, default=10, help="folk songs sung by Festival (0: skip)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    from _common import machine_line, percentile_table

    from kgan.config import get_preset
    from kgan.corpus import build_corpus, festival_available

    print(machine_line())
    rate = get_preset("default").audio.sample_rate
    root = tempfile.mkdtemp(prefix="kgan-bench-corpus-")
    sets = [("chorales + folk, GM voices and instruments", {"chorales": args.chorales, "folk": args.folk},
             "gm-voice,wind,brass,bowed")]
    if args.festival and festival_available():
        sets.append(("folk, Festival's sung voice", {"folk": args.festival}, "festival"))
    rows = []
    try:
        for label, sources, voices in sets:
            for jobs in (1, args.jobs):
                out = os.path.join(root, f"{len(rows)}")
                start = time.perf_counter()
                summary = build_corpus(out, rate, sources, voices=voices, jobs=jobs, progress=False)
                wall = time.perf_counter() - start
                speed = summary["hours"] * 3600 / wall
                rows.append((label, jobs, f"{summary['hours']:.2f}", f"{speed:.0f}", f"{20 * 60 / speed:.1f}"))
                shutil.rmtree(out)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(percentile_table(rows, ["songs", "processes", "hours", "x real time", "min for 20 h"]))


if __name__ == "__main__":
    main()
