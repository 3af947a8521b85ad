"""Rank correlation of scores with a ground-truth table: Kendall tau, Spearman rho, the top
pick's accuracy and precision@k per accuracy column (:func:`correlation_report`).

Scores are "higher is better" (an RLNAS angle, a proxy, a parameter count...). NaN scores are
dropped before anything is computed. The table is an :class:`rlnas.tables.NB201Table` or any
:class:`rlnas.tables.BenchmarkTable`.
"""

from __future__ import annotations

import warnings
from typing import Iterable, Sequence

import numpy as np
from scipy import stats

from .errors import RlnasError
from .files import finite_or_none
from .tables import ACCURACY_COLUMNS, NB201Table


def binomial_se(accuracy_pct: float, n: int) -> float:
    """The binomial standard error, in percentage points, of an accuracy of ``accuracy_pct`` %
    measured on ``n`` images: 100 sqrt(p (1 - p) / n), the test set's sampling noise alone."""
    p = min(max(float(accuracy_pct) / 100.0, 0.0), 1.0)
    return 100.0 * float(np.sqrt(p * (1.0 - p) / max(int(n), 1)))


def _check_topk(topk) -> list:
    if isinstance(topk, (int, np.integer)):
        topk = (topk,)
    out = []
    for k in topk:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise RlnasError(f"topk values must be positive integers, got {k!r}")
        if int(k) not in out:
            out.append(int(k))
    return sorted(out)


def correlation_report(
    arch_strs: Sequence[str],
    scores: Iterable[float],
    table: NB201Table,
    columns: Sequence[str] | None = None,
    topk: Sequence[int] = (10, 50, 100),
) -> dict:
    """Rank-correlate ``scores`` (higher = better) with the table's accuracies.

    Returns a JSON-serialisable dict::

        {"table": str, "n_given": int, "n_dropped_nan": int, "n": int, "topk": [k...],
         "columns": {col: {"semantics", "n", "kendall_tau", "spearman_rho",
                           "top1_arch", "top1_accuracy", "best_in_top{k}", "precision_at_{k}",
                           "oracle_arch", "oracle_accuracy"}}}

    ``kendall_tau`` is tau-b; correlations that are undefined (constant scores or
    accuracies) are ``None``. ``best_in_top{k}`` / ``precision_at_{k}`` appear only for
    k <= n. Score ties rank by given order; accuracy ties rank by table order.
    """
    arch_strs, scores_arr = _check_scores(arch_strs, scores)
    rows_all = table.rows(arch_strs)  # every arch must be in the table

    # a BenchmarkTable (rlnas.tables) names its own accuracy columns
    semantics = getattr(table, "semantics", ACCURACY_COLUMNS)
    columns = _check_columns(columns, table, semantics)
    ks = _check_topk(topk)

    keep = ~np.isnan(scores_arr)
    n_dropped = int((~keep).sum())
    kept_pos = np.flatnonzero(keep)
    s = scores_arr[kept_pos]
    rows = rows_all[kept_pos]
    kept_archs = [arch_strs[i] for i in kept_pos]
    n = len(s)
    if n < 2:
        raise RlnasError(
            f"need at least 2 archs with a non-NaN score, got {n} ({n_dropped} NaN dropped)"
        )

    # Order by score, descending; ties keep the given order (stable sort on -score).
    by_score = np.argsort(-s, kind="stable")
    report: dict = {
        "table": str(table.path),
        "n_given": len(arch_strs),
        "n_dropped_nan": n_dropped,
        "n": n,
        "topk": [k for k in ks if k <= n],
        "columns": {},
    }
    for col in columns:
        report["columns"][col] = _column_entry(semantics[col], s, table.columns[col][rows], rows,
                                               by_score, kept_archs, ks)
    return report


def _check_scores(arch_strs, scores) -> tuple:
    """(arch strings, scores as a float vector) of as many archs as scores, at least one."""
    if isinstance(arch_strs, str):
        raise RlnasError("expected a list of arch strings, got a single string")
    arch_strs = list(arch_strs)
    try:
        scores_arr = np.asarray(list(scores), dtype=np.float64)
    except (TypeError, ValueError):
        raise RlnasError("scores must be numbers") from None
    if scores_arr.ndim != 1:
        raise RlnasError(f"scores must be a flat list, got shape {scores_arr.shape}")
    if len(arch_strs) != len(scores_arr):
        raise RlnasError(f"got {len(arch_strs)} archs but {len(scores_arr)} scores")
    if not arch_strs:
        raise RlnasError("no archs to evaluate")
    return arch_strs, scores_arr


def _check_columns(columns, table, semantics) -> list:
    """The accuracy columns to report (default: all of the table's), each known and in it."""
    if columns is None:
        return list(table.accuracy_columns)
    if isinstance(columns, str):
        columns = [columns]
    columns = list(columns)
    for c in columns:
        if c not in semantics:
            raise RlnasError(
                f"unknown accuracy column {c!r}; known: {', '.join(semantics)}"
            )
        if c not in table.columns:
            raise RlnasError(f"accuracy column {c!r} is not in table {table.path}")
    if not columns:
        raise RlnasError("no accuracy columns requested")
    return columns


def _column_entry(semantics: str, s: np.ndarray, acc: np.ndarray, rows: np.ndarray,
                  by_score: np.ndarray, kept_archs: list, ks: list) -> dict:
    """One accuracy column's line of the report (``acc``: the column at the scored archs)."""
    n = len(s)
    # Order by accuracy, descending; ties by table row, then given position.
    by_acc = np.lexsort((np.arange(n), rows, -acc))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: reported as None below
        tau = stats.kendalltau(s, acc).statistic  # tau-b
        rho = stats.spearmanr(s, acc).statistic
    top1 = int(by_score[0])
    oracle = int(by_acc[0])
    entry: dict = {
        "semantics": semantics,
        "n": n,
        "kendall_tau": finite_or_none(tau),
        "spearman_rho": finite_or_none(rho),
        "top1_arch": kept_archs[top1],
        "top1_accuracy": float(acc[top1]),
    }
    for k in ks:
        if k > n:
            continue
        top_s = by_score[:k]
        top_a = by_acc[:k]
        entry[f"best_in_top{k}"] = float(acc[top_s].max())
        entry[f"precision_at_{k}"] = float(len(set(top_s.tolist()) & set(top_a.tolist())) / k)
    entry["oracle_arch"] = kept_archs[oracle]
    entry["oracle_accuracy"] = float(acc[oracle])
    return entry
