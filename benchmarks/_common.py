"""Helpers shared by the benchmarks."""

from __future__ import annotations

import os
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the real MUSDB18 sample mixture (44.1 kHz stereo) in ../shared/data/real
MUSDB_MIXTURE = os.path.join(os.path.dirname(ROOT), "shared", "data", "real", "musdb18-sample",
                             "Music Delta - 80s Rock", "mixture.flac")


def kernels_line() -> str:
    """Which kernels TensorFlow runs here: oneDNN's (the default) or its own (``TF_ENABLE_ONEDNN_OPTS=0``)."""
    off = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() in ("0", "false")
    return "TensorFlow's own kernels (TF_ENABLE_ONEDNN_OPTS=0)" if off else "oneDNN kernels (as kgan generate/serve run)"


def machine_line() -> str:
    """The CPU model, core count and 1-minute load average, printed before a benchmark's table.

    A load average near or above the core count means other work shared the CPU
    and the run's numbers are low.
    """
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}, {os.cpu_count()} core(s), 1-minute load average {load:.2f} before the run"


def fresh_export(preset: str = "default", griffin_lim_iters: int = 16,
                 vocoder: str | None = None) -> tuple[str, str]:
    """Export a freshly initialised generator of ``preset`` (speed does not depend on the weights).

    With a ``vocoder`` folder, ``griffin_lim_iters`` does not apply: the export runs its default Griffin-Lim
    iterations after the vocoder (``kgan.vocoder.EXPORT_REFINE_ITERS``), as ``kgan export --phase vocoder`` does.
    Returns (export version directory, export base).
    """
    import tensorflow as tf

    from kgan.config import get_preset
    from kgan.export import export
    from kgan.models import UNetGenerator
    from kgan.training import write_run_config

    cfg = get_preset(preset)
    root = tempfile.mkdtemp(prefix="kgan-bench-")
    run = os.path.join(root, "run")
    write_run_config(run, cfg, ["benchmark"])
    tf.train.Checkpoint(generator=UNetGenerator.from_kgan_config(cfg)).save(os.path.join(run, "checkpoints", "ckpt"))
    base = os.path.join(root, "exports")
    return export(run, base, griffin_lim_iters=None if vocoder else griffin_lim_iters, vocoder=vocoder), base


def fresh_vocoder(preset: str = "default") -> str:
    """A freshly initialised vocoder folder for ``preset`` (as ``kgan vocoder train`` writes one, 0 steps)."""
    import dataclasses
    import json

    import tensorflow as tf

    from kgan.config import get_preset
    from kgan.vocoder import VOCODER_CONFIG, VocoderNet, VocoderSettings

    cfg = get_preset(preset)
    folder = tempfile.mkdtemp(prefix="kgan-bench-vocoder-")
    settings = VocoderSettings()
    with open(os.path.join(folder, VOCODER_CONFIG), "w", encoding="utf-8") as f:
        json.dump({"settings": dataclasses.asdict(settings), "stft": dataclasses.asdict(cfg.stft),
                   "sample_rate": cfg.audio.sample_rate}, f)
    net = VocoderNet(cfg.stft.num_bins, settings)
    tf.train.Checkpoint(net=net).save(os.path.join(folder, "checkpoints", "ckpt"))
    return folder


def percentile_table(rows, headers) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).rjust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def best_of(fn, repeats: int = 2) -> float:
    """The fastest of ``repeats`` timed calls of ``fn``, after one untimed call that traces and warms up."""
    import time

    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def conv_flops(model) -> int:
    """FLOPs of one example through ``model``'s Conv2D and Conv2DTranspose layers (2 per multiply-add)."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, c_in = layer.input.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * c_in * kh * kw * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * c_out * kh * kw * layer.input.shape[-1]
    return total
