import numpy as np
import pytest

from kgan.config import get_preset
from kgan.plots import overview
from kgan.spectrogram import Spectrogram


@pytest.mark.parametrize("max_columns, chunk_frames", [(100000, 37), (40, 50), (7, 1000)])
def test_overview_is_the_whole_song_spectrogram_averaged_a_chunk_at_a_time(max_columns, chunk_frames):
    cfg = get_preset("tiny")
    spec = Spectrogram(cfg.stft)
    x = (np.random.default_rng(0).normal(size=cfg.audio.sample_rate * 3 + 17) * 0.1).astype(np.float32)
    full = spec.to_model(x[None])[0].numpy().T  # (F, T)
    image, group = overview(spec, x, max_columns=max_columns, chunk_frames=chunk_frames)
    assert image.shape[1] <= max_columns and image.shape[0] == full.shape[0]
    whole = full.shape[1] // group
    expected = full[:, : whole * group].reshape(full.shape[0], whole, group).mean(axis=-1)
    np.testing.assert_allclose(image[:, :whole], expected, atol=1e-6)
    assert image.shape[1] == -(-full.shape[1] // group)
