"""`rlnas check` (rlnas.pipeline.check): picks, verdict, resume and bad input, on a tiny digits
run."""
import json

import numpy as np
import pytest

pytest.importorskip("sklearn")

import rlnas  # noqa: E402
from rlnas.cli import main  # noqa: E402
from rlnas.errors import RlnasError  # noqa: E402
from rlnas.pipeline.check import pick_archs, verdict  # noqa: E402

TINY = {"epochs": 1, "model.channels": 4, "model.cells": 1, "data.subset": 128}
BUDGET = dict(archs=2, epochs=1, images=128, image_size=8)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("check") / "run"
    return rlnas.train("demo-digits", out, overrides=TINY, progress=False)


def test_picks_are_distinct_seeded_and_skip_zero_scores():
    scores = np.r_[np.linspace(1, 0.1, 30), 0.0, np.nan]
    picks = pick_archs(scores, 3, seed=0)
    idx = [i for _, i in picks]
    assert len(set(idx)) == 9 and [g for g, _ in picks] == ["top"] * 3 + ["middle"] * 3 + \
        ["random"] * 3
    assert idx[:3] == [0, 1, 2] and 30 not in idx and 31 not in idx
    assert picks == pick_archs(scores, 3, seed=0) and picks != pick_archs(scores, 3, seed=1)
    with pytest.raises(RlnasError, match="only 30 usable archs"):
        pick_archs(scores, 11, seed=0)


def test_verdict_names_a_winner_only_when_the_interval_excludes_zero():
    rng = np.random.default_rng(0)
    acc = np.arange(20.0)
    params, flops = rng.permutation(20), rng.permutation(20)
    perfect = verdict("s", acc, acc, params, flops)
    assert perfect["winner"] == "scorer" and perfect["difference_interval"][0] > 0
    assert "s ranks these 20 archs better" in perfect["verdict"]
    noise = verdict("s", rng.permutation(20), acc, params, flops)
    assert noise["winner"] in ("cannot_tell", "baseline")
    worse = verdict("s", -acc, acc, acc, flops)  # params perfect, scorer reversed
    assert worse["winner"] == "baseline" and "use params" in worse["verdict"]
    assert verdict("s", acc[:3], acc[:3], params[:3], flops[:3])["winner"] == "too_few"


def test_check_retrains_reports_and_resumes(run, tmp_path):
    out = tmp_path / "c1"
    rep = run.check(out=out, **BUDGET)
    assert [r["group"] for r in rep["rows"]] == ["top"] * 2 + ["middle"] * 2 + ["random"] * 2
    assert len({r["arch"] for r in rep["rows"]}) == 6
    assert all(0 <= r["test_acc"] <= 100 for r in rep["rows"])
    assert set(rep["tau"]) == {run.scorer, "params", "flops"}
    assert rep["verdict"].startswith("verdict: ")
    assert (out / "check.csv").read_text().splitlines()[0] == \
        "group,arch,score,params_m,flops_m,test_acc"
    first = (out / "check.json").read_text()
    # same seed on CPU: the same file, again from scratch elsewhere
    run.check(out=tmp_path / "c2", **BUDGET)
    assert (tmp_path / "c2" / "check.json").read_text() == first
    # resume: a finished arch is not retrained (its stored accuracy is reused as is)
    done = sorted((out / "archs").glob("*.json"))
    assert len(done) == 6
    rec = json.loads(done[0].read_text())
    rec["test_acc"] = 123.0
    done[0].write_text(json.dumps(rec))
    again = run.check(out=out, **BUDGET)
    assert 123.0 in [r["test_acc"] for r in again["rows"]]
    # another budget is another key: retrained
    other = run.check(out=out, **dict(BUDGET, epochs=2))
    assert 123.0 not in [r["test_acc"] for r in other["rows"]]


@pytest.mark.parametrize("kw, why", [
    ({"archs": 0}, "--archs must be an integer >= 1"),
    ({"epochs": 0}, "--epochs must be an integer >= 1"),
    ({"images": 0}, "--images must be an integer >= 1"),
    ({"images": 10 ** 6}, "more than the"),
    ({"channels": 0}, "--channels must be an integer >= 1"),
    ({"archs": 1.5}, "--archs must be an integer, got float 1.5"),
    ({"epochs": True}, "--epochs must be an integer, got bool True"),
    ({"seed": -1}, r"--seed must be an integer in \[0, 4294967295\], got -1"),
])
def test_bad_budgets_are_one_line_errors(run, tmp_path, kw, why):
    with pytest.raises(RlnasError, match=why):
        run.check(out=tmp_path / "bad", **dict(BUDGET, **kw))


def test_cli_check_errors_and_output(run, tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope")]) != 0
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err
    assert main(["check", str(run.path), "--archs", "2", "--epochs", "1", "--images", "128",
                 "--image-size", "8", "-q", "--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert "verdict: " in out and "Kendall tau with the retrained accuracy" in out


def _npz_folder(folder, n_train=48, n_test=24):
    folder.mkdir()
    for name, n, seed in (("train_1.npz", n_train, 0), ("test_1.npz", n_test, 1)):
        rng = np.random.default_rng(seed)
        np.savez(folder / name, x=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                 y=rng.integers(0, 10, n))
    return folder


@pytest.mark.parametrize("preset, model", [
    ("nasbench-macro-fast", []),  # a chain, ranked exhaustively
    ("darts-cifar10-fast", ["channels=4", "cells=1"]),  # sampled
])
def test_check_on_other_spaces(tmp_path, preset, model):
    """Every kind of space: an enumerable chain (its ranking) and a space too large to rank
    (a seeded sample of SAMPLE_SIZE archs); the report is the same shape."""
    data = _npz_folder(tmp_path / "data")
    run = rlnas.train(preset, tmp_path / "run", progress=False,
                      overrides=[f"root={data}", "epochs=1", "batch=16", "data.subset=null",
                                 "device=cpu", *model])
    rep = run.check(out=tmp_path / "c", archs=2, epochs=1, images=48, image_size=8)
    assert len(rep["rows"]) == 6 and len({r["arch"] for r in rep["rows"]}) == 6
    assert rep["space"] == run.space.name and rep["verdict"].startswith("verdict: ")
    for r in rep["rows"]:
        assert run.space.is_valid(run.space.from_str(r["arch"]))
    # a missing dataset: one line naming the folder and the flag to pass
    with pytest.raises(RlnasError, match="nope.*--data-root"):
        run.check(out=tmp_path / "m", archs=2, epochs=1, data_root=str(tmp_path / "nope"))


def test_check_data_root_on_bundled_digits_is_refused(run, tmp_path, capsys):
    with pytest.raises(RlnasError, match="ships inside scikit-learn"):
        run.check(out=tmp_path / "m", data_root=str(tmp_path / "nope"), **BUDGET)
    assert main(["check", str(run.path), "--data-root", str(tmp_path / "nope"), "-q",
                 "--out", str(tmp_path / "m2")]) != 0
    err = capsys.readouterr().err
    assert "scikit-learn" in err and "Traceback" not in err
