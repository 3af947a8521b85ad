"""Quality of the angle scorers against compute on NB201 / real CIFAR-10 (issue: a good answer in
minutes). Trains supernets at many settings, scores all 15,625 cells from every kept checkpoint
with every angle scorer, and compares with the NB201 ground truth.

    python benchmarks/quality_map.py train     DATA OUT [--settings a,b] [--seeds 0,1,2] [-j 2]
    python benchmarks/quality_map.py calibrate OUT            # idle step time of every shape
    python benchmarks/quality_map.py evaluate  DATA OUT       # -> OUT/map.json
    python benchmarks/quality_map.py report    OUT            # -> OUT/map.md, OUT/map.png

DATA is the shared data folder (cifar10/, nasbench201.csv, nasbench201-splits/). ``train`` runs
``rlnas train`` (one thread per run, ``-j`` runs at a time: the runs' own wall times are then not
idle times); ``calibrate`` measures, on an otherwise idle machine with all cores, the seconds per
step of every (channels, cells, resolution, batch) shape, from which the report states the
training time of each setting on this machine. Every setting keeps a checkpoint per epoch, so
"the first k epochs" of a run and "W0 against an earlier checkpoint" come free.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

# name -> (lever, overrides on top of BASE). Each is trained with keep_every_epochs=1.
BASE = ["channels=16", "cells=5", "batch=64", "lr=0.025", "train.lr_min=0.001"]
SETTINGS = {
    # input resolution (images resized once, on the device)
    "r32-e3": ("resolution", ["epochs=3"]),
    "r32-e1": ("resolution", ["epochs=1"]),
    "r16-e6": ("resolution", ["resolution=16", "epochs=6"]),
    "r16-e3": ("resolution", ["resolution=16", "epochs=3"]),
    "r16-e1": ("resolution", ["resolution=16", "epochs=1"]),
    "r8-e6": ("resolution", ["resolution=8", "epochs=6"]),
    "r8-e3": ("resolution", ["resolution=8", "epochs=3"]),
    # cells per stage and channels
    "r16-e6-n1": ("cells/channels", ["resolution=16", "epochs=6", "cells=1"]),
    "r16-e3-n3": ("cells/channels", ["resolution=16", "epochs=3", "cells=3"]),
    "r16-e3-c8": ("cells/channels", ["resolution=16", "epochs=3", "channels=8"]),
    "r16-e3-c32": ("cells/channels", ["resolution=16", "epochs=3", "channels=32"]),
    # schedule and rate: the paper's cosine compressed into the run (default), a constant rate
    # (= the first epochs of the 250-epoch cosine: its rate is within 0.2 % of 0.025 there)
    "r16-e6-const": ("schedule/rate", ["resolution=16", "epochs=6", "train.lr_min=0.025"]),
    "r16-e3-lr0.1": ("schedule/rate", ["resolution=16", "epochs=3", "lr=0.1",
                                       "train.lr_min=0.004"]),
    "r16-e3-lr0.00625": ("schedule/rate", ["resolution=16", "epochs=3", "lr=0.00625",
                                           "train.lr_min=0.00025"]),
    "r16-e3-lr0.4": ("schedule/rate", ["resolution=16", "epochs=3", "lr=0.4",
                                       "train.lr_min=0.016"]),
    "r16-e3-lr1.6": ("schedule/rate", ["resolution=16", "epochs=3", "lr=1.6",
                                       "train.lr_min=0.064"]),
    # batch size, rate scaled linearly
    "r16-e3-b128": ("batch", ["resolution=16", "epochs=3", "batch=128", "lr=0.05",
                              "train.lr_min=0.002"]),
    "r16-e3-b256": ("batch", ["resolution=16", "epochs=3", "batch=256", "lr=0.1",
                              "train.lr_min=0.004"]),
    # random-label classes and images (fewer images, more passes: same number of steps)
    "r16-e3-k2": ("labels/images", ["resolution=16", "epochs=3", "num_label_classes=2"]),
    "r16-e3-k100": ("labels/images", ["resolution=16", "epochs=3", "num_label_classes=100"]),
    "r16-sub5k-e15": ("labels/images", ["resolution=16", "epochs=15", "subset=5000"]),
    "r16-sub1k-e75": ("labels/images", ["resolution=16", "epochs=75", "subset=1000"]),
    # the paper's ablation at this recipe: true labels
    "r16-e3-true": ("labels/images", ["resolution=16", "epochs=3", "labels=true"]),
}
PRODUCT = ("angle", "angle_cell", "angle_mean", "angle_sum")
COLUMNS = ("cifar10_test", "cifar100_test", "imagenet16_test")


def run_dir(out: Path, name: str, seed: int) -> Path:
    return out / f"{name}-s{seed}"


# ----------------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------------
def train(data: Path, out: Path, names, seeds, jobs: int):
    common = [f"root={data / 'cifar10'}",
              f"split_file={data / 'nasbench201-splits' / 'cifar-split.txt'}",
              "train.keep_every_epochs=1"]
    todo = []
    for name in names:
        _, overrides = SETTINGS[name]
        for seed in seeds:
            d = run_dir(out, name, seed)
            if (d / "done").exists():
                continue
            todo.append((d, ["rlnas", "train", "nb201-cifar10", *common, *BASE, *overrides,
                             f"seed={seed}", f"label_seed={seed}", "--out", str(d), "-q"]))
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def one(item):
        d, cmd = item
        d.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        with open(f"{d}.log", "w") as log:
            rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        if rc == 0:
            (d / "done").write_text(f"{time.time() - t0:.1f}\n")
        print(f"{d.name}: rc {rc}, {time.time() - t0:.0f} s", flush=True)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, todo))


# ----------------------------------------------------------------------------------------------
# calibrate: idle seconds per step of each shape (all cores, real engine step)
# ----------------------------------------------------------------------------------------------
def shape_of(cfg) -> tuple:
    return (cfg["model"]["channels"], cfg["model"]["cells"],
            cfg["data"].get("resolution") or 32, cfg["train"]["batch_size"])


def step_seconds(shape, steps=60, warmup=3) -> float:
    import torch
    import torch.nn.functional as F

    from rlnas.distributed import CHANNELS_LAST
    from rlnas.spaces import get_space
    c, n, res, batch = shape
    space = get_space("nb201")
    torch.manual_seed(0)
    model = space.supernet(channels=c, cells=n, num_classes=10)
    fmt = torch.channels_last if CHANNELS_LAST else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    x = torch.randn(batch, 3, res, res).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))

    def step(s):
        path = space.sample_training_path(0, s, model.num_search_cells)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x, path), y).backward()
        opt.step()

    for s in range(warmup):
        step(s)
    t0 = time.perf_counter()
    for s in range(steps):
        step(warmup + s)
    return (time.perf_counter() - t0) / steps


def calibrate(out: Path):
    from rlnas.config import load_yaml
    shapes = sorted({shape_of(load_yaml(d / "config.yaml")) for d in out.glob("*-s*")
                     if (d / "config.yaml").exists()})
    res = {}
    for shape in shapes:
        res[",".join(map(str, shape))] = step_seconds(shape)
        print(shape, f"{res[','.join(map(str, shape))] * 1e3:.0f} ms/step", flush=True)
    (out / "calibration.json").write_text(json.dumps(
        {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "seconds_per_step": res},
        indent=1))


def machine() -> str:
    import platform

    import torch
    return (f"{os.cpu_count()}-core {platform.machine()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


# ----------------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------------
class Truth:
    def __init__(self, table_path):
        from rlnas.sizecontrol import budget_ladder
        from rlnas.spaces import get_space
        from rlnas.tables import load_nb201_table
        self.space = get_space("nb201")
        self.archs = self.space.enumerate()
        self.strs = [self.space.to_str(tuple(a)) for a in self.archs]
        table = load_nb201_table(table_path)
        self.acc = {c: table.lookup(self.strs, c) for c in COLUMNS}
        self.params = self.space.cost(self.archs)["params"]
        self.groups = np.round(self.params, 6)
        self.ladder = budget_ladder(self.params, n=10)

    def metrics(self, score) -> dict:
        from scipy.stats import kendalltau

        from rlnas.sizecontrol import constrained_benchmark, within_group_tau
        s = np.asarray(score, dtype=np.float64)
        out = {f"tau_{c}": float(kendalltau(s, self.acc[c]).statistic) for c in COLUMNS}
        out["tau_within_params"] = within_group_tau(s, self.acc["cifar10_test"],
                                                    self.groups)["tau"]
        top = s == s.max()
        out["top_acc"] = float(self.acc["cifar10_test"][top].mean())
        out["top_ties"] = int(top.sum())
        lad = constrained_benchmark(self.strs, {"s": s}, self.acc["cifar10_test"], self.params,
                                    self.ladder)
        picks = np.array(lad["methods"]["s"]["accuracy"], dtype=np.float64)
        largest = np.array(lad["largest"]["tied_mean_accuracy"])
        out["ladder"] = picks.round(3).tolist()
        out["ladder_margin_min"] = float((picks - largest).min())
        out["ladder_wins"] = int((picks > largest).sum())
        out["ladder_mean"] = float(picks.mean())
        return out


def piece_sizes(space, state) -> np.ndarray:
    """Parameters per angle piece (0 for constant surrogates such as the pooling kernel): the
    squared norms of an all-ones state, with constant pieces found as those that cannot move."""
    import torch

    from rlnas.angle import piece_angles
    ones = {k: torch.ones_like(v) for k, v in state.items()}
    moved = {k: v + 1.0 for k, v in ones.items()}
    _, stats = space.angle_pieces(ones, ones)
    _, moving = space.angle_pieces(ones, {k: v * torch.randn_like(v.float()).to(v.dtype)
                                          for k, v in moved.items()})
    return np.where(piece_angles(moving) > 0, stats[:, 1], 0.0)


def ablations(scorer, state0):
    """Controls for what the per-piece scorers owe to training (not product scorers): angle_sum
    with path multiplicities instead of 0/1 weights; the piece angles replaced by their mean per
    op type (no edge information); every conv piece given the same angle (no training at all);
    and the mean piece angle weighted by each piece's parameter count (per-piece size)."""
    from rlnas.angle import piece_angles
    mult = scorer.space.angle_multiplicity(TRUTH.archs) * scorer.searchable
    used = (mult > 0).astype(np.float64)
    th = piece_angles(scorer.stats)
    kinds = np.array([n.rsplit(":", 1)[-1] for n in scorer.names])
    size = piece_sizes(scorer.space, state0) * scorer.searchable
    den = used @ size
    size_mean = np.where(den > 0, (used @ (size * th)) / np.maximum(den, 1e-12), 0.0)

    def proj(theta, w):
        den = np.sqrt(w.sum(1))
        return np.where(den > 0, (w @ theta) / np.maximum(den, 1e-12), 0.0)

    by_type = th.copy()
    for k in set(kinds) - {"fixed"}:
        by_type[kinds == k] = th[kinds == k].mean()
    const = np.where(th > 0, 1.0, 0.0)
    return {"ctl:angle_sum_paths": proj(th, mult), "ctl:angle_sum_optype": proj(by_type, used),
            "ctl:angle_sum_const": proj(const, used), "ctl:angle_mean_params": size_mean}


TRUTH = None


def evaluate(data: Path, out: Path):
    global TRUTH
    from scipy.stats import kendalltau

    from rlnas.angle import AngleScorer
    from rlnas.rundir import open_run
    TRUTH = Truth(data / "nasbench201.csv")
    path = out / "map.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for d in sorted(out.glob("*-s*")):
        if not (d / "done").exists() or d.name in results:
            continue
        run = open_run(d)
        ckpts = sorted((int(re.findall(r"\d+", p.name)[0]), p.name)
                       for p in (d / "ckpt").glob("epoch_*.pt"))
        state0 = run.checkpoint_state("init.pt")
        states = {name: run.checkpoint_state(name) for _, name in ckpts}
        entry = {"config": shape_of(run.config), "epochs": run.config.train.epochs,
                 "steps_per_epoch": -(-run.info["num_images"] // run.config.train.batch_size),
                 "train_seconds": float((d / "done").read_text()), "by_epoch": {},
                 "pairs": {}}
        prev = {}
        for ep, name in ckpts:
            row = {}
            for variant in PRODUCT:
                sc = AngleScorer.from_states(run.space, state0, states[name], variant)
                scores = sc(TRUTH.archs)
                row[variant] = TRUTH.metrics(scores)
                # what train.stop_when_stable sees: tau with the previous epoch's ranking
                row[variant]["tau_previous"] = (None if variant not in prev else float(
                    kendalltau(prev[variant], scores).statistic))
                prev[variant] = scores
            for k, v in ablations(AngleScorer.from_states(run.space, state0, states[name]),
                                  state0).items():
                row[k] = TRUTH.metrics(v)
            entry["by_epoch"][ep] = row
        # W_j (an earlier checkpoint) against the last, instead of W0
        last = ckpts[-1][1]
        for ep, name in ckpts[:-1]:
            entry["pairs"][ep] = {v: TRUTH.metrics(AngleScorer.from_states(
                run.space, states[name], states[last], v)(TRUTH.archs)) for v in PRODUCT}
        results[d.name] = entry
        path.write_text(json.dumps(results))
        print(d.name, {v: round(entry["by_epoch"][ckpts[-1][0]][v]["tau_cifar10_test"], 3)
                       for v in PRODUCT}, flush=True)


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------
SHOW = ("angle", "angle_cell", "angle_mean", "angle_sum")


def _minutes(entry, epoch, cal) -> float:
    key = ",".join(map(str, entry["config"]))
    if key not in cal:
        return float("nan")
    return epoch * entry["steps_per_epoch"] * cal[key] / 60.0


def _ms(values, spec=".3f"):
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return "-"
    if v.size == 1:
        return format(v[0], spec)
    return f"{format(v.mean(), spec)} ± {format(v.std(ddof=1), spec)}"


def _final(entry):
    return entry["by_epoch"][str(max(int(k) for k in entry["by_epoch"]))]


def _thin(epochs, keep=(1, 2, 3, 4, 5, 6, 10, 15, 20, 30, 40, 50, 60, 70)):
    """The epochs of a long run worth a table row: the first few, then sparser."""
    return [e for e in epochs if int(e) in keep or e == epochs[-1]]


def _row(cells):
    return "| " + " | ".join(cells) + " |"


def _table(head, rows):
    return [_row(head), "|" + "---|" * len(head)] + [_row(r) for r in rows]


def report(out: Path, contenders=("r16-e1", "r16-e3", "r16-e6", "r8-e3")):
    results = json.loads((out / "map.json").read_text())
    cal_file = out / "calibration.json"
    cal = json.loads(cal_file.read_text()) if cal_file.exists() else {"seconds_per_step": {}}
    sps = cal["seconds_per_step"]
    by_setting = {}
    for name, entry in sorted(results.items()):
        setting, seed = name.rsplit("-s", 1)
        by_setting.setdefault(setting, {})[int(seed)] = entry
    lines = [f"Training minutes: seconds per step measured on the idle machine "
             f"({cal.get('machine', '?')}, {cal.get('date', '?')}) x steps. Kendall tau against "
             "NB201 test accuracy over all 15,625 cells; 'within' = tau inside groups of equal "
             "parameter count; 'top' = CIFAR-10 test accuracy of the scorer's top cell (mean over "
             "tied cells); 'ladder' = limits (of 9 params limits) where the scorer's pick beats "
             "the mean of the largest cells under the limit.", ""]
    # A: screening, seed 0, last checkpoint
    rows = []
    for setting, (lever, _) in SETTINGS.items():
        e = by_setting.get(setting, {}).get(0)
        if not e:
            continue
        f, ep = _final(e), max(int(k) for k in e["by_epoch"])
        rows.append([lever, setting, f"{_minutes(e, ep, sps):.1f}"]
                    + [f"{f[v]['tau_cifar10_test']:.3f}" for v in SHOW]
                    + [f"{f['angle_sum']['tau_within_params']:.3f}",
                       f"{f['angle_sum']['top_acc']:.2f}", f"{f['angle_sum']['ladder_wins']}"])
    lines += ["### Screening: every setting, seed 0, last checkpoint", ""]
    lines += _table(["lever", "setting", "train min"] + [f"tau {v}" for v in SHOW]
                    + ["angle_sum within", "angle_sum top", "angle_sum ladder"], rows)
    # B: contenders over seeds
    lines += ["", "### Contenders: seeds 0, 1, 2 (mean ± std), last checkpoint", ""]
    rows = []
    for setting in contenders:
        seeds = by_setting.get(setting, {})
        if not seeds:
            continue
        finals = [_final(e) for e in seeds.values()]
        e0 = next(iter(seeds.values()))
        ep = max(int(k) for k in e0["by_epoch"])
        for v in SHOW + tuple(k for k in finals[0] if k.startswith("ctl:")):
            rows.append([setting, str(len(seeds)), f"{_minutes(e0, ep, sps):.1f}", v]
                        + [_ms([f[v][f"tau_{c}"] for f in finals]) for c in COLUMNS]
                        + [_ms([f[v]["tau_within_params"] for f in finals]),
                           _ms([f[v]["top_acc"] for f in finals], ".2f"),
                           _ms([f[v]["ladder_wins"] for f in finals], ".1f"),
                           _ms([f[v]["ladder_mean"] for f in finals], ".2f")])
    lines += _table(["setting", "seeds", "train min", "scorer", "tau C-10", "tau C-100",
                     "tau IN16", "within", "top", "ladder wins /9", "ladder mean acc"], rows)
    # C: over training and checkpoint pairs
    for setting in ("r16-e6", "r16-sub1k-e75"):
        seeds = by_setting.get(setting, {})
        if not seeds:
            continue
        lines += ["", f"### {setting}: W0 against each epoch's weights, and each epoch's weights "
                  f"against the last (tau C-10, mean over {len(seeds)} seed(s))", ""]
        e0 = next(iter(seeds.values()))
        rows = []
        for ep in _thin(sorted(e0["by_epoch"], key=int)):
            cells = [f"W0 vs W{ep}", f"{_minutes(e0, int(ep), sps):.1f}"]
            cells += [_ms([e["by_epoch"][ep][v]["tau_cifar10_test"] for e in seeds.values()])
                      for v in SHOW]
            rows.append(cells)
        for ep in _thin(sorted(e0["pairs"], key=int)):
            cells = [f"W{ep} vs W_last", ""]
            cells += [_ms([e["pairs"][ep][v]["tau_cifar10_test"] for e in seeds.values()])
                      for v in SHOW]
            rows.append(cells)
        lines += _table(["pair", "train min"] + list(SHOW), rows)
    # D: early stopping on the ranking's stability (train.stop_when_stable, checked every epoch)
    seeds = by_setting.get("r16-e6", {})
    if seeds:
        lines += ["", "### train.stop_when_stable on the r16-e6 runs: where training would stop "
                  "(first epoch whose angle_sum ranking has tau >= 1 - tol with the previous "
                  "epoch's) and the tau C-10 there", ""]
        rows = []
        for tol in (0.1, 0.05, 0.02, 0.01, 0.005):
            stops, taus = [], []
            for e in seeds.values():
                eps = sorted(e["by_epoch"], key=int)
                hit = next((ep for ep in eps
                            if (e["by_epoch"][ep]["angle_sum"].get("tau_previous") or 0)
                            >= 1 - tol), eps[-1])
                stops.append(int(hit))
                taus.append(e["by_epoch"][hit]["angle_sum"]["tau_cifar10_test"])
            e0 = next(iter(seeds.values()))
            rows.append([f"{tol}", " / ".join(map(str, stops)),
                         _ms([_minutes(e0, ep, sps) for ep in stops], ".1f"), _ms(taus)])
        lines += _table(["tol", "stop epoch per seed", "train min", "tau C-10 at the stop"],
                        rows)
    (out / "map.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(results, sps, out / "map.png")


def plot(results, sps, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = {"angle": "tab:gray", "angle_cell": "tab:blue", "angle_mean": "tab:orange",
              "angle_sum": "tab:green"}
    for v in SHOW:
        xs, ys = [], []
        for name, entry in results.items():
            for ep, row in entry["by_epoch"].items():
                xs.append(_minutes(entry, int(ep), sps))
                ys.append(row[v]["tau_cifar10_test"])
        ax.scatter(xs, ys, s=14, alpha=0.7, color=colors[v], label=v)
    ax.axhline(0.578, color="k", ls="--", lw=1, label="#params (free)")
    ax.axhline(0.508, color="tab:red", ls=":", lw=1,
               label="paper's angle, 250 epochs on a GPU (spec 7.4)")
    ax.set_xscale("log")
    ax.set_xlabel("supernet training, CPU minutes (2 cores, idle)")
    ax.set_ylabel("Kendall tau vs NB201 CIFAR-10 test (15,625 cells)")
    ax.set_title("NB201 angle scorers: quality against compute (every setting and epoch)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("data", type=Path)
    t.add_argument("out", type=Path)
    t.add_argument("--settings", default=",".join(SETTINGS))
    t.add_argument("--seeds", default="0")
    t.add_argument("-j", type=int, default=2)
    c = sub.add_parser("calibrate")
    c.add_argument("out", type=Path)
    e = sub.add_parser("evaluate")
    e.add_argument("data", type=Path)
    e.add_argument("out", type=Path)
    r = sub.add_parser("report")
    r.add_argument("out", type=Path)
    a = p.parse_args(argv)
    if a.cmd == "train":
        names = a.settings.split(",")
        unknown = [n for n in names if n not in SETTINGS]
        if unknown:
            raise SystemExit(f"unknown settings {unknown}; known: {', '.join(SETTINGS)}")
        train(a.data, a.out, names, [int(s) for s in a.seeds.split(",")], a.j)
    elif a.cmd == "calibrate":
        calibrate(a.out)
    elif a.cmd == "evaluate":
        evaluate(a.data, a.out)
    else:
        report(a.out)


if __name__ == "__main__":
    sys.exit(main())
