"""TFRecord shards (from ``kgan preprocess``) -> ``tf.data`` pipelines of training windows.

Each element is a pair ``(vocal, accompaniment)`` of float32 tensors
``[B, F, T, 1]`` in [-1, 1] (a triple ``(vocal, accompaniment, style)`` with an
int32 ``[B]`` style id when the config names styles: a song's ``style`` label
from ``dataset.json``, 0 "any" when it has none or one the config does not
name) (``F`` = ``stft.num_bins`` frequency rows, low to
high; ``T`` = ``window.frames``), with ``B`` the *global* batch size, ready for
``strategy.experimental_distribute_dataset``.

Training pipelines shuffle the shards, read them interleaved, cut each voiced
segment into windows every ``window.stride`` frames with a random jitter (so
long segments give proportionally more windows and every epoch sees other
offsets), shuffle, repeat and batch with ``drop_remainder``. The randomness is
stateless and seeded per element, so the pipeline is deterministic for a seed
and its position can be saved in a checkpoint. Evaluation pipelines tile each
segment into non-overlapping windows, in order.
"""

from __future__ import annotations

import os

import tensorflow as tf

from kgan.config import Config
from kgan.io_utils import read_json

__all__ = ["read_metadata", "shard_paths", "shard_styles", "parse_segment", "windows_dataset"]


def read_metadata(data_dir: str) -> dict:
    return read_json(os.path.join(data_dir, "dataset.json"), "run `kgan preprocess` to make a data set")


def shard_paths(data_dir: str, split: str) -> list[str]:
    """Shards of ``split`` that hold at least one segment, as listed in ``dataset.json``."""
    meta = read_metadata(data_dir)
    return [os.path.join(data_dir, s["shard"]) for s in meta["songs"] if s["split"] == split and s["segments"] > 0]


def shard_styles(data_dir: str, split: str, names: tuple[str, ...]) -> list[int]:
    """The style id of each of ``shard_paths(data_dir, split)``: its song's label's index in ``names``, or 0."""
    meta = read_metadata(data_dir)
    index = {name: i for i, name in enumerate(names)}
    return [index.get(s.get("style") or "any", 0) for s in meta["songs"] if s["split"] == split and s["segments"] > 0]


def parse_segment(record, bins: int, chords: bool = False):
    """A serialised segment -> ``(vocal, accompaniment)`` float32 ``[frames, bins]``.

    With ``chords``, also the score's chord per frame, int32 ``[frames]`` (``kgan.chords`` ids; -1 on
    every frame of a song without a score, whose chords must be read from its audio).
    """
    spec = {
        "frames": tf.io.FixedLenFeature([], tf.int64),
        "vocal": tf.io.FixedLenFeature([], tf.string),
        "accompaniment": tf.io.FixedLenFeature([], tf.string),
        "chords": tf.io.FixedLenFeature([], tf.string, default_value=""),
    }
    ex = tf.io.parse_single_example(record, spec)

    def decode(raw):
        x = tf.io.decode_raw(raw, tf.float16, little_endian=True)
        return tf.cast(tf.reshape(x, [-1, bins]), tf.float32)

    vocal, accompaniment = decode(ex["vocal"]), decode(ex["accompaniment"])
    if not chords:
        return vocal, accompaniment
    labels = tf.cast(tf.io.decode_raw(ex["chords"], tf.int8), tf.int32)
    frames = tf.shape(vocal)[0]
    labels = tf.cond(tf.size(labels) == frames, lambda: labels, lambda: tf.fill([frames], -1))
    return vocal, accompaniment, labels


def _to_image(window, bins: int, frames: int):
    """[T, F] -> [F, T, 1]: frequency as image height, time as width (static shape)."""
    return tf.ensure_shape(tf.transpose(window)[..., None], [bins, frames, 1])


def windows_dataset(data_dir: str, split: str, config: Config, global_batch_size: int | None = None,
                    training: bool = True, seed: int | None = None, drop_remainder: bool = True,
                    shuffle_buffer: int = 512, segment_reference: bool = False,
                    chords: bool = False) -> tf.data.Dataset:
    """Batches of ``(vocal, accompaniment)`` windows ``[B, F, T, 1]`` from ``data_dir``'s ``split``.

    With ``segment_reference`` every element is ``(vocal, accompaniment, style, reference)``, style 0
    for an unconditioned config and ``reference`` float32 ``[B, 12]``: the mean chroma of the true
    accompaniment over the whole segment the window is cut from (``kgan.harmonic_loss.reference_chroma``).
    With ``chords`` the element also ends with the score's chords of the window, int32 ``[B, T]``
    (``parse_segment``), after a style (0 for an unconditioned config) and the reference, if asked.
    """
    files = shard_paths(data_dir, split)
    if not files:
        raise ValueError(f"{data_dir}: no {split} segments in dataset.json (is the data set empty?)")
    bins, frames, stride = config.stft.num_bins, config.window.frames, config.window.stride
    batch = global_batch_size or config.train.batch_size
    seed = config.train.seed if seed is None else seed
    autotune = tf.data.AUTOTUNE

    names = config.model.style_names
    styles = shard_styles(data_dir, split, names) if names else [0] * len(files)
    ds = tf.data.Dataset.from_tensor_slices((files, tf.constant(styles, tf.int32)))
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.interleave(lambda f, style: tf.data.TFRecordDataset(f).map(lambda r: (r, style)),
                       cycle_length=min(8, len(files)), num_parallel_calls=autotune, deterministic=True)
    ds = ds.map(lambda r, style: (*parse_segment(r, bins, chords=True), style), num_parallel_calls=autotune,
                deterministic=True)
    if segment_reference:
        from kgan.harmonic_loss import chroma_matrix, reference_chroma

        matrix = chroma_matrix(config.audio.sample_rate, config.stft.n_fft, bins)
        ds = ds.map(lambda v, a, y, style: (v, a, style, reference_chroma(a, matrix, config.stft.db_floor,
                                                                         config.stft.db_ceiling), y),
                    num_parallel_calls=autotune, deterministic=True)
    else:
        ds = ds.map(lambda v, a, y, style: (v, a, style, tf.zeros([12]), y))
    ds = ds.enumerate()

    def crops(index, segment):
        vocal, accompaniment, style, reference, labels = segment
        length = tf.shape(vocal)[0]
        if training:
            count = (length - frames) // stride + 1
            jitter = tf.random.stateless_uniform([count], seed=tf.stack([tf.cast(seed, tf.int64), index]),
                                                 minval=0, maxval=stride, dtype=tf.int32)
            offsets = tf.minimum(tf.range(count) * stride + jitter, length - frames)
        else:
            offsets = tf.range(length // frames) * frames
        return tf.data.Dataset.from_tensor_slices(offsets).map(
            lambda o: (vocal[o : o + frames], accompaniment[o : o + frames], style, reference, labels[o : o + frames])
        )

    def element(v, a, style, reference, labels):
        out = (_to_image(v, bins, frames), _to_image(a, bins, frames))
        if names or segment_reference or chords:
            out += (style,)
        if segment_reference:
            out += (reference,)
        if chords:
            out += (tf.ensure_shape(labels, [frames]),)
        return out

    ds = ds.flat_map(crops).map(element, num_parallel_calls=autotune, deterministic=True)
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch, drop_remainder=drop_remainder)
    return ds.prefetch(autotune)
