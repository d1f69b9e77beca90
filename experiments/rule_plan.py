"""The corpus' own folk harmoniser, run on the sung melody with the song's true beat grid: how far can rules go?

    python experiments/rule_plan.py OUT_DIR --tests NAME=DIR[,NAME=DIR...]

The folk songs of ``kgan corpus`` are harmonised by ``kgan.harmony.harmonise``: a chord per half bar
or bar, chosen by duration-weighted chord tones, the note on the segment's downbeat, functional
transitions and a cadence, in the key of the tune. Given the true grid (``song_meter``: the corpus
knows every song's tempo, meter and pickup; a chorale changes chord on the beat), the same rules run
here on what inference has instead of the score: the tracked pitch class of each frame
(``VocalFeatures.melody``, voicing-weighted). Differences from the score version, forced by audio:
the key's last-note bonus takes the last voiced frame; the downbeat note is read from the frames
46-139 ms after the segment starts (a frame's analysis window reaches 46 ms back, so the frames at
the boundary still hear the note before; ``--strong`` sets the span).

Each song's plan is played as sustained triads and scored like ChordNet's plans in
``experiments/chord_plan.py`` (chord motion and chroma fit against the true accompaniment, frame
accuracy against the score's chords), with the oracle (the score's own triads) beside it, and split
into chorales (Bach's harmony: the rules are only a style) and folk songs (the rules made their
accompaniment). OUT_DIR/rule_plan.json and .md hold the table.

With ``--export EXPORT`` (a ``model.vocal_input=plan`` export, e.g. the shipped one) its generator,
rebuilt in memory from the export's weights, also plays each song in the song's own style from each
plan: its chord network's (without and with the song's grid, as ``kgan generate`` and ``--bpm`` do), the
rules', and the score's (the ceiling); its outputs are scored the same way ("generator, ..." rows).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RATE = 22050


def rule_plan(classes: np.ndarray, meter: tuple[float, float, float], centre: np.ndarray,
              strong: tuple[int, int] = (4, 12)) -> np.ndarray:
    """Triad ids ``[T]`` (``kgan.harmony.triad_id``) from the tracked melody ``[T, 12]`` and a beat grid
    (seconds a beat, seconds a chord segment, first downbeat), by ``kgan.harmony.harmonise``'s rules: its key
    estimate, vocabulary and chord choice, with each segment's melody score taken from frames."""
    from kgan.harmony import choose_chords, key_of_histogram, triad_id, vocabulary

    beat, segment, downbeat = meter
    voiced = np.flatnonzero(classes.sum(1) > 0.5)
    tonic, mode = key_of_histogram(classes.sum(0), int(classes[voiced[-1]].argmax()) if voiced.size else 0)
    vocab = vocabulary(tonic, mode)
    tones = np.zeros((len(vocab), 12))
    for j, chord in enumerate(vocab):
        tones[j, list(chord[2])] = 1.0
    index = np.maximum(np.floor((centre - downbeat) / segment).astype(int), 0)  # the pickup joins segment 0
    local = np.zeros((int(index.max()) + 1, len(vocab)))
    duration = (centre[1] - centre[0]) / beat  # a frame, in beats: harmonise counts quarter notes
    for i in range(len(local)):
        frames = np.flatnonzero(index == i)
        inside = classes[frames] @ tones.T  # (f, chords): the frame's voiced weight on chord tones
        outside = classes[frames].sum(1, keepdims=True) - inside
        local[i] += duration * (inside - 0.3 * outside).sum(0)
        head = frames[strong[0]:strong[1]]  # the note on the strong beat
        if head.size:
            on = (classes[head] @ tones.T).mean(0)
            local[i] += 4.0 * on - 6.0 * (classes[head].sum(1).mean() - on)
    last = int(index[voiced[-1]]) if voiced.size else None  # the last segment that holds melody
    ids = np.array([triad_id(vocab[j][2]) for j in choose_chords(local, vocab, tonic, last)])
    return ids[index]


class Player:
    """A plan export's generator, rebuilt from its weights (``kgan.export.restore_from_export``), playing a vocal
    from its chord network's plan (told a grid or not) or from given chord ids per frame."""

    def __init__(self, export_dir: str):
        from kgan.config import resolve_style
        from kgan.export import restore_from_export
        from plan_ceiling import planned_generator

        generator, config, chord_net, meta = restore_from_export(export_dir)
        if config.audio.sample_rate != RATE or chord_net is None:
            raise SystemExit(f"{export_dir}: expected a model.vocal_input=plan export at {RATE} Hz")
        self.resolve = lambda style: resolve_style(config.model.style_names, style) if style else None
        self.model = planned_generator(generator, config, chord_net,
                                       griffin_lim_iters=meta.get("griffin_lim_iters") or 16,
                                       griffin_lim_algorithm=meta.get("griffin_lim_algorithm") or "fast")

    def __call__(self, vocal, style, labels=None, meter=None) -> np.ndarray:
        self.model.labels = labels
        sid = self.resolve(style)
        return self.model(vocal[None], None if sid is None else [sid],
                          None if meter is None else np.array([meter], np.float32))[0].numpy()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--tests", required=True, metavar="NAME=DIR,...")
    parser.add_argument("--strong", default="4,12", help="frames after a segment start that hear its downbeat note")
    parser.add_argument("--export", help="also score this plan export's generator playing each plan")
    args = parser.parse_args(argv)
    from kgan.chords import NO_CHORD, chord_notes, frame_seconds, song_arrays
    from kgan.evaluation import Harmoniser, _chroma_tone, chroma_fit, chroma_motion, load_songs, mean_ci
    from kgan.harmony import song_meter
    from kgan.io_utils import score_chords, song_info

    strong = tuple(int(v) for v in args.strong.split(","))
    config = Harmoniser().config
    player = Player(args.export) if args.export else None
    results = {}
    for item in args.tests.split(","):
        name, folder = item.split("=", 1)
        rows = {}
        for song, vocal, accompaniment in load_songs(folder, RATE, split=None):
            info, track = song_info(os.path.join(folder, song)), score_chords(os.path.join(folder, song))
            meter = song_meter(info)
            if track is None or meter is None:
                continue
            features, labels = song_arrays(vocal, accompaniment, config, track=track)
            centre = frame_seconds(len(features), config).numpy()
            guess = rule_plan(features[:, :12].astype(np.float32), meter, centre, strong)
            chord = labels != NO_CHORD
            source = "chorales" if info.get("source") == "chorales" else "folk"
            for system, ids in (("oracle", labels), ("rules, grid told", guess)):
                tone = _chroma_tone(chord_notes(ids).numpy().T, len(vocal), RATE)
                for group in (source, "all"):
                    rows.setdefault((system, group), []).append(
                        (chroma_motion(tone, accompaniment, RATE), chroma_fit(tone, accompaniment, RATE),
                         float((ids[chord] == labels[chord]).mean()) if chord.any() else 0.0))
            if player is not None:
                plans = {"chord network": (None, None), "chord network, grid told": (None, meter),
                         "rules, grid told": (guess, None), "the score's chords": (labels, None)}
                for system, (ids, grid) in plans.items():
                    out = player(vocal, info.get("style"), ids, grid)
                    for group in (source, "all"):
                        rows.setdefault((f"generator, {system}", group), []).append(
                            (chroma_motion(out, accompaniment, RATE), chroma_fit(out, accompaniment, RATE), None))
        results[name] = {f"{system} | {group}": {
            "songs": len(v), **{m: mean_ci([r[i] for r in v]) if v[0][i] is not None else None
                                for i, m in enumerate(("chroma_motion", "chroma_fit", "accuracy"))}}
            for (system, group), v in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0]))}
        print(name, json.dumps(results[name]), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "rule_plan.json"), "w") as f:
        json.dump(results, f, indent=1)
    lines = ["| test set | plan | songs | chord motion | chroma fit | frame accuracy |", "|---|---|---|---|---|---|"]
    for name, table in results.items():
        for key, r in table.items():
            lines.append(f"| {name} | {key} | {r['songs']} | " + " | ".join(
                f"{r[m][0]:.3f} ± {r[m][1]:.3f}" if r[m] else "" for m in ("chroma_motion", "chroma_fit", "accuracy"))
                + " |")
    with open(os.path.join(args.out, "rule_plan.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
