"""Audio in and out.

Files on disk are read with soundfile (wav, flac, ogg/vorbis, mp3 through
libsndfile >= 1.1) with librosa/audioread as a fallback, downmixed to mono and
resampled with soxr. Inside ``tf.data`` audio is decoded with tensorflow-io's
decoders (:func:`tf_load`). Every error names the file and the problem in
one line (:class:`AudioError`).
"""

from __future__ import annotations

import contextlib
import os
import warnings

import numpy as np
import soundfile as sf

from kgan.io_utils import atomic_path

__all__ = ["AudioError", "AUDIO_EXTENSIONS", "SampleFile", "array_blocks", "fold_channels", "info_seconds", "load",
           "read_blocks", "resample", "write", "tf_load", "headroom_gain"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")


class AudioError(ValueError):
    """A file that cannot be used as audio; ``str()`` is a one-line message naming the file."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@contextlib.contextmanager
def _decoder_quiet():
    """Silence the decoders' own chatter (mpg123's "Note: ..." lines on stderr, audioread warnings)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            saved = os.dup(2)
        except OSError:  # no stderr descriptor: nothing to silence
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def _decode_problem(error: Exception, path: str) -> str:
    """libsndfile's reason in one line; its "File does not exist..." for an unknown format said plainly."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    first = first.replace(f"Error opening {path!r}: ", "")  # the path is already in front
    if "does not exist or is not a regular file" in first or "Format not recognised" in first:
        return "cannot decode audio: not a wav, flac, mp3 or ogg file"
    return f"cannot decode audio ({first})"


def _decode(path: str) -> tuple[np.ndarray, int]:
    """Return (samples [frames, channels] float32, rate) or raise AudioError."""
    if not os.path.exists(path):
        raise AudioError(path, "file not found")
    if os.path.getsize(path) == 0:
        raise AudioError(path, "file is empty (0 bytes)")
    try:
        with _decoder_quiet():
            data, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as sf_error:  # libsndfile could not decode it: try audioread (mp3 on old libsndfile)
        problem = _decode_problem(sf_error, path)
        if not path.lower().endswith(".mp3"):
            raise AudioError(path, problem) from None
        try:
            import librosa

            with _decoder_quiet():
                mono, rate = librosa.load(path, sr=None, mono=False)
        except Exception:
            raise AudioError(path, problem) from None
        data = np.atleast_2d(mono).T.astype(np.float32)
    return data, int(rate)


def _open_sndfile(path: str):
    """The file opened by libsndfile, or None when it cannot open it (``load`` then takes the one-shot path,
    which reports the problem or falls back to audioread)."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return None
    try:
        with _decoder_quiet():
            return sf.SoundFile(path)
    except Exception:
        return None


def _decoded_blocks(f, path: str, target: int, channels: int, block_seconds: float):
    """Yield the open file ``f`` at ``target`` Hz a block at a time, float32 ``[n, channels]`` (``channels`` 1
    averages the file's). Raises AudioError after the last block when it held no samples or NaN/Inf ones."""
    with f:
        rate = int(f.samplerate)
        stream = None
        if target != rate:
            import soxr

            stream = soxr.ResampleStream(rate, target, channels, dtype="float32", quality="HQ")
        bad = total = 0
        while True:
            try:
                block = f.read(max(1, int(block_seconds * rate)), dtype="float32", always_2d=True)
            except Exception as e:
                first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
                raise AudioError(path, f"cannot decode audio ({first})") from None
            if len(block) == 0:
                break
            total += len(block)
            bad += int(block.size - np.count_nonzero(np.isfinite(block)))
            if channels != block.shape[1]:
                block = block.mean(axis=1, keepdims=True)
            yield stream.resample_chunk(block) if stream is not None else block
        if total == 0:
            raise AudioError(path, "audio has zero length")
        if bad:
            raise AudioError(path, f"audio contains {bad} NaN/Inf sample(s)")
        if stream is not None:
            yield stream.resample_chunk(np.zeros((0, channels), np.float32), last=True)


def _load_mono_in_blocks(path: str, sample_rate: int | None,
                         block_seconds: float = 10.0) -> tuple[np.ndarray, int] | None:
    """``load(path, sample_rate, mono=True)`` decoded, mixed down and resampled a block at a time.

    Only the mono result at the target rate is held whole, so a long stereo
    file at a high rate needs far less memory than decoding it at once. The
    result equals the one-shot path's (soxr's stream gives the same samples).
    None when libsndfile cannot open the file.
    """
    f = _open_sndfile(path)
    if f is None:
        return None
    target = sample_rate or int(f.samplerate)
    # filled in place (a list of blocks joined at the end would hold the song twice)
    out = np.empty(int(np.ceil(f.frames * target / f.samplerate)) + 1024, np.float32)
    filled = 0
    for block in _decoded_blocks(f, path, target, 1, block_seconds):
        if filled + len(block) > len(out):  # the header's length was short: grow
            out = np.concatenate([out[:filled], np.empty(max(len(block), len(out) // 2), np.float32)])
        out[filled : filled + len(block)] = block[:, 0]
        filled += len(block)
    return out[:filled], target


def read_blocks(path: str | os.PathLike, sample_rate: int, max_channels: int = 2,
                block_seconds: float = 10.0):
    """The file at ``sample_rate`` Hz a block at a time: float32 ``[n, channels]`` arrays.

    ``channels`` is the file's own count up to ``max_channels``; a file with more is averaged to one. Only
    a block is in memory when libsndfile reads the file (wav, flac, ogg, mp3); other files are decoded
    whole first. Raises AudioError as ``load`` does.
    """
    path = os.fspath(path)
    f = _open_sndfile(path)
    if f is not None:
        return _decoded_blocks(f, path, sample_rate, f.channels if f.channels <= max_channels else 1, block_seconds)
    audio, _ = load(path, sample_rate, mono=False)
    return array_blocks(fold_channels(audio, max_channels), int(block_seconds * sample_rate))


def fold_channels(audio: np.ndarray, max_channels: int = 2) -> np.ndarray:
    """``[channels, samples]`` kept as it is up to ``max_channels`` channels, else averaged to one."""
    return audio if len(audio) <= max_channels else audio.mean(axis=0, keepdims=True)


def array_blocks(audio: np.ndarray, block: int):
    """``[channels, samples]`` audio as ``[n, channels]`` blocks of ``block`` samples (the last one shorter)."""
    return (np.ascontiguousarray(audio[:, start : start + block].T) for start in range(0, audio.shape[1], block))


def info_seconds(path: str | os.PathLike) -> float:
    """Duration in seconds from the header (0.0 when it cannot be read)."""
    try:
        with _decoder_quiet():
            return float(sf.info(os.fspath(path)).duration)
    except Exception:
        return 0.0


def resample(audio: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample along the last axis with soxr (high quality). No-op when the rates match."""
    if orig_rate == target_rate:
        return audio
    import soxr

    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        return soxr.resample(x, orig_rate, target_rate, quality="HQ").astype(np.float32)
    return soxr.resample(x.T, orig_rate, target_rate, quality="HQ").T.astype(np.float32)


def load(
    path: str | os.PathLike, sample_rate: int | None = None, mono: bool = True
) -> tuple[np.ndarray, int]:
    """Read an audio file.

    Returns ``(audio, rate)``: ``audio`` is float32 ``[samples]`` when ``mono``
    (channels averaged) else ``[channels, samples]``; ``rate`` is
    ``sample_rate`` when given (the audio is resampled to it) else the file's.

    Raises AudioError for a missing, empty, undecodable, zero-length or
    non-finite file.
    """
    path = os.fspath(path)
    if mono:
        streamed = _load_mono_in_blocks(path, sample_rate)
        if streamed is not None:
            return streamed
    data, rate = _decode(path)
    if data.shape[0] == 0:
        raise AudioError(path, "audio has zero length")
    if not np.all(np.isfinite(data)):
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise AudioError(path, f"audio contains {bad} NaN/Inf sample(s)")
    audio = data.mean(axis=1) if mono else data.T
    if sample_rate is not None and sample_rate != rate:
        audio = resample(audio, rate, sample_rate)
        rate = sample_rate
    return np.ascontiguousarray(audio, dtype=np.float32), rate


def headroom_gain(peak: float, ceiling: float = 0.98) -> float:
    """The gain that brings a signal peaking at ``peak`` to ``ceiling``, or 1 when it peaks no higher:
    one gain for a whole song, so an output above full scale is scaled, never clipped."""
    return ceiling / peak if peak > ceiling else 1.0


def write(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, subtype: str | None = None) -> None:
    """Write ``[samples]`` or ``[channels, samples]`` audio to wav or flac, atomically.

    ``subtype`` defaults to 16-bit PCM (samples are clipped to [-1, 1]);
    pass ``"FLOAT"`` for a bit-exact float32 wav.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".wav", ".flac"):
        raise AudioError(path, f"can only write .wav or .flac, not {ext or 'no extension'!r}")
    x = np.asarray(audio, dtype=np.float32)
    x = x.T if x.ndim == 2 else x
    subtype = subtype or "PCM_16"
    if subtype.startswith("PCM"):
        x = np.clip(x, -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(tmp, x, int(sample_rate), subtype=subtype, format=ext[1:].upper())


class SampleFile:
    """A mono sound file read like a float32 numpy array: ``len()`` and ``[a:b]`` slices, decoded on demand.

    Lets whole-song code (``kgan.plots.overview``) walk a long file without holding it in memory.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._frames = sf.info(self.path).frames

    def __len__(self) -> int:
        return self._frames

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop, step = index.indices(self._frames)
        if step != 1:
            raise IndexError("SampleFile supports contiguous slices only")
        data, _ = sf.read(self.path, start=start, stop=max(start, stop), dtype="float32", always_2d=True)
        return data.mean(axis=1)


def tf_load(path, sample_rate: int):
    """Read an audio file inside a tf graph (e.g. ``tf.data``) with tensorflow-io's decoders.

    ``path`` is a scalar string tensor naming a wav, flac, mp3 or ogg file.
    Returns mono float32 ``[samples]`` at ``sample_rate`` (channels averaged;
    resampled with tensorflow-io when the file's rate differs). The file's rate
    is read from its header by tensorflow-io's audio reader.
    """
    import tensorflow as tf
    import tensorflow_io as tfio
    from tensorflow_io.python.ops import core_ops

    path = tf.convert_to_tensor(path, tf.string)
    contents = tf.io.read_file(path)
    _, _, rate = core_ops.io_audio_readable_spec(core_ops.io_audio_readable_init(path))
    lower = tf.strings.lower(path)

    def pcm(decoded):
        return tf.cast(decoded, tf.float32) / 32768.0

    branches = [
        (tf.strings.regex_full_match(lower, r".*\.flac"), lambda: pcm(tfio.audio.decode_flac(contents, dtype=tf.int16))),
        (tf.strings.regex_full_match(lower, r".*\.mp3"), lambda: tfio.audio.decode_mp3(contents)),
        (tf.strings.regex_full_match(lower, r".*\.ogg"), lambda: tfio.audio.decode_vorbis(contents)),
    ]
    audio = tf.case(branches, default=lambda: pcm(tfio.audio.decode_wav(contents, dtype=tf.int16)), exclusive=True)
    mono = tf.reduce_mean(audio, axis=-1)
    rate = tf.cast(rate, tf.int64)
    return tf.cond(
        tf.equal(rate, sample_rate),
        lambda: mono,
        lambda: tfio.audio.resample(mono, rate_in=rate, rate_out=sample_rate),
    )
