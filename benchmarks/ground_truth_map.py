"""Quality against CPU-minutes on the spaces with a ground truth outside NB201 (issue 17):
NAS-Bench-Macro (3,969 distinct networks) and 214 fully trained DARTS cells. Trains supernets at
the settings below with `rlnas train`, scores the table's archs with every scorer through
`rlnas evaluate RUN --benchmark TABLE`, and reports mean ± std over seeds.

    python benchmarks/ground_truth_map.py train    DATA OUT --space macro [--settings a,b]
                                                   [--seeds 0,1,2]
    python benchmarks/ground_truth_map.py evaluate DATA OUT --space macro [--scorers a,b]
    python benchmarks/ground_truth_map.py report   OUT --space macro
        # OUT/<space>/map.md, map.png

DATA is the shared data folder (cifar10/, nasbench-macro/, darts-cifar10-trained/). Every step
skips what exists, so the script resumes. Runs train one after the other with all threads; the
wall time of each `rlnas train` is recorded (a busy machine makes it longer: say so when quoting).
NB201's map is benchmarks/quality_map.py.
"""
from __future__ import annotations

import argparse
import json
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
        "c8l5": ("channels/cells", ["channels=8", "cells=5"]),
        "e3": ("epochs", ["epochs=3"]),
        "true-labels": ("labels", ["labels=true"]),
    },
}
SCORERS = ["angle", "angle_cell", "angle_mean", "angle_sum", "distance", "distance_sum",
           "angle+params", "distance+flops", "params", "flops", "random"]
FREE = {"params", "flops", "random"}


def _rlnas() -> list:
    return [sys.executable, "-m", "rlnas"]


def _runs(out: Path, space: str):
    root = out / space
    return sorted(p for p in root.glob("*-s*") if (p / "run.json").is_file())


def train(args) -> None:
    spec, settings = SPACES[args.space], SETTINGS[args.space]
    names = args.settings.split(",") if args.settings else list(settings)
    for name in names:
        if name not in settings:
            sys.exit(f"unknown setting {name!r} for {args.space}; known: {', '.join(settings)}")
        for seed in args.seeds.split(","):
            run = args.out / args.space / f"{name}-s{seed}"
            if (run / "wall_s").is_file():
                continue
            cmd = [*_rlnas(), "train", spec["preset"], f"root={args.data / 'cifar10'}",
                   f"seed={seed}", f"label_seed={seed}", *settings[name][1], "--out", str(run),
                   "-q"]
            print(" ".join(cmd[2:]), flush=True)
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True)
            (run / "wall_s").write_text(f"{time.perf_counter() - t0:.1f}\n")


def _scorer_row(per_run: dict, scorer: str, column: str) -> dict:
    col = per_run["correlation"][scorer]["columns"][column]
    return {"tau": col["kendall_tau"], "top1_percentile": col.get("top1_percentile"),
            "top10_mean": col.get("mean_top10_accuracy"), "top1": col.get("top1_accuracy")}


def evaluate(args) -> None:
    spec = SPACES[args.space]
    table = args.data / spec["table"]
    scorers = args.scorers or ",".join(SCORERS)
    out_json = args.out / args.space / "map.json"
    results = json.loads(out_json.read_text()) if out_json.is_file() else {}
    for run in _runs(args.out, args.space):
        if run.name in results:
            continue
        report = run / "ground-truth"
        subprocess.run([*_rlnas(), "evaluate", str(run), "--benchmark", str(table), "--scorers",
                        scorers, "--out", str(report), "-q"], check=True)
        ev = json.loads((report / "evaluation.json").read_text())
        per_run = ev["per_run"][0]
        results[run.name] = {
            "wall_s": float((run / "wall_s").read_text()),
            "scorers": {s: _scorer_row(per_run, s, spec["column"]) for s in ev["scorers"]}}
        out_json.write_text(json.dumps(results, indent=1))
        print(run.name, {s: round(v["tau"], 3) for s, v in results[run.name]["scorers"].items()},
              flush=True)


def _ms(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def _by_setting(results: dict) -> dict:
    groups: dict = {}
    for name, res in results.items():
        groups.setdefault(name.rsplit("-s", 1)[0], []).append(res)
    return groups


def report(args) -> None:
    results = json.loads((args.out / args.space / "map.json").read_text())
    groups = _by_setting(results)
    scorers = [s for s in SCORERS if any(s in r["scorers"] for g in groups.values() for r in g)]
    lines = ["| setting (seeds) | lever | train min | " + " | ".join(scorers) + " |",
             "|---" * (len(scorers) + 3) + "|"]
    for name, runs in groups.items():
        lever = SETTINGS[args.space].get(name, ("?", []))[0]
        minutes = _ms([r["wall_s"] / 60 for r in runs])
        taus = [_ms([r["scorers"][s]["tau"] for r in runs if s in r["scorers"]]) for s in scorers]
        lines.append(f"| {name} ({len(runs)}) | {lever} | {minutes} | " + " | ".join(taus) + " |")
    text = "\n".join(lines) + "\n"
    (args.out / args.space / "map.md").write_text(text)
    print(text)
    _plot(groups, scorers, args.out / args.space / "map.png", args.space)


def _plot(groups: dict, scorers: list, path: Path, space: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    for s in (s for s in scorers if s not in FREE):
        xs = [np.mean([r["wall_s"] / 60 for r in runs]) for runs in groups.values()]
        ys = [np.mean([r["scorers"][s]["tau"] for r in runs]) for runs in groups.values()]
        ax.scatter(xs, ys, label=s, s=22)
    for s, style in (("params", ":"), ("flops", "--")):
        vals = [r["scorers"][s]["tau"] for runs in groups.values() for r in runs
                if s in r["scorers"]]
        if vals:
            ax.axhline(np.mean(vals), color="grey", linestyle=style, label=f"{s} (free)")
    for name, runs in groups.items():
        best = max((s for s in scorers if s not in FREE),
                   key=lambda s: np.mean([r["scorers"][s]["tau"] for r in runs]))
        ax.annotate(name, (np.mean([r["wall_s"] / 60 for r in runs]),
                           np.mean([r["scorers"][best]["tau"] for r in runs])), fontsize=7)
    ax.set_xlabel("supernet training (CPU minutes, 2 cores)")
    ax.set_ylabel(f"Kendall tau with {SPACES[space]['column']}")
    ax.set_title(f"{space}: scorers against compute (mean over seeds)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # clear of the points
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("step", choices=["train", "evaluate", "report"])
    p.add_argument("paths", nargs="+", type=Path, help="DATA OUT (report: OUT)")
    p.add_argument("--space", choices=sorted(SPACES), required=True)
    p.add_argument("--settings", help="comma-separated settings (default: all of the space)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--scorers", help="comma-separated scorers (default: all of SCORERS)")
    args = p.parse_args(argv)
    if args.step == "report":
        args.out = args.paths[-1]
        return report(args)
    if len(args.paths) != 2:
        p.error(f"{args.step} takes DATA OUT")
    args.data, args.out = args.paths
    {"train": train, "evaluate": evaluate}[args.step](args)


if __name__ == "__main__":
    main()
