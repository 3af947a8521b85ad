"""Quality against CPU-minutes on the spaces with a ground truth outside NB201 (issue 17):
NAS-Bench-Macro (3,969 distinct networks) and 214 fully trained DARTS cells. Trains supernets at
the settings below with `rlnas train`, scores the table's archs with every scorer through
`rlnas evaluate RUN --benchmark TABLE`, and reports mean ± std over seeds.

    python benchmarks/ground_truth_map.py train       DATA OUT --space darts [--settings a,b]
                                                      [--seeds 0,1,2]
    python benchmarks/ground_truth_map.py evaluate    DATA OUT --space darts [--settings a,b]
                                                      [--scorers a,b]
    python benchmarks/ground_truth_map.py checkpoints DATA OUT --space darts [--settings e3]
    python benchmarks/ground_truth_map.py report      OUT --space darts
        # OUT/<space>/map.md, map.png

DATA is the shared data folder (cifar10/, nasbench-macro/, darts-cifar10-trained/). Every step
skips what exists, so the script resumes: `evaluate` scores each run with the scorers it has not
had yet (default SCORERS + the space's EXTRA; the zero-cost proxies only when named, e.g.
`--scorers nwot,synflow,nwot+params`), `checkpoints` scores the runs that kept a checkpoint per
epoch from every one of them. Runs train one after the other with all threads; the wall time of
each `rlnas train` is recorded (a busy machine makes it longer: say so when quoting).
NB201's map is benchmarks/quality_map.py.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SPACES = {
    "macro": {"preset": "nasbench-macro-fast",
              "table": "nasbench-macro/nas-bench-macro_cifar10.json", "column": "mean_acc"},
    "darts": {"preset": "darts-cifar10-fast",
              "table": "darts-cifar10-trained/darts_random214_cifar10.csv",
              "column": "test_acc_best"},
}
# setting -> (lever, overrides on top of the space's fast preset)
SETTINGS = {
    "macro": {
        "fast": ("the preset", []),
        "lr0.025-cosine": ("rate/schedule", ["lr=0.025", "train.lr_min=0.001"]),
        "lr0.00625": ("rate/schedule", ["lr=0.00625", "train.lr_min=0.00625"]),
        "lr0.0004": ("rate/schedule", ["lr=0.0004", "train.lr_min=0.0004"]),
        "e2": ("epochs", ["epochs=2"]),
        "r32": ("resolution", ["resolution=null"]),
        "sub5000": ("images", ["subset=5000"]),
        "true-labels": ("labels", ["labels=true"]),
        "paper-like-e3": ("the paper's recipe, 3 epochs", [
            "resolution=null", "subset=null", "epochs=3", "lr=0.025", "train.lr_min=0.001"]),
    },
    "darts": {
        "fast": ("the preset", []),
        "lr0.0016": ("rate/schedule", ["lr=0.0016", "train.lr_min=0.0016"]),
        # one 3-epoch run, a checkpoint per epoch: `checkpoints` scores each against W0 (and W_j
        # against the last), so epochs 1-3 and the checkpoint pairs come from one training
        "e3": ("epochs/checkpoint pair", ["epochs=3", "train.keep_every_epochs=1"]),
        "k100": ("random-label classes", ["labels.num_classes=100"]),
        "sub10000": ("images", ["subset=10000"]),
        "sub50000": ("images", ["subset=null"]),
        "r32": ("resolution", ["resolution=null"]),
        "c8l5": ("channels/cells", ["channels=8", "cells=5"]),
        "c8l20": ("channels/cells", ["channels=8", "cells=20"]),
        "true-labels": ("labels", ["labels=true"]),
        # the darts-cifar10 preset (32 px, 50k images, batch 64, lr 0.025 cosine over 250 epochs,
        # whose rate is within 0.01 % of 0.025 in its first epoch): its first epoch only; a
        # checkpoint every 50 steps, so that a run stopped early is scored where it stopped
        "paper-e1": ("the paper's recipe, 1 of 250 epochs", [
            "resolution=null", "subset=null", "train.ckpt_every_steps=50"]),
    },
}
SCORERS = ["angle", "angle_cell", "angle_mean", "angle_sum", "distance", "distance_sum",
           "angle+params", "distance+flops", "params", "flops", "random"]
# scored on every run of a space beyond SCORERS (`evaluate` without --scorers)
EXTRA = {"macro": [], "darts": ["distance+params"]}
# zero-cost proxies (at initialisation: they do not read the supernet) and ensembles with them;
# slow on DARTS (the C=36, 20-cell network per cell), so asked for with --scorers
PROXIES = ["nwot", "jacov", "synflow", "snip", "grad_norm", "fisher"]
PROXY_ENSEMBLES = ["angle+params+nwot", "nwot+params"]
FREE = {"params", "flops", "random"}


def _rlnas() -> list:
    return [sys.executable, "-m", "rlnas"]


def _runs(out: Path, space: str, settings=None, finished: bool = True):
    """The trained runs of a space (those of ``settings`` only, when given); ``finished=False``:
    also those stopped before their last epoch (their kept checkpoints are scored)."""
    root = out / space
    return sorted(p for p in root.glob("*-s*") if
                  ((p / "wall_s").is_file() or not finished and (p / "run.json").is_file()) and
                  (settings is None or p.name.rsplit("-s", 1)[0] in settings))


def _names(args) -> list:
    names = args.settings.split(",") if args.settings else list(SETTINGS[args.space])
    for name in names:
        if name not in SETTINGS[args.space]:
            sys.exit(f"unknown setting {name!r} for {args.space}; known: "
                     f"{', '.join(SETTINGS[args.space])}")
    return names


def train(args) -> None:
    spec, settings = SPACES[args.space], SETTINGS[args.space]
    for name in _names(args):
        for seed in args.seeds.split(","):
            run = args.out / args.space / f"{name}-s{seed}"
            if (run / "wall_s").is_file():
                continue
            cmd = [*_rlnas(), "train", spec["preset"], f"root={args.data.resolve() / 'cifar10'}",
                   f"seed={seed}", f"label_seed={seed}", *settings[name][1], "--out", str(run),
                   "-q"]
            print(" ".join(cmd[2:]), flush=True)
            t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(cmd, check=True)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
            (run / "cpu_s").write_text(f"{cpu:.1f}\n")
            (run / "wall_s").write_text(f"{time.perf_counter() - t0:.1f}\n")


def _cpu_seconds(run: Path):
    """CPU seconds (user + system) of the run's `rlnas train`: recorded by `train`, else by a
    monitor that sampled the process (RUN/cpu_s.monitor); None when neither did."""
    for name in ("cpu_s", "cpu_s.monitor"):
        if (run / name).is_file():
            return float((run / name).read_text())
    return None


def _scorer_row(per_run: dict, scorer: str, column: str) -> dict:
    col = per_run["correlation"][scorer]["columns"][column]
    return {"tau": col["kendall_tau"], "top1_percentile": col.get("top1_percentile"),
            "top10_mean": col.get("mean_top10_accuracy"), "top1": col.get("top1_accuracy"),
            "seconds": per_run["seconds"][scorer]}


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _save(results: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(path)


def evaluate(args) -> None:
    """`rlnas evaluate RUN --benchmark TABLE` on each run with the scorers it has not had yet;
    each batch of scorers writes its report to RUN/ground-truth/<batch>/."""
    spec = SPACES[args.space]
    table = args.data / spec["table"]
    wanted = args.scorers.split(",") if args.scorers else SCORERS + EXTRA[args.space]
    out_json = args.out / args.space / "map.json"
    results = _load(out_json)
    for run in _runs(args.out, args.space, _names(args)):
        entry = results.setdefault(run.name, {"scorers": {}})
        entry["wall_s"] = float((run / "wall_s").read_text())
        cpu = _cpu_seconds(run)
        if cpu is not None:
            entry["cpu_s"] = cpu
        todo = [s for s in wanted if s not in entry["scorers"]]
        if not todo:
            continue
        batch = hashlib.sha1(",".join(todo).encode()).hexdigest()[:8]
        report = run / "ground-truth" / batch
        t0 = time.perf_counter()
        subprocess.run([*_rlnas(), "evaluate", str(run), "--benchmark", str(table), "--scorers",
                        ",".join(todo), "--out", str(report), "-q"], check=True)
        ev = json.loads((report / "evaluation.json").read_text())
        per_run = ev["per_run"][0]
        results = _load(out_json)  # another evaluate may have saved meanwhile: merge
        fresh = results.setdefault(run.name, {"scorers": {}})
        fresh.update({k: v for k, v in entry.items() if k != "scorers"})
        fresh["scorers"].update({s: _scorer_row(per_run, s, spec["column"]) for s in todo})
        entry = fresh
        _save(results, out_json)
        print(f"{run.name} ({time.perf_counter() - t0:.0f} s):",
              {s: round(entry["scorers"][s]["tau"], 3) for s in todo}, flush=True)


def _metrics(scores: np.ndarray, acc: np.ndarray) -> dict:
    """Kendall tau, the top pick's percentile (share of the set below it, %) and the mean
    accuracy of the 10 best-scored: what `rlnas evaluate --benchmark` reports per scorer."""
    from scipy.stats import kendalltau
    order = np.argsort(-scores, kind="stable")
    return {"tau": float(kendalltau(scores, acc).statistic),
            "top1_percentile": float(100.0 * np.mean(acc < acc[order[0]])),
            "top10_mean": float(np.mean(acc[order[:10]]))}


def checkpoints(args) -> None:
    """Runs that kept a checkpoint per epoch: every scorer of the supernet from W0 to each
    epoch's weights (through the public API, as `rlnas evaluate` would score that checkpoint),
    and the angle variants from an earlier checkpoint W_j to the last one instead of from W0."""
    from rlnas.angle import VARIANTS, AngleScorer
    from rlnas.api import open_run
    from rlnas.tables import load_benchmark_table
    spec = SPACES[args.space]
    wanted = args.scorers.split(",") if args.scorers else [
        s for s in SCORERS + EXTRA[args.space] if s not in FREE]
    out_json = args.out / args.space / "checkpoints.json"
    results = _load(out_json)
    for run_dir in _runs(args.out, args.space, _names(args), finished=False):
        epochs = sorted(int(p.stem.split("_")[1]) for p in (run_dir / "ckpt").glob("epoch_*.pt"))
        if not epochs or results.get(run_dir.name, {}).get("epochs") == epochs:
            continue
        run = states = open_run(run_dir)  # one Run: the API handle and its checkpoints
        space = run.space
        table = load_benchmark_table(args.data / spec["table"], space)
        archs = np.array([space.from_str(a) for a in table.archs], dtype=np.int64)
        acc = np.asarray(table.columns[spec["column"]], dtype=np.float64)
        entry = {"epochs": epochs, "from_w0": {}, "to_last": {}}
        for ep in epochs:
            entry["from_w0"][ep] = {s: _metrics(np.asarray(run.get_scorer(
                s, checkpoint=f"epoch_{ep}.pt")(archs), dtype=np.float64), acc) for s in wanted}
        last = states.checkpoint_state(f"epoch_{epochs[-1]}.pt")
        for ep in epochs[:-1]:
            start = states.checkpoint_state(f"epoch_{ep}.pt")
            entry["to_last"][ep] = {v: _metrics(AngleScorer.from_states(
                space, start, last, v)(archs), acc) for v in VARIANTS}
        results[run_dir.name] = entry
        _save(results, out_json)
        print(run_dir.name, {ep: round(r["angle+params"]["tau"], 3) if "angle+params" in r
                             else None for ep, r in entry["from_w0"].items()}, flush=True)


def _ms(values, digits: int = 3) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def _by_setting(results: dict, space: str) -> dict:
    """setting -> [(seed, result)], settings in SETTINGS order."""
    groups: dict = {}
    for name in sorted(results, key=lambda n: int(n.rsplit("-s", 1)[1])):
        setting, seed = name.rsplit("-s", 1)
        groups.setdefault(setting, []).append((int(seed), results[name]))
    order = list(SETTINGS[space])
    return dict(sorted(groups.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order
                       else len(order)))


def _all_scorers(space: str) -> list:
    return list(dict.fromkeys(SCORERS + EXTRA[space] + PROXIES + PROXY_ENSEMBLES))


# the scorers whose picks are tabled (top-10 mean, top pick's percentile) and plotted
# settings trained before `train` recorded CPU time: the CPU time of a setting with the same cost
# per step (same network, images and resolution), scaled by the ratio of steps
CPU_FROM = {"macro": {}, "darts": {"fast": ("e3", 1 / 3)}}


def _cpu_minutes(groups: dict, name: str, space: str):
    """(mean training CPU minutes of a setting, how it was obtained) or (None, '')."""
    cpus = [r.get("cpu_s") for _, r in groups.get(name, [])]
    if cpus and all(c is not None for c in cpus):
        return float(np.mean(cpus)) / 60, "measured"
    if name in CPU_FROM[space]:
        other, factor = CPU_FROM[space][name]
        base, how = _cpu_minutes(groups, other, space)
        if base is not None:
            return base * factor, f"{other} x {factor:.2f}"
    return None, ""


PICKS = ["angle", "angle_sum", "distance", "distance_sum", "angle+params", "distance+params",
         "distance+flops", "nwot", "synflow", "nwot+params", "angle+params+nwot", "params",
         "flops"]
TARGET_TAU = {"macro": 0.65, "darts": 0.30}  # issue 17's targets


def _cell(runs, scorer: str, key: str = "tau", digits: int = 3) -> str:
    return _ms([r["scorers"][scorer][key] for _, r in runs if scorer in r["scorers"]], digits)


def _seeds(runs) -> str:
    return ",".join(str(seed) for seed, _ in runs)


def report(args) -> None:
    space = args.space
    results = _load(args.out / space / "map.json")
    groups = _by_setting(results, space)
    scorers = [s for s in _all_scorers(space)
               if any(s in r["scorers"] for g in groups.values() for _, r in g)]
    lines = [f"Kendall tau with {SPACES[space]['column']} (mean ± std over seeds, ddof 1); "
             "training wall minutes (a busy machine stretches them) and CPU minutes", "",
             "| setting (seeds) | lever | wall min | CPU min | " + " | ".join(scorers) + " |",
             "|---" * (len(scorers) + 4) + "|"]
    for name, runs in groups.items():
        lever = SETTINGS[space].get(name, ("?", []))[0]
        minutes = _ms([r["wall_s"] / 60 for _, r in runs], 1)
        cpu, how = _cpu_minutes(groups, name, space)
        cpu_text = "" if cpu is None else f"{cpu:.1f}" + ("" if how == "measured" else
                                                          f" ({how})")
        lines.append(f"| {name} ({_seeds(runs)}) | {lever} | {minutes} | {cpu_text} | " +
                     " | ".join(_cell(runs, s) for s in scorers) + " |")
    picks = [s for s in PICKS if s in scorers]
    for key, what, digits in (("top10_mean", "mean accuracy of the 10 best-scored archs (%)", 2),
                              ("top1_percentile", "the top pick's percentile in the set", 1)):
        lines += ["", f"{what}, mean ± std over seeds", "",
                  "| setting (seeds) | " + " | ".join(picks) + " |",
                  "|---" * (len(picks) + 1) + "|"]
        for name, runs in groups.items():
            lines.append(f"| {name} ({_seeds(runs)}) | " +
                         " | ".join(_cell(runs, s, key, digits) for s in picks) + " |")

    def mean_seconds(s):
        return np.mean([r["scorers"][s]["seconds"] for g in groups.values() for _, r in g
                        if s in r["scorers"]])

    lines += ["", "scoring seconds per run (mean), as `rlnas evaluate` timed them: " + ", ".join(
        f"{s} {mean_seconds(s):.1f}"
        for s in scorers if any("seconds" in r["scorers"].get(s, {}) for g in groups.values()
                                for _, r in g))]
    lines += _checkpoint_lines(args.out / space / "checkpoints.json", space)
    text = "\n".join(lines) + "\n"
    (args.out / space / "map.md").write_text(text)
    print(text)
    _plot(groups, scorers, args.out / space / "map.png", space)


def _checkpoint_lines(path: Path, space: str) -> list:
    """Tau per checkpoint pair, mean ± std over the runs of each setting."""
    results = _load(path)
    if not results:
        return []
    lines = []
    for setting, runs in _by_setting(results, space).items():
        for kind, what in (("from_w0", "W0 -> epoch k"), ("to_last", "epoch j -> last")):
            pairs = sorted({ep for _, r in runs for ep in r[kind]}, key=int)
            names = list(dict.fromkeys(s for _, r in runs for ep in r[kind] for s in r[kind][ep]))
            if not pairs:
                continue
            lines += ["", f"{setting} ({_seeds(runs)}), checkpoint pairs {what}: tau with "
                      f"{SPACES[space]['column']}", "",
                      "| pair | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
            for ep in pairs:
                lines.append(f"| {what.replace('k', ep).replace('j', ep)} | " + " | ".join(
                    _ms([r[kind][ep][s]["tau"] for _, r in runs if ep in r[kind]])
                    for s in names) + " |")
    return lines


def _plot(groups: dict, scorers: list, path: Path, space: str) -> None:
    """Tau against the supernet's training CPU minutes, one marker per setting and scorer (mean
    over seeds); what needs no supernet (size, proxies at initialisation) as levels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401 (matplotlib.ticker below)
    fig, ax = plt.subplots(figsize=(10, 5.2))
    markers = "osD^v<>phX*"
    levels = [s for s in ("params", "flops", "nwot", "nwot+params") if s in scorers]
    shown = [s for s in PICKS if s in scorers and s not in levels and s not in FREE and
             s not in PROXIES]
    xs = {name: _cpu_minutes(groups, name, space)[0] for name in groups}
    on_cpu = any(x is not None for x in xs.values())
    if not on_cpu:  # runs trained before CPU time was recorded: their wall time
        xs = {name: np.mean([r["wall_s"] for _, r in runs]) / 60 for name, runs in groups.items()}
    placed = [name for name in groups if xs[name] is not None]
    for i, s in enumerate(shown):
        pts = [(xs[name], np.mean([r["scorers"][s]["tau"] for _, r in groups[name]
                                   if s in r["scorers"]]))
               for name in placed if any(s in r["scorers"] for _, r in groups[name])]
        if pts:
            ax.scatter(*zip(*pts), label=s, s=32, marker=markers[i % len(markers)], alpha=0.85)
    styles = {"params": ":", "flops": "--", "nwot": "-", "nwot+params": "-."}
    for s in levels:
        vals = [r["scorers"][s]["tau"] for runs in groups.values() for _, r in runs
                if s in r["scorers"]]
        what = "free" if s in FREE else "at initialisation, no supernet"
        ax.axhline(np.mean(vals), color="grey" if s in FREE else "tab:olive",
                   linestyle=styles[s], linewidth=1,
                   label=f"{s} ({what}): {np.mean(vals):.3f}")
    ax.axhline(TARGET_TAU[space], color="red", linestyle="-.", linewidth=1,
               label=f"issue 17 target {TARGET_TAU[space]}")
    labelled = []  # (x, y) of the labels so far: a label near another one goes below it
    for name in placed:
        runs = groups[name]

        def mean_tau(s):
            return np.mean([r["scorers"][s]["tau"] for _, r in runs if s in r["scorers"]])
        best = max((s for s in shown if any(s in r["scorers"] for _, r in runs)), key=mean_tau)
        x, y = xs[name], mean_tau(best)
        near = sum(abs(np.log(x / lx)) < 0.15 and abs(y - ly) < 0.02 for lx, ly in labelled)
        labelled.append((x, y))
        ax.annotate(f"{name} ({len(runs)})", (x, y), xytext=(3, 5 - 10 * near),
                    textcoords="offset points", fontsize=7)
    ax.set_xscale("log")
    # the settings span less than a decade: label the minor ticks too (1, 2, 3, ... not only 1)
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("supernet training, CPU minutes (user + system, all threads; log scale)"
                  if on_cpu else "supernet training, wall minutes on 2 CPU cores (log scale)")
    ax.set_ylabel(f"Kendall tau with {SPACES[space]['column']}")
    ax.set_title(f"{space}: scorers against compute (mean over seeds; label: setting (seeds))")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # clear of the points
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("step", choices=["train", "evaluate", "checkpoints", "report"])
    p.add_argument("paths", nargs="+", type=Path, help="DATA OUT (report: OUT)")
    p.add_argument("--space", choices=sorted(SPACES), required=True)
    p.add_argument("--settings", help="comma-separated settings (default: all of the space); "
                   "train, evaluate and checkpoints only touch these")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--scorers", help="comma-separated scorers (default: all of SCORERS)")
    args = p.parse_args(argv)
    if args.step == "report":
        args.out = args.paths[-1]
        return report(args)
    if len(args.paths) != 2:
        p.error(f"{args.step} takes DATA OUT")
    args.data, args.out = args.paths
    {"train": train, "evaluate": evaluate, "checkpoints": checkpoints}[args.step](args)


if __name__ == "__main__":
    main()
