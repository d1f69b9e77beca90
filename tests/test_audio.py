import os

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from kgan import audio
from tests.conftest import REAL_MP3, tone

RATE = 16000


@pytest.fixture(scope="module")
def stereo(tmp_path_factory):
    """The same 1 s stereo tone (right channel at half level) in every readable format."""
    folder = tmp_path_factory.mktemp("formats")
    left = tone(1.0, RATE, 440.0, 0.5)
    data = np.stack([left, 0.5 * left], axis=1)
    paths = {}
    for ext, subtype in ((".wav", "PCM_16"), (".flac", "PCM_16"), (".ogg", "VORBIS"), (".mp3", "MPEG_LAYER_III")):
        paths[ext] = str(folder / f"tone{ext}")
        sf.write(paths[ext], data, RATE, subtype=subtype)
    return paths, 0.75 * left


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg", ".mp3"])
def test_load_downmixes_and_resamples_every_format(stereo, ext):
    paths, mono = stereo
    x, rate = audio.load(paths[ext])
    assert rate == RATE and x.dtype == np.float32 and x.ndim == 1
    # lossy codecs add delay and padding; compare the level, and the samples for lossless ones
    assert abs(np.sqrt(np.mean(x**2)) - np.sqrt(np.mean(mono**2))) < 0.02
    if ext in (".wav", ".flac"):
        np.testing.assert_allclose(x, mono, atol=1e-4)
    y, rate = audio.load(paths[ext], sample_rate=8000)
    assert rate == 8000 and abs(len(y) - len(x) / 2) <= 1
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 8000 / len(y) - 440.0) < 2.0  # still a 440 Hz tone


def test_load_keeps_channels_when_asked(stereo):
    x, _ = audio.load(stereo[0][".wav"], mono=False)
    assert x.shape == (2, RATE)
    np.testing.assert_allclose(x[1], 0.5 * x[0], atol=1e-4)


def test_real_mp3_loads_at_any_rate():
    x, rate = audio.load(REAL_MP3, sample_rate=22050)
    assert rate == 22050 and 10.5 < len(x) / rate < 11.5
    assert 0.01 < np.sqrt(np.mean(x**2)) < 1.0


@pytest.mark.parametrize("ext, subtype", [(".wav", "FLOAT"), (".wav", "PCM_16"), (".flac", None)])
def test_write_then_read_round_trips(tmp_path, ext, subtype):
    x = tone(0.5, RATE, 300.0, 0.8)
    path = str(tmp_path / f"out{ext}")
    audio.write(path, x, RATE, subtype=subtype)
    y, rate = audio.load(path)
    assert rate == RATE
    np.testing.assert_allclose(y, x, atol=0 if subtype == "FLOAT" else 1e-4)
    assert [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")] == []


def test_write_rejects_other_formats(tmp_path):
    with pytest.raises(audio.AudioError, match=r"out.mp3: can only write .wav or .flac"):
        audio.write(str(tmp_path / "out.mp3"), np.zeros(10, np.float32), RATE)


def _bad_files(folder):
    cases = {}
    cases["empty"] = folder / "empty.wav"
    cases["empty"].write_bytes(b"")
    cases["text"] = folder / "notes.wav"
    cases["text"].write_text("these are lyrics, not audio\n" * 20)
    cases["zero"] = folder / "zero.wav"
    sf.write(cases["zero"], np.zeros((0,), np.float32), RATE)
    cases["nan"] = folder / "nan.wav"
    sf.write(cases["nan"], np.array([0.0, np.nan, 0.1] * 100, np.float32), RATE, subtype="FLOAT")
    cases["missing"] = folder / "missing.flac"
    return cases


@pytest.mark.parametrize(
    "case, problem",
    [
        ("empty", "file is empty (0 bytes)"),
        ("text", "cannot decode audio"),
        ("zero", "audio has zero length"),
        ("nan", "audio contains 100 NaN/Inf sample(s)"),
        ("missing", "file not found"),
    ],
)
def test_bad_files_raise_one_line_errors_naming_the_file(tmp_path, case, problem):
    path = _bad_files(tmp_path)[case]
    with pytest.raises(audio.AudioError) as info:
        audio.load(str(path))
    message = str(info.value)
    assert message.startswith(str(path) + ": ") and problem in message and "\n" not in message


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg"])
def test_tf_load_inside_tf_data_matches_soundfile(stereo, ext):
    paths, _ = stereo
    ds = tf.data.Dataset.from_tensor_slices([paths[ext]]).map(lambda p: audio.tf_load(p, RATE))
    (x,) = [t.numpy() for t in ds]
    y, _ = audio.load(paths[ext])
    n = min(len(x), len(y))
    assert abs(len(x) - len(y)) < 0.1 * RATE
    tol = 1e-4 if ext != ".ogg" else 0.05
    np.testing.assert_allclose(x[:n], y[:n], atol=tol)


def test_tf_load_resamples_to_the_requested_rate(stereo):
    x = audio.tf_load(tf.constant(stereo[0][".flac"]), 8000).numpy()
    assert len(x) == 8000
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum) * 8000 / len(x) - 440.0) < 2.0


def test_mono_loading_a_block_at_a_time_equals_decoding_at_once(real_song):
    from kgan.audio import _decode, _load_mono_in_blocks, resample

    path = os.path.join(real_song, "mixture.flac")  # 44.1 kHz stereo
    data, rate = _decode(path)
    for target in (rate, 22050, 8000):
        whole = resample(data.mean(axis=1), rate, target)
        blocks, got_rate = _load_mono_in_blocks(path, target, block_seconds=0.37)  # ~19 blocks
        assert got_rate == target and blocks.dtype == np.float32
        np.testing.assert_array_equal(blocks, whole)
