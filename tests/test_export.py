import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from kgan.audio import SampleFile
from kgan.export import forbidden_ops, load, unrestored_variables
from kgan.inference import Generate, chunk_bounds, generate_song, stream_song
from tests.conftest import REAL_MP3


@pytest.mark.parametrize("styled", [False, True])
def test_windows_go_through_in_chunks_and_one_remainder_call_with_no_padding(tiny_config, styled):
    from kgan.models.unet import UNetGenerator

    config = tiny_config.override(**{"model.styles": "a,b" if styled else ""})
    generator = UNetGenerator.from_kgan_config(config)
    generated = tf.Variable(0)

    def counting(x, training):  # the generator, counting the windows it is given
        generated.assign_add(tf.shape(x[0] if styled else x)[0])
        return generator(x, training=training)

    pipe = Generate(counting, config, chunk_windows=3)
    run = tf.function(pipe.generate_windows)
    rng = np.random.default_rng(0)
    for m in (1, 2, 3, 4, 7):
        windows = rng.uniform(-1, 1, (m, 128, 32, 1)).astype(np.float32)
        ids = rng.integers(0, 3, m).astype(np.int32)
        generated.assign(0)
        out = run(windows, tf.constant(ids) if styled else None).numpy()
        assert int(generated.numpy()) == m  # 7 windows: chunks of 3 + 3, then 1 on its own, not 9
        one_by_one = [generator([windows[i:i + 1], ids[i:i + 1]] if styled else windows[i:i + 1],
                                training=False).numpy() for i in range(m)]
        np.testing.assert_allclose(out, np.concatenate(one_by_one), atol=1e-5)


def test_export_layout_assets_and_warmup(exported):
    path, base = exported
    assert path == os.path.join(base, "1")
    assert sorted(os.listdir(path)) == ["assets", "assets.extra", "fingerprint.pb", "saved_model.pb", "variables"]
    assert [n for n in os.listdir(base) if n.startswith(".tmp")] == []
    from tensorflow_serving.apis import prediction_log_pb2

    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(os.path.join(path, "assets.extra", "tf_serving_warmup_requests"))]
    assert sorted(log.predict_log.request.model_spec.signature_name for log in logs) == ["serving_default", "spectrogram"]


def test_exported_model_equals_the_in_memory_pipeline(exported, run_dir, tiny_config):
    saved, config, iters = load(exported[0])
    assert config == tiny_config and iters == 8
    pipeline = Generate(run_dir[1].generator, tiny_config, griffin_lim_iters=8)
    x = (0.1 * np.random.default_rng(0).standard_normal((2, 9000))).astype(np.float32)
    served = saved.signatures["serving_default"](vocal=x)["accompaniment"].numpy()
    # Griffin-Lim iterations amplify float rounding that differs between the graph and eager runs (by how
    # much depends on the trained weights), and its integrated starting phase, a running sum of each frame's
    # partial frequencies, carries that rounding on through the song: agree to 3e-4 of full scale in RMS
    # (-70 dB) and 5e-3 at the worst sample, far below any real difference in the pipeline
    error = served - pipeline(x).numpy()
    assert np.sqrt(np.mean(error ** 2)) < 3e-4 and np.max(np.abs(error)) < 5e-3, np.max(np.abs(error))
    other = Generate(run_dir[1].generator, tiny_config, griffin_lim_iters=8, griffin_lim_init="random")(x).numpy()
    assert np.sqrt(np.mean((served - other) ** 2)) > 10 * np.sqrt(np.mean(error ** 2))  # the bound can fail
    windows = np.random.default_rng(1).uniform(-1, 1, (3, 128, 32, 1)).astype(np.float32)
    out = saved.signatures["spectrogram"](vocal_spectrogram=windows)["accompaniment_spectrogram"].numpy()
    np.testing.assert_allclose(out, run_dir[1].generator(windows, training=False).numpy(), atol=1e-5)


def test_export_overlap_generates_fewer_windows_to_the_same_length(run_dir, exported, tmp_path):
    from kgan.export import export

    quarter, config, _ = load(export(run_dir[0], str(tmp_path / "quarter"), griffin_lim_iters=8, overlap=0.25))
    half = load(exported[0])[1]
    assert config.window.overlap == 0.25 and half.window.overlap == 0.5
    assert config.window.generate_hop == 24 and half.window.generate_hop == 16  # tiny: 32-frame windows
    x = (0.1 * np.random.default_rng(0).standard_normal((1, 9000))).astype(np.float32)
    y = quarter.signatures["serving_default"](vocal=x)["accompaniment"].numpy()
    assert y.shape == x.shape and np.all(np.isfinite(y))


def test_an_export_runs_the_griffin_lim_algorithm_it_was_given(run_dir, exported, tmp_path):
    from kgan.export import export, export_meta

    path = export(run_dir[0], str(tmp_path / "agla"), griffin_lim_iters=8, griffin_lim_algorithm="accelerated")
    assert export_meta(path)["griffin_lim_algorithm"] == "accelerated"
    assert export_meta(exported[0])["griffin_lim_algorithm"] == "fast"
    again = export_meta(export(path, str(tmp_path / "again")))  # an export exported again keeps its Griffin-Lim
    assert (again["griffin_lim_algorithm"], again["griffin_lim_iters"], again["griffin_lim_init"]) == (
        "accelerated", 8, "integrated")
    told = export_meta(export(path, str(tmp_path / "told"), griffin_lim_iters=4, griffin_lim_algorithm="fast"))
    assert (told["griffin_lim_algorithm"], told["griffin_lim_iters"]) == ("fast", 4)
    x = (0.1 * np.random.default_rng(0).standard_normal((1, 9000))).astype(np.float32)
    served = load(path)[0].signatures["serving_default"](vocal=x)["accompaniment"].numpy()
    local = {algorithm: Generate(run_dir[1].generator, load(path)[1], griffin_lim_iters=8,
                                 griffin_lim_algorithm=algorithm)(x).numpy() for algorithm in ("fast", "accelerated")}
    # as in test_exported_model_equals_the_in_memory_pipeline: the graph's rounding differs from eager's
    assert np.sqrt(np.mean((served - local["accelerated"]) ** 2)) < 3e-4
    assert np.sqrt(np.mean((served - local["fast"]) ** 2)) > 1e-3  # another algorithm, another waveform
    with pytest.raises(ValueError, match="griffin_lim_algorithm"):
        export(run_dir[0], str(tmp_path / "bad"), griffin_lim_algorithm="adam")
    with pytest.raises(ValueError, match="griffin_lim_algorithm"):
        Generate(run_dir[1].generator, load(path)[1], griffin_lim_algorithm="adam")


def test_exported_graph_has_only_ops_stock_tf_serving_has(exported, tmp_path):
    assert forbidden_ops(exported[0]) == []

    class WithPython(tf.Module):  # a negative control: the check must catch a py_function
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def f(self, x):
            return tf.py_function(lambda t: t * 2, [x], tf.float32)

    tf.saved_model.save(WithPython(), str(tmp_path / "bad"))
    assert "EagerPyFunc" in forbidden_ops(str(tmp_path / "bad"))


def test_a_tf1_style_loader_restores_every_variable_the_export_reads(exported, tmp_path):
    """Stock TF Serving loads a SavedModel as TF1 did: the restore op, then the signature's tensors by name.
    saved_model_cli run loads it the same way, so it stands in for the server here."""
    import keras

    assert unrestored_variables(exported[0]) == []
    x = (0.1 * np.random.default_rng(0).standard_normal((1, 6000))).astype(np.float32)
    np.save(tmp_path / "vocal.npy", x)
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    out = subprocess.run([cli, "run", "--dir", exported[0], "--tag_set", "serve", "--signature_def", "serving_default",
                          "--inputs", f"vocal={tmp_path / 'vocal.npy'}", "--outdir", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    served = load(exported[0])[0].signatures["serving_default"](vocal=x)["accompaniment"].numpy()
    np.testing.assert_allclose(np.load(tmp_path / "out" / "accompaniment.npy"), served, atol=1e-5)

    class WithKeras(tf.Module):  # a negative control: a Keras 3 model inside a tf.Module (keras-team/keras#20095)
        def __init__(self):
            super().__init__()
            self.net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def serve(self, x):
            return {"y": self.net(x)}

    module = WithKeras()
    tf.saved_model.save(module, str(tmp_path / "keras"), signatures={"serving_default": module.serve})
    assert unrestored_variables(str(tmp_path / "keras")) == ["sequential/dense/bias", "sequential/dense/kernel"]


def test_saved_model_cli_lists_both_signatures(exported):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    out = subprocess.run([cli, "show", "--dir", exported[0], "--all"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for text in ("signature_def['serving_default']", "signature_def['spectrogram']", "inputs['vocal']",
                 "outputs['accompaniment']", "inputs['vocal_spectrogram']", "outputs['accompaniment_spectrogram']"):
        assert text in out.stdout


@pytest.mark.parametrize("seconds", [None, "window", 3.3])
def test_any_length_comes_back_the_same_length(exported, tiny_config, seconds):
    saved, config, _ = load(exported[0])
    from kgan.spectrogram import Spectrogram

    rate = config.audio.sample_rate
    length = {None: 1, "window": Spectrogram(config.stft).num_samples(config.window.frames)}.get(seconds)
    length = length or int(seconds * rate)
    x = np.zeros((1, length), np.float32)
    y = saved.signatures["serving_default"](vocal=x)["accompaniment"].numpy()
    assert y.shape == (1, length) and np.all(np.isfinite(y))


@pytest.mark.slow
def test_ten_minutes_in_one_call(exported):
    saved, config, _ = load(exported[0])
    x = (0.05 * np.sin(np.arange(600 * config.audio.sample_rate) * 0.05)).astype(np.float32)[None]
    y = saved.signatures["serving_default"](vocal=x)["accompaniment"].numpy()
    assert y.shape == x.shape and np.all(np.isfinite(y))


def test_chunks_cross_fade_to_exact_unity():
    x = np.random.default_rng(0).standard_normal(10_000).astype(np.float32)
    assert chunk_bounds(100, 200, 10) == [(0, 100)]
    bounds = chunk_bounds(10_000, 3000, 500)
    assert bounds[0] == (0, 3000) and bounds[-1][1] == 10_000
    y = generate_song(lambda v: v, x, rate=1000, chunk_seconds=3.0, overlap_seconds=0.5)
    np.testing.assert_allclose(y, x, atol=1e-6)  # fades sum to one over every overlap


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_less_window_overlap_means_fewer_windows_and_the_same_frames(tiny_config, overlap):
    """The cross-fade is exact at any overlap: windows that are each the input come back as the input."""
    cfg = tiny_config.override(**{"window.overlap": overlap})
    pipe = Generate(lambda w, training=False: w, cfg)
    frames = np.random.default_rng(4).uniform(-1, 1, (1, 301, cfg.stft.num_bins)).astype(np.float32)
    windows = pipe.windows(frames)
    hop = {0.0: 32, 0.25: 24, 0.5: 16}[overlap]  # tiny windows are 32 frames
    assert pipe.window_hop == hop and windows.shape[1] == 1 + -(-(301 - 32) // hop)
    np.testing.assert_allclose(pipe.cross_fade(windows, 301).numpy(), frames, atol=1e-6)


def test_streamed_blocks_tile_the_song_and_hold_one_chunk_at_a_time(tmp_path):
    x = np.random.default_rng(1).standard_normal(12_345).astype(np.float32)
    calls = []

    def predict(v):
        calls.append(v.shape[1])
        return np.tanh(1.3 * v)

    blocks = list(stream_song(predict, x, rate=1000, chunk_seconds=3.0, overlap_seconds=0.5))
    starts = [start for start, _ in blocks]
    assert starts == [start for start, _ in chunk_bounds(len(x), 3000, 500)]
    assert all(a + len(block) == b for (a, block), b in zip(blocks, starts[1:] + [len(x)]))  # contiguous, no gap
    assert max(len(block) for _, block in blocks) <= 3000 and max(calls) <= 3000
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), generate_song(predict, x, 1000, 3.0, 0.5))
    # a file read lazily slices like the array it holds
    sf.write(tmp_path / "a.wav", x / 8, 1000, subtype="FLOAT")
    view = SampleFile(tmp_path / "a.wav")
    assert len(view) == len(x)
    np.testing.assert_array_equal(view[100:2100], x[100:2100] / 8)
    np.testing.assert_array_equal(view[12_000:99_999], x[12_000:] / 8)


@pytest.mark.slow
def test_cli_generate_writes_wavs_and_png_and_survives_a_bad_file(exported, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    cmd = [sys.executable, "-m", "cli.main", "generate", REAL_MP3, str(bad), "-o", str(tmp_path / "out"),
           "--model", exported[1], "--chunk-seconds", "4", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert f"error: {bad}: cannot decode audio" in proc.stderr

    name = "slow-motion-dream-excerpt"
    acc, rate = sf.read(tmp_path / "out" / f"{name}_accompaniment.wav")
    remix, _ = sf.read(tmp_path / "out" / f"{name}_remix.wav")
    assert rate == 8000 and len(acc) == len(remix) and abs(len(acc) / rate - 10.9) < 0.2
    assert (tmp_path / "out" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_float16_weights_halve_the_export_and_keep_its_output(run_dir, tmp_path):
    from kgan.export import export

    # Griffin-Lim from a random phase here: the integrated start carries any change on through the
    # song (see the test above), which would hide what the weights' precision alone does
    half = export(run_dir[0], str(tmp_path / "half"), griffin_lim_iters=8, weights="float16",
                  griffin_lim_init="random")
    full = export(run_dir[0], str(tmp_path / "full"), griffin_lim_iters=8, griffin_lim_init="random")
    assert forbidden_ops(half) == []

    def size(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(os.path.join(path, "variables"))
                   for f in files)

    weights = sum(int(np.prod(v.shape)) for v in run_dir[1].generator.trainable_variables)
    # float32: 4 bytes a weight; float16: 2 (plus the float32 batch-norm statistics and the index)
    assert size(full) > 3.8 * weights and size(half) < 0.6 * size(full)
    full_model, _, _ = load(full)
    half_model, config, _ = load(half)
    windows = np.random.default_rng(2).uniform(-1, 1, (3, 128, 32, 1)).astype(np.float32)
    a = full_model.signatures["spectrogram"](vocal_spectrogram=windows)["accompaniment_spectrogram"].numpy()
    b = half_model.signatures["spectrogram"](vocal_spectrogram=windows)["accompaniment_spectrogram"].numpy()
    assert 0 < np.max(np.abs(a - b)) < 2e-3  # rounded weights, not the same ones, and nothing measurable lost
    x = (0.1 * np.random.default_rng(3).standard_normal((1, 9000))).astype(np.float32)
    wa = full_model.signatures["serving_default"](vocal=x)["accompaniment"].numpy()
    wb = half_model.signatures["serving_default"](vocal=x)["accompaniment"].numpy()
    # Griffin-Lim's phase amplifies any change in the samples, so compare what is heard: magnitudes
    from kgan.spectrogram import Spectrogram

    spec = Spectrogram(config.stft)
    ma, mb = (spec.magnitude(spec.forward(w)).numpy() for w in (wa, wb))
    assert np.linalg.norm(ma - mb) < 0.02 * np.linalg.norm(ma)  # measured 0.2-0.5 %


def _node_dtypes(export_dir: str, op: str) -> set[int]:
    """The ``T`` attributes of every ``op`` node in an export's graph and function library."""
    from kgan.export import graph_nodes, saved_model_proto

    return {n.attr["T"].type for n in graph_nodes(saved_model_proto(export_dir)) if n.op == op}


def test_bfloat16_compute_runs_the_generator_in_bfloat16_on_the_same_weights(run_dir, exported, tmp_path):
    from kgan.export import export, export_meta

    fast = export(run_dir[0], str(tmp_path / "bf16"), griffin_lim_iters=4, compute="bfloat16", weights="float16")
    assert forbidden_ops(fast) == []
    assert export_meta(fast)["compute"] == "bfloat16" and export_meta(exported[0])["compute"] == "float32"
    # the convolutions run in bfloat16 (and only there: the features, plan and phase stay float32)
    assert tf.bfloat16.as_datatype_enum in _node_dtypes(fast, "Conv2D")
    assert tf.bfloat16.as_datatype_enum not in _node_dtypes(exported[0], "Conv2D")
    assert tf.bfloat16.as_datatype_enum not in _node_dtypes(fast, "RFFT") | _node_dtypes(fast, "Log")
    windows = np.random.default_rng(4).uniform(-1, 1, (3, 128, 32, 1)).astype(np.float32)

    def spectrogram(path):
        model, _, _ = load(path)
        out = model.signatures["spectrogram"](vocal_spectrogram=windows)["accompaniment_spectrogram"]
        return out.dtype, out.numpy()

    (dtype, a), (_, b) = spectrogram(exported[0]), spectrogram(fast)
    assert dtype == tf.float32 and a.shape == b.shape
    # bfloat16 keeps 8 bits of mantissa: close, not equal (the tiny model's output moves by ~1e-3)
    assert 0 < np.mean(np.abs(a - b)) < 0.01 and np.max(np.abs(a - b)) < 0.1
    # exported again in float32, its weights are the source's float16 values: back to the float16 export
    again = export(fast, str(tmp_path / "again"), griffin_lim_iters=4, weights="float16")
    half = export(run_dir[0], str(tmp_path / "half"), griffin_lim_iters=4, weights="float16")
    np.testing.assert_array_equal(spectrogram(again)[1], spectrogram(half)[1])
    with pytest.raises(ValueError, match="compute must be one of"):
        export(run_dir[0], str(tmp_path / "bad"), compute="float16")


def _stems(folder, name, vocal, accompaniment, rate, style=None, split="val"):
    import json

    song = os.path.join(folder, name)
    os.makedirs(song)
    sf.write(os.path.join(song, "vocals.flac"), vocal, rate)
    sf.write(os.path.join(song, "accompaniment.flac"), accompaniment, rate)
    with open(os.path.join(song, "song.json"), "w") as f:
        json.dump({"style": style} if style else {}, f)


def test_level_gains_are_what_brings_each_style_to_its_true_level(tmp_path):
    import json

    from kgan.levels import measure_gains

    rate, folder = 8000, str(tmp_path / "corpus")
    rng = np.random.default_rng(0)
    louder = {"piano": 0.5, "band": 2.0}  # the true accompaniment is this many times the vocal
    names = []
    for style, k in louder.items():
        for i in range(3):
            vocal = (0.1 * rng.standard_normal(rate)).astype(np.float32)
            names.append(f"{style}{i}")
            _stems(folder, names[-1], vocal, k * vocal, rate, style)
    _stems(folder, "test0", vocal, vocal, rate, "band", split="test")
    with open(os.path.join(folder, "splits.json"), "w") as f:
        json.dump({"train": [], "val": names, "test": ["test0"]}, f)
    # a "generator" that plays the vocal back 0.25x in piano (id 1), 1x in band (id 2) and 0.1x in any (id 0)
    played = {0: 0.1, 1: 0.25, 2: 1.0}
    result = measure_gains(lambda vocal, style: played[style] * vocal, folder, ["any", "piano", "band"], rate,
                           per_style=2, progress=False)
    assert result["gains_db"]["piano"] == pytest.approx(20 * np.log10(0.5 / 0.25), abs=0.02)  # +6 dB
    assert result["gains_db"]["band"] == pytest.approx(0.0 + 20 * np.log10(2.0), abs=0.02)
    # any: two songs, one of each style in turn, at 0.1x: the median of +14 and +26 dB
    assert result["songs"] == {"any": 2, "piano": 2, "band": 2}
    assert result["gains_db"]["any"] == pytest.approx(np.median([20 * np.log10(5), 20 * np.log10(20)]), abs=0.02)
    lonely = measure_gains(lambda vocal, style: vocal, folder, ["any", "organ"], rate, progress=False)
    assert lonely["uncalibrated"] == ["organ"] and lonely["gains_db"]["organ"] == 0.0
    with pytest.raises(ValueError, match="no train songs to calibrate"):
        measure_gains(lambda vocal, style: vocal, folder, [], rate, split="train", progress=False)


def test_a_level_calibrated_export_scales_its_waveform_by_the_measured_gain(run_dir, exported, chorale_dir, tmp_path):
    import json

    from kgan.export import export

    calibrated = export(exported[0], str(tmp_path / "calibrated"), griffin_lim_iters=8,
                        calibrate_levels=chorale_dir)
    with open(os.path.join(calibrated, "assets", "kgan_config.json")) as f:
        levels = json.load(f)["level_calibration"]
    assert levels["songs"] == {"any": 1} and levels["uncalibrated"] == []  # the fixture's one val song
    gain = 10 ** (levels["gains_db"]["any"] / 20)
    x = (0.1 * np.random.default_rng(0).standard_normal((1, 9000))).astype(np.float32)
    plain = load(exported[0])[0].signatures["serving_default"](vocal=x)["accompaniment"].numpy()
    scaled = load(calibrated)[0].signatures["serving_default"](vocal=x)["accompaniment"].numpy()
    np.testing.assert_allclose(scaled, gain * plain, rtol=1e-4, atol=1e-6)
    assert abs(levels["gains_db"]["any"]) > 0.01  # a tiny model is nowhere near the true level: a real gain
    assert forbidden_ops(calibrated) == []
    again = export(calibrated, str(tmp_path / "again"), griffin_lim_iters=8)  # re-exported, it keeps its gains
    np.testing.assert_allclose(load(again)[0].signatures["serving_default"](vocal=x)["accompaniment"].numpy(),
                               scaled, rtol=1e-5, atol=1e-7)
    copied = export(run_dir[0], str(tmp_path / "copied"), griffin_lim_iters=8, calibrate_levels=calibrated)
    np.testing.assert_allclose(load(copied)[0].signatures["serving_default"](vocal=x)["accompaniment"].numpy(),
                               scaled, rtol=1e-4, atol=1e-6)  # the run's own export, with the gains copied over
    with pytest.raises(ValueError, match="has no level calibration to copy"):
        export(run_dir[0], str(tmp_path / "nothing"), griffin_lim_iters=8, calibrate_levels=exported[0])


def test_a_loud_accompaniment_is_written_whole_and_its_remix_is_not_clipped(run_dir, exported, tmp_path):
    import json
    import shutil

    from kgan.export import export
    from kgan.generation import LocalModel, generate_files

    source = tmp_path / "loud-source" / "1"
    shutil.copytree(exported[0], source)
    meta_path = source / "assets" / "kgan_config.json"
    meta = json.loads(meta_path.read_text())
    meta["level_calibration"] = {"gains_db": {"any": 40.0}, "songs": {"any": 1}, "spread_db": {"any": 0.0},
                                 "uncalibrated": [], "split": "val", "seconds": 30.0}
    meta_path.write_text(json.dumps(meta))
    loud = export(run_dir[0], str(tmp_path / "loud"), griffin_lim_iters=8, calibrate_levels=str(source))
    vocal = (0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 8000)).astype(np.float32)
    sf.write(tmp_path / "v.wav", vocal, 8000)
    assert generate_files([str(tmp_path / "v.wav")], str(tmp_path / "out"), LocalModel(loud), progress=False) == []
    # 40 dB up, far past full scale: scaled back into it, not clipped (a clipped wave sits at full scale for long)
    heard, _ = sf.read(tmp_path / "v.wav", dtype="float32")  # the vocal as the file holds it (16-bit)
    served = LocalModel(loud)(heard[None])[0]
    assert np.abs(served).max() > 2.0
    for suffix in ("accompaniment", "remix"):
        written, _ = sf.read(tmp_path / "out" / f"v_{suffix}.wav", dtype="float32")
        assert 0.95 < np.abs(written).max() <= 0.99 and np.mean(np.abs(written) > 0.97) < 0.01, suffix
    accompaniment, _ = sf.read(tmp_path / "out" / "v_accompaniment.wav", dtype="float32")
    scale = np.abs(accompaniment).max() / np.abs(served).max()
    np.testing.assert_allclose(accompaniment, served * scale, atol=2e-4)  # the same wave, one gain
    assert [n for n in os.listdir(tmp_path / "out") if n.startswith(".tmp-")] == []  # no scratch left


def test_a_stereo_vocal_keeps_its_image_in_the_remix(exported, tmp_path):
    from kgan.generation import LocalModel, generate_files

    t = np.arange(16000) / 8000
    left, right = 0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)
    stereo = np.stack([left, right], 1).astype(np.float32)
    sf.write(tmp_path / "stereo.wav", stereo, 8000, subtype="FLOAT")
    sf.write(tmp_path / "mono.wav", stereo.mean(axis=1), 8000, subtype="FLOAT")
    sf.write(tmp_path / "three.wav", np.stack([left, right, left], 1).astype(np.float32), 8000, subtype="FLOAT")
    out = tmp_path / "out"
    paths = [str(tmp_path / f"{name}.wav") for name in ("stereo", "mono", "three")]
    assert generate_files(paths, str(out), LocalModel(exported[0]), chunk_seconds=1.0, progress=False) == []

    def read(name):
        return sf.read(out / name, dtype="float32", always_2d=True)[0]

    accompaniment, remix = read("stereo_accompaniment.wav"), read("stereo_remix.wav")
    assert accompaniment.shape == (16000, 1) and remix.shape == (16000, 2)
    # the model hears the channels' average: the accompaniment is the mono file's
    np.testing.assert_array_equal(accompaniment, read("mono_accompaniment.wav"))
    # each channel is its own vocal plus the accompaniment, the same mix in both (to 16-bit rounding)
    gains = []
    for channel, vocal in enumerate((left, right)):
        basis = np.stack([accompaniment[:, 0], vocal], axis=1)
        gains.append(np.linalg.lstsq(basis, remix[:, channel], rcond=None)[0])
        assert np.abs(remix[:, channel] - basis @ gains[-1]).max() < 2e-4
    np.testing.assert_allclose(gains[0], gains[1], rtol=1e-3)
    assert read("mono_remix.wav").shape == (16000, 1) and read("three_remix.wav").shape == (16000, 1)


@pytest.fixture(scope="module")
def twin_export(run_dir, tmp_path_factory):
    """The tiny run exported with ``compute="both"``: float32 signatures and their bfloat16 twins."""
    from kgan.export import export

    return export(run_dir[0], str(tmp_path_factory.mktemp("twin")), griffin_lim_iters=4, compute="both",
                  weights="float16")


def test_both_computes_share_one_copy_of_the_weights_and_match_the_single_exports(run_dir, twin_export, tmp_path):
    from kgan.export import BFLOAT16_SIGNATURES, export

    assert forbidden_ops(twin_export) == []
    from tensorflow_serving.apis import prediction_log_pb2

    warmups = tf.data.TFRecordDataset(os.path.join(twin_export, "assets.extra", "tf_serving_warmup_requests"))
    assert sorted(prediction_log_pb2.PredictionLog.FromString(r.numpy()).predict_log.request.model_spec.signature_name
                  for r in warmups) == ["serving_bfloat16", "serving_default", "spectrogram", "spectrogram_bfloat16"]
    single = {c: export(run_dir[0], str(tmp_path / c), griffin_lim_iters=4, compute=c, weights="float16")
              for c in ("float32", "bfloat16")}

    def size(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(os.path.join(path, "variables"))
                   for f in files)

    assert size(twin_export) < 1.05 * size(single["float32"])  # the twin adds no weights
    model, _, _ = load(twin_export)
    assert set(BFLOAT16_SIGNATURES.values()) <= set(model.signatures)
    windows = np.random.default_rng(5).uniform(-1, 1, (2, 128, 32, 1)).astype(np.float32)
    x = (0.1 * np.random.default_rng(6).standard_normal((1, 6000))).astype(np.float32)
    for name, twin in BFLOAT16_SIGNATURES.items():
        arg = {"vocal_spectrogram": windows} if name == "spectrogram" else {"vocal": x}
        ours = {sig: next(iter(model.signatures[sig](**arg).values())).numpy() for sig in (name, twin)}
        theirs = {c: next(iter(load(single[c])[0].signatures[name](**arg).values())).numpy() for c in single}
        np.testing.assert_array_equal(ours[name], theirs["float32"])
        np.testing.assert_array_equal(ours[twin], theirs["bfloat16"])
        assert not np.array_equal(ours[name], ours[twin])
    again = export(twin_export, str(tmp_path / "again"), griffin_lim_iters=4, weights="float16")  # reads back
    np.testing.assert_array_equal(load(again)[0].signatures["spectrogram"](vocal_spectrogram=windows)
                                  ["accompaniment_spectrogram"].numpy(),
                                  load(single["float32"])[0].signatures["spectrogram"](vocal_spectrogram=windows)
                                  ["accompaniment_spectrogram"].numpy())


def test_signature_for_takes_the_twin_only_where_bfloat16_runs_at_speed(twin_export, exported, monkeypatch):
    from kgan import export as ex
    from kgan.generation import LocalModel

    twins = {"serving_default", "serving_bfloat16", "spectrogram", "spectrogram_bfloat16", "metadata"}
    assert ex.signature_for("serving_default", twins, "bfloat16") == "serving_bfloat16"
    assert ex.signature_for("spectrogram", twins, "float32") == "spectrogram"
    assert ex.signature_for("metadata", twins, "bfloat16") == "metadata"
    assert ex.signature_for("serving_default", {"serving_default"}, "bfloat16") == "serving_default"  # no twin
    for native in (True, False):
        monkeypatch.setattr(ex, "bfloat16_native", lambda: native)
        assert ex.signature_for("serving_default", twins) == ("serving_bfloat16" if native else "serving_default")
        assert LocalModel(twin_export).signature == ("serving_bfloat16" if native else "serving_default")
        assert LocalModel(exported[0]).signature == "serving_default"
    with pytest.raises(ValueError, match="compute must be"):
        ex.signature_for("serving_default", twins, "float16")
    monkeypatch.undo()
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # TensorFlow's own kernels emulate bfloat16: never auto
    assert not ex.bfloat16_native()
