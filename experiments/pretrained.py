"""The model that ships with kgan: corpus, training, float16 export, evaluation and model card.

    python experiments/pretrained.py OUT_DIR [--steps 6000] [--install]     (or: make pretrained)

1. ``kgan corpus build``: every Bach chorale and ``--folk`` Essen folk songs
   (train and val tunes only), the melody played by every voice family but
   Festival's singing voice, through TimGM6mb. Festival and the FluidR3
   SoundFont are held out, so the evaluation below hears voices and a
   SoundFont the model never trained on.
2. ``kgan preprocess`` and ``kgan train`` with style conditioning on the
   corpus' six style labels (chorale, piano, organ, strings, guitar, band), the
   default preset otherwise (comb vocal input, timbre augmentation), seed 0,
   in ``mixed_bfloat16`` on a CPU that computes bfloat16 natively (1.3x the float32
   steps a second here, with no loss of quality: docs/speed/bf16_in_style/), else float32.
   With ``--phase vocoder``, ``kgan vocoder train`` on the same corpus' accompaniments.
   With ``--set model.vocal_input=plan``, ``kgan chords train`` on the same corpus
   (``--chord-steps``), into the run's ``chords`` folder, which the export takes.
   With ``--critic-steps N``, ``kgan critic train`` on the preprocessed corpus first, and the
   generator pays ``--style-weight`` times the critic's cross-entropy from step ``--style-start``.
3. ``kgan export`` twice: float16 weights (what ships) and float32 (to show the
   float16 export loses nothing measurable), with the chosen ``--phase``; the output
   level per style calibrated on the corpus' val songs (``--calibrate-levels``).
4. ``kgan evaluate`` on the held-out renderings of ``_steps.TEST_SETS`` and the
   real MUSDB18 vocal, each song in its own style (``--style label``), with the
   key-drone, running-chroma, harmoniser, echo and silence baselines and the float32 export
   beside it; ``--style-check`` on the seen-voice and Festival sets.
5. ``OUT_DIR/metrics.json`` and ``OUT_DIR/MODEL_CARD.md``; with ``--install``
   both land in ``kgan/pretrained/`` with the float16 export (``export/1``).

Every step is skipped when its output exists and training resumes from its last
checkpoint, so an interrupted run picks up where it stopped. The whole recipe
runs on 2 CPU cores; ``OUT_DIR/timings.json`` records how long each stage took.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _steps import ROOT, SEEN_FAMILIES, done, kgan, render_test_sets  # noqa: E402

from kgan import use_served_kernels  # noqa: E402
from kgan.io_utils import atomic_write_text  # noqa: E402
from kgan.pretrained import tree_sha256  # noqa: E402

STYLES = "chorale,piano,organ,strings,guitar,band"
TESTS = ("seen-voices", "festival-fluidr3", "instruments-fluidr3", "musdb-real")
STYLE_CHECK = ("seen-voices", "festival-fluidr3")
METRICS = ("chroma_motion", "chroma_fit", "key_score", "beat_f_measure", "onset_correlation",
           "log_spectral_distance", "level_error_db", "frechet_distance", "pairing_accuracy")
PER_STYLE = ("chroma_motion", "chroma_fit", "key_score", "beat_f_measure")
BASELINES = "silence,echo,drone,running-chroma,harmoniser"
PACKAGE = os.path.join(ROOT, "kgan", "pretrained")


def _run_styles(run: str) -> list[str]:
    """The style names (``any`` first) of a training run's config, or [] for an unconditioned run."""
    from kgan.training import read_run_config

    return list(read_run_config(run).model.style_names)


def _run_steps(run: str) -> int:
    """The step of a run's newest checkpoint."""
    import tensorflow as tf

    path = tf.train.latest_checkpoint(os.path.join(run, "checkpoints"))
    return int(path.rsplit("-", 1)[1]) if path else 0


def training_precision(overrides: list[str]) -> list[str]:
    """``train.precision=mixed_bfloat16`` where this CPU computes bfloat16 natively and ``overrides`` choose no
    precision; nothing otherwise (float32). README "Benchmarks": 1.3x the steps a second, the same scores."""
    from kgan.export import bfloat16_native

    if any(o.startswith("train.precision=") for o in overrides) or not bfloat16_native():
        return []
    return ["train.precision=mixed_bfloat16"]


def _run_data(run_config: dict) -> str:
    """The data set a run trained on, from the command line saved in its config.json."""
    argv = run_config.get("argv") or run_config.get("command") or []
    if isinstance(argv, str):
        argv = argv.split()
    words = [a for a in argv if not a.startswith("-")]
    i = words.index("train") if "train" in words else -1
    if i < 0 or i + 1 >= len(words):
        raise SystemExit("cannot tell the run's data set from its config.json; give a run made by kgan train")
    return words[i + 1]


def install_export(export_dir: str) -> None:
    """Make ``export_dir`` the package's ``export/1`` (copied beside it first, then put in place)."""
    staging = os.path.join(PACKAGE, f".tmp-{os.getpid()}-export")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(export_dir, os.path.join(staging, "1"))
    shutil.rmtree(os.path.join(PACKAGE, "export"), ignore_errors=True)
    os.replace(staging, os.path.join(PACKAGE, "export"))


def install_with_section(export_dir: str, section: list[str], key: str, value, model: dict | None = None) -> None:
    """``install_export``, then the card's size and sha256 line updated and its section headed like
    ``section[0]`` (a ``## `` line) replaced by ``section``, or appended; ``metrics.json`` gets the size,
    the sha256 and ``model`` in its ``model`` entry and ``value`` under ``key``."""
    size, digest = tree_bytes(export_dir), tree_sha256(export_dir)
    install_export(export_dir)
    card_path = os.path.join(PACKAGE, "MODEL_CARD.md")
    with open(card_path, encoding="utf-8") as f:
        card = f.read()
    card = re.sub(r"float16 weights, [0-9.]+ MB, sha256 `[0-9a-f]+`",
                  f"float16 weights, {size / 1e6:.1f} MB, sha256 `{digest}`", card, count=1)
    head, *parts = card.split("\n## ")
    blocks = [head.rstrip("\n")] + ["## " + part.rstrip("\n") for part in parts
                                    if "## " + part.split("\n")[0] != section[0]]
    card = "\n\n".join(blocks + ["\n".join(section).rstrip("\n")]) + "\n"
    atomic_write_text(card_path, card)
    metrics_path = os.path.join(PACKAGE, "metrics.json")
    with open(metrics_path, encoding="utf-8") as f:
        metrics = json.load(f)
    metrics["model"].update({"bytes": size, "sha256": digest, **(model or {})})
    metrics[key] = value
    atomic_write_text(metrics_path, json.dumps(metrics, indent=2, sort_keys=True))
    print(f"installed {os.path.join(PACKAGE, 'export', '1')} ({size / 1e6:.1f} MB, sha256 {digest})", file=sys.stderr)


def tree_bytes(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)


def collect(out: str) -> dict:
    """metrics.json: per test set the systems' summaries, per style the model's, and the style checks."""
    metrics = {"test_sets": {}, "per_style": {}, "style_check": {}}
    for test in TESTS:
        with open(f"{out}/report-{test}/report.json", encoding="utf-8") as f:
            report = json.load(f)
        metrics["test_sets"][test] = {
            "songs": len(report["songs"]),
            "systems": {s: {m: d["summary"].get(m, [float("nan")] * 2) for m in METRICS}  # reports before a metric
                        for s, d in report["systems"].items()},
        }
        labels = report.get("labels", {}).get("style", {})
        per_song = report["systems"]["model"]["per_song"]
        by_style = {}
        for name, values in per_song.items():
            by_style.setdefault(labels.get(name) or "any", []).append(values)
        metrics["per_style"][test] = {
            style: {"songs": len(rows), **{m: sum(r[m] for r in rows) / len(rows) for m in PER_STYLE}}
            for style, rows in sorted(by_style.items())
        }
        check = f"{out}/report-{test}/styles.json"
        if os.path.exists(check):
            with open(check, encoding="utf-8") as f:
                data = json.load(f)
            metrics["style_check"][test] = {k: data[k] for k in ("accuracy", "chroma_motion", "motion_spread",
                                                                 "truth_accuracy", "classifier") if k in data}
    return metrics


def float16_check(out: str, songs: int = 6, windows: int = 16) -> dict:
    """The float16 and float32 exports' generator outputs on real test windows: max and mean |difference|.

    On the [-1, 1] scale (90 dB wide, so 0.01 is 0.45 dB), in two styles, before any phase reconstruction,
    whose iterations amplify any change into different but equally good waveforms.
    """
    use_served_kernels()
    import numpy as np
    import tensorflow as tf

    from kgan.audio import load as load_audio
    from kgan.export import load
    from kgan.spectrogram import Spectrogram

    half, config, _ = load(f"{out}/export-float16/1")
    full, _, _ = load(f"{out}/export-float32/1")
    spec, frames = Spectrogram(config.stft), config.window.frames
    folder = f"{out}/test-seen-voices"
    names = sorted(d for d in os.listdir(folder) if os.path.exists(os.path.join(folder, d, "song.json")))[:songs]
    worst, means = 0.0, []
    for name in names:
        vocal, _ = load_audio(os.path.join(folder, name, "vocals.flac"), config.audio.sample_rate)
        x = spec.to_model(vocal[None])[0].numpy()
        batch = np.stack([x[i : i + frames].T[..., None] for i in range(0, len(x) - frames, frames)][:windows])
        for style in (0, len(config.model.style_names) - 1):
            kwargs = {"style": tf.fill([len(batch)], style)} if config.model.style_names else {}
            a, b = (m.signatures["spectrogram"](vocal_spectrogram=batch, **kwargs)["accompaniment_spectrogram"].numpy()
                    for m in (half, full))
            worst = max(worst, float(np.max(np.abs(a - b))))
            means.append(float(np.mean(np.abs(a - b))))
    return {"songs": len(names), "max_abs": worst, "mean_abs": float(np.mean(means)),
            "db_per_unit": (config.stft.db_ceiling - config.stft.db_floor) / 2}


def fmt(value) -> str:
    mean = value[0] if isinstance(value, (list, tuple)) else value
    return "—" if mean != mean else f"{mean:.3f}"


HEARS = {  # model.vocal_input -> what the card says the generator hears
    "comb": "the sung pitch drawn as one canonical harmonic comb on its frequency axis, with the vocal's pitch "
            "salience, level and voicing",
    "track": "the tracked pitch class drawn at every octave on its frequency axis, with the vocal's level and voicing",
    "chords": "a triad per frame guessed from the tracked melody (`kgan.features`' template harmoniser) and the "
              "tracked pitch class, each drawn at every octave on its frequency axis, with the vocal's level and voicing",
    "plan": "a chord plan (`kgan.chords.ChordNet`: a triad per frame predicted from the tracked melody of the whole "
            "song, trained on the chords of the corpus' scores; in training the plan is those chords) and the "
            "tracked pitch class, each drawn at every octave on its frequency axis, with the vocal's level and "
            "voicing",
}


def model_card(out: str, metrics: dict, info: dict) -> str:
    """MODEL_CARD.md: what the shipped model is, how it was made, how well it does, and where it fails."""
    lines = [
        "# kgan pretrained model", "",
        f"kgan {info['version']}, export `{info['export']}`: float16 weights, {info['bytes'] / 1e6:.1f} MB, "
        f"sha256 `{info['sha256']}` (over every file of the export: `kgan.pretrained.tree_sha256`).", "",
        "## What it does", "",
        "A pix2pix U-Net that turns a mono vocal (22.05 kHz; any file `kgan generate` reads) into an "
        "accompaniment"
        + (", in one of its styles: " + ", ".join(f"`{s}`" for s in info["styles"][1:]) + " (or `any`, the "
           "default)." if info["styles"] else ". It has no style control: it plays whatever style the vocal "
           "suggests to it.")
        + " The generator hears " + HEARS.get(info.get("vocal_input", "comb"), "the vocal's spectrogram")
        + ", not its timbre; "
        + ("a learned vocoder (`kgan.vocoder`) makes the waveform." if info.get("phase") == "vocoder"
           else f"phase comes from fast Griffin-Lim ({info.get('griffin_lim', 'see the export config')}).")
        + (f" Consecutive generated windows overlap by {info['overlap']:g} of their frames."
           if "overlap" in info else ""), "",
        "## Data", "",
        f"{info['songs']} songs, {info['hours']:.1f} h, rendered by `kgan corpus build` from public-domain "
        "scores in the `music21` wheel: the Bach chorales and Essen folk songs (harmonised by `kgan.harmony`), "
        "train and val tunes only (the split is by tune). Accompaniment styles: "
        + ", ".join(info["train_styles"]) + ". Melody voices: " + ", ".join(info["train_voices"])
        + "; SoundFont TimGM6mb. Festival's singing voice, the FluidR3 SoundFont, the test tunes and every "
        "real recording were held out.", "",
        "## Recipe", "",
        f"`{info['recipe']}`: 2 CPU cores, seed 0, the default preset"
        + (f" plus `model.styles={','.join(info['styles'][1:])}`" if info["styles"] else "")
        + f", {info['steps']} steps, exported with `--weights float16`. Stage times (min): "
        + ", ".join(f"{k} {v / 60:.0f}" for k, v in info["timings"].items()) + ".", "",
        "## Quality", "",
        "float16 against float32 weights, on the generator's output for {songs} test vocals in two styles: "
        "at most {max_abs:.4f} on the [-1, 1] scale ({max_db:.2f} dB), {mean_abs:.1e} on average. Griffin-Lim "
        "turns such a change into another, equally good phase, so per-song metrics of the two exports differ "
        "by more than that (the `float32` rows below).".format(
            max_db=metrics["float16_check"]["max_abs"] * metrics["float16_check"]["db_per_unit"],
            **metrics["float16_check"]), "",
        "`kgan evaluate` on test-split tunes"
        + (", each song in its own style (`--style label`)" if info["styles"] else "")
        + "; `float32` is the same weights exported at full precision. Mean over songs; higher is better "
        "but for the log-spectral and Fréchet distances.", "",
        "| test set (songs) | system | " + " | ".join(METRICS) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for test, data in metrics["test_sets"].items():
        for system, values in data["systems"].items():
            lines.append(f"| {test} ({data['songs']}) | {system} | " + " | ".join(fmt(values[m]) for m in METRICS)
                         + " |")
    lines += ["", "Per style of the song (the model, seen-voice and Festival test sets):", "",
              "| test set | style | songs | " + " | ".join(PER_STYLE) + " |", "|---|---|---|" + "---|" * len(PER_STYLE)]
    for test in STYLE_CHECK:
        for style, row in metrics["per_style"].get(test, {}).items():
            lines.append(f"| {test} | {style} | {row['songs']} | " + " | ".join(fmt(row[m]) for m in PER_STYLE) + " |")
    if metrics["style_check"]:
        lines += ["", "Style control (`kgan evaluate --style-check`): every song generated in every style; the "
                  "share of songs whose output is nearer (mean MFCC) to that style's true accompaniments than to "
                  "any other style's, and the chord motion in each style:", ""]
    for test, check in metrics["style_check"].items():
        judge = check.get("classifier")
        lines.append(f"- {test}: " + ", ".join(f"{s} {a:.0%} (motion {check['chroma_motion'][s][0]:.3f})"
                                             for s, a in check["accuracy"].items())
                     + f"; motion spread {check['motion_spread']:.0%}"
                     + (f"; the true accompaniments themselves {check['truth_accuracy']:.0%}"
                        if "truth_accuracy" in check else "")
                     + (". Classified (a style classifier fitted on the corpus' train accompaniments) as the "
                        "asked-for style: " + ", ".join(f"{s} {a:.0%}" for s, a in judge["accuracy"].items())
                        + f"; the true accompaniments {judge['truth_accuracy']:.0%}" if judge else ""))
    lines += ["", "## Limits", "",
              "- Trained on synthetic renderings of hymns and folk songs: real pop vocals, rap, melisma and "
              "non-Western scales are out of its training distribution (see the MUSDB18 row).",
              "- 22.05 kHz output (nothing above 11 kHz)"
              + (", a vocoder trained without an adversarial loss." if info.get("phase") == "vocoder"
                 else ", Griffin-Lim phase (a phasey sound)."),
              "- Chord following is weak: its chord motion sits far below the 0.30 the project aims at (see the "
              "tables). It follows the chords only as well as its plan (or the melody alone, without one) "
              "names them: the chord network names the accompaniment's triad in about a fifth of the frames.",
              "- The output level per style is calibrated to the corpus' accompaniments (`kgan export "
              "--calibrate-levels`; the gains are in the export's `kgan_config.json`), but a song can still sit "
              "a few dB off (`level_error_db`), and a real song's balance is its producer's choice: turn the "
              "accompaniment up or down before mixing.",
              "- It knows nothing of lyrics, song form or the singer's intended harmony.", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=os.path.join(ROOT, "build", "pretrained"))
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--chorales", default="all")
    parser.add_argument("--folk", type=int, default=1500)
    parser.add_argument("--test-chorales", type=int, default=10)
    parser.add_argument("--test-folk", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--phase", choices=("griffin-lim", "vocoder"), default="griffin-lim",
                        help="How the shipped export makes its waveform (see experiments/vocoder.py).")
    parser.add_argument("--vocoder-steps", type=int, default=20000)
    parser.add_argument("--chord-steps", type=int, default=4000,
                        help="kgan chords train steps, for --set model.vocal_input=plan.")
    parser.add_argument("--critic-steps", type=int, default=0,
                        help="kgan critic train steps; 0 trains without the style critic.")
    parser.add_argument("--style-weight", type=float, default=2.0, help="train.style_weight, with --critic-steps.")
    parser.add_argument("--style-start", type=int, default=0, help="train.style_start, with --critic-steps.")
    parser.add_argument("--overlap", type=float, help="kgan export --overlap: the window overlap the exports "
                        "generate with (default: the run's, 0.5).")
    parser.add_argument("--install", action="store_true", help="Copy the export and its card into kgan/pretrained.")
    parser.add_argument("--run", help="Package this finished training run instead of building the corpus and "
                                      "training (e.g. the timbre experiment's run-timbre-free).")
    parser.add_argument("--recipe", help="With --run: the command that trained it, for the card.")
    parser.add_argument("--tests-from", help="Reuse the test renderings (test-*) of this folder.")
    parser.add_argument("--corpus-from", help="Reuse the corpus and preprocessed data of this folder.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="Another kgan train --set beside the styles, e.g. model.vocal_input=chords (repeatable).")
    args = parser.parse_args(argv)
    if args.run is None:
        args.overrides += training_precision(args.overrides)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    for name in TESTS if args.tests_from else ():
        if not os.path.exists(f"{out}/test-{name}"):
            os.symlink(os.path.abspath(f"{args.tests_from}/test-{name}"), f"{out}/test-{name}")
    for name in ("corpus", "data") if args.corpus_from else ():
        if not os.path.exists(f"{out}/{name}"):
            os.symlink(os.path.abspath(f"{args.corpus_from}/{name}"), f"{out}/{name}")
    run = os.path.abspath(args.run) if args.run else f"{out}/run"
    planned = "model.vocal_input=plan" in args.overrides
    with_styles = args.run is None or bool(_run_styles(run))
    timings_path = f"{out}/timings.json"
    timings = json.load(open(timings_path)) if os.path.exists(timings_path) else {}

    def stage(name, fn):
        start = time.time()
        fn()
        if time.time() - start > 1 or name not in timings:  # a skipped stage keeps its first timing
            timings[name] = timings.get(name, 0.0) + time.time() - start
            with open(timings_path, "w") as f:
                json.dump(timings, f, indent=2)

    def corpus():
        if not done(f"{out}/corpus/corpus.json"):
            kgan("corpus", "build", f"{out}/corpus", "--chorales", args.chorales, "--folk", args.folk,
                 "--voices", SEEN_FAMILIES, "--splits", "train,val", "--jobs", args.jobs, "--no-progress")
        if not done(f"{out}/data/dataset.json"):
            kgan("preprocess", f"{out}/corpus", f"{out}/data", "--plot", 4)

    critic = [f"train.style_weight={args.style_weight}", f"train.style_critic={out}/critic",
              f"train.style_start={args.style_start}"] if args.critic_steps else []

    def style_critic():
        if not done(f"{out}/critic/critic.json"):
            kgan("critic", "train", f"{out}/data", f"{out}/critic", "--steps", args.critic_steps, "--no-progress",
                 "--set", f"model.styles={STYLES}", log=f"{out}/critic.log")

    def train():
        kgan("train", f"{out}/data", run, "--steps", args.steps, "--no-progress",
             "--set", f"model.styles={STYLES}", *[a for o in args.overrides + critic for a in ("--set", o)],
             log=f"{out}/train.log")

    def vocoder():
        kgan("vocoder", "train", f"{out}/corpus", f"{out}/vocoder", "--steps", args.vocoder_steps, "--no-progress",
             log=f"{out}/vocoder.log")

    def chords():
        if not done(f"{run}/chords/chords.json"):
            kgan("chords", "train", f"{out}/corpus", f"{run}/chords", "--steps", args.chord_steps, "--no-progress",
                 log=f"{out}/chords.log")

    def export():
        phase = ["--phase", "vocoder", "--vocoder", f"{out}/vocoder"] if args.phase == "vocoder" else []
        if args.overlap is not None:
            phase += ["--overlap", args.overlap]
        # the shipped export's output level per style is calibrated on the corpus' val songs; the comparison
        # exports copy its gains, so they differ from it only in what they are meant to
        levels = {"float16": f"{out}/corpus", "float32": f"{out}/export-float16/1"}
        for weights in ("float16", "float32"):
            if not done(f"{out}/export-{weights}/1"):
                kgan("export", run, f"{out}/export-{weights}", "--weights", weights, *phase,
                     "--calibrate-levels", levels[weights])
        if planned and not done(f"{out}/export-soft/1"):  # the same weights told the soft plan, for comparison
            kgan("export", run, f"{out}/export-soft", "--weights", "float16", "--chord-decoding", "soft", *phase,
                 "--calibrate-levels", f"{out}/export-float16/1")

    def evaluate():
        render_test_sets(out, TESTS, args.test_chorales, args.test_folk, args.jobs)
        for test in TESTS:
            report = f"{out}/report-{test}"
            if not done(f"{report}/report.json"):
                check = ["--style-check"] + (["--style-reference", f"{out}/corpus"]
                                             if os.path.exists(f"{out}/corpus/splits.json") else [])
                style = (["--style", "label"] + (check if test in STYLE_CHECK else []) if with_styles else [])
                kgan("evaluate", f"{out}/export-float16", f"{out}/test-{test}", "-o", report,
                     "--split", "" if test == "musdb-real" else "test", "--baselines", BASELINES,
                     "--compare", f"float32={out}/export-float32", *style, "--no-progress",
                     *(["--compare", f"soft-plan={out}/export-soft"] if planned else []),
                     log=f"{out}/evaluate.log")

    if args.run is None:
        stage("corpus", corpus)
        if args.critic_steps:
            stage("critic", style_critic)
        stage("train", train)
    if planned:
        stage("chords", chords)
    if args.phase == "vocoder":
        stage("vocoder", vocoder)
    stage("export", export)
    stage("evaluate", evaluate)

    metrics = collect(out)
    metrics["float16_check"] = float16_check(out)
    with open(os.path.join(run, "config.json"), encoding="utf-8") as f:
        run_config = json.load(f)
    data_dir = _run_data(run_config) if args.run else f"{out}/data"
    with open(os.path.join(data_dir, "dataset.json"), encoding="utf-8") as f:
        dataset = json.load(f)
    from importlib.metadata import version

    export_dir = f"{out}/export-float16/1"
    train_songs = [s for s in dataset["songs"] if s["split"] == "train"]
    info = {"version": version("kgan"), "export": "export/1", "bytes": tree_bytes(export_dir),
            "sha256": tree_sha256(export_dir), "songs": len(dataset["songs"]),
            "hours": sum(s["seconds"] for s in dataset["songs"]) / 3600,
            "train_styles": sorted({s.get("style", "unknown") for s in train_songs}),
            "train_voices": sorted({s.get("voice", "unknown") for s in train_songs}),
            "steps": _run_steps(run), "timings": timings, "styles": _run_styles(run), "phase": args.phase,
            "vocal_input": run_config.get("config", run_config).get("model", {}).get("vocal_input", "comb"),
            "recipe": args.recipe or f"python experiments/pretrained.py {os.path.relpath(out, ROOT)} "
                                     f"--steps {args.steps} --phase {args.phase}"
                                     + (f" --chord-steps {args.chord_steps}"
                                        if planned else "")
                                     + (f" --critic-steps {args.critic_steps} --style-weight {args.style_weight:g}"
                                        f" --style-start {args.style_start}" if args.critic_steps else "")
                                     + "".join(f" --set {o}" for o in args.overrides)
                                     + (f" --overlap {args.overlap:g}" if args.overlap is not None else "")
                                     + " --install"}
    with open(os.path.join(export_dir, "assets", "kgan_config.json"), encoding="utf-8") as f:
        export_meta = json.load(f)
    info["griffin_lim"] = (f"{export_meta['griffin_lim_iters']} iterations from the "
                           f"{export_meta.get('griffin_lim_init', 'random')} phase")
    info["overlap"] = export_meta["config"]["window"]["overlap"]
    metrics["model"] = info
    with open(f"{out}/metrics.json", "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    card = model_card(out, metrics, info)
    with open(f"{out}/MODEL_CARD.md", "w", encoding="utf-8") as f:
        f.write(card)
    print(card)
    if args.install:
        install_export(export_dir)
        for name in ("MODEL_CARD.md", "metrics.json"):
            shutil.copy(f"{out}/{name}", os.path.join(PACKAGE, name))
        print(f"installed {os.path.join(PACKAGE, 'export', '1')} ({info['bytes'] / 1e6:.1f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
