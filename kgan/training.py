"""The Trainer: strategy, models, optimizers, the compiled step, checkpoints and summaries.

Distribution. ``make_strategy`` picks ``MultiWorkerMirroredStrategy`` when
``TF_CONFIG`` is set, else ``MirroredStrategy`` over all GPUs, else over
``cpu_replicas`` logical CPU devices (``split_cpu`` makes them; one by
default), so the multi-replica path runs and is tested without GPUs.

Losses are per example, scaled by hand with ``tf.nn.compute_average_loss`` by
the *global* batch: Keras 3's optimizer sums gradients across replicas, so the
sum of the per-replica scaled gradients is the gradient of the global mean, and
a step on N replicas equals a step on one replica over the same global batch
(tested). Batch norm is synchronised across replicas (``kgan.models.blocks``).

Generator loss: ``gan_weight * GAN + l1_weight * L1`` (pix2pix, lambda = 100; the L1 optionally weighted
per cell by ``vocal_mask_weights``, for songs separated from mixes), plus
``chroma_weight * chroma`` when set (``kgan.harmonic_loss``: chroma fit and chord motion), plus
``dynamics_weight * dynamics`` when set (``kgan.dynamics_loss``: the loudness modulation spectra).
Discriminator loss: half the sum of its losses on real and generated pairs.
GAN losses are vanilla (sigmoid cross-entropy on logits) or least squares.

Resuming. ``tf.train.CheckpointManager`` saves both models, both optimizers
and the step every ``checkpoint_every`` steps. The input pipeline is
deterministic for its seed, so its position is restored by rebuilding it and
skipping the batches already consumed; the vocal noise is drawn from a
stateless generator keyed by (seed, step, replica) and dropout's seed state is a
model variable, so a resumed run continues exactly as an uninterrupted one
would (tested with op determinism on).

Finishing. After the last step the generator's batch-norm moving statistics
are recomputed from the final weights (``Trainer.calibrate_batch_norm``) and
saved with the last checkpoint, so inference-mode output matches what the
weights were trained to produce.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from typing import Callable

import keras
import tensorflow as tf

from kgan import __version__
from kgan.augment import augment_vocal
from kgan.chords import PlanRenderer
from kgan.config import Config
from kgan.dataset import read_metadata, windows_dataset
from kgan.dynamics_loss import band_edges, modulation_loss
from kgan.harmonic_loss import chroma_loss, chroma_matrix
from kgan.io_utils import atomic_write_text
from kgan.models import PatchGANDiscriminator, UNetGenerator
from kgan.spectrogram import Spectrogram
from kgan.style_critic import load_style_critic, style_loss

__all__ = ["split_cpu", "make_strategy", "Trainer", "TrainingDiverged", "write_run_config", "read_run_config",
           "checkpoint_names", "unreadable_checkpoint", "vocal_mask_weights", "weighted_l1"]

METRICS = ("g_total", "g_gan", "g_l1", "g_chroma", "g_style", "g_dynamics", "d_loss", "d_real", "d_fake")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or Inf; the message says which step and which checkpoint was kept."""


def split_cpu(n: int) -> None:
    """Split the CPU into ``n`` logical devices. Call before TensorFlow runs anything."""
    if n <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)


def make_strategy(cpu_replicas: int = 1) -> tf.distribute.Strategy:
    """MultiWorkerMirrored with TF_CONFIG; else Mirrored over all GPUs, else over ``cpu_replicas`` CPUs."""
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    cpus = tf.config.list_logical_devices("CPU")
    if cpu_replicas > len(cpus):
        raise ValueError(
            f"{cpu_replicas} CPU replicas requested but only {len(cpus)} logical CPU device(s) exist; "
            "call kgan.training.split_cpu before TensorFlow starts"
        )
    return tf.distribute.MirroredStrategy([d.name for d in cpus[:cpu_replicas]])


def _task() -> tuple[str | None, int]:
    spec = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {})
    return spec.get("type"), int(spec.get("index", 0))


def is_chief() -> bool:
    task_type, index = _task()
    return task_type in (None, "chief") or (task_type == "worker" and index == 0 and
                                            "chief" not in json.loads(os.environ["TF_CONFIG"]).get("cluster", {}))


def write_run_config(run_dir: str, config: Config, command: list[str]) -> None:
    data = {"config": config.to_dict(), "command": command, "kgan_version": __version__}
    atomic_write_text(os.path.join(run_dir, "config.json"), json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_run_config(run_dir: str) -> Config:
    path = os.path.join(run_dir, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            return Config.from_dict(json.load(f)["config"])
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not found; is {run_dir} a `kgan train` run directory?") from None


def _seed_states(model: keras.Model) -> dict:
    """The random-seed state of every layer that draws random numbers (dropout), by layer name.

    Keras keeps these out of the model's tracked variables, so a checkpoint of
    the model alone would restart dropout's random stream on resume.
    """
    return {layer.name: layer.seed_generator.state.value for layer in model.layers
            if getattr(layer, "seed_generator", None) is not None}


def vocal_mask_weights(vocal, target, db_floor: float, db_ceiling: float):
    """Per-cell L1 weights: the target's share of the target's and the vocal's power, ``[B, F, T, 1]``.

    Both are normalised spectrogram windows (``Spectrogram.normalise``: dB mapped linearly onto [-1, 1]).
    A cell where the vocal is 10 dB above the target weighs 0.09, one where they are equal 0.5, one the
    vocal does not reach about 1. A separated accompaniment is least reliable where the separated vocal
    dominates: there the separation's mask took most of the mixture for the vocal.
    """
    db_per_unit = (db_ceiling - db_floor) / 2.0
    above = (vocal[..., :1] - target) * db_per_unit  # the vocal's level over the target's, dB
    return tf.sigmoid(-above * math.log(10.0) / 10.0)  # 1 / (1 + 10^(above / 10))


def weighted_l1(target, fake, weights=None):
    """Per-example mean absolute difference, ``[B]``; with ``weights`` (per cell) their weighted mean."""
    if weights is None:
        return tf.reduce_mean(tf.abs(target - fake), axis=[1, 2, 3])
    return tf.reduce_sum(weights * tf.abs(target - fake), axis=[1, 2, 3]) / tf.reduce_sum(weights, axis=[1, 2, 3])


def checkpoint_names(directory: str) -> list[str]:
    """``ckpt-N`` names of the checkpoints in ``directory`` (those with an index file), oldest first."""
    import glob
    import re

    steps = sorted({int(m.group(1)) for path in glob.glob(os.path.join(directory, "ckpt-*.index"))
                    if (m := re.search(r"ckpt-(\d+)\.index$", path))})
    return [f"ckpt-{n}" for n in steps]


def unreadable_checkpoint(ckpt: str, error: Exception) -> str:
    """One line: which checkpoint could not be read, why, and which older ones the run still has."""
    reason = next((line.strip() for line in str(getattr(error, "message", error)).splitlines() if line.strip()), "")
    older = [n for n in checkpoint_names(os.path.dirname(ckpt)) if n != os.path.basename(ckpt)]
    hint = f"; older checkpoints here: {', '.join(older)}" if older else "; no older checkpoint is left"
    return f"{ckpt}: checkpoint unreadable ({reason}){hint}"


@contextlib.contextmanager
def dtype_policy(name: str):
    """Build Keras layers under dtype policy ``name`` ("float32", "mixed_bfloat16"); the old one is restored."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class Trainer:
    """Owns the strategy, G, D, both optimizers, the step and the CheckpointManager."""

    def __init__(self, config: Config, run_dir: str, strategy: tf.distribute.Strategy | None = None,
                 max_checkpoints: int = 3):
        self.config = config
        self.run_dir = run_dir
        self.strategy = strategy or make_strategy()
        self.chief = is_chief()
        t = config.train
        with self.strategy.scope(), dtype_policy(t.precision):
            self.generator = UNetGenerator.from_kgan_config(config)
            self.discriminator = PatchGANDiscriminator.from_kgan_config(config)
            self.g_optimizer = keras.optimizers.Adam(t.learning_rate, beta_1=t.beta_1, name="g_adam")
            self.d_optimizer = keras.optimizers.Adam(t.learning_rate, beta_1=t.beta_1, name="d_adam")
            # Build the optimizers here, in cross-replica context: creating their slots
            # lazily inside strategy.run fails.
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.checkpoint = tf.train.Checkpoint(generator=self.generator, discriminator=self.discriminator,
                                              g_optimizer=self.g_optimizer, d_optimizer=self.d_optimizer,
                                              step=self.step, random_state=_seed_states(self.generator))
        task_type, index = _task()
        ckpt_dir = os.path.join(run_dir, "checkpoints" if self.chief else f"checkpoints-{task_type}{index}")
        self.manager = tf.train.CheckpointManager(self.checkpoint, ckpt_dir, max_to_keep=max_checkpoints)
        self.spec = Spectrogram(config.stft)
        self.chroma_matrix = chroma_matrix(config.audio.sample_rate, config.stft.n_fft, config.stft.n_fft // 2)
        self.dynamics_bands = band_edges(config.stft.num_bins)  # kgan.dynamics_loss' octave bands
        self.planner = PlanRenderer(config) if config.model.vocal_input == "plan" else None
        self.critic = None  # the frozen style critic of train.style_weight (kgan.style_critic)
        if t.style_weight > 0:
            with self.strategy.scope():
                self.critic = load_style_critic(t.style_critic, config)
        self._train_step = None

    # ------------------------------------------------------------------ losses
    def _gan_loss(self, logits, real: bool):
        """Per-example GAN loss, averaged over patches: ``[B]``."""
        label = tf.ones_like(logits) if real else tf.zeros_like(logits)
        if self.config.train.gan_loss == "lsgan":
            per_patch = tf.square(logits - label)
        else:
            per_patch = tf.nn.sigmoid_cross_entropy_with_logits(labels=label, logits=logits)
        return tf.reduce_mean(per_patch, axis=[1, 2, 3])

    def _d_score(self, logits):
        """Mean D output per example: probability for BCE, raw score for LSGAN."""
        score = logits if self.config.train.gan_loss == "lsgan" else tf.sigmoid(logits)
        return tf.reduce_mean(score, axis=[1, 2, 3])

    # -------------------------------------------------------------------- step
    def _g(self, vocal, style, training: bool):
        """The generator on a vocal batch, with its style ids when the models are style-conditioned."""
        return self.generator(vocal if style is None else [vocal, style], training=training)

    def _d(self, vocal, accompaniment, style, training: bool):
        return self.discriminator([vocal, accompaniment] + ([] if style is None else [style]), training=training)

    def _vocal_in(self, vocal, target, seed=None, chords=None):
        """What the models take as the vocal: ``vocal``, or with the ``plan`` input, ``vocal`` beside the plan
        of the true accompaniment's chords (``train.plan_corruption`` of it made wrong when a ``seed`` is
        given: training; the exact plan otherwise). The chords are the score's (``chords`` ``[B, T]``, from
        the data set) where it has them, else read from the accompaniment ``target``."""
        if self.planner is None:
            return vocal
        corruption = self.config.train.plan_corruption if seed is not None else 0.0
        return tf.concat([vocal, self.planner.true_plan(target, seed, corruption, labels=chords)], axis=-1)

    def _dataset(self, data_dir: str, split: str, batch: int, **kwargs):
        """``windows_dataset`` with the score's chords for a ``plan`` model (``_parts`` reads its elements)."""
        return windows_dataset(data_dir, split, self.config, batch, chords=self.planner is not None, **kwargs)

    def _parts(self, batch):
        """``(vocal, target, style, reference, chords)`` of a ``_dataset`` element, None for what it lacks."""
        vocal, target, *rest = batch
        chords = rest.pop() if self.planner is not None else None
        style = rest[0] if rest and self.config.model.style_names else None  # else 0 or absent
        reference = rest[1] if len(rest) > 1 else None  # the segments' mean chroma
        return vocal, target, style, reference, chords

    def _replica_step(self, batch_parts, step):
        vocal, target, style, reference, chords = self._parts(batch_parts)
        t = self.config.train
        batch = t.batch_size

        def average(per_example):
            return tf.nn.compute_average_loss(per_example, global_batch_size=batch)

        replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)
        if t.l1_weighting == "vocal-mask":  # from the vocal as separated, before augmentation and noise
            l1_cells = vocal_mask_weights(vocal, target, self.spec.db_floor, self.spec.db_ceiling)
        else:
            l1_cells = None
        if self.config.augment.enabled:  # timbre augmentation, keyed like the noise below
            vocal = augment_vocal(vocal, self.config, tf.stack([tf.constant(t.seed + 1, tf.int64),
                                                                step * 1024 + replica]))
        if t.vocal_noise_std > 0:
            seed = tf.stack([tf.constant(t.seed, tf.int64), step * 1024 + replica])
            noise = tf.random.stateless_normal(tf.shape(vocal), seed=seed, stddev=t.vocal_noise_std)
            vocal = tf.clip_by_value(vocal + noise, -1.0, 1.0)
        if style is not None and t.style_dropout > 0:  # some examples learn the "any" style (id 0)
            seed = tf.stack([tf.constant(t.seed + 2, tf.int64), step * 1024 + replica])
            keep = tf.random.stateless_uniform(tf.shape(style), seed=seed) >= t.style_dropout
            style = tf.where(keep, style, tf.zeros_like(style))
        vocal = self._vocal_in(vocal, target, tf.stack([tf.constant(t.seed + 3, tf.int64), step * 1024 + replica]),
                               chords)

        def d_losses(fake):
            d_real = self._d(vocal, target, style, training=True)
            d_fake = self._d(vocal, fake, style, training=True)
            per_example = 0.5 * (self._gan_loss(d_real, True) + self._gan_loss(d_fake, False))
            return per_example, d_real, d_fake

        for _ in range(t.d_steps - 1):  # extra discriminator updates (D:G ratio > 1)
            fake = self._g(vocal, style, training=True)
            with tf.GradientTape() as tape:
                loss = average(d_losses(tf.stop_gradient(fake))[0])
            grads = tape.gradient(loss, self.discriminator.trainable_variables)
            self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))

        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = self._g(vocal, style, training=True)
            d_per_example, d_real, d_fake = d_losses(fake)
            g_gan = self._gan_loss(d_fake, True)
            g_l1 = weighted_l1(target, fake, l1_cells)
            g_per_example = t.gan_weight * g_gan + t.l1_weight * g_l1
            if t.chroma_weight > 0:
                g_chroma = chroma_loss(fake, target, self.chroma_matrix, self.spec.db_floor, self.spec.db_ceiling,
                                       reference=reference)
                g_per_example += t.chroma_weight * g_chroma
            else:
                g_chroma = tf.zeros_like(g_l1)
            if self.critic is not None:  # the output must sound like the asked-for style ("any" is free)
                g_style = style_loss(self.critic, fake, style)
                g_per_example += tf.where(step >= t.style_start, t.style_weight, 0.0) * g_style
            else:
                g_style = tf.zeros_like(g_l1)
            if t.dynamics_weight > 0:  # as much loudness movement as the truth, wherever it falls
                g_dynamics = modulation_loss(fake, target, self.dynamics_bands)
                g_per_example += t.dynamics_weight * g_dynamics
            else:
                g_dynamics = tf.zeros_like(g_l1)
            g_loss = average(g_per_example)
            d_loss = average(d_per_example)
        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables
        g_grads = g_tape.gradient(g_loss, g_vars)
        d_grads = d_tape.gradient(d_loss, d_vars)
        self.g_optimizer.apply_gradients(zip(g_grads, g_vars))
        if t.gan_weight > 0:
            self.d_optimizer.apply_gradients(zip(d_grads, d_vars))
        return {
            "g_total": g_loss, "g_gan": average(g_gan), "g_l1": average(g_l1), "g_chroma": average(g_chroma),
            "g_style": average(g_style), "g_dynamics": average(g_dynamics),
            "d_loss": d_loss,
            "d_real": average(self._d_score(d_real)), "d_fake": average(self._d_score(d_fake)),
        }

    def train_step(self, distributed_batch) -> dict[str, tf.Tensor]:
        """One compiled step over a global batch (as from ``experimental_distribute_dataset``)."""
        if self._train_step is None:
            @tf.function
            def step_fn(batch):
                step = self.step.read_value()
                per_replica = self.strategy.run(self._replica_step, args=(tuple(batch), step))
                self.step.assign_add(1)
                return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                        for k, v in per_replica.items()}

            self._train_step = step_fn
        return self._train_step(distributed_batch)

    # -------------------------------------------------------------------- data
    def dataset(self, data_dir: str):
        """The distributed training pipeline, positioned after the batches already consumed."""
        reference = self.config.train.chroma_weight > 0 and self.config.train.chroma_reference == "segment"
        ds = self._dataset(data_dir, "train", self.config.train.batch_size, training=True,
                           segment_reference=reference)
        ds = ds.skip(int(self.step.numpy()))
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        options.deterministic = True
        return self.strategy.experimental_distribute_dataset(ds.with_options(options))

    # ---------------------------------------------------------------- restore
    def restore(self, resume_from: str | None = None) -> int:
        """Restore the newest checkpoint (or ``resume_from``, e.g. ``ckpt-2500``), if any; returns the step.

        Never silently restarts at step 0 over existing checkpoints: an unreadable
        newest checkpoint, or an unreadable ``checkpoint`` state file, raises
        ValueError naming the file and the checkpoints still there.
        """
        directory = self.manager.directory
        present = checkpoint_names(directory)
        if resume_from:
            latest = os.path.join(directory, os.path.basename(resume_from))
            if not os.path.exists(latest + ".index"):
                raise ValueError(f"{latest}: no such checkpoint (present: {', '.join(present) or 'none'})")
        else:
            latest = self.manager.latest_checkpoint
            if latest is None and present:
                raise ValueError(f"{os.path.join(directory, 'checkpoint')}: unreadable or missing, but checkpoints "
                                 f"exist ({', '.join(present)}); resume with --resume-from {present[-1]}")
        if latest:
            try:
                # Inside the scope, so that anything restore creates is mirrored like the rest.
                with self.strategy.scope():
                    self.checkpoint.restore(latest).assert_existing_objects_matched()
            except (tf.errors.OpError, ValueError, AssertionError, IndexError) as e:  # IndexError: truncated data
                raise ValueError(unreadable_checkpoint(latest, e) + "; resume from one with --resume-from") from None
        return int(self.step.numpy())

    # --------------------------------------------------------------- evaluate
    def validation_l1(self, data_dir: str, max_batches: int = 20) -> float | None:
        """Mean L1 of the generator (inference mode) over up to ``max_batches`` validation batches."""
        try:
            ds = self._dataset(data_dir, "val", self.config.train.batch_size, training=False, drop_remainder=False)
        except ValueError:
            return None
        total, count = 0.0, 0
        for batch in ds.take(max_batches):
            vocal, target, style, _, chords = self._parts(batch)
            fake = self._predict(self._vocal_in(vocal, target, chords=chords), style)
            total += float(tf.reduce_sum(tf.reduce_mean(tf.abs(target - fake), axis=[1, 2, 3])))
            count += int(vocal.shape[0])
        return total / count if count else None

    def calibrate_batch_norm(self, data_dir: str, batches: int | None = None) -> int:
        """Recompute every generator batch-norm layer's moving mean and variance from the final weights.

        During training the moving statistics are exponential averages (momentum 0.9) over the
        last few batches, each seen by different weights; at the end of a GAN run they can miss the
        final weights' statistics enough to make inference-mode output far worse than
        training-mode output (measured: val L1 0.34 -> 0.16 on one run). This replaces them by the
        plain average of the batch statistics over ``batches`` evenly spaced training batches of
        clean vocals (what inference sees: no input noise, no dropout), as "precise BN" does.
        Deterministic given the weights, so a resumed run ends with the same statistics as an
        uninterrupted one. Returns the number of batches used.
        """
        batches = self.config.train.bn_calibration_batches if batches is None else batches
        layers = [layer for layer in self.generator._flatten_layers()
                  if isinstance(layer, keras.layers.BatchNormalization)]
        if batches <= 0 or not layers:
            return 0
        size = self.config.train.batch_size
        ds = self._dataset(data_dir, "train", size, training=False, drop_remainder=True)
        # dataset.json counts strided training windows; inference-mode crops do not overlap.
        strided = int(read_metadata(data_dir).get("counts", {}).get("train", {}).get("windows", 0))
        tiles = strided * self.config.window.stride // self.config.window.frames
        every = max(1, tiles // size // batches)
        ds = ds.enumerate().filter(lambda i, _: i % every == 0).map(lambda _, batch: batch).take(batches)
        # Dropout is switched off meanwhile: the statistics should be those of inference-time
        # activations (dropout changes their variance: Li et al., CVPR 2019).
        dropouts = [layer for layer in self.generator._flatten_layers() if isinstance(layer, keras.layers.Dropout)]
        momenta, rates = [layer.momentum for layer in layers], [layer.rate for layer in dropouts]
        used = 0
        try:
            for layer in dropouts:
                layer.rate = 0.0
            for batch in ds:  # eager, so that each call reads the momentum set just before it
                vocal, target, style, _, chords = self._parts(batch)
                for layer in layers:
                    layer.momentum = used / (used + 1.0)  # running mean: the first batch overwrites
                self._g(self._vocal_in(vocal, target, chords=chords), style, training=True)
                used += 1
        finally:
            for layer, momentum in zip(layers, momenta):
                layer.momentum = momentum
            for layer, rate in zip(dropouts, rates):
                layer.rate = rate
        return used

    @tf.function(reduce_retracing=True)
    def _predict(self, vocal, style=None):
        return self._g(vocal, style, training=False)

    # ------------------------------------------------------------------- fit
    def fit(self, data_dir: str, steps: int | None = None, progress: bool = True,
            log: Callable[[str], None] | None = None, val_batches: int = 20, resume_from: str | None = None) -> dict:
        """Train to ``steps`` (default ``train.steps``), resuming from the newest checkpoint.

        Returns the last metrics. Raises TrainingDiverged on a non-finite loss,
        keeping the last good checkpoint.
        """
        from tqdm import tqdm

        log = log or (lambda line: print(line, file=sys.stderr))
        t = self.config.train
        steps = t.steps if steps is None else steps
        start = self.restore(resume_from)
        if start:
            log(f"resumed from {resume_from or self.manager.latest_checkpoint} at step {start}")
        if start >= steps:
            if not self._calibrated_at(start) and self.config.train.bn_calibration_batches > 0:
                metrics = {}  # finished by an older kgan: calibrate and save, nothing else
                self._finish(data_dir, start, metrics, None, log, val_batches)
                self.manager.save(checkpoint_number=start)
                return metrics
            log(f"already at step {start} >= {steps}: nothing to do")
            return {}
        writer = tf.summary.create_file_writer(os.path.join(self.run_dir, "logs", "train")) if self.chief else None
        preview = self._preview_batch(data_dir) if self.chief else None
        if start == 0 and self.chief:  # where validation starts, for judging how far it falls
            val = self.validation_l1(data_dir, val_batches)
            if val is not None:
                self._append_history({"step": 0, "val_l1": val})
                if writer:
                    with writer.as_default(step=0):
                        tf.summary.scalar("loss/val_l1", val)
        iterator = iter(self.dataset(data_dir))
        bar = tqdm(total=steps, initial=start, unit="step", desc="train", disable=not progress or not self.chief,
                   dynamic_ncols=True)
        metrics: dict[str, float] = {}
        window_start, window_steps = time.perf_counter(), 0
        step = start
        while step < steps:
            result = self.train_step(next(iterator))
            metrics = {k: float(v) for k, v in result.items()}
            step += 1
            window_steps += 1
            bad = [k for k, v in metrics.items() if not math.isfinite(v)]
            if bad:
                kept = self.manager.latest_checkpoint or "none (no checkpoint was written yet)"
                raise TrainingDiverged(
                    f"step {step}: non-finite loss ({', '.join(f'{k}={metrics[k]}' for k in bad)}); "
                    f"stopped; last good checkpoint kept: {kept}"
                )
            bar.update(1)
            if step % t.summary_every == 0 or step == steps or step == start + 1:
                rate = window_steps / max(time.perf_counter() - window_start, 1e-9)
                window_start, window_steps = time.perf_counter(), 0
                bar.set_postfix_str(f"L1 {metrics['g_l1']:.3f} D(real) {metrics['d_real']:.2f} "
                                    f"D(fake) {metrics['d_fake']:.2f}")
                if self.chief:
                    self._append_history({"step": step, **metrics, "steps_per_second": round(rate, 3)})
                if writer:
                    with writer.as_default(step=step):
                        for k, v in metrics.items():
                            tf.summary.scalar(f"loss/{k}" if k not in ("d_real", "d_fake") else f"d/{k}", v)
                        tf.summary.scalar("steps_per_second", rate)
            if step % t.image_every == 0 or step == steps:
                val = self.validation_l1(data_dir, val_batches) if self.chief else None
                if writer:
                    with writer.as_default(step=step):
                        if val is not None:
                            tf.summary.scalar("loss/val_l1", val)
                        self._write_media(preview)
                    writer.flush()
                if val is not None:
                    metrics["val_l1"] = val
                    self._append_history({"step": step, "val_l1": val})
                    bar.write(f"step {step}: train L1 {metrics['g_l1']:.4f}, val L1 {val:.4f}", file=sys.stderr)
            if step % t.checkpoint_every == 0 or step == steps:
                if step == steps:  # bar.write keeps the log line off the progress bar's line
                    self._finish(data_dir, step, metrics, writer, lambda line: bar.write(line, file=sys.stderr)
                                 if progress else log(line), val_batches)
                self.manager.save(checkpoint_number=step)
        bar.close()
        if writer:
            writer.flush()
        return metrics

    def _finish(self, data_dir, step, metrics, writer, log, val_batches) -> None:
        """Last step: calibrate batch norm and log validation L1 with the statistics that get saved."""
        before = metrics.get("val_l1")
        if before is None and self.chief:
            before = self.validation_l1(data_dir, val_batches)
        used = self.calibrate_batch_norm(data_dir)
        if not used:
            return
        val = self.validation_l1(data_dir, val_batches) if self.chief else None
        if val is not None:
            metrics["val_l1"] = val
            self._append_history({"step": step, "val_l1": val, "bn_calibrated": True})
            if writer:
                with writer.as_default(step=step):
                    tf.summary.scalar("loss/val_l1_calibrated", val)
        change = f": val L1 {before:.4f} -> {val:.4f}" if val is not None and before is not None else ""
        if self.chief:
            log(f"batch-norm statistics recalibrated on {used} training batches{change}")

    def _calibrated_at(self, step: int) -> bool:
        """Whether ``metrics.jsonl``'s last validation record at ``step`` is a calibrated one."""
        from kgan.plots import read_history

        try:
            history = read_history(os.path.join(self.run_dir, "metrics.jsonl"))
        except (OSError, ValueError):
            return False
        return any(h["step"] == step and h.get("bn_calibrated") for h in history)

    def _append_history(self, record: dict) -> None:
        """One JSON line per summary in ``RUN_DIR/metrics.jsonl`` (a resumed run may repeat steps; last wins)."""
        os.makedirs(self.run_dir, exist_ok=True)
        with open(os.path.join(self.run_dir, "metrics.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    # ---------------------------------------------------------------- media
    def _preview_batch(self, data_dir: str, count: int = 3):
        for split in ("val", "train"):
            try:
                ds = self._dataset(data_dir, split, count, training=False, drop_remainder=False)
                return next(iter(ds))
            except (ValueError, StopIteration):
                continue
        return None

    def _write_media(self, preview) -> None:
        """TensorBoard images (vocal | generated | target) and audio of the generated accompaniment."""
        if preview is None:
            return
        vocal, target, style, _, chords = self._parts(preview)
        given = self._vocal_in(vocal, target, chords=chords)
        fake = self._predict(given, style)
        sep = tf.ones_like(vocal[:, :, :4])
        shown = [vocal, sep] + ([given[..., 1:], sep] if self.planner is not None else []) + [fake, sep, target]
        panel = tf.concat(shown, axis=2)  # (B, F, 3T + 8, 1), with the chord plan after the vocal: 4T + 12
        image = tf.reverse((panel + 1.0) / 2.0, axis=[1])  # low frequencies at the bottom
        tf.summary.image("spectrograms/vocal|generated|target" if self.planner is None
                         else "spectrograms/vocal|plan|generated|target", image, max_outputs=int(vocal.shape[0]))
        mags = self.spec.from_model(tf.transpose(fake[..., 0], [0, 2, 1]))  # (B, T, F+1)
        length = self.spec.num_samples(int(mags.shape[1]))
        wave = self.spec.griffin_lim(mags, length, n_iter=32)
        peak = tf.reduce_max(tf.abs(wave), axis=-1, keepdims=True)
        wave = wave / tf.maximum(peak, 1e-3) * 0.9
        tf.summary.audio("generated_accompaniment", wave[..., None], self.config.audio.sample_rate,
                         max_outputs=int(vocal.shape[0]))


def config_difference(a: Config, b: Config, ignore: tuple[str, ...] = ("train.steps",)) -> str | None:
    """The first differing ``section.field`` of two configs (ignoring ``ignore``), as text, or None."""
    for section in ("audio", "stft", "window", "model", "train", "augment"):
        sa, sb = getattr(a, section), getattr(b, section)
        for f in dataclasses.fields(sa):
            key = f"{section}.{f.name}"
            if key not in ignore and getattr(sa, f.name) != getattr(sb, f.name):
                return f"{key}: {getattr(sa, f.name)!r} vs {getattr(sb, f.name)!r}"
    return None
