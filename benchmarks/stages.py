"""Where the shipped model's time goes, stage by stage, for one request of a given length.

    python benchmarks/stages.py [--seconds 10] [--model EXPORT]

Times (best of 3, after a warm-up) each stage of ``kgan.inference.Generate`` built with the export's
config (a freshly initialised generator and chord network: speed does not depend on the weights;
in bfloat16 where the export computes so: ``--compute bfloat16``, or the twin of ``--compute both`` on a
CPU with bf16 dot products), on oneDNN's kernels as ``kgan generate`` and ``kgan serve`` run them
(``TF_ENABLE_ONEDNN_OPTS=0`` for TensorFlow's own), and the signature they run end to end:
STFT and normalisation, the chord plan, the generator (in chunks of 8 windows, as exported, and in
one call), the cross-fade, Griffin-Lim and, when the export has one, the high band
(``kgan.high_band``, with the export's gains). RTF = seconds / audio seconds.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from kgan import use_served_kernels  # noqa: E402

use_served_kernels()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--model", default=os.path.join(ROOT, "kgan", "pretrained", "export", "1"))
    args = parser.parse_args()
    from _common import best_of, machine_line, percentile_table

    def best(fn):
        return best_of(fn, 3)

    print(machine_line())
    import numpy as np
    import tensorflow as tf

    from kgan.chords import ChordNet
    from kgan.export import StoredWeights, export_meta, load, signature_for, unknown_inputs
    from kgan.high_band import HighBand
    from kgan.inference import Generate
    from kgan.models import UNetGenerator

    saved, cfg, iterations = load(args.model)
    meta = export_meta(args.model)
    bands = meta.get("high_band")
    planned = cfg.model.vocal_input == "plan"
    # the signature kgan generate and kgan serve run here: a --compute both export's bfloat16 twin where the CPU
    # has bf16 dot products; the stages' generator computes as that one does
    signature = signature_for("serving_default", saved.signatures)
    generator = UNetGenerator.from_kgan_config(cfg)
    if meta.get("compute") == "bfloat16" or signature != "serving_default":
        generator = StoredWeights(generator, meta["weights"], "mixed_bfloat16")
    pipe = Generate(generator, cfg, iterations, chord_net=ChordNet() if planned else None,
                    griffin_lim_init=meta.get("griffin_lim_init", "random"),
                    griffin_lim_algorithm=meta.get("griffin_lim_algorithm", "fast"))
    rate = cfg.audio.sample_rate
    t = np.arange(int(args.seconds * rate)) / rate
    vocal = tf.constant((0.3 * np.sin(2 * np.pi * 440 * t * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))))
                        .astype(np.float32)[None])
    length = vocal.shape[1]
    to_model = tf.function(pipe.spec.to_model)
    normalised = to_model(vocal)
    plan = tf.function(pipe.plan)
    windows = tf.function(pipe.windows)
    w = windows(normalised)
    n = w.shape[1]

    def layout(x):  # (1, N, W, K) -> (N, K, W, 1)
        return tf.transpose(tf.reshape(x, [-1, pipe.frames, pipe.bins]), [0, 2, 1])[..., None]

    model_in = layout(w)
    if planned:
        model_in = tf.concat([model_in, layout(windows(plan(normalised)))], axis=-1)
    style = tf.zeros([n], tf.int32) if pipe.styled else None
    chunked = tf.function(pipe.generate_windows)
    one_call = tf.function(lambda m, s: pipe.generator(m if s is None else [m, s], training=False))
    generated = tf.reshape(tf.transpose(chunked(model_in, style)[..., 0], [0, 2, 1]), [1, n, pipe.frames, pipe.bins])
    frames = pipe.spec.num_frames(length)
    fade = tf.function(lambda g: pipe.spec.from_model(pipe.cross_fade(g, frames)))
    magnitude = fade(generated)
    griffin_lim = tf.function(lambda m: pipe.griffin_lim(m, length))  # as Generate runs it
    if bands:
        audio = griffin_lim(magnitude)
        high_band = tf.function(HighBand(cfg.stft, [bands["gains_db"]["any"]]))
    serve = saved.signatures[signature]
    inputs = {"vocal": vocal, **unknown_inputs(serve)}  # a loaded signature fills in no defaults
    rows = [("STFT + normalise", best(lambda: to_model(vocal).numpy()))]
    if planned:
        rows.append(("chord plan (melody, ChordNet, rendering)", best(lambda: plan(normalised).numpy())))
    rows += [(f"generator, {n} windows in chunks of {pipe.chunk_windows} (as exported)",
              best(lambda: chunked(model_in, style).numpy())),
             (f"generator, {n} windows in one call", best(lambda: one_call(model_in, style).numpy())),
             ("cross-fade + denormalise", best(lambda: fade(generated).numpy())),
             (f"{pipe.griffin_lim_algorithm} Griffin-Lim, {pipe.griffin_lim_iters} iterations (in segments when long)",
              best(lambda: griffin_lim(magnitude).numpy())),
             *([("high band (44.1 kHz out)", best(lambda: high_band(audio).numpy()))] if bands else []),
             ("SavedModel end to end", best(lambda: serve(**inputs)["accompaniment"].numpy()))]
    print(f"\n{args.seconds:g} s vocal at {rate} Hz, {args.model} ({signature})\n")
    print(percentile_table([(name, f"{s:.3f}", f"{s / args.seconds:.4f}") for name, s in rows],
                           ["stage", "seconds", "RTF"]))


if __name__ == "__main__":
    main()
