"""What a plan generator makes of a perfect plan: its chord motion with ChordNet's plan and with the true chords.

    python experiments/plan_ceiling.py RUN_DIR TEST_DIR --chords CHORDS_DIR [--chords NAME=DIR ...] \\
        [--limit 12] [-o OUT.json]

A ``model.vocal_input=plan`` run's generator (in memory, its newest checkpoint)
generates each test song's accompaniment from its vocal, the plan beside the
vocal being one of:

* ``chordnet`` (or each ``--chords NAME=DIR``): a chord network's guess from the
  melody, as the export makes it;
* ``oracle-audio``: the chords read from the true accompaniment's audio
  (``kgan.chords.chord_labels``), the plans a run trained before score chords saw;
* ``oracle-score``: the song's score's chords (``chord_track`` in ``song.json``).

Chord motion and chroma fit against the true accompaniment (``kgan.evaluation``)
show how much of the gap to the goal is the plan's and how much the generator's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def planned_generator(generator, config, chord_net, **kwargs):
    """A ``Generate`` (``kwargs`` its other arguments) whose plan is ``labels`` (chord ids per frame) when set,
    ``chord_net``'s guess otherwise (told the beat grid ``meter`` when given)."""
    import tensorflow as tf

    from kgan.chords import NO_CHORD
    from kgan.inference import Generate

    class Planned(Generate):
        labels = None

        def plan(self, normalised, meter=None):
            if self.labels is None:
                return super().plan(normalised, meter)
            t = tf.shape(normalised)[1]
            labels = tf.constant(self.labels[None].astype(np.int32))
            labels = tf.pad(labels, [[0, 0], [0, tf.maximum(t - labels.shape[1], 0)]], constant_values=NO_CHORD)
            return self.render_plan(labels[:, :t])

    return Planned(generator, config, chord_net=chord_net, **kwargs)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("test")
    parser.add_argument("--chords", action="append", required=True,
                        help="A kgan chords train folder (NAME=DIR to name it; the first is 'chordnet').")
    parser.add_argument("--limit", type=int, default=12, help="Score the first N test songs.")
    parser.add_argument("-o", "--out", help="Write the results here as JSON.")
    args = parser.parse_args(argv)

    from kgan.chords import load_chord_net, song_arrays, track_labels
    from kgan.evaluation import chroma_fit, chroma_motion, load_songs, mean_ci
    from kgan.export import restore_generator
    from kgan.io_utils import score_chords

    generator, config, _ = restore_generator(args.run)
    nets = {}
    for i, item in enumerate(args.chords):
        name, path = item.split("=", 1) if "=" in item else ("chordnet" if i == 0 else f"chordnet{i}", item)
        nets[name] = load_chord_net(path, config)
    first = next(iter(nets))
    model = planned_generator(generator, config, nets[first])
    rate = config.audio.sample_rate
    split = "test" if os.path.exists(os.path.join(args.test, "splits.json")) else None
    rows = {name: [] for name in [*nets, "oracle-audio", "oracle-score"]}
    for i, (song, vocal, accompaniment) in enumerate(load_songs(args.test, rate, split=split)):
        if i >= args.limit:
            break
        _, heard = song_arrays(vocal, accompaniment, config)
        track = score_chords(os.path.join(args.test, song))
        score = track_labels(track, len(heard), config) if track else heard
        for name in rows:
            model.chord_net = nets.get(name, nets[first])
            model.labels = {"oracle-audio": heard, "oracle-score": score}.get(name)
            out = model(vocal[None])[0].numpy()
            rows[name].append((chroma_motion(out, accompaniment, rate), chroma_fit(out, accompaniment, rate)))
        print(song, {k: [round(x, 3) for x in v[-1]] for k, v in rows.items()}, flush=True)
    results = {name: {"chroma_motion": mean_ci([r[0] for r in v]), "chroma_fit": mean_ci([r[1] for r in v]),
                      "songs": len(v)} for name, v in rows.items()}
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"run": args.run, "test": args.test, "chords": args.chords, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
