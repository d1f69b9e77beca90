"""The dynamics loss: loudness modulation per octave band, blind to where in the window it falls."""

import numpy as np
import tensorflow as tf

from kgan.dynamics_loss import band_edges, modulation_loss, modulation_spectrum
from tests.conftest import loss_trajectory

BINS, FRAMES = 64, 32


def _strums(period: int, offset: int = 0, bins: int = BINS, frames: int = FRAMES) -> np.ndarray:
    """``[1, bins, frames, 1]``: a quiet bed (-0.6) with a broadband hit every ``period`` frames that decays."""
    x = np.full((1, bins, frames, 1), -0.6, np.float32)
    for t in range(frames):
        since = (t - offset) % period
        x[0, :, t, 0] += 0.5 * np.exp(-since / 1.5)
    return x


def test_band_edges_are_octaves_from_the_lowest_band():
    assert band_edges(512) == [0, 16, 32, 64, 128, 256, 512]
    assert band_edges(64) == [0, 16, 32, 64]
    assert band_edges(10) == [0, 10]


def test_the_loss_asks_for_movement_not_for_its_timing():
    edges = band_edges(BINS)
    strums = _strums(8)
    late = _strums(8, offset=3)  # the same pattern three frames later
    smooth = np.repeat(strums.mean(axis=2, keepdims=True), FRAMES, axis=2)  # L1's blur: the mean level
    twice_as_fast = _strums(4)

    def loss(fake):
        return float(modulation_loss(fake, strums, edges)[0])

    assert loss(strums) == 0.0
    assert loss(late) < 0.1 * loss(smooth)  # shifted: nearly free (the taper makes it not exactly 0)
    assert np.abs(late - strums).mean() > np.abs(smooth - strums).mean()  # whereas L1 prefers the blur
    # the smooth output pays the true modulation in full
    np.testing.assert_allclose(loss(smooth), float(tf.reduce_mean(modulation_spectrum(strums, edges))), rtol=1e-5)
    assert loss(twice_as_fast) > 0.3 * loss(smooth)  # the wrong rate is not the right movement


def test_the_loss_has_a_gradient_towards_movement():
    edges = band_edges(BINS)
    strums = _strums(8)
    fake = tf.Variable(np.repeat(strums.mean(axis=2, keepdims=True), FRAMES, axis=2)
                       + np.random.default_rng(0).normal(0, 1e-3, strums.shape).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(modulation_loss(fake, strums, edges))
    grad = tape.gradient(loss, fake).numpy()
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0
    assert modulation_spectrum(fake, edges).shape == (1, len(edges) - 1, FRAMES // 2)


def test_training_with_the_dynamics_loss_reports_it_and_lowers_it(tmp_path, tiny_config, fixed_batch):
    overrides = {"train.learning_rate": 1e-3, "train.dynamics_weight": 1000.0, "train.l1_weight": 1.0}
    dynamics = loss_trajectory(tmp_path / "run", tiny_config.override(**overrides), fixed_batch, "g_dynamics")
    assert dynamics[0] > 0 and np.mean(dynamics[-5:]) < 0.7 * np.mean(dynamics[:5]), dynamics
    plain = loss_trajectory(tmp_path / "plain", tiny_config, fixed_batch, "g_dynamics", steps=1)
    assert plain == [0.0]  # weight 0: not computed
