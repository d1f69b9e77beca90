"""Output level calibration: the gain per style that brings generated accompaniments to the true ones' level.

A pix2pix generator learns its styles' sounds well and their loudness loosely: the shipped model
played band accompaniments 5 dB below the true ones and chorales 3 dB above them (README, "The
pretrained model"), so ``kgan generate``'s remix had a style-dependent balance. ``measure_gains``
generates songs of a corpus split (the val split by default: tunes the model did not train on), each
in its own style, and takes per style the median over songs of (true - generated) RMS level in dB.
``kgan export --calibrate-levels CORPUS`` stores these gains in the export, whose serving graph
scales each output waveform by its style's gain (``kgan.inference.Generate``); the ``spectrogram``
signature stays uncalibrated (the normalised magnitudes the generator made).

``any`` is calibrated on songs of every style, taken in turn, generated in ``any``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rms_db", "measure_gains", "style_gains_db"]


def rms_db(x: np.ndarray) -> float:
    """A signal's RMS level in dB (full scale 0 dB); -120 for silence."""
    return float(10.0 * np.log10(max(float(np.mean(np.square(np.asarray(x, np.float64)))), 1e-12)))


def style_gains_db(levels: dict | None, style_names) -> list[float] | None:
    """The gain (dB) of each style id, in order, from a calibration (``measure_gains``' result, as an export
    stores it); 0 for a style it did not measure; None without a calibration. An unconditioned generator's
    one id is ``any``."""
    if levels is None:
        return None
    return [levels["gains_db"].get(name, 0.0) for name in (list(style_names) or ["any"])]


def _in_turn(groups: dict[str, list], count: int) -> list:
    """Up to ``count`` items taken from each group in turn (the first of each, then the second, ...)."""
    out, depth = [], 0
    while len(out) < count and any(depth < len(g) for g in groups.values()):
        out += [g[depth] for g in groups.values() if depth < len(g)][: count - len(out)]
        depth += 1
    return out


def measure_gains(generate, corpus_dir: str, style_names, rate: int, split: str = "val", per_style: int = 32,
                  seconds: float = 30.0, progress: bool = True) -> dict:
    """Per style: the gain (dB) that brings ``generate``'s output to the true accompaniments' level.

    ``generate(vocal [1, L], style_id)`` -> ``[1, L]`` (the export's pipeline before calibration).
    ``style_names``: the model's styles, ``any`` first, or empty for an unconditioned generator
    (then one gain, under ``any``, from songs of every style). Up to ``per_style`` songs a style,
    their first ``seconds``. Returns ``{"gains_db": {style: dB}, "songs": {style: n},
    "spread_db": {style: the songs' standard deviation}, "uncalibrated": [styles without songs]}``.
    """
    from tqdm import tqdm

    from kgan.evaluation import load_songs, song_labels

    songs = list(load_songs(corpus_dir, rate, split=split, max_seconds=seconds))
    if not songs:
        raise ValueError(f"{corpus_dir}: no {split} songs to calibrate the output level on")
    labels = song_labels(corpus_dir, [name for name, _, _ in songs])
    by_style: dict[str, list] = {}
    for song in songs:
        by_style.setdefault(labels.get(song[0]) or "any", []).append(song)
    names = list(style_names) or ["any"]
    plan = {name: (_in_turn(by_style, per_style) if name == "any" else by_style.get(name, [])[:per_style])
            for name in names}
    total = sum(len(v) for v in plan.values())
    result = {"gains_db": {}, "songs": {}, "spread_db": {}, "uncalibrated": [], "split": split, "seconds": seconds}
    with tqdm(total=total, desc="level calibration", unit="song", disable=not progress) as bar:
        for style_id, name in enumerate(names):
            differences = []
            for _, vocal, accompaniment in plan[name]:
                out = np.asarray(generate(vocal[None].astype(np.float32), style_id))[0]
                differences.append(rms_db(accompaniment) - rms_db(out))
                bar.update(1)
            if not differences:
                result["uncalibrated"].append(name)
            result["gains_db"][name] = round(float(np.median(differences)), 2) if differences else 0.0
            result["songs"][name] = len(differences)
            result["spread_db"][name] = round(float(np.std(differences)), 2) if differences else None
    return result
