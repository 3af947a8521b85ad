"""NB201 benchmarks: angle ranking of all 15,625 cells and supernet training throughput.

Each row is compared, in the same run, with a baseline written the way the official code does
it (ratio = baseline time / our time):

* rank: our piece decomposition vs. building the explicit concatenated vector per cell
  (measured on a sample of cells, extrapolated to 15,625, said so in the table);
* train: our step (device-resident uint8 data, batched crop/flip, `none` skipped, losses kept on
  the device) vs. an official-style step (a torch DataLoader with per-image PIL transforms,
  `none` computed as x*0, `.item()` every step), same model size, batch and precision (fp32).

    python benchmarks/bench_nb201.py [--channels 16 --cells 5 --batch 64 --steps 20]
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F

from rlnas.angle import AngleScorer, angle_between
from rlnas.data import DeviceLoader
from rlnas.distributed import CHANNELS_LAST, autocast_dtype, resolve_device
from rlnas.spaces import get_space
from rlnas.spaces.nb201 import (
    EDGE_INDEX,
    NONE,
    PATHS,
    SearchCell,
    edge_tensor,
    fixed_keys,
    sample_urs,
    search_cell_ids,
)

SPACE = get_space("nb201")


# --- angle ------------------------------------------------------------------------------------
def explicit_angle(state0, stateT, arch):
    """Official-style: concatenate the tensors path by path, then one cosine."""
    v0 = [state0[k].reshape(-1) for k in fixed_keys(state0)]
    vT = [stateT[k].reshape(-1) for k in fixed_keys(stateT)]
    valid = 0
    for path in PATHS:
        if any(arch[e] == NONE for e in path):
            continue
        valid += 1
        for cell in search_cell_ids(state0):
            for e in path:
                if arch[e] in (2, 3, 4):
                    v0.append(edge_tensor(state0, cell, e, arch[e]).reshape(-1).float())
                    vT.append(edge_tensor(stateT, cell, e, arch[e]).reshape(-1).float())
    return angle_between(torch.cat(v0), torch.cat(vT)) if valid else 0.0


def bench_rank(channels, cells, sample):
    torch.manual_seed(0)
    s0 = SPACE.supernet(channels=channels, cells=cells).state_dict()
    sT = {k: v + 0.1 * torch.randn_like(v) if v.is_floating_point() else v for k, v in s0.items()}
    archs = SPACE.enumerate()
    t = time.perf_counter()
    scorer = AngleScorer.from_states(SPACE, s0, sT)
    ours = scorer(archs)
    ours_s = time.perf_counter() - t
    idx = np.random.default_rng(0).choice(len(archs), sample, replace=False)
    t = time.perf_counter()
    ref = [explicit_angle(s0, sT, tuple(archs[i])) for i in idx]
    ref_s = (time.perf_counter() - t) * len(archs) / sample
    err = float(np.max(np.abs(np.array(ref) - ours[idx])))
    return [("rank 15,625 cells (angle)", f"{ours_s * 1e3:.1f} ms",
             f"{ref_s:.1f} s (from {sample} cells)", ref_s / ours_s, f"max |diff| {err:.1e}")]


# --- training ---------------------------------------------------------------------------------
class ZeroMulCell(SearchCell):
    """Official-style cell: `none` computed as x*0 and summed."""

    def forward(self, x, arch):
        nodes = [x]
        for i in (1, 2, 3):
            acc = 0
            for j in range(i):
                e = EDGE_INDEX[(i, j)]
                op = int(arch[e])
                acc = acc + (nodes[j].mul(0.0) if op == NONE else self.edges[e](nodes[j], op))
            nodes.append(acc)
        return nodes[3]


class PILStyleDataset(torch.utils.data.Dataset):
    """Per-image transforms as torchvision applies them: PIL image, RandomCrop(32, padding=4),
    RandomHorizontalFlip, ToTensor, Normalize."""

    def __init__(self, x, y, mean, std, pad=4):
        from PIL import Image
        self.images = [Image.fromarray(a) for a in x]
        self.y, self.pad = y, pad
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        from PIL import Image, ImageOps
        img = ImageOps.expand(self.images[i], border=self.pad, fill=0)
        w, h = self.images[i].size
        ox, oy = np.random.randint(0, 2 * self.pad + 1, size=2)
        img = img.crop((ox, oy, ox + w, oy + h))
        if np.random.rand() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        t = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255
        return (t - self.mean) / self.std, int(self.y[i])


def _model(cell_cls, channels, cells):
    torch.manual_seed(0)
    net = SPACE.supernet(channels=channels, cells=cells)
    if cell_cls is not SearchCell:
        for k, m in enumerate(net.cells):
            if isinstance(m, SearchCell):
                m.__class__ = cell_cls
    return net


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bench_train(channels, cells, batch, steps, n_images=4096, workers=2, device="cpu",
                precision="auto"):
    dev = resolve_device(device)
    amp = autocast_dtype(precision, dev)
    cl = CHANNELS_LAST
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n_images, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n_images)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    ncells = 3 * cells

    def ours():
        net = _model(SearchCell, channels, cells).to(dev)
        if cl:
            net = net.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, nesterov=True,
                              weight_decay=5e-4)
        loader = DeviceLoader(x, y, batch, mean, std, device=dev, channels_last=cl)
        loss_sum = torch.zeros((), device=dev)
        ctx = (lambda: torch.autocast(dev.type, dtype=amp)) if amp else contextlib.nullcontext
        t = None
        for s in range(steps + 3):
            if s == 3:
                _sync(dev)
                t = time.perf_counter()
            xb, yb = loader.batch(s)
            with ctx():
                loss = F.cross_entropy(net(xb, sample_urs(0, s, ncells)), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
        float(loss_sum)
        return steps * batch / (time.perf_counter() - t)

    def official():
        net = _model(ZeroMulCell, channels, cells).to(dev)
        opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, nesterov=True,
                              weight_decay=5e-4)
        dl = torch.utils.data.DataLoader(PILStyleDataset(x, y, mean, std), batch_size=batch,
                                         shuffle=True, num_workers=workers, drop_last=True,
                                         persistent_workers=workers > 0)
        it = iter(dl)
        t = None
        for s in range(steps + 3):
            if s == 3:
                t = time.perf_counter()
            try:
                xb, yb = next(it)
            except StopIteration:
                it = iter(dl)
                xb, yb = next(it)
            xb, yb = xb.to(dev), yb.to(dev)
            loss = F.cross_entropy(net(xb, sample_urs(0, s, ncells)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()  # the official loop logs every step
        return steps * batch / (time.perf_counter() - t)

    b, o = official(), ours()
    where = (torch.cuda.get_device_name(dev) if dev.type == "cuda"
             else f"CPU, {torch.get_num_threads()} threads")
    return [(f"train C={channels} N={cells} batch {batch} (img/s)", f"{o:.0f}", f"{b:.0f}", o / b,
             f"{steps} steps, {where}; ours {amp or 'fp32'}, baseline fp32 with "
             f"{workers} loader workers")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--cells", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sample", type=int, default=300, help="cells scored by the slow reference")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto", help="ours: auto = bf16 on GPUs, fp32 on CPU")
    args = ap.parse_args()
    rows = bench_rank(args.channels, args.cells, args.sample)
    rows += bench_train(args.channels, args.cells, args.batch, args.steps, device=args.device,
                        precision=args.precision)
    print(f"# {datetime.date.today()} {platform.machine()} {platform.processor() or ''} "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| benchmark | rlnas | official-style baseline | ratio | notes |")
    print("|---|---|---|---|---|")
    for name, ours, base, ratio, note in rows:
        print(f"| {name} | {ours} | {base} | {ratio:.1f}x | {note} |")


if __name__ == "__main__":
    main()
