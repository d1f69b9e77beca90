# bfloat16 training against the shipped float32 run, both generating each song in its own style.
# The bf16 run: the shipped recipe (every chorale + 1500 folk songs, seed 0, 3000 steps, style-conditioned,
# model.vocal_input=plan, its generator told the chords heard in the accompaniment, as the shipped run was:
# the corpus' song.json files without their chord_track) with train.precision=mixed_bfloat16.
# Both exports: float16 weights, float32 arithmetic, the shipped chord network, window overlap 1/4,
# per-style levels calibrated on the corpus' val songs, no high band.
# Needs the shipped recipe's corpus in build/dyn/corpus (kgan corpus build build/dyn/corpus --chorales all --folk 1500
# --voices gm-voice,wind,brass,bowed --splits train,val --jobs 2) and its test renderings build/dyn/test-*
# (experiments/_steps.py render_test_sets('build/dyn', [...], 10, 20, 2)).
set -e
cd "$(dirname "$0")/../../.."
K=".venv/bin/kgan"; O=build/bf16; C=build/dyn/corpus
.venv/bin/python - "$C" "$O/corpus-heard" <<'PY'
import json, os, sys
src, dst = sys.argv[1:]
os.makedirs(dst, exist_ok=True)
for name in os.listdir(src):
    s, d = os.path.join(src, name), os.path.join(dst, name)
    if not os.path.isdir(s):
        os.path.exists(d) or os.symlink(os.path.abspath(s), d)
        continue
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(s):
        if f == "song.json":
            info = json.load(open(os.path.join(s, f)))
            info.pop("chord_track", None)
            json.dump(info, open(os.path.join(d, f), "w"), indent=2)
        elif not os.path.exists(os.path.join(d, f)):
            os.symlink(os.path.abspath(os.path.join(s, f)), os.path.join(d, f))
PY
[ -f $O/data/dataset.json ] || $K preprocess $O/corpus-heard $O/data --no-progress
$K train $O/data $O/run --steps 3000 --no-progress --set model.styles=chorale,piano,organ,strings,guitar,band \
  --set model.vocal_input=plan --set train.precision=mixed_bfloat16
[ -d $O/ref/1 ] || $K export kgan/pretrained/export/1 $O/ref --weights float16 --high-band off
[ -d $O/bf16/1 ] || $K export $O/run $O/bf16 --weights float16 --chords kgan/pretrained/export/1 --overlap 0.25 \
  --calibrate-levels $C
for t in seen-voices festival-fluidr3 instruments-fluidr3 musdb-real; do
  split=test; [ $t = musdb-real ] && split=""
  [ -f $O/report-$t/report.json ] || $K evaluate $O/bf16 build/dyn/test-$t -o $O/report-$t --split "$split" \
    --style label --compare float32=$O/ref --baselines drone --no-progress
done
# a second real vocal: the mixed excerpt, separated (scored against its separated accompaniment)
[ -d $O/real-excerpt ] || $K separate ../shared/data/real/slow-motion-dream-excerpt.mp3 -o $O/real-excerpt --no-progress
[ -f $O/report-real-excerpt/report.json ] || $K evaluate $O/bf16 $O/real-excerpt -o $O/report-real-excerpt --split "" \
  --compare float32=$O/ref --baselines drone,running-chroma --no-progress
# each rendered test song told its own beat grid
for t in seen-voices festival-fluidr3 instruments-fluidr3; do
  [ -f $O/told-$t/report.json ] || $K evaluate $O/bf16 build/dyn/test-$t -o $O/told-$t --split test --grid \
    --style label --compare float32=$O/ref --baselines "" --no-progress
done
for r in $O/report-* $O/told-*; do cp $r/report.md docs/speed/bf16_in_style/$(basename $r).md 2>/dev/null || true; done
.venv/bin/python - $O <<'PY' > docs/speed/bf16_in_style/summary.md
import json, sys
from kgan.evaluation import summary_cell
out = sys.argv[1]
metrics = ("chroma_motion", "chroma_fit", "key_score", "beat_f_measure", "log_spectral_distance", "level_error_db",
           "frechet_distance", "pairing_accuracy")
print("bfloat16 training (model) against the shipped float32 run (float32), each song in its own style "
      "(told-*: and its beat grid); mean ± 95 % CI.\n")
print("| test set (songs) | system | " + " | ".join(metrics) + " |\n|---|---|" + "---|" * len(metrics))
import os
for test in ("report-seen-voices", "told-seen-voices", "report-festival-fluidr3", "told-festival-fluidr3",
             "report-instruments-fluidr3", "told-instruments-fluidr3", "report-musdb-real", "report-real-excerpt"):
    if not os.path.exists(f"{out}/{test}/report.json"):
        continue
    report = json.load(open(f"{out}/{test}/report.json"))
    for system in [s for s in ("model", "float32", "drone") if s in report["systems"]]:
        cells = [summary_cell(*report["systems"][system]["summary"][m]) if report["systems"][system]["summary"][m][0]
                 == report["systems"][system]["summary"][m][0] else "—" for m in metrics]
        print(f"| {test} ({len(report['songs'])}) | {system} | " + " | ".join(cells) + " |")
PY
