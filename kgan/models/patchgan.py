"""The conditional PatchGAN discriminator."""

from __future__ import annotations

import keras

from kgan.models import blocks
from kgan.models.style import StylePlanes, style_embedding
from kgan.models.unet import features_input, style_count, vocal_channels, vocal_features


def receptive_field(layers: int) -> int:
    """Input pixels seen by one output logit: ``layers`` stride-2 and two stride-1 4x4 convolutions."""
    field = 1
    for stride in reversed([2] * layers + [1, 1]):
        field = (field - 1) * stride + 4
    return field


STYLE_PLANES = 4  # channels the style embedding is projected to before it is broadcast


@keras.saving.register_keras_serializable(package="kgan")
class PatchGANDiscriminator(keras.Model):
    """(vocal, accompaniment) ``[B, F, T, 1]`` each -> patch logits ``[B, F/2^L, T/2^L, 1]``.

    Conditional on the vocal as the generator sees it (``features``, see
    ``UNetGenerator``), concatenated with the accompaniment on channels, then
    ``layers`` 4x4 stride-2 convolutions (filters ``base_filters * 2**i``, capped
    at 512; no normalisation on the first), one 4x4 stride-1 convolution and a
    4x4 stride-1 convolution to one logit per patch. With ``layers=3`` each
    logit sees a 70 x 70 patch (Isola et al. 2017). Outputs are logits: no
    sigmoid. With ``styles > 0`` it takes ``[vocal, accompaniment, style]`` and
    sees the style embedding as 4 constant planes beside the pair.

    Raises:
        ValueError: when ``bins`` or ``frames`` is not divisible by ``2**layers``.
    """

    def __init__(self, bins: int = 512, frames: int = 128, layers: int = 3, base_filters: int = 64,
                 norm: str = "batch", features: dict | None = None, styles: int = 0, style_dim: int = 16,
                 name: str = "patchgan_discriminator", **kwargs):
        unit = 2**layers
        if layers < 1 or bins % unit or frames % unit:
            raise ValueError(
                f"PatchGANDiscriminator needs bins and frames divisible by 2**layers = {unit}. "
                f"Received: bins={bins}, frames={frames}, layers={layers}"
            )
        vocal = keras.Input((bins, frames, vocal_channels(features)), name="vocal")
        accompaniment = keras.Input((bins, frames, 1), name="accompaniment")
        inputs = [vocal, accompaniment]
        parts = [features_input(vocal, features), accompaniment]  # (B, F, T, C), (B, F, T, 1)
        if styles:
            style, embedded = style_embedding(styles, style_dim)
            inputs.append(style)
            planes = keras.layers.Dense(STYLE_PLANES, name="style_planes_projection")(embedded)
            parts.append(StylePlanes(name="style_planes")([accompaniment, planes]))  # (B, F, T, 4)
        x = keras.layers.Concatenate(name="pair")(parts)  # (B, F, T, C + 1 [+ 4])
        for i in range(layers):  # (B, F/2^(i+1), T/2^(i+1), filters)
            x = blocks.downsample(x, min(base_filters * 2**i, 512), f"down{i + 1}", norm=None if i == 0 else norm)
        x = blocks.downsample(x, min(base_filters * 2**layers, 512), "features", norm=norm, strides=1)
        logits = keras.layers.Conv2D(1, 4, padding="same", kernel_initializer=blocks.initializer(),
                                     name="logits", dtype="float32")(x)  # (B, F/2^L, T/2^L, 1)
        super().__init__(inputs=inputs, outputs=logits, name=name, **kwargs)
        self.bins, self.frames, self.layers_count = bins, frames, layers
        self.base_filters, self.norm = base_filters, norm
        self.features = dict(features) if features else None
        self.styles, self.style_dim = styles, style_dim

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.layers_count)

    def get_config(self):
        return {"bins": self.bins, "frames": self.frames, "layers": self.layers_count,
                "base_filters": self.base_filters, "norm": self.norm, "features": self.features,
                "styles": self.styles, "style_dim": self.style_dim, "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def from_kgan_config(cls, config) -> "PatchGANDiscriminator":
        m = config.model
        return cls(bins=config.stft.num_bins, frames=config.window.frames, layers=m.disc_layers,
                   base_filters=m.disc_filters, norm=m.norm, features=vocal_features(config),
                   styles=style_count(config), style_dim=m.style_dim)
