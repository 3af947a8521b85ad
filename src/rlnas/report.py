"""`rlnas evaluate`: compare scorers on the same runs and cells against NAS-Bench-201.

For every run (one per seed) and every scorer (angle, accuracy, zero-cost proxies, params, flops,
rank ensembles such as ``angle+synflow``) the same cells are scored, timed and compared with the
ground truth: Kendall tau, Spearman rho, precision@k (k = 10, 50, 100, 1 %, 5 %), the accuracy of
the scorer's top cell, and what the scorer knows beyond model size (within-size-group tau and
partial rank correlations, see ``sizecontrol``). Across runs each number gets a mean and a std.
The angle of the periodic checkpoints shows when the ranking settles (tau versus epoch).
"""
from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from scipy.stats import kendalltau

from .angle import AngleScorer
from .benchmark import correlation_report, load_nb201_table, scatter_plot
from .files import atomic_write, atomic_write_text, make_dir, run_lock, write_json_atomic
from .engine import Run, prepare_training_data, training_variant
from .errors import RlnasError
from .scorers import get_scorer, scorer_info
from .sizecontrol import (budget_ladder, constrained_benchmark, format_constrained,
                          format_size_report, plot_constrained, size_controlled_report)
from .stages import cost_kwargs, needs_data, score_context

STATS = ("kendall_tau", "spearman_rho", "top1_accuracy")


def topk_list(n: int) -> List[int]:
    ks = [10, 50, 100, max(1, round(0.01 * n)), max(1, round(0.05 * n))]
    return sorted({k for k in ks if k <= n})


def evaluate_runs(runs: Sequence[Run], table_path, scorers: Sequence[str] = ("angle",),
                  columns: Optional[Sequence[str]] = None, sample: Optional[int] = None,
                  proxy: Optional[Dict[str, Any]] = None, out_dir: Optional[Path] = None,
                  plots: bool = True, progress: bool = True, budgets: int = 10) -> Dict[str, Any]:
    """Score the NB201 cells of each run with each scorer and compare with the table; write
    ``evaluation.json``, ``evaluation.md`` and plots to ``out_dir`` (default: the first run).
    Where ``out_dir`` is a run directory, its lock is held."""
    if not runs:
        raise RlnasError("no run to evaluate")
    out_dir = Path(out_dir or runs[0].path)
    with (run_lock(out_dir, "evaluate") if (out_dir / "config.yaml").exists()
          else contextlib.nullcontext()):
        return _evaluate_runs(runs, table_path, scorers, columns, sample, proxy, out_dir, plots,
                              progress, budgets)


def _evaluate_runs(runs, table_path, scorers, columns, sample, proxy, out_dir: Path, plots,
                   progress, budgets) -> Dict[str, Any]:
    for run in runs:
        if run.cfg["space"] != "nb201":
            raise RlnasError(f"{run.path}: NAS-Bench-201 evaluation needs an nb201 run")
    for name in scorers:
        for part in name.split("+"):
            scorer_info(part)  # unknown names fail before any work
    table = load_nb201_table(table_path)
    cols = list(columns or table.accuracy_columns)
    for c in cols:
        if c not in table.columns:
            raise RlnasError(f"column {c!r} is not in {table_path}; it has "
                             f"{', '.join(table.accuracy_columns)}")
    space = runs[0].space
    archs = space.enumerate()
    if sample:
        if not 10 <= sample <= len(archs):
            raise RlnasError(f"--sample must be between 10 and {len(archs)}, got {sample}")
        archs = archs[np.sort(np.random.default_rng(0).choice(len(archs), sample, replace=False))]
    strs = [space.to_str(tuple(a)) for a in archs]
    acc = {c: table.lookup(strs, c) for c in cols}
    cost = space.cost(archs, **cost_kwargs(runs[0]))
    ks = topk_list(len(archs))
    found = _searched(runs[0], table, cols)
    # the output folders first: a bad --out fails before minutes of scoring
    make_dir(out_dir, "output folder")
    if plots:
        make_dir(out_dir / "plots", "plot folder")
    proxy = dict(proxy or {})

    per_run: List[Dict[str, Any]] = []
    run_free: Dict[tuple, tuple] = {}  # scorers that ignore the supernet: once per seed
    for run in runs:
        scores, seconds = {}, {}
        data = None
        for name in scorers:
            key = (name, run.cfg["seed"])
            if key in run_free:
                scores[name], seconds[name] = run_free[key]
                continue
            options = dict(proxy)
            if needs_data(name):
                if data is None:
                    data = prepare_training_data(run.cfg)[0]
                options["data"] = data
            options.setdefault("progress", progress)
            t0 = time.perf_counter()
            fn = get_scorer(name, score_context(run, **options))
            scores[name] = np.asarray(fn(archs), dtype=np.float64)
            seconds[name] = time.perf_counter() - t0
            if not any(scorer_info(part).needs_run for part in name.split("+")):
                run_free[key] = (scores[name], seconds[name])
        entry = {"run": str(run.path), "seed": run.cfg["seed"], "labels": run.cfg["labels"]["kind"],
                 "seconds": seconds, "correlation": {}, "size_control": {}}
        for name in scorers:
            entry["correlation"][name] = correlation_report(strs, scores[name], table,
                                                            columns=cols, topk=ks)
        with_size = dict(scores, params=cost["params"], flops=cost["flops"])
        for c in cols:
            entry["size_control"][c] = size_controlled_report(
                with_size, acc[c], cost["params"], cost["flops"], accuracy_name=c)
        entry["over_training"] = angle_over_training(run, table, cols)
        # constrained search on the primary column: each scorer's pick under a ladder of limits
        primary = _primary(cols)
        entry["constrained"] = {
            kind: constrained_benchmark(strs, scores, acc[primary], cost[kind],
                                        budget_ladder(cost[kind], n=budgets))
            for kind in ("params", "flops")}
        per_run.append(entry)
        if plots and run is runs[0]:
            plot_dir = out_dir / "plots"
            for name in scorers:
                for c in cols:
                    scatter_plot(scores[name], acc[c], plot_dir / f"{_slug(name)}_vs_{c}.png",
                                 title=f"{name} vs {c} ({len(strs)} cells, {run.path.name})",
                                 xlabel=name, ylabel=f"{c} (%)")
            for kind, unit in (("params", "M params"), ("flops", "M FLOPs")):
                plot_constrained(entry["constrained"][kind],
                                 plot_dir / f"constrained_{kind}_{_primary(cols)}.png",
                                 title=f"pick under a {kind} limit ({_primary(cols)})",
                                 xlabel=f"limit ({unit})", ylabel=f"{_primary(cols)} (%)")
    if plots:
        plot_over_training(per_run, cols, out_dir / "plots" / "tau_vs_epoch.png")

    result = {"table": str(table_path), "columns": cols, "num_archs": len(strs),
              "sample": sample, "topk": ks, "scorers": list(scorers),
              "runs": [r["run"] for r in per_run], "per_run": per_run,
              "summary": summarise(per_run, scorers, cols, ks)}
    if found:
        result["search"] = found
    write_json_atomic(result, out_dir / "evaluation.json")
    atomic_write_text(out_dir / "evaluation.md", format_markdown(result))
    return result


def _primary(cols: Sequence[str]) -> str:
    """The column constrained-search picks are judged on: CIFAR-10 test where present."""
    return "cifar10_test" if "cifar10_test" in cols else cols[0]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name)


def _searched(run: Run, table, cols):
    path = run.path / "result.json"
    if not path.exists():
        return None
    try:
        res = json.loads(path.read_text())
        key = res.get("scorer", "angle")
        tops = [(t["arch"], t.get(key)) for t in res["top"]]
        head = {"method": res["method"], "scorer": key, "constraint": res["constraint"]}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RlnasError(f"{path} is not an rlnas result.json; run `rlnas search {run.path}` "
                         f"again or remove it") from None
    found = []
    for arch, score in tops:
        row = {"arch": arch, key: score}
        row.update({c: float(table.lookup([arch], c)[0]) for c in cols})
        found.append(row)
    return dict(head, found=found)


# --- aggregation ------------------------------------------------------------------------------
def _stat_names(ks):
    return list(STATS) + [f"precision_at_{k}" for k in ks] + [f"best_in_top{k}" for k in ks]


SIZE_STATS = ("within_params_tau", "partial_spearman_params", "partial_kendall_params")


def summarise(per_run, scorers, cols, ks) -> Dict[str, Any]:
    """mean and std over runs of every statistic, per scorer and column."""
    out: Dict[str, Any] = {}
    for name in scorers:
        out[name] = {"seconds": _ms([r["seconds"][name] for r in per_run])}
        for c in cols:
            stats = {}
            for s in _stat_names(ks):
                stats[s] = _ms([r["correlation"][name]["columns"][c].get(s) for r in per_run])
            for s in SIZE_STATS:
                stats[s] = _ms([r["size_control"][c]["scorers"][name].get(s) for r in per_run])
            out[name][c] = stats
    return out


def _ms(values):
    vals = [v for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "n": len(vals)}


def _fmt(ms, spec=".3f"):
    if ms["mean"] is None:
        return "n/a"
    return f"{ms['mean']:{spec}}" + (f" ± {ms['std']:{spec}}" if ms["n"] > 1 else "")


def format_markdown(result: Dict[str, Any]) -> str:
    ks = result["topk"]
    lines = ["# Scorer comparison on NAS-Bench-201",
             "",
             f"Table `{result['table']}`; {result['num_archs']} cells"
             f"{' (seeded sample)' if result['sample'] else ''}; {len(result['runs'])} run(s): "
             + ", ".join(f"`{r}`" for r in result["runs"]) + ". Mean ± std over runs.", ""]
    for c in result["columns"]:
        lines += [f"## {c}", ""]
        head = (["scorer", "tau", "rho", "top-1 acc"] + [f"P@{k}" for k in ks]
                + ["within-params tau", "partial rho given params", "seconds"])
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for name in result["scorers"]:
            s = result["summary"][name][c]
            row = [name, _fmt(s["kendall_tau"]), _fmt(s["spearman_rho"]),
                   _fmt(s["top1_accuracy"], ".2f")]
            row += [_fmt(s[f"precision_at_{k}"], ".2f") for k in ks]
            row += [_fmt(s["within_params_tau"]), _fmt(s["partial_spearman_params"]),
                    _fmt(result["summary"][name]["seconds"], ".2f")]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        lines += ["Size control (first run):", "",
                  format_size_report(result["per_run"][0]["size_control"][c]), ""]
    primary = _primary(result["columns"])
    for kind in ("params", "flops"):
        cons = result["per_run"][0].get("constrained", {}).get(kind)
        if cons:
            lines += [f"## Constrained search: pick under a {kind} limit ({primary}, first run)",
                      "", "Each scorer's best cell under the limit, next to the largest cell "
                      "under it and the best one (oracle).", "", format_constrained(cons), ""]
    over = result["per_run"][0].get("over_training") or []
    if over:
        lines += [f"## {over[0].get('scorer', 'angle')} ranking over training (first run)", "",
                  "| checkpoint | epoch | tau vs previous | " +
                  " | ".join(f"tau vs {c}" for c in result["columns"]) + " |",
                  "|" + "---|" * (3 + len(result["columns"]))]
        for r in over:
            prev = "" if r["tau_previous"] is None else f"{r['tau_previous']:.3f}"
            lines.append(f"| {r['checkpoint']} | {r['epoch']} | {prev} | " + " | ".join(
                f"{r['tau'][c]:.3f}" for c in result["columns"]) + " |")
        lines.append("")
    if result.get("search"):
        s = result["search"]
        best = s["found"][0]
        lines += [f"## Searched cell ({s['method']}, {s['scorer']}, {s['constraint']})", "",
                  f"`{best['arch']}`: " + ", ".join(f"{c} {best[c]:.2f}" for c in result["columns"]),
                  ""]
    return "\n".join(lines)


# --- the angle over training ------------------------------------------------------------------
def checkpoints_by_epoch(run: Run) -> List[tuple]:
    """(epoch, file name) of the kept periodic checkpoints and last.pt, by epoch."""
    from .checkpoint import load_checkpoint
    found = {}
    for p in sorted((run.path / "ckpt").glob("epoch_*.pt")):
        m = re.fullmatch(r"epoch_(\d+)\.pt", p.name)
        if m:
            found[int(m.group(1))] = p.name
    last = run.path / "ckpt" / "last.pt"
    if last.exists():
        ep = int(load_checkpoint(last).get("epoch", 0))
        found.setdefault(ep, "last.pt")
    return sorted(found.items())


def angle_over_training(run: Run, table=None, cols=()) -> List[Dict[str, Any]]:
    """Angle ranking of every kept checkpoint (the run's angle variant, see ``training_variant``):
    tau with the previous one and with the table."""
    space = run.space
    variant = training_variant(run.cfg)
    archs = space.enumerate()
    state0 = run.checkpoint_state("init.pt")
    strs = [space.to_str(tuple(a)) for a in archs] if table is not None else None
    rows, prev = [], None
    for epoch, name in checkpoints_by_epoch(run):
        angles = AngleScorer.from_states(space, state0, run.checkpoint_state(name),
                                         variant)(archs)
        row = {"checkpoint": name, "epoch": epoch, "scorer": variant,
               "tau_previous": None if prev is None else float(kendalltau(prev, angles).statistic),
               "tau": {}}
        for c in cols:
            row["tau"][c] = float(kendalltau(angles, table.lookup(strs, c)).statistic)
        rows.append(row)
        prev = angles
    return rows


def plot_over_training(per_run, cols, path: Path):
    rows = [r for r in per_run if r.get("over_training")]
    if not rows or not cols:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for r in rows:
        ep = [o["epoch"] for o in r["over_training"]]
        ax.plot(ep, [o["tau"][cols[0]] for o in r["over_training"]], marker="o",
                label=f"seed {r['seed']} vs {cols[0]}")
        prev = [(o["epoch"], o["tau_previous"]) for o in r["over_training"]
                if o["tau_previous"] is not None]
        if prev:
            ax.plot(*zip(*prev), ls="--", marker=".", label=f"seed {r['seed']} vs previous ckpt")
    ax.set_xlabel("supernet epoch")
    ax.set_ylabel("Kendall tau")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    make_dir(path.parent, "plot folder")
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"), suffix=".png")
    finally:
        plt.close(fig)
