"""Chords from a melody: what the accompaniment plays, and a network that guesses it from the vocal alone.

A generator that must both harmonise a melody and render the harmony learns
neither from spectrogram losses (README, "Voices it never heard"). This module
splits the first job off and supervises it directly:

* ``chord_labels``: the chord the *true* accompaniment plays in each frame,
  read from its normalised spectrogram (``kgan.harmonic_loss``' chroma above
  ``LABEL_LOW_HZ``,
  averaged over ``LABEL_SECONDS`` so a passing note does not count, matched
  against the 24 major and minor triads by cosine); ``NO_CHORD`` where the
  accompaniment is silent. Shapes: ``[B, F, T, 1]`` -> int32 ``[B, T]``.
* ``ChordNet``: the tracked melody (``VocalFeatures.melody``: the sung pitch
  class per frame weighted by voicing, level and voicing, ``[B, T, 14]``;
  timbre-free, since only the pitch class survives) -> chord logits
  ``[B, T, 25]``. Dilated 1-D convolutions over frames (several seconds each
  side) with the melody's pitch-class histogram over the whole input (its key),
  shared by twelve branches, one per candidate root, so that it is the same
  network in every key. Fully convolutional: trained on crops, it runs on a
  whole song at once.
* ``transpose``: the same song ``k`` semitones up, for features and labels
  together, so a training batch covers every key.

Labels and features come from the same normalised spectrograms the models see,
through core TF ops (matmuls, reductions, convolutions).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from kgan.features import box_filter, triads
from kgan.harmonic_loss import chroma_matrix, spectrogram_chroma
from kgan.io_utils import atomic_write_text, read_json, resumable_checkpoint, score_chords, split_names

__all__ = ["NO_CHORD", "CLASSES", "FEATURES", "chord_labels", "chord_notes", "transpose", "MelodyOnsets", "ChordNet",
           "PlanRenderer", "melody_layer", "track_labels", "frame_centres", "song_arrays", "corpus_arrays",
           "frame_accuracy",
           "train_chord_net", "load_chord_net", "CHORDNET_WEIGHTS", "CHORDS_JSON"]

NO_CHORD = 24  # the class of a frame with no accompaniment
CLASSES = 25  # 12 major triads (even ids), 12 minor (odd ids), no chord
FEATURES = 14  # VocalFeatures.melody: 12 pitch classes, level, voicing
GRID = 4  # meter_grid: cos/sin of the beat phase, cos/sin of the chord-segment phase
LABEL_SECONDS = 0.25  # the accompaniment's chroma is averaged over this much around a frame
SILENCE_DB = 40.0  # frames this far below the song's (window's) loudest carry no chord
# The chroma of the labels starts here. Below it a 21.5-Hz bin spans more than a semitone, and the bins'
# centres fall near F, A and C (86, 108, 129 Hz): from 55 Hz on, F major won 54 % of the frames of ten corpus
# songs and the oracle plan's chord motion was 0.27; from 250 Hz, 15 % and 0.42. The bass still counts
# through its harmonics.
LABEL_LOW_HZ = 250.0
CHORDNET_WEIGHTS = "chordnet.weights.h5"
CHORDS_JSON = "chords.json"


def chord_labels(accompaniment, sample_rate: int, n_fft: int, hop_length: int, db_floor: float, db_ceiling: float,
                 seconds: float = LABEL_SECONDS, silence_db: float = SILENCE_DB):
    """The triad the accompaniment ``[B, F, T, 1]`` (normalised) plays per frame: int32 ``[B, T]``.

    0..23 as ``kgan.features.triads`` (root C first, major then minor), ``NO_CHORD``
    where the frame is more than ``silence_db`` below the loudest frame of its row or
    within 20 dB of the spectrogram's floor.
    """
    bins = int(accompaniment.shape[1])
    matrix = chroma_matrix(sample_rate, n_fft, bins, low_hz=LABEL_LOW_HZ)
    chroma, power = spectrogram_chroma(accompaniment, matrix, db_floor, db_ceiling)  # (B, T, 12), (B, T)
    width = max(1, int(round(seconds * sample_rate / hop_length)))
    weighted = box_filter(chroma * power[..., None] ** 0.5, width)  # louder frames count more inside the average
    templates = tf.math.l2_normalize(tf.constant(triads()), axis=-1)
    score = tf.linalg.matmul(tf.math.l2_normalize(weighted, -1, 1e-12), templates, transpose_b=True)  # (B, T, 24)
    label = tf.argmax(score, axis=-1, output_type=tf.int32)
    audible = 10.0 ** ((db_floor + 20.0) / 10.0) * float(np.sum(matrix))
    loud = (power >= tf.reduce_max(power, axis=-1, keepdims=True) * 10.0 ** (-silence_db / 10.0)) & (power > audible)
    return tf.where(loud, label, NO_CHORD)


def chord_notes(labels):
    """Chord ids ``[..., T]`` -> their pitch classes ``[..., T, 12]`` (1 on the triad's tones; 0 for no chord)."""
    table = np.concatenate([triads(), np.zeros((1, 12), np.float32)])
    return tf.gather(tf.constant(table), tf.cast(labels, tf.int32))


def transpose(features, labels, semitones):
    """Features ``[B, T, 14]`` and labels ``[B, T]`` of the same melody ``semitones`` (``[B]``) higher."""
    k = tf.reshape(tf.cast(semitones, tf.int32), [-1, 1])  # (B, 1)
    index = (tf.range(12)[None, :] - k) % 12  # new class c takes old class c - k
    classes = tf.gather(features[..., :12], index, axis=2, batch_dims=1)
    moved = 2 * ((labels // 2 + k) % 12) + labels % 2
    return tf.concat([classes, features[..., 12:]], axis=-1), tf.where(labels == NO_CHORD, NO_CHORD, moved)


@keras.saving.register_keras_serializable(package="kgan")
class MelodyHistogram(keras.layers.Layer):
    """``[B, T, 14]`` melody features -> ``[B, 1, 12]``: the pitch classes of the whole input, summing to 1."""

    def call(self, x):
        total = tf.reduce_sum(x[..., :12], axis=1, keepdims=True)
        return total / tf.maximum(tf.reduce_sum(total, axis=-1, keepdims=True), 1e-6)


@keras.saving.register_keras_serializable(package="kgan")
class MelodyOnsets(keras.layers.Layer):
    """``[B, T, 14]`` melody features -> ``[B, T, 2]``: where notes start, the raw material of the meter.

    Channel 0: how far the pitch class moved from the frame before (half the L1 distance of the 12
    classes: 1 for a new note after a voiced one, 0.5 for a note out of silence); channel 1: the level's
    rise (the ReLU of its difference), which also marks a repeated note. Transposition-invariant.
    """

    def call(self, x):
        return note_starts(x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], 2)


def note_starts(x):
    """``MelodyOnsets``' two channels of melody features ``[B, T, 14]``: ``[B, T, 2]``."""
    before = tf.concat([x[:, :1], x[:, :-1]], axis=1)
    change = 0.5 * tf.reduce_sum(tf.abs(x[..., :12] - before[..., :12]), axis=-1, keepdims=True)
    return tf.concat([change, tf.nn.relu(x[..., 12:13] - before[..., 12:13])], axis=-1)


def onset_envelope(x):
    """Melody features ``[B, T, 14]`` -> ``[B, T]``: pitch-class change plus level rise (``MelodyOnsets``' two
    channels summed), smoothed by a Gaussian of σ 2 frames."""
    o = tf.reduce_sum(note_starts(tf.cast(x, tf.float32)), axis=-1)  # (B, T)
    taps = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
    kernel = tf.constant((taps / taps.sum()).reshape(-1, 1, 1), tf.float32)
    return tf.nn.conv1d(o[..., None], kernel, 1, "SAME")[..., 0]


@keras.saving.register_keras_serializable(package="kgan")
class MelodyBeats(keras.layers.Layer):
    """``[B, T, 14]`` melody features -> ``[B, T, 2 * len(levels)]``: an estimated beat grid of the whole input.

    The meter is what the melody alone does not tell a chord network (a harmoniser changes chord on
    strong beats and makes the notes there chord tones), so it is estimated, with no weights:

    1. an onset envelope: ``MelodyOnsets``' pitch-class change plus level rise, Gaussian-smoothed (σ 2 frames);
    2. the beat period: the envelope's autocorrelation (by FFT), its lags 2x and 3x added at 0.5 and 0.3
       (so a period whose multiples also repeat wins), under a log-normal tempo prior around ``centre``
       seconds (σ one octave), between 0.25 and 2 s, refined by a parabola through the peak;
    3. for each ``m`` in ``levels``: the phase of the envelope's Fourier component at ``m`` periods, so
       phase 0 falls where the onsets concentrate; the output is its cosine and sine per frame.

    One tempo for the whole input (songs in strict time; a rubato performance gets a blurred grid).
    Transposition-invariant. The same for any batch row length above a few beats; silence gives 0.
    """

    def __init__(self, frame_rate: float, levels=(1, 2, 3, 4), centre: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.frame_rate, self.levels, self.centre = float(frame_rate), tuple(int(m) for m in levels), float(centre)

    def get_config(self):
        return {**super().get_config(), "frame_rate": self.frame_rate, "levels": list(self.levels),
                "centre": self.centre}

    def call(self, x):
        o = onset_envelope(x)  # (B, T)
        t = tf.shape(o)[1]
        centred = o - tf.reduce_mean(o, axis=1, keepdims=True)
        power = tf.abs(tf.signal.rfft(centred, fft_length=[2 * t])) ** 2
        r = tf.signal.irfft(tf.cast(power, tf.complex64), fft_length=[2 * t])[:, :t]  # (B, T) autocorrelation
        r = r / (r[:, :1] + 1e-9)
        lags = tf.range(t)
        harmonics = (r + 0.5 * tf.gather(r, tf.minimum(2 * lags, t - 1), axis=1)
                     + 0.3 * tf.gather(r, tf.minimum(3 * lags, t - 1), axis=1))
        seconds = tf.cast(lags, tf.float32) / self.frame_rate
        prior = tf.exp(-0.5 * tf.square(tf.math.log(tf.maximum(seconds, 1e-3) / self.centre) / np.log(2.0)))
        score = tf.where((seconds >= 0.25) & (seconds <= 2.0), harmonics * prior, -1e9)  # (B, T)
        best = tf.argmax(score, axis=1, output_type=tf.int32)  # (B,)
        low, high = tf.maximum(best - 1, 0), tf.minimum(best + 1, t - 1)
        y0, y1, y2 = (tf.gather(score, i, axis=1, batch_dims=1) for i in (low, best, high))
        curve = y0 - 2 * y1 + y2
        shift = tf.where((y0 > -1e8) & (y2 > -1e8) & (curve < 0), 0.5 * (y0 - y2) / tf.minimum(curve, -1e-12), 0.0)
        period = tf.maximum(tf.cast(best, tf.float32) + tf.clip_by_value(shift, -0.5, 0.5), 1.0)  # (B,) frames
        frames = tf.cast(lags, tf.float32)[None, :]  # (1, T)
        out = []
        for m in self.levels:
            w = 2.0 * np.pi * frames / (m * period[:, None])  # (B, T)
            offset = tf.atan2(-tf.reduce_sum(o * tf.sin(w), axis=1), tf.reduce_sum(o * tf.cos(w), axis=1))
            phase = w + offset[:, None]
            out += [tf.cos(phase), tf.sin(phase)]
        grid = tf.stack(out, axis=-1)  # (B, T, 2 * levels)
        voiced = tf.cast(tf.reduce_max(o, axis=1) > 1e-6, tf.float32)[:, None, None]
        return grid * voiced

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], 2 * len(self.levels))


@keras.saving.register_keras_serializable(package="kgan")
class Rotations(keras.layers.Layer):
    """``[B, T, 14]`` -> ``[12 B, T, 14]``: branch ``r`` (rows ``r B`` to ``(r + 1) B``) holds the melody
    ``r`` semitones lower, so that pitch class ``r`` becomes C (level and voicing unchanged)."""

    def call(self, x):
        index = (np.arange(12)[:, None] + np.arange(12)[None, :]) % 12  # [r, c]: branch r's class c is old c + r
        classes = tf.gather(x[..., :12], tf.constant(index.reshape(-1), tf.int32), axis=-1)  # (B, T, 144)
        classes = tf.reshape(classes, [tf.shape(x)[0], tf.shape(x)[1], 12, 12])
        rest = tf.broadcast_to(x[:, :, None, 12:], [tf.shape(x)[0], tf.shape(x)[1], 12, FEATURES - 12])
        branches = tf.transpose(tf.concat([classes, rest], axis=-1), [2, 0, 1, 3])  # (12, B, T, 14)
        return tf.reshape(branches, [-1, tf.shape(x)[1], FEATURES])

    def compute_output_shape(self, input_shape):
        return (None, input_shape[1], FEATURES)


@keras.saving.register_keras_serializable(package="kgan")
class Branches(keras.layers.Layer):
    """``[B, T, C]`` -> ``[12 B, T, C]``: a transposition-invariant input repeated for every branch of ``Rotations``."""

    def call(self, x):
        return tf.tile(x, [12, 1, 1])

    def compute_output_shape(self, input_shape):
        return (None, input_shape[1], input_shape[2])


@keras.saving.register_keras_serializable(package="kgan")
class ChordLogits(keras.layers.Layer):
    """Branch outputs ``[12 B, T, 3]`` (C major, C minor, no chord, in each branch's key) -> logits ``[B, T, 25]``.

    Branch ``r``'s C major is the major triad on root ``r``; no chord is the branches' mean.
    """

    def call(self, x):
        per_root = tf.reshape(x, [12, -1, tf.shape(x)[1], 3])  # (12, B, T, 3)
        triads = tf.reshape(tf.transpose(per_root[..., :2], [1, 2, 0, 3]), [-1, tf.shape(x)[1], 24])  # 2 root + minor
        return tf.concat([triads, tf.reduce_mean(per_root[..., 2:], axis=0)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (None, input_shape[1], CLASSES)


@keras.saving.register_keras_serializable(package="kgan")
class CropTo(keras.layers.Layer):
    """``[x, reference]`` -> ``x`` cut to the reference's frame count (after upsampling by a whole factor)."""

    def call(self, inputs):
        x, reference = inputs
        return x[:, : tf.shape(reference)[1]]

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[1][1], input_shape[0][2])


@keras.saving.register_keras_serializable(package="kgan")
class ChordNet(keras.Model):
    """Melody features ``[B, T, 14]`` -> chord logits ``[B, T, 25]`` (any ``T``), the same in every key.

    Transposition-equivariant by construction: one network, shared by twelve branches
    (``Rotations``), each hearing the melody moved so that a candidate root is C and scoring
    "C major", "C minor" and "no chord" there (``ChordLogits``). So a melody sung a tone higher
    gets the same chords a tone higher, and every training song teaches every key at once.
    Each branch averages ``pool`` frames (chords change slowly), adds the whole input's
    pitch-class histogram (``MelodyHistogram``: the key, as heard from that root), and runs
    ``channels``-wide residual blocks of a ReLU and a ``kernel``-tap convolution with dilation
    ``d`` for each ``d`` in ``dilations``, the whole sequence ``stacks`` times: a receptive field of
    ``1 + stacks * (kernel - 1) * sum(dilations)`` pooled frames (127 by default, of 8 frames each: 5.9 s
    each side at 86 frames/s). With ``onsets``, each pooled step also hears its strongest note start
    (``MelodyOnsets``), so the network can find the beats and the notes on them; with ``meter``, the beat
    grid ``MelodyBeats`` estimates from them. With ``grid``, a second input ``[B, T, 4]`` is the song's
    known beat grid (``meter_grid``; zeros where it is unknown, which training teaches by dropping it):
    where its strong beats fall and where its chords may change. The logits are repeated back to every
    frame. Call it through ``chord_logits``, which gives a grid network an unknown grid by default.
    """

    def __init__(self, channels: int = 48, kernel: int = 3, dilations=(1, 2, 4, 8, 16, 32), pool: int = 8,
                 onsets: bool = False, stacks: int = 1, meter: bool = False, frame_rate: float = 22050 / 256,
                 grid: bool = False, name: str = "chord_net", **kwargs):
        melody = keras.Input((None, FEATURES), name="melody")  # (B, T, 14)
        known = keras.Input((None, GRID), name="grid") if grid else None  # (B, T, 4): meter_grid, zeros if unknown
        branches = Rotations(name="rotations")(melody)  # (12B, T, 14)
        pooled = keras.layers.AveragePooling1D(pool, padding="same", name="pool")(branches)  # (12B, T/pool, 14)
        if onsets:  # the strongest note start inside each pooled step: where the beats fall
            starts = keras.layers.MaxPooling1D(pool, padding="same", name="onset_pool")(
                MelodyOnsets(name="onsets")(melody))  # (B, T/pool, 2), the same in every key
            pooled = keras.layers.Concatenate(name="with_onsets")([pooled, Branches(name="onset_branches")(starts)])
        if meter:  # the estimated beat grid: where the strong beats fall
            beats = keras.layers.AveragePooling1D(pool, padding="same", name="beat_pool")(
                MelodyBeats(frame_rate, name="beats")(melody))  # (B, T/pool, 8), the same in every key
            pooled = keras.layers.Concatenate(name="with_beats")([pooled, Branches(name="beat_branches")(beats)])
        if grid:  # the song's beat grid, when the user knows it
            told = keras.layers.AveragePooling1D(pool, padding="same", name="grid_pool")(known)
            pooled = keras.layers.Concatenate(name="with_grid")([pooled, Branches(name="grid_branches")(told)])
        x = keras.layers.Conv1D(channels, 1, name="embed")(pooled)  # (12B, T/pool, C)
        key = keras.layers.Dense(channels, name="key_embed")(MelodyHistogram(name="histogram")(branches))  # (12B, 1, C)
        x = keras.layers.Add(name="with_key")([x, key])
        for i, d in enumerate(tuple(dilations) * stacks):
            h = keras.layers.Activation("relu", name=f"block{i}_relu")(x)
            h = keras.layers.Conv1D(channels, kernel, dilation_rate=d, padding="same", name=f"block{i}_conv")(h)
            x = keras.layers.Add(name=f"block{i}_add")([x, h])  # (12B, T/pool, C)
        x = keras.layers.Activation("relu", name="head_relu")(x)
        x = keras.layers.Conv1D(3, 1, name="branch_logits", dtype="float32")(x)  # (12B, T/pool, 3)
        logits = ChordLogits(name="chord_logits", dtype="float32")(x)  # (B, T/pool, 25)
        logits = keras.layers.UpSampling1D(pool, name="unpool", dtype="float32")(logits)
        logits = CropTo(name="logits", dtype="float32")([logits, melody])  # (B, T, 25)
        super().__init__(inputs=[melody, known] if grid else melody, outputs=logits, name=name, **kwargs)
        self.channels, self.kernel, self.pool = channels, kernel, pool
        self.dilations = tuple(int(d) for d in dilations)
        self.onsets, self.stacks = bool(onsets), int(stacks)
        self.meter, self.frame_rate, self.grid = bool(meter), float(frame_rate), bool(grid)

    def get_config(self):
        return {"channels": self.channels, "kernel": self.kernel, "dilations": list(self.dilations),
                "pool": self.pool, "onsets": self.onsets, "stacks": self.stacks, "meter": self.meter,
                "frame_rate": self.frame_rate, "grid": self.grid, "name": self.name,
                "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def chord_logits(net, melody, grid=None, training: bool = False):
    """``net``'s logits for melody features ``[B, T, 14]``; a ``grid`` network also takes ``meter_grid``'s
    ``[B, T, 4]`` (zeros, unknown, when None). A network without a grid input ignores ``grid``."""
    if not getattr(net, "grid", False):
        return net(melody, training=training)
    melody = tf.convert_to_tensor(melody, tf.float32)
    if grid is None:
        shape = tf.shape(melody)
        grid = tf.zeros([shape[0], shape[1], GRID], tf.float32)
    return net([melody, tf.convert_to_tensor(grid, tf.float32)], training=training)


def viterbi_chords(logits, switch_penalty: float, pool: int = 8):
    """Chord logits ``[B, T, K]`` -> int32 ``[B, T]``: the chord sequence with the highest summed log-probability
    minus ``switch_penalty`` for every change, so a chord holds unless another one is clearly likelier for long.

    Decoded over ChordNet's pooled steps (every ``pool``-th frame; its logits are constant within a step) with
    ``tf.scan`` (core ops), and repeated back to every frame. A penalty of 0 is the argmax.
    """
    logits = tf.convert_to_tensor(logits, tf.float32)
    frames, chords = tf.shape(logits)[1], tf.shape(logits)[2]
    steps = tf.transpose(tf.nn.log_softmax(logits[:, ::pool], axis=-1), [1, 0, 2])  # (S, B, K)
    stay = tf.range(chords)[None, :]  # (1, K): each chord's own predecessor when it holds

    def forward(carry, emission):
        score, _ = carry  # (B, K): the best path ending in each chord
        best = tf.argmax(score, axis=-1, output_type=tf.int32)[:, None]  # (B, 1)
        switched = tf.reduce_max(score, axis=-1, keepdims=True) - switch_penalty
        back = tf.where(score >= switched, stay, best)  # (B, K)
        return tf.maximum(score, switched) + emission, back

    first = (steps[0], tf.zeros_like(steps[0], tf.int32) + stay)
    scores, backs = tf.scan(forward, steps[1:], initializer=first)  # (S - 1, B, K) each
    last = tf.concat([steps[0:1], scores], axis=0)[-1]  # (B, K)
    end = tf.argmax(last, axis=-1, output_type=tf.int32)  # (B,)

    def backward(chord, back):  # the chord at the step before, from this step's pointers
        return tf.gather(back, chord, axis=1, batch_dims=1)

    earlier = tf.scan(backward, backs, initializer=end, reverse=True)  # (S - 1, B): the chords of steps 0..S-2
    path = tf.transpose(tf.concat([earlier, end[None]], axis=0))  # (B, S)
    return tf.repeat(path, pool, axis=1)[:, :frames]


class PlanRenderer:
    """Chord plans as the ``plan`` input's second channel: ``[B, F, T, 1]`` in [-1, 1] (``kgan.features``).

    ``true_plan`` reads the chords of a true accompaniment (training); ``image`` renders any chord
    labels, e.g. ``ChordNet``'s argmax (inference). A triad is its three pitch classes at every
    octave from 55 Hz to 5 kHz, each frame's peak at +1; no chord is -1 everywhere.
    """

    def __init__(self, config):
        from kgan.features import class_matrix

        s = config.stft
        self.sample_rate, self.n_fft, self.hop_length = config.audio.sample_rate, s.n_fft, s.hop_length
        self.db_floor, self.db_ceiling = s.db_floor, s.db_ceiling
        self.render = tf.constant(class_matrix(s.num_bins, self.sample_rate / self.n_fft))

    def image(self, labels):
        """Chord ids ``[B, T]`` -> the plan plane ``[B, F, T, 1]``."""
        return self._plane(chord_notes(labels))

    def soft_image(self, logits):
        """Chord logits ``[B, T, 25]`` -> the plan plane ``[B, F, T, 1]`` of every triad's tones weighted by its
        probability (no chord weighs nothing), each frame's strongest partial at +1."""
        return self._plane(tf.linalg.matmul(tf.nn.softmax(logits, axis=-1), chord_notes(tf.range(CLASSES))))

    def _plane(self, notes):
        from kgan.features import render_classes

        plane = 2.0 * render_classes(notes, self.render) - 1.0  # (B, T, F)
        return tf.transpose(plane, [0, 2, 1])[..., None]

    def labels(self, accompaniment):
        """The true chords ``[B, T]`` of normalised accompaniments ``[B, F, T, 1]``."""
        return chord_labels(accompaniment, self.sample_rate, self.n_fft, self.hop_length, self.db_floor,
                            self.db_ceiling)

    def true_plan(self, accompaniment, seed=None, corruption: float = 0.0, blocks: int = 4, labels=None):
        """The plan plane of the accompaniment's own chords, with ``corruption`` of ``blocks`` per row made wrong.

        The chords are ``labels`` (int ``[B, T]``, e.g. the score's) where they are >= 0, else read from the
        ``accompaniment``. A corrupted block's chords move by a random 1..11 semitones (a wrong root, the
        same quality), drawn from the stateless ``seed`` (int64 ``[2]``).
        """
        heard = self.labels(accompaniment)
        labels = heard if labels is None else tf.where(labels >= 0, tf.cast(labels, tf.int32), heard)
        if corruption > 0:
            b, t = tf.shape(labels)[0], tf.shape(labels)[1]
            wrong = tf.random.stateless_uniform([b, blocks], seed=seed) < corruption
            shift = tf.random.stateless_uniform([b, blocks], seed=seed + 1, minval=1, maxval=12, dtype=tf.int32)
            block = tf.minimum(tf.range(t) * blocks // t, blocks - 1)  # (T,) each frame's block
            moved = tf.gather(tf.where(wrong, shift, 0), block, axis=1)  # (B, T)
            labels = tf.where(labels == NO_CHORD, NO_CHORD, 2 * ((labels // 2 + moved) % 12) + labels % 2)
        return self.image(labels)


# ------------------------------------------------------------------------------------------ training

def melody_layer(config):
    """A ``VocalFeatures`` layer whose ``melody`` reads the tracked melody at ``config``'s STFT."""
    from kgan.features import VocalFeatures, layer_arguments

    return VocalFeatures(**{**layer_arguments(config), "kind": "track"}, name="melody")


def track_labels(track, frames: int, config, fill: int = NO_CHORD) -> np.ndarray:
    """A score's chords ``[[start s, end s, id], ...]`` (a corpus song's ``chord_track``) -> int8 ``[frames]``.

    A frame takes the chord sounding at its centre (``kgan.spectrogram``: frame ``t`` covers samples
    ``[t*hop - (n_fft - hop), t*hop + hop)``); ``fill`` where none does.
    """
    centre = frame_centres(frames, config)
    out = np.full(frames, fill, np.int8)
    for start, end, chord in track:
        out[(centre >= start) & (centre < end)] = chord
    return out


def frame_centres(frames: int, config) -> np.ndarray:
    """``frame_seconds`` in numpy: float64 ``[frames]``."""
    s = config.stft
    return (np.arange(frames) * s.hop_length + s.hop_length - s.n_fft / 2) / config.audio.sample_rate


def frame_seconds(frames, config):
    """float32 ``[frames]``: each frame's centre in seconds (``kgan.spectrogram``'s frame ``t`` is centred at
    ``t * hop + hop - n_fft / 2`` samples)."""
    s = config.stft
    return ((tf.cast(tf.range(frames), tf.float32) * s.hop_length + s.hop_length - s.n_fft / 2)
            / config.audio.sample_rate)


def meter_grid(meter, frames, config):
    """Known beat grids ``[B, 3]`` (seconds a beat, seconds a chord segment, first downbeat s; a row of
    zeros: unknown) -> ``[B, frames, 4]``: the cosine and sine of each frame centre's phase
    (``frame_seconds``) within its beat and its chord segment; zeros for an unknown grid. Core ops only
    (it runs in the exported graph)."""
    meter = tf.reshape(tf.cast(meter, tf.float32), [-1, 3])
    centre = frame_seconds(frames, config)
    known = meter[:, 0] > 0
    beat, segment = (tf.where(known, meter[:, i], 1.0)[:, None] for i in (0, 1))
    beat_phase = 2 * np.pi * centre[None] / beat
    segment_phase = 2 * np.pi * (centre[None] - meter[:, 2:3]) / tf.where(segment > 0, segment, beat)
    grid = tf.stack([tf.cos(beat_phase), tf.sin(beat_phase), tf.cos(segment_phase), tf.sin(segment_phase)], -1)
    return grid * tf.cast(known, tf.float32)[:, None, None]


def refine_meter(melody, meter, config, span: float = 0.05, candidates: int = 101):
    """A user's beat grids ``[B, 3]`` fitted to the sung melody ``[B, T, 14]``: a tempo given a few per cent off,
    or a downbeat a little early or late, is pulled onto the note starts.

    The beat period is the one, within ``span`` of the given one (``candidates`` steps), at which the
    melody's onset envelope (``onset_envelope``) has the largest Fourier component: over a whole chunk that
    resolves the tempo to a fraction of a per cent, where an autocorrelation lag resolves one frame. The
    chord segment scales with it, and the downbeat moves to the nearest beat of the envelope's phase at
    that period, so which beat starts the bar stays the user's. Rows that are zeros (unknown) or whose
    melody has no note start stay as they are. Core ops only.
    """
    meter = tf.reshape(tf.cast(meter, tf.float32), [-1, 3])
    o = onset_envelope(melody)  # (B, T)
    o = o - tf.reduce_mean(o, axis=1, keepdims=True)
    centre = frame_seconds(tf.shape(o)[1], config)  # (T,)
    beat, segment, downbeat = meter[:, 0], meter[:, 1], meter[:, 2]
    known = (beat > 0) & (tf.reduce_max(tf.abs(o), axis=1) > 1e-6)
    periods = tf.where(beat > 0, beat, 1.0)[:, None] * tf.linspace(1.0 - span, 1.0 + span, candidates)[None]  # (B, C)
    w = 2 * np.pi * centre[None, None, :] / periods[..., None]  # (B, C, T)
    real = tf.reduce_sum(o[:, None, :] * tf.cos(w), axis=-1)
    imag = tf.reduce_sum(o[:, None, :] * tf.sin(w), axis=-1)
    best = tf.argmax(real * real + imag * imag, axis=1, output_type=tf.int32)  # (B,)
    period = tf.gather(periods, best, axis=1, batch_dims=1)
    onset_phase = tf.atan2(-tf.gather(imag, best, axis=1, batch_dims=1), tf.gather(real, best, axis=1, batch_dims=1))
    at_downbeat = 2 * np.pi * downbeat / period + onset_phase  # 0 (mod 2π) on the melody's beats
    off = tf.math.floormod(at_downbeat + np.pi, 2 * np.pi) - np.pi
    refined = tf.stack([period, segment * period / tf.where(beat > 0, beat, 1.0),
                        downbeat - off / (2 * np.pi) * period], axis=1)
    return tf.where(known[:, None], refined, meter)


def song_arrays(vocal, accompaniment, config, spec=None, layer=None, planner=None, track=None):
    """One song's melody features float16 ``[T, 14]`` and true chords int8 ``[T]`` (waveforms at the config's rate).

    The chords are the score's (``track``, see ``track_labels``) when given, else read from the accompaniment
    (``chord_labels``).
    """
    from kgan.spectrogram import Spectrogram

    spec = spec or Spectrogram(config.stft)
    layer = layer or melody_layer(config)

    def image(x):  # (1, F, T, 1)
        return tf.transpose(spec.to_model(tf.constant(np.asarray(x, np.float32)[None])), [0, 2, 1])[..., None]

    features = layer.melody(image(vocal)).numpy()[0]
    if track is not None:
        labels = track_labels(track, len(features), config)
    else:
        labels = (planner or PlanRenderer(config)).labels(image(accompaniment)).numpy()[0]
    n = min(len(features), len(labels))
    return features[:n].astype(np.float16), labels[:n].astype(np.int8)


def song_grids(corpus_dir: str, names, lengths, config) -> np.ndarray:
    """float16 ``[sum(lengths), 4]``: each song's ``meter_grid`` from its ``song.json`` (``kgan.harmony.song_meter``:
    tempo, meter, pickup), zeros for a song without a tempo."""
    from kgan.harmony import song_meter
    from kgan.io_utils import song_info

    grids = []
    for name, n in zip(names, lengths):
        meter = song_meter(song_info(os.path.join(corpus_dir, name))) or (0.0, 0.0, 0.0)
        grids.append(meter_grid(np.array([meter], np.float32), int(n), config).numpy()[0].astype(np.float16))
    return np.concatenate(grids) if grids else np.zeros((0, GRID), np.float16)


def corpus_arrays(corpus_dir: str, split: str, config, cache: str | None = None, progress: bool = True,
                  labels: str = "score") -> dict:
    """``features`` ``[N, 14]``, ``labels`` ``[N]``, ``grid`` ``[N, 4]`` (``song_grids``) and per-song ``lengths``
    of a corpus split, songs end to end.

    ``labels="score"`` takes each song's chords from its score (``chord_track`` in ``song.json``) and
    falls back to the audio for songs without one (corpora built before it was written); ``"audio"``
    reads them all from the accompaniment. ``from_score`` counts the songs labelled from their score.

    Read from ``cache`` (an ``.npz``) when it exists; otherwise computed song by song and written there
    (under a temporary name, then renamed).
    """
    if cache and os.path.exists(cache):
        arrays = dict(np.load(cache))
        if "grid" not in arrays:  # a cache written before the grids were: they need no audio
            arrays["grid"] = song_grids(corpus_dir, split_names(corpus_dir, split), arrays["lengths"], config)
        return arrays
    from tqdm import tqdm

    from kgan.preprocess import find_sources, load_sources
    from kgan.spectrogram import Spectrogram

    names = split_names(corpus_dir, split)
    if labels not in ("score", "audio"):
        raise ValueError(f"labels: expected 'score' or 'audio', got {labels!r}")
    spec, layer, planner = Spectrogram(config.stft), melody_layer(config), PlanRenderer(config)
    features, truths, from_score = [], [], 0
    for name in tqdm(names, desc=f"melody and chords ({split})", unit="song", disable=not progress):
        folder = os.path.join(corpus_dir, name)
        vocal, accompaniment = load_sources(find_sources(folder), config.audio.sample_rate)
        track = score_chords(folder) if labels == "score" else None
        from_score += track is not None
        f, y = song_arrays(vocal, accompaniment, config, spec, layer, planner, track)
        features.append(f)
        truths.append(y)
    if not names:
        raise ValueError(f"{corpus_dir}: no {split} songs (expected a kgan corpus folder with splits.json)")
    lengths = np.array([len(y) for y in truths])
    arrays = {"features": np.concatenate(features), "labels": np.concatenate(truths), "lengths": lengths,
              "from_score": np.array(from_score), "grid": song_grids(corpus_dir, names, lengths, config)}
    if cache:
        tmp = f"{cache}.tmp-{os.getpid()}.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, cache)
    return arrays


def _crops(arrays: dict, batch: int, frames: int, rng: np.random.Generator):
    """A batch of ``frames``-long crops: features ``[B, frames, 14]``, labels ``[B, frames]``, transpositions ``[B]``
    and grids ``[B, frames, 4]`` (zeros for arrays without them)."""
    lengths = arrays["lengths"]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    usable = np.flatnonzero(lengths >= frames)
    if not usable.size:
        usable = np.arange(len(lengths))
        frames = int(lengths.min())
    songs = rng.choice(usable, batch)
    offsets = starts[songs] + (rng.random(batch) * (lengths[songs] - frames + 1)).astype(int)
    idx = offsets[:, None] + np.arange(frames)[None, :]
    grid = arrays["grid"][idx].astype(np.float32) if "grid" in arrays else np.zeros((batch, frames, GRID), np.float32)
    return (arrays["features"][idx].astype(np.float32), arrays["labels"][idx].astype(np.int32),
            rng.integers(0, 12, batch).astype(np.int32), grid)


def frame_accuracy(net, arrays: dict, grid: bool = True) -> float:
    """The share of frames with a true chord where ``net``, run on each whole song, names that chord
    (told each song's grid if ``grid`` and it has one, else not)."""
    hits = total = 0
    start = 0
    for n in arrays["lengths"]:
        told = arrays["grid"][None, start:start + n].astype(np.float32) if grid and "grid" in arrays else None
        logits = chord_logits(net, arrays["features"][None, start:start + n].astype(np.float32), told).numpy()[0]
        y = arrays["labels"][start:start + n]
        chord = y != NO_CHORD
        hits += int((logits.argmax(-1)[chord] == y[chord]).sum())
        total += int(chord.sum())
        start += n
    return hits / max(total, 1)


def train_chord_net(corpus_dir: str, out_dir: str, config, steps: int = 4000, batch: int = 16, frames: int = 1024,
                    learning_rate: float = 1e-3, decay_step: int = 2000, seed: int = 0, progress: bool = True,
                    labels: str = "score", channels: int = 48, onsets: bool = False, stacks: int = 1,
                    meter: bool = False, grid: bool = False, grid_dropout: float = 0.5) -> dict:
    """Train ``ChordNet`` on the melodies and true chords of a corpus' train split; returns its metrics.

    ``labels``: where the true chords come from (``corpus_arrays``): the songs' scores, or the audio.
    ``channels``, ``onsets``, ``stacks``, ``meter``: ``ChordNet``'s width, note-start input, depth and
    estimated beat grid (``MelodyBeats``, on each crop as it would be on a whole song at inference).
    ``grid``: the network is also told each song's beat grid (``song_grids``), dropped (zeros, unknown)
    from a ``grid_dropout`` share of the crops, so it also chords a song whose grid nobody gave; the
    metrics then hold the val accuracy with the grid and without (``val_accuracy_no_grid``).

    Random ``frames``-long crops, each in a random key (``transpose``), cross-entropy, Adam with the
    rate cut to a third from ``decay_step`` on (a fixed step, so a run extended to more steps is the
    same run continued). Crops are drawn from ``(seed, step)``, so a resumed run (from
    ``out_dir/checkpoints``, every 500 steps and at the end) continues exactly. Writes ``CHORDNET_WEIGHTS`` and
    ``CHORDS_JSON`` (the network's arguments, the STFT it reads, train and val frame accuracy).
    """
    from tqdm import tqdm

    os.makedirs(out_dir, exist_ok=True)
    train, val = (corpus_arrays(corpus_dir, split, config, os.path.join(out_dir, f"features-{split}-{labels}.npz"),
                                progress, labels) for split in ("train", "val"))
    keras.utils.set_random_seed(seed)
    net = ChordNet(channels=channels, onsets=onsets, stacks=stacks, meter=meter,
                   frame_rate=config.audio.sample_rate / config.stft.hop_length, grid=grid)
    optimizer = keras.optimizers.Adam(learning_rate)
    step, checkpoint, manager = resumable_checkpoint(os.path.join(out_dir, "checkpoints"), net, optimizer)

    @tf.function(reduce_retracing=True)
    def train_step(x, y, k, g, rate):
        x, y = transpose(x, y, k)
        optimizer.learning_rate.assign(rate)
        with tf.GradientTape() as tape:
            logits = chord_logits(net, x, g, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables))
        return loss

    start, began = int(step.numpy()), time.time()
    info_path = os.path.join(out_dir, CHORDS_JSON)
    if start >= steps and os.path.exists(info_path) and os.path.exists(os.path.join(out_dir, CHORDNET_WEIGHTS)):
        with open(info_path, encoding="utf-8") as f:
            info = json.load(f)
        if info.get("steps") == steps:  # finished before: its record stands (a re-run must not erase its loss)
            return {k: info.get(k) for k in ("steps", "steps_run", "train_loss", "val_accuracy", "val_accuracy_no_grid",
                                             "train_seconds") if k in info}
    losses = []
    with tqdm(total=steps, initial=start, desc="chord net", unit="step", disable=not progress) as bar:
        for i in range(start, steps):
            x, y, k, g = _crops(train, batch, frames, np.random.default_rng([seed, i]))
            g *= np.random.default_rng([seed, i, 1]).random(batch)[:, None, None] >= grid_dropout  # unknown grids
            rate = learning_rate if i < decay_step else learning_rate / 3
            losses.append(float(train_step(x, y, k, g, tf.constant(rate, tf.float32))))
            step.assign(i + 1)
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
            if (i + 1) % 500 == 0 or i + 1 == steps:
                manager.save(checkpoint_number=i + 1)
    metrics = {"steps": steps, "steps_run": steps - start,
               "train_loss": float(np.mean(losses[-200:])) if losses else None,
               "val_accuracy": frame_accuracy(net, val), "train_seconds": round(time.time() - began, 1)}
    if grid:
        metrics["val_accuracy_no_grid"] = frame_accuracy(net, val, grid=False)
    net.save_weights(os.path.join(out_dir, f".tmp-{os.getpid()}-{CHORDNET_WEIGHTS}"))
    os.replace(os.path.join(out_dir, f".tmp-{os.getpid()}-{CHORDNET_WEIGHTS}"), os.path.join(out_dir, CHORDNET_WEIGHTS))
    info = {"chordnet": net.get_config(), "sample_rate": config.audio.sample_rate, "stft": dataclasses.asdict(config.stft),
            "corpus": os.path.abspath(corpus_dir), "labels": labels,
            "songs_labelled_from_score": int(train["from_score"] + val["from_score"]),
            "songs": int(len(train["lengths"]) + len(val["lengths"])), "batch": batch, "frames": frames, "seed": seed,
            **({"grid_dropout": grid_dropout} if grid else {}), **metrics}
    atomic_write_text(info_path, json.dumps(info, indent=2, default=str) + "\n")
    return metrics


def load_chord_net(chords_dir: str, config) -> ChordNet:
    """The ``ChordNet`` a ``kgan chords train`` folder holds, checked against ``config``'s rate and STFT."""
    path = os.path.join(chords_dir, CHORDS_JSON)
    info = read_json(path, "train a chord network with `kgan chords train`")
    s = config.stft
    theirs = (info.get("sample_rate"), info.get("stft", {}).get("n_fft"), info.get("stft", {}).get("hop_length"))
    if theirs != (config.audio.sample_rate, s.n_fft, s.hop_length):
        raise ValueError(f"{path}: trained at rate/n_fft/hop {theirs}, the model uses "
                         f"{(config.audio.sample_rate, s.n_fft, s.hop_length)}")
    net = ChordNet.from_config(info["chordnet"])
    net.load_weights(os.path.join(chords_dir, CHORDNET_WEIGHTS))
    return net
