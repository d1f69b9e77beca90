import os
import shutil

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Two logical CPU devices for the whole session, so multi-replica code paths run without GPUs.
# This must happen before TensorFlow runs any op.
from kgan.training import split_cpu  # noqa: E402

split_cpu(2)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL = os.path.join(os.path.dirname(ROOT), "shared", "data", "real")
MUSDB_SONG = os.path.join(REAL, "musdb18-sample", "Music Delta - 80s Rock")
REAL_MP3 = os.path.join(REAL, "slow-motion-dream-excerpt.mp3")


@pytest.fixture(scope="session")
def tiny_config():
    from kgan.config import get_preset

    return get_preset("tiny")


@pytest.fixture(scope="session")
def real_song():
    if not os.path.isdir(MUSDB_SONG):
        pytest.fail(f"real test data missing: {MUSDB_SONG} (../shared must sit beside the repository)")
    return MUSDB_SONG


@pytest.fixture(scope="session")
def chorale_dir(tmp_path_factory, tiny_config):
    """Three rendered chorales (train, val and test splits) at the tiny preset's rate."""
    from kgan.corpus import build_chorales

    out = str(tmp_path_factory.mktemp("chorales"))
    build_chorales(out, tiny_config.audio.sample_rate, n=3, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, chorale_dir, tiny_config):
    """``chorale_dir`` preprocessed at the tiny preset."""
    from kgan.preprocess import preprocess

    out = str(tmp_path_factory.mktemp("tiny-data"))
    preprocess(chorale_dir, out, tiny_config, progress=False)
    return out


@pytest.fixture(scope="session")
def fixed_batch(tiny_data, tiny_config):
    """One training batch of 4 windows from ``tiny_data``, as numpy (vocal, target)."""
    import keras

    from kgan.dataset import windows_dataset

    keras.utils.set_random_seed(0)  # tf.data's shuffle seed combines with the global one: fix both
    vocal, target = next(iter(windows_dataset(tiny_data, "train", tiny_config, 4, seed=3)))
    return vocal.numpy(), target.numpy()


def distributed(trainer, batch):
    """An endless iterator of ``batch`` distributed by the trainer's strategy (for ``Trainer.train_step``)."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensors(batch).repeat()
    return iter(trainer.strategy.experimental_distribute_dataset(ds))


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, chorale_dir, tiny_config):
    """A tiny model trained for 3 steps: (run directory, its Trainer)."""
    from kgan.preprocess import preprocess
    from kgan.training import Trainer, make_strategy, write_run_config

    import keras

    root = tmp_path_factory.mktemp("export-run")
    preprocess(chorale_dir, str(root / "data"), tiny_config, progress=False)
    keras.utils.set_random_seed(0)  # the same weights whichever tests ran before
    trainer = Trainer(tiny_config, str(root / "run"), make_strategy(1))
    write_run_config(str(root / "run"), tiny_config, ["test"])
    trainer.fit(str(root / "data"), steps=3, progress=False)
    return str(root / "run"), trainer


@pytest.fixture(scope="session")
def exported(run_dir, tmp_path_factory):
    """(export version directory, export base) of ``run_dir``."""
    from kgan.export import export

    base = str(tmp_path_factory.mktemp("exports"))
    return export(run_dir[0], base, griffin_lim_iters=8), base


def free_ports(n=1):
    """Free loopback ports (bound together so they differ, then closed again for the caller to use)."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def tone(seconds, rate, freq=220.0, amp=0.3, vibrato=0.0):
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * freq * t + vibrato * np.sin(2 * np.pi * 5 * t)
    return (amp * np.sin(phase)).astype(np.float32)


def make_song(folder, rate, seconds=6.0, silent_vocal_after=None, stems=False, ext=".wav"):
    """A synthetic song folder: a vocal tone (optionally silent after some seconds) and a chord."""
    import soundfile as sf

    os.makedirs(folder, exist_ok=True)
    vocal = tone(seconds, rate, 440.0, vibrato=3.0)
    if silent_vocal_after is not None:
        vocal[int(silent_vocal_after * rate):] = 0.0
    chord = [tone(seconds, rate, f, 0.1) for f in (110.0, 138.6, 164.8)]
    sf.write(os.path.join(folder, "vocals" + ext), vocal, rate)
    if stems:
        for name, x in zip(("drums", "bass", "other"), chord):
            sf.write(os.path.join(folder, name + ext), x, rate)
    else:
        sf.write(os.path.join(folder, "accompaniment" + ext), sum(chord), rate)
    return folder


def copy_song(src, dst, keep=None):
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if keep is None or os.path.splitext(name)[0] in keep:
            shutil.copy(os.path.join(src, name), os.path.join(dst, name))
    return dst



def start_server(export_base, *args, timeout=120):
    """``kgan serve EXPORT_BASE`` in a subprocess on a free port: (process, "127.0.0.1:port")."""
    from kgan.server import spawn

    return spawn(export_base, *args, timeout=timeout)


def assert_rejected(port, inputs, text):
    """A Predict request with ``inputs`` (name -> array) to the server on ``port`` fails with INVALID_ARGUMENT
    whose details hold ``text``."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "kgan"
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and text in info.value.details()


def generate_served_and_local(export_base, tmp_path, clip=None, server_args=(), generate_args=()):
    """``kgan generate CLIP`` through ``kgan serve EXPORT_BASE [SERVER_ARGS]`` (a subprocess) and locally on the
    same export, both with ``GENERATE_ARGS``, into ``tmp_path/remote`` and ``tmp_path/local``; asserts both
    succeed and their WAVs are byte-identical."""
    import subprocess
    import sys

    clip = clip or REAL_MP3
    proc, target = start_server(export_base, *server_args)
    common = [clip, "--chunk-seconds", "4", "--no-progress", *generate_args]
    try:
        remote = subprocess.run([sys.executable, "-m", "cli.main", "generate", *common, "-o", str(tmp_path / "remote"),
                                 "--server", target], capture_output=True, text=True, timeout=300)
        assert remote.returncode == 0, remote.stderr
    finally:
        proc.terminate()
        proc.wait(30)
    local = subprocess.run([sys.executable, "-m", "cli.main", "generate", *common, "-o", str(tmp_path / "local"),
                            "--model", export_base], capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr
    name = os.path.splitext(os.path.basename(clip))[0]
    for suffix in ("_accompaniment.wav", "_remix.wav"):
        assert (tmp_path / "remote" / (name + suffix)).read_bytes() == (tmp_path / "local" / (name + suffix)).read_bytes()


def loss_trajectory(tmp_path, config, batch, key: str, steps: int = 40) -> list[float]:
    """``key`` of ``Trainer.train_step`` over ``steps`` steps on one fixed batch, timbre augmentation off."""
    import dataclasses

    import keras

    from kgan.config import AugmentConfig
    from kgan.training import Trainer, make_strategy

    keras.utils.set_random_seed(1)
    trainer = Trainer(dataclasses.replace(config, augment=AugmentConfig.off()), str(tmp_path), make_strategy(1))
    it = distributed(trainer, batch)
    return [float(trainer.train_step(next(it))[key]) for _ in range(steps)]
