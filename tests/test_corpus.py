import json
import os
import subprocess
import sys

import librosa
import numpy as np
import pytest

from kgan import audio
from kgan.corpus import Piece, list_pieces, select, split_of


def test_the_wheel_ships_hundreds_of_chorales():
    pieces = list_pieces()
    assert len(pieces) > 300
    assert all(p.name.startswith("bwv") and os.path.exists(p.path) for p in pieces)


def test_split_depends_only_on_the_piece_and_every_split_is_selected():
    pieces = list_pieces()
    splits = [split_of(p.name) for p in pieces]
    share = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert 0.7 < share["train"] < 0.9 and 0.05 < share["val"] < 0.15 and 0.05 < share["test"] < 0.15
    few, many = select(pieces, 5), select(pieces, 40)
    assert {split_of(p.name) for p in few} == {"train", "val", "test"}
    assert len(few) == 5 and len(many) == 40
    for p in few:  # the same piece keeps its split whatever n is
        assert split_of(p.name) == split_of(Piece(p.name, "elsewhere").name)


def test_rendered_songs_have_aligned_stems_and_a_summed_mixture(chorale_dir, tiny_config):
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


@pytest.mark.slow
def test_cli_renders_transpositions_of_the_same_piece_into_the_same_split(tmp_path):
    cmd = [sys.executable, "-m", "cli.main", "corpus", "chorales", str(tmp_path), "--n", "1", "--transpose=-2,0",
           "--preset", "tiny", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
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
