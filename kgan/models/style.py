"""Style conditioning: a style id as an embedding, FiLM in the generator, extra planes in the discriminator.

Style (which instruments play, and how: block chords, arpeggios, a strum, a band)
is a property of the whole song, not of a place in the spectrogram, while the
chords to play come from the vocal through the U-Net's skips. FiLM (Perez et
al., AAAI 2018) fits that split: a per-channel scale and shift of every decoder
level, drawn from the style embedding, changes how features are rendered
without changing where they are. Extra input channels would reach the decoder
only through the encoder's first convolution and be diluted level by level.
The FiLM projections start at zero, so a conditioned model starts out as its
unconditioned twin. The discriminator gets the style as constant input planes
beside the (vocal, accompaniment) pair, the way pix2pix conditions it on the
vocal: it judges whether the accompaniment fits the vocal *and* the style.

Style id 0 is "any": trained by style dropout, it is what an unlabelled song
or a request without a style gets.
"""

from __future__ import annotations

import keras

__all__ = ["FiLM", "StyleEmbedding", "StylePlanes", "style_embedding"]


@keras.saving.register_keras_serializable(package="kgan")
class StyleEmbedding(keras.layers.Layer):
    """Style ids ``(B,)`` -> vectors ``(B, dim)``, as a one-hot matmul.

    ``keras.layers.Embedding`` would give the table a sparse gradient whose size
    depends on which ids a replica saw, and replicas' all-reduce needs equal
    shapes; the one-hot product gives every replica the same dense gradient.
    """

    def __init__(self, count: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.count, self.dim = count, dim

    def build(self, input_shape):
        self.embeddings = self.add_weight(shape=(self.count, self.dim), name="embeddings",
                                          initializer=keras.initializers.RandomUniform(-0.05, 0.05))

    def call(self, ids):
        return keras.ops.matmul(keras.ops.one_hot(ids, self.count, dtype=self.embeddings.dtype), self.embeddings)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.dim)

    def get_config(self):
        return {**super().get_config(), "count": self.count, "dim": self.dim}


@keras.saving.register_keras_serializable(package="kgan")
class FiLM(keras.layers.Layer):
    """``x * (1 + gamma) + beta`` per channel, with ``(gamma, beta)`` a linear function of a condition vector.

    Inputs ``[x (B, H, W, C), condition (B, D)]``; the projection starts at zero (identity).
    """

    def build(self, input_shapes):
        x_shape, condition_shape = input_shapes
        self.channels = int(x_shape[-1])
        self.projection = keras.layers.Dense(2 * self.channels, kernel_initializer="zeros", name="projection")
        self.projection.build(condition_shape)

    def call(self, inputs):
        x, condition = inputs
        gamma, beta = keras.ops.split(self.projection(condition), 2, axis=-1)  # (B, C) each
        return x * (1.0 + gamma[:, None, None, :]) + beta[:, None, None, :]

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


@keras.saving.register_keras_serializable(package="kgan")
class StylePlanes(keras.layers.Layer):
    """A condition vector ``(B, D)`` broadcast to constant planes ``(B, H, W, D)`` the size of a reference."""

    def call(self, inputs):
        reference, condition = inputs
        shape = keras.ops.shape(reference)
        planes = condition[:, None, None, :]
        return keras.ops.broadcast_to(planes, (shape[0], shape[1], shape[2], condition.shape[-1]))

    def compute_output_shape(self, input_shapes):
        reference, condition = input_shapes
        return (*reference[:3], condition[-1])


def style_embedding(styles: int, dim: int):
    """(style id input ``(B,)`` int32, its embedding ``(B, dim)``) for ``styles`` names plus "any" (id 0)."""
    style = keras.Input((), dtype="int32", name="style")
    return style, StyleEmbedding(styles + 1, dim, name="style_embedding")(style)
