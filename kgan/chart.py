"""Chord charts: the chords a singer already knows, imposed on the chord plan (``kgan generate --chords``).

A plan generator (``model.vocal_input=plan``) plays the chords its chord network guesses from the sung
melody. On voices it never heard those guesses are often wrong, and the accompaniment follows them. A
singer usually knows the song's chords, so a chart replaces the guesses: the exported graph takes an
optional ``chords`` input (a chord id per STFT frame of the request, -1 where the network keeps its
guess) and puts each given chord's logits in the network's place (``kgan.inference.Generate.impose_chords``).
``kgan chords guess`` writes the network's own plan as a chart (``guess_chart``, ``chart_of_frames``), for a
singer to correct where it is wrong and give back.

The chart is text, a bar between bar lines, the chords of a bar sharing it equally::

    C G | Am F | C . G7 . | F . . . | %

* a chord: a root (``A``-``G``, then ``#`` or ``b``) and a quality. ``m``, ``min``, ``-``, ``dim``,
  ``m7b5`` and ``ø`` (a minor third) give the minor triad; everything else (``7``, ``maj7``, ``sus4``,
  ``6``, ``add9``, ``aug``...) the major one, since the plan holds the 24 major and minor triads.
  A slash bass (``C/E``) is dropped;
* ``.``: the chord before it goes on; ``%``: the bar before it again;
* ``N`` (or ``N.C.``): no chord, the accompaniment rests;
* ``?``: the chord network's guess for that stretch.

``--bpm`` counts the meter's beats (quarters in 4/4, dotted quarters in 6/8), ``--meter`` sets the bar and
``--downbeat`` where the first bar starts, in seconds from the start of the file. The network's guess holds
before the first bar and after the last.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from kgan.chords import NO_CHORD, track_labels
from kgan.harmony import beat_quarters, parse_meter

__all__ = ["ChordChart", "parse_chord", "chart_from_text", "chords_input", "chord_name", "chart_of_frames",
           "guess_chart", "fit_grid", "ChartText", "UNKNOWN"]

UNKNOWN = -1  # a frame whose chord the network guesses
_ROOTS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_NAME = re.compile(r"(?P<root>[A-G])(?P<accidental>[#b♯♭]?)(?P<quality>[^/]*)(?:/(?P<bass>[A-G][#b♯♭]?))?")
_QUALITY = re.compile(r"[0-9a-zA-Z#b♯♭+°øΔ()\-]*")
_COMMENT = re.compile(r"(^|\s)#.*$")  # a '#' that starts a word starts a comment; one after a root is a sharp
_MINOR = ("m", "min", "-", "dim", "°", "ø", "o")
_EXPECTED = ("expected a chord (a root A-G, then # or b, and a quality such as m, 7, maj7, dim or sus4), "
             "N (no chord), ? (the model's guess), . (the chord before) or % (the bar before)")


def parse_chord(name: str) -> int:
    """A chord's class (``kgan.chords``: 2 x root, + 1 for a minor third; ``NO_CHORD`` for ``N``), or
    ``UNKNOWN`` for ``?``. ValueError names what was expected."""
    if name in ("N", "N.C.", "NC"):
        return NO_CHORD
    if name == "?":
        return UNKNOWN
    match = _NAME.fullmatch(name)
    if match is None or not _QUALITY.fullmatch(match["quality"]):
        raise ValueError(f"{name!r}: {_EXPECTED}")
    root = (_ROOTS[match["root"]] + {"#": 1, "♯": 1, "b": -1, "♭": -1}.get(match["accidental"], 0)) % 12
    quality = match["quality"]
    minor = quality.startswith(_MINOR) and not quality.startswith("maj")
    return 2 * root + int(minor)


@dataclasses.dataclass(frozen=True)
class ChordChart:
    """Chords in time: ``track`` is ``((start s, end s, class), ...)``, neighbours of one chord merged; a
    stretch the chart leaves to the network (``?``) is a gap."""

    track: tuple[tuple[float, float, int], ...]

    @property
    def seconds(self) -> float:
        return self.track[-1][1] if self.track else 0.0

    @classmethod
    def from_frames(cls, labels, config) -> "ChordChart":
        """The chart that gives STFT frame ``t`` the class ``labels[t]`` (``UNKNOWN``: nothing), e.g. the chords
        heard in a true accompaniment (``kgan evaluate --chords heard``): each run of one class spans its frames'
        centres, half a hop either side."""
        from kgan.chords import frame_centres

        labels = np.asarray(labels, np.int64)
        if not len(labels):
            return cls(())
        half = config.stft.hop_length / config.audio.sample_rate / 2.0
        centres = frame_centres(len(labels), config)
        starts = np.flatnonzero(np.diff(labels, prepend=labels[0] - 1))
        ends = np.append(starts[1:], len(labels)) - 1
        return cls(tuple((float(centres[a] - half), float(centres[b] + half), int(labels[a]))
                         for a, b in zip(starts, ends) if labels[a] != UNKNOWN))

    def frames(self, start_seconds: float, count: int, config) -> np.ndarray:
        """int32 ``[count]``: the chord at each STFT frame's centre of a request that starts ``start_seconds``
        into the song (``kgan.chords.track_labels``); ``UNKNOWN`` where the chart says nothing."""
        shifted = [(s - start_seconds, e - start_seconds, c) for s, e, c in self.track]
        return track_labels(shifted, count, config, fill=UNKNOWN).astype(np.int32)


def bar_seconds(bpm: float, meter: str = "4/4") -> float:
    """A bar's length at ``bpm`` of the meter's beats (quarters in 4/4, dotted quarters in 6/8)."""
    numerator, denominator = parse_meter(meter)
    if not bpm > 0:
        raise ValueError(f"bpm: expected a tempo above 0, got {bpm!r}")
    return numerator * 4.0 / denominator / beat_quarters(numerator, denominator) * 60.0 / bpm


@dataclasses.dataclass(frozen=True)
class ChartText:
    """A chart as a singer types it: its text and the grid it is counted on (``kgan generate --chords``).

    ``place`` puts it in seconds for one vocal: on the grid fitted to that vocal's note starts (``fit_grid``),
    or, with ``fit=False``, exactly on the given one. A tempo typed 2 % off drifts by a beat in 50 beats;
    fitted, the score's chords on 30 seen-voice test songs kept their chord motion (``experiments/chart_grid.py``).
    """

    text: str
    bpm: float
    meter: str = "4/4"
    downbeat: float = 0.0
    fit: bool = True

    def __post_init__(self):
        self.as_given()  # a malformed chart fails here, before any audio is read

    def as_given(self) -> ChordChart:
        """The chart in seconds on the grid as given."""
        return chart_from_text(self.text, self.bpm, self.meter, self.downbeat)

    def place(self, vocal, config) -> tuple[ChordChart, float, float]:
        """``(chart in seconds, bpm, downbeat)`` for a whole mono ``vocal`` at the config's rate."""
        if not self.fit:
            return self.as_given(), self.bpm, self.downbeat
        bpm, downbeat = fit_grid(vocal, config, self.bpm, self.meter, self.downbeat)
        return chart_from_text(self.text, bpm, self.meter, downbeat), bpm, downbeat


def chart_from_text(text: str, bpm: float, meter: str = "4/4", downbeat: float = 0.0) -> ChordChart:
    """The chart of ``text`` (bars between ``|``; lines are bars too, and a word starting ``#`` starts a comment)
    at ``bpm`` beats a minute in ``meter``, its first bar at ``downbeat`` seconds. ValueError names the bar and
    what was expected."""
    bar = bar_seconds(bpm, meter)
    lines = [_COMMENT.sub("", line) for line in str(text).splitlines()]
    bars = [bar.split() for bar in "|".join(lines).split("|") if bar.strip()]
    if not bars:
        raise ValueError("chords: the chart holds no chord (expected bars such as 'C G | Am F')")
    spans: list[list] = []  # [start, end, class]
    previous_bar: list[str] | None = None
    previous = None
    for number, tokens in enumerate(bars, start=1):
        if tokens == ["%"]:
            if previous_bar is None:
                raise ValueError("chords: bar 1 is '%', but no bar comes before it to repeat")
            tokens = previous_bar
        start = downbeat + (number - 1) * bar
        step = bar / len(tokens)
        for i, token in enumerate(tokens):
            if token == ".":
                if previous is None:
                    raise ValueError(f"chords: bar {number} starts with '.', but no chord comes before it")
                chord = previous
            else:
                try:
                    chord = parse_chord(token)
                except ValueError as e:
                    raise ValueError(f"chords: bar {number}: {e}") from None
            previous = chord
            begin, end = start + i * step, start + (i + 1) * step
            if spans and spans[-1][2] == chord and abs(spans[-1][1] - begin) < 1e-9:
                spans[-1][1] = end
            else:
                spans.append([begin, end, chord])
        previous_bar = tokens
    return ChordChart(tuple((float(s), float(e), int(c)) for s, e, c in spans if c != UNKNOWN))


def chord_name(chord: int) -> str:
    """A class's name as a chart writes it (``Eb``, ``F#m``; ``N`` for no chord); ``parse_chord`` reads it back."""
    from kgan.evaluation import PITCH_CLASSES

    return "N" if chord == NO_CHORD else PITCH_CLASSES[chord // 2] + ("m" if chord % 2 else "")


def chart_of_frames(labels, config, bpm: float, meter: str = "4/4", downbeat: float = 0.0,
                    per_bar: int | None = None, bars_per_line: int = 4) -> str:
    """Chord classes per STFT frame -> a chart's text, ``per_bar`` chords a bar (default: the meter's chord
    segments, ``kgan.harmony.meter_seconds``), from the bar at ``downbeat`` to the one the last frame is in.

    Each slot takes its frames' most common class; within a bar a repeated chord is written ``.``, a bar
    the same as the one before ``%``, and a bar of one chord as that chord alone. ``chart_from_text`` of the
    result at the same tempo, meter and downbeat gives every slot its chord back (tested)."""
    from kgan.chords import CLASSES, frame_centres
    from kgan.harmony import meter_seconds

    labels = np.asarray(labels, np.int64)
    bar = bar_seconds(bpm, meter)
    if per_bar is None:
        per_bar = max(1, round(bar / meter_seconds(bpm, meter, downbeat)[1]))
    slot = bar / per_bar
    index = np.floor((frame_centres(len(labels), config) - downbeat) / slot).astype(np.int64)
    inside = index >= 0
    if not inside.any():
        raise ValueError(f"downbeat: the first bar ({downbeat:g} s) starts after the vocal ends")
    slots = int(np.ceil((index[inside].max() + 1) / per_bar)) * per_bar
    counts = np.zeros((slots, CLASSES), np.int64)
    np.add.at(counts, (index[inside], labels[inside]), 1)
    names = [chord_name(int(c.argmax())) if c.any() else "?" for c in counts]
    bars, lines, before = [], [], None
    for start in range(0, slots, per_bar):
        tokens = names[start : start + per_bar]
        text = tokens[0] if len(set(tokens)) == 1 else " ".join(
            "." if i and token == tokens[i - 1] else token for i, token in enumerate(tokens))
        bars.append("%" if text == before else text)
        before = text
    for start in range(0, len(bars), bars_per_line):
        lines.append(" | ".join(bars[start : start + bars_per_line]))
    return "\n".join(lines) + "\n"


def guess_chart(model_path: str, vocal_path: str, bpm: float, meter: str = "4/4", downbeat: float = 0.0,
                per_bar: int | None = None, fit: bool = True) -> tuple[str, float, float]:
    """The chord network's guesses for a whole vocal file, as a chart to correct and give back (``kgan chords
    guess``): ``(text, bpm, downbeat)`` of the grid its bars are on, the given one fitted to the vocal's note
    starts as ``kgan generate --chords`` fits it (``fit_grid``; ``fit=False``: as given). ``model_path``: an
    export version folder (the shipped one included) or a training run whose chord network is ``RUN/chords``.
    A chord network that takes a beat grid is told this one, as ``kgan generate --bpm`` tells it."""
    import tensorflow as tf

    from kgan.audio import load
    from kgan.export import restore_run_or_export
    from kgan.harmony import meter_seconds
    from kgan.inference import Generate

    generator, config, chord_net, _ = restore_run_or_export(model_path)
    if chord_net is None:
        import os

        from kgan.chords import load_chord_net

        if config.model.vocal_input != "plan" or not os.path.isdir(os.path.join(model_path, "chords")):
            raise ValueError(f"{model_path}: this model has no chord network (only model.vocal_input=plan models do)")
        chord_net = load_chord_net(os.path.join(model_path, "chords"), config)
    pipeline = Generate(generator, config, chord_net=chord_net)
    vocal, _ = load(vocal_path, config.audio.sample_rate)
    if fit:
        bpm, downbeat = fit_grid(vocal, config, bpm, meter, downbeat)
    grid = meter_seconds(bpm, meter, downbeat)
    normalised = pipeline.spec.to_model(tf.constant(np.asarray(vocal, np.float32)[None]))
    logits = pipeline.plan_logits(normalised, tf.constant([grid], tf.float32) if pipeline.gridded else None)
    labels = tf.argmax(logits, axis=-1)[0].numpy()
    return chart_of_frames(labels, config, bpm, meter, downbeat, per_bar), bpm, downbeat


def fit_grid(vocal, config, bpm: float, meter: str = "4/4", downbeat: float = 0.0) -> tuple[float, float]:
    """``(bpm, downbeat)`` of a user's grid fitted to the note starts of a whole mono ``vocal`` at the config's
    rate (``kgan.chords.refine_meter``: a tempo within 5 %, a downbeat within half a beat; a vocal without a
    note start keeps the grid it was given). Only the config is needed: the melody tracker has no weights."""
    import tensorflow as tf

    from kgan.chords import melody_layer, refine_meter
    from kgan.harmony import meter_seconds
    from kgan.spectrogram import Spectrogram

    normalised = Spectrogram(config.stft).to_model(tf.constant(np.asarray(vocal, np.float32)[None]))
    melody = melody_layer(config).melody(tf.transpose(normalised, [0, 2, 1])[..., None])
    beat, _, start = refine_meter(melody, [meter_seconds(bpm, meter, downbeat)], config).numpy()[0]
    return 60.0 / float(beat), float(start)


def chords_input(chart: ChordChart | None, start_seconds: float, samples: int, config) -> np.ndarray:
    """The ``chords`` input of a request for ``samples`` of audio starting ``start_seconds`` into the song:
    int32 ``[1, frames]``, or ``[[UNKNOWN]]`` (the network's guess everywhere) without a chart."""
    if chart is None:
        return np.full((1, 1), UNKNOWN, np.int32)
    from kgan.spectrogram import frame_count

    return chart.frames(start_seconds, frame_count(int(samples), config.stft), config)[None]

