import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from kgan.augment import NAMES, augment_vocal
from kgan.config import AugmentConfig, get_preset
from kgan.features import VocalFeatures

CONFIG = get_preset("tiny")
SEED = tf.constant([3, 4], tf.int64)


@pytest.fixture(scope="module")
def vocal_windows(tiny_data_windows):
    return tiny_data_windows


@pytest.fixture(scope="module")
def tiny_data_windows(tmp_path_factory, chorale_dir):
    from kgan.dataset import windows_dataset
    from kgan.preprocess import preprocess

    out = str(tmp_path_factory.mktemp("augment-data"))
    preprocess(chorale_dir, out, CONFIG, progress=False)
    vocal, _ = next(iter(windows_dataset(out, "train", CONFIG, 4, seed=1)))
    return vocal


@pytest.mark.parametrize("name", NAMES)
def test_each_augmentation_keeps_shape_and_range_and_changes_the_vocal(vocal_windows, name):
    out = augment_vocal(vocal_windows, CONFIG, SEED, only=name)
    assert out.shape == vocal_windows.shape and out.dtype == tf.float32
    assert float(tf.reduce_min(out)) >= -1.0 and float(tf.reduce_max(out)) <= 1.0
    assert float(tf.reduce_mean(tf.abs(out - vocal_windows))) > 1e-3
    again = augment_vocal(vocal_windows, CONFIG, SEED, only=name)
    np.testing.assert_array_equal(out.numpy(), again.numpy())  # stateless: the seed decides
    other = augment_vocal(vocal_windows, CONFIG, tf.constant([3, 5], tf.int64), only=name)
    assert not np.array_equal(out.numpy(), other.numpy())


@pytest.mark.parametrize("name", ["level", "tilt", "formant", "vibrato"])
def test_envelope_changes_keep_silence_silent(name):
    silence = -tf.ones([2, 128, 32, 1])
    np.testing.assert_array_equal(augment_vocal(silence, CONFIG, SEED, only=name).numpy(), -1.0)


def test_probability_zero_is_the_identity_and_one_changes_every_example(vocal_windows):
    off = dataclasses.replace(CONFIG, augment=AugmentConfig.off())
    np.testing.assert_array_equal(augment_vocal(vocal_windows, off, SEED).numpy(), vocal_windows.numpy())
    always = dataclasses.replace(CONFIG, augment=AugmentConfig(**{f.name: 1.0 for f in dataclasses.fields(
        AugmentConfig) if f.name.startswith("p_")}))
    out = augment_vocal(vocal_windows, always, SEED)
    changed = tf.reduce_mean(tf.abs(out - vocal_windows), axis=[1, 2, 3]).numpy()
    assert np.all(changed > 1e-3)


def test_the_salience_image_moves_less_than_the_spectrogram_under_timbre_changes(vocal_windows):
    features = VocalFeatures.from_kgan_config(CONFIG)
    before = features(vocal_windows)[..., 0]
    for name in ("tilt", "formant", "level"):
        out = augment_vocal(vocal_windows, CONFIG, SEED, only=name)
        spectrogram_change = float(tf.reduce_mean(tf.abs(out - vocal_windows)))
        feature_change = float(tf.reduce_mean(tf.abs(features(out)[..., 0] - before)))
        assert feature_change < 0.5 * spectrogram_change, (name, feature_change, spectrogram_change)


def test_bad_augment_settings_are_refused_naming_the_field():
    with pytest.raises(ValueError, match="augment.p_level must be in"):
        CONFIG.override(**{"augment.p_level": 1.5})
    with pytest.raises(ValueError, match="augment.breath_db_low must not exceed"):
        CONFIG.override(**{"augment.breath_db_low": 0.0})
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment_vocal(tf.zeros([1, 128, 32, 1]), CONFIG, SEED, only="chorus")
