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

import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from scipy.stats import kendalltau
from tqdm.auto import tqdm

from .config import load_config
from .correlation import binomial_se
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


def retrain_cell(space, arch, train, test, channels, cells, epochs, seed=0, progress=False,
                 after_epoch=None):
    """Train the standalone network of ``arch`` with true labels; top-1 (%) on ``test``.
    ``after_epoch()`` is called at the end of each epoch (the demo's bar); what it returns is
    ignored: every epoch is trained."""
    torch.manual_seed(seed)
    model = space.network(arch, channels=channels, cells=cells, num_classes=train.num_classes)
    recipe = TrainSection.of(epochs=epochs, **SHORT_RETRAIN)  # as `rlnas check` retrains
    loader = DeviceLoader(train.x, train.y, recipe.batch_size, train.mean, train.std, pad=2,
                          flip=False, seed=seed)
    def callback(epoch, extra) -> bool:
        after_epoch()
        return False  # True would stop the training (LoopSpec.epoch_callback)

    run_loop(LoopSpec.from_train(recipe, model, loader, torch.device("cpu"), precision="fp32",
                                 progress=progress, desc="retrain",
                                 epoch_callback=None if after_epoch is None else callback))
    ev = DeviceLoader(test.x, test.y, 500, train.mean, train.std, augment=False)
    return evaluate_network(model, ev)["top1"]


def random_fit_note(train_acc: float, num_classes: int) -> str:
    """What the supernet's fit to its random labels says: near chance (1/K) is expected."""
    chance = 100.0 / num_classes
    if train_acc <= 2 * chance:
        return (f"chance 1/{num_classes} = {chance:.1f}%: random labels hold nothing to learn "
                f"at this budget; expected, not a failure")
    return (f"chance 1/{num_classes} = {chance:.1f}%: the supernet has begun to memorise its "
            f"random labels; the ranking does not need it")


def noise_verdict(name_a: str, accs_a, name_b: str, accs_b, n: int) -> str:
    """One line: is the mean accuracy of group a above group b's beyond the test set's noise?

    Each group's mean is an accuracy on the same ``n`` test images, with binomial standard error
    100 sqrt(p (1 - p) / n) (:func:`rlnas.correlation.binomial_se`); the difference's is their
    root sum of squares and its 95 % interval +- 1.96 of it. This counts the test set's
    sampling noise only (retraining with another seed adds its own): within that interval the
    groups cannot be told apart."""
    ma, mb = float(np.mean(accs_a)), float(np.mean(accs_b))
    half = 1.96 * float(np.hypot(binomial_se(ma, n), binomial_se(mb, n)))
    diff = ma - mb
    if abs(diff) <= half:
        word = "within noise"
    else:
        word = f"{'better' if diff > 0 else 'worse'} by {abs(diff):.2f} points, beyond noise"
    return (f"{name_a} vs {name_b}: {word} ({diff:+.2f} points, 95 % interval "
            f"{diff - half:+.2f} to {diff + half:+.2f})")


def run_demo(out: Path, epochs: Optional[int] = None, progress: bool = True,
             retrain_epochs: int = RETRAIN_EPOCHS, group_size: int = GROUP_SIZE,
             overrides: Sequence[str] = ()):
    t0 = time.time()
    overrides = ([f"epochs={epochs}"] if epochs else []) + list(overrides)
    cfg = load_config("demo-digits", overrides)
    print(f"[1/3] supernet: NB201 C={cfg.model['channels']} N={cfg.model['cells']} on digits "
          f"(16x16) with random labels, {cfg.train.epochs} epochs -> {out}")
    res = train_supernet(cfg, out, progress=progress)
    run = open_run(out)
    if not res.get("already_done"):
        print(f"      last epoch: loss {res['loss']:.3f}, fit to random labels "
              f"{res['train_acc']:.1f}% ({res['images_per_s']:.0f} img/s)")
        print(f"      ({random_fit_note(res['train_acc'], int(run.info['num_classes']))})")
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
    n_test = len(test.y)
    print(f"[3/3] retraining {len(picks)} cells with TRUE labels, {retrain_epochs} epochs each "
          f"(C={cfg.model['channels']}, N={cfg.model['cells']}), test on {n_test} images")
    rows = []
    # the demo's slowest step: a bar over every retraining epoch (stderr), the rows on stdout
    bar = tqdm(total=len(picks) * retrain_epochs, desc=f"retraining {len(picks)} cells",
               unit="epoch", disable=not progress, leave=False, dynamic_ncols=True,
               file=sys.stderr)
    try:
        for group, i in picks:
            arch = space.from_str(archs[i])
            acc = retrain_cell(space, arch, train, test, cfg.model["channels"],
                               cfg.model["cells"], retrain_epochs, seed=cfg.seed,
                               after_epoch=lambda: bar.update(1))
            rows.append((group, archs[i], scores[i], acc))
            tqdm.write(f"      {group:6s}  {name} {scores[i]:.4f}  test acc {acc:6.2f}% "
                       f"± {binomial_se(acc, n_test):.2f}  {archs[i]}", file=sys.stdout)
    finally:
        bar.close()
    print(f"\nsummary (test accuracy on {n_test} images ± its binomial standard error "
          f"sqrt(p(1-p)/n): test-set noise)")
    accs_of = {g: [a for g2, _, _, a in rows if g2 == g] for g in ("top", "low", "random")}
    for group, accs in accs_of.items():
        m = float(np.mean(accs))
        print(f"  {group:6s}: mean test acc {m:6.2f}% ± {binomial_se(m, n_test):.2f} "
              f"(min {min(accs):.2f}, max {max(accs):.2f}) over {len(accs)} cells")
    accs = [a for *_, a in rows]
    params = space.cost(np.array([space.from_str(a) for _, a, _, _ in rows]))["params"]
    for label, x in ((name, [s for _, _, s, _ in rows]), ("params (baseline)", params)):
        tau = kendalltau(x, accs).statistic
        print(f"  Kendall tau({label}, retrained acc) over these {len(rows)} cells: {tau:.3f}")
    for other in ("random", "low"):
        print("  verdict, " + noise_verdict("found (top)", accs_of["top"], other, accs_of[other],
                                            n_test))
    print(f"  done in {time.time() - t0:.0f} s; run directory {out}")
    return rows
