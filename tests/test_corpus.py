import json
import os
import subprocess
import sys

import librosa
import numpy as np
import pytest

from kgan import audio
from kgan.corpus import (VOICES, festival_available, list_chorales, list_folk, parse_voices, select, split_of)
from kgan.features import triads


def test_the_wheel_ships_hundreds_of_chorales_and_thousands_of_folk_tunes():
    chorales, folk = list_chorales(), list_folk()
    assert len(chorales) > 300 and len(folk) > 8000
    assert all(t.name.startswith("bwv") and os.path.exists(t.path) for t in chorales)
    assert "bwv846" not in {t.name for t in chorales}  # a keyboard piece music21 files among the chorales


def test_settings_and_variants_of_one_tune_share_a_split():
    chorales = {t.name: t for t in list_chorales()}
    assert chorales["bwv279"].tune_id == chorales["bwv158.4"].tune_id  # one setting under two numbers
    groups = {}
    for t in chorales.values():
        groups.setdefault(t.tune_id, []).append(t.name)
    assert max(len(v) for v in groups.values()) >= 5  # Bach set some hymn tunes many times
    folk = {t.name: t for t in list_folk()}
    assert folk["folk-A0004A"].tune_id == folk["folk-A0004B"].tune_id == folk["folk-A0004C"].tune_id
    for tunes in (chorales.values(), folk.values()):  # every group in one split, whichever member is asked
        by_tune = {}
        for t in tunes:
            by_tune.setdefault(t.tune_id, set()).add(split_of(t.tune_id))
        assert all(len(s) == 1 for s in by_tune.values())
    splits = [split_of(t.tune_id) for t in folk.values()]
    share = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert 0.7 < share["train"] < 0.9 and 0.05 < share["val"] < 0.15 and 0.05 < share["test"] < 0.15


def test_selection_is_stable_and_spans_the_splits():
    folk = list_folk()
    few, more = select(folk, 5), select(folk, 40)
    assert len(few) == 5 and len(more) == 40
    assert {split_of(t.tune_id) for t in few} == {"train", "val", "test"}
    assert {t.name for t in few if split_of(t.tune_id) == "train"} <= {t.name for t in more}
    tests = select(folk, 7, splits=["test"])
    assert len(tests) == 7 and {split_of(t.tune_id) for t in tests} == {"test"}


def test_voices_by_name_and_family():
    assert parse_voices("flute,gm-voice") == ["flute", "oohs", "aahs", "synth-voice"]
    assert set(parse_voices("all")) >= {v for v in VOICES if v != "festival"}
    with pytest.raises(ValueError, match="unknown voice 'tuba'"):
        parse_voices("tuba")


@pytest.mark.slow
def test_the_shipped_tune_table_is_what_the_scores_give():
    from kgan.corpus import _shipped_tune_table, chorale_tune_table

    assert chorale_tune_table() == _shipped_tune_table()


def test_rendered_songs_have_aligned_stems_a_summed_mixture_and_labels(chorale_dir, tiny_config):
    splits = json.load(open(os.path.join(chorale_dir, "splits.json")))
    summary = json.load(open(os.path.join(chorale_dir, "corpus.json")))
    assert {k: len(v) for k, v in splits.items()} == {"train": 1, "val": 1, "test": 1}
    assert summary["render_speed_x_realtime"] > 1.0 and summary["failed"] == []
    rate = tiny_config.audio.sample_rate
    for song in summary["songs"]:
        folder = os.path.join(chorale_dir, song["folder"])
        v, r = audio.load(os.path.join(folder, "vocals.flac"))
        a, _ = audio.load(os.path.join(folder, "accompaniment.flac"))
        m, _ = audio.load(os.path.join(folder, "mixture.flac"))
        assert r == rate and len(v) == len(a) == len(m) and len(v) / rate > 10
        np.testing.assert_allclose(m, v + a, atol=2e-4)
        assert np.max(np.abs(m)) <= 1.0
        for x in (v, a):
            assert np.sqrt(np.mean(x**2)) > 0.01  # both parts sound
        info = json.load(open(os.path.join(folder, "song.json")))
        assert info["style"] == "chorale" and info["voice"] in VOICES and info["split"] == song["split"]
        # the score's chords, in seconds and in the rendered key: the accompaniment sounds their tones
        track = np.array(info["chord_track"])
        assert len(track) > 5 and np.all(np.diff(track[:, 0]) > 0) and np.all(track[:, 1] > track[:, 0])
        assert track[-1, 1] <= len(a) / rate and set(track[:, 2].astype(int)) <= set(range(24))
        energy = librosa.feature.chroma_stft(y=a, sr=rate, hop_length=512, norm=None, tuning=0.0)
        times = np.arange(energy.shape[1]) * 512 / rate
        on = {0: 0.0, 2: 0.0}  # the labelled triads, and the triads a tone higher
        for start, end, chord in track:
            inside = energy[:, (times >= start) & (times < end)].sum(axis=1)
            for shift in on:
                on[shift] += inside[triads()[(int(chord) + shift) % 24] > 0].sum()
        assert on[0] > 2 * on[2], on


def _run(args):
    proc = subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, timeout=600)
    return proc


@pytest.mark.slow
def test_cli_builds_folk_songs_in_every_style_and_resumes(tmp_path):
    out = tmp_path / "folk"
    args = ["corpus", "folk", str(out), "--n", "12", "--preset", "tiny", "--voices", "wind,bowed", "--jobs", "2",
            "--no-progress"]
    proc = _run(args)
    assert proc.returncode == 0, proc.stderr
    assert "x real time with 2 job(s)" in proc.stdout
    summary = json.load(open(out / "corpus.json"))
    assert len(summary["songs"]) == 12 and summary["failed"] == []
    assert len({s["style"] for s in summary["songs"]}) >= 4  # a style per song, drawn from all five
    from kgan.corpus import parse_voices, plan_songs, soundfont_path

    planned = {p.folder: (p.style, p.voice) for p in plan_songs(
        {"folk": 12}, parse_voices("wind,bowed"), ["piano", "organ", "strings", "guitar", "band"], soundfont_path())}
    assert {s["folder"]: (s["style"], s["voice"]) for s in summary["songs"]} == planned
    assert {s["voice_family"] for s in summary["songs"]} <= {"wind", "bowed"}
    assert all(s["strong_beat_chord_tones"] >= 0.5 for s in summary["songs"])
    splits = json.load(open(out / "splits.json"))
    assert sorted(sum(splits.values(), [])) == sorted(s["folder"] for s in summary["songs"])
    first = {s["folder"]: os.path.getmtime(out / s["folder"] / "vocals.flac") for s in summary["songs"]}
    proc = _run(args)  # a second run renders nothing again
    assert proc.returncode == 0, proc.stderr
    assert {f: os.path.getmtime(out / f / "vocals.flac") for f in first} == first
    bad = _run(["corpus", "folk", str(out), "--n", "1", "--styles", "polka", "--no-progress"])
    assert bad.returncode == 1 and "unknown style(s) ['polka']" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_cli_renders_transpositions_of_the_same_piece_into_the_same_split(tmp_path):
    cmd = ["corpus", "chorales", str(tmp_path), "--n", "1", "--transpose=-2,0", "--preset", "tiny",
           "--voices", "flute", "--bpm", "80", "--no-progress"]
    proc = _run(cmd)
    assert proc.returncode == 0, proc.stderr
    assert "x real time" in proc.stdout
    splits = json.load(open(tmp_path / "splits.json"))
    (names,) = [v for v in splits.values() if v]
    assert len(names) == 2 and sum(n.endswith("_t-2") for n in names) == 1
    (low_name,) = [n for n in names if n.endswith("_t-2")]
    (orig_name,) = [n for n in names if n != low_name]
    low, rate = audio.load(str(tmp_path / low_name / "vocals.flac"))
    orig, _ = audio.load(str(tmp_path / orig_name / "vocals.flac"))
    assert len(low) == len(orig)
    f_low = np.median(librosa.yin(low, fmin=150, fmax=1200, sr=rate))
    f_orig = np.median(librosa.yin(orig, fmin=150, fmax=1200, sr=rate))
    assert f_low / f_orig == pytest.approx(2 ** (-2 / 12), rel=0.03)  # two semitones down


def _require_festival():
    if not festival_available():
        if os.environ.get("CI"):
            pytest.fail("Festival is missing on CI: .ci/run installs festival and festvox-kallpc16k")
        pytest.skip("Festival not installed (apt-get install festival festvox-kallpc16k)")


def test_festival_sings_the_tune_in_time_an_octave_below(tmp_path):
    _require_festival()
    from kgan.corpus import _sing

    rate, spq = 16000, 0.5
    melody = [(0.0, 1.0, 72), (1.0, 1.0, 74), (2.0, 2.0, 76), (5.0, 1.0, 79), (6.0, 2.0, 77)]  # a rest at 4-5
    x = _sing(melody, spq, rate, 4.5, np.random.default_rng(0))
    assert len(x) == 4.5 * rate and np.sqrt(np.mean(x**2)) > 0.01
    hop = 256
    f0, voiced, _ = librosa.pyin(x.astype(np.float64), fmin=80, fmax=600, sr=rate, hop_length=hop)
    hits = []
    for start, dur, midi in melody:
        a, b = int((start * spq + 0.08) * rate / hop), int(((start + dur) * spq - 0.08) * rate / hop)
        sung = f0[a:b][voiced[a:b]]
        if len(sung):
            hits.append(abs(np.median(librosa.hz_to_midi(sung)) - (midi - 12)) <= 1.0)
    assert len(hits) >= 4 and np.mean(hits) >= 0.8
    rest = slice(int(2.1 * rate / hop), int(2.4 * rate / hop))  # quarter notes 4.2-4.8: the rest
    assert np.mean(voiced[rest]) < 0.5
