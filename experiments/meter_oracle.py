"""Does the chord network lack the meter? ChordNet told the true beat grid, or made to find it.

    python experiments/meter_oracle.py OUT_DIR --corpus CORPUS --cache DIR [--steps 2000] [--variant NAME ...]
    python experiments/meter_oracle.py OUT_DIR --corpus CORPUS --cache DIR --search
    python experiments/meter_oracle.py OUT_DIR --corpus CORPUS --cache DIR --plans NAME=DIR,... --base BASE_DIR

The folk harmoniser of ``kgan corpus`` picks a chord per harmonic segment (a half bar or a bar from the
first downbeat) so that the note on the segment's first beat is a chord tone; the chorales change
chord per beat. ``ChordNet`` hears only the tracked melody and stays at about 0.42 of the val frames
whatever its width, depth or note-start input (``docs/chords/capacity.json``). This trains it, with
everything else the same (``kgan.chords.train_chord_net``'s crops, keys, rate schedule and seed), in
these variants:

* ``base``: the melody alone (the control);
* ``grid``: the melody plus the song's true grid, four transposition-invariant channels: the cosine
  and sine of the phase within the beat and within the harmonic segment (from ``song.json``'s
  tempo, meter and pickup; a chorale's segment is its beat). An upper bound on what the meter is worth;
* ``beat``: the true beat phase only;
* ``estimated``: the grid ``kgan.chords.MelodyBeats`` estimates from the melody (``estimated_grid`` is
  its numpy twin): the beat and the phases at 2, 3 and 4 beats, from note starts;
* ``accents``: the same, the levels above the beat phased by note-length accents;
* ``aux``: the melody and note starts only, with a second head trained to predict the true grid
  (mean squared error, weight 1): the network must find the grid itself.

It writes OUT_DIR/meter_oracle.json: val frame accuracy overall and per source (chorales, folk), and
OUT_DIR/VARIANT.weights.h5. ``--search`` runs a trained ``grid`` network under every (segment length,
first beat) hypothesis on the estimated beat (OUT_DIR/meter_search.json); ``--plans`` plays the ``base``
and ``grid`` networks' plans on test sets (OUT_DIR/meter_plans.json), and with ``--robustness CHORDS_DIR``
those of a ``kgan chords train --grid`` network told grids a user might get wrong
(OUT_DIR/meter_robustness.json). ``--cache`` is a
``kgan chords train`` folder whose ``features-{train,val}-score.npz`` were computed from CORPUS (the
songs in ``split_names`` order).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GRID = 4  # cos/sin of the beat phase, cos/sin of the segment phase
FPS = 22050 / 256  # frames a second at the default STFT
LEVELS = (1, 2, 3, 4)  # the estimated grid's periods, in beats


def onset_envelope(features: np.ndarray) -> np.ndarray:
    """Melody features ``[T, 14]`` -> ``[T]``: pitch-class change plus level rise, smoothed (σ 2 frames)."""
    f = features.astype(np.float32)
    before = np.concatenate([f[:1], f[:-1]])
    o = 0.5 * np.abs(f[:, :12] - before[:, :12]).sum(-1) + np.maximum(f[:, 12] - before[:, 12], 0)
    k = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
    return np.convolve(o, k / k.sum(), "same")


def beat_period(o: np.ndarray, centre: float = 0.5, sigma: float = 1.0) -> float:
    """The beat period in frames: the autocorrelation peak of the onset envelope (its 2x and 3x lags
    added at 0.5 and 0.3) under a log-normal tempo prior around ``centre`` s, 0.25-2 s."""
    o = o - o.mean()
    n = len(o)
    r = np.fft.irfft(np.abs(np.fft.rfft(o, 2 * n)) ** 2)[:n]
    r /= r[0] + 1e-9
    lags = np.arange(n)
    s = r + 0.5 * r[np.minimum(2 * lags, n - 1)] + 0.3 * r[np.minimum(3 * lags, n - 1)]
    sec = lags / FPS
    s = s * np.exp(-0.5 * (np.log2(np.maximum(sec, 1e-3) / centre) / sigma) ** 2)
    s = np.where((sec >= 0.25) & (sec <= 2.0), s, -np.inf)
    best = int(np.argmax(s))
    if 0 < best < n - 1 and np.isfinite(s[best - 1]) and np.isfinite(s[best + 1]):
        y0, y1, y2 = s[best - 1], s[best], s[best + 1]
        return best + float(np.clip(0.5 * (y0 - y2) / (y0 - 2 * y1 + y2 - 1e-12), -0.5, 0.5))
    return float(max(best, 1))


def accent_envelope(features: np.ndarray, power: float = 2.0) -> np.ndarray:
    """``[T]``: each note start weighted by its note's length in seconds to ``power`` (long notes fall on
    strong beats), smoothed like ``onset_envelope``. A note starts where the voiced pitch class changes or
    the level rises by more than 0.08."""
    f = features.astype(np.float32)
    voiced = f[:, 13] > 0
    pitch = np.where(voiced, f[:, :12].argmax(-1), -1)
    rise = np.maximum(np.diff(f[:, 12], prepend=f[0, 12]), 0)
    starts = np.flatnonzero(((pitch != np.roll(pitch, 1)) | (rise > 0.08)) & voiced)
    e = np.zeros(len(f))
    e[starts] = (np.diff(np.append(starts, len(f))) / FPS) ** power
    k = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
    return np.convolve(e, k / k.sum(), "same")


def estimated_grid(features: np.ndarray, accents: bool = False) -> np.ndarray:
    """float32 ``[T, 8]``: cos/sin of the phase at 1, 2, 3 and 4 estimated beat periods, each phase
    taken from the onset envelope's Fourier component at that period (0 on its strongest onsets); with
    ``accents``, the levels above the beat take theirs from ``accent_envelope``."""
    o = onset_envelope(features)
    period = beat_period(o)
    accent = accent_envelope(features) if accents else o
    t = np.arange(len(o))
    out = []
    for m in LEVELS:
        w = 2 * np.pi * t / (m * period)
        phase = w + np.angle(np.sum((o if m == 1 else accent) * np.exp(-1j * w)))
        out += [np.cos(phase), np.sin(phase)]
    return np.stack(out, -1).astype(np.float32)


def song_grid(info: dict, frames: int, config) -> np.ndarray:
    """float32 ``[frames, 4]``: the phase of each frame's centre within its beat and its harmonic segment."""
    from kgan.harmony import segment_length

    s = config.stft
    centre = (np.arange(frames) * s.hop_length + s.hop_length - s.n_fft / 2) / config.audio.sample_rate
    quarters = np.maximum(centre, 0.0) * info["bpm"] / 60.0
    if "meter" in info:
        num, den = (int(v) for v in info["meter"].split("/"))
        beat = 1.5 if num % 3 == 0 and num > 3 and den == 8 else 4.0 / den
        segment, pickup = segment_length(num, den), float(info.get("pickup", 0.0))
    else:  # a chorale: a chord per quarter-note beat
        beat = segment = 1.0
        pickup = 0.0
    beat_phase = 2 * np.pi * quarters / beat
    segment_phase = 2 * np.pi * (quarters - pickup) / segment
    return np.stack([np.cos(beat_phase), np.sin(beat_phase), np.cos(segment_phase), np.sin(segment_phase)],
                    -1).astype(np.float32)


def split_grids(corpus: str, split: str, arrays: dict, config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The true and estimated grids of a split's songs end to end, and each song's source (0 chorale, 1 folk)."""
    from kgan.io_utils import split_names

    lengths = arrays["lengths"]
    names = split_names(corpus, split)
    assert len(names) == len(lengths), (len(names), len(lengths))
    grids, estimates, accented, sources = [], [], [], []
    start = 0
    for name, n in zip(names, lengths):
        with open(os.path.join(corpus, name, "song.json"), encoding="utf-8") as f:
            info = json.load(f)
        grids.append(song_grid(info, int(n), config))
        estimates.append(estimated_grid(arrays["features"][start:start + n]))
        accented.append(estimated_grid(arrays["features"][start:start + n], accents=True))
        sources.append(int(info.get("source") == "folk"))
        start += n
    return np.concatenate(grids), np.concatenate(estimates), np.concatenate(accented), np.array(sources)


def build(variant: str, grid_channels: int, channels: int = 48, kernel: int = 3, dilations=(1, 2, 4, 8, 16, 32),
          pool: int = 8):
    """ChordNet's layers with the grid as input (``grid``) or as a second output (``aux``)."""
    import keras

    from kgan.chords import (FEATURES, Branches, ChordLogits, CropTo, MelodyHistogram, MelodyOnsets, Rotations)

    melody = keras.Input((None, FEATURES), name="melody")
    grid = keras.Input((None, grid_channels), name="grid")
    branches = Rotations()(melody)
    pooled = keras.layers.AveragePooling1D(pool, padding="same")(branches)
    if variant in ("grid", "beat", "estimated", "accents"):
        pooled = keras.layers.Concatenate()(
            [pooled, Branches()(keras.layers.AveragePooling1D(pool, padding="same")(grid))])
    if variant == "aux":
        starts = keras.layers.MaxPooling1D(pool, padding="same")(MelodyOnsets()(melody))
        pooled = keras.layers.Concatenate()([pooled, Branches()(starts)])
    x = keras.layers.Conv1D(channels, 1)(pooled)
    x = keras.layers.Add()([x, keras.layers.Dense(channels)(MelodyHistogram()(branches))])
    for d in dilations:
        h = keras.layers.Conv1D(channels, kernel, dilation_rate=d, padding="same")(keras.layers.Activation("relu")(x))
        x = keras.layers.Add()([x, h])
    x = keras.layers.Activation("relu")(x)
    logits = ChordLogits()(keras.layers.Conv1D(3, 1)(x))
    logits = CropTo()([keras.layers.UpSampling1D(pool)(logits), melody])
    outputs = [logits]
    if variant == "aux":  # the branches' mean: the same whatever the key
        shared = keras.layers.Lambda(lambda t: keras.ops.mean(keras.ops.reshape(
            t, (12, -1, keras.ops.shape(t)[1], channels)), axis=0))(x)
        phase = keras.layers.Conv1D(GRID, 1)(shared)
        outputs.append(CropTo()([keras.layers.UpSampling1D(pool)(phase), melody]))
    return keras.Model([melody, grid], outputs)


def run(variant: str, train: dict, val: dict, steps: int, out_dir: str | None = None, seed: int = 0, batch: int = 16,
        frames: int = 1024,
        learning_rate: float = 1e-3, decay_step: int = 2000) -> dict:
    import keras
    import tensorflow as tf
    from tqdm import tqdm

    from kgan.chords import NO_CHORD, _crops, transpose

    keras.utils.set_random_seed(seed)
    key = {"grid": "grid", "beat": "beat", "estimated": "estimate", "accents": "accented"}.get(variant, "grid")
    net = build(variant, train[key].shape[-1])
    optimizer = keras.optimizers.Adam(learning_rate)
    starts = np.concatenate([[0], np.cumsum(train["lengths"])[:-1]])

    @tf.function(reduce_retracing=True)
    def step(x, g, target, y, k, rate):
        x, y = transpose(x, y, k)
        optimizer.learning_rate.assign(rate)
        with tf.GradientTape() as tape:
            out = net([x, g], training=True)
            out = out if isinstance(out, (list, tuple)) else [out]
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, out[0]))
            aux = tf.reduce_mean(tf.square(out[1] - target)) if len(out) > 1 else tf.constant(0.0)
            total = loss + aux
        optimizer.apply_gradients(zip(tape.gradient(total, net.trainable_variables), net.trainable_variables))
        return loss, aux

    losses, began = [], time.time()
    for i in tqdm(range(steps), desc=variant, unit="step", mininterval=10):
        rng = np.random.default_rng([seed, i])
        x, y, k, _ = _crops(train, batch, frames, rng)
        # the same crops as _crops drew: redraw its offsets from an identical generator
        r2 = np.random.default_rng([seed, i])
        usable = np.flatnonzero(train["lengths"] >= frames)
        songs = r2.choice(usable, batch)
        offsets = starts[songs] + (r2.random(batch) * (train["lengths"][songs] - frames + 1)).astype(int)
        idx = offsets[:, None] + np.arange(frames)[None, :]
        g, target = train[key][idx], train["grid"][idx]
        rate = learning_rate if i < decay_step else learning_rate / 3
        losses.append([float(v) for v in step(x, g, target, y, k, tf.constant(rate, tf.float32))])
    hits, total, by_source = 0, 0, {0: [0, 0], 1: [0, 0]}
    start = 0
    for n, source in zip(val["lengths"], val["source"]):
        out = net([val["features"][None, start:start + n].astype(np.float32), val[key][None, start:start + n]],
                  training=False)
        logits = (out[0] if isinstance(out, (list, tuple)) else out).numpy()[0]
        y = val["labels"][start:start + n]
        chord = y != NO_CHORD
        h, t = int((logits.argmax(-1)[chord] == y[chord]).sum()), int(chord.sum())
        hits, total = hits + h, total + t
        by_source[int(source)][0] += h
        by_source[int(source)][1] += t
        start += n
    if out_dir:
        net.save_weights(os.path.join(out_dir, f"{variant}.weights.h5"))
    last = np.mean(losses[-200:], axis=0)
    return {"variant": variant, "steps": steps, "train_loss": round(float(last[0]), 4),
            "aux_loss": round(float(last[1]), 4), "val_accuracy": round(hits / total, 4),
            "val_accuracy_chorales": round(by_source[0][0] / max(by_source[0][1], 1), 4),
            "val_accuracy_folk": round(by_source[1][0] / max(by_source[1][1], 1), 4),
            "seconds": round(time.time() - began, 1)}


HYPOTHESES = [(m, phi) for m in LEVELS for phi in range(m)]  # (segment length in beats, its first beat)


def hypothesis_grids(features: np.ndarray) -> np.ndarray:
    """float32 ``[H, T, 4]``: the grid under each of ``HYPOTHESES``, on the estimated beat."""
    o = onset_envelope(features)
    period = beat_period(o)
    t = np.arange(len(o))
    w = 2 * np.pi * t / period
    beat = w + np.angle(np.sum(o * np.exp(-1j * w)))
    out = []
    for m, phi in HYPOTHESES:
        segment = (beat - 2 * np.pi * phi) / m
        out.append(np.stack([np.cos(beat), np.sin(beat), np.cos(segment), np.sin(segment)], -1))
    return np.array(out, np.float32)


def search(out_dir: str, val: dict) -> dict:
    """The ``grid`` network on the estimated beat, each song under every (segment length, first beat)
    hypothesis: accuracy of the most confident hypothesis (the highest mean log-probability of the
    frames' argmax chord), of the best one (an upper bound), and of the true grid."""
    from kgan.chords import NO_CHORD

    net = build("grid", GRID)
    net.load_weights(os.path.join(out_dir, "grid.weights.h5"))
    counts = {k: [0, 0] for k in ("true grid", "most confident", "best hypothesis", "segment = beat")}
    chosen = []
    start = 0
    for n in val["lengths"]:
        x = val["features"][start:start + n].astype(np.float32)
        y = val["labels"][start:start + n]
        grids = hypothesis_grids(x)
        logits = np.concatenate([net([x[None], val["grid"][None, start:start + n]], training=False).numpy(),
                                 net([np.repeat(x[None], len(grids), 0), grids], training=False).numpy()])
        start += n
        logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(
            -1, keepdims=True)
        voiced = x[:, 13] > 0
        confidence = logp.max(-1)[1:, voiced].mean(-1) if voiced.any() else logp.max(-1)[1:].mean(-1)
        chord = y != NO_CHORD
        hits = (logits.argmax(-1)[:, chord] == y[chord]).sum(-1)
        pick = int(np.argmax(confidence))
        chosen.append(HYPOTHESES[pick])
        for key, h in (("true grid", hits[0]), ("most confident", hits[1 + pick]), ("best hypothesis", hits[1:].max()),
                       ("segment = beat", hits[1])):
            counts[key][0] += int(h)
            counts[key][1] += int(chord.sum())
    return {"accuracy": {k: round(h / max(t, 1), 4) for k, (h, t) in counts.items()},
            "chosen": {f"{m}/{phi}": chosen.count((m, phi)) for m, phi in HYPOTHESES}}


def plans(out_dir: str, tests: dict, base_dir: str) -> dict:
    """Plans played as sustained triads and scored like a model (as ``experiments/chord_plan.py``): the
    ``base`` network (``base_dir``) and the ``grid`` one told each test song's true grid (its ``song.json``)."""
    from kgan.chords import NO_CHORD, chord_notes, song_arrays
    from kgan.config import Config
    from kgan.evaluation import _chroma_tone, chroma_fit, chroma_motion, load_songs, mean_ci

    config = Config()
    rate = config.audio.sample_rate
    nets = {"base": build("base", GRID), "grid": build("grid", GRID)}
    nets["base"].load_weights(os.path.join(base_dir, "base.weights.h5"))
    nets["grid"].load_weights(os.path.join(out_dir, "grid.weights.h5"))
    results = {}
    for name, folder in tests.items():
        rows = {k: [] for k in nets}
        for song, vocal, accompaniment in load_songs(folder, rate, split="test"):
            with open(os.path.join(folder, song, "song.json"), encoding="utf-8") as f:
                info = json.load(f)
            features, _ = song_arrays(vocal, accompaniment, config)
            grid = song_grid(info, len(features), config)[None]
            voiced = features[:, :12].sum(-1) > 1e-3
            for key, net in nets.items():
                guess = net([features[None].astype(np.float32), grid], training=False).numpy()[0].argmax(-1)
                notes = chord_notes(np.where(voiced | (guess != NO_CHORD), guess, NO_CHORD)).numpy().T
                tone = _chroma_tone(notes, len(vocal), rate)
                rows[key].append((chroma_motion(tone, accompaniment, rate), chroma_fit(tone, accompaniment, rate)))
        results[name] = {k: {"chroma_motion": mean_ci([r[0] for r in v]), "chroma_fit": mean_ci([r[1] for r in v]),
                             "songs": len(v)} for k, v in rows.items()}
        print(name, json.dumps(results[name]), flush=True)
    return results


ERRORS = {  # how a user's grid may be off: (tempo factor, downbeat shift in beats, segment factor)
    "true grid": (1.0, 0.0, 1.0), "tempo 1 % fast": (1 / 1.01, 0.0, 1.0), "tempo 3 % fast": (1 / 1.03, 0.0, 1.0),
    "tempo 3 % slow": (1.03, 0.0, 1.0), "downbeat a beat late": (1.0, 1.0, 1.0),
    "downbeat half a beat late": (1.0, 0.5, 1.0), "chord segment twice as long": (1.0, 0.0, 2.0),
    "unknown": None,
}


def robustness(chords_dir: str, tests: dict) -> dict:
    """A ``kgan chords train --grid`` network's plans (played as triads, as ``plans``) told each test song's
    grid with the errors of ``ERRORS``, as told and fitted to the melody (``kgan.chords.refine_meter``):
    chord motion and fit per test set."""
    from kgan.chords import (NO_CHORD, chord_logits, chord_notes, load_chord_net, meter_grid, refine_meter,
                             song_arrays)
    from kgan.config import Config
    from kgan.evaluation import _chroma_tone, chroma_fit, chroma_motion, load_songs, mean_ci
    from kgan.harmony import song_meter

    config = Config()
    rate = config.audio.sample_rate
    net = load_chord_net(chords_dir, config)
    results = {}
    for name, folder in tests.items():
        rows = {}
        for song, vocal, accompaniment in load_songs(folder, rate, split="test"):
            with open(os.path.join(folder, song, "song.json"), encoding="utf-8") as f:
                beat, segment, downbeat = song_meter(json.load(f))
            features, _ = song_arrays(vocal, accompaniment, config)
            voiced = features[:, :12].sum(-1) > 1e-3
            x = features[None].astype(np.float32)
            for key, error in ERRORS.items():
                grids = {key: None}
                if error is not None:
                    tempo, shift, longer = error
                    meter = np.array([[beat * tempo, segment * tempo * longer, downbeat + shift * beat]], np.float32)
                    grids = {key: meter_grid(meter, len(features), config),
                             f"{key}, refined": meter_grid(refine_meter(x, meter, config), len(features), config)}
                for label, grid in grids.items():
                    guess = chord_logits(net, x, grid).numpy()[0].argmax(-1)
                    notes = chord_notes(np.where(voiced | (guess != NO_CHORD), guess, NO_CHORD)).numpy().T
                    tone = _chroma_tone(notes, len(vocal), rate)
                    rows.setdefault(label, []).append((chroma_motion(tone, accompaniment, rate),
                                                       chroma_fit(tone, accompaniment, rate)))
        results[name] = {k: {"chroma_motion": mean_ci([r[0] for r in v]), "chroma_fit": mean_ci([r[1] for r in v]),
                             "songs": len(v)} for k, v in rows.items()}
        print(name, json.dumps({k: round(v["chroma_motion"][0], 3) for k, v in results[name].items()}), flush=True)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--cache", required=True, help="a kgan chords train folder with the features of CORPUS")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--variant", action="append", choices=("base", "grid", "beat", "estimated", "accents", "aux"))
    parser.add_argument("--search", action="store_true",
                        help="Score the trained grid network on the estimated beat under every meter hypothesis.")
    parser.add_argument("--plans", metavar="NAME=DIR,...",
                        help="Score the base (from --base DIR) and grid networks' plans on these test sets.")
    parser.add_argument("--base", help="The folder of a trained base variant (with --plans).")
    parser.add_argument("--robustness", metavar="CHORDS_DIR",
                        help="With --plans: score this `kgan chords train --grid` network told grids with errors.")
    args = parser.parse_args(argv)
    if args.robustness:
        tests = dict(item.split("=", 1) for item in args.plans.split(","))
        result = robustness(args.robustness, tests)
        with open(os.path.join(args.out, "meter_robustness.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
        return 0
    if args.plans:
        tests = dict(item.split("=", 1) for item in args.plans.split(","))
        result = plans(args.out, tests, args.base)
        with open(os.path.join(args.out, "meter_plans.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
        return 0
    from kgan.config import Config

    config = Config()
    os.makedirs(args.out, exist_ok=True)
    arrays = {}
    for split in ("train", "val"):
        a = dict(np.load(os.path.join(args.cache, f"features-{split}-score.npz")))
        a["grid"], a["estimate"], a["accented"], a["source"] = split_grids(args.corpus, split, a, config)
        a["beat"] = a["grid"][:, :2]
        arrays[split] = a
    if args.search:
        result = search(args.out, arrays["val"])
        print(json.dumps(result))
        with open(os.path.join(args.out, "meter_search.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
        return 0
    path = os.path.join(args.out, "meter_oracle.json")
    results = json.load(open(path, encoding="utf-8")) if os.path.exists(path) else {}
    for variant in args.variant or ("base", "grid", "aux"):
        results[variant] = run(variant, arrays["train"], arrays["val"], args.steps, args.out)
        print(json.dumps(results[variant]))
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
        os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
