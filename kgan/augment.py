"""Timbre augmentation of the training vocal, in the training step (``Trainer`` calls ``augment_vocal``).

The corpus' melodies are sung by a handful of synthetic voices; a user's vocal
is none of them. Each augmentation changes how the vocal sounds but not which
notes it sings, so the generator learns to ignore it. They act on the
normalised vocal spectrogram ``[B, F, T, 1]`` (after the data pipeline, before
the model), draw every random number from stateless ops keyed by ``seed``
(so a resumed run repeats them exactly), and return ``[B, F, T, 1]`` in
[-1, 1]. Silence stays silence except under reverb (its tail fills rests) and
breath noise. Probabilities and ranges: ``config.augment`` (``AugmentConfig``).

* level: a gain;
* EQ tilt: a slope in dB per octave around 1 kHz (a darker or brighter
  microphone, channel or voice);
* formant warp: the spectral envelope (the frame's moving average in dB, as in
  ``kgan.features``) stretched along frequency while the harmonics stay where
  they are (another vocal tract on the same notes);
* vibrato and pitch bend: the whole frame resampled along frequency by a
  ratio that varies over time (sinusoidal 4-7 Hz plus a linear bend);
* reverb: an exponentially decaying tail per frequency (a room's RT60 and
  wet level), added in the power domain;
* breath noise: pink noise with exponentially distributed power per cell, at
  a level relative to the window's loudest frame.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from kgan.config import Config
from kgan.features import ENVELOPE_HZ, smoothing_matrix

__all__ = ["augment_vocal", "NAMES"]

NAMES = ("level", "tilt", "formant", "vibrato", "reverb", "breath")
_LOG10 = math.log(10.0)


def _resample_rows(values, ratio):
    """``values[b, t, k / ratio[b, t]]`` by linear interpolation (edges held): ``[B, T, F]``."""
    bins = tf.shape(values)[-1]
    k = tf.cast(tf.range(bins), tf.float32)
    pos = tf.clip_by_value(k / ratio[..., None], 0.0, tf.cast(bins - 1, tf.float32))  # (B, T, F)
    lower = tf.floor(pos)
    frac = pos - lower
    i0 = tf.cast(lower, tf.int32)
    i1 = tf.minimum(i0 + 1, bins - 1)
    return (1.0 - frac) * tf.gather(values, i0, batch_dims=2) + frac * tf.gather(values, i1, batch_dims=2)


def augment_vocal(vocal, config: Config, seed, only: str | None = None):
    """Augmented copy of normalised vocals ``[B, F, T, 1]``; ``seed`` is an int ``[2]`` stateless seed.

    ``only`` applies just that augmentation (always, ignoring its probability),
    for tests and for measuring each one's effect.
    """
    a = config.augment
    if only is None and not a.enabled:
        return vocal
    if only is not None and only not in NAMES:
        raise ValueError(f"unknown augmentation {only!r}; expected one of {list(NAMES)}")
    s = config.stft
    rate, span, floor = config.audio.sample_rate, s.db_ceiling - s.db_floor, s.db_floor
    bins, frames = int(vocal.shape[1]), int(vocal.shape[2])
    batch = tf.shape(vocal)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=24)
    counter = iter(range(24))

    def uniform(shape, low, high):
        return tf.random.stateless_uniform(shape, seeds[next(counter)], low, high)

    def chosen(name, p):
        """A ``[B, 1, 1]`` 0/1 mask of the examples this augmentation applies to."""
        draw = uniform([batch], 0.0, 1.0)
        if only is not None:
            return tf.fill([batch, 1, 1], 1.0 if only == name else 0.0)
        return tf.cast(draw < p, tf.float32)[:, None, None]

    x = tf.transpose(vocal[..., 0], [0, 2, 1])  # (B, T, F)
    db = (x + 1.0) * (0.5 * span) + floor
    silent = x <= -1.0 + 1e-6
    freqs = tf.constant(np.arange(bins) * rate / s.n_fft, tf.float32)

    # Envelope-type changes: in dB, on sounding cells only.
    use = chosen("formant", a.p_formant)
    log_ratio = math.log(max(a.formant_ratio, 1.0 + 1e-6))
    ratio = tf.exp(uniform([batch, 1], -log_ratio, log_ratio)) * tf.ones([1, frames])  # (B, T)
    smooth = tf.constant(smoothing_matrix(bins, rate / s.n_fft, ENVELOPE_HZ))
    envelope = tf.linalg.matmul(db, smooth)
    db += use * (_resample_rows(envelope, ratio) - envelope)

    use = chosen("tilt", a.p_tilt)
    slope = uniform([batch, 1, 1], -a.tilt_db_per_octave, a.tilt_db_per_octave)
    octaves = tf.math.log(tf.maximum(freqs, 62.5) / 1000.0) / math.log(2.0)  # (F,)
    db += use * slope * octaves

    use = chosen("level", a.p_level)
    db += use * uniform([batch, 1, 1], -a.level_db, a.level_db)

    use = chosen("vibrato", a.p_vibrato)
    seconds = tf.range(frames, dtype=tf.float32) * (s.hop_length / rate)  # (T,)
    depth = uniform([batch, 1], 0.0, a.vibrato_cents)
    speed = uniform([batch, 1], 4.0, 7.0)
    phase = uniform([batch, 1], 0.0, 2.0 * math.pi)
    bend = uniform([batch, 1], -a.bend_cents, a.bend_cents)
    cents = depth * tf.sin(2.0 * math.pi * speed * seconds + phase) + bend * (seconds / seconds[-1] * 2.0 - 1.0)
    ratio = tf.pow(2.0, use[..., 0] * cents / 1200.0)  # (B, T); 1 where not chosen
    db = _resample_rows(db, ratio)
    silent = _resample_rows(tf.cast(silent, tf.float32), ratio) > 0.5
    db = tf.where(silent, floor, tf.clip_by_value(db, floor, s.db_ceiling))

    # Additive changes: in the power domain.
    power = tf.exp(db * (_LOG10 / 10.0))  # (B, T, F)
    use = chosen("reverb", a.p_reverb)
    rt60 = uniform([batch, 1], a.reverb_seconds_low, a.reverb_seconds_high)
    wet = tf.exp(uniform([batch, 1], a.reverb_wet_db_low, a.reverb_wet_db_high) * (_LOG10 / 10.0))
    lag = tf.range(1, frames + 1, dtype=tf.float32) * (s.hop_length / rate)  # tail starts one frame late
    kernel = tf.exp(-6.0 * _LOG10 * lag / rt60)  # (B, T): -60 dB after rt60 seconds
    kernel = wet * kernel / tf.reduce_sum(kernel, axis=-1, keepdims=True)
    n = 2 * frames
    spectrum = tf.signal.rfft(tf.transpose(power, [0, 2, 1]), [n])  # (B, F, n/2 + 1)
    tail = tf.signal.irfft(spectrum * tf.signal.rfft(kernel, [n])[:, None, :], [n])[..., :frames]
    tail = tf.concat([tf.zeros_like(tail[..., :1]), tail[..., :-1]], axis=-1)  # lag of one frame
    power += use * tf.nn.relu(tf.transpose(tail, [0, 2, 1]))

    use = chosen("breath", a.p_breath)
    loudest = tf.reduce_max(tf.reduce_mean(power, axis=-1), axis=-1)[:, None, None]  # (B, 1, 1)
    level = tf.exp(uniform([batch, 1, 1], a.breath_db_low, a.breath_db_high) * (_LOG10 / 10.0))
    pink = 1.0 / tf.maximum(freqs, 100.0)
    pink = pink / tf.reduce_mean(pink)
    cells = -tf.math.log(uniform(tf.shape(power), 1e-7, 1.0))  # exponential(1): |complex Gaussian|^2
    power += use * loudest * level * pink * cells

    db = 10.0 * tf.math.log(tf.maximum(power, 1e-30)) / _LOG10
    out = tf.clip_by_value(2.0 * (db - floor) / span - 1.0, -1.0, 1.0)
    return tf.ensure_shape(tf.transpose(out, [0, 2, 1])[..., None], vocal.shape)
