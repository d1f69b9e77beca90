"""How much the generated accompaniments' loudness moves, against the true ones', per style.

    python experiments/dynamics.py EXPORT CORPUS OUT_DIR [--per-style 8]

Generates the first 30 s of CORPUS' val songs (up to ``--per-style`` a style, each in its own style)
with EXPORT's own pipeline before its level calibration (``kgan.export.restore_from_export``; the
normalised magnitudes ``Generate.spectrogram`` makes), and compares them with the true accompaniments'
normalised spectrograms: percentiles of the bins' values, of each frame's mean (its loudness on the
normalised scale, 45 dB a unit at the default STFT) and each song's mean. OUT_DIR/dynamics.json holds
them, with the frames' 5th-95th percentile span in dB per style.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PERCENTILES = [1, 5, 10, 25, 50, 75, 90, 95, 99]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export")
    parser.add_argument("corpus")
    parser.add_argument("out")
    parser.add_argument("--per-style", type=int, default=8)
    args = parser.parse_args(argv)
    import tensorflow as tf

    from kgan.evaluation import load_songs, song_labels
    from kgan.export import restore_from_export
    from kgan.inference import Generate

    generator, config, chord_net, _ = restore_from_export(args.export)
    pipeline = Generate(generator, config, 16, chord_net=chord_net)
    db_per_unit = (config.stft.db_ceiling - config.stft.db_floor) / 2

    @tf.function(input_signature=[tf.TensorSpec([1, None], tf.float32), tf.TensorSpec([], tf.int32)])
    def generated(vocal, style):
        return pipeline.spectrogram(vocal, tf.reshape(style, [1]) if pipeline.styled else None)

    songs = list(load_songs(args.corpus, config.audio.sample_rate, split="val", max_seconds=30.0))
    labels = song_labels(args.corpus, [name for name, _, _ in songs])
    result = {"db_per_unit": db_per_unit, "percentiles": PERCENTILES, "styles": {}}
    for style_id, style in enumerate(config.model.style_names):
        chosen = [s for s in songs if labels.get(s[0]) == style][: args.per_style]
        if not chosen:
            continue
        gen, true = [], []
        for _, vocal, accompaniment in chosen:
            g = generated(tf.constant(vocal[None], tf.float32), tf.constant(style_id)).numpy()[0]
            t = pipeline.spec.to_model(tf.constant(accompaniment[None], tf.float32)).numpy()[0]
            n = min(len(g), len(t))
            gen.append(g[:n])
            true.append(t[:n])
        row = {"songs": len(chosen)}
        for key, arrays in (("generated", gen), ("true", true)):
            frames = np.concatenate([a.mean(1) for a in arrays])
            p = np.percentile(frames, PERCENTILES)
            row[key] = {"bins": np.percentile(np.concatenate(arrays), PERCENTILES).round(3).tolist(),
                        "frames": p.round(3).tolist(), "song_means": [round(float(a.mean()), 3) for a in arrays],
                        "frame_span_db": round(float((p[7] - p[1]) * db_per_unit), 1)}
        result["styles"][style] = row
        print(f"{style}: frames' 5th-95th percentile span {row['generated']['frame_span_db']} dB generated, "
              f"{row['true']['frame_span_db']} dB true", flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "dynamics.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
