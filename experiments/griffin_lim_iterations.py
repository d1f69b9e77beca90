"""Griffin-Lim's iterations against its quality, on true accompaniment magnitudes.

    python experiments/griffin_lim_iterations.py SONGS [--n 12] [--seconds 15] [--iterations 4,8,12,16]
        [--accelerated 8,12,16] [--speed 10,180] [--generated EXPORT]

For the first ``--n`` song folders of SONGS (a test rendering, e.g. ``build/dyn/test-seen-voices``), the
first ``--seconds`` of the accompaniment go through the default preset's STFT and the normalised [-1, 1]
view the generator produces, then back through fast Griffin-Lim: 32 iterations from a random phase (the
old default), each of ``--iterations`` from the integrated phase, and each of ``--accelerated`` iterations of
the accelerated algorithm (``Spectrogram.griffin_lim``'s ``algorithm``) from it. Printed per setting, mean ± 95 % CI
over songs: spectral convergence against the true accompaniment's magnitude, and consistency (the
re-analysed STFT's spectral convergence against the magnitude Griffin-Lim was given). Lower is better.
``--generated EXPORT``: each setting also on the magnitudes EXPORT's generator makes from each song's vocal
(``kgan.export.restore_from_export``, in the song's own style), scored by their consistency alone (no phase
makes them consistent; the true accompaniment would measure the generator).
``--speed``: each setting also timed (median of calls in turn, oneDNN's kernels as kgan runs them) on that many
seconds of the songs' accompaniments joined end to end, in segments when long as ``kgan.inference.Generate``
runs it.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("songs")
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--iterations", default="4,8,12,16")
    parser.add_argument("--accelerated", default="", help="Iterations of the accelerated algorithm to score too.")
    parser.add_argument("--speed", default="", help="Also time each setting on inputs this many seconds long.")
    parser.add_argument("--generated", help="An export whose generated magnitudes to score each setting on too.")
    args = parser.parse_args(argv)
    from kgan import use_served_kernels

    use_served_kernels()
    import numpy as np
    import tensorflow as tf

    from kgan.audio import load
    from kgan.config import Config
    from kgan.spectrogram import Spectrogram, spectral_convergence

    config = Config()
    spec, rate = Spectrogram(config.stft), config.audio.sample_rate
    settings = {"32 from random": (32, None, "fast")}
    settings.update({f"{n} from integrated": (int(n), "integrated", "fast") for n in args.iterations.split(",")})
    settings.update({f"{n} accelerated from integrated": (int(n), "integrated", "accelerated")
                     for n in filter(None, args.accelerated.split(","))})
    scores = {name: [] for name in settings}
    paths = sorted(glob.glob(os.path.join(args.songs, "*", "accompaniment.flac")))[: args.n]
    if not paths:
        raise SystemExit(f"{args.songs}: no song folder with accompaniment.flac")
    songs = [load(path, rate)[0] for path in paths]
    for audio in songs:
        audio = audio[: int(args.seconds * rate)]
        x = tf.constant(audio[None].astype(np.float32))
        true = spec.magnitude(spec.forward(x))
        given = spec.from_model(spec.to_model(x))
        for name, setting in settings.items():
            heard = _heard(spec, given, x.shape[1], setting)
            scores[name].append((float(spectral_convergence(true, heard)[0]),
                                 float(spectral_convergence(given, heard)[0])))
    print(f"{len(paths)} songs of {args.songs}, first {args.seconds:g} s\n")
    print("| Griffin-Lim | spectral convergence | consistency |\n|---|---|---|")
    for name, rows in scores.items():
        v = np.array(rows)
        mean, ci = v.mean(0), 1.96 * v.std(0, ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.zeros(2)
        print(f"| {name} | {mean[0]:.3f} ± {ci[0]:.3f} | {mean[1]:.3f} ± {ci[1]:.3f} |")
    if args.generated:
        _generated(spec, args.generated, [os.path.dirname(p) for p in paths], args.seconds, settings)
    if args.speed:
        _speed(spec, np.concatenate(songs), rate, settings, [float(s) for s in args.speed.split(",")])


def _heard(spec, given, length: int, setting: tuple):
    """The magnitude of what one setting ``(iterations, start, algorithm)`` makes of full-scale ``given``."""
    iterations, initial, algorithm = setting
    return spec.magnitude(spec.forward(spec.griffin_lim(given, length, n_iter=iterations, initial=initial,
                                                        algorithm=algorithm)))


def _generated(spec, export: str, folders: list, seconds: float, settings: dict) -> None:
    """Each setting's consistency on ``export``'s generated magnitudes for the songs in ``folders``."""
    import numpy as np
    import tensorflow as tf

    from kgan.evaluation import song_labels
    from kgan.export import restore_from_export
    from kgan.inference import Generate
    from kgan.preprocess import find_sources, load_sources
    from kgan.spectrogram import spectral_convergence

    generator, config, chord_net, _ = restore_from_export(export)
    pipeline = Generate(generator, config, chord_net=chord_net)
    names = list(config.model.style_names)
    labels = song_labels(os.path.dirname(folders[0]), [os.path.basename(f) for f in folders])
    scores = {name: [] for name in settings}
    for folder in folders:
        vocal = load_sources(find_sources(folder), config.audio.sample_rate)[0]
        vocal = vocal[: int(seconds * config.audio.sample_rate)]
        label = labels.get(os.path.basename(folder))
        style = names.index(label) if label in names else 0
        styles = tf.constant([style], tf.int32) if pipeline.styled else None
        given = spec.from_model(pipeline.spectrogram(tf.constant(vocal[None], tf.float32), styles))
        for name, setting in settings.items():
            heard = _heard(spec, given, len(vocal), setting)
            scores[name].append(float(spectral_convergence(given, heard)[0]))
    print(f"\nOn {export}'s generated magnitudes (each song in its own style)\n")
    print("| Griffin-Lim | consistency |\n|---|---|")
    for name, values in scores.items():
        v = np.array(values)
        ci = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0
        print(f"| {name} | {v.mean():.4f} ± {ci:.4f} |")


def _speed(spec, audio, rate: int, settings: dict, lengths: list[float], calls: int = 7) -> None:
    """Median seconds of each setting on each length of ``audio``, the settings called in turn."""
    import time

    import numpy as np
    import tensorflow as tf

    from benchmarks._common import machine_line

    tf.get_logger().setLevel("ERROR")  # one function per setting and length: the retracing notes are expected
    print(f"\n{machine_line()}\n\n| Griffin-Lim | " + " | ".join(f"{s:g} s (ms)" for s in lengths) + " |\n"
          + "|---" * (len(lengths) + 1) + "|")
    times = {name: [] for name in settings}
    for seconds in lengths:
        length = int(seconds * rate)
        magnitude = spec.from_model(spec.to_model(tf.constant(np.resize(audio, length)[None])))
        runs = {name: tf.function(lambda m, n=n, i=i, a=a: spec.griffin_lim_in_segments(
                    m, length, n_iter=n, initial=i, algorithm=a)) for name, (n, i, a) in settings.items()}
        taken = {name: [] for name in settings}
        for _ in range(calls + 1):  # the first round traces and warms up
            for name, run in runs.items():
                start = time.perf_counter()
                run(magnitude).numpy()
                taken[name].append(time.perf_counter() - start)
        for name in settings:
            times[name].append(1000 * float(np.median(taken[name][1:])))
    for name, row in times.items():
        print(f"| {name} | " + " | ".join(f"{t:.0f}" for t in row) + " |")


if __name__ == "__main__":
    main()
