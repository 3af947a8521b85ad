"""Latency (rlnas.latency): the chain lookup table and its sum, the per-network cell cache, the
JSON cache (hit, key, corrupt file), device tables and their errors, the max-latency limit in
the searchers and in `rlnas search`. Tiny networks, 2 repeats: correctness, not timings (the
timings are in benchmarks/latency_accuracy.py)."""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

import rlnas.latency as latency
from rlnas.errors import RlnasError
from rlnas.latency import (
    CellLatency,
    ChainLatency,
    LatencySetting,
    LoadMeter,
    TableLatency,
    latency_model,
    measured_here,
    pareto_front,
)
from rlnas.spaces import get_space
from rlnas.spaces.choice import Choice, ChoiceSpace, Op, skip

FAST = LatencySetting(warmup=1, repeats=2)


def conv_op(k):
    return Op(f"conv{k}", lambda c_in, c_out, stride, k=k: nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()))


def tiny_chain(name="tiny", width=8):
    ops = [conv_op(3), conv_op(1), skip()]  # one list: blocks 1 and 2 share their ops
    return ChoiceSpace(
        name, stem=lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()),
        blocks=[Choice([conv_op(3), conv_op(1)], width, stride=2),
                Choice(ops, width), Choice(ops, width)],
        head=lambda classes, dropout: nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes)),
        input_size=8, num_classes=3)


SPACE = tiny_chain()


class Counter:
    """Counts calls of latency.time_passes (what a cache hit must not make): one per chain path
    of a chain table, one per network of a cell space."""

    def __init__(self, monkeypatch):
        self.calls = 0
        real = latency.time_passes

        def counted(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(latency, "time_passes", counted)


@pytest.fixture(autouse=True)
def quiet_machine(monkeypatch):
    """Tables built under load are not cached; the tests of the cache must not depend on the
    machine's load (the load check has its own tests, which set LOAD_RATIO themselves)."""
    monkeypatch.setattr(latency, "LOAD_RATIO", math.inf)


# --- measuring -------------------------------------------------------------------------------
def test_chain_prediction_is_the_scaled_sum_of_its_table_entries(tmp_path):
    model = ChainLatency(SPACE, FAST, folder=tmp_path)
    table = model.table()
    assert set(table) == {"stem", "head"} | {f"block{b}.op{o}" for b, n in
                                             enumerate(SPACE.num_ops) for o in range(n)}
    assert all(v > 0 for v in table.values()) and model.scale > 0
    archs = SPACE.enumerate()
    expected = [model.scale * (table["stem"] + table["head"] + sum(
        table[f"block{b}.op{o}"] for b, o in enumerate(a))) for a in archs]
    np.testing.assert_allclose(model(archs), expected, rtol=1e-12)
    lo, hi = model.bounds()
    assert lo == pytest.approx(min(expected)) and hi == pytest.approx(max(expected))


def test_chain_entries_are_medians_of_per_path_medians_inside_running_chains(tmp_path,
                                                                             monkeypatch):
    """Every op built once and run in >= CHAIN_ROUNDS paths (one op per block, stem first, head
    last); an entry is the median over its paths of its per-path median. The timer is replaced
    by one whose numbers are known: pass r, part i of path p takes 100 p + 10 i + r ms."""
    paths = []

    def fake(parts, x, setting, meter=None, cpu_times=False):
        if len(parts) == 1:  # a whole network timed for the calibration (its own test)
            wall = np.ones((setting.repeats, 1))
            return (wall, wall) if cpu_times else wall
        p = len(paths)
        paths.append(list(parts))
        wall = np.array([[100.0 * p + 10 * i + r for i in range(len(parts))]
                         for r in range(setting.repeats)])
        return (wall, wall / 2) if cpu_times else wall
    monkeypatch.setattr(latency, "time_passes", fake)
    model = ChainLatency(SPACE, LatencySetting(warmup=0, repeats=3), folder=tmp_path)
    width = int(SPACE.num_ops.max())
    assert len(paths) == latency.CHAIN_ROUNDS * width
    assert all(len(parts) == SPACE.num_genes + 2 for parts in paths)
    stems, heads = {id(parts[0]) for parts in paths}, {id(parts[-1]) for parts in paths}
    assert len(stems) == len(heads) == 1  # built once
    # the per-path median of part i of path p is 100 p + 10 i + 1
    table = model.table()
    assert table["stem"] == float(np.median([100 * p + 1 for p in range(len(paths))]))
    head = 10 * (SPACE.num_genes + 1) + 1
    assert table["head"] == float(np.median([100 * p + head for p in range(len(paths))]))
    for b, n in enumerate(SPACE.num_ops):
        runs = {}  # op module -> the paths it ran in
        for p, parts in enumerate(paths):
            runs.setdefault(id(parts[1 + b]), []).append(p)
        assert len(runs) == n  # each op of the block built once
        assert all(len(ps) >= latency.CHAIN_ROUNDS for ps in runs.values())
        expected = sorted(float(np.median([100 * p + 10 * (1 + b) + 1 for p in ps]))
                          for ps in runs.values())
        assert sorted(table[f"block{b}.op{o}"] for o in range(n)) == expected
    assert model.cpu_table() == {k: v / 2 for k, v in table.items()}


def test_chain_sums_are_scaled_to_whole_networks(tmp_path, monkeypatch):
    """After the table, CALIBRATION_ARCHS seeded archs are timed as standalone networks (one
    call of ``space.network``); the scale is the median of measured / summed. The timer is
    replaced: a part of a chain takes 1 ms, a whole network 3 ms per stem, head and block, so
    every arch's sum is num_genes + 2 ms and the scale is 3."""
    def fake(parts, x, setting, meter=None, cpu_times=False):
        if len(parts) == 1:
            assert isinstance(parts[0], torch.nn.Sequential)  # space.network's
            wall = np.full((setting.repeats, 1), 3.0 * (SPACE.num_genes + 2))
        else:
            wall = np.ones((setting.repeats, len(parts)))
        return (wall, wall) if cpu_times else wall
    monkeypatch.setattr(latency, "time_passes", fake)
    model = ChainLatency(SPACE, FAST, folder=tmp_path)
    cal = model.describe()["calibration"]
    assert model.scale == 3.0 and len(cal["archs"]) == latency.CALIBRATION_ARCHS
    assert cal["summed_ms"] == [SPACE.num_genes + 2.0] * latency.CALIBRATION_ARCHS
    assert cal["measured_ms"] == [3.0 * (SPACE.num_genes + 2)] * latency.CALIBRATION_ARCHS
    np.testing.assert_allclose(model(SPACE.enumerate()), 3.0 * (SPACE.num_genes + 2))
    again = ChainLatency(SPACE, FAST, folder=tmp_path)  # from the cache: the same scale
    assert not again.built_now and again.scale == 3.0
    assert "scaled by 3.000" in model.status()


def test_chain_parts_run_as_a_chain(tmp_path, monkeypatch):
    """The timed parts, called in order on the table's input, are the network: each part's
    output is the next one's input, and the head gives the classes."""
    seen = []
    real = latency.time_passes

    def check(parts, x, setting, meter=None, cpu_times=False):
        h = x
        with torch.no_grad():
            for part in parts:
                h = part(h)
        seen.append(tuple(h.shape))
        return real(parts, x, setting, meter, cpu_times)
    monkeypatch.setattr(latency, "time_passes", check)
    ChainLatency(SPACE, FAST, folder=tmp_path)
    assert seen and set(seen) == {(1, SPACE.num_classes)}


def test_chain_cache_hit_does_not_measure_again(tmp_path, monkeypatch):
    first = ChainLatency(SPACE, FAST, folder=tmp_path)
    assert first.built_now and first.cache.path.is_file()
    saved = json.loads(first.cache.path.read_text())
    assert saved["key"]["threads"] == 1 and saved["key"]["batch"] == 1
    assert saved["key"]["input"] == [3, 8, 8] and saved["seconds"] > 0
    counter = Counter(monkeypatch)
    again = ChainLatency(SPACE, FAST, folder=tmp_path)
    assert counter.calls == 0 and not again.built_now
    assert again.table() == first.table() and again.cpu_table() == first.cpu_table()
    assert set(first.cpu_table()) == set(first.table())
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


def test_two_declarations_alike_but_for_their_width_get_two_tables(tmp_path, monkeypatch):
    """The cache key holds a fingerprint of the declaration, not only its name: an 8-channel
    and a 16-channel ``my_space`` do not share a table; the same declaration built again does."""
    narrow, wide = tiny_chain("my_space", width=8), tiny_chain("my_space", width=16)
    assert latency.declaration_fingerprint(narrow) != latency.declaration_fingerprint(wide)
    assert latency.declaration_fingerprint(narrow) == latency.declaration_fingerprint(
        tiny_chain("my_space", width=8))
    a = ChainLatency(narrow, FAST, folder=tmp_path)
    counter = Counter(monkeypatch)
    b = ChainLatency(wide, FAST, folder=tmp_path)
    assert b.built_now and counter.calls > 0 and b.cache.path != a.cache.path
    calls = counter.calls
    again = ChainLatency(tiny_chain("my_space", width=8), FAST, folder=tmp_path)
    assert not again.built_now and counter.calls == calls and again.table() == a.table()
    # cell spaces: the network options and the class are the declaration
    nb = get_space("nb201")
    assert latency.declaration_fingerprint(nb, {"channels": 4, "cells": 1}) != \
        latency.declaration_fingerprint(nb, {"channels": 8, "cells": 1})


def test_a_table_of_another_machine_is_not_reused_and_the_line_says_so(tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.setattr(latency, "_cpu_model", lambda: "Other CPU 9000")
    theirs = ChainLatency(SPACE, FAST, folder=tmp_path)
    assert theirs.cache.key["machine"]["cpu"] == "Other CPU 9000"
    monkeypatch.undo()
    monkeypatch.setattr(latency, "LOAD_RATIO", math.inf)
    capsys.readouterr()
    counter = Counter(monkeypatch)
    mine = ChainLatency(SPACE, FAST, folder=tmp_path)
    err = capsys.readouterr().err
    assert mine.built_now and counter.calls > 0 and mine.cache.path != theirs.cache.path
    assert len(err.splitlines()) == 1 and "measured on another machine" in err
    assert f"{theirs.cache.path}" in err and "'Other CPU 9000' here" in err
    # both tables stay: the other machine reads its own
    assert theirs.cache.path.is_file() and mine.cache.path.is_file()


def test_measuring_leaves_the_random_stream_alone(tmp_path):
    """Building the measured modules draws weights: the caller's torch stream (a search, a
    training) goes on as if nothing had been measured."""
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    ChainLatency(SPACE, FAST, folder=tmp_path)
    measured_here(get_space("nb201"), {"num_classes": 10, "image_size": 8, "channels": 4,
                                       "cells": 1}, FAST, folder=tmp_path)(
        get_space("nb201").enumerate()[:2])
    assert torch.equal(torch.rand(3), expected)


def test_load_meter_by_hand(monkeypatch):
    monkeypatch.setattr(latency, "LOAD_RATIO", 1.2)  # the product's (the fixture sets inf)
    meter = LoadMeter()
    assert meter.ratio is None and not meter.loaded
    meter.add(1.0, 1.0)
    assert meter.ratio == 1.0 and not meter.loaded
    meter.add(2.0, 1.0)
    assert meter.ratio == 1.5 and meter.loaded
    assert LoadMeter(active=False).ratio is None


@pytest.fixture
def loaded_machine(monkeypatch):
    """Every table counts as built under load: the wall time of a call is never below its
    thread CPU time, so any ratio exceeds 0.5."""
    monkeypatch.setattr(latency, "LOAD_RATIO", 0.5)


def test_a_chain_table_built_under_load_is_used_and_not_cached(tmp_path, loaded_machine,
                                                               capsys, monkeypatch):
    model = ChainLatency(SPACE, FAST, folder=tmp_path)
    err = capsys.readouterr().err
    assert model.built_now and not model.cached and not model.cache.path.exists()
    assert len(err.splitlines()) == 1 and "built under load" in err and "not cached" in err
    assert model(SPACE.enumerate()).shape == (len(SPACE.enumerate()),)  # used for this run
    assert "under load" in model.describe()["table"] and model.describe()["load_ratio"] > 0.5
    # a GPU or several threads: the CPU time says nothing, the table is cached
    assert not LatencySetting(threads=2).checks_load


def test_cell_networks_measured_under_load_are_used_and_not_cached(tmp_path, loaded_machine,
                                                                   capsys, monkeypatch):
    space = get_space("nb201")
    kw = {"num_classes": 10, "image_size": 8, "channels": 4, "cells": 1}
    model = measured_here(space, kw, FAST, folder=tmp_path)
    archs = space.enumerate()[:3]
    ms = model(archs)
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "3 of 3 networks measured under load" in err
    assert not model.cache.path.exists() and model.describe()["not_cached"] == 3
    counter = Counter(monkeypatch)
    np.testing.assert_array_equal(model(archs), ms)  # kept for this run
    assert counter.calls == 0


def test_a_long_cell_measurement_is_announced_with_a_progress_bar(tmp_path, monkeypatch,
                                                                  capsys):
    monkeypatch.setattr(latency, "ANNOUNCE_AFTER", 2)
    space = get_space("nb201")
    lines = []
    model = measured_here(space, {"num_classes": 10, "image_size": 8, "channels": 4,
                                  "cells": 1}, FAST, folder=tmp_path, log=lines.append,
                          progress=True)
    model(space.enumerate()[:7])  # fewer than 4 x 2: measured without a word
    assert lines == []
    model(space.enumerate()[7:17])
    assert len(lines) == 1
    assert "measuring 10 networks, each once end to end: about" in lines[0]
    assert "s each over the first 2" in lines[0] and str(model.cache.path) in lines[0]
    assert "latency" in capsys.readouterr().err  # the bar
    assert model.describe()["measured_now"] == 17 and "17 networks in cache" in model.status()


def test_chain_status_says_built_or_read_from_cache(tmp_path):
    lines = []
    built = ChainLatency(SPACE, FAST, folder=tmp_path, log=lines.append)
    read = ChainLatency(SPACE, FAST, folder=tmp_path, log=lines.append)
    assert len(lines) == 1  # the build is logged; where a table came from is in its status
    assert f"built in {built.cache.seconds:.1f} s (sums scaled by {built.scale:.3f} to " \
        f"{latency.CALIBRATION_ARCHS} whole networks), cached in {built.cache.path}" in lines[0]
    assert lines[0].endswith(built.status())
    assert read.status().startswith(f"read from cache {built.cache.path} (built in ")
    assert read.describe()["table"] == read.status()


# --- onnxruntime --------------------------------------------------------------------------------
ORT = LatencySetting(warmup=1, repeats=2, runtime="onnxruntime")


def test_onnxruntime_times_the_exported_chain_and_networks(tmp_path):
    pytest.importorskip("onnxruntime")
    model = ChainLatency(SPACE, ORT, folder=tmp_path)
    torch_model = ChainLatency(SPACE, FAST, folder=tmp_path)
    assert model.cache.path != torch_model.cache.path
    assert set(model.table()) == set(torch_model.table())
    assert all(v > 0 for v in model.table().values())
    assert "onnxruntime" in model.source and model.cache.key["runtime"] == "onnxruntime"
    # the exported op computes what the module does
    op = latency.prepare(SPACE.make_op(0, 0), ORT)
    x = torch.randn(1, 4, 8, 8)
    run = latency.runnable(op, x, ORT)
    with torch.no_grad():
        np.testing.assert_allclose(run(x.numpy()), op(x).numpy(), rtol=1e-4, atol=1e-5)
    nb = get_space("nb201")
    cell = measured_here(nb, {"num_classes": 10, "image_size": 8, "channels": 4, "cells": 1},
                         ORT, folder=tmp_path)
    assert (cell(nb.enumerate()[:2]) > 0).all()


def test_onnxruntime_absent_or_misused_is_a_one_line_error(monkeypatch):
    with pytest.raises(RlnasError, match="onnxruntime measures on the CPU in fp32"):
        LatencySetting(runtime="onnxruntime", precision="bf16")
    with pytest.raises(RlnasError, match="unknown latency runtime 'tensorrt'"):
        LatencySetting(runtime="tensorrt")
    real = latency.importlib.util.find_spec
    monkeypatch.setattr(latency.importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(RlnasError, match=r"needs onnxruntime: pip install 'rlnas\[onnx\]'$"):
        LatencySetting(runtime="onnxruntime")


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
    # 4 has no score; 0 (fastest scored), 2 (better, slower), 1 (better still); 3 is beaten by 1,
    # 5 cannot run
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


def test_a_measuring_setting_with_a_device_table_is_refused(tmp_path):
    path = write_nb201_table(tmp_path / "t.csv")
    with pytest.raises(RlnasError, match="measured on its device"):
        latency_model(NB201, table=path, device="dev", setting=FAST)


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


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_search_prints_where_the_measured_latency_came_from(tiny_run, tmp_path, monkeypatch,
                                                            capsys, runtime):
    """`rlnas search --max-latency [--latency-runtime R]` measured here: the cell networks'
    latencies read from the cache (filled here with known numbers: measuring 15,625 networks is
    the benchmark's job) and the line that says so."""
    from rlnas.cli import main
    from rlnas.rundir import open_run
    if runtime == "onnxruntime":
        pytest.importorskip("onnxruntime")
    run, table, _ = tiny_run
    monkeypatch.setenv("RLNAS_CACHE", str(tmp_path / "cache"))
    model = measured_here(NB201, open_run(run).cost_kwargs, LatencySetting(runtime=runtime))
    archs = NB201.enumerate()
    model.cache.entries = {model._key(a): 1.0 + i % 50 for i, a in enumerate(archs)}
    model.cache.save()
    code = main(["search", str(run), "--method", "random", "--max-latency", "10",
                 "--latency-runtime", runtime, "-q"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"latency table: 15,625 networks in cache {model.cache.path}" in out
    res = json.loads((run / "result.json").read_text())
    assert res["latency"]["measured_now"] == 0 and all(r["latency_ms"] <= 10 for r in res["top"])
    assert (runtime == "onnxruntime") == ("onnxruntime" in res["latency"]["source"])
    code = main(["search", str(run), "--latency-table", str(table), "--latency-device", "dev",
                 "--latency-runtime", runtime, "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "measured on its device" in err and len(err.splitlines()) == 1


def test_evaluate_ladder_under_device_latency_limits(tiny_run, tmp_path, capsys):
    """`rlnas evaluate --latency-table T --latency-device dev`: the constrained ladder with the
    device's latency as the cost, against picks made here by hand."""
    from rlnas.cli import main
    run, table, _ = tiny_run
    archs = NB201.enumerate()
    strs = [NB201.to_str(tuple(a)) for a in archs]
    acc = np.random.default_rng(1).uniform(10, 94, len(archs))
    truth = tmp_path / "nb201.csv"
    truth.write_text("arch,cifar10_test\n" + "".join(f"{s},{a:.4f}\n" for s, a in zip(strs, acc)))
    out = tmp_path / "eval"
    code = main(["evaluate", str(run), "--nasbench201", str(truth), "--scorers", "params",
                 "--latency-table", str(table), "--latency-device", "dev", "--out", str(out),
                 "-q"])
    printed = capsys.readouterr().out
    assert code == 0 and "under latency limits on dev_latency" in printed
    res = json.loads((out / "evaluation.json").read_text())
    ladder = res["per_run"][0]["constrained_latency"]["dev_latency"]
    ms = TableLatency(NB201, table, "dev")(archs)
    acc = np.round(acc, 4)
    runs = np.isfinite(ms)
    assert ladder["not_on_device"] == 1 and ladder["unit"] == "ms"
    expected = np.unique(np.quantile(ms[runs], np.linspace(0.1, 1.0, 10),
                                     method="inverted_cdf"))
    assert ladder["budgets"] == expected.tolist()
    params = NB201.cost(archs)["params"]
    for i, limit in enumerate(ladder["budgets"]):
        fits = np.flatnonzero(runs & (ms <= limit))
        assert ladder["n_eligible"][i] == len(fits)
        assert ladder["oracle"]["arch"][i] == strs[fits[np.argmax(acc[fits])]]
        assert ladder["methods"]["params"]["arch"][i] == strs[fits[np.argmax(params[fits])]]
        assert strs[5] not in (ladder["oracle"]["arch"][i],
                               ladder["methods"]["params"]["arch"][i])
    md = (out / "evaluation.md").read_text()
    assert "pick under a latency limit on dev_latency" in md and "| limit (ms, dev_latency) |" in md
    assert "(1 it cannot run are left out)" in md
    assert (out / "plots" / "constrained_latency_dev_latency_cifar10_test.png").is_file()
    code = main(["evaluate", str(run), "--nasbench201", str(truth), "--scorers", "params",
                 "--latency-table", str(table), "--latency-device", "gpu", "--out", str(out),
                 "-q"])
    assert code == 2 and "no device column 'gpu'" in capsys.readouterr().err
