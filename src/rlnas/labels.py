"""Random labels (the RLNAS recipe) and their storage.

RLNAS draws one label per image, once, uniformly over the K classes, with
``np.random.RandomState(seed).randint(0, K, n)``; the labels stay fixed for the whole run.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Tuple, Union

import numpy as np

from .errors import RlnasError
from .files import atomic_write

PathLike = Union[str, Path]
LABEL_KINDS = ("random", "true")


def random_labels(n: int, num_classes: int, seed: int) -> np.ndarray:
    """``n`` labels drawn uniformly from 0..num_classes-1:
    ``RandomState(seed).randint(0, K, n)``."""
    if int(n) != n or int(n) < 1:
        raise RlnasError(f"random labels need n >= 1 images, got {n}")
    if int(num_classes) != num_classes or int(num_classes) < 2:
        raise RlnasError(f"random labels need at least 2 classes, got {num_classes}")
    rs = np.random.RandomState(int(seed))
    return rs.randint(0, int(num_classes), int(n)).astype(np.int64)


def make_labels(kind: str, true_labels, num_classes: int, seed: int) -> Tuple[np.ndarray, str]:
    """Training labels of ``kind`` ('random' or 'true') and a one-sentence description."""
    if kind not in LABEL_KINDS:
        raise RlnasError(f"unknown label kind '{kind}'; use one of: {', '.join(LABEL_KINDS)}")
    y = np.asarray(true_labels)
    if y.ndim != 1 or y.size == 0 or not np.issubdtype(y.dtype, np.integer):
        raise RlnasError(f"true labels must be a non-empty 1-D integer array, got shape {y.shape} "
                         f"dtype {y.dtype}")
    if kind == "random":
        labels = random_labels(y.size, num_classes, seed)
        return labels, (f"random labels: one per image, drawn once uniformly over {num_classes} "
                        f"classes with np.random.RandomState({int(seed)}).randint")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= num_classes:
        raise RlnasError(f"true labels span {y.min()}..{y.max()}, outside 0..{num_classes - 1}")
    return y.copy(), f"true dataset labels ({num_classes} classes)"


def save_labels(path: PathLike, labels: np.ndarray, meta: dict) -> None:
    """Write ``labels`` and ``meta`` (JSON) to an .npz, atomically (temp file + os.replace)."""
    path = Path(path)
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise RlnasError(f"labels must be a 1-D integer array, got shape {labels.shape} "
                         f"dtype {labels.dtype}")
    try:
        meta_json = json.dumps(meta if meta is not None else {}, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise RlnasError(f"label metadata is not JSON-serialisable: {exc}") from None
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp):
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
            np.savez(f, labels=labels.astype(np.int64), meta=np.array(meta_json))
    atomic_write(path, write)


def load_labels(path: PathLike) -> Tuple[np.ndarray, dict]:
    """Read labels and metadata written by :func:`save_labels`."""
    path = Path(path)
    if not path.is_file():
        raise RlnasError(f"labels file {path} not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "labels" not in z.files or "meta" not in z.files:
                raise RlnasError(f"labels file {path} lacks 'labels' or 'meta' "
                                 f"(found {sorted(z.files)})")
            labels = z["labels"]
            meta = json.loads(str(z["meta"][()]))
    except RlnasError:
        raise
    except Exception as exc:  # truncated zip, bad JSON, pickled object arrays, ...
        raise RlnasError(f"labels file {path} is corrupt or unreadable: "
                         f"{type(exc).__name__}: {exc}") from None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise RlnasError(f"labels file {path}: 'labels' must be a 1-D integer array")
    if not isinstance(meta, dict):
        raise RlnasError(f"labels file {path}: metadata is not a JSON object")
    return labels.astype(np.int64), meta
