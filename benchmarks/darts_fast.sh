#!/usr/bin/env bash
# The fast recipe on DARTS-CIFAR (benchmarks/RESULTS.md, "A good answer in minutes", DARTS):
# supernet by the preset darts-cifar10-fast, searched by angle_sum and by the paper's angle, then
# a short retraining of the found genotype next to the largest genotype under its FLOPs, three
# random genotypes and the paper's RLDARTS genotype, with the same recipe and seeds.
# Usage: benchmarks/darts_fast.sh SHARED_DATA_DIR [OUT_DIR]   (e.g. ../shared/data runs/darts-fast)
# Every step is skipped when its output exists, so the script resumes after an interruption.
# RT_SEEDS (default "0") and RT_JOBS (default 2 parallel one-thread retrainings) are read from
# the environment.
set -euo pipefail
DATA=${1:?shared data folder (cifar10/)}
OUT=${2:-runs/darts-fast}
RLNAS=${RLNAS:-rlnas}
SEEDS=${RT_SEEDS:-0}
JOBS=${RT_JOBS:-2}
mkdir -p "$OUT"
SUP="$OUT/supernet"
if [[ ! -f "$SUP/result-angle_sum.json" ]]; then
  $RLNAS train darts-cifar10-fast root="$DATA/cifar10" --out "$SUP" -q
  $RLNAS search "$SUP" --scorer angle && cp "$SUP/result.json" "$SUP/result-angle.json"
  $RLNAS search "$SUP" --scorer angle_mean && cp "$SUP/result.json" "$SUP/result-angle_mean.json"
  $RLNAS search "$SUP" --scorer angle_sum && cp "$SUP/result.json" "$SUP/result-angle_sum.json"
fi
# the largest genotype (FLOPs of the ImageNet network, the unit of search limits) under the
# found genotype's FLOPs
FOUND_FLOPS=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['top'][0]['flops_m'])" \
  "$SUP/result-angle_sum.json")
if [[ ! -f "$SUP/result-largest.json" ]]; then
  $RLNAS search "$SUP" --scorer flops --max-flops "$FOUND_FLOPS"
  cp "$SUP/result.json" "$SUP/result-largest.json"
  cp "$SUP/result-angle_sum.json" "$SUP/result.json"
fi
RLDARTS="Genotype(normal=[('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('dil_conv_3x3', 0), \
('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('dil_conv_5x5', 3), ('dil_conv_5x5', 1), \
('dil_conv_3x3', 2)], normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 0), \
('dil_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 2), ('dil_conv_3x3', 1), \
('sep_conv_3x3', 3), ('max_pool_3x3', 1), ('sep_conv_5x5', 2)], reduce_concat=range(2, 6))"
declare -A ARCH=(
  [found-angle_sum]="$SUP/result-angle_sum.json"
  [found-angle]="$SUP/result-angle.json"
  [largest]="$SUP/result-largest.json"
  [rldarts]="$RLDARTS"
  [random0]="$($RLNAS sample darts --seed 0)"
  [random1]="$($RLNAS sample darts --seed 1)"
  [random2]="$($RLNAS sample darts --seed 2)"
)
# Retraining (what fits a 2-core CPU: about 20 minutes per genotype and seed on one core):
# NetworkCIFAR C=16 with 8 cells (the supernet's size), 32 px, the first 10,000 training images
# (train_1), 3 epochs, batch 96, lr 0.05 cosine, no auxiliary head, drop-path or cutout; tested
# on the 10,000 held-out exact training images of train_5.
RT=(root="$DATA/cifar10" subset=10000 test_root="$DATA/cifar10/train_5.npz" channels=16
    model.layers=8 model.auxiliary=false model.drop_path=0.0 data.cutout=0 epochs=3 batch=96
    lr=0.05 eval.every_epochs=3)
jobs_file="$OUT/retrain.jobs"
: > "$jobs_file"
# the found genotype first, so that an interrupted run has measured what matters most
for name in found-angle_sum rldarts largest found-angle random0 random1 random2; do
  for seed in $SEEDS; do
    dir="$OUT/rt-$name-s$seed"
    [[ -f "$dir/retrain.json" ]] && continue
    printf '%s\0' "OMP_NUM_THREADS=1 $RLNAS retrain retrain-darts-cifar10 \"${ARCH[$name]}\" ${RT[*]} seed=$seed --out $dir -q > $dir.log 2>&1" >> "$jobs_file"
  done
done
xargs -0 -P "$JOBS" -I{} bash -c {} < "$jobs_file"
python3 - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = {}
for d in sorted(out.glob("rt-*-s*")):
    f = d / "retrain.json"
    if f.exists():
        name, seed = d.name[3:].rsplit("-s", 1)
        r = json.loads(f.read_text())
        rows.setdefault(name, []).append((int(seed), r["last"]["top1"], r["params_m"], r["arch"]))
print("| genotype | params (M, C=16 x 8 cells) | top-1 on held-out train_5 (last epoch), per seed | mean |")
print("|---|---|---|---|")
for name, rs in sorted(rows.items()):
    accs = [a for _, a, _, _ in sorted(rs)]
    print(f"| {name} | {rs[0][2]:.3f} | {' / '.join(f'{a:.2f}' for a in accs)} | "
          f"{sum(accs) / len(accs):.2f} |")
EOF
