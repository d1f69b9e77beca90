"""Real-time factor of generating the accompaniment of a 3-minute vocal on this machine.

    python benchmarks/inference.py [--preset default] [--seconds 180] [--griffin-lim-iters 32]

Times, in one run, the exported SavedModel's ``serving_default`` end to end and
each stage of the same pipeline (``kgan.inference.Generate``) on its own:
STFT + normalisation + windowing, the generator, the cross-fade overlap-add,
and fast Griffin-Lim. RTF = processing seconds / audio seconds (lower is
better; the goal for the default preset is <= 0.1).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def best_of(fn, repeats: int = 2) -> float:
    fn()  # trace / warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--griffin-lim-iters", type=int, default=32)
    args = parser.parse_args()
    from _common import machine_line

    print(machine_line())

    import numpy as np
    import tensorflow as tf

    from _common import fresh_export, percentile_table
    from kgan.export import load
    from kgan.inference import Generate
    from kgan.models import UNetGenerator

    path, _ = fresh_export(args.preset, args.griffin_lim_iters)
    saved, cfg, iters = load(path)
    rate = cfg.audio.sample_rate
    t = np.arange(int(args.seconds * rate)) / rate
    vocal = (0.3 * np.sin(2 * np.pi * 440 * t * (1 + 0.01 * np.sin(2 * np.pi * 5 * t)))).astype(np.float32)[None]

    pipe = Generate(UNetGenerator.from_kgan_config(cfg), cfg, iters)
    x = tf.constant(vocal)
    length = x.shape[1]
    stage_1 = tf.function(lambda v: pipe.windows(pipe.spec.to_model(v)))
    windows = stage_1(x)
    n = windows.shape[1]
    model_in = tf.transpose(tf.reshape(windows, [-1, pipe.frames, pipe.bins]), [0, 2, 1])[..., None]
    stage_2 = tf.function(pipe.generate_windows)
    generated = tf.reshape(tf.transpose(stage_2(model_in)[..., 0], [0, 2, 1]), [1, n, pipe.frames, pipe.bins])
    frames = pipe.spec.num_frames(length)
    stage_3 = tf.function(lambda g: pipe.spec.from_model(pipe.cross_fade(g, frames)))
    magnitude = stage_3(generated)
    stage_4 = tf.function(lambda m: pipe.spec.griffin_lim(m, length, n_iter=iters))
    serve = saved.signatures["serving_default"]

    timings = [
        ("STFT + normalise + windows", best_of(lambda: stage_1(x).numpy())),
        (f"generator ({n} windows)", best_of(lambda: stage_2(model_in).numpy())),
        ("cross-fade overlap-add", best_of(lambda: stage_3(generated).numpy())),
        (f"fast Griffin-Lim ({iters} iterations)", best_of(lambda: stage_4(magnitude).numpy())),
        ("SavedModel end to end", best_of(lambda: serve(vocal=x)["accompaniment"].numpy())),
    ]
    print(f"\n{args.seconds:.0f} s vocal at {rate} Hz, preset {cfg.preset!r}, {os.cpu_count()} CPU core(s)\n")
    print(percentile_table([(name, f"{s:.2f}", f"{s / args.seconds:.3f}") for name, s in timings],
                           ["stage", "seconds", "RTF"]))
    rtf = timings[-1][1] / args.seconds
    print(f"\ngoal RTF <= 0.1: {'met' if rtf <= 0.1 else 'NOT met'} ({rtf:.3f})")


if __name__ == "__main__":
    main()
