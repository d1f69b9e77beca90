"""The learned vocoder against 32-iteration fast Griffin-Lim: quality from true and generated magnitudes, speed.

    python experiments/vocoder.py --vocoder build/vocoder --run build/pretrained/run \\
        --songs build/pretrained/test-seen-voices --out docs/vocoder

For each test song (its first ``--seconds`` of accompaniment):

* from true magnitudes: the accompaniment's own normalised spectrogram (the
  [-1, 1] view the generator produces) goes through each phase method; the
  waveform is scored against the true accompaniment (spectral convergence,
  log-spectral distance, multi-resolution STFT distance) and against the
  magnitude it was given (consistency: the re-analysed STFT's spectral
  convergence against it);
* from generated magnitudes: the generator of ``--run`` accompanies the song's
  vocal, and each method turns that spectrogram into a waveform, scored the
  same way (against the true accompaniment these numbers mostly measure the
  generator; consistency is the phase method's own).

Speed: seconds of compute per second of audio for a 60-second spectrogram,
each method compiled with ``tf.function``, best of five, in the same process; Griffin-Lim runs in segments
of 1024 frames there, as ``kgan.inference.Generate`` runs it, and so do the vocoder's iterations.
Results: ``OUT/summary.json`` and ``OUT/summary.md``; the table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

MEASURES = ("spectral_convergence", "log_spectral_distance", "mr_stft", "consistency")


def _songs(folder: str, count: int) -> list[str]:
    songs = []
    for name in sorted(os.listdir(folder)):
        meta = os.path.join(folder, name, "song.json")
        if os.path.exists(meta) and json.load(open(meta)).get("split", "test") == "test":
            songs.append(os.path.join(folder, name))
    return songs[:count]


def score_methods(songs: list[str], methods: dict, pipeline, seconds: float) -> dict:
    """``scores[source][method][measure]``: one value per song folder of ``songs``, for its first ``seconds``.

    ``source`` is ``true`` (the accompaniment's own normalised magnitudes) or ``generated`` (``pipeline``'s, a
    ``kgan.inference.Generate``, from the vocal); each method of ``methods`` maps (normalised ``[1, T, bins]``,
    samples) to a waveform, scored by ``kgan.vocoder.stft_distances`` against the accompaniment."""
    import tensorflow as tf

    from kgan.preprocess import find_sources, load_sources
    from kgan.vocoder import stft_distances

    spec, rate = pipeline.spec, pipeline.config.audio.sample_rate
    scores = {source: {m: {k: [] for k in MEASURES} for m in methods} for source in ("true", "generated")}
    for song in songs:
        vocal, acc = load_sources(find_sources(song), rate)
        n = min(len(acc), len(vocal), int(seconds * rate))
        acc, vocal = acc[:n], vocal[:n]
        given = {"true": spec.to_model(acc[None]), "generated": pipeline.spectrogram(vocal[None])}
        for source, normalised in given.items():
            for name, method in methods.items():
                out = method(normalised, tf.constant(n, tf.int32)).numpy()[0]
                for key, value in stft_distances(acc, out, normalised.numpy()[0], spec).items():
                    scores[source][name][key].append(value)
        print(f"scored {os.path.basename(song)}", flush=True)
    return scores


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocoder", required=True)
    parser.add_argument("--run", required=True, help="A training run, or an export (the shipped "
                                                     "kgan/pretrained/export/1), whose generator makes the magnitudes.")
    parser.add_argument("--songs", required=True, help="A folder of test-split song folders.")
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--griffin-lim-iters", type=int, default=32)
    parser.add_argument("--refine", default="0,4", help="Griffin-Lim iterations after the vocoder to compare.")
    parser.add_argument("--prior-refine", default="8", help="Griffin-Lim iterations from the integrated phase "
                                                            "(no network) to compare.")
    parser.add_argument("--prior-algorithm", default="accelerated", choices=("fast", "accelerated"),
                        help="The algorithm of the iterations from the integrated phase.")
    parser.add_argument("--out", default="docs/vocoder")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from benchmarks._common import machine_line, percentile_table
    from kgan.export import restore_run_or_export
    from kgan.inference import Generate
    from kgan.spectrogram import Spectrogram
    from kgan.vocoder import load_vocoder

    print(machine_line())
    # a plan generator's export brings its chord network; a plan run has none here: export it first
    generator, config, chord_net, _ = restore_run_or_export(args.run)
    spec = Spectrogram(config.stft)
    rate = config.audio.sample_rate
    pipeline = Generate(generator, config, chord_net=chord_net)
    iters = args.griffin_lim_iters

    @tf.function(input_signature=[tf.TensorSpec([1, None, config.stft.num_bins]), tf.TensorSpec([], tf.int32)])
    def griffin_lim(normalised, length):
        return spec.griffin_lim_in_segments(spec.from_model(normalised), length, n_iter=iters)

    def vocoder_method(refine: int):
        """(its label, the vocoder with ``refine`` Griffin-Lim iterations after it)"""
        vocoder = load_vocoder(args.vocoder, config.stft, rate, refine_iters=refine)

        @tf.function(input_signature=[tf.TensorSpec([1, None, config.stft.num_bins]), tf.TensorSpec([], tf.int32)])
        def vocode(normalised, length):
            return vocoder.waveform(normalised, length)

        return "vocoder" + (f" + {refine} {vocoder.settings.refine_algorithm} GL it." if refine else ""), vocode

    def prior_method(refine: int):  # no network: Griffin-Lim started from the integrated phase
        @tf.function(input_signature=[tf.TensorSpec([1, None, config.stft.num_bins]), tf.TensorSpec([], tf.int32)])
        def run(normalised, length):
            return spec.griffin_lim_in_segments(spec.from_model(normalised), length, n_iter=refine,
                                                initial="integrated", algorithm=args.prior_algorithm)

        return run

    methods = {f"Griffin-Lim ({iters} it.)": griffin_lim}
    for refine in map(int, args.prior_refine.split(",")) if args.prior_refine else ():
        methods[f"integrated phase + {refine} {args.prior_algorithm} GL it."] = prior_method(refine)
    for refine in map(int, args.refine.split(",")):
        label, method = vocoder_method(refine)
        methods[label] = method
    songs = _songs(args.songs, args.n)
    scores = score_methods(songs, methods, pipeline, args.seconds)

    speed = {}
    sixty = tf.random.uniform([1, spec.num_frames(60 * rate), config.stft.num_bins], -1, 0.2)
    for name, method in methods.items():
        method(sixty, tf.constant(60 * rate, tf.int32)).numpy()
        best = min(_timed(method, sixty, 60 * rate) for _ in range(5))
        speed[name] = best / 60.0

    rows, summary = [], {"songs": [os.path.basename(s) for s in songs], "seconds": args.seconds,
                         "vocoder": args.vocoder, "run": args.run, "rtf": speed, "scores": {}}
    for source in scores:
        for name in methods:
            means = {k: float(np.mean(v)) for k, v in scores[source][name].items()}
            cis = {k: float(1.96 * np.std(v) / np.sqrt(max(1, len(v) - 1))) for k, v in scores[source][name].items()}
            summary["scores"].setdefault(source, {})[name] = {"mean": means, "ci95": cis}
            rows.append([source, name] + [f"{means[k]:.3f} ± {cis[k]:.3f}" for k in MEASURES]
                        + [f"{speed[name]:.4f}"])
    gl = f"Griffin-Lim ({iters} it.)"
    verdicts = []
    for voc in [m for m in methods if m != gl]:
        wins = {source: all(summary["scores"][source][voc]["mean"][k] < summary["scores"][source][gl]["mean"][k]
                            for k in MEASURES) for source in scores}
        summary.setdefault("verdicts", {})[voc] = {"speedup": speed[gl] / speed[voc], "wins": wins}
        verdicts.append(f"{voc}: {speed[gl] / speed[voc]:.1f}x Griffin-Lim's speed; better on every measure from "
                        f"true magnitudes: {'yes' if wins['true'] else 'no'}, from generated ones: "
                        f"{'yes' if wins['generated'] else 'no'}")
    table = percentile_table(rows, ["magnitudes", "method", "spectral conv.", "LSD (dB)", "MR-STFT",
                                    "consistency", "RTF (60 s)"])
    verdict = "\n".join(verdicts) + "\n(goal: better on every measure at >= 3x the speed)"
    print("\n" + table + "\n\n" + verdict)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(args.out, "summary.md"), "w", encoding="utf-8") as f:
        f.write(f"{machine_line()}\n\n{len(songs)} test songs, first {args.seconds:g} s each "
                f"(mean ± 95 % CI; lower is better)\n\n{table}\n\n{verdict}\n")


def _timed(method, normalised, length) -> float:
    import tensorflow as tf

    start = time.perf_counter()
    method(normalised, tf.constant(length, tf.int32)).numpy()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
