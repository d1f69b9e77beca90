#!/usr/bin/env bash
# The README's proof-of-learning run: 150 chorales, default preset, 3000 steps on 2 CPU cores (~1 hour).
#   bash experiments/proof_of_learning.sh [OUT_DIR]
set -euo pipefail
OUT=${1:-build/proof}
B=${B:-.venv/bin}
$B/kgan corpus chorales "$OUT/chorales" --n 150
$B/kgan preprocess "$OUT/chorales" "$OUT/data"
$B/kgan train "$OUT/data" "$OUT/run" --steps 3000 --set train.image_every=250 --set train.checkpoint_every=500
$B/python -m kgan.plots "$OUT/run" "$OUT/run/loss.png"
$B/python experiments/val_baselines.py "$OUT/data"
