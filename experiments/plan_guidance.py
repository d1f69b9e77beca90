"""Plan guidance: push a plan generator's output further along what its chord plan changes in it.

    python experiments/plan_guidance.py EXPORT TEST_DIR [TEST_DIR ...] --weights 0,0.5,1,2 \\
        [--null tonic|none] [--grid] [--limit 30] [-o OUT.json]

A ``model.vocal_input=plan`` generator voices the plan it is told, but only in part: on the seen-voice
test songs the shipped one keeps about 0.12 of the 0.19 chord motion its chord network's plan has when
played as bare triads. So each window is generated twice, once with the plan and once with a *null*
plan that holds no chord changes, and the two are extrapolated, in the spirit of classifier-free
guidance (Ho & Salimans 2022):

    out = G(vocal, plan) + w * (G(vocal, plan) - G(vocal, null))

on the normalised [-1, 1] scale, clipped to it, with each frame's mean over bins taken out of the
difference first (so the push moves the spectrum's shape, not its level). ``--null tonic`` replaces
every chord of the plan by the song's most frequent one (rests stay rests, so the two differ in harmony only); ``none`` tells no chord
at all. w = 0 is the export as it ships. Each song is generated whole, in its own style (its
``song.json`` label; ``any`` without one), with the export's level gains and Griffin-Lim, at the
model's rate (no high band), and scored against its true accompaniment: chord motion, chroma fit,
log-spectral distance and the level error (``kgan.evaluation``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def guided_pipeline(generator, config, chord_net, meta):
    """A ``Generate`` that makes guided accompaniments: ``pipe.guided(vocal, style, meter, weights, null)``."""
    import tensorflow as tf

    from kgan.chords import NO_CHORD
    from kgan.inference import Generate
    from kgan.levels import style_gains_db

    gains = style_gains_db(meta.get("level_calibration"), config.model.style_names)

    class Guided(Generate):
        told = None  # the plan plane [B, T, K] spectrogram() is told, set per call

        def plan(self, normalised, meter=None):
            return self.told

        def guided(self, vocal, style, meter, weights, null):
            vocal = tf.constant(vocal[None], tf.float32)
            meter = None if meter is None else tf.constant([meter], tf.float32)
            logits = self.plan_logits(self.spec.to_model(vocal), meter)
            labels = tf.argmax(logits, axis=-1, output_type=tf.int32)  # (1, T)
            ids = labels.numpy()[0]
            chords = ids[ids != NO_CHORD]
            tonic = np.bincount(chords, minlength=NO_CHORD + 1).argmax() if chords.size else NO_CHORD
            nulled = np.where(ids == NO_CHORD, NO_CHORD, tonic) if null == "tonic" else np.full_like(ids, NO_CHORD)
            style = tf.constant([style], tf.int32)
            self.told = self.render_plan(labels)
            planned = self.spectrogram(vocal, style)
            self.told = self.render_plan(tf.constant(nulled[None], tf.int32))
            push = planned - self.spectrogram(vocal, style)
            # each frame's mean change (its level) left out: only the spectrum's shape moves
            push -= tf.reduce_mean(push, axis=-1, keepdims=True)
            return {w: self.waveform(tf.clip_by_value(planned + w * push, -1.0, 1.0), tf.shape(vocal)[1],
                                     style)[0].numpy() for w in weights}

    return Guided(generator, config, chord_net=chord_net, griffin_lim_iters=meta.get("griffin_lim_iters", 16),
                  griffin_lim_init=meta.get("griffin_lim_init", "integrated"), level_gains_db=gains)


def guidance_parser(doc: str, weights: str) -> argparse.ArgumentParser:
    """The arguments both guidance experiments take: EXPORT, TEST_DIR..., --weights, --limit, -o."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("export")
    parser.add_argument("tests", nargs="+")
    parser.add_argument("--weights", default=weights, help="Guidance weights w, comma-separated (0: no guidance).")
    parser.add_argument("--limit", type=int, default=30, help="Score the first N songs of each test set.")
    parser.add_argument("-o", "--out", help="Write the results here as JSON.")
    return parser


def guided_setup(args, make_pipeline):
    """``(pipe, style names, rate, weights, measures)`` for parsed ``guidance_parser`` arguments: the pipeline is
    ``make_pipeline(generator, config, chord_net, meta)`` on the export's own weights, with the served kernels
    (``kgan.use_served_kernels``); ``measures`` is ``song_measures``."""
    from kgan import use_served_kernels

    use_served_kernels()
    from kgan.export import restore_from_export

    generator, config, chord_net, meta = restore_from_export(args.export)
    rate = config.audio.sample_rate
    return (make_pipeline(generator, config, chord_net, meta), list(config.model.style_names), rate,
            [float(w) for w in args.weights.split(",")], song_measures(rate))


def song_measures(rate: int) -> dict:
    """Name -> f(generated, true accompaniment): chord motion, chroma fit, log-spectral distance, level error."""
    from kgan.evaluation import chroma_fit, chroma_motion, level_error_db, log_spectral_distance

    return {"chroma_motion": lambda g, r: chroma_motion(g, r, rate), "chroma_fit": lambda g, r: chroma_fit(g, r, rate),
            "lsd": log_spectral_distance, "level_error_db": level_error_db}


def test_songs(test: str, rate: int, limit: int | None):
    """(songs, their style labels): the first ``limit`` (None: all) songs of ``test``'s test split (every song
    without one)."""
    from kgan.evaluation import load_songs, song_labels

    split = "test" if os.path.exists(os.path.join(test, "splits.json")) else None
    songs = load_songs(test, rate, split=split)[:limit]
    return songs, song_labels(test, [n for n, _, _ in songs])


def main(argv=None) -> None:
    parser = guidance_parser(__doc__, "0,0.5,1,2")
    parser.add_argument("--null", choices=("tonic", "none"), default="tonic")
    parser.add_argument("--grid", action="store_true", help="Tell the chord network each song's beat grid.")
    args = parser.parse_args(argv)

    pipe, names, rate, weights, measures = guided_setup(args, guided_pipeline)
    from kgan.evaluation import mean_ci
    from kgan.harmony import song_meter
    from kgan.io_utils import song_info

    results = {}
    for test in args.tests:
        songs, labels = test_songs(test, rate, args.limit)
        rows = {w: {m: [] for m in measures} for w in weights}
        for song, vocal, accompaniment in songs:
            style = names.index(labels[song]) if labels.get(song) in names else 0
            meter = song_meter(song_info(os.path.join(test, song))) if args.grid else None
            outs = pipe.guided(vocal, style, meter, weights, args.null)
            for w, out in outs.items():
                for m, fn in measures.items():
                    rows[w][m].append(fn(out, accompaniment))
            print(os.path.basename(test), song, {w: round(rows[w]["chroma_motion"][-1], 3) for w in weights},
                  flush=True)
        results[os.path.basename(os.path.normpath(test))] = {
            str(w): {m: mean_ci(v) for m, v in rows[w].items()} | {"songs": len(songs)} for w in weights}
        print(json.dumps(results[os.path.basename(os.path.normpath(test))], indent=1), flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"export": args.export, "null": args.null, "grid": args.grid, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
