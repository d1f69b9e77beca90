"""Peak memory of ``kgan generate`` on long vocals and of ``kgan serve`` under its largest requests.

    python benchmarks/memory.py [--minutes 5,20,60] [--mmap-thresholds 16,32]

Goals: ``kgan generate`` on a 1-hour vocal within 2 GB; the server within 2 GB
under any single request, and handing memory back after a large one.

``generate``: a synthetic sung line (a harmonic tone stepping through a scale,
with vibrato) written as a 44.1 kHz stereo WAV of each length, run through
``kgan generate`` in a subprocess with a freshly initialised default-preset
export (memory does not depend on the weights); the child's peak resident
memory and its real-time factor.

``serve``: ``kgan serve`` in a subprocess on the same export, sent the largest
request of each kind its caps allow (``--max-seconds`` of audio in one row;
the same work as many short rows; a full ``spectrogram`` batch); the server's
peak resident memory (VmHWM) after each, and its resident memory once idle; with
``--mmap-thresholds``, once per ``kgan serve --mmap-threshold`` value.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_vocal(path: str, minutes: float, rate: int = 44100) -> None:
    """A long stereo vocal-like tone, written a minute at a time."""
    import soundfile as sf

    scale = [0, 2, 4, 5, 7, 9, 11, 12]
    with sf.SoundFile(path, "w", rate, 2, subtype="PCM_16") as f:
        for minute in range(int(np.ceil(minutes))):
            n = int(min(60.0, minutes * 60 - minute * 60) * rate)
            t = np.arange(n) / rate + minute * 60
            note = np.array(scale)[(t // 0.5).astype(int) % len(scale)]
            f0 = 220.0 * 2 ** (note / 12) * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
            phase = 2 * np.pi * np.cumsum(f0) / rate
            x = sum(0.3 / h * np.sin(h * phase) for h in range(1, 8)).astype(np.float32)
            f.write(np.stack([x, x * 0.9], axis=1))


def status_gib(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 2**20


def generate_rows(base: str, minutes_list, tmp: str):
    wrapper = ("import resource, subprocess, sys\n"
               "p = subprocess.run(sys.argv[1:])\n"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
               "sys.exit(p.returncode)\n")
    rows = []
    for minutes in minutes_list:
        vocal = os.path.join(tmp, f"vocal-{minutes:g}min.wav")
        write_vocal(vocal, minutes)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "cli.main", "generate", vocal,
                               "-o", os.path.join(tmp, "out"), "--model", base, "--no-progress"],
                              cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        os.remove(vocal)
        peak_kib = int(proc.stdout.strip().splitlines()[-1])
        rows.append((f"generate, {minutes:g}-min vocal (44.1 kHz stereo)", f"{peak_kib / 2**20:.2f}", "",
                     f"{wall / (minutes * 60):.3f}"))
        print(*rows[-1], sep=" | ", flush=True)
    return rows


def serve_rows(base: str, mmap_threshold: str = ""):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from kgan.server import DEFAULT_MAX_SECONDS, MAX_SPECTROGRAM_BATCH
    from kgan.server import spawn

    proc, target = spawn(base, *(["--mmap-threshold", mmap_threshold] if mmap_threshold else []))
    tag = f" (mmap {mmap_threshold} MiB)" if mmap_threshold else ""
    rows = []
    try:
        channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 2**30),
                                                         ("grpc.max_receive_message_length", 2**30)])
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        rate, hop = 22050, 256
        seconds = DEFAULT_MAX_SECONDS
        t = np.arange(int(seconds * rate)) / rate
        tone = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        rows_of_one_window = int(seconds * rate / hop / 64)  # about the same number of generator windows
        requests = [
            (f"serve, {seconds:g} s in one row", "", "vocal", tone[None]),
            (f"serve, {rows_of_one_window} rows of 1 window", "", "vocal",
             np.resize(tone, (rows_of_one_window, 16 * hop))),
            (f"serve, spectrogram batch of {MAX_SPECTROGRAM_BATCH}", "spectrogram", "vocal_spectrogram",
             -np.ones((MAX_SPECTROGRAM_BATCH, 512, 128, 1), np.float32)),
        ]

        def memory():
            return f"{status_gib(proc.pid, 'VmHWM'):.2f}", f"{status_gib(proc.pid, 'VmRSS'):.2f}"

        rows.append((f"serve{tag}, started", *memory(), ""))
        for label, signature, key, value in requests:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "kgan"
            if signature:
                request.model_spec.signature_name = signature
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            start = time.perf_counter()
            stub.Predict(request, timeout=3600)
            wall = time.perf_counter() - start
            audio = value.size / rate if key == "vocal" else 0
            rows.append((label.replace("serve,", f"serve{tag},"), *memory(), f"{wall / audio:.3f}" if audio else ""))
            print(*rows[-1], sep=" | ", flush=True)
        channel.close()
    finally:
        proc.terminate()
        proc.wait(60)
    return rows


def main():
    from _common import fresh_export, machine_line, percentile_table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", default="5,20,60", help="vocal lengths for generate ('' skips it)")
    parser.add_argument("--no-serve", action="store_true", help="skip the server")
    parser.add_argument("--mmap-thresholds", default="", metavar="MIB,...",
                        help="run the server once per kgan serve --mmap-threshold value (default: its own)")
    args = parser.parse_args()
    print(machine_line())
    _, base = fresh_export("default")
    rows = []
    if args.minutes:
        with tempfile.TemporaryDirectory(prefix="kgan-bench-mem-") as tmp:
            rows += generate_rows(base, [float(m) for m in args.minutes.split(",")], tmp)
    if not args.no_serve:
        for mib in args.mmap_thresholds.split(",") if args.mmap_thresholds else [""]:
            rows += serve_rows(base, mib)
    print(percentile_table(rows, ["run", "peak RSS (GiB)", "RSS after (GiB)", "real-time factor"]))


if __name__ == "__main__":
    main()
