import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from kgan import audio
from kgan.dataset import parse_segment
from kgan.preprocess import hash_split, preprocess, voiced_segments
from kgan.spectrogram import Spectrogram
from tests.conftest import copy_song, make_song


def _segments(out_dir, song):
    meta = json.load(open(os.path.join(out_dir, "dataset.json")))
    entry = next(s for s in meta["songs"] if s["name"] == song)
    bins = meta["config"]["stft"]["n_fft"] // 2
    records = list(tf.data.TFRecordDataset(os.path.join(out_dir, entry["shard"])))
    starts = [tf.train.Example.FromString(r.numpy()).features.feature["start_frame"].int64_list.value[0]
              for r in records]
    return entry, [(s, *[t.numpy() for t in parse_segment(r, bins)]) for s, r in zip(starts, records)]


def test_real_stems_target_is_the_accompaniment_not_the_mix(tmp_path, real_song, tiny_config):
    src = tmp_path / "songs"
    copy_song(real_song, src / "rock")
    cfg = tiny_config.override(**{"train.val_fraction": 0.0})
    summary = preprocess(str(src), str(tmp_path / "out"), cfg, progress=False)
    assert summary["failed"] == [] and summary["counts"]["train"]["songs"] == 1
    entry, segments = _segments(str(tmp_path / "out"), "rock")
    assert entry["accompaniment"] == ["accompaniment.flac"] and 6.5 < entry["seconds"] < 7.0
    assert entry["seconds_kept"] + entry["seconds_dropped"] == pytest.approx(entry["seconds"], abs=1e-3)
    spec = Spectrogram(cfg.stft)
    rate = cfg.audio.sample_rate
    acc = spec.to_model(audio.load(os.path.join(real_song, "accompaniment.flac"), rate)[0]).numpy()
    mix = spec.to_model(audio.load(os.path.join(real_song, "mixture.flac"), rate)[0]).numpy()
    voc = spec.to_model(audio.load(os.path.join(real_song, "vocals.flac"), rate)[0]).numpy()
    for start, v, a in segments:
        end = start + len(a)
        np.testing.assert_allclose(a, acc[start:end], atol=2e-3)  # float16 storage
        np.testing.assert_allclose(v, voc[start:end], atol=2e-3)
        assert np.abs(a - mix[start:end]).mean() > 0.05


def test_drums_bass_other_are_summed_when_there_is_no_accompaniment_file(tmp_path, real_song, tiny_config):
    src = tmp_path / "songs"
    copy_song(real_song, src / "full")
    copy_song(real_song, src / "stems", keep={"vocals", "drums", "bass", "other"})
    cfg = tiny_config.override(**{"train.val_fraction": 0.0})
    preprocess(str(src), str(tmp_path / "out"), cfg, progress=False)
    entry, stems = _segments(str(tmp_path / "out"), "stems")
    assert entry["accompaniment"] == ["drums.flac", "bass.flac", "other.flac"]
    _, full = _segments(str(tmp_path / "out"), "full")
    for (s1, _, a1), (s2, _, a2) in zip(stems, full):
        assert s1 == s2
        assert np.mean(np.abs(a1 - a2)) < 0.01


def test_silent_vocal_windows_are_dropped_and_reported(tmp_path, tiny_config):
    rate = tiny_config.audio.sample_rate
    make_song(tmp_path / "songs" / "half", rate, seconds=8.0, silent_vocal_after=4.0)
    cfg = tiny_config.override(**{"train.val_fraction": 0.0})
    summary = preprocess(str(tmp_path / "songs"), str(tmp_path / "out"), cfg, progress=False)
    (song,) = summary["songs"]
    window = cfg.window_seconds
    assert 4.0 - window <= song["seconds_dropped"] <= 4.0 + window
    assert summary["counts"]["train"]["seconds_dropped"] == song["seconds_dropped"]
    _, segments = _segments(str(tmp_path / "out"), "half")
    hop_seconds = cfg.stft.hop_length / rate
    assert all((start + len(v)) * hop_seconds <= 4.0 + window for start, v, _ in segments)


def test_gate_is_relative_to_the_song_level():
    level = np.full(100, -60.0)
    level[40:] = -20.0
    assert voiced_segments(level, 10, 5, gate_db=-30.0, min_voiced=0.5) == [(35, 100)]
    assert voiced_segments(level - 30.0, 10, 5, gate_db=-30.0, min_voiced=0.5) == [(35, 100)]  # quieter song
    assert voiced_segments(level, 200, 5, -30.0, 0.5) == []  # shorter than a window
    assert voiced_segments(level, 10, 5, -30.0, 0.5, floor_db=-40.0) == [(35, 100)]
    assert voiced_segments(level - 30.0, 10, 5, -30.0, 0.5, floor_db=-40.0) == []  # under the absolute floor
    assert voiced_segments(np.full(100, -120.0), 10, 5, -30.0, 0.5, floor_db=-60.0) == []  # digital silence


def test_a_silent_vocal_stem_keeps_nothing(tmp_path, tiny_config):
    song = make_song(str(tmp_path / "in" / "quiet"), tiny_config.audio.sample_rate)
    sf.write(os.path.join(song, "vocals.wav"), np.zeros(6 * tiny_config.audio.sample_rate, np.float32),
             tiny_config.audio.sample_rate)
    summary = preprocess(str(tmp_path / "in"), str(tmp_path / "out"), tiny_config, progress=False)
    (entry,) = summary["songs"]
    assert entry["segments"] == 0 and entry["seconds_kept"] == 0.0


def test_split_is_by_song_deterministic_and_honours_splits_json(tmp_path, tiny_config):
    rate = tiny_config.audio.sample_rate
    names = [f"song{i:02d}" for i in range(12)]
    for name in names:
        make_song(tmp_path / "songs" / name, rate, seconds=1.0)
    (tmp_path / "songs" / "splits.json").write_text(json.dumps({"test": ["song00"], "val": ["song01"]}))
    cfg = tiny_config.override(**{"train.val_fraction": 0.3})
    summary = preprocess(str(tmp_path / "songs"), str(tmp_path / "out"), cfg, progress=False)
    split = {s["name"]: s["split"] for s in summary["songs"]}
    assert summary["held_out_test"] == ["song00"] and "song00" not in split
    assert split["song01"] == "val"
    for name in names[2:]:
        assert split[name] == hash_split(name, 0.3)
    assert {"train", "val"} <= set(split.values())
    for s in summary["songs"]:
        assert s["shard"].startswith(s["split"] + "/")


def _run_cli(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _tree(folder):
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = open(path, "rb").read()
    return out


@pytest.mark.slow
def test_killed_run_resumes_to_identical_output(tmp_path, tiny_config):
    rate = tiny_config.audio.sample_rate
    for i in range(30):
        make_song(tmp_path / "songs" / f"s{i:02d}", rate, seconds=30.0)
    args = ["preprocess", str(tmp_path / "songs"), "--preset", "tiny", "--no-progress"]
    ref = _run_cli(args[:2] + [str(tmp_path / "ref")] + args[2:])
    assert ref.wait(timeout=300) == 0, ref.stderr.read()

    proc = _run_cli(args[:2] + [str(tmp_path / "out")] + args[2:])
    state = tmp_path / "out" / ".state"
    deadline = time.time() + 120
    def finished_songs():  # a state file under its final name (its temporary one also ends in .json)
        return [p for p in state.glob("*.json") if not p.name.startswith(".")] if state.exists() else []

    while time.time() < deadline and not finished_songs():
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "out" / "dataset.json").exists(), "the run finished before it could be killed"
    for shard in (tmp_path / "out").rglob("*.tfrecord"):  # nothing half-written under a final name
        assert sum(1 for _ in tf.data.TFRecordDataset(str(shard))) > 0

    again = _run_cli(args[:2] + [str(tmp_path / "out")] + args[2:])
    assert again.wait(timeout=300) == 0, again.stderr.read()
    assert "reused" in again.stderr.read()
    resumed = {k: v for k, v in _tree(tmp_path / "out").items() if not os.path.basename(k).startswith(".tmp-")}
    assert resumed == _tree(tmp_path / "ref")


def _bad_songs(root, rate):
    good = make_song(root / "good", rate, seconds=2.0)
    cases = {}

    def song(name, **kw):
        folder = make_song(root / name, rate, seconds=2.0, **kw)
        return folder

    f = song("corrupt")
    with open(os.path.join(f, "vocals.wav"), "r+b") as fh:
        fh.seek(0)
        fh.write(os.urandom(64))
    cases["corrupt"] = (os.path.join(f, "vocals.wav"), "cannot decode audio")
    f = song("empty")
    open(os.path.join(f, "vocals.wav"), "wb").close()
    cases["empty"] = (os.path.join(f, "vocals.wav"), "file is empty")
    f = song("zero")
    sf.write(os.path.join(f, "accompaniment.wav"), np.zeros(0, np.float32), rate)
    cases["zero"] = (os.path.join(f, "accompaniment.wav"), "zero length")
    f = song("nan")
    x = np.zeros(rate, np.float32)
    x[100] = np.nan
    sf.write(os.path.join(f, "vocals.wav"), x, rate, subtype="FLOAT")
    cases["nan"] = (os.path.join(f, "vocals.wav"), "NaN/Inf")
    f = song("nostem", stems=True)
    os.remove(os.path.join(f, "bass.wav"))
    cases["nostem"] = (f, "missing stem: expected accompaniment.{wav,flac,mp3,ogg} or drums, bass and other (no bass)")
    f = song("novocal")
    os.remove(os.path.join(f, "vocals.wav"))
    cases["novocal"] = (f, "missing stem: expected vocals.")
    f = song("mismatch")
    sf.write(os.path.join(f, "accompaniment.wav"), np.zeros(rate // 2, np.float32), rate)
    cases["mismatch"] = (os.path.join(f, "accompaniment.wav"), "stem length 0.500 s differs from vocals.wav (2.000 s)")
    f = song("text")
    with open(os.path.join(f, "vocals.wav"), "w") as fh:
        fh.write("la la la\n" * 100)
    cases["text"] = (os.path.join(f, "vocals.wav"), "cannot decode audio")
    return good, cases


@pytest.mark.slow
def test_bad_input_is_reported_per_song_and_the_rest_is_processed(tmp_path, tiny_config):
    good, cases = _bad_songs(tmp_path / "songs", tiny_config.audio.sample_rate)
    proc = _run_cli(["preprocess", str(tmp_path / "songs"), str(tmp_path / "out"), "--preset", "tiny",
                     "--set", "train.val_fraction=0"])
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == len(cases), err
    for path, problem in cases.values():
        assert any(line.startswith(f"error: {path}: ") and problem in line for line in lines), (path, problem, lines)
    assert f"{len(cases)} song(s) failed:" in err
    meta = json.load(open(tmp_path / "out" / "dataset.json"))
    assert [s["name"] for s in meta["songs"]] == ["good"]
    assert len(meta["failed"]) == len(cases)


@pytest.mark.slow
def test_cli_end_to_end_on_rendered_chorales_with_plots(tmp_path, chorale_dir):
    proc = _run_cli(["preprocess", chorale_dir, str(tmp_path / "out"), "--preset", "tiny", "--plot", "2"])
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    meta = json.load(open(tmp_path / "out" / "dataset.json"))
    splits = json.load(open(os.path.join(chorale_dir, "splits.json")))
    assert sorted(meta["held_out_test"]) == sorted(splits["test"])
    assert {s["name"] for s in meta["songs"] if s["split"] == "train"} == set(splits["train"])
    assert meta["counts"]["train"]["windows"] > 0 and meta["counts"]["val"]["songs"] == len(splits["val"])
    assert "x real time" in err and "held out" in err
    for i in range(2):
        png = tmp_path / "out" / "plots" / f"window-{i:03d}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
