"""Real-time factor of generating the accompaniment of a 3-minute vocal on this machine.

    python benchmarks/inference.py [--preset default] [--seconds 180] [--griffin-lim-iters 16]

Times, in one run, the exported SavedModel's ``serving_default`` end to end and
each stage of the same pipeline (``kgan.inference.Generate``) on its own:
STFT + normalisation + windowing, the generator (float32, and computing in
bfloat16 with the same weights), the cross-fade overlap-add, fast Griffin-Lim
and the learned vocoder (``kgan.vocoder``, freshly initialised: its speed does
not depend on its weights; with the Griffin-Lim iterations its export runs after it),
and the SavedModel with either phase method.
RTF = processing seconds / audio seconds (lower is better; the goal for the
default preset is <= 0.02 end to end). kgan generate and serve run
oneDNN's kernels (which bfloat16 needs to use the CPU's bf16 dot products); run once more
with ``TF_ENABLE_ONEDNN_OPTS=0`` to see TensorFlow's own.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--griffin-lim-iters", type=int, default=16)
    args = parser.parse_args()
    from kgan import use_served_kernels

    use_served_kernels()
    from _common import best_of, kernels_line, machine_line

    print(machine_line())
    print(kernels_line())

    import numpy as np
    import tensorflow as tf

    from _common import fresh_export, fresh_vocoder, percentile_table
    from kgan.export import load
    from kgan.inference import Generate
    from kgan.models import UNetGenerator
    from kgan.training import dtype_policy
    from kgan.vocoder import EXPORT_REFINE_ITERS, load_vocoder

    path, _ = fresh_export(args.preset, args.griffin_lim_iters)
    vocoder_dir = fresh_vocoder(args.preset)
    vocoder_path, _ = fresh_export(args.preset, args.griffin_lim_iters, vocoder=vocoder_dir)
    saved, cfg, iters = load(path)
    saved_vocoder, _, _ = load(vocoder_path)
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
    stage_4 = tf.function(lambda m: pipe.spec.griffin_lim_in_segments(m, length, n_iter=iters, initial="integrated"))
    vocoder = load_vocoder(vocoder_dir, refine_iters=EXPORT_REFINE_ITERS)  # as its export runs it
    normalised = pipe.cross_fade(generated, frames)
    stage_5 = tf.function(lambda g: vocoder.waveform(g, length))
    with dtype_policy("mixed_bfloat16"):
        half = UNetGenerator.from_kgan_config(cfg)
    half.set_weights(pipe.generator.get_weights())
    pipe_bf16 = Generate(half, cfg, iters)
    stage_2b = tf.function(pipe_bf16.generate_windows)
    serve = saved.signatures["serving_default"]
    serve_vocoder = saved_vocoder.signatures["serving_default"]

    timings = [
        ("STFT + normalise + windows", best_of(lambda: stage_1(x).numpy())),
        (f"generator ({n} windows), float32", best_of(lambda: stage_2(model_in).numpy())),
        ("cross-fade overlap-add", best_of(lambda: stage_3(generated).numpy())),
        (f"fast Griffin-Lim ({iters} iterations, integrated start, in segments)",
         best_of(lambda: stage_4(magnitude).numpy())),
        (f"vocoder + {EXPORT_REFINE_ITERS} accelerated Griffin-Lim iterations",
         best_of(lambda: stage_5(normalised).numpy())),
        ("SavedModel end to end, Griffin-Lim", best_of(lambda: serve(vocal=x)["accompaniment"].numpy())),
        ("SavedModel end to end, vocoder", best_of(lambda: serve_vocoder(vocal=x)["accompaniment"].numpy())),
    ]
    if "oneDNN" in kernels_line():  # TF's own kernels emulate bfloat16 (measured 12x slower than float32)
        timings.insert(2, (f"generator ({n} windows), bfloat16", best_of(lambda: stage_2b(model_in).numpy())))
        a, b = stage_2(model_in).numpy(), stage_2b(model_in).numpy()
        print(f"bfloat16 generator vs float32: max |difference| {np.max(np.abs(a - b)):.4f} on the [-1, 1] scale")
    print(f"\n{args.seconds:.0f} s vocal at {rate} Hz, preset {cfg.preset!r}, {os.cpu_count()} CPU core(s)\n")
    print(percentile_table([(name, f"{s:.2f}", f"{s / args.seconds:.3f}") for name, s in timings],
                           ["stage", "seconds", "RTF"]))
    for name, seconds in timings[-2:]:
        rtf = seconds / args.seconds
        print(f"goal end-to-end RTF <= 0.02 ({name.rsplit(', ', 1)[1]}): {'met' if rtf <= 0.02 else 'NOT met'} "
              f"({rtf:.3f})")


if __name__ == "__main__":
    main()
