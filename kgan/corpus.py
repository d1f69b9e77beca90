"""The bundled real-music corpus: Bach chorales rendered to vocal and accompaniment stems.

The ``music21`` wheel ships the Bach chorales (public domain, ~400 four-part
settings as MusicXML). Each is rendered offline with the General MIDI
SoundFont that ships inside the ``pretty_midi`` wheel (TimGM6mb.sf2) through
``tinysoundfont``:

* soprano                 -> ``vocals``        (GM 53 "Voice Oohs" by default)
* alto + tenor + bass      -> ``accompaniment`` (GM 19 "Church Organ" by default)
* vocals + accompaniment   -> ``mixture``

Each song becomes a folder in the MUSDB18 layout that ``kgan preprocess``
reads. The split into train / val / test is by piece and depends only on the
piece's name (a hash), so a piece is in the same split in every build of the
corpus whatever ``--n`` is, and transposed copies of a test piece never reach
training. Another setting of the same hymn tune under another BWV number can,
though (``experiments/tune_overlap.py`` lists them). ``splits.json`` lists the folders of each split; ``corpus.json``
records provenance and the render speed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from typing import Iterable, Sequence

import numpy as np

from kgan import audio as audio_io
from kgan.io_utils import atomic_write_text

__all__ = ["Piece", "list_pieces", "split_of", "select", "render_piece", "build_chorales"]

VOICE_PROGRAM = 53  # GM "Voice Oohs" (0-based)
ACCOMPANIMENT_PROGRAM = 19  # GM "Church Organ"
SPLIT_FRACTIONS = (("train", 0.8), ("val", 0.1), ("test", 0.1))


@dataclasses.dataclass(frozen=True)
class Piece:
    name: str  # e.g. "bwv10.7"
    path: str  # the MusicXML file inside music21's corpus


def list_pieces() -> list[Piece]:
    """All Bach chorales in music21's corpus (MusicXML, named ``bwv*``), sorted by name."""
    from music21 import corpus

    pieces = {}
    for path in corpus.getComposer("bach"):
        base = os.path.basename(str(path))
        stem, ext = os.path.splitext(base)
        if ext == ".mxl" and stem.startswith("bwv"):
            pieces[stem] = Piece(stem, str(path))
    return [pieces[k] for k in sorted(pieces)]


def split_of(name: str) -> str:
    """The piece's split from a hash of its name: stable across corpus builds."""
    u = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 2**32
    edge = 0.0
    for split, fraction in SPLIT_FRACTIONS:
        edge += fraction
        if u < edge:
            return split
    return SPLIT_FRACTIONS[-1][0]


def select(pieces: Sequence[Piece], n: int | None) -> list[Piece]:
    """``n`` pieces with every split represented (when n >= 3), in name order within a split."""
    if n is None or n >= len(pieces):
        return list(pieces)
    by_split = {s: [p for p in pieces if split_of(p.name) == s] for s, _ in SPLIT_FRACTIONS}
    counts = {s: round(n * f) for s, f in SPLIT_FRACTIONS if s != "train"}
    if n >= 3:
        counts = {s: max(1, c) for s, c in counts.items()}
    counts["train"] = n - sum(counts.values())
    chosen = [p for s, c in counts.items() for p in by_split[s][: max(0, c)]]
    return sorted(chosen, key=lambda p: p.name)


def _voices(score):
    """(soprano, [alto, tenor, bass]) parts of a four-part chorale, or None."""
    parts = list(score.parts)
    named = {(p.partName or "").strip().lower(): p for p in parts}
    wanted = ["soprano", "alto", "tenor", "bass"]
    if all(w in named for w in wanted):
        ordered = [named[w] for w in wanted]
    elif len(parts) >= 4:
        ordered = parts[:4]
    else:
        return None
    return ordered[0], ordered[1:]


def _notes(part, transpose: int, seconds_per_quarter: float) -> list[tuple[float, float, int]]:
    """(start s, end s, midi pitch) of every sounding note, ties merged."""
    out = []
    for n in part.stripTies().flatten().notes:
        start = float(n.offset) * seconds_per_quarter
        end = start + float(n.quarterLength) * seconds_per_quarter
        for p in n.pitches:
            if end > start:
                out.append((start, end, int(p.midi) + transpose))
    return out


def _synthesise(notes: Iterable[tuple[float, float, int]], program: int, rate: int, seconds: float,
                velocity: int, soundfont: str) -> np.ndarray:
    """Render notes with one GM program; mono float32 of ``seconds`` length."""
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=rate)
    sfid = synth.sfload(soundfont)
    synth.program_select(0, sfid, 0, program)
    events = sorted(
        [(round(s * rate), 1, k) for s, _, k in notes] + [(round(e * rate), 0, k) for _, e, k in notes]
    )  # at equal times note-offs (0) sort before note-ons (1): repeated notes re-strike
    total = int(round(seconds * rate))
    out = np.zeros((total, 2), np.float32)
    cursor = 0
    for at, on, key in events + [(total, -1, 0)]:
        at = min(at, total)
        if at > cursor:
            out[cursor:at] = np.frombuffer(synth.generate(at - cursor), dtype=np.float32).reshape(-1, 2)
            cursor = at
        if on == 1:
            synth.noteon(0, key, velocity)
        elif on == 0:
            synth.noteoff(0, key)
    return out.mean(axis=1)


def soundfont_path() -> str:
    import pretty_midi

    return os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")


def render_piece(piece: Piece, rate: int, transpose: int = 0, bpm: float = 80.0,
                 voice_program: int = VOICE_PROGRAM, accompaniment_program: int = ACCOMPANIMENT_PROGRAM,
                 tail: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(vocals, accompaniment) mono float32 at ``rate``; mix peak normalised to -1 dBFS."""
    from music21 import corpus

    score = corpus.parse(piece.path)
    voices = _voices(score)
    if voices is None:
        raise ValueError(f"{piece.name}: not a four-part chorale")
    soprano, lower = voices
    spq = 60.0 / bpm
    top = _notes(soprano, transpose, spq)
    rest = [n for part in lower for n in _notes(part, transpose, spq)]
    if not top or not rest:
        raise ValueError(f"{piece.name}: a voice has no notes")
    seconds = max(e for _, e, _ in top + rest) + tail
    sf2 = soundfont_path()
    vocals = _synthesise(top, voice_program, rate, seconds, 110, sf2)
    accompaniment = _synthesise(rest, accompaniment_program, rate, seconds, 80, sf2)
    peak = float(np.max(np.abs(vocals + accompaniment)))
    gain = 10 ** (-1 / 20) / peak if peak > 0 else 1.0
    return vocals * gain, accompaniment * gain


def folder_name(piece: Piece, transpose: int) -> str:
    return piece.name if transpose == 0 else f"{piece.name}_t{transpose:+d}"


def build_chorales(out_dir: str, rate: int, n: int | None = None, transpositions: Sequence[int] = (0,),
                   bpm: float = 80.0, voice_program: int = VOICE_PROGRAM,
                   accompaniment_program: int = ACCOMPANIMENT_PROGRAM, progress: bool = True) -> dict:
    """Render chorales into ``out_dir``; returns the summary written to ``corpus.json``.

    Songs already rendered (all three stems present) are kept, so an
    interrupted build resumes. Each stem is written atomically.
    """
    from tqdm import tqdm

    os.makedirs(out_dir, exist_ok=True)
    pieces = select(list_pieces(), n)
    jobs = [(p, t) for p in pieces for t in transpositions]
    splits: dict[str, list[str]] = {s: [] for s, _ in SPLIT_FRACTIONS}
    songs, failed = [], []
    rendered_seconds, busy = 0.0, 0.0
    bar = tqdm(jobs, unit="song", disable=not progress, desc="render")
    for piece, t in bar:
        name = folder_name(piece, t)
        folder = os.path.join(out_dir, name)
        stems = {k: os.path.join(folder, f"{k}.flac") for k in ("vocals", "accompaniment", "mixture")}
        if not all(os.path.exists(p) for p in stems.values()):
            start = time.perf_counter()
            try:
                vocals, accompaniment = render_piece(piece, rate, t, bpm, voice_program, accompaniment_program)
            except Exception as e:  # a piece music21 cannot parse is skipped, not fatal
                failed.append(f"{piece.path}: {e}")
                bar.write(f"error: {piece.path}: {e}", file=sys.stderr)
                continue
            for key, x in (("vocals", vocals), ("accompaniment", accompaniment), ("mixture", vocals + accompaniment)):
                audio_io.write(stems[key], x, rate)
            busy += time.perf_counter() - start
            rendered_seconds += len(vocals) / rate
            if busy > 0:
                bar.set_postfix_str(f"{rendered_seconds / busy:.0f}x real time")
        split = split_of(piece.name)
        splits[split].append(name)
        songs.append({"folder": name, "piece": piece.name, "source": os.path.basename(piece.path),
                      "transpose": t, "split": split, "seconds": audio_io.info_seconds(stems["vocals"])})
    summary = {
        "sample_rate": rate,
        "bpm": bpm,
        "voice_program": voice_program,
        "accompaniment_program": accompaniment_program,
        "soundfont": "TimGM6mb.sf2 (pretty_midi wheel)",
        "songs": songs,
        "failed": failed,
        "rendered_seconds": round(rendered_seconds, 2),
        "render_speed_x_realtime": round(rendered_seconds / busy, 1) if busy else None,
    }
    atomic_write_text(os.path.join(out_dir, "splits.json"), json.dumps(splits, indent=2) + "\n")
    atomic_write_text(os.path.join(out_dir, "corpus.json"), json.dumps(summary, indent=2) + "\n")
    return summary
