"""Export a trained generator as a SavedModel that stock TF Serving loads.

``export(run_dir, export_base, version)`` writes ``EXPORT_BASE/VERSION/`` (TF
Serving's layout) through a ``tf.Module`` with explicit input signatures:

* ``serving_default``: ``vocal`` float32 ``[batch, samples]`` (mono at the
  model's rate) -> ``accompaniment`` float32 ``[batch, samples]``, any length;
* ``spectrogram``: ``vocal_spectrogram`` float32 ``[batch, bins, frames, 1]``
  (normalised windows) -> ``accompaniment_spectrogram``, same shape;
* ``metadata``: ``probe`` float32 ``[n]`` -> ``config`` (the config JSON) string
  ``[n]``, ``sample_rate``, ``output_sample_rate``, ``window_frames``, ``bins``
  int64 ``[n]`` and ``styles`` (comma-separated style names, id 0 first) string
  ``[n]``, so a remote client learns the rate to send audio at, the rate it
  gets back (twice the first with ``high_band``: ``kgan.high_band``), the
  spectrogram geometry and the styles it may ask for.

A style-conditioned generator's ``serving_default`` and ``spectrogram`` also
take ``style``, int32 ``[batch]`` (or ``[1]`` for every row), with a default of
``[0]`` ("any") stored in the SignatureDef, so requests may leave it out (TF
Serving fills signature defaults in; so does ``kgan serve``). A plan generator's
``serving_default`` also takes ``chords``, int32 ``[batch or 1, frames]``: a chord
chart's class per STFT frame of the request (``kgan.chart``), -1 where the chord
network's guess stays; its default ``[[-1]]`` keeps the guess everywhere. One whose
chord network takes a beat grid takes ``meter`` as well (``kgan.chords.meter_grid``).

The generator runs in inference mode. With ``weights="float16"`` its trainable
weights are stored as float16 (half the size) and cast back to float32 in the
graph, so the arithmetic stays float32 (``StoredWeights``). With
``compute="bfloat16"`` the generator's arithmetic runs in bfloat16 (Keras'
``mixed_bfloat16`` policy on the same weights): about twice as fast on a CPU
with AVX512_BF16 through oneDNN's kernels, and far slower where a server runs
TensorFlow's own kernels, which emulate it. ``compute="both"`` keeps float32 in
``serving_default`` and ``spectrogram`` and adds their bfloat16 twins,
``serving_bfloat16`` and ``spectrogram_bfloat16``, on the same stored weights
(no second copy of them): stock TF Serving runs the float32 ones unless a request names a
twin, and ``kgan generate``/``kgan serve`` run the twins where
``bfloat16_native()`` (``signature_for``).
``assets/kgan_config.json`` carries the config (and the Griffin-Lim iterations and
the weight precision); ``assets.extra/tf_serving_warmup_requests``
holds warm-up requests for TF Serving. Keras' own export routes are not used:
they store every variable twice.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile

import tensorflow as tf

from kgan.config import Config
from kgan.inference import Generate

__all__ = ["export", "restore_generator", "restore_from_export", "restore_run_or_export", "is_export", "export_meta",
           "load", "forbidden_ops", "unrestored_variables",
           "StoredWeights", "EXPORT_CONFIG", "MODEL_NAME", "WEIGHT_DTYPES",
           "COMPUTE_DTYPES", "BFLOAT16_SIGNATURES", "bfloat16_native", "signature_for",
           "saved_model_proto", "graph_nodes"]

EXPORT_CONFIG = "kgan_config.json"
MODEL_NAME = "kgan"
WEIGHT_DTYPES = ("float32", "float16")
COMPUTE_DTYPES = ("float32", "bfloat16", "both")
# with compute="both": each signature's bfloat16 twin, on the same stored weights
BFLOAT16_SIGNATURES = {"serving_default": "serving_bfloat16", "spectrogram": "spectrogram_bfloat16"}


class StoredWeights(tf.Module):
    """A Keras model run on weights this module stores: at ``storage`` precision, computed under ``policy``.

    Calling it casts the stored trainable weights to float32 and runs the model
    through ``stateless_call`` on those values, so the Keras model's own variables
    are neither read nor saved: with ``storage="float16"`` a SavedModel of this
    module stores 2 bytes per weight. The non-trainable ones (batch-norm
    statistics, a few thousand numbers) stay float32. ``policy="mixed_bfloat16"``
    runs a twin of the model built under Keras' mixed policy (its own from_config):
    bfloat16 arithmetic on the same weights, float32 outputs. The Keras models are
    deliberately not tracked. The lists keep the names ``half`` and ``full`` that
    the first float16 exports gave them, so every export reads back the same way.
    """

    def __init__(self, model, storage: str = "float16", policy: str = "float32", name: str = "half_weights"):
        super().__init__(name=name)
        self.half = [tf.Variable(tf.cast(v.value, storage), trainable=False, name=f"w{i}")
                     for i, v in enumerate(model.trainable_variables)]
        self.full = [tf.Variable(v.value, trainable=False, name=f"s{i}")
                     for i, v in enumerate(model.non_trainable_variables)]
        self._use(model, policy)

    def twin(self, policy: str) -> "StoredWeights":
        """The same stored variables (saved once) run by a twin of the model built under ``policy``."""
        other = object.__new__(StoredWeights)
        tf.Module.__init__(other, name=f"{self.name}_{policy}")
        other.half, other.full = self.half, self.full
        other._use(self._source, policy)
        return other

    def _use(self, model, policy: str) -> None:
        object.__setattr__(self, "_source", model)  # untracked, as the model that runs: neither is saved
        if policy != "float32":
            from kgan.training import dtype_policy

            with dtype_policy(policy):
                twin = type(model).from_config(model.get_config())
            _share_constants(self._source, twin)
            model = twin
        object.__setattr__(self, "_model", model)
        self.styles = getattr(model, "styles", 0)  # a style-conditioned generator's style count
        self.grid = bool(getattr(model, "grid", False))  # a ChordNet told the beat grid (kgan.chords.chord_logits)

    def __call__(self, inputs, training=False):
        if training:
            raise ValueError("StoredWeights is for inference only. Received: training=True")
        return self.prepared()(inputs)

    def prepared(self):
        """The model as a function of its inputs, on weights cast to float32 here, once: a caller that runs it
        many times in one graph (``kgan.inference.Generate``'s chunks, in a ``tf.map_fn``) casts them once, not
        on every call (4-5 ms a chunk of 8 windows)."""
        weights = [tf.cast(v, tf.float32) for v in self.half]
        state = [tf.identity(v) for v in self.full]
        return lambda inputs: self._model.stateless_call(weights, state, inputs, training=False)[0]


def _share_constants(source, twin) -> None:
    """Point the twin's weight-free layers (``kgan.features.VocalFeatures``: 1 MB matrices) at the source's
    constant tensors, so an export that holds both graphs stores each matrix once."""
    for mine, theirs in zip(twin.layers, source.layers):
        if not mine.weights:
            for key, value in vars(theirs).items():
                if isinstance(value, tf.Tensor) and isinstance(getattr(mine, key, None), tf.Tensor):
                    object.__setattr__(mine, key, value)


class ServingModule(tf.Module):
    def __init__(self, generator, config: Config, griffin_lim_iters: int, config_path: str, vocoder=None,
                 griffin_lim_init: str = "random", chord_net=None, chord_decoding: str = "argmax",
                 level_gains_db=None, high_band=None, bfloat16_generator=None, griffin_lim_algorithm: str = "fast"):
        super().__init__(name="kgan")

        def pipeline(runner):
            return Generate(runner, config, griffin_lim_iters, vocoder=vocoder, griffin_lim_init=griffin_lim_init,
                            chord_net=chord_net, chord_decoding=chord_decoding, level_gains_db=level_gains_db,
                            high_band=high_band, griffin_lim_algorithm=griffin_lim_algorithm)

        self.pipeline = pipeline(generator)
        self.config_asset = tf.saved_model.Asset(config_path)
        bins, frames = config.stft.num_bins, config.window.frames
        self.serve, self.spectrogram = _signature_functions(self.pipeline, bins, frames)
        if bfloat16_generator is not None:  # the same graph around a twin generator (BFLOAT16_SIGNATURES)
            self.pipeline_bfloat16 = pipeline(bfloat16_generator)
            self.serve_bfloat16, self.spectrogram_bfloat16 = _signature_functions(self.pipeline_bfloat16, bins,
                                                                                  frames)

        rate = config.audio.sample_rate
        output_rate = rate if high_band is None else 2 * rate
        config_json = config.to_json()  # a Python string, made outside the traced function
        style_names = ",".join(config.model.style_names)  # "" for an unconditioned model

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="probe")])
        def metadata(probe):
            n = tf.shape(probe)[:1]  # batch-shaped, so TF Serving's request batching accepts it
            return {"config": tf.fill(n, tf.constant(config_json)),
                    "sample_rate": tf.fill(n, tf.constant(rate, tf.int64)),
                    "output_sample_rate": tf.fill(n, tf.constant(output_rate, tf.int64)),
                    "window_frames": tf.fill(n, tf.constant(frames, tf.int64)),
                    "bins": tf.fill(n, tf.constant(bins, tf.int64)),
                    "styles": tf.fill(n, tf.constant(style_names))}

        self.metadata = metadata

    def signatures(self) -> dict:
        names = {"serving_default": self.serve, "spectrogram": self.spectrogram, "metadata": self.metadata}
        if hasattr(self, "pipeline_bfloat16"):
            names.update({BFLOAT16_SIGNATURES["serving_default"]: self.serve_bfloat16,
                          BFLOAT16_SIGNATURES["spectrogram"]: self.spectrogram_bfloat16})
        return names


def _signature_functions(pipeline: Generate, bins: int, frames: int):
    """``serving_default`` and ``spectrogram`` of one ``Generate`` pipeline, as traced functions."""
    any_style = tf.constant([0], tf.int32)
    style_spec = tf.TensorSpec([None], tf.int32, name="style")
    vocal_spec = tf.TensorSpec([None, None], tf.float32, name="vocal")
    # an optional beat grid for a chord network that takes one: zeros, unknown, by default
    unknown_meter = tf.zeros([1, 3], tf.float32)
    meter_spec = tf.TensorSpec([None, 3], tf.float32, name="meter")

    # an optional chord chart for a plan generator (kgan.chart): -1, the network's guess everywhere, by default
    no_chords = tf.fill([1, 1], -1)
    chords_spec = tf.TensorSpec([None, None], tf.int32, name="chords")

    def served(vocal, style=None, meter=None, chords=None):
        return {"accompaniment": tf.identity(pipeline(vocal, style, meter, chords), name="accompaniment")}

    # every chord network is a plan generator's, so a beat grid comes with a chart
    if pipeline.styled and pipeline.gridded:
        @tf.function(input_signature=[vocal_spec, style_spec, meter_spec, chords_spec])
        def serve(vocal, style=any_style, meter=unknown_meter, chords=no_chords):
            return served(vocal, style, meter, chords)
    elif pipeline.gridded:
        @tf.function(input_signature=[vocal_spec, meter_spec, chords_spec])
        def serve(vocal, meter=unknown_meter, chords=no_chords):
            return served(vocal, None, meter, chords)
    elif pipeline.styled and pipeline.planned:
        @tf.function(input_signature=[vocal_spec, style_spec, chords_spec])
        def serve(vocal, style=any_style, chords=no_chords):
            return served(vocal, style, None, chords)
    elif pipeline.planned:
        @tf.function(input_signature=[vocal_spec, chords_spec])
        def serve(vocal, chords=no_chords):
            return served(vocal, None, None, chords)
    elif pipeline.styled:  # an optional style: requests without one get 0, "any" (signature defaults)
        @tf.function(input_signature=[vocal_spec, style_spec])
        def serve(vocal, style=any_style):
            return served(vocal, style)
    else:
        @tf.function(input_signature=[vocal_spec])
        def serve(vocal):
            return served(vocal)

    spectrogram_spec = tf.TensorSpec([None, bins, frames, 1], tf.float32, name="vocal_spectrogram")
    if pipeline.styled:
        @tf.function(input_signature=[spectrogram_spec, style_spec])
        def spectrogram(vocal_spectrogram, style=any_style):
            ids = pipeline.batch_styles(style, tf.shape(vocal_spectrogram)[0])
            out = pipeline.generator([pipeline.with_plan(vocal_spectrogram), ids], training=False)
            return {"accompaniment_spectrogram": tf.identity(out, name="accompaniment_spectrogram")}
    else:
        @tf.function(input_signature=[spectrogram_spec])
        def spectrogram(vocal_spectrogram):
            out = pipeline.generator(pipeline.with_plan(vocal_spectrogram), training=False)
            return {"accompaniment_spectrogram": tf.identity(out, name="accompaniment_spectrogram")}

    return serve, spectrogram


def unknown_inputs(serve) -> dict:
    """The optional inputs of a loaded ``serving_default`` (or twin) at its SignatureDef defaults, which a loaded
    signature does not fill in (TF Serving and ``kgan serve`` do): style 0 ("any"), no beat grid, and the chord
    network's own plan."""
    values = {"style": tf.constant([0], tf.int32), "meter": tf.zeros([1, 3]), "chords": tf.fill([1, 1], -1)}
    return {k: v for k, v in values.items() if k in serve.structured_input_signature[1]}


def bfloat16_native() -> bool:
    """Whether this process computes bfloat16 at speed: oneDNN's kernels on, and a CPU with bf16 dot products.

    TensorFlow's own kernels emulate bfloat16 (about 12x slower than float32); oneDNN uses AVX512_BF16 or
    AMX where the CPU has them (Linux: ``/proc/cpuinfo`` flags ``avx512_bf16``, ``amx_bf16``).
    """
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() in ("0", "false"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return bool({"avx512_bf16", "amx_bf16"} & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return False


def signature_for(name: str, available, compute: str = "auto") -> str:
    """The signature that runs ``name`` (``serving_default``, ``spectrogram``) in this process.

    ``compute``: ``auto`` takes the export's bfloat16 twin (``kgan export --compute both``) where
    ``bfloat16_native()``; ``bfloat16`` takes it wherever it exists; ``float32`` never.
    """
    if compute not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"compute must be 'auto', 'float32' or 'bfloat16'. Received: {compute!r}")
    twin = BFLOAT16_SIGNATURES.get(name)
    if twin is None or twin not in available or compute == "float32":
        return name
    return twin if compute == "bfloat16" or bfloat16_native() else name


def _warmup_requests(path: str, rate: int, frames_per_window: int, bins: int, signatures) -> None:
    """A TFRecord of PredictionLogs TF Serving replays at load time (one per signature that generates)."""
    import numpy as np
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    inputs = {"serving_default": ("vocal", np.zeros((1, rate), np.float32)),
              "spectrogram": ("vocal_spectrogram", -np.ones((1, bins, frames_per_window, 1), np.float32))}
    inputs.update({BFLOAT16_SIGNATURES[name]: value for name, value in inputs.items()})
    requests = [(name, *inputs[name]) for name in signatures if name in inputs]
    with tf.io.TFRecordWriter(path) as writer:
        for signature, key, value in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=MODEL_NAME, signature_name=signature))
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def next_version(export_base: str) -> int:
    versions = [int(d) for d in os.listdir(export_base) if d.isdigit()] if os.path.isdir(export_base) else []
    return max(versions, default=0) + 1


def restore_generator(run_dir: str, checkpoint: str | None = None):
    """``(generator, config, checkpoint path)`` of a training run, from its newest (or the given) checkpoint."""
    from kgan.models import UNetGenerator
    from kgan.training import read_run_config, unreadable_checkpoint

    config = read_run_config(run_dir)
    generator = UNetGenerator.from_kgan_config(config)
    ckpt = checkpoint or tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    if ckpt is None:
        raise FileNotFoundError(f"{run_dir}/checkpoints: no checkpoint to export; train first")
    try:
        tf.train.Checkpoint(generator=generator).restore(ckpt).expect_partial().assert_existing_objects_matched()
    except (tf.errors.OpError, ValueError, AssertionError, IndexError) as e:  # IndexError: truncated data
        raise ValueError(unreadable_checkpoint(ckpt, e)) from None
    return generator, config, ckpt


def is_export(path: str) -> bool:
    """Whether ``path`` is a kgan export version folder (``EXPORT_BASE/N``) rather than a training run."""
    return os.path.isfile(os.path.join(path, "saved_model.pb")) and os.path.isfile(
        os.path.join(path, "assets", EXPORT_CONFIG))


def export_meta(export_dir: str) -> dict:
    """An export's ``assets/kgan_config.json``: its config, phase, chord network, level calibration, ..."""
    with open(os.path.join(export_dir, "assets", EXPORT_CONFIG), encoding="utf-8") as f:
        return json.load(f)


def _assign_stored(variable, reader, keys: list[str], source: str) -> None:
    for key in keys:
        if reader.has_tensor(key):
            value = reader.get_tensor(key)
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(f"{source}: the stored {key.split('/.ATTRIBUTES')[0]} has shape {tuple(value.shape)}, "
                                 f"the rebuilt model's {variable.path} {tuple(variable.shape)}")
            variable.assign(tf.cast(value, variable.dtype))
            return
    raise ValueError(f"{source}: no stored weight for {variable.path} (looked for {keys[0]}); export again from "
                     f"the training run")


def _assign_operations(model, reader, prefix: str, source: str) -> None:
    """Fill a Keras functional model's weights from a SavedModel's checkpoint, where it was tracked at ``prefix``."""
    for i, op in enumerate(model.operations):
        here = f"{prefix}/_operations/{i}"
        if getattr(op, "operations", None):
            _assign_operations(op, reader, here, source)
            continue
        for v in op.weights:
            name = v.path.rsplit("/", 1)[-1]
            _assign_stored(v, reader, [f"{here}/{a}/.ATTRIBUTES/VARIABLE_VALUE" for a in (f"_{name}", name)], source)


def restore_from_export(export_dir: str):
    """``(generator, config, chord_net or None, meta)`` rebuilt from an export's own stored weights.

    So an export is a starting point like a run: it can be exported again with another chord
    network, phase, overlap or weight precision without its training run. A float16 export's
    weights come back as the float16 values it stored (exporting them again as float16 changes
    nothing). ``meta`` is the export's ``kgan_config.json``.
    """
    from kgan.models import UNetGenerator

    meta = export_meta(export_dir)
    config = Config.from_dict(meta["config"])
    generator = UNetGenerator.from_kgan_config(config)
    reader = tf.train.load_checkpoint(os.path.join(export_dir, "variables", "variables"))
    _assign_model(generator, reader, "generator", export_dir)
    chord_net = None
    if meta.get("chords"):
        from kgan.chords import ChordNet

        chord_net = ChordNet.from_config(meta.get("chordnet") or {})  # exports before the field: the defaults
        _assign_model(chord_net, reader, "chord_net", export_dir)
    return generator, config, chord_net, meta


def _assign_model(model, reader, name: str, source: str) -> None:
    """Fill ``model`` from the export's weights of ``Generate.<name>``: a ``StoredWeights``' lists (every export
    since 2026-12-04; before, float16 and bfloat16 ones) in the model's own variable order, where a twin's
    pipeline may hold them too; or, in older float32 exports, the Keras model's own variables."""
    if not any(reader.has_tensor(f"{pipe}/{name}/half/0/.ATTRIBUTES/VARIABLE_VALUE")
               for pipe in ("pipeline", "pipeline_bfloat16")):
        _assign_operations(model, reader, f"pipeline/{name}", source)
        return
    for group, variables in (("half", model.trainable_variables), ("full", model.non_trainable_variables)):
        for i, v in enumerate(variables):
            _assign_stored(v, reader, [f"{pipe}/{name}/{group}/{i}/.ATTRIBUTES/VARIABLE_VALUE"
                                       for pipe in ("pipeline", "pipeline_bfloat16")], source)


def restore_run_or_export(path: str, checkpoint: str | None = None):
    """``(generator, config, chord_net or None, source)`` from a training run or an export version folder.

    A run gives its newest (or ``checkpoint``'s) generator, no chord network and ``source``
    ``{"checkpoint": path}``; an export (``is_export``) its stored weights, its chord network and its
    ``kgan_config.json`` as ``source`` (``restore_from_export``). An export has no checkpoints to choose from.
    """
    if is_export(path):
        if checkpoint is not None:
            raise ValueError(f"{path} is an export: it has no checkpoints to choose from")
        return restore_from_export(path)
    generator, config, ckpt = restore_generator(path, checkpoint)
    return generator, config, None, {"checkpoint": ckpt}


def export(run_dir: str, export_base: str, version: int | None = None, griffin_lim_iters: int | None = None,
           checkpoint: str | None = None, weights: str = "float32", vocoder: str | None = None,
           griffin_lim_init: str | None = None, chords: str | None = None, chord_decoding: str = "argmax",
           overlap: float | None = None, calibrate_levels: str | None = None, high_band: str | None = None,
           compute: str = "float32", griffin_lim_algorithm: str | None = None, progress: bool = False) -> str:
    """Write the newest (or given) checkpoint of ``run_dir`` as ``export_base/version``; returns that path.

    ``run_dir`` may also be an export version folder (``is_export``): its stored weights are exported again
    (``restore_from_export``), keeping its chord network unless ``chords`` names another.

    ``weights``: ``float32``, or ``float16`` to store the generator's (and vocoder's) weights at half the
    size. ``compute``: ``float32``; ``bfloat16`` to run the generator's arithmetic in bfloat16 (fast on
    oneDNN's kernels with AVX512_BF16, emulated and slow on TensorFlow's own); or ``both``: float32 in
    ``serving_default`` and ``spectrogram``, bfloat16 in their twins ``serving_bfloat16`` and
    ``spectrogram_bfloat16`` on the same stored weights (``signature_for`` picks one). ``vocoder``: a
    ``kgan vocoder train`` folder whose network makes the waveform instead of Griffin-Lim (``--phase vocoder``);
    with it, ``griffin_lim_iters`` and ``griffin_lim_algorithm`` when given are the iterations that refine the
    network's waveform (``VocoderSettings.refine_iters``; default the folder's, or ``EXPORT_REFINE_ITERS``
    accelerated ones for a vocoder trained without any; 0 for the network alone).
    ``griffin_lim_iters`` (default 16), ``griffin_lim_init``: Griffin-Lim's starting phase, ``integrated``
    (``kgan.spectrogram.integrated_phase``, the default) or ``random``, and ``griffin_lim_algorithm``: ``fast`` (the
    default) or ``accelerated`` (``kgan.spectrogram.GRIFFIN_LIM_ALGORITHMS``: 13 accelerated iterations score what
    16 fast ones do, in up to 9 % less time); an export exported again keeps its source's unless they are given.
    ``chords``: the ``kgan chords train`` folder
    whose ``ChordNet`` makes the plan of a ``model.vocal_input=plan`` generator (default ``run_dir/chords``), or
    an export whose chord network is taken;
    ``chord_decoding``: its likeliest triad per frame (``argmax``) or every triad by its probability (``soft``).
    ``overlap``: the share of frames consecutive generated windows share (``window.overlap``; default the
    run's): 0.25 generates a third fewer windows than 0.5.
    ``calibrate_levels``: a corpus folder whose val split sets each style's output gain (``kgan.levels``), or
    an export whose gains are copied; an export exported again keeps its source's gains unless this is given.
    ``high_band``: a corpus rendered at twice the model's rate (``kgan corpus build OUT --preset fullband``)
    whose train split sets the gains of the octave the export adds above the model's band
    (``kgan.high_band``: the output is then at twice the rate), an export whose high band is copied, or
    ``"off"``; an export exported again keeps its source's high band unless this is given.
    """
    if griffin_lim_init not in (None, "integrated", "random"):
        raise ValueError(f"griffin_lim_init must be 'integrated' or 'random'. Received: {griffin_lim_init!r}")
    if weights not in WEIGHT_DTYPES:
        raise ValueError(f"weights must be one of {list(WEIGHT_DTYPES)}. Received: {weights!r}")
    if compute not in COMPUTE_DTYPES:
        raise ValueError(f"compute must be one of {list(COMPUTE_DTYPES)}. Received: {compute!r}")
    generator, config, stored_chords, source = restore_run_or_export(run_dir, checkpoint)
    ckpt = str(source.get("checkpoint"))
    levels, bands = source.get("level_calibration"), source.get("high_band")  # an export's, kept unless replaced
    refine = {"refine_iters": griffin_lim_iters, "refine_algorithm": griffin_lim_algorithm}  # after a vocoder
    # Griffin-Lim as given, else as the source export ran it, else the defaults (a run's source has none of them)
    griffin_lim_iters = int(source.get("griffin_lim_iters", 16) if griffin_lim_iters is None else griffin_lim_iters)
    griffin_lim_init = griffin_lim_init or source.get("griffin_lim_init", "integrated")
    griffin_lim_algorithm = griffin_lim_algorithm or source.get("griffin_lim_algorithm", "fast")
    if overlap is not None:
        config = config.override(**{"window.overlap": overlap})
    chord_net = None
    if config.model.vocal_input == "plan" and stored_chords is not None and chords is None:
        chord_net = stored_chords
    elif config.model.vocal_input == "plan" and chords is not None and is_export(chords):  # another export's
        _, theirs, chord_net, _ = restore_from_export(chords)
        if chord_net is None:
            raise ValueError(f"{chords}: this export has no chord network to take")
        geometry = [(c.audio.sample_rate, c.stft.n_fft, c.stft.hop_length) for c in (theirs, config)]
        if geometry[0] != geometry[1]:
            raise ValueError(f"{chords}: its chord network hears rate/n_fft/hop {geometry[0]}, the model uses "
                             f"{geometry[1]}")
    elif config.model.vocal_input == "plan":
        from kgan.chords import load_chord_net

        chords = chords or os.path.join(run_dir, "chords")
        if not os.path.isdir(chords):
            raise FileNotFoundError(f"{chords}: not found; a model.vocal_input=plan run needs a chord network "
                                    f"(kgan chords train CORPUS {os.path.join(run_dir, 'chords')}, or --chords DIR)")
        chord_net = load_chord_net(chords, config)

    phase = None
    if vocoder is not None:
        from kgan.vocoder import EXPORT_REFINE_ITERS, Vocoder, load_vocoder

        trained = load_vocoder(vocoder, config.stft, config.audio.sample_rate)
        if refine["refine_iters"] is None and trained.settings.refine_iters == 0:
            refine["refine_iters"] = EXPORT_REFINE_ITERS
        settings = dataclasses.replace(trained.settings, **{k: v for k, v in refine.items() if v is not None})
        phase = Vocoder(StoredWeights(trained.net, weights, name="half_vocoder"), config.stft, settings)

    version = next_version(export_base) if version is None else int(version)
    final = os.path.join(export_base, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"{final} exists; choose another --version")
    # every Keras model reaches the graph through StoredWeights' plain variables: a Keras 3 variable saved inside a
    # tf.Module is read in the graph under another name than the one its restore op fills, so TF1-style loaders
    # (stock TF Serving's, saved_model_cli run) find it uninitialised (keras-team/keras#20095; unrestored_variables)
    served = StoredWeights(generator, weights, "mixed_bfloat16" if compute == "bfloat16" else "float32")
    twin = served.twin("mixed_bfloat16") if compute == "both" else None
    chord_graph = None if chord_net is None else StoredWeights(chord_net, "float32", name="chord_weights")
    if calibrate_levels is not None and is_export(calibrate_levels):  # another export's gains, e.g. its float32 twin
        levels = export_meta(calibrate_levels).get("level_calibration")
        if levels is None:
            raise ValueError(f"{calibrate_levels}: this export has no level calibration to copy")
    elif calibrate_levels is not None:
        levels = _calibrate(served, config, griffin_lim_iters, phase, griffin_lim_init, chord_graph, chord_decoding,
                            calibrate_levels, progress, griffin_lim_algorithm)
    from kgan.levels import style_gains_db

    names = list(config.model.style_names) or ["any"]
    gains = style_gains_db(levels, config.model.style_names)
    if high_band == "off":
        bands = None
    elif high_band is not None and is_export(high_band):
        bands = export_meta(high_band).get("high_band")
        if bands is None:
            raise ValueError(f"{high_band}: this export has no high band to copy")
    elif high_band is not None:
        from kgan.high_band import fit_corpus

        bands = fit_corpus(high_band, config.stft, config.audio.sample_rate, names, progress=progress)
    upper = None
    if bands is not None:
        from kgan.high_band import HighBand

        upper = HighBand(config.stft, [bands["gains_db"].get(name, bands["gains_db"]["any"]) for name in names])
    os.makedirs(export_base, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-export-", dir=export_base)  # TF Serving ignores non-numeric names
    try:
        config_path = os.path.join(staging, EXPORT_CONFIG)
        with open(config_path, "w", encoding="utf-8") as f:
            json.dump({"config": config.to_dict(), "griffin_lim_iters": griffin_lim_iters,
                       "checkpoint": os.path.basename(ckpt), "styles": list(config.model.style_names),
                       "weights": weights, "compute": compute, "phase": "griffin-lim" if phase is None else "vocoder",
                       "griffin_lim_init": griffin_lim_init, "griffin_lim_algorithm": griffin_lim_algorithm,
                       "chords": chord_net is not None,
                       "chord_decoding": chord_decoding if chord_net is not None else None,
                       "chordnet": chord_net.get_config() if chord_net is not None else None,
                       "level_calibration": levels, "high_band": bands,
                       "vocoder": None if phase is None else dataclasses.asdict(phase.settings)},
                      f, indent=2, sort_keys=True)
        module = ServingModule(served, config, griffin_lim_iters, config_path, vocoder=phase,
                               griffin_lim_init=griffin_lim_init, chord_net=chord_graph, chord_decoding=chord_decoding,
                               level_gains_db=gains, high_band=upper, bfloat16_generator=twin,
                               griffin_lim_algorithm=griffin_lim_algorithm)
        model_dir = os.path.join(staging, "model")
        signatures = module.signatures()
        tf.saved_model.save(module, model_dir, signatures=signatures)
        extra = os.path.join(model_dir, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        _warmup_requests(os.path.join(extra, "tf_serving_warmup_requests"), config.audio.sample_rate,
                         config.window.frames, config.stft.num_bins, sorted(signatures))
        os.replace(model_dir, final)  # appears whole, or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _calibrate(served, config, griffin_lim_iters, phase, griffin_lim_init, chord_net, chord_decoding, corpus_dir,
               progress, griffin_lim_algorithm="fast"):
    """``kgan.levels.measure_gains`` of the export-to-be's own pipeline (uncalibrated) on ``corpus_dir``."""
    from kgan.levels import measure_gains

    pipeline = Generate(served, config, griffin_lim_iters, vocoder=phase, griffin_lim_init=griffin_lim_init,
                        chord_net=chord_net, chord_decoding=chord_decoding, griffin_lim_algorithm=griffin_lim_algorithm)

    @tf.function(input_signature=[tf.TensorSpec([1, None], tf.float32), tf.TensorSpec([], tf.int32)])
    def run(vocal, style):
        return pipeline(vocal, tf.reshape(style, [1]) if pipeline.styled else None)

    return measure_gains(lambda vocal, style: run(vocal, tf.constant(style, tf.int32)).numpy(), corpus_dir,
                         config.model.style_names, config.audio.sample_rate, progress=progress)


def load(export_dir: str):
    """(SavedModel, Config, griffin_lim_iters) from an export version directory."""
    meta = export_meta(export_dir)
    return tf.saved_model.load(export_dir), Config.from_dict(meta["config"]), meta["griffin_lim_iters"]


def saved_model_proto(export_dir: str):
    """The export's ``saved_model.pb``, parsed: its graphs, their function libraries and the SignatureDefs."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    return proto


def graph_nodes(proto) -> list:
    """Every NodeDef of a parsed SavedModel: its graphs' own and those of their function libraries."""
    return [n for meta_graph in proto.meta_graphs
            for n in [*meta_graph.graph_def.node,
                      *(node for fn in meta_graph.graph_def.library.function for node in fn.node_def)]]


def graph_ops(export_dir: str) -> set[str]:
    """Every op type in the SavedModel's graph and its function library."""
    proto = saved_model_proto(export_dir)
    functions = {fn.signature.name for meta_graph in proto.meta_graphs for fn in meta_graph.graph_def.library.function}
    return {n.op for n in graph_nodes(proto)} - functions  # a node may call a library function by its name


def unrestored_variables(export_dir: str) -> list[str]:
    """Variables a signature reads that the SavedModel's restore op does not fill: what TF1-style loaders
    (stock TF Serving's C++ loader, ``saved_model_cli run``) would find uninitialised at the first request.

    Those loaders run ``saver_def.restore_op_name`` on the graph's variable handles and then the signature's
    call op, so each handle the call op takes must also be an input of the restore op. A Keras 3 model tracked
    inside a ``tf.Module`` fails this (keras-team/keras#20095): its weights are restored into handles of other
    names than the ones its functions read. ``tf.saved_model.load`` (TF2) matches them by object and works.
    """
    meta_graph = saved_model_proto(export_dir).meta_graphs[0]
    nodes = {n.name: n for n in meta_graph.graph_def.node}
    handles = {name for name, n in nodes.items() if n.op == "VarHandleOp"}
    restore = nodes[meta_graph.saver_def.restore_op_name.split(":")[0]]
    restored = {i.split(":")[0] for i in restore.input}
    missing = set()
    for signature in meta_graph.signature_def.values():
        for output in signature.outputs.values():
            call = nodes[output.name.split(":")[0]]
            while call.op == "Identity" and call.input:  # the signature's outputs hang off its call op
                call = nodes[call.input[0].split(":")[0]]
            missing |= {i.split(":")[0] for i in call.input if i.split(":")[0] in handles} - restored
    return sorted(nodes[name].attr["shared_name"].s.decode() or name for name in missing)


def forbidden_ops(export_dir: str) -> list[str]:
    """Ops stock TF Serving lacks: tensorflow-io ops, Python callbacks, anything not a core TF op."""
    bad = []
    for op in sorted(graph_ops(export_dir)):
        if op.startswith("IO>") or op in ("PyFunc", "EagerPyFunc", "PyFuncStateless") or not hasattr(tf.raw_ops, op):
            bad.append(op)
    return bad
