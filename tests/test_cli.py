"""What `rlnas` tells its user (issue 12): `rlnas train RUN` continues a run from its saved
config, searches are named and do not replace each other, `rlnas run` prints a short summary,
a weak answer is said in one line, the `cells` alias works for every space, and ranking.csv and
result.json resolve ties the same way."""
import csv
import json
import shutil

import numpy as np
import pytest
import torch

from conftest import write_npz, write_params_table
from rlnas.advice import chance_note, weighted_op_note
from rlnas.cli import main
from rlnas.config import load_config
from rlnas.errors import RlnasError
from rlnas.pipeline.rank import best_first
from rlnas.pipeline.search import search_name
from rlnas.spaces import get_space

TINY = ["channels=4", "cells=1", "epochs=1", "batch=32", "data.nb201_half=false"]


@pytest.fixture(scope="module")
def npz_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_npz(root / "train_1.npz", 64, seed=0)
    return root


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A ground truth that is a function of the params count: no scorer beats params on it."""
    return write_params_table(tmp_path_factory.mktemp("table") / "nb201.csv",
                              (("cifar10_valid", 79), ("cifar10_test", 80)))


@pytest.fixture(scope="module")
def ran(npz_root, table, tmp_path_factory):
    """(run directory, what `rlnas run` printed)."""
    run = tmp_path_factory.mktemp("run") / "run"
    capture = tmp_path_factory.mktemp("out") / "stdout.txt"
    import contextlib
    with open(capture, "w") as f, contextlib.redirect_stdout(f):
        code = main(["run", "nb201-cifar10", f"root={npz_root}", *TINY,
                     f"nasbench201={table}", "--out", str(run), "-q"])
    assert code == 0
    return run, capture.read_text()


def test_run_prints_a_short_summary(ran):
    run, out = ran
    lines = out.strip().splitlines()
    # no Markdown report on the terminal: a table of a few lines, the search, the report's place
    assert len(out) < 2500 and "## " not in out and "Size control" not in out
    # one row per scorer on the headline column (CIFAR-10 test), within 100 columns
    assert lines[lines.index(next(x for x in lines if x.startswith("Scorers vs")))].startswith(
        "Scorers vs NAS-Bench-201 on cifar10_test (15625 cells, one run):")
    head = next(line for line in lines if line.startswith("scorer "))
    assert head.split("  ")[0] == "scorer" and "tau within params" in head
    assert "top pick (%)" in head and "tau, all 2 columns" in head
    assert any(line.startswith("angle ") for line in lines)
    assert any(line.startswith("params (baseline) ") for line in lines)
    assert not any(line.startswith("cifar10_valid") for line in lines)
    i = next(i for i, x in enumerate(lines) if x.startswith("searched cell: "))
    assert "% on cifar10_test, from result-evolution-angle.json" in lines[i]
    assert lines[i + 1].strip().startswith("|") and "evolution search by angle" in lines[i + 2]
    assert all(len(x) <= 100 for x in lines if str(run) not in x and "|" not in x
               and not x.startswith(("weak answer:", f"{run}")))
    assert f"full report: {run / 'evaluation.md'}" in out
    # the table's accuracy is the params count: the angle is below that baseline, said last
    # and one line, the last, says so (with the supernet at chance on its random labels)
    assert lines[-1].startswith("weak answer: angle ranks the cells worse than the params count")
    assert "never left chance" in lines[-1] and "To improve:" in lines[-1]
    assert "nb201-cifar10-fast" in lines[-1]
    assert sum(line.startswith("weak answer") for line in lines) == 1
    md = (run / "evaluation.md").read_text()
    assert "Searched cell: from `result-evolution-angle.json` (evolution search by angle" in md


def test_search_plot_marks_its_best_arch_with_units(ran, tmp_path, monkeypatch):
    from rlnas.pipeline import search as search_mod
    run = tmp_path / "run"
    shutil.copytree(ran[0], run)
    calls = []
    monkeypatch.setattr(search_mod, "scatter_plot", lambda *a, **k: calls.append((a, k)))
    assert main(["search", str(run), "--method", "exhaustive", "-q"]) == 0
    ((flops, scores, path), kw), = calls
    assert path.name == "search-exhaustive-angle_score_vs_flops.png"
    assert kw["marks"] == {"best (the search's pick)": 0} and scores[0] == max(scores)
    assert kw["xlabel"] == "FLOPs (M)" and kw["ylabel"] == "angle (rad)"
    best = json.loads((run / "result.json").read_text())["top"][0]
    assert kw["archs"][0] == best["arch"] and flops[0] == pytest.approx(best["flops_m"])


def test_searches_do_not_replace_each_other(ran, table, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(ran[0], run)
    first = json.loads((run / "result.json").read_text())
    assert first["file"] == "result-evolution-angle.json"
    assert main(["search", str(run), "--method", "exhaustive"]) == 0
    assert main(["search", str(run), "--method", "random", "--max-params", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "result-random-angle-maxp0.5.json (and result.json, the latest search)" in out
    for name in ("evolution-angle", "exhaustive-angle", "random-angle-maxp0.5"):
        res = json.loads((run / f"result-{name}.json").read_text())
        assert res["name"] == name and (run / f"visited-{name}.csv").exists()
        assert (run / "plots" / f"search-{name}_score_vs_flops.png").exists()
    # one plot per search, named after it: no copy of the latest under a shared name
    assert not (run / "plots" / "search_score_vs_flops.png").exists()
    assert json.loads((run / "result-evolution-angle.json").read_text()) == first
    latest = json.loads((run / "result.json").read_text())
    assert latest["file"] == "result-random-angle-maxp0.5.json" and latest["max_params"] == 0.5
    assert (run / "visited.csv").read_text() == \
        (run / "visited-random-angle-maxp0.5.csv").read_text()
    # evaluate reports the latest search by default, and any search by name
    argv = ["evaluate", str(run), "--nasbench201", str(table), "--scorers", "params", "-q"]
    assert main(argv) == 0
    assert "from `result-random-angle-maxp0.5.json` (random search by angle, max_params=0.5 M" \
        in (run / "evaluation.md").read_text()
    assert main(argv + ["--result", "exhaustive-angle"]) == 0
    out = capsys.readouterr().out
    assert "from result-exhaustive-angle.json:" in out and "(exhaustive search by angle" in out
    assert json.loads((run / "evaluation.json").read_text())["search"]["method"] == "exhaustive"
    assert main(argv + ["--result", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "result-exhaustive-angle.json" in err
    # a path to a result file works (one resolution: Run.result_file); another file is refused
    assert main(argv + ["--result", str(run / "result-exhaustive-angle.json")]) == 0
    assert "from result-exhaustive-angle.json:" in capsys.readouterr().out
    assert main(argv + ["--result", str(run / "run.json")]) == 2
    assert "run.json is not a search result" in capsys.readouterr().err
    # a name of one's own; a name that is a path is refused
    assert main(["search", str(run), "--method", "random", "--name", "mine"]) == 0
    assert (run / "result-mine.json").exists()
    assert main(["search", str(run), "--name", "../x"]) == 2


def test_search_name():
    assert search_name("evolution", "angle_sum") == "evolution-angle_sum"
    assert search_name("random", "angle+synflow", 0.5, 80, seed=3, final="epoch_2.pt",
                       run_seed=0) == "random-angle+synflow-maxp0.5-maxf80-seed3-epoch_2"
    assert search_name("random", "angle", seed=0, run_seed=0) == "random-angle"


def test_best_first_breaks_ties_by_genome():
    scores = np.array([1.0, 2.0, 2.0, np.nan, 2.0])
    archs = np.array([[0, 1], [1, 0], [0, 2], [0, 0], [0, 3]])
    assert best_first(scores, archs).tolist() == [2, 4, 1, 0, 3]


def test_ranking_and_search_agree_on_ties(ran, tmp_path, capsys):
    """params ties thousands of NB201 cells; the first row of the ranking and the best of any
    search are the same cell among the cells that search scored."""
    run = tmp_path / "run"
    shutil.copytree(ran[0], run)
    assert main(["rank", str(run), "--scorer", "params"]) == 0
    with open(run / "ranking-params.csv") as f:
        ranking = [r["arch"] for r in csv.DictReader(f)]
    for method in ("exhaustive", "evolution", "random"):
        assert main(["search", str(run), "--method", method, "--scorer", "params"]) == 0
        res = json.loads((run / "result.json").read_text())
        with open(run / res["visited_file"]) as f:
            visited = {r["arch"] for r in csv.DictReader(f)}
        first = next(a for a in ranking if a in visited)
        assert res["top"][0]["arch"] == first, method
        if method == "exhaustive":
            assert first == ranking[0]
    capsys.readouterr()


def test_cells_alias_for_every_space():
    assert load_config("nb201-cifar10", ["cells=2"])["model"]["cells"] == 2
    assert load_config("darts-cifar10", ["cells=5"])["model"]["layers"] == 5
    assert load_config("darts-cifar10", ["layers=6"])["model"]["layers"] == 6
    assert load_config("darts-cifar10-fast", ["scorer=angle"])["search"]["scorer"] == "angle"
    with pytest.raises(RlnasError, match="unknown config key 'model.cells'"):
        load_config("mobilenet-imagenet", ["cells=2"])


def _train(npz_root, out, *extra):
    return main(["train", "nb201-cifar10", f"root={npz_root}", *TINY, *extra, "--out", str(out),
                 "-q"])


def test_train_continues_a_run_from_its_directory(npz_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(npz_root, run, "train.keep_every_epochs=1") == 0
    capsys.readouterr()
    # no override retyped, no --out: the saved config and the run directory itself
    assert main(["train", str(run), "-q"]) == 0
    assert "training already complete" in capsys.readouterr().out
    assert main(["train", str(run), "device=cpu", "-q"]) == 0  # changes nothing: accepted
    capsys.readouterr()
    assert main(["train", str(run), "channels=8", "-q"]) == 2
    assert "trained with model.channels=4, not 8" in capsys.readouterr().err
    # more epochs under a decaying schedule: refused, with the reason
    assert main(["train", str(run), "epochs=2", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "would change the learning rate of the steps already trained" in err
    assert "train.lr_min equal to train.lr" in err
    assert main(["train", str(run), "epochs=2", "train.lr_schedule=linear", "-q"]) == 2
    capsys.readouterr()


def test_extending_epochs_at_a_constant_rate_is_exact(npz_root, tmp_path, capsys):
    const = ["train.lr_min=0.025", "lr=0.025"]
    run = tmp_path / "extended"
    assert _train(npz_root, run, *const) == 0
    assert main(["train", str(run), "epochs=2", "-q"]) == 0
    assert "trained 2 epochs (resumed)" in capsys.readouterr().out
    assert load_config(str(run / "config.yaml"))["train"]["epochs"] == 2
    straight = tmp_path / "straight"
    assert _train(npz_root, straight, *const, "epochs=2") == 0
    a = torch.load(run / "ckpt" / "last.pt", weights_only=False)["model"]
    b = torch.load(straight / "ckpt" / "last.pt", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with open(run / "metrics.csv") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]
    # fewer epochs than trained: refused
    assert main(["train", str(run), "epochs=1", "-q"]) == 2
    assert "below the 2 the run was started with" in capsys.readouterr().err


def test_bare_preset_name_stays_the_preset(tmp_path, monkeypatch):
    from rlnas.config import run_config_path
    (tmp_path / "nb201-cifar10").mkdir()
    (tmp_path / "nb201-cifar10" / "config.yaml").write_text("space: nb201\n")
    monkeypatch.chdir(tmp_path)
    assert run_config_path("nb201-cifar10") is None
    assert run_config_path("./nb201-cifar10") is not None


def test_weak_answer_notes(tmp_path):
    darts = get_space("darts")
    parameter_free = [3] * 28  # skip_connect everywhere
    search = {"space": "darts", "top": [{"genome": parameter_free}]}
    note = weighted_op_note({"space": "darts"}, search)
    assert len(note) == 1 and "no weighted op in either cell" in note[0]
    convs = [4] * 14 + [3] * 14
    assert weighted_op_note({"space": "darts"}, {"space": "darts",
                                                 "top": [{"genome": convs}]}) == []
    assert darts.num_genes == 28
    from types import SimpleNamespace

    from rlnas.advice import weak_line
    line = weak_line(SimpleNamespace(path=tmp_path, config={"space": "darts"}, info={}), search)
    assert line.startswith("weak answer: the picked genotype") and "darts-cifar10-fast" in line
    cfg, info = {"labels": {"kind": "random"}}, {"num_classes": 10, "num_images": 25000}
    (tmp_path / "metrics.csv").write_text("epoch,train_acc\n1,9.9\n2,10.2\n")
    note = chance_note(tmp_path, cfg, info)
    assert len(note) == 1 and "never left chance" in note[0] and "10.20 %" in note[0]
    assert chance_note(tmp_path, {"labels": {"kind": "true"}}, info) == []
    # a ranking found stable is not flagged: the fast recipes rank before they fit the labels
    (tmp_path / "stability.csv").write_text("epoch,tau_previous,stop\n1,,0\n2,0.96,1\n")
    assert chance_note(tmp_path, cfg, info) == []
    (tmp_path / "stability.csv").unlink()
    (tmp_path / "metrics.csv").write_text("epoch,train_acc\n1,9.9\n2,14.0\n")
    assert chance_note(tmp_path, cfg, info) == []


def test_weak_answer_advice_names_a_fast_preset_only_where_one_exists():
    from rlnas.advice import _advice
    from rlnas.config import load_config
    assert "nb201-cifar10-fast" in _advice({"space": "nb201"})
    assert "darts-cifar10-fast" in _advice({"space": "darts"})
    assert "nasbench-macro-fast, scored by distance" in _advice(load_config("nasbench-macro"))
    other = _advice({"space": "mobilenet"})
    assert "preset" not in other and "scorer=distance" in other
    # a run of the measured recipe is not told to use it
    fast = load_config("nasbench-macro-fast", ["seed=3", "label_seed=3", "root=x"])
    assert "preset" not in _advice(fast) and "retrain" in _advice(fast)


def test_a_measured_recipe_is_recognised_with_seeds_and_paths_free():
    from rlnas.config import load_config, measured_recipe
    for preset in ("nb201-cifar10-fast", "nasbench-macro-fast", "darts-cifar10-fast"):
        cfg = load_config(preset, ["seed=7", "label_seed=7", "root=/data", "max_flops=50"])
        assert measured_recipe(cfg).preset == preset
    assert measured_recipe(load_config("nasbench-macro-fast", ["epochs=2"])) is None
    assert measured_recipe(load_config("nasbench-macro-fast", ["search.scorer=angle"])) is None
    assert measured_recipe(load_config("nasbench-macro")) is None


def test_a_macro_fast_run_at_chance_is_not_flagged_but_a_darts_run_states_the_limit(tmp_path):
    from types import SimpleNamespace

    from rlnas.advice import weak_line
    from rlnas.config import FAST_RECIPES, load_config
    (tmp_path / "metrics.csv").write_text("epoch,train_acc\n1,10.05\n")
    info = {"num_classes": 10, "num_images": 25000}
    fast = load_config("nasbench-macro-fast")
    assert chance_note(tmp_path, fast, info) == []
    assert chance_note(tmp_path, load_config("nasbench-macro", ["epochs=1"]), info) != []
    run = SimpleNamespace(path=tmp_path, config=load_config("darts-cifar10-fast"), info=info)
    convs = {"space": "darts", "top": [{"genome": [4] * 28}]}
    assert FAST_RECIPES["darts-cifar10"].limit in weak_line(run, convs)


def test_run_without_a_table_says_what_evaluation_it_skipped(npz_root, tmp_path, capsys):
    run = tmp_path / "darts"
    assert main(["run", "darts-cifar10", f"root={npz_root}", "channels=4", "model.layers=3",
                 "epochs=1", "batch=32", "search.generations=2", "--out", str(run), "-q"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    note = next(line for line in lines if line.startswith("evaluation skipped"))
    assert "no benchmark table" in note and f"rlnas evaluate {run} --benchmark FILE" in note
    assert not (run / "evaluation.json").exists()
    # a weak-answer line, where there is one, stays the last line
    assert lines.index(note) == len(lines) - 1 or lines[-1].startswith("weak answer")


def test_skipped_evaluation_note_names_the_nb201_flag_and_config_key():
    from rlnas.advice import skipped_evaluation_note
    note = skipped_evaluation_note("runs/x", load_config("nb201-cifar10-fast"))
    assert "nasbench201=" in note and "evaluate.nasbench201" in note
    assert "rlnas evaluate runs/x --nasbench201 PATH --scorers distance_sum,params" in note


@pytest.mark.parametrize("argv, hint", [
    (["train", "demo-digits", "--out", "x"],
     "the same command resumes it from its last checkpoint"),
    (["retrain", "x", "--top", "2"], "the same command resumes it (from the last checkpoint"),
    (["check", "x"], "the same command resumes it without retraining the archs done"),
    (["rank", "x"], "run it again: nothing half-written is kept"),
])
def test_ctrl_c_says_how_this_verb_resumes(argv, hint, monkeypatch, capsys):
    """Ctrl-C ends with exit 130 and one line saying what to do next, for the verb interrupted
    (not `rlnas train RUN` for every verb)."""
    from rlnas import cli

    def interrupt(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "dispatch", interrupt)
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"rlnas {argv[0]}: interrupted; {hint}" in err, err
