"""The generator's cost per audio second: U-Net width, window overlap and arithmetic precision.

    python benchmarks/generator_cost.py [--seconds 10,60] [--model EXPORT]

Each variant is the shipped export's config (vocal input, styles, geometry) with ``model.base_filters``
and ``window.overlap`` changed, freshly initialised (speed does not depend on the weights). For each:
the multiply-adds of one window counted from its convolutions, the windows one audio second needs
at that overlap, their product (GMAC per audio second), and the measured generator time per audio
second (RTF, best of 3, ``Generate.generate_windows`` as exported: chunks of 8 and one remainder call)
on inputs of each ``--seconds``.

The table is measured twice, each in its own process: on TensorFlow's own kernels in float32,
and on oneDNN's kernels (what ``kgan generate`` and ``kgan serve`` run) in float32 and in bfloat16
(Keras' ``mixed_bfloat16`` policy, the same weights), the only kernels that use the CPU's bf16 dot
products; TF's own kernels emulate bfloat16 and are not timed in it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ((32, 0.5), (32, 0.25), (16, 0.5), (16, 0.25))  # (model.base_filters, window.overlap)


def measure(model: str, seconds_list: list[float]) -> list[tuple]:
    """Rows of the table on this process' kernels: float32, and bfloat16 too on oneDNN's."""
    import numpy as np
    import tensorflow as tf

    from _common import best_of, conv_flops, kernels_line
    from kgan.chords import ChordNet
    from kgan.export import load
    from kgan.inference import Generate
    from kgan.models import UNetGenerator
    from kgan.training import dtype_policy

    _, shipped, _ = load(model)
    onednn = "oneDNN" in kernels_line()
    rows = []
    for base_filters, overlap in VARIANTS:
        cfg = shipped.override(**{"model.base_filters": base_filters, "window.overlap": overlap})
        generators = {"float32": UNetGenerator.from_kgan_config(cfg)}
        if onednn:
            with dtype_policy("mixed_bfloat16"):
                generators["bfloat16"] = UNetGenerator.from_kgan_config(cfg)
            generators["bfloat16"].set_weights(generators["float32"].get_weights())
        gmac = conv_flops(generators["float32"]) / 2e9
        frames_per_second = cfg.audio.sample_rate / cfg.stft.hop_length
        per_second = frames_per_second / cfg.window.generate_hop  # windows per audio second, long inputs
        rng = np.random.default_rng(0)
        for precision, generator in generators.items():
            pipe = Generate(generator, cfg, chord_net=ChordNet() if cfg.model.vocal_input == "plan" else None)
            run = tf.function(pipe.generate_windows)
            cells = []
            for seconds in seconds_list:
                frames = pipe.spec.num_frames(int(seconds * cfg.audio.sample_rate))
                n = int(pipe.windows(tf.zeros([1, frames, cfg.stft.num_bins])).shape[1])  # as a request is cut
                x = tf.constant(rng.uniform(-1, 1, (n, cfg.stft.num_bins, cfg.window.frames, pipe.channels))
                                .astype(np.float32))
                style = tf.zeros([n], tf.int32) if pipe.styled else None
                cells += [str(n), f"{best_of(lambda: run(x, style).numpy(), 3) / seconds:.4f}"]
            rows.append((base_filters, overlap, f"{gmac:.2f}", f"{per_second:.2f}", f"{gmac * per_second:.2f}",
                         "oneDNN" if onednn else "TF", precision, *cells))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", default="10,60", help="Comma-separated input lengths.")
    parser.add_argument("--model", default=os.path.join(ROOT, "kgan", "pretrained", "export", "1"))
    parser.add_argument("--kernels", choices=("both", "tf", "onednn"), default="both",
                        help="Which kernel set(s); 'both' runs each in a process of its own.")
    args = parser.parse_args()
    seconds = [float(s) for s in args.seconds.split(",")]
    from _common import machine_line

    print(machine_line(), flush=True)  # each half prints its own: the first half loads the CPU for the second
    if args.kernels == "both":
        for kernels, flag in (("tf", "0"), ("onednn", "1")):
            subprocess.run([sys.executable, __file__, "--seconds", args.seconds, "--model", args.model,
                            "--kernels", kernels], env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": flag}, check=True)
        return
    from _common import percentile_table

    headers = ["base filters", "overlap", "GMAC / window", "windows / audio s", "GMAC / audio s", "kernels",
               "precision"]
    for s in seconds:
        headers += [f"windows ({s:g} s)", f"RTF ({s:g} s)"]
    print(percentile_table(measure(args.model, seconds), headers), flush=True)


if __name__ == "__main__":
    main()
