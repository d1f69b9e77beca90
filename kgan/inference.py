"""Waveform -> waveform generation of any length, in TF graph ops (shared by export and local runs).

``Generate`` turns a batch of vocals ``[B, L]`` into accompaniments ``[B, L]``:

1. STFT and the global normalisation (``Spectrogram.to_model``): ``[B, T, K]``;
2. the frames padded with silence (-1) to whole windows and cut into windows of
   ``W`` frames every ``W/2`` frames: ``[B, N, W, K]``; with the ``plan`` vocal
   input, the chord plan first: ``kgan.chords.ChordNet`` on the tracked melody
   of the whole input, rendered as a second plane and cut into the same windows;
3. the generator in inference mode on chunks of windows (``tf.map_fn``, so a
   10-minute song does not need memory for all its windows at once);
4. the windows cross-faded back together: each weighted by a periodic Hann
   window (which sums to one at half overlap), overlap-added, and divided by
   the overlap-added weights, so edges and joins are exact averages;
5. phase by fast Griffin-Lim (or a learned vocoder), then the waveform cropped to ``L`` samples; on
   a long input Griffin-Lim runs on segments of ``GRIFFIN_LIM_SEGMENT_CELLS`` cells in turn, which keeps its
   working set in the caches;
6. with ``level_gains_db`` (``kgan.levels``), the waveform scaled by its style's calibrated gain;
7. with ``high_band`` (``kgan.high_band.HighBand``), the rate doubled and the octave above the
   model's band replicated from the one below it: the output is then ``[B, 2L]``.

Only core TensorFlow ops are used (no tensorflow-io, no py_function), so the
same graph runs in an exported SavedModel under stock TF Serving.
"""

from __future__ import annotations

import tensorflow as tf

from kgan.config import Config
from kgan.spectrogram import GRIFFIN_LIM_ALGORITHMS, Spectrogram, overlap_add

__all__ = ["Generate"]

# Griffin-Lim runs on segments of this many spectrogram cells when a request is longer: 1024 frames of 513
# bins (11.9 s at 22.05 kHz and hop 256). On a 3-minute vocal its 16 iterations took 2.1 s instead of 3.9-4.1 s,
# at the same spectral convergence (kgan.spectrogram.Spectrogram.griffin_lim_in_segments)
GRIFFIN_LIM_SEGMENT_CELLS = 1024 * 513


class Generate(tf.Module):
    """The whole vocal -> accompaniment pipeline around a generator."""

    def __init__(self, generator, config: Config, griffin_lim_iters: int = 16, chunk_windows: int = 8,
                 name: str | None = None, vocoder=None, griffin_lim_init: str = "integrated", chord_net=None,
                 chord_decoding: str = "argmax", level_gains_db=None, high_band=None,
                 griffin_lim_algorithm: str = "fast"):
        super().__init__(name=name)
        self.generator = generator
        self.high_band = high_band  # a kgan.high_band.HighBand: the output at twice the rate, or None
        # the waveform's gain per style id (dB; one value for an unconditioned generator): kgan.levels' calibration
        self.level_gains_db = None if level_gains_db is None else [float(g) for g in level_gains_db]
        self.chord_net = chord_net  # a kgan.chords.ChordNet: the plan of a model.vocal_input=plan generator
        if chord_decoding not in ("argmax", "soft"):
            raise ValueError(f"chord_decoding must be 'argmax' or 'soft'. Received: {chord_decoding!r}")
        self.chord_decoding = chord_decoding  # the likeliest triad per frame, or every triad by its probability
        self.channels = 1
        if config.model.vocal_input == "plan":
            if chord_net is None:
                raise ValueError("a generator with model.vocal_input=plan needs a chord network "
                                 "(kgan chords train; kgan export --chords DIR)")
            from kgan.chords import PlanRenderer, melody_layer

            self.channels = 2
            try:  # the generator's own feature layer: its constants are then stored once in an export
                self.melody = getattr(generator, "_model", generator).get_layer("vocal_features")
            except (ValueError, AttributeError):
                self.melody = melody_layer(config)
            self.planner = PlanRenderer(config)
        # a chord network told the song's beat grid, when the caller knows it (kgan.chords.meter_grid)
        self.gridded = bool(getattr(chord_net, "grid", False))
        self.vocoder = vocoder  # a kgan.vocoder.Vocoder; None: Griffin-Lim
        self.griffin_lim_init = griffin_lim_init  # "random" or "integrated" (kgan.spectrogram.integrated_phase)
        if griffin_lim_algorithm not in GRIFFIN_LIM_ALGORITHMS:
            raise ValueError(f"griffin_lim_algorithm must be one of {list(GRIFFIN_LIM_ALGORITHMS)}. "
                             f"Received: {griffin_lim_algorithm!r}")
        self.griffin_lim_algorithm = griffin_lim_algorithm  # kgan.spectrogram.GRIFFIN_LIM_ALGORITHMS
        self.config = config
        self.spec = Spectrogram(config.stft)
        self.frames = config.window.frames
        self.bins = config.stft.num_bins
        self.window_hop = config.window.generate_hop
        self.griffin_lim_iters = int(griffin_lim_iters)
        # frames a Griffin-Lim segment: GRIFFIN_LIM_SEGMENT_CELLS of the STFT's bins, and at least 8 overlaps
        self.griffin_lim_segment = max(GRIFFIN_LIM_SEGMENT_CELLS // (self.spec.n_fft // 2 + 1),
                                       8 * self.spec.segment_overlap)
        self.chunk_windows = int(chunk_windows)

    def windows(self, normalised):
        """``[B, T, K]`` -> windows ``[B, N, W, K]`` (silence-padded to whole windows)."""
        t = tf.shape(normalised)[1]
        count = 1 + tf.maximum(0, (t - self.frames + self.window_hop - 1) // self.window_hop)
        padded_t = (count - 1) * self.window_hop + self.frames
        x = tf.pad(normalised, [[0, 0], [0, padded_t - t], [0, 0]], constant_values=-1.0)
        return tf.signal.frame(x, self.frames, self.window_hop, axis=1)

    @property
    def styled(self) -> bool:
        return bool(getattr(self.generator, "styles", 0))

    def generate_windows(self, windows, style=None):
        """Generator on model-layout windows ``[M, K, W, 1]`` -> ``[M, K, W, 1]``, a chunk at a time.

        Whole chunks of ``chunk_windows`` go through ``tf.map_fn``; the windows left over (fewer than a
        chunk) go through one more call of their own size, so no padding windows are generated: 13
        windows cost 13, not 16. ``style``: int32 ``[M]``, each window's style id (style-conditioned
        generators only).
        """
        m = tf.shape(windows)[0]
        whole = (m // self.chunk_windows) * self.chunk_windows
        shape = [self.bins, self.frames, 1]

        if hasattr(self.generator, "prepared"):  # kgan.export.StoredWeights: its weights cast once, not per chunk
            call = self.generator.prepared()
        else:
            call = lambda inputs: self.generator(inputs, training=False)  # noqa: E731

        def run(w, s):
            return call(w if s is None else [w, s])

        def chunked():
            grouped = tf.reshape(windows[:whole], [-1, self.chunk_windows, self.bins, self.frames, self.channels])
            spec = tf.TensorSpec([self.chunk_windows, *shape], tf.float32)
            if style is None:
                out = tf.map_fn(lambda w: run(w, None), grouped, fn_output_signature=spec)
            else:
                styles = tf.reshape(style[:whole], [-1, self.chunk_windows])
                out = tf.map_fn(lambda ws: run(ws[0], ws[1]), (grouped, styles), fn_output_signature=spec)
            return tf.reshape(out, [-1, *shape])

        def rest():
            return run(windows[whole:], None if style is None else style[whole:])

        def empty():
            return tf.zeros([0, *shape], tf.float32)

        head = tf.cond(whole > 0, chunked, empty)
        tail = tf.cond(m > whole, rest, empty)
        return tf.concat([head, tail], axis=0)

    def cross_fade(self, windows, num_frames):
        """Windows ``[B, N, W, K]`` -> frames ``[B, num_frames, K]`` by weighted overlap-add."""
        weight = tf.signal.hann_window(self.frames, periodic=True) + 1e-3  # never exactly zero at the ends
        weighted = tf.transpose(windows, [0, 3, 1, 2]) * weight  # (B, K, N, W)
        summed = overlap_add(weighted, self.window_hop)  # (B, K, T')
        n = tf.shape(windows)[1]
        norm = overlap_add(tf.tile(weight[None], [n, 1]), self.window_hop)  # (T',)
        frames = tf.transpose(summed / norm, [0, 2, 1])  # (B, T', K)
        return frames[:, :num_frames]

    @property
    def planned(self) -> bool:
        """Whether the generator hears a chord plan beside the vocal (``model.vocal_input=plan``)."""
        return self.channels == 2

    def plan(self, normalised, meter=None, chords=None):
        """The chord plan plane ``[B, T, K]`` of normalised vocals ``[B, T, K]``: ``ChordNet``'s guess, rendered
        (its likeliest triad per frame, or with ``chord_decoding="soft"`` every triad's tones by its probability).

        ``meter``: float32 ``[B, 3]`` or ``[1, 3]`` (seconds a beat, seconds a chord segment, first downbeat
        in seconds from the input's start; zeros: unknown), for a chord network that takes a beat grid;
        ``kgan.chords.refine_meter`` first pulls it onto the melody's note starts. ``chords``: a user's chart
        (``impose_chords``)."""
        logits = self.plan_logits(normalised, meter)  # (B, T, 25)
        if chords is not None:
            logits = self.impose_chords(logits, chords)
        if self.chord_decoding == "soft":
            return tf.transpose(self.planner.soft_image(logits)[..., 0], [0, 2, 1])
        return self.render_plan(tf.argmax(logits, axis=-1, output_type=tf.int32))

    def plan_logits(self, normalised, meter=None):
        """The chord network's logits ``[B, T, 25]`` (``kgan.chords`` ids) for normalised vocals ``[B, T, K]``;
        ``meter`` as for ``plan``."""
        from kgan.chords import chord_logits, meter_grid, refine_meter

        image = tf.transpose(normalised, [0, 2, 1])[..., None]  # (B, K, T, 1)
        melody = self.melody.melody(image)
        grid = None
        if self.gridded and meter is not None:  # the user's grid, fitted to the sung note starts first
            meter = tf.reshape(tf.cast(meter, tf.float32), [-1, 3]) + tf.zeros([tf.shape(melody)[0], 3])  # (B, 3)
            grid = meter_grid(refine_meter(melody, meter, self.config), tf.shape(normalised)[1], self.config)
        return chord_logits(self.chord_net, melody, grid)

    @staticmethod
    def impose_chords(logits, chords):
        """Chord logits ``[B, T, 25]`` with a chart's chords in place of the network's: ``chords`` int32 ``[B, T']``
        or ``[1, T']`` (``kgan.chart``), a class per frame, -1 where the network's guess stays. Cut or padded
        with -1 to ``T`` frames; ids outside [-1, 24] fail an assertion (stock TF Serving runs no Python)."""
        from kgan.chords import CLASSES

        chords = tf.cast(chords, tf.int32)
        shape = tf.shape(logits)
        kept = chords[:, : shape[1]]
        chords = tf.pad(kept, [[0, 0], [0, shape[1] - tf.shape(kept)[1]]], constant_values=-1)
        checks = [
            tf.debugging.assert_greater_equal(chords, -1, message="chords: ids are -1 (the network's) to 24"),
            tf.debugging.assert_less(chords, CLASSES, message="chords: ids are -1 (the network's) to 24"),
            tf.debugging.assert_equal(tf.logical_or(tf.shape(chords)[0] == 1, tf.shape(chords)[0] == shape[0]),
                                      True, message="chords must hold one row, or one per vocal row"),
        ]
        with tf.control_dependencies(checks):
            chords = chords + tf.zeros([shape[0], 1], tf.int32)  # (B, T)
        given = tf.one_hot(tf.maximum(chords, 0), CLASSES, on_value=0.0, off_value=-1e4)  # certain, argmax or soft
        return tf.where(chords[..., None] >= 0, given, logits)

    def render_plan(self, labels):
        """Chord ids per frame ``[B, T]`` -> the plan plane ``[B, T, K]`` the generator hears beside the vocal."""
        return tf.transpose(self.planner.image(labels)[..., 0], [0, 2, 1])

    def with_plan(self, vocal_windows):
        """Model-layout vocal windows ``[M, K, W, 1]`` -> the generator's input: with each window's own plan
        beside it (``[M, K, W, 2]``) for the ``plan`` input, unchanged otherwise."""
        if self.channels == 1:
            return vocal_windows
        plan = self.plan(tf.transpose(vocal_windows[..., 0], [0, 2, 1]))  # (M, W, K)
        return tf.concat([vocal_windows, tf.transpose(plan, [0, 2, 1])[..., None]], axis=-1)

    def spectrogram(self, vocal, style=None, meter=None, chords=None):
        """Generated normalised accompaniment ``[B, T, K]`` for vocals ``[B, L]`` (and style ids ``[B]``, beat
        grids ``[B, 3]`` and charts' chords ``[B, T]``: ``plan``)."""
        normalised = self.spec.to_model(vocal)  # (B, T, K)
        t = tf.shape(normalised)[1]
        windows = self.windows(normalised)  # (B, N, W, K)
        b, n = tf.shape(windows)[0], tf.shape(windows)[1]
        model_in = tf.transpose(tf.reshape(windows, [-1, self.frames, self.bins]), [0, 2, 1])[..., None]
        if self.channels == 2:  # the plan of the whole input, cut into the same windows
            plan = tf.reshape(self.windows(self.plan(normalised, meter, chords)), [-1, self.frames, self.bins])
            model_in = tf.concat([model_in, tf.transpose(plan, [0, 2, 1])[..., None]], axis=-1)  # (B*N, K, W, 2)
        per_window = None
        if self.styled:
            per_window = tf.repeat(self.batch_styles(style, b), n)  # (B*N,)
        generated = self.generate_windows(model_in, per_window)  # (B*N, K, W, 1)
        generated = tf.reshape(tf.transpose(generated[..., 0], [0, 2, 1]), [b, n, self.frames, self.bins])
        return self.cross_fade(generated, t)

    def batch_styles(self, style, batch):
        """Style ids for a batch of ``batch``: ``style`` ``[B]`` as given, ``[1]`` broadcast, None 0 ("any").

        Checked in the graph (stock TF Serving runs no Python): ids in [0, styles], 1 or B of them.
        """
        if style is None:
            return tf.zeros([batch], tf.int32)
        style = tf.reshape(tf.cast(style, tf.int32), [-1])
        count = tf.size(style)
        names = ", ".join(f"{i} {name}" for i, name in enumerate(self.config.model.style_names))
        checks = [
            tf.debugging.assert_equal(tf.logical_or(count == 1, count == batch), True,
                                      message="style must hold one id, or one per vocal row"),
            tf.debugging.assert_non_negative(style, message=f"style ids are {names}"),
            tf.debugging.assert_less(style, len(self.config.model.style_names), message=f"style ids are {names}"),
        ]
        with tf.control_dependencies(checks):
            return tf.cond(count == 1, lambda: tf.fill([batch], style[0]), lambda: tf.identity(style))

    def __call__(self, vocal, style=None, meter=None, chords=None):
        """Accompaniments ``[B, L]`` (``[B, 2L]`` at twice the rate with ``high_band``) for vocals ``[B, L]`` (mono,
        at the config's rate).

        ``style``: int32 ``[B]`` (or ``[1]``, for every row) style ids of a style-conditioned
        generator; None is 0, "any". Ignored by an unconditioned generator. ``meter``: each row's
        beat grid (``plan``), for a chord network that takes one; None: unknown. ``chords``: a chord id per
        STFT frame (``impose_chords``, ``kgan.chart``), for a plan generator; None: the network's plan.
        """
        vocal = tf.convert_to_tensor(vocal, tf.float32)
        return self.waveform(self.spectrogram(vocal, style, meter, chords), tf.shape(vocal)[1], style)

    def griffin_lim(self, magnitude, length):
        """Full-scale magnitudes ``[B, T, n_fft/2 + 1]`` -> waveforms ``[B, length]`` by Griffin-Lim, as configured
        (iterations, start, algorithm), in segments when long."""
        initial = None if self.griffin_lim_init == "random" else self.griffin_lim_init
        return self.spec.griffin_lim_in_segments(magnitude, length, n_iter=self.griffin_lim_iters, initial=initial,
                                                 segment=self.griffin_lim_segment,
                                                 algorithm=self.griffin_lim_algorithm)

    def waveform(self, generated, length, style=None):
        """Generated normalised accompaniments ``[B, T, K]`` -> waveforms ``[B, length]`` (``[B, 2 * length]``
        with ``high_band``): the phase (vocoder or Griffin-Lim), then each style's level gain and high band."""
        if self.vocoder is not None:
            out = self.vocoder.waveform(generated, length)
        else:
            out = self.griffin_lim(self.spec.from_model(generated), length)
        ids = self.batch_styles(style, tf.shape(out)[0]) if self.styled else tf.zeros([tf.shape(out)[0]], tf.int32)
        if self.level_gains_db is not None:
            gains = tf.constant([10.0 ** (g / 20.0) for g in self.level_gains_db], tf.float32)
            out = out * tf.gather(gains, ids)[:, None]
        return out if self.high_band is None else self.high_band(out, ids)


def chunk_bounds(length: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, end)`` sample ranges of chunks of ``chunk`` samples overlapping by ``overlap``."""
    if length <= chunk:
        return [(0, length)]
    step = chunk - overlap
    starts = list(range(0, length - overlap, step))
    return [(s, min(s + chunk, length)) for s in starts]


def stream_song(predict, vocal, rate: int, chunk_seconds: float = 30.0, overlap_seconds: float = 1.0,
                progress: bool = False, desc: str = "generate"):
    """The accompaniment of a whole mono vocal (numpy ``[L]``) as finished ``(start, samples)`` blocks.

    ``predict`` maps a float32 ``[1, n]`` array to ``[1, n]``, or ``[1, 2n]`` at twice the rate (an export
    with a high band: ``kgan.high_band``; then starts and samples are at that rate), as the SavedModel's
    ``serving_default`` does, locally or over gRPC, so local and served results are identical; one with a
    ``meter`` (a beat grid) or a ``chart`` (``kgan.chart``) is also given each chunk's start in seconds.
    Chunks overlap by ``overlap_seconds`` and are joined with a linear cross-fade; a vocal shorter than one
    chunk is sent whole. A block is yielded as soon as no later chunk overlaps it, so only one chunk's
    samples are held at a time and memory does not grow with the song.
    """
    import numpy as np
    from kgan.progress import audio_bar

    chunk = max(1, int(chunk_seconds * rate))
    overlap = min(int(overlap_seconds * rate), chunk // 2)
    bounds = chunk_bounds(len(vocal), chunk, overlap)
    carry = np.zeros(0, np.float32)  # the faded-out tail of the previous chunk
    # a beat grid or a chord chart: each chunk is told where it starts
    timed = any(getattr(predict, key, None) is not None for key in ("meter", "chart"))
    factor = int(getattr(predict, "output_rate", rate)) // rate  # output samples per input sample
    with audio_bar(len(vocal) / rate, desc, disable=not progress or len(bounds) == 1) as bar:
        for i, (start, end) in enumerate(bounds):
            chunk_vocal = np.asarray(vocal[start:end], np.float32)[None]
            piece = np.asarray(predict(chunk_vocal, start / rate) if timed else predict(chunk_vocal), np.float32)[0]
            if len(piece) != factor * (end - start):
                raise ValueError(f"the model returned {len(piece)} samples for {end - start}; expected "
                                 f"{factor * (end - start)}")
            fade = np.ones(len(piece), np.float32)
            if i > 0:  # fade in over the overlap with the previous chunk
                n = min(factor * overlap, len(piece))
                fade[:n] = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32)
            last = i == len(bounds) - 1
            if not last:  # fade out over the overlap with the next chunk
                fade[-factor * overlap :] *= np.linspace(1.0, 0.0, factor * overlap, endpoint=False, dtype=np.float32)
            piece *= fade
            piece[: len(carry)] += carry
            keep = 0 if last else factor * overlap
            yield factor * start, piece[: len(piece) - keep]
            carry = piece[len(piece) - keep :]
            bar.update((end - start) / rate - (0 if last else overlap / rate))


def generate_song(predict, vocal, rate: int, chunk_seconds: float = 30.0, overlap_seconds: float = 1.0,
                  progress: bool = False, desc: str = "generate", at_input_rate: bool = False):
    """The accompaniment of a whole mono vocal (numpy ``[L]``) as one array (``stream_song``, collected), at
    ``predict.output_rate`` when it has one (twice ``rate`` with a high band), or, with ``at_input_rate``,
    resampled to ``rate`` (``[L]``, as ``kgan evaluate`` scores it)."""
    import numpy as np

    output_rate = int(getattr(predict, "output_rate", rate))
    out = np.zeros(len(vocal) * (output_rate // rate), np.float32)
    for start, block in stream_song(predict, vocal, rate, chunk_seconds, overlap_seconds, progress, desc):
        out[start : start + len(block)] = block
    if at_input_rate and output_rate != rate:
        import librosa

        out = librosa.resample(out, orig_sr=output_rate, target_sr=rate, res_type="soxr_hq")[: len(vocal)]
    return out
