"""`rlnas demo`: the whole method offline on scikit-learn's digits, in minutes on a CPU.

1. train a tiny NB201 supernet with random labels (preset ``demo-digits``);
2. rank all 15,625 cells by the angle;
3. check the ease-of-convergence hypothesis on this data: retrain, with the true labels and the
   same short budget, the top-angle cells, some low-angle (but connected) cells and some random
   cells, and print their test accuracies side by side.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from scipy.stats import kendalltau

from .config import load_config
from .data import DeviceLoader, load_dataset
from .engine import LoopSpec, open_run, run_loop, train_supernet
from .retraining import evaluate_network
from .stages import rank, read_ranking

GROUP_SIZE = 4
RETRAIN_EPOCHS = 3  # short on purpose: the hypothesis is about ease of convergence


def retrain_cell(space, arch, train, test, channels, cells, epochs, seed=0, progress=False):
    """Train the standalone network of ``arch`` with true labels; top-1 (%) on ``test``."""
    torch.manual_seed(seed)
    model = space.network(arch, channels=channels, cells=cells, num_classes=train.num_classes)
    loader = DeviceLoader(train.x, train.y, 64, train.mean, train.std, pad=2, flip=False,
                          seed=seed)
    spec = LoopSpec(model=model, loader=loader, epochs=epochs, lr=0.05, lr_min=0.0,
                    momentum=0.9, nesterov=True, weight_decay=5e-4, device=torch.device("cpu"),
                    precision="fp32", progress=progress, desc="retrain")
    run_loop(spec)
    ev = DeviceLoader(test.x, test.y, 500, train.mean, train.std, augment=False)
    return evaluate_network(model, ev)["top1"]


def run_demo(out: Path, epochs: Optional[int] = None, progress: bool = True,
             retrain_epochs: int = RETRAIN_EPOCHS, group_size: int = GROUP_SIZE):
    t0 = time.time()
    overrides = [f"epochs={epochs}"] if epochs else []
    cfg = load_config("demo-digits", overrides)
    print(f"[1/3] supernet: NB201 C={cfg['model']['channels']} N={cfg['model']['cells']} on "
          f"digits (16x16) with random labels, {cfg['train']['epochs']} epochs -> {out}")
    res = train_supernet(cfg, out, progress=progress)
    if not res.get("already_done"):
        print(f"      last epoch: loss {res['loss']:.3f}, fit to random labels "
              f"{res['train_acc']:.1f}% ({res['images_per_s']:.0f} img/s)")
    run = open_run(out)
    r = rank(run)
    print(f"[2/3] angle of all {r['num_archs']} cells in "
          f"{1e3 * (r['setup_seconds'] + r['score_seconds']):.0f} ms -> {r['path']}")
    archs, angles = read_ranking(Path(r["path"]))
    space = run.space
    connected = np.flatnonzero(angles > 0)
    rng = np.random.default_rng(cfg["seed"])
    picks = [("top angle", i) for i in range(group_size)]
    picks += [("low angle", i) for i in connected[-group_size:]]
    picks += [("random", i) for i in rng.choice(connected[group_size:-group_size], group_size,
                                                   replace=False)]
    train = load_dataset("digits", split="train")
    test = load_dataset("digits", split="test")
    print(f"[3/3] retraining {len(picks)} cells with TRUE labels, {retrain_epochs} epochs each "
          f"(C={cfg['model']['channels']}, N={cfg['model']['cells']}), test on {len(test.y)} images")
    rows = []
    for group, i in picks:
        arch = space.from_str(archs[i])
        acc = retrain_cell(space, arch, train, test, cfg["model"]["channels"],
                           cfg["model"]["cells"], retrain_epochs, seed=cfg["seed"])
        rows.append((group, archs[i], angles[i], acc))
        print(f"      {group:9s}  angle {angles[i]:.4f}  test acc {acc:6.2f}%  {archs[i]}")
    print("\nsummary")
    for group in ("top angle", "low angle", "random"):
        accs = [a for g, _, _, a in rows if g == group]
        print(f"  {group:9s}: mean test acc {np.mean(accs):6.2f}% (min {min(accs):.2f}, "
              f"max {max(accs):.2f}) over {len(accs)} cells")
    tau = kendalltau([a for *_, a, _ in rows], [c for *_, c in rows]).statistic
    print(f"  Kendall tau(angle, retrained acc) over these {len(rows)} cells: {tau:.3f}")
    print(f"  done in {time.time() - t0:.0f} s; run directory {out}")
    return rows
