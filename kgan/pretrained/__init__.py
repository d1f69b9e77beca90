"""The model that ships inside the package: ``kgan generate VOCAL -o OUT`` works without training.

The export lives beside this file as package data (``export/1/``, TF Serving's
layout, float16 weights) with its ``MODEL_CARD.md``; it is found with
``importlib.resources``, so it works from a source tree and from an installed
wheel alike. ``experiments/pretrained.py`` builds it (``make pretrained``).
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources

__all__ = ["export_base", "model_card", "available", "tree_sha256"]


def tree_sha256(folder: str) -> str:
    """sha256 over every file below ``folder`` (relative path and content, in sorted order)."""
    digest = hashlib.sha256()
    for path in sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, files in os.walk(folder) for f in files):
        digest.update(path.encode() + b"\0")
        with open(os.path.join(folder, path), "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()


def _here() -> str:
    path = resources.files(__name__)
    if not isinstance(path, os.PathLike):  # zipped installs: SavedModel loading needs real files
        raise FileNotFoundError(f"{path}: the pretrained model needs kgan installed as files, not zipped")
    return os.fspath(path)


def available() -> bool:
    """Whether this installation carries the pretrained export."""
    try:
        return os.path.exists(os.path.join(_here(), "export", "1", "saved_model.pb"))
    except FileNotFoundError:
        return False


def export_base() -> str:
    """The shipped export base (holding ``1/saved_model.pb``).

    Raises FileNotFoundError, naming what to do, when this build ships no model.
    """
    if not available():
        raise FileNotFoundError(f"{os.path.join(_here(), 'export')}: this kgan build ships no pretrained model; "
                                "give --model EXPORT or --server HOST:PORT (or build it: make pretrained)")
    return os.path.join(_here(), "export")


def model_card() -> str:
    """The text of the shipped model's ``MODEL_CARD.md``."""
    with open(os.path.join(_here(), "MODEL_CARD.md"), encoding="utf-8") as f:
        return f.read()
