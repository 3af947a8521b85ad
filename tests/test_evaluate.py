"""`rlnas evaluate`: several scorers, several runs, size control, angle over training."""
import json

import numpy as np
import pytest

from conftest import write_npz, write_params_table
from rlnas.cli import main
from rlnas.config import load_config
from rlnas.errors import RlnasError
from rlnas.pipeline.evaluate import evaluate_runs, topk_list
from rlnas.pipeline.train import train_supernet
from rlnas.rundir import open_run
from rlnas.spaces import get_space


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("reportdata")
    write_npz(root / "train_1.npz", 64)
    out = []
    for seed in (0, 1):
        cfg = load_config("nb201-cifar10", [f"root={root}", "channels=4", "cells=1", "epochs=2",
                                            "batch=32", "data.nb201_half=false", f"seed={seed}",
                                            "train.keep_every_epochs=1"])
        path = tmp_path_factory.mktemp(f"run{seed}")
        train_supernet(cfg, path, progress=False)
        out.append(path)
    return out


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    space = get_space("nb201")
    archs = space.enumerate()
    params = space.cost(archs)["params"]
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("table") / "nb201.csv"
    with open(path, "w") as f:
        f.write("arch,cifar10_test\n")
        for a, p in zip(archs, params):
            f.write(f"{space.to_str(tuple(a))},{80 + 10 * p + rng.normal():.4f}\n")
    return path


def test_topk_list():
    assert topk_list(15625) == [10, 50, 100, 156, 781]
    assert topk_list(40) == [1, 2, 10]


def test_several_scorers_and_runs(runs, table, tmp_path):
    res = evaluate_runs([open_run(r) for r in runs], table,
                        scorers=["angle", "params", "random", "angle+params"],
                        out_dir=tmp_path, progress=False)
    assert res["num_archs"] == 15625 and len(res["per_run"]) == 2
    # the summary is the mean / std of the per-run numbers
    taus = [r["correlation"]["angle"]["columns"]["cifar10_test"]["kendall_tau"]
            for r in res["per_run"]]
    s = res["summary"]["angle"]["cifar10_test"]["kendall_tau"]
    assert s["mean"] == pytest.approx(np.mean(taus)) and s["std"] == pytest.approx(np.std(taus))
    # params: tau against the synthetic accuracy (a noisy function of params) is high, and 0 by
    # construction inside equal-params groups
    p = res["summary"]["params"]["cifar10_test"]
    assert p["kendall_tau"]["mean"] > 0.5 and p["within_params_tau"]["mean"] == 0.0
    assert abs(res["summary"]["random"]["cifar10_test"]["kendall_tau"]["mean"]) < 0.05
    for k in (10, 50, 100, 156, 781):
        assert 0 <= res["summary"]["angle"]["cifar10_test"][f"precision_at_{k}"]["mean"] <= 1
    # the tau of the epoch-2 checkpoint equals a direct computation from ranking the same cells
    ot = res["per_run"][0]["over_training"]
    assert [o["epoch"] for o in ot] == [1, 2] and ot[0]["tau_previous"] is None
    assert -1 <= ot[1]["tau_previous"] <= 1
    md = (tmp_path / "evaluation.md").read_text()
    assert "| angle+params |" in md and "within-params tau" in md
    assert (tmp_path / "plots" / "tau_vs_epoch.png").exists()
    assert (tmp_path / "plots" / "angle+params_vs_cifar10_test.png").exists()
    assert json.loads((tmp_path / "evaluation.json").read_text())["scorers"][0] == "angle"


def test_proxies_on_a_sample(runs, table, tmp_path):
    res = evaluate_runs([open_run(runs[0])], table, scorers=["synflow", "angle+synflow"],
                        sample=30, proxy={"proxy_model": {"channels": 4, "cells": 1},
                                          "batch_size": 8},
                        out_dir=tmp_path, plots=False, progress=False)
    assert res["num_archs"] == 30
    assert res["per_run"][0]["seconds"]["synflow"] > 0
    n = res["per_run"][0]["correlation"]["synflow"]["columns"]["cifar10_test"]["n"]
    assert 20 <= n <= 30  # disconnected cells may be NaN and are dropped


@pytest.mark.parametrize("kwargs, match", [
    ({"scorers": ["nope"]}, "unknown scorer"), ({"columns": ["cifar100_test"]}, "column"),
    ({"sample": 3}, "sample")])
def test_bad_input(runs, table, kwargs, match):
    with pytest.raises(RlnasError, match=match):
        evaluate_runs([open_run(runs[0])], table, plots=False, progress=False, **kwargs)


def test_cli_compares_scorers(runs, table, tmp_path, capsys):
    assert main(["evaluate", str(runs[0]), str(runs[1]), "--nasbench201", str(table),
                 "--scorers", "angle,flops", "--out", str(tmp_path), "-q"]) == 0
    out = capsys.readouterr().out
    # a short summary, not the whole evaluation.md: tau per scorer and column, the report's place
    assert "mean ± std over 2 runs" in out
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    assert "angle" in rows and "flops (baseline)" in rows and "tau within params" in rows["scorer"]
    assert f"full report: {tmp_path / 'evaluation.md'}" in out
    assert "| flops |" not in out and "Size control" not in out and len(out) < 2000
    assert (tmp_path / "evaluation.json").exists()
    assert "| flops |" in (tmp_path / "evaluation.md").read_text()
    assert main(["evaluate", str(runs[0]), "--nasbench201", str(table), "--scorers", "flops",
                 "--out", str(tmp_path), "-q", "--full"]) == 0
    assert "| flops |" in capsys.readouterr().out


def test_precision_headers_and_units_stable(runs, table, tmp_path):
    """The P@k headers are the same for every number of cells; k is said above the table; every
    column has its unit; the size-control footnotes appear once, not once per column."""
    from rlnas.pipeline.evaluate import format_markdown
    heads = []
    for sample in (30, 2000, None):
        res = evaluate_runs([open_run(runs[0])], table, scorers=["params", "random"],
                            sample=sample, out_dir=tmp_path, plots=False, progress=False)
        md = format_markdown(res)
        head = next(line for line in md.splitlines() if line.startswith("| scorer | tau |"))
        heads.append(head)
        assert "P@1% = top" in md and "top-1 acc (%)" in head and "time (s)" in head
        assert "| budget |" not in md and "limit (M params)" in md
        # NB201's FLOPs order the cells as params do: said once, the FLOPs ladder not repeated
        assert md.count("FLOPs order the") == 1 and "limit (M FLOPs)" not in md
        notes = [line for line in md.splitlines() if line.startswith("\\* ")]
        assert len(notes) == len(set(notes))
    assert heads[0] == heads[1] == heads[2]
    assert "| P@10 | P@50 | P@100 | P@1% | P@5% |" in heads[0]


def test_constrained_ladder(runs, table, tmp_path):
    res = evaluate_runs([open_run(runs[0])], table, scorers=["angle", "params"],
                        out_dir=tmp_path, progress=False, budgets=5)
    cons = res["per_run"][0]["constrained"]["params"]
    assert 1 <= len(cons["budgets"]) <= 5
    oracle = cons["oracle"]["accuracy"]
    for name in ("angle", "params"):
        accs = cons["methods"][name]["accuracy"]
        assert all(a <= o + 1e-9 for a, o in zip(accs, oracle))
    # the params scorer picks the largest cell under every limit
    assert cons["methods"]["params"]["cost"] == cons["largest"]["cost"]
    assert (tmp_path / "plots" / "constrained_params_cifar10_test.png").exists()
    assert not (tmp_path / "plots" / "constrained_flops_cifar10_test.png").exists()  # the same
    assert "Constrained search" in (tmp_path / "evaluation.md").read_text()


def test_report_on_the_real_table_says_each_thing_once_and_fits_the_terminal(
        runs, nb201_table_path, tmp_path, capsys):
    """Six scorers against NB201's six columns: the terminal summary is one row per scorer
    within 100 columns (it was ~230 wide); evaluation.md has one size-control table (it had one
    per column) and one params ladder (the FLOPs one repeated it); no ladder picks a
    disconnected cell (the params count picked 10 % cells at several limits)."""
    from rlnas.spaces.nb201 import nb201_disconnected
    scorers = "angle,angle_sum,distance,distance_sum,params,flops"
    assert main(["evaluate", str(runs[0]), "--nasbench201", str(nb201_table_path),
                 "--scorers", scorers, "--out", str(tmp_path), "-q"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    table = lines[lines.index(next(x for x in lines if x.startswith("scorer "))):][:7]
    assert [x.split("  ")[0] for x in table[1:]] == [
        "angle", "angle_sum", "distance", "distance_sum", "params (baseline)", "flops (baseline)"]
    assert "tau, all 6 columns" in table[0]
    summary = [x for x in lines if str(tmp_path) not in x and "|" not in x
               and not x.startswith("weak answer:")]  # the advice is one line by design
    assert all(len(x) <= 100 for x in summary), out
    md = (tmp_path / "evaluation.md").read_text()
    assert md.count("## Size control") == 1 and md.count("Size control") == 1
    assert md.count("## Constrained search") == 1 and "pick under a flops limit" not in md
    assert "FLOPs order the 15625 cells exactly as params do" in md
    assert "Neither a scorer nor largest ever picks one of the 341 disconnected cells" in md
    res = json.loads((tmp_path / "evaluation.json").read_text())
    assert res["flops_ranks_as_params"] is True
    ladder = res["per_run"][0]["constrained"]["params"]
    for name, entry in ladder["methods"].items():
        assert not nb201_disconnected([a for a in entry["arch"] if a]).any(), name
    assert ladder["methods"]["params"]["accuracy"] == ladder["largest"]["accuracy"]
    assert min(ladder["methods"]["params"]["accuracy"]) > 80
    assert not (tmp_path / "plots" / "constrained_flops_cifar10_test.png").exists()


# --- the weak-answer line names only what would change this run's outcome ---------------------
def _evaluation(taus):
    """An evaluation result with one column ``c`` and each scorer's mean Kendall tau on it."""
    return {"scorers": list(taus), "columns": ["c"],
            "summary": {n: {"c": {"kendall_tau": {"mean": t}}} for n, t in taus.items()}}


def _weak_run(tmp_path, scorer):
    from types import SimpleNamespace
    cfg = {"space": "mobilenet", "search": {"scorer": scorer}, "labels": {"kind": "true"}}
    return SimpleNamespace(path=tmp_path, config=cfg, info={})


def test_weak_line_warns_only_about_the_scorer_that_picked_the_answer(tmp_path):
    from rlnas.advice import weak_line
    run = _weak_run(tmp_path, "distance")
    # angle was only added for comparison: below params, but it did not pick the answer
    assert weak_line(run, evaluation=_evaluation({"distance": 0.5, "angle": 0.1,
                                                  "params": 0.3})) is None
    line = weak_line(run, evaluation=_evaluation({"distance": 0.2, "angle": 0.1, "params": 0.3}))
    assert line.startswith("weak answer: distance ranks") and "angle" not in line
    # the search's scorer (rlnas search --scorer) is the one that picked, not the config's
    line = weak_line(run, search={"scorer": "angle"},
                     evaluation=_evaluation({"distance": 0.5, "angle": 0.1, "params": 0.3}))
    assert line.startswith("weak answer: angle ranks")


def test_weak_line_does_not_advise_the_scorer_the_run_already_uses(tmp_path):
    from rlnas.advice import weak_line
    from rlnas.config import CROSS_SPACE_SCORER
    run = _weak_run(tmp_path, CROSS_SPACE_SCORER)
    line = weak_line(run, evaluation=_evaluation({CROSS_SPACE_SCORER: 0.1, "params": 0.3}))
    assert "To improve:" in line and "score by" not in line and "train.epochs" in line
    other = weak_line(_weak_run(tmp_path, "angle"),
                      evaluation=_evaluation({"angle": 0.1, "params": 0.3}))
    assert f"score by {CROSS_SPACE_SCORER}" in other


def test_weak_line_advises_a_scorer_this_evaluation_measured_better(tmp_path):
    from rlnas.advice import weak_line
    run = _weak_run(tmp_path, "angle")
    line = weak_line(run, evaluation=_evaluation({"angle": 0.1, "synflow": 0.6, "snip": 0.4,
                                                  "params": 0.3}))
    assert "score by synflow" in line and "--scorer synflow" in line and "snip" not in line


def test_plots_mark_the_oracle_use_units_and_the_headline_column(runs, tmp_path, monkeypatch):
    """Each scatter marks the best cell of its column (the oracle) next to the searched cell
    and the params pick, its x axis has the scorer's unit; tau_vs_epoch follows the headline
    column (CIFAR-10 test), not the table's first (CIFAR-10 valid)."""
    from rlnas.pipeline import evaluate as ev
    table = write_params_table(tmp_path / "t.csv", (("cifar10_valid", 79), ("cifar10_test", 80)))
    scatters, taus = [], []
    monkeypatch.setattr(ev, "scatter_plot", lambda *a, **k: scatters.append((a, k)))
    monkeypatch.setattr(ev, "tau_over_training_plot", lambda *a, **k: taus.append(a))
    res = evaluate_runs([open_run(runs[0])], table, scorers=["angle", "params"],
                        out_dir=tmp_path / "out", progress=False)
    assert len(scatters) == 4
    space = get_space("nb201")
    strs = [space.to_str(tuple(a)) for a in space.enumerate()]
    for (scores, acc, path), kw in scatters:
        assert kw["marks"]["best cell (oracle)"] == strs[int(np.argmax(acc))]
        assert list(kw["marks"])[-1] == "best cell (oracle)"
        assert kw["xlabel"] == ("params (M)" if path.name.startswith("params") else "angle (rad)")
    (per_run, cols, path), = taus
    assert cols[0] == "cifar10_test" and res["columns"][0] == "cifar10_valid"
