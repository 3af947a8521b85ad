"""Bad input, grouped by where it comes in: the Python API's arguments, the command line's
arguments, damaged run files, and faults in a user's own space code. Every case must end in
an RlnasError (API) or one error line and a non-zero exit (CLI): never a traceback, never an
exit 0 with nonsense (issue 18, items 4 and 5)."""
import shutil

import numpy as np
import pytest

pytest.importorskip("sklearn")  # the demo digits ship with scikit-learn

import rlnas  # noqa: E402
from rlnas.cli import main  # noqa: E402
from rlnas.errors import RlnasError  # noqa: E402

TINY = {"epochs": 1, "model.channels": 4, "data.subset": 128}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny trained supernet run (NB201 on the demo digits), ranked once."""
    out = tmp_path_factory.mktemp("bad-inputs") / "run"
    trained = rlnas.train("demo-digits", out, overrides=TINY, progress=False)
    trained.rank()
    return trained


def copy_run(path, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(path, dst)
    return dst


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith(f"rlnas {command}: error: "), err
    return err


# --- the Python API's arguments ----------------------------------------------------------------
API_CASES = {
    "open_run(123)": (lambda run: rlnas.open_run(123), "must be a path"),
    "open_run(None)": (lambda run: rlnas.open_run(None), "must be a path"),
    "train(out=123)": (lambda run: rlnas.train("demo-digits", out=123), "out must be a path"),
    "train(123)": (lambda run: rlnas.train(123), "config must be a path"),
    "train(overrides=5)": (lambda run: rlnas.train("demo-digits", out="x", overrides=5),
                           "overrides must be a mapping"),
    "load_config(None)": (lambda run: rlnas.load_config(None), "config must be a path"),
    "get_scorer(123, run)": (lambda run: rlnas.get_scorer(123, run), "scorer name must be"),
    "get_scorer(run=123)": (lambda run: rlnas.get_scorer("params", 123), "run must be a path"),
    "get_scorer(seed='x')": (lambda run: rlnas.get_scorer("params", seed="x"),
                             "seed must be an integer"),
    "search(seed='x')": (lambda run: run.search(seed="x"), "seed must be an integer"),
    "search(seed=-1)": (lambda run: run.search(seed=-1), r"seed must be an integer in \[0, "),
    "search(seed=1.5)": (lambda run: run.search(seed=1.5), "seed must be an integer"),
    "search(method=3)": (lambda run: run.search(method=3), "method must be"),
    "search(scorer=[])": (lambda run: run.search(scorer=[]), "scorer must be"),
    "rank(scorer=123)": (lambda run: run.rank(scorer=123), "scorer must be"),
    "rank(out=1)": (lambda run: run.rank(out=1), "out must be a path"),
    "ranking(scorer=1)": (lambda run: run.ranking(scorer=1), "scorer must be"),
    "result(1)": (lambda run: run.result(1), "name must be"),
    "evaluate(scorers=123)": (lambda run: rlnas.evaluate([run], "t.csv", scorers=123),
                              "scorers must be"),
    "evaluate(runs=123)": (lambda run: rlnas.evaluate(123, "t.csv"), "runs must be"),
    "evaluate(sample='x')": (lambda run: rlnas.evaluate(run, "t.csv", sample="x"),
                             "sample must be an integer"),
    "evaluate(out=5)": (lambda run: rlnas.evaluate(run, "t.csv", out=5), "out must be a path"),
    "scorer(short genome)": (lambda run: rlnas.get_scorer("params", space="nb201")([[0, 0, 0]]),
                             "genomes of 6 integers"),
    "cost(short genome)": (lambda run: rlnas.get_space("nb201").cost([[0, 0, 0]]),
                           "genomes of 6 integers"),
    "cost(gene out of range)": (lambda run: rlnas.get_space("nb201").cost([[9] * 6]),
                                "not a nb201 arch"),
    "cost(float genes)": (lambda run: rlnas.get_space("nb201").cost([[0.5] * 6]),
                          "genomes of 6 integers"),
    "darts cost(short genome)": (lambda run: rlnas.get_space("darts").cost([[0] * 27]),
                                 "genomes of 28 integers"),
    "cost(ragged rows)": (lambda run: rlnas.get_space("nb201").cost([[0] * 6, [0] * 5]),
                          "rows of different lengths"),
    "evaluate(columns=5)": (lambda run: rlnas.evaluate(run, "t.csv", columns=5),
                            "columns must be"),
    "evaluate(proxy=5)": (lambda run: rlnas.evaluate(run, "t.csv", proxy=5),
                          "proxy must be a dict"),
    "retrain(arch=5)": (lambda run: rlnas.retrain("retrain-nb201-cifar10", 5), "arch must be"),
    "retrain(out=5)": (lambda run: rlnas.retrain("retrain-nb201-cifar10", "x", out=5),
                       "out must be a path"),
    "export(None)": (lambda run: rlnas.export(None), "run must be a path"),
    "export(out=5)": (lambda run: rlnas.export(run.path, out=5), "out must be a path"),
}


@pytest.mark.parametrize("case", sorted(API_CASES))
def test_api_argument_of_the_wrong_type_is_an_rlnas_error(case, run):
    call, message = API_CASES[case]
    with pytest.raises(RlnasError, match=message):
        call(run)


def test_api_arguments_of_the_right_types_still_work(run, tmp_path):
    assert rlnas.open_run(str(run.path)).path == run.path
    assert len(run.search(method="random", seed=np.int64(3))["top"]) > 0
    scores = rlnas.get_scorer("params", run)(run.ranking().arch[:2])
    assert scores.shape == (2,)
    costs = rlnas.get_space("nb201").cost(np.zeros((0, 6), dtype=np.int64))
    assert costs["params"].shape == (0,)


# --- the command line's arguments --------------------------------------------------------------
CLI_CASES = {
    "search --seed -1": ["search", "RUN", "--seed", "-1"],
    "search --seed 2**32": ["search", "RUN", "--seed", str(2**32)],
    "sample --seed -1": ["sample", "nb201", "--seed", "-1"],
    "check --seed -1": ["check", "RUN", "--seed", "-1"],
    "check --archs 0": ["check", "RUN", "--archs", "0"],
    "check --epochs 0": ["check", "RUN", "--epochs", "0"],
    "check --image-size -8": ["check", "RUN", "--image-size", "-8"],
    "evaluate --proxy-cells -1": ["evaluate", "RUN", "--nasbench201", "t.csv",
                                  "--proxy-cells", "-1"],
    "evaluate --proxy-batch 0": ["evaluate", "RUN", "--nasbench201", "t.csv",
                                 "--proxy-batch", "0"],
    "evaluate --recal-images -5": ["evaluate", "RUN", "--nasbench201", "t.csv",
                                   "--recal-images", "-5"],
    "evaluate --eval-images -5": ["evaluate", "RUN", "--nasbench201", "t.csv",
                                  "--eval-images", "-5"],
    "evaluate --sample 0": ["evaluate", "RUN", "--nasbench201", "t.csv", "--sample", "0"],
    "bench --steps -1": ["bench", "--steps", "-1"],
    "bench --batch 0": ["bench", "--batch", "0"],
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_integer_flag_out_of_range_is_refused(case, run, capsys):
    argv = [str(run.path) if a == "RUN" else a for a in CLI_CASES[case]]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]  # argparse: the usage, then one error line
    assert last.startswith(f"rlnas {argv[0]}: error: argument ") and "must be a" in last, err
