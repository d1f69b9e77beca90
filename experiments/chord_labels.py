"""Heard chords against the score's: how good are chord labels read from an accompaniment's audio?

    python experiments/chord_labels.py CORPUS [--songs 60] [-o OUT.json]

On a sample of CORPUS' train songs (each with its score's ``chord_track``), per frame:

* the heard labels of ``kgan.chords.chord_labels`` (what ChordNet and the plan
  generator first trained on) against the score's (``track_labels``): agreement,
  how often each changes chord, and how often the sung note is a tone of it;
* variants of a chroma labeller: the chroma from 55 or 250 Hz up, of power,
  magnitude or the fourth root of power, matched to plain triads or to triads
  whose notes carry 4 or 6 decaying harmonics; agreement with the score, overall,
  for chorales and for folk songs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HARMONICS = ((1, 1.0), (4, 0.6), (6, 0.7))  # (partials per note, decay per partial)


def harmonic_templates(partials: int, decay: float) -> np.ndarray:
    """``[24, 12]`` unit-norm triad templates whose notes sound ``partials`` harmonics, each ``decay`` weaker."""
    from kgan.features import triads

    out = np.zeros((24, 12), np.float32)
    for chord in range(24):
        for note in np.flatnonzero(triads()[chord]):
            for h in range(1, partials + 1):
                out[chord, (note + int(round(12 * np.log2(h)))) % 12] += decay ** (h - 1)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("--songs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--out")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from kgan.chords import NO_CHORD, chord_notes, song_arrays, track_labels
    from kgan.config import get_preset
    from kgan.features import box_filter
    from kgan.harmonic_loss import chroma_matrix
    from kgan.preprocess import find_sources, load_sources
    from kgan.spectrogram import Spectrogram

    config = get_preset("default")
    s = config.stft
    spec = Spectrogram(s)
    names = json.load(open(os.path.join(args.corpus, "splits.json")))["train"]
    names = sorted(np.random.default_rng(args.seed).choice(names, min(args.songs, len(names)), replace=False))
    matrices = {low: chroma_matrix(config.audio.sample_rate, s.n_fft, s.num_bins, low_hz=low) for low in (55.0, 250.0)}
    width = int(round(0.25 * config.audio.sample_rate / s.hop_length))
    variants = list(itertools.product((55.0, 250.0), (1.0, 0.5, 0.25), HARMONICS))
    hits = {v: {"chorales": [0, 0], "folk": [0, 0]} for v in variants}
    heard_stats = {"agree": [0, 0], "heard_changes": [0, 0], "score_changes": [0, 0], "sung_in_heard": [0, 0],
                   "sung_in_score": [0, 0]}

    def add(key, hit, total):
        heard_stats[key][0] += int(hit)
        heard_stats[key][1] += int(total)

    for name in names:
        folder = os.path.join(args.corpus, name)
        info = json.load(open(os.path.join(folder, "song.json")))
        vocal, accompaniment = load_sources(find_sources(folder), config.audio.sample_rate)
        features, heard = song_arrays(vocal, accompaniment, config, spec)
        score = track_labels(info["chord_track"], len(heard), config)
        chord = (score != NO_CHORD) & (heard != NO_CHORD)
        add("agree", (heard[chord] == score[chord]).sum(), chord.sum())
        add("heard_changes", (np.diff(heard) != 0).sum(), len(heard) - 1)
        add("score_changes", (np.diff(score) != 0).sum(), len(score) - 1)
        voiced = features[:, :12].astype(np.float32).sum(-1) > 0.1
        sung = features[:, :12].astype(np.float32).argmax(-1)
        for key, labels in (("sung_in_heard", heard), ("sung_in_score", score)):
            tones = chord_notes(labels[voiced]).numpy()
            add(key, tones[np.arange(len(tones)), sung[voiced]].sum(), voiced.sum())

        x = spec.to_model(tf.constant(accompaniment[None])).numpy()[0]  # (T, F) normalised
        power = 10.0 ** (((np.clip(x, -1, 1) + 1) * 0.5 * (s.db_ceiling - s.db_floor) + s.db_floor) / 10.0)
        frames = min(len(power), len(score))
        has = score[:frames] != NO_CHORD
        for low, exponent, (partials, decay) in variants:
            c = box_filter(tf.constant(((power ** exponent) @ matrices[low])[None]), width).numpy()[0][:frames]
            c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
            guess = (c @ harmonic_templates(partials, decay).T).argmax(1)
            tally = hits[(low, exponent, (partials, decay))][info["source"]]
            tally[0] += int((guess[has] == score[:frames][has]).sum())
            tally[1] += int(has.sum())
        print(name, flush=True)

    rows = []
    for (low, exponent, (partials, decay)), by in hits.items():
        total = sum(h for h, _ in by.values()) / max(sum(t for _, t in by.values()), 1)
        rows.append({"low_hz": low, "exponent": exponent, "partials": partials, "decay": decay,
                     "agreement": round(total, 3),
                     **{source: round(h / t, 3) if t else None for source, (h, t) in by.items()}})
    results = {"songs": len(names), "heard_labels": {k: round(h / max(t, 1), 4) for k, (h, t) in heard_stats.items()},
               "labellers": sorted(rows, key=lambda r: -r["agreement"])}
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
