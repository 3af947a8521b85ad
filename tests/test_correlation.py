"""Tests for rlnas.tables, rlnas.correlation and rlnas.plots: table loading, correlation report,
plot and JSON output."""

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from rlnas.correlation import correlation_report
from rlnas.errors import RlnasError
from rlnas.files import write_json_atomic
from rlnas.plots import scatter_plot
from rlnas.tables import ACCURACY_COLUMNS, NB201Table, load_nb201_table

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


def make_arch(ops6):
    a = ops6
    return f"|{a[0]}~0|+|{a[1]}~0|{a[2]}~1|+|{a[3]}~0|{a[4]}~1|{a[5]}~2|"


# Eight distinct archs with distinct accuracies (no ties) and distinct scores.
ARCHS = [make_arch([OPS[(i + j) % 5] for j in range(5)] + [OPS[i % 3]]) for i in range(8)]
ACC = {
    "cifar10_test": [90.0, 85.0, 70.0, 93.0, 60.0, 88.0, 75.0, 80.0],
    "cifar100_valid": [60.0, 66.0, 40.0, 70.0, 30.0, 55.0, 50.0, 45.0],
}
PARAMS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
SCORES = [0.5, 0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.4]


def write_csv(path: Path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")
    return path


@pytest.fixture
def table_path(tmp_path):
    # Columns deliberately out of ACCURACY_COLUMNS order, plus an unknown column.
    header = ["cifar100_valid", "arch", "notes", "params_m", "cifar10_test"]
    rows = [
        [ACC["cifar100_valid"][i], ARCHS[i], "x", PARAMS[i], ACC["cifar10_test"][i]]
        for i in range(len(ARCHS))
    ]
    return write_csv(tmp_path / "table.csv", header, rows)


@pytest.fixture
def table(table_path):
    return load_nb201_table(table_path)


# ---- reference formulas -------------------------------------------------------------


def ref_tau(x, y):
    """Kendall tau without ties: (concordant - discordant) / (n choose 2)."""
    c = d = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        s = (x[i] - x[j]) * (y[i] - y[j])
        assert s != 0, "reference formula assumes no ties"
        c += s > 0
        d += s < 0
    return (c - d) / (c + d)


def ref_rho(x, y):
    """Spearman rho without ties: 1 - 6 sum d^2 / (n (n^2 - 1))."""
    n = len(x)
    rx = {v: r for r, v in enumerate(sorted(x))}
    ry = {v: r for r, v in enumerate(sorted(y))}
    d2 = sum((rx[a] - ry[b]) ** 2 for a, b in zip(x, y))
    return 1 - 6 * d2 / (n * (n * n - 1))


def top_positions(values, k):
    return set(sorted(range(len(values)), key=lambda i: -values[i])[:k])


# ---- loading --------------------------------------------------------------------------


def test_load_synthetic_table(table, table_path):
    assert isinstance(table, NB201Table)
    assert table.path == table_path
    assert table.archs == ARCHS
    assert table.index == {a: i for i, a in enumerate(ARCHS)}
    assert table.accuracy_columns == ["cifar10_test", "cifar100_valid"]  # ACCURACY_COLUMNS order
    assert set(table.columns) == {"cifar10_test", "cifar100_valid", "params_m"}  # 'notes' ignored
    for c in ("cifar10_test", "cifar100_valid"):
        assert table.columns[c].dtype == np.float64
        np.testing.assert_array_equal(table.columns[c], ACC[c])
    np.testing.assert_array_equal(table.columns["params_m"], PARAMS)
    got = table.lookup([ARCHS[3], ARCHS[0]], "cifar10_test")
    np.testing.assert_array_equal(got, [93.0, 90.0])


def test_accuracy_columns_semantics():
    assert list(ACCURACY_COLUMNS) == [
        "cifar10_valid", "cifar10_test", "cifar100_valid",
        "cifar100_test", "imagenet16_valid", "imagenet16_test",
    ]
    assert ("25k" in ACCURACY_COLUMNS["cifar10_valid"]
            and "x-valid" in ACCURACY_COLUMNS["cifar10_valid"])
    assert ("ori-test" in ACCURACY_COLUMNS["cifar10_test"]
            and "50k" in ACCURACY_COLUMNS["cifar10_test"])
    assert "x-test" in ACCURACY_COLUMNS["cifar100_test"]
    assert "x-valid" in ACCURACY_COLUMNS["imagenet16_valid"]


def test_lookup_missing_arch_names_count_and_first(table):
    bogus = ["|bogus~0|", ARCHS[0], "|other~0|"]
    with pytest.raises(RlnasError, match=r"2 of 3 archs .*first missing: '\|bogus~0\|'"):
        table.lookup(bogus, "cifar10_test")
    with pytest.raises(RlnasError, match="imagenet16_test"):
        table.lookup(ARCHS[:1], "imagenet16_test")


A = make_arch(["nor_conv_3x3"] * 6)
B = make_arch(["skip_connect"] * 6)


@pytest.mark.parametrize(
    "content, pattern",
    [
        (None, "does not exist"),
        ("", "empty"),
        ("arch,cifar10_test\n", "no data rows"),
        ("name,cifar10_test\nx,1.0\n", "no 'arch' column"),
        ("arch,params_m\n|a~0|,1.0\n", "none of the accuracy columns"),
        (f"arch,cifar10_test\n{A},91.0\n{B},abc\n",
         r"line 3: non-numeric value 'abc' in column 'cifar10_test'"),
        (f"arch,cifar10_test,params_m\n{A},91.0,\n", r"line 2: missing value in column 'params_m'"),
        (f"arch,cifar10_test\n{A},nan\n", r"line 2: non-finite value"),
        (f"arch,cifar10_test\n{A},91.0\n{B},80.0\n{A},70.0\n",
         r"line 4: duplicate arch .*first seen on line 2"),
        ("arch,cifar10_test\n ,91.0\n", r"line 2: empty 'arch'"),
        (f"arch,cifar10_test\n{A},91.0,7\n", r"line 2: 3 fields, header has 2"),
        (b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00", "not a readable"),
        ("arch,cifar10_test,arch\nx,1,y\n", "appears twice"),
    ],
    ids=["missing", "empty", "header-only", "no-arch", "no-accuracy", "non-numeric",
         "missing-value", "nan-value", "duplicate-arch", "empty-arch", "ragged", "binary",
         "dup-header"],
)
def test_load_bad_inputs(tmp_path, content, pattern):
    path = tmp_path / "bad.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(RlnasError, match=pattern) as exc:
        load_nb201_table(path)
    msg = str(exc.value)
    assert str(path) in msg and "\n" not in msg


def test_load_folder_is_error(tmp_path):
    with pytest.raises(RlnasError, match="not a file"):
        load_nb201_table(tmp_path)


def test_unused_column_may_be_non_numeric(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["arch", "cifar10_valid", "comment"],
                     [[A, 1.5, "hi"], [B, 2.5, ""]])
    t = load_nb201_table(path)
    assert t.accuracy_columns == ["cifar10_valid"]
    assert list(t.columns) == ["cifar10_valid"]


# ---- correlation report -------------------------------------------------------------


@pytest.mark.parametrize("column", ["cifar10_test", "cifar100_valid"])
@pytest.mark.parametrize("order", ["given", "reversed", "subset"])
def test_report_matches_reference(table, column, order):
    idx = list(range(8))
    if order == "reversed":
        idx = idx[::-1]
    elif order == "subset":
        idx = [6, 1, 3, 0, 4]
    archs = [ARCHS[i] for i in idx]
    scores = [SCORES[i] for i in idx]
    acc = [ACC[column][i] for i in idx]
    rep = correlation_report(archs, scores, table, topk=(1, 2, 3, 10))
    assert rep["n"] == rep["n_given"] == len(idx) and rep["n_dropped_nan"] == 0
    assert set(rep["columns"]) == {"cifar10_test", "cifar100_valid"}
    e = rep["columns"][column]
    assert e["n"] == len(idx)
    assert e["kendall_tau"] == pytest.approx(ref_tau(scores, acc), abs=1e-12)
    assert e["spearman_rho"] == pytest.approx(ref_rho(scores, acc), abs=1e-12)
    best = max(range(len(idx)), key=lambda i: scores[i])
    assert e["top1_arch"] == archs[best] and e["top1_accuracy"] == acc[best]
    assert e["oracle_accuracy"] == max(acc)
    assert e["oracle_arch"] == archs[acc.index(max(acc))]
    for k in (1, 2, 3):
        ts, ta = top_positions(scores, k), top_positions(acc, k)
        assert e[f"best_in_top{k}"] == max(acc[i] for i in ts)
        assert e[f"precision_at_{k}"] == pytest.approx(len(ts & ta) / k)
    assert "best_in_top10" not in e and "precision_at_10" not in e  # k > n
    assert e["semantics"] == ACCURACY_COLUMNS[column]


def test_report_literal_values(tmp_path):
    archs = [make_arch([op] * 6) for op in OPS[1:]]
    path = write_csv(tmp_path / "t.csv", ["arch", "cifar10_valid"],
                     [[a, v] for a, v in zip(archs, [1, 2, 3, 4])])
    t = load_nb201_table(path)
    # Ranks by score: 1,3,2,4 against 1,2,3,4: 5 concordant, 1 discordant pair.
    rep = correlation_report(archs, [1.0, 3.0, 2.0, 4.0], t, topk=(2,))
    e = rep["columns"]["cifar10_valid"]
    assert e["kendall_tau"] == pytest.approx(2 / 3)
    assert e["spearman_rho"] == pytest.approx(0.8)  # 1 - 6*2/(4*15)
    assert e["top1_arch"] == archs[3] and e["top1_accuracy"] == 4.0
    assert e["best_in_top2"] == 4.0
    assert e["precision_at_2"] == 0.5  # {3,1} vs {3,2}
    assert rep["topk"] == [2]


def test_report_ties(tmp_path):
    archs = [make_arch([op] * 6) for op in OPS]
    # Accuracy tie between rows 1 and 3: table order puts row 1 first.
    path = write_csv(tmp_path / "t.csv", ["arch", "cifar10_test"],
                     [[a, v] for a, v in zip(archs, [50, 90, 70, 90, 10])])
    t = load_nb201_table(path)
    # Score tie between the first two given archs: the first given wins top-1.
    given = [archs[2], archs[0], archs[3], archs[1], archs[4]]
    rep = correlation_report(given, [5.0, 5.0, 4.0, 3.0, 1.0], t, columns=["cifar10_test"],
                             topk=(1,))
    e = rep["columns"]["cifar10_test"]
    assert e["top1_arch"] == archs[2] and e["top1_accuracy"] == 70.0
    assert e["oracle_arch"] == archs[1] and e["oracle_accuracy"] == 90.0
    # Top-1 by accuracy is archs[1] (table order), not archs[3]: no overlap with archs[2].
    assert e["precision_at_1"] == 0.0
    rep2 = correlation_report(given, [1.0, 1.0, 1.0, 2.0, 0.0], t, topk=(1,))
    assert rep2["columns"]["cifar10_test"]["precision_at_1"] == 1.0
    # Constant scores: correlations undefined -> None (still valid JSON).
    rep3 = correlation_report(given, [1.0] * 5, t)
    assert rep3["columns"]["cifar10_test"]["kendall_tau"] is None
    json.dumps(rep3, allow_nan=False)


def test_report_drops_nan_scores(table):
    scores = list(SCORES)
    scores[1] = float("nan")
    scores[5] = np.nan
    rep = correlation_report(ARCHS, np.array(scores), table, columns=["cifar10_test"])
    assert rep["n_given"] == 8 and rep["n_dropped_nan"] == 2 and rep["n"] == 6
    keep = [i for i in range(8) if i not in (1, 5)]
    s = [SCORES[i] for i in keep]
    a = [ACC["cifar10_test"][i] for i in keep]
    e = rep["columns"]["cifar10_test"]
    assert e["n"] == 6
    assert e["kendall_tau"] == pytest.approx(ref_tau(s, a))
    # Arch 1 (score 0.9) was dropped, so top-1 is arch 3 (score 0.8).
    assert e["top1_arch"] == ARCHS[3]
    assert list(rep["columns"]) == ["cifar10_test"]


def test_report_is_plain_json(table):
    rep = correlation_report(ARCHS, SCORES, table, topk=(2, 10))
    text = json.dumps(rep, allow_nan=False)
    assert json.loads(text) == rep
    for e in rep["columns"].values():
        for key, v in e.items():
            assert type(v) in (float, int, str), key


@pytest.mark.parametrize(
    "archs, scores, kwargs, pattern",
    [
        (ARCHS[:3] + ["|nope~0|"], [1, 2, 3, 4], {}, r"1 of 4 archs .*first missing: '\|nope~0\|'"),
        (ARCHS[:3], [1, 2], {}, "3 archs but 2 scores"),
        (ARCHS[:3], [1, 2, 3], {"columns": ["imagenet16_test"]}, "not in table"),
        (ARCHS[:3], [1, 2, 3], {"columns": ["params_m"]}, "unknown accuracy column"),
        (ARCHS[:3], [float("nan"), float("nan"), 3], {}, "at least 2"),
        ([], [], {}, "no archs"),
        (ARCHS[:3], [1, 2, 3], {"topk": (0,)}, "positive integers"),
        (ARCHS[:3], ["a", "b", "c"], {}, "must be numbers"),
    ],
    ids=["missing-arch", "length", "absent-column", "unknown-column", "too-few", "empty", "bad-k",
         "non-numeric"],
)
def test_report_bad_inputs(table, archs, scores, kwargs, pattern):
    with pytest.raises(RlnasError, match=pattern):
        correlation_report(archs, scores, table, **kwargs)


# ---- output files -------------------------------------------------------------------


def test_scatter_plot_writes_png_atomically(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    y = x + rng.normal(size=200)
    y[3] = np.nan
    out = tmp_path / "scatter.png"
    out.write_bytes(b"old")  # replaced, not appended to
    ret = scatter_plot(x, y, out, "angle vs accuracy", ylabel="CIFAR-10 test (%)")
    assert Path(ret) == out
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scatter.png"]


@pytest.mark.parametrize(
    "x, y, where, pattern",
    [
        ([1, 2], [1, 2], "missing/sub/p.png", "does not exist"),
        ([1, 2, 3], [1, 2], "p.png", "3 scores but 2"),
        ([np.nan], [1.0], "p.png", "no points"),
    ],
)
def test_scatter_plot_bad_inputs(tmp_path, x, y, where, pattern):
    with pytest.raises(RlnasError, match=pattern):
        scatter_plot(x, y, tmp_path / where, "t")
    assert list(tmp_path.iterdir()) == []


def test_write_json_atomic(tmp_path):
    out = tmp_path / "r.json"
    write_json_atomic({"a": [1, 2.5], "b": "x"}, out)
    text = out.read_text()
    assert json.loads(text) == {"a": [1, 2.5], "b": "x"}
    assert text.startswith('{\n  "a"') and text.endswith("\n")
    # A failing write leaves the old file untouched and no temp file behind.
    with pytest.raises(RlnasError, match="not JSON-serialisable"):
        write_json_atomic({"bad": object()}, out)
    assert json.loads(out.read_text())["b"] == "x"
    with pytest.raises(RlnasError, match="does not exist"):
        write_json_atomic({}, tmp_path / "nodir" / "r.json")
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


# ---- the real NAS-Bench-201 table ---------------------------------------------------


@pytest.fixture(scope="module")
def real_table(nb201_table_path):
    return load_nb201_table(nb201_table_path)


def test_real_table_shape_and_maxima(real_table):
    assert len(real_table.archs) == 15625 and len(real_table.index) == 15625
    assert real_table.accuracy_columns == list(ACCURACY_COLUMNS)
    assert {"params_m", "flops_m"} <= set(real_table.columns)
    assert real_table.columns["cifar10_test"].max() == pytest.approx(94.3733, abs=1e-4)
    a9930 = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
             "|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    assert real_table.index[a9930] == 9930
    assert real_table.lookup([a9930], "cifar100_test")[0] == pytest.approx(73.5133, abs=1e-4)


def test_real_table_params_vs_cifar10_test(real_table):
    archs = real_table.archs
    rep = correlation_report(archs, real_table.columns["params_m"], real_table,
                             columns=["cifar10_test"])
    e = rep["columns"]["cifar10_test"]
    assert e["n"] == 15625
    assert e["kendall_tau"] == pytest.approx(0.578, abs=0.01)
    assert 0.5 < e["spearman_rho"] < 1.0
    # Optimum 94.3733 is tied between index 6111 and 13714: table order picks 6111.
    assert e["oracle_accuracy"] == pytest.approx(94.3733, abs=1e-4)
    assert e["oracle_arch"] == archs[6111]
    assert e["best_in_top100"] <= e["oracle_accuracy"]
    assert 0.0 <= e["precision_at_100"] <= 1.0
    assert math.isfinite(e["top1_accuracy"])
