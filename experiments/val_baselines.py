"""Validation L1 of trivial predictions, to judge a trained generator's validation L1 against.

    python experiments/val_baselines.py DATA_DIR

* silence: every bin at the floor (-1);
* mean: the mean training spectrogram, per frequency bin;
* echo: the vocal itself as the accompaniment.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(data_dir: str) -> None:
    import numpy as np

    from kgan.config import Config
    from kgan.dataset import read_metadata, windows_dataset

    cfg = Config.from_dict(read_metadata(data_dir)["config"])
    sums, count = 0.0, 0
    for _, target in windows_dataset(data_dir, "train", cfg, 8, training=False):
        sums = sums + target.numpy().sum(axis=(0, 2, 3))
        count += target.shape[0] * target.shape[2]
    mean = (sums / count)[None, :, None, None]
    totals = {"silence": 0.0, "mean training spectrogram": 0.0, "echo (the vocal)": 0.0}
    n = 0
    for vocal, target in windows_dataset(data_dir, "val", cfg, 8, training=False, drop_remainder=False):
        v, t = vocal.numpy(), target.numpy()
        totals["silence"] += np.abs(t + 1.0).mean(axis=(1, 2, 3)).sum()
        totals["mean training spectrogram"] += np.abs(t - mean).mean(axis=(1, 2, 3)).sum()
        totals["echo (the vocal)"] += np.abs(t - v).mean(axis=(1, 2, 3)).sum()
        n += v.shape[0]
    print(f"| baseline | validation L1 ({n} windows) |\n|---|---|")
    for name, total in totals.items():
        print(f"| {name} | {total / n:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1])
