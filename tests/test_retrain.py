"""`rlnas retrain` (NB201 and DARTS standalone networks, true labels) and `rlnas export`."""
import json

import numpy as np
import pytest
import torch

from conftest import NB201_ARCH, write_npz
from rlnas.cli import main
from rlnas.config import list_presets, load_config
from rlnas.errors import RlnasError
from rlnas.pipeline.export import load_network
from rlnas.pipeline.retrain import resolve_arch, train_network
from rlnas.spaces import get_space


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
