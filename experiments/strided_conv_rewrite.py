"""Is a strided 4x4 convolution faster as a 2x2 convolution over space-to-depth blocks?

    python experiments/strided_conv_rewrite.py

Every down-sampling layer of the U-Net and the PatchGAN is a 4x4 convolution with stride 2 and "same" padding.
The same arithmetic is a 2x2 stride-1 convolution over ``tf.nn.space_to_depth`` of the input padded by one
(four times the channels), with the kernel's taps regrouped. Stride-1 kernels with more channels are often the
faster ones, so this times both, forward and backward (the training step's work), on the U-Net's shapes in
float32 and bfloat16, best of 5 after a warm-up, and checks they compute the same.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def strided(x, kernel):
    import tensorflow as tf

    return tf.nn.conv2d(x, kernel, 2, "SAME")


def space_to_depth(x, kernel):
    """``strided`` as a 2x2 convolution over 2x2 blocks: kernel tap (2a + i, 2b + j) of channel c becomes
    tap (a, b) of block channel (2i + j) * C + c, the order ``tf.nn.space_to_depth`` stacks them in."""
    import tensorflow as tf

    channels, filters = kernel.shape[2], kernel.shape[3]
    blocks = tf.reshape(tf.transpose(tf.reshape(kernel, [2, 2, 2, 2, channels, filters]), [0, 2, 1, 3, 4, 5]),
                        [2, 2, 4 * channels, filters])
    x = tf.nn.space_to_depth(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), 2)
    return tf.nn.conv2d(x, blocks, 1, "VALID")


def timed(fn, x, kernel) -> float:
    import tensorflow as tf

    @tf.function
    def step(x, kernel):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            loss = tf.reduce_sum(tf.cast(fn(x, kernel), tf.float32) ** 2)
        return tape.gradient(loss, [x, kernel])

    step(x, kernel)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        [g.numpy() for g in step(x, kernel)]
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    import tensorflow as tf

    from benchmarks._common import machine_line, percentile_table

    print(machine_line())
    rows = []
    for shape, filters in (((8, 128, 512, 32), 64), ((8, 64, 256, 64), 128), ((8, 32, 128, 128), 256),
                           ((8, 16, 64, 256), 256)):
        x = tf.random.normal(shape, seed=1)
        kernel = tf.random.normal([4, 4, shape[-1], filters], seed=2) * 0.05
        same = float(tf.reduce_max(tf.abs(strided(x, kernel) - space_to_depth(x, kernel))))
        for dtype in (tf.float32, tf.bfloat16):
            a, b = (timed(fn, tf.cast(x, dtype), tf.cast(kernel, dtype)) for fn in (strided, space_to_depth))
            rows.append([f"{shape} -> {filters}", dtype.name, f"{1000 * a:.1f}", f"{1000 * b:.1f}", f"{a / b:.2f}x",
                         f"{same:.1e}"])
    print(percentile_table(rows, ["input -> filters", "dtype", "strided (ms)", "space-to-depth (ms)",
                                  "speed-up", "max |difference| (float32)"]))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
