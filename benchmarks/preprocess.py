"""Preprocessing throughput in x real time, against a bare tf.signal.stft pass over the same audio.

    python benchmarks/preprocess.py [--songs 12] [--preset default]

Renders ``--songs`` chorales (or reuses them), then times in one run:

* ``preprocess``: the whole per-song path of ``kgan preprocess`` (decode both
  stems, resample, two STFTs, normalisation, vocal gate, float16 TFRecord
  write), after a warm-up song so graph tracing is not counted;
* ``bare stft``: ``tf.signal.stft`` alone over the same waveforms, already in
  memory at the model's rate (two sources per song), the floor any
  preprocessing built on it can reach.

Prints a table; the ratio column is preprocess time over bare-STFT time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=12)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--corpus", default=os.path.join(tempfile.gettempdir(), "kgan-bench-chorales"))
    args = parser.parse_args()
    from _common import machine_line

    print(machine_line())

    import tensorflow as tf

    from kgan.config import get_preset
    from kgan.corpus import build_chorales
    from kgan.preprocess import SongProcessor, find_sources, load_sources

    cfg = get_preset(args.preset)
    rate = cfg.audio.sample_rate
    corpus_dir = f"{args.corpus}-{rate}"
    build_chorales(corpus_dir, rate, n=args.songs, progress=False)
    folders = sorted(e.path for e in os.scandir(corpus_dir) if e.is_dir())
    sources = [find_sources(f) for f in folders]
    processor = SongProcessor(cfg)
    with tempfile.TemporaryDirectory() as out:
        processor(sources[0], "train", os.path.join(out, "warmup.tfrecord"))  # trace the graph once
        start = time.perf_counter()
        for i, s in enumerate(sources):
            processor(s, "train", os.path.join(out, f"{i}.tfrecord"))
        t_pre = time.perf_counter() - start

    waves = [load_sources(s, rate) for s in sources]
    seconds = sum(len(v) for v, _ in waves) / rate

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def bare(x):
        return tf.signal.stft(x, cfg.stft.n_fft, cfg.stft.hop_length)

    bare(tf.constant(waves[0][0]))
    tensors = [(tf.constant(v), tf.constant(a)) for v, a in waves]
    start = time.perf_counter()
    for v, a in tensors:
        bare(v).numpy()
        bare(a).numpy()
    t_stft = time.perf_counter() - start

    print(f"\n{len(sources)} chorales, {seconds:.0f} s of audio at {rate} Hz, preset {cfg.preset!r}, "
          f"{os.cpu_count()} CPU core(s)\n")
    print(f"| {'stage':<11} | {'seconds':>8} | {'x real time':>11} | {'x bare stft time':>16} |")
    print(f"|{'-' * 13}|{'-' * 10}|{'-' * 13}|{'-' * 18}|")
    for name, t in (("preprocess", t_pre), ("bare stft", t_stft)):
        print(f"| {name:<11} | {t:>8.2f} | {seconds / t:>11.0f} | {t / t_stft:>16.1f} |")
    goal = seconds / t_pre >= 300
    print(f"\ngoal >= 300x real time: {'met' if goal else 'NOT met'} ({seconds / t_pre:.0f}x)")


if __name__ == "__main__":
    main()
