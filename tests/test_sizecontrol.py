"""Tests for rlnas.sizecontrol: size-controlled correlations and the budgeted-pick benchmark."""

import json
import math

import numpy as np
import pytest

from rlnas.errors import RlnasError
from rlnas.sizecontrol import (
    budget_ladder,
    constrained_benchmark,
    format_constrained,
    format_size_report,
    partial_kendall,
    partial_rank_correlation,
    plot_constrained,
    size_controlled_report,
    within_group_tau,
)

# --------------------------------------------------------------------------------------
# independent reference computations
# --------------------------------------------------------------------------------------


def tau_b_bruteforce(x, y):
    """Kendall tau-b by counting every pair (no scipy)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    i, j = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    s = float((dx * dy).sum())                       # concordant - discordant
    denom = math.sqrt(float((dx != 0).sum()) * float((dy != 0).sum()))
    return s / denom if denom else math.nan


def ranks_avg(v):
    """Average ranks (1-based) without scipy."""
    v = np.asarray(v, float)
    out = np.empty(len(v))
    for i, x in enumerate(v):
        out[i] = (v < x).sum() + ((v == x).sum() + 1) / 2.0
    return out


def partial_via_precision(x, y, controls):
    """Partial correlation of ranks from the inverse rank-correlation matrix."""
    cols = [ranks_avg(x), ranks_avg(y)] + [ranks_avg(c) for c in controls]
    prec = np.linalg.inv(np.corrcoef(np.vstack(cols)))
    return -prec[0, 1] / math.sqrt(prec[0, 0] * prec[1, 1])


def json_clean(obj):
    json.dumps(obj, allow_nan=False)  # raises on NaN / numpy types
    return True


# --------------------------------------------------------------------------------------
# within_group_tau
# --------------------------------------------------------------------------------------


def test_within_group_tau_matches_manual_computation():
    rng = np.random.default_rng(1)
    # group A: 10 cells, group B: 12 cells (with ties), group C: 3 cells (below min_size),
    # group D: 10 cells with a constant score (tau undefined)
    sizes = {"A": 10, "B": 12, "C": 3, "D": 10}
    groups = np.concatenate([[k] * v for k, v in sizes.items()])
    perm = rng.permutation(len(groups))                  # interleave the groups
    groups = groups[perm]
    scores = np.round(rng.normal(size=len(groups)), 1)
    acc = rng.normal(size=len(groups))
    scores[groups == "D"] = 3.0
    # a NaN score in A removes it from A (then 9 < 10: A is excluded) -> put it in B instead
    b_pos = np.flatnonzero(groups == "B")
    scores[b_pos[0]] = np.nan

    w = within_group_tau(scores, acc, groups, min_size=10)

    a_mask = groups == "A"
    b_mask = (groups == "B") & ~np.isnan(scores)          # 11 cells left
    t_a = tau_b_bruteforce(scores[a_mask], acc[a_mask])
    t_b = tau_b_bruteforce(scores[b_mask], acc[b_mask])
    expected = (10 * t_a + 11 * t_b) / 21
    assert w["tau"] == pytest.approx(expected, abs=1e-12)
    assert w["n_groups"] == 2 and w["n_cells"] == 21
    assert w["n_groups_small"] == 1 and w["n_cells_small"] == 3
    assert w["n_groups_undefined"] == 1 and w["n_groups_constant_score"] == 1
    assert w["n_dropped_nan"] == 1 and w["n"] == len(groups) - 1
    assert w["n_groups_total"] == 4
    assert w["score_constant_within_groups"] is False
    assert json_clean(w)

    # min_size 3 brings group C in
    w3 = within_group_tau(scores, acc, groups, min_size=3)
    c_mask = groups == "C"
    t_c = tau_b_bruteforce(scores[c_mask], acc[c_mask])
    assert w3["tau"] == pytest.approx((10 * t_a + 11 * t_b + 3 * t_c) / 24, abs=1e-12)
    assert w3["n_groups"] == 3 and w3["n_cells"] == 24


def test_within_group_tau_numeric_groups_and_function_of_group():
    rng = np.random.default_rng(2)
    p = rng.integers(0, 5, size=200).astype(float) * 0.1
    acc = p + rng.normal(size=200)
    w = within_group_tau(np.exp(-p), acc, np.round(p, 6))   # score: a function of the group
    assert w["score_constant_within_groups"] is True
    assert w["tau"] is None and w["n_groups"] == 0
    assert w["n_groups_undefined"] == w["n_groups_total"] == 5


def test_within_group_tau_errors():
    with pytest.raises(RlnasError):
        within_group_tau([1, 2, 3], [1, 2], [0, 0, 0])
    with pytest.raises(RlnasError):
        within_group_tau([1, 2, 3], [1, 2, 3], [0, 0])
    with pytest.raises(RlnasError):
        within_group_tau([1, 2, 3], [1, 2, 3], [0, 0, 0], min_size=1)
    with pytest.raises(RlnasError):
        within_group_tau([1, 2, 3], [1, np.nan, 3], [0, 0, 0])
    with pytest.raises(RlnasError):
        within_group_tau([1, 2, 3], [1, 2, 3], [0, np.nan, 0])
    with pytest.raises(RlnasError):
        within_group_tau("abc", [1, 2, 3], [0, 0, 0])


# --------------------------------------------------------------------------------------
# partial correlations
# --------------------------------------------------------------------------------------


def test_partial_spearman_matches_inverse_correlation_matrix():
    rng = np.random.default_rng(3)
    n = 300
    z1 = rng.normal(size=n)
    z2 = rng.exponential(size=n)
    x = z1 + 0.5 * z2 + rng.normal(size=n)
    y = 2 * z1 - z2 + 0.3 * x + rng.normal(size=n)
    ref1 = partial_via_precision(x, y, [z1])
    ref2 = partial_via_precision(x, y, [z1, z2])
    assert partial_rank_correlation(x, y, z1) == pytest.approx(ref1, abs=1e-10)
    assert partial_rank_correlation(x, y, [z1, z2]) == pytest.approx(ref2, abs=1e-10)
    assert partial_rank_correlation(x, y, np.column_stack([z1, z2])) == pytest.approx(ref2,
                                                                                   abs=1e-10)
    assert abs(ref1 - ref2) > 1e-3                        # the second control matters

    # with ties (discrete controls and scores), average ranks on both sides
    zt = rng.integers(0, 6, size=n).astype(float)
    xt = np.round(x, 0)
    assert partial_rank_correlation(xt, y, zt) == pytest.approx(
        partial_via_precision(xt, y, [zt]), abs=1e-10)

    # NaN scores are dropped pairwise
    xn = x.copy()
    xn[[0, 5, 9]] = np.nan
    keep = ~np.isnan(xn)
    assert partial_rank_correlation(xn, y, z1) == pytest.approx(
        partial_via_precision(x[keep], y[keep], [z1[keep]]), abs=1e-10)


def test_partial_kendall_matches_formula_with_bruteforce_taus():
    rng = np.random.default_rng(4)
    n = 80
    z = rng.normal(size=n)
    x = np.round(z + rng.normal(size=n), 1)
    y = z + 0.5 * x + rng.normal(size=n)
    txy, txz, tyz = tau_b_bruteforce(x, y), tau_b_bruteforce(x, z), tau_b_bruteforce(y, z)
    expected = (txy - txz * tyz) / math.sqrt((1 - txz ** 2) * (1 - tyz ** 2))
    assert partial_kendall(x, y, z) == pytest.approx(expected, abs=1e-12)
    # a score that is a monotone function of the control: undefined (|t_xz| = 1)
    assert math.isnan(partial_kendall(z ** 3, y, z))


def test_partial_errors_and_undefined():
    rng = np.random.default_rng(5)
    x, y, z = rng.normal(size=(3, 20))
    assert math.isnan(partial_rank_correlation(2 * z + 1, y, z))   # score explained by z
    with pytest.raises(RlnasError):
        partial_rank_correlation(x, y[:-1], z)
    with pytest.raises(RlnasError):
        partial_rank_correlation(x, y, z[:-1])
    with pytest.raises(RlnasError):
        partial_rank_correlation(x, y, [z, z[:-1]])
    with pytest.raises(RlnasError):
        partial_rank_correlation(x[:3], y[:3], [z[:3], z[:3]])       # too few archs
    with pytest.raises(RlnasError):
        partial_kendall(x, y, np.r_[z[:-1], np.nan])


# --------------------------------------------------------------------------------------
# size-controlled report on synthetic data
# --------------------------------------------------------------------------------------


def synthetic(n=3000, seed=6):
    """accuracy = f(params) + noise; params takes 20 discrete values (big tied groups)."""
    rng = np.random.default_rng(seed)
    levels = np.sort(rng.uniform(0.1, 1.5, size=20))
    params = levels[rng.integers(0, 20, size=n)]
    flops = 140.0 * params + 3.0                           # a monotone function of params
    noise = rng.normal(size=n)
    acc = 80 + 10 * np.sqrt(params) + noise
    return rng, params, flops, noise, acc


def test_size_report_separates_size_from_signal():
    rng, params, flops, noise, acc = synthetic()
    scores = {
        "params": params,
        "flops": flops,
        "log_params": np.log(params),                                # monotone in params
        "wiggly": np.sin(17 * params),                               # a non-monotone function
        "size_plus_jitter": params + 1e-4 * rng.normal(size=len(params)),
        "noise_part": noise,                                         # what size cannot explain
    }
    rep = size_controlled_report(scores, acc, params, flops)
    assert json_clean(rep)
    s = rep["scorers"]

    for name in ("params", "flops", "log_params"):
        e = s[name]
        assert e["kendall_tau"] > 0.5
        for key in ("within_params_tau", "within_flops_tau", "partial_spearman_params",
                    "partial_spearman_flops", "partial_spearman_both", "partial_kendall_params"):
            assert e[key] == 0.0, (name, key)
        assert e["within_params_groups"] == 0
        assert any("0 by construction" in note for note in e["notes"])
    assert rep["controls"]["params"]["n_groups"] == 20

    # constant inside each group although not monotone: within-group tau 0 by construction
    assert s["wiggly"]["within_params_tau"] == 0.0
    assert any("within-params tau: 0 by construction" in nt for nt in s["wiggly"]["notes"])

    # jitter breaks the construction: the within-group tau and partials are measured, ~0
    j = s["size_plus_jitter"]
    assert j["notes"] == []
    assert j["within_params_groups"] == 20 and j["within_params_cells"] == len(params)
    assert abs(j["within_params_tau"]) < 0.06
    assert abs(j["partial_spearman_params"]) < 0.06
    assert abs(j["partial_kendall_params"]) < 0.06
    assert j["kendall_tau"] > 0.5                          # but overall it looks good

    # the noise part: weak overall, strong once size is held fixed
    e = s["noise_part"]
    assert e["within_params_tau"] > 0.5
    assert e["partial_spearman_params"] > 0.6
    assert e["partial_spearman_both"] == pytest.approx(e["partial_spearman_params"], abs=1e-9)
    assert e["partial_kendall_params"] > e["kendall_tau"]
    assert e["within_params_tau"] > e["kendall_tau"]

    text = format_size_report(rep)
    lines = text.splitlines()
    assert sum(1 for ln in lines if ln.startswith("| ")) == 1 + len(scores)
    assert "0.000*" in text and "noise_part" in text


def test_size_report_without_flops_and_with_nan_scores():
    rng, params, flops, noise, acc = synthetic(n=500, seed=7)
    sc = noise.copy()
    sc[:7] = np.nan
    rep = size_controlled_report({"noise": sc}, acc, params)
    e = rep["scorers"]["noise"]
    assert e["n"] == 493 and e["n_dropped_nan"] == 7
    assert e["within_flops_tau"] is None and e["partial_spearman_flops"] is None
    assert e["partial_spearman_both"] is None
    keep = ~np.isnan(sc)
    assert e["partial_spearman_params"] == pytest.approx(
        partial_via_precision(sc[keep], acc[keep], [params[keep]]), abs=1e-10)
    assert rep["controls"]["flops"] is None
    assert json_clean(rep)
    assert "n/a" in format_size_report(rep)


def test_size_report_errors():
    rng, params, flops, noise, acc = synthetic(n=100, seed=8)
    with pytest.raises(RlnasError):
        size_controlled_report({}, acc, params, flops)
    with pytest.raises(RlnasError):
        size_controlled_report({"x": noise[:-1]}, acc, params, flops)
    with pytest.raises(RlnasError):
        size_controlled_report({"x": noise}, acc, params[:-1], flops)
    with pytest.raises(RlnasError):
        size_controlled_report({"x": noise}, acc, params, flops[:-1])
    with pytest.raises(RlnasError):
        size_controlled_report({"x": noise}, np.r_[acc[:-1], np.nan], params, flops)


# --------------------------------------------------------------------------------------
# constrained benchmark
# --------------------------------------------------------------------------------------


def brute_force_benchmark(scores_by_name, acc, cost, budgets):
    out = {"n_eligible": [], "largest": [], "oracle": [],
           "methods": {k: [] for k in scores_by_name}}
    for b in budgets:
        elig = [i for i in range(len(cost)) if cost[i] <= b]
        out["n_eligible"].append(len(elig))
        best = None
        for i in elig:                                     # strict > keeps the first of ties
            if best is None or cost[i] > cost[best]:
                best = i
        out["largest"].append(best)
        best = None
        for i in elig:
            if best is None or acc[i] > acc[best]:
                best = i
        out["oracle"].append(best)
        for name, s in scores_by_name.items():
            best = None
            for i in elig:
                if np.isnan(s[i]):
                    continue
                if best is None or s[i] > s[best]:
                    best = i
            out["methods"][name].append(best)
    return out


def test_constrained_benchmark_matches_brute_force():
    rng = np.random.default_rng(9)
    n = 400
    cost = np.round(rng.uniform(0, 10, size=n), 0)          # ~11 tied cost levels
    acc = np.round(rng.normal(90, 3, size=n), 1)              # ties in accuracy too
    scores = {
        "a": np.round(rng.normal(size=n), 1),                 # many ties
        "b": cost + rng.normal(size=n),
        "c": np.where(rng.random(n) < 0.3, np.nan, rng.normal(size=n)),
        "neg_inf": np.where(rng.random(n) < 0.5, -np.inf, rng.normal(size=n)),
    }
    archs = [f"arch{i}" for i in range(n)]
    budgets = np.array([cost.min(), 2.0, 3.5, 7.0, 5.0, 10.0])   # unsorted on purpose
    res = constrained_benchmark(archs, scores, acc, cost, budgets)
    ref = brute_force_benchmark(scores, acc, cost, budgets)
    assert json_clean(res)
    assert res["budgets"] == [float(b) for b in budgets]
    assert res["n_eligible"] == ref["n_eligible"]
    assert res["largest"]["index"] == ref["largest"]
    assert res["oracle"]["index"] == ref["oracle"]
    for name in scores:
        assert res["methods"][name]["index"] == ref["methods"][name], name
        assert res["methods"][name]["arch"] == [archs[i] for i in ref["methods"][name]]
        assert res["methods"][name]["accuracy"] == [float(acc[i]) for i in ref["methods"][name]]
    # oracle >= every method, at every budget
    for i in range(len(budgets)):
        o = res["oracle"]["accuracy"][i]
        assert o >= res["largest"]["accuracy"][i]
        for name in scores:
            assert o >= res["methods"][name]["accuracy"][i]
        assert res["oracle"]["accuracy"][i] == max(acc[cost <= budgets[i]])
    # tie statistics of the largest baseline
    for i, b in enumerate(budgets):
        top = cost[cost <= b].max()
        assert res["largest"]["n_tied"][i] == int((cost == top).sum())
        assert res["largest"]["tied_mean_accuracy"][i] == pytest.approx(acc[cost == top].mean())
    gaps = [res["oracle"]["accuracy"][i] - res["methods"]["a"]["accuracy"][i] for i in range(6)]
    assert res["methods"]["a"]["mean_gap_to_oracle"] == pytest.approx(np.mean(gaps))

    table = format_constrained(res)
    assert len(table.splitlines()) == 2 + len(budgets) + 1
    assert "largest (tie mean)" in table and "| mean |" in table


def test_constrained_benchmark_all_nan_eligible_gives_none():
    cost = np.array([1.0, 1.0, 2.0, 3.0])
    acc = np.array([50.0, 60.0, 70.0, 80.0])
    s = np.array([np.nan, np.nan, 1.0, 0.0])
    res = constrained_benchmark(["a", "b", "c", "d"], {"s": s}, acc, cost, [1.0, 3.0])
    m = res["methods"]["s"]
    assert m["index"] == [None, 2] and m["accuracy"] == [None, 70.0] and m["arch"] == [None, "c"]
    assert m["mean_accuracy"] == 70.0
    assert res["largest"]["index"] == [0, 3]               # ties at cost 1.0 -> first
    assert json_clean(res)
    assert "n/a" in format_constrained(res)


def test_constrained_benchmark_errors():
    archs = ["a", "b", "c"]
    acc, cost = [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]
    with pytest.raises(RlnasError, match="admits no arch"):
        constrained_benchmark(archs, {"s": [1, 2, 3]}, acc, cost, [0.5, 2.0])
    with pytest.raises(RlnasError):
        constrained_benchmark(archs, {"s": [1, 2]}, acc, cost, [2.0])
    with pytest.raises(RlnasError):
        constrained_benchmark(archs, {"s": [1, 2, 3]}, acc[:2], cost, [2.0])
    with pytest.raises(RlnasError):
        constrained_benchmark(archs, {"s": [1, 2, 3]}, acc, cost[:2], [2.0])
    with pytest.raises(RlnasError):
        constrained_benchmark(archs, {"oracle": [1, 2, 3]}, acc, cost, [2.0])
    with pytest.raises(RlnasError):
        constrained_benchmark(archs, {"s": [1, 2, 3]}, acc, cost, [])
    with pytest.raises(RlnasError):
        constrained_benchmark(archs, {"s": [1, 2, 3]}, acc, cost, [np.nan])
    with pytest.raises(RlnasError):
        format_constrained({"budgets": []})


def test_budget_ladder():
    rng = np.random.default_rng(10)
    v = np.round(rng.uniform(0, 5, size=1000), 1)
    lad = budget_ladder(v, n=10)
    assert np.all(np.diff(lad) > 0)
    assert set(lad.tolist()) <= set(v.tolist())          # every limit is an attained value
    assert lad[-1] == v.max()
    assert (v <= lad[0]).mean() >= 0.1
    assert (v <= lad[0]).mean() < 0.15
    assert len(lad) == 10
    assert len(budget_ladder([1.0, 1.0, 2.0], n=10)) == 2    # ties collapse
    assert budget_ladder([3.0, 1.0], n=1).tolist() == [3.0]
    for bad in ([], [1.0, np.nan]):
        with pytest.raises(RlnasError):
            budget_ladder(bad)
    with pytest.raises(RlnasError):
        budget_ladder([1.0, 2.0], n=0)
    with pytest.raises(RlnasError):
        budget_ladder([1.0, 2.0], lo=0.0)


def test_plot_constrained_writes_png(tmp_path):
    rng = np.random.default_rng(11)
    n = 200
    cost = rng.uniform(0, 1, size=n)
    acc = rng.normal(size=n)
    res = constrained_benchmark([str(i) for i in range(n)], {"s": acc + rng.normal(size=n)},
                                acc, cost, budget_ladder(cost, 5))
    out = plot_constrained(res, tmp_path / "c.png", "title", "params (M)")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["c.png"]      # no temp file left over
    with pytest.raises(RlnasError):
        plot_constrained(res, tmp_path / "missing" / "c.png")


# --------------------------------------------------------------------------------------
# real NB201 table
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table(nb201_table_path):
    from rlnas.tables import load_nb201_table

    return load_nb201_table(nb201_table_path)


def test_real_table_size_baselines(table):
    acc = table.columns["cifar10_test"]
    p, f = table.columns["params_m"], table.columns["flops_m"]
    rep = size_controlled_report({"params": p, "flops": f}, acc, p, f)
    e = rep["scorers"]["params"]
    assert e["n"] == 15625
    assert e["kendall_tau"] == pytest.approx(0.578, abs=0.01)
    assert rep["controls"]["params"]["n_groups"] == 28
    # params is constant inside its own groups and flops is a monotone function of params
    # in NB201: nothing is left once params is held fixed
    for name in ("params", "flops"):
        for key in ("within_params_tau", "within_flops_tau", "partial_spearman_params",
                    "partial_spearman_flops", "partial_spearman_both", "partial_kendall_params"):
            assert rep["scorers"][name][key] == 0.0, (name, key)
    assert rep["scorers"]["flops"]["kendall_tau"] == pytest.approx(e["kendall_tau"], abs=1e-9)
    assert json_clean(rep)


def test_real_table_constrained_ladder(table, tmp_path):
    acc = table.columns["cifar10_test"]
    p = table.columns["params_m"]
    lad = budget_ladder(p, 10)
    res = constrained_benchmark(table.archs, {"params": p}, acc, p, lad)
    # the params scorer is the largest baseline (same tie-break: first in table order)
    assert res["methods"]["params"]["index"] == res["largest"]["index"]
    assert all(o >= m for o, m in zip(res["oracle"]["accuracy"], res["largest"]["accuracy"]))
    assert res["n_eligible"][-1] == 15625
    assert res["oracle"]["accuracy"][-1] == pytest.approx(acc.max())
    out = plot_constrained(res, tmp_path / "ladder.png", "NB201", "params budget (M)")
    assert out.stat().st_size > 1000


def test_matches_exhaustive_search_under_constraint():
    pytest.importorskip("torch")
    from rlnas.searchers import Constraint, exhaustive_search
    from rlnas.spaces import get_space

    space = get_space("nb201")
    enum = space.enumerate()
    cost = space.cost(enum)["params"]
    rng = np.random.default_rng(12)
    table_scores = np.round(rng.normal(size=len(enum)), 1)    # ties: first in enumeration order
    weights = 5 ** np.arange(5, -1, -1)

    def score_fn(archs):
        return table_scores[np.asarray(archs) @ weights]

    assert np.array_equal(enum @ weights, np.arange(len(enum)))
    strs = [space.to_str(a) for a in enum]
    budgets = budget_ladder(cost, 4)
    res = constrained_benchmark(strs, {"s": table_scores}, np.zeros(len(enum)), cost, budgets)
    for i, b in enumerate(budgets):
        found = exhaustive_search(space, score_fn, Constraint(max_params=float(b)), topk=1)
        assert res["methods"]["s"]["arch"][i] == space.to_str(found.best_arch)
