"""Style conditioning: from the data set's labels through training, export, serving and ``kgan generate --style``."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from kgan.config import resolve_style
from tests.conftest import ROOT, assert_rejected, make_song

STYLES = "piano,band"
LABELS = ["piano", "band", "piano", "jazz"]  # "jazz" is not one of the model's styles: it trains as "any"


@pytest.fixture(scope="module")
def styled_config(tiny_config):
    return dataclasses.replace(tiny_config, model=dataclasses.replace(tiny_config.model, styles=STYLES))


@pytest.fixture(scope="module")
def styled_data(tmp_path_factory, styled_config):
    from kgan.preprocess import preprocess

    root = tmp_path_factory.mktemp("styled")
    for i in range(len(LABELS) + 1):
        make_song(str(root / "songs" / f"song{i}"), styled_config.audio.sample_rate, seconds=4.0)
    data = root / "data"
    preprocess(str(root / "songs"), str(data), styled_config, progress=False)
    meta = json.loads((data / "dataset.json").read_text())
    for song, label in zip(meta["songs"], LABELS + [None]):  # the last song validates, unlabelled
        song["split"], song["style"] = ("train", label) if label else ("val", None)
    (data / "dataset.json").write_text(json.dumps(meta))
    return str(data)


@pytest.fixture(scope="module")
def styled_export(tmp_path_factory, styled_config, styled_data):
    """``kgan train`` on two CPU replicas (a subprocess: collectives of other tests' strategies stay apart), exported."""
    from kgan.export import export

    root = tmp_path_factory.mktemp("styled-run")
    run = str(root / "run")
    proc = subprocess.run([sys.executable, "-m", "cli.main", "train", styled_data, run, "--preset", "tiny",
                           "--set", f"model.styles={STYLES}", "--steps", "4", "--cpu-replicas", "2", "--no-progress"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "style-conditioned on piano, band (dropout 0.2 to 'any'); training songs: band 1, jazz 1, piano 2; " \
           "trained as 'any': jazz" in proc.stderr, proc.stderr
    base = str(root / "exports")
    return export(run, base, griffin_lim_iters=4), base


def test_style_names_and_resolution(styled_config, tiny_config):
    assert styled_config.model.style_names == ("any", "piano", "band") and tiny_config.model.style_names == ()
    names = styled_config.model.style_names
    assert resolve_style(names, "band") == 2 and resolve_style(names, "1") == 1 and resolve_style(names, None) is None
    with pytest.raises(ValueError, match="unknown style 'jazz'; this model's styles: any, piano, band"):
        resolve_style(names, "jazz")
    with pytest.raises(ValueError, match="this model has no styles"):
        resolve_style((), "piano")
    for bad in ("piano,piano", "any,band", "piano,,band", "pi ano"):
        with pytest.raises(ValueError, match="model.styles must be distinct"):
            dataclasses.replace(tiny_config, model=dataclasses.replace(tiny_config.model, styles=bad))


def test_film_starts_as_the_identity_and_style_then_changes_the_output(styled_config):
    from kgan.models import PatchGANDiscriminator, UNetGenerator

    g = UNetGenerator.from_kgan_config(styled_config)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 128, 32, 1)).astype(np.float32)
    first = g([x, np.array([1, 1], np.int32)], training=False).numpy()
    np.testing.assert_array_equal(first, g([x, np.array([2, 0], np.int32)], training=False).numpy())
    for layer in g.layers:
        if layer.name.endswith("_film"):
            layer.projection.kernel.assign(np.random.default_rng(1).normal(0, 0.2, layer.projection.kernel.shape))
    piano, band = (g([x, np.array([s, s], np.int32)], training=False).numpy() for s in (1, 2))
    assert piano.shape == band.shape == (2, 128, 32, 1) and np.abs(piano - band).max() > 1e-4
    assert np.all(np.abs(piano) <= 1.0)
    d = PatchGANDiscriminator.from_kgan_config(styled_config)
    assert d([x, piano, np.array([1, 2], np.int32)]).shape == (2, 32, 8, 1)
    clone = UNetGenerator.from_config(g.get_config())
    assert clone.styles == 2 and len(clone.inputs) == 2


def test_windows_carry_each_song_s_style_id(styled_data, styled_config):
    from kgan.dataset import windows_dataset

    ids = set()
    for _, _, style in windows_dataset(styled_data, "train", styled_config, 4, training=False, drop_remainder=False):
        ids |= set(style.numpy().tolist())
    assert ids == {0, 1, 2}  # piano, band, and "jazz" as any


def test_styled_export_serves_locally_and_over_grpc_with_an_optional_style(styled_export, styled_config):
    from kgan.client import RemoteModel
    from kgan.export import forbidden_ops
    from kgan.generation import LocalModel
    from kgan.server import serve

    path, base = styled_export
    assert forbidden_ops(path) == []
    assert json.load(open(os.path.join(path, "assets", "kgan_config.json")))["styles"] == ["any", "piano", "band"]
    vocal = (0.2 * np.sin(np.arange(6000) / 4)).astype(np.float32)[None]
    local = LocalModel(base)
    outputs = {}
    for style in (None, "any", "piano", "band"):
        local.set_style(style)
        outputs[style] = local(vocal)
    np.testing.assert_array_equal(outputs[None], outputs["any"])
    assert not np.array_equal(outputs["piano"], outputs["band"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="style ids are 0 any, 1 piano, 2 band"):
        local.saved_model.signatures["serving_default"](vocal=vocal, style=np.array([9], np.int32))  # no Python

    server, port = serve(base, "127.0.0.1", 0, max_seconds=5.0)
    try:
        remote = RemoteModel(f"127.0.0.1:{port}", style="band")
        assert remote.style_names == ("any", "piano", "band")
        np.testing.assert_array_equal(remote(vocal), outputs["band"])
        remote.set_style(None)  # no style in the request: the signature's default
        np.testing.assert_array_equal(remote(vocal), outputs[None])
        for style, text in (([7], "unknown id(s) [7]; valid: 0 (any), 1 (piano), 2 (band)"),
                            ([1, 2], "one id, or one per row (1); got 2"), ([-1], "unknown id(s) [-1]")):
            assert_rejected(port, {"vocal": vocal, "style": np.array(style, np.int32)}, text)
        remote.close()
    finally:
        server.stop(grace=None)


def test_generate_style_option(styled_export, tmp_path, styled_config):
    import soundfile as sf

    _, base = styled_export
    vocal = tmp_path / "me.wav"
    sf.write(vocal, (0.2 * np.sin(np.arange(16000) / 4)).astype(np.float32), 8000)
    run = [sys.executable, "-m", "cli.main", "generate", str(vocal), "--model", base, "--no-progress"]
    bad = subprocess.run(run + ["-o", str(tmp_path / "x"), "--style", "jazz"], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "unknown style 'jazz'; this model's styles: any, piano, band" in bad.stderr
    good = subprocess.run(run + ["-o", str(tmp_path / "y"), "--style", "piano"], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "y" / "me_accompaniment.wav").exists()


def test_style_check_tells_a_model_that_plays_the_style_from_one_that_ignores_it():
    from kgan.evaluation import style_check
    from tests.conftest import tone

    rate = 8000
    sound = {"low": lambda n: tone(n / rate, rate, 110.0), "high": lambda n: tone(n / rate, rate, 1760.0)}
    labels = {f"s{i}": ("low", "high")[i % 2] for i in range(6)}
    songs = [(n, tone(2.0, rate, 440.0), sound[labels[n]](2 * rate)) for n in sorted(labels)]
    follows = style_check(lambda v, r, style: sound[style](len(v)), songs, labels, ["low", "high"], rate, False)
    assert follows["accuracy"] == {"low": 1.0, "high": 1.0}
    truth = {n: a for n, _, a in songs}
    ignores = style_check(lambda v, r, style: truth[next(n for n, vv, _ in songs if vv is v)], songs, labels,
                          ["low", "high"], rate, False)
    assert ignores["accuracy"] == {"low": 0.5, "high": 0.5}  # right only for the songs already in that style
    assert follows["truth_accuracy"] == 1.0  # the measure's ceiling: the true clips are nearest their own style
    louder = style_check(lambda v, r, style: (0.05, 20.0)[style == "low"] * sound[style](len(v)), songs, labels,
                         ["low", "high"], rate, False)
    assert louder["accuracy"] == {"low": 1.0, "high": 1.0}  # the level is not the style

    from kgan.evaluation import StyleClassifier

    noise = np.random.default_rng(0).normal(0, 0.01, (6, 2 * rate)).astype(np.float32)
    reference = [(sound[s](2 * rate) * gain + noise[3 * i + j], s) for i, s in enumerate(("low", "high"))
                 for j, gain in enumerate((0.5, 1.0, 2.0))]
    judge = StyleClassifier([c for c, _ in reference], [s for _, s in reference], rate)
    assert judge(sound["high"](2 * rate)) == "high" and judge(sound["low"](2 * rate)) == "low"
    follows = style_check(lambda v, r, style: sound[style](len(v)), songs, labels, ["low", "high"], rate, False,
                          classifier=judge)
    assert follows["classifier"] == {"accuracy": {"low": 1.0, "high": 1.0}, "truth_accuracy": 1.0,
                                     "reference_songs": 6}
    with pytest.raises(ValueError, match="two styles at least"):
        StyleClassifier([c for c, _ in reference[:3]], ["low"] * 3, rate)
    with pytest.raises(ValueError, match="two styles at least"):
        style_check(lambda v, r, style: v, songs, {n: "low" for n in labels}, ["low", "high"], rate, False)


def test_evaluate_in_each_song_s_style_with_the_style_check_and_float16_weights(styled_export, tmp_path):
    from kgan.export import export, load

    path, _ = styled_export
    run = os.path.join(os.path.dirname(os.path.dirname(path)), "run")
    half = export(run, str(tmp_path / "half"), griffin_lim_iters=4, weights="float16")
    windows = np.random.default_rng(0).uniform(-1, 1, (2, 128, 32, 1)).astype(np.float32)
    outs = [load(p)[0].signatures["spectrogram"](vocal_spectrogram=windows, style=np.array([2], np.int32))
            ["accompaniment_spectrogram"].numpy() for p in (path, half)]
    assert np.max(np.abs(outs[0] - outs[1])) < 2e-3

    songs = tmp_path / "songs"
    for i, label in enumerate(["piano", "band", "piano", "band", None]):
        make_song(str(songs / f"song{i}"), 8000, seconds=2.0)
        if label:
            (songs / f"song{i}" / "song.json").write_text(json.dumps({"style": label}))
    (songs / "splits.json").write_text(json.dumps({"train": [f"song{i}" for i in range(4)]}))
    cmd = [sys.executable, "-m", "cli.main", "evaluate", half, str(songs), "-o", str(tmp_path / "report"),
           "--split", "", "--baselines", "silence", "--compare", f"same={half}", "--style", "label", "--style-check",
           "--style-reference", str(songs), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["style"] == "label" and report["labels"]["style"]["song4"] is None
    # a compared export plays each song's own style too: the same export compared with itself scores the same
    assert report["systems"]["same"]["per_song"] == report["systems"]["model"]["per_song"]
    check = json.loads((tmp_path / "report" / "styles.json").read_text())
    assert check["styles"] == ["piano", "band"] and len(check["songs"]) == 5
    assert all(0.0 <= check["accuracy"][s] <= 1.0 for s in check["styles"])
    assert check["classifier"]["reference_songs"] == 4 and 0.0 <= check["classifier"]["accuracy"]["band"] <= 1.0
    assert "classified as that style" in (tmp_path / "report" / "styles.md").read_text()
    bad = subprocess.run(cmd[:-6] + ["--style", "jazz"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert bad.returncode == 2 and "unknown style 'jazz'" in bad.stderr and "Traceback" not in bad.stderr


def _texture(kind: int, bins: int, frames: int, rng) -> np.ndarray:
    """A normalised window of style 1 (sustained partials: horizontal lines) or 2 (broadband hits: vertical)."""
    x = -np.ones((bins, frames), np.float32)
    if kind == 1:
        x[rng.choice(np.arange(4, bins), 4, replace=False), :] = 0.5
    else:
        x[:, rng.choice(frames, 3, replace=False)] = 0.5
    return x[..., None]


def test_style_critic_tells_textures_apart_and_its_loss_pulls_an_output_towards_the_asked_style(styled_config):
    import keras

    from kgan.style_critic import style_critic, style_loss

    bins, frames = styled_config.stft.num_bins, styled_config.window.frames
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    critic = style_critic(bins, frames, 2)
    optimizer = keras.optimizers.Adam(1e-3)
    for _ in range(60):
        kinds = rng.integers(1, 3, 16)
        x = tf.constant(np.stack([_texture(k, bins, frames, rng) for k in kinds]))
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(style_loss(critic, x, tf.constant(kinds, tf.int32)))
        optimizer.apply_gradients(zip(tape.gradient(loss, critic.trainable_variables), critic.trainable_variables))
    kinds = np.array([1, 2] * 16)
    fresh = np.stack([_texture(k, bins, frames, rng) for k in kinds])
    assert np.mean(np.argmax(critic(fresh).numpy(), -1) + 1 == kinds) >= 0.9
    # "any" (0) costs nothing; a named style costs more when the window has the other texture
    assert np.all(style_loss(critic, fresh, tf.zeros(len(kinds), tf.int32)).numpy() == 0.0)
    right = style_loss(critic, fresh, tf.constant(kinds, tf.int32)).numpy()
    wrong = style_loss(critic, fresh, tf.constant(3 - kinds, tf.int32)).numpy()
    assert right.mean() < 0.3 < wrong.mean()
    # what the generator gets: descending the loss moves a sustained window towards the hits' texture
    x = tf.Variable(fresh[:1])
    before = float(style_loss(critic, x, tf.constant([2]))[0])
    for _ in range(30):
        with tf.GradientTape() as tape:
            loss = style_loss(critic, x, tf.constant([2]))[0]
        x.assign(tf.clip_by_value(x - 0.05 * tf.sign(tape.gradient(loss, x)), -1.0, 1.0))
    assert float(style_loss(critic, x, tf.constant([2]))[0]) < 0.5 * before
    assert np.argmax(critic(x).numpy()) + 1 == 2


def test_critic_cli_trains_on_labelled_windows_and_the_trainer_adds_its_loss(styled_data, styled_config, tmp_path):
    from kgan.style_critic import load_style_critic
    from kgan.training import Trainer, make_strategy
    from tests.conftest import distributed

    out = str(tmp_path / "critic")
    proc = subprocess.run([sys.executable, "-m", "cli.main", "critic", "train", styled_data, out, "--preset", "tiny",
                           "--set", f"model.styles={STYLES}", "--steps", "3", "--no-progress"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "style critic: val window accuracy none (no labelled val windows)" in proc.stdout, proc.stdout
    info = json.loads((tmp_path / "critic" / "critic.json").read_text())
    assert info["style_names"] == ["any", "piano", "band"] and info["steps"] == 3
    with pytest.raises(ValueError, match="train.style_weight > 0 needs named styles"):
        dataclasses.replace(styled_config, train=dataclasses.replace(styled_config.train, style_weight=1.0))
    other = dataclasses.replace(styled_config, model=dataclasses.replace(styled_config.model, styles="organ,band"))
    with pytest.raises(ValueError, match="the critic knows styles"):
        load_style_critic(out, other)
    cfg = dataclasses.replace(styled_config, train=dataclasses.replace(
        styled_config.train, style_weight=3.0, style_critic=out, style_dropout=0.0, style_start=1))
    trainer = Trainer(cfg, str(tmp_path / "run"), make_strategy(1))
    assert not trainer.critic.trainable
    weights = [w.numpy().copy() for w in trainer.critic.weights]
    rng = np.random.default_rng(1)
    vocal = rng.uniform(-1, 1, (4, cfg.stft.num_bins, cfg.window.frames, 1)).astype(np.float32)
    batch = (vocal, vocal, np.array([1, 2, 1, 2], np.int32))
    batches = distributed(trainer, batch)
    for step in range(2):  # the loss counts from train.style_start (1) on
        metrics = {k: float(v) for k, v in trainer.train_step(next(batches)).items()}
        assert np.isfinite(metrics["g_style"]) and metrics["g_style"] > 0
        expected = metrics["g_gan"] + 100.0 * metrics["g_l1"] + (3.0 * metrics["g_style"] if step else 0.0)
        assert metrics["g_total"] == pytest.approx(expected, rel=1e-4)
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(weights, trainer.critic.weights))  # frozen
    plain = Trainer(styled_config, str(tmp_path / "plain"), make_strategy(1))
    assert float(plain.train_step(next(distributed(plain, batch)))["g_style"]) == 0.0
