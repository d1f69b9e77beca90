"""Give the shipped model calibrated output levels, without its training run.

    python experiments/recalibrate_shipped.py OUT_DIR --corpus CORPUS --tests OUT_WITH_TEST_SETS [--overlap F]
        [--install]

1. ``kgan export kgan/pretrained/export/1 OUT_DIR/export --weights float16 --calibrate-levels CORPUS``: the
   stored float16 weights and chord network exported again (bit for bit the same generator), with the gain
   per style measured on CORPUS' val songs (``kgan.levels``), and with ``--overlap``, that window overlap. CORPUS is the shipped model's corpus
   (``experiments/pretrained.py`` renders it, seeded: ``OUT/corpus``).
2. ``kgan evaluate`` of the new export against the installed one (``--compare shipped=...``), each song in
   its own style, on the test renderings ``TESTS/test-*`` of ``experiments/pretrained.py``.
3. ``OUT_DIR/levels.md``: the gains and the per-set comparison; with ``--install``, the export replaces the
   installed one, and the card (its size and sha256 line, and a "Level calibration" section) and
   ``metrics.json`` (``level_calibration``) are updated.

Every step is skipped when its output exists.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _steps import ROOT, done, kgan  # noqa: E402
from pretrained import PACKAGE, TESTS, install_with_section  # noqa: E402

from kgan.evaluation import summary_cell  # noqa: E402

SHOWN = ("level_error_db", "chroma_motion", "chroma_fit", "log_spectral_distance", "frechet_distance",
         "pairing_accuracy")


def report_table(out: str, rows=(("report", "model", "now"), ("report", "shipped", "before")),
                 tests=TESTS) -> list[str]:
    """A markdown table of ``SHOWN`` per test set: one line per ``(report folder prefix, system, label)`` of
    ``rows`` whose ``OUT/PREFIX-TEST/report.json`` exists and scored that system."""
    lines = ["| test set (songs) | export | " + " | ".join(SHOWN) + " |", "|---|---|" + "---|" * len(SHOWN)]
    for test in tests:
        for prefix, system, label in rows:
            path = f"{out}/{prefix}-{test}/report.json"
            if not os.path.exists(path):
                continue
            with open(path, encoding="utf-8") as f:
                report = json.load(f)
            if system not in report["systems"]:
                continue
            summary = report["systems"][system]["summary"]
            lines.append(f"| {test} ({len(report['songs'])}) | {label} | "
                         + " | ".join(summary_cell(*summary[m]) if m in summary and summary[m][0] == summary[m][0]
                                      else "" for m in SHOWN) + " |")  # no set-level figure for one song
    return lines


def reexport_parser(doc: str, overlap: bool = True) -> argparse.ArgumentParser:
    """The arguments every script that exports the shipped model again takes: OUT, --tests, --install and,
    with ``overlap``, --overlap."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--tests", required=True, help="A folder holding experiments/pretrained.py's test-* sets.")
    if overlap:
        parser.add_argument("--overlap", type=float, help="kgan export --overlap (default: the installed export's).")
    parser.add_argument("--install", action="store_true")
    return parser


def main(argv=None) -> None:
    parser = reexport_parser(__doc__)
    parser.add_argument("--corpus", required=True, help="The shipped model's corpus (its val split calibrates).")
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)
    reexport_and_compare(out, args.tests, ["--calibrate-levels", args.corpus,
                                           *(["--overlap", args.overlap] if args.overlap is not None else [])])
    with open(f"{out}/export/1/assets/kgan_config.json", encoding="utf-8") as f:
        meta = json.load(f)
    levels, overlap = meta["level_calibration"], meta["config"]["window"]["overlap"]
    section = ["## Level calibration", "",
               f"The export was made again from its own stored weights with `kgan export ... --calibrate-levels` "
               f"(`experiments/recalibrate_shipped.py`): its waveform is scaled per style by the gain that brings "
               f"the output to the true accompaniments' median level on the corpus' {levels['split']} songs (first "
               f"{levels['seconds']:g} s; songs per style: "
               + ", ".join(f"{k} {v}" for k, v in levels["songs"].items()) + "). Gains (dB): "
               + ", ".join(f"{k} {v:+.2f}" for k, v in levels["gains_db"].items())
               + f". Consecutive windows overlap by {overlap:g} of their frames. The generator and chord network "
               "are unchanged, so the tables above describe what it plays; `kgan evaluate` of this export against "
               "the one before (each song in its own style; mean ± 95 % CI):", "", *report_table(out), "",
               "In the tables above, the `float32` and `soft-plan` rows played `any` while `model` played each "
               "song's style (`kgan evaluate --compare` did not pass `--style label` on before 2026-12-03), so "
               "they do not compare precisions or plans; README, \"Evaluation\", has the soft plan measured "
               "again.", ""]
    publish(out, "levels.md", section, args.install, "level_calibration", {"gains": levels},
            model={"overlap": overlap})


def reexport_and_compare(out: str, tests: str, export_args: list, evaluate_args: tuple = ()) -> None:
    """``kgan export`` of the installed export to ``OUT/export`` (float16 weights, ``export_args``), then
    ``kgan evaluate`` of it against the installed one on each of ``TESTS`` (``tests/test-*``), each song in its
    own style, into ``OUT/report-TEST``; each step skipped when its output exists."""
    installed = os.path.join(PACKAGE, "export", "1")
    if not done(f"{out}/export/1"):
        kgan("export", installed, f"{out}/export", "--weights", "float16", *export_args)
    for test in TESTS:
        if not done(f"{out}/report-{test}/report.json"):
            kgan("evaluate", f"{out}/export/1", f"{tests}/test-{test}", "-o", f"{out}/report-{test}",
                 "--split", "" if test == "musdb-real" else "test", "--baselines", "", "--style", "label",
                 *evaluate_args, "--compare", f"shipped={installed}", "--no-progress", log=f"{out}/evaluate.log")


def reexport_twins_and_publish(args, title: str, text: str, name: str, key: str, value: dict,
                               export_args: tuple = (), model: dict | None = None) -> None:
    """The steps of a script that exports the shipped model again with both signatures (``args``: its
    ``reexport_parser``'s): ``kgan export ... --compute both`` plus ``export_args``, ``kgan evaluate`` of its
    bfloat16 twin against the installed export's, and ``publish`` of ``title``, ``text`` and the comparison
    (rows "now" and "before") as ``OUT/NAME`` and, with ``--install``, in the card and ``metrics.json[key]``."""
    out = os.path.abspath(args.out)
    reexport_and_compare(out, args.tests, ["--compute", "both", *export_args], ["--compute", "bfloat16"])
    rows = (("report", "model", "now"), ("report", "shipped", "before"))
    section = [title, "", text, "", *report_table(out, rows=rows), ""]
    publish(out, name, section, args.install, key, value, model=model)


def publish(out: str, name: str, section: list[str], install: bool, key: str, value: dict,
            model: dict | None = None) -> None:
    """``section`` written to ``OUT/NAME`` and printed; with ``install``, ``OUT/export/1`` installed with it
    (``install_with_section``), ``metrics.json[key]`` being ``value`` plus the model's and the shipped
    export's summaries per test set (``evaluation``)."""
    with open(f"{out}/{name}", "w", encoding="utf-8") as f:
        f.write("\n".join(section))
    print("\n".join(section))
    if not install:
        return
    evaluation = {}
    for test in TESTS:
        with open(f"{out}/report-{test}/report.json", encoding="utf-8") as f:
            systems = json.load(f)["systems"]
        evaluation[test] = {s: systems[s]["summary"] for s in ("model", "shipped")}
    install_with_section(f"{out}/export/1", section, key, {**value, "evaluation": evaluation}, model=model)

if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
