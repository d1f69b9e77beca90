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
* realism: ``frechet_distance`` between sets of clip embeddings made of librosa
  features (``clip_embedding``: MFCC, chroma and spectral contrast, mean and
  standard deviation over time);
* pairing: ``pairing_accuracy``, the share of (song, other song) pairs in which a
  generated accompaniment is closer to its own true accompaniment than to the
  other song's (in the spirit of APA, Grachten & Nistal 2025).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "chroma", "chroma_fit", "chroma_motion", "estimate_key", "key_score", "onset_correlation",
    "beat_f_measure", "log_spectral_distance", "spectral_convergence", "clip_embedding",
    "frechet_distance", "pairing_accuracy",
]

HOP = 512
PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# Krumhansl & Kessler (1982) key profiles, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


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
        librosa.feature.spectral_contrast(y=y, sr=rate, hop_length=HOP),
    ]
    return np.concatenate([np.concatenate([f.mean(axis=1), f.std(axis=1)]) for f in features])


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings ``[n, d]``."""
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
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
