import os
import re
import subprocess
import sys

import tensorflow as tf
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tests.conftest import ROOT

SERVING = os.path.join(ROOT, "serving")


def test_models_config_parses_with_the_official_proto():
    config = text_format.Parse(open(os.path.join(SERVING, "models.config")).read(),
                               model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == ("kgan", "/models/kgan", "tensorflow")


def test_batching_parameters_use_only_known_fields():
    known = {"max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches",
             "pad_variable_length_inputs", "allowed_batch_sizes", "thread_pool_name"}
    lines = [line.split("#")[0].strip() for line in open(os.path.join(SERVING, "batching_parameters.txt"))]
    fields = {re.split(r"[\s:{]", line)[0] for line in lines if line}
    assert fields and fields <= known


def test_compose_runs_the_matching_tf_serving_on_loopback():
    compose = yaml.safe_load(open(os.path.join(SERVING, "docker-compose.yml")))
    service = compose["services"]["tfserving"]
    assert service["image"] == f"tensorflow/serving:{tf.__version__}"
    assert service["ports"] == ["127.0.0.1:8500:8500", "127.0.0.1:8501:8501"]
    assert "--model_config_file=/config/models.config" in service["command"]
    mounts = {v.rsplit(":", 2)[1] for v in service["volumes"]}
    assert {"/models/kgan", "/config/models.config", "/config/batching_parameters.txt"} <= mounts


def test_example_client_against_kgan_serve(exported, tmp_path):
    from tests.conftest import REAL_MP3, free_ports

    (port,) = free_ports()
    server = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", exported[1], "--port", str(port)],
                              stderr=subprocess.PIPE, text=True)
    try:
        assert "serving" in server.stderr.readline()
        out = tmp_path / "acc.wav"
        run = subprocess.run([sys.executable, os.path.join(SERVING, "client.py"), REAL_MP3, str(out),
                              "--server", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        assert "at 8000 Hz" in run.stdout and out.stat().st_size > 100_000
    finally:
        server.terminate()
        server.wait(30)
