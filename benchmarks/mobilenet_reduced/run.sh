#!/usr/bin/env bash
# A reduced end-to-end run of the paper's MobileNet space (benchmarks/RESULTS.md, "Choice-block
# spaces"): CIFAR-10 written as an image folder, the space at width 0.25 and 64x64 inputs
# (mb_small.py), train -> search under a scaled FLOPs limit -> retrain -> export, one thread.
# Usage: benchmarks/mobilenet_reduced/run.sh SHARED_DATA_DIR [OUT_DIR]   (needs Pillow)
set -euo pipefail
DATA=${1:?shared data folder (cifar10/)}
OUT=$(realpath -m "${2:-runs/mobilenet-reduced}")
RLNAS=${RLNAS:-rlnas}
HERE=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
[[ -d "$OUT/folder/val" ]] || python3 "$HERE/make_folder.py" "$DATA/cifar10" "$OUT/folder" 5000
cd "$HERE"   # mb_small.py is imported from the working directory (space=mb_small:SPACE)
time $RLNAS train mobilenet-imagenet space=mb_small:SPACE root="$OUT/folder" resolution=64 \
    epochs=2 batch=64 lr=0.03125 train.keep_every_epochs=0 --out "$OUT/supernet" -q
# 4.26 M FLOPs: 475 M's place between the full space's min and max FLOPs (184-1,038 M),
# applied to this space's range (1.37-9.85 M: SPACE.cost_bounds())
time $RLNAS search "$OUT/supernet" --max-flops 4.26
time $RLNAS retrain retrain-mobilenet-imagenet "$OUT/supernet" space=mb_small:SPACE \
    root="$OUT/folder" resolution=64 epochs=3 batch=64 lr=0.03125 --out "$OUT/retrain" -q
time $RLNAS export "$OUT/retrain" --onnx
