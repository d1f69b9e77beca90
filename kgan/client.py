"""A gRPC client for the exported model, on TF Serving's official protos.

Works against stock TF Serving and ``kgan serve`` alike: ``PredictionServiceStub``
with ``PredictRequest``. Message limits are raised well past gRPC's 4 MiB
default (which caps a request at ~47 s of 22.05 kHz float32 audio), every call
has a deadline, UNAVAILABLE is retried with back-off, and ``kgan.inference.generate_song``
sends long songs in chunks.
"""

from __future__ import annotations

import time

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from kgan.config import Config, resolve_style
from kgan.export import MODEL_NAME

__all__ = ["RemoteModel"]

MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class RemoteModel:
    """Callable like ``LocalModel``: float32 ``[1, n]`` vocal -> ``[1, n * output_rate / sample_rate]``
    accompaniment."""

    def __init__(self, target: str, model_name: str = MODEL_NAME, timeout: float = 300.0, retries: int = 4,
                 version: int | None = None, style: str | int | None = None):
        self.target, self.model_name, self.timeout, self.retries, self.version = (
            target, model_name, timeout, retries, version)
        self.channel = grpc.insecure_channel(target, options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ])
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        meta = self.predict({"probe": np.zeros(1, np.float32)}, "metadata")
        self.sample_rate = int(meta["sample_rate"][0])  # of the vocal it takes
        # of the accompaniment it returns (exports before the field return the first)
        self.output_rate = int(meta["output_sample_rate"][0]) if "output_sample_rate" in meta else self.sample_rate
        self.config = Config.from_json(meta["config"][0].decode())
        names = meta["styles"][0].decode() if "styles" in meta else ""  # exports before styles have none
        self.style_names = tuple(n for n in names.split(",") if n)
        self.style = resolve_style(self.style_names, style)
        self.meter = None  # the song's beat grid (set_meter); None: the signature's default, unknown
        self.chart = None  # the song's chords (set_chart, kgan.chart); None: the signature's default, the guesses
        # the signature songs go to: serving_default, or a twin of it such as serving_bfloat16 (kgan.export)
        self.signature = "serving_default"

    def set_style(self, style: str | int | None) -> None:
        """Choose the style by name or id (None: the server's default, "any"); ValueError lists the valid ones."""
        self.style = resolve_style(self.style_names, style)

    def _call(self, method, request):
        delay = 0.5
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    raise
                time.sleep(delay)
                delay *= 2

    def _spec(self, spec, signature: str | None = None):
        spec.name = self.model_name
        if signature:
            spec.signature_name = signature
        if self.version is not None:
            spec.version.value = self.version

    def predict(self, inputs: dict[str, np.ndarray], signature: str = "serving_default") -> dict[str, np.ndarray]:
        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, signature)
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        response = self._call(self.stub.Predict, request)
        return {key: tf.make_ndarray(value) for key, value in response.outputs.items()}

    def signatures(self) -> dict:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec)
        response = self._call(self.stub.GetModelMetadata, request)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(sig_map)
        return dict(sig_map.signature_def)

    def set_meter(self, meter: tuple[float, float, float] | None) -> None:
        """Tell the served chord network the song's beat grid (``kgan.harmony.meter_seconds``); None: unknown."""
        from kgan.generation import check_meter

        accepted = meter is not None and "meter" in self.signatures()["serving_default"].inputs
        self.meter = check_meter(meter, accepted, f"{self.target} ({self.model_name})")

    def set_chart(self, chart) -> None:
        """Impose a ``kgan.chart.ChordChart`` on the served chord plan, or None: the chord network's guesses."""
        from kgan.generation import check_chart

        accepted = chart is not None and "chords" in self.signatures()["serving_default"].inputs
        self.chart = check_chart(chart, accepted, f"{self.target} ({self.model_name})")

    def __call__(self, vocal: np.ndarray, start_seconds: float = 0.0) -> np.ndarray:
        from kgan.chart import chords_input
        from kgan.generation import meter_input

        vocal = np.asarray(vocal, np.float32)
        inputs = {"vocal": vocal}
        if self.style is not None:  # otherwise the signature's default, "any"
            inputs["style"] = np.array([self.style], np.int32)
        if self.meter is not None:  # otherwise the signature's default, unknown
            inputs["meter"] = meter_input(self.meter, start_seconds)
        if self.chart is not None:  # otherwise the signature's default, the network's guesses
            inputs["chords"] = chords_input(self.chart, start_seconds, vocal.shape[-1], self.config)
        return self.predict(inputs, self.signature)["accompaniment"]

    def close(self):
        self.channel.close()
