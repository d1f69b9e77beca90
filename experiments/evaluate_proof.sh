#!/usr/bin/env bash
# The README's evaluation: the proof run's model and an L1-only U-Net (same data, trainer and steps,
# GAN weight 0) against every baseline on the corpus test split. Run after proof_of_learning.sh.
#   bash experiments/evaluate_proof.sh [PROOF_DIR]
set -euo pipefail
OUT=${1:-build/proof}
B=${B:-.venv/bin}
FIRST_MODEL=(--set model.vocal_input=spectrogram)  # as in proof_of_learning.sh
for a in level tilt formant vibrato breath reverb; do FIRST_MODEL+=(--set "augment.p_$a=0"); done
$B/kgan train "$OUT/data" "$OUT/l1only" --steps 3000 --set train.gan_weight=0 --set train.image_every=1000 \
  --set train.checkpoint_every=500 "${FIRST_MODEL[@]}"
$B/kgan export "$OUT/run" "$OUT/exports/gan"
$B/kgan export "$OUT/l1only" "$OUT/exports/l1only"
$B/kgan evaluate "$OUT/exports/gan" "$OUT/chorales" -o "$OUT/report" \
  --baselines silence,echo,drone,running-chroma,mean,retrieval --train-data "$OUT/data" \
  --compare l1-only="$OUT/exports/l1only"
