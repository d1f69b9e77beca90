"""Training-step speed and achieved FLOP/s against this CPU's measured peak, in one run.

    python benchmarks/train_step.py [--preset default] [--steps 20]

FLOPs are counted from the models' layers (2 multiply-adds per weight use in
every Conv2D / Conv2DTranspose; normalisation and activations are ignored, so
the figure is a slight undercount). One training step costs about
``3 F_G + 7 F_D`` per example: the generator's forward and backward (x3), the
discriminator's two forwards (real and generated, x2), its weight-and-input
backward for its own loss (x4) and the input backward on the generated pair for
the generator's loss (x1). The peak is the best FLOP/s of a large float32
matmul measured in the same process.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def conv_flops(model) -> int:
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, c_in = layer.input.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * c_in * kh * kw * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * c_out * kh * kw * layer.input.shape[-1]
    return total


def matmul_peak(n: int = 4096, repeats: int = 10) -> float:
    import tensorflow as tf

    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])

    @tf.function
    def mm(x, y):
        return tf.reduce_sum(tf.matmul(x, y))

    mm(a, b).numpy()
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        mm(a, b).numpy()
        best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    from _common import machine_line

    print(machine_line())

    import tempfile

    import numpy as np
    import tensorflow as tf

    from kgan.config import get_preset
    from kgan.training import Trainer, make_strategy

    peak = matmul_peak()
    rows = []
    for label, overrides in (("pix2pix (GAN + L1)", {}), ("L1 only", {"train.gan_weight": 0.0})):
        cfg = get_preset(args.preset).override(**overrides)
        trainer = Trainer(cfg, tempfile.mkdtemp(), make_strategy(1))
        b, f, t = cfg.train.batch_size, cfg.stft.num_bins, cfg.window.frames
        rng = np.random.default_rng(0)
        batch = tuple(tf.constant(rng.uniform(-1, 1, (b, f, t, 1)).astype("float32")) for _ in range(2))
        it = iter(trainer.strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch).repeat()))
        for _ in range(3):  # trace and warm up
            trainer.train_step(next(it))["g_l1"].numpy()
        start = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step(next(it))["g_l1"].numpy()
        rate = args.steps / (time.perf_counter() - start)
        f_g, f_d = conv_flops(trainer.generator), conv_flops(trainer.discriminator)
        # with gan_weight 0 the discriminator still runs forward (for its metrics) but nothing backpropagates through it
        per_example = 3 * f_g + (7 if cfg.train.gan_weight > 0 else 2) * f_d
        achieved = rate * b * per_example
        rows.append((label, rate, per_example * b / 1e9, achieved / 1e9, achieved / peak))
    print(f"\npreset {args.preset!r}, batch {b}, input {f} x {t}, {os.cpu_count()} CPU core(s); "
          f"measured matmul peak {peak / 1e9:.1f} GFLOP/s; G {f_g / 1e9:.2f} and D {f_d / 1e9:.2f} GFLOP per example\n")
    print(f"| {'step':<18} | {'steps/s':>7} | {'GFLOP/step':>10} | {'GFLOP/s':>7} | {'of peak':>7} |")
    print(f"|{'-' * 20}|{'-' * 9}|{'-' * 12}|{'-' * 9}|{'-' * 9}|")
    for label, rate, gflop, achieved, ratio in rows:
        print(f"| {label:<18} | {rate:>7.2f} | {gflop:>10.1f} | {achieved:>7.1f} | {ratio:>7.2f} |")
    print(f"\ngoal >= 0.6 of peak: {'met' if rows[0][4] >= 0.6 else 'NOT met'} ({rows[0][4]:.2f})")


if __name__ == "__main__":
    main()
