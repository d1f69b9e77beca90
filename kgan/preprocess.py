"""Songs -> voiced spectrogram segments -> TFRecord shards (resumable, atomic).

Input: one folder per song in the MUSDB18 layout, holding ``vocals.*`` and
either ``accompaniment.*`` or the stems ``drums.*``, ``bass.*``, ``other.*``
(summed into the accompaniment). The target is always the accompaniment,
never the mixture.

Output (``OUT_DIR``):

* ``train/<song>.tfrecord``, ``val/<song>.tfrecord``: one shard per song, each
  record one voiced *segment* (a run of frames where windows pass the vocal
  gate) holding the normalised vocal and accompaniment spectrograms,
  float16 ``[frames, bins]``. ``kgan.dataset`` crops training windows out of
  the segments.
* ``dataset.json``: the config, every song's provenance and split, seconds
  kept and dropped, counts. It holds no timestamps, so a re-run gives the
  same bytes.
* ``.state/<song>.json``: per-song results, so a killed run resumes where it
  stopped; every file is written under a temporary name and renamed.

Split: by song, so no song is in both. When ``INPUT_DIR/splits.json`` exists
(``kgan corpus`` writes it) it decides: ``train`` and ``val`` songs are
written, ``test`` songs are held out and not written at all. Other songs are
split by a hash of the folder name (``train.val_fraction``), which does not
depend on which other songs are present.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sys
import time
from typing import Callable

import numpy as np

from kgan import audio as audio_io
from kgan.config import Config
from kgan.io_utils import atomic_path, atomic_write_text, remove_stale_temporaries, score_chords, song_info

__all__ = ["SongError", "SongSources", "find_sources", "voiced_segments", "preprocess", "FEATURES"]

STEMS = ("drums", "bass", "other")
STATE_VERSION = 1


class SongError(ValueError):
    """A song that cannot be used; ``str()`` is one line naming the file or folder."""


@dataclasses.dataclass(frozen=True)
class SongSources:
    name: str
    folder: str
    vocals: str
    accompaniment: tuple[str, ...]  # one file, or the three stems to sum


def _find(folder: str, stem: str) -> str | None:
    for ext in audio_io.AUDIO_EXTENSIONS:
        path = os.path.join(folder, stem + ext)
        if os.path.isfile(path):
            return path
    return None


def find_sources(folder: str) -> SongSources:
    """The vocal and accompaniment files of a song folder, or SongError naming what is missing."""
    name = os.path.basename(os.path.normpath(folder))
    exts = "{" + ",".join(e[1:] for e in audio_io.AUDIO_EXTENSIONS) + "}"
    vocals = _find(folder, "vocals")
    if vocals is None:
        raise SongError(f"{folder}: missing stem: expected vocals.{exts}")
    accompaniment = _find(folder, "accompaniment")
    if accompaniment is not None:
        return SongSources(name, folder, vocals, (accompaniment,))
    stems = [_find(folder, s) for s in STEMS]
    missing = [s for s, p in zip(STEMS, stems) if p is None]
    if missing:
        raise SongError(
            f"{folder}: missing stem: expected accompaniment.{exts} or drums, bass and other "
            f"(no {', '.join(missing)})"
        )
    return SongSources(name, folder, vocals, tuple(stems))


def load_sources(sources: SongSources, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(vocal, accompaniment) mono float32 at ``rate``, same length, or SongError/AudioError."""
    vocal, _ = audio_io.load(sources.vocals, rate)
    parts = [(path, audio_io.load(path, rate)[0]) for path in sources.accompaniment]
    for path, x in parts:
        if abs(len(x) - len(vocal)) > 1:  # resampling may round one sample differently
            raise SongError(
                f"{path}: stem length {len(x) / rate:.3f} s differs from "
                f"{os.path.basename(sources.vocals)} ({len(vocal) / rate:.3f} s)"
            )
    n = min([len(vocal)] + [len(x) for _, x in parts])
    accompaniment = np.sum([x[:n] for _, x in parts], axis=0, dtype=np.float32)
    return vocal[:n], accompaniment


SILENCE_ABOVE_FLOOR_DB = 20.0


def voiced_segments(frame_db: np.ndarray, frames: int, stride: int, gate_db: float,
                    min_voiced: float, floor_db: float = -np.inf) -> list[tuple[int, int]]:
    """Frame ranges ``[start, end)`` covered by windows whose vocal is active.

    A frame is voiced when its level is above the song's reference level (95th
    percentile of ``frame_db``) plus ``gate_db``, and above the absolute
    ``floor_db`` (so a silent or near-silent stem has no voiced frame at all,
    however quiet its reference); a window of ``frames`` frames,
    tried every ``stride`` frames, is kept when at least ``min_voiced`` of its
    frames are voiced. Overlapping or touching kept windows merge into one
    segment.
    """
    total = len(frame_db)
    if total < frames:
        return []
    reference = np.percentile(frame_db, 95)
    voiced = (frame_db > reference + gate_db) & (frame_db > floor_db)
    csum = np.concatenate([[0], np.cumsum(voiced)])
    starts = list(range(0, total - frames + 1, stride))
    if starts[-1] != total - frames:
        starts.append(total - frames)  # let the song's end be reachable
    segments: list[list[int]] = []
    for s in starts:
        if (csum[s + frames] - csum[s]) >= min_voiced * frames:
            if segments and s <= segments[-1][1]:
                segments[-1][1] = s + frames
            else:
                segments.append([s, s + frames])
    return [(a, b) for a, b in segments]


FEATURES = {
    "song": "string",
    "start_frame": "int64",
    "frames": "int64",
    "bins": "int64",
    "vocal": "float16 bytes [frames, bins]",
    "accompaniment": "float16 bytes [frames, bins]",
}


def _example(song: str, start: int, vocal: np.ndarray, accompaniment: np.ndarray, chords: np.ndarray | None = None):
    """One segment as a ``tf.train.Example``; ``chords`` (int8 per frame, ``kgan.chords`` ids) when the song's
    score gives them (a ``kgan corpus`` song's ``chord_track``)."""
    import tensorflow as tf

    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    def i(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))

    feature = {
        "song": b(song.encode()),
        "start_frame": i(start),
        "frames": i(vocal.shape[0]),
        "bins": i(vocal.shape[1]),
        "vocal": b(vocal.astype("<f2").tobytes()),
        "accompaniment": b(accompaniment.astype("<f2").tobytes()),
    }
    if chords is not None:
        feature["chords"] = b(chords.astype(np.int8).tobytes())
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _slug(name: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._") or "song"
    return f"{clean[:80]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def hash_split(name: str, val_fraction: float) -> str:
    u = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 2**32
    return "val" if u < val_fraction else "train"


def _fingerprint(sources: SongSources, config: Config) -> str:
    h = hashlib.sha256(config.to_json().encode())
    labels = os.path.join(sources.folder, "song.json")  # its chord_track goes into the shard
    for path in (sources.vocals, *sources.accompaniment, *([labels] if os.path.exists(labels) else [])):
        st = os.stat(path)
        h.update(f"{os.path.basename(path)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


class SongProcessor:
    """Computes one song's spectrograms, gate and shard."""

    def __init__(self, config: Config):
        import tensorflow as tf

        from kgan.spectrogram import Spectrogram

        self.config = config
        self.spec = Spectrogram(config.stft)
        bins = config.stft.num_bins

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)] * 2)
        def analyse(vocal, accompaniment):
            v_mag = self.spec.magnitude(self.spec.forward(vocal))
            a_mag = self.spec.magnitude(self.spec.forward(accompaniment))
            # frame level of the vocal in dBFS (mean power over all bins)
            power = tf.reduce_mean(tf.square(v_mag), axis=-1)
            frame_db = 10.0 * tf.math.log(power + 1e-12) / tf.math.log(10.0)
            v = self.spec.normalise(v_mag)[:, :bins]
            a = self.spec.normalise(a_mag)[:, :bins]
            return v, a, frame_db

        self._analyse = analyse

    def __call__(self, sources: SongSources, split: str, shard: str) -> dict:
        cfg = self.config
        rate = cfg.audio.sample_rate
        vocal, accompaniment = load_sources(sources, rate)
        v, a, frame_db = (t.numpy() for t in self._analyse(vocal, accompaniment))
        w = cfg.window
        # absolute floor: 20 dB above the spectrogram's floor, where the model's image is still blank
        segments = voiced_segments(frame_db, w.frames, w.stride, w.gate_db, w.min_voiced,
                                   floor_db=cfg.stft.db_floor + SILENCE_ABOVE_FLOOR_DB)
        track = score_chords(sources.folder)
        chords = None
        if track is not None:
            from kgan.chords import track_labels

            chords = track_labels(track, len(v), cfg)
        with atomic_path(shard) as tmp:
            import tensorflow as tf

            with tf.io.TFRecordWriter(tmp) as writer:
                for start, end in segments:
                    writer.write(_example(sources.name, start, v[start:end], a[start:end],
                                          None if chords is None else chords[start:end]))
        seconds = len(vocal) / rate
        kept_frames = sum(e - s for s, e in segments)
        labels = _song_labels(sources.folder)
        kept = min(seconds, kept_frames * cfg.stft.hop_length / rate)
        return {
            "name": sources.name,
            "split": split,
            "shard": os.path.relpath(shard, os.path.dirname(os.path.dirname(shard))),
            "vocals": os.path.basename(sources.vocals),
            "accompaniment": [os.path.basename(p) for p in sources.accompaniment],
            "seconds": round(seconds, 3),
            "seconds_kept": round(kept, 3),
            "seconds_dropped": round(seconds - kept, 3),
            "segments": len(segments),
            "windows": sum((e - s - w.frames) // w.stride + 1 for s, e in segments),
            "frames": kept_frames,
            # share of spectrogram bins at the ends of the scale, for checking the dB range
            "vocal_clipped_high": round(float(np.mean(v >= 1.0)), 6),
            "accompaniment_clipped_high": round(float(np.mean(a >= 1.0)), 6),
            "accompaniment_at_floor": round(float(np.mean(a <= -1.0)), 6),
            "chords": "score" if chords is not None else "audio",  # where a plan model's true chords come from
            **labels,
        }


def _song_labels(folder: str) -> dict:
    """``style``, ``voice`` and ``source`` from a corpus song's ``song.json`` (style "unknown" elsewhere)."""
    info = song_info(folder)
    return {"style": "unknown", **{k: str(info[k]) for k in ("style", "voice", "source") if k in info}}


def _read_splits(input_dir: str) -> dict[str, str]:
    path = os.path.join(input_dir, "splits.json")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise SongError(f"{path}: not valid JSON ({e})") from None
    return {name: split for split, names in data.items() for name in names}


class LazyProcessor:
    """A ``SongProcessor`` built on first use (a run that reuses every song never starts TensorFlow)."""

    def __init__(self, config: Config):
        self.config = config
        self._processor = None

    def __call__(self, sources: SongSources, split: str, shard: str) -> dict:
        self._processor = self._processor or SongProcessor(self.config)
        return self._processor(sources, split, shard)


@dataclasses.dataclass
class FolderOutcome:
    """What ``process_folder`` did with one song folder."""

    result: dict | None  # the song's entry in dataset.json (None: held out as test)
    seconds: float  # of audio, for progress
    held_out: bool = False
    reused: bool = False  # an earlier run's shard and state were still valid
    busy: float = 0.0  # seconds spent processing


def process_folder(folder: str, out_dir: str, config: Config, split: str | None, processor) -> FolderOutcome:
    """One song folder -> its shard and ``.state`` entry under ``out_dir`` (reused when still valid).

    ``split``: the song's split from ``splits.json``, or None for the name's hash.
    ``processor``: a ``SongProcessor`` (or ``LazyProcessor``). Raises ``SongError``
    or ``AudioError`` (or anything else) for a bad song; ``song_error`` makes the line.
    The plain loop of ``preprocess`` and the Beam pipeline (``kgan.pipeline``) share it,
    so both write the same shards.
    """
    name = os.path.basename(folder)
    sources = find_sources(folder)
    split = split or hash_split(name, config.train.val_fraction)
    if split == "test":
        return FolderOutcome(None, audio_io.info_seconds(sources.vocals), held_out=True)
    slug = _slug(name)
    shard = os.path.join(out_dir, split, slug + ".tfrecord")
    state_path = os.path.join(out_dir, ".state", slug + ".json")
    fingerprint = _fingerprint(sources, config)
    if os.path.exists(state_path) and os.path.exists(shard):
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
        if state.get("fingerprint") == fingerprint and state.get("version") == STATE_VERSION:
            return FolderOutcome(state["result"], state["result"]["seconds"], reused=True)
    tick = time.perf_counter()
    result = processor(sources, split, shard)
    busy = time.perf_counter() - tick
    state = {"version": STATE_VERSION, "fingerprint": fingerprint, "result": result}
    atomic_write_text(state_path, json.dumps(state, indent=2, sort_keys=True) + "\n")
    return FolderOutcome(result, result["seconds"], busy=busy)


def song_error(folder: str, error: Exception) -> str:
    """One line for a song that failed: the error's own line, or its type and first line."""
    if isinstance(error, (SongError, audio_io.AudioError)):
        return str(error)
    line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"{folder}: {type(error).__name__}: {line}"


def preprocess(input_dir: str, out_dir: str, config: Config, progress: bool = True,
               log: Callable[[str], None] | None = None) -> dict:
    """Turn every song folder in ``input_dir`` into shards in ``out_dir``; returns ``dataset.json``'s dict.

    Never raises for a bad song: its one-line error goes to ``log`` and into
    ``summary["failed"]``; the caller decides the exit status.
    """
    from kgan.progress import audio_bar

    log = log or (lambda line: print(line, file=sys.stderr))
    if not os.path.isdir(input_dir):
        raise SongError(f"{input_dir}: not a folder")
    folders = sorted(e.path for e in os.scandir(input_dir) if e.is_dir() and not e.name.startswith("."))
    if not folders:
        raise SongError(f"{input_dir}: no song folders found (expected one folder per song)")
    fixed = _read_splits(input_dir)
    state_dir = os.path.join(out_dir, ".state")
    os.makedirs(state_dir, exist_ok=True)
    for folder in (out_dir, state_dir, os.path.join(out_dir, "train"), os.path.join(out_dir, "val")):
        remove_stale_temporaries(folder)  # files of a killed run

    processor = LazyProcessor(config)
    songs, failed, held_out = [], [], []
    processed_seconds, busy, reused = 0.0, 0.0, 0
    total = sum(audio_io.info_seconds(p) for f in folders if (p := _find(f, "vocals")))
    bar = audio_bar(round(total, 1), "preprocess", disable=not progress, unit_scale=True)
    started = time.perf_counter()  # wall clock, including start-up; `busy` counts song processing only
    for folder in folders:
        name = os.path.basename(folder)
        try:
            outcome = process_folder(folder, out_dir, config, fixed.get(name), processor)
            if outcome.held_out:
                held_out.append(name)
            elif outcome.reused:
                reused += 1
            else:
                busy += outcome.busy
                processed_seconds += outcome.result["seconds"]
            if outcome.result:
                songs.append(outcome.result)
            bar.update(round(outcome.seconds, 1))
        except Exception as e:
            failed.append(song_error(folder, e))
            bar.write(f"error: {failed[-1]}", file=sys.stderr)
    bar.close()
    elapsed = time.perf_counter() - started

    def total_of(key, split=None):
        return round(sum(s[key] for s in songs if split is None or s["split"] == split), 3)

    summary = {
        "kgan_dataset_version": 1,
        "config": config.to_dict(),
        "features": FEATURES,
        "songs": songs,
        "held_out_test": held_out,
        "failed": failed,
        "counts": {
            split: {
                "songs": sum(1 for s in songs if s["split"] == split),
                "segments": total_of("segments", split),
                "windows": total_of("windows", split),
                "seconds": total_of("seconds", split),
                "seconds_kept": total_of("seconds_kept", split),
                "seconds_dropped": total_of("seconds_dropped", split),
            }
            for split in ("train", "val")
        },
    }
    atomic_write_text(os.path.join(out_dir, "dataset.json"), json.dumps(summary, indent=2, sort_keys=True) + "\n")
    speed = f", {processed_seconds / busy:.0f}x real time" if processed_seconds and busy > 0 else ""
    log(
        f"preprocessed {len(songs) - reused} song(s) ({processed_seconds:.1f} s of audio in {elapsed:.1f} s{speed})"
        + (f", reused {reused} from an earlier run" if reused else "")
        + f": kept {total_of('seconds_kept'):.1f} s, "
        f"dropped {total_of('seconds_dropped'):.1f} s as unvoiced; "
        f"train {summary['counts']['train']['songs']} / val {summary['counts']['val']['songs']} songs"
        + (f", {len(held_out)} test song(s) held out" if held_out else "")
    )
    if failed:
        log(f"{len(failed)} song(s) failed:")
        for line in failed:
            log(f"  {line}")
    return summary


def plot_windows(out_dir: str, n: int, seed: int = 0) -> list[str]:
    """Write ``n`` PNGs of random training windows (vocal above accompaniment) read back from the shards."""
    import tensorflow as tf

    from kgan.dataset import parse_segment, read_metadata
    from kgan.features import VocalFeatures
    from kgan.plots import plot_spectrograms

    meta = read_metadata(out_dir)
    config = Config.from_dict(meta["config"])
    songs = [s for s in meta["songs"] if s["segments"] > 0]
    rng = np.random.default_rng(seed)
    frames, bins = config.window.frames, config.stft.num_bins
    seconds_per_frame = config.stft.hop_length / config.audio.sample_rate
    features = VocalFeatures.from_kgan_config(config) if config.model.vocal_input != "spectrogram" else None
    paths = []
    for i in range(n if songs else 0):
        song = songs[rng.integers(len(songs))]
        records = list(tf.data.TFRecordDataset(os.path.join(out_dir, song["shard"])))
        record = records[rng.integers(len(records))]
        start_frame = int(tf.train.Example.FromString(record.numpy()).features.feature["start_frame"].int64_list.value[0])
        vocal, accompaniment = (t.numpy() for t in parse_segment(record, bins))
        offset = int(rng.integers(vocal.shape[0] - frames + 1))
        start = (start_frame + offset) * seconds_per_frame
        path = os.path.join(out_dir, "plots", f"window-{i:03d}.png")
        v = vocal[offset : offset + frames].T
        panels = [("vocal", v)]
        if config.model.vocal_input != "spectrogram":
            seen = features(v[None, :, :, None].astype(np.float32)).numpy()[0]
            rendered = {"comb": "the sung pitch rendered with one timbre",
                        "track": "the tracked pitch class at every octave",
                        "chords": "the triad guessed from the tracked melody"}.get(config.model.vocal_input)
            if rendered:
                panels.append((f"{rendered} (the model's first channel)", seen[..., 0]))
            if config.model.vocal_input in ("salience", "comb"):
                panels.append(("vocal as the model sees it: pitch salience (F0 axis)", seen[..., -3], "f0"))
        panels.append(("accompaniment (target)", accompaniment[offset : offset + frames].T))
        style = f", {song['style']}" if song.get("style", "unknown") != "unknown" else ""
        plot_spectrograms(panels, config, path, title=f"{song['name']} ({song['split']}{style}), {start:.2f} s",
                          start_seconds=start)
        paths.append(path)
    return paths
