"""ImageNet-style image folders (``root/train/<class>/*.JPEG``, ``root/val/<class>/*.JPEG``).

Images are decoded on the fly (Pillow, a thread pool, one batch ahead), not held on the
device. The loader has ``DeviceLoader``'s batch interface: ``batch(step, part, parts)`` is a
pure function of (seed, step), so resume and torchrun work the same way. Labels are ALWAYS the
array given to the loader (random or true): the folder's own class index is never used for
training, unlike the official ``ImageNetWithRandomLabels`` wrapper whose random labels
torchvision never read (spec section 9, item 1).

Training augmentation, ``transform="official"`` (spec 2, the official supernet and DARTS
retraining pipeline): a square random-resized crop (area 8-100 % of the image, aspect ratio 1,
zero padding where the square does not fit), resized to ``image_size`` (bilinear), AlexNet PCA
lighting (std 0.1) and a horizontal flip, then ToTensor with NO mean/std normalisation.
``transform="torchvision"`` (spec 6.3, the official MobileNet retraining): torchvision's
RandomResizedCrop (area 8-100 %, aspect ratio 3/4-4/3, ten tries then a centre crop) and flip,
no lighting, then the ImageNet mean/std normalisation. Evaluation: resize the short side to
256/224 x ``image_size``, centre crop (normalised with the torchvision transform).
"""
from __future__ import annotations

import math
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .errors import RlnasError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# AlexNet PCA lighting (eigenvalues / eigenvectors of ImageNet RGB covariance, 0-1 scale)
_EIGVAL = np.array([0.2175, 0.0188, 0.0045])
_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140],
                    [-0.5836, -0.6948, 0.4203]])
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TRANSFORMS = ("official", "torchvision")


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
        raise RlnasError(f"ImageNet root {root} does not exist; expected "
                         f"{root}/train/<class>/*.JPEG and {root}/val/<class>/*.JPEG")
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


def _rrc_box(w: int, h: int, rng: np.random.Generator) -> Tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box (scale 0.08-1, ratio 3/4-4/3, ten tries, then a
    centre crop of the clamped ratio): (x0, y0, crop width, crop height)."""
    area = w * h
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        target = area * rng.uniform(0.08, 1.0)
        ratio = math.exp(rng.uniform(*log_ratio))
        cw, ch = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1)), cw, ch
    ratio = w / h
    if ratio < 3 / 4:
        cw, ch = w, int(round(w / (3 / 4)))
    elif ratio > 4 / 3:
        cw, ch = int(round(h * (4 / 3))), h
    else:
        cw, ch = w, h
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def _train_draws(img, rng: np.random.Generator, size: int, lighting: float,
                 transform: str = "official"):
    """The CPU half of the training transform: the official square random-resized crop (zero
    padding where the square does not fit) or torchvision's RandomResizedCrop, resized to
    ``size``, horizontal flip; returns (uint8 HWC image, the image's PCA-lighting offset
    (3 floats)). Flipping before the lighting is exact (the offset is constant per channel). The
    draws are made in one fixed order, so the result is a pure function of ``rng``'s seed."""
    from PIL import Image
    img = img.convert("RGB")
    w, h = img.size
    if transform == "torchvision":
        x0, y0, cw, ch = _rrc_box(w, h, rng)
        img = img.crop((x0, y0, x0 + cw, y0 + ch)).resize((size, size), Image.BILINEAR)
    else:
        side = max(1, int(round(math.sqrt(rng.uniform(0.08, 1.0) * w * h))))
        if side > w or side > h:  # zero-pad so that the square fits
            canvas = Image.new("RGB", (max(w, side), max(h, side)))
            canvas.paste(img, ((canvas.size[0] - w) // 2, (canvas.size[1] - h) // 2))
            img, (w, h) = canvas, canvas.size
        x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        img = img.crop((x0, y0, x0 + side, y0 + side)).resize((size, size), Image.BILINEAR)
    offset = np.zeros(3, np.float32)
    if lighting:
        alpha = rng.normal(0, lighting, 3)
        offset = (_EIGVEC @ (alpha * _EIGVAL)).astype(np.float32)
    a = np.asarray(img, dtype=np.uint8)
    return (a[:, ::-1] if rng.random() < 0.5 else a), offset


def _eval_crop(img, size: int) -> np.ndarray:
    """Resize the short side to 256/224 x ``size`` (bilinear), centre crop; uint8 HWC."""
    from PIL import Image
    img = img.convert("RGB")
    w, h = img.size
    short = int(round(size * 256 / 224))
    scale = short / min(w, h)
    img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    w, h = img.size
    x0, y0 = (w - size) // 2, (h - size) // 2
    return np.asarray(img.crop((x0, y0, x0 + size, y0 + size)), dtype=np.uint8)


def finish_batch(x_u8_nhwc: torch.Tensor, offsets=None, channels_last: bool = False,
                 normalise: Optional[Tuple[Sequence[float], Sequence[float]]] = None
                 ) -> torch.Tensor:
    """The float half: ToTensor (x / 255, N x 3 x H x W float32) plus each image's lighting
    offset, then ``(x - mean) / std`` where ``normalise`` = (mean, std) is given, in one
    conversion pass and in-place passes. Run where ``x_u8_nhwc`` lives: on a GPU only uint8
    crosses the bus."""
    n, h, w, _ = x_u8_nhwc.shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.empty((n, 3, h, w), dtype=torch.float32, device=x_u8_nhwc.device, memory_format=fmt)
    x.copy_(x_u8_nhwc.permute(0, 3, 1, 2)).div_(255.0)
    if offsets is not None:
        x.add_(offsets.to(x.device, non_blocking=True)[:, :, None, None])
    if normalise is not None:
        mean, std = (torch.tensor(v, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
                     for v in normalise)
        x.sub_(mean).div_(std)
    return x


def _normalisation(transform: str):
    if transform not in TRANSFORMS:
        raise RlnasError(f"unknown image transform {transform!r}; known: {', '.join(TRANSFORMS)}")
    return (IMAGENET_MEAN, IMAGENET_STD) if transform == "torchvision" else None


def train_transform(img, rng: np.random.Generator, size: int, lighting: float = 0.1,
                    transform: str = "official"):
    """The training transform (module docstring); float32 CHW. One image through the same two
    halves the loader uses."""
    norm = _normalisation(transform)
    a, offset = _train_draws(img, rng, size, lighting if norm is None else 0.0, transform)
    return finish_batch(torch.tensor(a.copy())[None], torch.from_numpy(offset)[None],
                        normalise=norm)[0]


def eval_transform(img, size: int, transform: str = "official"):
    return finish_batch(torch.tensor(_eval_crop(img, size))[None],
                        normalise=_normalisation(transform))[0]


def default_threads() -> int:
    """Decoding threads per process: the CPUs this process may use, shared by the torchrun
    processes of this node."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


class FolderLoader:
    """``DeviceLoader``'s interface over image files.

    A thread pool decodes, crops and flips the images as uint8 (Pillow releases the GIL). On a
    GPU the uint8 batch is copied from pinned memory and turned into lit floats there; on the
    CPU that is done in the background too. With ``prefetch`` on, asking for batch (step, part,
    parts) also starts assembling (step + 1, part, parts) in the background, so decoding
    overlaps the training step; the result is the same as without it (batches are pure
    functions of (seed, step))."""

    def __init__(self, data: FolderData, labels: np.ndarray, batch_size: int, device="cpu",
                 seed: int = 0, augment: bool = True, image_size: int = 224,
                 lighting: float = 0.1, threads: Optional[int] = None,
                 channels_last: bool = False, prefetch: bool = True,
                 transform: str = "official"):
        labels = np.asarray(labels)
        if labels.shape != (len(data),):
            raise RlnasError(f"{len(data)} images but {labels.shape} labels")
        self.data, self.device = data, torch.device(device)
        self.num_samples = len(data)
        self.batch_size = int(batch_size)
        self.steps_per_epoch = math.ceil(self.num_samples / self.batch_size)
        self.transform, self.normalise = transform, _normalisation(transform)
        self.seed, self.augment, self.size = int(seed), augment, image_size
        self.lighting = lighting if self.normalise is None else 0.0  # torchvision: no lighting
        self.labels = torch.from_numpy(labels.astype(np.int64))  # gathered on the host
        self.channels_last = channels_last
        self.threads = int(threads or default_threads())
        self.pool = ThreadPoolExecutor(max_workers=self.threads)
        # one assembler thread, so that batch jobs never wait on a pool their own images need
        self.prefetch = bool(prefetch)
        self._assembler = ThreadPoolExecutor(max_workers=1) if self.prefetch else None
        self._pending: Dict[Tuple[int, int, int], Future] = {}
        self._pin = self.device.type == "cuda"
        self._perm_epoch, self._perm = None, None
        self._perm_lock = threading.Lock()

    def permutation(self, epoch: int) -> np.ndarray:
        with self._perm_lock:  # the assembler thread may ask for the next epoch's order
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

    def _decode(self, paths: Sequence[str], fn) -> List:
        from PIL import Image

        def one(args):
            i, p = args
            with Image.open(p) as img:
                return fn(i, img)
        try:
            return list(self.pool.map(one, enumerate(paths)))
        except OSError as err:
            raise RlnasError(f"cannot read an image: {err}") from None

    def _pinned(self, t: torch.Tensor) -> torch.Tensor:
        """Page-locked on CUDA, so that the copy is asynchronous (a pageable host-to-device
        copy waits for the GPU to finish its queued work)."""
        return t.pin_memory() if self._pin else t

    def _stack(self, arrays) -> torch.Tensor:
        # an empty part happens when a short last batch has fewer images than parts
        x = (torch.from_numpy(np.stack(arrays)) if len(arrays)
             else torch.zeros((0, self.size, self.size, 3), dtype=torch.uint8))
        return self._pinned(x)

    def _assemble(self, step: int, part: int, parts: int):
        """The CPU work of one batch: (images, lighting offsets, labels); the images are
        finished floats on a CPU device, else uint8 crops to finish on the device."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        sl = self.part_slice(step, part, parts)
        start = pos * self.batch_size
        idx = self.permutation(epoch)[start + sl.start:start + sl.stop]
        paths = [self.data.paths[i] for i in idx]
        if self.augment:  # each image's draws depend on (seed, step, position in global batch)
            out = self._decode(paths, lambda i, img: _train_draws(
                img, _mix(self.seed, 2, step, sl.start + i), self.size, self.lighting,
                self.transform))
            x = self._stack([o[0] for o in out])
            offsets = self._pinned(torch.from_numpy(
                np.array([o[1] for o in out], np.float32).reshape(-1, 3)))
        else:
            x = self._stack(self._decode(paths, lambda i, img: _eval_crop(img, self.size)))
            offsets = None
        y = self._pinned(self.labels[torch.from_numpy(idx)])
        if self.device.type == "cpu":
            return finish_batch(x, offsets, self.channels_last, self.normalise), None, y
        return x, offsets, y

    def batch(self, step: int, part: int = 0, parts: int = 1):
        step = int(step)
        key = (step, int(part), int(parts))
        job = self._pending.pop(key, None)
        if self.prefetch:
            for k in [k for k in self._pending if k[0] not in (step, step + 1)]:  # a jump: drop
                self._pending.pop(k).cancel()
            nxt = (step + 1, key[1], key[2])
            # an un-augmented (evaluation) loader is read one epoch at a time: no look-ahead past it
            if nxt not in self._pending and (self.augment or nxt[0] % self.steps_per_epoch):
                self._pending[nxt] = self._assembler.submit(self._assemble, *nxt)
        x, offsets, y = job.result() if job is not None else self._assemble(*key)
        if x.dtype == torch.uint8:  # on the device: uint8 in, floats made there
            x = finish_batch(x.to(self.device, non_blocking=True), offsets, self.channels_last,
                             self.normalise)
            y = y.to(self.device, non_blocking=True)
        return x, y
