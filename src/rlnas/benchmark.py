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
from typing import Iterable, Optional, Sequence

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
    "scatter_figure",
    "nb201_disconnected",
    "tau_over_training_plot",
    "tau_over_training_figure",
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

    # a BenchmarkTable (rlnas.tables) names its own accuracy columns
    semantics = getattr(table, "semantics", ACCURACY_COLUMNS)
    if columns is None:
        columns = list(table.accuracy_columns)
    else:
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
            "semantics": semantics[col],
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


def nb201_disconnected(arch_strs) -> np.ndarray:
    """Boolean mask: True for an NB201 cell with no input->output path (every path holds a
    ``none`` edge). Such a cell's network ignores its input (NB201 accuracy ~10 % on CIFAR-10,
    an angle of 0). Strings that are not NB201 arch strings count as connected."""
    from rlnas.spaces.nb201 import PATHS

    if isinstance(arch_strs, str):
        arch_strs = [arch_strs]
    out = np.zeros(len(arch_strs), dtype=bool)
    for i, a in enumerate(arch_strs):
        if not isinstance(a, str):
            continue
        toks = [t for t in a.strip().replace("+", "").split("|") if t]
        if len(toks) != 6 or not all("~" in t for t in toks):
            continue
        ops = [t.split("~")[0] for t in toks]  # genome (edge) order, as NB201Space.to_str
        out[i] = not any(all(ops[e] != "none" for e in path) for path in PATHS)
    return out


#: Marker styles of the highlighted cells in :func:`scatter_plot`, in the order given.
_MARK_STYLES = (
    dict(marker="*", s=220, color="crimson", edgecolors="black", linewidths=0.6, zorder=5),
    dict(marker="D", s=70, color="orange", edgecolors="black", linewidths=0.6, zorder=4),
    dict(marker="P", s=110, color="limegreen", edgecolors="black", linewidths=0.6, zorder=4),
    dict(marker="X", s=90, color="deepskyblue", edgecolors="black", linewidths=0.6, zorder=4),
)


def _new_figure(size):
    # The Agg canvas directly (no pyplot): no global backend switch, no open-figure registry.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=120)
    FigureCanvasAgg(fig)
    return fig


def _kendall(x, y):
    if x.size < 2:
        return None
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _finite_or_none(stats.kendalltau(x, y).statistic)


def scatter_plot(
    scores,
    accuracy,
    path,
    title: str,
    xlabel: str = "angle (rad)",
    ylabel: str = "accuracy (%)",
    archs=None,
    marks=None,
) -> Path:
    """Scatter of accuracy against score, Kendall tau in the title; PNG written atomically.

    Pairs where either value is NaN are left out (and counted in the title). With ``archs`` (the
    NB201 arch string of each point) the disconnected cells (:func:`nb201_disconnected`: angle
    0, accuracy ~10 %, which would squash every other cell into a corner) are left out of the
    axes too; the title says how many, and gives tau over all cells (as the reports do) and over
    the connected ones shown. ``marks`` (``{label: arch string or point index}``, in order:
    e.g. the searched cell, then the params baseline's pick) draws those cells on top with a
    legend entry each (with its accuracy, or why it is not shown).
    """
    fig = scatter_figure(scores, accuracy, title, xlabel, ylabel, archs, marks)
    return atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png"), suffix=".png")


def scatter_figure(scores, accuracy, title: str, xlabel: str = "angle (rad)",
                   ylabel: str = "accuracy (%)", archs=None, marks=None):
    """The matplotlib Figure that :func:`scatter_plot` saves."""
    try:
        x = np.asarray(scores, dtype=np.float64).ravel()
        y = np.asarray(accuracy, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise RlnasError("scatter_plot: scores and accuracy must be numbers") from None
    if x.shape != y.shape:
        raise RlnasError(f"scatter_plot: {x.size} scores but {y.size} accuracies")
    if archs is not None:
        archs = [archs] if isinstance(archs, str) else list(archs)
        if len(archs) != x.size:
            raise RlnasError(f"scatter_plot: {x.size} scores but {len(archs)} arch strings")
    nan = np.isnan(x) | np.isnan(y)
    ok = ~nan
    if not ok.any():
        raise RlnasError("scatter_plot: no points to plot")
    tau = _kendall(x[ok], y[ok])
    off = nb201_disconnected(archs) & ok if archs is not None else np.zeros(x.size, dtype=bool)
    shown = ok & ~off
    tau_txt = f"Kendall tau = {tau:.3f}" if tau is not None else "Kendall tau = n/a"
    n_txt = f"n = {int(ok.sum())}" + (f", {int(nan.sum())} NaN left out" if nan.any() else "")
    lines = [title, f"{tau_txt} ({n_txt})"]
    if off.any():
        t2 = _kendall(x[shown], y[shown])
        lines[1] = (f"{tau_txt} over all {int(ok.sum())} cells, "
                    + (f"{t2:.3f}" if t2 is not None else "n/a")
                    + f" over the {int(shown.sum())} drawn"
                    + (f" ({int(nan.sum())} NaN left out)" if nan.any() else ""))
        lines.append(f"{int(off.sum())} disconnected cells not drawn (no input-output path; "
                     f"median {ylabel.split(' (')[0]} {np.median(y[off]):.1f})")

    fig = _new_figure((5.6, 4.6) if off.any() or marks else (5.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    xs, ys = x[shown], y[shown]
    big = xs.size > 500
    ax.scatter(xs, ys, s=3 if big else 8, alpha=0.5 if big else 0.8, linewidths=0,
               rasterized=xs.size > 5000, label=f"cells ({xs.size})" if marks else None)
    index = {a: i for i, a in reversed(list(enumerate(archs)))} if archs is not None else {}
    for k, (label, which) in enumerate((marks or {}).items()):
        style = _MARK_STYLES[k % len(_MARK_STYLES)]
        i = index.get(which) if isinstance(which, str) else which
        if i is None or isinstance(i, bool) or not 0 <= int(i) < x.size:
            why = "not among the scored cells"
        elif off[int(i)]:
            why = f"disconnected, {ylabel.split(' (')[0]} {y[int(i)]:.2f}, not drawn"
        elif nan[int(i)]:
            why = "no score (NaN)"
        else:
            why = None
        if why is None:
            i = int(i)
            ax.scatter([x[i]], [y[i]], label=f"{label}: {y[i]:.2f}", **style)
        else:  # a legend entry all the same, saying why there is no point
            ax.scatter([], [], label=f"{label}: {why}", **style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("\n".join(lines), fontsize=8 if len(lines) > 2 else 9)
    ax.grid(True, alpha=0.3)
    if marks:
        ax.legend(fontsize=7, loc="lower right", framealpha=0.85)
    fig.tight_layout()
    return fig


def _reference_taus(run_entry, col, skip):
    """(scorer, tau vs ``col``) of the other scorers a report entry holds (e.g. params)."""
    out = []
    for name, rep in (run_entry.get("correlation") or {}).items():
        try:
            t = rep["columns"][col]["kendall_tau"]
        except (KeyError, TypeError):
            continue
        if name != skip and t is not None:
            out.append((name, float(t)))
    return out


def tau_over_training_plot(per_run, columns, path, scorer: str = "angle") -> Optional[Path]:
    """How the ranking of the kept checkpoints agrees with the table, by supernet epoch.

    ``per_run``: one dict per run with ``seed`` and ``over_training`` (rows of ``epoch``,
    ``checkpoint``, ``tau`` ({column: tau}) and ``tau_previous``, as ``rlnas.report`` makes
    them). Runs with two or more checkpoints get a line per run (tau with ``columns[0]``,
    solid) and tau with the previous checkpoint (dashed), on integer epochs, and a dotted level
    for each other scorer of the first run's ``correlation`` (e.g. the params baseline). When no run has
    two checkpoints there is nothing to follow over training: the plot then shows each run's
    tau at its one checkpoint as a labelled point on a tau axis, next to the tau of the
    other scorers of the first run's ``correlation`` (as in ``rlnas.report``: e.g. params),
    with a note on how to keep periodic checkpoints (``train.keep_every_epochs``). Returns the path, or None (nothing
    written) when no run has a checkpoint or no column is given.
    """
    fig = tau_over_training_figure(per_run, columns, scorer)
    if fig is None:
        return None
    from rlnas.files import make_dir

    make_dir(Path(path).parent, "plot folder")
    return atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png"), suffix=".png")


def tau_over_training_figure(per_run, columns, scorer: str = "angle"):
    """The matplotlib Figure that :func:`tau_over_training_plot` saves (None: nothing to draw)."""
    rows = [r for r in per_run if r.get("over_training")]
    if not rows or not columns:
        return None
    col = columns[0]
    label = (rows[0]["over_training"][0].get("scorer") or scorer)
    multi = any(len(r["over_training"]) > 1 for r in rows)
    fig = _new_figure((6.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    if multi:
        from matplotlib.ticker import MaxNLocator

        for r in rows:
            ov = r["over_training"]
            line, = ax.plot([o["epoch"] for o in ov], [o["tau"][col] for o in ov], marker="o",
                            label=f"seed {r['seed']}: tau vs {col}")
            prev = [(o["epoch"], o["tau_previous"]) for o in ov if o["tau_previous"] is not None]
            if prev:
                ax.plot(*zip(*prev), ls="--", marker=".", color=line.get_color(),
                        label=f"seed {r['seed']}: tau vs the previous checkpoint")
        for k, (name, t) in enumerate(_reference_taus(rows[0], col, label)):
            ax.axhline(t, color="0.4", ls=(0, (1, 2 + k)), lw=1.0,
                       label=f"{name} (seed {rows[0]['seed']}): tau {t:.3f} vs {col}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("supernet epoch (kept checkpoints)")
        ax.set_ylabel("Kendall tau")
        ax.set_title(f"{label} ranking over training", fontsize=10)
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
    else:  # one checkpoint per run: a labelled tau per run, not a lone dot on an epoch axis
        taus = [r["over_training"][0]["tau"][col] for r in rows]
        refs = _reference_taus(rows[0], col, label)
        ys = np.arange(len(rows))
        ax.scatter(taus, ys, marker="o", s=50, zorder=3, color="C0")
        every = taus + [0.0] + [t for _, t in refs]
        lo, hi = min(every), max(every)
        pad = max(0.1, 0.15 * (hi - lo))
        ax.set_xlim(max(-1.0, lo - pad), min(1.0, hi + pad))
        mid = sum(ax.get_xlim()) / 2
        for t, yv, r in zip(taus, ys, rows):
            o = r["over_training"][0]
            ax.annotate(f"{label}, seed {r['seed']}: tau {t:.3f} ({o['checkpoint']}, "
                        f"epoch {o['epoch']})", (t, yv), textcoords="offset points",
                        xytext=(0, 9), ha="right" if t > mid else "left", fontsize=8)
        for k, (name, t) in enumerate(refs):
            ax.axvline(t, color=f"C{k + 1}", ls="--", lw=1.2,
                       label=f"{name} (seed {rows[0]['seed']}): {t:.3f}")
        ax.axvline(0.0, color="0.6", lw=0.8)
        ax.set_ylim(-0.8, len(rows) - 0.2)
        ax.set_yticks(ys)
        ax.set_yticklabels([f"seed {r['seed']}" for r in rows])
        ax.set_xlabel(f"Kendall tau vs {col}")
        ax.set_title(f"{label} ranking: one checkpoint per run, nothing to follow over training",
                     fontsize=9)
        if refs:
            ax.legend(fontsize=7, loc="lower left", title="other scorers, same cells",
                      title_fontsize=7)
        fig.text(0.5, 0.01, "keep periodic checkpoints (train.keep_every_epochs) to see the "
                 "ranking settle", ha="center", fontsize=7, color="0.3")
    ax.grid(True, alpha=0.3)
    fig.tight_layout(rect=(0, 0.04, 1, 1) if not multi else (0, 0, 1, 1))
    return fig
