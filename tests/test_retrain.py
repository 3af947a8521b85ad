"""`rlnas retrain` (NB201 and DARTS standalone networks, true labels) and `rlnas export`;
`rlnas retrain RUN --top K` and the retraining's test accuracy in TensorBoard."""
import csv
import json
import re

import numpy as np
import pytest
import torch

import rlnas
from conftest import NB201_ARCH, write_npz
from rlnas.cli import main
from rlnas.config import list_presets, load_config
from rlnas.errors import RlnasError
from rlnas.pipeline.export import load_network
from rlnas.pipeline.retrain import resolve_arch, train_network
from rlnas.spaces import get_space
from rlnas.spaces.nb201 import nb201_disconnected


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("rtdata")
    for seed, (name, n) in enumerate((("train_1.npz", 64), ("test_1.npz", 40))):
        write_npz(root / name, n, seed=seed)
    return root


def test_every_preset_loads():
    for name in list_presets():
        cfg = load_config(name)
        assert cfg["space"] in ("nb201", "darts", "mobilenet", "nasbench-macro")


def test_retrain_nb201_resumes_and_exports(data, tmp_path, capsys):
    cfg = load_config("retrain-nb201-cifar10", [f"root={data}", "channels=4", "cells=1",
                                                "epochs=2", "batch=32", "eval.every_epochs=1",
                                                "train.ckpt_every_steps=1"])
    full = train_network(cfg, NB201_ARCH, tmp_path / "a", progress=False)
    assert full["arch"] == NB201_ARCH and [full["last"]["epoch"], full["epochs"]] == [2, 2]
    assert 0 <= full["best"]["top1"] <= 100 and full["best"]["top5"] >= full["best"]["top1"]
    with pytest.raises(KeyboardInterrupt):
        train_network(cfg, NB201_ARCH, tmp_path / "b", progress=False, stop_at_step=3)
    resumed = train_network(cfg, NB201_ARCH, tmp_path / "b", progress=False)
    assert resumed["last"] == full["last"]
    with pytest.raises(RlnasError, match="retrains"):
        train_network(cfg, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", tmp_path / "a",
                      progress=False)
    # export: a torch.export program, the state dict, ONNX with the same outputs, export.json
    capsys.readouterr()
    assert main(["export", str(tmp_path / "a"), "--onnx"]) == 0
    out, err = capsys.readouterr()
    folder = tmp_path / "a" / "export"
    assert out.split() == ["wrote", str(folder / "model.pt"), "wrote", str(folder / "model.pt2"),
                           "wrote", str(folder / "model.onnx"), "wrote",
                           str(folder / "export.json")]
    assert err == ""  # no exporter chatter, no deprecation warning
    ort = pytest.importorskip("onnxruntime")
    model, meta = load_network(tmp_path / "a")
    x = torch.randn(3, 3, 32, 32)
    sess = ort.InferenceSession(str(folder / "model.onnx"))
    onnx_out = sess.run(None, {"image": x.numpy()})[0]
    np.testing.assert_allclose(onnx_out, model(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(torch.export.load(folder / "model.pt2").module()(x).numpy(),
                                   model(x).numpy(), rtol=1e-5, atol=1e-5)
    saved = torch.load(folder / "model.pt", weights_only=True)
    assert saved["arch"] == NB201_ARCH and saved["format"] == "rlnas-network-1"
    manifest = json.loads((folder / "export.json").read_text())
    assert manifest["arch"] == NB201_ARCH and manifest["input"]["shape"] == ["N", 3, 32, 32]
    assert manifest["files"]["model.onnx"]["exporter"] == "torch.onnx.export(dynamo=True)"
    assert manifest["retraining"]["top1_last"] == full["last"]["top1"]


def test_retrain_darts_from_result_json(data, tmp_path):
    """A searched genotype goes from result.json to retraining without editing any file."""
    space = get_space("darts")
    arch = space.sample(np.random.default_rng(0))
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "result.json").write_text(json.dumps(
        {"space": "darts", "top": [{"arch": space.to_str(arch)}]}))
    assert resolve_arch(space, str(tmp_path / "search"))[0] == arch
    code = main(["retrain", "retrain-darts-cifar10", str(tmp_path / "search"), f"root={data}",
                 "channels=4", "model.layers=3", "epochs=1", "batch=32", "--out",
                 str(tmp_path / "rt"), "-q"])
    assert code == 0
    s = json.loads((tmp_path / "rt" / "retrain.json").read_text())
    assert s["arch"] == space.to_str(arch) and s["last"]["epoch"] == 1
    with pytest.raises(RlnasError, match="space nb201"):
        resolve_arch(get_space("nb201"), str(tmp_path / "search" / "result.json"))


def test_resolve_arch_takes_long_genotype_strings():
    space = get_space("darts")
    arch = space.sample(np.random.default_rng(3))
    assert resolve_arch(space, space.to_str(arch)) == (arch, "given on the command line")
    with pytest.raises(RlnasError):
        resolve_arch(space, "Genotype(normal=[('conv_9x9', 0)]" + " " * 300 + ")")


# === rlnas retrain RUN --top K, and the test accuracy in TensorBoard ==============================
# `rlnas retrain RUN --top K` and the retraining's test accuracy in TensorBoard (issue 21).
TINY_DIGITS = {"epochs": 1, "model.channels": 4, "model.cells": 1, "data.subset": 128}


# --- rlnas retrain RUN --top K -----------------------------------------------------------------
@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    pytest.importorskip("sklearn")
    out = tmp_path_factory.mktemp("top") / "run"
    run = rlnas.train("demo-digits", out, overrides=TINY_DIGITS, progress=False)
    run.search(max_params=0.3)
    return run


TOP = ["--epochs", "1", "--images", "96", "--image-size", "8", "-q"]


def test_retrain_top_k_sets_the_found_archs_beside_the_baselines(searched, tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["retrain", str(searched.path), "--top", "2", "--random", "2", "--out", str(out)]
                + TOP) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "retrain-top.json").read_text())
    found = searched.result()
    assert [r["role"] for r in report["rows"]] == ["top 1", "top 2", "largest", "random 1",
                                                   "random 2"]
    assert [r["arch"] for r in report["rows"][:2]] == [t["arch"] for t in found["top"][:2]]
    # the baselines keep the search's limit, and the largest is the largest connected cell
    space = searched.space
    archs = space.enumerate()
    params = space.cost(archs, **searched.cost_kwargs)["params"]
    strs = [space.to_str(tuple(a)) for a in archs]
    ok = (params <= 0.3) & ~nb201_disconnected(strs)
    assert report["rows"][2]["params_m"] == pytest.approx(params[ok].max())
    assert all(r["params_m"] <= 0.3 for r in report["rows"])
    assert len({r["arch"] for r in report["rows"]}) == 5
    scores = searched.get_scorer(found["scorer"]).fn(
        np.array([space.from_str(r["arch"]) for r in report["rows"]]))
    np.testing.assert_allclose([r["score"] for r in report["rows"]], scores)
    # every arch: the same budget (recipe, data, seed), one stored result each
    assert report["budget"]["seed"] == 0 and len(list((out / "archs").glob("*.json"))) == 5
    table = (out / "retrain-top.md").read_text()
    assert "| role | arch | distance_sum | params (M) | FLOPs (M) | test top-1 (%) |" in table
    assert "\\|nor_conv" in table or "\\|skip" in table or "\\|avg" in table  # escaped bars
    assert "Noise: test on 500 images" in table and table.strip() in printed
    rows = list(csv.DictReader(open(out / "retrain-top.csv")))
    assert [r["role"] for r in rows] == [r["role"] for r in report["rows"]]
    assert report["noise"]["difference_95"] > report["noise"]["standard_error"] > 0
    # resumed: nothing retrained, the same report
    assert main(["retrain", str(searched.path), "--top", "2", "--random", "2", "--out",
                 str(out)] + TOP) == 0
    assert "done before" in capsys.readouterr().out
    assert json.loads((out / "retrain-top.json").read_text())["rows"] == report["rows"]


@pytest.mark.parametrize("argv, message", [
    (["--top", "11"], "--top 11: the search .* kept 10 archs"),
    (["--epochs", "2"], "--epochs apply to `rlnas retrain RUN --top K` only"),
])
def test_retrain_top_refuses_bad_input_in_one_line(searched, argv, message, capsys):
    assert main(["retrain", str(searched.path)] + argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rlnas retrain: error:")
    assert re.search(message, err), err


def test_retrain_needs_an_arch_or_top(searched, capsys):
    assert main(["retrain", "retrain-nb201-cifar10"]) == 2
    assert "which arch?" in capsys.readouterr().err
    assert main(["retrain", "retrain-nb201-cifar10", str(searched.path), "--top", "2"]) == 2
    assert "takes no preset, arch or key=value" in capsys.readouterr().err


# --- the retraining's test accuracy in TensorBoard ----------------------------------------------
class _Writer:
    made = []

    def __init__(self, log_dir=None, purge_step=None):
        self.scalars = []
        _Writer.made.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, step, value))

    def flush(self):
        pass

    def close(self):
        pass


def test_retraining_logs_test_accuracy_to_tensorboard(tmp_path, monkeypatch):
    from conftest import write_npz
    from rlnas import tensorboard
    write_npz(tmp_path / "train_1.npz", 48, seed=0)
    write_npz(tmp_path / "test_1.npz", 20, seed=1)
    _Writer.made = []
    monkeypatch.setattr(tensorboard, "_summary_writer", lambda: _Writer)
    monkeypatch.setenv("RLNAS_TENSORBOARD", "1")
    rlnas.retrain("retrain-nb201-cifar10", "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|"
                  "skip_connect~0|none~1|nor_conv_1x1~2|", tmp_path / "rt", overrides={
                      "root": tmp_path, "channels": 4, "cells": 1, "epochs": 3, "batch": 16,
                      "eval.every_epochs": 2}, progress=False)
    (w,) = _Writer.made
    logged = {}
    for tag, step, value in w.scalars:
        logged.setdefault(tag, []).append((step, value))
    evals = list(csv.DictReader(open(tmp_path / "rt" / "eval.csv")))
    assert [s for s, _ in logged["retrain/test_top1"]] == [2, 3] == [int(r["epoch"])
                                                                      for r in evals]
    assert [f"{v:.4f}" for _, v in logged["retrain/test_top1"]] == [r["top1"] for r in evals]
    assert [f"{v:.4f}" for _, v in logged["retrain/test_top5"]] == [r["top5"] for r in evals]
    assert [s for s, _ in logged["retrain/loss"]] == [1, 2, 3]
