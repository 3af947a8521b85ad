"""The benchmark scripts that measure scorers against ground truth recompute two things the
product also computes; they must agree with it: benchmarks/ground_truth_map.py's per-checkpoint
metrics (tau, top-pick percentile, top-10 mean) with `rlnas evaluate --benchmark`'s, and
benchmarks/scorer_ideas.py's `angle_sum` / `distance` with the product's piece variants."""

import numpy as np
from scipy.stats import kendalltau

from conftest import benchmark_script
from rlnas.angle import VARIANTS
from rlnas.pipeline.evaluate import _pick_quality


def test_checkpoint_metrics_equal_evaluate():
    gt = benchmark_script("ground_truth_map")
    rng = np.random.default_rng(0)
    acc = rng.normal(97.0, 0.2, 214)
    scores = acc + rng.normal(0, 0.3, 214)
    scores[:5] = scores.max()  # ties at the top: the first in table order is the pick
    m = gt._metrics(scores, acc)
    ref = _pick_quality(scores, acc)
    assert m["tau"] == kendalltau(scores, acc).statistic
    assert m["top1_percentile"] == ref["top1_percentile"]
    assert m["top10_mean"] == ref["mean_top10_accuracy"]


def test_scorer_ideas_recompute_the_product_variants():
    ideas = benchmark_script("scorer_ideas")
    rng = np.random.default_rng(1)
    names = ["fixed"] + [f"edge{e}:op{o}" for e in range(4) for o in range(3)]
    p = len(names)
    w0, wt = rng.normal(size=(p, 5)), rng.normal(size=(p, 5))
    stats = np.stack([(w0 * wt).sum(1), (w0 ** 2).sum(1), (wt ** 2).sum(1),
                      ((wt - w0) ** 2).sum(1)], 1)
    mult = rng.integers(0, 3, size=(40, p)).astype(np.float64)
    mult[:, 0] = 1
    searchable = np.array([n != "fixed" for n in names], dtype=np.float64)
    got = ideas.piece_scorers(names, stats, mult)
    for variant in ("angle_sum", "distance"):
        np.testing.assert_allclose(got[variant], VARIANTS[variant](mult, stats, searchable),
                                   rtol=1e-12)
    # the per-edge rank of a piece lies in 0..1 and sums over the used pieces
    assert np.all(got["edge_rank_angle"] >= 0)
    assert np.all(got["edge_rank_angle"] <= (mult[:, 1:] > 0).sum(1))
