"""The pix2pix U-Net generator on spectrograms."""

from __future__ import annotations

import keras

from kgan.features import VocalFeatures, layer_arguments
from kgan.models import blocks


def vocal_features(config) -> dict | None:
    """The ``features`` argument of both models for a kgan config (None: the raw spectrogram, no layer)."""
    return None if config.model.vocal_input == "spectrogram" else layer_arguments(config)


def features_input(vocal, features: dict | None):
    """``vocal`` ``[B, F, T, 1]`` through ``VocalFeatures(**features)`` (``[B, F, T, C]``), or unchanged."""
    return vocal if features is None else VocalFeatures(**features, name="vocal_features")(vocal)


@keras.saving.register_keras_serializable(package="kgan")
class UNetGenerator(keras.Model):
    """Vocal spectrogram -> accompaniment spectrogram, both ``[B, F, T, 1]`` in [-1, 1].

    The vocal first goes through ``VocalFeatures(**features)`` (``kgan.features``:
    pitch salience, level and voicing, ``[B, F, T, 3]``) unless ``features`` is None.
    Encoder: ``depth`` 4x4 stride-2 convolutions, filters ``base_filters * 2**i``
    capped at ``max_filters`` (no normalisation on the first). Decoder: the
    mirror image, each level concatenated with the encoder level of the same
    size (skip connections), dropout on the ``dropout_levels`` deepest decoder
    levels, and a last upsampling to one channel with ``tanh``. With the
    default preset (F=512, T=128, depth 7, filters 32..256) the bottleneck is
    ``[B, 4, 1, 256]``.

    Dropout and batch norm follow ``training``: call with ``training=False``
    (as ``predict``, export and inference do) for deterministic output.

    Raises:
        ValueError: when ``bins`` or ``frames`` is not divisible by ``2**depth``.
    """

    def __init__(self, bins: int = 512, frames: int = 128, depth: int = 7, base_filters: int = 32,
                 max_filters: int = 256, dropout: float = 0.5, dropout_levels: int = 3, norm: str = "batch",
                 upsample: str = "transpose", features: dict | None = None, name: str = "unet_generator",
                 **kwargs):
        unit = 2**depth
        if depth < 1 or bins % unit or frames % unit:
            raise ValueError(
                f"UNetGenerator needs bins and frames divisible by 2**depth = {unit}. "
                f"Received: bins={bins}, frames={frames}, depth={depth}"
            )

        def width(level):
            return min(base_filters * 2**level, max_filters)

        vocal = keras.Input((bins, frames, 1), name="vocal")  # (B, F, T, 1)
        x = features_input(vocal, features)  # (B, F, T, C)
        skips = []
        for i in range(depth):  # level i+1: (B, F/2^(i+1), T/2^(i+1), width(i))
            x = blocks.downsample(x, width(i), f"down{i + 1}", norm=None if i == 0 else norm)
            skips.append(x)
        for i in reversed(range(1, depth)):  # level i: (B, F/2^i, T/2^i, 2*width(i-1))
            deep = depth - 1 - i  # 0 for the deepest decoder level
            x = blocks.upsample(x, width(i - 1), f"up{i}", norm, upsample,
                                dropout if deep < dropout_levels else 0.0)
            x = keras.layers.Concatenate(name=f"up{i}_concat")([x, skips[i - 1]])
        x = blocks.upsample_conv(x, 1, "output", upsample, use_bias=True)  # (B, F, T, 1)
        accompaniment = keras.layers.Activation("tanh", name="accompaniment", dtype="float32")(x)
        super().__init__(inputs=vocal, outputs=accompaniment, name=name, **kwargs)

        self.bins, self.frames, self.depth = bins, frames, depth
        self.base_filters, self.max_filters = base_filters, max_filters
        self.dropout, self.dropout_levels = dropout, dropout_levels
        self.norm, self.upsample = norm, upsample
        self.features = dict(features) if features else None

    def get_config(self):
        return {
            "bins": self.bins, "frames": self.frames, "depth": self.depth,
            "base_filters": self.base_filters, "max_filters": self.max_filters,
            "dropout": self.dropout, "dropout_levels": self.dropout_levels,
            "norm": self.norm, "upsample": self.upsample, "features": self.features, "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def from_kgan_config(cls, config) -> "UNetGenerator":
        m = config.model
        return cls(bins=config.stft.num_bins, frames=config.window.frames, depth=m.depth,
                   base_filters=m.base_filters, max_filters=m.max_filters, dropout=m.dropout,
                   norm=m.norm, upsample=m.upsample, features=vocal_features(config))
