#!/usr/bin/env bash
# The reduced-budget CPU runs behind the numbers in README.md and benchmarks/RESULTS.md.
# Usage: benchmarks/cpu_evidence.sh SHARED_DATA_DIR [OUT_DIR]   (e.g. ../shared/data runs)
# Steps can be run one by one: STEP=nb201|darts|scorers benchmarks/cpu_evidence.sh ...
set -euo pipefail
DATA=${1:?shared data folder (cifar10/, nasbench201.csv, nasbench201-splits/)}
OUT=${2:-runs}
RLNAS=${RLNAS:-rlnas}
C10="root=$DATA/cifar10 split_file=$DATA/nasbench201-splits/cifar-split.txt"
TABLE=$DATA/nasbench201.csv
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

if [[ "${STEP:-nb201}" == nb201 ]]; then
  # NB201 supernets, C=16 with 1 cell per stage, 20 epochs on the 25k NB201 train half:
  # random labels (RLNAS) and true labels (the paper's ablation)
  for labels in random true; do
    $RLNAS train nb201-cifar10 $C10 channels=16 cells=1 epochs=20 labels=$labels \
      train.keep_every_epochs=5 --out "$OUT/c10-$labels" -q
    $RLNAS rank "$OUT/c10-$labels"
    $RLNAS search "$OUT/c10-$labels"
  done
  $RLNAS evaluate "$OUT/c10-random" --nasbench201 "$TABLE" \
    --scorers angle,params,flops,random,angle+params --out "$OUT/eval-random" -q
  $RLNAS evaluate "$OUT/c10-true" --nasbench201 "$TABLE" \
    --scorers angle,params,flops,random,angle+params --out "$OUT/eval-true" -q
fi

if [[ "${STEP:-darts}" == darts ]]; then
  # DARTS-CIFAR supernet at C=8, 5 cells, 5,000 images, 6 epochs; EA search; short retraining
  # (NetworkCIFAR C=12, 6 cells, 10,000 images, 4 epochs) of the found and of a random genotype
  $RLNAS train darts-cifar10 root=$DATA/cifar10 channels=8 model.layers=5 subset=5000 epochs=6 \
    --out "$OUT/darts-c10" -q
  $RLNAS search "$OUT/darts-c10"
  RT="root=$DATA/cifar10 test_root=$DATA/cifar10/test_exact1k.npz subset=10000 channels=12 \
      model.layers=6 epochs=4 eval.every_epochs=4"
  $RLNAS retrain retrain-darts-cifar10 "$OUT/darts-c10" $RT --out "$OUT/darts-rt-found" -q
  $RLNAS retrain retrain-darts-cifar10 "$($RLNAS sample darts --seed 0)" $RT \
    --out "$OUT/darts-rt-random" -q
fi

if [[ "${STEP:-scorers}" == scorers ]]; then
  # the 2x2 table (labels x indicator) on a seeded 100-cell sample: the accuracy indicator
  # (BN recalibration on 1,000 training images, top-1 on 1,000 held-out NB201-valid images)
  # costs ~5 s per cell on one CPU core; both label kinds in parallel
  for labels in random true; do
    $RLNAS evaluate "$OUT/c10-$labels" --nasbench201 "$TABLE" --sample 100 \
      --scorers angle,accuracy,params --recal-images 1000 --eval-images 1000 \
      --out "$OUT/eval-2x2-$labels" -q &
  done
  wait
fi

if [[ "${STEP:-proxies}" == proxies ]]; then
  # every zero-cost proxy (proxy network C=8, 1 cell per stage, one batch of 32 CIFAR-10 training
  # images) on a seeded 2,000-cell sample next to the angle of both supernets, then on all cells
  $RLNAS evaluate "$OUT/c10-random" "$OUT/c10-true" --nasbench201 "$TABLE" --sample 2000 \
    --scorers angle,params,synflow,snip,grad_norm,fisher,jacov,nwot,angle+synflow \
    --proxy-channels 8 --proxy-cells 1 --proxy-batch 32 --out "$OUT/eval-proxies" -q
  $RLNAS evaluate "$OUT/c10-random" --nasbench201 "$TABLE" --scorers angle,params,synflow \
    --proxy-channels 8 --proxy-cells 1 --proxy-batch 32 --out "$OUT/eval-synflow-all" -q
  # the other proxies on all 15,625 cells (~7-11 min each)
  for s in nwot,jacov snip,grad_norm fisher; do
    $RLNAS evaluate "$OUT/c10-random" --nasbench201 "$TABLE" --scorers $s --proxy-channels 8 \
      --proxy-cells 1 --proxy-batch 32 --out "$OUT/eval-${s/,/-}-all" -q
  done
fi
