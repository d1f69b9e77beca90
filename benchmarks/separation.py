"""Speed of vocal extraction on 44.1 kHz stereo, as a multiple of real time.

    python benchmarks/separation.py [--seconds 120]

The input is the real MUSDB18 sample mixture (../shared/data/real) repeated to
``--seconds``. Each method first separates a 5-second clip (TensorFlow traces
its graphs), then the timed run separates the whole input once. x real time =
audio seconds / processing seconds (higher is better; the goal for ``simm`` is
>= 2 on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import MUSDB_MIXTURE as MIXTURE, machine_line, percentile_table  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--mixture", default=MIXTURE)
    args = parser.parse_args()
    print(machine_line())

    import numpy as np

    from kgan.audio import load
    from kgan.separation import METHODS, separate

    clip, rate = load(args.mixture, mono=False)
    if rate != 44100 or clip.shape[0] != 2:
        print(f"note: {args.mixture} is {rate} Hz with {clip.shape[0]} channel(s), not 44.1 kHz stereo")
    length = int(args.seconds * rate)
    audio = np.tile(clip, (1, length // clip.shape[1] + 1))[:, :length]
    rows = []
    for method in METHODS:
        separate(audio[:, : 5 * rate], rate, method)
        start = time.perf_counter()
        separate(audio, rate, method)
        seconds = time.perf_counter() - start
        rows.append([method, f"{args.seconds:.0f}", f"{seconds:.1f}", f"{args.seconds / seconds:.1f}"])
    print(f"{rate} Hz, {audio.shape[0]} channel(s), {os.cpu_count()} CPU core(s)")
    print(percentile_table(rows, ["method", "audio s", "processing s", "x real time"]))


if __name__ == "__main__":
    main()
