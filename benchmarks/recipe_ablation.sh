#!/usr/bin/env bash
# The training recipe taken apart, one training per variant and fold, every epoch scored
# (benchmarks/epoch_curves.py), on a split and denoised sonoflow run:
#
#   bash benchmarks/recipe_ablation.sh RUN OUT EPOCHS [epoch_curves options, e.g. --positive malignant]
#   VARIANTS="default plain" bash benchmarks/recipe_ablation.sh ...    (a subset; the default: all)
#
# default: config.yaml's recipe on real data; plain: the plain baseline's recipe in sonoflow's own
# loop (AdamW 3e-4, flips only, plain cross-entropy, no class weights, smoothing, EMA, warm-up or
# TTA); the others take one piece out of the default (no_us_aug: ultrasound's own augmentation;
# no_depth_crop: the depth crop alone; no_geometric: rotation, shift and scale; batch16 and batch8: smaller
# batches, more optimiser steps per epoch at about the same compute); lite1 and lite2 change only the backbone (the larger
# EfficientNet-Lites, from their packaged ImageNet weights, at the same 224 px). OUT/VARIANT/ gets
# epoch_curves' files and its printout (log.txt); a variant with OUT/VARIANT/done is skipped, so a stopped run continues.
# Then `benchmarks/epoch_curves.py RUN OUT/VARIANT --scored [--positive ...]` prints its table again.
set -euo pipefail
RUN=$1; OUT=$2; EPOCHS=$3; shift 3
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
HFLIP='{"hflip":0.5,"rotate":0,"translate":0,"scale":0,"brightness":0,"contrast":0,"speckle":0,"gain":0,"tgc":0,"depth_crop":0}'
# config.yaml's augmentation without ultrasound's own (speckle, gain, tgc, depth_crop), and without depth_crop alone
GEOMETRIC='{"hflip":0.5,"rotate":10.0,"translate":0.05,"scale":0.1,"brightness":0.1,"contrast":0.1,"speckle":0,"gain":0,"tgc":0,"depth_crop":0}'
# config.yaml's augmentation without its geometric part (rotate, translate, scale; the flip kept)
NO_GEOMETRIC='{"hflip":0.5,"rotate":0,"translate":0,"scale":0,"brightness":0.1,"contrast":0.1,"speckle":0.15,"gain":0.2,"tgc":0.2,"depth_crop":0.15}'
NO_DEPTH_CROP='{"hflip":0.5,"rotate":10.0,"translate":0.05,"scale":0.1,"brightness":0.1,"contrast":0.1,"speckle":0.15,"gain":0.2,"tgc":0.2,"depth_crop":0}'
declare -A SETS=(
  [default]=""
  [plain]="lr=0.0003 label_smoothing=0 ema=0 warmup_epochs=0 tta=[] class_weighting=\"none\" augment=$HFLIP"
  [aug_hflip]="augment=$HFLIP"
  [no_us_aug]="augment=$GEOMETRIC"
  [no_depth_crop]="augment=$NO_DEPTH_CROP"
  [no_geometric]="augment=$NO_GEOMETRIC"
  [lr3e4]="lr=0.0003"
  [no_ema]="ema=0"
  [no_smoothing]="label_smoothing=0"
  [no_class_weights]="class_weighting=\"none\""
  [batch16]="batch_size=16"
  [batch8]="batch_size=8"
  [lite1]="model=\"efficientnet_lite1\" weights=\"efficientnet-lite1-package\""
  [lite2]="model=\"efficientnet_lite2\" weights=\"efficientnet-lite2-package\""
)
for name in ${VARIANTS:-default plain aug_hflip lr3e4 no_ema no_smoothing no_class_weights}; do
  [[ -v SETS[$name] ]] || { echo "recipe_ablation: unknown variant $name" >&2; exit 2; }
  dir="$OUT/$name"
  [[ -f "$dir/done" ]] && continue
  mkdir -p "$dir"
  # shellcheck disable=SC2086  # the settings are separate words
  OMP_NUM_THREADS=1 "$PYTHON" benchmarks/epoch_curves.py "$RUN" "$dir" --epochs "$EPOCHS" "$@" --set ${SETS[$name]} \
    > "$dir/log.txt" 2>&1
  touch "$dir/done"
  tail -8 "$dir/log.txt"
done
