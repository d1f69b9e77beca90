"""Choose the vocoder's ``quiet_db`` on val songs: the level at or below which its refinement keeps the network's
magnitude.

    python experiments/vocoder_quiet_db.py --vocoder build/voc/vocoder-v2 --corpus build/voc/corpus \\
        --run kgan/pretrained/export/1 [--n 16] [--seconds 15] [--levels none,-80,-75,-70,-65,-60]

For ``--n`` songs drawn (seed 0) from the val split of ``--corpus`` (the vocoder's own corpus, never its test
songs), the first ``--seconds`` of the accompaniment's true magnitudes and of the magnitudes ``--run``'s generator
makes from the vocal go through the vocoder and its export's default Griffin-Lim iterations, once per level; the
means of ``kgan.vocoder.stft_distances`` are printed, lower is better.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from vocoder import MEASURES, score_methods  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocoder", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--run", required=True, help="A training run or an export whose generator makes magnitudes.")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--levels", default="none,-80,-75,-70,-65,-60")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from kgan.export import restore_run_or_export
    from kgan.inference import Generate
    from kgan.vocoder import EXPORT_REFINE_ITERS, Vocoder, load_vocoder

    generator, config, chord_net, _ = restore_run_or_export(args.run)
    pipeline = Generate(generator, config, chord_net=chord_net)
    trained = load_vocoder(args.vocoder, config.stft, config.audio.sample_rate, refine_iters=EXPORT_REFINE_ITERS)
    signature = [tf.TensorSpec([1, None, config.stft.num_bins]), tf.TensorSpec([], tf.int32)]

    def method(level):
        vocoder = Vocoder(trained.net, config.stft, dataclasses.replace(trained.settings, quiet_db=level))
        return tf.function(lambda normalised, length: vocoder.waveform(normalised, length), input_signature=signature)

    methods = {name: method(None if name == "none" else float(name)) for name in args.levels.split(",")}
    with open(os.path.join(args.corpus, "splits.json"), encoding="utf-8") as f:
        val = json.load(f)["val"]
    songs = [val[i] for i in sorted(np.random.default_rng(0).choice(len(val), min(args.n, len(val)), replace=False))]
    scores = score_methods([os.path.join(args.corpus, name) for name in songs], methods, pipeline, args.seconds)
    print(f"{len(songs)} val songs of {args.corpus}, first {args.seconds:g} s; means, lower is better\n")
    print("| magnitudes | quiet_db | " + " | ".join(MEASURES) + " |\n|---|---|" + "---|" * len(MEASURES))
    for source in scores:
        for m in methods:
            means = [np.mean(scores[source][m][k]) for k in MEASURES]
            print(f"| {source} | {m} | " + " | ".join(f"{v:.4f}" for v in means) + " |")


if __name__ == "__main__":
    main()
