"""Throughput of ``kgan preprocess --mixes``: the plain path against the Beam pipeline on this machine.

    python benchmarks/pipeline.py [--songs 12] [--seconds 40] [--workers 2]

The songs are the real MUSDB18 sample mixture (../shared/data/real, 44.1 kHz
stereo) tiled to ``--seconds``, each circularly shifted by its own offset so no
two are alike, written as FLAC. Each path runs as a real ``kgan`` subprocess
from a clean output folder, start-up included (TensorFlow's import, Beam's
workers), and separates then preprocesses every song with the default preset.
The table gives each path's audio seconds per wall-clock second and the
pipeline's speed-up over the plain path (goal: >= 1.8 with 2 workers on 2 cores).

Two more rows bound what any pool of workers can gain here: the plain path with
one TensorFlow thread (what each Beam worker runs), and ``--workers`` plain
processes of one thread each, started together, each on its own share of the songs
(no Beam, no shuffling, no reports: perfect parallelism at the cost of a
process start each). The last row is the ceiling for a pipeline of that many workers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import MUSDB_MIXTURE as MIXTURE, ROOT, machine_line, percentile_table  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import numpy as np
    import soundfile as sf

    print(machine_line())
    clip, rate = sf.read(MIXTURE, dtype="float32", always_2d=True)
    length = int(args.seconds * rate)
    root = tempfile.mkdtemp(prefix="kgan-bench-pipeline-")
    songs = os.path.join(root, "songs")
    os.makedirs(songs)
    tiled = np.tile(clip, (length // len(clip) + 1, 1))[:length]
    for i in range(args.songs):
        sf.write(os.path.join(songs, f"song{i:02d}.flac"), np.roll(tiled, i * rate // 3, axis=0), rate)
    audio = args.songs * args.seconds
    rows, rates = [], {}
    paths = (("plain (one process)", []), (f"Beam, {args.workers} workers", ["--workers", str(args.workers)]))
    one_thread = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    shares = []
    for w in range(args.workers):  # each process's own songs, in a folder of its own
        share = os.path.join(root, f"share{w}")
        os.makedirs(share)
        for name in sorted(os.listdir(songs))[w::args.workers]:
            os.link(os.path.join(songs, name), os.path.join(share, name))
        shares.append(share)

    out = os.path.join(root, "out")
    runs = [(name, [(songs, out, extra, None)]) for name, extra in paths]
    runs.append(("plain, one TensorFlow thread", [(songs, out, [], one_thread)]))
    runs.append((f"{args.workers} plain processes of one thread (the ceiling)",
                 [(share, share + "-out", [], one_thread) for share in shares]))
    for name, commands in runs:
        for _, folder, _, _ in commands:  # every run starts from a clean output folder
            shutil.rmtree(folder, ignore_errors=True)
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "cli.main", "preprocess", "--mixes", inputs, folder,
                                   "--no-progress", *extra], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for inputs, folder, extra, env in commands]
        if any([proc.wait() for proc in procs]):  # wait for every one
            raise SystemExit(f"{name}: kgan preprocess failed")
        seconds = time.perf_counter() - start
        rates[name] = audio / seconds
        rows.append([name, f"{audio:.0f}", f"{seconds:.1f}", f"{audio / seconds:.1f}",
                     f"{rates[name] / rates[rows[0][0]] if rows else 1.0:.2f}"])
    speedup = rates[rows[1][0]] / rates[rows[0][0]]
    print(f"{args.songs} songs of {args.seconds:.0f} s, {rate} Hz stereo")
    print(percentile_table(rows, ["path", "audio s", "wall s", "x real time", "x plain"]))
    print(f"speed-up of the pipeline: {speedup:.2f}x; ceiling for {args.workers} workers: "
          f"{rates[rows[-1][0]] / rates[rows[0][0]]:.2f}x")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
