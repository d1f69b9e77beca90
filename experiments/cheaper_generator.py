"""Cheaper generators against the shipped recipe: bfloat16 training and a leaner U-Net.

    python experiments/cheaper_generator.py OUT_DIR --reference build/plan [--at 2000]

``--reference`` is a ``experiments/pretrained.py`` folder: its run (``run/``), preprocessed corpus
(``data/``) and held-out test renderings (``test-*``) are reused. Its run and two variants are scored
at the same checkpoint ``--at`` through one ``kgan evaluate`` per test set (``--compare``), each song
in its own style, with the key drone beside them:

* ``reference``: the reference run itself at ``ckpt-AT`` (float32, ``model.base_filters`` 32, overlap 1/2);
* ``bf16``: the same recipe trained with ``train.precision=mixed_bfloat16`` (seed 0, from scratch);
* ``lean``: the same recipe with ``model.base_filters=16`` (a third of the generator's multiply-adds).

(Window overlap ¼ needs no training: the README scores the shipped weights exported with ``--overlap 0.25``.)

The two new runs train in ``OUT_DIR/run-*`` to step ``--at`` (resumable, with no learning-rate schedule,
so a later ``--at 3000`` continues them exactly) and take the reference's chord network.
``OUT_DIR/at-AT/summary.md`` holds the table: mean ± 95 % CI per metric, per test set. Speed is
measured by ``benchmarks/generator_cost.py`` and ``benchmarks/train_step.py``, not here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _steps import done, kgan  # noqa: E402

from kgan.evaluation import summary_cell  # noqa: E402

TESTS = ("seen-voices", "festival-fluidr3", "musdb-real")
METRICS = ("chroma_motion", "chroma_fit", "key_score", "beat_f_measure", "log_spectral_distance",
           "frechet_distance", "pairing_accuracy")
VARIANTS = {"bf16": ["--set", "train.precision=mixed_bfloat16"], "lean": ["--set", "model.base_filters=16"]}


def summarise(folder: str, systems) -> str:
    """A Markdown table of every test set's report: one row per system, mean ± CI per metric."""
    lines = ["| test set (songs) | system | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    for test in TESTS:
        with open(f"{folder}/report-{test}/report.json", encoding="utf-8") as f:
            report = json.load(f)
        for system in systems:
            data = report["systems"].get(system)
            if data is None:
                continue
            # a one-song set has no set-level measures (nan): a dash
            cells = [summary_cell(mean, ci) if mean == mean else "—"
                     for mean, ci in (data["summary"][m] for m in METRICS)]
            lines.append(f"| {test} ({len(report['songs'])}) | {system} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--reference", required=True, help="An experiments/pretrained.py folder.")
    parser.add_argument("--at", type=int, default=2000, help="The checkpoint every variant is scored at.")
    parser.add_argument("--train-only", action="store_true", help="Train the new runs, score nothing.")
    args = parser.parse_args(argv)

    ref = args.reference
    with open(f"{ref}/run/config.json", encoding="utf-8") as f:
        recipe = json.load(f)["config"]["model"]
    common = ["--steps", args.at, "--no-progress", "--set", f"model.styles={recipe['styles']}",
              "--set", f"model.vocal_input={recipe['vocal_input']}"]
    runs = {"reference": f"{ref}/run"}
    for name, extra in VARIANTS.items():
        run = f"{args.out}/run-{name}"
        if not done(f"{run}/chords"):
            os.makedirs(run, exist_ok=True)
            shutil.copytree(f"{ref}/run/chords", f"{run}/chords")
        if not done(f"{run}/checkpoints/ckpt-{args.at}.index"):
            kgan("train", f"{ref}/data", run, *common, *extra, log=f"{args.out}/train-{name}.log")
        runs[name] = run
    if args.train_only:
        return
    at = f"{args.out}/at-{args.at}"
    os.makedirs(at, exist_ok=True)
    exports = {}
    for name, run in runs.items():
        exports[name] = f"{at}/export-{name}"
        if not done(exports[name]):
            kgan("export", run, exports[name], "--checkpoint", f"ckpt-{args.at}", log=f"{at}/export.log")
    compare = [a for name in exports if name != "reference" for a in ("--compare", f"{name}={exports[name]}")]
    for test in TESTS:
        report = f"{at}/report-{test}"
        if not done(f"{report}/report.json"):
            kgan("evaluate", exports["reference"], f"{ref}/test-{test}", "-o", report,
                 "--split", "" if test == "musdb-real" else "test",
                 "--style", "label", "--baselines", "drone", *compare, "--no-progress", log=f"{at}/evaluate.log")
    table = summarise(at, ["model", *[n for n in exports if n != "reference"], "drone"])
    with open(f"{at}/summary.md", "w", encoding="utf-8") as f:
        f.write(f"All at checkpoint {args.at}; 'model' is the reference run.\n\n{table}")
    sys.stdout.write(table)


if __name__ == "__main__":
    main()
