import numpy as np
import pytest

from kgan.harmony import (estimate_key, harmonise, label_triads, segment_length, strong_beat_chord_tone_share,
                          triad_id)


def _twinkle():
    """"Twinkle, twinkle, little star" in C major, 4/4: (start, duration, midi) in quarter notes."""
    phrases = [[60, 60, 67, 67, 69, 69, 67], [65, 65, 64, 64, 62, 62, 60],
               [67, 67, 65, 65, 64, 64, 62], [67, 67, 65, 65, 64, 64, 62],
               [60, 60, 67, 67, 69, 69, 67], [65, 65, 64, 64, 62, 62, 60]]
    notes, t = [], 0.0
    for phrase in phrases:
        for i, m in enumerate(phrase):
            d = 2.0 if i == 6 else 1.0
            notes.append((t, d, m))
            t += d
    return notes


def test_known_tune_gets_its_textbook_harmony():
    melody = _twinkle()
    assert estimate_key(melody) == (0, "major")
    chords = harmonise(melody, segment_length(4, 4))
    assert len(chords) == 24 and chords[0].start == 0 and chords[-1].end == 48
    assert strong_beat_chord_tone_share(melody, chords) >= 0.9
    names = [c.name for c in chords]
    assert names[0] == "I" and names[-1] == "I" and names[-2] in ("V", "V7")  # home, and an authentic cadence
    # "C C G G | A A G": the A A of bar 2 takes IV (F A C) or vi (A C E), the sung A being a chord tone.
    assert names[2] in ("IV", "vi")


def test_minor_tune_and_pickup():
    # A natural-minor tune with a one-beat pickup in 3/4, ending on its tonic.
    tune = [(0, 1, 64), (1, 2, 69), (3, 1, 71), (4, 2, 72), (6, 1, 71), (7, 2, 69), (9, 1, 68), (10, 2, 69)]
    melody = [(float(s), float(d), m) for s, d, m in tune]
    assert estimate_key(melody) == (9, "minor")
    chords = harmonise(melody, segment_length(3, 4), pickup=1.0)
    assert chords[0].start == 0.0 and chords[1].start == 4.0  # the pickup joins the first bar
    assert chords[-1].name == "i" and strong_beat_chord_tone_share(melody, chords) >= 0.9


def test_triads_are_read_from_polyphony_per_beat():
    # Four voices, one chord per two beats: C major, A minor (with a passing G in the alto), G7, then a rest.
    notes = [(0, 2, 48), (0, 2, 64), (0, 2, 67), (0, 2, 72),
             (2, 2, 45), (2, 1, 64), (3, 1, 67), (2, 2, 69), (2, 2, 72),
             (4, 2, 43), (4, 2, 62), (4, 2, 65), (4, 2, 71),
             (7, 1, 60)]
    track = label_triads([(float(s), float(d), m) for s, d, m in notes])
    assert [(s, e) for s, e, _ in track] == [(0, 2), (2, 4), (4, 6), (7, 8)]  # equal beats merge; the rest has none
    assert [c for _, _, c in track] == [0, 19, 14, 0]  # C, Am, G (the seventh dropped), a lone C
    assert triad_id((7, 11, 2, 5)) == 14 and triad_id((9, 0, 4)) == 19 and triad_id((2, 5, 9)) == 5
    assert label_triads([]) == []


def test_segment_lengths_follow_the_meter():
    assert segment_length(4, 4) == 2.0 and segment_length(3, 4) == 3.0 and segment_length(2, 4) == 2.0
    assert segment_length(6, 8) == 1.5 and segment_length(2, 2) == 2.0 and segment_length(3, 8) == 1.5


def test_real_essen_tunes_are_harmonised_on_their_strong_beats():
    from kgan.corpus import _folk_score, list_folk, select

    shares = [_folk_score(t, np.random.default_rng(0), "organ").info["strong_beat_chord_tones"]
              for t in select(list_folk(), 30)]
    assert np.mean(shares) >= 0.9, shares


@pytest.mark.parametrize("style", ["piano", "organ", "strings", "guitar", "band"])
def test_every_style_plays_the_chords(style):
    from kgan.styles import accompany

    melody = _twinkle()
    chords = harmonise(melody, 2.0)
    parts, info = accompany(chords, style, beat=1.0, bar=4.0, pickup=0.0, rng=np.random.default_rng(1))
    assert info["style"] == style and parts
    pitched = [n for p in parts if not p.drums for n in p.notes]
    assert pitched and all(0 <= m < 128 and 0 < v < 128 and e > s for s, e, m, v in pitched)
    for c in chords:  # what sounds at each chord's start belongs to that chord
        starting = [m for s, _, m, _ in pitched if abs(s - c.start) < 1e-6]
        assert starting and all(m % 12 in c.pitch_classes for m in starting), (style, c)
    if style == "band":
        drums = {m for p in parts if p.drums for _, _, m, _ in p.notes}
        assert {36, 38, 42} <= drums


def test_a_beat_grid_in_seconds_from_tempo_meter_and_pickup():
    from kgan.harmony import meter_seconds, song_meter

    assert meter_seconds(120, "4/4", 0.5) == (0.5, 1.0, 0.5)  # a chord per half bar: two beats
    assert meter_seconds(90, "3/4") == pytest.approx((2 / 3, 2.0, 0.0))  # a chord per bar: three beats
    assert meter_seconds(60, "6/8") == pytest.approx((1.0, 1.0, 0.0))  # dotted-quarter beats, a chord per half bar
    # a folk song of the corpus: quarter-note tempo, meter and a pickup of two quarters
    assert song_meter({"bpm": 120, "meter": "3/4", "pickup": 2.0}) == pytest.approx((0.5, 1.5, 1.0))
    assert song_meter({"bpm": 100}) == pytest.approx((0.6, 0.6, 0.0))  # a chorale: a chord per beat
    assert song_meter({}) is None
    for bad, field in ((("4-4",), "meter: expected N/D"), (("4/3",), "meter: expected N/D"), (("0/4",), "meter")):
        with pytest.raises(ValueError, match=field):
            meter_seconds(100, *bad)
    with pytest.raises(ValueError, match="bpm: expected a tempo above 0"):
        meter_seconds(0)
