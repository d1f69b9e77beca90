import keras
import numpy as np
import pytest

from kgan.config import get_preset
from kgan.models import PatchGANDiscriminator, UNetGenerator
from kgan.models.patchgan import receptive_field


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, (2, 64, 32, 1)).astype("float32"), rng.uniform(-1, 1, (2, 64, 32, 1)).astype("float32")


@pytest.mark.parametrize("upsample", ["transpose", "resize"])
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_generator_shapes_range_and_names(batch, norm, upsample):
    g = UNetGenerator(bins=64, frames=32, depth=5, base_filters=4, max_filters=16, norm=norm, upsample=upsample)
    y = keras.ops.convert_to_numpy(g(batch[0], training=False))
    assert y.shape == (2, 64, 32, 1) and np.all(np.abs(y) <= 1.0)
    names = [layer.name for layer in g.layers]
    assert len(names) == len(set(names))
    assert {"down1_conv", "down5_conv", "up1_concat", "up4_norm", "accompaniment"} <= set(names)
    assert g.get_layer("down5_act").output.shape == (None, 2, 1, 16)  # bottleneck (B, F/32, T/32, 16)


def test_default_generator_matches_the_documented_size():
    g = UNetGenerator.from_kgan_config(get_preset("default"))
    assert g.get_layer("down7_act").output.shape == (None, 4, 1, 256)
    assert 10_000_000 < g.count_params() < 11_000_000


def test_inference_is_deterministic_and_training_mode_is_not(batch):
    g = UNetGenerator(bins=64, frames=32, depth=5, base_filters=4, max_filters=16, dropout=0.5)
    a, b = (keras.ops.convert_to_numpy(g(batch[0], training=False)) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    c, d = (keras.ops.convert_to_numpy(g(batch[0], training=True)) for _ in range(2))
    assert not np.array_equal(c, d)  # dropout active only when training


@pytest.mark.parametrize("model_fn", [
    lambda: UNetGenerator(bins=64, frames=32, depth=5, base_filters=4, max_filters=16, upsample="resize"),
    lambda: PatchGANDiscriminator(bins=64, frames=32, layers=2, base_filters=4, norm="instance"),
])
def test_save_then_load_gives_identical_outputs(tmp_path, batch, model_fn):
    model = model_fn()
    inputs = batch[0] if isinstance(model, UNetGenerator) else list(batch)
    before = keras.ops.convert_to_numpy(model(inputs, training=False))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(inputs, training=False)), before)


def test_patchgan_is_conditional_with_a_70_pixel_receptive_field(batch):
    assert receptive_field(3) == 70 and receptive_field(2) == 34
    d = PatchGANDiscriminator(bins=64, frames=32, layers=3, base_filters=4)
    assert d.receptive_field == 70
    logits = keras.ops.convert_to_numpy(d(list(batch), training=False))
    assert logits.shape == (2, 8, 4, 1)
    other = keras.ops.convert_to_numpy(d([batch[1], batch[1]], training=False))
    assert not np.allclose(logits, other)  # the vocal condition changes the verdict


@pytest.mark.parametrize("build, message", [
    (lambda: UNetGenerator(bins=100, frames=32, depth=5),
     r"UNetGenerator needs bins and frames divisible by 2\*\*depth = 32. Received: bins=100, frames=32, depth=5"),
    (lambda: UNetGenerator(bins=64, frames=48, depth=5), r"Received: bins=64, frames=48"),
    (lambda: PatchGANDiscriminator(bins=64, frames=20, layers=3),
     r"PatchGANDiscriminator needs bins and frames divisible by 2\*\*layers = 8. Received: bins=64, frames=20"),
])
def test_geometry_errors_are_clear(build, message):
    with pytest.raises(ValueError, match=message):
        build()


SYNC_BN_CHECK = """
import json, sys
import numpy as np, keras, tensorflow as tf
from kgan.training import split_cpu, make_strategy
split_cpu(2)
from kgan.models.blocks import SyncBatchNormalization
rng = np.random.default_rng(0)
x = (1000.0 + 0.01 * rng.standard_normal((4, 8, 8, 2))).astype(np.float32)
x[..., 1] = rng.standard_normal((4, 8, 8))  # an ordinary channel beside it
strategy = make_strategy(2)
with strategy.scope():
    ours = SyncBatchNormalization(momentum=0.0, epsilon=1e-12)
    theirs = keras.layers.BatchNormalization(synchronized=True, momentum=0.0, epsilon=1e-12)
    ours.build(x.shape), theirs.build(x.shape)
batch = next(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(x).batch(4))))
@tf.function
def normalise(b):
    strategy.run(lambda part: [ours(part, training=True), theirs(part, training=True)], args=(b,))
normalise(batch)
json.dump({"truth": x.astype(np.float64).var(axis=(0, 1, 2)).tolist(), "ours": np.array(ours.moving_variance).tolist(),
           "keras": np.array(theirs.moving_variance).tolist(), "replicas": strategy.num_replicas_in_sync}, sys.stdout)
"""


def test_synchronised_batch_norm_variance_survives_a_large_mean():
    """A channel at 1000 +- 0.01 (what a constant input plane gives): E[x^2] - E[x]^2 cancels in float32.

    Run in a fresh process with two CPU replicas: collectives of another strategy in this process would
    share its instance keys.
    """
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", SYNC_BN_CHECK], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert r["replicas"] == 2
    np.testing.assert_allclose(r["ours"], r["truth"], rtol=1e-3)  # momentum 0: the batch's own variance
    # the check can fail: Keras' one-pass variance misses the large-mean channel's by far
    assert abs(r["keras"][0] / r["truth"][0] - 1) > 0.1


def test_leaky_relu_takes_its_bfloat16_gradient_in_float32():
    """kgan's LeakyReLU: Keras' forward pass, and in bfloat16 training a gradient within one bfloat16 step of
    TF's own bfloat16 kernel (which rounds twice) and equal to the float32 gradient rounded once."""
    import tensorflow as tf

    from kgan.models.blocks import LeakyReLU

    rng = np.random.default_rng(0)
    x = tf.cast(rng.normal(size=(2, 16, 8, 4)).astype("float32"), tf.bfloat16)
    upstream = tf.cast(rng.normal(size=(2, 16, 8, 4)).astype("float32"), tf.bfloat16)
    ours, theirs = LeakyReLU(0.2, dtype="mixed_bfloat16"), keras.layers.LeakyReLU(0.2, dtype="mixed_bfloat16")

    def forward_and_gradient(layer, training):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training) if isinstance(layer, LeakyReLU) else layer(x)
        return y, tape.gradient(y, x, output_gradients=upstream)

    (y_ours, g_ours), (y_theirs, g_theirs) = forward_and_gradient(ours, True), forward_and_gradient(theirs, None)
    assert g_ours.dtype == tf.bfloat16
    np.testing.assert_array_equal(np.asarray(tf.cast(y_ours, tf.float32)), np.asarray(tf.cast(y_theirs, tf.float32)))
    exact = np.where(np.asarray(tf.cast(x, tf.float32)) > 0, 1.0, 0.2) * np.asarray(tf.cast(upstream, tf.float32))
    np.testing.assert_array_equal(np.asarray(tf.cast(g_ours, tf.float32)),
                                  np.asarray(tf.cast(tf.cast(exact, tf.bfloat16), tf.float32)))
    step = np.abs(np.asarray(tf.cast(g_theirs, tf.float32))) * 2.0 ** -7  # one bfloat16 step, about
    assert np.all(np.abs(np.asarray(tf.cast(g_ours - g_theirs, tf.float32))) <= step + 1e-30)
    # out of training it is Keras' layer itself, gradient included
    _, g_inference = forward_and_gradient(ours, False)
    np.testing.assert_array_equal(np.asarray(tf.cast(g_inference, tf.float32)),
                                  np.asarray(tf.cast(g_theirs, tf.float32)))


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("shape", [(2, 2, 1, 3), (4, 16, 8, 5)])
def test_batch_norm_trains_through_the_fused_kernel_as_keras_would(policy, shape):
    """One replica, training: kgan's batch norm runs FusedBatchNormV3 and gives Keras' outputs, gradients and
    moving statistics (the biased batch variance, not the kernel's Bessel-corrected one: 4 values per
    channel in the small case make the two differ by a third)."""
    import tensorflow as tf

    from kgan.models.blocks import SyncBatchNormalization

    rng = np.random.default_rng(0)
    x32 = (3.0 * rng.normal(size=shape) + 1.0).astype("float32")
    upstream = rng.normal(size=shape).astype("float32")
    ours = SyncBatchNormalization(momentum=0.9, epsilon=1e-5, dtype=policy)
    theirs = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype=policy)
    for layer in (ours, theirs):
        layer.build(shape)
        layer.gamma.assign(np.linspace(0.5, 1.5, shape[-1]).astype("float32"))
        layer.beta.assign(np.linspace(-0.2, 0.3, shape[-1]).astype("float32"))
        layer.moving_mean.assign(np.full(shape[-1], 0.5, "float32"))
        layer.moving_variance.assign(np.full(shape[-1], 2.0, "float32"))
    x = tf.cast(x32, ours.compute_dtype)

    def step(layer):
        @tf.function
        def run(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(tf.cast(y, tf.float32) * upstream)
            return y, tape.gradient(loss, [x, layer.gamma, layer.beta])

        ops = {op.type for op in run.get_concrete_function(x).graph.get_operations()}
        y, grads = run(x)
        return ops, [np.asarray(tf.cast(t, tf.float32)) for t in [y, *grads]]

    (our_ops, ours_out), (their_ops, theirs_out) = step(ours), step(theirs)
    assert "FusedBatchNormV3" in our_ops and "FusedBatchNormV3" not in their_ops
    tol = 1e-5 if policy == "float32" else 1e-2  # bfloat16 outputs: one rounding of either result
    for name, a, b in zip(["output", "d input", "d gamma", "d beta"], ours_out, theirs_out):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max())), err_msg=name)
    for name in ["moving_mean", "moving_variance"]:
        np.testing.assert_allclose(np.asarray(getattr(ours, name)), np.asarray(getattr(theirs, name)), rtol=1e-5,
                                   err_msg=name)
    # out of training both take Keras' path on the moving statistics
    np.testing.assert_allclose(np.asarray(tf.cast(ours(x, training=False), tf.float32)),
                               np.asarray(tf.cast(theirs(x, training=False), tf.float32)), rtol=tol, atol=tol)
