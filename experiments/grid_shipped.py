"""Give the shipped model a chord network that can be told the song's beat grid, without retraining its generator.

    python experiments/grid_shipped.py OUT_DIR --corpus CORPUS --tests OUT_WITH_TEST_SETS [--steps 6000]
        [--labels audio|score] [--install]

1. ``kgan chords train CORPUS OUT_DIR/chords --grid --steps 6000 --labels audio``: the chord network, told
   each song's tempo, meter and pickup (``song.json``) in half of its training crops (seed 0, about 15 min
   on 2 cores), learning the chords heard in the accompaniment as the shipped network did (``--labels
   score``: the score's, which scores higher on the rendered test sets and lower on both real vocals).
   CORPUS is the shipped model's corpus (``experiments/pretrained.py`` renders it, seeded).
2. ``kgan export kgan/pretrained/export/1 OUT_DIR/export --weights float16 --chords OUT_DIR/chords
   --calibrate-levels kgan/pretrained/export/1``: the installed generator (bit for bit), its level gains,
   the new chord network; ``serving_default`` gains the optional ``meter`` input.
3. ``kgan evaluate`` on the test renderings ``TESTS/test-*`` of ``experiments/pretrained.py``, each song in
   its own style: told each song's grid (``--grid``) against the installed export, and not told; the
   real MUSDB18 vocal and the real mixed excerpt (``kgan separate``), whose grids nobody wrote down, not
   told, against the installed export.
4. ``OUT_DIR/grid.md``: the comparison; with ``--install``, the export replaces the installed one, and the
   card (its size and sha256 line, and a "Beat grid" section) and ``metrics.json`` (``beat_grid``) are
   updated.

Every step is skipped when its output exists.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _steps import REAL_MIX, done, kgan  # noqa: E402
from pretrained import PACKAGE, TESTS, install_with_section  # noqa: E402
from recalibrate_shipped import report_table  # noqa: E402


# (report prefix, system, label); the rendered sets' "before" is in the told-grid reports, the real vocal's
# (no grid known) in its unknown-grid one
ROWS = (("told", "model", "grid told"), ("unknown", "model", "grid unknown"), ("told", "shipped", "before"),
        ("unknown", "shipped", "before"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--corpus", required=True, help="The shipped model's corpus (with song.json per song).")
    parser.add_argument("--tests", required=True, help="A folder holding experiments/pretrained.py's test-* sets.")
    parser.add_argument("--steps", type=int, default=6000, help="Chord network training steps.")
    parser.add_argument("--labels", choices=("score", "audio"), default="audio",
                        help="The chords it learns: heard in the accompaniment (as the shipped network's) or the "
                             "score's.")
    parser.add_argument("--install", action="store_true")
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)
    installed = os.path.join(PACKAGE, "export", "1")
    os.makedirs(out, exist_ok=True)
    if not done(f"{out}/chords/chordnet.weights.h5"):
        kgan("chords", "train", args.corpus, f"{out}/chords", "--grid", "--steps", args.steps, "--labels",
             args.labels, "--no-progress", log=f"{out}/chords.log")
    if not done(f"{out}/export/1"):
        kgan("export", installed, f"{out}/export", "--weights", "float16", "--chords", f"{out}/chords",
             "--calibrate-levels", installed)
    for test in TESTS:
        real = test == "musdb-real"
        common = ["--split", "" if real else "test", "--baselines", "", "--style", "label", "--no-progress"]
        if not real and not done(f"{out}/told-{test}/report.json"):
            kgan("evaluate", f"{out}/export/1", f"{args.tests}/test-{test}", "-o", f"{out}/told-{test}", "--grid",
                 "--compare", f"shipped={installed}", *common, log=f"{out}/evaluate.log")
        if not done(f"{out}/unknown-{test}/report.json"):
            kgan("evaluate", f"{out}/export/1", f"{args.tests}/test-{test}", "-o", f"{out}/unknown-{test}",
                 *(["--compare", f"shipped={installed}"] if real else []), *common, log=f"{out}/evaluate.log")
    # a second real vocal: the mixed excerpt, separated, scored against its separated accompaniment (which
    # keeps some of the voice: a rough check)
    if not done(f"{out}/real-excerpt"):
        kgan("separate", REAL_MIX, "-o", f"{out}/real-excerpt", "--no-progress")
    if not done(f"{out}/unknown-real-excerpt/report.json"):
        kgan("evaluate", f"{out}/export/1", f"{out}/real-excerpt", "-o", f"{out}/unknown-real-excerpt", "--split", "",
             "--baselines", "drone,running-chroma", "--compare", f"shipped={installed}", "--no-progress",
             log=f"{out}/evaluate.log")
    with open(f"{out}/chords/chords.json", encoding="utf-8") as f:
        chords = json.load(f)
    table = report_table(out, ROWS, (*TESTS, "real-excerpt"))
    section = ["## Beat grid", "",
               "The export was made again from its own stored weights with a chord network that can be told the "
               "song's beat grid (`experiments/grid_shipped.py`: `kgan chords train --grid`, "
               f"{chords['steps']} steps on the same corpus; val frame accuracy {chords['val_accuracy']:.3f} told "
               f"the grid, {chords['val_accuracy_no_grid']:.3f} not). `kgan generate --bpm BPM [--meter N/D] "
               "[--downbeat SECONDS]` tells it; without them it hears the melody alone. The generator and its "
               "level gains are unchanged. `kgan evaluate` (each song in its own style, `--grid` telling each "
               "test song's own grid; mean ± 95 % CI):", "", *table, ""]
    with open(f"{out}/grid.md", "w", encoding="utf-8") as f:
        f.write("\n".join(section))
    print("\n".join(section))
    if not args.install:
        return
    evaluation = {}
    for prefix, system, label in ROWS:
        for test in (*TESTS, "real-excerpt"):
            path = f"{out}/{prefix}-{test}/report.json"
            if os.path.exists(path):
                with open(path, encoding="utf-8") as f:
                    systems = json.load(f)["systems"]
                if system in systems:
                    evaluation.setdefault(test, {})[label] = systems[system]["summary"]
    chords = {k: chords.get(k) for k in ("steps", "labels", "val_accuracy", "val_accuracy_no_grid", "grid_dropout",
                                          "seed")}
    install_with_section(f"{out}/export/1", section, "beat_grid", {"chords": chords, "evaluation": evaluation})

if __name__ == "__main__":
    main()
