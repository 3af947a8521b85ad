#!/usr/bin/env bash
# The preset nb201-cifar10-fast end to end, as a user runs it (`rlnas run`: train, rank, search,
# evaluate), one seed after the other on an otherwise idle machine, timed; then one table of
# the results (benchmarks/RESULTS.md, "A good answer in minutes").
# Usage: benchmarks/fast_preset.sh SHARED_DATA_DIR [OUT_DIR] [SEEDS...]
#        (e.g. ../shared/data runs/fast 0 1 2; seeds default to 0 1 2)
set -euo pipefail
DATA=${1:?shared data folder (cifar10/, nasbench201.csv, nasbench201-splits/)}
OUT=${2:-runs/fast}
shift $(( $# > 2 ? 2 : $# ))
SEEDS=${*:-0 1 2}
RLNAS=${RLNAS:-rlnas}
mkdir -p "$OUT"
for s in $SEEDS; do
  dir="$OUT/s$s"
  [[ -f "$dir/evaluation.json" ]] && continue
  start=$(date +%s%N)
  $RLNAS run nb201-cifar10-fast root="$DATA/cifar10" \
    split_file="$DATA/nasbench201-splits/cifar-split.txt" nasbench201="$DATA/nasbench201.csv" \
    seed="$s" label_seed="$s" --out "$dir" -q > "$dir.log" 2>&1
  echo $(( ($(date +%s%N) - start) / 1000000 )) > "$dir/wall_ms"
done
python3 - "$OUT" $SEEDS <<'EOF'
import csv, json, sys
from pathlib import Path
out, seeds = Path(sys.argv[1]), sys.argv[2:]
cols = ("cifar10_test", "cifar100_test", "imagenet16_test")
print("| seed | wall (min) | epochs trained | tau C-10 | tau C-100 | tau IN16 | within-params tau "
      "| searched cell C-10 valid / test | params pick C-10 test | ladder wins / limits |")
print("|---|---|---|---|---|---|---|---|---|---|")
for s in seeds:
    d = out / f"s{s}"
    ev = json.loads((d / "evaluation.json").read_text())
    run, scorer = ev["per_run"][0], ev["scorers"][0]  # the preset's scorer
    corr = {c: run["correlation"][scorer]["columns"][c]["kendall_tau"] for c in cols}
    within = run["size_control"]["cifar10_test"]["scorers"][scorer]["within_params_tau"]
    found = ev["search"]["found"][0]
    pick = run["correlation"]["params"]["columns"]["cifar10_test"]["top1_accuracy"]
    lad = run["constrained"]["params"]
    wins = sum(a > b for a, b in zip(lad["methods"][scorer]["accuracy"],
                                     lad["largest"]["tied_mean_accuracy"]))
    epochs = list(csv.DictReader(open(d / "metrics.csv")))[-1]["epoch"]
    wall = float((d / "wall_ms").read_text()) / 60e3
    print(f"| {s} | {wall:.1f} | {epochs} | {corr['cifar10_test']:.3f} | "
          f"{corr['cifar100_test']:.3f} | {corr['imagenet16_test']:.3f} | {within:.3f} | "
          f"{found['cifar10_valid']:.2f} / {found['cifar10_test']:.2f} | {pick:.2f} | "
          f"{wins} / {len(lad['budgets'])} |")
EOF
