#!/usr/bin/env bash
# The README's proof-of-learning run: 150 chorales, default preset, 3000 steps on 2 CPU cores (~1 hour).
# It keeps that run's setting: the melody always Voice Oohs over a church organ at 80 bpm, the raw
# spectrogram input, no timbre augmentation (the corpus now splits by tune, so the songs differ).
#   bash experiments/proof_of_learning.sh [OUT_DIR]
set -euo pipefail
OUT=${1:-build/proof}
B=${B:-.venv/bin}
FIRST_MODEL=(--set model.vocal_input=spectrogram)
for a in level tilt formant vibrato breath reverb; do FIRST_MODEL+=(--set "augment.p_$a=0"); done
$B/kgan corpus chorales "$OUT/chorales" --n 150 --voices oohs --accompaniment-program 19 --bpm 80
$B/kgan preprocess "$OUT/chorales" "$OUT/data"
$B/kgan train "$OUT/data" "$OUT/run" --steps 3000 --set train.image_every=250 --set train.checkpoint_every=500 \
  "${FIRST_MODEL[@]}"
$B/python -m kgan.plots "$OUT/run" "$OUT/run/loss.png"
$B/python experiments/val_baselines.py "$OUT/data"
