"""``kgan serve`` under malformed, oversized, concurrent and abandoned requests (a real server process).

Every bad request gets its documented status code, the request after it is
answered, several servers cannot share a port, work of a client that went away
is cancelled, and the server's peak memory stays bounded.
"""

import itertools
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from tests.conftest import start_server

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
MAX_SECONDS = 5  # tiny preset: 8 kHz, so 40 000 samples


@pytest.fixture(scope="module")
def served(exported):
    proc, target = start_server(exported[1], "--max-seconds", str(MAX_SECONDS))
    channel = grpc.insecure_channel(target)
    yield proc, target, prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()
    proc.terminate()
    proc.wait(30)


def _tensor(dtype, shape, content=b"", **values):
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in shape]), tensor_content=content)
    for field, value in values.items():
        getattr(proto, field).extend(value)
    return proto


def _request(inputs, name="kgan", signature="", version=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if signature:
        request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(value if isinstance(value, tensor_pb2.TensorProto) else tf.make_tensor_proto(value))
    return request


def _malformed():
    """(label, request, expected status) for >= 300 bad requests."""
    rng = np.random.default_rng(0)
    cases = []
    good = np.zeros((1, 100), np.float32)
    # wrong dtypes, as arrays and as raw enums (0 and 999 are not dtypes at all)
    for dtype in (np.float64, np.float16, np.int32, np.int64, np.int8, np.uint8, np.bool_, np.complex64):
        for shape in ((1, 50), (2, 10), (1, 1)):
            cases.append((f"dtype {dtype.__name__} {shape}", _request({"vocal": np.zeros(shape, dtype)}), INVALID))
    cases.append(("string tensor", _request({"vocal": np.array([[b"abc", b"de"]])}), INVALID))
    for enum in (0, 999, types_pb2.DT_STRING, types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT):
        cases.append((f"dtype enum {enum}", _request({"vocal": _tensor(enum, [1, 4], b"\0" * 16)}), INVALID))
    # wrong ranks and unknown rank
    for shape in ((), (5,), (1, 5, 1), (1, 2, 3, 4), (1, 1, 1, 1, 1)):
        cases.append((f"rank {len(shape)}", _request({"vocal": np.zeros(shape, np.float32)}), INVALID))
    unknown = _tensor(types_pb2.DT_FLOAT, [], float_val=[0.0])
    unknown.tensor_shape.unknown_rank = True
    cases.append(("unknown rank", _request({"vocal": unknown}), INVALID))
    # shapes their content does not fill, negative dimensions with content, empty
    for rows, cols in itertools.product((1, 3, 1000), (7, 1000, 10**6)):
        raw = _tensor(types_pb2.DT_FLOAT, [rows, cols], np.zeros(4, np.float32).tobytes())
        cases.append((f"claimed [{rows}, {cols}] with 16 bytes", _request({"vocal": raw}), INVALID))
        typed = _tensor(types_pb2.DT_FLOAT, [rows, cols], float_val=[0.0, 1.0, 2.0])
        cases.append((f"claimed [{rows}, {cols}] with 3 values", _request({"vocal": typed}), INVALID))
    for shape in ((-1, 5), (1, -5), (-3, -3), (-(2**40), 2)):
        raw = _tensor(types_pb2.DT_FLOAT, list(shape), np.zeros(5, np.float32).tobytes())
        cases.append((f"negative {shape}", _request({"vocal": raw}), INVALID))
    for shape in ((0, 10), (1, 0), (0, 0)):
        cases.append((f"empty {shape}", _request({"vocal": np.zeros(shape, np.float32)}), INVALID))
    # NaN / Inf anywhere
    for i, bad in enumerate([np.nan, np.inf, -np.inf] * 10):
        x = rng.standard_normal((1 + i % 3, 64)).astype(np.float32)
        x[rng.integers(x.shape[0]), rng.integers(64)] = bad
        cases.append((f"non-finite {i}", _request({"vocal": x}), INVALID))
    # more work than the cap: long rows, many short rows (tiny in bytes), huge claims broadcasting one value
    for seconds in (5.5, 6, 30, 600):
        claim = _tensor(types_pb2.DT_FLOAT, [1, int(seconds * 8000)], float_val=[0.0])
        cases.append((f"{seconds} s in one row", _request({"vocal": claim}), INVALID))
    for rows in (64, 1000, 100000, 10**9):
        claim = _tensor(types_pb2.DT_FLOAT, [rows, 1], float_val=[0.0])
        cases.append((f"[{rows}, 1]", _request({"vocal": claim}), INVALID))
    cases.append(("[100000, 1] as bytes", _request({"vocal": np.zeros((100000, 1), np.float32)}), INVALID))
    cases.append(("[2**31, 2**31] claimed", _request({"vocal": _tensor(types_pb2.DT_FLOAT, [2**31, 2**31],
                                                                           float_val=[0.0])}), INVALID))
    for batch in (33, 100, 8192):
        claim = _tensor(types_pb2.DT_FLOAT, [batch, 128, 32, 1], float_val=[-1.0])
        cases.append((f"spectrogram batch {batch}", _request({"vocal_spectrogram": claim}, signature="spectrogram"),
                      INVALID))
    for n in (1025, 10**6, 10**9):
        claim = _tensor(types_pb2.DT_FLOAT, [n], float_val=[0.0])
        cases.append((f"probe {n}", _request({"probe": claim}, signature="metadata"), INVALID))
    # spectrogram signature: wrong geometry, dtype, NaN, wrong key
    for shape in ((1, 128, 31, 1), (1, 127, 32, 1), (1, 128, 32, 2), (1, 128, 32), (128, 32, 1)):
        cases.append((f"spectrogram {shape}", _request({"vocal_spectrogram": -np.ones(shape, np.float32)},
                                                        signature="spectrogram"), INVALID))
    spec_nan = -np.ones((1, 128, 32, 1), np.float32)
    spec_nan[0, 5, 5, 0] = np.nan
    cases.append(("spectrogram NaN", _request({"vocal_spectrogram": spec_nan}, signature="spectrogram"), INVALID))
    cases.append(("spectrogram with the vocal key", _request({"vocal": -np.ones((1, 128, 32, 1), np.float32)},
                                                             signature="spectrogram"), INVALID))
    # missing, extra, misnamed inputs; unknown model, version, signature, version label
    cases.append(("no input", _request({}), INVALID))
    cases.append(("extra input", _request({"vocal": good, "other": good}), INVALID))
    for key in ("voice", "VOCAL", "", "probe", "vocal_spectrogram"):
        cases.append((f"key {key!r}", _request({key: good}), INVALID))
    for name in ("other", "", "KGAN", "kgan ", "x" * 1000):
        cases.append((f"model {name[:10]!r}", _request({"vocal": good}, name=name), NOT_FOUND))
    for version in (0, 3, 99, 2**62):
        cases.append((f"version {version}", _request({"vocal": good}, version=version), NOT_FOUND))
    for signature in ("nope", "serving", "Spectrogram", "__saved_model_init_op", "x" * 500):
        cases.append((f"signature {signature[:12]!r}", _request({"vocal": good}, signature=signature), INVALID))
    labelled = _request({"vocal": good})
    labelled.model_spec.version_label = "stable"
    cases.append(("version label", labelled, INVALID))
    bad_filter = _request({"vocal": good})
    bad_filter.output_filter.append("nope")
    cases.append(("unknown output filter", bad_filter, INVALID))
    # random garbage: random dtypes, ranks, claimed shapes and contents
    dtypes = [types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_INT32, types_pb2.DT_STRING, types_pb2.DT_HALF]
    while len(cases) < 360:
        dtype = int(rng.choice(dtypes))
        rank = int(rng.integers(0, 5))
        shape = [int(rng.choice([-7, 0, 1, 3, 50, 10**7])) for _ in range(rank)]
        content = rng.bytes(int(rng.integers(0, 64)))
        proto = _tensor(dtype, shape, content)
        ok = dtype == types_pb2.DT_FLOAT and rank == 2 and all(0 < s <= 50 for s in shape) and (
            len(content) == 4 * int(np.prod(shape)))
        if ok:
            continue  # a well-formed request is not malformed
        cases.append((f"random {len(cases)}", _request({"vocal": proto}), INVALID))
    return cases


MALFORMED = _malformed()


def _good(stub):
    x = (0.1 * np.sin(np.arange(800) / 5)).astype(np.float32)[None]
    out = stub.Predict(_request({"vocal": x}), timeout=60)
    return tf.make_ndarray(out.outputs["accompaniment"])


def _peak_rss_gib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    raise AssertionError("no VmHWM")


def test_at_least_300_malformed_requests_each_get_their_status_and_the_next_good_one_is_answered(served):
    proc, _, stub = served
    assert len(MALFORMED) >= 300
    reference = _good(stub)
    wrong = []
    for label, request, code in MALFORMED:
        try:
            stub.Predict(request, timeout=60)
            wrong.append(f"{label}: accepted")
        except grpc.RpcError as e:
            if e.code() != code or "Traceback" in (e.details() or ""):
                wrong.append(f"{label}: {e.code()} {e.details()}")
        np.testing.assert_array_equal(_good(stub), reference)
    assert not wrong, "\n".join(wrong)
    assert proc.poll() is None
    assert _peak_rss_gib(proc.pid) < 2.0


def test_metadata_requests_with_bad_fields_are_refused_and_good_ones_answered(served):
    _, _, stub = served
    bad = get_model_metadata_pb2.GetModelMetadataRequest()
    bad.model_spec.name = "kgan"
    bad.metadata_field.append("everything")
    with pytest.raises(grpc.RpcError) as info:
        stub.GetModelMetadata(bad, timeout=30)
    assert info.value.code() == INVALID
    unknown = get_model_metadata_pb2.GetModelMetadataRequest()
    unknown.model_spec.name = "other"
    with pytest.raises(grpc.RpcError) as info:
        stub.GetModelMetadata(unknown, timeout=30)
    assert info.value.code() == NOT_FOUND
    good = get_model_metadata_pb2.GetModelMetadataRequest()
    good.model_spec.name = "kgan"
    good.metadata_field.append("signature_def")
    assert stub.GetModelMetadata(good, timeout=30).model_spec.name == "kgan"


def test_eight_concurrent_clients_mixing_bad_and_good_requests(served):
    proc, target, stub = served
    reference = _good(stub)
    errors = []

    def client(i):
        channel = grpc.insecure_channel(target)
        own = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            for label, request, code in MALFORMED[i::8][:20]:
                try:
                    own.Predict(request, timeout=120)
                    errors.append(f"client {i}, {label}: accepted")
                except grpc.RpcError as e:
                    if e.code() != code:
                        errors.append(f"client {i}, {label}: {e.code()}")
                if not np.array_equal(_good(own), reference):
                    errors.append(f"client {i}: a good answer changed")
        except Exception as e:  # surfaced below
            errors.append(f"client {i}: {type(e).__name__}: {e}")
        finally:
            channel.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors, "\n".join(errors)
    assert proc.poll() is None and _peak_rss_gib(proc.pid) < 2.0


def test_a_second_server_on_a_taken_port_fails_with_one_line(served, exported):
    _, target, _ = served
    port = target.rsplit(":", 1)[1]
    other = subprocess.run([sys.executable, "-m", "cli.main", "serve", exported[1], "--port", port],
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 1, other.stderr
    assert f"127.0.0.1:{port}" in other.stderr and "Traceback" not in other.stderr


def test_an_address_not_on_this_machine_fails_with_one_line(exported):
    other = subprocess.run([sys.executable, "-m", "cli.main", "serve", exported[1], "--host", "999.1.1.1"],
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 1, other.stderr
    assert "999.1.1.1" in other.stderr and "Traceback" not in other.stderr


@pytest.mark.slow
def test_work_of_a_client_that_went_away_is_cancelled(exported):
    """A long request abandoned after its deadline does not hold up the next one."""
    proc, target = start_server(exported[1], "--max-seconds", "3600")
    try:
        channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 * 2**20),
                                                         ("grpc.max_receive_message_length", 64 * 2**20)])
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        _good(stub)  # warm up
        long = _request({"vocal": (0.1 * np.sin(np.arange(8000 * 1200) / 7)).astype(np.float32)[None]})
        start = time.perf_counter()
        stub.Predict(long, timeout=600)
        full = time.perf_counter() - start
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(long, timeout=full / 10)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        start = time.perf_counter()
        _good(stub)
        waited = time.perf_counter() - start + full / 10
        assert waited < full / 2, f"the next request waited {waited:.1f} s; the whole long one takes {full:.1f} s"
        channel.close()
    finally:
        proc.terminate()
        proc.wait(30)
