"""Does the model follow the chords of a voice it never heard? (a) today's input and corpus vs (b) the new ones.

    python experiments/timbre_generalisation.py OUT_DIR [--steps 3000] [--chorales 150] [--folk 600]

(a) ``baseline``: Bach chorales only, the melody always GM "Voice Oohs" over a
    church organ at 80 bpm, the raw spectrogram as input, no timbre augmentation.
(b) ``timbre-free``: chorales and harmonised Essen folk songs in five styles,
    the melody played by every voice family but Festival's singing voice
    (held out), the pitch-salience input (``model.vocal_input=salience``) and timbre
    augmentation (``kgan.augment``).

Both train for the same number of steps with the same trainer and seed on
TimGM6mb renderings; the split is by tune. Every test set holds test-split
tunes only:

* ``chorales-oohs``: (a)'s own rendering (in distribution for a);
* ``seen-voices``: (b)'s rendering, chorales and folk songs (in distribution for b);
* ``festival-fluidr3``: sung by Festival (no model heard it) with the FluidR3 SoundFont (no model heard it);
* ``instruments-fluidr3``: GM voices and instruments through FluidR3 (unseen SoundFont);
* ``musdb-real``: the real MUSDB18 sample vocal from ``../shared/data/real`` (evaluation only).

More systems (``--systems``), all on (b)'s corpus: ``comb`` (b with the
default input since, ``model.vocal_input=comb``: the pitch also rendered on
the spectrogram's own axis), and the ablations of the default input:
``spectrogram-input`` (the raw spectrogram: what the representation alone
buys), ``no-augmentation`` (without timbre augmentation) and ``no-<name>``
(without one augmentation: ``no-level``, ``no-tilt``, ``no-formant``,
``no-vibrato``, ``no-breath``, ``no-reverb``); and the harmony loss:
``comb-chroma`` (``train.chroma_weight=10``, ``kgan.harmonic_loss``),
``track-chroma`` (the harmony loss with ``model.vocal_input=track``: one pitch
class per frame, at every octave) and ``track-chroma-256`` (the same on 2.97-s
windows, batch 4).

Every step is a real ``kgan`` subprocess and is skipped when its output exists,
so an interrupted run resumes (training resumes from its last checkpoint).
Trainings run two at a time, one core each; the last system named is the one
``kgan evaluate`` scores as ``model``, the others are compared with it. ``OUT_DIR/summary.md``
gets the table: chord motion, chroma fit, key and beat F per test set and
system, with the key-drone and running-chroma baselines, and (b)'s drop from
in distribution to each unseen-voice set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _steps import ROOT, SEEN_FAMILIES, done, kgan, render_test_sets, test_sets

METRICS = ("chroma_motion", "chroma_fit", "key_score", "beat_f_measure")
AUGMENTATIONS = ("level", "tilt", "formant", "vibrato", "breath", "reverb")
NO_AUGMENTATION = [f"augment.p_{name}=0" for name in AUGMENTATIONS]
DATA = {  # data set -> (corpus, kgan preprocess --set overrides)
    "baseline": ("baseline", []),
    "timbre-free": ("timbre-free", []),
    "timbre-free-256": ("timbre-free", ["window.frames=256", "window.stride=64"]),  # 2.97-s windows
}
SETTINGS = {  # system -> (data set, kgan train --set overrides of the default preset)
    "baseline": ("baseline", ["model.vocal_input=spectrogram"] + NO_AUGMENTATION),
    "timbre-free": ("timbre-free", ["model.vocal_input=salience"]),
    "comb": ("timbre-free", []),  # the default input since the salience image alone followed no chords
    "comb-chroma": ("timbre-free", ["train.chroma_weight=10"]),  # plus the harmony loss
    "track-chroma": ("timbre-free", ["model.vocal_input=track", "train.chroma_weight=10"]),  # octave-free pitch
    # plus twice the context: 2.97-s windows, half the batch (the same spectrogram cells per step)
    "track-chroma-256": ("timbre-free-256", ["model.vocal_input=track", "train.chroma_weight=10",
                                             "train.batch_size=4"]),
    # a triad per frame guessed in the graph from the track, as a plane before the track's
    "chords-chroma": ("timbre-free", ["model.vocal_input=chords", "train.chroma_weight=10"]),
    "chords-chroma-s1": ("timbre-free", ["model.vocal_input=chords", "train.chroma_weight=10", "train.seed=1"]),
    # ... with the harmony loss' motion measured against the segment's mean chroma, not the window's
    "chords-segment": ("timbre-free", ["model.vocal_input=chords", "train.chroma_weight=10",
                                       "train.chroma_reference=segment"]),
    "spectrogram-input": ("timbre-free", ["model.vocal_input=spectrogram"]),
    "no-augmentation": ("timbre-free", NO_AUGMENTATION),
    **{f"no-{name}": ("timbre-free", [f"augment.p_{name}=0"]) for name in AUGMENTATIONS},
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--chorales", type=int, default=150)
    parser.add_argument("--folk", type=int, default=600)
    parser.add_argument("--test-chorales", type=int, default=10)
    parser.add_argument("--test-folk", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--systems", default="baseline,timbre-free")
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    systems = args.systems.split(",")
    unknown = [name for name in systems if name not in SETTINGS]
    if unknown:
        parser.error(f"unknown system(s) {unknown}; expected {sorted(SETTINGS)}")
    jobs = ["--jobs", args.jobs, "--no-progress"]

    # 1. corpora (train and val splits) and test renderings (test split)
    corpora = {
        "baseline": ["chorales", "--n", args.chorales, "--voices", "oohs", "--accompaniment-program", 19,
                     "--bpm", 80, "--splits", "train,val"],
        "timbre-free": ["build", "--chorales", args.chorales, "--folk", args.folk, "--voices", SEEN_FAMILIES,
                        "--splits", "train,val"],
    }
    tests = list(test_sets(args.test_chorales, args.test_folk))  # and the real MUSDB18 vocal
    for data in sorted({SETTINGS[system][0] for system in systems}):
        name, overrides = DATA[data]
        if not done(f"{out}/corpus-{name}/corpus.json"):
            kgan("corpus", corpora[name][0], f"{out}/corpus-{name}", *corpora[name][1:], *jobs)
        if not done(f"{out}/data-{data}/dataset.json"):
            kgan("preprocess", f"{out}/corpus-{name}", f"{out}/data-{data}", "--plot", 4,
                 *[a for o in overrides for a in ("--set", o)])
    render_test_sets(out, tests + ["musdb-real"], args.test_chorales, args.test_folk, args.jobs)

    # 2. trainings, two at a time with one core each
    start = time.time()
    for pair in [systems[i:i + 2] for i in range(0, len(systems), 2)]:
        procs = []
        for name in pair:
            data, settings = SETTINGS[name]
            cmd = [sys.executable, "-m", "cli.main", "train", f"{out}/data-{data}", f"{out}/run-{name}",
                   "--steps", str(args.steps), "--no-progress"] + [a for s in settings for a in ("--set", s)]
            env = dict(os.environ, TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1") if len(pair) > 1 else None
            print("$ " + " ".join(cmd[2:]), flush=True)
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(f"{out}/train-{name}.log", "a"),
                                          stderr=subprocess.STDOUT))
        for p in procs:
            if p.wait() != 0:
                raise SystemExit(f"training failed: see {out}/train-*.log")
    print(f"trained in {(time.time() - start) / 60:.1f} min", flush=True)
    for name in systems:
        if not done(f"{out}/export-{name}/1"):
            kgan("export", f"{out}/run-{name}", f"{out}/export-{name}")

    # 3. evaluation: every system on every test set, with the drone and running-chroma baselines
    main_system = systems[-1]
    compare = [a for name in systems[:-1] for a in ("--compare", f"{name}={out}/export-{name}")]
    for name in list(tests) + ["musdb-real"]:
        report = f"{out}/report-{name}"
        if not done(f"{report}/report.json"):
            kgan("evaluate", f"{out}/export-{main_system}", f"{out}/test-{name}", "-o", report,
                 "--split", "" if name == "musdb-real" else "test", "--baselines", "drone,running-chroma,harmoniser",
                 *compare, "--no-progress", log=f"{out}/evaluate.log")
    summarise(out, list(tests) + ["musdb-real"], main_system, systems[:-1])


def summarise(out, sets, main_system, others) -> None:
    rows, data = [], {}
    names = {"model": main_system, **{o: o for o in others}, "drone": "key drone", "running-chroma": "running chroma"}
    for test in sets:
        with open(f"{out}/report-{test}/report.json", encoding="utf-8") as f:
            report = json.load(f)
        data[test] = {}
        for system, label in names.items():
            if system not in report["systems"]:
                continue
            summary = report["systems"][system]["summary"]
            data[test][label] = {m: summary[m] for m in METRICS}
            cells = " | ".join(f"{summary[m][0]:.3f} ± {summary[m][1]:.3f}" if summary[m][1] == summary[m][1]
                               else f"{summary[m][0]:.3f}" for m in METRICS)
            rows.append(f"| {test} ({len(report['songs'])}) | {label} | {cells} |")
    lines = ["| test set (songs) | system | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    lines += rows
    ref = data.get("seen-voices", {}).get(main_system)
    if ref:
        lines.append("")
        for test in sets:
            if test in ("seen-voices", "chorales-oohs") or main_system not in data[test]:
                continue
            motion = data[test][main_system]["chroma_motion"][0]
            drop = 1.0 - motion / ref["chroma_motion"][0] if ref["chroma_motion"][0] > 0 else float("nan")
            above = data[test][main_system]["chroma_fit"][0] - data[test]["key drone"]["chroma_fit"][0]
            lines.append(f"- {test}: {main_system} chord motion {motion:.3f} (drop from seen voices {drop:+.0%}), "
                         f"chroma fit {above:+.3f} over the key drone")
    text = "\n".join(lines) + "\n"
    with open(f"{out}/summary.md", "w", encoding="utf-8") as f:
        f.write(text)
    with open(f"{out}/summary.json", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    print(text)


if __name__ == "__main__":
    main()
