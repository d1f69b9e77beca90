"""How often the true accompaniments pass the style check themselves, and why they miss.

    python experiments/style_ceiling.py TEST_DIR [TEST_DIR ...] [-o OUT.md]

``kgan evaluate --style-check`` counts a song as a hit in style s when its output, generated in s, is
nearer (mean MFCC, level-normalised; ``kgan.evaluation.mfcc_stats``) to the centroid of s's true
accompaniments than to any other style's centroid. An output indistinguishable from a true
accompaniment of s can only hit as often as the true accompaniments do. So each test song's own true
accompaniment is put through the same check (its own style's centroid taken without it), and every
miss is listed with the General MIDI programs that rendered it (``song.json``), which shows where the
styles share instruments.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ceiling(test: str, rate: int = 22050) -> tuple[list[str], list[tuple[str, str, str, dict]]]:
    """(styles, [(song, its style, the style nearest its accompaniment, its programs)]) of ``test``."""
    from plan_guidance import test_songs

    from kgan.evaluation import N_MFCC, mfcc_stats, nearest_style_left_out
    from kgan.io_utils import song_info

    songs, labels = test_songs(test, rate, None)
    truth = {n: mfcc_stats(a, rate)[:N_MFCC] for n, _, a in songs if labels.get(n)}
    styles = sorted({labels[n] for n in truth})
    return styles, [(name, labels[name], nearest, song_info(os.path.join(test, name)).get("programs") or {})
                    for name, nearest in nearest_style_left_out(truth, labels, styles).items()]


def report(test: str, styles, rows) -> str:
    counts = collections.Counter(style for _, style, _, _ in rows)
    hits = collections.Counter(style for _, style, near, _ in rows if near == style)
    lines = [f"## {os.path.basename(os.path.normpath(test))}: {sum(hits.values())} of {len(rows)} true "
             "accompaniments nearest their own style", "",
             "| style | songs | nearest their own style | nearest another: which |", "|---|---|---|---|"]
    for style in styles:
        others = collections.Counter(near for _, s, near, _ in rows if s == style and near != style)
        lines.append(f"| {style} | {counts[style]} | {hits[style]} | "
                     + (", ".join(f"{k} {v}" for k, v in sorted(others.items())) or "") + " |")
    lines += ["", "Misses, with the programs that rendered them (General MIDI, 0-based):", ""]
    lines += [f"- {name} ({style} → {near}): {programs}" for name, style, near, programs in rows if near != style]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", nargs="+")
    parser.add_argument("-o", "--out", help="Write the report here (markdown).")
    args = parser.parse_args(argv)
    text = "# The style check on the true accompaniments\n\n" + "\n".join(report(t, *ceiling(t)) for t in args.tests)
    print(text)
    if args.out:
        from kgan.io_utils import atomic_write_text

        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
