"""The SPOS performance indicator: supernet top-1 on held-out data after BN recalibration.

This is the "validation accuracy" indicator of the paper's Table 1 rows A and C (spec 6.1, 7.1,
9 item 9), following ``nas_bench_201/exps/angle/get_acc.py``. For each candidate arch:

1. every BatchNorm's running statistics are reset and recomputed on ``recal_images`` training
   images of the run (train-mode BN, no grad, ``momentum=None``: the cumulative average over the
   recalibration batches), the same fixed un-augmented images for every arch;
2. the supernet path of the arch is evaluated in eval mode on a held-out split with its TRUE
   labels (never the run's random labels), giving top-1 accuracy in percent.

Held-out rule (:func:`heldout_data`): a run trained on the NB201 train half
(``data.nb201_half``) is evaluated on the other half of the training set (the ``valid`` list of
``data.split_file`` when given, else the complement of the seeded half that training used);
any other run on the dataset's ``test`` split.

The scorer ``accuracy`` (needs a run) reads ``ctx.options``:

``recal_images`` (20000; clamped to the training set size), ``recal_batch`` (512),
``eval_images`` (None = all held-out images; else the first N of a seeded permutation),
``eval_batch`` (1000), ``heldout`` (an :class:`~rlnas.data.ImageData` used instead of the
default held-out split), ``precision`` (``fp32`` default; ``auto``/``bf16``/``fp16`` autocast on
CUDA), ``progress`` (True: a progress bar over archs when more than one), ``device``
(defaults to ``ctx.device``).

The recalibration images are the first ``recal_images`` of a permutation seeded by ``ctx.seed``
of the run's training images (``prepare_training_data``: the NB201 half and ``data.subset`` as
in training). They are split into ``ceil(n / recal_batch)`` near-equal batches, so that the
cumulative average weighs every image about equally. Both image sets are normalised with the
training data's mean/std and put on the device once; the supernet is built once and only its
BN statistics change per arch.
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from .data import (
    DeviceLoader,
    ImageData,
    align_test_split,
    load_dataset,
    nb201_split_list,
    nb201_train_half,
    prepare_training_data,
)
from .distributed import CHANNELS_LAST, autocast_dtype, resolve_device
from .errors import RlnasError
from .schema import Config
from .scorers import ScoreContext, ScoreFn, register_scorer

__all__ = ["DEFAULTS", "batch_norms", "recalibrate_bn", "supernet_accuracy", "heldout_data",
           "seeded_first", "AccuracyScorer"]

DEFAULTS: Dict[str, Any] = {"recal_images": 20000, "recal_batch": 512, "eval_images": None,
                            "eval_batch": 1000, "precision": "fp32", "progress": True}

DESCRIPTION = ("SPOS indicator: supernet top-1 on held-out data with true labels after BN "
               "recalibration")


# ----------------------------------------------------------------------------------------------
# BN recalibration and evaluation
# ----------------------------------------------------------------------------------------------
def batch_norms(model: nn.Module):
    """The BatchNorm modules of ``model`` that keep running statistics."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def _batch_bounds(n: int, batch: int) -> Sequence[Tuple[int, int]]:
    """``ceil(n / batch)`` contiguous near-equal batches (sizes differ by at most one)."""
    k = max(1, math.ceil(n / batch))
    return [(i * n // k, (i + 1) * n // k) for i in range(k)]


def _autocast(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    if p is None:
        p = next(model.buffers(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def recalibrate_bn(model: nn.Module, arch, x: torch.Tensor, batch_size: int = 512,
                   amp_dtype: Optional[torch.dtype] = None) -> None:
    """Reset every BN's running statistics and recompute them on ``x`` (normalised images on the
    model's device) along path ``arch``: BN layers in train mode with ``momentum=None`` (the
    cumulative average over the batches), every other module in eval mode, no grad. ``x`` is
    split into ``ceil(len(x) / batch_size)`` near-equal batches. Afterwards the model is in eval
    mode and every BN's momentum is what it was."""
    if len(x) < 1:
        raise RlnasError("BN recalibration needs at least one image")
    bns = batch_norms(model)
    momenta = [bn.momentum for bn in bns]
    arch = np.asarray(arch, dtype=np.int64)
    try:
        model.eval()
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
            bn.train()
        with _autocast(x.device, amp_dtype):
            for lo, hi in _batch_bounds(len(x), int(batch_size)):
                model(x[lo:hi], arch)
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
        model.eval()


@torch.no_grad()
def _top1(model: nn.Module, arch, x: torch.Tensor, y: torch.Tensor, batch_size: int,
          amp_dtype: Optional[torch.dtype]) -> float:
    model.eval()
    arch = np.asarray(arch, dtype=np.int64)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    with _autocast(x.device, amp_dtype):
        for lo in range(0, len(x), batch_size):
            out = model(x[lo:lo + batch_size], arch)
            correct += (out.argmax(1) == y[lo:lo + batch_size]).sum()
    return 100.0 * int(correct) / len(x)  # one host sync per arch


def _as_archs(archs) -> np.ndarray:
    a = np.asarray(archs)
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise RlnasError(f"archs must be integer op indices, got dtype {a.dtype}")
    a = a.astype(np.int64)
    return a[None] if a.ndim == 1 else a


def supernet_accuracy(model: nn.Module, archs, recal_x: torch.Tensor, heldout_x: torch.Tensor,
                      heldout_y: torch.Tensor, recal_batch: int = 512, eval_batch: int = 1000,
                      progress: bool = False,
                      amp_dtype: Optional[torch.dtype] = None) -> np.ndarray:
    """Top-1 (%) of the supernet path of every arch (rows of ``archs``; a 1-D array is one arch)
    on ``heldout_x``/``heldout_y`` after recomputing the BN statistics on ``recal_x``.

    Images are normalised float tensors N x 3 x H x W; tensors not already on the model's
    device are moved there once per call. The model's BN buffers, momenta and train/eval
    flags are restored afterwards."""
    archs = _as_archs(archs)
    if int(recal_batch) < 1 or int(eval_batch) < 1:
        raise RlnasError(f"recal_batch and eval_batch must be >= 1, got {recal_batch} and "
                         f"{eval_batch}")
    if len(recal_x) < 1:
        raise RlnasError("BN recalibration needs at least one image")
    if len(heldout_x) < 1:
        raise RlnasError("the held-out set is empty")
    if len(heldout_y) != len(heldout_x):
        raise RlnasError(f"{len(heldout_y)} held-out labels for {len(heldout_x)} images")
    dev = _model_device(model)
    recal_x = recal_x.to(dev)
    heldout_x = heldout_x.to(dev)
    heldout_y = torch.as_tensor(heldout_y).to(device=dev, dtype=torch.int64)

    modes = [(m, m.training) for m in model.modules()]
    saved = [(b, b.detach().clone()) for bn in batch_norms(model) for b in bn.buffers()]
    out = np.empty(len(archs), dtype=np.float64)
    bar = None
    if progress and len(archs) > 1:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(archs), desc="accuracy", unit="arch", mininterval=1.0,
                   dynamic_ncols=True, leave=False)
    try:
        for i, arch in enumerate(archs):
            recalibrate_bn(model, arch, recal_x, int(recal_batch), amp_dtype)
            out[i] = _top1(model, arch, heldout_x, heldout_y, int(eval_batch), amp_dtype)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        with torch.no_grad():
            for b, v in saved:
                b.copy_(v)
        for m, t in modes:
            m.training = t
    return out


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
def seeded_first(n: int, k: Optional[int], seed: int) -> np.ndarray:
    """Sorted indices of the first ``min(k, n)`` entries of a permutation of ``range(n)`` seeded
    by ``seed``; all of ``range(n)`` when ``k`` is None or at least ``n``."""
    if k is None or k >= n:
        return np.arange(n, dtype=np.int64)
    perm = np.random.default_rng(int(seed)).permutation(n)
    return np.sort(perm[:k]).astype(np.int64)


def heldout_data(cfg: Dict[str, Any], seed: int = 0,
                 eval_images: Optional[int] = None) -> Tuple[ImageData, str]:
    """The held-out split of a run config, with true labels, and a one-sentence description.

    * ``data.nb201_half`` set: the other half of the training set. With ``data.split_file``
      its ``valid`` list (checked to be disjoint from its ``train`` list); without it the
      complement of the seeded class-balanced half that training used (``nb201_train_half``
      with the run's ``seed``).
    * otherwise: the dataset's ``test`` split.

    ``eval_images`` keeps the first N of a permutation seeded by ``seed`` (for CPU budgets)."""
    cfg = Config.of(cfg)
    d, name, root = cfg.data, cfg.data.dataset, cfg.data.root
    if d.nb201_half:
        data = load_dataset(name, root, split="train")
        split_file = d.split_file
        train_idx, train_desc = nb201_train_half(data, split_file, seed=cfg.seed)
        if split_file is not None:
            idx = nb201_split_list(split_file, "valid", len(data))
            overlap = np.intersect1d(idx, train_idx).size
            if overlap:
                raise RlnasError(f"NB201 split file {split_file}: {overlap} images are in both "
                                 "the 'train' and the 'valid' lists")
            desc = (f"NB201 valid half ({idx.size:,} images) from {Path(split_file).name}, "
                    f"true labels")
        else:
            mask = np.ones(len(data), dtype=bool)
            mask[train_idx] = False
            idx = np.flatnonzero(mask)
            if idx.size == 0:
                raise RlnasError("the NB201 train half covers the whole training set; "
                                 "no held-out images are left")
            desc = (f"the other half ({idx.size:,} images) of the training set, complement of "
                    f"the {train_desc}, true labels")
        held = data.subset(idx)
    else:
        if root is not None and Path(root).expanduser().is_file():
            raise RlnasError(f"data.root {root} is a single file holding only the training images; "
                             "give a folder with a test split, or pass options={'heldout': "
                             "ImageData}")
        held = load_dataset(name, root, split="test")
        desc = f"the dataset's test split ({len(held):,} images: {held.source}), true labels"
    if eval_images is not None and eval_images < len(held):
        held = held.subset(seeded_first(len(held), eval_images, seed))
        desc += f"; {len(held):,} of them kept (first of a permutation seeded {seed})"
    return held, desc


# ----------------------------------------------------------------------------------------------
# The scorer
# ----------------------------------------------------------------------------------------------
def _int_option(opts: Dict[str, Any], key: str, allow_none: bool = False) -> Optional[int]:
    v = opts.get(key, DEFAULTS[key])
    if v is None or (isinstance(v, str) and v.strip().lower() == "all"):
        if allow_none:
            return None
        raise RlnasError(f"accuracy option {key} must be a positive integer, got {v!r}")
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < 1:
        raise RlnasError(f"accuracy option {key} must be a positive integer"
                         f"{' or None (all)' if allow_none else ''}, got {v!r}")
    return int(v)


def _images_on(data: ImageData, idx: np.ndarray, mean, std, device: torch.device,
               resolution=None):
    """(normalised float images, labels) of ``data[idx]`` on ``device``, made there once, at the
    supernet's training ``resolution`` (``data.resolution``) where one was set."""
    loader = DeviceLoader(data.x[idx], data.y[idx], max(len(idx), 1), mean, std, device=device,
                          augment=False, channels_last=CHANNELS_LAST, resolution=resolution)
    x = loader.images(torch.arange(len(idx), device=device))
    return x, loader.labels


class AccuracyScorer:
    """Everything the ``accuracy`` scorer builds once: the supernet with the run's weights,
    the recalibration images and the held-out images with true labels, all on the device."""

    def __init__(self, ctx: ScoreContext):

        opts = dict(ctx.options or {})
        run = ctx.run
        if run is None:
            raise RlnasError("scorer 'accuracy' needs a trained supernet run")
        self.recal_images = _int_option(opts, "recal_images")
        self.recal_batch = _int_option(opts, "recal_batch")
        self.eval_images = _int_option(opts, "eval_images", allow_none=True)
        self.eval_batch = _int_option(opts, "eval_batch")
        self.progress = bool(opts.get("progress", DEFAULTS["progress"]))
        precision = opts.get("precision", DEFAULTS["precision"])
        if precision not in ("auto", "fp32", "bf16", "fp16"):
            raise RlnasError(f"accuracy option precision must be auto, fp32, bf16 or fp16, "
                             f"got {precision!r}")
        held = opts.get("heldout")
        if held is not None and not isinstance(held, ImageData):
            raise RlnasError(f"accuracy option heldout must be an ImageData, "
                             f"got {type(held).__name__}")
        dev = opts.get("device") or ctx.device or "cpu"
        self.device = dev if isinstance(dev, torch.device) else resolve_device(str(dev))
        self.amp_dtype = autocast_dtype(precision, self.device)
        self.space = ctx.space if ctx.space is not None else run.space
        self.seed = int(ctx.seed)

        train, train_desc = prepare_training_data(run.config)
        if held is None:
            held, held_desc = heldout_data(run.config, self.seed, self.eval_images)
        else:
            held_desc = f"given held-out data ({len(held):,} images: {held.source})"
            if self.eval_images is not None and self.eval_images < len(held):
                held = held.subset(seeded_first(len(held), self.eval_images, self.seed))
                held_desc += f"; {len(held):,} kept (first of a permutation seeded {self.seed})"
        if len(held) == 0:
            raise RlnasError("the held-out set is empty")
        held = align_test_split(train, held)  # the training split's classes (by name)
        if held.image_size != train.image_size:
            raise RlnasError(f"held-out images are {held.image_size}, but the supernet was trained "
                             f"on {train.image_size} images")
        k = int(run.info["num_classes"])
        if int(held.y.min()) < 0 or int(held.y.max()) >= k:
            raise RlnasError(f"held-out labels span {int(held.y.min())}..{int(held.y.max())}, but "
                             f"the supernet has {k} outputs")

        ridx = seeded_first(len(train), self.recal_images, self.seed)
        # the model expects the training data's normalisation, so both sets use it
        res = run.config.data.resolution
        self.recal_x, _ = _images_on(train, ridx, train.mean, train.std, self.device, res)
        self.heldout_x, self.heldout_y = _images_on(held, np.arange(len(held)), train.mean,
                                                    train.std, self.device, res)
        state = run.checkpoint_state(ctx.checkpoint)
        model = run.space.supernet(num_classes=k, **run.config.model)
        model.load_state_dict(state)
        model = model.to(self.device)
        if CHANNELS_LAST:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.eval()
        self.info = {
            "checkpoint": str(Path(run.path) / "ckpt" / ctx.checkpoint),
            "recalibration": (f"{len(ridx):,} un-augmented training images (first of a "
                              f"permutation seeded {self.seed} of {train_desc}), "
                              f"{len(_batch_bounds(len(ridx), self.recal_batch))} batches "
                              f"of <= {self.recal_batch}"),
            "heldout": held_desc,
            "device": str(self.device),
            "precision": precision,
        }

    def archs(self, archs) -> np.ndarray:
        a = _as_archs(archs)
        genes = int(self.space.num_genes or a.shape[-1])
        if a.ndim != 2 or a.shape[1] != genes:
            raise RlnasError(f"archs must have shape (N, {genes}), got {np.asarray(archs).shape}")
        for arch in a:
            if not self.space.is_valid(tuple(int(v) for v in arch)):
                raise RlnasError(f"not a valid {self.space.name or 'space'} "
                                 f"arch: {tuple(int(v) for v in arch)}")
        return a

    def __call__(self, archs) -> np.ndarray:
        archs = self.archs(archs)
        if len(archs) == 0:
            return np.zeros(0, dtype=np.float64)
        return supernet_accuracy(self.model, archs, self.recal_x, self.heldout_x, self.heldout_y,
                                 self.recal_batch, self.eval_batch, self.progress, self.amp_dtype)


@register_scorer("accuracy", needs_run=True, description=DESCRIPTION)
def _accuracy(ctx: ScoreContext) -> ScoreFn:
    """SPOS indicator: supernet top-1 on held-out data with true labels after BN recalibration."""
    return AccuracyScorer(ctx)
