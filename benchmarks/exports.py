"""End-to-end real-time factor of exports, loaded in one process and called in turn on the same vocal.

    python benchmarks/exports.py [--models shipped=kgan/pretrained/export/1,...] [--seconds 10,30,180] [--calls 7]

Each export's signature that ``kgan generate`` runs here (``kgan.export.signature_for``: the bfloat16 twin
of a ``--compute both`` export on a CPU with bf16 dot products) is called on a synthetic sung line of each
length, in style 0 with no beat grid, after a warm-up call. The exports take turns call by call, so a
change in the machine's load reaches all of them alike; the table gives each one's median and fastest
call, its RTF (seconds per audio second; the goal for 3 minutes is <= 0.02), and its median against the
first export's. The largest difference between each output and the first one's is printed too (0 to float
rounding for exports of the same graph).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=f"shipped={os.path.join(ROOT, 'kgan', 'pretrained', 'export', '1')}",
                        help="comma-separated NAME=EXPORT_VERSION_DIR")
    parser.add_argument("--seconds", default="10,30,180", help="comma-separated vocal lengths")
    parser.add_argument("--calls", type=int, default=7, help="timed calls of each export at each length")
    args = parser.parse_args(argv)
    from kgan import use_served_kernels

    use_served_kernels()
    import numpy as np
    import tensorflow as tf
    from _common import kernels_line, machine_line, percentile_table

    from kgan.export import load, signature_for, unknown_inputs

    print(f"{machine_line()}\n{kernels_line()}\n")
    models = []
    for item in args.models.split(","):
        name, _, path = item.partition("=")
        saved, config, _ = load(path)
        signature = signature_for("serving_default", saved.signatures)
        models.append((name, saved.signatures[signature], signature))
    rate = config.audio.sample_rate
    rows = []
    for seconds in [float(s) for s in args.seconds.split(",") if s.strip()]:
        t = np.arange(int(seconds * rate)) / rate
        vocal = 0.3 * np.sin(2 * np.pi * 440 * t * (1 + 0.01 * np.sin(2 * np.pi * 5 * t)))  # 5-Hz vibrato
        inputs = {"vocal": tf.constant(vocal.astype(np.float32)[None])}
        outputs, times = [], [[] for _ in models]
        for _, serve, _ in models:  # warm-up, and each one's output
            extra = unknown_inputs(serve)
            outputs.append((extra, serve(**inputs, **extra)["accompaniment"].numpy()))
        for _ in range(args.calls):
            for (_, serve, _), (extra, _), into in zip(models, outputs, times):
                start = time.perf_counter()
                serve(**inputs, **extra)["accompaniment"].numpy()
                into.append(time.perf_counter() - start)
        first = float(np.median(times[0]))
        for (name, _, signature), (_, out), taken in zip(models, outputs, times):
            shape_ok = out.shape == outputs[0][1].shape
            diff = float(np.max(np.abs(out - outputs[0][1]))) if shape_ok else float("nan")
            median = float(np.median(taken))
            rows.append((f"{seconds:g}", name, signature, f"{median:.3f}", f"{min(taken):.3f}",
                         f"{median / seconds:.4f}", f"{median / first:.2f}", f"{diff:.2g}"))
    print(percentile_table(rows, ["seconds", "export", "signature", "median (s)", "fastest (s)", "RTF (median)",
                                  "against the first", "max |output - first's|"]))


if __name__ == "__main__":
    main()
