"""The chroma (harmony) training loss: known answers on rendered chords, gradients, and its use in training."""

import keras
import numpy as np
import tensorflow as tf

from kgan.config import Config
from kgan.harmonic_loss import chroma_loss, chroma_matrix
from kgan.spectrogram import Spectrogram
from tests.conftest import loss_trajectory

RATE = 22050
# mid-register triads (C4, G3, A3 roots): below ~200 Hz a 21.5 Hz bin spans more than a semitone
C_MAJOR, G_MAJOR, A_MINOR = (60, 64, 67), (55, 59, 62), (57, 60, 64)


def _chords(*chords, seconds=0.75):
    """Normalised model image ``[1, F, T, 1]`` of organ-like chords (4 harmonics per note) played in turn."""
    t = np.arange(int(seconds * RATE)) / RATE
    parts = []
    for notes in chords:
        x = sum(0.1 / h * np.sin(2 * np.pi * h * 440.0 * 2 ** ((n - 69) / 12) * t) for n in notes for h in range(1, 5))
        parts.append(x)
    spec = Spectrogram(Config().stft)
    image = spec.to_model(tf.constant(np.concatenate(parts), tf.float32))  # [T, F]
    return tf.transpose(image)[None, :, :, None]


def _loss(fake, target):
    cfg = Config().stft
    matrix = chroma_matrix(RATE, cfg.n_fft, cfg.n_fft // 2)
    return float(chroma_loss(fake, target, matrix, cfg.db_floor, cfg.db_ceiling)[0])


def test_chroma_matrix_maps_a_bin_to_its_pitch_class_and_ignores_bins_outside_the_range():
    m = chroma_matrix(RATE, 1024, 512)
    a440 = round(440 * 1024 / RATE)  # bin 20 = 430.7 Hz, nearest A
    assert np.argmax(m[a440]) == 9
    assert m[0].sum() == 0 and m[511].sum() == 0  # DC and 11 kHz: no pitch class


def test_known_answers_on_rendered_chord_changes():
    progression = _chords(C_MAJOR, G_MAJOR, A_MINOR, C_MAJOR)
    assert _loss(progression, progression) < 1e-4
    # the same chords in another order: right key, wrong changes
    reordered = _chords(G_MAJOR, A_MINOR, C_MAJOR, G_MAJOR)
    # a drone: the progression's mean spectrum in every frame (right key, no motion)
    drone = tf.reduce_mean(progression, axis=2, keepdims=True) + 0 * progression
    # the right changes in another voicing (one octave up) cost little
    octave = _chords(*[tuple(n + 12 for n in c) for c in (C_MAJOR, G_MAJOR, A_MINOR, C_MAJOR)])
    assert _loss(octave, progression) < 0.3
    assert 0.8 < _loss(drone, progression) < 1.5  # motion term ~1, fit term small
    assert _loss(reordered, progression) > 1.2
    assert _loss(octave, progression) < _loss(drone, progression) < _loss(reordered, progression)


def test_silent_target_gives_zero_and_the_gradient_is_finite_and_nonzero():
    progression = _chords(C_MAJOR, G_MAJOR)
    silence = -tf.ones_like(progression)
    assert _loss(progression, silence) == 0.0
    fake = tf.Variable(tf.reduce_mean(progression, axis=2, keepdims=True) + 0 * progression)
    cfg = Config().stft
    matrix = chroma_matrix(RATE, cfg.n_fft, cfg.n_fft // 2)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(chroma_loss(fake, progression, matrix, cfg.db_floor, cfg.db_ceiling))
    grad = tape.gradient(loss, fake).numpy()
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0


def test_training_with_the_chroma_loss_reports_it_and_lowers_it(tmp_path, tiny_config, fixed_batch):
    overrides = {"train.learning_rate": 1e-3, "train.chroma_weight": 10.0, "train.l1_weight": 1.0}
    chroma = loss_trajectory(tmp_path / "run", tiny_config.override(**overrides), fixed_batch, "g_chroma")
    assert chroma[0] > 0.2 and np.mean(chroma[-5:]) < 0.7 * np.mean(chroma[:5]), chroma
    plain = loss_trajectory(tmp_path / "plain", tiny_config, fixed_batch, "g_chroma", steps=1)
    assert plain == [0.0]  # weight 0: not computed


def test_segment_reference_scores_a_window_s_chord_against_the_segment_s_harmony():
    from kgan.harmonic_loss import chroma_distances, reference_chroma, spectrogram_chroma

    cfg = Config().stft
    matrix = chroma_matrix(RATE, cfg.n_fft, cfg.n_fft // 2)
    segment = _chords(C_MAJOR, G_MAJOR, A_MINOR, C_MAJOR)
    reference = reference_chroma(tf.transpose(segment[0, :, :, 0]), matrix, cfg.db_floor, cfg.db_ceiling)
    whole, _ = spectrogram_chroma(segment, matrix, cfg.db_floor, cfg.db_ceiling)
    np.testing.assert_allclose(reference.numpy(), whole[0].numpy().mean(axis=0), atol=0.02)  # every frame is loud
    window = segment[:, :, 10:50]  # inside the first C major
    c_major, g_major = _chords(C_MAJOR)[:, :, 10:50], _chords(G_MAJOR)[:, :, 10:50]
    drone = tf.reduce_mean(segment, axis=2, keepdims=True) + 0 * window

    def motion(fake, **kw):
        return float(chroma_distances(fake, window, matrix, cfg.db_floor, cfg.db_ceiling, **kw)[1][0])

    assert motion(c_major) < 1e-3 < 1.0 < motion(g_major)  # its own mean: the in-chord wobble decides
    assert abs(motion(drone) - 1.0) < 0.01  # and a drone has no deviation at all: chance
    ref = reference[None]
    assert motion(c_major, reference=ref) < 0.1  # the right chord moves the right way from the segment's mean
    assert motion(g_major, reference=ref) > 1.0  # another chord of the key, the wrong way
    assert 0.6 < motion(drone, reference=ref) < motion(g_major, reference=ref)


def test_training_with_the_segment_reference_feeds_each_window_its_segment_chroma(tmp_path, tiny_config, tiny_data):
    from kgan.dataset import windows_dataset
    from kgan.training import Trainer, make_strategy

    cfg = tiny_config.override(**{"train.chroma_weight": 10.0, "train.chroma_reference": "segment"})
    vocal, target, style, reference = next(iter(windows_dataset(tiny_data, "train", cfg, 4, segment_reference=True)))
    assert reference.shape == (4, 12) and style.shape == (4,) and int(tf.reduce_max(tf.abs(style))) == 0
    norms = tf.norm(reference, axis=-1).numpy()
    assert np.all((norms > 0.3) & (norms <= 1.0 + 1e-5)), norms  # a mean of unit chroma vectors
    keras.utils.set_random_seed(1)
    trainer = Trainer(cfg, str(tmp_path / "run"), make_strategy(1))
    batches = iter(trainer.dataset(tiny_data))
    chroma = [float(trainer.train_step(next(batches))["g_chroma"]) for _ in range(2)]
    assert all(np.isfinite(chroma)) and chroma[0] > 0
