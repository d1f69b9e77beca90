import dataclasses
import glob
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from kgan.config import AugmentConfig
from kgan.training import Trainer, TrainingDiverged, make_strategy
from tests.conftest import distributed as _distributed
from tests.conftest import free_ports


def _weights(trainer):
    return [np.array(v) for v in trainer.generator.weights + trainer.discriminator.weights]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_two_replicas_equal_one_replica_over_the_same_global_batch(tmp_path, tiny_config, fixed_batch, optimizer):
    # Input noise and timbre augmentation are drawn per replica, so they are off here.
    cfg = dataclasses.replace(tiny_config.override(**{"model.dropout": 0.0, "train.vocal_noise_std": 0.0}),
                              augment=AugmentConfig.off())
    trainers = []
    for replicas in (1, 2):
        keras.utils.set_random_seed(7)
        trainer = Trainer(cfg, str(tmp_path / f"r{replicas}"), make_strategy(replicas))
        assert trainer.strategy.num_replicas_in_sync == replicas
        if optimizer == "sgd":  # plain SGD is sensitive to the gradient's scale, unlike Adam
            with trainer.strategy.scope():
                trainer.g_optimizer = keras.optimizers.SGD(0.5)
                trainer.d_optimizer = keras.optimizers.SGD(0.5)
                trainer.g_optimizer.build(trainer.generator.trainable_variables)
                trainer.d_optimizer.build(trainer.discriminator.trainable_variables)
        trainers.append(trainer)
    one, two = trainers
    initial = _weights(one)
    trainable = [v.numpy().copy() for v in one.generator.trainable_variables]
    for w1, w2 in zip(initial, _weights(two)):
        np.testing.assert_array_equal(w1, w2)
    it1, it2 = _distributed(one, fixed_batch), _distributed(two, fixed_batch)
    # SGD(0.5) takes steps so large that three of them turn rounding into percent-level differences
    # (chaotic, batch-dependent), so it is compared after one step; Adam's steps are small.
    steps = 1 if optimizer == "sgd" else 3
    for _ in range(steps):
        m1, m2 = one.train_step(next(it1)), two.train_step(next(it2))
        for k in m1:
            assert float(m1[k]) == pytest.approx(float(m2[k]), rel=1e-4, abs=1e-6), k
    # float32 summation order differs between 1 and 2 replicas (one replica's batch norm is TF's fused
    # kernel, two replicas' is Keras' composition): measured up to 4e-6 (SGD, one step) and 3e-6 (Adam,
    # three steps) over eight seeds. Batch-norm variances as E[x^2] - E[x]^2 gave 1.3e-3 after one SGD
    # step on some batches (kgan.models.blocks.SyncBatchNormalization). Adam moves a weight whose
    # gradient is rounding noise by about its learning rate either way: on one seed of eight, 14 of the
    # 76402 weights differed by 6e-5 to 1.4e-4. A few such weights are allowed, not more.
    bound = 3e-5 if optimizer == "sgd" else 6e-5
    off = sum(int(np.count_nonzero(np.abs(w1 - w2) > bound)) for w1, w2 in zip(_weights(one), _weights(two)))
    total = sum(w.size for w in _weights(one))
    assert off <= (0 if optimizer == "sgd" else 1e-3 * total), (off, total)
    if optimizer == "sgd":  # ... while SGD's step moves the generator's weights far more, so a gradient
        # scaled wrongly by the replica count (twice or half the update) could not pass the bound above
        after = [v.numpy() for v in one.generator.trainable_variables]
        moved = max(float(np.max(np.abs(w1 - w0))) for w0, w1 in zip(trainable, after))
        assert moved > 1000 * bound, moved
    assert int(one.step.numpy()) == int(two.step.numpy()) == steps


def test_loss_falls_within_a_few_dozen_steps(tmp_path, tiny_config, fixed_batch):
    keras.utils.set_random_seed(1)
    # Fitting one fixed batch: the optimiser's job, so no augmentation redraws it every step.
    cfg = dataclasses.replace(tiny_config.override(**{"train.learning_rate": 1e-3}), augment=AugmentConfig.off())
    trainer = Trainer(cfg, str(tmp_path / "run"), make_strategy(1))
    it = _distributed(trainer, fixed_batch)
    l1 = [float(trainer.train_step(next(it))["g_l1"]) for _ in range(40)]
    assert np.mean(l1[-5:]) < 0.6 * np.mean(l1[:5]), l1


def test_mixed_bfloat16_computes_in_bf16_keeps_float32_weights_and_still_learns(tmp_path, tiny_config, fixed_batch):
    keras.utils.set_random_seed(1)
    overrides = {"train.learning_rate": 1e-3, "train.precision": "mixed_bfloat16"}
    cfg = dataclasses.replace(tiny_config.override(**overrides), augment=AugmentConfig.off())
    trainer = Trainer(cfg, str(tmp_path / "run"), make_strategy(1))
    convs = [layer for layer in trainer.generator.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(layer.compute_dtype == "bfloat16" for layer in convs)
    assert all(v.dtype == "float32" for v in trainer.generator.weights + trainer.discriminator.weights)
    assert keras.config.dtype_policy().name == "float32"  # the policy was for these models only
    it = _distributed(trainer, fixed_batch)
    l1 = [float(trainer.train_step(next(it))["g_l1"]) for _ in range(40)]
    assert np.mean(l1[-5:]) < 0.6 * np.mean(l1[:5]), l1
    trainer.manager.save()
    from kgan.models import UNetGenerator

    restored = UNetGenerator.from_kgan_config(cfg)  # what kgan export builds: float32
    tf.train.Checkpoint(generator=restored).restore(trainer.manager.latest_checkpoint).expect_partial()
    x = fixed_batch[0][:1]
    np.testing.assert_allclose(restored(x, training=False).numpy(), trainer.generator(x, training=False).numpy(),
                               atol=0.05)  # the same weights; bf16 arithmetic keeps ~3 significant digits


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, tiny_config,
                                                                                        tiny_data):
    cfg = tiny_config.override(**{"train.learning_rate": 1e30, "train.checkpoint_every": 1})
    trainer = Trainer(cfg, str(tmp_path / "run"), make_strategy(1))
    with pytest.raises(TrainingDiverged, match=r"step \d+: non-finite loss \(.*\); stopped; last good checkpoint kept: "):
        trainer.fit(tiny_data, steps=20, progress=False)
    step = int(trainer.step.numpy())
    assert trainer.manager.latest_checkpoint.endswith(f"ckpt-{step - 1}")
    reader = tf.train.load_checkpoint(trainer.manager.latest_checkpoint)
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            assert np.all(np.isfinite(value)), name


def _cli(args, env=None):
    return subprocess.Popen([sys.executable, "-m", "cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _checkpoint_values(path):
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if "save_counter" not in name and not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(tmp_path, tiny_data):
    common = ["--preset", "tiny", "--deterministic", "--no-progress", "--set", "train.checkpoint_every=10",
              "--set", "train.image_every=1000"]
    ref = _cli(["train", tiny_data, str(tmp_path / "ref"), "--steps", "60", *common])
    _, err = ref.communicate(timeout=600)
    assert ref.returncode == 0, err

    run = str(tmp_path / "run")
    proc = _cli(["train", tiny_data, run, "--steps", "60", *common])
    deadline = time.time() + 300
    while time.time() < deadline and not os.path.exists(os.path.join(run, "checkpoints", "checkpoint")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(os.path.join(run, "checkpoints", "ckpt-60.index")), "finished before the kill"
    again = _cli(["train", tiny_data, run, "--steps", "60", *common])
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    resumed_at = int(err.split("resumed from ")[1].split(" at step ")[1].split()[0])
    assert resumed_at >= 10  # at most one checkpoint interval lost

    a = _checkpoint_values(os.path.join(tmp_path, "ref", "checkpoints", "ckpt-60"))
    b = _checkpoint_values(os.path.join(run, "checkpoints", "ckpt-60"))
    assert a.keys() == b.keys() and any("generator" in k for k in a)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.slow
def test_cli_writes_config_checkpoints_and_tensorboard_events(tmp_path, tiny_data):
    run = tmp_path / "run"
    proc = _cli(["train", tiny_data, str(run), "--preset", "tiny", "--steps", "10", "--cpu-replicas", "2",
                 "--set", "train.image_every=5", "--set", "train.summary_every=5"])
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "training on 2 replica(s)" in err and "step 10:" in out
    meta = json.loads((run / "config.json").read_text())
    assert meta["config"]["preset"] == "tiny" and meta["command"][:2] == ["kgan", "train"] and meta["kgan_version"]
    assert (run / "checkpoints" / "ckpt-10.index").exists()
    events = glob.glob(str(run / "logs" / "train" / "events.out.tfevents.*"))
    assert events
    tags = set()
    for event in tf.compat.v1.train.summary_iterator(events[0]):
        tags |= {v.tag for v in event.summary.value}
    assert {"loss/g_l1", "loss/g_gan", "loss/d_loss", "d/d_real", "d/d_fake", "steps_per_second",
            "loss/val_l1"} <= tags
    assert any(t.startswith("spectrograms/") for t in tags) and any(t.startswith("generated_accompaniment") for t in tags)
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history if "g_l1" in h] == [1, 5, 10]
    assert [h["step"] for h in history if "val_l1" in h] == [0, 5, 10, 10]
    assert history[-1].get("bn_calibrated") is True and "batch-norm statistics recalibrated on " in err


@pytest.mark.slow
def test_two_workers_on_loopback_end_with_identical_weights(tmp_path, tiny_data):
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                                     "task": {"type": "worker", "index": index}}))
        procs.append(_cli(["train", tiny_data, str(tmp_path / f"w{index}"), "--preset", "tiny", "--steps", "4",
                           "--no-progress", "--set", "train.checkpoint_every=2", "--set", "train.image_every=1000"],
                          env=env))
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    chief = _checkpoint_values(str(tmp_path / "w0" / "checkpoints" / "ckpt-4"))
    other = _checkpoint_values(str(tmp_path / "w1" / "checkpoints-worker1" / "ckpt-4"))
    names = [k for k in chief if k.startswith("generator/") or k.startswith("discriminator/")]
    assert names and chief.keys() == other.keys()
    initial = _checkpoint_values(str(tmp_path / "w0" / "checkpoints" / "ckpt-2"))
    assert any(not np.array_equal(chief[k], initial[k]) for k in names)  # they trained
    for k in names:
        np.testing.assert_array_equal(chief[k], other[k], err_msg=k)


def test_batch_norm_calibration_replaces_moving_statistics_by_batch_statistics(tmp_path, tiny_config, tiny_data):
    from kgan.dataset import windows_dataset

    trainer = Trainer(tiny_config, str(tmp_path / "run"), make_strategy(1))
    layers = [layer for layer in trainer.generator._flatten_layers()
              if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    assert layers

    def stats():
        return [np.array(v) for layer in layers for v in (layer.moving_mean, layer.moving_variance)]

    # One batch: the first BN layer's statistics become exactly that batch's moments of its input.
    assert trainer.calibrate_batch_norm(tiny_data, batches=1) == 1
    vocal, _ = next(iter(windows_dataset(tiny_data, "train", tiny_config, tiny_config.train.batch_size,
                                         training=False)))
    first = layers[0]
    probe = keras.Model(trainer.generator.inputs, first.input)
    x = probe(vocal, training=True).numpy().astype(np.float64)
    np.testing.assert_allclose(first.moving_mean.numpy(), x.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first.moving_variance.numpy(), x.var(axis=(0, 1, 2)), rtol=1e-3, atol=1e-5)

    # Several batches: the result depends only on the weights, not on the statistics it starts from.
    used = trainer.calibrate_batch_norm(tiny_data, batches=2)
    assert used == 2 and [layer.momentum for layer in layers] == momenta
    reference, val = stats(), trainer.validation_l1(tiny_data)
    for layer in layers:
        layer.moving_mean.assign(layer.moving_mean + 5.0)
        layer.moving_variance.assign(layer.moving_variance * 50.0)
    assert abs(trainer.validation_l1(tiny_data) - val) > 1e-3
    trainer.calibrate_batch_norm(tiny_data, batches=2)
    for a, b in zip(reference, stats()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert trainer.validation_l1(tiny_data) == pytest.approx(val, abs=1e-5)
    assert trainer.calibrate_batch_norm(tiny_data, batches=0) == 0


def test_a_finished_run_without_calibration_is_calibrated_once_on_rerun(tmp_path, tiny_config, tiny_data):
    run = str(tmp_path / "run")
    cfg = tiny_config.override(**{"train.steps": 4, "train.image_every": 100, "train.checkpoint_every": 100})
    lines = []
    Trainer(cfg, run, make_strategy(1)).fit(tiny_data, progress=False, log=lines.append)
    assert any("recalibrated" in line for line in lines)
    history = os.path.join(run, "metrics.jsonl")
    records = [json.loads(line) for line in open(history)]
    assert records[-1]["bn_calibrated"] is True and records[-1]["step"] == 4
    with open(history, "w") as f:  # as an older version left it: no calibration record
        f.writelines(json.dumps(r) + "\n" for r in records if not r.get("bn_calibrated"))
    lines.clear()
    metrics = Trainer(cfg, run, make_strategy(1)).fit(tiny_data, progress=False, log=lines.append)
    assert "val_l1" in metrics and any("recalibrated" in line for line in lines)
    assert json.loads(open(history).read().splitlines()[-1]).get("bn_calibrated") is True
    lines.clear()
    assert Trainer(cfg, run, make_strategy(1)).fit(tiny_data, progress=False, log=lines.append) == {}
    assert any("nothing to do" in line for line in lines)


def test_vocal_mask_weights_are_the_targets_share_of_the_power():
    from kgan.training import vocal_mask_weights, weighted_l1

    floor, ceiling = -80.0, 10.0  # the default normalisation: 45 dB per unit

    def norm(db):
        return (db - floor) / (ceiling - floor) * 2 - 1

    target = np.full((1, 4, 1, 1), norm(-30.0), np.float32)
    vocal = norm(np.array([-20.0, -30.0, -40.0, -80.0], np.float32)).reshape(1, 4, 1, 1)
    w = vocal_mask_weights(tf.constant(vocal), tf.constant(target), floor, ceiling).numpy().ravel()
    np.testing.assert_allclose(w, [1 / 11, 0.5, 10 / 11, 1 / (1 + 1e-5)], rtol=1e-5)
    # the weighted L1 counts the cells by those weights; without weights it is the plain mean
    fake = target + np.array([0.4, 0.0, 0.0, 0.0], np.float32).reshape(1, 4, 1, 1)
    np.testing.assert_allclose(weighted_l1(target, fake, w.reshape(1, 4, 1, 1)).numpy(), [0.4 * w[0] / w.sum()],
                               rtol=1e-5)
    np.testing.assert_allclose(weighted_l1(target, fake).numpy(), [0.1], rtol=1e-6)


def test_vocal_mask_weighting_trains_and_weighs_the_drowned_cells_less(tmp_path, tiny_config, fixed_batch):
    from tests.conftest import loss_trajectory

    vocal, target = fixed_batch
    vocal = np.maximum(vocal, np.minimum(target + 0.5, 1.0))  # a vocal 22 dB or more above the target everywhere
    loud = (vocal, target)
    cfg = tiny_config.override(**{"train.learning_rate": 1e-3})
    uniform = loss_trajectory(tmp_path / "uniform", cfg, loud, "g_l1", steps=1)
    masked = loss_trajectory(tmp_path / "masked", cfg.override(**{"train.l1_weighting": "vocal-mask"}), loud,
                             "g_l1", steps=40)
    assert masked[0] != pytest.approx(uniform[0], rel=1e-3)  # the weights reach the loss
    assert np.mean(masked[-5:]) < 0.6 * np.mean(masked[:5]), masked
