"""Does `rlnas check`'s verdict agree with the benchmark's? (issue 17, deliverable 5)

For a trained run of a space that has a ground-truth table (NAS-Bench-Macro, NB201), this runs
`rlnas check` at a given budget with several pick seeds and, for each, puts side by side:

- the check's verdict (scorer vs params/flops, on the brief true-label retrainings),
- the verdict the same rule gives on the SAME archs with the table's accuracies,
- the benchmark's verdict over the whole table (tau of the scorer vs the better size baseline),
- the tau between the brief retraining's accuracies and the table's (the proxy's fidelity).

The check's archs and retrainings are cached under OUT (resumable); a rerun only re-reports.
Several runs may share one OUT: a retrained arch is keyed by arch and budget (pick seed
included), so runs whose picks overlap retrain it once.

``--power K,K..`` retrains nothing: for each k (archs per group) and each seed it picks the archs
as the check would and applies the check's rule to the TABLE's accuracies of those archs, i.e.
what the verdict can say at k with a perfect retraining (the power of the rule at that size).

    python benchmarks/check_agreement.py RUN TABLE OUT --seeds 0,1,2 --archs 4 --epochs 2 \\
        --images 2000 --image-size 16 --test-root ../shared/data/cifar10/test_exact1k.npz
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from rlnas.pipeline.check import check_run, pick_archs, ranked_archs, verdict
from rlnas.rundir import open_run
from rlnas.scorers import get_scorer
from rlnas.tables import load_benchmark_table


def _tau(x, y) -> float:
    t = kendalltau(x, y).statistic
    return float(t) if np.isfinite(t) else 0.0


def whole_table_verdict(run, table, scorer: str, column: str):
    """Tau of the scorer and of params/flops over every arch of the table."""
    space = run.space
    genomes = np.array([space.from_str(a) for a in table.archs], dtype=np.int64)
    scores = np.asarray(get_scorer(scorer, run, progress=False).fn(genomes), dtype=np.float64)
    acc = np.asarray(table.columns[column], float)
    cost = space.cost(genomes, **(table.cost_kwargs or run.cost_kwargs))
    taus = {scorer: _tau(scores, acc), "params": _tau(cost["params"], acc),
            "flops": _tau(cost["flops"], acc)}
    best = max(("params", "flops"), key=lambda b: taus[b])
    return taus, ("scorer" if taus[scorer] > taus[best] else "baseline")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("table")
    p.add_argument("out")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--archs", type=int, default=4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--scorer", default=None)
    p.add_argument("--test-root", default=None, help="the true-label test file (rlnas check's)")
    p.add_argument("--column", default=None, help="table column (default: the table's primary)")
    p.add_argument("--power", default=None,
                   help="comma-separated archs per group: the rule on the table's accuracies of "
                        "the picks, no retraining")
    a = p.parse_args(argv)
    run = open_run(a.run)
    table = load_benchmark_table(a.table, run.space)
    column = a.column or table.primary
    if a.power:
        return power(run, table, column, [int(k) for k in a.power.split(",")],
                     [int(s) for s in a.seeds.split(",")], a.scorer)
    rows = []
    for seed in (int(s) for s in a.seeds.split(",")):
        t0 = time.time()
        rep = check_run(run, archs=a.archs, epochs=a.epochs, images=a.images,
                        image_size=a.image_size, seed=seed, scorer=a.scorer, test_root=a.test_root,
                        out=Path(a.out) / f"seed{seed}", log=lambda *_: None)
        scorer = rep["budget"]["scorer"]
        sp = run.space  # the table holds each network once, under its canonical genome
        archs = [sp.to_str(sp.canonical(sp.from_str(r["arch"]))) for r in rep["rows"]]
        true = np.asarray(table.columns[column], float)[table.rows(archs)]
        bench_same = verdict(scorer, [r["score"] for r in rep["rows"]], true,
                             [r["params_m"] for r in rep["rows"]],
                             [r["flops_m"] for r in rep["rows"]], seed)
        fidelity = _tau([r["test_acc"] for r in rep["rows"]], true)
        rows.append((seed, rep, bench_same, fidelity, time.time() - t0))
    taus, whole = whole_table_verdict(run, table, scorer, column)
    print(f"run {a.run}  scorer {scorer}  table {table.title} ({column})  budget: {a.archs} archs "
          f"per group, {a.epochs} epochs, {a.images} images, {a.image_size} px")
    print(f"whole table ({len(table.archs)} archs): tau {scorer} {taus[scorer]:.3f}, params "
          f"{taus['params']:.3f}, flops {taus['flops']:.3f} -> {whole}")
    print(f"{'seed':>4} {'check tau s/p/f':>18} {'check says':>11} {'same archs, table':>18} "
          f"{'table says':>10} {'fidelity':>8} {'agree':>5} {'min':>5}")
    for seed, rep, bs, fid, secs in rows:
        t, tb = rep["tau"], bs["tau"]
        agree = rep["winner"] == bs["winner"]
        print(f"{seed:4d} {t[scorer]:6.2f}/{t['params']:5.2f}/{t['flops']:5.2f} "
              f"{rep['winner']:>11} {tb[scorer]:6.2f}/{tb['params']:5.2f}/{tb['flops']:5.2f} "
              f"{bs['winner']:>10} {fid:8.2f} {str(agree):>5} {secs / 60:5.1f}")
    fids = [r[3] for r in rows]
    print(f"fidelity (tau brief retraining vs table): {np.mean(fids):.2f} ± {np.std(fids):.2f}; "
          f"verdicts agreeing with the table on the same archs: "
          f"{sum(r[1]['winner'] == r[2]['winner'] for r in rows)}/{len(rows)}; "
          f"'scorer' verdicts where the whole table says {whole}: "
          f"{sum(r[1]['winner'] == 'scorer' for r in rows)}/{len(rows)}")


def power(run, table, column: str, ks, seeds, scorer=None) -> None:
    """The check's verdict rule on the table's accuracies of the check's picks, per k."""
    scorer = scorer or run.scorer
    sp = run.space
    archs, scores = ranked_archs(run, scorer)
    genomes = np.array([sp.from_str(x) for x in archs], dtype=np.int64)
    cost = sp.cost(genomes, **run.cost_kwargs)
    canon = [sp.to_str(sp.canonical(g)) for g in genomes]
    acc = np.asarray(table.columns[column], float)
    print(f"run {run.path}  scorer {scorer}: the check's rule on the table's {column} of its "
          f"picks (no retraining), seeds {seeds[0]}..{seeds[-1]}")
    print(f"{'archs/group':>11} {'scorer':>7} {'cannot tell':>11} {'baseline':>9} "
          f"{'mean tau s/p/f':>20}")
    for k in ks:
        calls, taus = [], []
        for seed in seeds:
            idx = [i for _, i in pick_archs(scores, k, seed)]
            true = acc[table.rows([canon[i] for i in idx])]
            v = verdict(scorer, scores[idx], true, cost["params"][idx], cost["flops"][idx], seed)
            calls.append(v["winner"])
            taus.append([v["tau"][scorer], v["tau"]["params"], v["tau"]["flops"]])
        t = np.mean(taus, axis=0)
        print(f"{k:11d} {calls.count('scorer'):7d} {calls.count('cannot_tell'):11d} "
              f"{calls.count('baseline'):9d} {t[0]:8.2f}/{t[1]:5.2f}/{t[2]:5.2f}")


if __name__ == "__main__":
    main()
