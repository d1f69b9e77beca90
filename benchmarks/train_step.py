"""Training-step speed and achieved FLOP/s against this CPU's measured peak, in one run.

    python benchmarks/train_step.py [--preset default] [--steps 20] [--rounds 3]

FLOPs are counted from the models' layers (2 multiply-adds per weight use in
every Conv2D / Conv2DTranspose; normalisation and activations are ignored, so
the figure is a slight undercount). One training step costs about
``3 F_G + 7 F_D`` per example: the generator's forward and backward (x3), the
discriminator's two forwards (real and generated, x2), its weight-and-input
backward for its own loss (x4) and the input backward on the generated pair for
the generator's loss (x1). The peak of each precision is the best FLOP/s over
three matmul and three convolution sizes, measured in the same process; a step
is reported against its own precision's peak and against the float32 one. Every
row is timed once a round, the rows in turn, and reports its median over the
rounds, so a slower spell of a shared machine falls on all rows alike. The first
row is the float32 step on Keras' own batch norm, the step before kgan's fused
one: the reference of the goal (>= 1.5x its steps/s at >= 0.6 of the peak).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

KERAS_BN = "pix2pix (GAN + L1), Keras batch norm"


def _best_rate(fn, flops: float, repeats: int) -> float:
    fn().numpy()  # trace and warm up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        fn().numpy()
        best = max(best, flops / (time.perf_counter() - start))
    return best


def measured_peak(dtype: str = "float32", repeats: int = 5) -> tuple[float, str]:
    """Best FLOP/s over several matmul and convolution sizes in ``dtype``: (FLOP/s, the winning shape)."""
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(0)
    best = (0.0, "")
    for n in (1024, 2048, 4096):
        a, b = (tf.cast(rng.normal([n, n]), dtype) for _ in range(2))
        rate = _best_rate(tf.function(lambda: tf.reduce_sum(tf.matmul(a, b))), 2 * n**3, repeats)
        best = max(best, (rate, f"matmul {n}"))
    # convolutions shaped like the U-Net's middle layers: (batch, H, W, C_in) -> C_out, 4x4 kernels, stride 2
    for shape, c_out in (((8, 128, 32, 64), 128), ((8, 64, 16, 128), 256), ((8, 256, 64, 32), 64)):
        x = tf.cast(rng.normal(shape), dtype)
        k = tf.cast(rng.normal([4, 4, shape[-1], c_out]), dtype)
        flops = 2 * shape[0] * (shape[1] // 2) * (shape[2] // 2) * 16 * shape[-1] * c_out
        rate = _best_rate(tf.function(lambda: tf.reduce_sum(tf.nn.conv2d(x, k, 2, "SAME"))), flops, repeats)
        best = max(best, (rate, f"conv {'x'.join(map(str, shape))}->{c_out}"))
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--steps", type=int, default=20, help="Steps timed per row in each round.")
    parser.add_argument("--rounds", type=int, default=3,
                        help="Rounds: every row is timed once a round, in turn, and reports its median.")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--base-filters", default="16",
                        help="Also time the pix2pix step with these model.base_filters (16: the lean U-Net).")
    args = parser.parse_args()
    from _common import conv_flops, machine_line, percentile_table

    print(machine_line())

    import tempfile

    import numpy as np
    import tensorflow as tf

    from kgan.config import get_preset
    from kgan.models.blocks import SyncBatchNormalization
    from kgan.training import Trainer, make_strategy

    precisions = args.precisions.split(",")
    peaks = {p: measured_peak("bfloat16" if p == "mixed_bfloat16" else "float32") for p in ["float32", *precisions]}
    variants = [("pix2pix (GAN + L1)", {}), ("L1 only", {"train.gan_weight": 0.0})]
    variants += [(f"pix2pix (GAN + L1), G width {w}", {"model.base_filters": int(w)})
                 for w in args.base_filters.split(",") if w]
    rows, g_flops = [], {}
    runs = [(precision, label, overrides) for precision in precisions for label, overrides in variants]
    if "float32" in precisions:  # the reference of the goal: the float32 step as it was, on Keras' batch norm
        runs.insert(0, ("float32", KERAS_BN, {}))
    prepared = []
    for precision, label, overrides in runs:
        SyncBatchNormalization.use_fused_kernel = label != KERAS_BN  # read when the step is traced
        cfg = get_preset(args.preset).override(**overrides, **{"train.precision": precision})
        trainer = Trainer(cfg, tempfile.mkdtemp(), make_strategy(1))
        b, f, t = cfg.train.batch_size, cfg.stft.num_bins, cfg.window.frames
        rng = np.random.default_rng(0)
        batch = tuple(tf.constant(rng.uniform(-1, 1, (b, f, t, 1)).astype("float32")) for _ in range(2))
        it = iter(trainer.strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors(batch).repeat()))
        for _ in range(3):  # trace and warm up
            trainer.train_step(next(it))["g_l1"].numpy()
        prepared.append((precision, label, cfg, trainer, it))
    SyncBatchNormalization.use_fused_kernel = True
    # the rows in turn, round after round, so a slower spell of the machine falls on all of them alike
    rounds = [[] for _ in prepared]
    for _ in range(args.rounds):
        for timings, (_, _, _, trainer, it) in zip(rounds, prepared):
            start = time.perf_counter()
            for _ in range(args.steps):
                trainer.train_step(next(it))["g_l1"].numpy()
            timings.append(args.steps / (time.perf_counter() - start))
    for timings, (precision, label, cfg, trainer, _) in zip(rounds, prepared):
        rate = float(np.median(timings))
        b = cfg.train.batch_size
        f_g, f_d = conv_flops(trainer.generator), conv_flops(trainer.discriminator)
        g_flops[cfg.model.base_filters] = f_g
        # with gan_weight 0 the discriminator still runs forward (for its metrics), nothing backpropagates
        per_example = 3 * f_g + (7 if cfg.train.gan_weight > 0 else 2) * f_d
        achieved = rate * b * per_example
        rows.append((precision, label, f"{rate:.2f}", f"{per_example * b / 1e9:.1f}", f"{achieved / 1e9:.1f}",
                     f"{achieved / peaks[precision][0]:.2f}", f"{achieved / peaks['float32'][0]:.2f}", rate, timings))
    f, t = cfg.stft.num_bins, cfg.window.frames
    print(f"\npreset {args.preset!r}, batch {b}, input {f} x {t}, {os.cpu_count()} CPU core(s); "
          f"G {', '.join(f'{g / 1e9:.2f} (width {w})' for w, g in g_flops.items())} and D {f_d / 1e9:.2f} "
          "GFLOP per example")
    for precision, (peak, shape) in peaks.items():
        print(f"measured {precision} peak: {peak / 1e9:.1f} GFLOP/s ({shape})")
    print()
    print(f"{args.rounds} round(s) of {args.steps} steps a row, the rows in turn; steps/s is each row's median")
    print(percentile_table([r[:-2] for r in rows], ["precision", "step", "steps/s", "GFLOP/step", "GFLOP/s",
                                                     "of its peak", "of fp32 peak"]))
    base = next((r for r in rows if r[1] == KERAS_BN), None) or next(
        (r for r in rows if r[0] == "float32" and r[1] == "pix2pix (GAN + L1)"), rows[0])
    for r in rows:
        if r[1].startswith("pix2pix") and r is not base:
            per_round = [a / c for a, c in zip(r[-1], base[-1])]
            print(f"{r[0]} {r[1]}: {r[-2] / base[-2]:.2f}x the {base[0]} {base[1]} step "
                  f"(rounds: {min(per_round):.2f}-{max(per_round):.2f}x)")
    # the goal: the full-size pix2pix step >= 1.5x the reference at >= 0.6 of the peak of its own precision
    full = [r for r in rows if r[1] == "pix2pix (GAN + L1)"]
    if full:
        best = max(full, key=lambda r: r[-2])
        speed, of_peak = best[-2] / base[-2], float(best[5])
        met = speed >= 1.5 and of_peak >= 0.6
        print(f"goal >= 1.5x the reference at >= 0.6 of its precision's peak ({best[0]} step): "
              f"{'met' if met else 'NOT met'} ({speed:.2f}x, {of_peak:.2f} of peak)")

if __name__ == "__main__":
    main()
