#!/usr/bin/env bash
# One prepared GPU check (for a session with a lent H100/H200): training/inference throughput of
# every space at paper size, the NB201 comparison with the official-style baseline, and bf16 vs
# fp32. Needs the repo installed (pip install -e .) and nothing else; writes to $OUT if set.
set -euo pipefail
OUT=${OUT:-.}
python -m rlnas bench --device cuda --precision bf16 --steps 30 | tee "$OUT/bench_bf16.md"
python -m rlnas bench --device cuda --precision fp32 --steps 30 --spaces nb201 darts-cifar | tee "$OUT/bench_fp32.md"
python benchmarks/bench_nb201.py --steps 100 --device cuda | tee "$OUT/bench_nb201_gpu.md"
python benchmarks/bench_imagenet_loader.py --device cuda --images 512 --batch 128 --step-ms 100 | tee "$OUT/bench_imagenet_loader_gpu.md"
