"""Which test chorales share their tune with a training chorale, and the evaluation on each group.

    python experiments/tune_overlap.py CORPUS_DIR REPORT_DIR [--notes 12]

Bach harmonised many hymn tunes more than once, and music21's corpus holds
several settings of the same tune under different BWV numbers (some note for
note). ``kgan corpus`` used to split by piece name, so a test piece's tune
could also be in training; it now splits by tune, and this script checks that
no test song's fingerprint is in training. A tune is fingerprinted by the soprano's first ``--notes`` pitch
intervals (ties and repeated notes merged; transposition-invariant). Prints
which test songs have a training song with the same fingerprint, then
re-summarises the per-song metrics of ``REPORT_DIR/report.json`` (from
``kgan evaluate``) over the test songs whose tune is not in training, as a
Markdown table (the set-level Fréchet distance and pairing are not re-run).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np


def fingerprint(path: str, notes: int) -> tuple[int, ...] | None:
    """The soprano's first ``notes`` melodic intervals in semitones, or None when it has too few."""
    from music21 import converter

    from kgan.corpus import _soprano_and_lower

    voices = _soprano_and_lower(converter.parse(path))
    if voices is None:
        return None
    pitches = []
    for n in voices[0].stripTies().flatten().notes:
        p = int(n.pitches[-1].midi)
        if not pitches or pitches[-1] != p:
            pitches.append(p)
    steps = tuple(np.diff(pitches[: notes + 1]).tolist())
    return steps if len(steps) == notes else None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("report")
    parser.add_argument("--notes", type=int, default=12)
    args = parser.parse_args(argv)

    from kgan.corpus import list_chorales
    from kgan.evaluation import HIGHER_IS_BETTER, SONG_METRICS, mean_ci

    with open(os.path.join(args.corpus, "corpus.json"), encoding="utf-8") as f:
        songs = json.load(f)["songs"]
    paths = {t.name: t.path for t in list_chorales()}
    prints = {s["folder"]: fingerprint(paths[s["piece"]], args.notes) for s in songs}
    train = {}
    for s in songs:
        if s["split"] == "train" and prints[s["folder"]] is not None:
            train.setdefault(prints[s["folder"]], []).append(s["folder"])
    with open(os.path.join(args.report, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    seen = {name: train.get(prints.get(name), []) for name in report["songs"]}
    for name, twins in seen.items():
        print(f"{name}: {'tune also in training: ' + ', '.join(twins) if twins else 'unseen tune'}")
    unseen = [name for name, twins in seen.items() if not twins]
    print(f"\n{len(unseen)} of {len(seen)} test songs have a tune that is not in training.\n")
    print("| system | " + " | ".join(f"{m} {'↑' if HIGHER_IS_BETTER[m] else '↓'}" for m in SONG_METRICS) + " |")
    print("|" + "---|" * (len(SONG_METRICS) + 1))
    for system in sorted(report["systems"], key=lambda name: name != "model"):
        data = report["systems"][system]
        cells = [mean_ci([data["per_song"][n][m] for n in unseen]) for m in SONG_METRICS]
        print(f"| {system} | " + " | ".join(f"{mean:.3f} ± {ci:.3f}" for mean, ci in cells) + " |")


if __name__ == "__main__":
    main()
