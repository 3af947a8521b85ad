"""The ImageNet folder loader: decoding throughput, and how much of it a training step hides.

Writes a synthetic ImageNet-style folder of JPEGs (smooth colour fields plus noise, sizes drawn
around ImageNet's typical 500 x 375) to a temporary directory, then measures with the official
training augmentation at 224 px:

1. the loader alone (images/s), with 1 decoding thread and with all of them;
2. a training loop in which each step costs ``--step-ms`` of accelerator time while the CPU is
   free (simulated by a sleep, which is what an asynchronous GPU step looks like from the host),
   without and with prefetching the next batch. The ratio is measured in the same run.

    python benchmarks/bench_imagenet_loader.py [--images 256] [--batch 64] [--step-ms 150]
                                               [--device cuda]
"""
from __future__ import annotations

import argparse
import datetime
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rlnas.imagenet import FolderLoader, default_threads, load_image_folder


def write_folder(root: Path, n: int, classes: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        w, h = int(rng.integers(400, 600)), int(rng.integers(300, 450))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        base = [np.sin(xx / rng.uniform(20, 80) + rng.uniform(0, 6))
                * np.cos(yy / rng.uniform(20, 80)) for _ in range(3)]
        img = (np.stack(base, 2) * 80 + 128 + rng.normal(0, 12, (h, w, 3))).clip(0, 255)
        d = root / "train" / f"n{i % classes:08d}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.astype(np.uint8)).save(d / f"{i}.JPEG", quality=90)


def loader_rate(data, batch, threads, steps, prefetch, step_s=0.0, device="cpu"):
    loader = FolderLoader(data, data.y, batch, seed=0, image_size=224, threads=threads,
                          prefetch=prefetch, device=device)
    loader.batch(0)  # warm the pool (and start the first look-ahead)
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        x, _ = loader.batch(step)
        if x.is_cuda:
            torch.cuda.synchronize()
        if step_s:
            time.sleep(step_s)
    return steps * batch / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--step-ms", type=float, default=150.0)
    ap.add_argument("--threads", type=int, default=0, help="0: one per usable CPU")
    ap.add_argument("--device", default="cpu", help="where batches are finished (cpu, cuda)")
    args = ap.parse_args()
    threads = args.threads or default_threads()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_folder(root, args.images)
        data = load_image_folder(root, "train")
        rows = []
        dev = args.device
        one = loader_rate(data, args.batch, 1, args.steps, False, device=dev)
        rows.append(("loader alone, 1 thread", one, 1.0))
        many = loader_rate(data, args.batch, threads, args.steps, False, device=dev)
        rows.append((f"loader alone, {threads} threads", many, many / one))
        step_s = args.step_ms / 1000
        ideal = args.batch / step_s
        sync = loader_rate(data, args.batch, threads, args.steps, False, step_s, dev)
        rows.append((f"loop, {args.step_ms:.0f} ms step, no prefetch", sync, 1.0))
        ahead = loader_rate(data, args.batch, threads, args.steps, True, step_s, dev)
        rows.append((f"loop, {args.step_ms:.0f} ms step, prefetch", ahead, ahead / sync))
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.machine()
    print(f"# ImageNet folder loader ({where}, batches to {args.device}, {threads} decoding "
          f"threads, torch {torch.__version__}, {datetime.date.today()})\n")
    print(f"{args.images} synthetic JPEGs (~500x375, quality 90), batch {args.batch}, "
          f"official training augmentation at 224 px, {args.steps} timed steps. "
          f"A step-only loop would run at {ideal:.0f} img/s.\n")
    print("| setting | images/s | ratio |")
    print("|---|---|---|")
    for name, rate, ratio in rows:
        print(f"| {name} | {rate:.0f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
