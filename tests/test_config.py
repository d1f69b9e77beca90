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
