"""The inverse STFT and the stages built on it: TensorFlow's overlap-add against ``kgan.spectrogram.overlap_add``.

    python benchmarks/stft.py [--seconds 10,180] [--calls 7]

``tf.signal.inverse_stft`` is an inverse FFT, a synthesis window and ``tf.signal.overlap_and_add``;
``Spectrogram.inverse`` computes the same sums with ``overlap_add`` (the frames summed as shifted
copies). Every row is timed both ways in one process, the two called in turn (median of ``--calls``,
after a warm-up; oneDNN's kernels as kgan runs them), on a noise waveform of each length at the default
preset's 22.05 kHz (n_fft 1024, hop 256): the overlap-add alone, the inverse STFT, the high band (its
inverse STFT at twice the rate) and Griffin-Lim as the export runs it (16 fast iterations from the
integrated start, in segments when long). Each pair is checked to agree before it is timed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", default="10,180", help="comma-separated input lengths")
    parser.add_argument("--calls", type=int, default=7)
    args = parser.parse_args(argv)
    from kgan import use_served_kernels

    use_served_kernels()
    import numpy as np
    import tensorflow as tf
    from _common import kernels_line, machine_line, percentile_table

    from kgan.config import get_preset
    from kgan.high_band import SUB_BANDS, HighBand
    from kgan.inference import Generate
    from kgan.models import UNetGenerator
    from kgan.spectrogram import Spectrogram, overlap_add

    print(f"{machine_line()}\n{kernels_line()}\n")

    class TensorFlows(Spectrogram):  # the inverse through tf.signal.inverse_stft, as before overlap_add
        def inverse(self, stft, length):
            x = tf.signal.inverse_stft(tf.convert_to_tensor(stft, tf.complex64), self.n_fft, self.hop,
                                       fft_length=self.n_fft, window_fn=self._inverse_window_fn)
            return x[..., self.pad : self.pad + length]

    cfg = get_preset("default")
    rate = cfg.audio.sample_rate
    ours, theirs = Spectrogram(cfg.stft), TensorFlows(cfg.stft)
    band_ours = HighBand(cfg.stft, np.zeros((1, SUB_BANDS)))
    band_theirs = HighBand(cfg.stft, np.zeros((1, SUB_BANDS)))
    band_theirs.low, band_theirs.high = TensorFlows(band_ours.low.config), TensorFlows(band_ours.high.config)
    pipe = Generate(UNetGenerator.from_kgan_config(cfg), cfg)

    def phase(spec):
        def run(magnitude, length):
            return spec.griffin_lim_in_segments(magnitude, length, n_iter=pipe.griffin_lim_iters, initial="integrated",
                                                segment=pipe.griffin_lim_segment)
        return run

    rows = []
    for seconds in [float(s) for s in args.seconds.split(",") if s.strip()]:
        length = int(seconds * rate)
        wave = tf.constant(0.1 * np.random.default_rng(0).standard_normal((1, length)).astype(np.float32))
        stft = ours.forward(wave)
        magnitude = ours.magnitude(stft)
        frames = tf.signal.irfft(stft, [ours.n_fft])
        cases = [
            ("overlap-add", (frames,),
             tf.function(lambda f: tf.signal.overlap_and_add(f, ours.hop)),
             tf.function(lambda f: overlap_add(f, ours.hop))),
            ("inverse STFT", (stft,), tf.function(lambda s: theirs.inverse(s, length)),
             tf.function(lambda s: ours.inverse(s, length))),
            ("high band (44.1 kHz out)", (wave,), tf.function(band_theirs), tf.function(band_ours)),
            (f"Griffin-Lim, {pipe.griffin_lim_iters} fast iterations", (magnitude, length),
             tf.function(phase(theirs)), tf.function(phase(ours))),
        ]
        for name, inputs, before, after in cases:
            a, b = before(*inputs).numpy(), after(*inputs).numpy()
            scale = max(float(np.max(np.abs(a))), 1e-12)
            if float(np.max(np.abs(a - b))) > 1e-4 * scale:
                raise SystemExit(f"{name}: the two results differ by {np.max(np.abs(a - b)):.3g}")
            times = ([], [])
            for _ in range(args.calls):  # called in turn, so both share the machine's conditions
                for fn, into in ((before, times[0]), (after, times[1])):
                    start = time.perf_counter()
                    fn(*inputs).numpy()
                    into.append(time.perf_counter() - start)
            t_tf, t_ours = (1000 * float(np.median(t)) for t in times)
            rows.append((f"{seconds:g}", name, f"{t_tf:.1f}", f"{t_ours:.1f}", f"{t_tf / t_ours:.2f}x"))
    print(percentile_table(rows, ["seconds", "stage", "TensorFlow's overlap-add (ms)", "overlap_add (ms)",
                                  "speed-up"]))


if __name__ == "__main__":
    main()
