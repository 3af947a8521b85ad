"""The SPOS accuracy indicator (rlnas.accuracy): BN recalibration, top-1 against an explicit
reference, true labels, the held-out split rule and the registered scorer on a tiny run."""
import copy
import json

import numpy as np
import pytest
import torch
import torch.nn as nn

import rlnas.accuracy as acc_mod
from rlnas.accuracy import batch_norms, heldout_data, recalibrate_bn, supernet_accuracy
from rlnas.data import ImageData, load_dataset, load_nb201_split, nb201_train_half
from rlnas.errors import RlnasError
from rlnas.spaces import get_space

ARCHS = np.array([[3, 3, 3, 3, 3, 3],   # all 3x3 convs
                  [2, 1, 3, 4, 2, 3],   # a mix
                  [1, 0, 0, 2, 0, 0],   # a path through one edge, none elsewhere
                  [3, 2, 4, 0, 3, 1]], dtype=np.int64)




def tiny_supernet(seed=0, num_classes=10):
    torch.manual_seed(seed)
    model = get_space("nb201").supernet(channels=4, cells=1, num_classes=num_classes)
    # random-looking weights and stale BN statistics, so recalibration matters
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
        for bn in batch_norms(model):
            bn.running_mean.normal_(0.0, 2.0)
            bn.running_var.uniform_(0.2, 5.0)
    return model.eval()


def bn_inputs(model, x, arch):
    """Inputs of every BN in a train-mode forward of a copy of ``model`` (explicit hooks)."""
    m = copy.deepcopy(model).train()
    seen = {}
    hooks = [mod.register_forward_hook(
        lambda mod, inp, out, name=name: seen.__setitem__(name, inp[0]))
             for name, mod in m.named_modules() if isinstance(mod, nn.BatchNorm2d)]
    with torch.no_grad():
        m(x, arch)
    for h in hooks:
        h.remove()
    return seen


def batch_stats(t):
    return t.mean((0, 2, 3)), t.var((0, 2, 3), unbiased=True)


def reference_predictions(model, arch, recal_x, x):
    """Eval-mode predictions after setting every BN on the path to the batch statistics of
    ``recal_x`` (one batch) by hand."""
    stats = {k: batch_stats(v) for k, v in bn_inputs(model, recal_x, arch).items()}
    m = copy.deepcopy(model).eval()
    with torch.no_grad():
        for name, mod in m.named_modules():
            if name in stats:
                mod.running_mean.copy_(stats[name][0])
                mod.running_var.copy_(stats[name][1])
        return m(x, arch).argmax(1)


# ----------------------------------------------------------------------------------------------
# BN recalibration
# ----------------------------------------------------------------------------------------------
def test_recalibration_replaces_running_stats():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(24, 3, 8, 8, generator=g)
    for arch in ARCHS[:3]:
        model = tiny_supernet()
        momenta = {n: m.momentum for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
        inputs = bn_inputs(model, x, arch)
        cell_bns = [n for n in inputs if ".edges." in n]
        assert cell_bns, "the arch must use at least one cell BN"
        recalibrate_bn(model, arch, x, batch_size=512)  # one batch
        mods = dict(model.named_modules())
        for name, t in inputs.items():
            mean, var = batch_stats(t)
            torch.testing.assert_close(mods[name].running_mean, mean, atol=1e-5, rtol=0)
            torch.testing.assert_close(mods[name].running_var, var, atol=1e-5, rtol=0)
        # independent of the statistics before: other stale stats give the same result
        other = tiny_supernet()
        with torch.no_grad():
            for bn in batch_norms(other):
                bn.running_mean.fill_(7.0)
                bn.running_var.fill_(0.01)
        recalibrate_bn(other, arch, x, batch_size=512)
        for (n, a), b in zip(model.named_buffers(), other.buffers()):
            torch.testing.assert_close(a, b, atol=0, rtol=0, msg=n)
        # momentum restored, model left in eval mode
        assert {n: m.momentum for n, m in model.named_modules()
                if isinstance(m, nn.BatchNorm2d)} == momenta
        assert not any(m.training for m in model.modules())


def test_recalibration_averages_equal_batches():
    """Three equal batches: the cumulative average of the batch means is the overall mean of the
    stem BN's input (which does not depend on the other BNs)."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(30, 3, 8, 8, generator=g)
    model = tiny_supernet()
    recalibrate_bn(model, ARCHS[0], x, batch_size=10)
    stem_in = nn.functional.conv2d(x, model.stem[0].weight, padding=1)
    torch.testing.assert_close(model.stem[1].running_mean, stem_in.mean((0, 2, 3)), atol=1e-5,
                               rtol=0)
    assert int(model.stem[1].num_batches_tracked) == 3
    # 31 images in batches of <= 10: four near-equal batches (8, 8, 7, 8), not 10+10+10+1
    assert [hi - lo for lo, hi in acc_mod._batch_bounds(31, 10)] == [7, 8, 8, 8]


# ----------------------------------------------------------------------------------------------
# Accuracy against an explicit reference
# ----------------------------------------------------------------------------------------------
def test_accuracy_matches_explicit_reference():
    g = torch.Generator().manual_seed(3)
    recal_x = torch.randn(32, 3, 8, 8, generator=g)
    x = torch.randn(40, 3, 8, 8, generator=g)
    model = tiny_supernet()
    preds = [reference_predictions(model, a, recal_x, x) for a in ARCHS]
    y = preds[0].clone()
    y[::4] = (y[::4] + 1) % 10  # 75 % right for arch 0
    expected = np.array([100.0 * float((p == y).float().mean()) for p in preds])
    assert len(set(expected.round(6))) > 1, "the archs should differ"
    # the stale statistics would give other predictions: recalibration is what is tested
    with torch.no_grad():
        stale = [model(x, a).argmax(1) for a in ARCHS]
    assert any(not torch.equal(s, p) for s, p in zip(stale, preds))
    before = {n: b.clone() for n, b in model.named_buffers()}
    got = supernet_accuracy(model, ARCHS, recal_x, x, y, recal_batch=512, eval_batch=7)
    np.testing.assert_allclose(got, expected, atol=1e-9)
    assert got[0] == pytest.approx(75.0)
    # the model is left as found
    for n, b in model.named_buffers():
        assert torch.equal(b, before[n]), n
    # deterministic, and one arch at a time gives the same numbers
    again = np.concatenate([supernet_accuracy(model, a, recal_x, x, y, eval_batch=1000)
                            for a in ARCHS])
    np.testing.assert_array_equal(got, again)


def test_supernet_accuracy_rejects_bad_input():
    model = tiny_supernet()
    x = torch.randn(4, 3, 8, 8)
    y = torch.zeros(4, dtype=torch.int64)
    with pytest.raises(RlnasError):
        supernet_accuracy(model, ARCHS, x, x, y, recal_batch=0)
    with pytest.raises(RlnasError):
        supernet_accuracy(model, ARCHS, x[:0], x, y)
    with pytest.raises(RlnasError):
        supernet_accuracy(model, ARCHS, x, x, y[:3])
    with pytest.raises(RlnasError):
        supernet_accuracy(model, ARCHS.astype(float), x, x, y)


# ----------------------------------------------------------------------------------------------
# The held-out rule
# ----------------------------------------------------------------------------------------------
def _write_npz(folder, name, n, seed, k=10, side=32):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)
    y = rng.integers(0, k, size=n).astype(np.int64)
    np.savez(folder / name, x=x, y=y)
    return x, y


def _cfg(root, **data):
    d = {"dataset": "cifar10", "root": str(root), "nb201_half": False, "split_file": None,
         "subset": None}
    d.update(data)
    return {"seed": 5, "data": d}


def test_heldout_rule_on_tiny_data(tmp_path):
    xtr, ytr = _write_npz(tmp_path, "train_1.npz", 60, 0)
    xte, yte = _write_npz(tmp_path, "test_1.npz", 20, 1)
    # not trained on a half: the test split, true labels
    held, desc = heldout_data(_cfg(tmp_path))
    np.testing.assert_array_equal(held.x, xte)
    np.testing.assert_array_equal(held.y, yte)
    assert "test split" in desc
    # trained on the seeded half: the complement (the half uses the run's cfg seed)
    full = load_dataset("cifar10", tmp_path)
    train_idx, _ = nb201_train_half(full, None, seed=5)
    held, desc = heldout_data(_cfg(tmp_path, nb201_half=True), seed=0)
    rest = np.setdiff1d(np.arange(60), train_idx)
    assert 0 < len(rest) < 60 and len(held) == len(rest)
    np.testing.assert_array_equal(held.x, xtr[rest])
    np.testing.assert_array_equal(held.y, ytr[rest])  # true labels
    assert "complement" in desc
    # eval_images: a seeded subset of it
    a, _ = heldout_data(_cfg(tmp_path, nb201_half=True), seed=0, eval_images=7)
    b, _ = heldout_data(_cfg(tmp_path, nb201_half=True), seed=0, eval_images=7)
    c, _ = heldout_data(_cfg(tmp_path, nb201_half=True), seed=1, eval_images=7)
    assert len(a) == 7
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)
    assert all(any(np.array_equal(img, r) for r in xtr[rest]) for img in a.x)
    # with a split file: its valid list
    split = tmp_path / "split.txt"
    tr, va = np.arange(0, 60, 2), np.arange(1, 60, 2)[:20]
    split.write_text(json.dumps({"train": ["int", [str(i) for i in tr]],
                                 "valid": ["int", [str(i) for i in va]]}))
    held, desc = heldout_data(_cfg(tmp_path, nb201_half=True, split_file=str(split)))
    np.testing.assert_array_equal(held.x, xtr[va])
    np.testing.assert_array_equal(held.y, ytr[va])
    # an overlapping split file, a missing valid list, a single-file root: errors
    split.write_text(json.dumps({"train": ["int", ["0", "1"]], "valid": ["int", ["1", "2"]]}))
    with pytest.raises(RlnasError, match="both"):
        heldout_data(_cfg(tmp_path, nb201_half=True, split_file=str(split)))
    split.write_text(json.dumps({"train": ["int", ["0", "1"]]}))
    with pytest.raises(RlnasError, match="valid"):
        heldout_data(_cfg(tmp_path, nb201_half=True, split_file=str(split)))
    with pytest.raises(RlnasError, match="single file"):
        heldout_data(_cfg(tmp_path / "train_1.npz"))


def test_heldout_is_nb201_valid_half_of_real_cifar10(shared_data, monkeypatch):
    root = shared_data / "cifar10"
    split_file = shared_data / "nasbench201-splits" / "cifar-split.txt"
    if not (root / "train_1.npz").is_file() or not split_file.is_file():
        pytest.skip("real CIFAR-10 or the NB201 split file is absent")
    loaded = []
    real_load = acc_mod.load_dataset

    def counting_load(*args, **kwargs):
        loaded.append(real_load(*args, **kwargs))
        return loaded[-1]
    monkeypatch.setattr(acc_mod, "load_dataset", counting_load)
    held, desc = heldout_data(_cfg(root, nb201_half=True, split_file=str(split_file)))
    assert len(loaded) == 1  # the real data is read once
    full = loaded[0]
    split = load_nb201_split(split_file)
    assert len(held) == 25_000 and held.num_classes == 10
    assert np.intersect1d(split["valid"], split["train"]).size == 0
    np.testing.assert_array_equal(held.x, full.x[split["valid"]])
    np.testing.assert_array_equal(held.y, full.y[split["valid"]])
    assert "valid" in desc


# ----------------------------------------------------------------------------------------------
# The registered scorer on a tiny trained run
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from rlnas.config import load_config
    from rlnas.pipeline.train import train_supernet
    from rlnas.rundir import open_run

    root = tmp_path_factory.mktemp("acc")
    npz = root / "data"
    npz.mkdir()
    _write_npz(npz, "train_1.npz", 64, 10)
    _write_npz(npz, "test_1.npz", 40, 11)
    cfg = load_config("nb201-cifar10", [f"root={npz}", "channels=4", "cells=1", "epochs=1",
                                        "batch=32", "data.nb201_half=false", "device=cpu"])
    train_supernet(cfg, root / "run", progress=False)
    return open_run(root / "run")


def _ctx(run, **options):
    from rlnas.scorers import ScoreContext
    options.setdefault("progress", False)
    return ScoreContext(space=run.space, run=run, options=options)


def _manual(run, recal_idx, held: ImageData, labels=None):
    """The scorer's result rebuilt by hand: checkpoint, recal images, held-out images."""
    from rlnas.data import DeviceLoader, prepare_training_data

    train, _ = prepare_training_data(run.cfg)
    model = run.space.supernet(num_classes=run.info["num_classes"], **run.cfg["model"])
    model.load_state_dict(run.checkpoint_state("last.pt"))
    norm = DeviceLoader(train.x, train.y, 8, train.mean, train.std, augment=False)
    recal_x = norm.images(recal_idx)
    hx = DeviceLoader(held.x, held.y, 8, train.mean, train.std,
                      augment=False).images(np.arange(len(held)))
    y = torch.as_tensor(held.y if labels is None else labels)
    return supernet_accuracy(model, ARCHS, recal_x, hx, y)


def _normalised(train: ImageData, x_u8: np.ndarray) -> torch.Tensor:
    """(x/255 - mean)/std with the training data's statistics, written out."""
    x = torch.as_tensor(x_u8).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(train.mean).view(1, 3, 1, 1)
    std = torch.tensor(train.std).view(1, 3, 1, 1)
    return (x - mean) / std


def test_scorer_on_tiny_run(tiny_run):
    from rlnas.scorers import build_scorer, list_scorers, scorer_info

    assert "accuracy" in list_scorers()
    info = scorer_info("accuracy")
    assert info.needs_run and "true labels" in info.description
    score = build_scorer("accuracy", _ctx(tiny_run, recal_images=48, recal_batch=512))
    got = score(ARCHS)
    assert got.shape == (len(ARCHS),) and got.dtype == np.float64
    assert np.all((got >= 0) & (got <= 100))
    # rebuilt by hand: first 48 of the seeded permutation of the 64 training images, test_1.npz
    perm = np.random.default_rng(0).permutation(64)[:48]
    test = load_dataset("cifar10", tiny_run.cfg["data"]["root"], split="test")
    np.testing.assert_array_equal(got, _manual(tiny_run, np.sort(perm), test))
    assert "test split" in score.info["heldout"]
    # what it holds on the device, exactly: the trained weights, those images, the true labels
    from rlnas.data import prepare_training_data
    train, _ = prepare_training_data(tiny_run.cfg)
    torch.testing.assert_close(score.recal_x, _normalised(train, train.x[np.sort(perm)]), atol=0,
                               rtol=0)
    torch.testing.assert_close(score.heldout_x, _normalised(train, test.x), atol=0, rtol=0)
    assert torch.equal(score.heldout_y, torch.as_tensor(test.y))
    last, init = tiny_run.checkpoint_state("last.pt"), tiny_run.checkpoint_state("init.pt")
    assert any(not torch.equal(last[k], init[k]) for k in last)
    for k, v in score.model.state_dict().items():
        assert torch.equal(v, last[k]), k
    # deterministic: the same function again, and a new scorer
    np.testing.assert_array_equal(score(ARCHS), got)
    np.testing.assert_array_equal(
        build_scorer("accuracy", _ctx(tiny_run, recal_images=48))(ARCHS), got)
    # default recal_images (20000) is clamped to the 64 training images
    full = build_scorer("accuracy", _ctx(tiny_run))(ARCHS[:2])
    np.testing.assert_array_equal(full, _manual(tiny_run, np.arange(64), test)[:2])
    # eval_images keeps a seeded subset of the held-out split
    sub = build_scorer("accuracy", _ctx(tiny_run, eval_images=10))
    assert len(sub.heldout_y) == 10


def test_scorer_uses_true_labels(tiny_run):
    """Held-out = the training images themselves: the scorer must score them against their true
    labels, not the random labels the supernet was trained on."""
    from rlnas.data import prepare_training_data
    from rlnas.labels import load_labels
    from rlnas.scorers import build_scorer

    train, _ = prepare_training_data(tiny_run.cfg)
    rand, meta = load_labels(tiny_run.path / "labels.npz")
    assert meta["kind"] == "random" and (rand != train.y).mean() > 0.5
    idx = np.arange(64)
    with_true = _manual(tiny_run, idx, train)
    with_random = _manual(tiny_run, idx, train, labels=rand)
    assert not np.array_equal(with_true, with_random)
    score = build_scorer("accuracy", _ctx(tiny_run, heldout=train))
    np.testing.assert_array_equal(score(ARCHS), with_true)
    assert torch.equal(score.heldout_y, torch.as_tensor(train.y))
    # given held-out data is normalised like the training data, whatever its own mean/std
    odd = ImageData(train.x, train.y, 10, (0.0,) * 3, (1.0,) * 3, "odd", "odd stats")
    score = build_scorer("accuracy", _ctx(tiny_run, heldout=odd))
    torch.testing.assert_close(score.heldout_x, _normalised(train, train.x), atol=0, rtol=0)


def test_scorer_bad_options(tiny_run):
    from rlnas.scorers import ScoreContext, build_scorer

    bad = [dict(recal_images=0), dict(recal_batch=-1), dict(eval_images=0), dict(eval_batch=2.5),
           dict(recal_images="many"), dict(heldout=np.zeros(3)), dict(precision="fp8")]
    for opts in bad:
        with pytest.raises(RlnasError):
            build_scorer("accuracy", _ctx(tiny_run, **opts))
    # held-out labels beyond the supernet's classes, or images of another size
    x = np.zeros((4, 32, 32, 3), np.uint8)
    wide = ImageData(x, np.array([0, 1, 2, 12]), 13, (0.5,) * 3, (0.25,) * 3, "x", "test")
    with pytest.raises(RlnasError, match="labels"):
        build_scorer("accuracy", _ctx(tiny_run, heldout=wide))
    small = ImageData(x[:, :16, :16], np.zeros(4, np.int64), 10, (0.5,) * 3, (0.25,) * 3, "x", "t")
    with pytest.raises(RlnasError, match="trained on"):
        build_scorer("accuracy", _ctx(tiny_run, heldout=small))
    score = build_scorer("accuracy", _ctx(tiny_run, recal_images=8))
    with pytest.raises(RlnasError):
        score(np.array([[0, 1, 2, 3, 4, 9]]))
    with pytest.raises(RlnasError):
        score(np.array([[0, 1, 2]]))
    with pytest.raises(RlnasError, match="needs a trained"):
        build_scorer("accuracy", ScoreContext(space=tiny_run.space))


def test_scorer_sees_images_at_the_supernet_training_resolution(tmp_path):
    from rlnas.config import load_config
    from rlnas.pipeline.train import train_supernet
    from rlnas.rundir import open_run
    from rlnas.scorers import build_scorer
    npz = tmp_path / "data"
    npz.mkdir()
    _write_npz(npz, "train_1.npz", 32, 10)
    _write_npz(npz, "test_1.npz", 20, 11)
    cfg = load_config("nb201-cifar10", [f"root={npz}", "channels=4", "cells=1", "epochs=1",
                                        "batch=32", "data.nb201_half=false", "resolution=16"])
    train_supernet(cfg, tmp_path / "run", progress=False)
    score = build_scorer("accuracy", _ctx(open_run(tmp_path / "run"), recal_images=16))
    assert score.recal_x.shape[2:] == score.heldout_x.shape[2:] == (16, 16)
    assert np.all((score(ARCHS[:2]) >= 0) & (score(ARCHS[:2]) <= 100))
