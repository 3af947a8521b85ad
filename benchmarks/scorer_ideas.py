"""Prototype scorers on the three ground truths at once (issue 17: a scorer that wins on one
benchmark only is an artefact of it). Reads trained runs through the public pieces of rlnas (the
run's init/last checkpoints, the space's ``angle_pieces`` / ``angle_multiplicity``) and prints
Kendall tau with each table's primary accuracy, mean ± std over the runs of each space, for the
product's piece scorers (recomputed here as a check against `rlnas evaluate`) and the ideas
below. Nothing here is a product scorer; see benchmarks/RESULTS.md for what was kept.

    python benchmarks/scorer_ideas.py DATA --nb201 RUN.. --macro RUN.. --darts RUN.. [--out F]

DATA is the shared data folder. Per piece p (an op on an edge / a block's choice) the run gives
theta_p (the angle it turned), d_p (the distance it moved) and n0_p = |u_p(W0)|^2; S(a) is the
set of searchable pieces arch a uses. The ideas:

* ``rel_distance``  sqrt(sum_{p in S(a)} d_p^2 / n0_p): the displacement relative to each piece's
  initial size (``distance`` without the bias towards large tensors);
* ``edge_rank_angle`` / ``edge_rank_distance``: sum over S(a) of the rank (0..1) of theta_p / d_p
  among the ops that compete for the same edge or block: which op moved most *relative to its
  alternatives*, blind to how much each edge moves as a whole;
* ``type_residual_angle`` / ``type_residual_distance``: sum over S(a) of theta_p / d_p
  standardised among the pieces of the same op type (and cell type): how much more this edge's
  op moved than the same op elsewhere, i.e. the position information the op type leaves out;
* ``oracle:opcount`` (DARTS only, NOT a scorer: an oracle ceiling): a ridge regression of the
  accuracy on the genotype's op counts per cell type, fitted on the table itself and scored by
  10-fold cross-validation; what the op composition of a cell can tell at best, linearly.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, rankdata

from rlnas.angle import FIXED, piece_angles, piece_distances
from rlnas.rundir import open_run
from rlnas.tables import load_benchmark_table

TABLES = {"nb201": "nasbench201.csv",
          "nasbench-macro": "nasbench-macro/nas-bench-macro_cifar10.json",
          "darts": "darts-cifar10-trained/darts_random214_cifar10.csv"}


def _group_ranks(values: np.ndarray, groups: list) -> np.ndarray:
    """Rank of each piece's value among the pieces of its group, scaled to 0..1."""
    out = np.zeros(len(values))
    groups = np.asarray(groups)
    for g in set(groups):
        idx = np.flatnonzero(groups == g)
        out[idx] = (rankdata(values[idx]) - 1) / max(len(idx) - 1, 1)
    return out


def _op_type(name: str) -> str:
    """A piece's op type: its op, with the DARTS cell type (``normal:edge3<-0:sep_conv_3x3``)."""
    parts = name.split(":")
    return f"{parts[0]}:{parts[-1]}" if len(parts) == 3 else parts[-1]


def _type_residual(values: np.ndarray, names: list) -> np.ndarray:
    """Each piece's value standardised among the pieces of its op type (0 for a lone piece or
    a type that does not move)."""
    out = np.zeros(len(values))
    types = np.array([_op_type(n) for n in names])
    for t in set(types):
        idx = np.flatnonzero(types == t)
        sd = values[idx].std()
        if len(idx) > 1 and sd > 0:
            out[idx] = (values[idx] - values[idx].mean()) / sd
    return out


def piece_scorers(names, stats, mult) -> dict:
    """Every scorer of this script from one run's piece statistics: name -> scores (N,)."""
    stats = np.asarray(stats, dtype=np.float64)
    searchable = np.array([n != FIXED for n in names], dtype=np.float64)
    used = (np.asarray(mult, dtype=np.float64) * searchable > 0).astype(np.float64)
    n_used = np.maximum(used.sum(1), 1)
    theta, dist = piece_angles(stats), piece_distances(stats)
    n0 = stats[:, 1]
    rel = np.where(n0 > 0, dist ** 2 / np.where(n0 > 0, n0, 1), 0.0)
    groups = [n.rsplit(":", 1)[0] for n in names]
    return {
        # the product's, recomputed (must equal `rlnas evaluate`'s)
        "angle_sum": used @ theta / np.sqrt(n_used),
        "distance": np.sqrt(used @ dist ** 2),
        # ideas
        "rel_distance": np.sqrt(used @ rel),
        "edge_rank_angle": used @ (_group_ranks(theta, groups) * searchable),
        "edge_rank_distance": used @ (_group_ranks(dist, groups) * searchable),
        "type_residual_angle": used @ (_type_residual(theta, names) * searchable),
        "type_residual_distance": used @ (_type_residual(dist, names) * searchable),
    }


def _ensemble(*scores) -> np.ndarray:
    """Mean of ranks (the product's `a+b` rule)."""
    return np.mean([rankdata(s) for s in scores], axis=0)


def _tau(x, y) -> float:
    return float(kendalltau(x, y).statistic)


def score_runs(data: Path, space_name: str, runs: list) -> dict:
    """scorer -> [tau per run] on one space."""
    taus: dict = {}
    table = None
    for run_dir in runs:
        run = open_run(run_dir)
        space = run.space
        if table is None:
            table = load_benchmark_table(data / TABLES[space_name], space)
            archs = np.array([space.from_str(a) for a in table.archs], dtype=np.int64)
            acc = np.asarray(table.columns[table.primary], dtype=np.float64)
            mult = space.angle_multiplicity(archs)
            cost = space.cost(archs, **(table.cost_kwargs or space.cost_defaults(run.info)))
        names, stats = space.angle_pieces(run.checkpoint_state("init.pt"),
                                          run.checkpoint_state("last.pt"))
        scores = piece_scorers(names, stats, mult)
        for size in ("params", "flops"):
            scores[size] = np.asarray(cost[size], dtype=np.float64)
        for idea in ("rel_distance", "edge_rank_angle", "edge_rank_distance",
                     "type_residual_angle", "type_residual_distance"):
            scores[f"{idea}+params"] = _ensemble(scores[idea], scores["params"])
        for name, s in scores.items():
            taus.setdefault(name, []).append(_tau(s, acc))
    if space_name == "darts":
        taus["oracle:opcount"] = [opcount_oracle(table, seed) for seed in (0, 1, 2)]
    return taus


def opcount_oracle(table, seed: int, folds: int = 10, ridge: float = 1.0) -> float:
    """Tau of a ridge regression on op counts per cell type, cross-validated on the table
    (an oracle ceiling: it is fitted on the 214 cells themselves)."""
    from rlnas.api import get_space
    from rlnas.spaces.darts import NUM_EDGES, NUM_OPS
    space = get_space("darts")
    genomes = np.array([space.from_str(a) for a in table.archs], dtype=np.int64)
    cells = genomes.reshape(len(genomes), 2, NUM_EDGES)
    x = np.stack([(cells[:, t] == op).sum(1) for t in (0, 1) for op in range(1, NUM_OPS)], 1)
    x = np.c_[np.ones(len(x)), x.astype(np.float64)]
    y = np.asarray(table.columns[table.primary], dtype=np.float64)
    pred = np.empty(len(y))
    order = np.random.default_rng(seed).permutation(len(y))
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        reg = ridge * np.eye(x.shape[1])
        reg[0, 0] = 0.0
        w = np.linalg.solve(x[train].T @ x[train] + reg, x[train].T @ y[train])
        pred[test] = x[test] @ w
    return _tau(pred, y)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path)
    p.add_argument("--nb201", nargs="*", default=[])
    p.add_argument("--macro", nargs="*", default=[])
    p.add_argument("--darts", nargs="*", default=[])
    p.add_argument("--out", type=Path, help="write the taus as JSON here")
    a = p.parse_args(argv)
    result = {}
    for space_name, runs in (("nb201", a.nb201), ("nasbench-macro", a.macro),
                             ("darts", a.darts)):
        if runs:
            result[space_name] = score_runs(a.data, space_name, runs)
    names = list(dict.fromkeys(n for r in result.values() for n in r))
    print("| scorer | " + " | ".join(result) + " |")
    print("|---" * (len(result) + 1) + "|")
    for n in names:
        cells = []
        for r in result.values():
            v = r.get(n)
            cells.append("" if not v else f"{np.mean(v):.3f}" if len(v) == 1 else
                         f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}")
        print(f"| {n} | " + " | ".join(cells) + " |")
    if a.out:
        a.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
