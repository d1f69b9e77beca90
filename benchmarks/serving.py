"""Latency of 10-second requests to `kgan serve` on loopback, with 1 and 4 concurrent clients.

    python benchmarks/serving.py [--preset default] [--requests 12] [--models NAME=BASE,...] [--kernels tf,onednn]
        [--mmap-thresholds 16,32,16,32]

Starts `kgan serve` in a subprocess over a freshly exported model, then sends
``--requests`` requests per client through the gRPC client (`kgan.client`), to an export with
each phase method (Griffin-Lim from the integrated start, and the vocoder, freshly initialised),
or to the exports ``--models`` names (e.g. the shipped model and its ``--overlap 0.25`` export).
With ``--kernels tf,onednn`` each export is served once on TensorFlow's own kernels and once on oneDNN's
(``TF_ENABLE_ONEDNN_OPTS``), one after the other in the same run; with ``--mmap-thresholds`` once per
``kgan serve --mmap-threshold`` in the list, in its order (repeat a value to see the run's own drift).
Prints p50 / p99 latency and the throughput in seconds of audio per second.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--port", type=int, default=8599)
    parser.add_argument("--models", default="", metavar="NAME=EXPORT_BASE,...",
                        help="Serve these exports instead of fresh ones, e.g. shipped=kgan/pretrained/export.")
    parser.add_argument("--kernels", default="", metavar="tf,onednn",
                        help="Serve each export on these kernel sets in turn (default: kgan serve's own choice).")
    parser.add_argument("--mmap-thresholds", default="", metavar="MIB,...",
                        help="Serve each export with each of these kgan serve --mmap-threshold values in turn.")
    args = parser.parse_args()
    from _common import machine_line

    print(machine_line())

    import numpy as np

    from _common import fresh_export, fresh_vocoder, percentile_table
    from kgan.client import RemoteModel

    if args.models:
        exports = [tuple(item.split("=", 1)) for item in args.models.split(",")]
    else:
        exports = [("griffin-lim", fresh_export(args.preset)[1]),
                   ("vocoder", fresh_export(args.preset, vocoder=fresh_vocoder(args.preset))[1])]
    flags = {"tf": "0", "onednn": "1"}
    kernels = args.kernels.split(",") if args.kernels else [""]
    if not set(kernels) <= {"", *flags}:
        parser.error(f"--kernels: {args.kernels!r}; expected names of tf, onednn")
    thresholds = args.mmap_thresholds.split(",") if args.mmap_thresholds else [""]
    rows = []
    for (name, export_base), kernel, mib in [(e, k, t) for e in exports for k in kernels for t in thresholds]:
        phase = ", ".join([name] + ([kernel] if kernel else []) + ([f"mmap {mib} MiB"] if mib else []))
        env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": flags[kernel]} if kernel else None
        server = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", export_base, "--port", str(args.port),
                                   *(["--mmap-threshold", mib] if mib else [])],
                                  stderr=subprocess.PIPE, text=True, env=env)
        try:
            if "serving" not in server.stderr.readline():
                raise SystemExit("kgan serve did not start")
            target = f"127.0.0.1:{args.port}"
            rate = RemoteModel(target).sample_rate
            rng = np.random.default_rng(0)
            vocal = (0.1 * rng.standard_normal((1, 10 * rate))).astype(np.float32)
            RemoteModel(target)(vocal)  # warm-up
            for clients in (1, 4):
                latencies: list[float] = []
                lock = threading.Lock()

                def work():
                    model = RemoteModel(target)
                    for _ in range(args.requests):
                        start = time.perf_counter()
                        model(vocal)
                        with lock:
                            latencies.append(time.perf_counter() - start)

                start = time.perf_counter()
                threads = [threading.Thread(target=work) for _ in range(clients)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                wall = time.perf_counter() - start
                p50, p99 = np.percentile(latencies, [50, 99])
                rows.append((phase, clients, len(latencies), f"{p50:.3f}", f"{p99:.3f}",
                             f"{10 * len(latencies) / wall:.1f}"))
        finally:
            server.terminate()
            server.wait(30)
    print(f"\n10 s requests at {rate} Hz to kgan serve on loopback, preset {args.preset!r}, "
          f"{os.cpu_count()} CPU core(s)\n")
    print(percentile_table(rows, ["export", "clients", "requests", "p50 s", "p99 s", "audio s / s"]))
    one = [r for r in rows if r[1] == 1]
    for r in one:
        met = float(r[3]) <= 0.15 and float(r[4]) <= 0.4
        print(f"goal one client p50 <= 0.15 s, p99 <= 0.4 s ({r[0]}): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
