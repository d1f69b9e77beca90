import os
import subprocess
import sys

from click.testing import CliRunner

from cli.main import main


def test_help_is_instant_and_does_not_import_tensorflow():
    code = "import sys; from cli.main import main; sys.argv=['kgan','--help']\ntry:\n main()\nexcept SystemExit: pass\nprint('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("False"), out.stdout + out.stderr
    assert "preprocess" in out.stdout and "corpus" in out.stdout


def test_every_command_help_shows_an_example():
    runner = CliRunner()
    for args in (["preprocess", "--help"], ["corpus", "chorales", "--help"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0 and "Example:" in result.output and "kgan " in result.output


def test_bad_override_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["preprocess", str(tmp_path), str(tmp_path / "o"), "--set", "train.nope=1"])
    assert result.exit_code == 2 and "unknown config field 'train.nope'" in result.output


def test_empty_input_folder_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["preprocess", str(tmp_path), str(tmp_path / "o"), "--preset", "tiny"])
    assert result.exit_code == 1 and "no song folders found" in result.output


def test_a_beat_grid_needs_a_tempo_and_a_well_formed_meter_and_the_shipped_model_takes_it(tmp_path):
    import numpy as np
    import soundfile as sf

    vocal = tmp_path / "me.wav"
    sf.write(vocal, (0.2 * np.sin(np.arange(22050) / 4)).astype(np.float32), 22050)
    runner = CliRunner()
    alone = runner.invoke(main, ["generate", str(vocal), "-o", str(tmp_path / "a"), "--meter", "3/4"])
    assert alone.exit_code == 2 and "--meter and --downbeat go with --bpm" in alone.output
    bad = runner.invoke(main, ["generate", str(vocal), "-o", str(tmp_path / "b"), "--bpm", "90", "--meter", "3-4"])
    assert bad.exit_code == 2 and "meter: expected N/D such as 4/4" in bad.output
    # the shipped model's chord network takes a grid: told one, it writes the accompaniment
    told = runner.invoke(main, ["generate", str(vocal), "-o", str(tmp_path / "c"), "--bpm", "90", "--meter", "3/4",
                                "--downbeat", "0.2", "--no-progress"])
    assert told.exit_code == 0, told.output
    assert (tmp_path / "c" / "me_accompaniment.wav").exists()


def test_a_chord_chart_needs_a_tempo_and_well_formed_chords_and_the_shipped_model_plays_it(tmp_path, exported):
    import numpy as np
    import soundfile as sf

    vocal = tmp_path / "me.wav"
    sf.write(vocal, (0.2 * np.sin(np.arange(22050) / 4)).astype(np.float32), 22050)
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, ["generate", str(vocal), "-o", str(tmp_path / "out"), "--no-progress", *args])

    assert "--chords needs --bpm" in run("--chords", "C G").output
    bad = run("--chords", "C G | H7", "--bpm", "90")
    assert bad.exit_code == 2 and "bar 2: 'H7': expected a chord" in bad.output
    chart = tmp_path / "chart.txt"
    chart.write_text("# verse\nC G\nAm F | %\n", encoding="utf-8")
    both = run("--chords", "C", "--chords-file", str(chart), "--bpm", "90")
    assert both.exit_code == 2 and "at most one of --chords and --chords-file" in both.output
    broken = tmp_path / "broken.txt"
    broken.write_bytes(b"C \xff\xfe G")
    unreadable = run("--chords-file", str(broken), "--bpm", "90")
    assert unreadable.exit_code == 2 and "broken.txt: unreadable" in unreadable.output
    # a model without a chord plan says so in one line and writes nothing
    planless = run("--chords", "C G", "--bpm", "90", "--model", exported[0])
    assert planless.exit_code == 2 and "takes no chord chart" in planless.output
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")
    # the shipped model plays it (its chord network also takes the tempo as a beat grid)
    told = run("--chords-file", str(chart), "--bpm", "90", "--downbeat", "0.1")
    assert told.exit_code == 0, told.output
    assert (tmp_path / "out" / "me_accompaniment.wav").exists()
    assert "me: chords at" in told.output and "fitted to the singing from 90 bpm and 0.1 s" in told.output
    exact = run("--chords-file", str(chart), "--bpm", "90", "--downbeat", "0.1", "--exact-grid")
    assert exact.exit_code == 0 and "me: chords at 90.00 bpm, first bar at 0.10 s (as given)" in exact.output
    # and writes its own guesses as a chart to correct, which generate reads back
    guessed = runner.invoke(main, ["chords", "guess", str(vocal), "--bpm", "90", "-o", str(tmp_path / "guess.txt")])
    assert guessed.exit_code == 0, guessed.output
    assert (tmp_path / "guess.txt").read_text().startswith("# kgan chords guess me.wav: 90 bpm, 4/4")
    assert run("--chords-file", str(tmp_path / "guess.txt"), "--bpm", "90").exit_code == 0
    planless = runner.invoke(main, ["chords", "guess", str(vocal), "--bpm", "90", "--model", exported[0]])
    assert planless.exit_code == 1 and "has no chord network" in planless.output
