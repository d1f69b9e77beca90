"""What the models see of the vocal: its pitch and loudness, not its timbre.

``VocalFeatures`` is a weight-free Keras layer that sits at the front of both
the generator and the discriminator, so training, export, serving and
evaluation all compute the same thing from the same normalised vocal
spectrogram, in core TF ops (matmuls, ``relu``, reductions: nothing that stock
TF Serving lacks).

Shapes: normalised vocal spectrogram ``[B, F, T, 1]`` in [-1, 1] (``F`` linear
frequency rows, low to high) -> ``[B, F, T, C]`` in [-1, 1].

Kinds (``model.vocal_input``):

* ``spectrogram`` (``C = 1``): the input unchanged; the baseline.
* ``salience`` (``C = 3``): a pitch-salience image on a log-frequency axis.

  1. dB: the normalised spectrogram back on the global dB scale.
  2. Spectral whitening: each frame minus its moving average over
     ``whiten_hz`` (the spectral envelope: formants, EQ, the singer's
     "colour"), half-wave rectified, so only harmonic peaks above their local
     floor remain (Klapuri, "Multiple fundamental frequency estimation by
     summing harmonic amplitudes", ISMIR 2006, whitens the same way).
  3. Harmonic summation (Salamon & Gomez, IEEE TASLP 2012): the salience of a
     candidate F0 ``f`` is ``sum_h alpha**(h-1) * W(h f)`` over ``harmonics``
     harmonics below Nyquist, read from the whitened frame by linear
     interpolation. Steps 2-3 are one ``[F, F]`` and one ``[F, F]`` matmul.
  4. The F0 axis: ``F`` rows from ``F0_MIN_HZ`` (55 Hz, A1) up 64 semitones
     (to ~2.2 kHz) at ``F / 64`` rows per semitone (8 for the default preset),
     so a transposition by ``n`` semitones is a shift by ``n * F / 64`` rows.
  5. Channel 0: salience divided by the frame's peak (floored at
     ``min_peak_db``, so a noise frame is not blown up), squared (which keeps
     the F0 ridge and fades the weaker, more timbre-dependent ridges at its
     octaves: between a sawtooth-like and a vowel-like tone on one melody the
     image's mean difference falls from 0.67 to 0.19 of the spectrograms'),
     mapped to [-1, 1].
     Channel 1: the frame's level on the global scale (rhythm, dynamics,
     rests). Channel 2: the frame's peak salience (how harmonic it is:
     voicing), squashed to [-1, 1]. Channels 1-2 are constant along F.

  Silence gives -1 in every channel.
* ``comb`` (``C = 4``): the ``salience`` channels after one more: the pitch
  image rendered back onto the spectrogram's own linear frequency axis with
  one canonical timbre (``comb_matrix``: each F0 row's salience placed at its
  first ``harmonics`` harmonics, weights ``alpha**(h-1)``), normalised per
  frame. The U-Net's skip connections join rows of the same height, so a
  pitch image on a log-F0 axis puts the vocal's 220 Hz at the height of the
  output's 4 kHz; the rendered comb puts it, and its harmonics, where the
  accompaniment's notes of that pitch class sound.
* ``track`` (``C = 3``): one pitch class per frame instead of the whole
  salience image. On the same test songs sung by a General MIDI voice and by
  Festival, the F0 (the image's argmax) agrees with pYIN in 94-96 % of frames
  for both, but Festival sings an octave lower (the two F0s agree modulo the
  octave in 93 % of the frames both voice, and without it in 0.6 %), and the
  comb renders the F0's harmonics, so the two combs' cosine is only 0.74
  (0.35 for the log-F0 image). ``track`` keeps the argmax row alone, as a
  Gaussian of a quarter semitone, renders its pitch class at every octave
  from 55 Hz to 5 kHz (``octave_matrix``, channel 0; cosine 0.95 between the
  two renderings), and drops the log-F0 image, whose rows do not line up
  with the output's; channels 1-2 are ``salience``'s level and voicing.
* ``chords`` (``C = 4``): ``track``'s planes after a chord plane, channel 0:
  a triad per frame guessed from the tracked melody alone, rendered like the
  track (its three pitch classes at every octave). The generator then need
  not harmonise and render at once: it is told a plan and voices it in its
  style. The guess is a template harmoniser in the graph, timbre-free since it
  reads only the track:

  1. the track's pitch class per frame, weighted by voicing (``[B, T, 12]``);
  2. its average over ``CHORD_SECONDS`` around each frame (a box filter);
  3. the window's key: the whole window's pitch-class average correlated with
     the 24 Krumhansl-Kessler key profiles, through a softmax;
  4. each of the 24 major and minor triads scores the share of the local
     melody on its tones, plus ``PRIOR`` times its weight in the key (the
     diatonic triads, tonic and dominant highest); the best one per frame.

  On the test songs of "Voices it never heard", this plan alone, played as
  sustained triads (``kgan evaluate --baselines harmoniser``), scores a chord
  motion of 0.15 (seen voices) and 0.14 (Festival) against the true
  accompaniment, where the trained generators reached 0.04-0.10 (README).
* ``plan`` (``C = 4``): like ``chords``, but the chord plane is *given*: the
  input is ``[B, F, T, 2]``, the vocal spectrogram and a chord plan already
  rendered like the chord plane (``render_classes``). Training gives the true
  accompaniment's chords (``kgan.chords.chord_labels``), so the generator
  learns to voice whatever plan it is told; inference gives
  ``kgan.chords.ChordNet``'s guess from the tracked melody of the whole song.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from kgan.config import SALIENCE_SEMITONES as SEMITONES
from kgan.config import VOCAL_INPUTS as KINDS
from kgan.harmony import MAJOR_PROFILE, MINOR_PROFILE  # Krumhansl & Kessler (1982), tonic first

__all__ = ["KINDS", "VocalFeatures", "layer_arguments", "channels", "input_channels", "render_classes", "f0_axis", "smoothing_matrix",
           "harmonic_matrix", "comb_matrix"]

F0_MIN_HZ = 55.0
ENVELOPE_HZ = 400.0  # the moving average that counts as the spectral envelope (also kgan.augment's formant warp)
CHORD_SECONDS = 0.5  # the melody around a frame that chooses its chord
PRIOR = 0.3  # the key's weight against the melody's in the chord choice
# Diatonic triads as (degree in semitones, minor?) -> weight; major keys, then minor keys.
MAJOR_TRIADS = {(0, 0): 1.0, (7, 0): 1.0, (5, 0): 0.9, (9, 1): 0.7, (2, 1): 0.6, (4, 1): 0.4}
MINOR_TRIADS = {(0, 1): 1.0, (7, 0): 1.0, (5, 1): 0.9, (8, 0): 0.7, (3, 0): 0.6, (7, 1): 0.4}


def channels(kind: str) -> int:
    """Channels ``VocalFeatures`` of ``kind`` produces."""
    if kind not in KINDS:
        raise ValueError(f"model.vocal_input must be one of {list(KINDS)}. Received: {kind!r}")
    return {"spectrogram": 1, "salience": 3, "comb": 4, "track": 3, "chords": 4, "plan": 4}[kind]


def input_channels(kind: str) -> int:
    """Channels of the models' vocal input for ``kind``: 2 for ``plan`` (vocal and chord plan), else 1."""
    return 2 if kind == "plan" else 1


def f0_axis(rows: int) -> np.ndarray:
    """Candidate F0s (Hz) of the salience image's rows, low to high."""
    if rows % SEMITONES:
        raise ValueError(f"the salience image needs bins divisible by {SEMITONES}. Received: {rows}")
    per_semitone = rows // SEMITONES
    return F0_MIN_HZ * 2.0 ** (np.arange(rows) / (12.0 * per_semitone))


def smoothing_matrix(bins: int, bin_hz: float, width_hz: float) -> np.ndarray:
    """``[F, F]``: column ``j`` averages the rows within ``width_hz / 2`` of row ``j`` (the local mean)."""
    half = max(1, int(round(width_hz / bin_hz / 2)))
    idx = np.arange(bins)
    m = (np.abs(idx[:, None] - idx[None, :]) <= half).astype(np.float32)
    return m / m.sum(axis=0, keepdims=True)


def _interp_column(freq_hz: float, bins: int, bin_hz: float) -> tuple[list[int], list[float]]:
    p = freq_hz / bin_hz
    j = int(math.floor(p))
    frac = p - j
    rows, weights = [], []
    for r, w in ((j, 1.0 - frac), (j + 1, frac)):
        if 0 <= r < bins and w > 0:
            rows.append(r)
            weights.append(w)
    return rows, weights


def harmonic_matrix(bins: int, bin_hz: float, harmonics: int = 8, alpha: float = 0.8,
                    contrast: float = 0.5) -> np.ndarray:
    """``[F, F]`` harmonic summation: linear-frequency frame -> salience per F0 row of ``f0_axis``.

    Column ``k`` adds ``alpha**(h-1)`` times the frame at ``h * f0_k`` and
    subtracts ``contrast`` times that at ``(h - 1/2) * f0_k``: a true F0 has
    valleys there, while the octave above it (whose half-harmonics are the
    true F0's odd harmonics) is penalised. Each column's positive weights sum
    to one over the harmonics below the top row, so high candidates (with
    fewer harmonics) are not penalised.
    """
    f0 = f0_axis(bins)
    top = (bins - 1) * bin_hz
    out = np.zeros((bins, bins), np.float32)
    for k, f in enumerate(f0):
        total = 0.0
        for h in range(1, harmonics + 1):
            if h * f > top:
                break
            w = alpha ** (h - 1)
            for freq, sign in ((h * f, 1.0), ((h - 0.5) * f, -contrast)):
                rows, weights = _interp_column(freq, bins, bin_hz)
                for r, iw in zip(rows, weights):
                    out[r, k] += sign * w * iw
            total += w
        if total > 0:
            out[:, k] /= total
    return out


def comb_matrix(bins: int, bin_hz: float, harmonics: int = 8, alpha: float = 0.8) -> np.ndarray:
    """``[F0 rows, F]``: each F0 of ``f0_axis`` as a harmonic comb on the linear frequency axis.

    Row ``k`` holds ``alpha**(h-1)`` at ``h * f0_k`` (linear interpolation between
    bins) for the harmonics below the top bin: one fixed, timbre-free rendering
    of every candidate pitch.
    """
    f0 = f0_axis(bins)
    top = (bins - 1) * bin_hz
    out = np.zeros((bins, bins), np.float32)
    for k, f in enumerate(f0):
        for h in range(1, harmonics + 1):
            if h * f > top:
                break
            rows, weights = _interp_column(h * f, bins, bin_hz)
            for r, w in zip(rows, weights):
                out[k, r] += alpha ** (h - 1) * w
    return out


def _octaves(row: np.ndarray, f: float, bin_hz: float, low_hz: float, top_hz: float) -> None:
    """Add 1 to ``row`` (linear interpolation between bins) at ``f`` moved to every octave in [low_hz, top_hz]."""
    f = f / 2.0 ** math.floor(math.log2(f / low_hz))  # the lowest octave of its pitch class at or above low_hz
    while f <= top_hz:
        rows, weights = _interp_column(f, row.size, bin_hz)
        for r, w in zip(rows, weights):
            row[r] += w
        f *= 2.0


def octave_matrix(bins: int, bin_hz: float, low_hz: float = F0_MIN_HZ, high_hz: float = 5000.0) -> np.ndarray:
    """``[F0 rows, F]``: each F0 of ``f0_axis`` as its pitch class at every octave on the linear axis.

    Row ``k`` holds 1 at ``f0_k * 2**j`` (linear interpolation between bins) for
    every octave ``j`` that lands between ``low_hz`` and ``high_hz``: one pitch
    class, whatever octave it was sung in (a Shepard tone of pure partials).
    """
    top = min(high_hz, (bins - 1) * bin_hz)
    out = np.zeros((bins, bins), np.float32)
    for k, f in enumerate(f0_axis(bins)):
        _octaves(out[k], f, bin_hz, low_hz, top)
    return out


def pitch_classes(bins: int) -> np.ndarray:
    """``[F0 rows, 12]``: each F0 row of ``f0_axis`` to its nearest pitch class (C = 0), one-hot."""
    midi = np.round(69.0 + 12.0 * np.log2(f0_axis(bins) / 440.0)).astype(int)
    return np.eye(12, dtype=np.float32)[midi % 12]


def class_matrix(bins: int, bin_hz: float, low_hz: float = F0_MIN_HZ, high_hz: float = 5000.0) -> np.ndarray:
    """``[12, F]``: each pitch class (C = 0) at every octave between ``low_hz`` and ``high_hz`` on the linear axis."""
    top = min(high_hz, (bins - 1) * bin_hz)
    out = np.zeros((12, bins), np.float32)
    for pc in range(12):
        _octaves(out[pc], 440.0 * 2.0 ** ((pc - 69) / 12.0), bin_hz, low_hz, top)
    return out


def box_filter(x, width: int):
    """``[B, T, C]`` averaged over ``width`` frames around each (zero padding at the ends), channel by channel."""
    channels = x.shape[-1]
    kernel = tf.ones([width, 1, 1], x.dtype) / width
    folded = tf.reshape(tf.transpose(x, [0, 2, 1]), [-1, tf.shape(x)[1], 1])  # (B*C, T, 1)
    smooth = tf.nn.conv1d(folded, kernel, stride=1, padding="SAME")
    return tf.transpose(tf.reshape(smooth, [tf.shape(x)[0], channels, -1]), [0, 2, 1])  # (B, T, C)


def render_classes(notes, class_render):
    """Pitch classes ``(B, T, 12)`` -> their rendering on the linear axis ``(B, T, F)``, each frame's peak at 1.

    ``class_render`` is ``class_matrix``; a frame with no pitch class stays 0.
    """
    rendered = tf.linalg.matmul(notes, class_render)  # (B, T, F)
    return rendered / tf.maximum(tf.reduce_max(rendered, axis=-1, keepdims=True), 1e-6)


def triads() -> np.ndarray:
    """``[24, 12]``: the major (even rows) and minor (odd rows) triad on each root, C first."""
    out = np.zeros((24, 12), np.float32)
    for root in range(12):
        for minor, third in ((0, 4), (1, 3)):
            out[2 * root + minor, [root, (root + third) % 12, (root + 7) % 12]] = 1.0
    return out


def key_profiles() -> np.ndarray:
    """``[24, 12]``: the Krumhansl-Kessler profile of every key (major even, minor odd), centred and unit-norm."""
    out = np.zeros((24, 12), np.float32)
    for tonic in range(12):
        for minor, profile in ((0, MAJOR_PROFILE), (1, MINOR_PROFILE)):
            p = np.roll(np.asarray(profile, np.float32), tonic)
            p -= p.mean()
            out[2 * tonic + minor] = p / np.linalg.norm(p)
    return out


def key_chord_prior() -> np.ndarray:
    """``[24 keys, 24 triads]``: each triad's weight in each key (diatonic triads only)."""
    out = np.zeros((24, 24), np.float32)
    for tonic in range(12):
        for minor, table in ((0, MAJOR_TRIADS), (1, MINOR_TRIADS)):
            for (degree, chord_minor), weight in table.items():
                out[2 * tonic + minor, 2 * ((tonic + degree) % 12) + chord_minor] = weight
    return out


def layer_arguments(config) -> dict:
    """``VocalFeatures`` arguments for a kgan config: ``model.vocal_input`` and the STFT's scale."""
    s = config.stft
    return {"kind": config.model.vocal_input, "sample_rate": config.audio.sample_rate, "n_fft": s.n_fft,
            "hop_length": s.hop_length, "db_floor": s.db_floor, "db_ceiling": s.db_ceiling}


@keras.saving.register_keras_serializable(package="kgan")
class VocalFeatures(keras.layers.Layer):
    """Normalised vocal spectrogram ``[B, F, T, 1]`` -> features ``[B, F, T, C]`` in [-1, 1] (no weights)."""

    def __init__(self, kind: str = "comb", sample_rate: int = 22050, n_fft: int = 1024, hop_length: int = 256,
                 db_floor: float = -80.0, db_ceiling: float = 10.0, whiten_hz: float = ENVELOPE_HZ,
                 harmonics: int = 8, alpha: float = 0.8, min_peak_db: float = 6.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.out_channels = channels(kind)
        self.kind, self.sample_rate, self.n_fft = kind, int(sample_rate), int(n_fft)
        self.hop_length = int(hop_length)
        self.db_floor, self.db_ceiling = float(db_floor), float(db_ceiling)
        self.whiten_hz, self.harmonics, self.alpha = float(whiten_hz), int(harmonics), float(alpha)
        self.min_peak_db = float(min_peak_db)

    @classmethod
    def from_kgan_config(cls, config, name: str = "vocal_features") -> "VocalFeatures":
        return cls(**layer_arguments(config), name=name)

    def build(self, input_shape):
        bins = int(input_shape[1])
        if self.kind != "spectrogram":
            bin_hz = self.sample_rate / self.n_fft
            f0_axis(bins)  # validates the row count
            # Constants, not weights: nothing to train or checkpoint, and no change to old checkpoints.
            self._smooth = tf.constant(smoothing_matrix(bins, bin_hz, self.whiten_hz))
            self._harmonic = tf.constant(harmonic_matrix(bins, bin_hz, self.harmonics, self.alpha))
            if self.kind == "comb":
                self._comb = tf.constant(comb_matrix(bins, bin_hz, self.harmonics, self.alpha))
            if self.kind in ("track", "chords", "plan"):
                self._comb = tf.constant(octave_matrix(bins, bin_hz))
                self._track_width = 0.25 * bins / SEMITONES  # a quarter semitone, in F0 rows
            if self.kind in ("track", "chords", "plan"):
                self._classes = tf.constant(pitch_classes(bins))
            if self.kind == "chords":
                self._class_render = tf.constant(class_matrix(bins, bin_hz))
                self._triads = tf.constant(triads())
                self._keys = tf.constant(key_profiles())
                self._prior = tf.constant(key_chord_prior())
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.out_channels)

    def _salience(self, x):
        """Normalised spectrogram ``[B, F, T, 1]`` -> salience ``(B, T, F0 rows)``, its peak, level and voicing ``(B, T, 1)``."""
        span = self.db_ceiling - self.db_floor
        frames = tf.transpose(x[..., 0], [0, 2, 1])  # (B, T, F)
        db = (frames + 1.0) * (0.5 * span) + self.db_floor
        envelope = tf.linalg.matmul(db, self._smooth)  # (B, T, F) local mean in dB
        peaks = tf.nn.relu(db - envelope)  # whitened, rectified: dB above the local floor
        salience = tf.nn.relu(tf.linalg.matmul(peaks, self._harmonic))  # (B, T, F0 rows)
        peak = tf.reduce_max(salience, axis=-1, keepdims=True)  # (B, T, 1)
        power = tf.reduce_mean(tf.exp(db * (math.log(10.0) / 10.0)), axis=-1, keepdims=True)
        level_db = 10.0 * tf.math.log(tf.maximum(power, 1e-30)) / math.log(10.0)
        level = tf.clip_by_value(2.0 * (level_db - self.db_floor) / span - 1.0, -1.0, 1.0)
        voicing = 2.0 * tf.tanh(peak / 20.0) - 1.0
        return salience, peak, level, voicing

    def _track_share(self, salience):
        """One F0 per frame: the salience's argmax row, as a quarter-semitone Gaussian over the F0 rows."""
        rows = tf.cast(tf.range(tf.shape(salience)[-1]), tf.float32)
        best = tf.cast(tf.argmax(salience, axis=-1, output_type=tf.int32), tf.float32)[..., None]
        return tf.exp(-0.5 * tf.square((rows - best) / self._track_width))

    def call(self, x):
        if self.kind == "spectrogram":
            return x
        plan = None
        if self.kind == "plan":  # (B, F, T, 2): the vocal, and the given chord plan already rendered
            x, plan = x[..., :1], x[..., 1]
        salience, peak, level, voicing = self._salience(x)
        planes = [tf.broadcast_to(level, tf.shape(salience)), tf.broadcast_to(voicing, tf.shape(salience))]
        if self.kind in ("track", "chords", "plan"):
            share = self._track_share(salience)  # no log-F0 image plane
        else:
            share = tf.square(salience / tf.maximum(peak, self.min_peak_db))  # (B, T, F0 rows) in [0, 1]
            planes.insert(0, 2.0 * share - 1.0)  # the pitch image
        if self.kind in ("comb", "track", "chords", "plan"):  # the pitch rendered on the linear axis, each frame's peak at 1
            comb = tf.linalg.matmul(share, self._comb)  # (B, T, F)
            comb = comb / tf.maximum(tf.reduce_max(comb, axis=-1, keepdims=True), 1e-6)
            comb = comb * tf.minimum(1.0, peak / self.min_peak_db)  # a noise frame's comb fades with its salience
            planes.insert(0, 2.0 * comb - 1.0)
        if self.kind == "chords":
            notes, present = self._chord_notes(share, peak)
            planes.insert(0, 2.0 * render_classes(notes, self._class_render) * present - 1.0)  # no melody near: no chord
        if plan is not None:
            planes.insert(0, tf.transpose(plan, [0, 2, 1]))
        image = tf.stack(planes, axis=-1)  # (B, T, F, C)
        return tf.transpose(image, [0, 2, 1, 3])  # (B, F, T, C)

    def chords(self, x):
        """The guessed triads of a ``chords`` layer: normalised spectrogram ``[B, F, T, 1]`` -> ``(B, T, 12)``.

        Each frame holds 1 on its triad's three pitch classes (C = 0), or zeros where no melody is near.
        """
        if self.kind != "chords":
            raise ValueError(f"chords() needs a layer of kind 'chords'. This one is {self.kind!r}")
        if not self.built:
            self.build(x.shape)
        salience, peak, _, _ = self._salience(x)
        notes, present = self._chord_notes(self._track_share(salience), peak)
        return notes * present

    def melody(self, x):
        """The tracked melody of a ``track`` or ``chords`` layer: spectrogram ``[B, F, T, 1]`` -> ``(B, T, 14)``.

        Channels 0-11: the frame's pitch class (C = 0), weighted by how voiced it is (0 in silence and
        noise); 12: its level; 13: its voicing, both in [-1, 1] as the layer's planes. Timbre-free like
        the track plane, and any length ``T`` (a whole song at once): every step is per frame.
        """
        if self.kind not in ("track", "chords", "plan"):
            raise ValueError(f"melody() needs a layer of kind 'track', 'chords' or 'plan'. This one is {self.kind!r}")
        if not self.built:
            self.build(x.shape)
        x = x[..., :1]
        salience, peak, level, voicing = self._salience(x)
        return tf.concat([self._voiced_classes(self._track_share(salience), peak), level, voicing], axis=-1)

    def _voiced_classes(self, share, peak):
        """Track ``share`` -> the frame's pitch class ``(B, T, 12)``, summing to its voicing (0 in noise)."""
        voiced = tf.minimum(1.0, peak / self.min_peak_db)  # (B, T, 1), as the track's fade
        classes = tf.linalg.matmul(share, self._classes)  # (B, T, 12)
        return voiced * classes / tf.maximum(tf.reduce_sum(classes, axis=-1, keepdims=True), 1e-6)

    def _chord_notes(self, share, peak):
        """The harmoniser of the module docstring: track ``share`` -> triads ``(B, T, 12)`` and melody-near ``(B, T, 1)``."""
        melody = self._voiced_classes(share, peak)  # (B, T, 12)
        width = max(1, int(round(CHORD_SECONDS * self.sample_rate / self.hop_length)))
        local = box_filter(melody, width)  # (B, T, 12)
        amount = tf.reduce_sum(local, axis=-1, keepdims=True)
        local = local / tf.maximum(amount, 1e-6)  # the shape of the melody around each frame
        overall = tf.reduce_mean(melody, axis=1)  # (B, 12): the window's pitch classes
        centred = overall - tf.reduce_mean(overall, axis=-1, keepdims=True)
        correlation = tf.linalg.matmul(centred, self._keys, transpose_b=True) / tf.maximum(
            tf.norm(centred, axis=-1, keepdims=True), 1e-6)  # (B, 24) in [-1, 1]
        key = tf.nn.softmax(10.0 * correlation, axis=-1)
        prior = tf.linalg.matmul(key, self._prior)[:, None, :]  # (B, 1, 24)
        score = tf.linalg.matmul(local, self._triads, transpose_b=True) + PRIOR * prior  # (B, T, 24)
        choice = tf.one_hot(tf.argmax(score, axis=-1), 24)
        return tf.linalg.matmul(choice, self._triads), tf.cast(amount > 1e-3, tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update({"kind": self.kind, "sample_rate": self.sample_rate, "n_fft": self.n_fft,
                       "hop_length": self.hop_length,
                       "db_floor": self.db_floor, "db_ceiling": self.db_ceiling, "whiten_hz": self.whiten_hz,
                       "harmonics": self.harmonics, "alpha": self.alpha, "min_peak_db": self.min_peak_db})
        return config
