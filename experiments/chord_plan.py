"""How well can the chords be guessed from the melody alone? Plans played as sustained triads, scored like a model.

    python experiments/chord_plan.py OUT_DIR --corpus CORPUS --tests NAME=DIR[,NAME=DIR...] [--steps 3000]

``kgan.chords.train_chord_net`` (what ``kgan chords train`` runs) trains
``ChordNet`` on CORPUS: the tracked melody of each song (``VocalFeatures.melody``)
against the chord its true accompaniment plays per frame (``chord_labels``), on
random crops in random keys. The network is then scored on the test sets,
against:

* ``oracle``: the song's score's chords (``chord_track`` in its ``song.json``),
  the harmony the accompaniment plays; songs without a score (the real one) take
  ``oracle-audio``'s;
* ``oracle-audio``: the chords read from the true accompaniment's audio
  (``chord_labels``), the labels ChordNet first trained on;
* ``template``: the in-graph template harmoniser of ``model.vocal_input=chords``
  (``kgan evaluate --baselines harmoniser``);
* ``chordnet``: the trained network, run on each whole song.

Each plan is played as sustained triads (``kgan.evaluation._chroma_tone``) and
scored with ``chroma_motion`` and ``chroma_fit`` against the true accompaniment,
with the frame accuracy of its chord against the oracle's on frames that have
one. ``--labels`` picks what ChordNet trains on. OUT_DIR/plan_summary.md and .json hold the
table; OUT_DIR is also the ``kgan chords train`` folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RATE = 22050


def soft_notes(logits: np.ndarray) -> np.ndarray:
    """Chord logits ``[T, 25]`` -> pitch-class weights ``[12, T]``: the triads' tones weighted by probability."""
    from kgan.chords import chord_notes

    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return (p @ chord_notes(np.arange(25)).numpy()).T


def score(out: str, tests: dict, net, penalties=(), split: str = "test", sharpen=()) -> dict:
    """The plans of every song of each test set (of its ``split``), scored. ``penalties``
    adds ChordNet's plan decoded by ``viterbi_chords`` with each switch penalty ("chordnet-viterbi-P");
    ``sharpen`` its soft plan with the probabilities raised to each power and renormalised ("chordnet-soft-B")."""
    from kgan.chords import (NO_CHORD, chord_logits, chord_notes, meter_grid, song_arrays, track_labels,
                             viterbi_chords)
    from kgan.evaluation import Harmoniser, _chroma_tone, chroma_fit, chroma_motion, load_songs, mean_ci
    from kgan.harmony import song_meter
    from kgan.io_utils import score_chords, song_info

    harmoniser = Harmoniser()
    config = harmoniser.config
    results = {}
    for name, folder in tests.items():
        rows = {"oracle": [], "oracle-audio": [], "template": [], "chordnet": [], "chordnet-soft": []}
        accuracy = {"oracle-audio": [], "template": [], "chordnet": []}
        for p in penalties:
            rows[f"chordnet-viterbi-{p:g}"], accuracy[f"chordnet-viterbi-{p:g}"] = [], []
        for b in sharpen:
            rows[f"chordnet-soft-{b:g}"] = []
        songs = load_songs(folder, RATE, split=split if os.path.exists(os.path.join(folder, "splits.json")) else None)
        for song, vocal, accompaniment in songs:
            features, heard = song_arrays(vocal, accompaniment, config, harmoniser.spec)
            track = score_chords(os.path.join(folder, song))
            labels = heard if track is None else track_labels(track, len(heard), config)
            logits = chord_logits(net, features[None].astype(np.float32)).numpy()[0]
            guess = logits.argmax(-1)
            voiced = features[:, :12].sum(-1) > 1e-3
            learned = np.where(voiced | (guess != NO_CHORD), guess, NO_CHORD)
            meter = song_meter(song_info(os.path.join(folder, song)))
            if getattr(net, "grid", False) and meter:  # told the song's beat grid
                told = chord_logits(net, features[None].astype(np.float32),
                                    meter_grid(np.array([meter], np.float32), len(features), config)).numpy()[0]
                rows.setdefault("chordnet-grid", [])
                accuracy.setdefault("chordnet-grid", [])
            template = harmoniser.notes(vocal, RATE)  # [12, T]
            n = min(template.shape[1], len(labels))
            plans = {"oracle": chord_notes(labels).numpy().T, "oracle-audio": chord_notes(heard).numpy().T,
                     "template": template[:, :n],
                     "chordnet": chord_notes(learned).numpy().T,
                     # every triad weighted by its probability: a hedge where the network is unsure
                     "chordnet-soft": soft_notes(logits)}
            for p in penalties:
                plans[f"chordnet-viterbi-{p:g}"] = chord_notes(viterbi_chords(logits[None], p, net.pool)[0]).numpy().T
            for b in sharpen:  # p ** b, renormalised: between the soft plan (1) and the argmax (infinity)
                plans[f"chordnet-soft-{b:g}"] = soft_notes(logits * b)
            if "chordnet-grid" in rows and getattr(net, "grid", False) and meter:
                plans["chordnet-grid"] = chord_notes(np.where(voiced | (told.argmax(-1) != NO_CHORD), told.argmax(-1),
                                                              NO_CHORD)).numpy().T
            chord = labels[:n] != NO_CHORD
            truth = chord_notes(labels[:n]).numpy()
            for system, notes in plans.items():
                tone = _chroma_tone(notes, len(vocal), RATE) if notes.any() else np.zeros_like(vocal)
                rows[system].append((chroma_motion(tone, accompaniment, RATE), chroma_fit(tone, accompaniment, RATE)))
                if system in accuracy:
                    same = (notes.T[:n][chord] == truth[chord]).all(axis=-1)
                    accuracy[system].append(float(same.mean()) if same.size else 0.0)
        results[name] = {system: {"chroma_motion": mean_ci([r[0] for r in v]), "chroma_fit": mean_ci([r[1] for r in v]),
                                  "accuracy": mean_ci(accuracy[system]) if system in accuracy else None,
                                  "songs": len(v)}
                         for system, v in rows.items()}
        print(name, json.dumps(results[name]), flush=True)
    return results


def plot_plans(path: str, folder: str, song: str, net, seconds: float = 20.0) -> None:
    """A picture of one song's plans: the true accompaniment's chroma, then the oracle, template and ChordNet triads."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kgan.chords import chord_notes, song_arrays, track_labels
    from kgan.evaluation import HOP, Harmoniser, PITCH_CLASSES, chroma
    from kgan.io_utils import score_chords
    from kgan.preprocess import find_sources, load_sources

    harmoniser = Harmoniser()
    vocal, accompaniment = load_sources(find_sources(os.path.join(folder, song)), RATE)
    vocal, accompaniment = vocal[: int(seconds * RATE)], accompaniment[: int(seconds * RATE)]
    features, labels = song_arrays(vocal, accompaniment, harmoniser.config, harmoniser.spec)
    track = score_chords(os.path.join(folder, song))
    oracle = "oracle: the accompaniment's triads, heard"
    if track is not None:
        labels, oracle = track_labels(track, len(labels), harmoniser.config), "oracle: the score's triads"
    logits = net(features[None].astype(np.float32), training=False).numpy()[0]
    true = chroma(accompaniment, RATE)
    true = true / np.maximum(true.max(axis=0, keepdims=True), 1e-8)
    panels = [("true accompaniment (chroma)", true, RATE / HOP),
              (oracle, chord_notes(labels).numpy().T, harmoniser.config.audio.sample_rate / 256),
              ("template harmoniser", harmoniser.notes(vocal, RATE), harmoniser.config.audio.sample_rate / 256),
              ("ChordNet, argmax", chord_notes(logits.argmax(-1)).numpy().T, harmoniser.config.audio.sample_rate / 256),
              ("ChordNet, soft (each frame scaled to its peak)", soft_notes(logits) / np.maximum(
                  soft_notes(logits).max(axis=0, keepdims=True), 1e-8), harmoniser.config.audio.sample_rate / 256)]
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 1.6 * len(panels)), sharex=True)
    for ax, (title, image, rate) in zip(axes, panels):
        ax.imshow(image, aspect="auto", origin="lower", cmap="magma", vmin=0, vmax=1,
                  extent=(0, image.shape[1] / rate, -0.5, 11.5))
        ax.set_yticks(range(12), PITCH_CLASSES, fontsize=6)
        ax.set_title(title, fontsize=9, loc="left")
    axes[-1].set_xlabel("seconds")
    fig.suptitle(f"{os.path.basename(folder)} / {song}: the chords of the accompaniment, and the plans from the melody",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def analyse(out: str, corpus: str, net) -> dict:
    """Where ChordNet misses on the val split (score labels): by style, by root interval, near chord changes,
    and with its log-probabilities averaged over 0.25-1 s before the argmax. Written to OUT/analysis.json."""
    import collections

    import tensorflow as tf

    from kgan.chords import NO_CHORD
    from kgan.features import box_filter

    arrays = dict(np.load(os.path.join(out, "features-val-score.npz")))
    names = json.load(open(os.path.join(corpus, "splits.json")))["val"]
    widths = (1, 21, 43, 87)
    style = collections.defaultdict(lambda: [0, 0])
    guesses, truths, near = [], [], []
    smoothed = {w: [0, 0] for w in widths}
    start = 0
    for name, n in zip(names, arrays["lengths"]):
        x = arrays["features"][None, start:start + n].astype(np.float32)
        y = arrays["labels"][start:start + n].astype(int)
        start += n
        log_p = tf.nn.log_softmax(net(x, training=False), axis=-1)
        chord = y != NO_CHORD
        for w in widths:
            g = (box_filter(log_p, w) if w > 1 else log_p).numpy()[0].argmax(-1)
            smoothed[w][0] += int((g[chord] == y[chord]).sum())
            smoothed[w][1] += int(chord.sum())
        g = log_p.numpy()[0].argmax(-1)
        tally = style[json.load(open(os.path.join(corpus, name, "song.json")))["style"]]
        tally[0] += int((g[chord] == y[chord]).sum())
        tally[1] += int(chord.sum())
        close = np.zeros(n, bool)
        for c in np.flatnonzero(np.diff(y) != 0):
            close[max(0, c - 21): c + 22] = True  # within 0.25 s of a change
        guesses.append(g[chord])
        truths.append(y[chord])
        near.append(close[chord])
    g, y, close = (np.concatenate(a) for a in (guesses, truths, near))
    interval = collections.Counter(((g // 2 - y // 2) % 12).tolist())
    result = {"accuracy": round(float((g == y).mean()), 4),
              "by_style": {k: round(h / t, 4) for k, (h, t) in sorted(style.items())},
              "root_interval_share": {int(k): round(v / len(g), 4) for k, v in sorted(interval.items())},
              "accuracy_near_changes": round(float((g[close] == y[close]).mean()), 4),
              "accuracy_far_from_changes": round(float((g[~close] == y[~close]).mean()), 4),
              "accuracy_log_prob_averaged_over_frames": {w: round(h / t, 4) for w, (h, t) in smoothed.items()}}
    with open(os.path.join(out, "analysis.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    return result


def write_summary(out: str, results: dict) -> None:
    def cell(v):
        return "" if v is None else (f"{v[0]:.3f} ± {v[1]:.3f}" if v[1] == v[1] else f"{v[0]:.3f}")

    lines = ["| test set (songs) | plan | chord motion ↑ | chroma fit ↑ | frame accuracy ↑ |", "|---|---|---|---|---|"]
    for name, systems in results.items():
        for system, r in systems.items():
            lines.append(f"| {name} ({r['songs']}) | {system} | {cell(r['chroma_motion'])} | {cell(r['chroma_fit'])} | "
                         f"{cell(r['accuracy'])} |")
    text = "\n".join(lines) + "\n"
    with open(f"{out}/plan_summary.md", "w", encoding="utf-8") as f:
        f.write(text)
    with open(f"{out}/plan_summary.json", "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    print(text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--tests", required=True, help="NAME=DIR,...")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--labels", choices=["score", "audio"], default="score")
    parser.add_argument("--channels", type=int, default=48, help="ChordNet's width.")
    parser.add_argument("--onsets", action="store_true", help="ChordNet also hears where notes start.")
    parser.add_argument("--stacks", type=int, default=1, help="How many times ChordNet's dilations repeat.")
    parser.add_argument("--meter", action="store_true", help="ChordNet also hears its estimated beat grid.")
    parser.add_argument("--grid", action="store_true", help="ChordNet is also told each song's beat grid.")
    parser.add_argument("--from-export", metavar="EXPORT_DIR",
                        help="Score the chord network stored in this export (e.g. kgan/pretrained/export/1) "
                             "instead of training one.")
    parser.add_argument("--score-only", help="Comma-separated test set names to score (default: all).")
    parser.add_argument("--viterbi", default="", help="Comma-separated switch penalties: also score ChordNet's plan "
                                                     "decoded by kgan.chords.viterbi_chords with each.")
    parser.add_argument("--sharpen", default="", help="Comma-separated powers: also score ChordNet's soft plan with "
                                                     "its probabilities raised to each and renormalised.")
    parser.add_argument("--split", default="test", help="The split of each test set's splits.json to score.")
    parser.add_argument("--plot", metavar="TEST_DIR/SONG", help="Draw this song's plans to OUT_DIR/chord-plans.png.")
    parser.add_argument("--analyse", action="store_true",
                        help="Where the network misses on the val split, to OUT_DIR/analysis.json (score labels).")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    from kgan.chords import load_chord_net, train_chord_net
    from kgan.config import get_preset

    config = get_preset("default")
    if args.from_export:
        from kgan.export import restore_from_export

        net = restore_from_export(args.from_export)[2]
        if net is None:
            raise SystemExit(f"{args.from_export}: the export has no chord network (not a model.vocal_input=plan one)")
    else:
        metrics = train_chord_net(args.corpus, args.out, config, steps=args.steps, batch=args.batch,
                                  frames=args.frames, seed=args.seed, labels=args.labels, channels=args.channels,
                                  onsets=args.onsets, stacks=args.stacks, meter=args.meter, grid=args.grid)
        print(metrics, flush=True)
        net = load_chord_net(args.out, config)
    if args.analyse:
        analyse(args.out, args.corpus, net)
        return
    if args.plot:
        plot_plans(f"{args.out}/chord-plans.png", os.path.dirname(args.plot.rstrip("/")),
                   os.path.basename(args.plot.rstrip("/")), net)
        return
    tests = dict(item.split("=", 1) for item in args.tests.split(","))
    if args.score_only:
        tests = {k: v for k, v in tests.items() if k in args.score_only.split(",")}
    penalties = [float(p) for p in args.viterbi.split(",") if p]
    sharpen = [float(b) for b in args.sharpen.split(",") if b]
    write_summary(args.out, score(args.out, tests, net, penalties, args.split, sharpen))


if __name__ == "__main__":
    main()
