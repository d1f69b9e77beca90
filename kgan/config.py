"""One configuration for every stage: frozen dataclasses, JSON load/save, presets.

A run directory, a preprocessed data set and an export all carry the resolved
config as JSON, and every later stage rebuilds itself from that file rather
than from repeated command-line flags.

Geometry of the ``default`` preset (22.05 kHz, n_fft 1024, hop 256):

* the STFT has 513 bins; the model sees the lowest 512 (0 .. 10.75 kHz) and the
  Nyquist bin is set to silence on the way back;
* a window is 128 frames = 128 * 256 / 22050 = 1.49 s;
* a 7-level U-Net halves both axes 7 times: 512 x 128 -> 4 x 1.

The ``seed`` preset reproduces the earlier attempt's geometry for comparison
(44.1 kHz, n_fft 2048, hop 128, 1024 bins x 1024 frames = 2.97 s).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

__all__ = [
    "AudioConfig",
    "STFTConfig",
    "WindowConfig",
    "ModelConfig",
    "TrainConfig",
    "AugmentConfig",
    "Config",
    "PRESETS",
    "get_preset",
    "load",
    "save",
    "VOCAL_INPUTS",
]

VOCAL_INPUTS = ("spectrogram", "salience", "comb", "track", "chords", "plan")  # see kgan.features
SALIENCE_SEMITONES = 64  # the salience image spans 64 semitones in stft.num_bins rows


@dataclasses.dataclass(frozen=True)
class AudioConfig:
    """Waveforms are mono float32 at ``sample_rate``."""

    sample_rate: int = 22050


@dataclasses.dataclass(frozen=True)
class STFTConfig:
    """Framing and the global log-magnitude scale.

    Magnitudes are divided by ``sum(window) / 2`` so that a full-scale sine
    reads 1.0 (0 dBFS), then mapped linearly in dB from
    ``[db_floor, db_ceiling]`` onto ``[-1, 1]``: the floor (silence) is -1,
    which the generator's float32 tanh reaches exactly.
    """

    n_fft: int = 1024
    hop_length: int = 256
    db_floor: float = -80.0
    db_ceiling: float = 10.0

    @property
    def num_bins(self) -> int:
        """Bins the model sees: the full spectrum less the Nyquist bin."""
        return self.n_fft // 2


@dataclasses.dataclass(frozen=True)
class WindowConfig:
    """Training windows and the vocal-activity gate.

    ``frames`` is the window width in STFT frames. A frame is voiced when its
    vocal level is above ``gate_db`` relative to the song's reference level
    (the 95th percentile of its frame levels); a window is kept when at least
    ``min_voiced`` of its frames are voiced. Windows are considered every
    ``stride`` frames. When generating, consecutive windows share ``overlap``
    of their frames and are cross-faded there (0.5: every frame is generated
    twice; 0.25: a third fewer windows).
    """

    frames: int = 128
    stride: int = 32
    gate_db: float = -40.0
    min_voiced: float = 0.5
    overlap: float = 0.5

    @property
    def generate_hop(self) -> int:
        """Frames between the starts of consecutive generated windows."""
        return window_hop(self.frames, self.overlap)


def window_hop(frames: int, overlap: float) -> int:
    """``frames`` minus the ``overlap`` share of them, at least 1: the hop between generated windows."""
    return max(1, frames - int(round(frames * overlap)))


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Generator and discriminator; ``vocal_input`` is what they see of the vocal (``kgan.features``)."""

    # "comb" (the sung pitch on the spectrogram's own axis, plus salience, level, voicing), "track" (one
    # F0 per frame on that axis, level, voicing), "chords" (a triad guessed from the track, then the
    # track's planes), "plan" (a chord plan given beside the vocal: the true accompaniment's chords in
    # training, kgan.chords.ChordNet's guess from the melody at inference; then the track's planes),
    # "salience" (the log-F0 image, level, voicing: it follows
    # no chords, README "Voices it never heard") or "spectrogram" (raw)
    vocal_input: str = "comb"
    depth: int = 7
    base_filters: int = 32
    max_filters: int = 256
    dropout: float = 0.5
    norm: str = "batch"  # "batch" (synchronised under a strategy) or "instance"
    upsample: str = "transpose"  # "transpose" or "resize" (resize + conv)
    disc_layers: int = 3
    disc_filters: int = 32
    # Style conditioning (``kgan.models.style``): comma-separated style names the models take as an
    # extra input (id 0 is "any", ids 1.. these names in order); "" trains an unconditioned model.
    styles: str = ""
    style_dim: int = 16

    @property
    def style_names(self) -> tuple[str, ...]:
        """``("any", *styles)``: the name of each style id, or ``()`` for an unconditioned model."""
        names = tuple(n.strip() for n in self.styles.split(",") if n.strip())
        return ("any", *names) if names else ()


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Timbre augmentation of the training vocal (``kgan.augment``), each applied with probability ``p_*``.

    All of them act on the normalised vocal spectrogram inside the training
    step and keep silence silent (except breath noise, which adds sound).
    """

    p_level: float = 0.5
    level_db: float = 12.0  # gain drawn from [-level_db, +level_db]
    p_tilt: float = 0.5
    tilt_db_per_octave: float = 6.0  # EQ slope around 1 kHz, from [-x, +x]
    p_formant: float = 0.5
    formant_ratio: float = 1.25  # spectral envelope stretched by a factor in [1/x, x], harmonics kept
    p_vibrato: float = 0.5
    vibrato_cents: float = 50.0  # sinusoidal pitch modulation depth, 4-7 Hz
    bend_cents: float = 50.0  # plus a linear bend over the window, from [-x, +x]
    p_breath: float = 0.3
    breath_db_low: float = -45.0  # noise level relative to the window's loudest frame, from [low, high]
    breath_db_high: float = -25.0
    p_reverb: float = 0.3
    reverb_seconds_low: float = 0.2  # RT60 from [low, high]
    reverb_seconds_high: float = 1.2
    reverb_wet_db_low: float = -12.0  # reverberant energy relative to the direct sound, from [low, high]
    reverb_wet_db_high: float = 0.0

    @property
    def enabled(self) -> bool:
        return any(getattr(self, f.name) > 0 for f in dataclasses.fields(self) if f.name.startswith("p_"))

    @classmethod
    def off(cls) -> "AugmentConfig":
        return cls(**{f.name: 0.0 for f in dataclasses.fields(cls) if f.name.startswith("p_")})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 8  # global batch size, over all replicas
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    l1_weight: float = 100.0
    gan_weight: float = 1.0
    # Weight of the chroma (harmony) loss, kgan.harmonic_loss: chroma fit + chord motion of the output.
    chroma_weight: float = 0.0
    # What the harmony loss' motion term measures chord changes against: "window" (the window's own mean
    # chroma) or "segment" (the true accompaniment's mean over the whole voiced segment the window is cut
    # from, as the evaluation measures them against the song's mean; README "Voices it never heard").
    chroma_reference: str = "window"
    # Weight of the style critic's cross-entropy on the generator's output (kgan.style_critic): the output
    # must be recognised as the asked-for style by a classifier trained on true accompaniments (a folder of
    # `kgan critic train`, in style_critic). 0: no critic.
    style_weight: float = 0.0
    style_critic: str = ""
    # Weight of the dynamics loss, kgan.dynamics_loss: the generated and the true windows' loudness modulation
    # spectra per octave band (how much the loudness moves, at which rates; not where). 0: off.
    dynamics_weight: float = 0.0
    style_start: int = 0  # the step from which the style critic's loss counts (a run can add it late)
    gan_loss: str = "bce"  # "bce" or "lsgan"
    # How the L1 term weighs the target's cells: "uniform", or "vocal-mask": each cell by the target's share of
    # the target's and the vocal's power there, so the cells the vocal drowns count less (in songs separated
    # from mixes, the separated accompaniment there is what the separation's mask left, not the accompaniment).
    l1_weighting: str = "uniform"
    d_steps: int = 1
    vocal_noise_std: float = 0.05
    steps: int = 20000
    checkpoint_every: int = 500
    summary_every: int = 50
    image_every: int = 500
    val_fraction: float = 0.1
    # After the last step, batch-norm moving statistics are recomputed as the plain average over this
    # many evenly spaced training batches (clean vocals, final weights); 0 keeps the moving averages.
    bn_calibration_batches: int = 100
    # With style conditioning, the share of training examples whose style is replaced by "any" (id 0),
    # so the model also learns to accompany without a style and from unlabelled songs.
    style_dropout: float = 0.2
    # With model.vocal_input=plan: the share of quarter-window blocks whose true chord is replaced by another
    # in training, so the generator learns to voice a plan that is sometimes wrong, as a guessed one is.
    plan_corruption: float = 0.2
    # "float32", or "mixed_bfloat16": both models compute in bfloat16 (float32 weights, outputs and losses),
    # which uses the CPU's bf16 dot products where it has them (AVX512_BF16, AMX). Exports compute in float32.
    precision: str = "float32"
    seed: int = 0


# Ranges of numeric fields (beyond "finite"): (low, high, low inclusive, high inclusive); None is open.
_RANGES = {
    "audio.sample_rate": (1, None, True, None),
    "stft.n_fft": (2, None, True, None), "stft.hop_length": (1, None, True, None),
    "window.frames": (1, None, True, None), "window.stride": (1, None, True, None),
    "window.overlap": (0.0, 1.0, True, False),
    "model.depth": (1, None, True, None), "model.base_filters": (1, None, True, None),
    "model.max_filters": (1, None, True, None), "model.dropout": (0.0, 1.0, True, False),
    "model.disc_layers": (1, None, True, None), "model.disc_filters": (1, None, True, None),
    "model.style_dim": (1, None, True, None), "train.style_dropout": (0.0, 1.0, True, True),
    "train.plan_corruption": (0.0, 1.0, True, True),
    "train.batch_size": (1, None, True, None), "train.learning_rate": (0.0, None, False, None),
    "train.beta_1": (0.0, 1.0, True, False), "train.l1_weight": (0.0, None, True, None),
    "train.gan_weight": (0.0, None, True, None),
    "train.chroma_weight": (0.0, None, True, None), "train.style_weight": (0.0, None, True, None),
    "train.dynamics_weight": (0.0, None, True, None),
    "train.style_start": (0, None, True, None),
    "train.d_steps": (1, None, True, None),
    "train.vocal_noise_std": (0.0, None, True, None), "train.steps": (0, None, True, None),
    "train.checkpoint_every": (1, None, True, None), "train.summary_every": (1, None, True, None),
    "train.image_every": (1, None, True, None), "train.val_fraction": (0.0, 1.0, True, False),
    "train.bn_calibration_batches": (0, None, True, None),
}


def _range_text(low, high, low_in: bool, high_in: bool, kind: str) -> str:
    if high is not None:
        return f"in {'[' if low_in else '('}{low}, {high}{']' if high_in else ')'}"
    if (low == 1 and low_in and kind == "int") or (low == 0 and not low_in):
        return f"a positive {kind}"
    if low == 0 and low_in:
        return f"a non-negative {kind}"
    return f"{'an int' if kind == 'int' else 'a number'} >= {low}"


def _check_field(name: str, value: Any, annotation: str) -> None:
    """Raise ValueError naming ``name`` when ``value`` is not of the field's type, finite and in range."""
    if annotation == "str":
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string. Received: {value!r}")
        return
    kind = "int" if annotation == "int" else "number"
    if isinstance(value, bool) or not isinstance(value, int if kind == "int" else (int, float)):
        raise ValueError(f"{name} must be {'an int' if kind == 'int' else 'a number'}. Received: {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite. Received: {value!r}")
    if name not in _RANGES:
        return
    low, high, low_in, high_in = _RANGES[name]
    below = value < low or (value == low and not low_in)
    above = high is not None and (value > high or (value == high and not high_in))
    if below or above:
        raise ValueError(f"{name} must be {_range_text(low, high, low_in, high_in, kind)}. Received: {value!r}")


_SECTIONS = {
    "audio": AudioConfig,
    "stft": STFTConfig,
    "window": WindowConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "augment": AugmentConfig,
}


@dataclasses.dataclass(frozen=True)
class Config:
    audio: AudioConfig = AudioConfig()
    stft: STFTConfig = STFTConfig()
    window: WindowConfig = WindowConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    augment: AugmentConfig = AugmentConfig()
    preset: str = "default"

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field when a value's type or range is wrong or the geometry cannot work."""
        for section in _SECTIONS:
            for f in dataclasses.fields(_SECTIONS[section]):
                _check_field(f"{section}.{f.name}", getattr(getattr(self, section), f.name), f.type)
        s, w, m = self.stft, self.window, self.model
        if s.n_fft <= 0 or s.n_fft & (s.n_fft - 1):
            raise ValueError(f"stft.n_fft must be a positive power of two. Received: {s.n_fft}")
        if not 0 < s.hop_length <= s.n_fft // 2:
            raise ValueError(
                f"stft.hop_length must be in (0, n_fft/2] for an exact inverse. Received: {s.hop_length}"
            )
        if s.n_fft % s.hop_length:
            raise ValueError(
                f"stft.hop_length must divide n_fft. Received: n_fft={s.n_fft}, hop_length={s.hop_length}"
            )
        if not s.db_floor < s.db_ceiling:
            raise ValueError(
                f"stft.db_floor must be below stft.db_ceiling. Received: {s.db_floor}, {s.db_ceiling}"
            )
        unit = 2**m.depth
        for name, value in (("stft.num_bins (n_fft/2)", s.num_bins), ("window.frames", w.frames)):
            if value % unit:
                raise ValueError(
                    f"{name} must be divisible by 2**model.depth = {unit}. Received: {value}"
                )
        if not 0 < w.stride <= w.frames:
            raise ValueError(f"window.stride must be in (0, frames]. Received: {w.stride}")
        if not 0.0 <= w.min_voiced <= 1.0:
            raise ValueError(f"window.min_voiced must be in [0, 1]. Received: {w.min_voiced}")
        if m.vocal_input not in VOCAL_INPUTS:
            raise ValueError(f"model.vocal_input must be one of {list(VOCAL_INPUTS)}. Received: {m.vocal_input!r}")
        names = [n.strip() for n in m.styles.split(",")] if m.styles.strip() else []
        if any(not n or not n.replace("-", "").replace("_", "").isalnum() for n in names) or len(set(names)) < len(
                names) or "any" in names:
            raise ValueError("model.styles must be distinct comma-separated names (letters, digits, - and _; "
                             f"'any' is implied). Received: {m.styles!r}")
        if m.vocal_input != "spectrogram" and s.num_bins % SALIENCE_SEMITONES:
            raise ValueError(f"model.vocal_input={m.vocal_input!r} needs stft.num_bins divisible by "
                             f"{SALIENCE_SEMITONES}. Received: {s.num_bins}")
        if m.norm not in ("batch", "instance"):
            raise ValueError(f"model.norm must be 'batch' or 'instance'. Received: {m.norm!r}")
        if m.upsample not in ("transpose", "resize"):
            raise ValueError(f"model.upsample must be 'transpose' or 'resize'. Received: {m.upsample!r}")
        for f in dataclasses.fields(AugmentConfig):
            value = getattr(self.augment, f.name)
            if f.name.startswith("p_") and not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{f.name} must be in [0, 1]. Received: {value}")
            if f.name.endswith("_low") and value > getattr(self.augment, f.name[:-4] + "_high"):
                raise ValueError(f"augment.{f.name} must not exceed augment.{f.name[:-4]}_high. Received: {value}")
        if self.augment.reverb_seconds_low <= 0:
            raise ValueError("augment.reverb_seconds_low must be positive. "
                             f"Received: {self.augment.reverb_seconds_low}")
        if self.train.precision not in ("float32", "mixed_bfloat16"):
            raise ValueError("train.precision must be 'float32' or 'mixed_bfloat16'. "
                             f"Received: {self.train.precision!r}")
        if self.train.chroma_reference not in ("window", "segment"):
            raise ValueError(f"train.chroma_reference must be 'window' or 'segment'. "
                             f"Received: {self.train.chroma_reference!r}")
        if self.train.style_weight > 0 and not (names and self.train.style_critic):
            raise ValueError("train.style_weight > 0 needs named styles (model.styles) and train.style_critic, "
                             f"a `kgan critic train` folder. Received: styles {m.styles!r}, "
                             f"style_critic {self.train.style_critic!r}")
        if self.train.gan_loss not in ("bce", "lsgan"):
            raise ValueError(f"train.gan_loss must be 'bce' or 'lsgan'. Received: {self.train.gan_loss!r}")
        if self.train.l1_weighting not in ("uniform", "vocal-mask"):
            raise ValueError("train.l1_weighting must be 'uniform' or 'vocal-mask'. "
                             f"Received: {self.train.l1_weighting!r}")

    @property
    def window_seconds(self) -> float:
        return self.window.frames * self.stft.hop_length / self.audio.sample_rate

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Config":
        if not isinstance(data, dict):
            raise ValueError(f"a config must be a JSON object of sections {sorted(_SECTIONS)}. "
                             f"Received: {type(data).__name__}")
        unknown = set(data) - set(_SECTIONS) - {"preset"}
        if unknown:
            raise ValueError(f"unknown config section(s): {sorted(unknown)}")
        sections = {}
        for name, klass in _SECTIONS.items():
            values = data.get(name, {})
            if not isinstance(values, dict):
                raise ValueError(f"config section {name!r} must be an object. Received: {type(values).__name__}")
            values = dict(values)
            # A config written before a field or section existed means what kgan did then:
            # the raw spectrogram input, no harmony loss and no timbre augmentation.
            if name == "model" and name in data and "vocal_input" not in values:
                values["vocal_input"] = "spectrogram"
            if name == "train" and name in data and "chroma_weight" not in values:  # before the harmony loss
                values["chroma_weight"] = 0.0
            if name == "augment" and name not in data and "train" in data:
                values = {k: v for k, v in dataclasses.asdict(AugmentConfig.off()).items() if k.startswith("p_")}
            fields = {f.name for f in dataclasses.fields(klass)}
            bad = set(values) - fields
            if bad:
                raise ValueError(f"unknown field(s) in config section {name!r}: {sorted(bad)}")
            sections[name] = klass(**values)
        return cls(**sections, preset=data.get("preset", "custom"))

    @classmethod
    def from_json(cls, text: str) -> "Config":
        return cls.from_dict(json.loads(text))

    def override(self, **dotted: Any) -> "Config":
        """A copy with ``section.field=value`` overrides, e.g. ``override(**{"train.steps": 10})``."""
        data = self.to_dict()
        for key, value in dotted.items():
            section, _, field = key.partition(".")
            if section not in _SECTIONS or field not in data[section]:
                raise ValueError(f"unknown config field {key!r}")
            current = data[section][field]
            if isinstance(current, bool):
                value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
            elif not isinstance(value, type(current)) and current is not None:
                try:
                    value = type(current)(value)
                except ValueError:
                    kind = {int: "an int", float: "a number"}.get(type(current), type(current).__name__)
                    raise ValueError(f"{key} must be {kind}. Received: {value!r}") from None
            data[section][field] = value
        return Config.from_dict(data)


PRESETS: dict[str, Config] = {
    "default": Config(),
    # The earlier attempt's geometry: 44.1 kHz, 2048/128, 1024 bins x 1024 frames.
    "seed": Config(
        audio=AudioConfig(sample_rate=44100),
        stft=STFTConfig(n_fft=2048, hop_length=128),
        window=WindowConfig(frames=1024, stride=256),
        model=ModelConfig(depth=8, base_filters=64, max_filters=512),
        train=TrainConfig(batch_size=1),
        preset="seed",
    ),
    # Full band: 44.1 kHz with the default's frame rate (11.6 ms) and bin width (21.5 Hz), so every bin
    # up to 22 kHz is kept: 1024 bins x 128 frames (1.49 s), twice the default's cells per window.
    "fullband": Config(
        audio=AudioConfig(sample_rate=44100),
        stft=STFTConfig(n_fft=2048, hop_length=512),
        preset="fullband",
    ),
    # Tiny shapes for tests and smoke runs: 8 kHz, 128 bins x 32 frames.
    "tiny": Config(
        audio=AudioConfig(sample_rate=8000),
        stft=STFTConfig(n_fft=256, hop_length=64),
        window=WindowConfig(frames=32, stride=16),
        model=ModelConfig(depth=4, base_filters=8, max_filters=32, disc_filters=8, disc_layers=2),
        train=TrainConfig(batch_size=4, steps=20, checkpoint_every=10, summary_every=5, image_every=10,
                          bn_calibration_batches=4),
        preset="tiny",
    ),
}


def get_preset(name: str) -> Config:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}") from None


def resolve_style(names, style: str | int | None) -> int | None:
    """A style name or id -> its id among ``names`` (a model's ``style_names``); None stays None.

    Raises ValueError listing the valid names when ``style`` is not one of them.
    """
    if style is None:
        return None
    names = list(names)
    if not names:
        raise ValueError(f"style {style!r}: this model has no styles (it was trained without style labels)")
    text = str(style).strip()
    if text in names:
        return names.index(text)
    if text.isdigit() and int(text) < len(names):
        return int(text)
    raise ValueError(f"unknown style {style!r}; this model's styles: {', '.join(names)}")


def load(path: str | os.PathLike) -> Config:
    """Read a config JSON file; a preset name is accepted too."""
    if str(path) in PRESETS:
        return PRESETS[str(path)]
    with open(path, encoding="utf-8") as f:
        try:
            return Config.from_json(f.read())
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: invalid config: {e}") from None


def save(config: Config, path: str | os.PathLike) -> None:
    """Write the config as JSON atomically (temp file, then rename)."""
    from kgan.io_utils import atomic_write_text

    atomic_write_text(path, config.to_json() + "\n")
