"""Plots of scores against ground truth, written atomically as PNG: a scatter of accuracy
against score (:func:`scatter_plot`) and the ranking of the kept checkpoints over training
(:func:`tau_over_training_plot`). Matplotlib's Agg canvas is used directly (no pyplot)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np
from scipy import stats

from .errors import RlnasError
from .files import atomic_write, finite_or_none, make_dir
from .spaces.nb201 import nb201_conv_free, nb201_disconnected

#: Marker styles of the highlighted cells in :func:`scatter_plot`, in the order given: a filled
#: star, then outlines of growing size around it, so that marks on the same cell all show.
_MARK_STYLES = (
    dict(marker="*", s=220, color="crimson", edgecolors="black", linewidths=0.6, zorder=7),
    dict(marker="D", s=420, facecolors="none", edgecolors="darkorange", linewidths=2.0,
         zorder=6),
    dict(marker="o", s=560, facecolors="none", edgecolors="green", linewidths=2.0, zorder=5),
    dict(marker="s", s=800, facecolors="none", edgecolors="deepskyblue", linewidths=2.0,
         zorder=4),
)

#: Axis labels with units of the scorers that have one (:func:`score_label`).
_UNITS = {"params": "params (M)", "flops": "FLOPs (M)", "latency": "latency (ms)",
          "angle": "angle (rad)", "angle_cell": "angle_cell (rad)",
          "angle_mean": "angle_mean (rad)"}


def score_label(name: str) -> str:
    """An axis label for the scores of scorer ``name``, with its unit where it has one: params
    and FLOPs in millions (of the benchmark network), latency in ms, angles in radians, an
    ensemble ``a+b`` its mean percentile rank; other scores have none."""
    if "+" in name:
        return f"{name} (mean percentile rank)"
    return _UNITS.get(name, name)


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
        return finite_or_none(stats.kendalltau(x, y).statistic)


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
    the connected ones shown; connected cells with no convolution on a path
    (:func:`nb201_conv_free`) that all share one score (0 for the angle and distance scorers:
    no trained weight reaches the output) are pointed out as the stripe they form. ``marks``
    (``{label: arch string or point index}``, in order: e.g. the searched cell, the params
    baseline's pick, the best cell) draws those cells on top, the first as a star and the next
    as outlines around it, with a legend entry each (with its accuracy, the earlier mark it
    coincides with, or why it is not shown).
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

    fig = _new_figure((5.6, 4.6 + 0.22 * len(marks)) if marks else
                      (5.6, 4.6) if off.any() else (5.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    xs, ys = x[shown], y[shown]
    big = xs.size > 500
    ax.scatter(xs, ys, s=3 if big else 8, alpha=0.5 if big else 0.8, linewidths=0,
               rasterized=xs.size > 5000, label=f"cells ({xs.size})" if marks else None)
    _point_out_stripe(ax, x, y, shown, archs)
    index = {a: i for i, a in reversed(list(enumerate(archs)))} if archs is not None else {}
    drawn = {}  # point index -> the label of the first mark drawn there
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
            same = f", the same cell as the {drawn[i].split(' (')[0]}" if i in drawn else ""
            drawn.setdefault(i, label)
            ax.scatter([x[i]], [y[i]], label=f"{label}: {y[i]:.2f}{same}", **style)
        else:  # a legend entry all the same, saying why there is no point
            ax.scatter([], [], label=f"{label}: {why}", **style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("\n".join(lines), fontsize=8 if len(lines) > 2 else 9)
    ax.grid(True, alpha=0.3)
    if marks:  # below the axes, markers at one size: inside, it would hide cells
        leg = ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13),
                        frameon=False)
        for handle in getattr(leg, "legend_handles", None) or leg.legendHandles:
            handle.set_sizes([50])
    fig.tight_layout()
    return fig


def _point_out_stripe(ax, x, y, shown, archs) -> None:
    """Name the vertical stripe that the connected NB201 cells with no convolution on a path
    form where they all share one score (the angle and distance scorers give them 0)."""
    if archs is None:
        return
    free = nb201_conv_free(archs) & shown
    if free.sum() < 2 or np.ptp(x[free]) != 0:
        return
    x0, n = float(x[free][0]), int(free.sum())
    ax.annotate(f"{n} connected cells with no convolution\non an input-output path (only skip "
                f"/ pool):\nno trained weight, all score {x0:g}",
                xy=(x0, float(np.median(y[free]))), xytext=(0.2, 0.06),
                textcoords="axes fraction", fontsize=7, va="bottom",
                bbox=dict(boxstyle="round", fc="white", ec="0.6", alpha=0.9),
                arrowprops=dict(arrowstyle="->", color="0.3", lw=0.8))


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
    ``checkpoint``, ``tau`` ({column: tau}) and ``tau_previous``, as ``rlnas.pipeline.evaluate``
    makes them); ``columns[0]`` is the column drawn (the report's headline column). Runs with
    two or more checkpoints get two panels on integer epochs: above, a line per run of tau with
    ``columns[0]``, next to a level per other scorer of the first run's ``correlation`` (e.g.
    the params baseline), each in its own colour and dash with a legend entry; below, the
    stability series, tau of each checkpoint's ranking with the previous one's (a scale of its
    own: near 1, it would flatten the other). When no run has two checkpoints there is nothing
    to follow over training: the plot then shows each run's tau at its one checkpoint as a
    labelled point on a tau axis, next to the tau of the other scorers of the first run's
    ``correlation``, with a note on how to keep periodic checkpoints
    (``train.keep_every_epochs``). Returns the path, or None (nothing written) when no run has
    a checkpoint or no column is given.
    """
    fig = tau_over_training_figure(per_run, columns, scorer)
    if fig is None:
        return None
    make_dir(Path(path).parent, "plot folder")
    return atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png"), suffix=".png")


#: Line styles of the other scorers' levels in :func:`tau_over_training_figure`.
_LEVEL_DASHES = ("--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (1, 1)))


def tau_over_training_figure(per_run, columns, scorer: str = "angle"):
    """The matplotlib Figure that :func:`tau_over_training_plot` saves (None: nothing to draw)."""
    rows = [r for r in per_run if r.get("over_training")]
    if not rows or not columns:
        return None
    col = columns[0]
    label = (rows[0]["over_training"][0].get("scorer") or scorer)
    multi = any(len(r["over_training"]) > 1 for r in rows)
    if multi:
        from matplotlib.ticker import MaxNLocator

        fig = _new_figure((6.4, 6.0))
        ax, low = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
        for k, r in enumerate(rows):
            ov = r["over_training"]
            ax.plot([o["epoch"] for o in ov], [o["tau"][col] for o in ov], marker="o",
                    color=f"C{k}", label=f"{label}, seed {r['seed']}")
            prev = [(o["epoch"], o["tau_previous"]) for o in ov if o["tau_previous"] is not None]
            if prev:
                low.plot(*zip(*prev), marker="o", color=f"C{k}", label=f"seed {r['seed']}")
                for e, t in prev:
                    low.annotate(f"{t:.3f}", (e, t), textcoords="offset points", xytext=(0, 6),
                                 ha="center", fontsize=7)
        for k, (name, t) in enumerate(_reference_taus(rows[0], col, label)):
            ax.axhline(t, color=f"C{len(rows) + k}", ls=_LEVEL_DASHES[k % len(_LEVEL_DASHES)],
                       lw=1.4, label=f"{name} (seed {rows[0]['seed']}): {t:.3f}")
        low.xaxis.set_major_locator(MaxNLocator(integer=True))
        low.set_xlabel("supernet epoch (kept checkpoints)")
        ax.set_ylabel(f"Kendall tau vs {col}")
        low.set_ylabel("tau vs previous")
        ax.set_title(f"{label} ranking over training: agreement with {col}", fontsize=10)
        low.set_title("stability: tau of each checkpoint's ranking with the previous one's",
                      fontsize=8)
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
        low.legend(fontsize=7, loc="lower right", framealpha=0.85)
        lo, hi = low.get_ylim()
        low.set_ylim(lo, hi + 0.25 * max(hi - lo, 0.02))  # room for the value labels
        for a in (ax, low):
            a.grid(True, alpha=0.3)
        fig.tight_layout()
        return fig
    fig = _new_figure((6.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    # one checkpoint per run: a labelled tau per run, not a lone dot on an epoch axis
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
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig
