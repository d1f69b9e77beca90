"""How much the generated accompaniments' loudness moves, against the true ones', per style.

    python experiments/dynamics.py EXPORT CORPUS OUT_DIR [--per-style 8] [--expand 0.5,1.5,2]

Generates the first 30 s of CORPUS' val songs (up to ``--per-style`` a style, each in its own style)
with EXPORT's own pipeline before its level calibration (``kgan.export.restore_from_export``; the
normalised magnitudes ``Generate.spectrogram`` makes), and compares them with the true accompaniments'
normalised spectrograms: percentiles of the bins' values, of each frame's mean (its loudness on the
normalised scale, 45 dB a unit at the default STFT) and each song's mean. OUT_DIR/dynamics.json holds
them, with the frames' 5th-95th percentile span in dB per style.

``--expand``: each ratio also scales every generated frame's level about the song's median frame level
(``expanded``, a downward and upward expander: ratio 2 doubles each frame's distance from the median in dB,
0.5 halves it; the level smoothed over 3 frames), and each song's own frame span (within the song, median
over songs) and log-spectral distance to the true accompaniment (dB) are reported for every ratio, 1 being
the output as generated.
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
    parser.add_argument("--expand", default="", help="Level expansion ratios to score (e.g. 0.5,1.5,2).")
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
        if args.expand:
            row["expanded"] = _expansions(gen, true, [1.0] + [float(r) for r in args.expand.split(",")],
                                          db_per_unit)
        result["styles"][style] = row
        print(f"{style}: frames' 5th-95th percentile span {row['generated']['frame_span_db']} dB generated, "
              f"{row['true']['frame_span_db']} dB true", flush=True)
        for ratio, scores in row.get("expanded", {}).items():
            print(f"  ratio {ratio}: span within a song {scores['song_span_db']} dB (true "
                  f"{scores['true_song_span_db']}), LSD {scores['lsd_db']} dB", flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "dynamics.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)


def expand(normalised: np.ndarray, ratio: float, smooth: int = 3) -> np.ndarray:
    """A song's normalised ``[T, K]`` with each frame's level moved ``ratio`` times as far from the median."""
    level = normalised.mean(axis=1)
    level = np.convolve(np.pad(level, smooth // 2, mode="edge"), np.ones(smooth) / smooth, "valid")
    return np.clip(normalised + (ratio - 1.0) * (level - np.median(level))[:, None], -1.0, 1.0)


def _expansions(gen: list, true: list, ratios: list, db_per_unit: float) -> dict:
    def span(a):
        m = a.mean(axis=1)
        return float(np.percentile(m, 95) - np.percentile(m, 5)) * db_per_unit

    out = {}
    for ratio in ratios:
        shaped = [expand(g, ratio) for g in gen]
        lsd = [float(np.mean(np.sqrt(np.mean((db_per_unit * (e - t)) ** 2, axis=1)))) for e, t in zip(shaped, true)]
        out[f"{ratio:g}"] = {"song_span_db": round(float(np.median([span(e) for e in shaped])), 1),
                             "true_song_span_db": round(float(np.median([span(t) for t in true])), 1),
                             "lsd_db": round(float(np.mean(lsd)), 2)}
    return out


if __name__ == "__main__":
    main()
