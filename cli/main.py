"""``kgan``: one command per user verb. Heavy imports live inside the commands so ``--help`` is instant."""

from __future__ import annotations

import os
import sys

import click
import numpy as np

from kgan import use_served_kernels

# TensorFlow's C++ start-up chatter is not for users of a CLI.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class FiniteRange(click.FloatRange):
    """``click.FloatRange`` that also refuses nan and inf (which compare false with every bound)."""

    name = "finite float range"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not np.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def _config_options(func):
    """--preset / --config / --set, shared by every command that builds a config."""
    func = click.option(
        "--set", "overrides", multiple=True, metavar="SECTION.FIELD=VALUE",
        help="Override one config field, e.g. --set window.gate_db=-30 (repeatable).",
    )(func)
    func = click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
                        help="A config JSON file (overrides --preset).")(func)
    func = click.option("--preset", default="default", show_default=True,
                        help="Named config preset: default, seed (the earlier attempt's geometry) or tiny.")(func)
    return func


def _resolve_config(preset: str, config_path: str | None, overrides: tuple[str, ...]):
    from kgan import config as kconfig

    try:
        cfg = kconfig.load(config_path) if config_path else kconfig.get_preset(preset)
        pairs = {}
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--set expects SECTION.FIELD=VALUE. Received: {item!r}")
            pairs[key.strip()] = value.strip()
        return cfg.override(**pairs) if pairs else cfg
    except ValueError as e:
        raise click.UsageError(str(e)) from None


def _separation_options(func):
    """--method / --f0-range, shared by `separate` and `preprocess --mixes`."""
    func = click.option("--f0-range", default="80,1000", show_default=True, metavar="LOW,HIGH",
                        help="The lead voice's pitch range in Hz (simm), e.g. 250,900 for a soprano.")(func)
    func = click.option("--method", type=click.Choice(["simm", "repet-sim"]), default="simm", show_default=True,
                        help="simm: Durrieu et al.'s source/filter model (reference); repet-sim: the baseline.")(func)
    return func


def _separation_params(f0_range: str):
    from kgan.separation import SIMMParams

    try:
        low, high = (float(v) for v in f0_range.split(","))
        if not 20 <= low < high <= 4000:
            raise ValueError
    except ValueError:
        raise click.UsageError(f"--f0-range expects LOW,HIGH in Hz with 20 <= LOW < HIGH <= 4000. "
                               f"Received: {f0_range!r}") from None
    return SIMMParams(f0_min=low, f0_max=high)


def _find_mixes(paths, where: str = "") -> tuple[list, list[str]]:
    """kgan.separation.find_mixes path by path: (songs, one-line errors of the paths that failed).

    A missing or unreadable path is reported and the others go on; no song at all is an error.
    """
    from kgan.audio import AudioError
    from kgan.separation import find_mixes

    songs, errors = [], []
    for path in paths:
        try:
            songs += find_mixes([path])
        except AudioError as e:
            errors.append(str(e))
    if not songs:
        detail = f": {errors[0]}" if len(errors) == 1 else ""
        raise click.ClickException(f"{where}no songs found (expected audio files or folders with mixture.*)"
                                   f"{detail}")
    return songs, errors


def compute_option(command):
    """``--compute auto|float32|bfloat16``: which of an export's signatures runs (``kgan.export.signature_for``)."""
    return click.option(
        "--compute", type=click.Choice(["auto", "float32", "bfloat16"]), default="auto", show_default=True,
        help="Run an export's bfloat16 twin (kgan export --compute both) where it has one: 'auto' does on a "
             "CPU with bf16 dot products (AVX512_BF16, AMX) under oneDNN's kernels; float32 never. With --server, "
             "bfloat16 asks for the twin by name, and otherwise the server decides.")(command)


def _pretrained() -> str:
    """The export base of the model that ships with kgan, or one line saying this build has none."""
    from kgan import pretrained

    try:
        return pretrained.export_base()
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from None


def _echo_failures(header: str, lines) -> None:
    """What a batch command went on past: ``header``, then one indented line per failure, on stderr."""
    click.echo(header, err=True)
    for line in lines:
        click.echo(f"  {line}", err=True)


def _one_line(error: Exception) -> str:
    """An exception as one line that names the file where it has one."""
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    text = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    message = getattr(error, "message", None)  # TensorFlow's errors carry the op's context in str()
    if message:
        text = next((line.strip() for line in str(message).splitlines() if line.strip()), text)
    return text[:500] or type(error).__name__


class KganGroup(click.Group):
    """Every failure of a command ends in one line and an exit status; ``--debug`` shows the traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt):
            raise
        except Exception as e:
            if ctx.params.get("debug"):
                raise
            if isinstance(e, (OSError, ValueError)) or type(e).__module__.startswith("tensorflow"):
                raise click.ClickException(_one_line(e)) from None
            raise click.ClickException(f"unexpected {type(e).__name__}: {_one_line(e)} "
                                       "(run with --debug or KGAN_DEBUG=1 for the traceback)") from None


@click.group(cls=KganGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="kgan")
@click.option("--debug", is_flag=True, envvar="KGAN_DEBUG", help="Show the traceback of an unexpected error.")
def main(debug):
    """kgan: generate the accompaniment (karaoke track) of a sung vocal."""


@main.command()
@click.argument("input_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@_config_options
@click.option("--plot", "n_plots", type=click.IntRange(min=0), default=0, show_default=True,
              help="Write this many PNGs of random training windows to OUT_DIR/plots.")
@click.option("--mixes", is_flag=True,
              help="INPUT_DIR holds finished songs (audio files, or folders with mixture.*): separate each "
                   "first (into --separated-dir), then preprocess the separated stems.")
@click.option("--separated-dir", type=click.Path(file_okay=False),
              help="Where --mixes writes the separated songs (default: OUT_DIR/separated). Reused on re-runs.")
@_separation_options
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --mixes: songs separated and preprocessed in parallel by an Apache Beam pipeline "
                   "(DirectRunner, one process a worker; needs kgan[beam]). 1: the plain path.")
@click.option("--beam-arg", "beam_args", multiple=True, metavar="ARG",
              help="With --workers: passed to Beam's PipelineOptions, e.g. --beam-arg=--runner=FlinkRunner.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def preprocess(input_dir, out_dir, preset, config_path, overrides, n_plots, mixes, separated_dir, method, f0_range,
               workers, beam_args, no_progress):
    """Turn song folders (MUSDB18 layout) into TFRecord shards of voiced spectrogram segments.

    INPUT_DIR holds one folder per song with vocals.* and either accompaniment.* or
    drums.*, bass.* and other.* (wav, flac, mp3 or ogg). A bad song is reported in one
    line and skipped; the exit status is 1 if any song failed. Re-running resumes.

    With --mixes, INPUT_DIR holds finished songs instead; each is separated with
    `kgan separate` first (see its help) and the separated stems are preprocessed.

    \b
    Example:
      kgan corpus chorales data/chorales --n 20
      kgan preprocess data/chorales data/chorales-tfr --plot 4
      kgan preprocess --mixes my_songs/ data/my-songs-tfr
      kgan preprocess --mixes my_library/ data/library-tfr --workers 2     # Apache Beam
    """
    from kgan.preprocess import SongError, plot_windows
    from kgan.preprocess import preprocess as run

    cfg = _resolve_config(preset, config_path, overrides)
    if (workers > 1 or beam_args) and not mixes:
        raise click.UsageError("--workers and --beam-arg go with --mixes")
    separation_failed = []
    if mixes:
        from kgan.io_utils import atomic_write_text
        from kgan.separation import separate_files

        params = _separation_params(f0_range)
        separated_dir = separated_dir or os.path.join(out_dir, "separated")
        songs, _ = _find_mixes([input_dir], where=f"{input_dir}: ")
        splits = os.path.join(input_dir, "splits.json")
        if os.path.exists(splits):  # keep a corpus' split by piece
            os.makedirs(separated_dir, exist_ok=True)
            with open(splits, encoding="utf-8") as f:
                atomic_write_text(os.path.join(separated_dir, "splits.json"), f.read())
        if workers > 1 or beam_args:
            from kgan import pipeline

            if not pipeline.available():
                raise click.ClickException("--workers needs Apache Beam: pip install 'kgan[beam]'")
            try:
                summary, failed = pipeline.preprocess_mixes(
                    songs, separated_dir, out_dir, cfg, method, params, workers, beam_args, not no_progress)
            except (SongError, ValueError, RuntimeError) as e:  # RuntimeError: the pipeline itself failed
                raise click.ClickException(str(e)) from None
            counts = summary["counts"]
            click.echo(f"preprocessed {len(summary['songs'])} song(s) with {workers} Beam worker(s): "
                       f"train {counts['train']['songs']} / val {counts['val']['songs']} songs, "
                       f"kept {counts['train']['seconds_kept'] + counts['val']['seconds_kept']:.1f} s", err=True)
            for path in plot_windows(out_dir, n_plots, seed=cfg.train.seed):
                click.echo(f"wrote {path}")
            if failed:  # separation and preprocessing failures, each listed once
                _echo_failures(f"{len(failed)} song(s) failed:", failed)
                sys.exit(1)
            return
        _, separation_failed = separate_files(songs, separated_dir, method, params, progress=not no_progress,
                                              skip_existing=True)
        input_dir = separated_dir
    try:
        summary = run(input_dir, out_dir, cfg, progress=not no_progress)
    except SongError as e:
        raise click.ClickException(str(e)) from None
    for path in plot_windows(out_dir, n_plots, seed=cfg.train.seed):
        click.echo(f"wrote {path}")
    if separation_failed:
        _echo_failures(f"{len(separation_failed)} song(s) could not be separated:", separation_failed)
    if summary["failed"] or separation_failed:
        sys.exit(1)


@main.command()
@click.argument("songs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the separated songs, one sub-folder each.")
@_separation_options
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def separate(songs, out_dir, method, f0_range, no_progress):
    """Split finished songs into vocal and accompaniment stems, without pretrained weights.

    Each SONG is an audio file (wav, flac, mp3, ogg; any rate, mono or stereo), a folder
    with mixture.* (MUSDB18 layout), or a folder of those. Each song becomes
    OUT_DIR/<name>/ with vocals.wav and accompaniment.wav (the input's length, rate and
    channels; they sum to the input) and, for simm, melody.csv (time_s,f0_hz; 0 = unvoiced),
    ready for `kgan preprocess`. A bad file is reported in one line and the rest go on;
    the exit status is 1 if any failed.

    \b
    Example:
      kgan separate song.mp3 album/ -o separated
      kgan preprocess separated data/separated-tfr
    """
    from kgan.separation import separate_files

    params = _separation_params(f0_range)
    found, missing = _find_mixes(songs)
    written, failed = separate_files(found, out_dir, method, params, progress=not no_progress)
    for folder in written:
        click.echo(f"wrote {folder}")
    errors = missing + failed
    if errors:
        _echo_failures(f"{len(errors)} of {len(found) + len(missing)} song(s) failed:", errors)
        sys.exit(1)


@main.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("run_dir", type=click.Path(file_okay=False))
@_config_options
@click.option("--steps", type=click.IntRange(min=0), default=None, help="Train to this step (default: train.steps).")
@click.option("--cpu-replicas", type=click.IntRange(min=1), default=1, show_default=True,
              help="Without GPUs, split the CPU into this many logical devices and mirror over them.")
@click.option("--deterministic", is_flag=True, help="Turn on TensorFlow op determinism (slower).")
@click.option("--resume-from", default=None, metavar="ckpt-N",
              help="Resume from this checkpoint of RUN_DIR/checkpoints instead of the newest (e.g. a damaged one).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def train(data_dir, run_dir, preset, config_path, overrides, steps, cpu_replicas, deterministic, resume_from,
          no_progress):
    """Train the U-Net generator and PatchGAN discriminator on a preprocessed data set.

    Settings come from --preset/--config/--set; their audio, STFT and window sections must
    match the ones DATA_DIR was preprocessed with (DATA_DIR/dataset.json). Re-running the same command resumes from the
    newest checkpoint in RUN_DIR. With TF_CONFIG set, trains with MultiWorkerMirroredStrategy.
    TensorBoard logs go to RUN_DIR/logs.

    \b
    Example:
      kgan train data/chorales-tfr runs/chorales --steps 5000
      tensorboard --logdir runs/chorales/logs
    """
    from kgan import training

    if cpu_replicas > 1:
        training.split_cpu(cpu_replicas)  # before TensorFlow starts
    cfg = _resolve_config(preset, config_path, overrides)
    if steps is not None:
        cfg = cfg.override(**{"train.steps": steps})
    cfg = _check_data_config(cfg, data_dir)
    if os.path.exists(os.path.join(run_dir, "config.json")):
        previous = training.read_run_config(run_dir)
        diff = training.config_difference(previous, cfg)
        if diff:
            raise click.ClickException(
                f"{run_dir} holds a run with another config ({diff}); use a new RUN_DIR or the same settings"
            )
    if deterministic:
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(cfg.train.seed)
        tf.config.experimental.enable_op_determinism()
    trainer = training.Trainer(cfg, run_dir, training.make_strategy(cpu_replicas))
    if trainer.chief:
        training.write_run_config(run_dir, cfg, ["kgan", *sys.argv[1:]])
    click.echo(f"training on {trainer.strategy.num_replicas_in_sync} replica(s), "
               f"generator {trainer.generator.count_params():,} and discriminator "
               f"{trainer.discriminator.count_params():,} parameters", err=True)
    click.echo(_style_line(cfg, data_dir), err=True)
    try:
        metrics = trainer.fit(data_dir, progress=not no_progress, resume_from=resume_from)
    except training.TrainingDiverged as e:
        raise click.ClickException(str(e)) from None
    if metrics:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        click.echo(f"step {int(trainer.step.numpy())}: {shown}; checkpoints in {trainer.manager.directory}")


def _style_line(cfg, data_dir) -> str:
    """What the run does with the data set's style labels, in one line."""
    from collections import Counter

    from kgan.dataset import read_metadata

    labels = Counter(s.get("style") or "none" for s in read_metadata(data_dir)["songs"] if s["split"] == "train")
    found = ", ".join(f"{name} {count}" for name, count in sorted(labels.items()))
    names = cfg.model.style_names
    if not names:
        hint = ",".join(sorted(n for n in labels if n != "none"))
        return (f"style labels of the training songs: {found}; unconditioned model"
                + (f" (condition on them with --set model.styles={hint})" if hint else ""))
    unknown = sorted(n for n in labels if n not in names)
    return (f"style-conditioned on {', '.join(names[1:])} (dropout {cfg.train.style_dropout:g} to 'any'); "
            f"training songs: {found}" + (f"; trained as 'any': {', '.join(unknown)}" if unknown else ""))


def _check_data_config(cfg, data_dir):
    """Refuse a config whose audio, STFT or window settings differ from the data set's."""
    from kgan.config import Config
    from kgan.dataset import read_metadata

    try:
        data_cfg = Config.from_dict(read_metadata(data_dir)["config"])
    except (FileNotFoundError, KeyError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    for section in ("audio", "stft", "window"):
        if getattr(data_cfg, section) != getattr(cfg, section):
            raise click.ClickException(
                f"{data_dir} was preprocessed with other {section} settings ({getattr(data_cfg, section)}) "
                f"than the training config ({getattr(cfg, section)}); pass --preset {data_cfg.preset} "
                "or preprocess again"
            )
    return cfg


@main.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("export_base", type=click.Path(file_okay=False))
@click.option("--version", "version", type=click.IntRange(min=1), default=None,
              help="Version directory to write (default: one above the newest in EXPORT_BASE).")
@click.option("--griffin-lim-iters", type=click.IntRange(min=0), default=None,
              help="Griffin-Lim iterations baked into the serving graph (default: 16, or the source export's); "
                   "with --phase vocoder, the iterations that refine the vocoder's waveform (default: its "
                   "folder's, or 8 accelerated ones after a vocoder trained without any; 0: the network alone).")
@click.option("--griffin-lim-algorithm", type=click.Choice(["fast", "accelerated"]), default=None,
              help="Fast Griffin-Lim (Perraudin et al. 2013; the default, or the source export's), or the "
                   "accelerated algorithm (Nenov et al. 2023): 13 of its iterations score what 16 fast ones do, "
                   "in up to 9 % less time.")
@click.option("--griffin-lim-init", type=click.Choice(["integrated", "random"]), default=None,
              help="Griffin-Lim's starting phase: each partial's frequency integrated over frames (a phase "
                   "vocoder; the default, or the source export's), or random.")
@click.option("--checkpoint", default=None, metavar="ckpt-N",
              help="Export this checkpoint of RUN_DIR/checkpoints instead of the newest.")
@click.option("--weights", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
              help="How the generator's weights are stored; float16 halves the export, the arithmetic stays float32.")
@click.option("--compute", type=click.Choice(["float32", "bfloat16", "both"]), default="float32",
              show_default=True,
              help="The generator's arithmetic. bfloat16 is about 2x faster on a CPU with AVX512_BF16 under "
                   "oneDNN's kernels (kgan generate and serve use them), and far slower where TensorFlow's own "
                   "kernels emulate it. both: float32 signatures plus their bfloat16 twins (serving_bfloat16, "
                   "spectrogram_bfloat16) on the same stored weights, which kgan generate/serve/evaluate run where "
                   "the CPU computes bfloat16 at speed.")
@click.option("--phase", type=click.Choice(["griffin-lim", "vocoder"]), default="griffin-lim", show_default=True,
              help="How the waveform is made from the generated magnitudes: fast Griffin-Lim, or the learned "
                   "vocoder given by --vocoder (kgan vocoder train).")
@click.option("--vocoder", "vocoder_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="A kgan vocoder train folder, for --phase vocoder.")
@click.option("--chords", "chords_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="A kgan chords train folder: the chord network of a model.vocal_input=plan run "
                   "(default: RUN_DIR/chords); or an export, whose chord network is taken.")
@click.option("--chord-decoding", type=click.Choice(["argmax", "soft"]), default="argmax", show_default=True,
              help="The plan a model.vocal_input=plan generator is told: the chord network's likeliest triad per "
                   "frame, or every triad's tones weighted by its probability.")
@click.option("--overlap", type=FiniteRange(min=0.0, max=1.0, max_open=True), default=None,
              help="Share of frames consecutive generated windows overlap by (default: the run's "
                   "window.overlap); 0.25 generates a third fewer windows than 0.5.")
@click.option("--calibrate-levels", "level_corpus", type=click.Path(exists=True, file_okay=False), default=None,
              help="A kgan corpus folder: generate its val songs, each in its own style, and store the gain per "
                   "style that brings the output to the true accompaniments' level (kgan.levels). Or an export: "
                   "copy its gains.")
@click.option("--high-band", "high_band", default=None, metavar="CORPUS|EXPORT|off",
              help="Add the octave above the model's band (output at twice its rate, e.g. 44.1 kHz), copied up "
                   "from the octave below and set per style by gains fitted on the train songs of CORPUS, a kgan "
                   "corpus rendered at twice the rate (--preset fullband); or copy an EXPORT's; or 'off'. An "
                   "export exported again keeps its source's unless told.")
def export_cmd(run_dir, export_base, version, griffin_lim_iters, griffin_lim_algorithm, griffin_lim_init, checkpoint,
               weights, compute, phase, vocoder_dir, chords_dir, chord_decoding, overlap, level_corpus, high_band):
    """Export the newest checkpoint of RUN_DIR as a SavedModel in TF Serving's layout (EXPORT_BASE/N).

    RUN_DIR may also be an export (EXPORT_BASE/N, the shipped kgan/pretrained/export/1 included): its
    stored weights are exported again, e.g. with another chord network (--chords), phase or overlap.

    \b
    Example:
      kgan export runs/chorales exports/kgan
      saved_model_cli show --dir exports/kgan/1 --all
      kgan export runs/chorales exports/kgan --checkpoint ckpt-2500
      kgan export runs/chorales exports/kgan-small --weights float16
      kgan export runs/chorales exports/kgan-voc --phase vocoder --vocoder runs/vocoder
      kgan export runs/plan exports/kgan-plan --chords runs/chords
      kgan export runs/chorales exports/kgan-fast --overlap 0.25
      kgan export runs/chorales exports/kgan-agla --griffin-lim-algorithm accelerated --griffin-lim-iters 13
      kgan export kgan/pretrained/export/1 exports/kgan-bf16 --weights float16 --compute both
      kgan export kgan/pretrained/export/1 exports/kgan-new-chords --weights float16 --chords runs/chords
      kgan export runs/corpus exports/kgan --calibrate-levels data/corpus
      kgan corpus build data/corpus-44k --preset fullband --chorales 40 --folk 160 --jobs 2
      kgan export kgan/pretrained/export/1 exports/kgan-44k --weights float16 --high-band data/corpus-44k
    """
    from kgan.export import export, forbidden_ops, unrestored_variables

    if high_band not in (None, "off") and not os.path.isdir(high_band):
        raise click.BadParameter(f"{high_band}: not a folder (a corpus at twice the model's rate, an export, "
                                 "or 'off')", param_hint="--high-band")
    if (phase == "vocoder") != (vocoder_dir is not None):
        raise click.UsageError("--phase vocoder needs --vocoder DIR (and --vocoder needs --phase vocoder)")

    if checkpoint is not None:
        name = os.path.basename(checkpoint)
        checkpoint = os.path.join(run_dir, "checkpoints", name)
        if not os.path.exists(checkpoint + ".index"):
            raise click.BadParameter(f"{checkpoint}: no such checkpoint", param_hint="--checkpoint")
    try:
        path = export(run_dir, export_base, version, griffin_lim_iters, checkpoint, weights, vocoder=vocoder_dir,
                      griffin_lim_init=griffin_lim_init, chords=chords_dir, chord_decoding=chord_decoding,
                      overlap=overlap, calibrate_levels=level_corpus, high_band=high_band, compute=compute,
                      griffin_lim_algorithm=griffin_lim_algorithm, progress=True)
    except (FileNotFoundError, FileExistsError) as e:
        raise click.ClickException(str(e)) from None
    bad = forbidden_ops(path)
    if bad:
        raise click.ClickException(f"{path}: graph holds ops stock TF Serving lacks: {', '.join(bad)}")
    unrestored = unrestored_variables(path)
    if unrestored:
        raise click.ClickException(f"{path}: stock TF Serving would find these variables uninitialised: "
                                   f"{', '.join(unrestored)}")
    from kgan.export import BFLOAT16_SIGNATURES

    names = ["serving_default", "spectrogram", "metadata", *(BFLOAT16_SIGNATURES.values() if compute == "both" else [])]
    click.echo(f"exported {path} (signatures: {', '.join(names)})")


@main.command()
@click.argument("vocals", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False), help="Where to write results.")
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False),
              help="Run an export here: EXPORT_BASE (newest version is used) or EXPORT_BASE/N "
                   "(default: the pretrained model that ships with kgan).")
@click.option("--server", metavar="HOST:PORT", help="Or ask a TF Serving (or `kgan serve`) gRPC server.")
@click.option("--model-name", default="kgan", show_default=True, help="Model name on the server.")
@click.option("--chunk-seconds", type=FiniteRange(min=1.0, max=3600.0), default=30.0, show_default=True,
              help="Songs are generated this many seconds at a time (with a 1 s cross-fade).")
@click.option("--style", help="Accompaniment style of a style-conditioned model, by name or id "
                              "(e.g. piano, band; default: any). An unknown one lists the model's styles.")
@click.option("--bpm", type=FiniteRange(min=6.0, max=1200.0), default=None,
              help="The song's tempo in beats a minute (quarters in 4/4, dotted quarters in 6/8), for a model "
                   "whose chord network takes a beat grid (its chords then change on the strong beats), and the "
                   "tempo a --chords chart's bars are counted in.")
@click.option("--meter", "meter_signature", default=None, metavar="N/D",
              help="With --bpm: the time signature (default 4/4); chords may change every half bar in 4/4, "
                   "2/2, 6/8 and 12/8, every bar in the others.")
@click.option("--downbeat", type=FiniteRange(min=0.0, max=86400.0), default=None,
              help="With --bpm: when the first full bar starts, in seconds from the start of the file (default 0).")
@click.option("--chords", "chart_text", default=None, metavar="CHART",
              help="The song's chords, which the accompaniment then plays instead of the model's guesses: bars "
                   "between '|', a bar's chords sharing it equally, e.g. 'C G | Am F | C . G7 . | %' ('.': the chord "
                   "goes on, '%': the bar again, N: no chord, ?: the model's guess). Needs --bpm; the first bar "
                   "starts at --downbeat.")
@click.option("--chords-file", "chart_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Or read the chart from a text file (lines are bars too; a word starting with '#' starts a "
                   "comment), e.g. one kgan chords guess wrote and you corrected.")
@click.option("--exact-grid", is_flag=True,
              help="Place the --chords chart exactly on --bpm and --downbeat; by default their grid is first fitted "
                   "to each vocal's note starts (a tempo within 5 %, a downbeat within half a beat).")
@click.option("--from-mix", "from_mix", type=click.Choice(["simm", "repet-sim"]), default=None,
              help="The files are finished songs: separate each one's vocal first (as `kgan separate`, written "
                   "as <name>_vocals.wav) and accompany that.")
@compute_option
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def generate(vocals, out_dir, model_dir, server, model_name, chunk_seconds, style, bpm, meter_signature, downbeat,
             chart_text, chart_file, exact_grid, from_mix, compute, no_progress):
    """Generate the accompaniment of each VOCAL file (wav, flac, mp3, ogg; any rate or channels).

    Writes <name>_accompaniment.wav, <name>_remix.wav (vocal + accompaniment) and
    <name>.png (vocal and generated spectrograms) into OUT_DIR. A bad file is reported
    in one line and the others go on; the exit status is 1 if any failed.

    \b
    Example:
      kgan generate my_vocal.mp3 -o karaoke                  # the pretrained model
      kgan generate my_vocal.mp3 -o karaoke --style band
      kgan generate my_vocal.mp3 -o karaoke --model exports/kgan
      kgan generate my_vocal.mp3 -o karaoke --server 127.0.0.1:8500 --style piano
      kgan generate my_vocal.mp3 -o karaoke --bpm 96 --meter 3/4 --downbeat 0.62
      kgan generate my_vocal.mp3 -o karaoke --bpm 96 --downbeat 1.25 --chords "C G | Am F | F G | C"
      kgan generate my_song.mp3 -o karaoke --from-mix simm    # a finished song: its vocal, re-accompanied
    """
    if model_dir is not None and server is not None:
        raise click.UsageError("give at most one of --model and --server")
    meter = None
    if bpm is None and (meter_signature is not None or downbeat is not None):
        raise click.UsageError("--meter and --downbeat go with --bpm (the tempo)")
    if bpm is not None:
        from kgan.harmony import meter_seconds

        try:
            meter = meter_seconds(bpm, meter_signature or "4/4", downbeat or 0.0)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--meter") from None
    chart = _read_chart(chart_text, chart_file, bpm, meter_signature, downbeat, fit=not exact_grid)
    use_served_kernels()
    from kgan.generation import LocalModel, generate_files

    if model_dir is None and server is None:
        model_dir = _pretrained()

    if server:
        import grpc

        from kgan.client import RemoteModel

        try:
            model = RemoteModel(server, model_name)
            if compute == "bfloat16":  # ask for the twin by name (stock TF Serving answers what it is asked)
                from kgan.export import signature_for

                model.signature = signature_for("serving_default", model.signatures(), compute)
        except grpc.RpcError as e:
            raise click.ClickException(f"{server}: {e.code().name}: {e.details()}") from None
    else:
        try:
            model = LocalModel(model_dir, compute=compute)
        except FileNotFoundError as e:
            raise click.ClickException(str(e)) from None
    try:
        model.set_style(style)
    except ValueError as e:  # an unknown style: the message lists the model's styles
        raise click.BadParameter(str(e), param_hint="--style") from None
    try:
        model.set_meter(meter)
    except ValueError as e:  # a model whose chord network takes no beat grid
        if chart is None:
            raise click.BadParameter(str(e), param_hint="--bpm") from None
        # a chart counts bars at --bpm whether or not the chord network takes a beat grid
    try:  # placed on each vocal in turn (generate_files); here only whether the model takes one
        model.set_chart(None if chart is None else chart.as_given())
    except ValueError as e:  # a model without a chord plan
        raise click.BadParameter(str(e), param_hint="--chords") from None
    failed = generate_files(vocals, out_dir, model, chunk_seconds, progress=not no_progress, separate_method=from_mix,
                            chart=chart)
    if failed:
        _echo_failures(f"{len(failed)} file(s) failed:", failed)
        sys.exit(1)


def _read_chart(text, path, bpm, meter_signature, downbeat, fit: bool = True):
    """``kgan generate``'s chord chart (a ``kgan.chart.ChartText``) from --chords or --chords-file, or None."""
    if text is not None and path is not None:
        raise click.UsageError("give at most one of --chords and --chords-file")
    if text is None and path is None:
        return None
    if bpm is None:
        raise click.UsageError("--chords needs --bpm: the tempo its bars are counted in")
    hint = "--chords" if path is None else "--chords-file"
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise click.BadParameter(f"{path}: unreadable ({e})", param_hint=hint) from None
    from kgan.chart import ChartText

    try:
        return ChartText(text, bpm, meter_signature or "4/4", downbeat or 0.0, fit)
    except ValueError as e:
        raise click.BadParameter(f"{path}: {e}" if path else str(e), param_hint=hint) from None


@main.command()
@click.argument("export_base", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--port", type=click.IntRange(0, 65535), default=8500, show_default=True, help="gRPC port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0: all interfaces).")
@click.option("--model-name", default="kgan", show_default=True, help="Model name requests must use.")
@click.option("--max-seconds", type=FiniteRange(min=0.0, min_open=True, max=3600.0), default=300.0,
              show_default=True, help="Most work accepted in one request, in seconds of audio (priced in "
                                      "generator windows over the whole batch; longer songs: send chunks).")
@click.option("--mmap-threshold", type=click.IntRange(min=0, max=1024), default=None, metavar="MIB",
              help="Buffers this large (MiB) or larger get their own memory mappings, handed back when freed: "
                   "lower holds less memory after a large request, higher answers short ones faster (0: the C "
                   "library's own threshold)  [default: 16]")
@compute_option
def serve(export_base, port, host, model_name, max_seconds, mmap_threshold, compute):
    """Serve EXPORT_BASE over gRPC with TF Serving's PredictionService (Predict, GetModelMetadata).

    The newest numeric version folder is served, as TF Serving does; without EXPORT_BASE,
    the pretrained model that ships with kgan. For machines without TF Serving; stock TF
    Serving loads the same export (see serving/).

    \b
    Example:
      kgan serve --port 8500                   # the pretrained model
      kgan serve exports/kgan --port 8500
      kgan generate my_vocal.wav -o karaoke --server 127.0.0.1:8500
    """
    if export_base is None:
        export_base = _pretrained()
    use_served_kernels()
    from kgan.server import serve as start

    try:
        server, bound = start(export_base, host, port, model_name, max_seconds=max_seconds, compute=compute,
                              **({} if mmap_threshold is None else {"mmap_threshold_mib": mmap_threshold}))
    except (FileNotFoundError, OSError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"serving {model_name!r} from {export_base} on {host}:{bound} (Ctrl-C stops)", err=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(grace=2)


@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="[MODEL] DATA_DIR",
                type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out-dir", default="report", show_default=True, type=click.Path(file_okay=False))
@click.option("--split", default="test", show_default=True,
              help="Which songs of DATA_DIR/splits.json to evaluate ('' for every folder).")
@click.option("--baselines", default="silence,echo,drone,running-chroma,harmoniser,retrieval", show_default=True,
              help="Comma-separated: silence, echo, drone, running-chroma, harmoniser (the chords input's "
                   "plan alone), mean (needs --train-data), "
                   "retrieval (needs DATA_DIR/splits.json train songs).")
@click.option("--train-data", type=click.Path(exists=True, file_okay=False),
              help="A preprocessed training set, for the 'mean' baseline.")
@click.option("--compare", "compare", multiple=True, metavar="NAME=EXPORT",
              help="Another export to score through the same code, e.g. l1-only=exports/l1 (repeatable).")
@click.option("--max-seconds", type=FiniteRange(min=0.0, min_open=True, max=1e6), default=None,
              help="Score only the first seconds of each song.")
@click.option("--style", default=None, metavar="NAME|ID|label",
              help="Style a style-conditioned MODEL plays: a name or id, or 'label' for each song's own "
                   "(from its song.json; unlabelled songs get 'any'). Default: any.")
@click.option("--style-check", is_flag=True,
              help="Also generate every song in every style and check that each style sounds like its true "
                   "accompaniments (styles.json, styles.md).")
@click.option("--style-reference", type=click.Path(exists=True, file_okay=False),
              help="With --style-check: a labelled corpus whose train split's true accompaniments (40 a style) fit "
                   "a style classifier, a second judge of the outputs' style.")
@click.option("--grid", "told_grid", is_flag=True,
              help="Tell every model whose chord network takes a beat grid each song's own (its song.json's tempo, "
                   "meter and pickup), as a user would with generate --bpm/--meter/--downbeat.")
@click.option("--chords", "told_chords", type=click.Choice(["guess", "score", "heard"]), default="guess",
              show_default=True,
              help="score: give every model that takes a chord chart each song's own chords (its song.json's "
                   "chord_track), as a singer who knows them would with generate --chords; heard: the chords heard "
                   "in each song's true accompaniment, frame by frame (for songs without a score); guess: the "
                   "model's own.")
@compute_option
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def evaluate(paths, out_dir, split, baselines, train_data, compare, max_seconds, style, style_check, style_reference,
             told_grid, told_chords, compute, no_progress):
    """Score generated accompaniments against the true ones, with baselines through the same code.

    MODEL is an export (EXPORT_BASE or EXPORT_BASE/N; default: the pretrained model).
    DATA_DIR holds songs in the stems layout, e.g. a `kgan corpus` folder, whose test split
    is used. Writes report.json, report.md (mean ± 95 % CI per metric), metrics.png and a
    triptych per song.

    \b
    Example:
      kgan evaluate data/corpus -o report                    # the pretrained model
      kgan evaluate exports/kgan data/chorales -o report --compare l1-only=exports/l1
    """
    if len(paths) > 2:
        raise click.UsageError(f"expected [MODEL] DATA_DIR. Received: {len(paths)} paths")
    model_path, data_dir = (_pretrained(), paths[0]) if len(paths) == 1 else paths
    if style_reference and not style_check:
        raise click.UsageError("--style-reference goes with --style-check")
    if style_reference:  # fail before the long work: the same reader the classifier uses
        from kgan.io_utils import split_names

        try:
            split_names(style_reference, "train")
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--style-reference") from None
    use_served_kernels()
    from kgan import evaluation as ev
    from kgan.generation import LocalModel
    from kgan.inference import generate_song
    from kgan.io_utils import remove_stale_temporaries

    def run(m):
        return lambda vocal, r: generate_song(m, vocal, r, at_input_rate=True)

    try:  # every model first, so a bad --compare fails before any work
        model = LocalModel(model_path, compute=compute)
        if (style == "label" or style_check) and not model.style_names:
            raise click.UsageError(f"{model.path} is not style-conditioned: --style label and --style-check need "
                                   "a model trained with model.styles")
        compared = {}
        for item in compare:
            name, sep, path = item.partition("=")
            if not sep:
                raise click.UsageError(f"--compare expects NAME=EXPORT. Received: {item!r}")
            compared[name] = LocalModel(path, compute=compute)
        if style not in (None, "label"):  # every style-conditioned model plays the asked-for style
            for m in [model, *compared.values()]:
                if m is model or m.style_names:
                    try:
                        m.set_style(style)
                    except ValueError as e:
                        raise click.BadParameter(f"{m.path}: {e}", param_hint="--style") from None
        systems = {"model": run(model), **{name: run(m) for name, m in compared.items()}}
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from None
    rate = model.sample_rate
    failed: list[str] = []
    songs = ev.load_songs(data_dir, rate, split or None, max_seconds, failed=failed)
    for line in failed:
        click.echo(f"error: {line}", err=True)
    if not songs:
        raise click.ClickException(f"{data_dir}: no readable songs in split {split!r}")
    labels = ev.song_labels(data_dir, [n for n, _, _ in songs])
    meters = {}
    if told_grid:
        from kgan.harmony import song_meter
        from kgan.io_utils import song_info

        meters = {n: song_meter(song_info(os.path.join(data_dir, n))) for n, _, _ in songs}
    charts = {}
    if told_chords == "score":
        from kgan.chart import ChordChart
        from kgan.io_utils import score_chords

        tracks = {n: score_chords(os.path.join(data_dir, n)) for n, _, _ in songs}
        charts = {n: ChordChart(tuple(tuple(row) for row in t)) for n, t in tracks.items() if t}
    elif told_chords == "heard":
        from kgan.chart import ChordChart
        from kgan.chords import song_arrays

        charts = {n: ChordChart.from_frames(song_arrays(v, a, model.config)[1], model.config) for n, v, a in songs}
    for name, m in (("model", model), *compared.items()):
        labelled = style == "label" and bool(m.style_names)  # each song's own style, for compared exports too
        charted = told_chords != "guess" and m.takes_chords
        if labelled or (told_grid and m.takes_meter) or charted:
            systems[name] = _per_song(m, labels if labelled else None, meters if told_grid and m.takes_meter else None,
                                      charts if charted else None)
    chosen = [b.strip() for b in baselines.split(",") if b.strip()]
    unknown = set(chosen) - set(ev.BASELINES)
    if unknown:
        raise click.UsageError(f"unknown baseline(s) {sorted(unknown)}; expected some of {list(ev.BASELINES)}")
    for b in chosen:
        if b == "silence":
            systems[b] = lambda vocal, r: np.zeros_like(vocal)
        elif b == "echo":
            systems[b] = lambda vocal, r: vocal
        elif b == "drone":
            systems[b] = ev.drone_baseline
        elif b == "running-chroma":
            systems[b] = ev.running_chroma_baseline
        elif b == "harmoniser":
            systems[b] = ev.Harmoniser()
        elif b == "mean":
            if not train_data:
                raise click.UsageError("the 'mean' baseline needs --train-data")
            systems[b] = ev.MeanSpectrogram(train_data)
        elif b == "retrieval":
            train = ev.load_songs(data_dir, rate, "train", max_seconds)
            if not train:
                raise click.UsageError(f"the 'retrieval' baseline needs train songs in {data_dir}/splits.json")
            systems[b] = ev.Retrieval([(v, a) for _, v, a in train], rate)
    remove_stale_temporaries(out_dir)  # pictures of a killed run
    report = ev.evaluate(systems, songs, rate, progress=not no_progress)
    report["failed"] = failed
    report["style"] = style or "any"
    report["grid"] = "told" if told_grid else "unknown"
    report["chords"] = told_chords
    report["labels"] = {"style": labels}
    ev.write_report(report, songs, out_dir, model.config)
    click.echo(ev.markdown_table(report))
    if style_check:
        _style_check(model, songs, labels, out_dir, progress=not no_progress, reference=style_reference)
    click.echo(f"report in {out_dir}")
    if failed:
        _echo_failures(f"{len(failed)} song(s) could not be read and were not scored:", failed)
        sys.exit(1)


def _per_song(model, labels=None, meters=None, charts=None):
    """``model`` run in each song's own style (with ``labels``: its label among the model's styles, else
    "any"), told each song's beat grid (with ``meters``: a song without one plays it unknown) and given its
    chord chart (with ``charts``: a song without one keeps the model's guesses)."""
    from kgan.inference import generate_song

    def run(vocal, rate, song=None):
        if labels is not None:
            label = labels.get(song)
            model.set_style(label if label in model.style_names else None)
        if meters is not None:
            model.set_meter(meters.get(song))
        if charts is not None:
            model.set_chart(charts.get(song))
        return generate_song(model, vocal, rate, at_input_rate=True)

    run.per_song = True
    return run


def _style_check(model, songs, labels, out_dir, progress=True, reference=None):
    """``kgan evaluate --style-check``: every song in every style; styles.json and styles.md (with a classifier
    fitted on ``reference``'s train songs, if given)."""
    import json

    from kgan import evaluation as ev
    from kgan.inference import generate_song
    from kgan.io_utils import atomic_write_text

    def generate(vocal, rate, style):
        model.set_style(style)
        return generate_song(model, vocal, rate, at_input_rate=True)

    try:
        classifier = None
        if reference:
            classifier = ev.StyleClassifier(*ev.reference_styles(reference, model.style_names[1:], model.sample_rate),
                                            model.sample_rate)
        check = ev.style_check(generate, songs, labels, model.style_names[1:], model.sample_rate, progress,
                               classifier=classifier)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    atomic_write_text(os.path.join(out_dir, "styles.json"), json.dumps(check, indent=2, sort_keys=True) + "\n")
    table = ev.style_table(check)
    atomic_write_text(os.path.join(out_dir, "styles.md"), "# Style control\n\n" + table + "\n")
    click.echo(table)


@main.group()
def vocoder():
    """The learned vocoder that replaces Griffin-Lim (kgan export --phase vocoder)."""


@vocoder.command("train")
@click.argument("corpus_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@_config_options
@click.option("--steps", type=click.IntRange(min=0), default=None, help="Training steps (default: 20000).")
@click.option("--channels", type=click.IntRange(min=1), default=None,
              help="Width of the ConvNeXt stack (default: 96).")
@click.option("--blocks", type=click.IntRange(min=1), default=None, help="ConvNeXt blocks (default: 4).")
@click.option("--embed-kernel", type=click.IntRange(min=1), default=None,
              help="Frames the first convolution spans (default: 3).")
@click.option("--refine", type=click.IntRange(min=0, max=64), default=None,
              help="Griffin-Lim iterations after the network, trained through (the loss scores the refined "
                   "waveform) and run by the export. Default 0: trained without, and its export runs 8 "
                   "accelerated ones (kgan export --griffin-lim-iters sets others).")
@click.option("--refine-algorithm", type=click.Choice(["fast", "accelerated"]), default=None,
              help="Those iterations' algorithm (default: accelerated).")
@click.option("--loss", type=click.Choice(["mr-stft", "convergence"]), default=None,
              help="mr-stft (default): spectral convergence plus log-magnitude and log-mel L1; convergence: "
                   "spectral convergence alone (the loud bins), for a vocoder trained through --refine.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def vocoder_train(corpus_dir, out_dir, preset, config_path, overrides, steps, channels, blocks, embed_kernel, refine,
                  refine_algorithm, loss, no_progress):
    """Train a vocoder on the accompaniment stems of CORPUS_DIR's train split; re-running resumes.

    Its STFT (--preset/--config/--set) must be the generator's. Crops are scored with a
    multi-resolution STFT and a log-mel loss; OUT_DIR holds vocoder.json, checkpoints and
    history.jsonl.

    \b
    Example:
      kgan vocoder train data/corpus runs/vocoder
      kgan vocoder train data/corpus runs/vocoder-gl8 --refine 8 --loss convergence
      kgan export runs/chorales exports/kgan --phase vocoder --vocoder runs/vocoder
    """
    import dataclasses

    from kgan.vocoder import VocoderSettings, train_vocoder

    cfg = _resolve_config(preset, config_path, overrides)
    changes = {k: v for k, v in (("channels", channels), ("blocks", blocks), ("embed_kernel", embed_kernel),
                                 ("refine_iters", refine), ("refine_algorithm", refine_algorithm)) if v is not None}
    if loss is not None:
        changes.update(log_weight=float(loss == "mr-stft"), mel_weight=float(loss == "mr-stft"))
    settings = dataclasses.replace(VocoderSettings(), **changes) if changes else None  # None: the folder's own
    try:
        metrics = train_vocoder(corpus_dir, out_dir, cfg, settings, steps=steps, progress=not no_progress)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    if metrics:
        click.echo("vocoder: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) + f"; checkpoints in "
                   f"{os.path.join(out_dir, 'checkpoints')}")


@main.group()
def chords():
    """The chord network that plans the harmony from the sung melody (model.vocal_input=plan)."""


@chords.command("guess")
@click.argument("vocal", type=click.Path(exists=True, dir_okay=False))
@click.option("--bpm", type=FiniteRange(min=6.0, max=1200.0), required=True,
              help="The song's tempo in beats a minute (quarters in 4/4, dotted quarters in 6/8).")
@click.option("--meter", "meter_signature", default="4/4", show_default=True, metavar="N/D", help="The time signature.")
@click.option("--downbeat", type=FiniteRange(min=0.0, max=86400.0), default=0.0, show_default=True,
              help="When the first full bar starts, in seconds from the start of the file.")
@click.option("--per-bar", type=click.IntRange(1, 16), default=None,
              help="Chords a bar (default: where the meter lets chords change: 2 in 4/4, 2/2, 6/8 and 12/8, 1 in "
                   "the others).")
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False),
              help="An export (EXPORT_BASE or EXPORT_BASE/N) or a training run with a chord network (default: the "
                   "pretrained model).")
@click.option("--exact-grid", is_flag=True,
              help="Bars exactly on --bpm and --downbeat; by default their grid is first fitted to the vocal's note "
                   "starts, as generate --chords fits it.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the chart to this file (default: print it).")
def chords_guess(vocal, bpm, meter_signature, downbeat, per_bar, model_dir, exact_grid, output):
    """Print the chords the model would play under VOCAL as a chart, to correct and give back with
    kgan generate --chords-file.

    Each slot of each bar gets the chord the chord network guesses most often in it; the chart's
    format is generate --chords' ('.': the chord goes on, '%': the bar again, N: no chord).

    \b
    Example:
      kgan chords guess my_vocal.wav --bpm 96 --downbeat 0.62 -o chords.txt
      kgan generate my_vocal.wav -o karaoke --bpm 96 --downbeat 0.62 --chords-file chords.txt
    """
    use_served_kernels()
    from kgan.chart import guess_chart
    from kgan.export import is_export
    from kgan.generation import resolve_export
    from kgan.io_utils import atomic_write_text

    path = model_dir or _pretrained()
    try:
        if not is_export(path) and not os.path.isdir(os.path.join(path, "checkpoints")):
            path = resolve_export(path)  # an export base: its newest version
        chart, fitted_bpm, fitted_downbeat = guess_chart(path, vocal, bpm, meter_signature, downbeat, per_bar,
                                                         fit=not exact_grid)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    fitted = "" if exact_grid else f" (the singing: {fitted_bpm:.2f} bpm, {fitted_downbeat:.2f} s)"
    header = (f"# kgan chords guess {os.path.basename(vocal)}: {bpm:g} bpm, {meter_signature}, first bar at "
              f"{downbeat:g} s{fitted}\n")
    if output:
        atomic_write_text(output, header + chart)
        click.echo(f"wrote {output}")
    else:
        click.echo(header + chart, nl=False)


@chords.command("train")
@click.argument("corpus_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@_config_options
@click.option("--steps", type=click.IntRange(min=1), default=4000, show_default=True, help="Training steps.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the weights and the crops.")
@click.option("--labels", type=click.Choice(["score", "audio"]), default="score", show_default=True,
              help="The true chords: each song's score (chord_track in song.json; songs without one fall back "
                   "to the audio), or read from the accompaniment stem.")
@click.option("--channels", type=click.IntRange(min=4), default=48, show_default=True,
              help="Width of the chord network's convolutions.")
@click.option("--onsets/--no-onsets", default=False, show_default=True,
              help="Also hear where notes start (the meter), not only which pitch class sounds.")
@click.option("--stacks", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many times the dilated convolutions repeat (depth and context).")
@click.option("--meter/--no-meter", default=False, show_default=True,
              help="Also hear an estimated beat grid (tempo and beat phase from the melody's note starts).")
@click.option("--grid/--no-grid", default=False, show_default=True,
              help="Also learn from each song's known beat grid (tempo, meter, first downbeat in song.json), "
                   "dropped from half the crops so that a song without one is chorded too; the export then "
                   "takes an optional grid (kgan generate --bpm/--meter/--downbeat).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def chords_train(corpus_dir, out_dir, preset, config_path, overrides, steps, seed, labels, channels, onsets, stacks,
                 meter, grid, no_progress):
    """Train the chord network on CORPUS_DIR's train split: sung melody -> the accompaniment's chords.

    The melody is the pitch class tracked per frame (timbre-free); the chords (24 major and minor
    triads, or none) are the score's, which `kgan corpus` stores per song, or read from the true
    accompaniment stem (--labels audio, for song folders without a score). Crops of 12 s in random keys.
    OUT_DIR holds chordnet.weights.h5, chords.json (with the val split's frame accuracy) and the
    cached features; re-running resumes. Its STFT (--preset/--config/--set) must be the generator's.

    \b
    Example:
      kgan chords train data/corpus runs/plan/chords
      kgan train data/corpus-tfr runs/plan --set model.vocal_input=plan
      kgan export runs/plan exports/kgan-plan
    """
    from kgan.chords import train_chord_net

    cfg = _resolve_config(preset, config_path, overrides)
    try:
        metrics = train_chord_net(corpus_dir, out_dir, cfg, steps=steps, seed=seed, progress=not no_progress,
                                  labels=labels, channels=channels, onsets=onsets, stacks=stacks,
                                  meter=meter, grid=grid)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"chord net: val frame accuracy {metrics['val_accuracy']:.3f} after {metrics['steps']} steps; "
               f"{os.path.join(out_dir, 'chordnet.weights.h5')}")


@main.group()
def critic():
    """The style critic: a classifier of accompaniments by style that the generator learns to satisfy."""


@critic.command("train")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@_config_options
@click.option("--steps", type=click.IntRange(min=1), default=1500, show_default=True, help="Training steps.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def critic_train(data_dir, out_dir, preset, config_path, overrides, steps, no_progress):
    """Train the style critic on DATA_DIR's true accompaniment windows and their style labels.

    DATA_DIR is a `kgan preprocess` folder of songs with style labels; the styles are the model's
    (--set model.styles=...). OUT_DIR gets critic.weights.h5 and critic.json (val accuracy per
    style); re-running resumes. Then train with --set train.style_weight=W --set train.style_critic=OUT_DIR.

    \b
    Example:
      kgan critic train data/corpus-tfr runs/critic --set model.styles=chorale,piano,organ,strings,guitar,band
    """
    from kgan.style_critic import train_style_critic

    cfg = _check_data_config(_resolve_config(preset, config_path, overrides), data_dir)
    try:
        info = train_style_critic(data_dir, out_dir, cfg, steps=steps, progress=not no_progress)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    per_style = ", ".join(f"{k} {v:.2f}" for k, v in info["val_per_style"].items())
    accuracy = "none (no labelled val windows)" if info["val_accuracy"] is None else f"{info['val_accuracy']:.3f}"
    click.echo(f"style critic: val window accuracy {accuracy} ({per_style}); "
               f"{os.path.join(out_dir, 'critic.weights.h5')}")


@main.group()
def corpus():
    """Render the bundled corpora (Bach chorales, Essen folk songs) as song folders."""


def _corpus_options(func):
    """Options shared by the corpus commands."""
    options = [
        click.option("--voices", default="all", show_default=True,
                     help="Comma-separated voices or voice families for the melody, one chosen per song: "
                          "oohs, aahs, synth-voice (gm-voice); flute, clarinet, oboe, sax (wind); trumpet (brass); "
                          "violin (bowed); festival (Festival's singing mode, if installed)."),
        click.option("--styles", default="piano,organ,strings,guitar,band", show_default=True,
                     help="Comma-separated accompaniment styles for folk songs, one chosen per song."),
        click.option("--soundfont", type=click.Path(dir_okay=False), default=None,
                     help="General MIDI .sf2 to render with (default: TimGM6mb from the pretty_midi wheel)."),
        click.option("--transpose", default="0", show_default=True,
                     help="Comma-separated semitone shifts; each makes a copy of every song (key augmentation)."),
        click.option("--renditions", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Renditions of each tune, each with its own voice, style, tempo and key."),
        click.option("--splits", default="train,val,test", show_default=True,
                     help="Render only these splits (e.g. 'test' for an evaluation set)."),
        click.option("--bpm", type=FiniteRange(min=1.0), default=None,
                     help="Fixed tempo in quarter notes per minute (default: drawn per song)."),
        click.option("--accompaniment-program", type=click.IntRange(0, 127), default=None,
                     help="Fixed General MIDI program for the chorales' lower parts (default: drawn per song)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the per-song draws."),
        click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Songs rendered in parallel processes."),
        click.option("--no-progress", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        func = option(func)
    return _config_options(func)


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers. Received: {text!r}",
                                 param_hint=option) from None


def _build_corpus(out_dir, sources, preset, config_path, overrides, voices, styles, soundfont, transpose,
                  renditions, splits, bpm, accompaniment_program, seed, jobs, no_progress):
    try:
        from kgan.corpus import build_corpus
    except ImportError as e:
        raise click.ClickException(f"the corpus extra is not installed ({e})") from None
    cfg = _resolve_config(preset, config_path, overrides)
    split_list = [s.strip() for s in splits.split(",") if s.strip()]
    if not split_list or set(split_list) - {"train", "val", "test"}:
        raise click.BadParameter(f"expected splits among train, val, test. Received: {splits!r}",
                                 param_hint="--splits")
    try:
        summary = build_corpus(out_dir, cfg.audio.sample_rate, sources, voices=voices,
                               styles=[s.strip() for s in styles.split(",") if s.strip()], soundfont=soundfont,
                               transpositions=_int_list(transpose, "--transpose") or [0], renditions=renditions,
                               jobs=jobs, seed=seed, splits=split_list, bpm=bpm,
                               accompaniment_program=accompaniment_program, progress=not no_progress)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    speed = summary["render_speed_x_realtime"]
    click.echo(
        f"{len(summary['songs'])} song(s), {summary['hours']:.2f} h of audio in {out_dir}"
        + (f"; rendered {summary['rendered_seconds']:.0f} s of audio at {speed:.0f}x real time "
           f"with {jobs} job(s)" if speed else "")
    )
    if summary["failed"]:
        _echo_failures(f"{len(summary['failed'])} song(s) failed:", summary["failed"])
        sys.exit(1)


def _count(text: str | None, option: str) -> int | None:
    if text is None or text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise click.BadParameter(f"expected a count >= 0 or 'all'. Received: {text!r}", param_hint=option)
    return value


@corpus.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--chorales", "n_chorales", default="0", show_default=True,
              help="Bach chorales to render (a count, or 'all': ~400).")
@click.option("--folk", "n_folk", default="0", show_default=True,
              help="Essen folk tunes to render (a count, or 'all': ~8500).")
@_corpus_options
def build(out_dir, n_chorales, n_folk, **options):
    """Render chorales and harmonised folk songs together: melody = vocals, the rest = accompaniment.

    Each song gets a voice from --voices and (folk songs) a style from --styles;
    song.json in each folder records them. The split into train / val / test is
    by tune (splits.json), stable across builds.
    Needs the corpus extra: pip install 'kgan[corpus]' tinysoundfont --no-deps.

    \b
    Example:
      kgan corpus build data/corpus --chorales all --folk 2000 --jobs 2
      kgan corpus build data/eval --folk 300 --splits test --voices festival \\
          --soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2
    """
    sources = {"chorales": _count(n_chorales, "--chorales"), "folk": _count(n_folk, "--folk")}
    if not any(v is None or v > 0 for v in sources.values()):
        raise click.UsageError("nothing to render: give --chorales and/or --folk")
    _build_corpus(out_dir, sources, **options)


@corpus.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--n", "n", type=click.IntRange(min=0), default=None, help="Number of chorales (default: all, ~400).")
@_corpus_options
def chorales(out_dir, n, **options):
    """Render Bach chorales (music21's corpus): soprano = vocals, alto + tenor + bass = accompaniment.

    The split into train / val / test is by tune (splits.json), stable across builds.
    Needs the corpus extra: pip install 'kgan[corpus]' tinysoundfont --no-deps.

    \b
    Example:
      kgan corpus chorales data/chorales --n 20 --transpose=-2,0,2
    """
    _build_corpus(out_dir, {"chorales": n}, **options)


@corpus.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--n", "n", type=click.IntRange(min=0), default=None, help="Number of tunes (default: all, ~8500).")
@_corpus_options
def folk(out_dir, n, **options):
    """Render Essen folk tunes, harmonised and accompanied in a style per song: tune = vocals.

    \b
    Example:
      kgan corpus folk data/folk --n 500 --styles band,guitar --jobs 2
    """
    _build_corpus(out_dir, {"folk": n}, **options)


if __name__ == "__main__":
    main()
