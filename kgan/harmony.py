"""A rule-based harmoniser for monophonic tunes (the folk source of ``kgan corpus``).

Input: the melody as ``(start, duration, midi)`` in quarter notes, the bar
length and the pickup (anacrusis) in quarter notes. Output: one chord per
harmonic segment, as ``Chord(start, end, root, pitch_classes, name)``.

1. **Key.** Krumhansl-Kessler profiles correlated with the melody's
   duration-weighted pitch-class histogram (Krumhansl, "Cognitive Foundations
   of Musical Pitch", 1990), plus a bonus for the key whose tonic is the last
   note (folk tunes nearly always end on the tonic).
2. **Harmonic rhythm.** A chord per half bar in 4/4, 4/2, 2/2, 6/8 and 12/8,
   per bar in 2/4, 3/4, 3/8, 9/8 and other meters, starting at the first
   downbeat; the pickup shares the first segment's chord.
3. **Vocabulary.** The diatonic triads of the key (major: I ii iii IV V vi;
   minor: i III iv V VI VII, with the raised leading tone in V) and V7.
4. **Choice.** Dynamic programming (Viterbi) over the segments. A segment's
   score rewards melody notes that are chord tones (by duration), strongly
   rewards the note sounding at the segment's start (the strong beat) being a
   chord tone and penalises it not being one; transitions follow functional
   harmony (tonic -> subdominant -> dominant -> tonic, with plagal and
   deceptive moves allowed and retrogressions penalised); the first segment
   leans to the tonic, the last is the tonic and a dominant before it is
   rewarded (an authentic cadence).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

__all__ = ["Chord", "estimate_key", "key_of_histogram", "segment_length", "harmonise", "vocabulary", "choose_chords",
           "strong_beat_chord_tone_share", "triad_id", "label_triads", "beat_quarters", "meter_seconds", "song_meter"]

# Krumhansl-Kessler key profiles, C major / C minor (also kgan.evaluation's and kgan.features' keys).
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

_QUALITY = {"maj": (0, 4, 7), "min": (0, 3, 7), "dom7": (0, 4, 7, 10)}
# (name, root above the tonic, quality, function): T tonic, S subdominant, D dominant.
_CHORDS = {
    "major": [("I", 0, "maj", "T"), ("ii", 2, "min", "S"), ("iii", 4, "min", "T"), ("IV", 5, "maj", "S"),
              ("V", 7, "maj", "D"), ("V7", 7, "dom7", "D"), ("vi", 9, "min", "T")],
    "minor": [("i", 0, "min", "T"), ("III", 3, "maj", "T"), ("iv", 5, "min", "S"), ("V", 7, "maj", "D"),
              ("V7", 7, "dom7", "D"), ("VI", 8, "maj", "S"), ("VII", 10, "maj", "D")],
}
_FUNCTION_MOVE = {  # score of moving from one function to another
    ("T", "T"): 0.0, ("T", "S"): 1.0, ("T", "D"): 0.6,
    ("S", "S"): 0.2, ("S", "D"): 1.2, ("S", "T"): 0.4,
    ("D", "D"): 0.0, ("D", "T"): 1.5, ("D", "S"): -1.5,
}


@dataclasses.dataclass(frozen=True)
class Chord:
    start: float  # quarter notes
    end: float
    root: int  # pitch class
    pitch_classes: tuple[int, ...]  # root first
    name: str  # Roman numeral in the key


def estimate_key(melody: Sequence[tuple[float, float, int]]) -> tuple[int, str]:
    """(tonic pitch class, "major" | "minor") of a melody."""
    hist = np.zeros(12)
    for _, dur, midi in melody:
        hist[midi % 12] += dur
    return key_of_histogram(hist, melody[-1][2] % 12 if melody else 0)


def key_of_histogram(hist: np.ndarray, last: int) -> tuple[int, str]:
    """``estimate_key`` from a duration-weighted pitch-class histogram ``[12]`` and the last note's class."""
    best, best_score = (0, "major"), -np.inf
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            r = np.corrcoef(hist, np.roll(profile, tonic))[0, 1] if hist.std() > 0 else 0.0
            score = r + (0.3 if tonic == last else 0.0)
            if score > best_score:
                best, best_score = (tonic, mode), score
    return best


def segment_length(numerator: int, denominator: int) -> float:
    """Quarter notes per chord in a ``numerator/denominator`` bar (see the module docstring)."""
    bar = numerator * 4.0 / denominator
    if numerator in (4, 6, 12) or (numerator == 2 and denominator == 2):
        return bar / 2
    return bar


def beat_quarters(numerator: int, denominator: int) -> float:
    """Quarter notes per counted beat: a dotted quarter in 6/8, 9/8 and 12/8, else the denominator's note."""
    return 1.5 if denominator == 8 and numerator % 3 == 0 and numerator > 3 else 4.0 / denominator


def parse_meter(meter: str) -> tuple[int, int]:
    """``"3/4"`` -> ``(3, 4)``; ValueError naming what was expected."""
    try:
        numerator, denominator = (int(v) for v in str(meter).split("/"))
    except ValueError:
        raise ValueError(f"meter: expected N/D such as 4/4, 3/4 or 6/8, got {meter!r}") from None
    if numerator < 1 or denominator not in (1, 2, 4, 8, 16):
        raise ValueError(f"meter: expected N/D with N >= 1 and D one of 1, 2, 4, 8, 16, got {meter!r}")
    return numerator, denominator


def meter_seconds(bpm: float, meter: str = "4/4", downbeat: float = 0.0) -> tuple[float, float, float]:
    """A song's beat grid as ``(seconds a beat, seconds a chord segment, first downbeat s)``.

    ``bpm`` counts the meter's beats (quarters in 4/4, dotted quarters in 6/8); a chord segment is
    ``segment_length``'s half bar or bar; ``downbeat`` is when the first full bar starts.
    """
    if not bpm or bpm <= 0:
        raise ValueError(f"bpm: expected a tempo above 0 beats a minute, got {bpm!r}")
    numerator, denominator = parse_meter(meter)
    beat = 60.0 / float(bpm)
    return beat, beat * segment_length(numerator, denominator) / beat_quarters(numerator, denominator), float(downbeat)


def song_meter(info: dict) -> tuple[float, float, float] | None:
    """The beat grid of a ``kgan corpus`` song (its ``song.json``): from its tempo, meter and pickup; a chorale
    (no meter stored) changes chord on every quarter-note beat. None without a tempo."""
    bpm = info.get("bpm")
    if not bpm:
        return None
    quarter = 60.0 / float(bpm)
    if not info.get("meter"):
        return quarter, quarter, 0.0
    numerator, denominator = parse_meter(info["meter"])
    beat = quarter * beat_quarters(numerator, denominator)
    return beat, quarter * segment_length(numerator, denominator), quarter * float(info.get("pickup") or 0.0)


def _segments(total: float, segment: float, pickup: float) -> list[tuple[float, float]]:
    """Segment bounds every ``segment`` from the first downbeat; the pickup joins the first segment."""
    starts = [0.0]
    k = 1
    while pickup + k * segment < total - 1e-6:
        starts.append(pickup + k * segment)
        k += 1
    return list(zip(starts, starts[1:] + [total]))


def harmonise(melody: Sequence[tuple[float, float, int]], segment: float = 2.0, pickup: float = 0.0,
              key: tuple[int, str] | None = None) -> list[Chord]:
    """One chord per ``segment`` quarter notes for ``melody`` = [(start, duration, midi)] in quarter notes.

    ``pickup`` is the length of the anacrusis before the first downbeat.
    """
    if not melody:
        return []
    tonic, mode = key or estimate_key(melody)
    vocab = vocabulary(tonic, mode)
    total = max(s + d for s, d, _ in melody)
    segments = _segments(total, segment, pickup)
    n, k = len(segments), len(vocab)
    local = np.zeros((n, k))
    for i, (s0, s1) in enumerate(segments):
        for j, (_, _, pcs, _) in enumerate(vocab):
            score = 0.0
            for start, dur, midi in melody:
                overlap = min(start + dur, s1) - max(start, s0)
                if overlap <= 0:
                    continue
                inside = midi % 12 in pcs
                score += overlap * (1.0 if inside else -0.3)
                if start <= s0 + 1e-6 < start + dur or abs(start - s0) < 1e-6:  # sounding on the strong beat
                    score += 4.0 if inside else -6.0
            local[i, j] = score
    path = choose_chords(local, vocab, tonic)
    return [Chord(s0, s1, vocab[j][1], vocab[j][2], vocab[j][0]) for (s0, s1), j in zip(segments, path)]


def vocabulary(tonic: int, mode: str) -> list[tuple[str, int, tuple[int, ...], str]]:
    """The chords ``harmonise`` chooses from in a key: (Roman numeral, root, pitch classes root first, function)."""
    vocab = []
    for name, offset, quality, function in _CHORDS[mode]:
        root = (tonic + offset) % 12
        vocab.append((name, root, tuple((root + i) % 12 for i in _QUALITY[quality]), function))
    return vocab


def choose_chords(local: np.ndarray, vocab, tonic: int, last: int | None = None) -> list[int]:
    """``harmonise``'s step 4: the ``vocab`` index of each segment's chord, from each segment's melody score
    ``local`` ``[segments, chords]`` (changed in place): the seventh penalised, the first segment leaning to
    the tonic, segment ``last`` (default the final one) the tonic with a dominant before it, then a Viterbi
    path over the functional moves."""
    n = len(local)
    last = n - 1 if last is None else last
    local -= np.array([0.5 if len(v[2]) == 4 else 0.0 for v in vocab])  # the plain triad, unless the seventh sounds
    local[0] += np.array([2.0 if v[1] == tonic and v[3] == "T" else 0.0 for v in vocab])  # start at home
    local[last] += np.array([5.0 if v[1] == tonic and v[3] == "T" and len(v[2]) == 3 else -5.0 for v in vocab])
    if last >= 1:
        local[last - 1] += np.array([1.5 if v[3] == "D" and v[1] == (tonic + 7) % 12 else 0.0 for v in vocab])
    trans = np.array([[_FUNCTION_MOVE[(a[3], b[3])] - (0.3 if a[0] == b[0] else 0.0) for b in vocab] for a in vocab])
    best = local[0].copy()
    back = np.zeros((n, len(vocab)), int)
    for i in range(1, n):
        cand = best[:, None] + trans  # (from, to)
        back[i] = cand.argmax(axis=0)
        best = cand.max(axis=0) + local[i]
    path = [int(best.argmax())]
    for i in range(n - 1, 0, -1):
        path.append(int(back[i][path[-1]]))
    path.reverse()
    return path


def strong_beat_chord_tone_share(melody: Sequence[tuple[float, float, int]], chords: Sequence[Chord]) -> float:
    """The share of strong beats (chord-segment starts) whose sounding melody note is a tone of the chord."""
    hits = total = 0
    for chord in chords:
        sounding = [m for s, d, m in melody if s <= chord.start + 1e-6 < s + d]
        if sounding:
            total += 1
            hits += sounding[0] % 12 in chord.pitch_classes
    return hits / total if total else 1.0


def triad_id(pitch_classes: Sequence[int]) -> int:
    """The class of a chord given root first (``kgan.features.triads``: 2 * root, + 1 if minor); sevenths drop."""
    root = pitch_classes[0] % 12
    return 2 * root + int((pitch_classes[1] - root) % 12 == 3)


def label_triads(notes: Sequence[tuple[float, float, int]], beat: float = 1.0) -> list[tuple[float, float, int]]:
    """The triad every ``beat`` of polyphony ``notes`` = [(start, duration, midi)] spells: [(start, end, triad_id)].

    Per beat, the pitch classes sounding are weighted by how long they sound, the
    lowest note at the beat's start twice (the bass). Each of the 24 major and
    minor triads scores its tones' weight minus half of the other tones', plus a
    small bonus when the bass is its root; the best wins. Beats where nothing
    sounds get no label; equal neighbours merge.
    """
    if not notes:
        return []
    end = max(s + d for s, d, _ in notes)
    out: list[tuple[float, float, int]] = []
    t = 0.0
    while t < end - 1e-6:
        t1 = min(t + beat, end)
        weight = np.zeros(12)
        bass = None
        for s, d, m in notes:
            overlap = min(s + d, t1) - max(s, t)
            if overlap <= 0:
                continue
            weight[m % 12] += overlap
            if s <= t + 1e-6 and (bass is None or m < bass):
                bass = m
        if bass is not None:
            weight[bass % 12] += beat
        if weight.sum() > 0:
            best, best_score = 0, -np.inf
            for root in range(12):
                for minor, third in ((0, 4), (1, 3)):
                    tones = [root, (root + third) % 12, (root + 7) % 12]
                    inside = weight[tones].sum()
                    score = inside - 0.5 * (weight.sum() - inside) + (0.25 * beat if bass is not None and
                                                                      bass % 12 == root else 0.0)
                    if score > best_score:
                        best, best_score = 2 * root + minor, score
            if out and out[-1][2] == best and abs(out[-1][1] - t) < 1e-6:
                out[-1] = (out[-1][0], t1, best)
            else:
                out.append((t, t1, best))
        t = t1
    return out
