"""The model that ships inside the package: small, float16, core ops only, style-conditioned, usable at once.

The slow tests run the real CLI without ``--model``, and install a freshly built
wheel into a new virtual environment to check that the packaged model is found
from outside the source tree.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from kgan import pretrained
from kgan.export import forbidden_ops, unknown_inputs, unrestored_variables
from tests.conftest import REAL_MP3, ROOT


def _kgan(*args, cwd=ROOT, python=sys.executable):
    proc = subprocess.run([python, "-m", "cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=900, cwd=cwd)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def shipped():
    assert pretrained.available(), "kgan/pretrained/export/1 is missing: the package must ship its model"
    return os.path.join(pretrained.export_base(), "1")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Eight seconds of the real mixed song, mono, at its own rate."""
    audio, rate = sf.read(REAL_MP3, frames=8 * 44100, always_2d=True)
    path = tmp_path_factory.mktemp("clip") / "clip.wav"
    sf.write(path, audio.mean(axis=1), rate)
    return path


def test_shipped_export_is_small_float16_core_ops_and_matches_its_card(shipped):
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(shipped) for f in files)
    assert 1e6 < size <= 30e6, size
    assert forbidden_ops(shipped) == []
    assert unrestored_variables(shipped) == []  # stock TF Serving restores every variable it reads
    digest = pretrained.tree_sha256(shipped)
    assert digest in pretrained.model_card()
    with open(os.path.join(os.path.dirname(os.path.dirname(shipped)), "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)
    assert metrics["model"]["sha256"] == digest and metrics["model"]["bytes"] == size
    reader = tf.train.load_checkpoint(os.path.join(shipped, "variables", "variables"))
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    count = {}
    for name, dtype in dtypes.items():
        count[dtype] = count.get(dtype, 0) + int(np.prod(shapes[name]))
    assert count.get(tf.float16, 0) > 0.95 * (count.get(tf.float16, 0) + count.get(tf.float32, 0)), count


def test_style_changes_the_output_and_keeps_its_shape(shipped):
    from kgan.export import load

    model, config, _ = load(shipped)
    meta = model.signatures["metadata"](probe=tf.zeros([1]))
    names = meta["styles"].numpy()[0].decode().split(",")
    output_rate = int(meta["output_sample_rate"].numpy()[0])  # 44.1 kHz: it carries a high band
    assert names[0] == "any" and {"piano", "band", "organ"} <= set(names), names
    assert list(config.model.style_names) == names
    t = np.arange(3 * config.audio.sample_rate) / config.audio.sample_rate
    vocal = (0.3 * np.sin(2 * np.pi * 330 * t) * (1 + np.sign(np.sin(2 * np.pi * 2 * t))) / 2).astype(np.float32)
    serve = model.signatures["serving_default"]
    # no beat grid and no chord chart (a loaded signature fills in no defaults; TF Serving does)
    unknown = unknown_inputs(serve)
    assert set(unknown) == {"style", "meter", "chords"}
    outs = {name: serve(vocal=vocal[None], **{**unknown, "style": tf.constant([i], tf.int32)})["accompaniment"].numpy()
            for i, name in enumerate(names) if name in ("any", "piano", "band")}
    assert output_rate == 2 * config.audio.sample_rate
    for name, out in outs.items():
        assert out.shape == (1, 2 * len(vocal)) and np.all(np.isfinite(out)), name
    spec = [np.abs(np.fft.rfft(outs[name][0])) for name in ("piano", "band")]
    assert np.abs(spec[0] - spec[1]).sum() > 0.05 * spec[0].sum()  # another style, another accompaniment
    freqs = np.fft.rfftfreq(2 * len(vocal), 1 / output_rate)
    power = spec[1] ** 2  # the band style's: its cymbals reach above the model's own band
    assert power[freqs > 11500].sum() > 1e-5 * power.sum()


def test_an_unknown_style_is_one_line_listing_the_valid_ones(shipped, clip, tmp_path):
    code, out = _kgan("generate", clip, "-o", tmp_path / "k", "--style", "polka")
    assert code == 2 and "Traceback" not in out, out
    assert "polka" in out and "piano" in out and "band" in out, out
    assert not (tmp_path / "k").exists() or not os.listdir(tmp_path / "k")


@pytest.mark.slow
def test_generate_without_model_writes_the_accompaniment(shipped, clip, tmp_path):
    code, out = _kgan("generate", clip, "-o", tmp_path / "karaoke", "--style", "piano", "--no-progress")
    assert code == 0, out
    acc, rate = sf.read(tmp_path / "karaoke" / "clip_accompaniment.wav")
    vocal, vocal_rate = sf.read(clip)
    assert abs(len(acc) / rate - len(vocal) / vocal_rate) < 0.05
    assert np.sqrt(np.mean(acc ** 2)) > 1e-3  # it plays something


def _purelib() -> str:
    import sysconfig

    return sysconfig.get_paths()["purelib"]


@pytest.mark.slow
def test_the_packaged_model_loads_from_an_installed_wheel(shipped, clip, tmp_path):
    """Build the wheel, install it into a new venv (dependencies borrowed from this one), generate from /tmp."""
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the working tree
    for package in ("kgan", "cli"):
        shutil.copytree(os.path.join(ROOT, package), source / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True, timeout=600)
    wheel, = (tmp_path / "dist").glob("kgan-*.whl")
    assert wheel.stat().st_size > 0.5 * sum(os.path.getsize(os.path.join(d, f)) for d, _, files
                                            in os.walk(shipped) for f in files)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # this environment's dependencies, as a plain path entry: its .pth files (the editable kgan) are not run
    with open(os.path.join(site, "borrowed-deps.pth"), "w") as f:
        f.write(_purelib() + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, timeout=600)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run([python, "-c", "import kgan.pretrained as p; print(p.export_base())"], cwd=work,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(site) and not where.startswith(ROOT), where
    proc = subprocess.run([str(venv / "bin" / "kgan"), "generate", str(clip), "-o", "out", "--no-progress"],
                          cwd=work, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    acc, rate = sf.read(work / "out" / "clip_accompaniment.wav")
    assert len(acc) > 7 * rate


def test_a_build_without_the_model_says_so_in_one_line(tmp_path):
    """A source tree whose pretrained/export was removed: generate and evaluate name what to do."""
    for package in ("kgan", "cli"):
        shutil.copytree(os.path.join(ROOT, package), tmp_path / package,
                        ignore=shutil.ignore_patterns("export", "__pycache__"))
    for args, text in ((["generate", REAL_MP3, "-o", tmp_path / "g"],
                        "this kgan build ships no pretrained model; give --model EXPORT or --server HOST:PORT"),
                       (["evaluate", tmp_path], "ships no pretrained model")):
        code, out = _kgan(*args, cwd=tmp_path)
        assert code == 1 and "Traceback" not in out and text in out, out
        assert re.search(r"kgan/pretrained/export", out), out
