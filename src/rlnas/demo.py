"""`rlnas demo`: the whole method offline on scikit-learn's digits, in minutes on a CPU.

1. train a tiny NB201 supernet with random labels (preset ``demo-digits``: the fast recipe of
   nb201-cifar10-fast, scaled to the digits);
2. rank all 15,625 cells by the preset's scorer (``distance_sum``);
3. check the ranking on this data: retrain, with the true labels and the same short budget, the
   top-ranked cells, some low-ranked (but connected) cells and some random cells, and print their
   test accuracies side by side, with the rank correlation of the scorer and of the parameter
   count (the free baseline) with those accuracies.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from scipy.stats import kendalltau

from .config import load_config
from .data import DeviceLoader, load_dataset
from .loop import LoopSpec, run_loop
from .pipeline.check import SHORT_RETRAIN
from .pipeline.rank import Ranking, rank
from .pipeline.retrain import evaluate_network
from .pipeline.train import train_supernet
from .rundir import open_run
from .schema import TrainSection

GROUP_SIZE = 4
RETRAIN_EPOCHS = 10  # 3 epochs could not tell the groups apart on the digits (RESULTS.md)


def retrain_cell(space, arch, train, test, channels, cells, epochs, seed=0, progress=False):
    """Train the standalone network of ``arch`` with true labels; top-1 (%) on ``test``."""
    torch.manual_seed(seed)
    model = space.network(arch, channels=channels, cells=cells, num_classes=train.num_classes)
    recipe = TrainSection.of(epochs=epochs, **SHORT_RETRAIN)  # as `rlnas check` retrains
    loader = DeviceLoader(train.x, train.y, recipe.batch_size, train.mean, train.std, pad=2,
                          flip=False, seed=seed)
    run_loop(LoopSpec.from_train(recipe, model, loader, torch.device("cpu"), precision="fp32",
                                 progress=progress, desc="retrain"))
    ev = DeviceLoader(test.x, test.y, 500, train.mean, train.std, augment=False)
    return evaluate_network(model, ev)["top1"]


def run_demo(out: Path, epochs: Optional[int] = None, progress: bool = True,
             retrain_epochs: int = RETRAIN_EPOCHS, group_size: int = GROUP_SIZE,
             overrides: Sequence[str] = ()):
    t0 = time.time()
    overrides = ([f"epochs={epochs}"] if epochs else []) + list(overrides)
    cfg = load_config("demo-digits", overrides)
    print(f"[1/3] supernet: NB201 C={cfg.model['channels']} N={cfg.model['cells']} on digits "
          f"(16x16) with random labels, {cfg.train.epochs} epochs -> {out}")
    res = train_supernet(cfg, out, progress=progress)
    if not res.get("already_done"):
        print(f"      last epoch: loss {res['loss']:.3f}, fit to random labels "
              f"{res['train_acc']:.1f}% ({res['images_per_s']:.0f} img/s)")
    run = open_run(out)
    r = rank(run)
    name = r["scorer"]
    print(f"[2/3] {name} of all {r['num_archs']} cells in "
          f"{1e3 * (r['setup_seconds'] + r['score_seconds']):.0f} ms -> {r['path']}")
    ranking = Ranking.read(r["path"])
    archs, scores = ranking.arch, ranking.score
    space = run.space
    connected = np.flatnonzero(scores > 0)
    rng = np.random.default_rng(cfg.seed)
    picks = [("top", i) for i in range(group_size)]
    picks += [("low", i) for i in connected[-group_size:]]
    picks += [("random", i) for i in rng.choice(connected[group_size:-group_size], group_size,
                                                replace=False)]
    train = load_dataset("digits", split="train")
    test = load_dataset("digits", split="test")
    print(f"[3/3] retraining {len(picks)} cells with TRUE labels, {retrain_epochs} epochs each "
          f"(C={cfg.model['channels']}, N={cfg.model['cells']}), test on {len(test.y)} images")
    rows = []
    for group, i in picks:
        arch = space.from_str(archs[i])
        acc = retrain_cell(space, arch, train, test, cfg.model["channels"], cfg.model["cells"],
                           retrain_epochs, seed=cfg.seed)
        rows.append((group, archs[i], scores[i], acc))
        print(f"      {group:6s}  {name} {scores[i]:.4f}  test acc {acc:6.2f}%  {archs[i]}")
    print("\nsummary")
    for group in ("top", "low", "random"):
        accs = [a for g, _, _, a in rows if g == group]
        print(f"  {group:6s}: mean test acc {np.mean(accs):6.2f}% (min {min(accs):.2f}, "
              f"max {max(accs):.2f}) over {len(accs)} cells")
    accs = [a for *_, a in rows]
    params = space.cost(np.array([space.from_str(a) for _, a, _, _ in rows]))["params"]
    for label, x in ((name, [s for _, _, s, _ in rows]), ("params (baseline)", params)):
        tau = kendalltau(x, accs).statistic
        print(f"  Kendall tau({label}, retrained acc) over these {len(rows)} cells: {tau:.3f}")
    print(f"  done in {time.time() - t0:.0f} s; run directory {out}")
    return rows
