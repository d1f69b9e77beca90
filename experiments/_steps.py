"""What the experiments that train and evaluate share: real ``kgan`` subprocesses, skipped once done.

Each step is a ``kgan`` command; a script checks ``done(path)`` before it, so an
interrupted script resumes where it stopped (training resumes from its last
checkpoint). ``TEST_SETS`` are the held-out renderings every claim about unseen
voices is scored on: test-split tunes only, sung or played by voices and
through a SoundFont that no model trained on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLUID = "/usr/share/sounds/sf2/FluidR3_GM.sf2"  # Debian's fluid-soundfont-gm: the SoundFont no model trains on
MUSDB = os.path.join(os.path.dirname(ROOT), "shared", "data", "real", "musdb18-sample")
# a real mixed song (evaluation only): separated by `kgan separate`, it gives a second real vocal
REAL_MIX = os.path.join(os.path.dirname(ROOT), "shared", "data", "real", "slow-motion-dream-excerpt.mp3")
SEEN_FAMILIES = "gm-voice,wind,brass,bowed"  # every voice family but Festival's singing voice (held out)


def _command(args) -> list[str]:
    """The command line of ``kgan ARGS`` from the source tree, echoed as it starts."""
    print("$ kgan " + " ".join(map(str, args)), flush=True)
    return [sys.executable, "-m", "cli.main", *map(str, args)]


def kgan(*args, env=None, log=None):
    """Run ``kgan ARGS`` from the source tree; raises CalledProcessError when it fails."""
    cmd = _command(args)
    out = open(log, "a") if log else None
    try:
        subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT if out else None)
    finally:
        if out:
            out.close()


def kgan_parallel(commands: list[list], logs: list[str], jobs: int) -> None:
    """Run ``kgan`` command lines ``jobs`` at a time, each appending to its log; exit naming the first that fails."""
    pending = list(zip(commands, logs))
    running: list[tuple[subprocess.Popen, str]] = []
    while pending or running:
        while pending and len(running) < jobs:
            args, log = pending.pop(0)
            with open(log, "a") as out:
                running.append((subprocess.Popen(_command(args), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT), log))
        proc, log = running.pop(0)
        if proc.wait() != 0:
            sys.exit(f"failed (exit {proc.returncode}); see {log}")


def done(path: str) -> bool:
    return os.path.exists(path)


def test_sets(chorales: int, folk: int) -> dict[str, list]:
    """name -> ``kgan corpus`` arguments of each held-out rendering (rendered with ``--splits test``)."""
    return {
        "chorales-oohs": ["chorales", "--n", chorales, "--voices", "oohs", "--accompaniment-program", 19,
                          "--bpm", 80],
        "seen-voices": ["build", "--chorales", chorales, "--folk", folk, "--voices", SEEN_FAMILIES],
        "festival-fluidr3": ["build", "--chorales", chorales, "--folk", folk, "--voices", "festival",
                             "--soundfont", FLUID],
        "instruments-fluidr3": ["build", "--chorales", chorales, "--folk", folk, "--voices", SEEN_FAMILIES,
                                "--soundfont", FLUID],
    }


def render_test_sets(out: str, names, chorales: int, folk: int, jobs: int = 2) -> list[str]:
    """Render the named test sets (and copy the real MUSDB18 sample as ``test-musdb-real``); their folders."""
    specs = test_sets(chorales, folk)
    folders = []
    for name in names:
        folder = f"{out}/test-{name}"
        if name == "musdb-real":
            if not done(folder):
                shutil.copytree(MUSDB, folder)
        elif not done(f"{folder}/corpus.json"):
            spec = specs[name]
            kgan("corpus", spec[0], folder, *spec[1:], "--splits", "test", "--seed", 1, "--jobs", jobs,
                 "--no-progress")
        folders.append(folder)
    return folders
