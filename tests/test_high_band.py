"""The octave above the model's band: replicated, fitted, exported, served."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from kgan.config import Config
from kgan.high_band import SUB_BANDS, HighBand, band_edges, fit_gains, skip_bins
from tests.conftest import REAL_MP3, generate_served_and_local

RATE = 22050


def _lowpassed_noise(seconds: float, rate: int, cutoff: float, seed: int = 0) -> np.ndarray:
    """White noise with nothing above ``cutoff`` Hz (an ideal FFT low-pass), unit standard deviation."""
    n = int(seconds * rate)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    spectrum[np.fft.rfftfreq(n, 1 / rate) > cutoff] = 0
    x = np.fft.irfft(spectrum, n)
    return (x / x.std()).astype(np.float32)


def _band_power_db(x: np.ndarray, rate: int, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / rate)
    return float(10 * np.log10(spectrum[(f >= low) & (f < high)].sum() + 1e-20))


def _take_band_down(x: np.ndarray) -> np.ndarray:
    """A 2R signal's band below R/2, at R (ideal low-pass, then every other sample)."""
    spectrum = np.fft.rfft(x)
    spectrum[len(x) // 4 + 1 :] = 0
    return np.fft.irfft(spectrum, len(x))[::2]


def test_the_band_below_is_kept_and_the_octave_above_is_copied_up():
    stft = Config().stft
    t = np.arange(3 * RATE) / RATE
    y = (0.05 * _lowpassed_noise(3, RATE, 10000) + 0.3 * np.sin(2 * np.pi * 7000 * t)).astype(np.float32)
    silent = HighBand(stft, -60 * np.ones((1, SUB_BANDS)))(y[None]).numpy()[0]
    assert silent.shape == (2 * len(y),)
    inner = slice(2048, -2048)
    np.testing.assert_allclose(_take_band_down(silent)[inner], y[inner], atol=1e-3)  # nothing below R/2 moved

    out = HighBand(stft, np.zeros((1, SUB_BANDS)))(y[None]).numpy()[0]
    bin_hz = RATE / stft.n_fft
    k, s = stft.n_fft // 2, skip_bins(stft)
    for shift in (k // 2 + s, k + s):  # the 7 kHz tone, copied up by each copy's shift
        f = 7000 + shift * bin_hz
        assert f > RATE / 2
        copied = _band_power_db(out, 2 * RATE, f - 30, f + 30)
        source = _band_power_db(silent, 2 * RATE, 7000 - 30, 7000 + 30)
        assert abs(copied - source) < 1.0, (f, copied, source)  # at unit gain, as loud as its source
        quiet = _band_power_db(silent, 2 * RATE, f - 30, f + 30)
        assert quiet < source - 50  # and where the gains say -60 dB, 50 dB down at least


def test_a_generated_silence_is_not_copied_up():
    stft = Config().stft
    band = HighBand(stft, np.zeros((1, SUB_BANDS)))
    noise = _lowpassed_noise(3, RATE, 10000)
    per_bin = np.sqrt(6 / stft.n_fft)  # a unit-deviation white noise's magnitude a bin, on the full-scale scale
    at_floor = noise * 10 ** (stft.db_floor / 20) / per_bin  # noise at the spectrogram's floor: silence
    louder = at_floor * 10 ** (30 / 20)  # the same noise 30 dB up: music

    def high(x):
        return _band_power_db(band(x[None]).numpy()[0], 2 * RATE, 11500, 21000)

    assert high(louder) - high(at_floor) > 30 + 15  # the floor's copy is gone, the music's is not


def test_fitted_gains_have_known_answers():
    stft = Config().stft
    full = _lowpassed_noise(6, 2 * RATE, 2 * RATE)  # white up to 22.05 kHz
    low = _take_band_down(full)
    gains = fit_gains([(low, full)], stft)
    assert len(gains) == SUB_BANDS and max(abs(g) for g in gains) < 1.0, gains  # white copied: 0 dB
    dull = _lowpassed_noise(6, 2 * RATE, RATE / 2)  # nothing above the model's band
    dull_gains = fit_gains([(_take_band_down(dull), dull)], stft)
    # only the window's leakage from just below R/2 is left above it: the lowest sub-band -20 dB, the rest less
    assert dull_gains[0] < -15 and max(dull_gains[1:]) < -45 and min(dull_gains) >= -60, dull_gains


def test_each_style_gets_its_own_gains_and_bad_settings_are_refused():
    stft = Config().stft
    y = _lowpassed_noise(2, RATE, 10000)[None]
    band = HighBand(stft, [[-60.0] * SUB_BANDS, [0.0] * SUB_BANDS])
    quiet, loud = (band(y, np.array([i], np.int32)).numpy()[0] for i in (0, 1))
    assert _band_power_db(loud, 2 * RATE, 12000, 20000) - _band_power_db(quiet, 2 * RATE, 12000, 20000) > 50
    assert band_edges(512).tolist() == list(range(0, 513, 64))
    with pytest.raises(ValueError, match="8 per style"):
        HighBand(stft, [0.0] * 3)
    with pytest.raises(ValueError, match="n_fft"):
        HighBand(Config().stft.__class__(n_fft=1000, hop_length=250), [0.0] * SUB_BANDS)


def test_blocks_of_frames_give_the_whole_signals_output():
    stft = Config().stft
    gains = np.random.default_rng(0).uniform(-30.0, 5.0, (2, SUB_BANDS))
    y = np.stack([_lowpassed_noise(1.3, RATE, 10000, seed=s) for s in (1, 2)])
    whole = HighBand(stft, gains, block_frames=10_000)
    assert whole.block_frames > whole.low.num_frames(y.shape[1])  # one block: the whole signal at once
    ids = np.array([1, 0], np.int32)
    reference = whole(y, ids).numpy()
    assert reference.shape == (2, 2 * y.shape[1])
    for block in (1, 7, 40):
        np.testing.assert_allclose(HighBand(stft, gains, block_frames=block)(y, ids).numpy(), reference, rtol=0,
                                   atol=1e-6)
    with pytest.raises(ValueError, match="block_frames"):
        HighBand(stft, gains, block_frames=0)


@pytest.fixture(scope="module")
def doubled_corpus(tmp_path_factory, tiny_config):
    """A corpus at twice the tiny model's rate: white-noise accompaniments (style "piano"), in train."""
    root = tmp_path_factory.mktemp("corpus-2x")
    rate = 2 * tiny_config.audio.sample_rate
    names = [f"song{i}" for i in range(2)]
    for i, name in enumerate(names):
        os.makedirs(root / name)
        sf.write(root / name / "accompaniment.wav", 0.1 * _lowpassed_noise(4, rate, rate, seed=i), rate)
        sf.write(root / name / "vocals.wav", 0.1 * _lowpassed_noise(4, rate, 2000, seed=10 + i), rate)
        (root / name / "song.json").write_text(json.dumps({"style": "piano"}))
    (root / "splits.json").write_text(json.dumps({"train": names, "val": [], "test": []}))
    (root / "corpus.json").write_text(json.dumps({"sample_rate": rate}))
    return str(root)


@pytest.mark.slow
def test_an_export_with_a_high_band_generates_at_twice_the_rate_locally_and_served(
        run_dir, doubled_corpus, tiny_config, tmp_path):
    from kgan.export import export, export_meta, forbidden_ops
    from kgan.generation import LocalModel

    base = str(tmp_path / "exports")
    path = export(run_dir[0], base, griffin_lim_iters=4, high_band=doubled_corpus)
    assert forbidden_ops(path) == []
    meta = export_meta(path)["high_band"]
    assert meta["rate"] == 2 * tiny_config.audio.sample_rate and meta["songs"]["any"] == 2
    assert max(abs(g) for g in meta["gains_db"]["any"]) < 1.5  # white noise: copies as loud as the truth
    model = LocalModel(path)
    assert (model.sample_rate, model.output_rate) == (tiny_config.audio.sample_rate, 2 * tiny_config.audio.sample_rate)
    assert model.saved_model.signatures["metadata"](probe=np.zeros(1, np.float32))["output_sample_rate"].numpy()[0] \
        == 2 * tiny_config.audio.sample_rate
    assert model(np.zeros((1, 1000), np.float32)).shape == (1, 2000)

    others = str(tmp_path / "others")
    again = export(path, others)  # exported again: the high band is kept, unless turned off
    assert export_meta(again)["high_band"] == export_meta(path)["high_band"]
    assert export_meta(export(path, others, high_band="off"))["high_band"] is None
    with pytest.raises(ValueError, match="needs songs at 16000 Hz"):
        export(run_dir[0], others, high_band=_half_rate(tmp_path))

    generate_served_and_local(base, tmp_path)  # served over gRPC = local, at twice the rate
    vocal_seconds = sf.info(REAL_MP3).duration
    for suffix in ("_accompaniment.wav", "_remix.wav"):
        info = sf.info(str(tmp_path / "local" / ("slow-motion-dream-excerpt" + suffix)))
        assert info.samplerate == 2 * tiny_config.audio.sample_rate
        assert abs(info.duration - vocal_seconds) < 0.01
    written, rate = sf.read(str(tmp_path / "local" / "slow-motion-dream-excerpt_accompaniment.wav"))
    assert _band_power_db(written, rate, rate / 4 + 200, rate / 2) > _band_power_db(written, rate, 0, rate / 2) - 40


def _half_rate(tmp_path) -> str:
    """A corpus folder that says it was rendered at the model's own rate (too low for a high band)."""
    root = tmp_path / "corpus-1x"
    root.mkdir()
    (root / "corpus.json").write_text(json.dumps({"sample_rate": 8000}))
    (root / "splits.json").write_text(json.dumps({"train": []}))
    return str(root)
