"""The Python API (``rlnas.api``): each function against the command line's files on the same run,
the example script, and a light ``import rlnas``."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")  # the digits ship with scikit-learn

import rlnas  # noqa: E402
from rlnas.cli import main as cli_main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = {"epochs": 1, "model.channels": 4, "data.subset": 256}
TINY_ARGS = ["epochs=1", "model.channels=4", "data.subset=256"]


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))


def _same(a, b, drop=("seconds", "path")):
    """JSON-equal (NaN equal to NaN), ignoring timing keys at any depth."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if k not in drop}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x
    return json.dumps(clean(a), sort_keys=True) == json.dumps(clean(b), sort_keys=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny demo-digits run trained through the API (shared by the tests below)."""
    out = tmp_path_factory.mktemp("api") / "run"
    return rlnas.train("demo-digits", out, overrides=TINY, progress=False)


def test_import_rlnas_does_not_import_torch():
    code = ("import sys, rlnas; assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'rlnas.api' not in sys.modules; print(' '.join(sorted(rlnas.__all__)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(),
                         cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "train" in out.stdout.split() and "open_run" in out.stdout.split()


def test_public_names_resolve_and_are_documented():
    for name in rlnas.__all__:
        obj = getattr(rlnas, name)
        if callable(obj):
            assert obj.__doc__ and obj.__doc__.strip(), name
    for method in ("rank", "ranking", "search", "evaluate", "get_scorer", "checkpoints"):
        assert getattr(rlnas.Run, method).__doc__, method
    assert set(rlnas.__all__) <= set(dir(rlnas))
    with pytest.raises(AttributeError):
        rlnas.no_such_name  # noqa: B018


def test_train_is_the_cli_train(run, tmp_path):
    assert run.path.is_dir() and run.space.name == "nb201" and run.scorer == "distance_sum"
    assert run.train_result["epoch"] == 1 and not run.train_result.get("resumed")
    assert run.config["train"]["epochs"] == 1 and run.config["data"]["subset"] == 256
    cli_dir = tmp_path / "cli"
    assert cli_main(["train", "demo-digits", *TINY_ARGS, "--out", str(cli_dir), "-q"]) == 0
    assert (cli_dir / "config.yaml").read_text() == (run.path / "config.yaml").read_text()
    a = torch.load(cli_dir / "ckpt" / "last.pt", map_location="cpu", weights_only=False)["model"]
    b = torch.load(run.path / "ckpt" / "last.pt", map_location="cpu", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert "init.pt" in run.checkpoints() and "last.pt" in run.checkpoints()


def test_train_again_resumes_from_the_run_directory(run):
    again = rlnas.train(run.path, progress=False)  # its saved config.yaml, out = the run
    assert again.path == run.path and again.train_result.get("already_done")
    assert rlnas.train("demo-digits", run.path, overrides=TINY,
                       progress=False).train_result.get("already_done")


def test_overrides_as_mapping_or_strings():
    a = rlnas.load_config("demo-digits", {"epochs": 3, "channels": 4, "data.subset": None,
                                          "data.augment": False})
    b = rlnas.load_config("demo-digits", ["epochs=3", "channels=4", "data.subset=null",
                                          "data.augment=false"])
    assert a == b and a["train"]["epochs"] == 3 and a["data"]["augment"] is False
    with pytest.raises(rlnas.RlnasError, match="unknown config key"):
        rlnas.load_config("demo-digits", {"model.nope": 1})
    with pytest.raises(rlnas.RlnasError, match="mapping or a list"):
        rlnas.load_config("demo-digits", "epochs=3")
    with pytest.raises(rlnas.RlnasError, match="out of range"):
        rlnas.train("demo-digits", "/nonexistent/never", overrides={"epochs": 0})
    assert not Path("/nonexistent/never").exists()


def test_rank_returns_the_cli_ranking(run):
    assert cli_main(["rank", str(run.path)]) == 0
    cli_csv = (run.path / "ranking.csv").read_text()
    ranking = run.rank()
    assert (run.path / "ranking.csv").read_text() == cli_csv  # same file, same code path
    rows = [line.split(",") for line in cli_csv.splitlines()]
    assert rows[0] == ["rank", "arch", "distance_sum", "params_m", "flops_m"]
    assert len(ranking) == len(rows) - 1 == 15625 and ranking.scorer == "distance_sum"
    assert ranking.arch == [r[1] for r in rows[1:]]
    assert np.array_equal(ranking.score, [float(r[2]) for r in rows[1:]])
    assert np.array_equal(ranking.params_m, [float(r[3]) for r in rows[1:]])
    assert np.all(np.diff(ranking.score) <= 0)  # best first
    assert ranking.best == ranking[0] == ranking.top(3)[0]
    assert ranking[0]["arch"] == ranking.info["best_arch"]
    assert ranking.top(3)[2]["rank"] == 3 and len(ranking.to_records()) == 15625
    # the data are the scorer's own scores (to the 12 digits the file keeps)
    direct = run.get_scorer()(ranking.arch)
    np.testing.assert_allclose(ranking.score, direct, rtol=1e-10, atol=1e-15)
    # another scorer: ranking-<scorer>.csv, as `rlnas rank --scorer`
    assert cli_main(["rank", str(run.path), "--scorer", "params"]) == 0
    cli_params = (run.path / "ranking-params.csv").read_text()
    by_params = run.rank(scorer="params")
    assert by_params.path == run.path / "ranking-params.csv"
    assert by_params.path.read_text() == cli_params
    assert run.ranking("params").arch == by_params.arch  # read back without scoring
    assert rlnas.open_run(run.path).ranking().arch == ranking.arch


def test_search_returns_result_json(run):
    assert cli_main(["search", str(run.path)]) == 0
    cli_result = json.loads((run.path / "result.json").read_text())
    res = run.search()
    assert _same(res, cli_result)
    assert _same(res, json.loads((run.path / "result.json").read_text()), drop=())
    assert res["top"][0]["arch"] and res["scorer"] == "distance_sum"
    assert res["top"][0]["distance_sum"] == max(t["distance_sum"] for t in res["top"])
    # options map onto the CLI's flags
    assert cli_main(["search", str(run.path), "--method", "random", "--max-params", "0.5",
                     "--seed", "3", "--scorer", "params"]) == 0
    cli_result = json.loads((run.path / "result.json").read_text())
    res = run.search(method="random", max_params=0.5, seed=3, scorer="params")
    assert _same(res, cli_result) and res["method"] == "random"
    assert all(t["params_m"] <= 0.5 for t in res["top"])
    # results read back without searching: the latest, or one by its name / file
    assert _same(run.result(), res, drop=())
    if "file" in res:  # named searches (`rlnas search --name`)
        assert _same(run.result(res["file"]), res, drop=())
        named = run.search(method="random", seed=3, scorer="params", name="mine")
        assert named["file"] == "result-mine.json" and _same(run.result("mine"), named, drop=())
    with pytest.raises(rlnas.RlnasError, match="no search result"):
        run.result("nope")


def test_evaluate_returns_evaluation_json(run, tmp_path, nb201_table_path):
    found = run.search(method="random", seed=5)
    which = {"result": found["file"]} if "file" in found else {}  # the search to report
    # default scorers: the run's and the params baseline (as `rlnas run`); Run.evaluate is
    # rlnas.evaluate([run], ...)
    res = run.evaluate(nb201_table_path, sample=200, out=tmp_path / "api", progress=False,
                       **which)
    assert res["scorers"] == ["distance_sum", "params"] and res["num_archs"] == 200
    assert res["search"]["found"][0]["arch"] == found["top"][0]["arch"]
    assert _same(res, json.loads((tmp_path / "api" / "evaluation.json").read_text()), drop=())
    assert (tmp_path / "api" / "evaluation.md").exists()
    assert cli_main(["evaluate", str(run.path), "--nasbench201", str(nb201_table_path),
                     "--scorers", "distance_sum,params", "--sample", "200",
                     "--out", str(tmp_path / "cli"), "-q"]
                    + (["--result", which["result"]] if which else [])) == 0
    assert _same(res, json.loads((tmp_path / "cli" / "evaluation.json").read_text()))
    with pytest.raises(rlnas.RlnasError, match="nasbench201"):
        run.evaluate()  # the demo preset names no table


def test_scorers_and_spaces_by_name(run):
    names = rlnas.list_scorers()
    assert {"angle", "angle_sum", "params", "flops", "random", "synflow"} <= set(names)
    described = rlnas.list_scorers(describe=True)
    assert list(described) == names and all(described.values())
    space = rlnas.get_space("nb201")
    assert "nb201" in rlnas.list_spaces() and "demo-digits" in rlnas.list_presets()
    arch = space.to_str(space.sample(np.random.default_rng(0)))
    params = rlnas.get_scorer("params")  # run-free: the benchmark network's defaults
    expected = space.cost(np.array([space.from_str(arch)]))["params"][0]
    assert params(arch)[0] == pytest.approx(expected)
    assert params([arch, arch]).shape == (2,)
    with pytest.raises(rlnas.RlnasError, match="needs a trained supernet"):
        rlnas.get_scorer("angle")
    with pytest.raises(rlnas.RlnasError, match="unknown scorer"):
        rlnas.get_scorer("nope", run)
    angle = rlnas.get_scorer("angle_sum", run.path)  # a run by its directory
    assert np.isfinite(angle([arch])).all()


def test_open_run_errors(tmp_path):
    with pytest.raises(rlnas.RlnasError, match="not found"):
        rlnas.open_run(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(rlnas.RlnasError, match="is a file"):
        rlnas.open_run(tmp_path / "file")
    with pytest.raises(rlnas.RlnasError, match="not an rlnas run"):
        rlnas.open_run(tmp_path)


def test_example_script_runs(tmp_path):
    out = tmp_path / "ex"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "api_example.py"), "--out",
                           str(out), "--epochs", "1", "--subset", "256"], capture_output=True,
                          text=True, env=_env(), cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ranking = rlnas.open_run(out).ranking()
    result = json.loads((out / "result.json").read_text())
    for rec in ranking.top(3):
        assert rec["arch"] in proc.stdout
    assert result["top"][0]["arch"] in proc.stdout
    assert "ranked 15625 cells by distance_sum" in proc.stdout


def test_ranking_read_refuses_other_files(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(rlnas.RlnasError, match="not a ranking file"):
        rlnas.Ranking.read(bad)
    with pytest.raises(rlnas.RlnasError, match="not found"):
        rlnas.Ranking.read(tmp_path / "missing.csv")
    good = tmp_path / "r.csv"
    good.write_text("rank,arch,angle,params_m,flops_m\n1,a,0.5,1.0,2.0\n2,b,nan,0.5,1.0\n")
    r = rlnas.Ranking.read(good)
    assert r.scorer == "angle" and r.arch == ["a", "b"] and r[1]["params_m"] == 0.5
    assert r[-1]["arch"] == "b" and np.isnan(r.score[1]) and "a" in repr(r)
