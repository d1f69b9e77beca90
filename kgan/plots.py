"""Spectrogram pictures (PNG) with axes in seconds and Hz."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from kgan.config import Config
from kgan.io_utils import atomic_path

__all__ = ["plot_spectrograms"]


def plot_spectrograms(panels: Sequence[tuple[str, np.ndarray]], config: Config, path: str,
                      title: str | None = None, start_seconds: float = 0.0) -> None:
    """Stack normalised spectrograms ``[F, T]`` (values in [-1, 1]) vertically into one PNG.

    ``panels`` are ``(label, array)`` pairs drawn top to bottom with low
    frequencies at the bottom; the colour bar is in dBFS on the global scale.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = config.stft
    seconds_per_frame = s.hop_length / config.audio.sample_rate
    hz_per_bin = config.audio.sample_rate / s.n_fft
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3 * len(panels)), squeeze=False, sharex=True)
    image = None
    for ax, (label, x) in zip(axes[:, 0], panels):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 3:
            x = x[..., 0]
        db = (x + 1.0) * 0.5 * (s.db_ceiling - s.db_floor) + s.db_floor
        extent = [start_seconds, start_seconds + x.shape[1] * seconds_per_frame, 0, x.shape[0] * hz_per_bin]
        image = ax.imshow(db, origin="lower", aspect="auto", extent=extent, cmap="magma",
                          vmin=s.db_floor, vmax=s.db_ceiling, interpolation="nearest")
        ax.set_ylabel("frequency (Hz)")
        ax.set_title(label)
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    fig.colorbar(image, ax=axes[:, 0].tolist(), label="dBFS", fraction=0.025)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
