"""``kgan preprocess --mixes --workers N``: the Apache Beam pipeline writes what the plain path writes."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import MUSDB_SONG, REAL_MP3, ROOT


def _kgan(*args):
    proc = subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    return proc.returncode, proc.stdout + proc.stderr


def _records(path):
    out = []
    for raw in tf.data.TFRecordDataset(path):
        example = tf.train.Example.FromString(raw.numpy())
        f = example.features.feature
        out.append({"song": f["song"].bytes_list.value[0], "start": f["start_frame"].int64_list.value[0],
                    **{k: np.frombuffer(f[k].bytes_list.value[0], "<f2").astype(np.float32)
                       for k in ("vocal", "accompaniment")}})
    return out


@pytest.mark.slow
def test_beam_pipeline_writes_the_plain_path_s_shards_reports_bad_files_and_resumes(tmp_path):
    songs = tmp_path / "songs"
    songs.mkdir()
    shutil.copy(REAL_MP3, songs / "dream.mp3")
    shutil.copy(os.path.join(MUSDB_SONG, "mixture.flac"), songs / "rock.flac")
    (songs / "lyrics.mp3").write_text("not audio at all\n" * 20)
    runs = {}
    for name, extra in (("plain", []), ("beam", ["--workers", "2"])):
        code, out = _kgan("preprocess", "--mixes", songs, tmp_path / name, "--preset", "tiny", "--no-progress", *extra)
        assert code == 1 and "Traceback" not in out, out
        assert f"{songs / 'lyrics.mp3'}: cannot decode audio" in out, out
        runs[name] = json.loads((tmp_path / name / "dataset.json").read_text())
    assert "Note:" not in out and "INFO:" not in out and "WARNING" not in out, out  # Beam's chatter goes to its log
    assert (tmp_path / "beam" / ".state" / "beam" / "pipeline.log").exists()
    plain, beam = runs["plain"], runs["beam"]
    assert [s["shard"] for s in beam["songs"]] == [s["shard"] for s in plain["songs"]] and len(plain["songs"]) == 2
    assert beam["counts"] == plain["counts"]
    for song in plain["songs"]:
        a, b = _records(tmp_path / "plain" / song["shard"]), _records(tmp_path / "beam" / song["shard"])
        assert len(a) == len(b) > 0
        for x, y in zip(a, b):  # one TensorFlow thread per worker: equal up to float rounding
            assert (x["song"], x["start"]) == (y["song"], y["start"])
            for key in ("vocal", "accompaniment"):
                np.testing.assert_allclose(x[key], y[key], atol=2e-3)

    # a re-run separates nothing again and keeps every shard
    stamps = {p: os.path.getmtime(p) for p in (tmp_path / "beam" / "separated").glob("*/vocals.wav")}
    code, out = _kgan("preprocess", "--mixes", songs, tmp_path / "beam", "--preset", "tiny", "--no-progress",
                      "--workers", "2")
    assert code == 1 and "1 song(s) failed" in out, out
    assert stamps and all(os.path.getmtime(p) == t for p, t in stamps.items())
    assert json.loads((tmp_path / "beam" / "dataset.json").read_text())["counts"] == plain["counts"]


def test_workers_need_mixes():
    code, out = _kgan("preprocess", ROOT, "/tmp/kgan-never-written", "--workers", "2")
    assert code == 2 and "--workers and --beam-arg go with --mixes" in out, out
