"""The U-Net decoder's transposed convolutions against exact rewrites of them, at the shapes it runs.

    python benchmarks/transposed_conv.py [--batch 8] [--dtypes bfloat16,float32]

A 4x4 transposed convolution of stride 2 ("same" padding) gives each of the four output phases (even or
odd row, even or odd column) a 2x2 convolution of the input: an even output row takes input rows m-1 and
m with kernel rows 3 and 1, an odd one rows m and m+1 with kernel rows 2 and 0, and the same for columns.
So it can also be computed as

* ``sub-pixel``: one 3x3 convolution to four times the channels (each phase's 2x2 taps placed in a
  3x3 kernel, the other taps zero: 2.25x the multiply-adds) and a depth-to-space;
* ``four phases``: four 2x2 convolutions of the padded input, interleaved;
* ``matmul`` (a one-channel output, as the U-Net's last layer): all 16 taps of every pixel by one
  matmul, then each phase as a sum of four shifted planes.

Each rewrite is checked against ``tf.nn.conv2d_transpose`` before it is timed (median of 10 calls,
oneDNN's kernels as kgan runs them). The rows are the decoder's levels in the default preset at batch
8 (a chunk of generated windows): input height x width x channels (the skip connection's channels
included) -> output channels.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (input height, width, channels) -> output channels: the default preset's decoder, deepest first
DECODER = [((4, 1, 256), 256), ((8, 2, 512), 256), ((16, 4, 512), 256), ((32, 8, 512), 128),
           ((64, 16, 256), 64), ((128, 32, 128), 32), ((256, 64, 64), 1)]
EVEN, ODD = (3, 1), (2, 0)  # the kernel taps an even / odd output row (or column) takes from rows m-1, m / m, m+1


def reference(x, k):
    import tensorflow as tf

    s = tf.shape(x)
    return tf.nn.conv2d_transpose(x, k, [s[0], 2 * s[1], 2 * s[2], tf.shape(k)[2]], 2, "SAME")


def _phase_taps(w):
    """Kernel taps ``[4, ...]`` along one axis -> ``[2 phases, 3 taps over rows m-1, m, m+1, ...]``."""
    import tensorflow as tf

    zero = tf.zeros_like(w[0])
    return tf.stack([tf.stack([w[EVEN[0]], w[EVEN[1]], zero]), tf.stack([zero, w[ODD[0]], w[ODD[1]]])])


def sub_pixel(x, k):
    import tensorflow as tf

    rows = tf.transpose(_phase_taps(k), [2, 0, 1, 3, 4])  # [4 cols, 2 row phases, 3 row taps, out, in]
    both = _phase_taps(rows)  # [2 col phases, 3 col taps, 2 row phases, 3 row taps, out, in]
    kernel = tf.transpose(both, [3, 1, 5, 2, 0, 4])  # [row tap, col tap, in, row phase, col phase, out]
    shape = tf.shape(kernel)
    kernel = tf.reshape(kernel, [3, 3, shape[2], 4 * shape[5]])
    return tf.nn.depth_to_space(tf.nn.conv2d(x, kernel, 1, "SAME"), 2)


def _interleave(phases, x):
    """``phases[i][j]`` ``[B, H, W, C]`` (row phase i, column phase j) -> ``[B, 2H, 2W, C]``."""
    import tensorflow as tf

    y = tf.stack([tf.stack(row, axis=3) for row in phases], axis=2)  # [B, H, 2, W, 2, C]
    s = tf.shape(y)
    return tf.reshape(y, [s[0], 2 * tf.shape(x)[1], 2 * tf.shape(x)[2], s[-1]])


def four_phases(x, k):
    import tensorflow as tf

    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    h, w = tf.shape(x)[1], tf.shape(x)[2]
    phases = []
    for i, rows in enumerate((EVEN, ODD)):
        phases.append([])
        for j, cols in enumerate((EVEN, ODD)):
            kernel = tf.transpose(tf.gather(tf.gather(k, rows, axis=0), cols, axis=1), [0, 1, 3, 2])
            phases[-1].append(tf.nn.conv2d(padded[:, i : i + h + 1, j : j + w + 1], kernel, 1, "VALID"))
    return _interleave(phases, x)


def matmul_one_channel(x, k):
    import tensorflow as tf

    taps = tf.einsum("bhwc,ijc->bhwij", x, k[:, :, 0, :])  # every pixel against all 16 taps
    padded = tf.pad(taps, [[0, 0], [1, 1], [1, 1], [0, 0], [0, 0]])
    h, w = tf.shape(x)[1], tf.shape(x)[2]
    phases = []
    for i, rows in enumerate((EVEN, ODD)):  # padded rows i, i + 1: m-1, m for even rows (i 0), m, m+1 for odd
        phases.append([])
        for j, cols in enumerate((EVEN, ODD)):
            total = 0.0
            for oi, ki in zip((i, i + 1), rows):
                for oj, kj in zip((j, j + 1), cols):
                    total = total + padded[:, oi : oi + h, oj : oj + w, ki, kj]
            phases[-1].append(total[..., None])
    return _interleave(phases, x)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--dtypes", default="bfloat16,float32")
    args = parser.parse_args(argv)
    from kgan import use_served_kernels

    use_served_kernels()
    import numpy as np
    import tensorflow as tf

    from _common import kernels_line, machine_line, percentile_table

    print(f"{machine_line()}\n{kernels_line()}\n")
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((2, 6, 5, 3)), tf.float32)
    for name, fn, out in (("sub-pixel", sub_pixel, 4), ("four phases", four_phases, 4),
                          ("matmul", matmul_one_channel, 1)):
        k = tf.constant(rng.standard_normal((4, 4, out, 3)), tf.float32)
        error = float(tf.reduce_max(tf.abs(fn(x, k) - reference(x, k))))
        if error > 1e-4:
            raise SystemExit(f"{name} differs from conv2d_transpose by {error}")

    def timed(fn, a, b, calls=10):
        run = tf.function(lambda a, b: tf.reduce_sum(tf.cast(fn(a, b), tf.float32)))
        run(a, b).numpy()
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            run(a, b).numpy()
            times.append(time.perf_counter() - start)
        return 1000 * float(np.median(times))

    rows = []
    for dtype in args.dtypes.split(","):
        totals = np.zeros(4)
        for (h, w, c), out in DECODER:
            a = tf.cast(tf.random.normal([args.batch, h, w, c]), dtype)
            b = tf.cast(tf.random.normal([4, 4, out, c]), dtype)
            ms = [timed(reference, a, b), timed(sub_pixel, a, b), timed(four_phases, a, b),
                  timed(matmul_one_channel, a, b) if out == 1 else float("nan")]
            totals += np.nan_to_num(ms, nan=ms[0])  # the matmul column counts the reference where it does not apply
            rows.append((dtype, f"{h}x{w}x{c} -> {out}", *(f"{m:.2f}" if m == m else "" for m in ms)))
        rows.append((dtype, "all levels", *(f"{t:.1f}" for t in totals)))
    print(percentile_table(rows, ["dtype", "level", "conv2d_transpose (ms)", "sub-pixel", "four phases",
                                  "matmul (last layer)"]))


if __name__ == "__main__":
    main()
