"""How accurate is rlnas's latency model? (issue 20, item 2)

For every space rlnas can build, random archs (seeded, distinct networks) get two numbers:

* predicted: the product's model, ``rlnas.latency.latency_model(space, cost_kwargs)``, built in
  a fresh cache folder under OUT (so the time to build it is measured here). Chain spaces
  (NAS-Bench-Macro, MobileNet at full and at reduced size, the user example
  ``examples/my_space.py``): the per-(block, op) lookup table plus stem and head, summed, its
  entries timed inside running chains (rlnas.latency's CACHE_VERSION 2). Cell
  spaces (NB201, DARTS at a reduced size): each network measured once end to end and cached, so
  "predicted" is an earlier measurement of the same network and its error is re-measurement
  noise, not a model error;
* measured: the standalone network ``space.network(arch, ...)`` built again and timed end to end
  by this script's own timer (not rlnas.latency's, not its cache), in the same setting: batch 1,
  ``--threads`` intra-op threads, fp32, eval and inference mode, ``--warmup`` untimed calls, the
  median of ``--repeats`` timed ones. With ``--runtime onnxruntime`` both run under onnxruntime
  (the reference: the whole network exported to ONNX, its session run timed here).

Reported per space: Kendall tau, the median and 90th-percentile relative error
|predicted - measured| / measured, the median signed error (predicted / measured - 1) and the
model's build time; the issue's target for the chain spaces is tau >= 0.90 and median error
<= 10 % on this CPU. Next to them, three controls:

* the noise ceiling: the reference measured a second time (archs in reverse order) against the
  first; no model can agree with the reference better than the reference agrees with itself;
* "vs CPU time": the same comparison in thread CPU time, which leaves out the time the process
  waited for a core (with one thread; on a busy machine a call longer than a scheduler slice is
  preempted and a short one mostly is not): the table's entries in CPU time
  (``ChainLatency.cpu_table``) against the reference's CPU time;
* chain spaces: the baseline, rlnas's table before (CACHE_VERSION 1): every (block, op) timed
  alone on its in-chain input (``alone_table``), in wall and in CPU time.

    python benchmarks/latency_accuracy.py --archs 100 --out /tmp/latency_accuracy
    python benchmarks/latency_accuracy.py --archs 30 --spaces nasbench-macro,my_space \
        --out /tmp/latency_accuracy                 # a busy machine: fewer archs

writes OUT/latency_accuracy.json (per space: the setting, the summaries and every arch's
numbers), rewritten after each space; a rerun with the same settings skips the spaces already
done (``--force`` measures them again). ``--explain SPACE`` times, for a few archs of a chain
space, the whole network and each of its parts alone and inside the running chain, next to the
table's entries (where a chain prediction goes wrong); OUT/explain-SPACE.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import torch
from scipy.stats import kendalltau

from rlnas.errors import RlnasError
from rlnas.files import make_dir, write_json_atomic
from rlnas.latency import (
    CACHE_VERSION,
    LatencySetting,
    cell_network_setup,
    latency_model,
    machine,
    runnable,
    runtime_input,
)
from rlnas.spaces import get_space
from rlnas.spaces.choice import ChoiceSpace
from rlnas.spaces.mobilenet import mobilenet_space

# name -> (space factory, cost keywords: the network the latency refers to, what it is)
SPACES: Dict[str, Tuple[Callable[[], Any], Dict[str, Any], str]] = {
    "nasbench-macro": (lambda: get_space("nasbench-macro"), {},
                       "chain, NAS-Bench-Macro at the benchmark's size (32 px, 10 classes)"),
    "mobilenet": (lambda: get_space("mobilenet"), {},
                  "chain, the paper's MobileNet space at full size (224 px, 1000 classes)"),
    "mobilenet-w0.5-112px": (lambda: mobilenet_space(0.5, 112, 1000), {},
                             "chain, MobileNet reduced: channels x0.5, 112 px, 1000 classes"),
    "my_space": (lambda: _example_space(), {},
                 "chain, the user example examples/my_space.py (32 px, 10 classes)"),
    "nb201": (lambda: get_space("nb201"), {"num_classes": 10, "image_size": 32},
              "cell, NB201 benchmark network (C=16, N=5, 32 px, 10 classes)"),
    "darts-cifar-c16-l8": (lambda: get_space("darts"),
                           {"network": "cifar", "channels": 16, "layers": 8, "num_classes": 10,
                            "image_size": 32},
                           "cell, DARTS reduced: CIFAR network C=16, 8 cells, 32 px"),
}
CHAIN_TARGET = {"tau": 0.90, "median_error": 0.10}


def _example_space():
    """The README's user space, named as a config names it. The repository root goes on the
    import path first, so that the script runs from any folder (rlnas imports ``examples``
    from the working directory only)."""
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    return get_space("examples.my_space:SPACE")


# ----------------------------------------------------------------------------------------------
# The reference: the standalone network, timed here
# ----------------------------------------------------------------------------------------------
def reference_ms(net: torch.nn.Module, x: torch.Tensor, warmup: int, repeats: int,
                 threads: int) -> Tuple[float, float]:
    """Median wall time and median thread CPU time (ms) of ``net(x)`` over ``repeats`` calls
    after ``warmup`` untimed ones, with ``threads`` intra-op threads (written apart from
    rlnas.latency on purpose: an error of its timer must not cancel out). The CPU time, with
    one thread, leaves out the time the process waited for a core: on a busy machine a long
    call is preempted and a short one mostly is not, so wall times of whole networks and of
    table entries are not comparable there."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                net(x)
            wall, cpu = [], []
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.thread_time()
                net(x)
                cpu.append(time.thread_time() - c0)
                wall.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


def network_setup(space, cost_kwargs: Dict[str, Any]):
    """(arch -> the standalone network, input shape (C, H, W)) of the network the latency
    model refers to at ``cost_kwargs``."""
    if isinstance(space, ChoiceSpace):
        size = cost_kwargs.get("input_size") or space.input_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        classes = cost_kwargs.get("num_classes") or space.num_classes
        return (lambda arch: space.network(arch, classes)), (space.in_channels, *size)
    net_kwargs, shape = cell_network_setup(space, cost_kwargs)
    return (lambda arch: space.network(arch, **net_kwargs)), shape


def sample_archs(space, count: int, seed: int) -> np.ndarray:
    """``count`` archs of distinct networks (distinct canonical forms), seeded."""
    rng = np.random.default_rng(seed)
    seen, archs = set(), []
    for _ in range(1000 * count):
        arch = tuple(int(v) for v in space.sample(rng))
        key = space.to_str(space.canonical(arch))
        if key not in seen:
            seen.add(key)
            archs.append(arch)
            if len(archs) == count:
                return np.array(archs, dtype=np.int64)
    raise RlnasError(f"space {space.name}: fewer than {count} distinct networks found")


def summary(predicted: np.ndarray, measured: np.ndarray) -> Dict[str, float]:
    rel = np.abs(predicted - measured) / measured
    return {"kendall_tau": float(kendalltau(predicted, measured).statistic),
            "median_rel_error": float(np.median(rel)),
            "p90_rel_error": float(np.percentile(rel, 90)),
            "median_signed_error": float(np.median(predicted / measured - 1.0)),
            "measured_ms_min": float(measured.min()), "measured_ms_max": float(measured.max()),
            "measured_ms_median": float(np.median(measured))}


def run_space(name: str, archs_count: int, seed: int, setting: LatencySetting, cache: Path,
              baseline: bool) -> Dict[str, Any]:
    make, cost_kwargs, what = SPACES[name]
    space = make()
    chain = isinstance(space, ChoiceSpace)
    archs = sample_archs(space, archs_count, seed)
    t0 = time.perf_counter()
    model = latency_model(space, cost_kwargs, setting=setting, folder=cache / name)
    t1 = time.perf_counter()
    predicted = np.asarray(model(archs), dtype=np.float64)
    t2 = time.perf_counter()
    build, x_shape = network_setup(space, cost_kwargs)
    torch.manual_seed(seed)
    x = torch.randn(setting.batch, *x_shape, generator=torch.Generator().manual_seed(seed + 1))

    def measure(arch):
        net = build(tuple(int(v) for v in arch)).eval()
        if setting.runtime == "torch":
            return reference_ms(net, x, setting.warmup, setting.repeats, setting.threads)
        with torch.no_grad():  # the network's own ONNX session, timed here
            run = runnable(net, x, setting)
        return reference_ms(run, runtime_input(x, setting), setting.warmup, setting.repeats,
                            setting.threads)

    measured, measured_cpu = np.array([measure(arch) for arch in archs]).T
    # in CPU time: the table's CPU-time entries, summed and scaled as the product scales them
    predicted_cpu = model.scale * predict_from(table_array(model.cpu_table(), space), space,
                                               archs) if chain else predicted
    t3 = time.perf_counter()
    # the noise ceiling: the same archs built and measured again, in reverse order (a drift of
    # the machine's load then works against the first pass, not with it)
    again, again_cpu = np.array([measure(arch) for arch in archs[::-1]])[::-1].T
    info = model.describe()
    enumerable = space.enumerate()
    out = {"space": name, "what": what, "kind": "chain" if chain else "cell",
           "model": info["kind"], "source": model.source, "cost_kwargs": cost_kwargs,
           "input_shape": list(x_shape), "archs": archs_count,
           "space_size": None if enumerable is None else int(len(enumerable)),
           # chain: the whole lookup table; cell: the networks predicted (measured once each)
           "model_seconds": float(t1 - t0 if chain else t2 - t1),
           "reference_seconds": float(t3 - t2), **summary(predicted, measured),
           "vs_cpu_time": summary(predicted_cpu, measured_cpu),
           "remeasured": {**summary(again, measured),
                          "vs_cpu_time": summary(again_cpu, measured_cpu)}}
    if chain:
        out["table_entries"] = len(model.table())
        out["meets_chain_target"] = bool(out["kendall_tau"] >= CHAIN_TARGET["tau"] and
                                         out["median_rel_error"] <= CHAIN_TARGET["median_error"])
    else:
        out["seconds_per_network"] = out["model_seconds"] / archs_count
    if chain:
        out["table_cached"] = info["cached"]
        out["table_load_ratio"] = info["load_ratio"]
    before = None
    if chain and baseline and setting.runtime == "torch":
        table, table_cpu, seconds = alone_table(space, cost_kwargs, setting)
        before = predict_from(table, space, archs)
        out["baseline_alone"] = {
            "model_seconds": seconds, "table_entries": len(table),
            **summary(before, measured),
            "vs_cpu_time": summary(predict_from(table_cpu, space, archs), measured_cpu)}
    out["rows"] = [{"arch": space.to_str(tuple(int(v) for v in a)), "predicted_ms": float(p),
                    "measured_ms": float(m), "measured_cpu_ms": float(c),
                    "remeasured_ms": float(g)}
                   for a, p, m, c, g in zip(archs, predicted, measured, measured_cpu, again)]
    if before is not None:
        for row, c in zip(out["rows"], before):
            row["alone_ms"] = float(c)
    return out


# ----------------------------------------------------------------------------------------------
# The baseline (ops timed alone), and where a chain prediction goes wrong
# ----------------------------------------------------------------------------------------------
def chain_parts(net: torch.nn.Module, arch) -> List[Tuple[str, torch.nn.Module]]:
    """(table key, module) of a chain network's parts, in order."""
    return [("stem", net.stem)] + [(f"block{b}.op{int(o)}", m) for b, (o, m) in
                                   enumerate(zip(arch, net.blocks))] + [("head", net.head)]


def time_parts_in_chain(parts: List[torch.nn.Module], x: torch.Tensor, warmup: int,
                        repeats: int, threads: int) -> Tuple[np.ndarray, np.ndarray]:
    """Per part, the median over ``repeats`` passes of its wall time and of its thread CPU time
    inside the running chain (each part's input is the previous part's fresh output;
    ``warmup`` untimed passes first)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    wall, cpu = np.zeros((repeats, len(parts))), np.zeros((repeats, len(parts)))
    try:
        with torch.inference_mode():
            for r in range(-warmup, repeats):
                h = x
                for i, module in enumerate(parts):
                    t0, c0 = time.perf_counter(), time.thread_time()
                    h = module(h)
                    if r >= 0:
                        cpu[r, i] = time.thread_time() - c0
                        wall[r, i] = time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)
    return 1e3 * np.median(wall, axis=0), 1e3 * np.median(cpu, axis=0)


def alone_table(space, cost_kwargs: Dict[str, Any],
                setting: LatencySetting) -> Tuple[np.ndarray, np.ndarray, float]:
    """The baseline: rlnas's table before CACHE_VERSION 2. The stem, every (block, op) and the
    head each timed alone on its in-chain input (a block's input is op 0's output of the block
    before), the median of ``repeats`` calls after ``warmup`` (``reference_ms``); the same op on
    the same input shape (repeated blocks of a stage) timed once.

    Returns:
        (table of wall times, table of thread CPU times: per (block, op) in ``space.offsets``
        order, then stem and head; seconds).
    """
    t0 = time.perf_counter()
    _, x_shape = network_setup(space, cost_kwargs)
    classes = cost_kwargs.get("num_classes") or space.num_classes
    x = torch.randn(setting.batch, *x_shape, generator=torch.Generator().manual_seed(0))
    table = np.zeros((int(space.num_ops.sum()) + 2, 2))

    def alone(module, x):
        return reference_ms(module, x, setting.warmup, setting.repeats, setting.threads)

    seen: Dict[Tuple, Tuple[float, float]] = {}
    with torch.inference_mode():
        stem = space.make_stem().eval()
        table[-2] = alone(stem, x)
        x = stem(x)
        for b, block in enumerate(space.blocks):
            nxt = None
            for o, op in enumerate(block.ops):
                key = (id(op), space.c_in[b], block.c_out, block.stride, tuple(x.shape))
                module = space.make_op(b, o).eval()
                if key not in seen:
                    seen[key] = alone(module, x)
                table[int(space.offsets[b]) + o] = seen[key]
                if nxt is None:
                    nxt = module(x)
            x = nxt
        table[-1] = alone(space.make_head(classes).eval(), x)
    return table[:, 0], table[:, 1], time.perf_counter() - t0


def table_array(entries: Dict[str, float], space) -> np.ndarray:
    """A ``ChainLatency`` table (``block<b>.op<o>``, stem, head) in ``alone_table``'s layout."""
    return np.array([entries[f"block{b}.op{o}"] for b, n in enumerate(space.num_ops)
                     for o in range(int(n))] + [entries["stem"], entries["head"]])


def predict_from(table: np.ndarray, space, archs: np.ndarray) -> np.ndarray:
    """Stem + head + the chosen (block, op) entries of a table in ``alone_table``'s layout."""
    return table[-2] + table[-1] + table[space.offsets + archs].sum(axis=1)


def explain(name: str, count: int, seed: int, setting: LatencySetting, cache: Path):
    """For ``count`` archs: the whole network; each part timed alone on its in-chain input
    (what the table does, but timed here); each part timed inside the running chain; the
    product's table entries."""
    make, cost_kwargs, _ = SPACES[name]
    space = make()
    if not isinstance(space, ChoiceSpace):
        raise RlnasError(f"--explain needs a chain space; {name} is a cell space")
    model = latency_model(space, cost_kwargs, setting=setting, folder=cache / name)
    table = model.table()
    build, x_shape = network_setup(space, cost_kwargs)
    x0 = torch.randn(setting.batch, *x_shape, generator=torch.Generator().manual_seed(seed + 1))
    rows = []
    for arch in sample_archs(space, count, seed):
        net = build(tuple(int(v) for v in arch)).eval()
        whole, whole_cpu = reference_ms(net, x0, setting.warmup, setting.repeats,
                                        setting.threads)
        parts = chain_parts(net, arch)
        in_chain, in_chain_cpu = time_parts_in_chain([m for _, m in parts], x0,
                                                     setting.warmup, setting.repeats,
                                                     setting.threads)
        alone, x = [], x0
        with torch.inference_mode():
            for _, module in parts:
                alone.append(reference_ms(module, x, setting.warmup, setting.repeats,
                                          setting.threads))
                x = module(x)
        rows.append({"arch": space.to_str(tuple(int(v) for v in arch)), "whole_ms": whole,
                     "whole_cpu_ms": whole_cpu,
                     "alone_sum_ms": sum(a for a, _ in alone),
                     "alone_sum_cpu_ms": sum(c for _, c in alone),
                     "in_chain_sum_ms": float(in_chain.sum()),
                     "in_chain_sum_cpu_ms": float(in_chain_cpu.sum()),
                     "table_sum_ms": sum(table[k] for k, _ in parts),
                     "parts": [{"part": k, "alone_ms": a, "alone_cpu_ms": ac,
                                "in_chain_ms": float(c), "in_chain_cpu_ms": float(cc),
                                "table_ms": table[k]}
                               for (k, _), (a, ac), c, cc in zip(parts, alone, in_chain,
                                                                 in_chain_cpu)]})
    return rows


# ----------------------------------------------------------------------------------------------
def print_table(results: List[Dict[str, Any]], setting: LatencySetting) -> str:
    lines = [f"latency model vs measured end to end, {setting.runtime}, {setting.device}, "
             f"batch {setting.batch}, "
             f"{setting.threads} thread(s), {setting.precision}, warm-up {setting.warmup}, "
             f"median of {setting.repeats}; errors |predicted - measured| / measured, signed: "
             "predicted / measured - 1; 'vs CPU time': against the reference's thread CPU time",
             "", "| space | model | archs | measured ms (min / median / max) | Kendall tau | "
             "median err | p90 err | median signed | tau, median err vs CPU time | "
             "model built in | chain target |", "|---|---|---|---|---|---|---|---|---|---|---|"]

    def row(label, model, r, s, built, target):
        c = s.get("vs_cpu_time")
        cpu = f"{c['kendall_tau']:.3f}, {100 * c['median_rel_error']:.1f} %" if c else "-"
        return (f"| {label} | {model} | {r['archs']} | {r['measured_ms_min']:.2f} / "
                f"{r['measured_ms_median']:.2f} / {r['measured_ms_max']:.2f} | "
                f"{s['kendall_tau']:.3f} | {100 * s['median_rel_error']:.1f} % | "
                f"{100 * s['p90_rel_error']:.1f} % | {100 * s['median_signed_error']:+.1f} % | "
                f"{cpu} | {built} | {target} |")

    def verdict(s):
        return "met" if s["kendall_tau"] >= CHAIN_TARGET["tau"] and \
            s["median_rel_error"] <= CHAIN_TARGET["median_error"] else "missed"

    for r in results:
        if r["kind"] == "chain":
            load = "" if r.get("table_cached", True) else \
                f", under load ({r['table_load_ratio']:.2f}x): not cached"
            lines.append(row(r["space"], "rlnas: ops timed in running chains", r, r,
                             f"{r['model_seconds']:.1f} s ({r['table_entries']} entries{load})",
                             verdict(r)))
            c = r.get("baseline_alone")
            if c:
                lines.append(row(r["space"], "before: ops timed alone", r, c,
                                 f"{c['model_seconds']:.1f} s", verdict(c)))
        else:
            lines.append(row(r["space"], "rlnas: each network measured once", r, r,
                             f"{r['seconds_per_network']:.2f} s per network",
                             "n/a: re-measurement noise"))
        lines.append(row(r["space"], "the reference measured again (noise ceiling)", r,
                         r["remeasured"], "-", "-"))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", type=int, default=100, help="random archs per space")
    p.add_argument("--spaces", default=",".join(SPACES),
                   help=f"comma-separated, of: {', '.join(SPACES)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=LatencySetting.warmup)
    p.add_argument("--repeats", type=int, default=LatencySetting.repeats)
    p.add_argument("--out", default="/tmp/latency_accuracy")
    p.add_argument("--force", action="store_true", help="measure again the spaces already done")
    p.add_argument("--explain", metavar="SPACE", help="per-part timing of a chain space")
    p.add_argument("--explain-archs", type=int, default=5)
    p.add_argument("--runtime", default="torch", choices=["torch", "onnxruntime"],
                   help="what runs the networks, in the model and in the reference (onnxruntime: "
                        "each network exported to ONNX, timed as a session run; no baseline)")
    p.add_argument("--no-baseline", action="store_true",
                   help="chain spaces: leave out the baseline, the table of ops timed alone "
                        "(rlnas before CACHE_VERSION 2)")
    p.add_argument("--note", default="", help="machine state, recorded in the JSON")
    a = p.parse_args(argv)
    names = [s for s in a.spaces.split(",") if s]
    unknown = [s for s in names + ([a.explain] if a.explain else []) if s not in SPACES]
    if unknown:
        raise SystemExit(f"unknown space(s) {', '.join(unknown)}; known: {', '.join(SPACES)}")
    setting = LatencySetting(threads=a.threads, warmup=a.warmup, repeats=a.repeats,
                             runtime=a.runtime)
    out = make_dir(a.out, "output folder")
    cache = out / "cache"
    path = out / "latency_accuracy.json"
    if a.explain:
        if a.runtime != "torch":
            raise SystemExit("--explain times torch modules; leave out --runtime")
        rows = explain(a.explain, a.explain_archs, a.seed, setting, cache)
        for r in rows:
            print(f"{r['arch']}: whole {r['whole_ms']:.3f} ms (CPU time {r['whole_cpu_ms']:.3f}); "
                  f"sum of the parts: timed alone {r['alone_sum_ms']:.3f} (CPU time "
                  f"{r['alone_sum_cpu_ms']:.3f}), in the chain {r['in_chain_sum_ms']:.3f} (CPU "
                  f"time {r['in_chain_sum_cpu_ms']:.3f}), "
                  f"table {r['table_sum_ms']:.3f} ms")
            for part in r["parts"]:
                print(f"    {part['part']:>14}: alone {part['alone_ms']:.3f}, in the chain "
                      f"{part['in_chain_ms']:.3f} (CPU {part['in_chain_cpu_ms']:.3f}), table "
                      f"{part['table_ms']:.3f} ms")
        ratios = {k: float(np.median([r[k] / r["whole_cpu_ms"] for r in rows]))
                  for k in ("whole_ms", "alone_sum_cpu_ms", "in_chain_sum_cpu_ms",
                            "table_sum_ms")}
        print(f"median over {len(rows)} archs, as a share of the whole network's CPU time: "
              f"whole wall {ratios['whole_ms']:.2f}, parts alone (CPU) "
              f"{ratios['alone_sum_cpu_ms']:.2f}, parts in the chain (CPU) "
              f"{ratios['in_chain_sum_cpu_ms']:.2f}, the product's table "
              f"{ratios['table_sum_ms']:.2f}")
        write_json_atomic({"rows": rows, "ratios_to_whole_cpu": ratios},
                          out / f"explain-{a.explain}.json")
        return rows
    key = {"archs": a.archs, "seed": a.seed, "threads": a.threads, "warmup": a.warmup,
           "repeats": a.repeats, "baseline": not a.no_baseline, "runtime": a.runtime,
           "cache_version": CACHE_VERSION}
    doc = json.loads(path.read_text()) if path.is_file() else {}
    if doc.get("key") != key:
        doc = {"key": key, "spaces": {}}
    doc.update({"machine": machine(), "date": datetime.date.today().isoformat(), "note": a.note})
    for name in names:
        if name in doc["spaces"] and not a.force:
            print(f"{name}: done before, kept ({path})")
            continue
        t0 = time.time()
        print(f"{name}: {a.archs} archs ...", flush=True)
        doc["spaces"][name] = run_space(name, a.archs, a.seed, setting, cache,
                                        not a.no_baseline)
        doc["spaces"][name]["wall_seconds"] = time.time() - t0
        write_json_atomic(doc, path)
        print(f"{name}: {time.time() - t0:.0f} s", flush=True)
    results = [doc["spaces"][n] for n in names]
    text = print_table(results, setting)
    print(text)
    print(f"\nwritten: {path}; total {sum(r['wall_seconds'] for r in results):.0f} s")
    return results


if __name__ == "__main__":
    main()
