"""The separated -> clean gap of the shipped recipe: train on SIMM-separated songs or on clean stems, score on clean.

    python experiments/separated_gap.py CORPUS OUT --chords EXPORT --tests NAME=DIR,... \\
        [--train-songs 120] [--val-songs 18] [--steps 1500] [--seeds 0,1] [--kinds clean,separated]
        [--jobs 2] [--set KEY=VALUE ...]

CORPUS is a ``kgan corpus build`` folder (stems, ``mixture.flac``, ``song.json`` with a style per
song, ``splits.json``). The first train and val songs of each style are taken twice: as clean
stems, and as what ``kgan separate`` (SIMM) makes of their mixtures, the separated vocal and the
separated accompaniment, as a user with finished songs has them. Both copies keep the song's style
label and drop the score's chords (``chord_track``), which a user's own songs do not have, so both
are trained on the chords read from their accompaniment and the only difference is the separation.
``--kinds`` may add ``separated-masked``: the separated copy trained with ``train.l1_weighting=vocal-mask``
(the L1 weighs each cell by the separated accompaniment's share of its and the separated vocal's power).

Each copy trains the shipped model's recipe (``model.vocal_input=plan``, the corpus' styles, the
trainer's default augmentation and input noise) for ``--steps`` steps with each seed, ``--jobs`` runs
side by side. Each run is scored by the generator's L1 on the **clean** validation windows (after the
batch-norm calibration ``kgan train`` ends with) and, exported with the chord network of ``--chords``
(the same for every run), by ``kgan evaluate`` on the ``--tests`` songs, each in its own style. The
steps are ``kgan`` subprocesses skipped once done, so an interrupted run resumes.
OUT/results.json holds every number; OUT/results.md the table (mean and spread over the seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments._steps import done, kgan, kgan_parallel  # noqa: E402

METRICS = ("chroma_motion", "chroma_fit", "key_score", "beat_f_measure", "log_spectral_distance")
STEMS = ("vocals.flac", "accompaniment.flac")
# kind -> (the copy of the songs it trains on, its extra settings)
KINDS = {"clean": ("clean", []), "separated": ("separated", []),
         "separated-masked": ("separated", ["train.l1_weighting=vocal-mask"])}


def pick_songs(corpus: str, split: str, count: int) -> list[str]:
    """The first songs of ``split``, taken from each style in turn (so every style is there)."""
    with open(os.path.join(corpus, "splits.json"), encoding="utf-8") as f:
        names = json.load(f)[split]
    by_style: dict[str, list[str]] = {}
    for name in names:
        with open(os.path.join(corpus, name, "song.json"), encoding="utf-8") as f:
            by_style.setdefault(json.load(f).get("style", "unknown"), []).append(name)
    picked, queues = [], [list(v) for _, v in sorted(by_style.items())]
    while len(picked) < count and any(queues):
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return picked


def label_without_chords(corpus: str, name: str, folder: str) -> None:
    """``song.json`` with the style, voice and source kept and the score's chords dropped."""
    with open(os.path.join(corpus, name, "song.json"), encoding="utf-8") as f:
        info = json.load(f)
    info.pop("chord_track", None)
    with open(os.path.join(folder, "song.json"), "w", encoding="utf-8") as f:
        json.dump(info, f)


def build_copies(corpus: str, out: str, splits: dict) -> dict[str, str]:
    """OUT/clean and OUT/separated song folders (the MUSDB18 layout), each with splits.json; kind -> folder."""
    from kgan.separation import separate_files

    names = splits["train"] + splits["val"]
    folders = {kind: os.path.join(out, kind) for kind in ("clean", "separated")}
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "splits.json"), "w", encoding="utf-8") as f:
            json.dump(splits, f)
    for name in names:
        song = os.path.join(folders["clean"], name)
        os.makedirs(song, exist_ok=True)
        for stem in STEMS:
            if not os.path.exists(os.path.join(song, stem)):
                os.symlink(os.path.abspath(os.path.join(corpus, name, stem)), os.path.join(song, stem))
        label_without_chords(corpus, name, song)
    mixes = [(n, os.path.join(corpus, n, "mixture.flac")) for n in names]
    _, errors = separate_files(mixes, folders["separated"], "simm", skip_existing=True)
    if errors:
        sys.exit("\n".join(errors))
    for name in names:
        label_without_chords(corpus, name, os.path.join(folders["separated"], name))
    return folders


def clean_val_l1(run: str, clean_data: str) -> float:
    """The run's generator (its newest checkpoint, batch-norm statistics as calibrated) on the clean val windows."""
    from kgan.training import Trainer, read_run_config

    trainer = Trainer(read_run_config(run), run)
    trainer.restore()
    return float(trainer.validation_l1(clean_data, max_batches=1000))


def _cell(values, digits=3) -> str:
    """The mean over seeds, then each seed's value (missing ones left out)."""
    values = [v for v in values if v is not None]
    return f"{np.mean(values):.{digits}f} ({', '.join(f'{v:.{digits}f}' for v in values)})"


def summarise(rows: list[dict], tests: list[str]) -> str:
    """The Markdown table: per kind, the mean over seeds (and each seed's value) of val L1 and each test's metrics."""
    kinds = sorted({r["kind"] for r in rows}, key=list(KINDS).index)
    lines = ["| training songs | val L1 on clean vocals | " + " | ".join(
        f"{t}: chord motion / fit" for t in tests) + " |", "|---" * (1 + 1 + len(tests)) + "|"]
    means = {}
    for kind in kinds:
        runs = [r for r in rows if r["kind"] == kind]
        means[kind] = {"val_l1": float(np.mean([r["val_l1"] for r in runs]))}
        cells = [_cell([r["val_l1"] for r in runs], 4)]
        for t in tests:
            motion = [r["tests"][t]["chroma_motion"] for r in runs]
            fit = [r["tests"][t]["chroma_fit"] for r in runs]
            means[kind][t] = float(np.mean(motion))
            cells.append(f"{_cell(motion)} / {np.mean(fit):.3f}")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    for kind in kinds[1:] if kinds[0] == "clean" else []:
        c, s = means["clean"], means[kind]
        gaps = [f"val L1 {100 * (s['val_l1'] / c['val_l1'] - 1):+.1f} %"]
        gaps += [f"{t} chord motion {100 * (s[t] / c[t] - 1):+.1f} %" for t in tests if c[t]]
        lines.append("")
        lines.append(f"{kind.capitalize()} against clean: " + ", ".join(gaps) + ".")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("out")
    parser.add_argument("--chords", required=True, help="the export (or chords folder) whose chord network plans")
    parser.add_argument("--tests", required=True, metavar="NAME=DIR,...")
    parser.add_argument("--train-songs", type=int, default=120)
    parser.add_argument("--val-songs", type=int, default=18)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--kinds", default="clean,separated", help=f"of {', '.join(KINDS)}")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    out = args.out
    tests = dict(t.split("=", 1) for t in args.tests.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    kinds = args.kinds.split(",")
    if not set(kinds) <= set(KINDS):
        parser.error(f"--kinds: {args.kinds!r}; expected names of {', '.join(KINDS)}")
    os.makedirs(out, exist_ok=True)

    with open(os.path.join(args.corpus, "corpus.json"), encoding="utf-8") as f:
        styles = json.load(f)["styles"]
    if "chorale" not in styles:
        styles = ["chorale", *styles]
    splits = {"train": pick_songs(args.corpus, "train", args.train_songs),
              "val": pick_songs(args.corpus, "val", args.val_songs)}
    folders = build_copies(args.corpus, out, splits)
    data = {}
    for kind, folder in folders.items():
        data[kind] = f"{out}/{kind}-tfr"
        if not done(f"{data[kind]}/dataset.json"):
            shutil.rmtree(data[kind], ignore_errors=True)
            kgan("preprocess", folder, data[kind], "--no-progress")

    recipe = ["--set", "model.vocal_input=plan", "--set", "model.styles=" + ",".join(styles)]
    for item in args.overrides:
        recipe += ["--set", item]
    runs = {(kind, seed): f"{out}/runs/{kind}-seed{seed}" for seed in seeds for kind in kinds}
    os.makedirs(f"{out}/runs", exist_ok=True)
    todo = [(key, run) for key, run in runs.items() if not done(f"{run}/export/1")]
    kgan_parallel([["train", data[KINDS[kind][0]], run, "--steps", args.steps, "--no-progress",
                    "--set", f"train.seed={seed}", *recipe, *[a for o in KINDS[kind][1] for a in ("--set", o)]]
                   for (kind, seed), run in todo], [f"{run}.log" for _, run in todo], args.jobs)
    for (kind, seed), run in todo:
        kgan("export", run, f"{run}/export", "--chords", args.chords, log=f"{run}.log")

    reports = [((kind, seed), name, f"{run}/report-{name}") for (kind, seed), run in runs.items()
               for name in tests]
    todo = [r for r in reports if not done(f"{r[2]}/report.json")]
    kgan_parallel([["evaluate", f"{runs[key]}/export", tests[name], "-o", report, "--split", "test", "--baselines",
                    "", "--style", "label", "--no-progress"] for key, name, report in todo],
                  [f"{report}.log" for _, _, report in todo], args.jobs)

    rows = []
    for (kind, seed), run in runs.items():
        row = {"kind": kind, "seed": seed, "steps": args.steps, "val_l1": clean_val_l1(run, data["clean"]),
               "tests": {}}
        for name in tests:
            with open(f"{run}/report-{name}/report.json", encoding="utf-8") as f:
                summary = json.load(f)["systems"]["model"]["summary"]  # metric -> [mean, 95 % CI]
            row["tests"][name] = {m: summary[m][0] for m in METRICS if m in summary}
        rows.append(row)
    with open(f"{out}/results.json", "w", encoding="utf-8") as f:
        json.dump({"splits": splits, "recipe": recipe, "rows": rows}, f, indent=1)
    table = summarise(rows, list(tests))
    with open(f"{out}/results.md", "w", encoding="utf-8") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
