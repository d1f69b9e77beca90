"""Does a generated accompaniment fit its vocal? Offline metrics against the true accompaniment.

All functions take mono float waveforms at a common ``rate`` (generated first,
reference second) and need no pretrained model:

* harmony: ``chroma_fit`` (frame-wise chroma cosine: rewards the right key) and
  ``chroma_motion`` (the same cosine on chroma *deviations from each signal's
  mean*: rewards following the chord changes; a constant drone scores 0);
  ``key_score``: ``mir_eval.key.weighted_score`` on Krumhansl-Schmuckler keys;
* rhythm: ``onset_correlation`` (Pearson correlation of onset-strength envelopes)
  and ``beat_f_measure`` (``mir_eval.beat.f_measure`` on tracked beats);
* spectral fit: ``log_spectral_distance`` (dB) and ``spectral_convergence``;
* balance: ``level_error_db``, the RMS level's distance from the true accompaniment's (dB);
* realism: ``frechet_distance`` between sets of clip embeddings made of librosa
  features (``clip_embedding``: MFCC, chroma and spectral contrast, mean and
  standard deviation over time);
* pairing: ``pairing_accuracy``, the share of (song, other song) pairs in which a
  generated accompaniment is closer to its own true accompaniment than to the
  other song's (in the spirit of APA, Grachten & Nistal 2025).
"""

from __future__ import annotations

import numpy as np

from kgan.harmony import MAJOR_PROFILE, MINOR_PROFILE  # Krumhansl & Kessler (1982), tonic first

__all__ = [
    "chroma", "chroma_fit", "chroma_motion", "estimate_key", "key_score", "onset_correlation",
    "beat_f_measure", "log_spectral_distance", "spectral_convergence", "level_error_db", "clip_embedding",
    "frechet_distance", "pairing_accuracy", "song_labels", "nearest_style_left_out", "style_check",
    "StyleClassifier", "reference_styles",
]

HOP = 512
PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def _aligned(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(a.shape[-1], b.shape[-1])
    return a[..., :n], b[..., :n]


def chroma(x: np.ndarray, rate: int) -> np.ndarray:
    """Chroma ``[12, frames]`` (energy, not normalised per frame, so silence stays zero)."""
    import librosa

    return librosa.feature.chroma_stft(y=np.asarray(x, np.float32), sr=rate, hop_length=HOP, norm=None, tuning=0.0)


def _mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over frames of the cosine of columns; a frame where either is zero counts as 0."""
    a, b = _aligned(a, b)
    na, nb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    valid = (na > 1e-8) & (nb > 1e-8)
    cos = np.zeros(a.shape[1])
    cos[valid] = (a[:, valid] * b[:, valid]).sum(axis=0) / (na[valid] * nb[valid])
    return float(cos.mean()) if cos.size else 0.0


def chroma_fit(generated: np.ndarray, reference: np.ndarray, rate: int) -> float:
    """Frame-wise chroma cosine similarity in [0, 1]."""
    return _mean_cosine(chroma(generated, rate), chroma(reference, rate))


def chroma_motion(generated: np.ndarray, reference: np.ndarray, rate: int) -> float:
    """Cosine of chroma deviations from each signal's own mean chroma, in [-1, 1]; a drone scores 0."""
    g, r = _aligned(chroma(generated, rate), chroma(reference, rate))

    def deviation(c):
        c = c / np.maximum(np.linalg.norm(c, axis=0, keepdims=True), 1e-8)  # compare shapes, not loudness
        d = c - c.mean(axis=1, keepdims=True)
        d[:, np.linalg.norm(d, axis=0) < 0.05] = 0.0  # no motion (a chord change moves ~0.5): no vote
        return d

    return _mean_cosine(deviation(g), deviation(r))


def estimate_key(x: np.ndarray, rate: int) -> str:
    """Krumhansl-Schmuckler key, in mir_eval's format (e.g. ``"Eb minor"``)."""
    profile = chroma(x, rate).mean(axis=1)
    if not np.any(profile > 0):
        return "C major"  # silence has no key; any fixed answer scores as such
    best, best_r = "C major", -np.inf
    for tonic in range(12):
        for mode, template in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
            r = np.corrcoef(profile, np.roll(template, tonic))[0, 1]
            if r > best_r:
                best, best_r = f"{PITCH_CLASSES[tonic]} {mode}", r
    return best


def key_score(generated: np.ndarray, reference: np.ndarray, rate: int) -> float:
    """``mir_eval.key.weighted_score``: 1 same key, 0.5 a fifth apart, 0.3 relative, 0.2 parallel, else 0."""
    import mir_eval

    return float(mir_eval.key.weighted_score(estimate_key(reference, rate), estimate_key(generated, rate)))


def onset_correlation(generated: np.ndarray, reference: np.ndarray, rate: int) -> float:
    """Pearson correlation of onset-strength envelopes (0 when either is flat)."""
    import librosa

    g, r = _aligned(*(librosa.onset.onset_strength(y=np.asarray(x, np.float32), sr=rate, hop_length=HOP)
                      for x in (generated, reference)))
    if g.std() < 1e-8 or r.std() < 1e-8:
        return 0.0
    return float(np.corrcoef(g, r)[0, 1])


def beat_f_measure(generated: np.ndarray, reference: np.ndarray, rate: int) -> float:
    """``mir_eval.beat.f_measure`` of beats tracked in the generated against those in the reference."""
    import librosa
    import mir_eval

    def beats(x):
        _, frames = librosa.beat.beat_track(y=np.asarray(x, np.float32), sr=rate, hop_length=HOP)
        return librosa.frames_to_time(frames, sr=rate, hop_length=HOP)

    reference_beats = mir_eval.beat.trim_beats(beats(reference))
    estimated_beats = mir_eval.beat.trim_beats(beats(generated))
    if reference_beats.size == 0 or estimated_beats.size == 0:
        return 0.0
    return float(mir_eval.beat.f_measure(reference_beats, estimated_beats))


def _power(x: np.ndarray, n_fft: int = 2048) -> np.ndarray:
    import librosa

    return np.abs(librosa.stft(np.asarray(x, np.float32), n_fft=n_fft, hop_length=HOP)) ** 2


def log_spectral_distance(generated: np.ndarray, reference: np.ndarray, dynamic_range: float = 80.0) -> float:
    """Mean over frames of the RMS difference of the log power spectra, in dB (0 = identical).

    Both spectra are floored ``dynamic_range`` dB below the reference's peak, so
    inaudible differences in near-silent bins do not dominate.
    """
    g, r = _aligned(_power(generated), _power(reference))
    r_db = 10 * np.log10(np.maximum(r, 1e-20))
    floor = r_db.max() - dynamic_range
    g_db = np.maximum(10 * np.log10(np.maximum(g, 1e-20)), floor)
    diff = np.maximum(r_db, floor) - g_db
    return float(np.mean(np.sqrt(np.mean(diff**2, axis=0))))


def spectral_convergence(generated: np.ndarray, reference: np.ndarray) -> float:
    """``||R - G||_F / ||R||_F`` on STFT magnitudes (0 = identical)."""
    g, r = _aligned(np.sqrt(_power(generated)), np.sqrt(_power(reference)))
    return float(np.linalg.norm(r - g) / max(np.linalg.norm(r), 1e-12))


def clip_embedding(x: np.ndarray, rate: int) -> np.ndarray:
    """A 78-number description of a clip: mean and std over time of 20 MFCCs, 12 chroma, 7 contrast bands."""
    import librosa

    y = np.asarray(x, np.float32)
    features = [
        librosa.feature.mfcc(y=y, sr=rate, n_mfcc=20, hop_length=HOP),
        librosa.feature.chroma_stft(y=y, sr=rate, hop_length=HOP, tuning=0.0),
        # six octave bands from fmin; fmin drops below librosa's 200 Hz where Nyquist would be exceeded
        librosa.feature.spectral_contrast(y=y, sr=rate, hop_length=HOP, fmin=min(200.0, 0.9 * rate / 2 / 2**6)),
    ]
    return np.concatenate([np.concatenate([f.mean(axis=1), f.std(axis=1)]) for f in features])


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings ``[n, d]``."""
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    import warnings

    with warnings.catch_warnings():  # few clips and many features give singular covariances: expected
        warnings.simplefilter("ignore")
        root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    root = root.real
    return float(max(0.0, np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * root)))


def pairing_accuracy(generated: np.ndarray, reference: np.ndarray) -> float:
    """Share of pairs (i, j != i) where generated i is closer to reference i than to reference j.

    Embeddings ``[n, d]`` are standardised with the mean and spread of both sets
    together first, so no feature dominates by its units (and a feature that only
    separates generated from real clips counts no more than its spread). 0.5 is chance.
    """
    g, r = np.asarray(generated, np.float64), np.asarray(reference, np.float64)
    n = len(r)
    if n < 2:
        raise ValueError(f"pairing needs at least 2 songs. Received: {n}")
    both = np.concatenate([g, r])
    mu, sd = both.mean(axis=0), both.std(axis=0) + 1e-8
    g, r = (g - mu) / sd, (r - mu) / sd
    dist = np.linalg.norm(g[:, None, :] - r[None, :, :], axis=-1)  # (generated i, reference j)
    wins = [dist[i, i] < dist[i, j] for i in range(n) for j in range(n) if j != i]
    return float(np.mean(wins))


# --------------------------------------------------------------------------- per song

SONG_METRICS = ("chroma_fit", "chroma_motion", "key_score", "onset_correlation", "beat_f_measure",
                "log_spectral_distance", "spectral_convergence", "level_error_db")
HIGHER_IS_BETTER = {"chroma_fit": True, "chroma_motion": True, "key_score": True, "onset_correlation": True,
                    "beat_f_measure": True, "log_spectral_distance": False, "spectral_convergence": False,
                    "level_error_db": False, "frechet_distance": False, "pairing_accuracy": True}


def level_error_db(generated: np.ndarray, reference: np.ndarray) -> float:
    """How far the generated accompaniment's RMS level is from the true one's, in dB (either way): the balance
    a remix with the vocal gets wrong."""
    from kgan.levels import rms_db

    return abs(rms_db(generated) - rms_db(reference))


def song_metrics(generated: np.ndarray, reference: np.ndarray, rate: int) -> dict[str, float]:
    """Every per-song metric of a generated accompaniment against the true one."""
    return {
        "chroma_fit": chroma_fit(generated, reference, rate),
        "chroma_motion": chroma_motion(generated, reference, rate),
        "key_score": key_score(generated, reference, rate),
        "onset_correlation": onset_correlation(generated, reference, rate),
        "beat_f_measure": beat_f_measure(generated, reference, rate),
        "log_spectral_distance": log_spectral_distance(generated, reference),
        "spectral_convergence": spectral_convergence(generated, reference),
        "level_error_db": level_error_db(generated, reference),
    }


def mean_ci(values) -> tuple[float, float]:
    """Mean and the half-width of its 95 % confidence interval (Student t)."""
    from scipy import stats

    v = np.asarray(values, np.float64)
    if v.size < 2:
        return float(v.mean()) if v.size else float("nan"), float("nan")
    return float(v.mean()), float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))


# ------------------------------------------------------------------------- baselines

def _chroma_tone(weights: np.ndarray, length: int, rate: int, octaves=(3, 4, 5)) -> np.ndarray:
    """A sustained sound whose chroma follows ``weights`` ``[12]`` or ``[12, frames]`` (then per frame)."""
    t = np.arange(length) / rate
    w = np.asarray(weights, np.float64)
    if w.ndim == 1:
        w = w[:, None]
    # frame weights -> per-sample envelopes by linear interpolation
    frame_times = np.linspace(0, length / rate, w.shape[1]) if w.shape[1] > 1 else np.zeros(1)
    out = np.zeros(length)
    for pc in range(12):
        env = np.interp(t, frame_times, w[pc]) if w.shape[1] > 1 else np.full(length, w[pc, 0])
        if not np.any(env > 0):
            continue
        for octave in octaves:
            freq = 440.0 * 2 ** ((12 * (octave + 1) + pc - 69) / 12)
            out += env * np.sin(2 * np.pi * freq * t)
    peak = np.max(np.abs(out))
    return (0.3 * out / peak).astype(np.float32) if peak > 0 else out.astype(np.float32)


def drone_baseline(vocal: np.ndarray, rate: int) -> np.ndarray:
    """A sustained sound with the vocal's whole-song chroma (the right key, no chord changes)."""
    return _chroma_tone(chroma(vocal, rate).mean(axis=1), len(vocal), rate)


def running_chroma_baseline(vocal: np.ndarray, rate: int, seconds: float = 4.0) -> np.ndarray:
    """A sound following the vocal's chroma averaged over a running window of a few seconds."""
    from scipy.ndimage import uniform_filter1d

    c = chroma(vocal, rate)
    width = max(1, int(seconds * rate / HOP))
    return _chroma_tone(uniform_filter1d(c, width, axis=1, mode="nearest"), len(vocal), rate)


class Harmoniser:
    """The chord plan of ``model.vocal_input=chords`` alone, played as sustained triads.

    The vocal goes through the default preset's STFT and ``kgan.features``' template harmoniser in the
    generator's own windows (``window.frames``, side by side); each frame's triad is rendered like the
    drone. It is the bar a generator with the ``chords`` input must clear to have added harmony of its own.
    """

    def __init__(self):
        from kgan.config import get_preset
        from kgan.features import VocalFeatures
        from kgan.spectrogram import Spectrogram

        self.config = get_preset("default").override(**{"model.vocal_input": "chords"})
        self.spec = Spectrogram(self.config.stft)
        self.layer = VocalFeatures.from_kgan_config(self.config)

    def notes(self, vocal: np.ndarray, rate: int) -> np.ndarray:
        """The triads ``[12, frames]`` at the preset's hop (zeros where no melody is near)."""
        import librosa
        import tensorflow as tf

        own = self.config.audio.sample_rate
        x = librosa.resample(np.asarray(vocal, np.float32), orig_sr=rate, target_sr=own) if rate != own else vocal
        view = self.spec.to_model(tf.constant(np.asarray(x, np.float32)[None])).numpy()[0]  # (T, F)
        frames, width = view.shape[0], self.config.window.frames
        padded = np.pad(view, ((0, -frames % width), (0, 0)), constant_values=-1.0)
        windows = padded.reshape(-1, width, padded.shape[1]).transpose(0, 2, 1)[..., None]  # (N, F, W, 1)
        notes = self.layer.chords(tf.constant(windows)).numpy().reshape(-1, 12)[:frames]
        return notes.T

    def __call__(self, vocal: np.ndarray, rate: int) -> np.ndarray:
        notes = self.notes(vocal, rate)
        if not notes.any():
            return np.zeros_like(vocal)
        return _chroma_tone(notes, len(vocal), rate)


def fit_length(x: np.ndarray, length: int) -> np.ndarray:
    """Crop, or repeat, to ``length`` samples."""
    if len(x) >= length:
        return x[:length]
    return np.tile(x, -(-length // max(len(x), 1)))[:length]


class Retrieval:
    """The training accompaniment whose vocal's mean chroma is nearest (cosine), as in SingSong's evaluation."""

    def __init__(self, songs: list[tuple[np.ndarray, np.ndarray]], rate: int):
        self.rate = rate
        self.keys = np.stack([chroma(v, rate).mean(axis=1) for v, _ in songs])
        self.keys /= np.maximum(np.linalg.norm(self.keys, axis=1, keepdims=True), 1e-8)
        self.accompaniments = [a for _, a in songs]

    def __call__(self, vocal: np.ndarray, rate: int) -> np.ndarray:
        key = chroma(vocal, rate).mean(axis=1)
        key /= max(np.linalg.norm(key), 1e-8)
        best = int(np.argmax(self.keys @ key))
        return fit_length(self.accompaniments[best], len(vocal))


class MeanSpectrogram:
    """The mean training accompaniment spectrogram, the same every frame, with Griffin-Lim phase."""

    def __init__(self, data_dir: str):
        from kgan.config import Config
        from kgan.dataset import read_metadata, windows_dataset

        self.config = Config.from_dict(read_metadata(data_dir)["config"])
        total, count = 0.0, 0
        for _, target in windows_dataset(data_dir, "train", self.config, 16, training=False, drop_remainder=False):
            total = total + target.numpy().sum(axis=(0, 2, 3))
            count += target.shape[0] * target.shape[2]
        self.mean = (total / count).astype(np.float32)  # [bins] on the normalised scale

    def __call__(self, vocal: np.ndarray, rate: int) -> np.ndarray:
        from kgan.spectrogram import Spectrogram

        spec = Spectrogram(self.config.stft)
        frames = spec.num_frames(len(vocal))
        normalised = np.tile(self.mean[None, :], (frames, 1))[None]
        return spec.griffin_lim(spec.from_model(normalised), len(vocal), n_iter=16).numpy()[0]


# ---------------------------------------------------------------------------- report

BASELINES = ("silence", "echo", "drone", "running-chroma", "harmoniser", "mean", "retrieval")


def load_songs(data_dir: str, rate: int, split: str | None = "test", max_seconds: float | None = None,
               failed: list[str] | None = None):
    """(name, vocal, accompaniment) of the songs of ``split`` (from ``splits.json``; all folders without one).

    A song that cannot be read raises, or, with a ``failed`` list, is skipped and
    its one-line error appended there.
    """
    import json
    import os

    from kgan.audio import AudioError
    from kgan.preprocess import SongError, find_sources, load_sources

    names = sorted(e.name for e in os.scandir(data_dir) if e.is_dir() and not e.name.startswith("."))
    splits_path = os.path.join(data_dir, "splits.json")
    if split and os.path.exists(splits_path):
        with open(splits_path, encoding="utf-8") as f:
            try:
                splits = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{splits_path}: not valid JSON ({e})") from None
        if not isinstance(splits, dict) or not all(isinstance(v, list) for v in splits.values()):
            raise ValueError(f"{splits_path}: expected an object of split name -> list of song folders")
        wanted = set(splits.get(split, []))
        names = [n for n in names if n in wanted]
    songs = []
    for name in names:
        try:
            vocal, accompaniment = load_sources(find_sources(os.path.join(data_dir, name)), rate)
        except (SongError, AudioError) as e:
            if failed is None:
                raise
            failed.append(str(e))
            continue
        if max_seconds:
            vocal, accompaniment = vocal[: int(max_seconds * rate)], accompaniment[: int(max_seconds * rate)]
        songs.append((name, vocal, accompaniment))
    return songs


def song_labels(data_dir: str, names, key: str = "style") -> dict[str, str | None]:
    """Each song folder's ``song.json`` label (``kgan corpus`` writes style, voice, source); None without one."""
    import os

    from kgan.io_utils import song_info

    values = {name: song_info(os.path.join(data_dir, name)).get(key) for name in names}
    return {name: value if isinstance(value, str) else None for name, value in values.items()}


def evaluate(systems: dict, songs, rate: int, progress: bool = True) -> dict:
    """Run every system (``name -> f(vocal, rate) -> accompaniment``) on every song and score it.

    A system with a true ``per_song`` attribute is called as ``f(vocal, rate, song=name)``
    (e.g. a style-conditioned model asked for each song's own style).
    """
    from tqdm import tqdm

    references = np.stack([clip_embedding(a, rate) for _, _, a in songs])
    report = {"sample_rate": rate, "songs": [n for n, _, _ in songs], "systems": {}, "outputs": {}}
    for system, fn in systems.items():
        per_song, embeddings, outputs = {}, [], {}
        for name, vocal, accompaniment in tqdm(songs, desc=system, disable=not progress, unit="song"):
            out = fn(vocal, rate, song=name) if getattr(fn, "per_song", False) else fn(vocal, rate)
            generated = np.asarray(out, np.float32)[: len(accompaniment)]
            per_song[name] = song_metrics(generated, accompaniment, rate)
            embeddings.append(clip_embedding(generated, rate))
            outputs[name] = generated
        embeddings = np.stack(embeddings)
        summary = {m: mean_ci([per_song[n][m] for n in per_song]) for m in SONG_METRICS}
        # Set-level metrics need two songs at least; one song (e.g. a single real recording) has none.
        summary["frechet_distance"] = (frechet_distance(embeddings, references) if len(songs) > 1 else float("nan"),
                                       float("nan"))
        summary["pairing_accuracy"] = (pairing_accuracy(embeddings, references) if len(songs) > 1 else float("nan"),
                                       float("nan"))
        report["systems"][system] = {"per_song": per_song, "summary": summary}
        report["outputs"][system] = outputs
    # the check the pairing metric must pass: true pairs beat shuffled pairs
    if len(songs) > 1:
        shuffled = references[np.roll(np.arange(len(songs)), 1)]
        report["pairing_check"] = {"true_pairs": pairing_accuracy(references, references),
                                   "shuffled_pairs": pairing_accuracy(shuffled, references)}
    return report


def summary_cell(mean: float, ci: float) -> str:
    """A report summary's ``[mean, 95 % CI]`` as a table cell: "0.123 ± 0.045", or the mean alone without a CI."""
    return f"{mean:.3f}" + (f" ± {ci:.3f}" if np.isfinite(ci) else "")


def markdown_table(report: dict) -> str:
    metrics = list(SONG_METRICS) + ["frechet_distance", "pairing_accuracy"]
    head = "| system | " + " | ".join(f"{m} {'↑' if HIGHER_IS_BETTER[m] else '↓'}" for m in metrics) + " |"
    rows = [head, "|" + "---|" * (len(metrics) + 1)]
    for system, data in report["systems"].items():
        cells = [summary_cell(*data["summary"][m]) for m in metrics]
        rows.append(f"| {system} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot_metrics(report: dict, path: str, model_system: str = "model") -> None:
    """Bar charts, one per metric, of every system's mean with its 95 % CI (the model in red)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kgan.io_utils import atomic_path

    metrics = list(SONG_METRICS) + ["frechet_distance", "pairing_accuracy"]
    systems = list(report["systems"])
    rows = -(-len(metrics) // 3)
    fig, axes = plt.subplots(rows, 3, figsize=(14, 3.7 * rows))
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    for ax, m in zip(axes.flat, metrics):
        means = [report["systems"][s]["summary"][m][0] for s in systems]
        cis = [report["systems"][s]["summary"][m][1] for s in systems]
        colours = ["tab:red" if s == model_system else "tab:gray" for s in systems]
        ax.bar(range(len(systems)), means, yerr=[c if np.isfinite(c) else 0 for c in cis], color=colours, capsize=3)
        ax.set_xticks(range(len(systems)))
        ax.set_xticklabels(systems, rotation=40, ha="right", fontsize=8)
        if m == "frechet_distance" and any(np.isfinite(x) and x > 0 for x in means):
            ax.set_yscale("log")  # spans orders of magnitude (silence is far off); undefined for one song
        ax.set_title(f"{m} ({'higher' if HIGHER_IS_BETTER[m] else 'lower'} is better)", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def write_report(report: dict, songs, out_dir: str, config, model_system: str = "model") -> list[str]:
    """report.json, report.md, metrics.png (bar charts) and one triptych PNG per song; returns the paths."""
    import json
    import os

    from kgan.io_utils import atomic_write_text
    from kgan.plots import plot_spectrograms
    from kgan.spectrogram import Spectrogram

    os.makedirs(out_dir, exist_ok=True)
    serialisable = {k: v for k, v in report.items() if k != "outputs"}
    paths = [os.path.join(out_dir, "report.json"), os.path.join(out_dir, "report.md"),
             os.path.join(out_dir, "metrics.png")]
    atomic_write_text(paths[0], json.dumps(serialisable, indent=2, sort_keys=True, default=float) + "\n")
    text = f"# Evaluation on {len(report['songs'])} song(s)\n\nMean ± 95 % CI over songs (↑ higher is better, ↓ lower).\n\n"
    atomic_write_text(paths[1], text + markdown_table(report) + "\n")

    plot_metrics(report, paths[2], model_system)
    if model_system in report["outputs"]:
        spec = Spectrogram(config.stft)
        by_name = {n: (v, a) for n, v, a in songs}
        for name, generated in report["outputs"][model_system].items():
            vocal, true = by_name[name]
            panels = [(label, spec.to_model(x).numpy().T) for label, x in
                      (("vocal", vocal), ("generated", generated), ("true accompaniment", true))]
            path = os.path.join(out_dir, "triptychs", f"{name}.png")
            plot_spectrograms(panels, config, path, title=name)
            paths.append(path)
    return paths


# ----------------------------------------------------------------------- style control

N_MFCC = 20


def mfcc_stats(x: np.ndarray, rate: int) -> np.ndarray:
    """The 20 MFCCs' mean and standard deviation over time (40 numbers): timbre, and how it moves. The
    first ``N_MFCC`` (the means) are the clip's overall timbre (instruments, register, brightness).

    The clip is scaled to one RMS level first: a style is which instruments play and how, not how
    loud. (A generator's level per style wanders by ±10 dB from one checkpoint to the next, and the
    0th MFCC would turn that into style hits and misses.)
    """
    import librosa

    x = np.asarray(x, np.float32)
    rms = float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0
    x = x * (0.1 / rms) if rms > 1e-8 else x
    m = librosa.feature.mfcc(y=x, sr=rate, n_mfcc=N_MFCC, hop_length=HOP)
    return np.concatenate([m.mean(axis=1), m.std(axis=1)])


class StyleClassifier:
    """Which style an accompaniment sounds like: a logistic regression on ``mfcc_stats``, fitted on true
    accompaniments of known style (e.g. a corpus' train split), so the style check has a second judge that
    learned what each style sounds like from many songs, not from the test set's few."""

    def __init__(self, clips, labels, rate: int):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if len(set(labels)) < 2:
            raise ValueError(f"a style classifier needs songs of two styles at least. Received: {sorted(set(labels))}")
        self.rate = rate
        self.model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        self.model.fit(np.stack([mfcc_stats(c, rate) for c in clips]), list(labels))
        self.songs = len(labels)

    def __call__(self, clip) -> str:
        return self.style_of(mfcc_stats(clip, self.rate))

    def style_of(self, stats: np.ndarray) -> str:
        """The style of a clip given its ``mfcc_stats``."""
        return str(self.model.predict(stats[None])[0])


def reference_styles(data_dir: str, styles, rate: int, per_style: int = 40, seconds: float = 30.0,
                     split: str = "train"):
    """Up to ``per_style`` true accompaniments (their first ``seconds``) of each of ``styles`` from ``data_dir``'s
    ``split`` (spread over the songs by a fixed shuffle): ``(clips, labels)`` for ``StyleClassifier``."""
    import os
    import random

    from kgan.io_utils import split_names
    from kgan.preprocess import find_sources, load_sources

    names = split_names(data_dir, split)
    random.Random(0).shuffle(names)
    labels = song_labels(data_dir, names)
    clips, chosen = [], []
    for name in names:
        style = labels[name]
        if style in styles and chosen.count(style) < per_style:
            _, accompaniment = load_sources(find_sources(os.path.join(data_dir, name)), rate)
            clips.append(accompaniment[: int(seconds * rate)])
            chosen.append(style)
    return clips, chosen


def nearest_style_left_out(truth: dict, labels: dict, styles) -> dict:
    """Song -> the style whose centroid its own features are nearest (Euclidean), for every song of ``truth``
    (song -> mean MFCC, in order) labelled with one of ``styles``; each song is left out of the centroid of
    its own style. How often this is the song's own style is the style check's ceiling on true accompaniments."""
    nearest = {}
    for name, own in truth.items():
        if labels.get(name) in styles:
            others = [np.mean([v for n, v in truth.items() if labels.get(n) == s and n != name]
                              or [np.full_like(own, np.inf)], axis=0) for s in styles]
            nearest[name] = styles[int(np.argmin(np.linalg.norm(np.stack(others) - own, axis=1)))]
    return nearest


def style_check(generate, songs, labels: dict, styles, rate: int, progress: bool = True,
                classifier: StyleClassifier | None = None) -> dict:
    """Is style control real? Every song generated in every style, scored against the styles' true sound.

    ``generate(vocal, rate, style) -> accompaniment``; ``labels``: song -> its true
    style; ``styles``: the style names to ask for (each needs labelled songs). For
    each style s, a song *hits* when its accompaniment generated in s is nearer
    (Euclidean, mean MFCC) to the centroid of the true accompaniments of s than to
    every other style's centroid; ``accuracy[s]`` is the share of songs that hit.
    ``chroma_motion[s]`` is the mean chord motion against the song's true
    accompaniment, so harmony can be compared across styles; ``motion_spread``
    is (max - min) / max of those means. ``truth_accuracy`` is the measure's own
    ceiling on these songs: the share whose true accompaniment is nearest its own
    style's centroid, each song left out of the centroid it is compared with.
    With a ``classifier`` (``StyleClassifier``), ``classifier`` holds the same two
    shares as it judges: outputs classified as the asked-for style, and true
    accompaniments classified as their own.
    """
    from tqdm import tqdm

    styles = [s for s in styles if any(labels.get(n) == s for n, _, _ in songs)]
    if len(styles) < 2:
        raise ValueError(f"the style check needs labelled songs of two styles at least. Received: {styles}")
    stats = {n: mfcc_stats(a, rate) for n, _, a in songs}
    truth = {n: v[:N_MFCC] for n, v in stats.items()}
    centroids = np.stack([np.mean([truth[n] for n, _, _ in songs if labels.get(n) == s], axis=0) for s in styles])
    truth_hits = [nearest == labels[name] for name, nearest in nearest_style_left_out(truth, labels, styles).items()]
    hits = {s: [] for s in styles}
    judged = {s: [] for s in styles}
    motion = {s: [] for s in styles}
    nearest = {s: {} for s in styles}
    for name, vocal, accompaniment in tqdm(songs, desc="style check", disable=not progress, unit="song"):
        for i, style in enumerate(styles):
            generated = np.asarray(generate(vocal, rate, style), np.float32)[: len(accompaniment)]
            generated_stats = mfcc_stats(generated, rate)
            d = np.linalg.norm(centroids - generated_stats[None, :N_MFCC], axis=1)
            hits[style].append(bool(np.argmin(d) == i))
            nearest[style][name] = styles[int(np.argmin(d))]
            if classifier is not None:
                judged[style].append(classifier.style_of(generated_stats) == style)
            motion[style].append(chroma_motion(generated, accompaniment, rate))
    means = {s: float(np.mean(motion[s])) for s in styles}
    top = max(means.values())
    extra = {}
    if classifier is not None:
        own = [classifier.style_of(stats[n]) == labels[n] for n, _, _ in songs if labels.get(n) in styles]
        extra["classifier"] = {"accuracy": {s: float(np.mean(judged[s])) for s in styles},
                               "truth_accuracy": float(np.mean(own)) if own else float("nan"),
                               "reference_songs": classifier.songs}
    return {**extra,
        "styles": styles,
        "songs": [n for n, _, _ in songs],
        "accuracy": {s: float(np.mean(hits[s])) for s in styles},
        "truth_accuracy": float(np.mean(truth_hits)) if truth_hits else float("nan"),
        "nearest": nearest,
        "chroma_motion": {s: mean_ci(motion[s]) for s in styles},
        "motion_spread": float((top - min(means.values())) / top) if top > 0 else float("nan"),
    }


def style_table(check: dict) -> str:
    """The style check as a markdown table."""
    judge = check.get("classifier")
    rows = ["| asked-for style | outputs nearest that style's true sound | "
            + ("classified as that style | " if judge else "") + "chord motion |",
            "|---|---|---|" + ("---|" if judge else "")]
    for s in check["styles"]:
        mean, ci = check["chroma_motion"][s]
        rows.append(f"| {s} | {check['accuracy'][s]:.0%} of {len(check['songs'])} songs | "
                    + (f"{judge['accuracy'][s]:.0%} | " if judge else "") + f"{mean:.3f} ± {ci:.3f} |")
    rows.append(f"\nChord motion spread across styles: {check['motion_spread']:.1%} of the highest.")
    if "truth_accuracy" in check:
        rows.append(f"The true accompaniments themselves are nearest their own style's centroid (left out of it) "
                    f"in {check['truth_accuracy']:.0%} of the songs: the measure's ceiling on this set.")
    if judge:
        rows.append(f"The classifier (logistic regression on MFCC means and spreads, fitted on "
                    f"{judge['reference_songs']} true accompaniments) puts {judge['truth_accuracy']:.0%} of the "
                    "true accompaniments in their own style.")
    return "\n".join(rows)
