"""Issue 18 item 3: no exit 0 with nonsense. An edited config.yaml cannot resume or rank a run
trained with another; a run without its W0 is not resumed; counts of 0 or below are refused;
absurd sizes are refused with their bound; the API refuses genomes outside the space and files
that are not search results."""
import json

import pytest

pytest.importorskip("sklearn")  # the demo digits ship with scikit-learn

import rlnas  # noqa: E402
from conftest import NB201_ARCH
from rlnas.cli import main as cli_main  # noqa: E402
from rlnas.config import load_config  # noqa: E402
from rlnas.errors import RlnasError  # noqa: E402

TINY = {"epochs": 1, "model.channels": 4, "data.subset": 128}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("h18c") / "run"
    return rlnas.train("demo-digits", out, overrides=TINY, progress=False)


def _copy(run, tmp_path):
    import shutil
    dst = tmp_path / "copy"
    shutil.copytree(run.path, dst)
    return dst


def _edit(path, old, new):
    text = (path / "config.yaml").read_text()
    assert old in text
    (path / "config.yaml").write_text(text.replace(old, new, 1))


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err
    return err


def test_edited_config_does_not_resume(run, tmp_path, capsys):
    path = _copy(run, tmp_path)
    _edit(path, "epochs: 1", "epochs: 2")
    assert cli_main(["train", str(path), "--quiet"]) != 0
    _one_line_error(capsys, "train.epochs", "restore config.yaml", "--out")


def test_deleted_init_pt_is_not_resumed(run, tmp_path, capsys):
    path = _copy(run, tmp_path)
    (path / "ckpt" / "init.pt").unlink()
    assert cli_main(["train", str(path), "--quiet"]) != 0
    _one_line_error(capsys, "init.pt", "--out")


def test_edited_scorer_does_not_rank(run, tmp_path, capsys):
    path = _copy(run, tmp_path)
    text = (path / "config.yaml").read_text()
    scorer = load_config("demo-digits")["search"]["scorer"]
    other = "params" if scorer != "params" else "flops"
    (path / "config.yaml").write_text(text.replace(f"scorer: {scorer}", f"scorer: {other}", 1))
    assert cli_main(["rank", str(path), "--quiet"]) != 0
    _one_line_error(capsys, "search.scorer", "restore config.yaml")
    assert not (path / "ranking.csv").exists() or \
        (path / "ranking.csv").read_text() == (run.path / "ranking.csv").read_text()


def test_old_run_without_record_keeps_resuming(run, tmp_path):
    path = _copy(run, tmp_path)
    info = json.loads((path / "run.json").read_text())
    assert info["config"]["train"]["epochs"] == 1
    del info["config"]
    (path / "run.json").write_text(json.dumps(info))
    rlnas.open_run(path)  # no record: today's behaviour, no refusal


@pytest.mark.parametrize("argv", [["demo", "--epochs", "0"], ["sample", "nb201", "-n", "-5"],
                                  ["sample", "nb201", "-n", "0"],
                                  ["evaluate", "x", "--nasbench201", "t.csv",
                                   "--proxy-channels", "0"]])
def test_counts_below_one_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(argv)
    assert exc.value.code == 2
    assert "must be a positive integer" in capsys.readouterr().err


@pytest.mark.parametrize("override,bound", [("epochs=1e9", "100000"),
                                            ("batch_size=1e9", "1000000"),
                                            ("subset=1e12", "1000000000"),
                                            ("search.population=1e9", "10000000"),
                                            ("model.channels=1e9", "100000")])
def test_absurd_sizes_state_their_bound(override, bound):
    with pytest.raises(RlnasError, match=f"out of range.*{bound}"):
        load_config("demo-digits", [override])


@pytest.mark.parametrize("genome", [[99] * 6, [0, 0, 0], [0.5] * 6, [[0] * 7]])
def test_scorer_refuses_genomes_outside_the_space(genome):
    scorer = rlnas.get_scorer("params", space="nb201")
    with pytest.raises(RlnasError, match="genome|genomes"):
        scorer(genome)


def test_scorer_scores_valid_genomes():
    scores = rlnas.get_scorer("params", space="nb201")([[0] * 6, [1] * 6])
    assert scores.shape == (2,)


@pytest.mark.parametrize("name", ["run.json", "config.yaml", "metrics.csv"])
def test_result_refuses_files_that_are_not_results(run, name):
    with pytest.raises(RlnasError, match="not a search result"):
        run.result(name)


@pytest.mark.parametrize("stop_at_step,complete", [(2, False), (None, True)])
def test_export_of_a_half_done_retraining_says_so(stop_at_step, complete, tmp_path, capsys):
    from conftest import write_npz
    from rlnas.pipeline.export import export
    from rlnas.pipeline.retrain import train_network
    (tmp_path / "data").mkdir()
    write_npz(tmp_path / "data" / "train_1.npz", 64, seed=0)
    write_npz(tmp_path / "data" / "test_1.npz", 40, seed=1)
    cfg = load_config("retrain-nb201-cifar10", [f"root={tmp_path / 'data'}", "channels=4",
                                                "cells=1", "epochs=2", "batch=32"])
    run_dir = tmp_path / "retrain"
    try:
        train_network(cfg, NB201_ARCH, run_dir, progress=False, stop_at_step=stop_at_step)
    except KeyboardInterrupt:  # how stop_at_step simulates a Ctrl-C
        assert stop_at_step is not None
    capsys.readouterr()
    export(run_dir)
    err = capsys.readouterr().err
    manifest = json.loads((run_dir / "export" / "export.json").read_text())
    assert manifest["complete"] is complete
    assert manifest["epochs"] == 2 and manifest["epochs_done"] == (1 if stop_at_step else 2)
    assert ("1 of its 2 epochs" in err) is not complete
