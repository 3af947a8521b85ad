"""`rlnas export`: a program that loads with torch alone (torch.export, TorchScript where that
fails) for every space, export.json's input description, and ONNX from the current exporter."""
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from conftest import NB201_ARCH
from rlnas import data as data_mod
from rlnas.checkpoint import save_checkpoint
from rlnas.config import dump
from rlnas.errors import RlnasError
from rlnas.pipeline.export import export, input_spec, load_exported_state, load_network
from rlnas.spaces import get_space

# space, model kwargs, dataset, image size: small networks of the three kinds of space
CASES = {
    "nb201": ("nb201", {"channels": 4, "cells": 1}, "cifar10", 32),
    # DARTS with the auxiliary head and drop-path of the retraining preset (export is eval mode)
    "darts": ("darts", {"variant": "cifar", "channels": 4, "layers": 3, "auxiliary": True,
                        "drop_path": 0.2}, "cifar100", 32),
    "mobilenet": ("mobilenet", {"dropout": 0.2}, "imagenet", 32),
}


def make_run(root, space_name, model_cfg, dataset, size, seed=0):
    """A finished retraining directory as `rlnas retrain` leaves it (arch.json, run.json,
    config.yaml, ckpt/last.pt, retrain.json), with random weights and BN statistics."""
    space = get_space(space_name)
    arch = space.from_str(NB201_ARCH) if space_name == "nb201" else \
        space.sample(np.random.default_rng(seed))
    arch_str = space.to_str(arch)
    num_classes = 100 if dataset == "cifar100" else 10
    torch.manual_seed(seed)
    kwargs = {k: v for k, v in model_cfg.items() if k != "drop_path"}
    model = space.network(arch, num_classes=num_classes, **kwargs)
    for m in model.modules():  # non-trivial eval-mode BatchNorm
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    root.mkdir(parents=True)
    (root / "arch.json").write_text(json.dumps({"space": space_name, "arch": arch_str}))
    (root / "run.json").write_text(json.dumps({"kind": "retrain", "image_size": size}))
    data_cfg = {"dataset": dataset, "root": "/nowhere", "resolution": None}
    if dataset == "imagenet":
        data_cfg["transform"] = "torchvision"
    (root / "config.yaml").write_text(dump({"space": space_name, "data": data_cfg,
                                            "model": model_cfg}))
    save_checkpoint(root / "ckpt" / "last.pt", {
        "space": space_name, "arch": arch_str, "model_config": model_cfg,
        "num_classes": num_classes, "model": model.state_dict(), "step": 10})
    (root / "retrain.json").write_text(json.dumps({
        "arch": arch_str, "params_m": 0.01, "epochs": 2,
        "last": {"epoch": 2, "top1": 61.25, "top5": 95.0},
        "best": {"epoch": 1, "top1": 62.5, "top5": 94.0}}))
    return root


# loads the exported programs with torch alone; importing rlnas would fail
FRESH = r"""
import sys
class NoRlnas:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "rlnas":
            raise ImportError("rlnas must not be needed")
sys.meta_path.insert(0, NoRlnas())
import torch
inputs = torch.load(sys.argv[1])
outputs = {}
for name, (path, x) in inputs.items():
    model = torch.export.load(path).module() if path.endswith(".pt2") else torch.jit.load(path)
    with torch.no_grad():
        outputs[name] = model(x)
assert "rlnas" not in sys.modules, sorted(m for m in sys.modules if m.startswith("rlnas"))
torch.save(outputs, sys.argv[2])
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (run, export folder, files written) for each space, plus nb201 through the
    TorchScript fallback."""
    root = tmp_path_factory.mktemp("export")
    out = {}
    for name, (space, model_cfg, dataset, size) in CASES.items():
        run = make_run(root / name, space, model_cfg, dataset, size)
        out[name] = (run, run / "export", export(run))
    run = make_run(root / "nb201-ts", *CASES["nb201"], seed=1)
    (run / "export").mkdir()
    (run / "export" / "model.pt2").write_bytes(b"stale")  # an earlier export's program
    real = torch.export.export

    def failing(*args, **kwargs):
        raise RuntimeError("unsupported by torch.export (test)")
    torch.export.export = failing
    try:
        out["nb201-ts"] = (run, run / "export", export(run))
    finally:
        torch.export.export = real
    return out


def test_programs_load_without_rlnas_and_match(exported, tmp_path):
    inputs, refs = {}, {}
    for name, (run, folder, written) in exported.items():
        meta = json.loads((folder / "export.json").read_text())
        prog = "model.ts" if name == "nb201-ts" else "model.pt2"
        assert [p.split("/")[-1] for p in written] == ["model.pt", prog, "model.onnx"][:2] + \
            ["export.json"]
        assert list(meta["files"])[0] == prog and meta["files"][prog]["max_abs_diff"] <= 1e-5
        model, _ = load_network(run)
        size = meta["input"]["shape"][2]
        x = torch.randn(5, 3, size, size)  # another batch size than the export's example
        with torch.no_grad():
            refs[name] = model(x)
        inputs[name] = (str(folder / prog), x)
    torch.save(inputs, tmp_path / "in.pt")
    proc = subprocess.run([sys.executable, "-c", FRESH, str(tmp_path / "in.pt"),
                           str(tmp_path / "out.pt")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = torch.load(tmp_path / "out.pt")
    for name, ref in refs.items():
        assert outputs[name].shape == ref.shape
        np.testing.assert_allclose(outputs[name].numpy(), ref.numpy(), rtol=1e-5, atol=1e-5,
                                   err_msg=name)


def test_torchscript_fallback_is_said_and_replaces_the_stale_program(exported):
    run, folder, _ = exported["nb201-ts"]
    meta = json.loads((folder / "export.json").read_text())
    assert "torch.export failed" in meta["files"]["model.ts"]["why"]
    assert (folder / "model.ts").exists() and not (folder / "model.pt2").exists()


def test_export_json_says_what_the_network_expects(exported):
    run, folder, _ = exported["nb201"]
    meta = json.loads((folder / "export.json").read_text())
    assert meta["format"] == "rlnas-export-1"
    assert (meta["space"], meta["arch"], meta["num_classes"]) == ("nb201", NB201_ARCH, 10)
    inp = meta["input"]
    assert inp["shape"] == ["N", 3, 32, 32] and inp["layout"] == "NCHW"
    assert inp["dtype"] == "float32" and inp["channels"] == "RGB"
    assert inp["mean"] == list(data_mod.CIFAR10_MEAN) and inp["std"] == list(data_mod.CIFAR10_STD)
    assert "x / 255" in inp["expects"] and "0.4914" in inp["expects"]
    assert meta["retraining"]["top1_last"] == 61.25 and meta["retraining"]["top1_best"] == 62.5
    assert meta["versions"]["torch"] == torch.__version__ and meta["versions"]["rlnas"]
    assert "torch.export.load('model.pt2')" in meta["files"]["model.pt2"]["load"]
    # model.pt: the state dict, rebuilt with rlnas
    model, _ = load_network(run)
    again = load_exported_state(folder / "model.pt")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    saved = torch.load(folder / "model.pt", weights_only=True)
    assert saved["format"] == "rlnas-network-1" and saved["arch"] == NB201_ARCH
    # the other spaces: CIFAR-100 and ImageNet (torchvision transform) normalisation
    darts = json.loads((exported["darts"][1] / "export.json").read_text())
    assert darts["input"]["mean"] == list(data_mod.CIFAR100_MEAN)
    assert "auxiliary" in darts["mode"]
    mob = json.loads((exported["mobilenet"][1] / "export.json").read_text())
    assert mob["input"]["mean"] == [0.485, 0.456, 0.406] and "centre" in mob["input"]["preprocess"]


MODEL_PT_DAMAGE = {
    "no space": lambda saved: saved.pop("space"),
    "no arch": lambda saved: saved.pop("arch"),
    "no model_config": lambda saved: saved.pop("model_config"),
    "no num_classes": lambda saved: saved.pop("num_classes"),
    "no weights": lambda saved: saved.pop("model"),
    "model_config a list": lambda saved: saved.update(model_config=[4, 1]),
    "num_classes as text": lambda saved: saved.update(num_classes="10"),
    "num_classes 0": lambda saved: saved.update(num_classes=0),
    "arch a number": lambda saved: saved.update(arch=3),
    "a model option of the wrong kind": lambda saved: saved.update(
        model_config={"channels": "four", "cells": 1}),
}


@pytest.mark.parametrize("case", sorted(MODEL_PT_DAMAGE))
def test_a_damaged_model_pt_is_one_line_naming_it(case, exported, tmp_path):
    """model.pt fields missing or of another type: one line naming the file (a KeyError or
    AttributeError before)."""
    saved = torch.load(exported["nb201"][1] / "model.pt", weights_only=True)
    MODEL_PT_DAMAGE[case](saved)
    torch.save(saved, tmp_path / "model.pt")
    with pytest.raises(RlnasError) as exc:
        load_exported_state(tmp_path / "model.pt")
    message = str(exc.value)
    assert message.startswith(str(tmp_path / "model.pt")) and "\n" not in message, message
    assert "lacks" in message or "is damaged" in message, message


def test_input_spec_of_the_official_imagenet_transform():
    spec = input_spec({"data": {"dataset": "imagenet", "transform": "official"}}, 224)
    assert spec["mean"] == [0.0] * 3 and spec["std"] == [1.0] * 3
    assert "no mean/std normalisation" in spec["expects"] and spec["value_range"] == "[0, 1]"
    assert "256 px" in spec["preprocess"]
    with pytest.raises(RlnasError, match="normalisation"):
        input_spec({"data": {"dataset": "mnist"}}, 28)


def test_onnx_uses_the_dynamo_exporter(tmp_path):
    """DARTS (auxiliary head, drop-path) to ONNX: no deprecation warning, onnxruntime agrees."""
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    run = make_run(tmp_path / "run", *CASES["darts"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = export(run, onnx=True)
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)], \
        [str(w.message)[:100] for w in caught]
    assert written[2].endswith("model.onnx")
    meta = json.loads((run / "export" / "export.json").read_text())
    assert meta["files"]["model.onnx"]["exporter"] == "torch.onnx.export(dynamo=True)"
    assert meta["files"]["model.onnx"]["max_abs_diff"] <= 1e-5
    _assert_onnx_matches(ort, run, batch=4)


def _assert_onnx_matches(ort, run, batch):
    """onnxruntime on the exported model.onnx gives the rlnas network's logits."""
    model, _ = load_network(run)
    x = torch.randn(batch, 3, 32, 32)
    sess = ort.InferenceSession(str(run / "export" / "model.onnx"))
    with torch.no_grad():
        ref = model(x).numpy()
    np.testing.assert_allclose(sess.run(None, {"image": x.numpy()})[0], ref, rtol=1e-4,
                               atol=1e-5)


def test_onnx_falls_back_to_the_legacy_exporter_and_says_so(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    run = make_run(tmp_path / "run", *CASES["nb201"])
    real = torch.onnx.export

    def no_dynamo(*args, **kwargs):
        if kwargs.get("dynamo"):
            raise RuntimeError("dynamo export failed (test)")
        return real(*args, **kwargs)
    monkeypatch.setattr(torch.onnx, "export", no_dynamo)
    export(run, onnx=True)
    meta = json.loads((run / "export" / "export.json").read_text())
    assert meta["files"]["model.onnx"]["exporter"].startswith("legacy TorchScript-based")
    assert "dynamo export failed (test)" in meta["files"]["model.onnx"]["exporter"]
    assert "legacy" in capsys.readouterr().err
    _assert_onnx_matches(ort, run, batch=2)
