"""NAS-Bench-201 ground truth: load the table, rank-correlate scores with it, plot, write JSON.

The table is a CSV with an ``arch`` column (NB201 arch strings) and one or more of the
accuracy columns in :data:`ACCURACY_COLUMNS` (top-1 accuracy in percent, 200 epochs, mean
over seeds). ``params_m`` and ``flops_m`` are read too when present; any other column is
ignored. The shipped table is ``shared/data/nasbench201.csv`` (see its ``SOURCE.md``).

Scores given to :func:`correlation_report` are "higher is better" (an RLNAS angle, a
proxy, a parameter count...). NaN scores are dropped before anything is computed.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy import stats

from rlnas.errors import RlnasError
from rlnas.files import atomic_write, write_json_atomic

__all__ = [
    "ACCURACY_COLUMNS",
    "EXTRA_COLUMNS",
    "NB201Table",
    "load_nb201_table",
    "correlation_report",
    "scatter_plot",
    "write_json_atomic",
]

#: Known accuracy columns, in report order, with what each one measures (NB201, hp='200',
#: is_random=False: last of 200 epochs, mean over the seeds the benchmark has).
ACCURACY_COLUMNS: "OrderedDict[str, str]" = OrderedDict(
    [
        (
            "cifar10_valid",
            "NB201 'cifar10-valid' / 'x-valid': trained on the 25k train half of CIFAR-10 "
            "train, top-1 accuracy (%) on the 25k held-out valid half, 200 epochs, mean over seeds.",
        ),
        (
            "cifar10_test",
            "NB201 'cifar10' / 'ori-test': trained on all 50k CIFAR-10 train images "
            "(train+valid), top-1 accuracy (%) on the 10k CIFAR-10 test set, 200 epochs, "
            "mean over seeds (NATS-tss v1.0 release).",
        ),
        (
            "cifar100_valid",
            "NB201 'cifar100' / 'x-valid': trained on the 50k CIFAR-100 train set, top-1 "
            "accuracy (%) on the 'x-valid' half (5k) of the CIFAR-100 test set, 200 epochs, "
            "mean over seeds.",
        ),
        (
            "cifar100_test",
            "NB201 'cifar100' / 'x-test': trained on the 50k CIFAR-100 train set, top-1 "
            "accuracy (%) on the 'x-test' half (the other 5k) of the CIFAR-100 test set, "
            "200 epochs, mean over seeds.",
        ),
        (
            "imagenet16_valid",
            "NB201 'ImageNet16-120' / 'x-valid': trained on the ImageNet16-120 train set, "
            "top-1 accuracy (%) on the 'x-valid' half (3k) of its test set, 200 epochs, "
            "mean over seeds.",
        ),
        (
            "imagenet16_test",
            "NB201 'ImageNet16-120' / 'x-test': trained on the ImageNet16-120 train set, "
            "top-1 accuracy (%) on the 'x-test' half (the other 3k) of its test set, "
            "200 epochs, mean over seeds.",
        ),
    ]
)

#: Optional numeric columns read when present (CIFAR-10 network, NB201 counting).
EXTRA_COLUMNS: "OrderedDict[str, str]" = OrderedDict(
    [
        ("params_m", "parameters in millions of the CIFAR-10 network, as NB201 counts them."),
        ("flops_m", "FLOPs in millions of the CIFAR-10 network (32x32 input), as NB201 counts them."),
    ]
)


# --------------------------------------------------------------------------------------
# Table
# --------------------------------------------------------------------------------------


class NB201Table:
    """A loaded ground-truth table.

    Attributes:
        path: where it was read from.
        archs: arch strings in file order.
        index: arch string -> row number (0-based, file order).
        columns: column name -> float64 array (accuracy columns present, plus
            ``params_m`` / ``flops_m`` when present), aligned with ``archs``.
        accuracy_columns: the accuracy columns present, in :data:`ACCURACY_COLUMNS` order.
    """

    def __init__(self, path, archs: list, columns: dict):
        self.path = Path(path)
        self.archs = list(archs)
        self.index = {a: i for i, a in enumerate(self.archs)}
        self.columns = dict(columns)
        self.accuracy_columns = [c for c in ACCURACY_COLUMNS if c in self.columns]

    def __len__(self) -> int:
        return len(self.archs)

    def __contains__(self, arch) -> bool:
        return arch in self.index

    def __repr__(self) -> str:
        return f"NB201Table({str(self.path)!r}, rows={len(self.archs)}, columns={list(self.columns)})"

    def rows(self, arch_strs: Sequence[str]) -> np.ndarray:
        """Row numbers of ``arch_strs``; RlnasError naming how many are missing and the first."""
        if isinstance(arch_strs, str):
            raise RlnasError("expected a list of arch strings, got a single string")
        arch_strs = list(arch_strs)
        out = np.empty(len(arch_strs), dtype=np.int64)
        missing = 0
        first_missing = None
        for i, a in enumerate(arch_strs):
            r = self.index.get(a) if isinstance(a, str) else None
            if r is None:
                missing += 1
                if first_missing is None:
                    first_missing = a
                out[i] = -1
            else:
                out[i] = r
        if missing:
            raise RlnasError(
                f"{missing} of {len(arch_strs)} archs are not in table {self.path}; "
                f"first missing: {first_missing!r}"
            )
        return out

    def lookup(self, arch_strs: Sequence[str], column: str) -> np.ndarray:
        """Values of ``column`` for ``arch_strs`` (float64 array, same order)."""
        if column not in self.columns:
            raise RlnasError(
                f"column {column!r} is not in table {self.path}; it has: {', '.join(self.columns)}"
            )
        return self.columns[column][self.rows(arch_strs)].astype(np.float64, copy=True)


def load_nb201_table(path) -> NB201Table:
    """Read a NAS-Bench-201 ground-truth CSV (see module docstring); RlnasError on bad input."""
    path = Path(path)
    if not path.exists():
        raise RlnasError(f"NB201 table {path} does not exist")
    if not path.is_file():
        raise RlnasError(f"NB201 table {path} is not a file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or not any(h.strip() for h in header):
                raise RlnasError(f"NB201 table {path} is empty (no header line)")
            header = [h.strip() for h in header]
            seen = set()
            for h in header:
                if h in seen:
                    raise RlnasError(f"NB201 table {path}: column {h!r} appears twice in the header")
                seen.add(h)
            if "arch" not in header:
                raise RlnasError(
                    f"NB201 table {path} has no 'arch' column (header: {', '.join(header)})"
                )
            acc_cols = [c for c in ACCURACY_COLUMNS if c in header]
            if not acc_cols:
                raise RlnasError(
                    f"NB201 table {path} has none of the accuracy columns "
                    f"{', '.join(ACCURACY_COLUMNS)}"
                )
            used = acc_cols + [c for c in EXTRA_COLUMNS if c in header]
            arch_pos = header.index("arch")
            used_pos = [(c, header.index(c)) for c in used]
            n_fields = len(header)

            archs: list = []
            values = {c: [] for c in used}
            first_row_of: dict = {}
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                line = reader.line_num
                if len(row) != n_fields:
                    raise RlnasError(
                        f"NB201 table {path}, line {line}: {len(row)} fields, header has {n_fields}"
                    )
                arch = row[arch_pos].strip()
                if not arch:
                    raise RlnasError(f"NB201 table {path}, line {line}: empty 'arch' value")
                if arch in first_row_of:
                    raise RlnasError(
                        f"NB201 table {path}, line {line}: duplicate arch {arch!r} "
                        f"(first seen on line {first_row_of[arch]})"
                    )
                first_row_of[arch] = line
                archs.append(arch)
                for c, pos in used_pos:
                    text = row[pos].strip()
                    if not text:
                        raise RlnasError(f"NB201 table {path}, line {line}: missing value in column {c!r}")
                    try:
                        v = float(text)
                    except ValueError:
                        raise RlnasError(
                            f"NB201 table {path}, line {line}: non-numeric value {text!r} in column {c!r}"
                        ) from None
                    if not math.isfinite(v):
                        raise RlnasError(
                            f"NB201 table {path}, line {line}: non-finite value {text!r} in column {c!r}"
                        )
                    values[c].append(v)
    except RlnasError:
        raise
    except UnicodeDecodeError as exc:
        raise RlnasError(f"NB201 table {path} is not a readable UTF-8 CSV file ({exc.reason})") from None
    except csv.Error as exc:
        raise RlnasError(f"NB201 table {path} is not a readable CSV file ({exc})") from None
    except OSError as exc:
        raise RlnasError(f"cannot read NB201 table {path}: {exc.strerror or exc}") from None
    if not archs:
        raise RlnasError(f"NB201 table {path} has a header but no data rows")
    columns = {c: np.asarray(values[c], dtype=np.float64) for c in used}
    return NB201Table(path, archs, columns)


# --------------------------------------------------------------------------------------
# Correlation report
# --------------------------------------------------------------------------------------


def _finite_or_none(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


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
    rows_all = table.rows(arch_strs)  # every arch must be in the table

    if columns is None:
        columns = list(table.accuracy_columns)
    else:
        if isinstance(columns, str):
            columns = [columns]
        columns = list(columns)
        for c in columns:
            if c not in ACCURACY_COLUMNS:
                raise RlnasError(
                    f"unknown accuracy column {c!r}; known: {', '.join(ACCURACY_COLUMNS)}"
                )
            if c not in table.columns:
                raise RlnasError(f"accuracy column {c!r} is not in table {table.path}")
        if not columns:
            raise RlnasError("no accuracy columns requested")
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
        acc = table.columns[col][rows]
        # Order by accuracy, descending; ties by table row, then given position.
        by_acc = np.lexsort((np.arange(n), rows, -acc))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant input: reported as None below
            tau = stats.kendalltau(s, acc).statistic  # tau-b
            rho = stats.spearmanr(s, acc).statistic
        top1 = int(by_score[0])
        oracle = int(by_acc[0])
        entry: dict = {
            "semantics": ACCURACY_COLUMNS[col],
            "n": n,
            "kendall_tau": _finite_or_none(tau),
            "spearman_rho": _finite_or_none(rho),
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
        report["columns"][col] = entry
    return report


def scatter_plot(
    scores,
    accuracy,
    path,
    title: str,
    xlabel: str = "angle (rad)",
    ylabel: str = "accuracy (%)",
) -> Path:
    """Scatter of accuracy against score, Kendall tau in the title; PNG written atomically.

    Pairs where either value is NaN are left out (and counted in the title).
    """
    path = Path(path)
    try:
        x = np.asarray(scores, dtype=np.float64).ravel()
        y = np.asarray(accuracy, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise RlnasError("scatter_plot: scores and accuracy must be numbers") from None
    if x.shape != y.shape:
        raise RlnasError(f"scatter_plot: {x.size} scores but {y.size} accuracies")
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    if x.size == 0:
        raise RlnasError("scatter_plot: no points to plot")
    tau = None
    if x.size >= 2:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tau = _finite_or_none(stats.kendalltau(x, y).statistic)
    tau_txt = f"Kendall tau = {tau:.3f}" if tau is not None else "Kendall tau = n/a"
    n_txt = f"n = {x.size}" + (f", {int((~ok).sum())} NaN left out" if (~ok).any() else "")

    # The Agg canvas directly (no pyplot): no global backend switch, no open-figure registry.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(x, y, s=3 if x.size > 500 else 8, alpha=0.5 if x.size > 500 else 0.8,
               linewidths=0, rasterized=x.size > 5000)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}\n{tau_txt} ({n_txt})", fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), suffix=".png")
