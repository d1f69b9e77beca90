"""Spectrogram pictures (PNG) with axes in seconds and Hz."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from kgan.config import Config
from kgan.io_utils import atomic_path

__all__ = ["plot_spectrograms"]


def overview(spec, waveform: np.ndarray, max_columns: int = 2400, chunk_frames: int = 8192) -> tuple[np.ndarray, int]:
    """A whole song's normalised spectrogram ``[F, columns]`` for a picture, and the frames per column.

    Frames are averaged (in the [-1, 1] dB scale) in groups so that at most
    ``max_columns`` columns remain, and the STFT runs ``chunk_frames`` frames
    at a time, so memory does not grow with the song's length.
    """
    hop = spec.hop
    context = spec.pad // hop  # frames of left context a chunk needs (n_fft - hop is a multiple of hop)
    frames = int(spec.num_frames(len(waveform)))
    group = max(1, -(-frames // max_columns))
    step = max(group, chunk_frames // group * group)  # frames per chunk, a whole number of groups
    columns = []
    for start in range(0, frames, step):
        # Song frame t covers samples [(t - context) * hop, (t + 1) * hop); with `context` frames of
        # samples in front, the chunk's frames from `context` on are exactly the song's.
        first = (start - context) * hop
        piece = waveform[max(0, first) : (start + step) * hop]
        if first < 0:
            piece = np.concatenate([np.zeros(-first, np.float32), piece])
        part = spec.to_model(piece[None])[0].numpy()[context : context + min(step, frames - start)]  # (T, F)
        pad = (-len(part)) % group
        if pad:
            part = np.concatenate([part, np.repeat(part[-1:], pad, axis=0)])
        columns.append(part.reshape(-1, group, part.shape[1]).mean(axis=1))
    return np.concatenate(columns).T, group


def plot_spectrograms(panels: Sequence[tuple], config: Config, path: str,
                      title: str | None = None, start_seconds: float = 0.0, frames_per_column: int = 1) -> None:
    """Stack normalised spectrograms ``[F, T]`` (values in [-1, 1]) vertically into one PNG.

    ``panels`` are ``(label, array)`` pairs drawn top to bottom with low
    frequencies at the bottom; the colour bar is in dBFS on the global scale.
    Each column spans ``frames_per_column`` STFT frames (see ``overview``).
    A ``(label, array, "f0")`` panel is a pitch-salience image (``kgan.features``):
    rows are candidate F0s on a log axis, labelled by note.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = config.stft
    seconds_per_frame = s.hop_length / config.audio.sample_rate * frames_per_column
    hz_per_bin = config.audio.sample_rate / s.n_fft
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3 * len(panels)), squeeze=False, sharex=True)
    image = None
    for ax, (label, x, *kind) in zip(axes[:, 0], panels):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 3:
            x = x[..., 0]
        if kind == ["f0"]:
            from kgan.features import f0_axis

            f0 = f0_axis(x.shape[0])
            extent = [start_seconds, start_seconds + x.shape[1] * seconds_per_frame, 0, x.shape[0]]
            ax.imshow(x, origin="lower", aspect="auto", extent=extent, cmap="viridis", vmin=-1, vmax=1,
                      interpolation="nearest")
            rows = [i for i in range(0, x.shape[0], x.shape[0] // 64 * 12)]  # every A, octave apart
            ax.set_yticks(rows, [f"A{int(round(np.log2(f0[i] / 55.0))) + 1} ({f0[i]:.0f} Hz)" for i in rows])
            ax.set_ylabel("F0")
            ax.set_title(label)
            continue
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


def read_history(path: str) -> list[dict]:
    """``metrics.jsonl`` records, the last one per (step, kind) kept (a resumed run may repeat steps)."""
    import json

    latest: dict[tuple[int, bool], dict] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                latest[(record["step"], "val_l1" in record)] = record
    return [latest[k] for k in sorted(latest)]


def plot_history(run_dir: str, path: str) -> None:
    """Loss curves of a run: train and validation L1 (log scale), and mean D(real) / D(fake)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = read_history(os.path.join(run_dir, "metrics.jsonl"))
    train = [h for h in history if "g_l1" in h]
    val = [h for h in history if "val_l1" in h]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    top.plot([h["step"] for h in train], [h["g_l1"] for h in train], label="train L1 (per batch)")
    top.plot([h["step"] for h in val], [h["val_l1"] for h in val], "o-", label="validation L1")
    top.set_yscale("log")
    top.set_ylabel("L1 on the [-1, 1] scale")
    top.grid(True, which="both", alpha=0.3)
    top.legend()
    bottom.plot([h["step"] for h in train], [h["d_real"] for h in train], label="mean D(real)")
    bottom.plot([h["step"] for h in train], [h["d_fake"] for h in train], label="mean D(fake)")
    bottom.set_ylim(0, 1)
    bottom.set_xlabel("step")
    bottom.grid(True, alpha=0.3)
    bottom.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


if __name__ == "__main__":  # python -m kgan.plots RUN_DIR OUT.png
    import sys

    plot_history(sys.argv[1], sys.argv[2])
    print(f"wrote {sys.argv[2]}")
