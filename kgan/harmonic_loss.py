"""A training loss on harmony: chroma of the generated and the true accompaniment.

The pix2pix L1 term scores every spectrogram cell alike. The cells that carry
the harmony (a few partials per chord tone) are a small share of a window
beside drums, bass and onsets, and when the chord is uncertain the L1 optimum
is a blur of low energy over all candidate notes. ``chroma_loss`` scores what
``kgan.evaluation.chroma_motion`` measures, in the graph and differentiably:

* the normalised spectrogram ``[B, F, T, 1]`` is turned back into power on
  the global dB scale and folded into 12 pitch classes by a fixed matrix
  (``chroma_matrix``: each bin between ``low_hz`` and ``high_hz`` votes for
  its pitch class with a Gaussian kernel one semitone wide, as in
  ``librosa.filters.chroma``);
* each frame's chroma is scaled to unit length (shape, not loudness);
* *fit* is ``1 - cos`` of the frames' chroma, and *motion* is ``1 - cos`` of
  their deviations from the window's mean chroma: the part a key drone gets
  wrong. Frames where the true accompaniment is silent, or does not move, do
  not vote, as in the metric.

The loss is ``fit + motion`` per example, in [0, 4]. It is used in training
only (``train.chroma_weight``); the exported graph does not contain it.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

__all__ = ["chroma_matrix", "spectrogram_chroma", "chroma_loss", "chroma_distances", "reference_chroma"]


def chroma_matrix(sample_rate: int, n_fft: int, bins: int, low_hz: float = 55.0, high_hz: float = 4200.0):
    """``[bins, 12]``: the weight of each STFT bin in each pitch class (C = 0)."""
    freqs = np.arange(bins) * sample_rate / n_fft
    matrix = np.zeros((bins, 12), np.float32)
    inside = (freqs >= low_hz) & (freqs <= high_hz)
    midi = 69.0 + 12.0 * np.log2(np.maximum(freqs[inside], 1e-3) / 440.0)
    classes = np.arange(12)
    # circular distance in semitones from each bin's pitch to each pitch class
    distance = (midi[:, None] - classes[None, :] + 6.0) % 12.0 - 6.0
    matrix[inside] = np.exp(-0.5 * (distance / 0.5) ** 2)
    return matrix


def spectrogram_chroma(x, matrix, db_floor: float, db_ceiling: float):
    """Normalised spectrograms ``[B, F, T, 1]`` -> unit-length chroma ``[B, T, 12]`` and frame power ``[B, T]``."""
    x = tf.cast(x[..., 0], tf.float32)  # [B, F, T]
    db = (tf.clip_by_value(x, -1.0, 1.0) + 1.0) * 0.5 * (db_ceiling - db_floor) + db_floor
    power = tf.exp(db * (math.log(10.0) / 10.0))
    chroma = tf.einsum("bft,fc->btc", power, tf.constant(matrix))
    return tf.math.l2_normalize(chroma, axis=-1, epsilon=1e-12), tf.reduce_sum(chroma, axis=-1)


def _masked_cosine_distance(a, b, mask):
    """Mean over voting frames of ``1 - cos(a, b)`` per example ``[B]`` (0 where no frame votes)."""
    cos = tf.reduce_sum(tf.math.l2_normalize(a, -1, 1e-12) * tf.math.l2_normalize(b, -1, 1e-12), axis=-1)
    votes = tf.reduce_sum(mask, axis=-1)
    return tf.reduce_sum((1.0 - cos) * mask, axis=-1) / tf.maximum(votes, 1.0)


def chroma_loss(fake, target, matrix, db_floor: float, db_ceiling: float, **kwargs):
    """Per-example chroma fit + chord-motion distance ``[B]`` between generated and true accompaniment."""
    fit, motion = chroma_distances(fake, target, matrix, db_floor, db_ceiling, **kwargs)
    return fit + motion


def _loud(power, matrix, db_floor: float, silence_db: float, floor_margin_db: float):
    """Frames ``[..., T]`` (1.0) within ``silence_db`` of the loudest and ``floor_margin_db`` above the floor."""
    audible = 10.0 ** ((db_floor + floor_margin_db) / 10.0) * float(np.sum(matrix))
    loud = (power >= tf.reduce_max(power, axis=-1, keepdims=True) * 10.0 ** (-silence_db / 10.0)) & (power > audible)
    return tf.cast(loud, tf.float32)


def reference_chroma(accompaniment, matrix, db_floor: float, db_ceiling: float, silence_db: float = 50.0,
                     floor_margin_db: float = 20.0):
    """A whole segment's mean unit chroma ``[12]`` over its loud frames, from its ``[frames, bins]`` spectrogram.

    The motion term's reference with ``train.chroma_reference=segment``: the harmony a window's chords
    move away from, taken over the song's voiced stretch rather than the window alone.
    """
    c, power = spectrogram_chroma(tf.transpose(accompaniment)[None, ..., None], matrix, db_floor, db_ceiling)
    loud = _loud(power, matrix, db_floor, silence_db, floor_margin_db)
    return tf.reduce_sum(c[0] * loud[0][:, None], axis=0) / tf.maximum(tf.reduce_sum(loud), 1.0)


def chroma_distances(fake, target, matrix, db_floor: float, db_ceiling: float, silence_db: float = 50.0,
                     floor_margin_db: float = 20.0, still: float = 0.05, reference=None):
    """``chroma_loss``' two terms, per example: (fit distance ``[B]``, motion distance ``[B]``), each in [0, 2].

    Motion compares deviations from the window's own mean chroma of each signal, or, with ``reference``
    ``[B, 12]`` (``reference_chroma`` of the segment), both signals' deviations from that reference.

    A target frame votes when its chroma power is within ``silence_db`` of the
    window's loudest frame and ``floor_margin_db`` above the dB floor (a window
    of silence has no vote); in the motion term, only when its deviation from the
    window's mean chroma is at least ``still`` long (the metric's threshold).
    """
    fake_c, _ = spectrogram_chroma(fake, matrix, db_floor, db_ceiling)
    true_c, power = spectrogram_chroma(target, matrix, db_floor, db_ceiling)
    loud = _loud(power, matrix, db_floor, silence_db, floor_margin_db)
    fit = _masked_cosine_distance(fake_c, true_c, loud)

    def deviation(c):
        if reference is not None:
            return c - tf.cast(reference, tf.float32)[:, None, :]
        mean = tf.reduce_sum(c * loud[..., None], axis=1, keepdims=True) / tf.maximum(
            tf.reduce_sum(loud, axis=1)[:, None, None], 1.0)
        return c - mean

    true_d = deviation(true_c)
    moving = loud * tf.cast(tf.norm(true_d, axis=-1) >= still, tf.float32)
    motion = _masked_cosine_distance(deviation(fake_c), true_d, moving)
    return fit, motion
