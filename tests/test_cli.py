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
