"""How much does the harmony loss reward following the chords? Its two terms for fixed guesses.

    python experiments/harmony_signal.py DATA_DIR [--split val] [--batches 16]

On a preprocessed data set's windows, ``kgan.harmonic_loss.chroma_distances``
(fit distance, motion distance; 1 - cosine each, so 0 is perfect and 1 is
chance for motion) of:

* ``plan``: the ``chords`` input's triads (``VocalFeatures`` channel 0) taken as the output;
* ``track``: the tracked pitch class at every octave (its channel 1);
* ``vocal``: the vocal spectrogram itself (the echo);
* ``window mean``: the true accompaniment's own mean spectrum over the window,
  every frame (an oracle drone: the right key and sound, no changes).

``--reference segment`` measures motion against the segment's mean chroma
(``train.chroma_reference=segment``) instead of each window's own.

A guess that follows the chords should score a motion distance well below 1
and below the oracle drone; how far below is the loss' signal for chord motion.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--split", default="val")
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--reference", choices=("window", "segment"), default="window",
                        help="What motion is measured against (train.chroma_reference).")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from kgan.config import Config
    from kgan.dataset import read_metadata, windows_dataset
    from kgan.features import VocalFeatures
    from kgan.harmonic_loss import chroma_distances, chroma_matrix

    config = Config.from_dict(read_metadata(args.data)["config"]).override(**{"model.vocal_input": "chords"})
    layer = VocalFeatures.from_kgan_config(config)
    matrix = chroma_matrix(config.audio.sample_rate, config.stft.n_fft, config.stft.num_bins)
    scores: dict[str, list] = {}
    segment = args.reference == "segment"
    batches = windows_dataset(args.data, args.split, config, 16, training=False, drop_remainder=False,
                              segment_reference=segment)
    for vocal, target, *rest in batches.take(args.batches):
        reference = rest[-1] if segment else None
        seen = layer(vocal)
        drone = tf.repeat(tf.reduce_mean(target, axis=2, keepdims=True), tf.shape(target)[2], axis=2)
        for name, guess in (("plan", seen[..., :1]), ("track", seen[..., 1:2]), ("vocal", vocal),
                            ("window mean", drone)):
            fit, motion = chroma_distances(guess, target, matrix, config.stft.db_floor, config.stft.db_ceiling,
                                           reference=reference)
            scores.setdefault(name, []).append(np.stack([fit.numpy(), motion.numpy()], axis=1))
    windows = sum(len(v) for v in next(iter(scores.values())))
    print(f"{windows} {args.split} windows of {config.window.frames} frames, motion against the {args.reference}'s "
          "mean chroma\n")
    print("| guess | fit distance | motion distance |\n|---|---|---|")
    for name, parts in scores.items():
        fit, motion = np.concatenate(parts).mean(axis=0)
        print(f"| {name} | {fit:.3f} | {motion:.3f} |")


if __name__ == "__main__":
    main()
