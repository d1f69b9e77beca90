"""``kgan generate``: vocal files in, accompaniment / remix WAVs and a spectrogram PNG out."""

from __future__ import annotations

import itertools
import os
import sys
import tempfile

import numpy as np

from kgan import audio as audio_io
from kgan.io_utils import atomic_path, remove_stale_temporaries, temporary_prefix

__all__ = ["LocalModel", "resolve_export", "generate_files"]


def resolve_export(path: str) -> str:
    """An export version directory: ``path`` itself, or its newest numeric subdirectory."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = sorted((int(d) for d in os.listdir(path) if d.isdigit()), reverse=True)
    for v in versions:
        candidate = os.path.join(path, str(v))
        if os.path.exists(os.path.join(candidate, "saved_model.pb")):
            return candidate
    raise FileNotFoundError(f"{path}: no SavedModel (expected saved_model.pb in it or in a numeric subfolder)")


class LocalModel:
    """The exported SavedModel run in this process; ``style`` (a name or id) for a style-conditioned one.

    ``compute``: which of an export's signatures runs (``kgan.export.signature_for``): ``auto``, ``float32``
    or ``bfloat16``.
    """

    def __init__(self, path: str, style: str | int | None = None, compute: str = "auto"):
        from kgan.config import resolve_style
        from kgan.export import export_meta, load, signature_for

        self.path = resolve_export(path)
        self.saved_model, self.config, _ = load(self.path)
        # serving_default, or its bfloat16 twin where this process computes bfloat16 at speed (kgan.export)
        self.signature = signature_for("serving_default", self.saved_model.signatures, compute)
        self._serve = self.saved_model.signatures[self.signature]
        self.sample_rate = self.config.audio.sample_rate  # of the vocal it takes
        # of the accompaniment it returns: twice the first with a high band (kgan.high_band)
        self.output_rate = int((export_meta(self.path).get("high_band") or {}).get("rate", self.sample_rate))
        self.style_names = self.config.model.style_names
        self.style = resolve_style(self.style_names, style)
        self.meter = None  # the song's beat grid (set_meter); None: unknown
        self.chart = None  # the song's chords (set_chart, kgan.chart); None: the chord network's guesses

    def set_style(self, style: str | int | None) -> None:
        """Choose the style by name or id (None: "any"); ValueError lists the valid ones."""
        from kgan.config import resolve_style

        self.style = resolve_style(self.style_names, style)

    @property
    def takes_meter(self) -> bool:
        """Whether the export's chord network can be told a beat grid (its signature's optional ``meter``)."""
        return "meter" in self._serve.structured_input_signature[1]

    def set_meter(self, meter: tuple[float, float, float] | None) -> None:
        """Tell the chord network the song's beat grid (``kgan.harmony.meter_seconds``), or None: unknown."""
        self.meter = check_meter(meter, self.takes_meter, self.path)

    @property
    def takes_chords(self) -> bool:
        """Whether the export can be given a chord chart (a plan generator's optional ``chords`` input)."""
        return "chords" in self._serve.structured_input_signature[1]

    def set_chart(self, chart) -> None:
        """Impose a ``kgan.chart.ChordChart`` on the chord plan, or None: the chord network's guesses."""
        self.chart = check_chart(chart, self.takes_chords, self.path)

    def __call__(self, vocal: np.ndarray, start_seconds: float = 0.0) -> np.ndarray:
        from kgan.chart import chords_input

        vocal = np.asarray(vocal, np.float32)
        inputs = {"vocal": vocal}
        if self.style_names:  # a loaded signature does not apply its defaults: give "any" (0) explicitly
            inputs["style"] = np.array([self.style or 0], np.int32)
        if self.takes_meter:  # a loaded signature does not apply its defaults either: zeros, unknown
            inputs["meter"] = meter_input(self.meter, start_seconds)
        if self.takes_chords:  # nor here: -1, the network's guess, without a chart
            inputs["chords"] = chords_input(self.chart, start_seconds, vocal.shape[-1], self.config)
        return self._serve(**inputs)["accompaniment"].numpy()


def check_chart(chart, accepted: bool, where: str):
    """``chart`` (a ``kgan.chart.ChordChart``) or None; ValueError if the model takes no chords."""
    if chart is not None and not accepted:
        raise ValueError(f"{where}: this model takes no chord chart (--chords): only a plan generator "
                         "(model.vocal_input=plan) does, and one exported before charts needs kgan export again")
    return chart


def check_meter(meter, accepted: bool, where: str):
    """``meter`` as a float tuple, or None; ValueError if the model takes no beat grid."""
    if meter is None:
        return None
    if not accepted:
        raise ValueError(f"{where}: this model's chord network takes no beat grid (--bpm/--meter/--downbeat); "
                         "export one trained with `kgan chords train --grid`")
    return tuple(float(v) for v in meter)


def meter_input(meter, start_seconds: float = 0.0) -> np.ndarray:
    """The ``meter`` input of a request for audio starting ``start_seconds`` into the song: its first
    downbeat moved by that much; zeros (unknown) without a grid."""
    if meter is None:
        return np.zeros((1, 3), np.float32)
    beat, segment, downbeat = meter
    return np.array([[beat, segment, downbeat - start_seconds]], np.float32)


def generate_files(paths, out_dir: str, model, chunk_seconds: float = 30.0, progress: bool = True,
                   separate_method: str | None = None, chart=None) -> list[str]:
    """Generate for each file; returns the one-line errors of the files that failed.

    ``chart``: a ``kgan.chart.ChartText`` placed on each vocal in turn (``ChartText.place``: its grid fitted to
    that vocal's note starts unless told otherwise), and told to ``model`` for that song.

    With ``separate_method`` ("simm" or "repet-sim", ``kgan.separation``) each file is a finished song: its
    vocal is separated first, written as ``<name>_vocals.wav`` (the input's rate and channels), and is
    what the model hears and what the remix sings (the whole song is then held in memory).

    Each song is streamed: the accompaniment is written (float32, to a scratch
    file) a chunk at a time as the model finishes it; the 16-bit accompaniment
    and remix WAVs are then written from that file a block at a time, each with
    one gain that brings its peak within full scale (1 unless it would clip:
    a level-calibrated output can peak above it), and the picture is averaged
    down a chunk at a time. The remix reads its vocal again from the file, a
    block at a time (twice: for its peak, then to write it), at the
    accompaniment's rate and in the file's own channels (a stereo vocal keeps
    its image; the mono accompaniment goes into both channels; more than two
    channels are averaged to one). So besides the mono vocal at the model's
    rate only a chunk's samples are in memory however long the song. An export
    with a high band (``kgan.high_band``) returns twice the vocal's rate: its
    WAVs and picture are at that rate, and the remix's vocal keeps its own high band.
    """
    from kgan.high_band import doubled_stft
    from kgan.inference import stream_song
    from kgan.plots import overview, plot_spectrograms
    from kgan.spectrogram import Spectrogram

    rate = model.sample_rate  # the vocal's, as the model takes it
    out_rate = int(getattr(model, "output_rate", rate))  # the accompaniment's (twice the first with a high band)
    spec = Spectrogram(model.config.stft)
    out_spec = spec if out_rate == rate else Spectrogram(doubled_stft(model.config.stft))
    failed = []
    os.makedirs(out_dir, exist_ok=True)
    remove_stale_temporaries(out_dir)  # files of a killed run
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0]
        try:
            if separate_method:
                sung, sung_rate = _separated_vocal(path, os.path.join(out_dir, f"{name}_vocals.wav"), separate_method)
                vocal = audio_io.resample(sung.mean(axis=0), sung_rate, rate)
                heard = audio_io.fold_channels(audio_io.resample(sung, sung_rate, out_rate))  # held: resampled once

                def remix_vocal():
                    return audio_io.array_blocks(heard, REMIX_BLOCK)
            else:
                vocal = audio_io.load(path, rate)[0]

                def remix_vocal():
                    return audio_io.read_blocks(path, out_rate)
            length = len(vocal) * out_rate // rate  # of the accompaniment and the remix
            if chart is not None:
                placed, bpm, downbeat = chart.place(vocal, model.config)
                model.set_chart(placed)
                how = (f"fitted to the singing from {chart.bpm:g} bpm and {chart.downbeat:g} s" if chart.fit
                       else "as given")
                print(f"{name}: chords at {bpm:.2f} bpm, first bar at {downbeat:.2f} s ({how})", file=sys.stderr)
            with tempfile.TemporaryDirectory(prefix=temporary_prefix(), dir=out_dir) as scratch:
                raw_path = os.path.join(scratch, "accompaniment.wav")  # float32, as generated
                loudest = 0.0
                with _wav_writer(raw_path, out_rate, "FLOAT") as out:
                    for _, block in stream_song(model, vocal, rate, chunk_seconds, progress=progress, desc=name):
                        out.write(block)
                        loudest = max(loudest, float(np.max(np.abs(block))) if block.size else 0.0)
                accompaniment = audio_io.SampleFile(raw_path)

                def remix():  # the vocal (its own channels and high band) plus the accompaniment in each channel
                    start = 0
                    for block in _fitted(remix_vocal(), length):
                        yield block + accompaniment[start : start + len(block)][:, None]
                        start += len(block)

                peak = max((float(np.max(np.abs(block))) for block in remix() if block.size), default=0.0)
                # a calibrated accompaniment can peak above full scale: scaled to fit, never clipped
                _write_scaled(os.path.join(out_dir, f"{name}_accompaniment.wav"), out_rate,
                              (accompaniment[a : a + REMIX_BLOCK][:, None] for a in range(0, length, REMIX_BLOCK)),
                              audio_io.headroom_gain(loudest))
                _write_scaled(os.path.join(out_dir, f"{name}_remix.wav"), out_rate, remix(),
                              audio_io.headroom_gain(peak))
                vocal_image, group = overview(spec, vocal)
                accompaniment_image, _ = overview(out_spec, accompaniment)
            plot_spectrograms([("vocal", vocal_image), ("generated accompaniment", accompaniment_image)],
                              model.config, os.path.join(out_dir, f"{name}.png"), title=name, frames_per_column=group)
            print(f"wrote {os.path.join(out_dir, name)}_accompaniment.wav, _remix.wav, .png", file=sys.stderr)
        except audio_io.AudioError as e:
            failed.append(str(e))
            print(f"error: {e}", file=sys.stderr)
    return failed


REMIX_BLOCK = 1 << 20  # samples mixed at a time


def _separated_vocal(path: str, stem_path: str, method: str) -> tuple[np.ndarray, int]:
    """Separate the song at ``path`` and write its vocal stem to ``stem_path``; (the vocal ``[channels, samples]``,
    its rate)."""
    from kgan.separation import separate

    mix, mix_rate = audio_io.load(path, mono=False)
    stems = separate(mix, mix_rate, method)
    audio_io.write(stem_path, stems.vocals, mix_rate, subtype="FLOAT")
    return stems.vocals, mix_rate


def _fitted(blocks, length: int):
    """``[n, channels]`` blocks cut or padded with zeros to ``length`` samples in all (resamplers may round a
    length differently)."""
    done, channels = 0, 1
    for block in blocks:
        channels = block.shape[1]
        block = block[: length - done]
        if len(block):
            yield block
        done += len(block)
    if done < length:
        yield np.zeros((length - done, channels), np.float32)


def _write_scaled(path: str, rate: int, blocks, gain: float) -> None:
    """A 16-bit WAV of ``[n, channels]`` ``blocks`` times ``gain`` (channels from the first block), atomically."""
    blocks = iter(blocks)
    first = next(blocks, np.zeros((0, 1), np.float32))
    with atomic_path(path) as tmp, _wav_writer(tmp, rate, channels=first.shape[1]) as out:
        for block in itertools.chain([first], blocks):
            out.write(np.clip(block * gain, -1.0, 1.0))


def _wav_writer(path: str, rate: int, subtype: str = "PCM_16", channels: int = 1):
    """A WAV (mono, 16-bit unless told) opened for writing block by block."""
    import soundfile as sf

    return sf.SoundFile(path, "w", samplerate=int(rate), channels=channels, subtype=subtype, format="WAV")
