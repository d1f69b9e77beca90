import os
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from cli.main import main
from kgan.client import RemoteModel
from kgan.export import load
from kgan.server import serve
from tests.conftest import free_ports, generate_served_and_local


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    """``kgan serve`` in-process over an export base holding versions 1 and 2 (2 is newest)."""
    base = str(tmp_path_factory.mktemp("serve-base"))
    shutil.copytree(exported[0], os.path.join(base, "1"))
    shutil.copytree(exported[0], os.path.join(base, "2"))
    srv, port = serve(base, "127.0.0.1", 0, max_seconds=5.0)
    yield f"127.0.0.1:{port}", base
    srv.stop(grace=None)


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(server[0])
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


def _request(value, key="vocal", name="kgan", signature="", version=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if signature:
        request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if value is not None:
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def test_predict_equals_the_local_saved_model_and_serves_the_newest_version(server, stub, exported):
    x = (0.1 * np.random.default_rng(0).standard_normal((1, 4000))).astype(np.float32)
    response = stub.Predict(_request(x), timeout=60)
    assert response.model_spec.version.value == 2 and response.model_spec.signature_name == "serving_default"
    saved, _, _ = load(exported[0])
    local = saved.signatures["serving_default"](vocal=x)["accompaniment"].numpy()
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["accompaniment"]), local)
    older = stub.Predict(_request(x, version=1), timeout=60)
    assert older.model_spec.version.value == 1


def test_client_reads_metadata_and_signatures(server, tiny_config):
    model = RemoteModel(server[0])
    assert model.sample_rate == tiny_config.audio.sample_rate and model.config == tiny_config
    assert {"serving_default", "spectrogram", "metadata"} <= set(model.signatures())
    out = model.predict({"vocal_spectrogram": -np.ones((2, 128, 32, 1), np.float32)}, "spectrogram")
    assert out["accompaniment_spectrogram"].shape == (2, 128, 32, 1)
    model.close()


@pytest.mark.parametrize("make, code, text", [
    (lambda: _request(np.zeros((1, 10), np.float32), name="other"), grpc.StatusCode.NOT_FOUND, "'other'"),
    (lambda: _request(np.zeros((1, 10), np.float32), version=9), grpc.StatusCode.NOT_FOUND, "version 9"),
    (lambda: _request(np.zeros((1, 10), np.float32), signature="nope"), grpc.StatusCode.INVALID_ARGUMENT,
     "signature key 'nope' not found"),
    (lambda: _request(np.zeros((1, 10), np.float64)), grpc.StatusCode.INVALID_ARGUMENT,
     "expected dtype float32, got float64"),
    (lambda: _request(np.zeros(10, np.float32)), grpc.StatusCode.INVALID_ARGUMENT, "expected shape [-1, -1]"),
    (lambda: _request(np.zeros((1, 10), np.float32), key="voice"), grpc.StatusCode.INVALID_ARGUMENT,
     "expects input(s) ['vocal'], got ['voice']"),
    (lambda: _request(None), grpc.StatusCode.INVALID_ARGUMENT, "got []"),
    (lambda: _request(np.zeros((1, 0), np.float32)), grpc.StatusCode.INVALID_ARGUMENT, "is empty"),
    (lambda: _request(np.array([[0.0, np.nan]], np.float32)), grpc.StatusCode.INVALID_ARGUMENT, "NaN or Inf"),
    (lambda: _request(np.zeros((1, 8000 * 6), np.float32)), grpc.StatusCode.INVALID_ARGUMENT, "too long: 6 s > 5 s"),
    (lambda: _request(np.zeros((1, 128, 31, 1), np.float32), key="vocal_spectrogram", signature="spectrogram"),
     grpc.StatusCode.INVALID_ARGUMENT, "expected shape [-1, 128, 32, 1]"),
])
def test_bad_requests_get_clear_errors_and_the_server_keeps_serving(stub, make, code, text):
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(make(), timeout=60)
    assert info.value.code() == code and text in info.value.details(), info.value.details()
    ok = stub.Predict(_request(np.zeros((1, 100), np.float32)), timeout=60)
    assert tf.make_ndarray(ok.outputs["accompaniment"]).shape == (1, 100)


def test_concurrent_clients(server, exported):
    saved, _, _ = load(exported[0])
    inputs = [(0.05 * np.random.default_rng(i).standard_normal((1, 3000))).astype(np.float32) for i in range(4)]
    expected = [saved.signatures["serving_default"](vocal=x)["accompaniment"].numpy() for x in inputs]
    results, errors = {}, []

    def worker(i):
        try:
            model = RemoteModel(server[0])
            for _ in range(3):
                results.setdefault(i, []).append(model(inputs[i]))
            model.close()
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    for i in range(4):
        assert len(results[i]) == 3
        for r in results[i]:
            np.testing.assert_array_equal(r, expected[i])


def test_client_retries_unavailable_then_fails_clearly():
    (port,) = free_ports()
    start = time.time()
    with pytest.raises(grpc.RpcError) as info:
        RemoteModel(f"127.0.0.1:{port}", retries=2, timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.time() - start >= 1.5  # it backed off 0.5 s + 1 s before giving up


@pytest.mark.slow
def test_generate_over_grpc_matches_local_generate_byte_for_byte(exported, tmp_path):
    # with another memory-mapping threshold than the default (how buffers are allocated changes no number)
    generate_served_and_local(exported[1], tmp_path, server_args=["--mmap-threshold", "64"])


def test_serve_refuses_a_negative_mmap_threshold():
    result = CliRunner().invoke(main, ["serve", "--mmap-threshold", "-1"])
    assert result.exit_code == 2 and "--mmap-threshold" in result.output


@pytest.mark.parametrize("rate, output_rate", [(1000, 1000), (1000, 2000)])
def test_the_reply_cap_holds_the_longest_accepted_request_at_the_output_rate(rate, output_rate):
    """A request within --max-seconds must not be refused on the way back (a high band doubles the reply)."""
    from tensorflow_serving.apis import predict_pb2 as pb

    from kgan.server import MAX_MESSAGE_BYTES, reply_bytes

    max_seconds = 12_000.0  # at these rates the reply passes gRPC's default cap of 64 MiB
    reply = pb.PredictResponse()
    reply.outputs["accompaniment"].CopyFrom(tf.make_tensor_proto(np.zeros((1, int(max_seconds * output_rate)),
                                                                          np.float32)))
    assert reply.ByteSize() > MAX_MESSAGE_BYTES or output_rate == rate
    assert reply.ByteSize() <= reply_bytes(max_seconds, rate)
    assert reply_bytes(1.0, rate) == MAX_MESSAGE_BYTES


def test_the_server_answers_with_the_twin_it_was_told_to_and_names_the_asked_signature(twin_export_base):
    from kgan.export import load

    x = (0.1 * np.random.default_rng(7).standard_normal((1, 4000))).astype(np.float32)
    saved, _, _ = load(os.path.join(twin_export_base, "1"))
    local = {sig: saved.signatures[sig](vocal=x)["accompaniment"].numpy()
             for sig in ("serving_default", "serving_bfloat16")}
    for compute, runs in (("float32", "serving_default"), ("bfloat16", "serving_bfloat16")):
        srv, port = serve(twin_export_base, "127.0.0.1", 0, max_seconds=5.0, compute=compute)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                response = stub.Predict(_request(x), timeout=60)
                assert response.model_spec.signature_name == "serving_default"
                np.testing.assert_array_equal(tf.make_ndarray(response.outputs["accompaniment"]), local[runs])
                named = stub.Predict(_request(x, signature="serving_bfloat16"), timeout=60)  # asked by name
                np.testing.assert_array_equal(tf.make_ndarray(named.outputs["accompaniment"]),
                                              local["serving_bfloat16"])
            client = RemoteModel(f"127.0.0.1:{port}")  # kgan generate --server --compute bfloat16 asks so
            client.signature = "serving_bfloat16"
            np.testing.assert_array_equal(client(x), local["serving_bfloat16"])
            client.close()
        finally:
            srv.stop(grace=None)
    with pytest.raises(ValueError, match="compute must be"):
        serve(twin_export_base, "127.0.0.1", 0, compute="fast")


@pytest.fixture(scope="module")
def twin_export_base(run_dir, tmp_path_factory):
    from kgan.export import export

    base = str(tmp_path_factory.mktemp("twin-base"))
    export(run_dir[0], base, version=1, griffin_lim_iters=4, compute="both")
    return base


def test_generate_asks_a_server_for_the_twin_by_name_with_compute_bfloat16(twin_export_base, tmp_path):
    # the server, told float32, answers serving_default in float32: only a request naming the twin gets
    # bfloat16, which must then equal local generation in bfloat16 byte for byte
    generate_served_and_local(twin_export_base, tmp_path, server_args=["--compute", "float32"],
                              generate_args=["--compute", "bfloat16"])

