import json

import pytest

from kgan import config as kconfig
from kgan.config import Config, ModelConfig, STFTConfig, WindowConfig


@pytest.mark.parametrize("name", sorted(kconfig.PRESETS))
def test_presets_are_valid_and_round_trip_through_json(name, tmp_path):
    cfg = kconfig.get_preset(name)
    path = tmp_path / "config.json"
    kconfig.save(cfg, path)
    assert kconfig.load(path) == cfg
    assert json.loads(path.read_text())["stft"]["n_fft"] == cfg.stft.n_fft


def test_default_geometry_divides_by_unet_depth():
    cfg = kconfig.get_preset("default")
    unit = 2**cfg.model.depth
    assert cfg.stft.num_bins % unit == 0 and cfg.window.frames % unit == 0
    assert cfg.stft.num_bins == 512 and cfg.window.frames == 128


def test_seed_preset_reproduces_the_earlier_geometry():
    cfg = kconfig.get_preset("seed")
    assert (cfg.audio.sample_rate, cfg.stft.n_fft, cfg.stft.hop_length) == (44100, 2048, 128)
    assert (cfg.stft.num_bins, cfg.window.frames) == (1024, 1024)


def test_fullband_preset_keeps_every_bin_to_22_khz_at_the_default_resolution():
    import numpy as np

    from kgan.models import UNetGenerator

    full, default = kconfig.get_preset("fullband"), kconfig.get_preset("default")
    assert full.stft.num_bins * full.audio.sample_rate / full.stft.n_fft == full.audio.sample_rate / 2
    assert full.audio.sample_rate / full.stft.n_fft == default.audio.sample_rate / default.stft.n_fft  # 21.5 Hz
    assert full.stft.hop_length / full.audio.sample_rate == default.stft.hop_length / default.audio.sample_rate
    assert full.stft.num_bins == 2 * default.stft.num_bins and full.window.frames == default.window.frames
    generator = UNetGenerator.from_kgan_config(full)  # the comb input and the U-Net at 1024 x 128
    x = np.random.default_rng(0).uniform(-1, 1, (1, 1024, 128, 1)).astype("float32")
    y = generator(x, training=False).numpy()
    assert y.shape == x.shape and np.all(np.abs(y) <= 1)


def test_override_converts_types_and_rejects_unknown_fields():
    cfg = kconfig.get_preset("default").override(**{"train.steps": "7", "window.gate_db": "-30"})
    assert cfg.train.steps == 7 and cfg.window.gate_db == -30.0
    with pytest.raises(ValueError, match="unknown config field 'train.nope'"):
        cfg.override(**{"train.nope": 1})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"window": WindowConfig(frames=100)}, r"window.frames must be divisible by 2\*\*model.depth = 128. Received: 100"),
        ({"model": ModelConfig(depth=10)}, r"stft.num_bins \(n_fft/2\) must be divisible by 2\*\*model.depth = 1024"),
        ({"stft": STFTConfig(n_fft=1000)}, "n_fft must be a positive power of two"),
        ({"stft": STFTConfig(hop_length=600)}, "hop_length must be in"),
        ({"stft": STFTConfig(db_floor=0.0, db_ceiling=-10.0)}, "db_floor must be below"),
        ({"model": ModelConfig(norm="layer")}, "model.norm must be 'batch' or 'instance'"),
    ],
)
def test_bad_geometry_raises_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Config(**kwargs)


def test_unknown_sections_and_fields_in_json_are_rejected(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"stft": {"n_ftt": 1024}}))
    with pytest.raises(ValueError, match=r"bad.json: invalid config: unknown field\(s\) in config section 'stft'"):
        kconfig.load(path)


@pytest.mark.parametrize(
    "dotted, message",
    [
        ({"train.batch_size": -1}, "train.batch_size must be a positive int. Received: -1"),
        ({"train.batch_size": 0}, "train.batch_size must be a positive int. Received: 0"),
        ({"train.batch_size": "abc"}, "train.batch_size must be an int. Received: 'abc'"),
        ({"audio.sample_rate": 0}, "audio.sample_rate must be a positive int. Received: 0"),
        ({"stft.db_floor": "inf"}, "stft.db_floor must be finite. Received: inf"),
        ({"stft.db_ceiling": "nan"}, "stft.db_ceiling must be finite. Received: nan"),
        ({"model.dropout": 1.0}, r"model.dropout must be in \[0.0, 1.0\). Received: 1.0"),
        ({"train.learning_rate": 0}, "train.learning_rate must be a positive number. Received: 0.0"),
        ({"train.bn_calibration_batches": -3}, "train.bn_calibration_batches must be a non-negative int"),
        ({"train.l1_weighting": "vocal"}, "train.l1_weighting must be 'uniform' or 'vocal-mask'. Received: 'vocal'"),
    ],
)
def test_every_field_is_checked_for_type_finiteness_and_range(dotted, message):
    with pytest.raises(ValueError, match=message):
        kconfig.get_preset("default").override(**dotted)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["train"].update(batch_size="4"), "train.batch_size must be an int. Received: '4'"),
        (lambda d: d["window"].update(frames=32.0), "window.frames must be an int. Received: 32.0"),
        (lambda d: d.update(train=[1]), "config section 'train' must be an object. Received: list"),
    ],
)
def test_config_files_with_wrong_types_name_the_field(tmp_path, mutate, message):
    data = kconfig.get_preset("default").to_dict()
    mutate(data)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"config.json: invalid config: {message}"):
        kconfig.load(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="a config must be a JSON object of sections"):
        kconfig.load(path)
