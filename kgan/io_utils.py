"""Atomic file writes: write to a temporary name beside the target, then rename.

A reader never sees a half-written file under its final name. A killed
writer leaves only a ``.tmp-<pid>-*`` file; ``remove_stale_temporaries``, which
the commands call on the folders they write to before they start, deletes those
whose process is gone (never a live writer's).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from typing import Iterator


def temporary_prefix() -> str:
    """The prefix of this process' temporary names: ``.tmp-<pid>-``."""
    return f".tmp-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[str]:
    """Delete ``.tmp-*`` files and folders in ``folder`` left by writers that are gone; returns their names.

    A name without a writer's pid (from older versions) counts as stale.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if not entry.name.startswith(".tmp-"):
            continue
        match = re.match(r"\.tmp-(\d+)-", entry.name)
        if match and (int(match.group(1)) == os.getpid() or _alive(int(match.group(1)))):
            continue  # being written
        with contextlib.suppress(FileNotFoundError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.remove(entry.path)
            removed.append(entry.name)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1]  # keep the extension: some writers infer the format from it
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(), suffix=suffix, dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the final file the usual mode
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def read_json(path: str, missing: str) -> dict:
    """The JSON file at ``path``; FileNotFoundError "``path``: not found; ``missing``" when there is none."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not found; {missing}") from None


def split_names(corpus_dir: str, split: str) -> list[str]:
    """The song folders of ``split`` in a corpus' ``splits.json``; ValueError naming the file when it cannot
    be read."""
    import json

    path = os.path.join(corpus_dir, "splits.json")
    try:
        with open(path, encoding="utf-8") as f:
            return list(json.load(f).get(split, []))
    except (OSError, ValueError, AttributeError) as e:
        raise ValueError(f"{path}: cannot read the corpus' splits ({e})") from None


def song_info(folder: str | os.PathLike) -> dict:
    """A song folder's ``song.json`` (``kgan corpus`` writes style, voice, source, split...); {} without one.

    Labels are optional: a missing, unreadable or non-object file is an unlabelled song, not an error.
    """
    import json

    try:
        with open(os.path.join(folder, "song.json"), encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def score_chords(folder: str | os.PathLike) -> list | None:
    """A song folder's score chords (``chord_track`` in its ``song.json``: ``[[start s, end s, triad], ...]``),
    or None for a song without a score."""
    track = song_info(folder).get("chord_track")
    return track if isinstance(track, list) and track else None


def resumable_checkpoint(directory: str, net, optimizer, max_to_keep: int = 2):
    """``(step variable, tf.train.Checkpoint, CheckpointManager)`` of a network trained alone, restored from
    ``directory``'s newest checkpoint when there is one (the step is 0 otherwise). Builds the optimizer first,
    so its slots exist before the restore."""
    import tensorflow as tf

    optimizer.build(net.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(net=net, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    return step, checkpoint, manager
