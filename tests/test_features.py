import numpy as np
import pytest
import tensorflow as tf

from kgan.config import Config, get_preset
from kgan.features import VocalFeatures, f0_axis, harmonic_matrix
from kgan.spectrogram import Spectrogram

# the real geometry: 22.05 kHz, 512 bins, 8 salience rows per semitone; the salience image alone
CONFIG = get_preset("default").override(**{"model.vocal_input": "salience"})
RATE = CONFIG.audio.sample_rate
NOTE_SECONDS = 0.4
MELODY = [57, 60, 62, 64, 67, 65, 64, 62, 60]


def _envelope_bright(f):  # sawtooth-like: every harmonic, falling 6 dB per octave
    return 200.0 / f


def _envelope_vowel(f):  # a vowel: two formants, a weak fundamental
    return np.exp(-(((f - 700.0) / 200.0) ** 2)) + 0.5 * np.exp(-(((f - 2500.0) / 300.0) ** 2)) + 0.01


def _sing(midis, envelope):
    out = []
    t = np.arange(int(NOTE_SECONDS * RATE)) / RATE
    for m in midis:
        f0 = 440.0 * 2 ** ((m - 69) / 12)
        x = sum(envelope(h * f0) * np.sin(2 * np.pi * h * f0 * t + h) for h in range(1, 40) if h * f0 < RATE / 2)
        out.append(0.3 * x / np.max(np.abs(x)))
    return np.concatenate(out).astype(np.float32)


def _images(wave):
    spec = Spectrogram(CONFIG.stft)
    x = tf.transpose(spec.to_model(wave[None]), [0, 2, 1])[..., None]  # (1, F, T, 1)
    return x.numpy()[0, ..., 0], VocalFeatures.from_kgan_config(CONFIG)(x).numpy()[0]


def _exported_ops_outside_core(layer, path):
    """Save ``layer`` alone as a SavedModel (any batch and frame count) and list its ops stock TF Serving lacks."""
    from kgan.export import forbidden_ops

    class Wrapped(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 512, None, 1], tf.float32)])
        def __call__(self, x):
            return layer(x)

    tf.saved_model.save(Wrapped(), str(path))
    return forbidden_ops(str(path))


def _steady_frames(n_frames):
    """Frames well inside a note (two frames clear of every note change)."""
    per_note = NOTE_SECONDS * RATE / CONFIG.stft.hop_length
    t = np.arange(n_frames)
    pos = (t + 3) % per_note  # forward() pads n_fft - hop in front: frame t is centred ~1.5 frames early
    return (pos > 2) & (pos < per_note - 2) & (t < per_note * len(MELODY) - 2)


def test_two_timbres_singing_one_melody_give_nearly_the_same_image():
    spec_a, feat_a = _images(_sing(MELODY, _envelope_bright))
    spec_b, feat_b = _images(_sing(MELODY, _envelope_vowel))
    steady = _steady_frames(feat_a.shape[1])
    f0_a, f0_b = feat_a[:, steady, 0].argmax(0), feat_b[:, steady, 0].argmax(0)
    # Tolerance: the F0 ridge within a quarter semitone (2 rows) in >= 90 % of steady frames...
    assert np.mean(np.abs(f0_a - f0_b) <= 2) >= 0.9
    # ... and at the sung pitch: C4 is 36 semitones above the axis' A1 (55 Hz).
    per_semitone = CONFIG.stft.num_bins // 64
    expected = np.repeat([(m - 33) * per_semitone for m in MELODY], 1)
    assert np.median(np.abs(f0_a - np.interp(np.arange(len(f0_a)), np.linspace(0, len(f0_a) - 1, len(MELODY)),
                                             expected))) <= 1.5 * per_semitone
    # The whole pitch image differs far less between the timbres than the spectrograms do.
    feature_gap = np.abs(feat_a[:, steady, 0] - feat_b[:, steady, 0]).mean()
    spectrogram_gap = np.abs(spec_a[:, steady] - spec_b[:, steady]).mean()
    assert feature_gap < 0.3 * spectrogram_gap, (feature_gap, spectrogram_gap)


def test_a_transposition_shifts_the_image_by_its_interval():
    _, low = _images(_sing(MELODY, _envelope_bright))
    _, high = _images(_sing([m + 3 for m in MELODY], _envelope_bright))
    steady = _steady_frames(low.shape[1])
    shift = high[:, steady, 0].argmax(0) - low[:, steady, 0].argmax(0)
    assert np.median(shift) == 3 * CONFIG.stft.num_bins // 64


def test_silence_is_the_floor_in_every_channel_and_values_stay_in_range():
    layer = VocalFeatures.from_kgan_config(CONFIG)
    silent = layer(-tf.ones([2, 512, 128, 1])).numpy()
    assert silent.shape == (2, 512, 128, 3)
    np.testing.assert_allclose(silent, -1.0, atol=1e-5)
    noisy = layer(tf.random.uniform([2, 512, 128, 1], -1.0, 1.0, seed=1)).numpy()
    assert noisy.min() >= -1.0 - 1e-6 and noisy.max() <= 1.0 + 1e-6


def test_f0_axis_and_harmonic_matrix():
    f0 = f0_axis(512)
    assert f0[0] == pytest.approx(55.0) and f0[96] == pytest.approx(110.0)  # 8 rows a semitone
    plain = harmonic_matrix(512, RATE / 1024, contrast=0.0)
    assert plain.shape == (512, 512) and plain.min() >= 0
    np.testing.assert_allclose(plain.sum(axis=0), 1.0, rtol=1e-5)  # every candidate weighs its harmonics alike
    contrast = harmonic_matrix(512, RATE / 1024)
    np.testing.assert_allclose(contrast.sum(axis=0)[:300], 0.5, atol=0.02)  # half-harmonics take back half
    with pytest.raises(ValueError, match="divisible by 64"):
        f0_axis(100)


def test_models_carry_the_feature_layer_and_old_configs_keep_the_raw_input():
    from kgan.models import PatchGANDiscriminator, UNetGenerator

    tiny = get_preset("tiny")
    g = UNetGenerator.from_kgan_config(tiny)
    assert g.get_layer("vocal_features").kind == "comb"  # the default
    assert UNetGenerator.from_config(g.get_config()).get_layer("vocal_features").out_channels == 4
    d = PatchGANDiscriminator.from_kgan_config(tiny)
    assert d.get_layer("vocal_features").kind == "comb"
    raw = UNetGenerator.from_kgan_config(tiny.override(**{"model.vocal_input": "spectrogram"}))
    assert "vocal_features" not in [layer.name for layer in raw.layers]
    # A config written before the field and the augment section existed means the old behaviour.
    old = tiny.to_dict()
    del old["model"]["vocal_input"], old["augment"], old["train"]["chroma_weight"]
    restored = Config.from_dict(old)
    assert restored.model.vocal_input == "spectrogram" and not restored.augment.enabled
    assert restored.train.chroma_weight == 0.0  # and no harmony loss
    with pytest.raises(ValueError, match="model.vocal_input must be one of"):
        tiny.override(**{"model.vocal_input": "chroma"})


def test_the_comb_renders_the_sung_pitch_on_the_linear_axis_whatever_the_timbre():
    comb_config = get_preset("default")  # comb is the default
    layer = VocalFeatures.from_kgan_config(comb_config)
    spec = Spectrogram(CONFIG.stft)

    def comb(wave):
        x = tf.transpose(spec.to_model(wave[None]), [0, 2, 1])[..., None]
        out = layer(x).numpy()[0]
        assert out.shape[-1] == 4 and out.min() >= -1.0 - 1e-6 and out.max() <= 1.0 + 1e-6
        return out[..., 0], out[..., 1:]

    bright, rest = comb(_sing(MELODY, _envelope_bright))
    vowel, _ = comb(_sing(MELODY, _envelope_vowel))
    steady = _steady_frames(bright.shape[1])
    _, salience = _images(_sing(MELODY, _envelope_bright))
    np.testing.assert_allclose(rest, salience, atol=1e-5)  # channels 1-3 are the salience image
    # its peaks sit at the sung note's harmonics: the first note, A3 = 220 Hz, in bins of 21.5 Hz
    first = np.flatnonzero(steady)[:5]
    peaks = set(np.argsort(bright[:, first].mean(axis=1))[-6:].tolist())
    assert {10, 20, 31} <= {round(p) for p in peaks} | {p + 1 for p in peaks} | {p - 1 for p in peaks}
    # one fixed rendering: two timbres give far closer combs than spectrograms
    spec_a, _ = _images(_sing(MELODY, _envelope_bright))
    spec_b, _ = _images(_sing(MELODY, _envelope_vowel))
    assert np.abs(bright - vowel)[:, steady].mean() < 0.3 * np.abs(spec_a - spec_b)[:, steady].mean()
    silent = layer(-tf.ones([1, 512, 128, 1])).numpy()
    np.testing.assert_allclose(silent, -1.0, atol=1e-5)


def test_track_gives_one_pitch_class_whatever_the_timbre_and_octave_and_exports_with_core_ops(tmp_path):
    track_config = get_preset("default").override(**{"model.vocal_input": "track"})
    track = VocalFeatures.from_kgan_config(track_config)
    comb = VocalFeatures.from_kgan_config(get_preset("default"))
    spec = Spectrogram(CONFIG.stft)

    def planes(layer, wave):
        return layer(tf.transpose(spec.to_model(wave[None]), [0, 2, 1])[..., None]).numpy()[0]

    def cosine(a, b):  # per frame, on [0, 2] so silence counts as zero
        a, b = a + 1.0, b + 1.0
        return float(np.mean(np.sum(a * b, 0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0))))

    high = _sing(MELODY, _envelope_vowel)
    low = _sing([m - 12 for m in MELODY], _envelope_bright)  # another timbre, an octave lower
    steady = _steady_frames(planes(track, high).shape[1])
    t_high, t_low = planes(track, high), planes(track, low)
    assert t_high.shape[-1] == 3 and t_high.min() >= -1 - 1e-6 and t_high.max() <= 1 + 1e-6
    # Tolerance: the two singers' pitch planes have a cosine >= 0.9 per steady frame on average, while the
    # comb (the F0's harmonics, so octave-bound) falls below 0.75 on the same pair.
    same = cosine(t_high[:, steady, 0], t_low[:, steady, 0])
    assert same >= 0.9, same
    assert cosine(planes(comb, high)[:, steady, 0], planes(comb, low)[:, steady, 0]) < min(0.75, same - 0.15)
    # the first note, A3 (220 Hz): its pitch class at every octave, in bins of 21.5 Hz: 110, 220, 440, 880 Hz
    first_note = np.flatnonzero(steady & (np.arange(len(steady)) < NOTE_SECONDS * RATE / CONFIG.stft.hop_length))

    def level(plane, hz):  # the median over the first note of the two bins around hz
        median = np.median(plane[:, first_note], axis=1)
        b = hz / (RATE / CONFIG.stft.n_fft)
        return max(median[int(b)], median[int(b) + 1])

    for hz in (110.0, 220.0, 440.0, 880.0):
        assert level(t_high[..., 0], hz) > 0.0  # above the plane's midpoint
    assert level(t_high[..., 0], 330.0) < -0.9  # E, the third harmonic's pitch class: nothing
    # a transposition by 3 semitones moves every partial by 2**(3/12)
    moved = planes(track, _sing([m + 3 for m in MELODY], _envelope_vowel))[..., 0]
    assert level(moved, 440.0 * 2 ** 0.25) > 0.0 and level(moved, 440.0) < -0.9
    np.testing.assert_allclose(track(-tf.ones([1, 512, 128, 1])).numpy(), -1.0, atol=1e-5)  # silence: the floor

    assert _exported_ops_outside_core(track, tmp_path / "track") == []


def test_chords_plane_names_the_triad_of_the_sung_chord_tones_whatever_the_voice_and_exports(tmp_path):
    chords = VocalFeatures.from_kgan_config(get_preset("default").override(**{"model.vocal_input": "chords"}))
    spec = Spectrogram(CONFIG.stft)
    bin_hz = RATE / CONFIG.stft.n_fft

    def planes(wave):  # one 128-frame window, as the generator sees it
        x = tf.transpose(spec.to_model(wave[None]), [0, 2, 1])[..., None][:, :, :128]
        return chords(x).numpy()[0]

    def triad(plane):  # the pitch classes the middle frames' chord plane lights, read at 500-2500 Hz
        level = []
        for pc in range(12):
            f = 440.0 * 2 ** ((pc - 69) / 12)
            while f < 500:
                f *= 2
            values = []
            while f < 2500:
                values.append(np.median(plane[int(round(f / bin_hz)), 40:90]))
                f *= 2
            level.append(np.mean(values))
        return set(np.flatnonzero(np.array(level) > -0.5).tolist())

    c_major = [60, 64, 67, 72]  # C E G C: the C major triad's tones, sung
    bright = planes(_sing(c_major, _envelope_bright))
    assert bright.shape == (512, 128, 4) and bright.min() >= -1 - 1e-6 and bright.max() <= 1 + 1e-6
    assert triad(bright[..., 0]) == {0, 4, 7}
    assert triad(planes(_sing(c_major, _envelope_vowel))[..., 0]) == {0, 4, 7}  # another voice
    assert triad(planes(_sing([m - 12 for m in c_major], _envelope_bright))[..., 0]) == {0, 4, 7}  # an octave down
    assert triad(planes(_sing([m + 7 for m in c_major], _envelope_vowel))[..., 0]) == {7, 11, 2}  # G major
    assert triad(planes(_sing([57, 60, 64, 69], _envelope_bright))[..., 0]) == {9, 0, 4}  # A C E A: A minor
    track = VocalFeatures.from_kgan_config(get_preset("default").override(**{"model.vocal_input": "track"}))
    x = tf.transpose(spec.to_model(_sing(c_major, _envelope_bright)[None]), [0, 2, 1])[..., None][:, :, :128]
    np.testing.assert_allclose(bright[..., 1:], track(x).numpy()[0], atol=1e-6)  # then the track's planes
    np.testing.assert_allclose(chords(-tf.ones([1, 512, 128, 1])).numpy(), -1.0, atol=1e-5)  # silence: the floor

    assert _exported_ops_outside_core(chords, tmp_path / "chords") == []
