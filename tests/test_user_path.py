"""What a user of NNI / NASLib / timm expects (issue 21): their own images (an .npz or an image
folder) with any space, a picture of the found arch, `rlnas retrain RUN --top K` and the
retraining's test accuracy in TensorBoard."""
import csv
import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

import rlnas
from rlnas.archplot import arch_figure
from rlnas.cli import main
from rlnas.data import align_test_split, channel_stats, load_dataset
from rlnas.errors import RlnasError
from rlnas.spaces import get_space
from rlnas.spaces.nb201 import nb201_disconnected

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY_DIGITS = {"epochs": 1, "model.channels": 4, "model.cells": 1, "data.subset": 128}

# a user's chain space declared for 12 x 12 images (written to a module named in configs)
USER_SPACE = textwrap.dedent('''
    import torch.nn as nn
    from rlnas.spaces.choice import Choice, ChoiceSpace, Op, skip

    def conv(k):
        return Op(f"conv{k}", lambda c_in, c_out, stride, k=k: nn.Sequential(
            nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU()))

    SPACE = ChoiceSpace(
        "userspace", stem=lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()),
        blocks=[Choice([conv(3), conv(1)], 8, 2), Choice([conv(3), conv(1), skip()], 8)],
        head=lambda num_classes, dropout: nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes)),
        input_size=12, num_classes=10)
''')


def write_folder(root, split, classes, per_class, size, seed=0, odd=None):
    """An image folder root/<split>/<class>/<n>.png of random ``size`` x ``size`` RGB images;
    ``odd``: (class, side) of one image of another size."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / split / c).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            side = odd[1] if odd and odd[0] == c and n == 0 else size
            pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / c / f"{n}.png")
    return root


@pytest.fixture
def user_space(tmp_path, monkeypatch):
    """userspace:SPACE importable from the working folder (as a user's module is)."""
    (tmp_path / "userspace.py").write_text(USER_SPACE)
    monkeypatch.chdir(tmp_path)
    return "userspace:SPACE"


# --- a user's own data -----------------------------------------------------------------------
def test_npz_dataset_takes_size_and_classes_from_the_data(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 20, 20, 3), dtype=np.uint8)
    np.savez(tmp_path / "train_1.npz", x=x[:20], y=np.arange(20) % 4)
    np.savez(tmp_path / "train_2.npz", x=x[20:], y=np.arange(10) % 3)
    np.savez(tmp_path / "test.npz", x=x[:6], y=np.arange(6) % 4)
    train = load_dataset("npz", tmp_path, "train")
    assert train.name == "npz" and len(train) == 30 and train.image_size == (20, 20)
    assert train.num_classes == 4 and train.classes is None
    mean, std = channel_stats(x)
    np.testing.assert_allclose(train.mean, (x / 255.0).reshape(-1, 3).mean(0), atol=1e-12)
    np.testing.assert_allclose(train.std, (x / 255.0).reshape(-1, 3).std(0), atol=1e-9)
    assert (train.mean, train.std) == (mean, std)
    test = load_dataset("npz", tmp_path, "test")
    assert len(test) == 6 and test.mean != train.mean
    assert align_test_split(train, test).mean == train.mean  # normalised as training
    one = load_dataset("npz", tmp_path / "train_1.npz", "train")  # a single file
    assert len(one) == 20 and one.num_classes == 4
    # class names: their count is the number of classes, a test file is mapped by name
    np.savez(tmp_path / "named.npz", x=x[:4], y=[0, 1, 1, 0],
             classes=np.array(["ant", "bee", "cow"]))
    named = load_dataset("npz", tmp_path / "named.npz", "train")
    assert named.num_classes == 3 and named.classes == ["ant", "bee", "cow"]


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros((2, 8, 8), np.uint8), y=[0, 1]), "uint8 N x H x W x 3"),
    (dict(x=np.zeros((2, 8, 8, 3), np.float32), y=[0, 1]), "uint8 N x H x W x 3"),
    (dict(x=np.zeros((2, 8, 8, 3), np.uint8), y=[0, -1]), "labels must be >= 0"),
    (dict(x=np.zeros((2, 8, 8, 3), np.uint8), y=[0, 1, 2]), "3 labels for 2 images"),
    (dict(x=np.zeros((2, 8, 8, 3), np.uint8)), "must hold arrays 'x' and 'y'"),
    (dict(x=np.zeros((2, 8, 8, 3), np.uint8), y=[0, 2], classes=np.array(["a", "b"])),
     "expected 0..1"),
])
def test_a_bad_npz_is_one_line(tmp_path, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(RlnasError, match=message):
        load_dataset("npz", tmp_path / "d.npz", "train")


def test_npz_files_of_two_sizes_are_refused(tmp_path):
    np.savez(tmp_path / "train_1.npz", x=np.zeros((2, 8, 8, 3), np.uint8), y=[0, 1])
    np.savez(tmp_path / "train_2.npz", x=np.zeros((2, 9, 9, 3), np.uint8), y=[0, 1])
    with pytest.raises(RlnasError, match="9 x 9 images but .*train_1.npz holds 8 x 8"):
        load_dataset("npz", tmp_path, "train")
    with pytest.raises(RlnasError, match="no test\\*.npz files"):
        load_dataset("npz", tmp_path, "test")


def test_image_folder_dataset_decodes_once_and_maps_test_classes_by_name(tmp_path):
    write_folder(tmp_path, "train", ["cat", "dog", "owl"], 3, 10)
    write_folder(tmp_path, "val", ["cat", "owl"], 2, 10, seed=1)  # no dog: labels by name
    train = load_dataset("folder", tmp_path, "train")
    assert train.name == "folder" and train.x.shape == (9, 10, 10, 3) and train.num_classes == 3
    assert train.classes == ["cat", "dog", "owl"] and list(train.y) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    test = load_dataset("folder", tmp_path, "test")
    assert test.classes == ["cat", "owl"] and list(test.y) == [0, 0, 1, 1]
    test = align_test_split(train, test)
    assert list(test.y) == [0, 0, 2, 2] and test.num_classes == 3 and test.mean == train.mean
    write_folder(tmp_path, "val", ["emu"], 1, 10)
    with pytest.raises(RlnasError, match="classes the training images do not: emu"):
        align_test_split(train, load_dataset("folder", tmp_path, "test"))


def test_an_image_folder_of_mixed_sizes_is_refused_naming_the_image(tmp_path):
    write_folder(tmp_path, "train", ["a", "b"], 2, 10, odd=("b", 12))
    with pytest.raises(RlnasError, match=r"b/0.png is 12 x 12 px but .*a/0.png is 10 x 10"):
        load_dataset("folder", tmp_path, "train")


def user_overrides(space, root):
    return {"space": space, "data.dataset": "folder", "data.root": root, "data.subset": None,
            "epochs": 1, "batch": 8, "search.method": "exhaustive", "search.max_flops": None}


def test_a_user_space_runs_on_an_image_folder_with_its_classes(tmp_path, user_space):
    write_folder(tmp_path / "imgs", "train", ["a", "b", "c"], 6, 12)
    write_folder(tmp_path / "imgs", "val", ["a", "b", "c"], 2, 12, seed=1)
    run = rlnas.train(EXAMPLES / "my_space.yaml", "run",
                      overrides=user_overrides(user_space, "imgs"), progress=False)
    assert run.info["num_classes"] == 3 and run.info["image_size"] == 12
    # costs count the network a retraining builds: 3 classes, at the declared 12 x 12
    space = run.space
    arch = np.array([space.sample(np.random.default_rng(0))])
    assert run.cost_kwargs == {"num_classes": 3}
    assert space.cost(arch, **run.cost_kwargs)["params"][0] < space.cost(arch)["params"][0]
    found = run.search()
    assert (run.path / "arch.png").is_file()
    over = {k: v for k, v in user_overrides(user_space, "imgs").items()
            if not k.startswith("search")}
    rt = rlnas.retrain(EXAMPLES / "retrain-my_space.yaml", found["top"][0]["arch"], "rt",
                       overrides=over, progress=False)
    info = json.loads((tmp_path / "rt" / "run.json").read_text())
    assert info["num_classes"] == 3 and 0 <= rt["last"]["top1"] <= 100
    train = load_dataset("folder", "imgs", "train")
    assert info["mean"] == pytest.approx(list(train.mean))
    from rlnas.pipeline.export import input_spec
    spec = input_spec({"data": {"dataset": "folder"}}, 12, info)
    assert spec["mean"] == [round(v, 6) for v in train.mean]


def test_a_space_declared_for_another_size_is_refused_before_training(tmp_path, user_space):
    write_folder(tmp_path / "big", "train", ["a", "b"], 3, 16)
    over = user_overrides(user_space, "big")
    with pytest.raises(RlnasError, match=r"images are 16 x 16 px, but space userspace:SPACE is "
                                         r"declared for 12 x 12 px .*data.resolution=12"):
        rlnas.train(EXAMPLES / "my_space.yaml", "run", overrides=over, progress=False)
    assert not (tmp_path / "run" / "ckpt").exists()
    # resized on purpose: accepted (costs stay at the declared size)
    run = rlnas.train(EXAMPLES / "my_space.yaml", "run",
                      overrides=dict(over, **{"data.resolution": 12}), progress=False)
    assert run.info["train_resolution"] == 12


# --- a picture of the found architecture -----------------------------------------------------
def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


@pytest.mark.parametrize("name", ["nb201", "darts", "nasbench-macro", "mobilenet"])
def test_every_space_draws_its_arch_with_every_op_named(name):
    space = get_space(name)
    arch = space.sample(np.random.default_rng(3))
    diagram = space.arch_diagram(arch)
    fig = arch_figure(diagram, f"{name}: a sampled arch")
    texts = _texts(fig)
    if diagram["kind"] == "cells":
        for cell in diagram["cells"]:
            ops = [op for _, _, op in cell["edges"] if op]
            assert ops and all(op in texts for op in ops)
            assert texts.count(cell["nodes"][1].split("\n")[0]) >= 1
    else:
        assert len(diagram["blocks"]) == space.num_genes
        assert [b["op"] for b in diagram["blocks"]] == \
            [space.blocks[i].ops[g].name for i, g in enumerate(arch)]
        assert all(f"{b['op']}\n{b['detail']}" in texts for b in diagram["blocks"])


def test_nb201_cell_graph_leaves_out_none_edges():
    space = get_space("nb201")
    arch = space.from_str("|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|none~1|"
                          "nor_conv_1x1~2|")
    (cell,) = space.arch_diagram(arch)["cells"]
    assert cell["edges"] == [(0, 1, "nor_conv_3x3"), (1, 2, "avg_pool_3x3"),
                             (0, 3, "skip_connect"), (2, 3, "nor_conv_1x1")]


def test_darts_cells_have_two_inputs_per_node_and_the_concatenation():
    space = get_space("darts")
    diagram = space.arch_diagram(space.sample(np.random.default_rng(0)))
    for cell in diagram["cells"]:
        ops = [(a, b) for a, b, op in cell["edges"] if op]
        assert sorted(b for _, b in ops) == [2, 2, 3, 3, 4, 4, 5, 5]
        assert [(a, b) for a, b, op in cell["edges"] if not op] == [(j, 6) for j in (2, 3, 4, 5)]


def test_a_skip_block_is_drawn_as_such():
    space = get_space("mobilenet")
    arch = space.from_str("2 0 -1 2 2 0 2 4 0 4 4 2 4 2 4 2 0 0 0 2 2")
    blocks = space.arch_diagram(arch)["blocks"]
    assert [b["skip"] for b in blocks] == [b["op"] == "skip" for b in blocks] and \
        any(b["skip"] for b in blocks)


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
