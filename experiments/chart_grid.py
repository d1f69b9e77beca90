"""What a chord chart gets when the tempo it is counted in is a little off, placed as given or fitted to the singing.

    python experiments/chart_grid.py TEST_SET [--model EXPORT] [--errors 0,0.01,0.02,-0.02] [--n 30] [--out DIR]

Each test song's score chords (``chord_track`` in its ``song.json``) become, in beats from its first downbeat,
the chart a singer who knows them would type. The singer's tempo is the song's times ``1 + error``. The chart is
placed on that grid as given, and on the grid ``kgan.chart.fit_grid`` fits to the sung note starts; each song
is generated in its own style with each placement and scored by ``kgan.evaluation`` (chord motion, chroma fit).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("songs")
    parser.add_argument("--model", default=None, help="An export (default: the shipped one).")
    parser.add_argument("--errors", default="0,0.01,0.02,-0.02")
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--out", default="docs/chords/chart_grid")
    args = parser.parse_args(argv)

    import numpy as np

    from benchmarks._common import machine_line, percentile_table
    from kgan import evaluation as ev
    from kgan import pretrained, use_served_kernels
    from kgan.chart import ChordChart, fit_grid
    from kgan.generation import LocalModel
    from kgan.harmony import song_meter
    from kgan.inference import generate_song
    from kgan.io_utils import song_info

    use_served_kernels()
    model = LocalModel(args.model or os.path.join(pretrained.export_base(), "1"))
    rate = model.sample_rate
    songs = ev.load_songs(args.songs, rate, "test")[: args.n]
    labels = ev.song_labels(args.songs, [n for n, _, _ in songs])
    errors = [float(e) for e in args.errors.split(",")]
    placements = {}  # system -> song -> (seconds a beat, downbeat) the chart is placed with
    fitted_off = {e: [] for e in errors}
    for name, vocal, _ in songs:
        info = song_info(os.path.join(args.songs, name))
        beat, _, downbeat = song_meter(info)
        meter = info.get("meter") or "4/4"
        for e in errors:
            told = 60.0 / (beat * (1 + e))
            placements.setdefault(f"as given, tempo {e:+.0%}", {})[name] = (60.0 / told, downbeat)
            bpm, start = fit_grid(vocal, model.config, told, meter, downbeat)
            placements.setdefault(f"fitted, tempo {e:+.0%}", {})[name] = (60.0 / bpm, start)
            fitted_off[e].append(abs(60.0 / bpm / beat - 1))

    def system(key):
        def run(vocal, rate, song=None):
            info = song_info(os.path.join(args.songs, song))
            true_beat, _, true_downbeat = song_meter(info)
            beat, downbeat = placements[key][song]
            track = tuple((downbeat + (s - true_downbeat) / true_beat * beat,
                           downbeat + (t - true_downbeat) / true_beat * beat, int(c)) for s, t, c in info["chord_track"])
            label = labels.get(song)
            model.set_style(label if label in model.style_names else None)
            model.set_chart(ChordChart(track))
            return generate_song(model, vocal, rate, at_input_rate=True)

        run.per_song = True
        return run

    systems = {key: system(key) for key in placements}
    report = ev.evaluate(systems, songs, rate, progress=True)
    rows, summary = [], {}
    for key in systems:
        s = report["systems"][key]["summary"]
        summary[key] = {m: s[m] for m in ("chroma_motion", "chroma_fit")}
        rows.append([key, f"{s['chroma_motion'][0]:.3f} ± {s['chroma_motion'][1]:.3f}", f"{s['chroma_fit'][0]:.3f}"])
    table = percentile_table(rows, ["chart placed", "chord motion", "chroma fit"])
    tempo = ", ".join(f"{e:+.0%}: {np.median(v):.2%}" for e, v in fitted_off.items())
    text = (f"{machine_line()}\n\n{len(songs)} songs of {args.songs}, each in its own style\n\n{table}\n\n"
            f"median tempo error after fitting (given error: median): {tempo}\n")
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "summary.md"), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(args.out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump({"songs": [n for n, _, _ in songs], "summary": summary,
                   "fitted_tempo_error": {str(e): v for e, v in fitted_off.items()}}, f, indent=2)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
