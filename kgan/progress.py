"""Progress bars that count seconds of audio (preprocess, separate, generate)."""

from __future__ import annotations

__all__ = ["audio_bar"]

AUDIO_BAR_FORMAT = "{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}, {rate_fmt}]"


def audio_bar(total_seconds: float, desc: str, disable: bool = False, **kwargs):
    """A tqdm bar over ``total_seconds`` of audio whose count never passes its total.

    Per-song seconds are rounded as they are added, so their sum can pass the
    total; tqdm then drops the total (None) and the format above fails.
    """
    from tqdm import tqdm

    class AudioBar(tqdm):
        def update(self, n=1):
            return super().update(max(0.0, min(n, (self.total or 0.0) - self.n)))

    return AudioBar(total=total_seconds, unit="s", desc=desc, disable=disable, bar_format=AUDIO_BAR_FORMAT,
                    **kwargs)
