"""Bad input and broken run directories: one clear line naming the file or field, never a traceback.

Each case drives the real CLI in a subprocess and checks the exit status, that
no traceback is printed, and that the message names what is wrong.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import REAL_MP3, make_song

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _kgan(*args, env=None):
    proc = subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env=env)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("robustness")
    (root / "a_file").write_text("not a folder")
    (root / "list.json").write_text("[1, 2]")
    (root / "types.json").write_text(json.dumps({"train": {"batch_size": "4"}}))
    (root / "frames.json").write_text(json.dumps({"window": {"frames": 32.0}}))
    make_song(str(root / "songs" / "song1"), 8000)
    return root


CASES = [
    # (name, args (with {w} for the workspace), exit status, text the message must contain)
    ("output under a regular file (preprocess)", ["preprocess", "{w}/songs", "{w}/a_file/out", "--preset", "tiny"],
     1, "a_file/out"),
    ("batch size -1", ["preprocess", "{w}/songs", "{w}/o", "--set", "train.batch_size=-1"],
     2, "train.batch_size must be a positive int. Received: -1"),
    ("batch size 0", ["preprocess", "{w}/songs", "{w}/o", "--set", "train.batch_size=0"],
     2, "train.batch_size must be a positive int. Received: 0"),
    ("batch size as a string in JSON", ["preprocess", "{w}/songs", "{w}/o", "--config", "{w}/types.json"],
     2, "train.batch_size must be an int. Received: '4'"),
    ("frames as a float in JSON", ["preprocess", "{w}/songs", "{w}/o", "--config", "{w}/frames.json"],
     2, "window.frames must be an int. Received: 32.0"),
    ("config whose top level is a list", ["preprocess", "{w}/songs", "{w}/o", "--config", "{w}/list.json"],
     2, "list.json: invalid config: a config must be a JSON object"),
    ("sample rate 0", ["preprocess", "{w}/songs", "{w}/o", "--set", "audio.sample_rate=0"],
     2, "audio.sample_rate must be a positive int. Received: 0"),
    ("dB floor inf", ["preprocess", "{w}/songs", "{w}/o", "--set", "stft.db_floor=inf"],
     2, "stft.db_floor must be finite. Received: inf"),
    ("negative Griffin-Lim iterations", ["export", "{w}", "{w}/e", "--griffin-lim-iters", "-5"],
     2, "--griffin-lim-iters"),
    ("version -1", ["export", "{w}", "{w}/e", "--version", "-1"], 2, "--version"),
    ("overlap 1", ["export", "{w}", "{w}/e", "--overlap", "1"], 2, "--overlap"),
    ("chunk of 0 seconds", ["generate", REAL_MP3, "-o", "{w}/g", "--model", "{w}", "--chunk-seconds", "0"],
     2, "--chunk-seconds"),
    ("chunk of nan seconds", ["generate", REAL_MP3, "-o", "{w}/g", "--model", "{w}", "--chunk-seconds", "nan"],
     2, "'nan' is not a finite number"),
    ("output folder not writable (preprocess)", ["preprocess", "{w}/songs", "/sys/kgan-out", "--preset", "tiny"],
     1, "/sys/kgan-out"),
    ("output folder not writable (separate)", ["separate", "{w}/songs/song1/vocals.wav", "-o", "/sys/kgan-sep"],
     1, "/sys/kgan-sep"),
    ("negative plot count", ["preprocess", "{w}/songs", "{w}/o", "--plot", "-1"], 2, "--plot"),
    ("negative steps", ["train", "{w}/songs", "{w}/r", "--steps", "-3"], 2, "--steps"),
    ("server port out of range", ["serve", "{w}", "--port", "70000"], 2, "--port"),
    ("negative max seconds", ["serve", "{w}", "--max-seconds", "-1"], 2, "--max-seconds"),
    ("evaluate with three paths", ["evaluate", "{w}", "{w}", "{w}"], 2, "expected [MODEL] DATA_DIR"),
]


@pytest.mark.parametrize("name, args, status, text", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_line(workspace, name, args, status, text):
    code, out = _kgan(*[a.replace("{w}", str(workspace)) for a in args])
    assert code == status, out
    assert "Traceback" not in out, out
    assert text in out, out


def test_generate_into_a_path_under_a_regular_file(workspace, exported):
    code, out = _kgan("generate", REAL_MP3, "-o", f"{workspace}/a_file/sub", "--model", exported[1])
    assert code == 1 and "Traceback" not in out and "a_file/sub" in out, out


def test_generate_names_a_text_file_renamed_mp3_and_an_unwritable_output(workspace, exported):
    lyrics = workspace / "lyrics.mp3"
    lyrics.write_text("la la la, these are the words\n" * 40)
    code, out = _kgan("generate", lyrics, REAL_MP3, "-o", f"{workspace}/karaoke", "--model", exported[1],
                      "--chunk-seconds", "5", "--no-progress")
    assert code == 1 and "Traceback" not in out, out
    assert f"{lyrics}: cannot decode audio: not a wav, flac, mp3 or ogg file" in out, out
    assert "Note:" not in out and "does not exist" not in out, out  # no decoder chatter, no false "missing"
    assert (workspace / "karaoke" / "slow-motion-dream-excerpt_accompaniment.wav").exists()  # the batch went on
    code, out = _kgan("generate", REAL_MP3, "-o", "/sys/kgan-karaoke", "--model", exported[1])
    assert code == 1 and "Traceback" not in out and "/sys/kgan-karaoke" in out, out


def test_a_corrupt_checkpoint_is_one_line_naming_the_run(tmp_path, run_dir):
    run = tmp_path / "run"
    shutil.copytree(run_dir[0], run)
    for index in (run / "checkpoints").glob("*.index"):
        index.write_bytes(b"garbage")
    code, out = _kgan("export", run, tmp_path / "exports")
    assert code == 1 and "Traceback" not in out and len(out.strip().splitlines()) <= 3, out
    assert "checkpoints" in out, out
    assert "no older checkpoint is left" in out or "older checkpoints here: ckpt-" in out, out
    code, out = _kgan("--debug", "export", run, tmp_path / "exports")  # --debug shows where it failed
    assert code == 1 and "Traceback" in out
    code, out = _kgan("export", run, tmp_path / "exports", "--checkpoint", "ckpt-99")
    assert code == 2 and "ckpt-99: no such checkpoint" in out, out


def test_level_calibration_without_val_songs_is_one_line_and_writes_nothing(tmp_path, run_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = _kgan("export", run_dir[0], tmp_path / "exports", "--calibrate-levels", empty)
    assert code == 1 and "Traceback" not in out and len(out.strip().splitlines()) == 1, out
    assert str(empty) in out and "val" in out, out
    assert not (tmp_path / "exports" / "1").exists()


def test_stale_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    from kgan.io_utils import atomic_path, remove_stale_temporaries, temporary_prefix

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / f".tmp-{dead.pid}-x.wav").write_text("left by a killed run")
        (tmp_path / f".tmp-{dead.pid}-song").mkdir()
        (tmp_path / ".tmp-abc.png").write_text("an older kgan's name")
        (tmp_path / f".tmp-{live.pid}-y.wav").write_text("being written")
        (tmp_path / "keep.wav").write_text("a result")
        removed = remove_stale_temporaries(tmp_path)
        assert sorted(removed) == sorted([f".tmp-{dead.pid}-x.wav", f".tmp-{dead.pid}-song", ".tmp-abc.png"])
        assert sorted(os.listdir(tmp_path)) == sorted([f".tmp-{live.pid}-y.wav", "keep.wav"])
    finally:
        live.kill()
        live.wait()
    with atomic_path(tmp_path / "out.txt") as tmp:
        assert os.path.basename(tmp).startswith(temporary_prefix())
        assert remove_stale_temporaries(tmp_path) == [f".tmp-{live.pid}-y.wav"]  # its own is kept
        time.sleep(0)
        open(tmp, "w").write("done")
    assert (tmp_path / "out.txt").read_text() == "done"


def test_evaluate_goes_on_past_a_bad_song_and_lists_it(tmp_path, exported, chorale_dir):
    data = tmp_path / "songs"
    for name in os.listdir(chorale_dir):
        if os.path.isdir(os.path.join(chorale_dir, name)):
            shutil.copytree(os.path.join(chorale_dir, name), data / name)
    (data / "broken").mkdir()
    (data / "broken" / "vocals.wav").write_text("text renamed to .wav")
    (data / "broken" / "accompaniment.wav").write_text("text renamed to .wav")
    code, out = _kgan("evaluate", exported[1], data, "-o", tmp_path / "report", "--split", "",
                      "--baselines", "silence", "--max-seconds", "4", "--no-progress")
    assert code == 1 and "Traceback" not in out, out
    assert "1 song(s) could not be read" in out and "broken" in out, out
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert len(report["songs"]) == 3 and len(report["failed"]) == 1
    code, out = _kgan("evaluate", exported[1], data, "--compare", f"other={tmp_path}/missing", "--no-progress")
    assert code == 1 and "Traceback" not in out and "missing" in out, out
    (data / "splits.json").write_text("{not json")
    code, out = _kgan("evaluate", exported[1], data, "-o", tmp_path / "r2", "--no-progress")
    assert code == 1 and "Traceback" not in out and "splits.json: not valid JSON" in out, out


def test_a_damaged_run_never_restarts_silently_and_resumes_from_an_older_checkpoint(tmp_path, run_dir):
    data = os.path.join(os.path.dirname(run_dir[0]), "data")
    run = tmp_path / "run"
    shutil.copytree(run_dir[0], run)
    code, out = _kgan("train", data, run, "--preset", "tiny", "--steps", "5", "--no-progress")
    assert code == 0, out
    ckpts = run / "checkpoints"
    assert (ckpts / "ckpt-3.index").exists() and (ckpts / "ckpt-5.index").exists()

    state = (ckpts / "checkpoint").read_text()
    (ckpts / "checkpoint").write_text("garbage ][")
    code, out = _kgan("train", data, run, "--preset", "tiny", "--steps", "6", "--no-progress")
    assert code == 1 and "Traceback" not in out, out
    assert "checkpoints/checkpoint: unreadable or missing" in out and "--resume-from ckpt-5" in out, out
    (ckpts / "checkpoint").write_text(state)

    for data_file in ckpts.glob("ckpt-5.data-*"):
        data_file.write_bytes(data_file.read_bytes()[:10])  # truncated
    code, out = _kgan("train", data, run, "--preset", "tiny", "--steps", "6", "--no-progress")
    assert code == 1 and "Traceback" not in out, out
    assert "ckpt-5: checkpoint unreadable" in out and "older checkpoints here: ckpt-3" in out, out

    code, out = _kgan("train", data, run, "--preset", "tiny", "--steps", "6", "--resume-from", "ckpt-3",
                      "--no-progress")
    assert code == 0, out
    assert "resumed from ckpt-3 at step 3" in out, out
    assert (ckpts / "ckpt-6.index").exists()


def test_evaluate_scores_a_single_song_without_set_level_metrics(tmp_path, exported, real_song):
    data = tmp_path / "one"
    shutil.copytree(real_song, data / "real")
    code, out = _kgan("evaluate", exported[1], data, "-o", tmp_path / "report", "--split", "",
                      "--baselines", "drone", "--no-progress")
    assert code == 0, out
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    summary = report["systems"]["model"]["summary"]
    assert report["songs"] == ["real"] and summary["frechet_distance"][0] != summary["frechet_distance"][0]  # NaN
    assert 0.0 <= summary["chroma_fit"][0] <= 1.0 and (tmp_path / "report" / "metrics.png").exists()
