"""Latency (rlnas.latency): the chain lookup table and its sum, the per-network cell cache, the
JSON cache (hit, key, corrupt file), device tables and their errors, the max-latency limit in
the searchers and in `rlnas search`. Tiny networks, 2 repeats: correctness, not timings (the
timings are in benchmarks/latency_accuracy.py)."""
import json

import numpy as np
import pytest
import torch.nn as nn

import rlnas.latency as latency
from rlnas.errors import RlnasError
from rlnas.latency import (CellLatency, ChainLatency, LatencySetting, TableLatency,
                           latency_model, measured_here, pareto_front)
from rlnas.spaces import get_space
from rlnas.spaces.choice import Choice, ChoiceSpace, Op, skip

FAST = LatencySetting(warmup=1, repeats=2)


def conv_op(k):
    return Op(f"conv{k}", lambda c_in, c_out, stride, k=k: nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()))


def tiny_chain(name="tiny"):
    ops = [conv_op(3), conv_op(1), skip()]  # one list: blocks 1 and 2 share their ops
    return ChoiceSpace(
        name, stem=lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()),
        blocks=[Choice([conv_op(3), conv_op(1)], 8, stride=2),
                Choice(ops, 8), Choice(ops, 8)],
        head=lambda classes, dropout: nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes)),
        input_size=8, num_classes=3)


SPACE = tiny_chain()


class Counter:
    """Counts calls of latency.time_module (what a cache hit must not make)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        real = latency.time_module

        def counted(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(latency, "time_module", counted)


# --- measuring -------------------------------------------------------------------------------
def test_chain_prediction_is_the_sum_of_its_table_entries(tmp_path):
    model = ChainLatency(SPACE, FAST, folder=tmp_path)
    table = model.table()
    assert set(table) == {"stem", "head"} | {f"block{b}.op{o}" for b, n in
                                             enumerate(SPACE.num_ops) for o in range(n)}
    assert all(v > 0 for v in table.values())
    archs = SPACE.enumerate()
    expected = [table["stem"] + table["head"] + sum(table[f"block{b}.op{o}"]
                                                     for b, o in enumerate(a)) for a in archs]
    np.testing.assert_allclose(model(archs), expected, rtol=1e-12)
    lo, hi = model.bounds()
    assert lo == pytest.approx(min(expected)) and hi == pytest.approx(max(expected))


def test_repeated_blocks_on_one_shape_are_measured_once(tmp_path, monkeypatch):
    counter = Counter(monkeypatch)
    model = ChainLatency(SPACE, FAST, folder=tmp_path)
    # stem, head, block 0's two ops, blocks 1 and 2 share their three ops (same op, same shape)
    assert counter.calls == 2 + 2 + 3
    assert model.table()["block1.op0"] == model.table()["block2.op0"]


def test_chain_cache_hit_does_not_measure_again(tmp_path, monkeypatch):
    first = ChainLatency(SPACE, FAST, folder=tmp_path)
    assert first.built_now and first.cache.path.is_file()
    saved = json.loads(first.cache.path.read_text())
    assert saved["key"]["threads"] == 1 and saved["key"]["batch"] == 1
    assert saved["key"]["input"] == [3, 8, 8] and saved["seconds"] > 0
    counter = Counter(monkeypatch)
    again = ChainLatency(SPACE, FAST, folder=tmp_path)
    assert counter.calls == 0 and not again.built_now
    assert again.table() == first.table()
    # another setting is another table
    other = ChainLatency(SPACE, LatencySetting(batch=2, warmup=1, repeats=2), folder=tmp_path)
    assert counter.calls > 0 and other.cache.path != first.cache.path


def test_corrupt_cache_is_measured_again(tmp_path):
    first = ChainLatency(SPACE, FAST, folder=tmp_path)
    first.cache.path.write_text("{not json")
    again = ChainLatency(SPACE, FAST, folder=tmp_path)
    assert again.built_now and json.loads(again.cache.path.read_text())["entries"]


def test_cell_space_measures_each_network_once(tmp_path, monkeypatch):
    space = get_space("nb201")
    counter = Counter(monkeypatch)
    model = measured_here(space, {"num_classes": 10, "image_size": 8, "channels": 4,
                                  "cells": 1}, FAST, folder=tmp_path)
    assert isinstance(model, CellLatency)
    archs = space.enumerate()[[0, 1, 0, 1]]
    ms = model(archs)
    assert counter.calls == 2 and ms[0] == ms[2] and ms[1] == ms[3] and (ms > 0).all()
    model(archs[:1])
    assert counter.calls == 2
    again = measured_here(space, {"num_classes": 10, "image_size": 8, "channels": 4, "cells": 1},
                          FAST, folder=tmp_path)
    np.testing.assert_array_equal(again(archs), ms)
    assert counter.calls == 2 and again.measured == 0


def test_macro_identity_variants_share_one_measurement(tmp_path, monkeypatch):
    """Cell caches key by canonical arch: genomes building one network are measured once."""
    space = get_space("nasbench-macro")
    model = CellLatency(space, {}, (3, 8, 8), FAST, folder=tmp_path)
    counter = Counter(monkeypatch)
    a, b = space.from_str("12010000"), space.from_str("12001000")
    assert space.canonical(a) == space.canonical(b)
    model(np.array([a, b]))
    assert counter.calls == 1


def test_cache_folder_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RLNAS_CACHE", str(tmp_path / "c"))
    model = ChainLatency(SPACE, FAST)
    assert model.cache.path.parent == tmp_path / "c" and model.cache.path.is_file()


@pytest.mark.parametrize("kwargs, message", [
    ({"batch": 0}, "batch must be a positive integer"),
    ({"threads": 1.5}, "threads must be a positive integer"),
    ({"precision": "int8"}, "unknown latency precision"),
    ({"precision": "fp16"}, "fp16 needs a GPU"),
    ({"device": "nonsense"}, "unknown latency device"),
])
def test_bad_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(RlnasError, match=message):
        LatencySetting(**kwargs)


def test_cost_options_without_latency_meaning_are_refused(tmp_path):
    with pytest.raises(RlnasError, match="no latency meaning"):
        measured_here(SPACE, {"bogus": 1}, FAST, folder=tmp_path)


def test_pareto_front():
    scores = np.array([1.0, 3.0, 2.0, 3.0, np.nan, 5.0])
    ms = np.array([1.0, 2.0, 1.5, 4.0, 0.5, np.inf])
    # 4 has no score; 0 (fastest scored), 2 (better, slower), 1 (better still); 3 is beaten by 1, 5 cannot run
    assert pareto_front(scores, ms).tolist() == [0, 2, 1]


# --- device tables ---------------------------------------------------------------------------
NB201 = get_space("nb201")


def write_nb201_table(path, value=lambda i: 1.0 + i, drop=0, extra_rows=(), header=None):
    """A complete NB201 device table (column dev_latency), ``drop`` archs left out."""
    lines = [header or "index,arch,dev_latency,dev_energy"]
    for i, arch in enumerate(NB201.enumerate()[drop:]):
        lines.append(f"{i},{NB201.to_str(tuple(arch))},{value(i)},0")
    lines += list(extra_rows)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_device_table_by_device_or_column_name(tmp_path):
    path = write_nb201_table(tmp_path / "t.csv")
    archs = NB201.enumerate()[[0, 7, 15624]]
    for device in ("dev", "dev_latency"):
        model = latency_model(NB201, table=path, device=device)
        assert isinstance(model, TableLatency) and model.column == "dev_latency"
        np.testing.assert_array_equal(model(archs), [1.0, 8.0, 15625.0])
        assert model.source == f"table {path} column dev_latency"
    assert model.bounds() == (1.0, 15625.0)


def test_negative_entries_are_archs_that_cannot_run_there(tmp_path):
    path = write_nb201_table(tmp_path / "t.csv", value=lambda i: -1 if i == 0 else i)
    model = TableLatency(NB201, path, "dev")
    assert model(NB201.enumerate()[:2]).tolist() == [np.inf, 1.0]
    assert model.bounds() == (1.0, 15624.0) and model.describe()["not_on_device"] == 1


@pytest.mark.parametrize("make, device, message", [
    (lambda p: write_nb201_table(p), "gpu", r"no device column 'gpu'; known: dev_latency$"),
    (lambda p: write_nb201_table(p), None, "name the device column"),
    (lambda p: write_nb201_table(p, drop=3), "dev", "does not cover space nb201: 3 of its "
                                                    "15625 archs have no row"),
    (lambda p: write_nb201_table(p, extra_rows=["9,|nor_conv_3x3~0|+|none~0|none~1|+|"
                                                "none~0|none~1|none~2|,1"]),
     "dev", "line 15627: 3 fields, the header has 4"),
    (lambda p: write_nb201_table(p, extra_rows=["9,|nor_conv_3x3~0|+|none~0|none~1|+|"
                                                "none~0|none~1|none~2|,fast,0"]),
     "dev", "dev_latency is 'fast', not a number"),
    (lambda p: write_nb201_table(p, extra_rows=["9,|nor_conv_3x3~0|+|none~0|none~1|+|"
                                                "none~0|none~1|none~2|,3,0"]),
     "dev", "appears twice with different dev_latency"),
    (lambda p: write_nb201_table(p, extra_rows=["9,conv,3,0"]), "dev", "line 15627: "),
    (lambda p: write_nb201_table(p, header="index,name,dev_latency,dev_energy"), "dev",
     "has no 'arch' column"),
    (lambda p: p.write_text(""), "dev", "is empty"),
    (lambda p: p.write_text("index,arch,dev_latency\n"), "dev", "no rows"),
    (lambda p: None, "dev", "not found"),
])
def test_bad_device_tables_are_one_line_errors(tmp_path, make, device, message):
    path = tmp_path / "t.csv"
    make(path)
    with pytest.raises(RlnasError, match=message) as err:
        TableLatency(NB201, path, device)
    assert "\n" not in str(err.value)


def test_a_device_column_without_measurements_is_refused(tmp_path):
    path = write_nb201_table(tmp_path / "t.csv", value=lambda i: -1)
    with pytest.raises(RlnasError, match="holds no latency"):
        TableLatency(NB201, path, "dev")


def test_device_without_table_is_refused():
    with pytest.raises(RlnasError, match="names a column of --latency-table"):
        latency_model(NB201, device="pixel3")


def test_hw_nasbench_table_reads_as_published(shared_data):
    path = shared_data / "hw-nasbench201" / "hw_nasbench201_cifar10.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with open(path) as f:
        row = f.readlines()[1].strip().split(",")  # index 0; its arch string has no commas
    model = TableLatency(NB201, path, "pixel3")
    arch = NB201.from_str(row[1])
    assert model(np.array([arch]))[0] == float(row[6])  # pixel3_latency is the 7th column
    edgetpu = TableLatency(NB201, path, "edgetpu")
    assert edgetpu.describe()["not_on_device"] == 4699


# --- searching under a latency limit ---------------------------------------------------------
def test_constraint_filters_by_latency_and_refuses_below_the_fastest(tmp_path):
    from rlnas.searchers import Constraint, exhaustive_search, random_search
    model = ChainLatency(SPACE, FAST, folder=tmp_path)
    ms = model(SPACE.enumerate())
    limit = float(np.median(ms))
    c = Constraint(max_latency=limit, latency=model)
    assert c.describe() == f"max_latency={limit:.4g} ms"
    res = exhaustive_search(SPACE, lambda a: -model(a), constraint=c)
    assert len(res.archs) == int((ms <= limit).sum()) and (model(res.archs) <= limit).all()
    with pytest.raises(RlnasError, match=r"satisfies max_latency=.* ms; the fastest takes "
                                         r".* ms \(measured here \(cpu, batch 1"):
        Constraint(max_latency=0.5 * ms.min(), latency=model).check_feasible(SPACE)
    # a space too large to enumerate: refused from the lookup table's bounds, before scoring
    big = tiny_chain("big")
    big.enumerate = lambda: None
    calls = []
    with pytest.raises(RlnasError, match="the fastest takes"):
        random_search(big, lambda a: calls.append(a) or np.zeros(len(a)), num_samples=5,
                      constraint=Constraint(max_latency=0.5 * ms.min(), latency=model))
    assert calls == []


def test_max_latency_needs_a_model():
    from rlnas.searchers import Constraint
    with pytest.raises(RlnasError, match="needs a latency model"):
        Constraint(max_latency=3.0)


TINY = ["channels=4", "cells=1", "epochs=1", "batch=32", "data.nb201_half=false"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from conftest import write_npz
    from rlnas.cli import main
    root = tmp_path_factory.mktemp("data")
    write_npz(root / "train_1.npz", 64, seed=0)
    run = tmp_path_factory.mktemp("run") / "run"
    assert main(["train", "nb201-cifar10", f"root={root}", *TINY, "--out", str(run), "-q"]) == 0
    table = write_nb201_table(tmp_path_factory.mktemp("table") / "dev.csv",
                              value=lambda i: -1 if i == 5 else 1.0 + i % 100)
    return run, table, root


def test_search_under_a_device_latency_limit(tiny_run, capsys):
    import csv
    from rlnas.cli import main
    run, table, _ = tiny_run
    code = main(["search", str(run), "--method", "exhaustive", "--max-latency", "50",
                 "--latency-table", str(table), "--latency-device", "dev", "-q"])
    out = capsys.readouterr().out
    assert code == 0 and "ms" in out and "Pareto front of" in out
    res = json.loads((run / "result.json").read_text())
    assert res["name"] == "exhaustive-angle-maxl50-dev_latency"
    assert res["max_latency"] == 50 and res["constraint"] == "max_latency=50 ms"
    source = f"table {table} column dev_latency"
    assert res["latency"]["source"] == source and res["latency"]["not_on_device"] == 1
    model = TableLatency(NB201, table, "dev")
    for row in res["top"]:
        assert row["latency_source"] == source
        assert row["latency_ms"] == model(np.array([row["genome"]]))[0] <= 50
    assert res["evaluations"] == int((model(NB201.enumerate()) <= 50).sum())
    with open(run / "visited.csv") as f:
        visited = list(csv.DictReader(f))
    assert len(visited) == res["evaluations"] and all(float(r["latency_ms"]) <= 50
                                                       for r in visited)
    with open(run / res["latency"]["pareto_file"]) as f:
        front = list(csv.DictReader(f))
    assert (run / "pareto.csv").read_text() == (run / res["latency"]["pareto_file"]).read_text()
    ms = [float(r["latency_ms"]) for r in front]
    scores = [float(r["angle"]) for r in front]
    assert ms == sorted(ms) and scores == sorted(scores) and len(front) == \
        res["latency"]["pareto_size"]
    # the front's last row is the best scored arch (nothing beats it on score)
    assert front[-1]["arch"] == res["top"][0]["arch"]
    assert (run / "plots" / f"search-{res['name']}_score_vs_latency.png").is_file()


def test_search_refuses_a_latency_limit_below_the_fastest_arch(tiny_run, capsys):
    from rlnas.cli import main
    run, table, _ = tiny_run
    before = (run / "result.json").read_text() if (run / "result.json").exists() else None
    code = main(["search", str(run), "--max-latency", "0.5", "--latency-table", str(table),
                 "--latency-device", "dev", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "the fastest takes 1 ms (table" in err and len(err.splitlines()) == 1
    after = (run / "result.json").read_text() if (run / "result.json").exists() else None
    assert after == before
    code = main(["search", str(run), "--max-latency", "5", "--latency-table", str(table),
                 "--latency-device", "gpu", "-q"])
    assert code == 2 and "no device column 'gpu'" in capsys.readouterr().err


def test_run_refuses_a_latency_limit_before_training(tiny_run, tmp_path, capsys):
    from rlnas.cli import main
    _, table, root = tiny_run
    code = main(["run", "nb201-cifar10", f"root={root}", *TINY, "--out", str(tmp_path / "r"),
                 "--max-latency", "0.5", "--latency-table", str(table), "--latency-device",
                 "dev", "-q"])
    assert code == 2 and "the fastest takes" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
