"""ImageNet-style image folders (``root/train/<class>/*.JPEG``, ``root/val/<class>/*.JPEG``).

Images are decoded on the fly (Pillow, a thread pool), not held on the device. The loader has
the same interface as ``DeviceLoader``: ``batch(step, part, parts)`` is a pure function of
(seed, step), so resume and torchrun work the same way. Labels are ALWAYS the array given to the
loader (random or true): the folder's own class index is never used for training, unlike the
official ``ImageNetWithRandomLabels`` wrapper whose random labels torchvision never read
(spec section 9, item 1).

Training augmentation (spec 2, the official supernet and DARTS retraining pipeline): a square
random-resized crop (area 8-100 % of the image, aspect ratio 1, zero padding where the square
does not fit), resized to ``image_size`` (bilinear), AlexNet PCA lighting (std 0.1) and a
horizontal flip, then ToTensor with NO mean/std normalisation. Evaluation: resize the short side
to 256/224 x ``image_size``, centre crop.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
import torch

from .errors import RlnasError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# AlexNet PCA lighting (eigenvalues / eigenvectors of ImageNet RGB covariance, 0-1 scale)
_EIGVAL = np.array([0.2175, 0.0188, 0.0045])
_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140],
                    [-0.5836, -0.6948, 0.4203]])


@dataclass
class FolderData:
    """Image files and their folder labels; ``x`` is not loaded."""

    paths: List[str]
    y: np.ndarray
    num_classes: int
    classes: List[str]
    name: str = "imagenet"
    source: str = ""
    mean: Tuple[float, float, float] = (0.0, 0.0, 0.0)  # no normalisation (ToTensor only)
    std: Tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __len__(self):
        return len(self.paths)

    def subset(self, indices) -> "FolderData":
        idx = np.asarray(indices)
        return FolderData([self.paths[i] for i in idx], self.y[idx], self.num_classes,
                          self.classes, self.name, self.source + f"; subset of {len(idx)}",
                          self.mean, self.std, self.image_size)

    image_size: Tuple[int, int] = (224, 224)  # what the loader produces


def load_image_folder(root, split: str = "train") -> FolderData:
    root = Path(root)
    sub = {"train": ["train"], "test": ["val", "validation", "test"]}.get(split)
    if sub is None:
        raise RlnasError(f"unknown split {split!r} (train or test)")
    if not root.is_dir():
        raise RlnasError(f"ImageNet root {root} does not exist; expected {root}/train/<class>/*.JPEG "
                         f"and {root}/val/<class>/*.JPEG")
    folder = next((root / s for s in sub if (root / s).is_dir()), None)
    if folder is None:
        raise RlnasError(f"{root} has no {' or '.join(sub)} folder (ImageFolder layout: "
                         f"{root}/{sub[0]}/<class>/<image>)")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    if not classes:
        raise RlnasError(f"{folder} has no class folders")
    paths, labels = [], []
    for k, c in enumerate(classes):
        files = sorted(p for p in (folder / c).iterdir() if p.suffix.lower() in EXTENSIONS)
        paths += [str(p) for p in files]
        labels += [k] * len(files)
    if not paths:
        raise RlnasError(f"{folder} holds no images ({', '.join(EXTENSIONS)})")
    return FolderData(paths, np.asarray(labels, dtype=np.int64), len(classes), classes,
                      source=f"{folder} ({len(paths)} images, {len(classes)} classes)")


def _mix(*parts: int) -> np.random.Generator:
    return np.random.default_rng([int(p) & 0xFFFFFFFF for p in parts])


def train_transform(img, rng: np.random.Generator, size: int, lighting: float = 0.1):
    """The official square random-resized crop + PCA lighting + flip; float32 CHW in [0, 1]."""
    from PIL import Image
    img = img.convert("RGB")
    w, h = img.size
    side = max(1, int(round(math.sqrt(rng.uniform(0.08, 1.0) * w * h))))
    if side > w or side > h:  # zero-pad so that the square fits
        canvas = Image.new("RGB", (max(w, side), max(h, side)))
        canvas.paste(img, ((canvas.size[0] - w) // 2, (canvas.size[1] - h) // 2))
        img, (w, h) = canvas, canvas.size
    x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    img = img.crop((x0, y0, x0 + side, y0 + side)).resize((size, size), Image.BILINEAR)
    a = np.asarray(img, dtype=np.float32) / 255.0
    if lighting:
        alpha = rng.normal(0, lighting, 3)
        a = a + (_EIGVEC @ (alpha * _EIGVAL)).astype(np.float32)
    if rng.random() < 0.5:
        a = a[:, ::-1]
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def eval_transform(img, size: int):
    from PIL import Image
    img = img.convert("RGB")
    w, h = img.size
    short = int(round(size * 256 / 224))
    scale = short / min(w, h)
    img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    w, h = img.size
    x0, y0 = (w - size) // 2, (h - size) // 2
    a = np.asarray(img.crop((x0, y0, x0 + size, y0 + size)), dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


class FolderLoader:
    """``DeviceLoader``'s interface over image files: batches decoded by a thread pool."""

    def __init__(self, data: FolderData, labels: np.ndarray, batch_size: int, device="cpu",
                 seed: int = 0, augment: bool = True, image_size: int = 224,
                 lighting: float = 0.1, threads: int = 8, channels_last: bool = False):
        labels = np.asarray(labels)
        if labels.shape != (len(data),):
            raise RlnasError(f"{len(data)} images but {labels.shape} labels")
        self.data, self.device = data, torch.device(device)
        self.num_samples = len(data)
        self.batch_size = int(batch_size)
        self.steps_per_epoch = math.ceil(self.num_samples / self.batch_size)
        self.seed, self.augment, self.size, self.lighting = int(seed), augment, image_size, lighting
        self.labels = torch.as_tensor(labels.astype(np.int64), device=self.device)
        self.channels_last = channels_last
        self.pool = ThreadPoolExecutor(max_workers=threads)
        self._perm_epoch, self._perm = None, None

    def permutation(self, epoch: int) -> np.ndarray:
        if self._perm_epoch != epoch:
            self._perm = _mix(self.seed, 1, epoch).permutation(self.num_samples)
            self._perm_epoch = epoch
        return self._perm

    def _global_size(self, step: int) -> int:
        pos = step % self.steps_per_epoch
        return min(self.batch_size, self.num_samples - pos * self.batch_size)

    def part_slice(self, step: int, part: int = 0, parts: int = 1) -> slice:
        full = self._global_size(int(step))
        return slice(part * full // parts, (part + 1) * full // parts)

    def _load(self, paths: Sequence[str], fn) -> torch.Tensor:
        from PIL import Image

        def one(args):
            i, p = args
            with Image.open(p) as img:
                return fn(i, img)
        try:
            imgs = list(self.pool.map(one, enumerate(paths)))
        except OSError as err:
            raise RlnasError(f"cannot read an image: {err}") from None
        x = torch.stack(imgs).to(self.device, non_blocking=True)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=fmt)

    def batch(self, step: int, part: int = 0, parts: int = 1):
        step = int(step)
        epoch, pos = divmod(step, self.steps_per_epoch)
        sl = self.part_slice(step, part, parts)
        start = pos * self.batch_size
        idx = self.permutation(epoch)[start + sl.start:start + sl.stop]
        paths = [self.data.paths[i] for i in idx]
        if self.augment:  # each image's draws depend on (seed, step, position in global batch)
            fn = lambda i, img: train_transform(img, _mix(self.seed, 2, step, sl.start + i),  # noqa
                                                self.size, self.lighting)
        else:
            fn = lambda i, img: eval_transform(img, self.size)  # noqa: E731
        return self._load(paths, fn), self.labels[torch.as_tensor(idx, device=self.device)]

    def images(self, indices) -> torch.Tensor:
        return self._load([self.data.paths[i] for i in np.asarray(indices)],
                          lambda i, img: eval_transform(img, self.size))
