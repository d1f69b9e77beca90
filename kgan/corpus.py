"""Song corpora rendered offline: vocal and accompaniment stems in the MUSDB18 layout, with a style label.

No data set can be downloaded at run time, but the ``music21`` wheel ships
public-domain scores. Two sources are used, and only these two: the rest of
music21's corpus (other composers, lead sheets, other folk collections) is
reserved for evaluation.

* ``chorales``: Bach's four-part chorales. Soprano -> vocal; alto, tenor and
  bass -> accompaniment (style ``chorale``), played by an organ, strings or a
  piano chosen per song.
* ``folk``: the Essen folk-song collection (``essenFolksong``, ~8 500
  monophonic tunes in ABC). The tune -> vocal; ``kgan.harmony`` harmonises it
  and ``kgan.styles`` accompanies it in one of five styles (piano, organ,
  strings, guitar, band).

**Voices.** Each song's melody is rendered by one voice chosen per song from
``--voices``: General MIDI voice patches (Voice Oohs, Choir Aahs, Synth
Voice), melody instruments (flute, clarinet, oboe, alto sax, trumpet, violin)
and Festival's singing mode (``text2wave -mode singing``; a male diphone voice
singing syllables on the notes, an octave below the written melody as men
sing a tune). Festival is a system package: ``apt-get install festival
festvox-kallpc16k``.

**SoundFont.** TimGM6mb (inside the ``pretty_midi`` wheel) by default; any
other General MIDI ``.sf2`` with ``--soundfont`` (e.g. Debian's
``fluid-soundfont-gm``: ``/usr/share/sounds/sf2/FluidR3_GM.sf2``).

**Splits that cannot leak.** The split is by *tune*: a hash of the tune's id
decides train / val / test (80 / 10 / 10), so every setting, transposition and
rendition of a tune lands in the same split in every build. Bach set many
hymn tunes more than once: chorales are grouped into tunes by hymn title and
by the soprano's first eight melodic intervals (``chorale_tunes.json``, made by
``chorale_tune_table``). Essen tunes are grouped by their catalogue number
(variants ``A0004A``/``A0004B`` are one tune) and by identical note text.

Each song folder holds ``vocals.flac``, ``accompaniment.flac``,
``mixture.flac`` and ``song.json`` (source, tune, voice, style, programs,
tempo, key, SoundFont, split); the folder appears only when complete (it is
written under a temporary name and renamed), so an interrupted build
resumes. ``splits.json`` lists the folders of each split; ``corpus.json``
records provenance and the render speed. Songs render in ``jobs`` processes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Iterable, Sequence

import numpy as np

from kgan import audio as audio_io
from kgan.io_utils import atomic_write_text, remove_stale_temporaries, temporary_prefix

__all__ = ["Tune", "Voice", "VOICES", "SOURCES", "STYLE_LABELS", "list_chorales", "list_folk", "split_of",
           "select", "plan_songs", "render_song", "build_corpus", "build_chorales", "chorale_tune_table",
           "festival_available", "soundfont_path", "parse_voices"]

SPLIT_FRACTIONS = (("train", 0.8), ("val", 0.1), ("test", 0.1))
SOURCES = ("chorales", "folk")
CHORALE_PROGRAMS = (19, 16, 20, 48, 0)  # church / drawbar / reed organ, strings, piano
TUNE_TABLE = os.path.join(os.path.dirname(__file__), "data", "chorale_tunes.json")
FINGERPRINT_INTERVALS = 8


@dataclasses.dataclass(frozen=True)
class Voice:
    name: str
    family: str
    program: int | None  # General MIDI program (0-based); None: Festival


VOICES = {v.name: v for v in (
    Voice("oohs", "gm-voice", 53), Voice("aahs", "gm-voice", 52), Voice("synth-voice", "gm-voice", 54),
    Voice("flute", "wind", 73), Voice("clarinet", "wind", 71), Voice("oboe", "wind", 68),
    Voice("sax", "wind", 65), Voice("trumpet", "brass", 56), Voice("violin", "bowed", 40),
    Voice("festival", "festival", None),
)}


STYLE_LABELS = ("chorale", "piano", "organ", "strings", "guitar", "band")


@dataclasses.dataclass(frozen=True)
class Tune:
    source: str  # "chorales" or "folk"
    name: str  # folder stem: "bwv10.7", "folk-A0004A"
    tune_id: str  # what the split hashes: every setting or variant of one tune shares it
    path: str  # the score file (MusicXML, or the ABC collection)
    index: int = -1  # for ABC collections: the tune's position in the file


# ------------------------------------------------------------------ tunes
def _union_groups(keys: dict[str, list]) -> dict[str, str]:
    """Items sharing any key end in one group, named by its smallest item."""
    parent: dict[str, str] = {}

    def find(a):
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    owners: dict = {}
    for item, item_keys in keys.items():
        find(item)
        for k in item_keys:
            if k in owners:
                a, b = find(owners[k]), find(item)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                owners[k] = item
    return {item: find(item) for item in keys}


def _soprano_and_lower(score):
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


def _chorale_paths() -> dict[str, str]:
    from music21 import corpus

    paths = {}
    for path in corpus.getComposer("bach"):
        stem, ext = os.path.splitext(os.path.basename(str(path)))
        if ext == ".mxl" and stem.startswith("bwv"):
            paths[stem] = str(path)
    return dict(sorted(paths.items()))


def chorale_tune_table() -> dict[str, str]:
    """Chorale name -> tune id, computed from the scores (~40 s; shipped as ``chorale_tunes.json``).

    Two chorales share a tune when their hymn titles match (music21's chorale
    list) or their sopranos open with the same ``FINGERPRINT_INTERVALS``
    melodic intervals (ties and repeated notes merged, so transposition-
    invariant). Over-merging only moves whole groups between splits; it never leaks.
    """
    from music21 import converter
    from music21.corpus import chorales

    titles = chorales.ChoraleList().byBWV
    keys: dict[str, list] = {}
    for name, path in _chorale_paths().items():
        k = []
        number = name[3:]
        if number.isdigit() and int(number) in titles:
            k.append(("title", titles[int(number)]["title"].strip().lower()))
        parts = _soprano_and_lower(converter.parse(path))
        if parts is None:  # not a four-part chorale (music21 files a few other Bach pieces as bwv*)
            continue
        pitches = []
        for n in parts[0].stripTies().flatten().notes:
            m = int(n.pitches[-1].midi)
            if not pitches or pitches[-1] != m:
                pitches.append(m)
        steps = tuple(int(d) for d in np.diff(pitches[: FINGERPRINT_INTERVALS + 1]))
        if len(steps) == FINGERPRINT_INTERVALS:
            k.append(("melody", steps))
        keys[name] = k
    return {name: f"chorale:{group}" for name, group in _union_groups(keys).items()}


@functools.lru_cache(maxsize=1)
def _shipped_tune_table() -> dict[str, str]:
    with open(TUNE_TABLE, encoding="utf-8") as f:
        return json.load(f)


def list_chorales() -> list[Tune]:
    """Every four-part Bach chorale in music21's corpus (those in the tune table), with its tune group."""
    table = _shipped_tune_table()
    return [Tune("chorales", name, table[name], path) for name, path in _chorale_paths().items() if name in table]


_ABC_FIELD = re.compile(r"^([A-Za-z]):\s*(.*)$")


def _abc_blocks(path: str) -> list[tuple[dict[str, str], str]]:
    """(header fields, whole text) of each tune (``X:`` block) of an ABC file."""
    with open(path, encoding="latin-1") as f:
        text = f.read()
    blocks = []
    for chunk in re.split(r"(?m)^(?=X:)", text):
        if not chunk.startswith("X:"):
            continue
        fields, body = {}, []
        for line in chunk.splitlines():
            m = _ABC_FIELD.match(line)
            if m and not body and m.group(1) not in fields:
                fields[m.group(1)] = m.group(2).strip()
                if m.group(1) == "K":
                    body.append("")
            elif fields.get("K") is not None:
                body.append(line)
        fields["_body"] = re.sub(r"[\s|:\]\[]", "", "".join(body))
        blocks.append((fields, chunk))
    return blocks


@functools.lru_cache(maxsize=1)
def list_folk() -> list[Tune]:
    """Every tune of music21's Essen folk-song collection, with its tune group."""
    from music21 import corpus

    entries, keys = {}, {}
    for path in sorted(str(p) for p in corpus.getComposer("essenFolksong")):
        stem = os.path.splitext(os.path.basename(path))[0]
        for index, (fields, _) in enumerate(_abc_blocks(path)):
            if not fields["_body"]:
                continue
            number = re.sub(r"[^A-Za-z0-9]", "", fields.get("N", "")) or f"{stem}-{fields.get('X', index)}"
            name = f"folk-{number}"
            while name in entries:  # the same catalogue number twice: keep both, apart
                name += "x"
            base = re.match(r"[A-Za-z]*\d+", number)
            entries[name] = (path, index)
            keys[name] = [("id", base.group(0) if base else number),
                          ("notes", hashlib.sha1(fields["_body"].encode()).hexdigest())]
    groups = _union_groups(keys)
    return [Tune("folk", name, f"folk:{groups[name]}", path, index) for name, (path, index) in entries.items()]


def split_of(tune_id: str) -> str:
    """The split of a tune from a hash of its id: stable across corpus builds."""
    u = int(hashlib.sha256(tune_id.encode()).hexdigest()[:8], 16) / 2**32
    edge = 0.0
    for split, fraction in SPLIT_FRACTIONS:
        edge += fraction
        if u < edge:
            return split
    return SPLIT_FRACTIONS[-1][0]


def _order(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def select(tunes: Sequence[Tune], n: int | None, splits: Sequence[str] | None = None) -> list[Tune]:
    """``n`` tunes with every split represented (when n >= 3), the same ones in every build.

    Within a split the order is a hash of the name (so a small selection still
    spans the collection). ``splits`` keeps only those splits.
    """
    wanted = list(splits or [s for s, _ in SPLIT_FRACTIONS])
    by_split = {s: sorted((t for t in tunes if split_of(t.tune_id) == s), key=lambda t: _order(t.name))
                for s in wanted}
    if n is None:
        return sorted((t for s in wanted for t in by_split[s]), key=lambda t: t.name)
    fractions = {s: f for s, f in SPLIT_FRACTIONS if s in wanted}
    total = sum(fractions.values())
    counts = {s: round(n * f / total) for s, f in fractions.items() if s != wanted[0]}
    if n >= len(wanted):
        counts = {s: max(1, c) for s, c in counts.items()}
    counts[wanted[0]] = n - sum(counts.values())
    chosen = [t for s, c in counts.items() for t in by_split[s][: max(0, c)]]
    return sorted(chosen, key=lambda t: t.name)


# ------------------------------------------------------------------ scores
@dataclasses.dataclass
class Score:
    """A tune ready to render, in quarter notes: melody, accompaniment parts, meter."""

    melody: list[tuple[float, float, int]]  # (start, duration, midi)
    parts: list  # kgan.styles.Part
    info: dict
    chords: list[tuple[float, float, int]]  # (start, end, triad id): the harmony the accompaniment plays


def _notes_of(part) -> list[tuple[float, float, int]]:
    out = []
    for n in part.stripTies().flatten().notes:
        for p in n.pitches:
            if float(n.quarterLength) > 0:
                out.append((float(n.offset), float(n.quarterLength), int(p.midi)))
    return out


def _chorale_score(tune: Tune, rng: np.random.Generator, program: int | None) -> Score:
    from music21 import converter

    from kgan.harmony import label_triads
    from kgan.styles import Part

    parts = _soprano_and_lower(converter.parse(tune.path))
    if parts is None:
        raise ValueError(f"{tune.name}: not a four-part chorale")
    soprano, lower = parts
    melody = [n for n in _notes_of(soprano)]
    rest = [n for p in lower for n in _notes_of(p)]
    if not melody or not rest:
        raise ValueError(f"{tune.name}: a voice has no notes")
    program = int(rng.choice(CHORALE_PROGRAMS)) if program is None else program
    part = Part(program, [(s, s + d, m, 80) for s, d, m in rest], name="chorale")
    return Score(melody, [part], {"style": "chorale", "programs": {"chorale": program}}, label_triads(melody + rest))


def _folk_score(tune: Tune, rng: np.random.Generator, style: str) -> Score:
    from music21 import converter

    from kgan.harmony import beat_quarters, harmonise, segment_length, strong_beat_chord_tone_share, triad_id
    from kgan.styles import accompany

    fields, text = _abc_blocks(tune.path)[tune.index]
    score = converter.parse(text, format="abc")
    part = score.parts[0] if score.parts else score
    melody = _notes_of(part)
    if len(melody) < 4:
        raise ValueError(f"{tune.name}: fewer than 4 notes")
    signatures = list(score.recurse().getElementsByClass("TimeSignature"))
    num, den = (signatures[0].numerator, signatures[0].denominator) if signatures else (4, 4)
    bar = num * 4.0 / den
    measures = list(part.getElementsByClass("Measure"))
    first = float(measures[0].duration.quarterLength) if measures else bar
    pickup = first if 0 < first < bar - 1e-6 else 0.0
    beat = beat_quarters(num, den)
    chords = harmonise(melody, segment_length(num, den), pickup)
    parts, info = accompany(chords, style, beat, bar, pickup, rng)
    info.update({"meter": f"{num}/{den}", "pickup": pickup, "chords": " ".join(c.name for c in chords),
                 "strong_beat_chord_tones": round(strong_beat_chord_tone_share(melody, chords), 3),
                 "title": fields.get("T", "")})
    return Score(melody, parts, info, [(c.start, c.end, triad_id(c.pitch_classes)) for c in chords])


# --------------------------------------------------------------- rendering
def soundfont_path() -> str:
    """TimGM6mb, the General MIDI SoundFont inside the ``pretty_midi`` wheel."""
    import pretty_midi

    return os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")


def festival_available() -> bool:
    return shutil.which("text2wave") is not None


def _render_parts(parts: Iterable[tuple[int, bool, list[tuple[float, float, int, int]]]], rate: int,
                  seconds: float, soundfont: str) -> np.ndarray:
    """Render (program, drums, [(start s, end s, midi, velocity)]) parts together; mono float32."""
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=rate)
    sfid = synth.sfload(soundfont)
    events = []
    melodic = 0
    for program, drums, notes in parts:
        if drums:
            channel = 9
            synth.program_select(channel, sfid, 128, 0, True)
        else:
            channel = melodic if melodic < 9 else melodic + 1
            melodic += 1
            synth.program_select(channel, sfid, 0, program)
        for s, e, key, vel in notes:
            if e > s:
                # at equal times note-offs (0) sort before note-ons (1): repeated notes re-strike
                events += [(round(s * rate), 1, channel, key, vel), (round(e * rate), 0, channel, key, 0)]
    events.sort()
    total = int(round(seconds * rate))
    out = np.zeros((total, 2), np.float32)
    cursor = 0
    for at, on, channel, key, vel in events + [(total, -1, 0, 0, 0)]:
        at = min(at, total)
        if at > cursor:
            out[cursor:at] = np.frombuffer(synth.generate(at - cursor), dtype=np.float32).reshape(-1, 2)
            cursor = at
        if on == 1:
            synth.noteon(channel, key, vel)
        elif on == 0:
            synth.noteoff(channel, key)
    return out.mean(axis=1)


_SYLLABLES = ("la", "lo", "da", "doo", "na", "mee", "ah", "oh", "noo", "tee", "lay", "bah")


def _festival_xml(melody, bpm: float, octave: int, rng: np.random.Generator) -> str:
    """Festival SINGING markup: each note a syllable at an exact frequency, gaps as rests (beats = quarters)."""
    lines, cursor = [], 0.0
    for start, dur, midi in melody:
        if start > cursor + 1e-6:
            lines.append(f'<REST BEATS="{start - cursor:.4f}"></REST>')
        freq = 440.0 * 2.0 ** ((midi + 12 * octave - 69) / 12.0)
        syllable = _SYLLABLES[int(rng.integers(len(_SYLLABLES)))]
        lines.append(f'<PITCH NOTE="X" FREQ="{freq:.2f}"><DURATION BEATS="{dur:.4f}">{syllable}</DURATION></PITCH>')
        cursor = max(cursor, start + dur)
    return ('<?xml version="1.0"?>\n<!DOCTYPE SINGING PUBLIC "-//SINGING//DTD SINGING mark up//EN" '
            f'"Singing.v0_1.dtd" []>\n<SINGING BPM="{bpm:.3f}">\n' + "\n".join(lines) + "\n</SINGING>\n")


def _text2wave(xml: str) -> tuple[np.ndarray, int]:
    with tempfile.TemporaryDirectory(prefix="kgan-festival-") as tmp:
        src, dst = os.path.join(tmp, "song.xml"), os.path.join(tmp, "song.wav")
        with open(src, "w", encoding="utf-8") as f:
            f.write(xml)
        proc = subprocess.run(["text2wave", "-mode", "singing", src, "-o", dst], capture_output=True, text=True,
                              timeout=600)
        if proc.returncode != 0 or not os.path.exists(dst):
            raise RuntimeError(f"festival failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
        return audio_io.load(dst)


def _sing(melody, seconds_per_quarter: float, rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """The melody sung by Festival (an octave lower), aligned to the song's clock; mono float32 at ``rate``.

    Festival's singing mode does not keep the given tempo exactly (its notes
    run ~16 % long): one render measures the ratio, a second one at the
    corrected tempo is used.
    """
    bpm = 60.0 / seconds_per_quarter
    syllable_seed = int(rng.integers(2**31))
    expected = max(s + d for s, d, _ in melody) * seconds_per_quarter
    x, r = _text2wave(_festival_xml(melody, bpm, -1, np.random.default_rng(syllable_seed)))
    x, r = _text2wave(_festival_xml(melody, bpm * (len(x) / r) / expected, -1, np.random.default_rng(syllable_seed)))
    x = audio_io.resample(x, r, rate)
    out = np.zeros(int(round(seconds * rate)), np.float32)
    n = min(len(x), len(out))
    out[:n] = x[:n]
    return out


def _seconds(notes, spq: float):
    return [(s * spq, (s + d) * spq, m) for s, d, m in notes]


@dataclasses.dataclass(frozen=True)
class SongPlan:
    folder: str
    tune: Tune
    transpose: int
    voice: str
    seed: int
    soundfont: str
    style: str  # folk songs; chorales are always "chorale"
    bpm: float | None = None  # None: drawn per song
    accompaniment_program: int | None = None  # chorales only; None: drawn per song


def render_song(plan: SongPlan, rate: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(vocals, accompaniment, info): mono float32 at ``rate``, the mixture peaking at -1 dBFS."""
    rng = np.random.default_rng(plan.seed)
    tune = plan.tune
    if tune.source == "chorales":
        score = _chorale_score(tune, rng, plan.accompaniment_program)
        shift = plan.transpose
        bpm = plan.bpm or float(rng.uniform(60, 100))
    else:
        score = _folk_score(tune, rng, plan.style)
        median = float(np.median([m for _, _, m in score.melody]))
        shift = int(round(rng.integers(60, 70) - median)) + plan.transpose  # a random key per rendition
        bpm = plan.bpm or float(rng.uniform(80, 140))
    spq = 60.0 / bpm
    melody = [(s, d, m + shift) for s, d, m in score.melody]
    seconds = max(s + d for s, d, _ in melody) * spq + 1.0
    for part in score.parts:
        seconds = max(seconds, max((e for _, e, _, _ in part.notes), default=0.0) * spq + 1.0)
    voice = VOICES[plan.voice]
    if voice.program is None:
        vocals = _sing(melody, spq, rate, seconds, rng)
    else:
        velocity = int(rng.integers(95, 120))
        vocals = _render_parts([(voice.program, False, [(s, e, m, velocity) for s, e, m in _seconds(melody, spq)])],
                               rate, seconds, plan.soundfont)
    parts = [(p.program, p.drums, [(s * spq, e * spq, m + (0 if p.drums else shift), v) for s, e, m, v in p.notes])
             for p in score.parts]
    accompaniment = _render_parts(parts, rate, seconds, plan.soundfont)
    vocal_rms = float(np.sqrt(np.mean(vocals**2)))
    accompaniment_rms = float(np.sqrt(np.mean(accompaniment**2)))
    if vocal_rms <= 0 or accompaniment_rms <= 0:
        raise ValueError(f"{plan.folder}: a stem rendered silent")
    balance_db = float(rng.uniform(-3.0, 6.0))  # vocal level over the accompaniment
    vocals = vocals * (accompaniment_rms / vocal_rms) * 10 ** (balance_db / 20)
    peak = float(np.max(np.abs(vocals + accompaniment)))
    gain = 10 ** (-1 / 20) / peak
    info = {"source": tune.source, "tune": tune.tune_id, "piece": tune.name, "voice": voice.name,
            "voice_family": voice.family, **score.info, "bpm": round(bpm, 2), "transpose": shift,
            "balance_db": round(balance_db, 2), "soundfont": os.path.basename(plan.soundfont),
            # the score's chords in seconds, in the rendered key: clean labels for the chord network
            "chord_track": [[round(s * spq, 3), round(e * spq, 3), 2 * ((c // 2 + shift) % 12) + c % 2]
                            for s, e, c in score.chords]}
    return (vocals * gain).astype(np.float32), (accompaniment * gain).astype(np.float32), info


def _render_job(args) -> tuple[str, dict | None, str | None, float]:
    """Render one song into its folder (worker process): (folder, info or None, error or None, busy seconds)."""
    plan, out_dir, rate = args
    start = time.perf_counter()
    final = os.path.join(out_dir, plan.folder)
    tmp = os.path.join(out_dir, f"{temporary_prefix()}{plan.folder}")
    try:
        vocals, accompaniment, info = render_song(plan, rate)
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        for key, x in (("vocals", vocals), ("accompaniment", accompaniment), ("mixture", vocals + accompaniment)):
            audio_io.write(os.path.join(tmp, f"{key}.flac"), x, rate)
        info["split"] = split_of(plan.tune.tune_id)
        info["seconds"] = round(len(vocals) / rate, 3)
        atomic_write_text(os.path.join(tmp, "song.json"), json.dumps(info, indent=2) + "\n")
        os.replace(tmp, final)
        return plan.folder, info, None, time.perf_counter() - start
    except Exception as e:  # one bad tune is reported, not fatal
        shutil.rmtree(tmp, ignore_errors=True)
        return plan.folder, None, f"{plan.tune.path}#{plan.tune.name}: {e}", time.perf_counter() - start


# ------------------------------------------------------------------ builds
def parse_voices(spec: str | Sequence[str] | None) -> list[str]:
    """Voice names from names and family names ("all" = every voice; Festival only where installed)."""
    if spec is None or spec == "all" or spec == ["all"]:
        return [v for v in VOICES if VOICES[v].program is not None or festival_available()]
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    out = []
    for item in items:
        matches = [v.name for v in VOICES.values() if item in (v.name, v.family)]
        if not matches:
            families = sorted({v.family for v in VOICES.values()})
            raise ValueError(f"unknown voice {item!r}; expected names {sorted(VOICES)} or families {families}")
        out += [m for m in matches if m not in out]
    if "festival" in out and not festival_available():
        raise ValueError("voice 'festival' needs Festival's text2wave: apt-get install festival festvox-kallpc16k")
    return out


def folder_name(tune: Tune, transpose: int, rendition: int = 0) -> str:
    name = tune.name if transpose == 0 else f"{tune.name}_t{transpose:+d}"
    return name if rendition == 0 else f"{name}_r{rendition}"


def plan_songs(sources: dict[str, int | None], voices: Sequence[str], styles: Sequence[str], soundfont: str,
               transpositions: Sequence[int] = (0,), renditions: int = 1, seed: int = 0,
               splits: Sequence[str] | None = None, bpm: float | None = None,
               accompaniment_program: int | None = None) -> list[SongPlan]:
    """What to render: tunes per source, each transposition and rendition with its own voice and style.

    The voice, style and everything drawn at random depend only on ``seed`` and
    the song's folder name, so a song renders the same whatever else is built.
    """
    plans = []
    for source, n in sources.items():
        if n == 0:
            continue
        tunes = list_chorales() if source == "chorales" else list_folk()
        for tune in select(tunes, n, splits):
            for t in transpositions:
                for r in range(renditions):
                    folder = folder_name(tune, t, r)
                    song_seed = int(hashlib.sha256(f"{seed}:{folder}".encode()).hexdigest()[:15], 16)
                    voice = voices[song_seed % len(voices)]
                    style = "chorale" if source == "chorales" else styles[(song_seed >> 20) % len(styles)]
                    plans.append(SongPlan(folder, tune, t, voice, song_seed, soundfont, style, bpm,
                                          accompaniment_program))
    return plans


def build_corpus(out_dir: str, rate: int, sources: dict[str, int | None], voices: Sequence[str] | None = None,
                 styles: Sequence[str] | None = None, soundfont: str | None = None,
                 transpositions: Sequence[int] = (0,), renditions: int = 1, jobs: int = 1, seed: int = 0,
                 splits: Sequence[str] | None = None, bpm: float | None = None,
                 accompaniment_program: int | None = None, progress: bool = True) -> dict:
    """Render songs into ``out_dir``; returns the summary written to ``corpus.json``.

    Songs already rendered are kept, so an interrupted build resumes.
    """
    from tqdm import tqdm

    from kgan.styles import STYLES

    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown source(s) {sorted(unknown)}; expected {list(SOURCES)}")
    voices = parse_voices(voices)
    styles = list(styles or STYLES)
    bad = [s for s in styles if s not in STYLES]
    if bad:
        raise ValueError(f"unknown style(s) {bad}; expected {list(STYLES)} (chorales are always 'chorale')")
    soundfont = soundfont or soundfont_path()
    if not os.path.isfile(soundfont):
        raise FileNotFoundError(f"{soundfont}: SoundFont not found")
    os.makedirs(out_dir, exist_ok=True)
    remove_stale_temporaries(out_dir)  # song folders of a killed build
    plans = plan_songs(sources, voices, styles, soundfont, transpositions, renditions, seed, splits, bpm,
                       accompaniment_program)
    todo = [p for p in plans if not os.path.exists(os.path.join(out_dir, p.folder, "song.json"))]
    failed, rendered_seconds, busy = [], 0.0, 0.0
    wall = time.perf_counter()
    bar = tqdm(total=len(plans), initial=len(plans) - len(todo), unit="song", disable=not progress, desc="render",
               dynamic_ncols=True)
    jobs_args = [(p, out_dir, rate) for p in todo]
    if jobs > 1 and len(todo) > 1:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(jobs)
        results = pool.imap_unordered(_render_job, jobs_args)
    else:
        pool, results = None, map(_render_job, jobs_args)
    try:
        for folder, info, error, seconds in results:
            busy += seconds
            if error:
                failed.append(error)
                bar.write(f"error: {error}", file=sys.stderr)
            else:
                rendered_seconds += info["seconds"]
                bar.set_postfix_str(f"{rendered_seconds / max(time.perf_counter() - wall, 1e-9):.0f}x real time")
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    wall = time.perf_counter() - wall
    splits_out: dict[str, list[str]] = {s: [] for s, _ in SPLIT_FRACTIONS}
    songs = []
    for plan in plans:
        path = os.path.join(out_dir, plan.folder, "song.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                info = json.load(f)
            splits_out[info["split"]].append(plan.folder)
            songs.append({"folder": plan.folder, **info})
    summary = {
        "sample_rate": rate,
        "sources": {k: v for k, v in sources.items()},
        "voices": list(voices),
        "styles": styles,
        "soundfont": os.path.basename(soundfont),
        "seed": seed,
        "songs": songs,
        "failed": failed,
        "hours": round(sum(s["seconds"] for s in songs) / 3600, 3),
        "rendered_seconds": round(rendered_seconds, 2),
        "jobs": jobs,
        "render_speed_x_realtime": round(rendered_seconds / wall, 1) if rendered_seconds and wall > 0 else None,
    }
    atomic_write_text(os.path.join(out_dir, "splits.json"), json.dumps(splits_out, indent=2) + "\n")
    atomic_write_text(os.path.join(out_dir, "corpus.json"), json.dumps(summary, indent=2) + "\n")
    return summary


def build_chorales(out_dir: str, rate: int, n: int | None = None, transpositions: Sequence[int] = (0,),
                   **kwargs) -> dict:
    """``build_corpus`` with chorales only."""
    return build_corpus(out_dir, rate, {"chorales": n}, transpositions=transpositions, **kwargs)
