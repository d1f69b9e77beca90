"""SI-SDR and SDR / SIR / SAR of each separation method on songs with known stems.

    python experiments/separation_quality.py SONG_DIR [SONG_DIR ...] [--out results.json]

Each SONG_DIR holds ``vocals.*`` and ``accompaniment.*`` (or the stems
drums/bass/other) and optionally ``mixture.*``; without a mixture the stems are
summed. Scores are the scale-invariant SDR and mir_eval's BSS Eval v3
(``bss_eval_sources``) over the whole song on the channel average, in dB. Prints
a Markdown table with the mean (± 95 % CI) over songs per method; ``--out``
keeps every number.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> None:
    from kgan.audio import load
    from kgan.preprocess import find_sources, load_sources
    from kgan.separation import METHODS, separate, separation_scores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("songs", nargs="+")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    rows = []
    for folder in args.songs:
        name = os.path.basename(os.path.normpath(folder))
        sources = find_sources(folder)
        rate = load(sources.vocals)[1]  # the stems' own rate
        ref_v, ref_a = load_sources(sources, rate)
        mixture = sorted(f for f in os.listdir(folder) if f.startswith("mixture."))
        mix = load(os.path.join(folder, mixture[0]), rate, mono=False)[0] if mixture else (ref_v + ref_a)[None, :]
        for method in args.methods.split(","):
            start = time.perf_counter()
            result = separate(mix, rate, method)
            seconds = time.perf_counter() - start
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                scores = separation_scores(ref_v, ref_a, result.vocals.mean(axis=0), result.accompaniment.mean(axis=0))
            rows.append({"song": name, "method": method, "seconds": mix.shape[-1] / rate,
                         "x_real_time": mix.shape[-1] / rate / seconds, **scores})
            print(json.dumps(rows[-1]), file=sys.stderr)
    keys = ["vocal_si_sdr", "vocal_sdr", "vocal_sir", "vocal_sar", "accompaniment_si_sdr", "accompaniment_sdr",
            "accompaniment_sir", "accompaniment_sar"]
    print("| method | songs | " + " | ".join(k.replace("_", " ").replace("accompaniment", "acc.") for k in keys)
          + " |\n|---|---|" + "---|" * len(keys))
    for method in args.methods.split(","):
        mine = [r for r in rows if r["method"] == method]
        cells = [_mean_ci([r[k] for r in mine]) for k in keys]
        print(f"| {method} | {len(mine)} | " + " | ".join(cells) + " |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


def _mean_ci(values) -> str:
    """Mean, with the half-width of its 95 % confidence interval over songs when there are several."""
    from kgan.evaluation import mean_ci

    mean, ci = mean_ci(values)
    return f"{mean:.2f}" + (f" ± {ci:.2f}" if ci == ci else "")


if __name__ == "__main__":
    main()
