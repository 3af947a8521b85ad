"""`rlnas bench`: throughput of every registered space at its paper size on this device.

Rows: supernet training (forward + backward + SGD step, one sampled path per step, batches from
the device-resident pipeline), supernet inference (eval mode, one path), and the angle scoring
rate (archs per second, piece decomposition). Synthetic images; the settings are printed.
"""
from __future__ import annotations

import contextlib
import datetime
import platform
import time
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .angle import AngleScorer
from .data import DeviceLoader
from .distributed import CHANNELS_LAST, autocast_dtype, resolve_device
from .spaces import get_space

# paper sizes (spec sections 2 and 3)
SETTINGS = {
    "nb201": dict(model=dict(channels=16, cells=5), classes=10, image=32, batch=64),
    "darts-cifar": dict(space="darts", model=dict(variant="cifar", channels=16, layers=8),
                        classes=10, image=32, batch=64),
    "darts-imagenet": dict(space="darts", model=dict(variant="imagenet", channels=48, layers=14),
                           classes=1000, image=224, batch=64),
    "mobilenet": dict(model={}, classes=1000, image=224, batch=64),  # 27.7 M params (spec 3.4)
}


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _timed(step_fn, steps: int, device: torch.device, warm: int = 3) -> float:
    """Seconds of ``steps`` calls ``step_fn(step)`` after ``warm`` untimed ones (the device
    synchronised before and after)."""
    for step in range(warm + steps):
        if step == warm:
            _sync(device)
            t0 = time.perf_counter()
        step_fn(step)
    _sync(device)
    return time.perf_counter() - t0


def bench_space(name: str, device: torch.device, precision: str, steps: int,
                batch: Optional[int] = None) -> List[Dict]:
    s = SETTINGS[name]
    space = get_space(s.get("space", name))
    b = batch or s["batch"]
    torch.manual_seed(0)
    model = space.supernet(num_classes=s["classes"], **s["model"]).to(device)
    cl = CHANNELS_LAST
    if cl:
        model = model.to(memory_format=torch.channels_last)
    rng = np.random.default_rng(0)
    n = max(4 * b, 256)
    x = rng.integers(0, 256, (n, s["image"], s["image"], 3), dtype=np.uint8)
    loader = DeviceLoader(x, rng.integers(0, s["classes"], n), b, (0.5,) * 3, (0.25,) * 3,
                          device=device, channels_last=cl)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    amp = autocast_dtype(precision, device)
    ctx = (lambda: torch.autocast(device.type, dtype=amp)) if amp else contextlib.nullcontext
    cells = model.num_search_cells
    loss_sum = torch.zeros((), device=device)

    def train_step(step):
        nonlocal loss_sum
        xb, yb = loader.batch(step)
        with ctx():
            loss = F.cross_entropy(model(xb, space.sample_training_path(0, step, cells)), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach()

    def infer_step(step):
        xb, _ = loader.batch(step)
        with ctx():
            model(xb, space.sample_training_path(0, step, cells))

    train = steps * b / _timed(train_step, steps, device)
    model.eval()
    with torch.no_grad():
        infer = steps * b / _timed(infer_step, steps, device)
    state0 = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    stateT = {k: (v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v)
              for k, v in state0.items()}
    archs = space.enumerate()
    if archs is None:
        archs = np.array([space.sample(rng) for _ in range(10000)])
    t0 = time.perf_counter()
    AngleScorer.from_states(space, state0, stateT)(archs)
    angle = len(archs) / (time.perf_counter() - t0)
    size = ", ".join(f"{k}={v}" for k, v in s["model"].items()) or "paper size"
    return [
        {"space": name, "what": "supernet train (img/s)", "value": train,
         "settings": f"{size}, {s['image']}px, batch {b}, {steps} steps"},
        {"space": name, "what": "supernet inference (img/s)", "value": infer,
         "settings": f"{size}, {s['image']}px, batch {b}, {steps} steps"},
        {"space": name, "what": "angle scoring (archs/s)", "value": angle,
         "settings": f"{len(archs)} archs incl. piece statistics"},
    ]


def run_bench(spaces=None, device="auto", precision="auto", steps: int = 10,
              batch: Optional[int] = None) -> str:
    dev = resolve_device(device)
    rows = []
    for name in spaces or list(SETTINGS):
        if name not in SETTINGS:
            from .errors import RlnasError
            raise RlnasError(f"unknown bench setting {name!r}; known: {', '.join(SETTINGS)}")
        rows += bench_space(name, dev, precision, steps, batch)
    amp = autocast_dtype(precision, dev)
    what = (torch.cuda.get_device_name(dev) if dev.type == "cuda"
            else f"{platform.machine()} CPU, {torch.get_num_threads()} threads")
    lines = [f"### rlnas bench, {datetime.date.today()}, {what}",
             f"torch {torch.__version__}, precision {amp or 'fp32'}, "
             f"channels_last {CHANNELS_LAST}", "",
             "| space | measure | value | settings |", "|---|---|---|---|"]
    lines += [f"| {r['space']} | {r['what']} | {r['value']:,.0f} | {r['settings']} |" for r in rows]
    return "\n".join(lines) + "\n"
