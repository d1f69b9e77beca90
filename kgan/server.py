"""``kgan serve``: TF Serving's gRPC ``PredictionService`` for machines without TF Serving.

Speaks the official protos (``tensorflow_serving.apis``) with TF Serving's
semantics: an export base holds numeric version folders and the newest is
served unless a request names a version; requests name the model
(``--model-name``, default ``kgan``) and a signature (default
``serving_default``). ``Predict`` and ``GetModelMetadata`` are implemented. An
export made with ``kgan export --compute both`` has bfloat16 twins of
``serving_default`` and ``spectrogram``; the server answers those two with
their twins where ``compute`` says so (``kgan.export.signature_for``), and the
response names the signature that was asked for.

A bad request never takes the server down: an unknown model or version gets
NOT_FOUND; an unknown signature, a missing or extra input, the wrong dtype or
rank, a negative dimension, a shape its content does not fill, an empty,
non-finite or too large input gets INVALID_ARGUMENT with a one-line message;
anything unexpected gets INTERNAL.

Work, not bytes, is capped, because a few bytes can ask for a lot of work: a
``[100000, 1]`` vocal is 100 000 one-window songs. Each request is priced in
generator windows before anything is decoded (``serving_default``: windows per
row times rows; ``spectrogram``: its batch) and refused above the windows of
``max_seconds`` of audio; ``spectrogram`` batches are capped at
``MAX_SPECTROGRAM_BATCH`` and ``metadata`` probes at ``MAX_PROBE``. Requests
run one at a time (a single inference lane: the generator already uses every
core, and one request's working set bounds the memory), a request whose client
has gone is skipped or cancelled mid-graph, and freed memory goes back to the
system after a large request. The server binds to 127.0.0.1 unless told
otherwise and refuses a port another process already holds.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import threading

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2, predict_pb2, prediction_service_pb2_grpc

from kgan.config import window_hop
from kgan.export import MODEL_NAME, export_meta, saved_model_proto, signature_for

__all__ = ["PredictionService", "serve", "spawn", "MAX_MESSAGE_BYTES", "DEFAULT_MAX_SECONDS"]

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # > 10 min of 22.05 kHz float32 audio in one message
REPLY_RATE_CAP = 4  # replies are sized for up to this many output samples per input sample (2 with a high band)
DEFAULT_MAX_SECONDS = 5 * 60  # per request, priced in generator windows over the whole batch
MAX_SPECTROGRAM_BATCH = 32  # windows per ``spectrogram`` request (the generator runs them at once)
MAX_PROBE = 1024  # elements of a ``metadata`` probe
LARGE_REQUEST_WINDOWS = 64  # after a request this size, freed heap memory is handed back to the system
MMAP_THRESHOLD_MIB = 16  # buffers this large get their own mappings (_allocate_large_buffers_with_mmap)


class RequestError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


class _Version:
    """One loaded export version: its signatures, their input specs and the config."""

    def __init__(self, path: str, version: int, compute: str = "auto"):
        self.path, self.version = path, version
        self.model = tf.saved_model.load(path)
        meta = export_meta(path)
        config = meta["config"]
        self.sample_rate = int(config["audio"]["sample_rate"])
        self.hop = int(config["stft"]["hop_length"])
        self.pad = int(config["stft"]["n_fft"]) - self.hop
        self.frames = int(config["window"]["frames"])
        self.window_hop = window_hop(self.frames, float(config["window"].get("overlap", 0.5)))
        self.style_names = list(meta.get("styles") or [])
        self.signature_defs = dict(saved_model_proto(path).meta_graphs[0].signature_def)
        # the signature that answers each one: serving_default's bfloat16 twin where it runs at speed
        self.runs = {name: signature_for(name, self.signature_defs, compute) for name in self.signature_defs}

    def stft_frames(self, samples: int) -> int:
        """STFT frames of one row of ``samples`` (``kgan.spectrogram.frame_count``)."""
        return 1 + (samples + self.pad - 1) // self.hop

    def windows(self, samples: int) -> int:
        """Generator windows one row of ``samples`` costs (as ``kgan.inference.Generate`` cuts it)."""
        frames = self.stft_frames(samples)
        hop = self.window_hop
        return 1 + max(0, (frames - self.frames + hop - 1) // hop)

    def work(self, signature: str, key: str, shape: list[int]) -> int:
        """The windows an input of ``shape`` costs (0 for inputs that run no generator)."""
        if signature == "metadata":
            return 0
        if key == "vocal_spectrogram":
            return shape[0]
        if key == "vocal":
            return shape[0] * self.windows(shape[1])
        return 0


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, export_base: str, model_name: str = MODEL_NAME, max_seconds: float = DEFAULT_MAX_SECONDS,
                 compute: str = "auto"):
        signature_for("serving_default", (), compute)  # a bad value fails here, not at the first request
        self.export_base, self.compute = export_base, compute
        self.model_name = model_name
        self.max_seconds = max_seconds
        self._versions: dict[int, _Version] = {}
        self._lock = threading.Lock()  # loading versions
        self._lane = threading.Lock()  # one inference at a time; also makes the cancellation context safe
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
                self._versions[version] = _Version(os.path.join(self.export_base, str(version)), version,
                                                   self.compute)
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
    def _inputs(self, version: _Version, signature: str, request) -> tuple[dict[str, np.ndarray], int]:
        """The request's arrays, checked against the signature and the caps, and the windows they cost."""
        sig = version.signature_defs[signature]
        expected, given = set(sig.inputs), set(request.inputs)
        if given - expected or expected - given - set(sig.defaults):
            optional = f" ({sorted(sig.defaults)} optional)" if sig.defaults else ""
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"signature {signature!r} expects input(s) {sorted(expected)}{optional}, "
                               f"got {sorted(given)}")
        arrays, work = {}, 0
        for key, info in sig.inputs.items():
            proto = request.inputs[key] if key in given else sig.defaults[key]  # TF Serving's defaults rule
            if proto.dtype != info.dtype:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {key!r}: expected dtype {_dtype_name(info.dtype)}, "
                                   f"got {_dtype_name(proto.dtype)}")
            shape = [d.size for d in proto.tensor_shape.dim]
            want = [d.size for d in info.tensor_shape.dim]
            if proto.tensor_shape.unknown_rank or len(shape) != len(want) or any(
                    w not in (-1, s) for w, s in zip(want, shape)):
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {key!r}: expected shape {want} (-1: any), got {shape}")
            if any(s < 0 for s in shape):
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {key!r}: negative dimension in shape {shape}")
            if any(s == 0 for s in shape):
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"input {key!r} is empty: shape {shape}")
            self._check_cost(version, signature, key, shape)
            work += version.work(signature, key, shape)
            _check_content(key, proto, shape)
            try:
                array = tf.make_ndarray(proto)
            except Exception as e:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {key!r}: unreadable tensor ({_first_line(e)})") from None
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"input {key!r} contains NaN or Inf")
            if key == "style":
                _check_styles(array, version.style_names)
            if key == "meter":
                _check_meter(array)
            if key == "chords":
                _check_chords(array)
            arrays[key] = array
        rows = next((len(arrays[k]) for k in ("vocal", "vocal_spectrogram") if k in arrays), None)
        for key, what in (("style", "id"), ("meter", "grid"), ("chords", "chart")):
            if key in arrays and rows is not None and len(arrays[key]) not in (1, rows):
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {key!r}: one {what}, or one per row ({rows}); got {len(arrays[key])}")
        return arrays, work

    def _check_cost(self, version: _Version, signature: str, key: str, shape: list[int]) -> None:
        """Refuse a request that asks for more work than the caps allow, before decoding it."""
        if key in ("probe", "style", "meter", "chords"):  # small side inputs: a count cap, no work of their own
            if shape[0] > MAX_PROBE:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {key!r}: at most {MAX_PROBE} elements, got {shape[0]}")
            frames = version.stft_frames(int(self.max_seconds * version.sample_rate))  # a chart's at most
            if key == "chords" and shape[1] > frames:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input 'chords': at most {frames} frames ({self.max_seconds:.0f} s), "
                                   f"got {shape[1]}; send it in chunks with the audio")
            return
        if key == "vocal_spectrogram" and shape[0] > MAX_SPECTROGRAM_BATCH:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input {key!r}: at most {MAX_SPECTROGRAM_BATCH} windows per request, got {shape[0]}; "
                               "send them in smaller batches")
        limit = version.windows(int(self.max_seconds * version.sample_rate))
        cost = version.work(signature, key, shape)
        if cost > limit:
            if key == "vocal" and shape[0] == 1:
                detail = f"{shape[1] / version.sample_rate:.0f} s > {self.max_seconds:.0f} s per request"
            else:
                detail = f"{cost} generator windows > {limit} ({self.max_seconds:.0f} s of audio) per request"
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input {key!r} too long: {detail}; send it in chunks")

    # ------------------------------------------------------------------ RPCs
    def Predict(self, request, context):
        try:
            version = self._resolve(request.model_spec)
            signature = request.model_spec.signature_name or "serving_default"
            if signature not in version.signature_defs:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"Serving signature key {signature!r} not found; available: "
                                   f"{sorted(version.signature_defs)}")
            inputs, work = self._inputs(version, signature, request)
            outputs = self._run(version.model.signatures[version.runs[signature]], inputs, work, context)
            wanted = set(request.output_filter) or set(outputs)
            unknown = wanted - set(outputs)
            if unknown:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"unknown output(s) in output_filter: {sorted(unknown)}")
            response = predict_pb2.PredictResponse()
            response.model_spec.name = self.model_name
            response.model_spec.version.value = version.version
            response.model_spec.signature_name = signature
            for key in sorted(wanted):
                response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
            return response
        except RequestError as e:
            context.abort(e.code, str(e))
        except tf.errors.CancelledError:
            context.abort(grpc.StatusCode.CANCELLED, "the client went away; its work was cancelled")
        except tf.errors.InvalidArgumentError as e:  # the graph's own checks
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, _graph_message(e))
        except Exception as e:  # never let a request take the server down
            context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {_first_line(e)}")

    def _run(self, function, inputs: dict[str, np.ndarray], work: int, context) -> dict:
        """``function`` on ``inputs`` in the single inference lane, cancelled if the client goes away."""
        from tensorflow.python.eager import cancellation

        with self._lane:
            if not context.is_active():  # the client gave up while the request waited
                raise tf.errors.CancelledError(None, None, "client gone")
            manager = cancellation.CancellationManager()
            context.add_callback(manager.start_cancel)  # runs when the RPC ends, however it ends
            try:
                outputs = manager.get_cancelable_function(function)(
                    **{k: tf.constant(v) for k, v in inputs.items()})
                return {k: v.numpy() for k, v in outputs.items()}
            finally:
                if work >= LARGE_REQUEST_WINDOWS:
                    _release_memory()

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
            context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {_first_line(e)}")


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _graph_message(error: tf.errors.OpError) -> str:
    """The informative line of a graph error (not "Graph execution error:" or the node trace)."""
    lines = [line.strip() for line in str(error.message).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Graph execution error", "Detected at node", "[[",
                                                              "File ", "Stack trace"))]
    return (useful or lines or [type(error).__name__])[-1][:500]


def _dtype_name(enum: int) -> str:
    try:
        return tf.dtypes.as_dtype(enum).name
    except TypeError:
        return f"unknown dtype {enum}"


def _check_content(key: str, proto, shape: list[int]) -> None:
    """The tensor's content fills its claimed shape: raw bytes exactly, or typed values (one broadcasts)."""
    count = int(np.prod(shape))
    if proto.tensor_content:
        itemsize = tf.dtypes.as_dtype(proto.dtype).size
        if len(proto.tensor_content) != count * itemsize:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input {key!r}: shape {shape} needs {count * itemsize} bytes of content, "
                               f"got {len(proto.tensor_content)}")
        return
    values = max(len(proto.float_val), len(proto.string_val), len(proto.int64_val), len(proto.int_val),
                 len(proto.double_val), len(proto.half_val), len(proto.bool_val))
    if values not in (1, count):
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"input {key!r}: shape {shape} holds {count} values, got {values}")


def _check_styles(ids: np.ndarray, names: list[str]) -> None:
    """Style ids must name one of the export's styles; the message lists them."""
    bad = sorted({int(i) for i in ids.ravel() if not 0 <= int(i) < len(names)})
    if bad:
        valid = ", ".join(f"{i} ({name})" for i, name in enumerate(names)) or "none (the model has no styles)"
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"input 'style': unknown id(s) {bad}; valid: {valid}")


def _check_meter(meter: np.ndarray) -> None:
    """Beat grids: per row zeros (unknown) or (seconds a beat in (0.05, 10], seconds a chord segment in
    [0, 60], first downbeat within a day of the chunk)."""
    for row in np.asarray(meter, np.float64).reshape(-1, 3):
        if not row.any():
            continue
        beat, segment, downbeat = row
        if not (0.05 < beat <= 10.0 and 0.0 <= segment <= 60.0 and abs(downbeat) <= 86400.0):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               "input 'meter': each row is zeros (unknown) or (seconds a beat in (0.05, 10], "
                               f"seconds a chord segment in [0, 60], first downbeat in seconds); got {row.tolist()}")


def _check_chords(chords: np.ndarray) -> None:
    """Chord charts: a class per frame, -1 (the network's guess) to 24 (no chord; kgan.chart)."""
    bad = sorted({int(i) for i in np.unique(chords) if not -1 <= int(i) <= 24})
    if bad:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"input 'chords': unknown id(s) {bad[:5]}; valid: -1 (the model's guess), 0-23 "
                           "(2 x root pitch class, + 1 for minor), 24 (no chord)")


def _allocate_large_buffers_with_mmap(threshold_mib: int = MMAP_THRESHOLD_MIB) -> None:
    """glibc: serve every allocation of ``threshold_mib`` MiB or more with its own mmap, returned on free.

    By default glibc raises this threshold after a large free (up to 32 MiB), so the next large
    tensors come from the heap and stay in the process after the request. The threshold trades
    memory against the time of a short request, whose activations are mapped and faulted in afresh
    when they reach it: at 1 MiB a 10-second request took 1.5x its time. Against 16 MiB, 32 MiB
    answered a 10-second request 0.01 s sooner at p50 (0.22-0.23 s against 0.23-0.24) but peaked
    0.12-0.23 GiB higher under the largest requests (1.85-1.96 GiB), with the same memory after
    them (benchmarks/serving.py and benchmarks/memory.py, ``--mmap-thresholds``). 0 leaves glibc's
    own sliding threshold.
    """
    if threshold_mib <= 0:
        return
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, int(threshold_mib) << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _release_memory() -> None:
    """Hand freed heap pages back to the system (glibc keeps them otherwise); a no-op elsewhere."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reply_bytes(max_seconds: float, sample_rate: int) -> int:
    """The largest reply the server sends: ``max_seconds`` of float32 audio at ``REPLY_RATE_CAP`` times the
    input rate (an export with a high band returns twice it), with room for the framing; never below
    ``MAX_MESSAGE_BYTES``. So an accepted request's reply is never refused after the work."""
    size = int(max_seconds * REPLY_RATE_CAP * sample_rate * 4 * 1.01) + (1 << 20)
    return min(2**31 - 1, max(MAX_MESSAGE_BYTES, size))  # gRPC takes an int32


def serve(export_base: str, host: str = "127.0.0.1", port: int = 8500, model_name: str = MODEL_NAME,
          workers: int = 4, max_seconds: float = DEFAULT_MAX_SECONDS, compute: str = "auto",
          mmap_threshold_mib: int = MMAP_THRESHOLD_MIB) -> tuple[grpc.Server, int]:
    """Start the server (non-blocking); returns it and the bound port (``port=0`` picks a free one).

    ``compute``: which signature answers ``serving_default`` and ``spectrogram`` requests
    (``kgan.export.signature_for``): their bfloat16 twins, where an export has them, with ``auto`` on a CPU
    that computes bfloat16 at speed or always with ``bfloat16``; never with ``float32``.
    ``mmap_threshold_mib``: buffers this large or larger get their own mappings, handed back when freed
    (``_allocate_large_buffers_with_mmap``; it applies to the whole process); 0: glibc's own threshold.
    """
    _allocate_large_buffers_with_mmap(mmap_threshold_mib)
    service = PredictionService(export_base, model_name, max_seconds, compute)
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=workers),
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                 ("grpc.max_send_message_length", reply_bytes(max_seconds, service.newest().sample_rate)),
                 ("grpc.so_reuseport", 0)],  # a second server on a taken port fails instead of sharing it
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # grpc raises on some failures and returns 0 on others
        bound = 0
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port} (is the port in use, or the address not this machine's?)")
    server.start()
    return server, bound


def spawn(export_base: str, *args: str, timeout: float = 120.0):
    """``kgan serve EXPORT_BASE ARGS...`` in a subprocess on a free loopback port: (process, "127.0.0.1:port").

    Returns once the server says it is listening; the caller terminates the
    process. Raises RuntimeError with the server's output if it does not start.
    """
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", export_base, "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    deadline, line = time.time() + timeout, ""
    while time.time() < deadline and "serving" not in line and proc.poll() is None:
        line = proc.stderr.readline()
    if f"127.0.0.1:{port}" not in line:
        proc.kill()
        raise RuntimeError(f"kgan serve did not start: {line}{proc.stderr.read()}")
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep draining: a full pipe would block it
    return proc, f"127.0.0.1:{port}"
