"""A style critic: a small classifier of accompaniment windows by style, and a loss that uses it.

Trained with L1 at weight 100 and a PatchGAN whose only sign of the style is
four constant planes, a style-conditioned generator renders every style as the
same blurred, sustained texture: asked for piano, organ or guitar, the
shipped model's outputs are nearest to the strings (README, "The pretrained
model"). The L1-optimal output is the conditional median of the target, and
what tells the styles apart (a strum's onsets, a piano's decays, a drum kit's
broadband hits) sits at places the vocal does not predict, so L1 averages it
away. The auxiliary-classifier GAN (Odena, Olah & Shlens, ICML 2017) answers
this by also asking the generator's output to be *recognised* as its class.
Here the classifier is trained first, on the true accompaniment windows of
the training set, and frozen; the generator then pays ``train.style_weight``
times its cross-entropy against the asked-for style (examples in style "any"
pay nothing). A frozen classifier can be fooled by perturbations no listener
hears, which is why the style check that judges the result is a different
measure (mean MFCCs of the waveform, ``kgan.evaluation.style_check``).

The critic reads a normalised accompaniment window ``[B, F, T, 1]`` (the
generator's output layout) through five 4×4 stride-2 convolutions (16 → 128
channels, LeakyReLU 0.2, no normalisation, so it behaves the same in and out
of training mode) and a global average, to one logit per named style (not
"any"). About 0.2 GFLOP a window, a fifteenth of the generator. It trains on
windows shifted by a random level (±``level_db``) with noise added, so it
judges the texture rather than the loudness or the exact noise floor.
"""

from __future__ import annotations

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from kgan.io_utils import atomic_write_text, read_json, resumable_checkpoint

__all__ = ["CRITIC_JSON", "CRITIC_WEIGHTS", "load_style_critic", "style_critic", "style_loss", "train_style_critic"]

CRITIC_WEIGHTS = "critic.weights.h5"
CRITIC_JSON = "critic.json"


def style_critic(bins: int, frames: int, styles: int, filters=(16, 32, 64, 64, 128)) -> keras.Model:
    """Normalised accompaniment windows ``[B, bins, frames, 1]`` -> logits ``[B, styles]`` (named styles only)."""
    x = inputs = keras.Input((bins, frames, 1), name="accompaniment")
    for i, f in enumerate(filters):
        x = keras.layers.Conv2D(f, 4, strides=2, padding="same", name=f"conv{i + 1}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"act{i + 1}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    logits = keras.layers.Dense(styles, name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name="style_critic")


def style_loss(critic, accompaniment, style):
    """Per-example cross-entropy ``[B]`` of ``critic`` on ``accompaniment`` against style ids ``style`` ``[B]``
    (1..S the named styles); 0 ("any") costs nothing."""
    logits = tf.cast(critic(accompaniment, training=False), tf.float32)
    named = style > 0
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.maximum(style - 1, 0), logits)
    return tf.where(named, ce, tf.zeros_like(ce))


def _perturb(windows, seed, level_db: float, noise: float, db_range: float):
    """Windows shifted by a random level (uniform ±``level_db``, on the [-1, 1] scale of ``db_range`` dB) and
    with Gaussian noise of std ``noise``, clipped back into [-1, 1]."""
    b = tf.shape(windows)[0]
    shift = tf.random.stateless_uniform([b, 1, 1, 1], seed=seed, minval=-1.0, maxval=1.0) * (2.0 * level_db / db_range)
    jitter = tf.random.stateless_normal(tf.shape(windows), seed=seed + 1, stddev=noise)
    return tf.clip_by_value(windows + shift + jitter, -1.0, 1.0)


def accuracy(critic, dataset, batches: int) -> dict:
    """Window accuracy of ``critic`` on ``batches`` batches of ``dataset`` (``(vocal, target, style, ...)``),
    over windows of a named style: overall and per style id."""
    right, count = {}, {}
    for element in dataset.take(batches):
        target, style = element[1], element[2].numpy()
        guess = np.argmax(critic(target, training=False).numpy(), axis=-1) + 1
        for s, g in zip(style, guess):
            if s > 0:
                count[int(s)] = count.get(int(s), 0) + 1
                right[int(s)] = right.get(int(s), 0) + int(g == s)
    total = sum(count.values())
    return {"accuracy": sum(right.values()) / total if total else None,
            "per_style": {s: right[s] / count[s] for s in sorted(count)}, "windows": total}


def train_style_critic(data_dir: str, out_dir: str, config, steps: int = 1500, batch: int = 32,
                       learning_rate: float = 1e-3, level_db: float = 6.0, noise: float = 0.05,
                       val_batches: int = 400, progress: bool = True) -> dict:
    """Train the critic on ``data_dir``'s train windows (true accompaniments and their style labels); returns
    and writes (``CRITIC_JSON``) its val accuracy. Resumes from ``out_dir/checkpoints``."""
    from tqdm import tqdm

    from kgan.dataset import windows_dataset

    names = config.model.style_names
    if not names:
        raise ValueError("a style critic needs named styles (model.styles)")
    os.makedirs(out_dir, exist_ok=True)
    seed = config.train.seed
    keras.utils.set_random_seed(seed)
    critic = style_critic(config.stft.num_bins, config.window.frames, len(names) - 1)
    optimizer = keras.optimizers.Adam(learning_rate)
    step, checkpoint, manager = resumable_checkpoint(os.path.join(out_dir, "checkpoints"), critic, optimizer)
    start = int(step.numpy())
    train = iter(windows_dataset(data_dir, "train", config, batch, seed=seed + start))
    db_range = config.stft.db_ceiling - config.stft.db_floor

    @tf.function
    def train_step(target, style, i):
        target = _perturb(target, tf.stack([tf.constant(seed, tf.int64), i]), level_db, noise, db_range)
        with tf.GradientTape() as tape:
            per_example = style_loss(critic, target, style)
            loss = tf.reduce_sum(per_example) / tf.maximum(1.0, tf.reduce_sum(tf.cast(style > 0, tf.float32)))
        optimizer.apply_gradients(zip(tape.gradient(loss, critic.trainable_variables), critic.trainable_variables))
        return loss

    began, losses = time.time(), []
    with tqdm(total=steps, initial=start, desc="style critic", unit="step", disable=not progress) as bar:
        for i in range(start, steps):
            element = next(train)
            losses.append(float(train_step(element[1], element[2], tf.constant(i, tf.int64) * 2)))
            step.assign(i + 1)
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
            if (i + 1) % 500 == 0 or i + 1 == steps:
                manager.save(checkpoint_number=i + 1)
    val = accuracy(critic, windows_dataset(data_dir, "val", config, batch, training=False, drop_remainder=False),
                   val_batches)
    tmp = os.path.join(out_dir, f".tmp-{os.getpid()}-{CRITIC_WEIGHTS}")
    critic.save_weights(tmp)
    os.replace(tmp, os.path.join(out_dir, CRITIC_WEIGHTS))
    info = {"style_names": list(names), "bins": config.stft.num_bins, "frames": config.window.frames,
            "data": os.path.abspath(data_dir), "steps": steps, "batch": batch, "level_db": level_db, "noise": noise,
            "train_loss": float(np.mean(losses[-100:])) if losses else None,
            "train_seconds": round(time.time() - began, 1),
            "val_accuracy": val["accuracy"],
            "val_per_style": {names[s]: a for s, a in val["per_style"].items()}, "val_windows": val["windows"]}
    atomic_write_text(os.path.join(out_dir, CRITIC_JSON), json.dumps(info, indent=2) + "\n")
    return info


def load_style_critic(critic_dir: str, config) -> keras.Model:
    """The frozen critic a ``kgan critic train`` folder holds, checked against ``config``'s styles and window."""
    path = os.path.join(critic_dir, CRITIC_JSON)
    info = read_json(path, "train a style critic with `kgan critic train`")
    names = list(config.model.style_names)
    if info.get("style_names") != names:
        raise ValueError(f"{path}: the critic knows styles {info.get('style_names')}, the model {names}")
    if (info.get("bins"), info.get("frames")) != (config.stft.num_bins, config.window.frames):
        raise ValueError(f"{path}: the critic reads {info.get('bins')} x {info.get('frames')} windows, the model "
                         f"{config.stft.num_bins} x {config.window.frames}")
    critic = style_critic(info["bins"], info["frames"], len(names) - 1)
    critic.load_weights(os.path.join(critic_dir, CRITIC_WEIGHTS))
    critic.trainable = False
    return critic
