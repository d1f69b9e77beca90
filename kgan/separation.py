"""Vocal extraction from finished songs, without pretrained weights.

Two methods, both returning stems of the input's length, rate and channels,
whose sum is the input (complementary soft masks):

* ``simm`` (reference): the smoothed-instantaneous-mixture model of Durrieu,
  David & Richard, "A musically motivated mid-level representation for pitch
  estimation and musical audio source separation", IEEE JSTSP 5(6), 2011.
  The channel-averaged power spectrogram ``X`` (F x N) is modelled as

      X ~ S_V + S_M,   S_V = (W_G H_G H_Phi) * (W_F0 H_F0),   S_M = W_M H_M

  a source/filter lead voice (a fixed dictionary ``W_F0`` of glottal-source
  spectra, one per candidate F0, times a smooth filter built from fixed
  frequency bumps ``W_G``) plus a free NMF accompaniment. All non-negative
  factors are fitted with multiplicative updates for the Itakura-Saito
  divergence. Stage 1 fits every F0; the melody is then tracked by Viterbi
  over the normalised F0 activations, frames where a harmonic source on the
  melody explains too little of the mixture are marked unvoiced, ``H_F0`` is
  zeroed outside a band around the melody, and stage 2 refits. The vocal is
  the soft mask ``S_V^p / (S_V^p + S_M^p)`` (``p = 0.5``: a ratio of
  magnitudes, softer than the power Wiener mask) applied to each channel's
  STFT; a stereo input's mask also keeps only what sits near the lead
  vocal's stereo position (``_pan_weight``), which is usually the centre.
* ``repet-sim`` (baseline): REPET-SIM (Rafii & Pardo, "Music/voice separation
  using the similarity matrix", ISMIR 2012): the repeating background of each
  frame is the median of its nearest neighbours by cosine similarity
  (``librosa.decompose.nn_filter``); the vocal is a soft mask on what does
  not repeat.

Shapes: audio is ``[channels, samples]`` float32 throughout.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import shutil
import sys
import tempfile

import numpy as np

from kgan.audio import AudioError
from kgan.io_utils import remove_stale_temporaries, temporary_prefix

__all__ = ["METHODS", "Separation", "SIMMParams", "separate", "separate_files", "find_mixes", "glottal_dictionary",
           "viterbi_melody", "write_song", "si_sdr", "separation_scores"]

METHODS = ("simm", "repet-sim")
_EPS = 1e-10


@dataclasses.dataclass
class Separation:
    """The stems of one song: ``[channels, samples]`` each, plus the tracked melody (SIMM only)."""

    vocals: np.ndarray
    accompaniment: np.ndarray
    rate: int
    melody_times: np.ndarray | None = None  # seconds, one per STFT frame
    melody_f0: np.ndarray | None = None  # Hz, 0 where unvoiced


@dataclasses.dataclass(frozen=True)
class SIMMParams:
    """Settings of the source/filter separator (defaults used for the README's measurements)."""

    window_seconds: float = 0.0464  # STFT window: 2048 samples at 44.1 kHz, 1024 at 22.05 kHz
    f0_min: float = 80.0  # Hz, the F0 grid's lowest candidate
    f0_max: float = 1000.0
    steps_per_semitone: int = 4
    open_quotient: float = 0.5  # KLGLOTT88 glottal pulse shape
    filter_atoms: int = 30  # smooth frequency bumps W_G
    filters: int = 20  # columns of W_Phi = W_G H_G
    accompaniment_atoms: int = 20  # more lets the free NMF absorb the voice (40: -2.3 dB SI-SDR on the real sample)
    iterations_1: int = 30  # stage 1, every F0 free
    iterations_2: int = 30  # stage 2, F0 restricted to the melody band
    melody_band_semitones: float = 1.0  # half-width of the band kept around the melody
    jump_semitones: float = 2.0  # Viterbi: standard deviation of pitch moves between frames
    voicing_db: float = -20.0  # unvoiced when the melody's harmonic part is below this share of the frame
    unvoiced_atom: bool = True  # a flat noise "F0" for breath and consonants, active only in voiced frames
    rest_db: float = 6.0  # also unvoiced: frames this far below their 2-second running median level (0: off)
    mask_power: float = 0.5  # vocal mask S_V^p / (S_V^p + S_M^p): 1 is the power Wiener mask, 0.5 magnitudes
    pan_width: float = 0.15  # stereo input: keep the vocal's stereo position +- about this much (0: off)
    seed: int = 0

    def n_fft(self, rate: int) -> int:
        return int(2 ** round(math.log2(self.window_seconds * rate)))

    def f0_grid(self) -> np.ndarray:
        n = int(math.floor(12 * self.steps_per_semitone * math.log2(self.f0_max / self.f0_min))) + 1
        return self.f0_min * 2.0 ** (np.arange(n) / (12.0 * self.steps_per_semitone))


# ------------------------------------------------------------------ dictionaries
def glottal_dictionary(f0s: np.ndarray, rate: int, n_fft: int, open_quotient: float = 0.5) -> np.ndarray:
    """Power spectra ``[n_fft/2 + 1, len(f0s)]`` of periodic KLGLOTT88 glottal-flow derivatives.

    The glottal flow over one period ``T0`` is ``u(t) = a t^2 - b t^3`` during
    the open phase ``t < Oq T0`` (``b`` such that the flow closes at its end) and
    zero after; its derivative is seen through the analysis window (periodic
    Hann, as the STFT uses) and each column is scaled to a maximum of 1.
    """
    t = np.arange(n_fft) / rate
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    columns = []
    for f0 in f0s:
        period = 1.0 / f0
        open_time = open_quotient * period
        phase = np.mod(t, period)
        # d/dt (t^2 - t^3 / open_time) on the open phase: 2t - 3t^2/open_time
        wave = np.where(phase < open_time, 2 * phase - 3 * phase**2 / open_time, 0.0)
        wave = wave - wave.mean()
        power = np.abs(np.fft.rfft(wave * window)) ** 2
        columns.append(power / max(power.max(), _EPS))
    return np.stack(columns, axis=1).astype(np.float32)


def smooth_filter_atoms(n_bins: int, count: int) -> np.ndarray:
    """``count`` overlapping Hann bumps ``[n_bins, count]`` tiling the frequency axis (50 % overlap)."""
    width = 2.0 * n_bins / (count + 1)
    centres = (np.arange(count) + 1) * width / 2.0
    k = np.arange(n_bins)[:, None]
    x = (k - centres[None, :]) / width
    atoms = np.where(np.abs(x) < 0.5, 0.5 + 0.5 * np.cos(2 * np.pi * x), 0.0)
    return atoms.astype(np.float32)


# ------------------------------------------------------------------ melody
def viterbi_melody(activations: np.ndarray, steps_per_semitone: int, jump_semitones: float) -> np.ndarray:
    """Most likely F0-index path through ``activations`` ``[U, N]`` (non-negative).

    Observation log-likelihood: log of each frame's activations normalised to
    sum 1. Transition: a Gaussian in pitch distance with standard deviation
    ``jump_semitones``, normalised per state.
    """
    u, n = activations.shape
    obs = np.log(activations / np.maximum(activations.sum(axis=0, keepdims=True), _EPS) + 1e-12)
    d = (np.arange(u)[:, None] - np.arange(u)[None, :]) / steps_per_semitone
    trans = -0.5 * (d / jump_semitones) ** 2
    trans -= np.log(np.exp(trans).sum(axis=1, keepdims=True))  # rows sum to probability 1
    score = obs[:, 0].copy()
    back = np.empty((n, u), dtype=np.int32)
    for i in range(1, n):
        cand = score[:, None] + trans  # [from, to]
        back[i] = np.argmax(cand, axis=0)
        score = cand[back[i], np.arange(u)] + obs[:, i]
    path = np.empty(n, dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


# ------------------------------------------------------------------ SIMM fit
@functools.lru_cache(maxsize=None)
def _simm_updates(iterations: int):
    """A compiled loop of ``iterations`` multiplicative IS-NMF updates of every free factor."""
    import tensorflow as tf

    def loop(x, w_f0, h_f0, w_g, h_g, h_phi, w_m, h_m):
        def weights(s_f0, s_phi, s_m):
            """X / S^2 and 1 / S for the current model S: the two halves of every IS update."""
            inv = 1.0 / (s_f0 * s_phi + s_m + _EPS)
            return x * inv * inv, inv

        def ratio(num, den):
            return num / (den + _EPS)

        def activations(h, w, other, xs2, inv):
            """H <- H * W^T (other X / S^2) / W^T (other / S), for S = other * (W H) + rest."""
            return h * ratio(tf.linalg.matmul(w, other * xs2, transpose_a=True),
                             tf.linalg.matmul(w, other * inv, transpose_a=True))

        def body(i, h_f0, h_g, h_phi, w_m, h_m):
            s_f0 = w_f0 @ h_f0
            w_phi = w_g @ h_g
            s_phi = w_phi @ h_phi
            s_m = w_m @ h_m
            # source activations
            h_f0 = activations(h_f0, w_f0, s_phi, *weights(s_f0, s_phi, s_m))
            s_f0 = w_f0 @ h_f0
            # filter activations
            h_phi = activations(h_phi, w_phi, s_f0, *weights(s_f0, s_phi, s_m))
            s_phi = w_phi @ h_phi
            # filter shapes, then columns of W_Phi back to unit maximum
            xs2, inv = weights(s_f0, s_phi, s_m)
            num = tf.linalg.matmul(w_g, tf.linalg.matmul(s_f0 * xs2, h_phi, transpose_b=True), transpose_a=True)
            den = tf.linalg.matmul(w_g, tf.linalg.matmul(s_f0 * inv, h_phi, transpose_b=True), transpose_a=True)
            h_g = h_g * ratio(num, den)
            scale = tf.reduce_max(w_g @ h_g, axis=0) + _EPS  # [K]
            h_g = h_g / scale[None, :]
            h_phi = h_phi * scale[:, None]
            s_phi = (w_g @ h_g) @ h_phi
            # accompaniment activations, then atoms (unit maximum)
            h_m = activations(h_m, w_m, 1.0, *weights(s_f0, s_phi, s_m))
            s_m = w_m @ h_m
            xs2, inv = weights(s_f0, s_phi, s_m)
            w_m = w_m * ratio(tf.linalg.matmul(xs2, h_m, transpose_b=True),
                              tf.linalg.matmul(inv, h_m, transpose_b=True))
            scale = tf.reduce_max(w_m, axis=0) + _EPS
            w_m = w_m / scale[None, :]
            h_m = h_m * scale[:, None]
            return i + 1, h_f0, h_g, h_phi, w_m, h_m

        _, h_f0, h_g, h_phi, w_m, h_m = tf.while_loop(
            lambda i, *_: i < iterations, body, (tf.constant(0), h_f0, h_g, h_phi, w_m, h_m))
        s_v = (w_f0 @ h_f0) * ((w_g @ h_g) @ h_phi)
        return h_f0, h_g, h_phi, w_m, h_m, s_v, w_m @ h_m

    matrix = tf.TensorSpec([None, None], tf.float32)  # one graph for every song length and dictionary size
    return tf.function(loop, input_signature=[matrix] * 8)


class _SIMM:
    def __init__(self, params: SIMMParams, rate: int):
        self.params = params
        self.rate = rate
        self.n_fft = params.n_fft(rate)
        self.hop = self.n_fft // 4
        self.f0s = params.f0_grid()
        bins = self.n_fft // 2 + 1
        w_f0 = glottal_dictionary(self.f0s, rate, self.n_fft, params.open_quotient)
        if params.unvoiced_atom:
            w_f0 = np.concatenate([w_f0, np.ones((bins, 1), np.float32)], axis=1)
        self.w_f0 = w_f0
        self.w_g = smooth_filter_atoms(bins, params.filter_atoms)
        self._stage1 = _simm_updates(params.iterations_1)
        self._stage2 = _simm_updates(params.iterations_2)

    def fit(self, power: np.ndarray):
        """Fit ``power`` ``[F, N]``; return (vocal model, accompaniment model, melody Hz with 0 unvoiced)."""
        import tensorflow as tf

        p = self.params
        f, n = power.shape
        rng = np.random.default_rng(p.seed)
        scale = float(power.mean()) + _EPS

        def rand(*shape):
            return tf.constant(rng.uniform(0.1, 1.0, shape).astype(np.float32))

        x = tf.constant(power / scale, tf.float32)  # IS divergence is scale invariant; keep numbers near 1
        u = self.w_f0.shape[1]
        h_f0, h_g, h_phi, w_m, h_m, _, _ = self._stage1(
            x, tf.constant(self.w_f0), rand(u, n), tf.constant(self.w_g), rand(p.filter_atoms, p.filters),
            rand(p.filters, n), rand(f, p.accompaniment_atoms), rand(p.accompaniment_atoms, n))

        voiced_f0s = len(self.f0s)
        h = h_f0.numpy()
        s_phi = (self.w_g @ h_g.numpy()) @ h_phi.numpy()
        path = viterbi_melody(h[:voiced_f0s], p.steps_per_semitone, p.jump_semitones)
        band = int(round(p.melody_band_semitones * p.steps_per_semitone))
        rows = np.arange(voiced_f0s)[:, None]
        keep = (np.abs(rows - path[None, :]) <= band).astype(np.float32)  # [U_voiced, N]
        # voicing: share of the frame that a harmonic source on the melody explains
        s_band = (self.w_f0[:, :voiced_f0s] @ (h[:voiced_f0s] * keep)) * s_phi
        share_db = 10 * np.log10((s_band.sum(axis=0) + _EPS) / (x.numpy().sum(axis=0) + _EPS))
        voiced = share_db > p.voicing_db
        if p.rest_db > 0:  # a rest under a sustained accompaniment is a dip in the mixture's level
            import scipy.ndimage

            level = 10 * np.log10(x.numpy().sum(axis=0) + _EPS)
            around = scipy.ndimage.median_filter(level, size=max(3, int(2.0 * self.rate / self.hop) | 1),
                                                 mode="nearest")
            voiced &= level > around - p.rest_db
        voiced = _median_smooth(voiced, 5)
        keep = keep * voiced[None, :]
        if p.unvoiced_atom:
            keep = np.concatenate([keep, voiced[None, :].astype(np.float32)], axis=0)
        _, _, _, _, _, s_v, s_m = self._stage2(
            x, tf.constant(self.w_f0), tf.constant(h * keep), tf.constant(self.w_g), h_g, h_phi, w_m, h_m)
        melody = np.where(voiced, self.f0s[path], 0.0)
        return s_v.numpy(), s_m.numpy(), melody


def _median_smooth(flags: np.ndarray, width: int) -> np.ndarray:
    """Majority vote over ``width`` frames (odd), so isolated voicing flips are removed."""
    import scipy.ndimage

    return scipy.ndimage.median_filter(flags.astype(np.uint8), size=width, mode="nearest").astype(bool)


# ------------------------------------------------------------------ front end
def _stft(n_fft: int):
    from kgan.config import STFTConfig
    from kgan.spectrogram import Spectrogram

    return Spectrogram(STFTConfig(n_fft=n_fft, hop_length=n_fft // 4))


def _masked(spec_obj, stft, mask, length) -> np.ndarray:
    """Waveforms ``[C, length]`` of ``mask`` ``[F, N]`` applied to each channel's STFT ``[C, N, F]``."""
    import tensorflow as tf

    m = tf.constant(mask.T[None, :, :], tf.float32)
    return spec_obj.inverse(stft * tf.complex(m, tf.zeros_like(m)), length).numpy()


def separate(audio: np.ndarray, rate: int, method: str = "simm", params: SIMMParams | None = None) -> Separation:
    """Split ``audio`` ``[channels, samples]`` (or ``[samples]``) into vocal and accompaniment stems."""
    if method not in METHODS:
        raise ValueError(f"unknown separation method {method!r}; expected one of {list(METHODS)}")
    x = np.asarray(audio, np.float32)
    x = x[None, :] if x.ndim == 1 else x
    length = x.shape[-1]
    params = params or SIMMParams()
    n_fft = params.n_fft(rate)
    spec = _stft(n_fft)
    stft = spec.forward(x)  # [C, N, F] complex
    power = np.mean(np.abs(stft.numpy()) ** 2, axis=0).T  # [F, N], averaged over channels
    melody_times = melody = None
    if method == "simm":
        s_v, s_m, melody = _SIMM(params, rate).fit(power)
        s_v, s_m = s_v ** params.mask_power, s_m ** params.mask_power
        mask = s_v / (s_v + s_m + _EPS)
        if x.shape[0] == 2 and params.pan_width > 0:
            mask = mask * _pan_weight(stft.numpy(), mask * power, params.pan_width)
        # frame t is centred on sample t*hop - (n_fft - hop) + n_fft/2 (see kgan.spectrogram)
        melody_times = (np.arange(power.shape[1]) * spec.hop - spec.pad + n_fft / 2) / rate
    else:
        mask = _repet_sim_mask(np.sqrt(power), rate, spec.hop)
    vocals = _masked(spec, stft, mask, length)  # the accompaniment is the exact complement
    return Separation(vocals=vocals, accompaniment=x - vocals, rate=rate, melody_times=melody_times,
                      melody_f0=melody)


def _pan_weight(stft: np.ndarray, vocal_power: np.ndarray, width: float) -> np.ndarray:
    """``[F, N]`` weights that keep what sits at the lead vocal's place in a stereo STFT ``[2, N, F]``.

    Each bin's stereo position is its share of energy in the left channel
    (0.5 centre, 1 hard left; the panning index of Avendano, "Frequency-domain
    source identification and manipulation in stereo mixes for enhancement,
    suppression and re-panning applications", WASPAA 2003). The vocal's position
    is the median of the bins' positions weighted by the vocal's first estimate
    ``vocal_power`` ``[F, N]``, so an off-centre voice is followed too; a bin
    ``d`` away from it keeps ``exp(-d^2 / (2 width^2))`` of its vocal mask.
    """
    left, right = np.abs(stft[0].T) ** 2, np.abs(stft[1].T) ** 2  # [F, N]
    position = left / (left + right + _EPS)
    order = np.argsort(position, axis=None)
    cumulative = np.cumsum(vocal_power.ravel()[order])
    if cumulative[-1] <= 0:
        return np.ones_like(position)
    centre = position.ravel()[order][np.searchsorted(cumulative, cumulative[-1] / 2)]
    return np.exp(-0.5 * ((position - centre) / width) ** 2)


def _repet_sim_mask(magnitude: np.ndarray, rate: int, hop: int, seconds: float = 2.0,
                    margin: float = 10.0, power: float = 2.0) -> np.ndarray:
    """REPET-SIM vocal mask ``[F, N]`` from a magnitude spectrogram ``[F, N]``."""
    import librosa

    n = magnitude.shape[1]
    width = max(1, min(int(round(seconds * rate / hop)), (n - 1) // 2))
    if n < 2 * width + 3:  # too short to find repetitions: all of it is background
        return np.zeros_like(magnitude)
    background = librosa.decompose.nn_filter(magnitude, aggregate=np.median, metric="cosine", width=width)
    background = np.minimum(magnitude, background)
    return librosa.util.softmask(magnitude - background, margin * background, power=power)


# ------------------------------------------------------------------ files
def write_song(folder: str, result: Separation) -> None:
    """Write ``vocals.wav``, ``accompaniment.wav`` (float) and ``melody.csv`` into ``folder`` atomically.

    The stems go to a hidden temporary folder that is renamed onto ``folder``
    at the end, so a folder under its final name is always complete.
    """
    from kgan.audio import write

    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=temporary_prefix(), dir=parent)
    try:
        write(os.path.join(tmp, "vocals.wav"), result.vocals, result.rate, subtype="FLOAT")
        write(os.path.join(tmp, "accompaniment.wav"), result.accompaniment, result.rate, subtype="FLOAT")
        if result.melody_f0 is not None:
            with open(os.path.join(tmp, "melody.csv"), "w", encoding="utf-8") as f:
                f.write("time_s,f0_hz\n")
                for t, f0 in zip(result.melody_times, result.melody_f0):
                    f.write(f"{t:.4f},{f0:.2f}\n")
        os.chmod(tmp, 0o755)
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def find_mixes(paths) -> list[tuple[str, str]]:
    """(song name, audio file) for each input: an audio file is a song named after it; a folder is
    either one song (it holds ``mixture.*``, as in MUSDB18) or a collection of such files and folders.
    Raises AudioError for a path that is neither."""
    from kgan.audio import AUDIO_EXTENSIONS

    def mixture_in(folder):
        found = sorted(f for f in os.listdir(folder) if os.path.splitext(f)[0] == "mixture"
                       and os.path.splitext(f)[1].lower() in AUDIO_EXTENSIONS)
        return os.path.join(folder, found[0]) if found else None

    songs = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            own = mixture_in(path)
            if own:
                songs.append((os.path.basename(os.path.normpath(path)), own))
                continue
            for entry in sorted(os.scandir(path), key=lambda e: e.name):
                if entry.name.startswith("."):
                    continue
                if entry.is_dir() and (inner := mixture_in(entry.path)):
                    songs.append((entry.name, inner))
                elif entry.is_file() and os.path.splitext(entry.name)[1].lower() in AUDIO_EXTENSIONS:
                    songs.append((os.path.splitext(entry.name)[0], entry.path))
        elif os.path.isfile(path):
            songs.append((os.path.splitext(os.path.basename(path))[0], path))
        else:
            raise AudioError(path, "no such file or folder")
    return songs


def separate_files(songs, out_dir: str, method: str = "simm", params: SIMMParams | None = None,
                   progress: bool = True, skip_existing: bool = False) -> tuple[list[str], list[str]]:
    """Separate each (name, file) of ``songs`` into ``OUT_DIR/<name>/``; return (folders, one-line errors).

    A file that cannot be read is reported and skipped; the others go on.
    With ``skip_existing`` a song whose folder is already complete is kept as
    it is (a killed batch resumes where it stopped).
    """
    from kgan.progress import audio_bar

    from kgan.audio import info_seconds, load

    songs = list(songs)
    remove_stale_temporaries(out_dir)  # song folders of a killed batch
    seconds = {p: info_seconds(p) for _, p in songs}  # one header read per file, for the bar's total and steps
    seen: dict[str, str] = {}
    written, errors = [], []
    with audio_bar(round(sum(seconds[p] for _, p in songs), 1), f"separate ({method})", disable=not progress,
                   file=sys.stderr) as bar:
        for name, path in songs:
            folder = os.path.join(out_dir, name)
            try:
                if name in seen:
                    raise AudioError(path, f"song name {name!r} is also taken by {seen[name]}; rename one")
                seen[name] = path
                done = all(os.path.exists(os.path.join(folder, f)) for f in ("vocals.wav", "accompaniment.wav"))
                if not (skip_existing and done):
                    audio, rate = load(path, mono=False)
                    write_song(folder, separate(audio, rate, method, params))
                written.append(folder)
            except AudioError as e:
                errors.append(str(e))
                bar.write(f"error: {e}", file=sys.stderr)
            bar.update(round(seconds[path], 1))
    return written, errors


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al., ICASSP 2019) of mono signals.

    The estimate is projected on the reference; what the projection leaves is
    all error, so unlike BSS Eval's SDR no distortion filter is forgiven.
    """
    n = min(len(estimate), len(reference))
    est, ref = np.asarray(estimate[:n], np.float64), np.asarray(reference[:n], np.float64)
    target = (np.dot(est, ref) / max(np.dot(ref, ref), _EPS)) * ref
    error = est - target
    return float(10 * np.log10(max(np.dot(target, target), _EPS) / max(np.dot(error, error), _EPS)))


def separation_scores(ref_vocal, ref_accompaniment, est_vocal, est_accompaniment) -> dict[str, float]:
    """SI-SDR, and BSS Eval v3 SDR / SIR / SAR (``mir_eval.separation.bss_eval_sources``), in dB, of mono signals."""
    import mir_eval

    n = min(len(ref_vocal), len(ref_accompaniment), len(est_vocal), len(est_accompaniment))
    refs = np.stack([ref_vocal[:n], ref_accompaniment[:n]]).astype(np.float64)
    ests = np.stack([est_vocal[:n], est_accompaniment[:n]]).astype(np.float64)
    sdr, sir, sar, _ = mir_eval.separation.bss_eval_sources(refs, ests, compute_permutation=False)
    out = {"vocal_si_sdr": si_sdr(est_vocal, ref_vocal), "accompaniment_si_sdr": si_sdr(est_accompaniment,
                                                                                      ref_accompaniment)}
    for i, name in enumerate(("vocal", "accompaniment")):
        out.update({f"{name}_sdr": float(sdr[i]), f"{name}_sir": float(sir[i]), f"{name}_sar": float(sar[i])})
    return out
