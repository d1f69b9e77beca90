"""A learned vocoder: the normalised magnitude spectrogram -> waveform through an inverse-STFT head.

Griffin-Lim spends 32 pairs of STFTs per song guessing a phase, and its guess
sounds phasey. Vocos (Siuzdak 2023, arXiv:2306.00814) showed that a small
ConvNeXt stack running at the frame rate, which predicts each bin's magnitude
and phase and hands them to one inverse STFT, matches upsampling vocoders at a
fraction of their cost. ``VocoderNet`` is that idea at kgan's scale:

* input: the generator's output view, ``[B, T, n_fft/2]`` in [-1, 1] (the
  global dB scale of ``kgan.spectrogram``);
* a 1-D convolution to ``channels``, ``blocks`` ConvNeXt blocks (depthwise
  temporal convolution, layer norm, pointwise expansion x3 with GELU, a
  projection back, initialised small, added to the residual), a layer norm;
* a head with three planes per bin (``n_fft/2 + 1`` bins, Nyquist included):
  a log-magnitude correction ``d`` (clipped to +/-``max_log_gain``) applied to
  the magnitude the input already states, and an unnormalised vector
  ``(x, y)`` whose angle rotates a closed-form phase-vocoder phase
  (``integrated_phase``: each partial's frequency, integrated over frames, its lobe locked);
* ``Spectrogram.inverse`` (``tf.signal.inverse_stft``): the waveform;
  or ``refine_iters`` Griffin-Lim iterations from there (an export's default: 8
  accelerated ones), aimed at the given magnitude except in the bins at or below
  ``quiet_db``, which keep the network's own.

Why a prior. The network is convolutional over frames, so on a steady note it
sees the same input in every frame and would predict the same phase in every
frame, while a consistent STFT needs the phase to advance by the partial's
frequency times the hop. Integrating that advance is a cumulative sum, which a
finite receptive field cannot do and ``tf.cumsum`` does exactly; the network
only learns the local corrections (onsets, lobes, reverberant mixtures).
Starting from the given magnitude (rather than predicting it from nothing, as
Vocos does) means a freshly initialised vocoder is already the phase vocoder,
with the right spectral envelope. Everything is core TF ops, so a vocoder rides
inside the exported SavedModel (``kgan export --phase vocoder``).

Training (``kgan vocoder train``) reads the accompaniment stems of a corpus and
fits random crops with a multi-resolution STFT loss (spectral convergence plus
log-magnitude L1 at three resolutions, Yamamoto et al. 2020, Parallel WaveGAN)
and a log-mel L1 loss. With ``refine_iters`` the loss scores the waveform after
that many Griffin-Lim iterations, so the network learns a starting phase for them
(``--refine``; ``--loss convergence`` drops the log terms). ``vocoder.json``
beside the checkpoints records the network's shape and the STFT it was trained for.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import keras
import numpy as np
import tensorflow as tf

from kgan.config import Config, STFTConfig
from kgan.io_utils import resumable_checkpoint
from kgan.spectrogram import Spectrogram, integrated_phase

__all__ = ["VocoderSettings", "VocoderNet", "Vocoder", "train_vocoder", "load_vocoder", "stft_distances",
           "multi_resolution_stft_loss", "resolutions", "VOCODER_CONFIG", "EXPORT_REFINE_ITERS"]

VOCODER_CONFIG = "vocoder.json"
# the Griffin-Lim iterations an export runs after a vocoder trained without any (kgan export --griffin-lim-iters
# sets others): with 8, it beat 32 iterations from a random phase on every measure from the seen-voice test songs'
# true magnitudes, at 2.3x their speed (README, "The phase")
EXPORT_REFINE_ITERS = 8


def resolutions(stft: STFTConfig) -> tuple[tuple[int, int], ...]:
    """(n_fft, hop) of the loss and of the MR-STFT distance: half, once and twice the model's ``n_fft``."""
    return tuple((stft.n_fft * k // 2, max(1, stft.n_fft * k // 8)) for k in (1, 2, 4))


@dataclasses.dataclass(frozen=True)
class VocoderSettings:
    # 96 channels, 4 blocks and a 3-frame embedding: 0.5 M weights, 20 000 steps in about 20 minutes on 2 cores;
    # alone it scores better on every measure of experiments/vocoder.py than the first recipe (192, 6, 7: 2.3 M
    # weights) did (docs/vocoder/)
    channels: int = 96
    blocks: int = 4
    kernel: int = 7
    expansion: int = 3
    max_log_gain: float = 2.0
    # the phase the network's rotation applies to: "integrated" (kgan.spectrogram.integrated_phase: each partial's
    # frequency, from a parabola through its log magnitudes, integrated over frames, its lobe locked) or "zero"
    phase_prior: str = "integrated"
    # Griffin-Lim iterations started from the network's phase (0: the network alone), and their algorithm
    # (kgan.spectrogram.GRIFFIN_LIM_ALGORITHMS)
    refine_iters: int = 0
    refine_algorithm: str = "accelerated"
    # what those iterations aim at: the given magnitude, except in bins it puts at or below quiet_db (dB, the view's
    # scale), where they take the network's own: Griffin-Lim alone would fill every bin the view holds at its
    # -80 dB floor with noise at that level. None: the given magnitude everywhere.
    quiet_db: float | None = -70.0
    # the first convolution's width in frames (the ConvNeXt blocks' is ``kernel``)
    embed_kernel: int = 3
    # training
    batch_size: int = 8
    segment_frames: int = 64
    learning_rate: float = 5e-4
    # the loss' log-magnitude terms (the multi-resolution one's L1 of log magnitudes, and the log-mel L1); 0 leaves
    # spectral convergence alone, which weighs the loud bins, where a phase is heard and Griffin-Lim's
    # inconsistency lands (kgan vocoder train --loss convergence)
    log_weight: float = 1.0
    mel_weight: float = 1.0
    mel_bins: int = 80
    steps: int = 20000
    checkpoint_every: int = 500
    max_songs: int = 400
    seed: int = 0


def _saved_settings(saved: dict, **changes) -> VocoderSettings:
    """A folder's settings; those written before a field existed get what they were trained with."""
    before = {"phase_prior": "zero", "refine_algorithm": "fast", "embed_kernel": saved.get("kernel", 7),
              "quiet_db": None}
    return VocoderSettings(**{**before, **saved, **changes})


def _convnext_block(x, channels: int, kernel: int, expansion: int, scale: float, name: str):
    y = keras.layers.DepthwiseConv1D(kernel, padding="same", name=f"{name}_dw")(x)
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm")(y)
    y = keras.layers.Dense(expansion * channels, name=f"{name}_expand")(y)
    y = keras.layers.Activation("gelu", name=f"{name}_gelu")(y)
    y = keras.layers.Dense(channels, name=f"{name}_project",
                           kernel_initializer=keras.initializers.VarianceScaling(scale * scale))(y)
    return keras.layers.Add(name=f"{name}_residual")([x, y])


def VocoderNet(bins: int, settings: VocoderSettings) -> keras.Model:  # noqa: N802 (a model factory)
    """``[B, T, bins]`` normalised magnitudes -> ``[B, T, bins + 1, 3]``: (log-gain, phase x, phase y)."""
    s = settings
    spectrum = keras.Input((None, bins), name="normalised_magnitude")
    x = keras.layers.Conv1D(s.channels, s.embed_kernel, padding="same", name="embed")(spectrum)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="embed_norm")(x)
    for i in range(s.blocks):
        x = _convnext_block(x, s.channels, s.kernel, s.expansion, 1.0 / s.blocks, name=f"block{i}")
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="head_norm")(x)
    head = keras.layers.Dense(3 * (bins + 1), name="head", kernel_initializer="zeros",
                              bias_initializer=keras.initializers.Constant(
                                  np.tile([0.0, 1.0, 0.0], bins + 1).astype("float32")))(x)
    out = keras.layers.Reshape((-1, bins + 1, 3), name="planes")(head)
    return keras.Model(spectrum, out, name="vocoder")


class Vocoder(tf.Module):
    """The network plus the STFT: ``waveform(normalised [B, T, n_fft/2], length) -> [B, length]``."""

    def __init__(self, net: keras.Model, stft: STFTConfig, settings: VocoderSettings, name: str = "vocoder"):
        super().__init__(name=name)
        if settings.phase_prior not in ("integrated", "zero"):
            raise ValueError(f"phase_prior must be 'integrated' or 'zero'. Received: {settings.phase_prior!r}")
        self.net = net
        self.settings = settings
        self.spec = Spectrogram(stft)

    def complex_stft(self, normalised, given=None):
        """The network's STFT; ``given``: ``normalised`` as a full-scale magnitude, if the caller has it."""
        planes = self.net(normalised, training=False)
        gain = tf.clip_by_value(planes[..., 0], -self.settings.max_log_gain, self.settings.max_log_gain)
        x, y = planes[..., 1], planes[..., 2]
        radius = tf.sqrt(x * x + y * y + 1e-12)
        given = self.spec.from_model(normalised) if given is None else given
        magnitude = given * tf.exp(gain) * self.spec.scale
        cos, sin = x / radius, y / radius
        if self.settings.phase_prior == "integrated":  # rotate the integrated phase by the network's angle
            prior = integrated_phase(given, self.spec.n_fft, self.spec.hop)
            cos, sin = cos * tf.cos(prior) - sin * tf.sin(prior), sin * tf.cos(prior) + cos * tf.sin(prior)
        return tf.complex(magnitude * cos, magnitude * sin)

    def waveform(self, normalised, length):
        s = self.settings
        target = self.spec.from_model(normalised)
        stft = self.complex_stft(normalised, target)
        if s.refine_iters > 0:  # a few consistency iterations from the network's phase (in segments when long)
            if s.quiet_db is not None:
                quiet = target <= 10.0 ** (s.quiet_db / 20.0)
                target = tf.where(quiet, tf.abs(stft) / self.spec.scale, target)
            return self.spec.griffin_lim_in_segments(target, length, n_iter=s.refine_iters, initial=stft,
                                                     algorithm=s.refine_algorithm)
        return self.spec.inverse(stft, length)


def stft_magnitude(waveform, n_fft: int, hop: int):
    return tf.abs(tf.signal.stft(waveform, n_fft, hop, fft_length=n_fft, window_fn=tf.signal.hann_window))


def multi_resolution_stft_loss(reference, estimate, sizes, log_weight: float = 1.0):
    """Mean over ``sizes`` ((n_fft, hop) pairs) of spectral convergence + ``log_weight`` x L1 of log magnitudes:
    ``[B]``."""
    total = 0.0
    for n_fft, hop in sizes:
        ref, est = stft_magnitude(reference, n_fft, hop), stft_magnitude(estimate, n_fft, hop)
        total += tf.norm(ref - est, axis=[-2, -1]) / tf.maximum(tf.norm(ref, axis=[-2, -1]), 1e-6)
        if log_weight:
            log_l1 = tf.reduce_mean(tf.abs(tf.math.log(ref + 1e-5) - tf.math.log(est + 1e-5)), axis=[-2, -1])
            total += log_weight * log_l1
    return total / len(sizes)


def _mel_loss(reference, estimate, mel_matrix, n_fft: int, hop: int):
    ref = tf.math.log(tf.tensordot(stft_magnitude(reference, n_fft, hop), mel_matrix, 1) + 1e-5)
    est = tf.math.log(tf.tensordot(stft_magnitude(estimate, n_fft, hop), mel_matrix, 1) + 1e-5)
    return tf.reduce_mean(tf.abs(ref - est), axis=[-2, -1])


def stft_distances(reference, estimate, given_normalised, spec: Spectrogram) -> dict[str, float]:
    """The vocoder comparison's measures for one waveform pair (numpy ``[L]``), lower is better.

    * ``spectral_convergence`` and ``log_spectral_distance`` (dB, RMS over bins, mean over frames)
      of the estimate's STFT against the reference's, at the model's own STFT;
    * ``mr_stft``: the multi-resolution STFT distance (the training loss' measure, three resolutions);
    * ``consistency``: spectral convergence of the estimate's re-analysed STFT against the magnitude
      it was given (``given_normalised``, the model view), i.e. how far the waveform strays from its input.
    """
    ref = tf.constant(reference[None], tf.float32)
    est = tf.constant(estimate[None], tf.float32)
    r, e = spec.magnitude(spec.forward(ref)), spec.magnitude(spec.forward(est))
    given = spec.from_model(tf.constant(given_normalised[None], tf.float32))
    frames = min(int(given.shape[1]), int(e.shape[1]))

    def convergence(a, b):
        return float(tf.norm(a - b) / tf.maximum(tf.norm(a), 1e-12))

    floor = spec.floor_magnitude
    db = 20.0 / math.log(10.0)
    lsd = tf.sqrt(tf.reduce_mean(tf.square(db * (tf.math.log(tf.maximum(r, floor)) -
                                                  tf.math.log(tf.maximum(e, floor)))), axis=-1))
    # the given magnitude is quantised to the [-1, 1] view: compare the re-analysis in that view too
    seen = spec.from_model(spec.normalise(e)[..., : spec.n_fft // 2])
    return {"spectral_convergence": convergence(r, e), "log_spectral_distance": float(tf.reduce_mean(lsd)),
            "mr_stft": float(multi_resolution_stft_loss(ref, est, resolutions(spec.config))[0]),
            "consistency": convergence(given[:, :frames], seen[:, :frames])}


# ------------------------------------------------------------------ training
def _song_sources(corpus_dir: str, splits=("train",)) -> list:
    """``kgan.preprocess.SongSources`` of the song folders (with a song.json) in ``splits``."""
    from kgan.io_utils import song_info
    from kgan.preprocess import SongError, find_sources

    songs = []
    for name in sorted(os.listdir(corpus_dir)):
        path = os.path.join(corpus_dir, name)
        info = song_info(path)
        if info and info.get("split", "train") in splits:
            try:
                songs.append(find_sources(path))
            except SongError:
                continue
    return songs


def _load_accompaniments(songs: list, rate: int, progress: bool) -> list[np.ndarray]:
    """Each song's accompaniment (its one file, or its stems summed), mono at ``rate``."""
    from kgan.audio import load
    from kgan.progress import audio_bar

    audio = []
    with audio_bar(0.0, "vocoder: load", disable=not progress) as bar:
        for sources in songs:
            parts = [load(path, rate)[0] for path in sources.accompaniment]
            samples = sum(part[: min(map(len, parts))] for part in parts)
            audio.append(samples)
            bar.total += len(samples) / rate
            bar.update(len(samples) / rate)
    return audio


def _crops(audio: list[np.ndarray], length: int, batch: int, seed: int):
    """An endless tf.data stream of ``[batch, length]`` random crops (louder-than-silence ones)."""
    lengths = np.array([len(a) for a in audio])
    weights = np.maximum(lengths - length, 1) / np.maximum(lengths - length, 1).sum()

    def generator():
        rng = np.random.default_rng(seed)
        while True:
            song = rng.choice(len(audio), p=weights)
            a = audio[song]
            start = int(rng.integers(0, max(1, len(a) - length)))
            crop = a[start : start + length]
            if len(crop) < length:
                crop = np.pad(crop, (0, length - len(crop)))
            if np.max(np.abs(crop)) < 1e-3:
                continue
            yield crop

    ds = tf.data.Dataset.from_generator(generator, output_signature=tf.TensorSpec([length], tf.float32))
    return ds.batch(batch, drop_remainder=True).prefetch(2)


def train_vocoder(corpus_dir: str, out_dir: str, config: Config, settings: VocoderSettings | None = None,
                  steps: int | None = None, progress: bool = True) -> dict:
    """Fit a vocoder on ``corpus_dir``'s accompaniment stems (train split); resumes from ``out_dir``.

    A resumed folder keeps its own settings; ``settings`` that differ from them
    (other than ``steps``) are refused, since the checkpoint would not fit them.

    Returns the last step's losses.
    """
    from tqdm import tqdm

    from kgan.io_utils import atomic_path

    asked = settings
    settings = settings or VocoderSettings()
    steps = settings.steps if steps is None else int(steps)
    spec = Spectrogram(config.stft)
    meta_path = os.path.join(out_dir, VOCODER_CONFIG)
    meta = {"settings": dataclasses.asdict(settings), "stft": dataclasses.asdict(config.stft),
            "sample_rate": config.audio.sample_rate}
    if os.path.exists(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            previous = json.load(f)
        for key in ("stft", "sample_rate"):
            if previous[key] != meta[key]:
                raise ValueError(f"{meta_path}: this vocoder was trained with another {key} "
                                 f"({previous[key]} vs {meta[key]}); use a new output folder")
        settings = _saved_settings(previous["settings"], steps=steps)
        changed = [f.name for f in dataclasses.fields(settings) if asked is not None and f.name != "steps"
                   and getattr(asked, f.name) != getattr(settings, f.name)]
        if changed:
            name = changed[0]
            raise ValueError(f"{meta_path}: this vocoder was trained with {name}={getattr(settings, name)!r}, "
                             f"not {getattr(asked, name)!r}; resume without changing it or use a new output folder")
    os.makedirs(out_dir, exist_ok=True)
    with atomic_path(meta_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump({**meta, "settings": dataclasses.asdict(settings)}, f, indent=2, sort_keys=True)

    songs = _song_sources(corpus_dir)
    if not songs:
        raise FileNotFoundError(f"{corpus_dir}: no train-split song folders with their stems")
    rng = np.random.default_rng(settings.seed)
    if len(songs) > settings.max_songs:
        songs = [songs[i] for i in sorted(rng.choice(len(songs), settings.max_songs, replace=False))]
    audio = _load_accompaniments(songs, config.audio.sample_rate, progress)
    length = spec.num_samples(settings.segment_frames)

    keras.utils.set_random_seed(settings.seed)
    net = VocoderNet(config.stft.num_bins, settings)
    vocoder = Vocoder(net, config.stft, settings)
    optimizer = keras.optimizers.AdamW(settings.learning_rate, beta_1=0.8, beta_2=0.9, weight_decay=0.01)
    step, checkpoint, manager = resumable_checkpoint(os.path.join(out_dir, "checkpoints"), net, optimizer)
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(settings.mel_bins, config.stft.n_fft // 2 + 1,
                                                       config.audio.sample_rate, 20.0,
                                                       config.audio.sample_rate / 2)

    sizes = resolutions(config.stft)

    @tf.function
    def train_step(batch):
        normalised = spec.to_model(batch)
        with tf.GradientTape() as tape:
            estimate = vocoder.waveform(normalised, length)
            stft = multi_resolution_stft_loss(batch, estimate, sizes, settings.log_weight)
            mel = _mel_loss(batch, estimate, mel_matrix, config.stft.n_fft, config.stft.hop_length)
            loss = tf.reduce_mean(stft + settings.mel_weight * mel)
        grads = tape.gradient(loss, net.trainable_variables)
        optimizer.apply_gradients(zip(grads, net.trainable_variables))
        step.assign_add(1)
        return {"loss": loss, "mr_stft": tf.reduce_mean(stft), "mel": tf.reduce_mean(mel)}

    data = iter(_crops(audio, length, settings.batch_size, settings.seed + int(step.numpy())))
    history_path = os.path.join(out_dir, "history.jsonl")
    metrics = {}
    start = int(step.numpy())
    with tqdm(total=steps, initial=min(start, steps), desc="vocoder", unit="step", disable=not progress) as bar:
        while int(step.numpy()) < steps:
            metrics = {k: float(v) for k, v in train_step(next(data)).items()}
            if not all(math.isfinite(v) for v in metrics.values()):
                raise RuntimeError(f"vocoder training diverged at step {int(step.numpy())}: {metrics}")
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.3f}")
            current = int(step.numpy())
            if current % 50 == 0 or current == 1:
                with open(history_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": current, **metrics}) + "\n")
            if current % settings.checkpoint_every == 0 or current == steps:
                manager.save(checkpoint_number=current)
    return metrics


def load_vocoder(vocoder_dir: str, stft: STFTConfig | None = None, sample_rate: int | None = None,
                 refine_iters: int | None = None) -> Vocoder:
    """The newest checkpoint of a ``kgan vocoder train`` folder; checks it matches ``stft``/``sample_rate``.

    ``refine_iters``: Griffin-Lim iterations from the network's phase at inference (default: the folder's).
    """
    meta_path = os.path.join(vocoder_dir, VOCODER_CONFIG)
    if not os.path.exists(meta_path):
        raise FileNotFoundError(f"{meta_path}: not a vocoder folder (made by kgan vocoder train)")
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    trained = STFTConfig(**meta["stft"])
    if stft is not None and dataclasses.asdict(stft) != meta["stft"]:
        raise ValueError(f"{vocoder_dir}: the vocoder was trained for STFT {meta['stft']}, "
                         f"the model uses {dataclasses.asdict(stft)}")
    if sample_rate is not None and sample_rate != meta["sample_rate"]:
        raise ValueError(f"{vocoder_dir}: the vocoder was trained at {meta['sample_rate']} Hz, "
                         f"the model runs at {sample_rate} Hz")
    settings = _saved_settings(meta["settings"])
    if refine_iters is not None:
        settings = dataclasses.replace(settings, refine_iters=int(refine_iters))
    net = VocoderNet(trained.num_bins, settings)
    ckpt = tf.train.latest_checkpoint(os.path.join(vocoder_dir, "checkpoints"))
    if ckpt is None:
        raise FileNotFoundError(f"{vocoder_dir}/checkpoints: no vocoder checkpoint; train it first")
    tf.train.Checkpoint(net=net).restore(ckpt).expect_partial().assert_existing_objects_matched()
    return Vocoder(net, trained, settings)
