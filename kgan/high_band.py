"""The band above the model's Nyquist frequency, replicated from the band below it (``kgan export --high-band``).

The default preset generates up to 11.025 kHz (22.05 kHz audio); cymbals, hi-hats, breath and the air
of strings sit above it. Training a model on the full band costs 2.2x per generator window and 4x in
Griffin-Lim ("Configuration", ``fullband``). ``HighBand`` instead doubles the output's rate and fills
the new octave the way spectral band replication does in HE-AAC (Dietz et al., AES 2002): the top
octave of what was generated is copied up, and its level is set per sub-band by gains measured on
real accompaniments (``fit_gains``), per style.

Shapes (``R`` the model's rate, ``N``/``H`` its n_fft and hop, ``K = N / 2``):

* ``HighBand(waveform [B, L] at R, style_ids [B] or None)`` -> ``[B, 2L]`` at ``2R``.

How, in the STFT domain. The model's STFT (``N`` at ``R``) and one of ``2N``, hop ``2H`` at ``2R`` have the
same frames and the same bin spacing, and a signal's bins below ``R/2`` are twice as large in the second
(its window sums to twice as much). So the output's STFT is ``2X`` in bins ``0..K-1``, nothing added to
what was generated, and above: bins ``K..3K/2-1`` take ``X`` of an octave of bins ending ``s`` bins below
the model's Nyquist frequency (``skip_bins``: 345 Hz, clear of resamplers' roll-off and of the generator's
topmost rows), and bins ``3K/2..2K-1`` take the same octave again, each times its sub-band's gain. What
lies within 6 dB of the spectrogram's floor is not copied (a generated silence is the floor, which
Griffin-Lim renders as noise at about that level; taken out as a power). A shift
of ``m`` bins turns the phase of frame ``t`` by ``2 pi m t (2H) / (2N)``, a whole number of turns when
``m`` is a multiple of ``N / H`` (both shifts are), so the copies stay
consistent from frame to frame: the copied octave is the same waveform, moved up in frequency (a
single-sideband shift), with its own onsets and decays. One inverse STFT makes the output; below
``R/2`` it is the input, resampled (tested: content below 10.5 kHz comes back within 10^-3 of full
scale when the band is taken back down; only the new band's own skirt reaches below ``R/2``).

Only core TF ops; the gains are constants of the graph.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from kgan.config import STFTConfig
from kgan.spectrogram import Spectrogram, overlap_add

__all__ = ["HighBand", "doubled_stft", "skip_bins", "band_edges", "copied_power", "fit_gains", "fit_corpus",
           "SUB_BANDS", "GAIN_RANGE_DB"]

SUB_BANDS = 8  # gains per octave copy-up: 8 bands of K/8 bins (1.4 kHz at 44.1 kHz)
GAIN_RANGE_DB = (-60.0, 20.0)  # fitted gains are clipped to this range
BLOCK_FRAMES = 512  # STFT frames the output is made from at a time (HighBand.__call__)
FLOOR_MARGIN_DB = 6.0  # source bins this close to the spectrogram's floor (stft.db_floor) are not copied


def band_edges(num_bins: int, bands: int = SUB_BANDS) -> np.ndarray:
    """Sub-band edges over the ``num_bins`` new bins (``K``): ``bands + 1`` integers from 0 to ``num_bins``."""
    return np.round(np.linspace(0, num_bins, bands + 1)).astype(int)


def _check_stft(stft: STFTConfig) -> None:
    if stft.n_fft % stft.hop_length or (stft.n_fft // 4) % (stft.n_fft // stft.hop_length):
        raise ValueError(f"the high band needs stft.n_fft a multiple of stft.hop_length and n_fft/4 a multiple of "
                         f"n_fft/hop_length (its copies shift by whole turns). Received: n_fft={stft.n_fft}, "
                         f"hop_length={stft.hop_length}")


def skip_bins(stft: STFTConfig) -> int:
    """Bins between the copied octave's top and the model's Nyquist frequency: about 1/32 of them, rounded to a
    multiple of ``n_fft / hop`` (16 bins, 345 Hz, in the default preset)."""
    step = stft.n_fft // stft.hop_length
    return max(step, round(stft.n_fft / 64 / step) * step)


def doubled_stft(stft: STFTConfig) -> STFTConfig:
    """The STFT at twice the rate with the same frames: n_fft and hop doubled."""
    return dataclasses.replace(stft, n_fft=2 * stft.n_fft, hop_length=2 * stft.hop_length)


class HighBand(tf.Module):
    """A waveform at the model's rate ``[B, L]`` -> ``[B, 2L]`` at twice the rate, with the octave above filled.

    ``gains_db``: one row of ``SUB_BANDS`` gains (dB) per style id (``[S, SUB_BANDS]``, or one row for
    every style), as ``fit_gains`` measures them.
    """

    def __init__(self, stft: STFTConfig, gains_db, name: str = "high_band", block_frames: int = BLOCK_FRAMES):
        super().__init__(name=name)
        if int(block_frames) < 1:
            raise ValueError(f"block_frames must be a positive int. Received: {block_frames}")
        self.block_frames = int(block_frames)
        _check_stft(stft)
        gains_db = np.atleast_2d(np.asarray(gains_db, np.float64))
        if gains_db.shape[1] != SUB_BANDS or not np.all(np.isfinite(gains_db)):
            raise ValueError(f"high-band gains must be finite, {SUB_BANDS} per style. Received shape "
                             f"{gains_db.shape}")
        self.low = Spectrogram(stft)
        self.high = Spectrogram(doubled_stft(stft))
        self.k = stft.n_fft // 2  # the model's bins below its Nyquist frequency
        # the copied octave ends this many bins below the model's Nyquist frequency, past the resamplers' roll-off
        # and the generator's topmost rows; a multiple of n_fft / hop, so the shift stays a whole number of turns
        self.skip = skip_bins(stft)
        # what sits within FLOOR_MARGIN_DB of the spectrogram's floor is not copied: a generated silence is the
        # floor magnitude, which Griffin-Lim turns into noise at about that level (subtracted as a power)
        self.threshold = self.low.floor_magnitude * self.low.scale * 10.0 ** (FLOOR_MARGIN_DB / 20.0)
        edges = band_edges(self.k)
        per_bin = np.zeros((len(gains_db), self.k), np.float32)  # amplitude gain of each new bin, per style
        for b in range(SUB_BANDS):
            per_bin[:, edges[b] : edges[b + 1]] = 10.0 ** (gains_db[:, b : b + 1] / 20.0)
        self.gains = tf.constant(per_bin)  # [S, K]
        self.gains_db = gains_db.tolist()

    def replicate(self, stft):
        """The new octave's STFT bins ``[B, T, K]`` (unit gains) from the model's STFT ``[B, T, K + 1]``."""
        octave = stft[..., self.k // 2 - self.skip : self.k - self.skip]
        power = tf.square(tf.abs(octave))
        kept = tf.sqrt(tf.maximum(1.0 - self.threshold**2 / tf.maximum(power, 1e-30), 0.0))  # the floor taken out
        octave = octave * tf.complex(2.0 * kept, tf.zeros_like(kept))  # at the doubled STFT's scale
        return tf.concat([octave, octave], axis=-1)

    def __call__(self, waveform, style_ids=None):
        """The output at twice the rate, computed ``block_frames`` STFT frames at a time (two blocks in flight).

        Every output sample is a sum over the frames that cover it, so the blocks' own overlap-added outputs,
        added where they overlap, are exactly the whole signal's (tested); a block's working set stays in the
        caches, which makes 3 minutes about twice as fast as one pass over all frames.
        """
        waveform = tf.convert_to_tensor(waveform, tf.float32)
        length = tf.shape(waveform)[1]
        rows = tf.zeros([tf.shape(waveform)[0]], tf.int32) if style_ids is None else style_ids
        if self.gains.shape[0] == 1:
            rows = tf.zeros_like(rows)
        gain = tf.gather(self.gains, rows)[:, None, :]  # [B, 1, K]
        gain = tf.complex(gain, tf.zeros_like(gain))
        n, hop, block = self.low.n_fft, self.low.hop, self.block_frames
        count = (self.low.num_frames(length) + block - 1) // block
        # forward()'s padding, and more zeros to whole blocks: frame t covers samples [t * hop, t * hop + n)
        padded = tf.pad(waveform, [[0, 0], [self.low.pad, (count * block - 1) * hop + n - length - self.low.pad]])
        pieces = tf.transpose(tf.signal.frame(padded, (block - 1) * hop + n, block * hop, axis=1), [1, 0, 2])

        def synthesise(piece):  # [B, samples of `block` frames] -> [B, their output at twice the rate]
            x = self.low.analyse(piece)  # [B, block, K + 1]
            upper = self.replicate(x) * gain
            full = tf.concat([2.0 * x[..., : self.k], upper, tf.zeros_like(x[..., :1])], axis=-1)  # [B, block, 2K + 1]
            return self.high.synthesise(full)

        spec = tf.TensorSpec([None, 2 * ((block - 1) * hop + n)], tf.float32)
        out = tf.map_fn(synthesise, pieces, fn_output_signature=spec, parallel_iterations=2)  # [count, B, samples]
        joined = overlap_add(tf.transpose(out, [1, 0, 2]), 2 * block * hop)
        return joined[:, self.high.pad : self.high.pad + 2 * length]


def copied_power(stft: STFTConfig, low_waveform: np.ndarray, high_waveform: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per sub-band: the true power above the model's Nyquist frequency and that of its unit-gain copy.

    ``high_waveform`` is a song at twice the model's rate (mono), ``low_waveform`` the same song at the
    model's rate. Returns ``(true [SUB_BANDS], copied [SUB_BANDS])``, summed over frames.
    """
    _check_stft(stft)
    low, high = Spectrogram(stft), Spectrogram(doubled_stft(stft))
    k = stft.n_fft // 2
    copy = HighBand(stft, np.zeros((1, SUB_BANDS))).replicate(low.forward(np.asarray(low_waveform, np.float32)[None]))
    truth = high.forward(np.asarray(high_waveform, np.float32)[None])[..., k : 2 * k]
    frames = min(copy.shape[1], truth.shape[1])
    edges = band_edges(k)
    copied_bins = np.sum(np.abs(copy.numpy()[0, :frames]) ** 2, axis=0)
    true_bins = np.sum(np.abs(truth.numpy()[0, :frames]) ** 2, axis=0)
    sums = lambda p: np.array([p[edges[b] : edges[b + 1]].sum() for b in range(SUB_BANDS)])  # noqa: E731
    return sums(true_bins), sums(copied_bins)


def fit_gains(songs, stft: STFTConfig) -> list[float]:
    """Sub-band gains (dB) that give copied octaves the true high band's power, over ``songs``.

    ``songs``: ``(low_waveform, high_waveform)`` pairs as in ``copied_power``. Each gain is the ratio of the
    summed powers (louder songs weigh more, as they do to a listener), clipped to ``GAIN_RANGE_DB``.
    """
    powers = [copied_power(stft, low, high) for low, high in songs]
    return _ratio_db(np.sum([p[0] for p in powers], axis=0), np.sum([p[1] for p in powers], axis=0))


def _ratio_db(true: np.ndarray, copied: np.ndarray) -> list[float]:
    ratio = 10.0 * np.log10(np.maximum(true, 1e-20) / np.maximum(copied, 1e-20))
    return [round(float(g), 2) for g in np.clip(ratio, *GAIN_RANGE_DB)]


def fit_corpus(corpus_dir: str, stft: STFTConfig, rate: int, style_names=(), split: str = "train",
               per_style: int = 24, seconds: float = 30.0, progress: bool = True) -> dict:
    """``fit_gains`` per style on a corpus rendered at twice the model's ``rate`` (its ``split``).

    ``kgan corpus build OUT --preset fullband`` renders such a corpus (44.1 kHz). Up to ``per_style`` songs a
    style, their first ``seconds``; the accompaniment at ``2 * rate`` is the truth and the same audio at
    ``rate`` is what gets copied up. ``any`` (and a style without songs) takes the gains of every song.
    Returns ``{"rate": 2 * rate, "bands": SUB_BANDS, "gains_db": {style: [dB] * SUB_BANDS}, "songs": {style: n},
    "corpus": corpus_dir, "split": split}``.
    """
    import json
    import os

    from tqdm import tqdm

    from kgan.evaluation import song_labels
    from kgan.preprocess import find_sources, load_sources

    info = os.path.join(corpus_dir, "corpus.json")
    corpus_rate = None
    if os.path.isfile(info):
        with open(info, encoding="utf-8") as f:
            corpus_rate = json.load(f).get("sample_rate")
    if corpus_rate is not None and int(corpus_rate) < 2 * rate:
        raise ValueError(f"{corpus_dir}: rendered at {corpus_rate} Hz; the high band needs songs at {2 * rate} Hz "
                         f"(kgan corpus build OUT --preset fullband)")
    with open(os.path.join(corpus_dir, "splits.json"), encoding="utf-8") as f:
        names = sorted(json.load(f).get(split, []))
    labels = song_labels(corpus_dir, names)
    by_style: dict[str, list[str]] = {}
    for name in names:
        by_style.setdefault(labels.get(name) or "any", []).append(name)
    chosen = sorted({n for group in by_style.values() for n in group[:per_style]})
    if not chosen:
        raise ValueError(f"{corpus_dir}: no {split} songs to fit the high band on")
    powers = {}
    for name in tqdm(chosen, desc="high band", unit="song", disable=not progress):
        sources = find_sources(os.path.join(corpus_dir, name))
        _, high = load_sources(sources, 2 * rate)
        _, low = load_sources(sources, rate)
        powers[name] = copied_power(stft, low[: int(seconds * rate)], high[: int(seconds * 2 * rate)])

    def gains(names):
        return _ratio_db(np.sum([powers[n][0] for n in names], axis=0), np.sum([powers[n][1] for n in names], axis=0))

    result = {"rate": 2 * rate, "bands": SUB_BANDS, "gains_db": {"any": gains(chosen)}, "songs": {"any": len(chosen)},
              "corpus": os.path.abspath(corpus_dir), "split": split, "seconds": seconds}
    for style in style_names:
        names = by_style.get(style, [])[:per_style]
        if style != "any":
            result["gains_db"][style] = gains(names) if names else result["gains_db"]["any"]
            result["songs"][style] = len(names)
    return result
