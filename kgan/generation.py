"""``kgan generate``: vocal files in, accompaniment / remix WAVs and a spectrogram PNG out."""

from __future__ import annotations

import os
import sys

import numpy as np

from kgan import audio as audio_io
from kgan.io_utils import remove_stale_temporaries

__all__ = ["LocalModel", "resolve_export", "generate_files"]


def resolve_export(path: str) -> str:
    """An export version directory: ``path`` itself, or its newest numeric subdirectory."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = sorted((int(d) for d in os.listdir(path) if d.isdigit()), reverse=True)
    for v in versions:
        candidate = os.path.join(path, str(v))
        if os.path.exists(os.path.join(candidate, "saved_model.pb")):
            return candidate
    raise FileNotFoundError(f"{path}: no SavedModel (expected saved_model.pb in it or in a numeric subfolder)")


class LocalModel:
    """The exported SavedModel run in this process."""

    def __init__(self, path: str):
        from kgan.export import load

        self.path = resolve_export(path)
        self.saved_model, self.config, _ = load(self.path)
        self._serve = self.saved_model.signatures["serving_default"]
        self.sample_rate = self.config.audio.sample_rate

    def __call__(self, vocal: np.ndarray) -> np.ndarray:
        return self._serve(vocal=np.asarray(vocal, np.float32))["accompaniment"].numpy()


def generate_files(paths, out_dir: str, model, chunk_seconds: float = 30.0, progress: bool = True) -> list[str]:
    """Generate for each file; returns the one-line errors of the files that failed."""
    from kgan.inference import generate_song
    from kgan.plots import overview, plot_spectrograms
    from kgan.spectrogram import Spectrogram

    rate = model.sample_rate
    spec = Spectrogram(model.config.stft)
    failed = []
    os.makedirs(out_dir, exist_ok=True)
    remove_stale_temporaries(out_dir)  # files of a killed run
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0]
        try:
            vocal, _ = audio_io.load(path, rate)
            accompaniment = generate_song(model, vocal, rate, chunk_seconds, progress=progress, desc=name)
            remix = vocal + accompaniment
            peak = float(np.max(np.abs(remix))) if remix.size else 0.0
            gain = 0.98 / peak if peak > 0.98 else 1.0  # one gain for both parts: no clipping, balance kept
            audio_io.write(os.path.join(out_dir, f"{name}_accompaniment.wav"), accompaniment, rate)
            audio_io.write(os.path.join(out_dir, f"{name}_remix.wav"), remix * gain, rate)
            (vocal_image, group), (accompaniment_image, _) = overview(spec, vocal), overview(spec, accompaniment)
            plot_spectrograms([("vocal", vocal_image), ("generated accompaniment", accompaniment_image)],
                              model.config, os.path.join(out_dir, f"{name}.png"), title=name, frames_per_column=group)
            print(f"wrote {os.path.join(out_dir, name)}_accompaniment.wav, _remix.wav, .png", file=sys.stderr)
        except audio_io.AudioError as e:
            failed.append(str(e))
            print(f"error: {e}", file=sys.stderr)
    return failed
