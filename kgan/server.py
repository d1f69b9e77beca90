"""``kgan serve``: TF Serving's gRPC ``PredictionService`` for machines without TF Serving.

Speaks the official protos (``tensorflow_serving.apis``) with TF Serving's
semantics: an export base holds numeric version folders and the newest is
served unless a request names a version; requests name the model
(``--model-name``, default ``kgan``) and a signature (default
``serving_default``). ``Predict`` and ``GetModelMetadata`` are implemented.

A bad request never takes the server down: an unknown model or version gets
NOT_FOUND; an unknown signature, a missing or extra input, the wrong dtype or
rank, an empty, non-finite or too-long input gets INVALID_ARGUMENT with a
one-line message; anything unexpected gets INTERNAL. The server binds to
127.0.0.1 unless told otherwise and caps request size.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import threading

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2, predict_pb2, prediction_service_pb2_grpc

from kgan.export import EXPORT_CONFIG, MODEL_NAME

__all__ = ["PredictionService", "serve", "MAX_MESSAGE_BYTES"]

MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # ~50 min of 22.05 kHz float32 audio in one message
DEFAULT_MAX_SECONDS = 20 * 60  # per request, summed over the batch


class RequestError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


class _Version:
    """One loaded export version: its signatures, their input specs and the config."""

    def __init__(self, path: str, version: int):
        from tensorflow.core.protobuf import saved_model_pb2

        self.path, self.version = path, version
        self.model = tf.saved_model.load(path)
        with open(os.path.join(path, "assets", EXPORT_CONFIG), encoding="utf-8") as f:
            meta = json.load(f)
        self.sample_rate = int(meta["config"]["audio"]["sample_rate"])
        proto = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            proto.ParseFromString(f.read())
        self.signature_defs = dict(proto.meta_graphs[0].signature_def)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, export_base: str, model_name: str = MODEL_NAME, max_seconds: float = DEFAULT_MAX_SECONDS):
        self.export_base = export_base
        self.model_name = model_name
        self.max_seconds = max_seconds
        self._versions: dict[int, _Version] = {}
        self._lock = threading.Lock()
        self.newest()  # fail at start-up, not at the first request, when there is nothing to serve

    # ------------------------------------------------------------- versions
    def available(self) -> list[int]:
        found = []
        for name in os.listdir(self.export_base) if os.path.isdir(self.export_base) else []:
            if name.isdigit() and os.path.exists(os.path.join(self.export_base, name, "saved_model.pb")):
                found.append(int(name))
        return sorted(found)

    def _load(self, version: int) -> _Version:
        with self._lock:
            if version not in self._versions:
                self._versions[version] = _Version(os.path.join(self.export_base, str(version)), version)
            return self._versions[version]

    def newest(self) -> _Version:
        versions = self.available()
        if not versions:
            raise FileNotFoundError(f"{self.export_base}: no numeric version folder with a SavedModel")
        return self._load(versions[-1])

    def _resolve(self, spec: model_pb2.ModelSpec) -> _Version:
        if spec.name != self.model_name:
            raise RequestError(grpc.StatusCode.NOT_FOUND,
                               f"Servable not found for request: model {spec.name!r} (serving {self.model_name!r})")
        if spec.HasField("version"):
            if spec.version.value not in self.available():
                raise RequestError(grpc.StatusCode.NOT_FOUND,
                                   f"Servable not found: {spec.name!r} version {spec.version.value} "
                                   f"(available: {self.available()})")
            return self._load(spec.version.value)
        if spec.version_label:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "version labels are not supported; give a version")
        return self.newest()

    # ---------------------------------------------------------------- checks
    def _inputs(self, version: _Version, signature: str, request) -> dict[str, np.ndarray]:
        sig = version.signature_defs[signature]
        expected, given = set(sig.inputs), set(request.inputs)
        if given != expected:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"signature {signature!r} expects input(s) {sorted(expected)}, got {sorted(given)}")
        arrays = {}
        for key, info in sig.inputs.items():
            proto = request.inputs[key]
            if proto.dtype != info.dtype:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {key!r}: expected dtype {tf.dtypes.as_dtype(info.dtype).name}, "
                                   f"got {tf.dtypes.as_dtype(proto.dtype).name}")
            shape = [d.size for d in proto.tensor_shape.dim]
            want = [d.size for d in info.tensor_shape.dim]
            if len(shape) != len(want) or any(w not in (-1, s) for w, s in zip(want, shape)):
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {key!r}: expected shape {want} (-1: any), got {shape}")
            if any(s == 0 for s in shape):
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"input {key!r} is empty: shape {shape}")
            if key == "vocal" and int(np.prod(shape)) > self.max_seconds * version.sample_rate:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input 'vocal' too long: {np.prod(shape) / version.sample_rate:.0f} s "
                                   f"> {self.max_seconds:.0f} s per request; send it in chunks")
            try:
                array = tf.make_ndarray(proto)
            except Exception as e:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"input {key!r}: unreadable tensor ({e})")
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"input {key!r} contains NaN or Inf")
            arrays[key] = array
        return arrays

    # ------------------------------------------------------------------ RPCs
    def Predict(self, request, context):
        try:
            version = self._resolve(request.model_spec)
            signature = request.model_spec.signature_name or "serving_default"
            if signature not in version.signature_defs:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"Serving signature key {signature!r} not found; available: "
                                   f"{sorted(version.signature_defs)}")
            inputs = self._inputs(version, signature, request)
            outputs = version.model.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
            wanted = set(request.output_filter) or set(outputs)
            unknown = wanted - set(outputs)
            if unknown:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"unknown output(s) in output_filter: {sorted(unknown)}")
            response = predict_pb2.PredictResponse()
            response.model_spec.name = self.model_name
            response.model_spec.version.value = version.version
            response.model_spec.signature_name = signature
            for key in sorted(wanted):
                response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key].numpy()))
            return response
        except RequestError as e:
            context.abort(e.code, str(e))
        except Exception as e:  # never let a request take the server down
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {first}")

    def GetModelMetadata(self, request, context):
        try:
            version = self._resolve(request.model_spec)
            fields = set(request.metadata_field)
            if fields - {"signature_def"}:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"metadata_field must be 'signature_def', got {sorted(fields)}")
            sig_map = get_model_metadata_pb2.SignatureDefMap()
            for name, sig in version.signature_defs.items():
                if not name.startswith("__"):
                    sig_map.signature_def[name].CopyFrom(sig)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = self.model_name
            response.model_spec.version.value = version.version
            response.metadata["signature_def"].Pack(sig_map)
            return response
        except RequestError as e:
            context.abort(e.code, str(e))
        except Exception as e:
            context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")


def serve(export_base: str, host: str = "127.0.0.1", port: int = 8500, model_name: str = MODEL_NAME,
          workers: int = 4, max_seconds: float = DEFAULT_MAX_SECONDS) -> tuple[grpc.Server, int]:
    """Start the server (non-blocking); returns it and the bound port (``port=0`` picks a free one)."""
    service = PredictionService(export_base, model_name, max_seconds)
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=workers),
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                 ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    server.start()
    return server, bound
