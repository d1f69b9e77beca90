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
Serving fills signature defaults in; so does ``kgan serve``).

The generator runs in inference mode. With ``weights="float16"`` its trainable
weights are stored as float16 (half the size) and cast back to float32 in the
graph, so the arithmetic stays float32 (``StoredWeights``). With
``compute="bfloat16"`` the generator's arithmetic runs in bfloat16 (Keras'
``mixed_bfloat16`` policy on the same weights): about twice as fast on a CPU
with AVX512_BF16 through oneDNN's kernels, and far slower where a server runs
TensorFlow's own kernels, which emulate it.
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

__all__ = ["export", "restore_generator", "restore_from_export", "is_export", "export_meta", "load", "forbidden_ops",
           "StoredWeights", "EXPORT_CONFIG", "MODEL_NAME", "WEIGHT_DTYPES",
           "COMPUTE_DTYPES"]

EXPORT_CONFIG = "kgan_config.json"
MODEL_NAME = "kgan"
WEIGHT_DTYPES = ("float32", "float16")
COMPUTE_DTYPES = ("float32", "bfloat16")


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
        if policy != "float32":
            from kgan.training import dtype_policy

            with dtype_policy(policy):
                model = type(model).from_config(model.get_config())
        object.__setattr__(self, "_model", model)  # untracked: its float32 variables are not saved
        self.styles = getattr(model, "styles", 0)

    def __call__(self, inputs, training=False):
        if training:
            raise ValueError("StoredWeights is for inference only. Received: training=True")
        weights = [tf.cast(v, tf.float32) for v in self.half]
        outputs, _ = self._model.stateless_call(weights, [tf.identity(v) for v in self.full], inputs, training=False)
        return outputs


class ServingModule(tf.Module):
    def __init__(self, generator, config: Config, griffin_lim_iters: int, config_path: str, vocoder=None,
                 griffin_lim_init: str = "random", chord_net=None, chord_decoding: str = "argmax",
                 level_gains_db=None, high_band=None):
        super().__init__(name="kgan")
        self.pipeline = Generate(generator, config, griffin_lim_iters, vocoder=vocoder,
                                 griffin_lim_init=griffin_lim_init, chord_net=chord_net,
                                 chord_decoding=chord_decoding, level_gains_db=level_gains_db, high_band=high_band)
        self.config_asset = tf.saved_model.Asset(config_path)
        bins, frames = config.stft.num_bins, config.window.frames

        any_style = tf.constant([0], tf.int32)
        style_spec = tf.TensorSpec([None], tf.int32, name="style")
        vocal_spec = tf.TensorSpec([None, None], tf.float32, name="vocal")
        # an optional beat grid for a chord network that takes one: zeros, unknown, by default
        unknown_meter = tf.zeros([1, 3], tf.float32)
        meter_spec = tf.TensorSpec([None, 3], tf.float32, name="meter")

        def served(vocal, style=None, meter=None):
            return {"accompaniment": tf.identity(self.pipeline(vocal, style, meter), name="accompaniment")}

        if self.pipeline.styled and self.pipeline.gridded:
            @tf.function(input_signature=[vocal_spec, style_spec, meter_spec])
            def serve(vocal, style=any_style, meter=unknown_meter):
                return served(vocal, style, meter)
        elif self.pipeline.gridded:
            @tf.function(input_signature=[vocal_spec, meter_spec])
            def serve(vocal, meter=unknown_meter):
                return served(vocal, None, meter)
        elif self.pipeline.styled:  # an optional style: requests without one get 0, "any" (signature defaults)
            @tf.function(input_signature=[vocal_spec, style_spec])
            def serve(vocal, style=any_style):
                return served(vocal, style)
        else:
            @tf.function(input_signature=[vocal_spec])
            def serve(vocal):
                return served(vocal)

        if self.pipeline.styled:

            @tf.function(input_signature=[tf.TensorSpec([None, bins, frames, 1], tf.float32, name="vocal_spectrogram"),
                                          style_spec])
            def spectrogram(vocal_spectrogram, style=any_style):
                ids = self.pipeline.batch_styles(style, tf.shape(vocal_spectrogram)[0])
                out = self.pipeline.generator([self.pipeline.with_plan(vocal_spectrogram), ids], training=False)
                return {"accompaniment_spectrogram": tf.identity(out, name="accompaniment_spectrogram")}
        else:
            @tf.function(input_signature=[tf.TensorSpec([None, bins, frames, 1], tf.float32, name="vocal_spectrogram")])
            def spectrogram(vocal_spectrogram):
                out = self.pipeline.generator(self.pipeline.with_plan(vocal_spectrogram), training=False)
                return {"accompaniment_spectrogram": tf.identity(out, name="accompaniment_spectrogram")}

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

        self.serve = serve
        self.spectrogram = spectrogram
        self.metadata = metadata


def _warmup_requests(path: str, rate: int, frames_per_window: int, bins: int) -> None:
    """A TFRecord of PredictionLogs TF Serving replays at load time (one per signature)."""
    import numpy as np
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    requests = [
        ("serving_default", "vocal", np.zeros((1, rate), np.float32)),
        ("spectrogram", "vocal_spectrogram", -np.ones((1, bins, frames_per_window, 1), np.float32)),
    ]
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
    if meta.get("weights") == "float16" or meta.get("compute") == "bfloat16":  # StoredWeights' lists, in order
        for group, variables in (("half", generator.trainable_variables), ("full", generator.non_trainable_variables)):
            for i, v in enumerate(variables):
                _assign_stored(v, reader, [f"pipeline/generator/{group}/{i}/.ATTRIBUTES/VARIABLE_VALUE"], export_dir)
    else:
        _assign_operations(generator, reader, "pipeline/generator", export_dir)
    chord_net = None
    if meta.get("chords"):
        from kgan.chords import ChordNet

        chord_net = ChordNet.from_config(meta.get("chordnet") or {})  # exports before the field: the defaults
        _assign_operations(chord_net, reader, "pipeline/chord_net", export_dir)
    return generator, config, chord_net, meta


def export(run_dir: str, export_base: str, version: int | None = None, griffin_lim_iters: int = 16,
           checkpoint: str | None = None, weights: str = "float32", vocoder: str | None = None,
           griffin_lim_init: str = "integrated", chords: str | None = None, chord_decoding: str = "argmax",
           overlap: float | None = None, calibrate_levels: str | None = None, high_band: str | None = None,
           compute: str = "float32", progress: bool = False) -> str:
    """Write the newest (or given) checkpoint of ``run_dir`` as ``export_base/version``; returns that path.

    ``run_dir`` may also be an export version folder (``is_export``): its stored weights are exported again
    (``restore_from_export``), keeping its chord network unless ``chords`` names another.

    ``weights``: ``float32``, or ``float16`` to store the generator's (and vocoder's) weights at half the
    size. ``compute``: ``float32``, or ``bfloat16`` to run the generator's arithmetic in bfloat16 (fast on
    oneDNN's kernels with AVX512_BF16, emulated and slow on TensorFlow's own). ``vocoder``: a ``kgan vocoder train`` folder whose network makes the waveform instead of
    Griffin-Lim (``--phase vocoder``). ``griffin_lim_init``: Griffin-Lim's starting phase, ``integrated``
    (``kgan.spectrogram.integrated_phase``) or ``random``. ``chords``: the ``kgan chords train`` folder
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
    if griffin_lim_init not in ("integrated", "random"):
        raise ValueError(f"griffin_lim_init must be 'integrated' or 'random'. Received: {griffin_lim_init!r}")
    if weights not in WEIGHT_DTYPES:
        raise ValueError(f"weights must be one of {list(WEIGHT_DTYPES)}. Received: {weights!r}")
    if compute not in COMPUTE_DTYPES:
        raise ValueError(f"compute must be one of {list(COMPUTE_DTYPES)}. Received: {compute!r}")
    stored_chords, levels, bands = None, None, None
    if is_export(run_dir):
        if checkpoint is not None:
            raise ValueError(f"{run_dir} is an export: it has no checkpoints to choose from")
        generator, config, stored_chords, source = restore_from_export(run_dir)
        ckpt = str(source.get("checkpoint"))
        levels = source.get("level_calibration")
        bands = source.get("high_band")
    else:
        generator, config, ckpt = restore_generator(run_dir, checkpoint)
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
        from kgan.vocoder import Vocoder, load_vocoder

        trained = load_vocoder(vocoder, config.stft, config.audio.sample_rate)
        net = StoredWeights(trained.net, name="half_vocoder") if weights == "float16" else trained.net
        phase = Vocoder(net, config.stft, trained.settings)

    version = next_version(export_base) if version is None else int(version)
    final = os.path.join(export_base, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"{final} exists; choose another --version")
    served = generator
    if weights == "float16" or compute == "bfloat16":
        served = StoredWeights(generator, weights, "mixed_bfloat16" if compute == "bfloat16" else "float32")
    if calibrate_levels is not None and is_export(calibrate_levels):  # another export's gains, e.g. its float32 twin
        levels = export_meta(calibrate_levels).get("level_calibration")
        if levels is None:
            raise ValueError(f"{calibrate_levels}: this export has no level calibration to copy")
    elif calibrate_levels is not None:
        levels = _calibrate(served, config, griffin_lim_iters, phase, griffin_lim_init, chord_net, chord_decoding,
                            calibrate_levels, progress)
    names = list(config.model.style_names) or ["any"]
    gains = None if levels is None else [levels["gains_db"].get(name, 0.0) for name in names]
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
                       "griffin_lim_init": griffin_lim_init, "chords": chord_net is not None,
                       "chord_decoding": chord_decoding if chord_net is not None else None,
                       "chordnet": chord_net.get_config() if chord_net is not None else None,
                       "level_calibration": levels, "high_band": bands,
                       "vocoder": None if phase is None else dataclasses.asdict(phase.settings)},
                      f, indent=2, sort_keys=True)
        module = ServingModule(served, config, griffin_lim_iters, config_path, vocoder=phase,
                               griffin_lim_init=griffin_lim_init, chord_net=chord_net, chord_decoding=chord_decoding,
                               level_gains_db=gains, high_band=upper)
        model_dir = os.path.join(staging, "model")
        tf.saved_model.save(module, model_dir,
                            signatures={"serving_default": module.serve, "spectrogram": module.spectrogram,
                                        "metadata": module.metadata})
        extra = os.path.join(model_dir, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        _warmup_requests(os.path.join(extra, "tf_serving_warmup_requests"), config.audio.sample_rate,
                         config.window.frames, config.stft.num_bins)
        os.replace(model_dir, final)  # appears whole, or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _calibrate(served, config, griffin_lim_iters, phase, griffin_lim_init, chord_net, chord_decoding, corpus_dir,
               progress):
    """``kgan.levels.measure_gains`` of the export-to-be's own pipeline (uncalibrated) on ``corpus_dir``."""
    from kgan.levels import measure_gains

    pipeline = Generate(served, config, griffin_lim_iters, vocoder=phase, griffin_lim_init=griffin_lim_init,
                        chord_net=chord_net, chord_decoding=chord_decoding)

    @tf.function(input_signature=[tf.TensorSpec([1, None], tf.float32), tf.TensorSpec([], tf.int32)])
    def run(vocal, style):
        return pipeline(vocal, tf.reshape(style, [1]) if pipeline.styled else None)

    return measure_gains(lambda vocal, style: run(vocal, tf.constant(style, tf.int32)).numpy(), corpus_dir,
                         config.model.style_names, config.audio.sample_rate, progress=progress)


def load(export_dir: str):
    """(SavedModel, Config, griffin_lim_iters) from an export version directory."""
    meta = export_meta(export_dir)
    return tf.saved_model.load(export_dir), Config.from_dict(meta["config"]), meta["griffin_lim_iters"]


def graph_ops(export_dir: str) -> set[str]:
    """Every op type in the SavedModel's graph and its function library."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    ops, functions = set(), set()
    for meta_graph in sm.meta_graphs:
        library = meta_graph.graph_def.library
        functions |= {fn.signature.name for fn in library.function}
        ops |= {n.op for n in meta_graph.graph_def.node}
        for fn in library.function:
            ops |= {n.op for n in fn.node_def}
    return ops - functions  # a node may call a library function directly by its name


def forbidden_ops(export_dir: str) -> list[str]:
    """Ops stock TF Serving lacks: tensorflow-io ops, Python callbacks, anything not a core TF op."""
    bad = []
    for op in sorted(graph_ops(export_dir)):
        if op.startswith("IO>") or op in ("PyFunc", "EagerPyFunc", "PyFuncStateless") or not hasattr(tf.raw_ops, op):
            bad.append(op)
    return bad
