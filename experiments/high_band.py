"""How much of the band above 11 kHz ``kgan export --high-band`` restores, and what it costs.

    python experiments/high_band.py OUT_DIR [--model kgan/pretrained/export/1] [--test-chorales 10 --test-folk 30]

1. ``kgan corpus build OUT/corpus-44k --preset fullband``: train-split tunes at 44.1 kHz, the seen voice
   families, TimGM6mb (what the shipped model trained on); its accompaniments fit the sub-band gains per
   style (``kgan.high_band.fit_corpus``).
2. ``OUT/test-44k``: test-split tunes at 44.1 kHz through FluidR3, the SoundFont no gain was fitted on;
   and the real MUSDB18 sample's accompaniment (44.1 kHz, its channels averaged).
3. For each test song, the accompaniment's band below 11.025 kHz comes from two sources: the truth itself
   resampled to 22.05 kHz (the oracle: what a perfect generator would make) and the shipped model's output
   for the song's vocal, in the song's style (the real song in ``any``). Each is brought to 44.1 kHz three
   ways: resampled only (nothing above 11.025 kHz: what kgan gave before), with the high band fitted over
   every style (``any``), and with the song's style's gains.
4. Scored against the true 44.1 kHz accompaniment, on an STFT of 2048 / 512 at 44.1 kHz, magnitudes on
   kgan's full-scale dB scale floored at -120 dBFS a bin, over 11.025-20 kHz (the high band) and over the whole
   band: log-spectral distance (LSD, dB); the high band's level error (dB, its power over the song); and
   how its loudness follows the truth's from frame to frame (correlation of the frames' high-band dB).
   Mean and 95 % interval over songs. The cost: the real-time factor of the high-band stage alone on 60 s.

Writes ``OUT/high_band.json``, ``OUT/high_band.md`` and a picture of one band-style song
(``OUT/high_band.png``: truth, resampled only, with the high band). With ``--install``, ``--model`` is
exported again with the high band (``kgan export MODEL OUT/export --weights float16 --high-band
OUT/corpus-44k``), checked to leave the band below 11 kHz as it was, and installed as the shipped model with
a "High band" section in its card.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _steps import FLUID, MUSDB, ROOT, SEEN_FAMILIES, done, kgan  # noqa: E402

sys.path.insert(0, ROOT)

HIGH = (11025.0, 20000.0)  # the band scored as "high"


FLOOR_DB = -120.0  # per-bin floor: cymbals spread over hundreds of bins are audible at -80 dBFS a bin


def _stft_db(x: np.ndarray, rate: int, floor_db: float = FLOOR_DB) -> np.ndarray:
    """``[T, F]`` dB of a mono signal's STFT at 2048 / 512 on kgan's full-scale scale, floored."""
    import librosa

    magnitude = np.abs(librosa.stft(np.asarray(x, np.float32), n_fft=2048, hop_length=512)) / (2048 / 4)
    return np.maximum(20 * np.log10(np.maximum(magnitude, 1e-12)), floor_db).T


def song_scores(estimate: np.ndarray, truth: np.ndarray, rate: int) -> dict:
    """LSD over the high band and the whole band, the high band's level error and frame-loudness correlation."""
    n = min(len(estimate), len(truth))
    est, true = _stft_db(estimate[:n], rate), _stft_db(truth[:n], rate)
    freqs = np.fft.rfftfreq(2048, 1 / rate)
    high = (freqs >= HIGH[0]) & (freqs < HIGH[1])
    whole = freqs < HIGH[1]

    def lsd(mask):
        return float(np.mean(np.sqrt(np.mean((est[:, mask] - true[:, mask]) ** 2, axis=1))))

    def power_db(db, axis=None):
        return 10 * np.log10(np.mean(10 ** (db[:, high] / 10), axis=axis) + 1e-30)

    frames_est, frames_true = power_db(est, axis=1), power_db(true, axis=1)
    loud = frames_true > frames_true.max() - 40  # frames whose high band is within 40 dB of its loudest
    varies = loud.sum() > 2 and np.std(frames_est[loud]) > 1e-3 and np.std(frames_true[loud]) > 1e-3
    follow = float(np.corrcoef(frames_est[loud], frames_true[loud])[0, 1]) if varies else 0.0
    return {"lsd_high": lsd(high), "lsd_whole": lsd(whole), "level_error_high": float(power_db(est) - power_db(true)),
            "follow_high": follow}


def mean_ci(values) -> list[float]:
    values = np.asarray(values, np.float64)
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return [round(float(values.mean()), 3), round(float(half), 3)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--model", default=os.path.join(ROOT, "kgan", "pretrained", "export", "1"))
    parser.add_argument("--fit-chorales", type=int, default=60)
    parser.add_argument("--fit-folk", type=int, default=300)
    parser.add_argument("--test-chorales", type=int, default=10)
    parser.add_argument("--test-folk", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=20.0, help="Each test song's first seconds.")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--install", action="store_true", help="Ship --model with the high band (see above).")
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    fit_dir, test_dir = f"{out}/corpus-44k", f"{out}/test-44k"
    if not done(f"{fit_dir}/corpus.json"):
        kgan("corpus", "build", fit_dir, "--preset", "fullband", "--chorales", args.fit_chorales, "--folk",
             args.fit_folk, "--voices", SEEN_FAMILIES, "--splits", "train", "--jobs", args.jobs, "--no-progress")
    if not done(f"{test_dir}/corpus.json"):
        kgan("corpus", "build", test_dir, "--preset", "fullband", "--chorales", args.test_chorales, "--folk",
             args.test_folk, "--voices", SEEN_FAMILIES, "--soundfont", FLUID, "--splits", "test", "--jobs", args.jobs,
             "--no-progress")

    import librosa

    from kgan.evaluation import song_labels
    from kgan.generation import LocalModel
    from kgan.high_band import HighBand, fit_corpus
    from kgan.inference import generate_song

    model = LocalModel(args.model)
    rate, config = model.sample_rate, model.config
    names = list(model.style_names) or ["any"]
    fitted = fit_corpus(fit_dir, config.stft, rate, names, progress=False)
    band = HighBand(config.stft, [fitted["gains_db"][n] for n in names])
    one = HighBand(config.stft, [fitted["gains_db"]["any"]])

    with open(f"{test_dir}/splits.json", encoding="utf-8") as f:
        songs = sorted(json.load(f)["test"])
    labels = song_labels(test_dir, songs)
    items = []
    for name in songs:
        truth, _ = librosa.load(f"{test_dir}/{name}/accompaniment.flac", sr=2 * rate, duration=args.seconds)
        vocal, _ = librosa.load(f"{test_dir}/{name}/vocals.flac", sr=rate, duration=args.seconds)
        items.append((name, labels.get(name), vocal, truth))
    musdb = os.path.join(MUSDB, "Music Delta - 80s Rock")
    truth = librosa.load(os.path.join(musdb, "accompaniment.flac"), sr=2 * rate, mono=True)[0]
    items.append(("musdb-real", None, librosa.load(os.path.join(musdb, "vocals.flac"), sr=rate)[0], truth))

    rows: dict[str, dict[str, list]] = {}
    picture = None
    for name, style, vocal, truth in items:
        model.set_style(style if style in model.style_names else None)
        sid = np.array([names.index(style) if style in names else 0], np.int32)
        oracle = librosa.resample(truth, orig_sr=2 * rate, target_sr=rate, res_type="soxr_hq")
        generated = generate_song(model, vocal, rate)[: len(oracle)]
        for source, low in (("true", oracle), ("generated", generated)):
            systems = {
                "resampled only": librosa.resample(low, orig_sr=rate, target_sr=2 * rate, res_type="soxr_hq"),
                "high band, any": one(low[None]).numpy()[0],
                "high band, style": band(low[None], sid).numpy()[0],
            }
            for system, estimate in systems.items():
                group = "real" if name == "musdb-real" else ("rendered, band" if style == "band" else
                                                             "rendered, other styles")
                key = f"{group} | {source} | {system}"
                for metric, value in song_scores(estimate, truth, 2 * rate).items():
                    rows.setdefault(key, {}).setdefault(metric, []).append(value)
            if picture is None and style == "band" and source == "generated":
                picture = (name, truth, systems["resampled only"], systems["high band, style"])

    seconds = 60.0
    probe = np.random.default_rng(0).standard_normal((1, int(seconds * rate))).astype(np.float32) * 0.1
    band(probe)  # traced once
    start = time.perf_counter()
    for _ in range(3):
        band(probe, np.zeros(1, np.int32))
    rtf = (time.perf_counter() - start) / 3 / seconds

    result = {"gains": fitted, "rtf_high_band": round(rtf, 5), "load_before": os.getloadavg()[0],
              "systems": {key: {m: mean_ci(v) for m, v in metrics.items()} | {"songs": len(metrics["lsd_high"])}
                          for key, metrics in rows.items()}}
    with open(f"{out}/high_band.json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    lines = ["| songs | low band | output | LSD high (dB) | LSD whole (dB) | high-band level error (dB) | "
             "follows the truth's high band (r) |", "|---|---|---|---|---|---|---|"]
    for key, summary in result["systems"].items():
        group, source, system = key.split(" | ")
        cells = [f"{summary[m][0]:.2f} ± {summary[m][1]:.2f}" if summary["songs"] > 1 else f"{summary[m][0]:.2f}"
                 for m in ("lsd_high", "lsd_whole", "level_error_high", "follow_high")]
        lines.append(f"| {group} ({summary['songs']}) | {source} | {system} | " + " | ".join(cells) + " |")
    lines.append(f"\nHigh-band stage alone: RTF {rtf:.4f} on {seconds:.0f} s (1-minute load before: "
                 f"{result['load_before']:.2f}).")
    with open(f"{out}/high_band.md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    if picture is not None:
        _plot(picture, 2 * rate, f"{out}/high_band.png")
    if args.install:
        install(args.model, out, lines, result)


def install(model_dir: str, out: str, table: list[str], result: dict) -> None:
    """Export ``model_dir`` again with the high band, check its band below 11 kHz, install it with its card section."""
    import librosa

    from kgan.generation import LocalModel
    from kgan.inference import generate_song
    from pretrained import install_with_section

    if not done(f"{out}/export/1"):
        kgan("export", model_dir, f"{out}/export", "--weights", "float16", "--high-band", f"{out}/corpus-44k")
    before, after = LocalModel(model_dir), LocalModel(f"{out}/export/1")
    vocal = librosa.load(os.path.join(MUSDB, "Music Delta - 80s Rock", "vocals.flac"), sr=before.sample_rate)[0]
    old = generate_song(before, vocal, before.sample_rate)
    new = librosa.resample(generate_song(after, vocal, after.sample_rate), orig_sr=after.output_rate,
                           target_sr=before.sample_rate, res_type="soxr_hq")[: len(old)]
    spectrum = lambda x: np.abs(librosa.stft(x, n_fft=1024, hop_length=256))[:480]  # noqa: E731  below 10.3 kHz
    change_db = float(20 * np.log10(np.linalg.norm(spectrum(new) - spectrum(old)) / np.linalg.norm(spectrum(old))))
    section = ["## High band",
               "",
               f"The export adds the octave above 11.025 kHz, so it returns 44.1 kHz audio (`kgan.high_band`, "
               f"`kgan export --high-band`): the top octave of what it generated, copied up twice and set per style "
               f"by sub-band gains fitted on {result['gains']['songs']['any']} train-split songs rendered at 44.1 kHz "
               f"through TimGM6mb. Below 10.3 kHz its output is the previous export's (the spectra differ by "
               f"{change_db:.0f} dB relative, on the real MUSDB18 vocal). `experiments/high_band.py`: test songs "
               f"through FluidR3 and the real MUSDB18 accompaniment; the low band true (a perfect generator) or "
               f"generated by this model; per-bin floor -120 dBFS; mean and 95 % interval over songs.",
               "", *table]
    install_with_section(f"{out}/export/1", section, "high_band",
                         {"gains": result["gains"], "rtf_high_band": result["rtf_high_band"],
                          "low_band_change_db": round(change_db, 1), "evaluation": result["systems"]})


def _plot(picture, rate: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name, *signals = picture
    labels = ["true accompaniment", "generated, resampled to 44.1 kHz (before)", "generated, with the high band"]
    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    for ax, label, x in zip(axes, labels, signals):
        db = _stft_db(x, rate).T
        seconds = db.shape[1] * 512 / rate
        image = ax.imshow(db, origin="lower", aspect="auto", extent=[0, seconds, 0, rate / 2], cmap="magma",
                          vmin=-80, vmax=0, interpolation="nearest")
        ax.axhline(11025, color="white", lw=0.5, ls="--")
        ax.set_ylabel("Hz")
        ax.set_title(label)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(name)
    fig.colorbar(image, ax=axes.tolist(), label="dBFS", fraction=0.025)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
