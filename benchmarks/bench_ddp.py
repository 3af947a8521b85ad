"""Multi-process supernet training: gradient-sync strategies and communication volume.

1. Communication volume per step: the parameters one sampled path touches (what the coalesced
   all-reduce sends) against all supernet parameters (what DDP's reducer sends, zeros included,
   with find_unused_parameters=True), for each space at its paper size.
2. Wall time of `rlnas train` on a small CIFAR-size dataset: one process, and 2 processes
   (torchrun, gloo on CPU / NCCL on GPU) with grad_sync=coalesced and grad_sync=ddp, same
   global batch. Ratios are against the one-process run of the same invocation.

    python benchmarks/bench_ddp.py [--nproc 2] [--steps 32] [--channels 16 --cells 5]
"""
from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rlnas.spaces import get_space
from rlnas.throughput import SETTINGS


def touched_fraction(name: str, samples: int = 20):
    s = SETTINGS[name]
    space = get_space(s.get("space", name))
    model = space.supernet(num_classes=s["classes"], **s["model"])
    total = sum(p.numel() for p in model.parameters())
    x = torch.randn(2, 3, 32, 32) if s["image"] == 32 else torch.randn(2, 3, 64, 64)
    counts = []
    for step in range(samples):
        model.zero_grad(set_to_none=True)
        out = model(x, space.sample_training_path(0, step, model.num_search_cells))
        F.cross_entropy(out, torch.zeros(2, dtype=torch.long)).backward()
        counts.append(sum(p.numel() for p in model.parameters() if p.grad is not None))
    return total, float(np.mean(counts))


def timed_run(args, nproc, grad_sync, data, out):
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 2) // nproc)))
    train = ["train", "nb201-cifar10", f"root={data}", f"channels={args.channels}",
             f"cells={args.cells}", "epochs=2", f"batch={args.batch}", "data.nb201_half=false",
             f"train.grad_sync={grad_sync}", f"train.accumulate={args.nproc // nproc}",
             "--out", str(out), "-q"]
    if nproc == 1:
        cmd = [sys.executable, "-m", "rlnas", *train]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", "-m", "rlnas", *train]
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    return float(rows[-1]["images_per_s"])  # second epoch: warm


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--steps", type=int, default=16, help="steps per epoch")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--cells", type=int, default=5)
    args = ap.parse_args()
    print(f"# {datetime.date.today()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, cuda {torch.cuda.is_available()}")
    print("| space (paper size) | all params | touched by one path (mean) | fraction |")
    print("|---|---|---|---|")
    for name in ("nb201", "darts-cifar"):
        total, used = touched_fraction(name)
        print(f"| {name} | {total:,} | {used:,.0f} | {used / total:.2f} |")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        n = args.steps * args.batch
        np.savez(tmp / "train_1.npz", x=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                 y=rng.integers(0, 10, n))
        base = timed_run(args, 1, "coalesced", tmp, tmp / "one")
        rows = [("1 process (accumulate=%d)" % args.nproc, base)]
        for sync in ("coalesced", "ddp"):
            rows.append((f"{args.nproc} processes, grad_sync={sync}",
                         timed_run(args, args.nproc, sync, tmp, tmp / sync)))
    print(f"\nNB201 C={args.channels} N={args.cells}, global batch {args.batch}, "
          f"{args.steps} steps/epoch, epoch 2 timed")
    print("| setting | img/s | ratio to 1 process |")
    print("|---|---|---|")
    for name, v in rows:
        print(f"| {name} | {v:.0f} | {v / base:.2f}x |")


if __name__ == "__main__":
    main()
