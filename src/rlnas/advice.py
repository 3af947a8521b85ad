"""How good is the answer: the signs of a weak answer that a run's own numbers show (a scorer
below the free params baseline, a DARTS pick with no weighted op, a supernet that never left
chance, the measured limit of the space's best recipe) and the one change that would help, as
the one line ``rlnas search`` / ``run`` / ``evaluate`` print last (:func:`weak_line`)."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .config import CROSS_SPACE_SCORER, fast_recipe, load_config, measured_recipe, search_scorer
from .correlation import binomial_se
from .errors import RlnasError
from .loop import read_epoch_log
from .schema import Config
from .spaces.darts import NUM_EDGES, SEP3

_BASELINES = ("params", "flops", "random")


def answer_scorer(run_cfg: Dict[str, Any], search: Optional[Dict[str, Any]] = None) -> str:
    """The scorer that picked the run's answer: the search's (``rlnas search --scorer``), else
    the run's ``search.scorer``."""
    return (search or {}).get("scorer") or search_scorer(run_cfg)


def _mean_taus(result: Dict[str, Any], name: str) -> List[Optional[float]]:
    """``name``'s mean Kendall tau on each column of an evaluation (None where it has none)."""
    return [result["summary"][name][c]["kendall_tau"]["mean"] for c in result["columns"]]


def _beats(mine: Sequence[Optional[float]], other: Sequence[Optional[float]]) -> bool:
    """Above ``other`` on every column where both have a tau (and on at least one)."""
    pairs = [(a, b) for a, b in zip(mine, other) if a is not None and b is not None]
    return bool(pairs) and all(a > b for a, b in pairs)


def better_scorer(result: Optional[Dict[str, Any]], scorer: str) -> Optional[str]:
    """The scorer of an evaluation that ranks the cells above both the params count and
    ``scorer`` on every column (the best by mean tau), or None: the one switch this evaluation
    measured to change the outcome."""
    if not result or "params" not in result.get("scorers", []):
        return None
    base = _mean_taus(result, "params")
    mine = _mean_taus(result, scorer) if scorer in result["scorers"] else None
    found = []
    for name in result["scorers"]:
        if name in _BASELINES or name == scorer:
            continue
        taus = _mean_taus(result, name)
        if _beats(taus, base) and (mine is None or _beats(taus, mine)):
            found.append((float(np.mean([t for t in taus if t is not None])), name))
    return max(found)[1] if found else None


def _advice(cfg: Dict[str, Any], scorer: Optional[str] = None,
            evaluation: Optional[Dict[str, Any]] = None) -> str:
    """What to change, naming only what would change this run's outcome: a scorer the
    evaluation measured better than the params count and ``scorer`` (default: the config's);
    else the space's measured fast recipe where the run is not it; else (or where the space has
    none) the scorer measured best across the three benchmarks, unless the run already scores
    by it."""
    scorer = scorer or answer_scorer(cfg)
    better = better_scorer(evaluation, scorer)
    if better is not None:
        return (f"score by {better}, which ranks the cells above the params count in this "
                f"evaluation (search.scorer={better}, or `rlnas search RUN --scorer {better}`)")
    recipe = fast_recipe(Config.of(cfg).space)
    if recipe is not None and measured_recipe(cfg) is None:
        recipe_scorer = load_config(recipe.preset).search.scorer
        return (f"use the measured fast recipe (the preset {recipe.preset}, scored by "
                f"{recipe_scorer})")
    retrain = "retrain the top archs with the true labels before trusting the pick (rlnas retrain)"
    if recipe is not None:
        return retrain
    name = CROSS_SPACE_SCORER
    if scorer == name:  # already the advice: only training longer is left to change
        return f"train longer (train.epochs), or {retrain}"
    return (f"train longer (train.epochs), or score by {name}, the scorer that beat the size "
            f"baselines on NB201 and NAS-Bench-Macro (search.scorer={name}, or `rlnas search "
            f"RUN --scorer {name}`)")


def weak_tau_notes(result: Dict[str, Any], only: Optional[Sequence[str]] = None) -> List[str]:
    """Where a scorer of the evaluation ranks the cells worse than the free ``params`` baseline
    on a column (Kendall tau): why, in a few words. ``only``: the scorers to judge (default
    every one; the weak-answer line judges only the one that picked the answer)."""
    if "params" not in result.get("scorers", []):
        return []
    notes = []
    for name in result["scorers"]:
        if name in _BASELINES or (only is not None and name not in only):
            continue
        worse = []
        for c in result["columns"]:
            mine = result["summary"][name][c]["kendall_tau"]["mean"]
            base = result["summary"]["params"][c]["kendall_tau"]["mean"]
            if mine is not None and base is not None and mine < base:
                worse.append((c, mine, base))
        if worse:
            c, mine, base = worse[0]
            more = f" and {len(worse) - 1} more column(s)" if len(worse) > 1 else ""
            notes.append(f"{name} ranks the cells worse than the params count (Kendall tau "
                         f"{mine:.3f} < {base:.3f} on {c}{more})")
    return notes


def weighted_op_note(run_cfg: Dict[str, Any], search: Dict[str, Any]) -> List[str]:
    """A DARTS pick with no weighted op in its normal cell (only none / pooling / skip)."""
    if not search or search.get("space", Config.of(run_cfg).space) != "darts":
        return []
    top = search.get("top") or []
    if not top or "genome" not in top[0]:
        return []
    genome = [int(g) for g in top[0]["genome"]]
    normal, reduce = genome[:NUM_EDGES], genome[NUM_EDGES:]
    if any(g >= SEP3 for g in normal):
        return []
    which = "either cell" if not any(g >= SEP3 for g in reduce) else "its normal cell"
    return [f"the picked genotype has no weighted op in {which} (only none, pooling and "
            f"skip_connect), the pick of an undertrained supernet"]


def chance_note(run_path, run_cfg: Dict[str, Any], info: Dict[str, Any]) -> List[str]:
    """A supernet whose accuracy on its random labels never left chance (100/K %, within three
    binomial standard errors or half a point) while its ranking was not found stable. A supernet
    stopped because its ranking is stable (stability.csv), or trained by a measured fast recipe,
    is not flagged: those rank well before they fit their labels (nasbench-macro-fast never
    leaves chance, by its small learning rate)."""
    run_path = Path(run_path)
    if Config.of(run_cfg).labels.kind != "random":
        return []
    k, n = info.get("num_classes"), info.get("num_images")
    metrics = run_path / "metrics.csv"
    if not k or not metrics.exists():
        return []
    try:
        _, rows = read_epoch_log(metrics, Config.of(run_cfg).train.epochs)
    except RlnasError as err:  # said, not skipped silently: the fit is unknown
        return [f"the supernet's fit to its labels is unknown ({err})"]
    accs = [float(r["train_acc"]) for r in rows if r.get("train_acc")]
    if not accs or _stable(run_path) or measured_recipe(run_cfg) is not None:
        return []
    chance = 100.0 / k
    se = binomial_se(chance, int(n or 1))
    if max(accs) > chance + max(3 * se, 0.5):
        return []
    return [f"the supernet never left chance on its random labels (train accuracy at most "
            f"{max(accs):.2f} % in {len(accs)} epoch(s), chance {chance:.2f} %)"]


def _stable(run_path: Path) -> bool:
    path = run_path / "stability.csv"
    if not path.exists():
        return False
    try:
        with open(path) as f:
            rows = list(csv.DictReader(f))
        return bool(rows) and rows[-1].get("stop") == "1"
    except (OSError, ValueError):
        return False


def _latest_search(run) -> Optional[Dict[str, Any]]:
    """The run's result.json (its latest search), or None."""
    path = Path(run.path) / "result.json"
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, ValueError):
        return None


def weak_notes(run, search: Optional[Dict[str, Any]] = None,
               evaluation: Optional[Dict[str, Any]] = None) -> List[str]:
    """Every sign of a weak answer that the run's own numbers show (``run`` an ``engine.Run``):
    the scorer that picked the answer below the params baseline (``evaluation``), a DARTS pick
    with no weighted op (``search``, default the run's result.json), a supernet at chance on its
    random labels, and the measured limit of the space's best recipe
    (``config.FastRecipe.limit``)."""
    notes: List[str] = []
    search = _latest_search(run) if search is None else search
    if evaluation:
        notes += weak_tau_notes(evaluation, only=[answer_scorer(run.config, search)])
    notes += weighted_op_note(run.config, search or {})
    notes += chance_note(run.path, run.config, run.info)
    recipe = fast_recipe(Config.of(run.config).space)
    if recipe is not None and recipe.limit:
        notes.append(recipe.limit)
    return notes


def weak_line(run, search: Optional[Dict[str, Any]] = None,
              evaluation: Optional[Dict[str, Any]] = None) -> Optional[str]:
    """One line, ``weak answer: <why>; to improve: <what to change>``, or None where the run's
    numbers show no weakness (:func:`weak_notes`)."""
    search = _latest_search(run) if search is None else search
    notes = weak_notes(run, search, evaluation)
    if not notes:
        return None
    advice = _advice(run.config, answer_scorer(run.config, search), evaluation)
    return f"weak answer: {'; '.join(notes)}. To improve: {advice}."


def skipped_evaluation_note(run_dir, cfg: Dict[str, Any]) -> str:
    """What `rlnas run` without a benchmark table left out, and how to get it: NB201 takes the
    table on the same command (``nasbench201=``, config key ``evaluate.nasbench201``); every
    space can be evaluated afterwards with ``rlnas evaluate RUN --benchmark FILE``."""
    scorers = f"{search_scorer(cfg)},params"
    skipped = ("evaluation skipped: no benchmark table given, so the ranking was not compared "
               "with true accuracies (no Kendall tau against the params baseline, no "
               "evaluation.md, no plots)")
    if Config.of(cfg).space == "nb201":
        return (f"{skipped}. To get it: add nasbench201=PATH/TO/NAS-Bench-201.csv (config key "
                f"evaluate.nasbench201) to this command, or run `rlnas evaluate {run_dir} "
                f"--nasbench201 PATH --scorers {scorers}`.")
    return (f"{skipped}. To get it: `rlnas evaluate {run_dir} --benchmark FILE --scorers "
            f"{scorers}` (a NAS-Bench-Macro JSON, a DARTS-214 CSV, or a CSV arch,<accuracy "
            f"columns> in the space's notation).")
