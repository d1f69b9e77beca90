"""The pix2pix U-Net generator on spectrograms."""

from __future__ import annotations

import keras

from kgan.features import VocalFeatures, input_channels, layer_arguments
from kgan.models import blocks
from kgan.models.style import FiLM, style_embedding


def vocal_features(config) -> dict | None:
    """The ``features`` argument of both models for a kgan config (None: the raw spectrogram, no layer)."""
    return None if config.model.vocal_input == "spectrogram" else layer_arguments(config)


def vocal_channels(features: dict | None) -> int:
    """Channels of the models' vocal input: 2 for the ``plan`` input (vocal and chord plan), else 1."""
    return input_channels(features["kind"]) if features else 1


def style_count(config) -> int:
    """Named styles of a kgan config (0: an unconditioned model)."""
    return max(0, len(config.model.style_names) - 1)


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

    With ``styles > 0`` the model takes ``[vocal, style]``, ``style`` an int32
    ``[B]`` id (0 "any", 1..styles the named styles), and FiLM-modulates the
    bottleneck and every decoder level from its embedding (``kgan.models.style``).

    Dropout and batch norm follow ``training``: call with ``training=False``
    (as ``predict``, export and inference do) for deterministic output.

    Raises:
        ValueError: when ``bins`` or ``frames`` is not divisible by ``2**depth``.
    """

    def __init__(self, bins: int = 512, frames: int = 128, depth: int = 7, base_filters: int = 32,
                 max_filters: int = 256, dropout: float = 0.5, dropout_levels: int = 3, norm: str = "batch",
                 upsample: str = "transpose", features: dict | None = None, styles: int = 0, style_dim: int = 16,
                 name: str = "unet_generator", **kwargs):
        unit = 2**depth
        if depth < 1 or bins % unit or frames % unit:
            raise ValueError(
                f"UNetGenerator needs bins and frames divisible by 2**depth = {unit}. "
                f"Received: bins={bins}, frames={frames}, depth={depth}"
            )

        def width(level):
            return min(base_filters * 2**level, max_filters)

        vocal = keras.Input((bins, frames, vocal_channels(features)), name="vocal")  # (B, F, T, 1), or 2 with a chord plan
        inputs = vocal
        if styles:
            style, condition = style_embedding(styles, style_dim)  # (B,), (B, style_dim)
            inputs = [vocal, style]
        x = features_input(vocal, features)  # (B, F, T, C)
        skips = []
        for i in range(depth):  # level i+1: (B, F/2^(i+1), T/2^(i+1), width(i))
            x = blocks.downsample(x, width(i), f"down{i + 1}", norm=None if i == 0 else norm)
            skips.append(x)
        if styles:
            x = FiLM(name="bottleneck_film")([x, condition])
        for i in reversed(range(1, depth)):  # level i: (B, F/2^i, T/2^i, 2*width(i-1))
            deep = depth - 1 - i  # 0 for the deepest decoder level
            x = blocks.upsample(x, width(i - 1), f"up{i}", norm, upsample,
                                dropout if deep < dropout_levels else 0.0)
            if styles:
                x = FiLM(name=f"up{i}_film")([x, condition])
            x = keras.layers.Concatenate(name=f"up{i}_concat")([x, skips[i - 1]])
        x = blocks.upsample_conv(x, 1, "output", upsample, use_bias=True)  # (B, F, T, 1)
        accompaniment = keras.layers.Activation("tanh", name="accompaniment", dtype="float32")(x)
        super().__init__(inputs=inputs, outputs=accompaniment, name=name, **kwargs)

        self.bins, self.frames, self.depth = bins, frames, depth
        self.base_filters, self.max_filters = base_filters, max_filters
        self.dropout, self.dropout_levels = dropout, dropout_levels
        self.norm, self.upsample = norm, upsample
        self.features = dict(features) if features else None
        self.styles, self.style_dim = styles, style_dim

    def get_config(self):
        return {
            "bins": self.bins, "frames": self.frames, "depth": self.depth,
            "base_filters": self.base_filters, "max_filters": self.max_filters,
            "dropout": self.dropout, "dropout_levels": self.dropout_levels,
            "norm": self.norm, "upsample": self.upsample, "features": self.features, "styles": self.styles,
            "style_dim": self.style_dim, "name": self.name, "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def from_kgan_config(cls, config) -> "UNetGenerator":
        m = config.model
        return cls(bins=config.stft.num_bins, frames=config.window.frames, depth=m.depth,
                   base_filters=m.base_filters, max_filters=m.max_filters, dropout=m.dropout,
                   norm=m.norm, upsample=m.upsample, features=vocal_features(config), styles=style_count(config),
                   style_dim=m.style_dim)
