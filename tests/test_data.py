"""Tests for rlnas.data (datasets, NB201 splits, DeviceLoader) and rlnas.labels, and a user's own
images (an .npz or an image folder) with any space."""
import json
import pickle
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

import rlnas
from rlnas.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DeviceLoader,
    ImageData,
    align_test_split,
    channel_stats,
    load_dataset,
    load_nb201_split,
    nb201_split_list,
    nb201_train_half,
)
from rlnas.errors import RlnasError
from rlnas.labels import load_labels, make_labels, random_labels, save_labels


# ----------------------------------------------------------------------------------------------
# fake datasets in the official formats
# ----------------------------------------------------------------------------------------------
def _write_pickle(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _chw_to_hwc(flat: np.ndarray, side: int) -> np.ndarray:
    # reference conversion written independently of the loader: pixel (r, c) of channel ch
    n = flat.shape[0]
    out = np.zeros((n, side, side, 3), np.uint8)
    for ch in range(3):
        for r in range(side):
            start = ch * side * side + r * side
            out[:, r, :, ch] = flat[:, start: start + side]
    return out


@pytest.fixture
def fake_cifar10(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    written = {}
    for name, n in [(f"data_batch_{i}", 3 + i) for i in range(1, 6)] + [("test_batch", 5)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        _write_pickle(folder / name, {b"batch_label": b"x", b"data": data, b"labels": labels,
                                      b"filenames": [b"f"] * n})
        written[name] = (data, np.array(labels))
    return tmp_path, folder, written


def test_cifar10_pickles(fake_cifar10):
    parent, folder, written = fake_cifar10
    for root in (parent, folder):
        tr = load_dataset("cifar10", root, "train")
        names = [f"data_batch_{i}" for i in range(1, 6)]
        exp_x = np.concatenate([_chw_to_hwc(written[n][0], 32) for n in names])
        exp_y = np.concatenate([written[n][1] for n in names])
        assert tr.x.dtype == np.uint8 and tr.x.shape == (sum(3 + i for i in range(1, 6)), 32, 32, 3)
        assert np.array_equal(tr.x, exp_x)
        assert tr.y.dtype == np.int64 and np.array_equal(tr.y, exp_y)
        assert tr.num_classes == 10 and tr.mean == CIFAR10_MEAN and tr.std == CIFAR10_STD
        assert "data_batch_1" in tr.source
    te = load_dataset("cifar10", parent, "test")
    assert np.array_equal(te.x, _chw_to_hwc(written["test_batch"][0], 32))
    assert np.array_equal(te.y, written["test_batch"][1])
    # the first red pixel is data[:, 0], the first green one data[:, 1024]
    assert np.array_equal(te.x[:, 0, 0, 0], written["test_batch"][0][:, 0])
    assert np.array_equal(te.x[:, 0, 1, 1], written["test_batch"][0][:, 1025])


def test_cifar10_pickle_errors(fake_cifar10):
    parent, folder, written = fake_cifar10
    (folder / "data_batch_3").unlink()
    with pytest.raises(RlnasError, match="data_batch_3"):
        load_dataset("cifar10", parent, "train")
    # test split still loads
    assert len(load_dataset("cifar10", parent, "test")) == 5
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(RlnasError, match="test_batch"):
        load_dataset("cifar10", parent, "test")
    _write_pickle(folder / "test_batch",
                  {b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]})
    with pytest.raises(RlnasError, match="test_batch"):
        load_dataset("cifar10", parent, "test")
    _write_pickle(folder / "test_batch",
                  {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})
    with pytest.raises(RlnasError, match="labels"):
        load_dataset("cifar10", parent, "test")


@pytest.mark.parametrize("protocol, numpy1_names", [
    (0, False), (2, False), (pickle.DEFAULT_PROTOCOL, False), (pickle.HIGHEST_PROTOCOL, False),
    (2, True),  # as the official batches were written: NumPy 1.x's numpy.core module names
], ids=["protocol-0", "protocol-2", "default", "highest", "protocol-2-numpy1-names"])
def test_cifar10_batches_load_under_the_restricted_unpickler(tmp_path, protocol, numpy1_names):
    rng = np.random.default_rng(4)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    xs, ys = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, 3)]
        raw = pickle.dumps({b"batch_label": b"x", b"data": data, b"labels": labels,
                            b"filenames": [b"a", b"b", b"c"]}, protocol=protocol)
        if numpy1_names:
            raw = raw.replace(b"numpy._core.", b"numpy.core.")
            assert b"numpy.core.multiarray" in raw
        (folder / name).write_bytes(raw)
        if name != "test_batch":
            xs.append(_chw_to_hwc(data, 32))
            ys.append(labels)
    tr = load_dataset("cifar10", tmp_path, "train")
    assert np.array_equal(tr.x, np.concatenate(xs)) and tr.y.tolist() == sum(ys, [])


@pytest.mark.parametrize("dataset, folder, name", [
    ("cifar10", "cifar-10-batches-py", "test_batch"),
    ("imagenet16-120", "ImageNet16", "val_data"),
])
def test_crafted_batch_pickle_is_refused_without_running_it(tmp_path, dataset, folder, name):
    """The classic exploit: a protocol-0 pickle whose top object is os.system('touch MARKER')."""
    marker = tmp_path / "MARKER"
    d = tmp_path / folder
    d.mkdir()
    bad = d / name
    bad.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(RlnasError) as ei:
        load_dataset(dataset, tmp_path, "test")
    assert str(ei.value) == (f"refusing to unpickle {bad}: it references os.system, which a "
                             "CIFAR/ImageNet16 batch never holds")
    assert not marker.exists()


def test_cifar100_pickles(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    written = {}
    for name, n in [("train", 7), ("test", 4)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, n)]
        _write_pickle(folder / name, {b"data": data, b"fine_labels": fine,
                                      b"coarse_labels": [0] * n})
        written[name] = (data, np.array(fine))
    for split in ("train", "test"):
        d = load_dataset("cifar100", tmp_path, split)
        assert np.array_equal(d.x, _chw_to_hwc(written[split][0], 32))
        assert np.array_equal(d.y, written[split][1])
        assert d.num_classes == 100 and d.mean == (0.5071, 0.4865, 0.4409)


def test_imagenet16_pickles(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "ImageNet16"
    folder.mkdir()
    xs, ys = [], []
    for i in range(1, 11):
        data = rng.integers(0, 256, (6, 768), dtype=np.uint8)
        labels = [1, 120, 121, 1000, int(rng.integers(1, 121)), 60]
        _write_pickle(folder / f"train_data_batch_{i}", {"data": data, "labels": labels, "mean": 0})
        keep = np.array(labels) <= 120
        xs.append(_chw_to_hwc(data, 16)[keep])
        ys.append(np.array(labels)[keep] - 1)
    vdata = rng.integers(0, 256, (4, 768), dtype=np.uint8)
    _write_pickle(folder / "val_data", {"data": vdata, "labels": [500, 2, 3, 120]})
    for root in (tmp_path, folder):
        tr = load_dataset("imagenet16-120", root, "train")
        assert tr.x.shape == (40, 16, 16, 3) and tr.num_classes == 120
        assert np.array_equal(tr.x, np.concatenate(xs))
        assert np.array_equal(tr.y, np.concatenate(ys))
        assert tr.y.min() == 0 and tr.y.max() == 119
    te = load_dataset("imagenet16-120", tmp_path, "test")
    assert np.array_equal(te.y, [1, 2, 119])
    assert np.array_equal(te.x, _chw_to_hwc(vdata, 16)[1:])
    (folder / "train_data_batch_7").unlink()
    with pytest.raises(RlnasError, match="train_data_batch_7"):
        load_dataset("imagenet16-120", tmp_path, "train")
    with pytest.raises(RlnasError, match="train_data_batch_1"):
        load_dataset("imagenet16-120", _mkdir(tmp_path / "empty"), "train")


def _mkdir(p: Path) -> Path:
    p.mkdir()
    return p


def _write_npz(path, n, seed, k=10, **override):
    rng = np.random.default_rng(seed)
    arrays = {"x": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
              "y": rng.integers(0, k, n).astype(np.int64)}
    arrays.update(override)
    np.savez(path, **arrays)
    return arrays


def test_npz_folder_and_file(tmp_path):
    # natural order: train_2 before train_10
    parts = {i: _write_npz(tmp_path / f"train_{i}.npz", 2 + i, i) for i in (10, 1, 2)}
    t1 = _write_npz(tmp_path / "test_a.npz", 3, 99)
    tr = load_dataset("cifar10", tmp_path, "train")
    assert np.array_equal(tr.x, np.concatenate([parts[i]["x"] for i in (1, 2, 10)]))
    assert np.array_equal(tr.y, np.concatenate([parts[i]["y"] for i in (1, 2, 10)]))
    assert "train_1.npz" in tr.source
    te = load_dataset("cifar10", tmp_path, "test")
    assert np.array_equal(te.x, t1["x"]) and np.array_equal(te.y, t1["y"])
    _write_npz(tmp_path / "test_b.npz", 4, 98)
    with pytest.raises(RlnasError) as ei:
        load_dataset("cifar10", tmp_path, "test")
    # it names data.test_root, never data.root: the folder stays the training data
    assert str(ei.value) == (
        f"{tmp_path} holds 2 test files (test_a.npz, test_b.npz); choose one with "
        f"data.test_root={tmp_path / 'test_a.npz'} (keep data.root the training folder)")
    single = load_dataset("cifar10", tmp_path / "test_b.npz", "test")
    assert len(single) == 4
    c100 = load_dataset("cifar100", tmp_path / "test_b.npz", "test")
    assert c100.num_classes == 100


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "a.npz", images=np.zeros((2, 32, 32, 3), np.uint8), y=np.zeros(2, np.int64))
    with pytest.raises(RlnasError, match=r"a\.npz.*'x' and 'y'"):
        load_dataset("cifar10", tmp_path / "a.npz")
    _write_npz(tmp_path / "b.npz", 2, 0, x=np.zeros((2, 3, 32, 32), np.uint8))
    with pytest.raises(RlnasError, match=r"b\.npz.*'x'"):
        load_dataset("cifar10", tmp_path / "b.npz")
    _write_npz(tmp_path / "c.npz", 2, 0, x=np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(RlnasError, match=r"c\.npz"):
        load_dataset("cifar10", tmp_path / "c.npz")
    _write_npz(tmp_path / "d.npz", 2, 0, y=np.array([0, 10]))
    with pytest.raises(RlnasError, match=r"d\.npz.*labels"):
        load_dataset("cifar10", tmp_path / "d.npz")
    _write_npz(tmp_path / "e.npz", 2, 0, y=np.array([0, 1, 2]))
    with pytest.raises(RlnasError, match=r"e\.npz"):
        load_dataset("cifar10", tmp_path / "e.npz")
    (tmp_path / "f.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(RlnasError, match=r"f\.npz"):
        load_dataset("cifar10", tmp_path / "f.npz")
    (tmp_path / "g.txt").write_text("hi")
    with pytest.raises(RlnasError, match="not an .npz"):
        load_dataset("cifar10", tmp_path / "g.txt")


def test_general_errors(tmp_path):
    with pytest.raises(RlnasError, match="unknown dataset.*cifar10.*imagenet16-120"):
        load_dataset("mnist", tmp_path)
    with pytest.raises(RlnasError, match="does not exist.*cifar-10-batches-py"):
        load_dataset("cifar10", tmp_path / "missing")
    with pytest.raises(RlnasError, match="cifar-10-batches-py.*data_batch_1.*train\\*.npz"):
        load_dataset("cifar10", tmp_path, "train")
    with pytest.raises(RlnasError, match="cifar-100-python"):
        load_dataset("cifar100", tmp_path, "test")
    with pytest.raises(RlnasError, match="val_data"):
        load_dataset("imagenet16-120", tmp_path, "test")
    with pytest.raises(RlnasError, match="split"):
        load_dataset("cifar10", tmp_path, "valid")
    with pytest.raises(RlnasError, match="root"):
        load_dataset("cifar10", None)


def test_subset():
    d = ImageData(x=np.arange(5 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 2, 2, 3),
                  y=np.arange(5, dtype=np.int64), num_classes=5, mean=(0.5,) * 3, std=(0.2,) * 3,
                  name="toy", source="toy")
    s = d.subset([4, 0])
    assert np.array_equal(s.y, [4, 0]) and np.array_equal(s.x[0], d.x[4])
    assert s.num_classes == 5 and s.mean == d.mean
    with pytest.raises(RlnasError):
        d.subset([5])


# ----------------------------------------------------------------------------------------------
# real data (skipped when absent)
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def real_cifar_train(shared_data):
    root = shared_data / "cifar10"
    if not (root / "train_1.npz").is_file():
        pytest.skip("real CIFAR-10 npz files not found")
    return load_dataset("cifar10", root, "train")


def test_real_cifar10(real_cifar_train, shared_data):
    d = real_cifar_train
    assert d.x.shape == (50000, 32, 32, 3) and d.y.shape == (50000,)
    assert np.array_equal(np.bincount(d.y), [5000] * 10)
    assert list(d.x[0, 0, :10, 0]) == [59, 43, 50, 68, 98, 119, 139, 145, 149, 149]
    root = shared_data / "cifar10"
    with pytest.raises(RlnasError, match="test_exact1k.npz.*test_jpeg.npz"):
        load_dataset("cifar10", root, "test")
    te = load_dataset("cifar10", root / "test_exact1k.npz", "test")
    assert te.x.shape == (1000, 32, 32, 3)
    assert list(te.x[0, 0, :9, 0]) == [158, 159, 165, 166, 160, 156, 162, 159, 158]


def test_real_nb201_split(shared_data, real_cifar_train):
    path = shared_data / "nasbench201-splits" / "cifar-split.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    split = load_nb201_split(path)
    tr, va = split["train"], split["valid"]
    assert tr.dtype == np.int64 and tr.size == 25000 and va.size == 25000
    assert np.intersect1d(tr, va).size == 0
    assert np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(50000))
    idx, desc = nb201_train_half(real_cifar_train, path)
    assert np.array_equal(idx, tr)
    assert "25,000" in desc and "cifar-split.txt" in desc
    idx2, desc2 = nb201_train_half(real_cifar_train, None, seed=0)
    assert idx2.size == 25000 and np.unique(idx2).size == 25000
    assert np.array_equal(np.bincount(real_cifar_train.y[idx2], minlength=10), [2500] * 10)
    assert "seed 0" in desc2 and "no split file" in desc2
    small = real_cifar_train.subset(np.arange(1000))
    with pytest.raises(RlnasError, match="1000"):
        nb201_train_half(small, path)


def test_nb201_split_parsing(tmp_path):
    good = tmp_path / "s.txt"
    good.write_text('{\n "train" : ["int", ["0", "5", "7"]],\n "valid": ["int", ["1", "2"]]\n}')
    s = load_nb201_split(good)
    assert set(s) == {"train", "valid"} and np.array_equal(s["train"], [0, 5, 7])
    for i, text in enumerate(['{"train": ["int", ["0", "x"]]}', '{"train": ["int", ["0"]',
                              '["0", "1"]', '{"train": ["int", ["-1"]]}', '{"train": 5}']):
        bad = tmp_path / f"bad{i}.txt"
        bad.write_text(text)
        with pytest.raises(RlnasError, match="malformed"):
            load_nb201_split(bad)
    with pytest.raises(RlnasError, match="not found"):
        load_nb201_split(tmp_path / "none.txt")
    y = np.repeat(np.arange(3), [4, 6, 7])
    d = ImageData(x=np.zeros((17, 1, 1, 3), np.uint8), y=y, num_classes=3, mean=(0,) * 3,
                  std=(1,) * 3, name="toy", source="toy")
    idx, _ = nb201_train_half(d, None, seed=3)
    assert np.array_equal(np.bincount(y[idx]), [2, 3, 3])
    assert np.array_equal(idx, nb201_train_half(d, None, seed=3)[0])
    assert not np.array_equal(idx, nb201_train_half(d, None, seed=4)[0])
    with pytest.raises(RlnasError, match="indexes up to 7"):
        nb201_train_half(d.subset(np.arange(5)), good)


@pytest.mark.parametrize("key", ["train", "valid"])
def test_nb201_split_list_checks_each_list_alike(tmp_path, key):
    """The train half (training) and the valid half (the accuracy scorer's held-out images) are
    read by the same checks, each message naming its list."""
    other = "valid" if key == "train" else "train"
    path = tmp_path / "s.txt"
    for lists, why in [({other: [0]}, f"has no '{key}' list"),
                       ({key: []}, f"the '{key}' list is empty"),
                       ({key: [0, 9]}, "indexes up to 9, but the dataset has only 5 images"),
                       ({key: [1, 1]}, f"the '{key}' list repeats indices")]:
        path.write_text(json.dumps({k: ["int", [str(i) for i in v]] for k, v in lists.items()}))
        with pytest.raises(RlnasError, match=why):
            nb201_split_list(path, key, 5)
    path.write_text(json.dumps({key: ["int", ["4", "0"]]}))
    assert nb201_split_list(path, key, 5).tolist() == [4, 0]


# ----------------------------------------------------------------------------------------------
# DeviceLoader
# ----------------------------------------------------------------------------------------------
def _toy(n=50, side=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8), np.arange(n)


def test_loader_deterministic():
    x, y = _toy()
    a = DeviceLoader(x, y, 16, CIFAR10_MEAN, CIFAR10_STD, seed=5)
    b = DeviceLoader(x, y, 16, CIFAR10_MEAN, CIFAR10_STD, seed=5)
    assert a.num_samples == 50 and a.steps_per_epoch == 4
    seq = [a.batch(s) for s in range(10)]
    # fresh loader, steps out of order (different epochs, cache switched): bit-identical
    for s in (9, 2, 7, 0, 5):
        xb, yb = b.batch(s)
        assert torch.equal(xb, seq[s][0]) and torch.equal(yb, seq[s][1])
    assert xb.dtype == torch.float32 and xb.shape == (16, 3, 32, 32)
    assert yb.dtype == torch.int64
    assert seq[3][0].shape[0] == 2  # last batch smaller, no drop
    assert not torch.equal(seq[0][0], seq[4][0])
    assert not torch.equal(seq[0][1], seq[4][1])  # new epoch -> new order
    c = DeviceLoader(x, y, 16, CIFAR10_MEAN, CIFAR10_STD, seed=6)
    assert not torch.equal(c.batch(0)[1], seq[0][1])
    # same sample order twice, different augmentation draws in different epochs
    d = DeviceLoader(x, y, 50, CIFAR10_MEAN, CIFAR10_STD, seed=5)
    x0, y0 = d.batch(0)
    x1, y1 = d.batch(1)
    order = torch.argsort(y1)[y0.argsort().argsort()]
    assert not torch.equal(x0, x1[order])


def test_loader_epoch_coverage():
    x, y = _toy(n=37)
    ld = DeviceLoader(x, y, 8, (0.5,) * 3, (0.25,) * 3, seed=1)
    orders = []
    for epoch in range(3):
        labels = torch.cat([yb for _, yb in ld.epoch_batches(epoch)]).numpy()
        assert len(labels) == 37
        assert np.array_equal(np.sort(labels), np.arange(37))
        orders.append(labels)
    assert not np.array_equal(orders[0], orders[1])


def test_loader_no_augment_and_images():
    x, y = _toy(n=20)
    mean, std = CIFAR10_MEAN, CIFAR10_STD
    ld = DeviceLoader(x, y, 7, mean, std, augment=False, seed=2)
    ref = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0
           - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    for step in range(6):
        xb, yb = ld.batch(step)
        assert torch.allclose(xb, ref[yb], atol=1e-6, rtol=0)
        assert xb.is_contiguous()
    imgs = ld.images([3, 0, 19])
    assert torch.allclose(imgs, ref[[3, 0, 19]], atol=1e-6, rtol=0)
    cl = DeviceLoader(x, y, 7, mean, std, augment=True, seed=2, channels_last=True)
    xb, _ = cl.batch(0)
    assert xb.is_contiguous(memory_format=torch.channels_last)


def _coord_images(n):
    """Pixel (r, c) of image i holds (r + 1, c + 1, i % 250 + 1): positions and identity
    readable."""
    r = np.arange(32)[:, None].repeat(32, 1)
    c = np.arange(32)[None, :].repeat(32, 0)
    x = np.zeros((n, 32, 32, 3), np.uint8)
    x[..., 0] = r + 1
    x[..., 1] = c + 1
    x[..., 2] = (np.arange(n) % 250 + 1)[:, None, None]
    return x


def test_loader_augmentation_matches_reference():
    n, pad = 256, 4
    x = _coord_images(n)
    ld = DeviceLoader(x, np.arange(n), n, (0.0,) * 3, (1.0,) * 3, pad=pad, seed=11)
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    hist = np.zeros((2 * pad + 1, 2 * pad + 1), np.int64)
    flips = draws = 0
    for step in range(16):
        xb, yb = ld.batch(step)
        out = np.rint(xb.permute(0, 2, 3, 1).numpy() * 255.0)
        assert np.abs(out - xb.permute(0, 2, 3, 1).numpy() * 255.0).max() < 1e-3
        out = out.astype(np.uint8)
        labels = yb.numpy()
        rowval = out[..., 0].max(axis=2)  # B x H: source row + 1, 0 where padded
        colval = out[..., 1].max(axis=1)  # B x W: source col + 1, 0 where padded
        for b in range(n):
            i0 = int(np.argmax(rowval[b] > 0))
            oy = int(rowval[b, i0]) - 1 - i0 + pad
            nz = np.flatnonzero(colval[b])
            flipped = colval[b, nz[0]] > colval[b, nz[-1]]
            j0 = int(nz[0])
            v = int(colval[b, j0]) - 1
            ox = v - (31 - j0) + pad if flipped else v - j0 + pad
            assert 0 <= oy <= 2 * pad and 0 <= ox <= 2 * pad
            ref = padded[labels[b], oy:oy + 32, ox:ox + 32]
            if flipped:
                ref = ref[:, ::-1]
            assert np.array_equal(out[b], ref)
            hist[oy, ox] += 1
            flips += int(flipped)
            draws += 1
    assert draws == 16 * n
    p_offsets = stats.chisquare(hist.ravel()).pvalue
    assert p_offsets > 1e-3, hist
    assert stats.binomtest(flips, draws, 0.5).pvalue > 1e-3
    assert hist.min() > 0


def test_loader_flags_and_errors():
    x = _coord_images(64)
    nf = DeviceLoader(x, np.arange(64), 64, (0.0,) * 3, (1.0,) * 3, flip=False, seed=0)
    out = np.rint(nf.batch(0)[0].numpy() * 255).astype(np.int64)
    colval = out[:, 1].max(axis=1)
    assert all(np.all(np.diff(c[c > 0]) == 1) for c in colval)  # never flipped
    p0 = DeviceLoader(x, np.arange(64), 64, (0.0,) * 3, (1.0,) * 3, pad=0, flip=False)
    xb, yb = p0.batch(3)
    assert torch.equal(xb, p0.images(yb.numpy()))
    with pytest.raises(RlnasError):
        DeviceLoader(x[..., :2], np.arange(64), 8, (0,) * 3, (1,) * 3)
    with pytest.raises(RlnasError):
        DeviceLoader(x.astype(np.float32), np.arange(64), 8, (0,) * 3, (1,) * 3)
    with pytest.raises(RlnasError):
        DeviceLoader(x, np.arange(63), 8, (0,) * 3, (1,) * 3)
    with pytest.raises(RlnasError):
        DeviceLoader(x, np.arange(64), 0, (0,) * 3, (1,) * 3)


# ----------------------------------------------------------------------------------------------
# digits demo
# ----------------------------------------------------------------------------------------------
def test_digits():
    pytest.importorskip("sklearn")
    tr = load_dataset("digits", None, "train")
    te = load_dataset("digits", None, "test")
    assert tr.x.shape == (1297, 16, 16, 3) and te.x.shape == (500, 16, 16, 3)
    assert tr.x.dtype == np.uint8 and tr.y.dtype == np.int64
    assert set(np.unique(tr.y)) == set(range(10)) and set(np.unique(te.y)) == set(range(10))
    assert tr.num_classes == 10
    assert np.array_equal(tr.x[..., 0], tr.x[..., 2])
    assert tr.x.max() > 200 and tr.x.min() == 0
    # stratified: each class's test count is its proportional share 500 * n_c / 1797, rounded
    n_c = np.bincount(np.concatenate([tr.y, te.y]))
    assert n_c.sum() == 1797
    assert np.all(np.abs(np.bincount(te.y) - 500 * n_c / 1797) < 1)
    assert abs(tr.mean[0] - tr.x.mean() / 255) < 1e-9
    assert abs(tr.std[0] - (tr.x / 255.0).std()) < 1e-9
    again = load_dataset("digits", None, "train")
    assert np.array_equal(again.x, tr.x) and np.array_equal(again.y, tr.y)
    # train and test are disjoint: no test image appears in train
    trs = {r.tobytes() + bytes([c]) for r, c in zip(tr.x, tr.y)}
    dup = sum((r.tobytes() + bytes([c])) in trs for r, c in zip(te.x, te.y))
    assert dup < 5  # load_digits has a handful of duplicate images; a leak would give 500


# ----------------------------------------------------------------------------------------------
# labels
# ----------------------------------------------------------------------------------------------
def test_random_labels():
    a = random_labels(20000, 10, 7)
    assert a.dtype == np.int64 and a.shape == (20000,)
    assert np.array_equal(a, random_labels(20000, 10, 7))
    assert np.array_equal(a, np.random.RandomState(7).randint(0, 10, 20000))
    assert not np.array_equal(a, random_labels(20000, 10, 8))
    assert stats.chisquare(np.bincount(a, minlength=10)).pvalue > 1e-3
    assert a.min() == 0 and a.max() == 9
    for bad in [(0, 10, 0), (5, 1, 0)]:
        with pytest.raises(RlnasError):
            random_labels(*bad)


def test_make_labels():
    true = np.array([0, 1, 2, 1, 0])
    y, desc = make_labels("true", true, 3, 0)
    assert np.array_equal(y, true) and y.dtype == np.int64 and "true" in desc
    y, desc = make_labels("random", true, 3, 4)
    assert np.array_equal(y, np.random.RandomState(4).randint(0, 3, 5)) and "random" in desc
    with pytest.raises(RlnasError, match="label kind"):
        make_labels("noisy", true, 3, 0)
    with pytest.raises(RlnasError):
        make_labels("true", np.array([0, 3]), 3, 0)


def test_labels_save_load(tmp_path):
    y = random_labels(1000, 10, 0)
    meta = {"kind": "random", "seed": 0, "num_classes": 10, "dataset": "cifar10"}
    path = tmp_path / "sub" / "labels.npz"
    save_labels(path, y, meta)
    y2, meta2 = load_labels(path)
    assert np.array_equal(y, y2) and y2.dtype == np.int64 and meta2 == meta
    assert [p.name for p in path.parent.iterdir()] == ["labels.npz"]  # no temp file left
    save_labels(path, y[:10], {"v": 2})  # overwrite
    assert load_labels(path)[1] == {"v": 2}
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RlnasError, match="corrupt"):
        load_labels(path)
    path.write_bytes(b"garbage")
    with pytest.raises(RlnasError, match="corrupt"):
        load_labels(path)
    np.savez(path, labels=np.array([object()], dtype=object), meta=np.array("{}"))
    with pytest.raises(RlnasError):
        load_labels(path)
    with pytest.raises(RlnasError, match="not found"):
        load_labels(tmp_path / "none.npz")


def test_cutout_zeroes_one_clipped_square_per_image():
    x = np.full((64, 12, 12, 3), 200, dtype=np.uint8)
    loader = DeviceLoader(x, np.zeros(64, dtype=np.int64), 64, (0.0,) * 3, (1.0,) * 3, pad=0,
                          flip=False, cutout=4)
    xb, _ = loader.batch(0)
    zero = (xb == 0).all(1)  # B x H x W
    for img in zero:
        ys, xs = np.nonzero(img.numpy())
        assert 1 <= len(ys) <= 16
        # a rectangle: every pixel in its bounding box is zeroed, and it is at most 4 x 4
        assert len(ys) == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert ys.max() - ys.min() < 4 and xs.max() - xs.min() < 4
    # centres spread over the image: some squares are clipped at the border, most are not
    sizes = zero.sum((1, 2))
    assert (sizes == 16).any() and (sizes < 16).any()
    assert torch.equal(loader.batch(0)[0], xb)


def test_resolution_resizes_once_by_area_and_scales_the_crop_padding():
    from rlnas.data import crop_padding, make_loader, resize_uint8
    x, y = _toy(n=8)
    small = resize_uint8(torch.from_numpy(x), 16)
    ref = torch.from_numpy(x).permute(0, 3, 1, 2).float()
    ref = torch.nn.functional.avg_pool2d(ref, 2).round().to(torch.uint8).permute(0, 2, 3, 1)
    assert small.dtype == torch.uint8 and torch.equal(small, ref)  # 2x2 means, rounded
    assert resize_uint8(torch.from_numpy(x), 32) is not None
    assert [crop_padding(s) for s in (32, 16, 8)] == [4, 2, 1]
    data = ImageData(x, y, 10, CIFAR10_MEAN, CIFAR10_STD, "toy", "toy")
    loader = make_loader(data, y, 4, resolution=8)
    xb, _ = loader.batch(0)
    assert xb.shape == (4, 3, 8, 8) and loader.pad == 1
    assert make_loader(data, y, 4).batch(0)[0].shape == (4, 3, 32, 32)
    with pytest.raises(RlnasError, match="resolution"):
        resize_uint8(torch.from_numpy(x), 2)


# === a user's own images ==========================================================================
# A user's own images (an .npz or an image folder) with any space (issue 21).
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

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
