"""What a scorer adds beyond model size: size-controlled correlations and budgeted picks.

On NAS-Bench-201 the parameter count alone ranks the 15,625 cells with Kendall tau ~0.578
against CIFAR-10 test accuracy, above the RLNAS angle's published 0.508. A plain correlation
therefore cannot tell a scorer that knows something about architectures from one that mostly
counts parameters. This module gives two views that hold model size fixed:

* **Size-controlled correlations** (:func:`size_controlled_report`):

  - :func:`within_group_tau`: Kendall tau-b inside groups of cells with the *same* size (NB201
    has 28 distinct parameter counts), averaged with group-size weights. A scorer that is a
    function of size is constant inside every group: its within-group tau is 0 by construction.
  - :func:`partial_rank_correlation`: partial Spearman correlation given one or more control
    variables (rank everything, regress the score ranks and the accuracy ranks on the control
    ranks, correlate the residuals).
  - :func:`partial_kendall`: Kendall's partial tau given one control variable.

* **Constrained search benchmark** (:func:`constrained_benchmark`): for a ladder of cost budgets
  (:func:`budget_ladder`), the accuracy of the arch each scorer picks among the archs under the
  budget, against two baselines: ``largest`` (the biggest arch that fits) and ``oracle`` (the
  best accuracy that fits). On a fully scored space this is exhaustive search under a
  ``Constraint(max_...)`` (see :func:`rlnas.searchers.exhaustive_search`), done for all
  budgets at once, except that NB201's disconnected cells are never picked.

Scores are "higher is better". NaN scores are dropped (correlations) or never picked
(benchmark). Accuracy and cost values must be finite. Every bad input raises
:class:`~rlnas.errors.RlnasError` with a one-line message. Results are JSON-serialisable
(plain floats and ints, ``None`` where a value is undefined).
"""

from __future__ import annotations

import functools
import math
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy import stats

from rlnas.errors import RlnasError
from rlnas.files import atomic_write, finite_or_none

__all__ = [
    "within_group_tau",
    "partial_rank_correlation",
    "partial_kendall",
    "size_controlled_report",
    "format_size_report",
    "rank_alike",
    "budget_ladder",
    "constrained_benchmark",
    "format_constrained",
    "plot_constrained",
    "constrained_figure",
]

#: Baseline names in :func:`constrained_benchmark` results; no scorer may use them.
BASELINES = ("largest", "oracle")

# A residual whose norm is below this fraction of the centred ranks' norm counts as zero:
# the variable is (up to rounding) a linear function of the control ranks.
_RESIDUAL_RTOL = 1e-9
# |tau| above 1 - this counts as a perfect association.
_TAU_ATOL = 1e-12

_BY_CONSTRUCTION = "0 by construction"


# --------------------------------------------------------------------------------------
# Input checking
# --------------------------------------------------------------------------------------


def _vector(x, name: str, finite: bool = False) -> np.ndarray:
    """``x`` as a 1-D float64 array; RlnasError when it is not numbers, not flat, or (with
    ``finite``) has a NaN/inf."""
    if isinstance(x, (str, bytes)):
        raise RlnasError(f"{name} must be a list of numbers, got a string")
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise RlnasError(f"{name} must be numbers") from None
    if arr.ndim != 1:
        raise RlnasError(f"{name} must be a flat list of numbers, got shape {arr.shape}")
    if finite and arr.size and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise RlnasError(f"{name} has {bad} non-finite value(s) (NaN or inf)")
    return arr


def _same_length(n: int, **arrays) -> None:
    for name, arr in arrays.items():
        if len(arr) != n:
            raise RlnasError(f"length mismatch: {name} has {len(arr)} values, expected {n}")


def _quiet_kendall(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall tau-b, NaN when undefined (constant input), without warnings."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.kendalltau(x, y).statistic)


def _quiet_spearman(x: np.ndarray, y: np.ndarray) -> float:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(x, y).statistic)


def _check_min_size(min_size) -> int:
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 2:
        raise RlnasError(f"min_size must be an integer >= 2, got {min_size!r}")
    return int(min_size)


def _group_value(v) -> Any:
    """A JSON-friendly rendering of a group key."""
    if isinstance(v, (np.integer, int)) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v)
    return str(v)


# --------------------------------------------------------------------------------------
# Within-group Kendall tau
# --------------------------------------------------------------------------------------


def _group_keys(groups, n: int, accuracy: np.ndarray) -> np.ndarray:
    """``groups`` as a flat array of ``n`` numbers or strings (objects as their text), no NaN."""
    if isinstance(groups, (str, bytes)):
        raise RlnasError("groups must be a list of group keys, got a string")
    g = np.asarray(groups)
    if g.ndim != 1:
        raise RlnasError(f"groups must be a flat list, got shape {g.shape}")
    _same_length(n, accuracy=accuracy, groups=g)
    if g.dtype.kind == "f" and np.isnan(g).any():
        raise RlnasError(f"groups has {int(np.isnan(g).sum())} NaN value(s)")
    if g.dtype.kind == "O":
        try:
            g = g.astype(str)
        except (TypeError, ValueError):
            raise RlnasError("groups must be numbers or strings") from None
    return g


def within_group_tau(scores, accuracy, groups, min_size: int = 10) -> dict:
    """Kendall tau-b of ``scores`` vs ``accuracy`` inside each group of equal ``groups`` value.

    Archs with a NaN score are dropped first. Groups with fewer than ``min_size`` remaining
    members are skipped (``n_groups_small``), and so are groups whose tau is undefined, e.g.
    constant scores (``n_groups_undefined``). ``groups`` values are compared exactly: round
    float keys first (e.g. ``np.round(params_m, 6)``).

    Returns a JSON-serialisable dict::

        {"tau": size-weighted mean tau over the groups used (None when no group is usable),
         "n_groups": groups used, "n_cells": cells in them,
         "n_groups_total", "n_groups_small", "n_cells_small",
         "n_groups_undefined", "n_cells_undefined", "n_groups_constant_score",
         "score_constant_within_groups": True when the score is constant inside every group
             (a function of the group: its within-group tau is 0 by construction),
         "n", "n_dropped_nan", "min_size",
         "groups": [{"value", "size", "tau"}] for every group of size >= min_size}
    """
    min_size = _check_min_size(min_size)
    s = _vector(scores, "scores")
    a = _vector(accuracy, "accuracy", finite=True)
    g = _group_keys(groups, len(s), a)

    keep = ~np.isnan(s)
    n_dropped = int((~keep).sum())
    s, a, g = s[keep], a[keep], g[keep]
    n = len(s)

    out: dict = {
        "tau": None, "n_groups": 0, "n_cells": 0,
        "n_groups_total": 0, "n_groups_small": 0, "n_cells_small": 0,
        "n_groups_undefined": 0, "n_cells_undefined": 0, "n_groups_constant_score": 0,
        "score_constant_within_groups": False,
        "n": n, "n_dropped_nan": n_dropped, "min_size": min_size, "groups": [],
    }
    if n == 0:
        return out

    keys, inv, counts = np.unique(g, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    order = np.argsort(inv, kind="stable")          # members of each group, in given order
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    s_sorted = s[order]
    g_min = np.minimum.reduceat(s_sorted, starts)
    g_max = np.maximum.reduceat(s_sorted, starts)
    constant = g_min == g_max
    out["n_groups_total"] = int(len(keys))
    out["score_constant_within_groups"] = bool(constant.all())

    weighted, used, cells = 0.0, 0, 0
    for gi in range(len(keys)):
        size = int(counts[gi])
        if size < min_size:
            out["n_groups_small"] += 1
            out["n_cells_small"] += size
            continue
        idx = order[starts[gi]:starts[gi] + size]
        tau = _quiet_kendall(s[idx], a[idx])
        out["groups"].append({"value": _group_value(keys[gi]), "size": size,
                              "tau": finite_or_none(tau)})
        if not math.isfinite(tau):
            out["n_groups_undefined"] += 1
            out["n_cells_undefined"] += size
            if constant[gi]:
                out["n_groups_constant_score"] += 1
            continue
        weighted += size * tau
        used += 1
        cells += size
    out["n_groups"] = used
    out["n_cells"] = cells
    out["tau"] = float(weighted / cells) if cells else None
    return out


# --------------------------------------------------------------------------------------
# Partial correlations
# --------------------------------------------------------------------------------------


def _controls_matrix(controls, n: int) -> np.ndarray:
    """Controls as an (n, k) float64 matrix: one 1-D array, a list of 1-D arrays, or (n, k)."""
    if isinstance(controls, (str, bytes)):
        raise RlnasError("controls must be numbers, got a string")
    if isinstance(controls, (list, tuple)) and controls and all(
        np.ndim(c) == 1 for c in controls
    ):
        cols = [_vector(c, f"control {i}", finite=True) for i, c in enumerate(controls)]
        for i, c in enumerate(cols):
            if len(c) != n:
                raise RlnasError(f"length mismatch: control {i} has {len(c)} values, expected {n}")
        return np.column_stack(cols)
    try:
        z = np.asarray(controls, dtype=np.float64)
    except (TypeError, ValueError):
        raise RlnasError("controls must be numbers") from None
    if z.ndim == 1:
        z = z[:, None]
    if z.ndim != 2 or z.shape[1] == 0:
        raise RlnasError(f"controls must be one array, a list of arrays or an (n, k) matrix, "
                         f"got shape {z.shape}")
    if z.shape[0] != n:
        raise RlnasError(f"length mismatch: controls have {z.shape[0]} rows, expected {n}")
    if not np.isfinite(z).all():
        raise RlnasError(f"controls have {int((~np.isfinite(z)).sum())} non-finite value(s)")
    return z


def _prepare_pair(scores, accuracy):
    s = _vector(scores, "scores")
    a = _vector(accuracy, "accuracy", finite=True)
    _same_length(len(s), accuracy=a)
    return s, a


def _rank_residual(v: np.ndarray, design: np.ndarray):
    """Residual of ``v`` regressed on ``design`` (least squares) and whether it vanishes."""
    coef, *_ = np.linalg.lstsq(design, v, rcond=None)
    r = v - design @ coef
    scale = float(np.linalg.norm(v - v.mean()))
    return r, float(np.linalg.norm(r)) <= _RESIDUAL_RTOL * max(scale, 1.0)


def _partial_rank(s: np.ndarray, a: np.ndarray, z: np.ndarray):
    """(value, why-undefined) on already-cleaned inputs; why is None, 'score' or 'accuracy'."""
    n, k = z.shape
    if n < k + 3:
        raise RlnasError(f"partial correlation with {k} control(s) needs at least {k + 3} "
                         f"archs with a score, got {n}")
    rx = stats.rankdata(s)
    ry = stats.rankdata(a)
    rz = np.column_stack([stats.rankdata(z[:, j]) for j in range(k)])
    design = np.column_stack([np.ones(n), rz])
    res_x, zero_x = _rank_residual(rx, design)
    res_y, zero_y = _rank_residual(ry, design)
    if zero_x:
        return math.nan, "score"
    if zero_y:
        return math.nan, "accuracy"
    r = float(res_x @ res_y / (np.linalg.norm(res_x) * np.linalg.norm(res_y)))
    return max(-1.0, min(1.0, r)), None


def partial_rank_correlation(scores, accuracy, controls) -> float:
    """Partial Spearman correlation of ``scores`` and ``accuracy`` given ``controls``.

    All variables are rank-transformed (``scipy.stats.rankdata``, average ranks for ties);
    the score ranks and the accuracy ranks are regressed (least squares, with intercept) on
    the control ranks, and the residuals are correlated (Pearson). ``controls`` is one array,
    a list of arrays, or an (n, k) matrix. Archs with a NaN score are dropped first.

    Returns NaN when undefined: when the score ranks (or the accuracy ranks) are a linear
    function of the control ranks, e.g. a score that is a monotone function of the only
    control; its residual is zero and carries nothing beyond the controls.
    """
    s, a = _prepare_pair(scores, accuracy)
    z = _controls_matrix(controls, len(s))
    keep = ~np.isnan(s)
    return _partial_rank(s[keep], a[keep], z[keep])[0]


def _partial_tau_from(t_xy: float, t_xz: float, t_yz: float) -> float:
    if not all(math.isfinite(t) for t in (t_xy, t_xz, t_yz)):
        return math.nan
    if abs(t_xz) >= 1 - _TAU_ATOL or abs(t_yz) >= 1 - _TAU_ATOL:
        return math.nan
    v = (t_xy - t_xz * t_yz) / math.sqrt((1 - t_xz ** 2) * (1 - t_yz ** 2))
    return max(-1.0, min(1.0, v))


def partial_kendall(scores, accuracy, control) -> float:
    """Kendall's partial tau of ``scores`` and ``accuracy`` given ONE ``control`` variable.

    ``(t_xy - t_xz t_yz) / sqrt((1 - t_xz^2)(1 - t_yz^2))`` with tau-b for each pair. Archs
    with a NaN score are dropped first. NaN when undefined: a pairwise tau is undefined
    (constant input) or the control is perfectly concordant with the score or the accuracy
    (|tau| = 1).
    """
    s, a = _prepare_pair(scores, accuracy)
    z = _vector(control, "control", finite=True)
    _same_length(len(s), control=z)
    keep = ~np.isnan(s)
    s, a, z = s[keep], a[keep], z[keep]
    if len(s) < 3:
        raise RlnasError(f"partial Kendall tau needs at least 3 archs with a score, got {len(s)}")
    return _partial_tau_from(_quiet_kendall(s, a), _quiet_kendall(s, z), _quiet_kendall(a, z))


# --------------------------------------------------------------------------------------
# Size-controlled report
# --------------------------------------------------------------------------------------


def size_controlled_report(
    scores_by_name: Mapping[str, Any],
    accuracy,
    params,
    flops=None,
    *,
    min_size: int = 10,
    decimals: int = 6,
    accuracy_name: str = "accuracy",
    params_groups=None,
    flops_groups=None,
) -> dict:
    """Overall and size-controlled rank correlations of each scorer with ``accuracy``.

    ``params_groups`` / ``flops_groups``: the groups of the within-size tau in place of the
    equal rounded sizes (e.g. size bins, ``rlnas.tables.size_groups``, where sizes rarely repeat).

    ``params`` / ``flops`` are the cost of each arch (any unit; the groups of equal size are
    formed from the values rounded to ``decimals`` decimals). ``flops`` may be None: the
    flops columns are then None. To see the size baselines themselves, put them into
    ``scores_by_name`` (e.g. ``{"angle": a, "params": params, "flops": flops}``).

    Per scorer (NaN scores dropped; ``n``, ``n_dropped_nan``)::

        kendall_tau, spearman_rho            overall (tau-b)
        within_params_tau, within_params_groups, within_params_cells
        within_flops_tau, within_flops_groups, within_flops_cells
        partial_spearman_params, partial_spearman_flops, partial_spearman_both
        partial_kendall_params
        notes: [str]

    "0 by construction": a scorer that is constant inside every size group (a function of
    size, e.g. the params baseline) has no within-group tau; it is reported as 0.0 with a
    note. Likewise a scorer whose ranks are a linear function of the control ranks (e.g. a
    monotone function of params) gets partial correlations of 0.0 with a note. Any other
    undefined value is None.
    """
    if not isinstance(scores_by_name, Mapping) or not scores_by_name:
        raise RlnasError("scores_by_name must be a non-empty dict of name -> scores")
    min_size = _check_min_size(min_size)
    if isinstance(decimals, bool) or not isinstance(decimals, (int, np.integer)):
        raise RlnasError(f"decimals must be an integer, got {decimals!r}")
    acc = _vector(accuracy, accuracy_name, finite=True)
    n_all = len(acc)
    p = _vector(params, "params", finite=True)
    _same_length(n_all, params=p)
    f = None
    if flops is not None:
        f = _vector(flops, "flops", finite=True)
        _same_length(n_all, flops=f)
    scorers = _scorer_vectors(scores_by_name, n_all)
    if n_all < 3:
        raise RlnasError(f"need at least 3 archs, got {n_all}")

    p_groups = np.round(p, int(decimals)) if params_groups is None else \
        _vector(params_groups, "params groups")
    f_groups = (np.round(f, int(decimals)) if flops_groups is None else
                _vector(flops_groups, "flops groups")) if f is not None else None
    _same_length(n_all, **{"params groups": p_groups})
    controls: Dict[str, Any] = {
        cname: None if cvals is None else _control_summary(cvals, cgroups, acc, min_size)
        for cname, cvals, cgroups in (("params", p, p_groups), ("flops", f, f_groups))}

    report: dict = {
        "n": n_all,
        "accuracy": accuracy_name,
        "min_group_size": min_size,
        "decimals": int(decimals),
        "controls": controls,
        "scorers": {},
    }
    for name, s in scorers.items():
        report["scorers"][name] = _scorer_entry(name, s, acc, p, f, p_groups, f_groups, min_size)
    return report


def _scorer_vectors(scores_by_name: Mapping, n_all: int,
                    reserved: Sequence[str] = ()) -> Dict[str, np.ndarray]:
    """Each scorer's scores as a float vector of ``n_all``; names are non-empty strings, none of
    them ``reserved`` (the baselines' names)."""
    scorers = {}
    for name, sc in scores_by_name.items():
        if not isinstance(name, str) or not name:
            raise RlnasError(f"scorer names must be non-empty strings, got {name!r}")
        if name in reserved:
            raise RlnasError(f"scorer name {name!r} is reserved for a baseline; rename it")
        arr = _vector(sc, f"scores of {name!r}")
        _same_length(n_all, **{f"scores of {name!r}": arr})
        scorers[name] = arr
    return scorers


def _control_summary(cvals: np.ndarray, cgroups: np.ndarray, acc: np.ndarray,
                     min_size: int) -> dict:
    """A size control's groups (all, and those of ``min_size`` archs or more) and its own
    correlation with the accuracy."""
    _, counts = np.unique(cgroups, return_counts=True)
    big = counts >= min_size
    return {
        "n_groups": int(len(counts)),
        "n_groups_eligible": int(big.sum()),
        "n_cells_eligible": int(counts[big].sum()),
        "kendall_tau_with_accuracy": finite_or_none(_quiet_kendall(cvals, acc)),
        "spearman_rho_with_accuracy": finite_or_none(_quiet_spearman(cvals, acc)),
    }


def _scorer_entry(name: str, s: np.ndarray, acc: np.ndarray, p: np.ndarray,
                  f: Optional[np.ndarray], p_groups: np.ndarray, f_groups: Optional[np.ndarray],
                  min_size: int) -> dict:
    """One scorer's line of :func:`size_controlled_report` (its NaN scores dropped)."""
    keep = ~np.isnan(s)
    x, y = s[keep], acc[keep]
    zp = p[keep]
    zf = f[keep] if f is not None else None
    notes: List[str] = []
    entry: dict = {"n": int(keep.sum()), "n_dropped_nan": int((~keep).sum())}
    if entry["n"] < 3:
        raise RlnasError(f"scorer {name!r} has {entry['n']} non-NaN scores; need at least 3")
    entry["kendall_tau"] = finite_or_none(_quiet_kendall(x, y))
    entry["spearman_rho"] = finite_or_none(_quiet_spearman(x, y))
    for cname, groups in (("params", p_groups), ("flops", f_groups)):
        entry.update(_within_columns(cname, x, y, None if groups is None else groups[keep],
                                     min_size, notes))
    entry.update(_partial_columns(x, y, zp, zf, notes))
    entry["notes"] = notes
    return entry


def _within_columns(cname: str, x: np.ndarray, y: np.ndarray, groups: Optional[np.ndarray],
                    min_size: int, notes: List[str]) -> dict:
    """``within_<cname>_{tau,groups,cells}`` of one scorer (None without the control); the
    note of a tau that is 0 by construction is appended to ``notes``."""
    if groups is None:
        return {f"within_{cname}_tau": None, f"within_{cname}_groups": None,
                f"within_{cname}_cells": None}
    w = within_group_tau(x, y, groups, min_size=min_size)
    tau = w["tau"]
    if w["score_constant_within_groups"] and w["n_groups_undefined"] > 0:
        tau = 0.0
        notes.append(f"within-{cname} tau: {_BY_CONSTRUCTION} (score is constant "
                     f"inside every {cname} group)")
    return {f"within_{cname}_tau": tau, f"within_{cname}_groups": w["n_groups"],
            f"within_{cname}_cells": w["n_cells"]}


def _partial_columns(x: np.ndarray, y: np.ndarray, zp: np.ndarray, zf: Optional[np.ndarray],
                     notes: List[str]) -> dict:
    """``partial_spearman_{params,flops,both}`` and ``partial_kendall_params`` of one scorer;
    the notes of values that are 0 by construction are appended to ``notes``."""
    entry: dict = {}
    for label, what, zmat in (
        ("params", "params", zp[:, None]),
        ("flops", "flops", zf[:, None] if zf is not None else None),
        ("both", "params and flops", np.column_stack([zp, zf]) if zf is not None else None),
    ):
        key = f"partial_spearman_{label}"
        if zmat is None:
            entry[key] = None
            continue
        val, why = _partial_rank(x, y, zmat)
        if why == "score":
            entry[key] = 0.0
            notes.append(f"partial Spearman given {label}: {_BY_CONSTRUCTION} (score ranks "
                         f"are a linear function of the {what} ranks)")
        else:
            entry[key] = finite_or_none(val)

    t_xz = _quiet_kendall(x, zp)
    t_yz = _quiet_kendall(y, zp)
    pk = _partial_tau_from(_quiet_kendall(x, y), t_xz, t_yz)
    if math.isfinite(t_xz) and abs(t_xz) >= 1 - _TAU_ATOL:
        pk = 0.0
        notes.append(f"partial Kendall given params: {_BY_CONSTRUCTION} (score is "
                     f"perfectly concordant with params, |tau| = 1)")
    entry["partial_kendall_params"] = finite_or_none(pk)
    return entry


def _f(x, spec: str = ".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def rank_alike(a, b, decimals: int = 6) -> bool:
    """True when two costs order the archs identically, ties included (NB201's params and
    FLOPs): every statistic controlled for one is then the same controlled for the other, and a
    ladder of limits on one picks what the same quantiles of the other pick. Values are
    compared rounded to ``decimals`` decimals, as the size groups are."""
    x = np.round(_vector(a, "a", finite=True), int(decimals))
    y = np.round(_vector(b, "b", finite=True), int(decimals))
    _same_length(len(x), b=y)
    return bool(np.array_equal(stats.rankdata(x, method="dense"),
                               stats.rankdata(y, method="dense")))


def format_size_report(report: dict, flops: bool = True) -> str:
    """The report as a Markdown table (one row per scorer) with the notes below it.

    Values marked ``*`` are 0 by construction (see the notes). ``flops=False`` leaves out the
    columns controlled for FLOPs (and their notes): where FLOPs order the archs as params do
    (:func:`rank_alike`) they repeat the params ones."""
    head = ["scorer", "n", "tau", "rho", "tau in params groups (groups/cells)",
            "tau in flops groups (groups/cells)", "pSpearman: params", "pSpearman: flops",
            "pSpearman: params+flops", "pKendall: params"]
    keep = [i for i, h in enumerate(head) if flops or "flops" not in h]
    lines = [
        f"Rank correlation with {report.get('accuracy', 'accuracy')} "
        f"({report.get('n', '?')} archs); "
        f"within-group tau over size groups of >= {report.get('min_group_size', '?')} archs, "
        f"size-weighted; pSpearman/pKendall = partial correlation given the control(s).",
        "",
        "| " + " | ".join(head[i] for i in keep) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(keep) - 1)) + "|",
    ]
    footnotes = []
    for name, e in report.get("scorers", {}).items():
        notes = e.get("notes") or []

        def mark(key: str, phrase: str) -> str:
            val = _f(e.get(key))
            if e.get(key) == 0.0 and any(phrase in nt and _BY_CONSTRUCTION in nt for nt in notes):
                val += "*"
            return val

        def within(cname: str) -> str:
            tau = mark(f"within_{cname}_tau", f"within-{cname}")
            g, c = e.get(f"within_{cname}_groups"), e.get(f"within_{cname}_cells")
            return tau if g is None else f"{tau} ({g}/{c})"

        n_txt = str(e.get("n", ""))
        if e.get("n_dropped_nan"):
            n_txt += f" (-{e['n_dropped_nan']} NaN)"
        cells = [
            name.replace("|", "\\|"), n_txt, _f(e.get("kendall_tau")), _f(e.get("spearman_rho")),
            within("params"), within("flops"),
            mark("partial_spearman_params", "given params:"),
            mark("partial_spearman_flops", "given flops:"),
            mark("partial_spearman_both", "given both:"),
            mark("partial_kendall_params", "partial Kendall given params"),
        ]
        lines.append("| " + " | ".join(cells[i] for i in keep) + " |")
        footnotes.extend(f"{name}: {nt}" for nt in notes
                         if flops or not ("flops" in nt or "given both" in nt))
    if footnotes:
        lines.append("")
        lines.extend(f"\\* {fn}" for fn in footnotes)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Constrained search benchmark
# --------------------------------------------------------------------------------------


def budget_ladder(values, n: int = 10, lo: float = 0.1) -> np.ndarray:
    """Up to ``n`` cost limits spanning ``values``: the ``lo`` .. 100% quantiles, evenly spaced.

    Each limit is an actual value of ``values`` (``inverted_cdf`` quantile: the smallest value
    with at least that fraction of ``values`` at or below it), so the smallest limit admits at
    least a fraction ``lo`` of the archs and the largest admits all of them. Returned sorted and
    unique: with many tied costs (NB201 has 28 distinct parameter counts) there may be fewer
    than ``n`` limits.
    """
    v = _vector(values, "values", finite=True)
    if v.size == 0:
        raise RlnasError("budget_ladder: no values")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise RlnasError(f"budget_ladder: n must be a positive integer, got {n!r}")
    try:
        lo = float(lo)
    except (TypeError, ValueError):
        raise RlnasError(f"budget_ladder: lo must be a number, got {lo!r}") from None
    if not (0.0 < lo <= 1.0):
        raise RlnasError(f"budget_ladder: lo must be in (0, 1], got {lo!r}")
    qs = np.linspace(lo, 1.0, int(n)) if n > 1 else np.array([1.0])
    return np.unique(np.quantile(v, qs, method="inverted_cdf")).astype(np.float64)


def _priority(primary_desc: np.ndarray, n: int, invalid: Optional[np.ndarray] = None):
    """Rank of each arch (0 = best): higher ``primary_desc`` first, ties by position;
    ``invalid`` archs (e.g. NaN score) after all valid ones."""
    idx = np.arange(n)
    key = np.where(np.isnan(primary_desc), np.inf, -primary_desc)
    cols = (idx, key) if invalid is None else (idx, key, invalid)
    best_first = np.lexsort(cols)
    rank = np.empty(n, dtype=np.int64)
    rank[best_first] = idx
    return rank, best_first


def constrained_benchmark(
    arch_strs: Sequence[str],
    scores_by_name: Mapping[str, Any],
    accuracy,
    cost,
    budgets,
) -> dict:
    """For each budget B and scorer: the accuracy of the scorer's pick among archs with cost <= B.

    * NB201 cells with no input->output path (:func:`rlnas.spaces.nb201.nb201_disconnected`:
      ~10 % accuracy, yet they count the parameters of their dead convolutions) are never
      picked, by a scorer or by ``largest``: no one would pick one, and a scorer that counts
      size (``params``) would otherwise fall to 10 % wherever one came first among the tied
      largest cells. ``skipped_disconnected`` (in ``largest``) says how many there were;
    * scorer pick: highest score among the eligible connected archs; ties -> the first in the
      given order; NaN scores are never picked (no scored eligible arch -> arch/accuracy None);
    * ``largest``: the eligible connected arch with the largest cost; ties -> the first in the
      given order (the "just take the biggest network that fits" baseline). Because the
      tie-break is arbitrary where many archs share a cost, ``largest`` also carries ``n_tied`` and
      ``tied_mean_accuracy``: the number and mean accuracy of all (connected) archs at that
      largest cost (the expected accuracy of the baseline with ties broken at random);
    * ``oracle``: the eligible arch with the best accuracy; ties -> the first in the given
      order. Oracle accuracy >= every other pick's.

    This is exhaustive search under ``cost <= B`` (over the connected cells) for every budget
    at once (vectorised: one sort by cost and a running minimum of each method's preference
    rank).

    Returns a JSON-serialisable dict::

        {"n": archs, "budgets": [B...], "n_eligible": [int...],
         "methods": {name: {"index", "arch", "accuracy", "cost", "score": [per budget],
                            "mean_accuracy", "mean_gap_to_oracle", "wins_vs_largest",
                            "losses_vs_largest"}},
         "largest": {"index", "arch", "accuracy", "cost", "mean_accuracy", "mean_gap_to_oracle",
                     "n_tied", "tied_mean_accuracy", "mean_tied_mean_accuracy",
                     "skipped_disconnected"},
         "oracle": {"index", "arch", "accuracy", "cost", "mean_accuracy", "mean_gap_to_oracle"},
         "tie_break": str}

    RlnasError on length mismatches, non-finite accuracy / cost / budgets, a scorer named
    like a baseline, or a budget that admits no arch.
    """
    archs, acc, c, scorers, b = _constrained_inputs(arch_strs, scores_by_name, accuracy, cost,
                                                    budgets)
    n = len(archs)
    by_cost, n_eligible = _eligible_counts(c, b)
    last = n_eligible - 1                       # last eligible position in cost order

    def picks(rank: np.ndarray, best_first: np.ndarray) -> np.ndarray:
        running = np.minimum.accumulate(rank[by_cost])
        return best_first[running[last]]

    from rlnas.spaces.nb201 import nb201_disconnected

    dead = nb201_disconnected(archs)
    oracle_idx = picks(*_priority(acc, n))
    largest_idx = picks(*_priority(c, n, invalid=dead if dead.any() else None))
    largest_ok = ~dead[largest_idx]  # False only where every eligible cell is disconnected
    summary = functools.partial(_pick_summary, archs=archs, acc=acc, c=c,
                                oracle_acc=acc[oracle_idx])
    largest = summary(largest_idx, largest_ok)
    largest.update(_tie_columns(largest_idx, largest_ok, acc, c, dead))
    methods: Dict[str, dict] = {}
    for name, s in scorers.items():
        nan = np.isnan(s)
        idx = picks(*_priority(s, n, invalid=nan | dead))  # NaN or disconnected: never picked
        methods[name] = _method_entry(s, idx, ~(nan | dead)[idx], summary, acc, largest_idx,
                                      largest_ok)
    return {
        "n": n,
        "budgets": [float(x) for x in b],
        "n_eligible": [int(k) for k in n_eligible],
        "methods": methods,
        "largest": largest,
        "oracle": summary(oracle_idx),
        "tie_break": _TIE_BREAK,
    }


_TIE_BREAK = ("scorer: highest score, ties -> first in the given order, NaN scores never "
              "picked; largest: largest cost, ties -> first in the given order; both "
              "among the connected cells (NB201 cells with no input-output path are "
              "never picked); oracle: best accuracy, ties -> first in the given order")


def _constrained_inputs(arch_strs, scores_by_name, accuracy, cost, budgets) -> tuple:
    """(archs, accuracy, cost, scorers, budgets) of :func:`constrained_benchmark`, checked."""
    if isinstance(arch_strs, str):
        raise RlnasError("expected a list of arch strings, got a single string")
    archs = [str(a) for a in arch_strs]
    n = len(archs)
    if n == 0:
        raise RlnasError("constrained_benchmark: no archs")
    acc = _vector(accuracy, "accuracy", finite=True)
    c = _vector(cost, "cost", finite=True)
    _same_length(n, accuracy=acc, cost=c)
    if not isinstance(scores_by_name, Mapping):
        raise RlnasError("scores_by_name must be a dict of name -> scores")
    scorers = _scorer_vectors(scores_by_name, n, reserved=BASELINES)
    b = _vector(budgets, "budgets", finite=True)
    if b.size == 0:
        raise RlnasError("constrained_benchmark: no budgets")
    return archs, acc, c, scorers, b


def _eligible_counts(c: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(archs in the order of their cost, how many of them each budget admits); a budget that
    admits none is refused."""
    by_cost = np.argsort(c, kind="stable")
    n_eligible = np.searchsorted(c[by_cost], b, side="right")
    if (n_eligible == 0).any():
        bad = float(b[np.argmax(n_eligible == 0)])
        raise RlnasError(f"budget {bad:g} admits no arch: the smallest cost is {float(c.min()):g}")
    return by_cost, n_eligible


def _method_entry(s: np.ndarray, idx: np.ndarray, valid: np.ndarray, summary: Callable,
                  acc: np.ndarray, largest_idx: np.ndarray, largest_ok: np.ndarray) -> dict:
    """A scorer's picks (``summary``) with their scores, and the budgets where its pick is more
    (wins) or less (losses) accurate than the largest arch that fits, where both picked one."""
    entry = summary(idx, valid)
    entry["score"] = [float(s[i]) if ok else None for i, ok in zip(idx, valid)]
    both = valid & largest_ok
    diff = acc[idx[both]] - acc[largest_idx[both]]
    entry["wins_vs_largest"] = int((diff > 0).sum())
    entry["losses_vs_largest"] = int((diff < 0).sum())
    return entry


def _pick_summary(idx: np.ndarray, valid: Optional[np.ndarray] = None, *, archs: List[str],
                  acc: np.ndarray, c: np.ndarray, oracle_acc: np.ndarray) -> dict:
    """A method's picks (arch indices ``idx`` per budget; None where not ``valid``) with their
    arch, accuracy and cost, and their means over the budgets."""
    valid = np.ones(len(idx), dtype=bool) if valid is None else valid
    accs = [float(acc[i]) if ok else None for i, ok in zip(idx, valid)]
    got = np.array([a for a in accs if a is not None], dtype=np.float64)
    gaps = oracle_acc[valid] - acc[idx[valid]]
    return {
        "index": [int(i) if ok else None for i, ok in zip(idx, valid)],
        "arch": [archs[i] if ok else None for i, ok in zip(idx, valid)],
        "accuracy": accs,
        "cost": [float(c[i]) if ok else None for i, ok in zip(idx, valid)],
        "mean_accuracy": float(got.mean()) if got.size else None,
        "mean_gap_to_oracle": float(gaps.mean()) if gaps.size else None,
    }


def _tie_columns(largest_idx: np.ndarray, largest_ok: np.ndarray, acc: np.ndarray,
                 c: np.ndarray, dead: np.ndarray) -> dict:
    """The ``largest`` baseline's ties. The first-in-order tie-break is arbitrary where many
    archs share a cost (NB201: hundreds per parameter count): also give the mean accuracy over
    all (connected) archs tied at that cost, the expected accuracy of "the largest that fits"
    with ties broken at random."""
    _, cost_group = np.unique(c, return_inverse=True)
    cost_group = cost_group.reshape(-1)
    live = (~dead).astype(np.float64)
    cost_counts = np.bincount(cost_group, weights=live)
    with np.errstate(invalid="ignore", divide="ignore"):
        group_mean = np.bincount(cost_group, weights=acc * live) / cost_counts
    ties: dict = {}
    ties["n_tied"] = [int(cost_counts[cost_group[i]]) if ok else None
                      for i, ok in zip(largest_idx, largest_ok)]
    ties["tied_mean_accuracy"] = [float(group_mean[cost_group[i]]) if ok else None
                                  for i, ok in zip(largest_idx, largest_ok)]
    tied_ok = [v for v in ties["tied_mean_accuracy"] if v is not None]
    ties["mean_tied_mean_accuracy"] = float(np.mean(tied_ok)) if tied_ok else None
    ties["skipped_disconnected"] = int(dead.sum())
    return ties


def _check_result(result) -> None:
    if not isinstance(result, Mapping) or not all(
        k in result for k in ("budgets", "n_eligible", "methods", "largest", "oracle")
    ):
        raise RlnasError("expected the dict returned by constrained_benchmark")


def format_constrained(result: dict, spec: str = ".2f") -> str:
    """Markdown table: one row per budget (accuracy of each method's pick), a mean row last."""
    _check_result(result)
    names = list(result["methods"])
    largest = result["largest"]
    tied = largest.get("tied_mean_accuracy")
    head = (["budget", "eligible"] + [n.replace("|", "\\|") for n in names] + ["largest"]
            + (["largest (tie mean)"] if tied is not None else []) + ["oracle"])
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---:"] * len(head)) + "|"]
    cols = [result["methods"][n] for n in names] + [largest]
    for i, (bud, k) in enumerate(zip(result["budgets"], result["n_eligible"])):
        cells = [format(bud, ".6g"), str(k)] + [_f(m["accuracy"][i], spec) for m in cols]
        if tied is not None:
            cells.append(_f(None) if tied[i] is None else
                         f"{_f(tied[i], spec)} (n={largest['n_tied'][i]})")
        cells.append(_f(result["oracle"]["accuracy"][i], spec))
        lines.append("| " + " | ".join(cells) + " |")
    means = ["mean", ""] + [_f(m.get("mean_accuracy"), spec) for m in cols]
    if tied is not None:
        means.append(_f(largest.get("mean_tied_mean_accuracy"), spec))
    means.append(_f(result["oracle"].get("mean_accuracy"), spec))
    lines.append("| " + " | ".join(means) + " |")
    skipped = largest.get("skipped_disconnected")
    if skipped:
        lines += ["", f"Neither a scorer nor largest ever picks one of the {skipped} disconnected "
                  "cells (no input-output path, ~10 % accuracy, yet they count the parameters "
                  "of their dead convolutions): no one would choose one, and a size count would "
                  "pick one wherever it came first among the largest cells that fit."]
    return "\n".join(lines)


def plot_constrained(
    result: dict,
    path,
    title: str = "accuracy of the pick under a cost budget",
    xlabel: str = "budget",
    ylabel: str = "accuracy (%)",
) -> Path:
    """Accuracy of each method's pick against the budget, one line per method, ``largest``
    and ``oracle`` dashed; PNG written atomically (temp file in the same folder + os.replace).

    The title says when disconnected NB201 cells were never picked (the rule of
    :func:`constrained_benchmark`); the legend sits below the axes."""
    fig = constrained_figure(result, title, xlabel, ylabel)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), suffix=".png")


def constrained_figure(result: dict, title: str = "accuracy of the pick under a cost budget",
                       xlabel: str = "budget", ylabel: str = "accuracy (%)"):
    """The matplotlib Figure that :func:`plot_constrained` saves."""
    _check_result(result)
    x = np.asarray(result["budgets"], dtype=np.float64)
    order = np.argsort(x, kind="stable")

    def ys(values) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in values],
                        dtype=np.float64)[order]

    # The Agg canvas directly (no pyplot): no global backend switch, no figure registry.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 5.4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, entry in result["methods"].items():
        ax.plot(x[order], ys(entry["accuracy"]), marker="o", markersize=3.5, linewidth=1.4,
                label=name)
    ax.plot(x[order], ys(result["largest"]["accuracy"]), linestyle="--", color="0.45",
            marker="s", markersize=3, linewidth=1.2, label="largest that fits (baseline)")
    tied = result["largest"].get("tied_mean_accuracy")
    if tied is not None:
        ax.plot(x[order], ys(tied), linestyle=":", color="0.45", linewidth=1.2,
                label="largest, mean over its ties")
    ax.plot(x[order], ys(result["oracle"]["accuracy"]), linestyle="--", color="black",
            marker="^", markersize=3, linewidth=1.2, label="oracle (best that fits)")
    skipped = result["largest"].get("skipped_disconnected") or 0
    if skipped:
        title += (f"\nnever picked, by a scorer or largest: the {skipped} disconnected cells "
                  f"(no input-output path)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10 if not skipped else 9)
    ax.grid(True, alpha=0.3)
    # below the axes: inside, it would hide the lines that matter (they fill the whole box)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2,
              frameon=False)
    fig.tight_layout()
    return fig
