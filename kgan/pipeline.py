"""Library-scale ``kgan preprocess --mixes``: every song separated and preprocessed in parallel with Apache Beam.

Separating and preprocessing a collection is embarrassingly parallel per
song, so the pipeline is one step::

    Create(songs) -> Reshuffle -> ParDo(SongWork)

``SongWork`` separates one finished song into ``SEPARATED_DIR/<song>/`` (kept
when already complete, as ``kgan separate`` does on a re-run) and turns it
into its shard and ``.state`` entry with ``kgan.preprocess.process_folder``,
the same function the plain path runs, so the shards are the same bytes. It
reports each song (done, or its one-line error) in
``OUT_DIR/.state/beam/``; the driver draws the progress bar from there. What
Beam and the workers print goes to ``OUT_DIR/.state/beam/pipeline.log``. When
the pipeline is done, the driver runs ``kgan.preprocess.preprocess`` over the
separated songs: every shard is already valid, so it only reuses them and
writes ``dataset.json`` as the plain path does. A killed run resumes, since
both steps skip what is already complete.

The DirectRunner runs ``workers`` processes on this machine
(``direct_running_mode=multi_processing``), each with one TensorFlow thread;
``beam_args`` go to Beam's ``PipelineOptions`` unchanged, so the same pipeline
runs on Flink, Spark or Dataflow (``--runner=FlinkRunner ...``) when the
workers can see the same file system.
"""

from __future__ import annotations

import json
import os
import sys
import threading

from kgan.config import Config
from kgan.io_utils import atomic_write_text, remove_stale_temporaries

__all__ = ["preprocess_mixes", "available"]

REPORTS = os.path.join(".state", "beam")


def available() -> bool:
    """Whether Apache Beam is installed (the optional ``beam`` extra)."""
    import importlib.util

    return importlib.util.find_spec("apache_beam") is not None


def _report_path(out_dir: str, name: str) -> str:
    from kgan.preprocess import _slug

    return os.path.join(out_dir, REPORTS, _slug(name) + ".json")


class _SongWork:
    """Separate one (name, audio file) and preprocess it; picklable, built once per Beam worker."""

    def __init__(self, separated_dir: str, out_dir: str, config_json: str, method: str, params, splits: dict):
        self.separated_dir, self.out_dir = separated_dir, out_dir
        self.config_json, self.method, self.params, self.splits = config_json, method, params, splits
        self.processor = None

    def setup(self):
        from kgan.preprocess import LazyProcessor

        self.config = Config.from_json(self.config_json)
        self.processor = LazyProcessor(self.config)

    def __call__(self, song):
        from kgan.audio import load
        from kgan.preprocess import process_folder, song_error
        from kgan.separation import separate, write_song

        if self.processor is None:
            self.setup()
        name, path = song
        folder = os.path.join(self.separated_dir, name)
        report = {"name": name, "path": path, "error": None}
        try:  # one song's problem is reported, and the others go on
            if not all(os.path.exists(os.path.join(folder, f)) for f in ("vocals.wav", "accompaniment.wav")):
                audio, rate = load(path, mono=False)
                write_song(folder, separate(audio, rate, self.method, self.params))
        except Exception as e:
            report["error"] = song_error(path, e)
        if report["error"] is None:
            try:
                process_folder(folder, self.out_dir, self.config, self.splits.get(name), self.processor)
            except Exception as e:  # worded as the assembling preprocess() words it, so it is listed once
                report["error"] = song_error(folder, e)
        atomic_write_text(_report_path(self.out_dir, name), json.dumps(report) + "\n")
        return report


def _beam_fn(work):
    import apache_beam as beam

    class SongWork(beam.DoFn):
        def setup(self):
            work.setup()

        def process(self, song):
            yield work(song)

    return SongWork()


def preprocess_mixes(songs, separated_dir: str, out_dir: str, config: Config, method: str = "simm", params=None,
                     workers: int = 2, beam_args=(), progress: bool = True) -> tuple[dict, list[str]]:
    """Separate and preprocess ``songs`` ((name, audio file) pairs) with Beam; (dataset.json dict, failures).

    A ``splits.json`` in ``separated_dir`` (a corpus' split, copied there first) decides the
    splits, else each song name's hash, as in ``kgan.preprocess.preprocess``.
    """
    import logging

    logging.disable(logging.WARNING)  # Beam's import warns of cloud clients this pipeline does not use
    try:
        import apache_beam as beam
        from apache_beam.options.pipeline_options import PipelineOptions
    finally:
        logging.disable(logging.NOTSET)

    from kgan.audio import info_seconds
    from kgan.preprocess import _read_splits, preprocess
    from kgan.progress import audio_bar

    songs = list(songs)
    names = [n for n, _ in songs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"song names taken by more than one file: {', '.join(dupes)}; rename them")
    for folder in (separated_dir, out_dir, os.path.join(out_dir, ".state"), os.path.join(out_dir, REPORTS),
                   os.path.join(out_dir, "train"), os.path.join(out_dir, "val")):
        os.makedirs(folder, exist_ok=True)
        remove_stale_temporaries(folder)  # files of a killed run
    for name in names:  # reports of an earlier run: this run writes its own
        if os.path.exists(_report_path(out_dir, name)):
            os.remove(_report_path(out_dir, name))

    work = _SongWork(separated_dir, out_dir, config.to_json(), method, params, _read_splits(separated_dir))
    options = PipelineOptions(["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                               f"--direct_num_workers={workers}", "--default_sdk_harness_log_level=WARNING",
                               *beam_args])
    seconds = {n: info_seconds(p) for n, p in songs}
    finished = threading.Event()

    terminal = os.fdopen(os.dup(2), "w")  # the bar's stream: stderr itself goes to the log below

    def watch():  # the bar follows the per-song reports the workers write
        seen = set()
        with audio_bar(round(sum(seconds.values()), 1), f"preprocess --mixes ({workers} workers)",
                       disable=not progress, file=terminal) as bar:
            while True:
                stop = finished.is_set()
                for name in names:
                    if name not in seen and os.path.exists(_report_path(out_dir, name)):
                        seen.add(name)
                        bar.update(round(seconds[name], 1))
                if stop:
                    return
                finished.wait(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    saved = {k: os.environ.get(k) for k in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}
    os.environ.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")  # inherited by the worker processes
    # Beam's workers and their decoders talk on stderr, which they inherit: that goes to a log file
    log_path = os.path.join(out_dir, REPORTS, "pipeline.log")
    sys.stderr.flush()
    stderr_fd = os.dup(2)
    with open(log_path, "a") as log:
        os.dup2(log.fileno(), 2)
    watcher.start()
    try:
        with beam.Pipeline(options=options) as pipeline:
            (pipeline | "songs" >> beam.Create(songs) | "spread" >> beam.Reshuffle()
             | "separate and preprocess" >> beam.ParDo(_beam_fn(work)))
    except Exception as e:
        raise RuntimeError(f"the Beam pipeline failed: {e} (see {log_path})") from e
    finally:
        sys.stderr.flush()
        os.dup2(stderr_fd, 2)
        os.close(stderr_fd)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        finished.set()
        watcher.join()
        terminal.close()

    failed = []
    for name in names:
        path = _report_path(out_dir, name)
        if not os.path.exists(path):
            failed.append(f"{dict(songs)[name]}: not processed (the pipeline lost it)")
            continue
        with open(path, encoding="utf-8") as f:
            error = json.load(f)["error"]
        if error:
            failed.append(error)
    summary = preprocess(separated_dir, out_dir, config, progress=False, log=lambda line: None)
    failed += [line for line in summary["failed"] if line not in failed]
    return summary, failed
