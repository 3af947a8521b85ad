"""What does searching under the real latency buy? (issue 20, item 5)

On NAS-Bench-201 (CIFAR-10), for every device column of HW-NAS-Bench's table and several
latency limits L (percentiles of that device's latencies over the cells it can run), three
picks are compared:

* latency: the product's search under the device's latency, ``rlnas search RUN --method
  exhaustive --max-latency L --latency-table HW --latency-device DEVICE``
  (``rlnas.pipeline.search.search``);
* FLOPs stand-in: the same search under ``--max-flops F``, where F is the FLOPs limit a user
  without the device's numbers would take for L: the largest FLOPs value whose cells (the cells
  of exactly that FLOPs count; NB201's FLOPs take 28 values) have a median device latency <= L;
* oracle: the cell of best CIFAR-10 test accuracy among the cells within L.

For each pick: its NB201 CIFAR-10 test accuracy, its true device latency, and whether it breaks
the limit L (a FLOPs pick can; a cell the device cannot run, HW-NAS-Bench's -1, always does).
Scorers: each run's own (the fast preset's ``distance_sum``), seeds = the runs given, mean ± std
(ddof 1) over them; and ``params`` (no training, the same pick for every run: one value).

    python benchmarks/latency_what_it_buys.py RUN_S0 RUN_S1 RUN_S2 \\
        --hw ../shared/data/hw-nasbench201/hw_nasbench201_cifar10.csv \\
        --nb201 ../shared/data/nasbench201.csv --out /tmp/what_it_buys

writes OUT/what_it_buys.json (every pick) and OUT/what_it_buys.md (the table). Each search also
writes its own result-<name>.json in its run folder, as ``rlnas search`` does.
"""
from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from rlnas.files import atomic_write_text, make_dir, write_json_atomic
from rlnas.latency import TableLatency, latency_columns, machine
from rlnas.pipeline.search import search
from rlnas.rundir import open_run
from rlnas.tables import load_nb201_table

ACCURACY = "cifar10_test"


def flops_stand_in(flops: np.ndarray, ms: np.ndarray, limit: float):
    """The largest FLOPs value whose cells have a median latency <= ``limit`` (cells the device
    cannot run left out of the median), or None."""
    best = None
    for level in np.unique(flops):
        runs = ms[(flops == level) & np.isfinite(ms)]
        if runs.size and np.median(runs) <= limit and (best is None or level > best):
            best = float(level)
    return best


def mean_std(values: List[float]) -> Dict[str, Any]:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else None,
            "values": [float(x) for x in v]}


def pick(run, scorer: str, **limits) -> str:
    """The best arch (string) of the product's exhaustive search under ``limits``."""
    found = search(run, method="exhaustive", scorer=scorer, progress=False, **limits)
    return found["top"][0]["arch"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", help="trained NB201 runs (one per seed)")
    p.add_argument("--hw", help="HW-NAS-Bench NB201 CIFAR-10 CSV")
    p.add_argument("--nb201", help="the NB201 table (nasbench201.csv)")
    p.add_argument("--devices", default=None, help="comma-separated columns (default: all)")
    p.add_argument("--percentiles", default="25,50,75")
    p.add_argument("--out", default="/tmp/what_it_buys")
    p.add_argument("--report-only", action="store_true",
                   help="print and rewrite the table from OUT/what_it_buys.json, no search")
    a = p.parse_args(argv)
    if a.report_only:
        doc = json.loads((Path(a.out) / "what_it_buys.json").read_text())
        return write_report(doc, Path(a.out))
    if not (a.runs and a.hw and a.nb201):
        p.error("give the runs, --hw and --nb201 (or --report-only)")
    t_start = time.time()
    runs = [open_run(r) for r in a.runs]
    space = runs[0].space
    scorer = runs[0].cfg["search"]["scorer"]
    if any(r.space.name != space.name or r.cfg["search"]["scorer"] != scorer for r in runs):
        raise SystemExit("the runs must share a space and a scorer")
    archs = space.enumerate()
    keys = [space.to_str(tuple(arch)) for arch in archs]
    table = load_nb201_table(a.nb201)
    acc = table.lookup(keys, ACCURACY)
    flops = space.cost(archs, **runs[0].cost_kwargs)["flops"]
    with open(a.hw) as f:
        header = f.readline().strip().split(",")
    devices = a.devices.split(",") if a.devices else [
        c for c in latency_columns(header) if c.endswith("_latency")]
    percentiles = [float(v) for v in a.percentiles.split(",")]
    index = {k: i for i, k in enumerate(keys)}
    rows = []
    for device in devices:
        model = TableLatency(space, a.hw, device)
        ms = model(archs)
        finite = ms[np.isfinite(ms)]
        for q in percentiles:
            limit = float(np.percentile(finite, q))
            f_limit = flops_stand_in(flops, ms, limit)
            within = ms <= limit
            oracle = int(np.flatnonzero(within)[np.argmax(acc[within])])
            row = {"device": model.column, "percentile": q, "limit_ms": limit,
                   "runnable_cells": int(finite.size), "cells_within": int(within.sum()),
                   "flops_limit_m": f_limit,
                   "flops_limit_cells_within_latency": None if f_limit is None else
                   float(within[flops <= f_limit].mean()),
                   "oracle": {"arch": keys[oracle], "acc": float(acc[oracle]),
                              "ms": float(ms[oracle])}, "picks": {}}
            for name, scored_runs in ((scorer, runs), ("params", runs[:1])):
                for kind in ("latency", "flops"):
                    if kind == "flops" and f_limit is None:
                        continue
                    limits = ({"max_latency": limit, "latency_table": a.hw,
                               "latency_device": model.column} if kind == "latency" else
                              {"max_flops": f_limit})
                    found = [index[pick(run, name, **limits)] for run in scored_runs]
                    row["picks"][f"{name}/{kind}"] = {
                        "archs": [keys[i] for i in found],
                        "acc": mean_std([acc[i] for i in found]),
                        "ms": mean_std([ms[i] for i in found]),
                        "violations": int(sum(not ms[i] <= limit for i in found)),
                        "runs": len(found)}
            rows.append(row)
            print(f"{model.column} p{q:g}: L={limit:.3f} ms, F={f_limit} M, "
                  f"{time.time() - t_start:.0f} s", flush=True)
    out = make_dir(a.out, "output folder")
    doc = {"date": datetime.date.today().isoformat(), "machine": machine(),
           "runs": [str(r.path) for r in runs], "scorer": scorer, "hw_table": a.hw,
           "nb201_table": a.nb201, "accuracy": ACCURACY, "seconds": time.time() - t_start,
           "rows": rows}
    write_json_atomic(doc, out / "what_it_buys.json")
    return write_report(doc, out)


def write_report(doc: Dict[str, Any], out: Path) -> Dict[str, Any]:
    text = markdown(doc)
    atomic_write_text(out / "what_it_buys.md", text + "\n")
    print(text)
    return doc


def _fmt(s: Dict[str, Any], digits: int) -> str:
    if s["std"] is None:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def markdown(doc: Dict[str, Any]) -> str:
    scorer = doc["scorer"]
    n = len(doc["runs"])
    lines = [f"NB201 CIFAR-10 test accuracy (%) of the pick, its true device latency (ms) and "
             f"how many picks break the limit; `{scorer}`: mean ± std over {n} runs, `params`: "
             "one pick (no training).", "",
             f"| device | limit (percentile) | FLOPs stand-in | oracle | {scorer} under latency |"
             f" {scorer} under FLOPs | params under latency | params under FLOPs |",
             "|---|---|---|---|---|---|---|---|"]

    def cell(r, key):
        s = r["picks"].get(key)
        if s is None:
            return "no FLOPs value fits"
        return (f"{_fmt(s['acc'], 2)} %, {_fmt(s['ms'], 2)} ms, {s['violations']}/{s['runs']} "
                "over")

    for r in doc["rows"]:
        flops = "none" if r["flops_limit_m"] is None else (
            f"{r['flops_limit_m']:.1f} M ({100 * r['flops_limit_cells_within_latency']:.0f} % "
            "of its cells within L)")
        lines.append(
            f"| {r['device'].removesuffix('_latency')} | {r['limit_ms']:.3g} ms "
            f"(p{r['percentile']:g}) | {flops} | {r['oracle']['acc']:.2f} %, "
            f"{r['oracle']['ms']:.2f} ms | {cell(r, f'{scorer}/latency')} | "
            f"{cell(r, f'{scorer}/flops')} | {cell(r, 'params/latency')} | "
            f"{cell(r, 'params/flops')} |")
    lines += ["", summary_line(doc, scorer), "", summary_line(doc, "params")]
    return "\n".join(lines)


def summary_line(doc: Dict[str, Any], scorer: str) -> str:
    """Across every (device, limit) with a FLOPs stand-in: how the scorer's latency pick
    compares with its FLOPs pick (accuracy, wins / ties / losses, the share of the limit each
    uses), the stand-in's violations, and the latency pick's gap to the oracle."""
    rows = [r for r in doc["rows"] if f"{scorer}/flops" in r["picks"]]
    lat = [r["picks"][f"{scorer}/latency"] for r in rows]
    flo = [r["picks"][f"{scorer}/flops"] for r in rows]
    gain = np.array([a["acc"]["mean"] - b["acc"]["mean"] for a, b in zip(lat, flo)])
    over = sum(b["violations"] for b in flo)
    total = sum(b["runs"] for b in flo)
    # the share of the limit a pick uses, over the picks the device can run
    used_lat, used_flo = ([v / r["limit_ms"] for x, r in zip(picks, rows)
                           for v in x["ms"]["values"] if np.isfinite(v)] for picks in (lat, flo))
    gap = [r["oracle"]["acc"] - r["picks"][f"{scorer}/latency"]["acc"]["mean"]
           for r in doc["rows"]]
    wins, ties = int((gain > 0.005).sum()), int((np.abs(gain) <= 0.005).sum())
    return (f"Over the {len(rows)} (device, limit) pairs with a FLOPs stand-in, `{scorer}` "
            f"under the latency limit against under the FLOPs stand-in: better in {wins}, equal "
            f"in {ties}, worse in {len(rows) - wins - ties}; accuracy difference median "
            f"{np.median(gain):+.2f} points, mean {gain.mean():+.2f} (min {gain.min():+.2f}, "
            f"max {gain.max():+.2f}). The picks use on average {100 * np.mean(used_lat):.0f} % "
            f"(latency) and {100 * np.mean(used_flo):.0f} % (FLOPs) of the latency limit (picks "
            f"the device can run); the FLOPs "
            f"picks break it in {over} of {total} searches. The latency pick is "
            f"{np.mean(gap):.2f} points below the oracle on average (all "
            f"{len(doc['rows'])} pairs).")


if __name__ == "__main__":
    main()
