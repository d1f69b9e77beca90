"""Chord charts (``kgan.chart``): parsing, timing, frames, and how the graph imposes them on the plan."""

import numpy as np
import pytest
import tensorflow as tf

from kgan.chart import UNKNOWN, ChordChart, chart_from_text, chords_input, parse_chord
from kgan.chords import NO_CHORD


def test_chord_names_map_to_the_plan_s_triads():
    # 2 x root pitch class, + 1 for a minor third; extensions fall back to their triad, a slash bass is dropped
    names = {"C": 0, "Cm": 1, "C#m7": 3, "Db": 2, "Bb": 20, "Ebmaj7": 6, "F#dim": 13, "Am7b5": 19, "Gsus4": 14,
             "D/F#": 4, "E7": 8, "Cmadd9": 1, "Cb": 22, "B#": 0, "A-7": 19, "Bø7": 23, "G6": 14, "N": NO_CHORD,
             "N.C.": NO_CHORD, "?": UNKNOWN}
    assert {name: parse_chord(name) for name in names} == names
    for bad in ("H7", "c", "C/H", "Cm!", ""):
        with pytest.raises(ValueError, match="expected a chord"):
            parse_chord(bad)


def test_a_chart_s_bars_share_out_their_time_and_repeat_hold_and_rest():
    # 4/4 at 120 bpm: two seconds a bar, the first at 1 s
    chart = chart_from_text("C G | Am F | C . G7 . | %  # the verse\n# a comment\nF ? | N", 120, "4/4", 1.0)
    assert chart.track == ((1.0, 2.0, 0), (2.0, 3.0, 14), (3.0, 4.0, 19), (4.0, 5.0, 10), (5.0, 6.0, 0),
                           (6.0, 7.0, 14), (7.0, 8.0, 0), (8.0, 9.0, 14), (9.0, 10.0, 10), (11.0, 13.0, NO_CHORD))
    assert chart.seconds == 13.0
    # a bar of one chord merges with the next of the same chord
    assert chart_from_text("C | C | G", 60, "3/4").track == ((0.0, 6.0, 0), (6.0, 9.0, 14))
    # a sharp is not a comment
    assert chart_from_text("C#m F# #not a chord", 60, "2/4").track == ((0.0, 1.0, 3), (1.0, 2.0, 12))
    # 6/8: the tempo counts dotted quarters, two a bar
    assert chart_from_text("Am", 60, "6/8").track == ((0.0, 2.0, 19),)
    for text, message in (("C | H7", "chords: bar 2: 'H7': expected a chord"), ("% | C", "bar 1 is '%'"),
                          (". C", "bar 1 starts with '.'"), (" | \n", "holds no chord")):
        with pytest.raises(ValueError, match=message):
            chart_from_text(text, 100)
    with pytest.raises(ValueError, match="meter: expected N/D"):
        chart_from_text("C", 100, "4-4")


def test_a_chart_gives_each_frame_the_chord_at_its_centre_chunk_by_chunk(tiny_config):
    rate, hop = tiny_config.audio.sample_rate, tiny_config.stft.hop_length
    chart = ChordChart(((0.5, 1.0, 3), (1.0, 1.5, NO_CHORD)))
    whole = chart.frames(0.0, 200, tiny_config)
    centre = (np.arange(200) * hop + hop - tiny_config.stft.n_fft / 2) / rate
    expected = np.where((centre >= 0.5) & (centre < 1.0), 3, np.where((centre >= 1.0) & (centre < 1.5), 24, -1))
    np.testing.assert_array_equal(whole, expected)
    assert whole.dtype == np.int32 and {3, 24, -1} == set(whole.tolist())
    # a request 40 frames into the song sees the same chords, 40 frames on
    np.testing.assert_array_equal(chart.frames(40 * hop / rate, 100, tiny_config), whole[40:140])
    # the request's input: a row per STFT frame of its samples; without a chart the network's guess everywhere
    samples = 5 * hop
    assert chords_input(chart, 0.0, samples, tiny_config).shape == (1, 1 + (samples + tiny_config.stft.n_fft - hop
                                                                           - 1) // hop)
    np.testing.assert_array_equal(chords_input(None, 3.0, samples, tiny_config), [[UNKNOWN]])


def test_the_graph_puts_a_chart_s_chords_in_the_network_s_place():
    from kgan.inference import Generate

    logits = tf.random.normal([2, 6, 25], seed=1)
    chords = tf.constant([[5, -1, 24, -1]], tf.int32)  # one row for both vocals, shorter than the frames
    out = Generate.impose_chords(logits, chords).numpy()
    assert (out[:, 0].argmax(-1) == 5).all() and (out[:, 2].argmax(-1) == NO_CHORD).all()
    np.testing.assert_array_equal(out[:, [1, 3, 4, 5]], logits.numpy()[:, [1, 3, 4, 5]])  # -1 and past the end
    assert tf.nn.softmax(out[:, 0])[:, 5].numpy().min() > 0.999  # certain, so a soft plan renders it alone
    longer = Generate.impose_chords(logits, tf.fill([2, 9], 7)).numpy()  # one row per vocal, cut to the frames
    assert (longer.argmax(-1) == 7).all()
    for bad, message in (([[25]], "ids are -1"), ([[-2]], "ids are -1"), ([[1], [2], [3]], "one row")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            Generate.impose_chords(logits, tf.constant(bad, tf.int32))


def test_a_guessed_chart_reads_back_as_the_chords_it_wrote(tiny_config):
    from kgan.chart import chart_of_frames
    from kgan.chords import frame_centres

    bpm, downbeat, per_bar = 100.0, 0.3, 4  # 2.4-s bars, a chord every 0.6 s
    slot = 60.0 / bpm * 4 / per_bar
    # a chord held on within a bar ('.'), a bar the same as the one before ('%'), no chord, minor and major
    slots = np.array([0, 0, 15, 24, 19, 8, 3, 22, 19, 8, 3, 22])
    centres = frame_centres(int((downbeat + 12 * slot) * tiny_config.audio.sample_rate
                                // tiny_config.stft.hop_length), tiny_config)
    index = np.clip(np.floor((centres - downbeat) / slot).astype(int), 0, 11)
    labels = np.where(centres < downbeat, 5, slots[index])
    noisy = labels.copy()
    noisy[::7] = 11  # a minority of frames elsewhere changes no slot's chord
    text = chart_of_frames(noisy, tiny_config, bpm, "4/4", downbeat, per_bar)
    assert text.split("\n")[0] == "C . Gm N | Am E C#m B | %", text
    chart = chart_from_text(text, bpm, "4/4", downbeat)
    back = chart.frames(0.0, len(labels), tiny_config)
    inside = (centres >= downbeat) & (centres < downbeat + 12 * slot)
    np.testing.assert_array_equal(back[inside], labels[inside])
    assert (back[centres < downbeat] == UNKNOWN).all()  # before the first bar the network guesses
    # the default slots: the meter's chord segments, two a bar in 4/4, one in 3/4
    assert len(chart_of_frames(labels, tiny_config, bpm, "4/4", downbeat).split("|")[0].split()) <= 2
    with pytest.raises(ValueError, match="starts after the vocal ends"):
        chart_of_frames(labels, tiny_config, bpm, "4/4", 1e4)


def test_a_chart_of_frame_labels_gives_every_frame_its_label_back(tiny_config):
    labels = np.array([-1, -1, 3, 3, 3, 24, 24, 7, -1, 7, 7, 0], np.int64)
    chart = ChordChart.from_frames(labels, tiny_config)
    assert [c for _, _, c in chart.track] == [3, 24, 7, 7, 0]
    np.testing.assert_array_equal(chart.frames(0.0, len(labels), tiny_config), labels)
    assert ChordChart.from_frames([], tiny_config).track == ()


def test_a_chart_s_grid_is_fitted_to_the_sung_note_starts(tiny_config):
    from kgan.chart import ChartText, fit_grid

    rate, beat, downbeat = tiny_config.audio.sample_rate, 0.6, 0.45  # 100 bpm, a note on every beat from 0.45 s
    t = np.arange(20 * rate) / rate
    step = np.floor((t - downbeat) / beat).astype(int)
    freqs = np.array([220, 247, 262, 294, 330, 294, 262, 247])[step % 8]
    within = (t - downbeat) % beat
    gate = np.clip(within / 0.02, 0, 1) * np.clip((beat - 0.08 - within) / 0.02, 0, 1) * (t >= downbeat)
    vocal = (0.3 * np.sin(np.cumsum(2 * np.pi * freqs / rate)) * gate).astype(np.float32)
    for told_bpm, told_downbeat in ((102.0, 0.5), (98.0, 0.35), (100.0, 0.45)):  # 2 % off, a little late or early
        bpm, start = fit_grid(vocal, tiny_config, told_bpm, "4/4", told_downbeat)
        assert abs(bpm - 100.0) < 0.3 and abs(start - downbeat) < 0.05, (told_bpm, bpm, start)
    # a chart typed at 102 bpm is placed at the sung 100 unless told to keep the given grid
    typed = ChartText("C G | Am F", 102.0, "4/4", 0.5)
    placed, bpm, _ = typed.place(vocal, tiny_config)
    assert abs(placed.track[1][0] - (downbeat + 1.2)) < 0.05 and abs(bpm - 100.0) < 0.3  # G on beat 3 of bar 1
    exact = ChartText("C G | Am F", 102.0, "4/4", 0.5, fit=False)
    assert exact.place(vocal, tiny_config) == (exact.as_given(), 102.0, 0.5)
    assert exact.as_given().track[1][0] == pytest.approx(0.5 + 2 * 60 / 102)
    silent = np.zeros(2 * rate, np.float32)  # no note start: the grid stays as given
    assert typed.place(silent, tiny_config)[1:] == pytest.approx((102.0, 0.5))
    with pytest.raises(ValueError, match="bar 2: 'H'"):
        ChartText("C | H", 100.0)
