"""Accompaniment styles: a chord sequence (``kgan.harmony``) -> instrument parts to render.

Times are in quarter notes; ``kgan.corpus`` turns them into seconds at the
song's tempo and renders each part with its General MIDI program.

| style | parts |
|---|---|
| ``piano`` | one piano: block chords on the beats over a bass note, a broken-chord arpeggio, or an Alberti bass (the pattern is chosen per song) |
| ``organ`` | an organ or synth pad holding each chord over its bass note |
| ``strings`` | a string ensemble holding the chord and a cello / contrabass line |
| ``guitar`` | a strummed guitar: down and up strokes on a per-song rhythm, notes of a stroke a few ms apart |
| ``band`` | drums (kick, snare, hi-hat), a bass guitar on the beats, and comping chords (electric piano, organ or guitar) |

Programs, the pattern, velocities and voicing register vary per song from a
seeded ``numpy.random.Generator``.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from kgan.harmony import Chord

__all__ = ["Part", "STYLES", "accompany", "voicing"]

STYLES = ("piano", "organ", "strings", "guitar", "band")
_PROGRAMS = {  # General MIDI, 0-based
    "piano": [0, 1, 2, 4, 5],  # grand, bright, electric grand, electric pianos
    "organ": [16, 17, 19, 20, 89, 90],  # drawbar, percussive, church, reed organ; warm pad, polysynth
    "strings": [48, 49, 50],  # string ensembles, synth strings
    "strings_bass": [42, 43],  # cello, contrabass
    "guitar": [24, 25, 26, 27],  # nylon, steel, jazz, clean electric
    "band_bass": [32, 33, 34, 38],  # acoustic, finger, pick, synth bass
    "band_comp": [4, 5, 16, 27, 0],  # electric pianos, organ, clean guitar, piano
}
KICK, SNARE, HIHAT, OPEN_HIHAT, CRASH = 36, 38, 42, 46, 49


@dataclasses.dataclass
class Part:
    program: int
    notes: list[tuple[float, float, int, int]]  # (start, end, midi, velocity), quarter notes
    drums: bool = False
    name: str = ""


def voicing(chord: Chord, low: int, high: int) -> list[int]:
    """The chord's tones in close position, each once, from the lowest one at or above ``low`` (< ``high``)."""
    notes = []
    for pc in chord.pitch_classes:
        m = low + (pc - low) % 12
        while m >= high:
            m -= 12
        notes.append(m)
    return sorted(set(notes))


def _bass(chord: Chord, low: int) -> int:
    return low + (chord.root - low) % 12


def _beats(start: float, end: float, beat: float) -> list[float]:
    return [t for t in np.arange(start, end - 1e-6, beat)]


def accompany(chords: Sequence[Chord], style: str, beat: float, bar: float, pickup: float,
              rng: np.random.Generator) -> tuple[list[Part], dict]:
    """Parts playing ``chords`` in ``style``; ``beat`` and ``bar`` in quarter notes. Returns (parts, info)."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {list(STYLES)}")
    vel = int(rng.integers(60, 100))

    def v(scale=1.0):
        return int(np.clip(vel * scale + rng.normal(0, 6), 20, 127))

    def pick(key):
        return int(rng.choice(_PROGRAMS[key]))

    low = int(rng.integers(50, 56))  # voicing register
    info: dict = {"style": style}
    parts: list[Part] = []
    if style == "piano":
        pattern = str(rng.choice(["block", "arpeggio", "alberti"]))
        info["pattern"] = pattern
        notes = []
        for c in chords:
            tones, bass = voicing(c, low, low + 14), _bass(c, 36)
            if pattern == "block":
                notes.append((c.start, c.end, bass, v()))
                notes += [(t, min(t + beat * 0.9, c.end), m, v(0.85)) for t in _beats(c.start, c.end, beat)
                          for m in tones]
            else:
                figure = ([bass, bass + 7, bass + 12, tones[1] + 12 if len(tones) > 1 else bass + 16]
                          if pattern == "arpeggio" else [tones[0], tones[-1], tones[len(tones) // 2], tones[-1]])
                if pattern == "alberti":
                    notes.append((c.start, c.end, bass, v()))
                for i, t in enumerate(_beats(c.start, c.end, beat / 2)):
                    notes.append((t, min(t + beat / 2, c.end), figure[i % len(figure)], v(0.9 if i % 2 else 1.0)))
        parts.append(Part(pick("piano"), notes, name="piano"))
    elif style == "organ":
        notes = [(c.start, c.end, m, v()) for c in chords for m in voicing(c, low, low + 14) + [_bass(c, 36)]]
        parts.append(Part(pick("organ"), notes, name="organ"))
    elif style == "strings":
        upper = [(c.start, c.end + 0.05, m, v()) for c in chords for m in voicing(c, low, low + 14)]
        lower = [(c.start, c.end + 0.05, _bass(c, 36), v()) for c in chords]
        parts += [Part(pick("strings"), upper, name="strings"), Part(pick("strings_bass"), lower, name="bass")]
    elif style == "guitar":
        rhythm = [0.0, 1.0, 1.5, 2.5, 3.0, 3.5] if rng.random() < 0.5 else [0.0, 1.0, 2.0, 2.5, 3.5]
        info["strokes_per_bar"] = len(rhythm)
        notes = []
        for c in chords:
            tones = voicing(c, 40, 52) + voicing(c, 52, 64)
            for t in sorted({c.start + (r % (c.end - c.start)) for r in rhythm if r < c.end - c.start}):
                down = abs((t - pickup) % 1.0) < 1e-6
                order = tones if down else tones[::-1]
                for i, m in enumerate(order):
                    onset = t + i * 0.02
                    notes.append((onset, min(t + beat, c.end), m, v(1.0 if down else 0.75)))
        parts.append(Part(pick("guitar"), notes, name="guitar"))
    elif style == "band":
        end = chords[-1].end
        drums = []
        for t in _beats(pickup, end, beat / 2):
            position = (t - pickup) % bar
            drums.append((t, t + 0.1, HIHAT, v(0.7)))
            if abs(position) < 1e-6 or abs(position - bar / 2) < 1e-6:
                drums.append((t, t + 0.1, KICK, v(1.1)))
            elif abs(position % (2 * beat) - beat) < 1e-6:
                drums.append((t, t + 0.1, SNARE, v()))
        drums.append((pickup, pickup + 0.1, CRASH, v()))
        bass, comp = [], []
        for c in chords:
            root = _bass(c, 28 + int(rng.integers(0, 8)))
            for i, t in enumerate(_beats(c.start, c.end, beat)):
                bass.append((t, t + beat * 0.8, root if i % 2 == 0 else root + 7, v()))
                comp += [(t + beat / 2, t + beat * 0.9, m, v(0.8)) for m in voicing(c, low, low + 14)]
        parts += [Part(0, drums, drums=True, name="drums"), Part(pick("band_bass"), bass, name="bass"),
                  Part(pick("band_comp"), comp, name="comp")]
    info["programs"] = {p.name: ("drums" if p.drums else p.program) for p in parts}
    return parts, info
