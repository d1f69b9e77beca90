"""Building blocks shared by the U-Net and the PatchGAN (pix2pix conventions).

Every convolution is 4 x 4 with weights drawn from N(0, 0.02) (Isola et al. 2017,
after Radford et al. 2016); a convolution followed by a normalisation has no
bias. Each call makes new, named layers: no layer instance is reused across
levels.
"""

from __future__ import annotations

import keras
import tensorflow as tf

INIT_STDDEV = 0.02


@keras.saving.register_keras_serializable(package="kgan")
class SyncBatchNormalization(keras.layers.BatchNormalization):
    """Batch norm over the global batch of all replicas, its variance taken in two passes.

    Keras' ``synchronized=True`` all-reduces sum(x) and sum(x^2) and takes E[x^2] - E[x]^2, which
    cancels catastrophically in float32 for a channel whose mean is large against its spread (a
    constant input plane makes such channels): the variance is then rounding noise, different for
    every way of splitting the batch, and the normalised output with it. Here the global mean is
    all-reduced first and then the sum of squared deviations from it, as ``tf.nn.moments`` does on
    one device, so one and several replicas agree to rounding (one extra all-reduce per layer).

    On one replica, training runs TensorFlow's fused kernel (``FusedBatchNormV3``: moments, normalisation
    and their gradient in one op each way, float32 inside for a bfloat16 input). Keras' own composition of
    casts, moments and arithmetic took 3.2-4.6 times as long on the U-Net's largest maps, forward and backward
    together, in float32 and in ``mixed_bfloat16`` (on the deepest, smallest ones the fused kernel costs about
    0.1 ms more); the two agree to float32 rounding. Several replicas, a
    mask and inference take Keras' path, and so does everything when the class attribute
    ``use_fused_kernel`` is False (``benchmarks/train_step.py`` times the step both ways).
    """

    use_fused_kernel = True

    def __init__(self, **kwargs):
        kwargs["synchronized"] = False  # the replica sync is done here, not by Keras
        super().__init__(**kwargs)

    def call(self, inputs, training=None, mask=None):
        fused = (self.use_fused_kernel and training and self.trainable and mask is None and not self.renorm
                 and self.center and self.scale and len(inputs.shape) == 4 and self.axis in (-1, 3)
                 and _one_replica())
        if not fused:
            return super().call(inputs, training=training, mask=mask)
        return self._fused_training_call(inputs)

    def _fused_training_call(self, inputs):
        """Normalise by the batch's own moments with the fused kernel and update the moving ones as Keras does."""
        x = inputs if inputs.dtype in (tf.float32, tf.bfloat16) else tf.cast(inputs, tf.float32)
        empty = tf.constant([], tf.float32)  # training with factor 1: no running statistics go in
        y, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=tf.cast(self.gamma, tf.float32), offset=tf.cast(self.beta, tf.float32), mean=empty,
            variance=empty, epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
        # the kernel returns the variance with Bessel's correction; Keras keeps the biased one
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), tf.float32)
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(y, self.compute_dtype)

    def _moments(self, inputs, mask):
        if mask is not None or _one_replica():
            return super()._moments(inputs, mask)
        ctx = tf.distribute.get_replica_context()
        axes = self._reduction_axes
        total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(inputs, axis=axes, keepdims=True))
        count = ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                               tf.cast(tf.reduce_prod(tf.gather(tf.shape(inputs), axes)), inputs.dtype))
        mean = total / count
        deviation = tf.reduce_sum(tf.math.squared_difference(inputs, tf.stop_gradient(mean)), axis=axes, keepdims=True)
        variance = ctx.all_reduce(tf.distribute.ReduceOp.SUM, deviation) / count
        return tf.squeeze(mean, axes), tf.squeeze(variance, axes)


def _one_replica() -> bool:
    """Whether this code runs on one replica (or in no replica context): no batch statistics to share."""
    ctx = tf.distribute.get_replica_context()
    return ctx is None or ctx.num_replicas_in_sync == 1


@keras.saving.register_keras_serializable(package="kgan")
class LeakyReLU(keras.layers.LeakyReLU):
    """Keras' LeakyReLU, whose gradient in training is taken in float32 when its input is bfloat16.

    TensorFlow's bfloat16 ``LeakyReluGrad`` kernel on the CPU is slow: on a ``(8, 256, 64, 32)`` tensor
    it took 12-21 ms, four times the float32 kernel with the two casts around it (4-6 ms), and in a
    ``mixed_bfloat16`` training step it was 11 % of the CPU time, more than any op but the convolutions.
    The forward pass is Keras' own, so inference and exports are unchanged. The float32 gradient rounds
    once where the bfloat16 kernel rounded twice: the two differ by at most one bfloat16 step.
    """

    def call(self, inputs, training=None):
        if not training or inputs.dtype != tf.bfloat16:
            return super().call(inputs)
        return _leaky_relu_float32_gradient(inputs, float(self.negative_slope))


def _leaky_relu_float32_gradient(x, alpha: float):
    @tf.custom_gradient
    def leaky_relu(features):
        def gradient(upstream):
            return tf.cast(tf.raw_ops.LeakyReluGrad(gradients=tf.cast(upstream, tf.float32),
                                                    features=tf.cast(features, tf.float32), alpha=alpha),
                           features.dtype)

        return tf.nn.leaky_relu(features, alpha), gradient

    return leaky_relu(x)


def initializer():
    return keras.initializers.RandomNormal(0.0, INIT_STDDEV)


def normalization(kind: str, name: str):
    """Batch norm synchronised across replicas (plain Keras 3 BN drifts apart under a strategy), or instance norm."""
    if kind == "batch":
        return SyncBatchNormalization(momentum=0.9, epsilon=1e-5, name=name)
    if kind == "instance":
        return keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)  # one group per channel
    raise ValueError(f"normalization must be 'batch' or 'instance'. Received: {kind!r}")


def downsample(x, filters: int, name: str, norm: str | None, strides: int = 2):
    """Conv 4x4 (stride 2 halves both axes) -> norm -> LeakyReLU(0.2)."""
    x = keras.layers.Conv2D(filters, 4, strides=strides, padding="same", use_bias=norm is None,
                            kernel_initializer=initializer(), name=f"{name}_conv")(x)
    if norm is not None:
        x = normalization(norm, f"{name}_norm")(x)
    return LeakyReLU(0.2, name=f"{name}_act")(x)


def upsample_conv(x, filters: int, name: str, mode: str, use_bias: bool):
    """Double both axes: a 4x4 transposed conv, or nearest resize + 4x4 conv (no checkerboard artefacts)."""
    if mode == "transpose":
        return keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=use_bias,
                                            kernel_initializer=initializer(), name=f"{name}_deconv")(x)
    if mode == "resize":
        x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_resize")(x)
        return keras.layers.Conv2D(filters, 4, padding="same", use_bias=use_bias,
                                   kernel_initializer=initializer(), name=f"{name}_conv")(x)
    raise ValueError(f"upsample must be 'transpose' or 'resize'. Received: {mode!r}")


def upsample(x, filters: int, name: str, norm: str, mode: str, dropout: float):
    """Upsample -> norm -> dropout (if > 0) -> ReLU."""
    x = upsample_conv(x, filters, name, mode, use_bias=False)
    x = normalization(norm, f"{name}_norm")(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return keras.layers.ReLU(name=f"{name}_act")(x)
