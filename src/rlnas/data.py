"""Datasets (CIFAR-10/100, ImageNet16-120, a scikit-learn digits demo, and a user's own images
as ``.npz`` arrays or an image folder), NB201 splits, and a device-resident batch loader whose
every batch is a pure function of (seed, step).

Images are kept as uint8 arrays of shape N x H x W x 3 (HWC, RGB) with int64 labels. Every bad
input raises :class:`rlnas.errors.RlnasError` with a one-line message. The pickled CIFAR and
ImageNet16 batches are read by :class:`RestrictedUnpickler`, which builds plain containers,
numbers, strings and NumPy arrays only: a crafted file under ``root=`` cannot run code.
"""
from __future__ import annotations

import json
import math
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .errors import RlnasError
from .schema import Config

PathLike = Union[str, Path]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
IMAGENET16_MEAN = (0.4811, 0.4575, 0.4078)
IMAGENET16_STD = (0.2605, 0.2533, 0.2683)

KNOWN_DATASETS = ("cifar10", "cifar100", "imagenet16-120", "digits", "imagenet", "npz",
                  "folder")
SPLITS = ("train", "test")

DIGITS_TRAIN = 1297
DIGITS_TEST = 500
DIGITS_SEED = 0


# ----------------------------------------------------------------------------------------------
# ImageData
# ----------------------------------------------------------------------------------------------
@dataclass
class ImageData:
    """A labelled image set: ``x`` uint8 N x H x W x 3 (RGB), ``y`` int64 N; ``classes``: the
    class names where the data has them (image folders, an ``.npz`` with a ``classes`` array),
    label k naming ``classes[k]``."""

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    name: str
    source: str
    classes: Optional[List[str]] = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def image_size(self) -> Tuple[int, int]:
        return int(self.x.shape[1]), int(self.x.shape[2])

    def subset(self, indices) -> "ImageData":
        """The images at ``indices`` (in that order), same classes and normalisation."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise RlnasError(f"boolean subset mask has shape {idx.shape}, "
                                 f"expected ({len(self)},)")
            idx = np.flatnonzero(idx)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise RlnasError("subset indices must be a 1-D array of integers")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise RlnasError(
                f"subset index out of range: indices span {idx.min()}..{idx.max()}, "
                f"but {self.name} has {len(self)} images")
        return ImageData(
            x=self.x[idx], y=self.y[idx], num_classes=self.num_classes, mean=self.mean,
            std=self.std, name=self.name,
            source=f"{self.source}; subset of {idx.size:,} of {len(self):,} images",
            classes=self.classes)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


# Everything a CIFAR / ImageNet16 pickled batch (Python 2 or 3, NumPy 1.x or 2.x, any protocol)
# names besides plain dicts, lists, tuples, str, bytes and numbers: NumPy's array, dtype and
# scalar rebuilders and ``_codecs.encode`` (bytes in protocol-2 pickles). A pickle naming
# anything else is not such a file, and unpickling it could run arbitrary code.
NUMPY_PICKLE_GLOBALS = frozenset(
    [(f"numpy.{core}.multiarray", name) for core in ("core", "_core")
     for name in ("_reconstruct", "scalar")]
    + [(f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")]
    + [("numpy", "ndarray"), ("numpy", "dtype")])
_BUILTIN_PICKLE_GLOBALS = frozenset(  # protocols < 4 name these; __builtin__ in Python 2 pickles
    [(module, name) for module in ("builtins", "__builtin__")
     for name in ("dict", "list", "tuple", "set", "frozenset", "bytes", "bytearray", "str",
                  "int", "float", "complex", "bool")]
    + [("_codecs", "encode"), ("codecs", "encode")])
DATA_PICKLE_GLOBALS = NUMPY_PICKLE_GLOBALS | _BUILTIN_PICKLE_GLOBALS


class UnsafePickleError(RlnasError):
    """A pickle references a global outside the allowed set: ``path``, ``name`` (module.name)."""

    def __init__(self, message: str, path, name: str):
        super().__init__(message)
        self.path, self.name = path, name


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain containers, numbers, strings and the globals in
    ``allowed``; any other global raises UnsafePickleError naming the file and the global,
    before anything is called."""

    def __init__(self, file, path, allowed=DATA_PICKLE_GLOBALS,
                 holds: str = "a CIFAR/ImageNet16 batch", **kwargs):
        super().__init__(file, **kwargs)
        self._path, self._allowed, self._holds = path, allowed, holds

    def find_class(self, module, name):
        if (module, name) not in self._allowed:
            raise UnsafePickleError(f"refusing to unpickle {self._path}: it references "
                                    f"{module}.{name}, which {self._holds} never holds",
                                    self._path, f"{module}.{name}")
        return super().find_class(module, name)


def _load_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = RestrictedUnpickler(f, path, encoding="bytes").load()
    except RlnasError:
        raise
    except Exception as exc:  # truncated / not a pickle / unreadable
        raise RlnasError(f"cannot read pickle {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict):
        raise RlnasError(f"{path} does not hold a dict (found {type(obj).__name__})")
    return obj


def _get_key(d: dict, key: str, path: Path):
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise RlnasError(f"{path} has no '{key}' entry (keys: {sorted(str(k) for k in d)})")


def _check_labels(y, n: int, path, lo: int = 0, hi: Optional[int] = None) -> np.ndarray:
    try:
        y = np.asarray(y)
    except Exception:
        raise RlnasError(f"{path}: labels are not an array of integers") from None
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise RlnasError(f"{path}: labels must be a 1-D integer array, got shape {y.shape} "
                         f"dtype {y.dtype}")
    if y.shape[0] != n:
        raise RlnasError(f"{path}: {y.shape[0]} labels for {n} images")
    y = y.astype(np.int64)
    if hi is not None and y.size and (y.min() < lo or y.max() >= hi):
        raise RlnasError(f"{path}: labels span {y.min()}..{y.max()}, expected {lo}..{hi - 1}")
    return y


def _flat_to_hwc(data, path: Path, side: int) -> np.ndarray:
    data = np.asarray(data)
    d = 3 * side * side
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != d:
        raise RlnasError(
            f"{path}: 'data' must be uint8 N x {d} (3 x {side} x {side}, CHW), "
            f"got dtype {data.dtype} shape {data.shape}")
    return np.ascontiguousarray(data.reshape(-1, 3, side, side).transpose(0, 2, 3, 1))


def _read_npz(path: Path):
    """(x, y, classes or None) of an .npz file holding ``x`` (uint8 N x H x W x 3, HWC RGB),
    integer labels ``y`` and optionally ``classes`` (the class names, label k naming
    ``classes[k]``); read without unpickling."""
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if "x" not in keys or "y" not in keys:
                raise RlnasError(f"{path} must hold arrays 'x' and 'y' (found: {sorted(keys)})")
            x, y = z["x"], z["y"]
            classes = z["classes"] if "classes" in keys else None
    except RlnasError:
        raise
    except Exception as exc:
        raise RlnasError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] != 3:
        raise RlnasError(f"{path}: 'x' must be uint8 N x H x W x 3 (HWC RGB), got dtype "
                         f"{x.dtype} shape {x.shape}")
    if classes is not None:
        if classes.ndim != 1 or classes.dtype.kind not in "US" or classes.size < 1:
            raise RlnasError(f"{path}: 'classes' must be a 1-D array of class names, got dtype "
                             f"{classes.dtype} shape {classes.shape}")
        classes = [str(c) for c in classes.astype(str)]
    y = _check_labels(y, x.shape[0], path, 0, None if classes is None else len(classes))
    if y.size and y.min() < 0:
        raise RlnasError(f"{path}: labels must be >= 0, found {y.min()}")
    return x, y, classes


def _load_npz(path: Path, side: int, num_classes: int) -> Tuple[np.ndarray, np.ndarray]:
    x, y, _ = _read_npz(path)
    if x.shape[1:] != (side, side, 3):
        raise RlnasError(
            f"{path}: 'x' must be uint8 N x {side} x {side} x 3 (HWC RGB), "
            f"got dtype {x.dtype} shape {x.shape}")
    y = _check_labels(y, x.shape[0], path, 0, num_classes)
    return x, y


def channel_stats(x: np.ndarray) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Per-channel mean and std of uint8 images N x H x W x 3 on the 0-1 scale (float64, in
    chunks): the normalisation of a user's own data, computed on its training images."""
    n = max(1, x.shape[0] * x.shape[1] * x.shape[2])
    total, squares = np.zeros(3), np.zeros(3)
    for part in np.array_split(x, max(1, x.shape[0] // 4096)):
        f = part.reshape(-1, 3).astype(np.float64) / 255.0
        total += f.sum(0)
        squares += (f * f).sum(0)
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean * mean, 0.0))
    std = np.where(std > 1e-6, std, 1.0)  # a constant channel: leave it unscaled
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


# ----------------------------------------------------------------------------------------------
# CIFAR
# ----------------------------------------------------------------------------------------------
_CIFAR = {
    "cifar10": dict(folder="cifar-10-batches-py", train=[f"data_batch_{i}" for i in range(1, 6)],
                    test=["test_batch"], label_key="labels", k=10, title="CIFAR-10",
                    mean=CIFAR10_MEAN, std=CIFAR10_STD),
    "cifar100": dict(folder="cifar-100-python", train=["train"], test=["test"],
                     label_key="fine_labels", k=100, title="CIFAR-100",
                     mean=CIFAR100_MEAN, std=CIFAR100_STD),
}


def _load_cifar(name: str, root: Path, split: str) -> ImageData:
    spec = _CIFAR[name]
    k = spec["k"]
    files: List[Path]

    def finish(x, y, source):
        return ImageData(x=x, y=y, num_classes=k, mean=spec["mean"], std=spec["std"],
                         name=name, source=source)

    if root.is_file():
        if root.suffix != ".npz":
            raise RlnasError(f"{root} is a file but not an .npz; give the {spec['title']} folder "
                             f"'{spec['folder']}' or an .npz holding x and y")
        x, y = _load_npz(root, 32, k)
        return finish(x, y, f"{spec['title']} {split} from {root}")

    # the official pickled layout: root itself or root/<folder>
    pickle_names = spec[split]
    all_names = spec["train"] + spec["test"]
    for folder in (root, root / spec["folder"]):
        present = [n for n in all_names if (folder / n).is_file()]
        if present:
            missing = [n for n in pickle_names if not (folder / n).is_file()]
            if missing:
                raise RlnasError(f"{folder} looks like the {spec['title']} folder but lacks "
                                 f"{', '.join(missing)} (needed for split '{split}')")
            xs, ys = [], []
            for n in pickle_names:
                p = folder / n
                d = _load_pickle(p)
                x = _flat_to_hwc(_get_key(d, "data", p), p, 32)
                xs.append(x)
                ys.append(_check_labels(_get_key(d, spec["label_key"], p), x.shape[0], p, 0, k))
            return finish(np.concatenate(xs), np.concatenate(ys),
                          f"{spec['title']} {split}: {', '.join(pickle_names)} in {folder}")

    # .npz layout
    files = sorted(root.glob(f"{split}*.npz"), key=_natural_key)
    if files:
        if split == "test" and len(files) > 1:
            raise RlnasError(
                f"{root} holds {len(files)} test files ({', '.join(f.name for f in files)}); "
                f"choose one with data.test_root={files[0]} (keep data.root the training folder)")
        xs, ys = [], []
        for p in files:
            x, y = _load_npz(p, 32, k)
            xs.append(x)
            ys.append(y)
        return finish(np.concatenate(xs), np.concatenate(ys),
                      f"{spec['title']} {split}: {', '.join(f.name for f in files)} in {root}")

    raise RlnasError(
        f"no {spec['title']} data found in {root}: expected the folder '{spec['folder']}' "
        f"(files {', '.join(pickle_names)}) or {split}*.npz files holding x "
        f"(uint8 N x 32 x 32 x 3) and y")


# ----------------------------------------------------------------------------------------------
# ImageNet16-120
# ----------------------------------------------------------------------------------------------
_IN16_TRAIN = [f"train_data_batch_{i}" for i in range(1, 11)]
_IN16_TEST = ["val_data"]


def _load_imagenet16(root: Path, split: str) -> ImageData:
    names = _IN16_TRAIN if split == "train" else _IN16_TEST
    folder = None
    for cand in (root, root / "ImageNet16"):
        if cand.is_dir() and any((cand / n).is_file() for n in _IN16_TRAIN + _IN16_TEST):
            folder = cand
            break
    if folder is None:
        raise RlnasError(
            f"no ImageNet16 data found in {root}: expected {root} or {root / 'ImageNet16'} to hold "
            f"train_data_batch_1 .. train_data_batch_10 and val_data (NB201's ImageNet16 pickles)")
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise RlnasError(f"{folder} lacks {', '.join(missing)} (needed for split '{split}')")
    xs, ys = [], []
    for n in names:
        p = folder / n
        d = _load_pickle(p)
        x = _flat_to_hwc(_get_key(d, "data", p), p, 16)
        y = _check_labels(_get_key(d, "labels", p), x.shape[0], p)
        if y.size and y.min() < 1:
            raise RlnasError(f"{p}: labels must be 1-based ImageNet class ids, found {y.min()}")
        keep = y <= 120
        xs.append(x[keep])
        ys.append(y[keep] - 1)
    return ImageData(
        x=np.concatenate(xs), y=np.concatenate(ys), num_classes=120, mean=IMAGENET16_MEAN,
        std=IMAGENET16_STD, name="imagenet16-120",
        source=f"ImageNet16-120 {split}: "
               f"{', '.join(names) if len(names) < 3 else names[0] + ' .. ' + names[-1]} "
               f"in {folder}, classes 1..120 kept")


# ----------------------------------------------------------------------------------------------
# digits demo
# ----------------------------------------------------------------------------------------------
def _digits_split(y: np.ndarray, n_test: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """A seeded class-stratified split: per-class test counts by largest remainder."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * n_test / len(y)
    take = np.floor(quota).astype(np.int64)
    rest = n_test - int(take.sum())
    order = np.argsort(-(quota - take), kind="stable")
    take[order[:rest]] += 1
    train, test = [], []
    for c, t in zip(classes, take):
        idx = rng.permutation(np.flatnonzero(y == c))
        test.append(idx[:t])
        train.append(idx[t:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _load_digits(split: str) -> ImageData:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise RlnasError("the demo dataset needs scikit-learn: pip install 'rlnas[demo]'") from None
    d = load_digits()
    imgs = np.asarray(d.images, dtype=np.float64)  # 1797 x 8 x 8, values 0..16
    y = np.asarray(d.target, dtype=np.int64)
    u8 = np.clip(np.round(imgs * 255.0 / 16.0), 0, 255)
    t = torch.from_numpy(u8.astype(np.float32))[:, None]
    up = torch.nn.functional.interpolate(t, size=(16, 16), mode="bilinear", align_corners=False)
    up = up[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()
    x_all = np.repeat(up[..., None], 3, axis=3)
    tr, te = _digits_split(y, DIGITS_TEST, DIGITS_SEED)
    xtr = x_all[tr]
    m = float(xtr.astype(np.float64).mean() / 255.0)
    s = float((xtr.astype(np.float64) / 255.0).std())
    idx = tr if split == "train" else te
    return ImageData(
        x=np.ascontiguousarray(x_all[idx]), y=y[idx], num_classes=10, mean=(m, m, m), std=(s, s, s),
        name="digits",
        source=(f"scikit-learn load_digits (8x8 upsampled bilinearly to 16x16, 3 channels), "
                f"{split} part of a seeded (seed {DIGITS_SEED}) stratified "
                f"{len(tr)}/{len(te)} split"))


# ----------------------------------------------------------------------------------------------
# a user's own images: .npz arrays or an image folder, any size, any number of classes
# ----------------------------------------------------------------------------------------------
def _labelled_by(classes: Optional[List[str]], y: np.ndarray, where) -> int:
    """The number of classes: the names' count where the data has names, else max label + 1."""
    if classes is not None:
        return len(classes)
    if y.size == 0:
        raise RlnasError(f"{where} holds no images")
    return int(y.max()) + 1


def _load_user_npz(root: Path, split: str) -> ImageData:
    """``data.dataset=npz``: one .npz file (``root`` itself) or the ``<split>*.npz`` files of
    the folder ``root``; images of any one size, the classes from the labels (or ``classes``)."""
    if root.is_file():
        files = [root]
    else:
        files = sorted(root.glob(f"{split}*.npz"), key=_natural_key)
        if not files:
            raise RlnasError(f"no {split}*.npz files in {root}: give a folder of {split}*.npz "
                             f"files or one .npz file holding x (uint8 N x H x W x 3) and y")
        if split == "test" and len(files) > 1:
            raise RlnasError(f"{root} holds {len(files)} test files "
                             f"({', '.join(f.name for f in files)}); choose one with "
                             f"data.test_root={files[0]}")
    xs, ys, classes = [], [], None
    for p in files:
        x, y, names = _read_npz(p)
        if xs and x.shape[1:] != xs[0].shape[1:]:
            raise RlnasError(f"{p} holds {x.shape[1]} x {x.shape[2]} images but {files[0]} "
                             f"holds {xs[0].shape[1]} x {xs[0].shape[2]}; one size per dataset")
        if xs and names != classes:
            raise RlnasError(f"{p} and {files[0]} name different classes")
        xs.append(x)
        ys.append(y)
        classes = names
    x, y = np.concatenate(xs), np.concatenate(ys)
    k = _labelled_by(classes, y, root)
    mean, std = channel_stats(x)
    return ImageData(x=x, y=y, num_classes=k, mean=mean, std=std, name="npz", classes=classes,
                     source=f"{len(x):,} {x.shape[1]} x {x.shape[2]} images, {k} classes, "
                            f"{split}: {', '.join(f.name for f in files)} in "
                            f"{files[0].parent}")


def _load_user_folder(root: Path, split: str) -> ImageData:
    """``data.dataset=folder``: an image folder (``root/train/<class>/*``, ``root/val/<class>/*``
    or ``root/test/<class>/*``, as ``imagenet``) decoded once into memory, like CIFAR; every
    image of one size (which sets the input size), one class per sub-folder."""
    from PIL import Image, UnidentifiedImageError

    from .imagenet import load_image_folder
    listed = load_image_folder(root, split)
    images, first = [], None
    for path in listed.paths:
        try:
            with Image.open(path) as img:
                a = np.asarray(img.convert("RGB"), dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as err:
            raise RlnasError(f"cannot read the image {path}: {err}") from None
        if first is None:
            first = (path, a.shape)
        elif a.shape != first[1]:
            raise RlnasError(
                f"{path} is {a.shape[1]} x {a.shape[0]} px but {first[0]} is {first[1][1]} x "
                f"{first[1][0]}: data.dataset=folder holds images of one size (resize them, or "
                f"use data.dataset=imagenet, which crops every image to data.resolution)")
        images.append(a)
    x = np.stack(images)
    mean, std = channel_stats(x)
    return ImageData(x=x, y=listed.y, num_classes=listed.num_classes, mean=mean, std=std,
                     name="folder", classes=listed.classes,
                     source=f"{len(x):,} {x.shape[1]} x {x.shape[2]} images, "
                            f"{listed.num_classes} classes, {listed.source}")


def align_test_split(train, test):
    """``test`` made comparable with the ``train`` split it evaluates networks of: labelled by
    the training split's classes (by name, where both have names: a test folder that lacks a
    class would otherwise shift every label after it) and normalised with the training
    statistics. Refuses a test class the training data does not have.

    Args:
        train, test: ``ImageData`` or ``imagenet.FolderData``.

    Returns:
        ``test``, relabelled in place where needed."""
    names, known = getattr(test, "classes", None), getattr(train, "classes", None)
    if names is not None and known is not None and list(names) != list(known):
        index = {c: i for i, c in enumerate(known)}
        unknown = [c for c in names if c not in index]
        if unknown:
            raise RlnasError(f"the test images hold classes the training images do not: "
                             f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''} "
                             f"({test.source})")
        test.y = np.array([index[c] for c in names], dtype=np.int64)[test.y]
        test.classes = list(known)
    if len(test.y) and int(test.y.max()) >= train.num_classes:
        raise RlnasError(f"the test labels reach {int(test.y.max())}, but the training images "
                         f"have {train.num_classes} classes ({test.source})")
    test.num_classes = train.num_classes
    test.mean, test.std = train.mean, train.std
    return test


# ----------------------------------------------------------------------------------------------
# public loader
# ----------------------------------------------------------------------------------------------
def load_dataset(name: str, root: Optional[PathLike] = None, split: str = "train") -> ImageData:
    """Load ``name`` (cifar10, cifar100, imagenet16-120, digits, imagenet, npz, folder) split
    ``train`` or ``test``; imagenet returns a ``FolderData`` (files decoded on the fly). ``npz``
    and ``folder`` are a user's own images, of any size and any number of classes (both taken
    from the data); their mean/std are their own (callers normalise a test split with the
    training split's: :func:`align_test_split`)."""
    if name == "imagenet":
        from .imagenet import load_image_folder
        if root is None:
            raise RlnasError("imagenet needs data.root: a folder with train/<class>/ and "
                             "val/<class>/")
        return load_image_folder(root, split)
    key = str(name).strip().lower()
    if key not in KNOWN_DATASETS:
        raise RlnasError(f"unknown dataset '{name}'; known: {', '.join(KNOWN_DATASETS)}")
    if split not in SPLITS:
        raise RlnasError(f"unknown split '{split}'; use 'train' or 'test'")
    if key == "digits":
        return _load_digits(split)
    if root is None:
        raise RlnasError(f"dataset '{key}' needs a data root (the folder holding its files)")
    root = Path(root).expanduser()
    if not root.exists():
        where = {"cifar10": "the 'cifar-10-batches-py' folder or train_*.npz/test*.npz files",
                 "cifar100": "the 'cifar-100-python' folder or train*.npz/test*.npz files",
                 "imagenet16-120": "NB201's ImageNet16 pickles (train_data_batch_1..10, val_data)",
                 "npz": "an .npz file (x uint8 N x H x W x 3, y) or train*.npz/test*.npz files",
                 "folder": "train/<class>/<image> and val/<class>/<image> folders"}[key]
        raise RlnasError(f"data root {root} does not exist; put {where} there")
    if key in _CIFAR:
        return _load_cifar(key, root, split)
    if key == "npz":
        return _load_user_npz(root, split)
    if key == "folder":
        return _load_user_folder(root, split)
    if root.is_file():
        raise RlnasError(f"{root} is a file; for imagenet16-120 give the folder holding "
                         f"train_data_batch_1..10 and val_data")
    return _load_imagenet16(root, split)


# ----------------------------------------------------------------------------------------------
# NB201 splits
# ----------------------------------------------------------------------------------------------
def load_nb201_split(path: PathLike) -> Dict[str, np.ndarray]:
    """Parse an NB201 split file (``{"key": ["int", ["0", "5", ...]], ...}``) to int64 arrays."""
    path = Path(path)
    if not path.is_file():
        raise RlnasError(f"NB201 split file {path} not found")
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RlnasError(f"malformed NB201 split file {path}: {exc}") from None
    if not isinstance(obj, dict) or not obj:
        raise RlnasError(f"malformed NB201 split file {path}: expected a JSON object of index "
                         f"lists")
    out: Dict[str, np.ndarray] = {}
    for key, val in obj.items():
        values = val
        if (isinstance(val, list) and len(val) == 2 and isinstance(val[0], str)
                and isinstance(val[1], list)):
            if val[0] != "int":
                raise RlnasError(f"malformed NB201 split file {path}: '{key}' has type "
                                 f"'{val[0]}', expected 'int'")
            values = val[1]
        if not isinstance(values, list):
            raise RlnasError(f"malformed NB201 split file {path}: '{key}' is not an index list")
        try:
            arr = np.array([int(v) for v in values], dtype=np.int64)
        except (TypeError, ValueError):
            raise RlnasError(f"malformed NB201 split file {path}: '{key}' holds a "
                             f"non-integer") from None
        if arr.size and arr.min() < 0:
            raise RlnasError(f"malformed NB201 split file {path}: '{key}' holds a negative index")
        out[str(key)] = arr
    return out


def nb201_split_list(split_file: PathLike, key: str, n: int) -> np.ndarray:
    """The ``key`` list ('train' or 'valid') of an NB201 split file, for a dataset of ``n``
    images: present, not empty, every index in range and none repeated."""
    split = load_nb201_split(split_file)
    if key not in split:
        raise RlnasError(f"NB201 split file {split_file} has no '{key}' list "
                         f"(keys: {sorted(split)})")
    idx = split[key]
    if idx.size == 0:
        raise RlnasError(f"NB201 split file {split_file}: the '{key}' list is empty")
    if idx.max() >= n:
        raise RlnasError(f"NB201 split file {split_file} indexes up to {idx.max()}, "
                         f"but the dataset has only {n} images")
    if np.unique(idx).size != idx.size:
        raise RlnasError(f"NB201 split file {split_file}: the '{key}' list repeats indices")
    return idx


def nb201_train_half(data: ImageData, split_file: Optional[PathLike] = None,
                     seed: int = 0) -> Tuple[np.ndarray, str]:
    """Indices of the NB201 ``cifar10-valid`` train half (from ``split_file``) or a seeded
    class-balanced half; plus a one-sentence description of which was used."""
    if split_file is not None:
        idx = nb201_split_list(split_file, "train", len(data))
        return idx, f"NB201 train half ({idx.size:,} images) from {Path(split_file).name}"
    rng = np.random.default_rng(seed)
    parts = []
    for c in range(data.num_classes):
        members = np.flatnonzero(data.y == c)
        if members.size:
            parts.append(rng.permutation(members)[: members.size // 2])
    idx = np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    return idx.astype(np.int64), (f"seeded class-balanced half ({idx.size:,} images, seed {seed}), "
                                  f"no split file given")


def prepare_training_data(cfg: Dict[str, Any]) -> Tuple[ImageData, str]:
    """Training images per a config (the NB201 half where asked, then the subset), described."""
    d, seed = Config.of(cfg).data, Config.of(cfg).seed
    data = load_dataset(d.dataset, d.root, split="train")
    notes = [f"{data.name}: {data.source}"]
    if d.nb201_half:
        idx, desc = nb201_train_half(data, d.split_file, seed=seed)
        data = data.subset(idx)
        notes.append(desc)
    if d.subset:
        if d.subset > len(data.y):
            raise RlnasError(f"data.subset={d.subset} exceeds the {len(data.y)} training images")
        data = data.subset(np.arange(d.subset))
        notes.append(f"first {d.subset} images kept (data.subset)")
    return data, "; ".join(notes)


# ----------------------------------------------------------------------------------------------
# DeviceLoader
# ----------------------------------------------------------------------------------------------
_MASK64 = (1 << 64) - 1


def _mix_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (splitmix64 steps), so streams never collide."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) & _MASK64)) & _MASK64
        h = (h + 0x9E3779B97F4A7C15) & _MASK64
        z = h
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        h = z ^ (z >> 31)
    return h & ((1 << 63) - 1)


_PERM_TAG = 1
_AUG_TAG = 2
_CUTOUT_TAG = 3


class DeviceLoader:
    """The whole uint8 dataset as one tensor on ``device``; batches are built there.

    ``batch(step)`` is a pure function of (seed, step): the epoch permutation depends only on
    (seed, epoch), the crop offsets and flips of a step only on (seed, step). Augmentation is
    torchvision's RandomCrop(size, padding=pad) (zero padding) + RandomHorizontalFlip(0.5),
    then ``(x/255 - mean)/std``.
    """

    def __init__(self, x_uint8_nhwc: np.ndarray, labels: np.ndarray, batch_size: int,
                 mean: Sequence[float], std: Sequence[float], device="cpu", pad: int = 4,
                 flip: bool = True, augment: bool = True, seed: int = 0,
                 channels_last: bool = False, cutout: int = 0,
                 resolution: Optional[int] = None):
        x = x_uint8_nhwc if torch.is_tensor(x_uint8_nhwc) else np.asarray(x_uint8_nhwc)
        is_u8 = x.dtype == torch.uint8 if torch.is_tensor(x) else x.dtype == np.uint8
        if len(x.shape) != 4 or int(x.shape[3]) != 3 or not is_u8:
            raise RlnasError(f"DeviceLoader needs uint8 images N x H x W x 3, got "
                             f"{tuple(x.shape)} {x.dtype}")
        n = int(x.shape[0])
        if n == 0:
            raise RlnasError("DeviceLoader got an empty dataset")
        y = labels.detach().cpu().numpy() if torch.is_tensor(labels) else np.asarray(labels)
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
            raise RlnasError(f"DeviceLoader needs {n} integer labels, got shape {y.shape} "
                             f"dtype {y.dtype}")
        if int(batch_size) < 1:
            raise RlnasError(f"batch size must be >= 1, got {batch_size}")
        if len(mean) != 3 or len(std) != 3 or min(float(s) for s in std) <= 0:
            raise RlnasError(f"mean and std need 3 values each (std > 0), got {mean} / {std}")
        if int(pad) < 0:
            raise RlnasError(f"pad must be >= 0, got {pad}")
        self.device = torch.device(device)
        self.num_samples = n
        self.batch_size = int(batch_size)
        self.steps_per_epoch = math.ceil(n / self.batch_size)
        self.pad = int(pad)
        self.flip = bool(flip)
        self.augment = bool(augment)
        self.seed = int(seed)
        self.channels_last = bool(channels_last)
        self.cutout = int(cutout)
        if self.cutout < 0:
            raise RlnasError(f"cutout must be >= 0, got {cutout}")
        xt = x if torch.is_tensor(x) else torch.from_numpy(np.ascontiguousarray(x))
        self.x = xt.to(self.device).contiguous()
        if resolution is not None:
            self.x = resize_uint8(self.x, int(resolution))
        self.height, self.width = int(self.x.shape[1]), int(self.x.shape[2])
        self.labels = torch.from_numpy(y.astype(np.int64)).to(self.device)
        self.mean = torch.tensor([float(m) for m in mean], dtype=torch.float32,
                                 device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor([float(s) for s in std], dtype=torch.float32,
                                device=self.device).view(1, 3, 1, 1)
        self._ar_h = torch.arange(self.height, device=self.device)
        self._ar_w = torch.arange(self.width, device=self.device)
        self._perm_epoch: Optional[int] = None
        self._perm: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return self.steps_per_epoch

    # --- randomness ---------------------------------------------------------------------
    def permutation(self, epoch: int) -> torch.Tensor:
        """The sample order of ``epoch`` (on the device); cached for the current epoch."""
        epoch = int(epoch)
        if self._perm_epoch != epoch:
            g = torch.Generator().manual_seed(_mix_seed(self.seed, _PERM_TAG, epoch))
            self._perm = torch.randperm(self.num_samples, generator=g).to(self.device)
            self._perm_epoch = epoch
        return self._perm

    def _step_generator(self, step: int) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(_mix_seed(self.seed, _AUG_TAG, step))
        return g

    # --- batches ------------------------------------------------------------------------
    def _normalise(self, x_nhwc_u8: torch.Tensor) -> torch.Tensor:
        x = x_nhwc_u8.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
        x = (x - self.mean) / self.std
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=fmt)

    def _augment(self, xb: torch.Tensor, step: int, part: slice) -> torch.Tensor:
        """Crop/flip ``xb``, the images at positions ``part`` of the step's global batch. The
        draws are made for the whole global batch, so an image is augmented the same way
        whichever process (or micro-batch) handles it."""
        full = self._global_size(step)
        b, w = xb.shape[0], self.width
        g = self._step_generator(step)
        p = self.pad
        oy = torch.randint(0, 2 * p + 1, (full,), generator=g, device=self.device)[part]
        ox = torch.randint(0, 2 * p + 1, (full,), generator=g, device=self.device)[part]
        if self.flip:
            flips = (torch.rand(full, generator=g, device=self.device) < 0.5)[part]
        else:
            flips = torch.zeros(b, dtype=torch.bool, device=self.device)
        if p > 0:
            xb = torch.nn.functional.pad(xb, (0, 0, p, p, p, p))  # zero pad H and W (uint8)
        rows = oy[:, None] + self._ar_h[None, :]                                  # B x H
        cols_fwd = self._ar_w[None, :].expand(b, w)
        cols = torch.where(flips[:, None], (w - 1) - cols_fwd, cols_fwd) + ox[:, None]  # B x W
        bi = torch.arange(b, device=self.device)[:, None, None]
        return xb[bi, rows[:, :, None], cols[:, None, :]]                          # B x H x W x 3

    def _global_size(self, step: int) -> int:
        pos = step % self.steps_per_epoch
        return min(self.batch_size, self.num_samples - pos * self.batch_size)

    def part_slice(self, step: int, part: int = 0, parts: int = 1) -> slice:
        """Positions of part ``part`` of ``parts`` near-equal contiguous parts of the step's
        global batch (DDP ranks, gradient-accumulation micro-batches)."""
        full = self._global_size(int(step))
        lo = part * full // parts
        return slice(lo, (part + 1) * full // parts)

    def batch(self, step: int, part: int = 0, parts: int = 1) -> Tuple[torch.Tensor, torch.Tensor]:
        """(images float32 N x 3 x H x W normalised, labels int64) of global step ``step``, or
        of part ``part`` of ``parts`` of it (each image of the epoch is in exactly one part)."""
        step = int(step)
        if step < 0:
            raise RlnasError(f"step must be >= 0, got {step}")
        epoch, pos = divmod(step, self.steps_per_epoch)
        idx = self.permutation(epoch)[pos * self.batch_size:(pos + 1) * self.batch_size]
        sl = self.part_slice(step, part, parts)
        idx = idx[sl]
        xb = self.x[idx]
        if self.augment:
            xb = self._augment(xb, step, sl)
        x = self._normalise(xb)
        if self.augment and self.cutout:
            x = self._cutout(x, step, sl)
        return x, self.labels[idx]

    def _cutout(self, x: torch.Tensor, step: int, part: slice) -> torch.Tensor:
        """DARTS cutout: zero one ``cutout`` x ``cutout`` square per image (centre uniform over
        the image, square clipped at the border), after normalisation."""
        full = self._global_size(step)
        g = torch.Generator(device=self.device)
        g.manual_seed(_mix_seed(self.seed, _CUTOUT_TAG, step))
        cy = torch.randint(0, self.height, (full,), generator=g, device=self.device)[part]
        cx = torch.randint(0, self.width, (full,), generator=g, device=self.device)[part]
        half = self.cutout // 2
        rows = self._ar_h[None, :]
        cols = self._ar_w[None, :]
        in_y = (rows >= (cy[:, None] - half)) & (rows < (cy[:, None] - half + self.cutout))
        in_x = (cols >= (cx[:, None] - half)) & (cols < (cx[:, None] - half + self.cutout))
        keep = ~(in_y[:, :, None] & in_x[:, None, :])  # B x H x W
        return x * keep[:, None].to(x.dtype)

    def epoch_batches(self, epoch: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        start = int(epoch) * self.steps_per_epoch
        for step in range(start, start + self.steps_per_epoch):
            yield self.batch(step)

    def images(self, indices) -> torch.Tensor:
        """Normalised, un-augmented images at ``indices`` (for evaluation)."""
        if torch.is_tensor(indices):
            idx = indices.to(device=self.device, dtype=torch.int64)
        else:
            idx = torch.as_tensor(np.asarray(indices, dtype=np.int64), device=self.device)
        return self._normalise(self.x[idx])


def resize_uint8(x_nhwc: torch.Tensor, size: int) -> torch.Tensor:
    """Square uint8 images N x H x W x 3 resized to ``size`` (area averaging when shrinking,
    bilinear when growing), on their own device, once: a cheaper supernet input."""
    if size < 4:
        raise RlnasError(f"data.resolution must be >= 4 pixels, got {size}")
    if tuple(x_nhwc.shape[1:3]) == (size, size):
        return x_nhwc
    x = x_nhwc.permute(0, 3, 1, 2).float()
    mode = "area" if size <= min(x.shape[2:]) else "bilinear"
    out = torch.cat([torch.nn.functional.interpolate(
        c, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))
        for c in x.split(4096)])  # chunks bound the float copy's memory
    return out.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def crop_padding(size: int) -> int:
    """Random-crop padding scaled with the image: 4 at 32 px (CIFAR), 2 at 16, 1 at 8."""
    return max(1, round(size / 8))


def make_loader(data, labels, batch_size: int, device="cpu", seed: int = 0, augment: bool = True,
                channels_last: bool = False, cutout: int = 0, eval_mode: bool = False,
                resolution: Optional[int] = None, transform: Optional[str] = None):
    """The batch source for ``data``: ``DeviceLoader`` for in-memory images (CIFAR-size; crop
    padding 4 at 32 px, 2 at 16 px), ``FolderLoader`` for image folders (ImageNet).
    ``resolution`` resizes the images once (in-memory data) or sets the crop size (folders);
    ``transform`` picks the image-folder augmentation (``imagenet.TRANSFORMS``)."""
    from .imagenet import FolderData, FolderLoader
    if isinstance(data, FolderData):
        return FolderLoader(data, labels, batch_size, device=device, seed=seed,
                            augment=augment and not eval_mode,
                            image_size=resolution or data.image_size[0],
                            channels_last=channels_last, transform=transform or "official")
    if transform not in (None, "official"):
        raise RlnasError(f"data.transform={transform} applies to image folders decoded on the "
                         f"fly (data.dataset=imagenet); {data.name} images use the CIFAR-style "
                         f"crop and flip")
    size = resolution or int(data.x.shape[1])
    return DeviceLoader(data.x, labels, batch_size, data.mean, data.std, device=device,
                        pad=crop_padding(size), augment=augment and not eval_mode,
                        seed=seed, channels_last=channels_last, cutout=cutout,
                        resolution=resolution)
