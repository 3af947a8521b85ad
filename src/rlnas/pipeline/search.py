"""`rlnas search`: the run's space searched by a scorer (evolution / exhaustive / random, under
params / FLOPs / latency limits). Each search is named after its settings and writes
``result-<name>.json`` and ``visited-<name>.csv``, with ``result.json`` / ``visited.csv`` the
latest; archs are ordered as in ``ranking.csv`` (:func:`rlnas.pipeline.rank.best_first`)."""
from __future__ import annotations

import csv
import io
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
from scipy.stats import kendalltau

from ..archplot import arch_title, write_arch_picture
from ..config import search_scorer
from ..deprecation import renamed_keyword
from ..errors import RlnasError
from ..files import atomic_write_text, finite_or_none, make_dir, run_lock, slug, write_json_atomic
from ..plots import scatter_plot, score_label
from ..rundir import Run
from ..schema import Config
from ..scorers import check_scorer_name, describe_scorer, get_scorer
from ..searchers import Constraint, EvolutionSettings, check_search, run_search
from .rank import best_first, check_scores, ranking_csv


@renamed_keyword("final", "checkpoint")
@renamed_keyword("bars", "progress")
def search(run: Run, method: Optional[str] = None, checkpoint: str = "last.pt",
           max_params=None, max_flops=None, seed: Optional[int] = None,
           scorer: Optional[str] = None, progress: bool = True, name: Optional[str] = None,
           max_latency=None, latency_table=None,
           latency_device: Optional[str] = None, latency_setting=None) -> Dict[str, Any]:
    """Search the run's space by a scorer (the run's ``search.scorer`` by default).

    Each search has a name, from its settings (:func:`search_name`, e.g.
    ``evolution-angle_sum-maxp0.5``) or ``name``, and writes ``result-<name>.json``,
    ``visited-<name>.csv``, ``plots/search-<name>_score_vs_flops.png`` and the picture of the
    best arch, ``plots/arch-<name>.png``: searches with other settings do not replace each
    other. ``result.json``, ``visited.csv`` and ``arch.png`` are copies of the latest search
    (what ``rlnas retrain RUN`` and ``rlnas evaluate`` read by default); the returned dict
    (and result.json) names its own file in ``file``. Holds the run's lock; nothing is
    written until the search is done.

    Latency (``rlnas.latency``), where ``max_latency`` (ms) or ``latency_table`` is given: from
    the device table's ``latency_device`` column, else measured here (``latency_setting``, a
    ``rlnas.latency.LatencySetting``, e.g. ``runtime="onnxruntime"``) on the network the costs
    refer to; each arch's latency and the source go into the result,
    ``visited-<name>.csv`` and ``pareto-<name>.csv`` (the scored archs no other beats on both
    score and latency, fastest first; ``pareto.csv`` the latest) and a score-vs-latency plot.
    A limit below the fastest arch is refused before the search. ``checkpoint``: the trained
    checkpoint in ``ckpt/``; ``progress``: progress bars of slow scorers and of a latency
    measurement, and the latency table's lines on stderr."""
    latency = _latency_model(run, max_latency, latency_table, latency_device, latency_setting,
                             progress)
    with run_lock(run.path, "search"):
        return _search(run, method, checkpoint, max_params, max_flops, seed,
                       scorer or run.scorer, progress, name, max_latency, latency)


def _latency_model(run: Run, max_latency, table, device, setting, progress: bool = True):
    """The latency model a search uses, or None (no limit, table nor setting given). With
    ``progress``, how a table measured here was got (built in how long, or read from which
    cache file) and, before a long measurement of cell networks, how many and about how long
    go to stderr, and a bar shows the measurement."""
    if max_latency is None and table is None and device is None and setting is None:
        return None
    from ..latency import latency_model
    return latency_model(run.space, run.cost_kwargs, table=table, device=device,
                         setting=setting, log=_stderr_line if progress else None,
                         progress=progress)


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@renamed_keyword("final", "checkpoint")
def search_name(method: str, scorer: str, max_params=None, max_flops=None, seed=None,
                checkpoint: str = "last.pt", run_seed=None, max_latency=None,
                latency_column: Optional[str] = None) -> str:
    """``<method>-<scorer>[-maxp<M>][-maxf<M>][-maxl<MS>[-<device column>]][-seed<S>]
    [-<checkpoint>]``: the settings that tell one search of a run from another (the seed where
    it is not the run's, the checkpoint where it is not last.pt)."""
    parts = [method, scorer]
    if max_params is not None:
        parts.append(f"maxp{max_params:g}")
    if max_flops is not None:
        parts.append(f"maxf{max_flops:g}")
    if max_latency is not None:
        parts.append(f"maxl{max_latency:g}")
    if latency_column is not None:
        parts.append(latency_column)
    if seed is not None and seed != run_seed:
        parts.append(f"seed{seed}")
    if checkpoint != "last.pt":
        parts.append(Path(checkpoint).stem)
    return slug("-".join(parts))


def check_search_name(name: str) -> str:
    if not name or slug(name) != name or name in (".", ".."):
        raise RlnasError(f"search name {name!r} must be letters, digits and . _ + - only")
    return name


def search_plan(cfg: Config, space, cost_kwargs: Dict[str, Any], method=None, max_params=None,
                max_flops=None, seed=None, scorer: Optional[str] = None, max_latency=None,
                latency=None):
    """(method, constraint, settings, seed) of a search of ``space`` by the run config ``cfg``
    (arguments given override its search section), checked as the search would check them
    before scoring anything (``rlnas.searchers.check_search``, the scorer's name): the one check
    ``rlnas search`` makes before it loads the weights and ``rlnas run`` before it trains.

    Args:
        cfg: the run's config.
        space: its space.
        cost_kwargs: the cost keywords the limits refer to (``space.cost_defaults(run.json)``).
        method, max_params, max_flops, seed, scorer, max_latency: as :func:`search`.
        latency: the latency model (needed with ``max_latency``).

    Returns:
        the search's method, Constraint, EvolutionSettings and seed.

    Raises:
        RlnasError: what the search would refuse."""
    cfg = Config.of(cfg)
    s = cfg.search
    method = method or s.method
    check_scorer_name(scorer or search_scorer(cfg))
    constraint = Constraint(max_params=max_params if max_params is not None else s.max_params,
                            max_flops=max_flops if max_flops is not None else s.max_flops,
                            cost_kwargs=cost_kwargs, max_latency=max_latency, latency=latency)
    settings = EvolutionSettings(population=s.population, topk=s.topk, mutations=s.mutations,
                                 crossovers=s.crossovers, mutation_prob=s.mutation_prob,
                                 generations=s.generations, crossover_first=bool(s.crossover_first))
    seed = cfg.seed if seed is None else seed
    check_search(method, space, constraint, seed, settings, s.num_samples)
    return method, constraint, settings, seed


def check_before_training(cfg: Config, info: Dict[str, Any], max_latency=None,
                          latency_table=None, latency_device=None, latency_setting=None) -> None:
    """What ``rlnas run`` refuses before training: the search it will run, by the config
    (:func:`search_plan`, the costs of the run's data as ``info``, the run.json to be written,
    records them), and a latency limit where its numbers are known without the trained run (a
    device table, or a chain space's lookup table; a cell space's latency is measured after
    training)."""
    from ..spaces import recorded_space
    from ..spaces.choice import ChoiceSpace
    cfg = Config.of(cfg)
    space = recorded_space(cfg.space, "the run's config")
    cost_kwargs = space.cost_defaults(info)
    latency = None
    if latency_table is not None or latency_device is not None or (
            max_latency is not None and isinstance(space, ChoiceSpace)):
        from ..latency import latency_model
        latency = latency_model(space, None if latency_table is not None else cost_kwargs,
                                table=latency_table, device=latency_device,
                                setting=latency_setting, log=_stderr_line)
    search_plan(cfg, space, cost_kwargs, max_latency=max_latency if latency is not None else None,
                latency=latency)


def _search(run: Run, method, checkpoint, max_params, max_flops, seed, scorer, progress,
            name=None, max_latency=None, latency=None):
    s = run.config.search
    if name is not None:
        check_search_name(name)
    space = run.space
    method, constraint, settings, seed = search_plan(
        run.config, space, run.cost_kwargs, method, max_params, max_flops, seed, scorer,
        max_latency, latency)
    fn = get_scorer(scorer, run, checkpoint=checkpoint, progress=progress).fn
    result = run_search(method, space, fn, constraint=constraint, seed=seed, settings=settings,
                        num_samples=s.num_samples)
    check_scores(np.asarray(result.scores, dtype=np.float64), scorer, run)
    order = best_first(result.scores, result.archs)  # ties as in ranking.csv
    result.archs = np.asarray(result.archs)[order]
    result.scores = np.asarray(result.scores, dtype=np.float64)[order]
    name = name or search_name(method, scorer, constraint.max_params, constraint.max_flops,
                               seed, checkpoint, run.config.seed, constraint.max_latency,
                               getattr(latency, "column", None))
    k = s.report_top
    top = result.archs[:k]
    cost = space.cost(top, **run.cost_kwargs)
    visited_cost = space.cost(result.archs, **run.cost_kwargs)
    if latency is not None:
        visited_cost["latency"] = np.asarray(latency(result.archs), dtype=np.float64)
    out = {
        "space": space.name, "name": name, "file": f"result-{name}.json",
        "visited_file": f"visited-{name}.csv", "method": method, "scorer": scorer,
        "score_meaning": describe_scorer(scorer),
        "checkpoint": checkpoint, "seed": int(run.config.seed if seed is None else seed),
        "max_params": constraint.max_params, "max_flops": constraint.max_flops,
        "max_latency": constraint.max_latency,
        "constraint": constraint.describe(), "evaluations": int(result.evaluations),
        "seconds": float(result.seconds),
        "settings": settings.__dict__ if method == "evolution" else None,
        "top": [{"arch": space.to_str(tuple(a)), "genome": [int(g) for g in a],
                 scorer: float(sc), "params_m": float(p), "flops_m": float(fl)}
                for a, sc, p, fl in zip(top, result.scores[:k], cost["params"], cost["flops"])],
        "history": result.history,
        "size": size_summary(result.scores, visited_cost),
    }
    if latency is not None:
        _add_latency(out, latency, visited_cost["latency"], result.scores)
    _write_search_results(run, space, scorer, result, visited_cost, out)
    return out


def _add_latency(out: Dict[str, Any], latency, ms: np.ndarray, scores: np.ndarray) -> None:
    """Each top arch's latency and its source, the limit, and the Pareto front's size."""
    from ..latency import pareto_front
    source = latency.source
    for row, value in zip(out["top"], ms):
        row["latency_ms"] = finite_or_none(value)
        row["latency_source"] = source
    out["latency"] = {**latency.describe(), "unit": "ms",
                      "pareto_file": f"pareto-{out['name']}.csv",
                      "pareto_size": int(len(pareto_front(scores, ms)))}


def size_summary(scores: np.ndarray, cost: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """What the search's scores say beyond size, over the archs it visited: rank correlation of
    the score with params / FLOPs, and the pick next to the largest visited arch (the
    'take the biggest network under the limit' baseline)."""
    out: Dict[str, Any] = {"visited": int(len(scores))}
    for kind in ("params", "flops"):
        tau = kendalltau(scores, cost[kind]).statistic if len(scores) > 1 else float("nan")
        out[f"tau_score_{kind}"] = finite_or_none(tau)
        big = int(np.argmax(cost[kind]))
        out[f"largest_visited_{kind}"] = {"index": big, "cost": float(cost[kind][big]),
                                          "score": float(scores[big])}
        out[f"pick_{kind}"] = float(cost[kind][0])
        out[f"pick_{kind}_quantile"] = float((cost[kind] <= cost[kind][0]).mean())
    return out


def _write_search_results(run: Run, space, scorer: str, result, cost, out: Dict[str, Any]):
    """visited-<name>.csv (every scored arch, best first, with its cost), result-<name>.json
    (``out``), the search's plot, plots/search-<name>_score_vs_flops.png (its score against
    FLOPs over the visited archs, the best marked), and the picture of the best arch
    (plots/arch-<name>.png, ``rlnas.archplot``), then the copies of the files as the latest
    search (visited.csv, result.json, arch.png; a score plot is named by its search only); the
    plot folder is made first, so that a run that cannot be written fails before any result is
    replaced."""
    plots = make_dir(run.path / "plots", "plot folder")
    name = out["name"]
    strs = [space.to_str(tuple(a)) for a in result.archs]
    visited = ranking_csv(scorer, strs, result.scores, cost["params"], cost["flops"],
                          cost.get("latency"))
    atomic_write_text(run.path / out["visited_file"], visited)
    write_json_atomic(out, run.path / out["file"])
    scatter_plot(cost["flops"], result.scores, plots / f"search-{name}_score_vs_flops.png",
                 title=f"{result.method} search: {scorer} vs FLOPs ({len(result.scores)} visited)",
                 xlabel=score_label("flops"), ylabel=score_label(scorer), archs=strs,
                 marks={"best (the search's pick)": 0})
    if "latency" in cost:
        _write_pareto(run, space, scorer, result, cost, out, plots)
    picture = write_arch_picture(
        space, result.archs[0], plots / f"arch-{name}.png",
        arch_title(space, out["top"][0], scorer, f"best of the {result.method} search by "
                   f"{scorer} ({out['constraint']})"))
    # the latest search, under the names every earlier rlnas wrote
    atomic_write_text(run.path / "visited.csv", visited)
    write_json_atomic(out, run.path / "result.json")
    if picture is not None:  # the found arch, next to result.json
        shutil.copyfile(picture, run.path / "arch.png")


def _write_pareto(run: Run, space, scorer: str, result, cost, out: Dict[str, Any], plots: Path):
    """pareto-<name>.csv (the front of score against latency over the scored archs, fastest
    first) and its copy pareto.csv, and the score-vs-latency plot of every scored arch with
    the front marked."""
    from ..latency import pareto_front
    ms = cost["latency"]
    front = pareto_front(result.scores, ms)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["arch", scorer, "latency_ms", "params_m", "flops_m", "latency_source"])
    for i in front:
        w.writerow([space.to_str(tuple(result.archs[i])), f"{result.scores[i]:.12g}",
                    f"{ms[i]:.6g}", f"{cost['params'][i]:.6f}", f"{cost['flops'][i]:.5f}",
                    out["latency"]["source"]])
    atomic_write_text(run.path / out["latency"]["pareto_file"], buf.getvalue())
    atomic_write_text(run.path / "pareto.csv", buf.getvalue())
    runs = np.isfinite(ms)
    scatter_plot(ms[runs], result.scores[runs],
                 plots / f"search-{out['name']}_score_vs_latency.png",
                 title=f"{result.method} search: {scorer} vs latency ({int(runs.sum())} scored, "
                       f"{len(front)} on the front)",
                 xlabel=f"latency (ms; {out['latency']['source']})", ylabel=score_label(scorer),
                 marks={"best (the search's pick)": 0} if runs[0] else None)
