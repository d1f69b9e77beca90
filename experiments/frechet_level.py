"""How much of a Fréchet distance is the level? The same outputs scored with and without their gain.

    python experiments/frechet_level.py EXPORT TEST_DIR

Generates every test song of TEST_DIR (a ``kgan corpus`` folder's test split) with a level-calibrated
EXPORT (``kgan export --calibrate-levels``), each in its own style, and compares the clip embeddings
(``kgan.evaluation.clip_embedding``) of the true accompaniments with those of the outputs as served
(calibrated) and divided by their style's gain again (uncalibrated): the Fréchet distance over all 78
features, and without the one that carries the level (the mean of MFCC 0, the mean log energy).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kgan import use_served_kernels  # noqa: E402

use_served_kernels()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export")
    parser.add_argument("tests")
    args = parser.parse_args(argv)
    import numpy as np

    from kgan.evaluation import clip_embedding, frechet_distance, load_songs, song_labels
    from kgan.generation import LocalModel
    from kgan.inference import generate_song

    model = LocalModel(args.export)
    with open(os.path.join(args.export, "assets", "kgan_config.json"), encoding="utf-8") as f:
        gains = json.load(f)["level_calibration"]["gains_db"]
    rate = model.sample_rate
    songs = list(load_songs(args.tests, rate, split="test"))
    labels = song_labels(args.tests, [name for name, _, _ in songs])
    embeddings = {"truth": [], "calibrated": [], "uncalibrated": []}
    for name, vocal, accompaniment in songs:
        style = labels.get(name) if labels.get(name) in model.style_names else "any"
        model.set_style(style)
        out = generate_song(model, vocal, rate, at_input_rate=True)
        embeddings["truth"].append(clip_embedding(accompaniment, rate))
        embeddings["calibrated"].append(clip_embedding(out, rate))
        embeddings["uncalibrated"].append(clip_embedding(out / 10 ** (gains[style] / 20), rate))
    e = {k: np.array(v) for k, v in embeddings.items()}
    rest = np.arange(1, e["truth"].shape[1])  # every feature but the mean of MFCC 0
    print(f"{len(songs)} songs of {args.tests}, {args.export}")
    print("| outputs | Fréchet | Fréchet without mean MFCC 0 | mean MFCC 0 (truth "
          f"{e['truth'][:, 0].mean():.1f}) | its spread over songs (truth {e['truth'][:, 0].std():.1f}) |")
    print("|---|---|---|---|---|")
    for k in ("calibrated", "uncalibrated"):
        print(f"| {k} | {frechet_distance(e[k], e['truth']):.0f} | "
              f"{frechet_distance(e[k][:, rest], e['truth'][:, rest]):.0f} | {e[k][:, 0].mean():.1f} | "
              f"{e[k][:, 0].std():.1f} |")


if __name__ == "__main__":
    main()
