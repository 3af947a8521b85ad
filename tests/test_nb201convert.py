"""Tests for rlnas.nb201convert: official NB201 / NATS-tss archives -> the compact CSV table.

Two kinds of fake archives are used; neither is real benchmark data.

* Real-format fakes (tests marked by ``pytest.importorskip``): tiny archives (3 archs) built
  with the official packages' own ``ResultsCount`` / ``ArchResults`` classes and saved the
  way the official files are (``torch.save`` of ``{'meta_archs', 'arch2infos': {i: {'less',
  'full'}}, 'evaluated_indexes'}`` for NAS-Bench-201; bz2 pickles ``meta.pickle.pbz2`` +
  ``000000.pickle.pbz2``... for a NATS-tss fast-mode folder, or one ``.pickle.pbz2``). The
  converter then reads them through the real ``nas_201_api`` / ``nats_bench`` APIs. Each
  (dataset, seed) has its own values and the earlier epochs differ from the last, so the
  tests check that the table holds the last-epoch mean over seeds of the right split.
  These run only when ``nas-bench-201`` / ``nats_bench`` are installed (optional packages).

* Stand-in modules (always run): small stand-ins injected into ``sys.modules`` as
  ``nas_201_api`` / ``nats_bench``, exposing only the API surface the converter uses
  (``NASBench201API(dict, verbose)``, ``nats_bench.create``, ``len``, ``arch``,
  ``get_more_info``, ``get_cost_info``, ``clear_params``, and ``api_utils`` /
  ``api_topology.pickle_load``, through which ``create`` reads its bz2-pickled spec as the
  real package reads its archive) on a simplified layout of their own. They test the
  conversion logic, the full-size (15,625 archs) path and the error paths without the
  optional packages; they say nothing about the official format.

* Crafted pickles (``Payload``): their unpickling would run ``touch MARKER``; the safe loads
  must refuse them before that happens, and ``trust_pickle=True`` is the only way past.
"""

from __future__ import annotations

import bz2
import collections
import csv
import fractions
import itertools
import json
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from rlnas import nb201convert as nc
from rlnas.errors import RlnasError
from rlnas.tables import ACCURACY_COLUMNS, load_nb201_table

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
DATASETS = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")
EVAL_SETS = {
    "cifar10-valid": ("x-valid", "ori-test"),
    "cifar10": ("ori-test",),
    "cifar100": ("x-valid", "x-test", "ori-test"),
    "ImageNet16-120": ("x-valid", "x-test", "ori-test"),
}
SET_NAMES = ("x-valid", "x-test", "ori-test")
SEEDS = (777, 888)
EPOCHS = {"12": 2, "200": 3}
NB201_NAME = "NAS-Bench-201-v1_1-096897.pth"
NATS_DIR = "NATS-tss-v1_0-3ffb9-simple"
NATS_FILE = "NATS-tss-v1_0-3ffb9.pickle.pbz2"


def arch_str(ops) -> str:
    o = list(ops)
    return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"


def all_archs(n: int):
    return [arch_str(ops) for ops in itertools.islice(itertools.product(OPS, repeat=6), n)]


def files_in(folder: Path):
    return sorted(p.name for p in folder.iterdir())


def read_index_column(path: Path):
    with open(path, newline="") as fh:
        return [int(r["index"]) for r in csv.DictReader(fh)]


# --------------------------------------------------------------------------------------
# Real-format fakes
# --------------------------------------------------------------------------------------


def acc_value(idx, ds, setname, seed, epoch, hp):
    """Accuracy of one trial; only the last epoch should end up in the table."""
    v = 40.0 + 7 * idx + 3 * DATASETS.index(ds) + 0.5 * SET_NAMES.index(setname) + idx / 3
    v += 0.25 if seed == 888 else 0.0
    v -= 20.0 if hp == "12" else 0.0
    if epoch != EPOCHS[hp] - 1:
        v -= 10.0
    return v


def expected_acc(idx, ds, setname, hp):
    vals = [acc_value(idx, ds, setname, s, EPOCHS[hp] - 1, hp) for s in SEEDS]
    return float(np.mean(vals))


def params_of(idx):
    return np.float64(0.1 + 0.2 * idx + idx / 7)  # NumPy scalars, as in the official files


def flops_of(idx):
    return np.float64(10.0 + 5 * idx + idx / 9)


def build_archresults(mod, idx, arch, hp, weights):
    """An ArchResults state dict made with the package's own classes."""
    ar = mod.ArchResults(idx, arch)
    epochs = EPOCHS[hp]
    for ds in DATASETS:
        for seed in SEEDS:
            net = collections.OrderedDict(w=torch.full((2,), float(idx))) if weights else None
            r = mod.ResultsCount(
                f"{ds}-seed-{seed}", net,
                {e: 30.0 + e for e in range(epochs)}, {e: 2.0 - 0.1 * e for e in range(epochs)},
                params_of(idx), flops_of(idx),
                {"channel": 16, "num_cells": 5, "arch_str": arch,
                 "class_num": {"cifar100": 100, "ImageNet16-120": 120}.get(ds, 10)},
                seed, epochs, [0.01],
            )
            accs, losses, times = {}, {}, {}
            for setname in EVAL_SETS[ds]:
                for e in range(epochs):
                    key = f"{setname}@{e}"
                    accs[key] = acc_value(idx, ds, setname, seed, e, hp)
                    losses[key] = 1.0
                    times[key] = 0.5
            r.update_eval(accs, losses, times)
            ar.update(ds, seed, r)
    return ar.state_dict()


def make_nb201_pth(folder: Path, n=3, evaluated=None, name=NB201_NAME) -> Path:
    api = pytest.importorskip("nas_201_api")
    archs = all_archs(n)
    evaluated = list(range(n)) if evaluated is None else list(evaluated)
    data = {
        "meta_archs": archs,
        "arch2infos": {
            i: {"less": build_archresults(api, i, archs[i], "12", True),
                "full": build_archresults(api, i, archs[i], "200", True)}
            for i in evaluated
        },
        "evaluated_indexes": evaluated,
        "total_archs": n,
    }
    path = folder / name
    torch.save(data, path)
    return path


def make_nats(folder: Path, n=3, single_file=False, weights=False) -> Path:
    """A NATS-tss -simple folder or single file (weights=True: a -full one, pickled tensors)."""
    nb = pytest.importorskip("nats_bench")
    archs = all_archs(n)
    infos = {
        i: {"12": build_archresults(nb, i, archs[i], "12", weights),
            "200": build_archresults(nb, i, archs[i], "200", weights)}
        for i in range(n)
    }
    if single_file:
        data = {"meta_archs": archs, "arch2infos": infos, "evaluated_indexes": list(range(n))}
        nb.pickle_save(data, str(folder / NATS_FILE[: -len(".pbz2")]))
        return folder / NATS_FILE
    d = folder / NATS_DIR
    d.mkdir()
    nb.pickle_save({"meta_archs": archs}, str(d / "meta.pickle"))
    for i in range(n):
        nb.pickle_save(infos[i], str(d / f"{i:06d}.pickle"))
    return d


def check_table(out: Path, n: int, hp: str, with_costs=True):
    table = load_nb201_table(out)
    archs = all_archs(n)
    assert table.archs == archs
    assert read_index_column(out) == list(range(n))
    col_src = {c: nc.COLUMN_SOURCES[c][:2] for c in ACCURACY_COLUMNS}
    for col, (ds, setname) in col_src.items():
        got = table.lookup(archs, col)
        want = [expected_acc(i, ds, setname, hp) for i in range(n)]
        assert got.tolist() == pytest.approx(want, abs=1e-9), col
    if with_costs:
        assert table.columns["params_m"].tolist() == pytest.approx([float(params_of(i))
                                                                     for i in range(n)])
        assert table.columns["flops_m"].tolist() == pytest.approx([float(flops_of(i))
                                                                    for i in range(n)])


def test_column_sources_match_nb201_conventions():
    assert nc.COLUMN_SOURCES == {
        "cifar10_valid": ("cifar10-valid", "x-valid", "valid-accuracy"),
        "cifar10_test": ("cifar10", "ori-test", "test-accuracy"),
        "cifar100_valid": ("cifar100", "x-valid", "valid-accuracy"),
        "cifar100_test": ("cifar100", "x-test", "test-accuracy"),
        "imagenet16_valid": ("ImageNet16-120", "x-valid", "valid-accuracy"),
        "imagenet16_test": ("ImageNet16-120", "x-test", "test-accuracy"),
    }


def test_real_nb201_pth(tmp_path):
    pytest.importorskip("nas_201_api")
    src = make_nb201_pth(tmp_path)
    out = tmp_path / "nb201.csv"
    summary = nc.convert(src, out, progress=False, allow_partial=True)
    assert summary["rows"] == 3 and summary["kind"] == "nb201" and summary["hp"] == "200"
    assert summary["columns"] == ["index", "arch", *ACCURACY_COLUMNS, "params_m", "flops_m"]
    assert summary["source"] == str(src) and summary["seconds"] >= 0
    assert summary["api_version"]  # nas_201_api.NAS_BENCH_201_API_VERSION
    check_table(out, 3, "200")
    meta = json.loads(nc.meta_path_for(out).read_text())
    assert meta["source"] == NB201_NAME and meta["hp"] == "200" and meta["is_random"] is False
    assert meta["api"].startswith("nas_201_api") and meta["api_version"] == summary["api_version"]
    assert meta["columns"]["cifar10_test"]["dataset"] == "cifar10"
    assert meta["columns"]["cifar10_test"]["set"] == "ori-test"
    assert "200 epochs" in meta["columns"]["cifar100_test"]["semantics"]
    assert "params_m" in meta["columns"] and meta["skipped"] == []
    # no temp file left behind; the CSV has no comment lines (the loader would not skip them)
    assert files_in(tmp_path) == sorted([NB201_NAME, "nb201.csv", "nb201.csv.meta.json"])
    assert not out.read_text().startswith("#")


def test_real_nb201_pth_with_numpy_scalars_loads_weights_only(tmp_path, monkeypatch):
    """Why the converter loads the .pth itself: with torch >= 2.6 (weights_only=True by
    default) NASBench201API(path) refuses a file holding NumPy scalars, as the official ones do;
    the converter's own load admits them, still weights_only."""
    api = pytest.importorskip("nas_201_api")
    src = make_nb201_pth(tmp_path, n=1)
    major_minor = tuple(int(x) for x in torch.__version__.split(".")[:2])
    if major_minor >= (2, 6):
        with pytest.raises(Exception, match="[Ww]eights.only"):
            api.NASBench201API(str(src), verbose=False)
    modes, load = [], torch.load

    def spy(*args, **kwargs):
        modes.append(kwargs.get("weights_only"))
        return load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    assert nc.convert(src, tmp_path / "t.csv", progress=False, allow_partial=True)["rows"] == 1
    assert modes == [True]


def test_real_nb201_pth_saved_with_numpy_1_names_loads(tmp_path):
    """The official files were written under NumPy 1.x: their scalars name
    numpy.core.multiarray.scalar, not NumPy 2's numpy._core.multiarray.scalar."""
    pytest.importorskip("nas_201_api")
    src = make_nb201_pth(tmp_path, n=1)
    legacy = tmp_path / "legacy" / NB201_NAME
    legacy.parent.mkdir()
    # the legacy (non-zip) format is one pickle stream whose GLOBAL opcodes are plain text
    torch.save(torch.load(src, weights_only=False), legacy, _use_new_zipfile_serialization=False)
    raw = legacy.read_bytes()
    legacy.write_bytes(raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    assert b"numpy.core.multiarray\nscalar" in legacy.read_bytes()
    out = tmp_path / "t.csv"
    assert nc.convert(legacy, out, progress=False, allow_partial=True)["rows"] == 1
    check_table(out, 1, "200")


def test_real_nb201_hp12_reads_the_12_epoch_results(tmp_path):
    pytest.importorskip("nas_201_api")
    src = make_nb201_pth(tmp_path, n=2)
    out = tmp_path / "t12.csv"
    nc.convert(src, out, hp="12", progress=False, allow_partial=True)
    check_table(out, 2, "12")
    meta = json.loads(nc.meta_path_for(out).read_text())
    assert meta["epochs"] == 12 and "12 epochs" in meta["columns"]["cifar10_valid"]["semantics"]


def test_real_nb201_partial_needs_the_flag(tmp_path):
    pytest.importorskip("nas_201_api")
    src = make_nb201_pth(tmp_path)
    with pytest.raises(RlnasError, match="has 3 architectures, not 15625; pass allow_partial=True"):
        nc.convert(src, tmp_path / "x.csv", progress=False)
    assert files_in(tmp_path) == [NB201_NAME]


def test_real_nb201_arch_without_results(tmp_path):
    pytest.importorskip("nas_201_api")
    src = make_nb201_pth(tmp_path, n=3, evaluated=[0, 2])
    out = tmp_path / "x.csv"
    # allow_partial also governs archs without results; here it is needed for both reasons
    summary = nc.convert(src, out, progress=False, allow_partial=True)
    assert summary["rows"] == 2 and summary["skipped"] == 1
    assert read_index_column(out) == [0, 2]
    meta = json.loads(nc.meta_path_for(out).read_text())
    assert [s[0] for s in meta["skipped"]] == [1]


@pytest.mark.parametrize("single_file", [False, True], ids=["simple-folder", "pbz2-file"])
def test_real_nats_tss(tmp_path, single_file):
    pytest.importorskip("nats_bench")
    src = make_nats(tmp_path, n=3, single_file=single_file)
    out = tmp_path / "nats.csv"
    summary = nc.convert(src, out, progress=False, allow_partial=True)
    assert summary["kind"] == "nats-tss" and summary["rows"] == 3
    check_table(out, 3, "200")
    meta = json.loads(nc.meta_path_for(out).read_text())
    assert meta["source"] == src.name and meta["package"] == "nats_bench"
    assert meta["fast_mode"] is (not single_file)
    assert not [p for p in files_in(tmp_path) if p.endswith(".tmp")]


def test_real_nats_folder_missing_arch_file(tmp_path, monkeypatch):
    pytest.importorskip("nats_bench")
    src = make_nats(tmp_path, n=3)
    (src / "000001.pickle.pbz2").unlink()
    monkeypatch.setattr(nc, "NUM_ARCHS", 3)  # a "complete" size, so the missing file is what fails
    with pytest.raises(RlnasError, match="architecture 1 is incomplete: no hp='200' results"):
        nc.convert(src, tmp_path / "x.csv", progress=False)
    summary = nc.convert(src, tmp_path / "x.csv", progress=False, allow_partial=True)
    assert summary["rows"] == 2 and read_index_column(tmp_path / "x.csv") == [0, 2]


def write_bz2_pickle(path: Path, obj) -> Path:
    path.write_bytes(bz2.compress(pickle.dumps(obj)))
    return path


@pytest.mark.parametrize("target", ["single-file", "meta", "arch-file"])
def test_real_nats_crafted_pickle_is_refused(tmp_path, target):
    """The payload in the single file, the folder's meta, or a per-arch file read lazily
    mid-conversion: refused with the --trust-pickle error, nothing run, nothing written."""
    nb = pytest.importorskip("nats_bench")
    original = nb.api_utils.pickle_load
    single = target == "single-file"
    src = make_nats(tmp_path, n=3, single_file=single)
    marker = tmp_path / "MARKER"
    bad = {"single-file": src, "meta": src / "meta.pickle.pbz2",
           "arch-file": src / "000001.pickle.pbz2"}[target]
    write_bz2_pickle(bad, {"200" if target == "arch-file" else "meta_archs": Payload(marker)})
    with pytest.raises(RlnasError) as ei:
        nc.convert(src, tmp_path / "t.csv", progress=False, allow_partial=True)
    msg = str(ei.value)
    assert msg.startswith(f"cannot read {bad} safely: it references posix.system")
    assert "pass --trust-pickle" in msg and "trusted source" in msg and "\n" not in msg
    assert not marker.exists() and not (tmp_path / "t.csv").exists()
    assert nb.api_utils.pickle_load is original and nb.api_topology.pickle_load is original


def test_real_nats_full_archive_needs_trust_pickle(tmp_path):
    """A -full archive pickles its weights as tensors, which plain pickle rebuilds through
    torch.load: the safe load refuses it; trust_pickle=True reads it as nats_bench does."""
    pytest.importorskip("nats_bench")
    src = make_nats(tmp_path, n=2, single_file=True, weights=True)
    with pytest.raises(RlnasError, match=r"safely: it references torch\..*--trust-pickle"):
        nc.convert(src, tmp_path / "t.csv", progress=False, allow_partial=True)
    assert not (tmp_path / "t.csv").exists()
    summary = nc.convert(src, tmp_path / "t.csv", progress=False, allow_partial=True,
                         trust_pickle=True)
    assert summary["rows"] == 2
    check_table(tmp_path / "t.csv", 2, "200")


def test_real_wrong_kind_nats_reader_on_pth(tmp_path):
    pytest.importorskip("nas_201_api")
    pytest.importorskip("nats_bench")
    src = make_nb201_pth(tmp_path, n=1)
    with pytest.raises(RlnasError, match="cannot read .* as a NATS-Bench topology archive"):
        nc.convert(src, tmp_path / "x.csv", kind="nats-tss", progress=False, allow_partial=True)


# --------------------------------------------------------------------------------------
# Stand-in modules (always run)
# --------------------------------------------------------------------------------------


def standin_acc(i, col):
    return 10.0 + (i % 97) * 0.5 + list(ACCURACY_COLUMNS).index(col) + i / 15625


def standin_infos(n, missing=(), no_costs=(), bad=None):
    infos, costs = {}, {}
    for i in range(n):
        if i in missing:
            continue
        per_ds = {ds: {} for ds in DATASETS}
        for col, (ds, _, key) in nc.COLUMN_SOURCES.items():
            per_ds[ds][key] = standin_acc(i, col)
        per_ds["cifar10-valid"]["test-accuracy"] = -1.0  # the 25k model on ori-test: unused
        if bad is not None and i == bad[0]:
            per_ds[bad[1]][bad[2]] = bad[3]
        infos[i] = {"200": per_ds}
        if i not in no_costs:
            costs[i] = {"params": 0.5 + i, "flops": 20.0 + i, "latency": None}
    return infos, costs


class StandinAPI:
    calls: list = []

    def __init__(self, archs, infos, costs):
        self.meta_archs, self.infos, self.costs = list(archs), infos, costs
        self.cleared = []

    def __len__(self):
        return len(self.meta_archs)

    def arch(self, i):
        return self.meta_archs[i]

    def get_more_info(self, i, dataset, iepoch=None, hp="12", is_random=True):
        assert iepoch is None and is_random is False
        StandinAPI.calls.append((i, dataset, hp))
        if i not in self.infos:
            raise ValueError(f"Did not find {i} from arch2infos_dict.")
        return dict(self.infos[i][str(hp)][dataset])

    def get_cost_info(self, i, dataset, hp="12"):
        return dict(self.costs[i])

    def clear_params(self, i, hp=None):
        self.cleared.append(i)


def standin_nas_201_api():
    mod = types.ModuleType("nas_201_api")
    mod.NAS_BENCH_201_API_VERSION = "stand-in"

    class NASBench201API(StandinAPI):
        def __init__(self, d, verbose=True):
            assert isinstance(d, dict) and verbose is False
            for k in ("meta_archs", "arch2infos", "evaluated_indexes"):
                assert k in d
            super().__init__(d["meta_archs"], d["arch2infos"], d["costs"])

    mod.NASBench201API = NASBench201API
    return mod


def standin_nats_bench(with_pickle_load=True):
    """create() reads a bz2-pickled spec (the folder's spec.pickle.pbz2, or the file) through
    api_topology.pickle_load, looked up at call time as the real module does, and makes the
    data; ``with_pickle_load=False``: a module without that reader."""
    mod = types.ModuleType("nats_bench")
    mod.version = lambda: "stand-in"

    def pickle_load(file_path, ext=".pbz2"):  # the real one: bz2 + plain pickle.load
        with bz2.BZ2File(file_path, "rb") as fh:
            return pickle.load(fh)

    if with_pickle_load:
        mod.api_utils = types.SimpleNamespace(pickle_load=pickle_load)
        mod.api_topology = types.SimpleNamespace(pickle_load=pickle_load)

    def create(path, space, fast_mode=False, verbose=True):
        assert space == "tss" and verbose is False and isinstance(path, str)
        p = Path(path)
        assert fast_mode == p.is_dir()
        reader = mod.api_topology.pickle_load if with_pickle_load else pickle_load
        spec = reader(str(p / "spec.pickle.pbz2" if p.is_dir() else p))
        archs = spec.get("archs") or all_archs(spec["n"])
        infos, costs = standin_infos(len(archs), spec.get("missing", ()), spec.get("no_costs", ()))
        return StandinAPI(archs, infos, costs)

    mod.create = create
    return mod


@pytest.fixture
def standins(monkeypatch):
    monkeypatch.setitem(sys.modules, "nas_201_api", standin_nas_201_api())
    monkeypatch.setitem(sys.modules, "nats_bench", standin_nats_bench())
    StandinAPI.calls = []


def standin_pth(folder: Path, n=3, name=NB201_NAME, **kw) -> Path:
    infos, costs = standin_infos(n, **kw)
    data = {"meta_archs": all_archs(n), "arch2infos": infos, "costs": costs,
            "evaluated_indexes": sorted(infos)}
    torch.save(data, folder / name)
    return folder / name


def standin_nats_dir(folder: Path, **spec) -> Path:
    d = folder / NATS_DIR
    d.mkdir()
    write_bz2_pickle(d / "spec.pickle.pbz2", spec)
    return d


def standin_check(out, idx, with_costs=True):
    table = load_nb201_table(out)
    idx = list(idx)
    every = all_archs(max(idx) + 1)
    archs = [every[i] for i in idx]
    assert table.archs == archs
    for col in ACCURACY_COLUMNS:
        assert table.lookup(archs, col).tolist() == [standin_acc(i, col) for i in idx]
    if with_costs:
        assert table.columns["params_m"].tolist() == [0.5 + i for i in idx]
    else:
        assert "params_m" not in table.columns and "flops_m" not in table.columns


def test_standin_full_archive_needs_no_flag(tmp_path, standins, capsys):
    src = standin_nats_dir(tmp_path, n=nc.NUM_ARCHS)
    out = tmp_path / "full.csv"
    summary = nc.convert(src, out, progress=True)
    assert summary["rows"] == nc.NUM_ARCHS and summary["skipped"] == 0 and summary["costs"] is True
    standin_check(out, range(nc.NUM_ARCHS))
    assert read_index_column(out)[-1] == nc.NUM_ARCHS - 1
    assert {c[1] for c in StandinAPI.calls} == set(DATASETS)
    assert {c[2] for c in StandinAPI.calls} == {"200"}
    err = capsys.readouterr().err
    assert "15000/15625 archs read" in err and "wrote 15625 rows" in err
    assert files_in(tmp_path) == sorted([NATS_DIR, "full.csv", "full.csv.meta.json"])


def test_standin_nb201_values_costs_and_weights_dropped(tmp_path, standins, capsys):
    src = standin_pth(tmp_path, n=4)
    out = tmp_path / "t.csv"
    summary = nc.convert(src, out, progress=False, allow_partial=True)
    assert capsys.readouterr().err == ""
    assert summary["api_version"] == "stand-in" and summary["rows"] == 4
    standin_check(out, range(4))
    meta = json.loads(nc.meta_path_for(out).read_text())
    assert meta["api_version"] == "stand-in" and meta["archs_in_archive"] == 4
    assert set(meta["columns"]) == {"index", "arch", *ACCURACY_COLUMNS, "params_m", "flops_m"}


def test_standin_costs_left_out_when_any_arch_lacks_them(tmp_path, standins):
    src = standin_pth(tmp_path, n=3, no_costs=(2,))
    out = tmp_path / "t.csv"
    summary = nc.convert(src, out, progress=False, allow_partial=True)
    assert summary["costs"] is False and "params_m" not in summary["columns"]
    standin_check(out, range(3), with_costs=False)
    meta = json.loads(nc.meta_path_for(out).read_text())
    assert meta["costs"].startswith("left out: index 2") and "params_m" not in meta["columns"]


def test_standin_missing_accuracy_is_an_error(tmp_path, standins, monkeypatch):
    src = standin_pth(tmp_path, n=2)
    data = torch.load(src, weights_only=False)
    del data["arch2infos"][1]["200"]["cifar10"]["test-accuracy"]
    torch.save(data, src)
    monkeypatch.setattr(nc, "NUM_ARCHS", 2)  # so the incomplete arch, not the count, fails
    with pytest.raises(RlnasError,
                       match="architecture 1 is incomplete: no 'ori-test' accuracy on cifar10"):
        nc.convert(src, tmp_path / "t.csv", progress=False)
    assert files_in(tmp_path) == [NB201_NAME]


def test_standin_non_finite_accuracy_is_an_error(tmp_path, standins, monkeypatch):
    infos, costs = standin_infos(2, bad=(0, "cifar100", "valid-accuracy", float("nan")))
    torch.save({"meta_archs": all_archs(2), "arch2infos": infos, "costs": costs,
                "evaluated_indexes": [0, 1]}, tmp_path / NB201_NAME)
    monkeypatch.setattr(nc, "NUM_ARCHS", 2)
    with pytest.raises(RlnasError,
                       match="architecture 0 is incomplete: cifar100 'x-valid' accuracy is nan"):
        nc.convert(tmp_path / NB201_NAME, tmp_path / "t.csv", progress=False)
    assert files_in(tmp_path) == [NB201_NAME]


def test_standin_partial_and_missing_archs(tmp_path, standins):
    src = standin_nats_dir(tmp_path, n=5, missing=[1, 3])
    with pytest.raises(RlnasError, match="has 5 architectures, not 15625; pass allow_partial=True"):
        nc.convert(src, tmp_path / "t.csv", progress=False)
    out = tmp_path / "t.csv"
    summary = nc.convert(src, out, progress=False, allow_partial=True)
    assert summary["rows"] == 3 and summary["skipped"] == 2
    standin_check(out, [0, 2, 4])
    meta = json.loads(nc.meta_path_for(out).read_text())
    assert [s[0] for s in meta["skipped"]] == [1, 3] and "Did not find" in meta["skipped"][0][1]


def test_standin_full_size_with_a_missing_arch_needs_the_flag(tmp_path, standins):
    src = standin_nats_dir(tmp_path, n=nc.NUM_ARCHS, missing=[5])
    with pytest.raises(RlnasError, match="architecture 5 is incomplete: no hp='200' results"):
        nc.convert(src, tmp_path / "t.csv", progress=False)
    assert files_in(tmp_path) == [NATS_DIR]


def test_standin_no_complete_arch(tmp_path, standins):
    src = standin_nats_dir(tmp_path, n=2, missing=[0, 1])
    with pytest.raises(RlnasError, match="no architecture has complete hp='200' results"):
        nc.convert(src, tmp_path / "t.csv", progress=False, allow_partial=True)


def test_standin_pbz2_file_is_read_without_fast_mode(tmp_path, standins):
    src = write_bz2_pickle(tmp_path / NATS_FILE, {"n": 2})
    summary = nc.convert(src, tmp_path / "t.csv", progress=False, allow_partial=True)
    assert summary["kind"] == "nats-tss" and summary["rows"] == 2
    assert json.loads(nc.meta_path_for(tmp_path / "t.csv").read_text())["fast_mode"] is False


@pytest.mark.parametrize(
    "archs, match",
    [
        (["8:16:24:32:40"], "not a NAS-Bench-201 cell string"),  # a NATS-sss arch
        (["|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|"],
         "not a NAS-Bench-201 cell string"),
        ([all_archs(1)[0]] * 2, "appears at index 0 and 1"),
    ],
)
def test_standin_bad_arch_strings(tmp_path, standins, archs, match):
    src = standin_nats_dir(tmp_path, archs=archs)
    with pytest.raises(RlnasError, match=match):
        nc.convert(src, tmp_path / "t.csv", progress=False, allow_partial=True)


def test_standin_too_many_archs(tmp_path, standins, monkeypatch):
    monkeypatch.setattr(nc, "NUM_ARCHS", 2)
    src = standin_nats_dir(tmp_path, n=3)
    with pytest.raises(RlnasError, match="has 3 architectures; the NB201 topology space has 2"):
        nc.convert(src, tmp_path / "t.csv", progress=False, allow_partial=True)


def test_failed_write_leaves_nothing(tmp_path, standins, monkeypatch):
    src = standin_pth(tmp_path, n=2)

    def refuse(path):
        raise RlnasError("refused")

    monkeypatch.setattr(nc, "load_nb201_table", refuse)
    with pytest.raises(RlnasError, match="refused"):
        nc.convert(src, tmp_path / "t.csv", progress=False, allow_partial=True)
    assert files_in(tmp_path) == [NB201_NAME]


def test_overwrites_existing_output_atomically(tmp_path, standins):
    src = standin_pth(tmp_path, n=2)
    out = tmp_path / "t.csv"
    out.write_text("old\n")
    nc.convert(src, out, progress=False, allow_partial=True)
    standin_check(out, range(2))
    assert files_in(tmp_path) == sorted([NB201_NAME, "t.csv", "t.csv.meta.json"])


# --------------------------------------------------------------------------------------
# Crafted pickles: refused by default, read only with trust_pickle=True
# --------------------------------------------------------------------------------------


class Payload:
    """Unpickling this runs ``touch MARKER`` (os.system is posix.system on Linux)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pth_is_refused_without_running_it(tmp_path, standins):
    src = standin_pth(tmp_path, n=2)
    marker = tmp_path / "MARKER"
    data = torch.load(src, weights_only=False)
    data["meta_archs"] = [Payload(marker), all_archs(2)[1]]
    torch.save(data, src)
    with pytest.raises(RlnasError) as ei:
        nc.convert(src, tmp_path / "t.csv", progress=False, allow_partial=True)
    assert str(ei.value) == (
        f"cannot read {src} safely: it references posix.system, which only a full unpickle can "
        "build (and a full unpickle can run any code); pass --trust-pickle (trust_pickle=True) "
        "only for a file from a trusted source such as the official download")
    assert not marker.exists() and files_in(tmp_path) == [NB201_NAME]


def test_pth_with_other_objects_needs_trust_pickle(tmp_path, standins):
    """A harmless global outside the safe set: refused by default, read with trust_pickle."""
    src = standin_pth(tmp_path, n=2)
    data = torch.load(src, weights_only=False)
    data["note"] = fractions.Fraction(1, 3)
    torch.save(data, src)
    with pytest.raises(RlnasError,
                       match=r"safely: it references fractions\.Fraction.*--trust-pickle"):
        nc.convert(src, tmp_path / "t.csv", progress=False, allow_partial=True)
    assert files_in(tmp_path) == [NB201_NAME]
    summary = nc.convert(src, tmp_path / "t.csv", progress=False, allow_partial=True,
                         trust_pickle=True)
    assert summary["rows"] == 2
    standin_check(tmp_path / "t.csv", range(2))


@pytest.mark.parametrize("folder", [False, True], ids=["pbz2-file", "folder"])
def test_standin_crafted_nats_pickle_is_refused(tmp_path, standins, folder):
    marker = tmp_path / "MARKER"
    if folder:
        src = standin_nats_dir(tmp_path, n=2)
        write_bz2_pickle(src / "spec.pickle.pbz2", {"n": Payload(marker)})
    else:
        src = write_bz2_pickle(tmp_path / NATS_FILE, {"n": Payload(marker)})
    with pytest.raises(RlnasError, match=r"safely: it references posix\.system.*--trust-pickle"):
        nc.convert(src, tmp_path / "t.csv", progress=False, allow_partial=True)
    assert not marker.exists() and not (tmp_path / "t.csv").exists()
    loader = sys.modules["nats_bench"].api_topology.pickle_load
    assert loader.__module__ == __name__  # the stand-in's own reader is back in place


def test_standin_nats_without_pickle_load_is_refused_unless_trusted(tmp_path, standins,
                                                                    monkeypatch):
    """Fail closed: a nats_bench whose reader cannot be swapped is not read by default."""
    monkeypatch.setitem(sys.modules, "nats_bench", standin_nats_bench(with_pickle_load=False))
    src = write_bz2_pickle(tmp_path / NATS_FILE, {"n": 2})
    with pytest.raises(RlnasError, match="no api_utils/api_topology.pickle_load.*--trust-pickle"):
        nc.convert(src, tmp_path / "t.csv", progress=False, allow_partial=True)
    summary = nc.convert(src, tmp_path / "t.csv", progress=False, allow_partial=True,
                         trust_pickle=True)
    assert summary["rows"] == 2


# --------------------------------------------------------------------------------------
# Error paths that need no package
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, name, module, pip_name",
    [("nb201", NB201_NAME, "nas_201_api", "nas-bench-201"),
     ("nats-tss", NATS_FILE, "nats_bench", "nats_bench")],
)
def test_missing_package(tmp_path, monkeypatch, kind, name, module, pip_name):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    src = tmp_path / name
    src.write_bytes(b"x")
    with pytest.raises(RlnasError) as ei:
        nc.convert(src, tmp_path / "t.csv", progress=False)
    assert str(ei.value) == f"reading {name} needs the `{module}` package: pip install {pip_name}"
    assert files_in(tmp_path) == [name]


def test_missing_source(tmp_path):
    with pytest.raises(RlnasError, match="does not exist"):
        nc.convert(tmp_path / NB201_NAME, tmp_path / "t.csv", progress=False)


def test_unknown_kind_and_hp(tmp_path):
    src = tmp_path / NB201_NAME
    src.write_bytes(b"x")
    with pytest.raises(RlnasError, match="unknown benchmark kind 'nb301'"):
        nc.convert(src, tmp_path / "t.csv", kind="nb301", progress=False)
    with pytest.raises(RlnasError, match="hp must be '200' or '12'"):
        nc.convert(src, tmp_path / "t.csv", hp="90", progress=False)


def test_detect_kind(tmp_path):
    assert nc.detect_kind(tmp_path / "NAS-Bench-201-v1_0-e61699.pth") == "nb201"
    assert nc.detect_kind(tmp_path / "my-copy.pth") == "nb201"
    assert nc.detect_kind(tmp_path / NATS_DIR) == "nats-tss"
    assert nc.detect_kind(tmp_path / NATS_FILE) == "nats-tss"
    with pytest.raises(RlnasError, match="size search space"):
        nc.detect_kind(tmp_path / "NATS-sss-v1_0-50262-simple")
    with pytest.raises(RlnasError, match="pass kind='nb201' or kind='nats-tss'"):
        nc.detect_kind(tmp_path / "bench.pkl")
    archive = tmp_path / "NAS-Bench-201-v1_1-archive"
    archive.mkdir()
    with pytest.raises(RlnasError, match="per-arch archive folder, which is not supported"):
        nc.detect_kind(archive)


def test_auto_kind_unknown_name_is_an_error(tmp_path):
    src = tmp_path / "bench.pkl"
    src.write_bytes(b"x")
    with pytest.raises(RlnasError, match="cannot tell what benchmark bench.pkl is"):
        nc.convert(src, tmp_path / "t.csv", progress=False)


def test_wrong_kind_folder_for_nb201(tmp_path):
    d = tmp_path / NATS_DIR
    d.mkdir()
    with pytest.raises(RlnasError, match="is a folder; a NAS-Bench-201 benchmark is one .pth file"):
        nc.convert(d, tmp_path / "t.csv", kind="nb201", progress=False)


def test_wrong_kind_files_for_nb201(tmp_path, standins):
    import bz2
    import pickle

    src = tmp_path / NATS_FILE  # a bz2 pickle, not a torch file
    src.write_bytes(bz2.compress(pickle.dumps({"meta_archs": []})))
    with pytest.raises(RlnasError, match="cannot read .* as a NAS-Bench-201 .pth file"):
        nc.convert(src, tmp_path / "t.csv", kind="nb201", progress=False)
    ckpt = tmp_path / "model.pth"  # a torch file, but a model checkpoint
    torch.save({"state_dict": {}, "epoch": 3}, ckpt)
    with pytest.raises(RlnasError,
                       match="is not a NAS-Bench-201 benchmark file: expected the keys"):
        nc.convert(ckpt, tmp_path / "t.csv", progress=False)
    assert sorted(files_in(tmp_path)) == sorted([NATS_FILE, "model.pth"])


def test_bad_output_path(tmp_path):
    src = tmp_path / NB201_NAME
    src.write_bytes(b"x")
    with pytest.raises(RlnasError, match="folder .* does not exist"):
        nc.convert(src, tmp_path / "nope" / "t.csv", progress=False)
    with pytest.raises(RlnasError, match="it is a folder"):
        nc.convert(src, tmp_path, progress=False)
