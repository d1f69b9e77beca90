"""Style guidance: push a style-conditioned generator's output further along what its style changes in it.

    python experiments/style_guidance.py EXPORT TEST_DIR [TEST_DIR ...] --weights 0,1,2 \\
        [--limit 30] [-o OUT.json]

The shipped generator was trained with style dropout, so it also knows the unconditioned style
``any``. Each window is generated in the asked-for style s and in ``any``, and the output is moved past
the first by w times their difference, as classifier-free guidance does (Ho & Salimans 2022):

    out = G(vocal, s) + w * (G(vocal, s) - G(vocal, any))

on the normalised [-1, 1] scale, clipped to it. w = 0 is the export as it ships. Every song is generated
in every style (as ``kgan evaluate --style-check`` does), with the export's Griffin-Lim and level gains, at
the model's rate (no high band), and scored with ``kgan.evaluation.style_check`` per w: the share of songs
whose output is nearest (mean MFCC, level-normalised) the asked-for style's true accompaniments, and chord
motion per style. Each song in its own style is also scored against its true accompaniment (chord motion,
chroma fit, log-spectral distance, level error), so what the push costs is visible.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def guided_pipeline(generator, config, chord_net, meta):
    """A ``Generate`` with ``pipe.guided(vocal, style, weights) -> {w: waveform}`` (one generation per style)."""
    import tensorflow as tf

    from kgan.inference import Generate
    from kgan.levels import style_gains_db

    gains = style_gains_db(meta.get("level_calibration"), config.model.style_names)

    class Guided(Generate):
        def guided(self, vocal, style, weights):
            vocal = tf.constant(vocal[None], tf.float32)
            styled = self.spectrogram(vocal, tf.constant([style], tf.int32))
            free = self.spectrogram(vocal, tf.constant([0], tf.int32))  # "any"
            length, ids = tf.shape(vocal)[1], tf.constant([style], tf.int32)
            return {w: self.waveform(tf.clip_by_value(styled + w * (styled - free), -1.0, 1.0), length, ids)[0]
                    .numpy() for w in weights}

    return Guided(generator, config, chord_net=chord_net, griffin_lim_iters=meta.get("griffin_lim_iters", 16),
                  griffin_lim_init=meta.get("griffin_lim_init", "integrated"),
                  griffin_lim_algorithm=meta.get("griffin_lim_algorithm", "fast"), level_gains_db=gains)


def main(argv=None) -> None:
    from plan_guidance import guidance_parser, guided_setup, test_songs

    args = guidance_parser(__doc__, "0,1,2").parse_args(argv)
    pipe, names, rate, weights, measures = guided_setup(args, guided_pipeline)
    from kgan.evaluation import mean_ci, style_check, style_table

    results = {}
    for test in args.tests:
        songs, labels = test_songs(test, rate, args.limit)
        outputs = {}  # (song, style) -> {w: waveform}
        for song, vocal, _ in songs:
            for style in names[1:]:
                outputs[song, style] = pipe.guided(vocal, names.index(style), weights)
            print(os.path.basename(test), song, flush=True)
        set_name = os.path.basename(os.path.normpath(test))
        results[set_name] = {}
        for w in weights:
            by_vocal = {id(vocal): song for song, vocal, _ in songs}

            def generate(vocal, _rate, style, w=w):
                return outputs[by_vocal[id(vocal)], style][w]

            check = style_check(generate, songs, labels, names[1:], rate, progress=False)
            own = {m: [] for m in measures}
            for song, _, accompaniment in songs:
                if labels.get(song) in names[1:]:
                    out = outputs[song, labels[song]][w]
                    for m, fn in measures.items():
                        own[m].append(fn(out[: len(accompaniment)], accompaniment))
            results[set_name][str(w)] = {"style_check": check, "own_style": {m: mean_ci(v) for m, v in own.items()}}
            print(f"\n## {set_name}, w = {w}\n\n{style_table(check)}\n", flush=True)
            print({m: [round(x, 3) for x in v] for m, v in results[set_name][str(w)]["own_style"].items()},
                  flush=True)
        if args.out:  # after every set, so a stopped run keeps what it finished
            from kgan.io_utils import atomic_write_text

            atomic_write_text(args.out, json.dumps({"export": args.export, "weights": weights, "results": results},
                                                   indent=2) + "\n")


if __name__ == "__main__":
    main()
