import librosa
import numpy as np
import pytest
import tensorflow as tf

from kgan.config import STFTConfig
from kgan.spectrogram import Spectrogram, integrated_phase, lobe_peaks, overlap_add, spectral_convergence
from tests.conftest import tone


@pytest.fixture(scope="module")
def spec():
    return Spectrogram(STFTConfig(n_fft=512, hop_length=128))


@pytest.mark.parametrize("length", [1, 100, 383, 384, 512, 4096, 8001])
def test_round_trip_is_exact_over_every_sample(spec, length):
    x = np.random.default_rng(length).uniform(-1, 1, size=(2, length)).astype(np.float32)
    stft = spec.forward(x)
    assert stft.shape == (2, spec.num_frames(length), 257)
    y = spec.inverse(stft, length).numpy()
    assert y.shape == x.shape
    assert np.max(np.abs(y - x)) < 1e-5


@pytest.mark.parametrize("shape, step", [((3, 5, 8), 2), ((2, 7, 9), 3), ((1, 0, 8), 4), ((6, 10), 7),
                                         ((2, 3, 4, 128), 112), ((1, 1, 5), 5), ((2, 4, 6), 9)])
def test_overlap_add_is_tensorflows_own(shape, step):
    frames = np.random.default_rng(len(shape) + step).standard_normal(shape).astype(np.float32)
    ours = overlap_add(frames, step).numpy()
    theirs = tf.signal.overlap_and_add(frames, step).numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    assert np.abs(ours).max(initial=0) > 0 or shape[-2] == 0


def test_the_inverse_is_tensorflows_inverse_stft(spec):
    x = np.random.default_rng(3).uniform(-1, 1, size=(2, 5000)).astype(np.float32)
    stft = spec.forward(x) * tf.complex(tf.random.uniform([2, spec.num_frames(5000), 257], 0.5, 2.0, seed=1), 0.0)
    theirs = tf.signal.inverse_stft(stft, 512, 128, fft_length=512, window_fn=spec._inverse_window_fn)
    ours = spec.synthesise(stft)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(spec.inverse(stft, 5000).numpy(), ours.numpy()[:, spec.pad : spec.pad + 5000])


@pytest.mark.parametrize("frames", [4, 32, 128])
def test_num_samples_is_the_longest_waveform_with_that_many_frames(spec, frames):
    n = spec.num_samples(frames)
    assert spec.num_frames(n) == frames and spec.num_frames(n + 1) == frames + 1
    assert spec.forward(np.zeros(n, np.float32)).shape[0] == frames


def test_plain_tf_signal_gets_the_edges_wrong(spec):
    """Why forward/inverse pad: without it the first n_fft - hop samples do not come back."""
    x = np.random.default_rng(0).uniform(-1, 1, 4096).astype(np.float32)
    window_fn = tf.signal.inverse_stft_window_fn(128)
    y = tf.signal.inverse_stft(tf.signal.stft(x, 512, 128), 512, 128, window_fn=window_fn).numpy()
    assert np.max(np.abs(y[: 512 - 128] - x[: 512 - 128])) > 1e-2


def test_forward_agrees_with_librosa_on_the_same_framing(spec):
    x = np.random.default_rng(1).normal(size=3000).astype(np.float32)
    padded = spec._padded(tf.constant(x)).numpy()
    reference = librosa.stft(padded, n_fft=512, hop_length=128, window="hann", center=False).T
    ours = spec.forward(x).numpy()
    assert ours.shape == reference.shape
    assert np.max(np.abs(ours - reference)) < 1e-4 * np.max(np.abs(reference))


def test_full_scale_sine_reads_zero_dbfs(spec):
    rate = 8000
    x = tone(1.0, rate, 1000.0, amp=1.0)  # 1000 Hz is exactly bin 64 of 512 at 8 kHz
    mag = spec.magnitude(spec.forward(x)).numpy()
    assert abs(mag[10, 64] - 1.0) < 1e-3


def test_normalise_maps_onto_exactly_minus_one_to_one_with_exact_inverse(spec):
    x = np.linspace(-1.0, 1.0, 1001, dtype=np.float32)
    back = spec.normalise(spec.denormalise(x)).numpy()
    np.testing.assert_allclose(back, x, atol=2e-6)
    mags = np.array([0.0, 1e-9, spec.floor_magnitude, 1.0, 10 ** (10 / 20), 1e3], np.float32)
    y = spec.normalise(mags).numpy()
    assert y.min() == -1.0 and y.max() == 1.0
    np.testing.assert_allclose(y, [-1.0, -1.0, -1.0, 2 * 80 / 90 - 1, 1.0, 1.0], atol=1e-6)


def test_silence_floor_is_a_value_the_generator_can_produce(spec):
    silence = spec.to_model(np.zeros((1, 2048), np.float32)).numpy()
    assert np.all(silence == -1.0)
    tanh_min = tf.math.tanh(tf.constant(-10.0, tf.float32)).numpy()
    assert tanh_min == -1.0  # float32 tanh reaches the floor exactly
    assert spec.normalise(spec.denormalise(tanh_min)).numpy() == -1.0


def test_normalisation_is_global_not_per_crop(spec):
    """A quiet crop must stay quiet: the same magnitude always maps to the same value."""
    x = tone(2.0, 8000, 440.0, 0.5)
    whole = spec.to_model(x).numpy()
    quiet = spec.to_model(0.01 * x).numpy()
    crop = spec.to_model(x[:4000]).numpy()
    np.testing.assert_allclose(crop[5:20], whole[5:20], atol=1e-5)  # interior frames of the crop
    assert quiet.max() < whole.max() - 0.5  # -34 dB is 0.76 lower on the 90 dB scale


def test_model_view_drops_and_restores_the_nyquist_bin(spec):
    x = tone(0.5, 8000, 300.0)
    m = spec.to_model(x)
    assert m.shape[-1] == 256
    mag = spec.from_model(m).numpy()
    assert mag.shape[-1] == 257
    np.testing.assert_allclose(mag[..., -1], spec.floor_magnitude, rtol=1e-5)
    np.testing.assert_allclose(mag[..., :-1], spec.magnitude(spec.forward(x)).numpy()[..., :-1].clip(spec.floor_magnitude),
                               rtol=1e-3, atol=1e-6)


def _music(rate=8000, seconds=2.0):
    t = np.arange(int(rate * seconds)) / rate
    x = sum(np.sin(2 * np.pi * f * t * (1 + 0.01 * np.sin(2 * np.pi * 3 * t))) / k
            for k, f in enumerate((220.0, 330.0, 440.0, 660.0), 1))
    return (0.2 * x * (1 + np.sin(2 * np.pi * 1.5 * t)) / 2).astype(np.float32)


def _griffin_lim_convergence(spec, x, **kwargs) -> float:
    """Spectral convergence of ``spec.griffin_lim(**kwargs)`` on ``x``'s own magnitudes."""
    target = spec.magnitude(spec.forward(x))
    y = spec.griffin_lim(target, len(x), **kwargs)
    return float(spectral_convergence(target, spec.magnitude(spec.forward(y))))


def test_griffin_lim_converges_and_fast_beats_plain(spec):
    x = _music()

    def sc(n_iter, momentum):
        return _griffin_lim_convergence(spec, x, n_iter=n_iter, momentum=momentum)

    fast = [sc(n, 0.99) for n in (2, 8, 32)]
    plain = sc(32, 0.0)
    assert fast[0] > fast[1] > fast[2]  # falls with iterations
    assert fast[2] < 0.75 * plain  # the momentum variant converges faster
    assert fast[2] < 0.2


def test_the_integrated_phase_starts_griffin_lim_far_closer(spec):
    x = _music()

    def sc(n_iter, initial):
        return _griffin_lim_convergence(spec, x, n_iter=n_iter, initial=initial)

    assert sc(0, "integrated") < 0.8 * sc(0, None)  # before any iteration: a phase vocoder vs noise
    for n_iter in (4, 16):
        assert sc(n_iter, "integrated") < sc(n_iter, None), n_iter  # and still ahead after iterating
    with pytest.raises(ValueError, match="'integrated'"):
        spec.griffin_lim(spec.magnitude(spec.forward(x)), len(x), n_iter=1, initial="zero")


def test_the_integrated_phase_locks_each_lobe_to_its_partial():
    # three steady sines between bins: a consistent phase needs every bin of a lobe to advance at the partial's
    # frequency, with neighbours pi apart; each bin's own parabola (a Hann window's lobe is not one) drifts
    spec = Spectrogram(STFTConfig(n_fft=1024, hop_length=256))
    t = np.arange(5 * 22050) / 22050
    x = sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in ((0.3, 220.7, 0), (0.2, 331.3, 1), (0.1, 1234.5, 2)))
    magnitude = spec.magnitude(spec.forward(x.astype(np.float32)))
    phase = integrated_phase(magnitude, spec.n_fft, spec.hop)
    y = spec.inverse(tf.complex(magnitude * tf.cos(phase), magnitude * tf.sin(phase)) * spec.scale, len(x))
    assert float(spectral_convergence(magnitude, spec.magnitude(spec.forward(y)))) < 0.06  # 0.45 unlocked
    peaks = lobe_peaks(magnitude).numpy()
    bin_of = round(331.3 / (22050 / 1024))
    assert set(peaks[200, bin_of - 2 : bin_of + 3]) == {bin_of}  # the lobe's bins climb to its peak


def test_griffin_lim_starts_from_a_complex_stfts_phase(spec):
    x = _music()
    stft = spec.forward(x)
    target = spec.magnitude(stft)
    for algorithm in ("fast", "accelerated"):  # the true phase is a fixed point: the signal comes back
        y = spec.griffin_lim(target, len(x), n_iter=3, initial=stft * 0.1, algorithm=algorithm).numpy()
        np.testing.assert_allclose(y, x, atol=2e-4)
    rotated = stft * tf.complex(0.0, 1.0)  # the same magnitudes, every phase turned a quarter: a quarter turn away
    y = spec.griffin_lim(target, len(x), n_iter=0, initial=rotated).numpy()
    np.testing.assert_allclose(y, spec.inverse(rotated, len(x)).numpy(), atol=2e-4)


def test_the_accelerated_algorithm_gets_further_in_as_many_iterations(spec):
    x = _music()

    def sc(n_iter, algorithm, initial="integrated"):
        return _griffin_lim_convergence(spec, x, n_iter=n_iter, initial=initial, algorithm=algorithm)

    for n_iter in (8, 12):  # (from the locked start, 4 of either get about as far: 0.196 against 0.204)
        assert sc(n_iter, "accelerated") < 0.95 * sc(n_iter, "fast"), n_iter
    assert sc(12, "accelerated", None) < sc(12, "fast", None)  # from a random phase too
    assert sc(12, "accelerated") < sc(4, "accelerated")  # and it keeps converging
    with pytest.raises(ValueError, match="'accelerated'"):
        spec.griffin_lim(spec.magnitude(spec.forward(x)), len(x), n_iter=1, algorithm="adam")


def test_griffin_lim_is_deterministic_and_batched(spec):
    x = np.stack([_music(), 0.5 * _music()])
    target = spec.magnitude(spec.forward(x))
    a = spec.griffin_lim(target, x.shape[-1], n_iter=4).numpy()
    b = spec.griffin_lim(target, x.shape[-1], n_iter=4).numpy()
    assert a.shape == x.shape
    np.testing.assert_array_equal(a, b)


def test_the_integrated_phase_keeps_its_precision_over_a_long_song():
    # a steady spectrum for 15 000 frames (about three minutes at hop 256): every frame advances each bin by the
    # same amount, so a rounding error per frame adds up instead of averaging out
    rng = np.random.default_rng(0)
    frame = np.exp(rng.normal(size=513)).astype(np.float32)
    magnitude = np.broadcast_to(frame, (1, 15000, 513))
    phase = integrated_phase(tf.constant(magnitude), 1024, 256).numpy()
    log = np.log(np.maximum(frame.astype(np.float64), 1e-7))
    low, high = np.r_[log[:1], log[:-1]], np.r_[log[1:], log[-1:]]
    curvature = low - 2 * log + high
    offset = np.where(curvature < -1e-3, 0.5 * (low - high) / np.minimum(curvature, -1e-3), 0.0)
    frequency = np.arange(513) + np.clip(offset, -2, 2)
    # each bin's local maximum, climbing to the higher neighbour (integrated_phase climbs 2 bins for the frequency
    # and 2 more for the phase; no slope of this frame is longer)
    peak = np.arange(513)
    for _ in range(8):
        left, right = frame[np.maximum(peak - 1, 0)], frame[np.minimum(peak + 1, 512)]
        left[peak == 0], right[peak == 512] = -1.0, -1.0
        here = frame[peak]
        peak = np.where((right > here) & (right >= left), peak + 1, np.where(left > here, peak - 1, peak))
    assert 20 < len(np.unique(peak)) < 400  # lobes of several bins
    expected = np.arange(15000)[:, None] * frequency[peak] * (2 * np.pi * 256 / 1024) + np.pi * np.arange(513)
    def apart(a, b):  # radians between two phases, modulo 2 pi
        return np.abs(np.angle(np.exp(1j * (a - b))))

    assert phase.shape == magnitude.shape
    assert apart(phase[0], expected).max() < 0.05  # the previous float32 product drifted by up to 1 rad here
    # a batch of two songs of another length (not a multiple of the block) gives each song's own phase
    short = np.stack([magnitude[0, :100], 2 * magnitude[0, :100]])
    both = integrated_phase(tf.constant(short), 1024, 256).numpy()
    assert apart(both[0], phase[0, :100]).max() < 1e-3
    assert apart(both[1], phase[0, :100]).max() < 1e-3  # a gain leaves the parabola's peak where it was


def test_griffin_lim_in_segments_matches_the_whole_song_and_leaves_no_seams(spec):
    x = _music(seconds=6.0)  # 378 frames: six segments of 96 frames, 64 apart
    target = spec.magnitude(spec.forward(np.stack([x, 0.5 * x])))
    whole = spec.griffin_lim(target, len(x), n_iter=16, initial="integrated")
    pieces = spec.griffin_lim_in_segments(target, len(x), n_iter=16, initial="integrated", segment=96, overlap=32)
    assert pieces.shape == (2, len(x))

    def error(y):  # spectral convergence per frame
        m = spec.magnitude(spec.forward(y)).numpy()
        return np.linalg.norm(target - m, axis=-1) / np.linalg.norm(target, axis=-1)

    assert float(np.mean(error(pieces))) < 1.05 * float(np.mean(error(whole)))
    # the frames where one segment fades into the next are as consistent as the whole song's there
    joins = np.concatenate([np.arange(k * 64 + 8, k * 64 + 24) for k in range(1, 5)])
    assert error(pieces)[:, joins].mean() < 1.05 * error(whole)[:, joins].mean()
    # segments with their own starting phases would cancel each other in the fades: the shared start matters
    alone = [spec.griffin_lim(target[:, s:s + 96], spec.num_samples(96), n_iter=16, initial="integrated").numpy()
             for s in (0, 64)]
    fade = np.clip((np.arange(spec.num_samples(96)) - 8 * 128) / (16 * 128), 0, 1)
    naive = alone[0] * (1 - np.clip((np.arange(len(fade)) - 72 * 128) / (16 * 128), 0, 1))
    naive[:, 64 * 128:] += (alone[1] * fade)[:, : naive.shape[1] - 64 * 128]
    region = slice(72 * 128, 88 * 128)
    assert np.sum(pieces.numpy()[:, region] ** 2) > 1.2 * np.sum(naive[:, region] ** 2)  # 1.55 here
    # no longer than a segment: the plain algorithm, exactly
    short = target[:, :96]
    np.testing.assert_array_equal(
        spec.griffin_lim_in_segments(short, spec.num_samples(96), n_iter=4, segment=96, overlap=32).numpy(),
        spec.griffin_lim(short, spec.num_samples(96), n_iter=4).numpy())
    with pytest.raises(ValueError, match="overlap"):
        spec.griffin_lim_in_segments(target, len(x), segment=96, overlap=16)
