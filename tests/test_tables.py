"""Benchmark tables (rlnas.tables) and `rlnas evaluate --benchmark FILE`."""
import contextlib
import io
import json

import numpy as np
import pytest

from conftest import write_npz
from rlnas.cli import main
from rlnas.errors import RlnasError
from rlnas.spaces import get_space
from rlnas.tables import load_benchmark_table, size_groups


@pytest.fixture(scope="module")
def macro_file(shared_data):
    path = shared_data / "nasbench-macro" / "nas-bench-macro_cifar10.json"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


def test_macro_table_counts_3969_networks_with_the_space_params(macro_file):
    t = load_benchmark_table(macro_file)
    assert t.kind == "nasbench-macro" and t.space == "nasbench-macro" and len(t) == 3969
    assert t.accuracy_columns[0] == "mean_acc" and "test_acc_seed2" in t.accuracy_columns
    space = get_space("nasbench-macro")
    archs = np.array([space.from_str(a) for a in t.archs])
    assert all(space.to_str(space.canonical(a)) == s for a, s in zip(archs, t.archs))
    cost = space.cost(archs)
    np.testing.assert_allclose(cost["params"], t.columns["params_m"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(cost["flops"], t.columns["flops_m"], rtol=0, atol=1e-9)
    # a canonical key's mean_acc is the file's value for that key
    data = json.loads(macro_file.read_text())
    key = t.archs[7]
    assert t.lookup([key], "mean_acc")[0] == pytest.approx(data[key]["mean_acc"])


def test_darts_table_has_214_genotypes_in_space_notation(shared_data):
    path = shared_data / "darts-cifar10-trained" / "darts_random214_cifar10.csv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    t = load_benchmark_table(path)
    assert t.kind == "darts-214" and t.space == "darts" and len(t) == 214
    assert t.primary == "test_acc_best" and t.cost_kwargs["channels"] == 36
    space = get_space("darts")
    assert all(space.to_str(space.from_str(a)) == a for a in t.archs)


def test_nb201_table_loads_as_a_benchmark(nb201_table_path):
    t = load_benchmark_table(nb201_table_path)
    assert t.kind == "nb201" and len(t) == 15625 and t.primary == "cifar10_test"


def test_size_bins_where_sizes_do_not_repeat():
    groups, note = size_groups(np.arange(100, dtype=float)[::-1])
    assert note and "bins of 20" in note
    assert len(set(groups.tolist())) == 5 and groups[0] == 4  # the largest in the last bin
    same, none = size_groups(np.repeat([1.0, 2.0], 30))
    assert none is None and set(same.tolist()) == {1.0, 2.0}


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, problem", [
    ("", "is empty"),
    ("arch,acc\n", "no data rows"),
    ("name,acc\n00000000,1\n", "neither an 'arch' nor a 'genotype'"),
    ("arch\n00000000\n", "no accuracy column"),
    ("arch,acc\n00000000,1,2\n", "3 fields, header has 2"),
    ("arch,acc\n00000000,x\n", "non-numeric"),
    ("arch,acc\n0000000,1\n", "not in the run's space"),
    ("arch,acc\n01000000,1\n01000000,2\n", "same network as line 2"),
    ("{}", "expected a JSON object"),
    ("{\"00000000\": {\"acc\": 1}}", "expected an object with 'mean_acc'"),
    ("{broken", "not valid JSON"),
])
def test_bad_tables_give_one_line_errors_naming_the_file(tmp_path, text, problem):
    path = _write(tmp_path / "t.csv", text)
    with pytest.raises(RlnasError) as err:
        load_benchmark_table(path, get_space("nasbench-macro"))
    assert problem in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file_and_generic_without_space(tmp_path):
    with pytest.raises(RlnasError, match="does not exist"):
        load_benchmark_table(tmp_path / "nope.csv")
    path = _write(tmp_path / "g.csv", "arch,acc\n00000000,1\n")
    with pytest.raises(RlnasError, match="the run's space"):
        load_benchmark_table(path)


# --- end to end on a tiny macro run -------------------------------------------------------------
@pytest.fixture(scope="module")
def macro_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    write_npz(data / "train_1.npz", 32, seed=0)
    run = tmp_path_factory.mktemp("run") / "macro"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["train", "nasbench-macro-fast", f"root={data}", "data.subset=32",
                     "data.resolution=8", "train.batch_size=16", "--out", str(run), "-q"])
    assert code == 0
    return run


def _evaluate(run, table, *extra):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["evaluate", str(run), "--benchmark", str(table),
                     "--scorers", "angle,params", "-q", *extra])
    return code, out.getvalue()


def test_generic_csv_round_trip_on_a_tiny_macro_run(macro_run, tmp_path):
    space = get_space("nasbench-macro")
    rng = np.random.default_rng(0)
    keys = sorted({space.to_str(space.canonical(space.sample(rng))) for _ in range(200)})
    cost = space.cost(np.array([space.from_str(k) for k in keys]))
    acc = 80 + 5 * cost["params"]  # an accuracy that is the params count: params ranks perfectly
    lines = ["arch,my_acc,params_m"] + [f"{k},{a:.6f},{p:.6f}"
                                        for k, a, p in zip(keys, acc, cost["params"])]
    table = _write(tmp_path / "mine.csv", "\n".join(lines) + "\n")
    out_dir = tmp_path / "report"
    code, printed = _evaluate(macro_run, table, "--out", str(out_dir))
    assert code == 0, printed
    res = json.loads((out_dir / "evaluation.json").read_text())
    assert res["benchmark"] == "generic" and res["num_archs"] == len(keys)
    params = res["summary"]["params"]["my_acc"]
    assert params["kendall_tau"]["mean"] == pytest.approx(1.0)
    assert params["top1_percentile"]["mean"] == pytest.approx(100 * (len(keys) - 1) / len(keys))
    assert params["mean_top10_accuracy"]["mean"] == pytest.approx(np.sort(acc)[-10:].mean(),
                                                                  abs=1e-5)
    assert "top-1 pct" in (out_dir / "evaluation.md").read_text()
    assert (out_dir / "plots" / "angle_vs_my_acc.png").exists()


def test_cli_macro_benchmark_end_to_end(macro_run, macro_file, tmp_path):
    out_dir = tmp_path / "report"
    code, printed = _evaluate(macro_run, macro_file, "--out", str(out_dir))
    assert code == 0, printed
    assert "Scorers vs NAS-Bench-Macro on mean_acc (3969 cells" in printed
    res = json.loads((out_dir / "evaluation.json").read_text())
    assert res["num_archs"] == 3969 and res["columns"][0] == "mean_acc"
    # the free FLOPs baseline over the 3,969 networks, from the file's own FLOPs (0.546)
    from scipy.stats import kendalltau
    t = load_benchmark_table(macro_file)
    want = kendalltau(t.columns["flops_m"], t.columns["mean_acc"]).statistic
    flops_tau = res["per_run"][0]["size_control"]["mean_acc"]["controls"]["flops"]
    assert flops_tau["kendall_tau_with_accuracy"] == pytest.approx(want) and want > 0.5
    md = (out_dir / "evaluation.md").read_text()
    assert "bins of 20 archs" in md and "3969 distinct networks" in md
    assert "Constrained search: pick under a params limit" in md
    assert res["per_run"][0]["constrained"]["params"]


def test_table_of_another_space_is_refused(macro_run, nb201_table_path, tmp_path):
    code, printed = _evaluate(macro_run, nb201_table_path, "--out", str(tmp_path / "r"))
    assert code != 0
    assert "is a nb201 table (space nb201); the run's space is nasbench-macro" in printed
    assert "Traceback" not in printed
