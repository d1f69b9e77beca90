"""Helpers shared by the benchmarks."""

from __future__ import annotations

import os
import tempfile


def fresh_export(preset: str = "default", griffin_lim_iters: int = 32) -> tuple[str, str]:
    """Export a freshly initialised generator of ``preset`` (speed does not depend on the weights).

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
    return export(run, base, griffin_lim_iters=griffin_lim_iters), base


def percentile_table(rows, headers) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).rjust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join([line, sep, *body])
