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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from scipy.stats import kendalltau

from ..angle import AngleScorer
from ..correlation import correlation_report
from ..data import prepare_training_data
from ..errors import RlnasError
from ..files import (
    atomic_write_text,
    claim_output_folder,
    is_run_folder,
    make_dir,
    run_lock,
    slug,
    write_json_atomic,
)
from ..plots import scatter_plot, score_label, tau_over_training_plot
from ..rundir import Run
from ..scorers import get_scorer, needs_data, scorer_info
from ..sizecontrol import (
    budget_ladder,
    constrained_benchmark,
    format_constrained,
    format_size_report,
    plot_constrained,
    rank_alike,
    size_controlled_report,
)
from ..spaces.nb201 import nb201_disconnected
from ..tables import BenchmarkTable, load_benchmark_table, load_nb201_table, size_groups
from .train import training_variant

STATS = ("kendall_tau", "spearman_rho", "top1_accuracy")
PICK_STATS = ("top1_percentile", "mean_top10_accuracy")  # benchmark tables (rlnas.tables)


def topk_list(n: int) -> List[int]:
    ks = [10, 50, 100, max(1, round(0.01 * n)), max(1, round(0.05 * n))]
    return sorted({k for k in ks if k <= n})


def evaluate_runs(runs: Sequence[Run], table_path=None, scorers: Sequence[str] = ("angle",),
                  columns: Optional[Sequence[str]] = None, sample: Optional[int] = None,
                  proxy: Optional[Dict[str, Any]] = None, out_dir: Optional[Path] = None,
                  plots: bool = True, progress: bool = True, budgets: int = 10,
                  result: Optional[str] = None, benchmark=None, latency_table=None,
                  latency_devices: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Score the NB201 cells of each run with each scorer and compare with the table; write
    ``evaluation.json``, ``evaluation.md`` and plots to ``out_dir`` (default: the first run).
    Where ``out_dir`` is a run directory, its lock is held.

    The searched cell reported is the first run's latest search (``result.json``), or the search
    ``result`` names: a file name in the run (``result-evolution-angle.json``), a search name
    (``evolution-angle``) or a path; the report names the file, method, scorer and limits.

    ``benchmark``: any benchmark table instead of ``table_path`` (NB201 CSV, NAS-Bench-Macro
    JSON, DARTS-214 CSV or a generic ``arch,<accuracy columns>`` CSV, see ``rlnas.tables``):
    the archs scored are the table's, in the runs' space.

    ``latency_table`` (a device table, e.g. HW-NAS-Bench's CSV for NB201) and
    ``latency_devices`` (its device columns): the constrained-search ladder also under latency
    limits of each device, in ms (the cells a device cannot run left out)."""
    if not runs:
        raise RlnasError("no run to evaluate")
    if (table_path is None) == (benchmark is None):
        raise RlnasError("give one table: a NAS-Bench-201 table or a benchmark table")
    out_dir = Path(out_dir or runs[0].path)
    in_run = is_run_folder(out_dir)
    if not in_run:  # a folder of the user's: never overwrite what rlnas did not write there
        claim_output_folder(out_dir, "evaluation.json",
                            lambda r: isinstance(r, dict) and "per_run" in r and "scorers" in r,
                            "evaluate")
    with run_lock(out_dir, "evaluate") if in_run else contextlib.nullcontext():
        return _evaluate_runs(runs, table_path, scorers, columns, sample, proxy, out_dir, plots,
                              progress, budgets, result, benchmark, latency_table,
                              latency_devices)


def _load_table(runs, table_path, benchmark):
    """The ground truth and the archs to score: (table, archs)."""
    if benchmark is None:
        for run in runs:
            if run.config.space != "nb201":
                raise RlnasError(f"{run.path}: NAS-Bench-201 evaluation needs an nb201 run")
        return load_nb201_table(table_path), runs[0].space.enumerate()
    table = load_benchmark_table(benchmark, runs[0].space)
    for run in runs:
        if run.config.space != runs[0].config.space:
            raise RlnasError(f"{run.path}: space {run.config.space}, the first run's is "
                             f"{runs[0].config.space}; evaluate runs of one space together")
        table.check_space(run.config.space)
    space = runs[0].space
    try:
        archs = np.array([space.from_str(a) for a in table.archs], dtype=np.int64)
    except RlnasError as exc:
        raise RlnasError(f"benchmark table {benchmark}: an arch is not in the run's space "
                         f"({exc})") from None
    return table, archs


def _benchmark_cost(table, space, archs, run) -> Dict[str, np.ndarray]:
    """Params and FLOPs (M) of the benchmark's network: the table's own where it has them, else
    the space's count for the network the table's archs were trained as."""
    kw = table.cost_kwargs if table.cost_kwargs else run.cost_kwargs
    counted = None
    out = {}
    for kind in ("params", "flops"):
        if f"{kind}_m" in table.columns:
            out[kind] = table.lookup([space.to_str(tuple(a)) for a in archs], f"{kind}_m")
        else:
            counted = counted if counted is not None else space.cost(archs, **kw)
            out[kind] = np.asarray(counted[kind], dtype=np.float64)
    return out


def _pick_quality(scores: np.ndarray, acc: np.ndarray) -> Dict[str, Any]:
    """The percentile of the scorer's top arch among the scored archs (share below its
    accuracy, %) and the mean accuracy of its 10 best-scored archs."""
    keep = ~np.isnan(scores)
    s, a = scores[keep], acc[keep]
    order = np.argsort(-s, kind="stable")
    return {"top1_percentile": float(100.0 * np.mean(a < a[order[0]])),
            "mean_top10_accuracy": float(np.mean(a[order[:10]]))}


def _latency_costs(space, archs, table, devices) -> Dict[str, Any]:
    """Each device column's latency (ms) of ``archs`` from a device table, read before any
    scoring (a bad table or column fails first): column -> (latency, its model)."""
    if table is None:
        if devices:
            raise RlnasError("--latency-device names a column of --latency-table; give the "
                             "table")
        return {}
    from ..latency import TableLatency
    if not devices:
        raise RlnasError(f"latency table {table}: name its device column(s) with "
                         f"--latency-device (e.g. pixel3 or edgegpu,raspi4)")
    out = {}
    for device in devices:
        model = TableLatency(space, table, device)
        out[model.column] = (np.asarray(model(archs), dtype=np.float64), model)
    return out


def latency_ladder(strs: Sequence[str], scores: Dict[str, np.ndarray], accuracy: np.ndarray,
                   ms: np.ndarray, model, budgets: int) -> Dict[str, Any]:
    """``constrained_benchmark`` with a device's latency as the cost: limits at the 10th to
    100th percentile of the latencies of the cells the device can run (the others left out:
    no limit admits them)."""
    runs = np.isfinite(ms)
    if not runs.any():
        raise RlnasError(f"{model.source}: no scored cell can run on the device")
    res = constrained_benchmark([a for a, ok in zip(strs, runs) if ok],
                                {name: s[runs] for name, s in scores.items()}, accuracy[runs],
                                ms[runs], budget_ladder(ms[runs], n=budgets))
    res.update(device=model.column, unit="ms", source=model.source,
               not_on_device=int((~runs).sum()))
    return res


@dataclass
class _Cells:
    """What every run of one evaluation is compared on: the scored cells, their ground truth
    (accuracy per column) and costs, the size groups, and the options of the comparison."""

    table: Any
    table_path: Any
    archs: np.ndarray
    strs: List[str]
    cols: List[str]
    acc: Dict[str, np.ndarray]
    cost: Dict[str, np.ndarray]
    groups: Dict[str, Any]
    notes: List[str]
    ks: List[int]
    alike: bool  # NB201: FLOPs order the cells exactly as params do
    latency: Dict[str, Any]
    benchmark: Any
    budgets: int
    progress: bool

    @property
    def primary(self) -> str:
        return _primary(self.cols)


def _evaluate_runs(runs, table_path, scorers, columns, sample, proxy, out_dir: Path, plots,
                   progress, budgets, result_file=None, benchmark=None, latency_table=None,
                   latency_devices=None) -> Dict[str, Any]:
    cells = _cells(runs, table_path, scorers, columns, sample, benchmark, latency_table,
                   latency_devices, budgets, progress)
    found = _searched(runs[0], cells.table, cells.cols, result_file)
    if found and benchmark is not None and found["found"][0][cells.cols[0]] is None:
        cells.notes.append(f"the searched arch {found['found'][0]['arch']} is not in the table: "
                           f"no searched-arch accuracy")
        found = None
    # the output folders first: a bad --out fails before minutes of scoring
    make_dir(out_dir, "output folder")
    if plots:
        make_dir(out_dir / "plots", "plot folder")
    proxy = dict(proxy or {})

    per_run: List[Dict[str, Any]] = []
    run_free: Dict[tuple, tuple] = {}  # scorers that ignore the supernet: once per seed
    for run in runs:
        scores, seconds = _score_run(run, scorers, cells.archs, proxy, progress, run_free)
        entry = _run_entry(cells, run, scorers, scores, seconds)
        per_run.append(entry)
        if plots and run is runs[0]:
            _plot_run(cells, run, entry, scorers, scores, found, out_dir / "plots")
    cols = cells.cols
    if plots:  # the headline column, as the summary's
        plot_over_training(per_run, [_primary(cols)] + [c for c in cols if c != _primary(cols)],
                           out_dir / "plots" / "tau_vs_epoch.png")

    result = {"table": str(cells.table_path), "columns": cols, "num_archs": len(cells.strs),
              "sample": sample, "topk": cells.ks, "scorers": list(scorers),
              "flops_ranks_as_params": cells.alike,
              "runs": [r["run"] for r in per_run], "per_run": per_run,
              "summary": summarise(per_run, scorers, cols, cells.ks)}
    if benchmark is not None:
        result.update(benchmark=cells.table.kind, space=runs[0].config.space,
                      title=cells.table.title, notes=cells.notes)
    if cells.latency:
        result["latency_table"] = str(latency_table)
    if found:
        result["search"] = found
    write_json_atomic(result, out_dir / "evaluation.json")
    atomic_write_text(out_dir / "evaluation.md", format_markdown(result))
    return result


def _cells(runs, table_path, scorers, columns, sample, benchmark, latency_table,
           latency_devices, budgets, progress) -> _Cells:
    """The cells to score and what they are compared on, every input checked before any
    scoring (unknown scorer names, table columns, the sample size, the latency table)."""
    for name in scorers:
        for part in name.split("+"):
            scorer_info(part)  # unknown names fail before any work
    table, archs = _load_table(runs, table_path, benchmark)
    table_path = table_path if benchmark is None else benchmark
    cols = list(columns or table.accuracy_columns)
    for c in cols:
        if c not in table.columns:
            raise RlnasError(f"column {c!r} is not in {table_path}; it has "
                             f"{', '.join(table.accuracy_columns)}")
    space = runs[0].space
    if sample:
        if not 10 <= sample <= len(archs):
            raise RlnasError(f"--sample must be between 10 and {len(archs)}, got {sample}")
        archs = archs[np.sort(np.random.default_rng(0).choice(len(archs), sample, replace=False))]
    strs = [space.to_str(tuple(a)) for a in archs]
    acc = {c: table.lookup(strs, c) for c in cols}
    latency = _latency_costs(space, archs, latency_table, latency_devices)
    groups, notes = {"params": None, "flops": None}, []
    if benchmark is None:
        cost = space.cost(archs, **runs[0].cost_kwargs)
    else:
        cost = _benchmark_cost(table, space, archs, runs[0])
        groups = {k: size_groups(cost[k])[0] for k in ("params", "flops")}
        bin_note = size_groups(cost["params"])[1]
        notes = list(table.notes) + ([bin_note] if bin_note else [])
    return _Cells(table=table, table_path=table_path, archs=archs, strs=strs, cols=cols,
                  acc=acc, cost=cost, groups=groups, notes=notes, ks=topk_list(len(archs)),
                  alike=rank_alike(cost["params"], cost["flops"]), latency=latency,
                  benchmark=benchmark, budgets=budgets, progress=progress)


def _score_run(run: Run, scorers, archs: np.ndarray, proxy: dict, progress,
               run_free: Dict[tuple, tuple]) -> tuple:
    """({scorer: scores of ``archs``}, {scorer: seconds}) of one run. A scorer that ignores the
    supernet is computed once per seed (``run_free``) and reused."""
    scores, seconds = {}, {}
    data = None
    for name in scorers:
        key = (name, run.config.seed)
        if key in run_free:
            scores[name], seconds[name] = run_free[key]
            continue
        options = dict(proxy)
        if needs_data(name):
            if data is None:
                data = prepare_training_data(run.config)[0]
            options["data"] = data
        options.setdefault("progress", progress)
        t0 = time.perf_counter()
        fn = get_scorer(name, run, **options).fn
        scores[name] = np.asarray(fn(archs), dtype=np.float64)
        seconds[name] = time.perf_counter() - t0
        if not any(scorer_info(part).needs_run for part in name.split("+")):
            run_free[key] = (scores[name], seconds[name])
    return scores, seconds


def _run_entry(cells: _Cells, run: Run, scorers, scores: Dict[str, np.ndarray],
               seconds: Dict[str, float]) -> Dict[str, Any]:
    """One run's line of evaluation.json: each scorer's correlations, size-controlled report,
    the angle over training, and its picks under a ladder of cost (and latency) limits."""
    strs, cols, acc, cost, groups = cells.strs, cells.cols, cells.acc, cells.cost, cells.groups
    entry = {"run": str(run.path), "seed": run.config.seed, "labels": run.config.labels.kind,
             "seconds": seconds, "correlation": {}, "size_control": {}}
    for name in scorers:
        entry["correlation"][name] = correlation_report(strs, scores[name], cells.table,
                                                        columns=cols, topk=cells.ks)
        if cells.benchmark is not None:
            for c in cols:
                entry["correlation"][name]["columns"][c].update(
                    _pick_quality(scores[name], acc[c]))
    with_size = dict(scores, params=cost["params"], flops=cost["flops"])
    for c in cols:
        entry["size_control"][c] = size_controlled_report(
            with_size, acc[c], cost["params"], cost["flops"], accuracy_name=c,
            params_groups=groups["params"], flops_groups=groups["flops"])
    entry["over_training"] = angle_over_training(
        run, cells.table, cols, progress=cells.progress,
        archs=None if cells.benchmark is None else cells.archs)
    # constrained search on the primary column: each scorer's pick under a ladder of limits
    primary = cells.primary
    entry["constrained"] = {
        kind: constrained_benchmark(strs, scores, acc[primary], cost[kind],
                                    budget_ladder(cost[kind], n=cells.budgets))
        for kind in ("params", "flops")}
    if cells.latency:
        entry["constrained_latency"] = {
            column: latency_ladder(strs, scores, acc[primary], ms, model, cells.budgets)
            for column, (ms, model) in cells.latency.items()}
    return entry


def _plot_run(cells: _Cells, run: Run, entry: Dict[str, Any], scorers,
              scores: Dict[str, np.ndarray], found, plot_dir: Path) -> None:
    """The first run's plots: each scorer against each column (the searched cell, the params
    baseline's pick and the best cell marked) and the picks under each limit."""
    strs, cols, acc, alike = cells.strs, cells.cols, cells.acc, cells.alike
    marks = {}
    if found:
        marks[f"searched cell ({found['method']}, {found['scorer']})"] = \
            found["found"][0]["arch"]
    live = np.where(nb201_disconnected(strs), -np.inf, cells.cost["params"])
    marks["params baseline's pick"] = strs[int(np.argmax(live))]
    for c in cols:
        col_marks = dict(marks, **{"best cell (oracle)": strs[int(np.argmax(acc[c]))]})
        for name in scorers:
            scatter_plot(scores[name], acc[c], plot_dir / f"{slug(name)}_vs_{c}.png",
                         title=f"{name} vs {c} ({len(strs)} cells, {run.path.name})",
                         xlabel=score_label(name), ylabel=f"{c} (%)", archs=strs,
                         marks=col_marks)
    for kind, unit in (("params", "params"), ("flops", "FLOPs"))[:1 if alike else 2]:
        plot_constrained(entry["constrained"][kind],
                         plot_dir / f"constrained_{kind}_{_primary(cols)}.png",
                         title=f"pick under a {unit} limit ({_primary(cols)})"
                               + (" (FLOPs: the same picks)" if alike else ""),
                         xlabel=f"{unit} limit (M)", ylabel=f"{_primary(cols)} (%)")
    for column, ladder in entry.get("constrained_latency", {}).items():
        plot_constrained(ladder, plot_dir / f"constrained_latency_{slug(column)}_"
                                            f"{_primary(cols)}.png",
                         title=f"pick under a latency limit on {column} "
                               f"({_primary(cols)})",
                         xlabel=f"latency limit (ms, {column})",
                         ylabel=f"{_primary(cols)} (%)")


def _primary(cols: Sequence[str]) -> str:
    """The column constrained-search picks are judged on: CIFAR-10 test where present."""
    return "cifar10_test" if "cifar10_test" in cols else cols[0]


def _searched(run: Run, table, cols, result: Optional[str] = None):
    if not result and not (run.path / "result.json").exists():
        return None  # not searched yet
    path = run.result_file(result)
    try:
        res = json.loads(path.read_text())
        key = res.get("scorer", "angle")
        tops = [(t["arch"], t.get(key)) for t in res["top"]]
        head = {"method": res["method"], "scorer": key, "constraint": res["constraint"],
                "file": str(path), "name": res.get("name"),
                "search_file": res.get("file", path.name),
                "checkpoint": res.get("checkpoint", "last.pt")}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RlnasError(f"{path} is not an rlnas result.json; run `rlnas search {run.path}` "
                         f"again or remove it") from None
    found = []
    for arch, score in tops:
        row = {"arch": arch, key: score}
        if isinstance(table, BenchmarkTable):  # the arch in its notation, or not in the table
            arch = _table_key(run.space, arch)
            row.update({c: float(table.lookup([arch], c)[0]) if arch in table else None
                        for c in cols})
        else:
            row.update({c: float(table.lookup([arch], c)[0]) for c in cols})
        found.append(row)
    return dict(head, found=found)


def _table_key(space, arch: str) -> str:
    """``arch`` in a benchmark table's notation: the space's string of its (canonical) arch."""
    try:
        a = space.from_str(arch)
        a = space.canonical(a)  # the arch itself in most spaces
        return space.to_str(a)
    except RlnasError:
        return arch


# --- aggregation ------------------------------------------------------------------------------
def _stat_names(ks):
    return (list(STATS) + list(PICK_STATS) + [f"precision_at_{k}" for k in ks]
            + [f"best_in_top{k}" for k in ks])


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


TOPK_LABELS = ("P@10", "P@50", "P@100", "P@1%", "P@5%")


def topk_columns(n: int) -> List[tuple]:
    """(header, k) of the precision@k columns: the same five headers for every number of cells
    (k = 10, 50, 100, 1 % and 5 % of them); a k above the number of cells has no value."""
    ks = [10, 50, 100, max(1, round(0.01 * n)), max(1, round(0.05 * n))]
    return [(label, k if k <= n else None) for label, k in zip(TOPK_LABELS, ks)]


def _units_constrained(table: str, unit: str) -> str:
    """``format_constrained``'s table with units in its header: the limit in ``unit`` (M
    params, M FLOPs, ms on a device), the count of cells under it, accuracies in %."""
    lines = table.split("\n")
    if lines and lines[0].startswith("| budget | eligible |"):
        cells = [c.strip() for c in lines[0].strip("|").split("|")]
        cells = ([f"limit ({unit})", "cells under it"]
                 + [f"{c[:-1]}, %)" if c.endswith(")") else f"{c} (%)" for c in cells[2:]])
        lines[0] = "| " + " | ".join(cells) + " |"
    return "\n".join(lines)


def _split_notes(text: str):
    """``format_size_report``'s table and its footnotes (lines starting ``\\*``) apart."""
    body, notes = [], []
    for line in text.split("\n"):
        (notes if line.startswith("\\* ") else body).append(line)
    while body and not body[-1].strip():
        body.pop()
    return "\n".join(body), notes


def format_markdown(result: Dict[str, Any]) -> str:
    n = result["num_archs"]
    tcols = topk_columns(n)
    picks = bool(result.get("benchmark"))  # a benchmark table: pick percentile, top-10 mean
    lines = _md_intro(result, tcols, picks)
    if result.get("search"):
        lines += [_search_line(result), ""]
    if result.get("flops_ranks_as_params"):
        lines += [f"FLOPs order the {n} cells exactly as params do (ties included): every number "
                  "controlled for FLOPs equals the one controlled for params, and a ladder of "
                  "FLOPs limits picks the cells the params ladder picks, so both are given once, "
                  "for params (the `flops` scorer's own rows stay).", ""]
    notes_seen: List[str] = []
    for c in result["columns"]:
        lines += _md_column_table(result, c, tcols, picks)
    primary = _primary(result["columns"])
    alike = bool(result.get("flops_ranks_as_params"))
    size = result["per_run"][0]["size_control"].get(primary)
    if size:
        table, notes_seen = _split_notes(format_size_report(size, flops=not alike))
        lines += [f"## Size control ({primary}, first run)", "",
                  "What each scorer knows beyond size. Every column's table above has its "
                  "within-params tau and partial rho given params; the full size-controlled "
                  "statistics of the other columns are in evaluation.json "
                  "(`per_run[].size_control`). The notes marked \\* are at the end."
                  + (" FLOPs: the same as params (above)." if alike else ""), "", table, ""]
    lines += _md_constrained(result, primary, alike)
    lines += _md_over_training(result)
    if result.get("search"):
        s = result["search"]
        best = s["found"][0]
        lines += [f"## Searched cell ({s['method']}, {s['scorer']}, {s['constraint']})", "",
                  _search_line(result), "",
                  f"`{best['arch']}`: " + ", ".join(f"{c} {best[c]:.2f} %"
                                                    for c in result["columns"]), ""]
    notes_seen = [f"\\* {nt}" for nt in result.get("notes", [])] + notes_seen
    if notes_seen:
        lines += ["## Notes", ""] + notes_seen + [""]
    return "\n".join(lines)


def _md_intro(result: Dict[str, Any], tcols: List[tuple], picks: bool) -> List[str]:
    """evaluation.md's title and the paragraph that says what was compared and each column."""
    n = result["num_archs"]
    return [f"# Scorer comparison on {result.get('title', 'NAS-Bench-201')}",
           "",
           f"Table `{result['table']}`; {n} cells"
           f"{' (seeded sample)' if result['sample'] else ''}; {len(result['runs'])} run(s): "
           + ", ".join(f"`{r}`" for r in result["runs"]) + ". Mean ± std over runs.", "",
           "Columns: tau = Kendall tau and rho = Spearman rho of the score with the accuracy "
           "(-1 to 1); top-1 acc = accuracy of the scorer's best cell (%); P@k = share of the "
           "k best cells by accuracy among the scorer's k best (0 to 1), with "
           + ", ".join(f"{label} = top {k}" for label, k in tcols if k is not None)
           + (" (" + ", ".join(label for label, k in tcols if k is None)
              + f": more than the {n} cells)" if any(k is None for _, k in tcols) else "")
           + "; within-params tau = tau inside groups of equal params; time in seconds "
             "(scoring all cells)"
           + ("; top-1 pct = percentile of the top pick among the scored archs; top-10 mean "
              "= mean accuracy of the 10 best-scored archs (%)" if picks else "") + ".", ""]


def _md_column_table(result: Dict[str, Any], c: str, tcols: List[tuple],
                     picks: bool) -> List[str]:
    """The section of one accuracy column: a row per scorer, mean ± std over the runs."""
    lines = [f"## {c}", ""]
    head = (["scorer", "tau", "rho", "top-1 acc (%)"]
            + (["top-1 pct", "top-10 mean (%)"] if picks else [])
            + [label for label, _ in tcols]
            + ["within-params tau", "partial rho given params", "time (s)"])
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for name in result["scorers"]:
        s = result["summary"][name][c]
        row = [name, _fmt(s["kendall_tau"]), _fmt(s["spearman_rho"]),
               _fmt(s["top1_accuracy"], ".2f")]
        if picks:
            row += [_fmt(s["top1_percentile"], ".1f"), _fmt(s["mean_top10_accuracy"], ".2f")]
        row += [_fmt(s.get(f"precision_at_{k}", _NA), ".2f") if k is not None else "n/a"
                for _, k in tcols]
        row += [_fmt(s["within_params_tau"]), _fmt(s["partial_spearman_params"]),
                _fmt(result["summary"][name]["seconds"], ".2f")]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    return lines


def _md_constrained(result: Dict[str, Any], primary: str, alike: bool) -> List[str]:
    """The sections of the first run's picks under a params, FLOPs or latency limit."""
    lines: List[str] = []
    for kind in ("params", "flops")[:1 if alike else 2]:
        cons = result["per_run"][0].get("constrained", {}).get(kind)
        if not cons:
            continue
        lines += [f"## Constrained search: pick under a {kind} limit ({primary}, first run)",
                  "", "Each scorer's best cell under the limit, next to the largest cell "
                  "under it and the best one (oracle); accuracies of the picks in %.", "",
                  _units_constrained(format_constrained(cons),
                                     "M params" if kind == "params" else "M FLOPs"), ""]
    for column, cons in result["per_run"][0].get("constrained_latency", {}).items():
        lines += [f"## Constrained search: pick under a latency limit on {column} ({primary}, "
                  f"first run)", "",
                  f"Latency in ms from `{result['latency_table']}`, column {column}; limits at "
                  f"the 10th to 100th percentile of the {cons['n_eligible'][-1]} cells the "
                  f"device can run"
                  + (f" ({cons['not_on_device']} it cannot run are left out)"
                     if cons["not_on_device"] else "")
                  + ". Each scorer's best cell under the limit, next to the slowest cell under "
                    "it (largest) and the best one (oracle); accuracies of the picks in %.", "",
                  _units_constrained(format_constrained(cons), f"ms, {column}"), ""]
    return lines


def _md_over_training(result: Dict[str, Any]) -> List[str]:
    """The section of the first run's ranking tau over its checkpoints (none without them)."""
    lines: List[str] = []
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
    return lines


_NA = {"mean": None, "std": None, "n": 0}


def _search_line(result: Dict[str, Any]) -> str:
    s = result["search"]
    where = s.get("search_file") or Path(s.get("file", "result.json")).name
    return (f"Searched cell: from `{where}` ({s['method']} search by {s['scorer']}, "
            f"{s['constraint']}, checkpoint {s.get('checkpoint', 'last.pt')}).")


# --- the short summary a person reads ---------------------------------------------------------
SUMMARY_WIDTH = 100  # the terminal summary's table and text fit this many columns


def format_summary(result: Dict[str, Any], report_dir=None) -> str:
    """A few lines for the terminal, within :data:`SUMMARY_WIDTH` columns (but an arch string
    or a path that is longer): one row per scorer on the headline accuracy column
    (CIFAR-10 test where the table has it): Kendall tau, tau inside groups of equal params
    (what the score knows beyond size), the accuracy of its top pick, and the range of its tau
    over every column; then the searched cell, which search that is, and where the full report
    (every column and statistic) is. ``params`` / ``flops`` are the free baselines."""
    import textwrap
    scorers = list(result["scorers"])
    search = result.get("search")
    runs = len(result["runs"])
    cols = list(result["columns"])
    col = _primary(cols)

    def label(name):
        return f"{name} (baseline)" if name in ("params", "flops") else name

    head = ["scorer", "tau", "tau within params", "top pick (%)"]
    if len(cols) > 1:
        head.append(f"tau, all {len(cols)} columns")
    rows = [head]
    for name in scorers:
        s = result["summary"][name][col]
        row = [label(name), _fmt(s["kendall_tau"]), _fmt(s["within_params_tau"]),
               _fmt(s["top1_accuracy"], ".2f")]
        if len(cols) > 1:
            taus = [result["summary"][name][c]["kendall_tau"]["mean"] for c in cols]
            taus = [t for t in taus if t is not None]
            row.append(f"{min(taus):.3f} to {max(taus):.3f}" if taus else "n/a")
        rows.append(row)
    width = [max(len(r[i]) for r in rows) for i in range(len(head))]
    over = (f"mean ± std over {runs} runs" if runs > 1 else "one run")
    lines = [f"Scorers vs {result.get('title', 'NAS-Bench-201')} on {col} "
             f"({result['num_archs']} cells{', seeded sample' if result.get('sample') else ''}, "
             f"{over}):"]
    for r in rows:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                               for i, (v, w) in enumerate(zip(r, width))).rstrip())
    legend = (f"tau: Kendall tau of the score with the {col} accuracy (-1..1); tau within "
              f"params: the same inside groups of equal params, what the score knows beyond "
              f"size; top pick: the accuracy of the scorer's best cell"
              + ("; the params count is the free baseline to beat" if "params" in scorers
                 else "") + ".")
    lines += textwrap.wrap(legend, SUMMARY_WIDTH)
    if search:
        best = search["found"][0]
        where = search.get("search_file") or Path(search.get("file", "result.json")).name
        lines.append(f"searched cell: {best[col]:.2f} % on {col}, from {where}:")
        lines.append(f"  {best['arch']}")
        lines += textwrap.wrap(f"({search['method']} search by {search['scorer']}, "
                               f"{search['constraint']}, checkpoint "
                               f"{search.get('checkpoint', 'last.pt')})", SUMMARY_WIDTH,
                               initial_indent="  ", subsequent_indent="  ")
    for column, cons in (result["per_run"][0].get("constrained_latency") or {}).items():
        def pct(value):
            return "n/a" if value is None else f"{value:.2f}"
        picks = ", ".join(f"{name} {pct(m['mean_accuracy'])}"
                          for name, m in cons["methods"].items())
        lines += textwrap.wrap(
            f"under latency limits on {column} ({len(cons['budgets'])} limits, "
            f"{cons['budgets'][0]:.3g}-{cons['budgets'][-1]:.3g} ms; first run): mean accuracy "
            f"of the pick {picks}; largest that fits {pct(cons['largest']['mean_accuracy'])}, "
            f"oracle {pct(cons['oracle']['mean_accuracy'])} (%)", SUMMARY_WIDTH)
    if report_dir is not None:
        where = Path(report_dir)
        lines.append(f"full report: {where / 'evaluation.md'} (every column and statistic)")
        lines.append(f"  data: evaluation.json, plots: {where / 'plots'}/")
    return "\n".join(lines)


# --- the angle over training ------------------------------------------------------------------
def checkpoints_by_epoch(run: Run) -> List[tuple]:
    """(epoch, file name) of the kept periodic checkpoints and last.pt, by epoch."""
    from ..checkpoint import load_checkpoint
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


def angle_over_training(run: Run, table=None, cols=(), progress: bool = False, archs=None
                        ) -> List[Dict[str, Any]]:
    """Angle ranking of every kept checkpoint (the run's angle variant, see ``training_variant``):
    tau with the previous one and with the table. ``progress``: a bar over the checkpoints
    (shown after 2 s)."""
    from tqdm.auto import tqdm
    space = run.space
    variant = training_variant(run.config)
    archs = space.enumerate() if archs is None else archs  # a table's archs (DARTS: no list)
    state0 = run.checkpoint_state("init.pt")
    strs = [space.to_str(tuple(a)) for a in archs] if table is not None else None
    rows, prev = [], None
    for epoch, name in tqdm(checkpoints_by_epoch(run), desc="angle over training", unit="ckpt",
                            disable=not progress, delay=2.0, leave=False):
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
    """tau versus epoch (see ``rlnas.plots.tau_over_training_plot``: a run with one
    checkpoint gets a labelled tau next to the other scorers', not a lone dot)."""
    return tau_over_training_plot(per_run, cols, path)
