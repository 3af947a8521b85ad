"""ImageNet folders: the random labels really replace the folder labels (the official wrapper's
defect), pure-function batches, the official augmentation's shape and range."""
import numpy as np
import pytest
import torch
from PIL import Image

from rlnas.data import load_dataset, make_loader
from rlnas.errors import RlnasError
from rlnas.imagenet import FolderLoader, eval_transform, train_transform
from rlnas.labels import make_labels


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2)):
        for c in ("n01", "n02", "n03"):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                size = (int(rng.integers(40, 90)), int(rng.integers(40, 90)))
                arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{c}_{i}.png")
    return root


def test_random_labels_replace_the_folder_labels(folder):
    data = load_dataset("imagenet", folder, "train")
    assert len(data) == 18 and data.num_classes == 3 and list(data.y[:6]) == [0] * 6
    labels, _ = make_labels("random", data.y, 1000, seed=0)
    assert np.array_equal(labels, np.random.RandomState(0).randint(0, 1000, 18))
    data.image_size = (32, 32)
    loader = make_loader(data, labels, 5, seed=0)
    seen = []
    for step in range(loader.steps_per_epoch):
        x, y = loader.batch(step)
        assert x.shape[1:] == (3, 32, 32) and x.dtype == torch.float32
        seen.append(y)
    y = torch.cat(seen).numpy()
    perm = loader.permutation(0)
    assert np.array_equal(y, labels[perm])          # the labels the training step sees
    assert not np.array_equal(y, data.y[perm])       # ... are not the folder's
    assert y.max() >= 3                              # K = 1000, not the 3 folder classes


def test_batches_are_pure_and_parts_partition(folder):
    data = load_dataset("imagenet", folder, "train")
    data.image_size = (24, 24)
    a = FolderLoader(data, data.y, 8, seed=3, image_size=24)
    b = FolderLoader(data, data.y, 8, seed=3, image_size=24)
    xa, ya = a.batch(4)
    xb, yb = b.batch(4)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    parts = [a.batch(4, p, 2) for p in range(2)]
    assert torch.equal(torch.cat([p[0] for p in parts]), xa)
    assert not torch.equal(a.batch(5)[0][:2], xa[:2])


def test_train_transform_is_square_crop_without_normalisation():
    img = Image.fromarray(np.full((30, 50, 3), 128, dtype=np.uint8))
    out = train_transform(img, np.random.default_rng(0), 16, lighting=0.0)
    assert out.shape == (3, 16, 16)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0  # ToTensor only
    # a square larger than the short side is zero-padded: some draws contain black borders
    black = [float((train_transform(img, np.random.default_rng(s), 16, 0.0) == 0).float().mean())
             for s in range(40)]
    assert max(black) > 0 and min(black) == 0


def test_missing_layout_is_a_clear_error(tmp_path):
    with pytest.raises(RlnasError, match="does not exist"):
        load_dataset("imagenet", tmp_path / "nope", "train")
    (tmp_path / "train").mkdir()
    with pytest.raises(RlnasError, match="no class folders"):
        load_dataset("imagenet", tmp_path, "train")


def test_prefetching_changes_nothing(folder):
    data = load_dataset("imagenet", folder, "train")  # 18 images: batches of 8, 8, 2
    plain = FolderLoader(data, data.y, 8, seed=1, image_size=20, prefetch=False)
    ahead = FolderLoader(data, data.y, 8, seed=1, image_size=20, threads=3, channels_last=True)
    # in order with 3 parts (the last step's first part is empty), then a jump (a resume)
    order = [(s, p, 3) for s in range(4) for p in range(3)] + [(7, 0, 1), (2, 1, 2)]
    for step, part, parts in order:
        xa, ya = plain.batch(step, part, parts)
        xb, yb = ahead.batch(step, part, parts)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        n = plain.part_slice(step, part, parts)
        assert xb.shape == (n.stop - n.start, 3, 20, 20)
    assert xb.is_contiguous(memory_format=torch.channels_last)
    assert {k[0] for k in ahead._pending} == {3}  # stale look-aheads were dropped


def test_unreadable_image_is_a_clear_error(folder, tmp_path):
    data = load_dataset("imagenet", folder, "train")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    data.paths[0] = str(broken)
    loader = FolderLoader(data, data.y, 18, image_size=16)
    with pytest.raises(RlnasError, match="cannot read an image"):
        loader.batch(0)


def test_evaluation_covers_every_image_once(folder):
    from rlnas.pipeline.retrain import evaluate_network
    data = load_dataset("imagenet", folder, "test")  # 6 images, 3 classes
    data.image_size = (16, 16)
    loader = make_loader(data, data.y, 4, eval_mode=True)  # batches of 4 and 2
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 3))
    res = evaluate_network(model, loader)
    with torch.no_grad():
        x = torch.stack([eval_transform(Image.open(p), 16) for p in data.paths])
        pred = model(x).argmax(1).numpy()
    assert res["top1"] == pytest.approx(100 * np.mean(pred == data.y))
    assert res["top5"] == 100.0  # 3 classes: always in the top 5


def test_torchvision_transform_crops_any_aspect_and_normalises(folder):
    from rlnas.imagenet import IMAGENET_MEAN, IMAGENET_STD, _rrc_box
    # the crop box: inside the image, area 8-100 %, aspect ratio 3/4-4/3 (ten tries, else centre)
    boxes = [_rrc_box(80, 50, np.random.default_rng(s)) for s in range(300)]
    for x0, y0, cw, ch in boxes:
        assert 0 <= x0 and x0 + cw <= 80 and 0 <= y0 and y0 + ch <= 50
        assert 0.08 * 4000 - 80 <= cw * ch <= 4000 and 3 / 4 - 0.05 <= cw / ch <= 4 / 3 + 0.05
    assert len({round(cw / ch, 1) for _, _, cw, ch in boxes}) > 3  # not only squares
    assert _rrc_box(10, 200, np.random.default_rng(0))[2:] == (10, 13)  # fallback: centre crop
    img = Image.fromarray(np.full((30, 50, 3), 128, dtype=np.uint8))
    out = train_transform(img, np.random.default_rng(0), 16, transform="torchvision")
    want = (128 / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out, want.view(3, 1, 1).expand(3, 16, 16))  # no lighting, mean/std
    torch.testing.assert_close(eval_transform(img, 16, "torchvision"), out)
    data = load_dataset("imagenet", folder, "train")
    data.image_size = (24, 24)
    official = FolderLoader(data, data.y, 6, seed=1, image_size=24).batch(0)[0]
    tv = FolderLoader(data, data.y, 6, seed=1, image_size=24, transform="torchvision")
    x, _ = tv.batch(0)
    assert x.shape == official.shape and float(x.min()) < 0  # normalised, unlike the official
    assert torch.equal(x, FolderLoader(data, data.y, 6, seed=1, image_size=24,
                                       transform="torchvision").batch(0)[0])
    with pytest.raises(RlnasError, match="unknown image transform"):
        FolderLoader(data, data.y, 6, transform="timm")


def test_presets_name_their_image_transform():
    from rlnas.config import load_config
    assert load_config("retrain-mobilenet-imagenet")["data"]["transform"] == "torchvision"
    assert load_config("mobilenet-imagenet")["data"]["transform"] == "official"
    with pytest.raises(RlnasError, match="data.transform"):
        load_config("retrain-mobilenet-imagenet", ["data.transform=timm"])
