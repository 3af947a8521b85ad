"""One training loop for supernets and standalone networks.

Everything random in a step is a pure function of (seed, global step): the batch order and
augmentation (``DeviceLoader.batch``), the supernet path (``space.sample_training_path``) and
the learning rate (a function of the epoch or step). A checkpoint therefore only needs the
model, optimizer, step and the running epoch metrics to resume bit for bit; the W0 needed by the
angle is ``ckpt/init.pt``. Under torchrun every process derives the same path from the step.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.stats import kendalltau

from . import config as config_mod
from .angle import AngleScorer
from .checkpoint import load_checkpoint, save_checkpoint
from .data import DeviceLoader, load_dataset, make_loader, nb201_train_half
from .files import LOCK_NAME, atomic_write_text, make_dir, os_error_text, run_lock
from .errors import RlnasError
from .labels import load_labels, make_labels, save_labels
from .spaces import recorded_space


# ----------------------------------------------------------------------------------------------
# Devices and precision
# ----------------------------------------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise RlnasError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RlnasError(f"device {name!r} requested but CUDA is not available here")
    return dev


def autocast_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """None means fp32. 'auto' is bf16 on CUDA where supported, fp16 on older GPUs, fp32 on CPU."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@dataclass
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.world > 1:
            torch.distributed.barrier()


def init_distributed(device_name: str):
    """(Dist, device). Under torchrun (WORLD_SIZE > 1) joins the process group: NCCL with one GPU
    per process (LOCAL_RANK) when CUDA is used, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world <= 1:
        return Dist(), device
    import torch.distributed as tdist
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not tdist.is_initialized():
        # torch._dynamo (imported by the optimizer) keeps references to a process group that
        # exists when it is first imported; that group then outlives destroy_process_group and
        # its gloo threads can abort the interpreter's exit. Imported first, it holds none.
        import torch._dynamo  # noqa: F401
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world), device


# channels-last activations: faster convolutions on GPUs (tensor cores) and on CPUs (oneDNN;
# 2x for the NB201 supernet at C=16 on this project's 2-core machines, benchmarks/RESULTS.md)
CHANNELS_LAST = True


def cosine_lr(epoch: int, epochs: int, lr: float, lr_min: float) -> float:
    """CosineAnnealingLR stepped per epoch: lr at the start of ``epoch`` (0-based)."""
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * epoch / epochs)) / 2


def linear_lr(step: int, total: int, lr: float, lr_min: float) -> float:
    """The official ImageNet supernet rule, per step: lr0 (1 - t/D), D = T/(1 - lr_min/lr0),
    i.e. a straight line from lr0 at step 0 to lr_min at step T."""
    return lr - (lr - lr_min) * step / max(total, 1)


def warmup_linear_lr(epoch: int, epochs: int, lr: float, warmup: int) -> float:
    """The DARTS ImageNet retraining rule (spec 6.2), per epoch: linear decay over the first
    E - W epochs, a slower tail over the last W, and a linear warm-up over the first W."""
    decay = epochs - warmup
    if epoch < decay:
        base = lr * (decay - epoch) / decay
    else:
        base = lr * (epochs - epoch) / (decay * max(warmup, 1))
    return base * (epoch + 1) / warmup if epoch < warmup else base


def learning_rate(schedule: str, step: int, steps_per_epoch: int, epochs: int, lr: float,
                  lr_min: float, warmup_epochs: int = 0) -> float:
    if schedule == "cosine":
        return cosine_lr(step // steps_per_epoch, epochs, lr, lr_min)
    if schedule == "linear":
        return linear_lr(step, steps_per_epoch * epochs, lr, lr_min)
    if schedule == "linear_warmup":
        return warmup_linear_lr(step // steps_per_epoch, epochs, lr, warmup_epochs)
    raise RlnasError(f"unknown lr_schedule {schedule!r} (cosine, linear or linear_warmup)")


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------
@dataclass
class LoopSpec:
    """What differs between a supernet and a standalone network run."""

    model: nn.Module
    loader: DeviceLoader  # or imagenet.FolderLoader: the same batch(step, part, parts) interface
    epochs: int
    lr: float
    lr_min: float
    momentum: float
    nesterov: bool
    weight_decay: float
    device: torch.device
    precision: str = "auto"
    path_fn: Optional[Callable[[int], Any]] = None  # supernet: global step -> path
    lr_schedule: str = "cosine"
    warmup_epochs: int = 0
    before_epoch: Optional[Callable[[int], None]] = None  # e.g. the drop-path schedule
    label_smoothing: float = 0.0
    grad_clip_norm: Optional[float] = None
    grad_clip_value: Optional[float] = None
    wd_conv_only: bool = False
    wd_classifier: bool = False  # with wd_conv_only: the linear layers are decayed too (MobileNet)
    aux_weight: float = 0.0  # auxiliary-head loss weight (standalone DARTS networks)
    accumulate: int = 1  # micro-batches per step and process
    dist: Dist = field(default_factory=Dist)
    grad_sync: str = "coalesced"  # coalesced all-reduce of touched grads | ddp
    ckpt_dir: Optional[Path] = None  # None: no checkpoints (short retraining)
    ckpt_every_steps: int = 0
    keep_every_epochs: int = 0
    ckpt_meta: Optional[Dict[str, Any]] = None
    # called at each epoch end with (epoch, extra checkpoint fields); True stops training. A
    # "scalars" dict put in extra is logged to TensorBoard (when on) and not saved.
    epoch_callback: Optional[Callable[[int, Dict[str, Any]], bool]] = None
    metrics_path: Optional[Path] = None
    progress: bool = True
    desc: str = "train"


def make_optimizer(spec: LoopSpec) -> torch.optim.Optimizer:
    params = list(spec.model.parameters())
    if spec.wd_conv_only:  # ImageNet recipes: no decay on BN, biases and the classifier
        linear = {id(p) for m in spec.model.modules() if isinstance(m, nn.Linear)
                  for p in m.parameters()} if spec.wd_classifier else set()
        decay = [p for p in params if p.ndim == 4 or id(p) in linear]
        keep = {id(p) for p in decay}
        groups = [{"params": decay},
                  {"params": [p for p in params if id(p) not in keep], "weight_decay": 0.0}]
    else:
        groups = [{"params": params}]
    return torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum,
                           nesterov=spec.nesterov, weight_decay=spec.weight_decay)


def run_loop(spec: LoopSpec, optimizer=None, start_step: int = 0,
             stop_at_step: Optional[int] = None, epoch_stats=None,
             path_digest: int = 0) -> Dict[str, float]:
    """Train from ``start_step`` to the end; returns the last epoch's metrics.

    The global batch of a step is split into ``world x accumulate`` contiguous parts; each loss is
    weighted by its share of the global batch and the gradients are summed over parts and
    processes, so the update is the global-batch mean gradient whatever the split. Under torchrun
    every process samples the same path (a pure function of the step), so exactly the same
    parameters have gradients on every rank and one coalesced all-reduce of those gradients
    replaces DDP's bucketed reducer (``grad_sync='ddp'`` uses DDP with
    find_unused_parameters=True instead).

    ``stop_at_step`` raises KeyboardInterrupt before that step (used by tests to simulate a
    kill between checkpoints). ``epoch_stats`` (loss sum, correct, seen) and ``path_digest``
    restore the running metrics of a partly done epoch so that a resumed run logs the same
    numbers.

    Training stops with an RlnasError at the first non-finite loss (``_Guard``): nothing is
    written from that step on, so ``ckpt/last.pt`` stays the last finite state."""
    model, loader, dev, dist = spec.model, spec.loader, spec.device, spec.dist
    optimizer = optimizer or make_optimizer(spec)
    net = model
    if dist.world > 1 and spec.grad_sync == "ddp":
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None,
            find_unused_parameters=True, broadcast_buffers=False)
    amp = autocast_dtype(spec.precision, dev)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    spe = loader.steps_per_epoch
    total = spe * spec.epochs
    parts = dist.world * spec.accumulate
    # TensorBoard first: a missing package fails before a progress bar is drawn
    board = open_tensorboard(spec, start_step // spe + 1) if dist.main else None
    bar = _progress(total, start_step, spec) if dist.main else None
    last: Dict[str, float] = {}
    stats = [float(v) for v in (epoch_stats or (0.0, 0.0, 0))] if dist.main else [0.0, 0.0, 0]
    loss_sum = torch.tensor(stats[0], device=dev)
    correct = torch.tensor(stats[1], device=dev)
    seen = torch.tensor(float(stats[2]), device=dev)
    t0, digest = time.time(), int(path_digest)
    guard = _Guard(spec, start_step)
    model.train()
    try:
        for step in range(start_step, total):
            if stop_at_step is not None and step == stop_at_step:
                raise KeyboardInterrupt(f"stopped at step {step}")
            epoch = step // spe
            lr = learning_rate(spec.lr_schedule, step, spe, spec.epochs, spec.lr, spec.lr_min,
                               spec.warmup_epochs)
            guard.begin(lr)
            if spec.before_epoch and (step % spe == 0 or step == start_step):
                spec.before_epoch(epoch)
            for g in optimizer.param_groups:
                g["lr"] = lr
            path = spec.path_fn(step) if spec.path_fn else None
            if path is not None:
                digest = zlib.crc32(np.ascontiguousarray(path).tobytes(), digest)
            n_global = loader.part_slice(step).stop
            optimizer.zero_grad(set_to_none=True)
            for m in range(spec.accumulate):
                x, y = loader.batch(step, dist.rank * spec.accumulate + m, parts)
                ctx = torch.autocast(dev.type, dtype=amp) if amp else contextlib.nullcontext()
                sync = (net.no_sync() if net is not model and m < spec.accumulate - 1
                        else contextlib.nullcontext())
                with ctx, sync:
                    out = net(x, path) if path is not None else net(x)
                    if isinstance(out, tuple):  # (logits, auxiliary logits)
                        out, aux = out
                    else:
                        aux = None
                    loss = F.cross_entropy(out, y, label_smoothing=spec.label_smoothing)
                    if aux is not None:
                        loss = loss + spec.aux_weight * F.cross_entropy(
                            aux, y, label_smoothing=spec.label_smoothing)
                    # weight by the part's share; DDP averages over ranks, so undo that
                    share = y.shape[0] / n_global * (dist.world if net is not model else 1)
                    (scaler.scale(loss * share) if scaler else loss * share).backward()
                if y.shape[0]:  # an empty part (short last batch) has a NaN mean loss
                    guard.add(loss)
                    loss_sum += loss.detach().float() * y.shape[0]
                    correct += (out.detach().argmax(1) == y).sum()
                    seen += y.shape[0]
            if dist.world > 1 and net is model:
                _allreduce_grads(model)
            if scaler:
                scaler.unscale_(optimizer)
            if spec.grad_clip_norm:
                nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip_norm)
            if spec.grad_clip_value:
                nn.utils.clip_grad_value_(model.parameters(), spec.grad_clip_value)
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            if bar is not None:
                bar.update(1)
            done = step + 1
            end = done % spe == 0 or done == total
            save = bool(spec.ckpt_dir) and (end or bool(spec.ckpt_every_steps)
                                            and done % spec.ckpt_every_steps == 0)
            if end or save or guard.due(done):
                # the losses so far, and the weights before a row or a checkpoint is written
                guard.check(done, optimizer if end or save else None)
            if end:
                ep = epoch + 1
                _check_same_paths(dist, digest, ep)
                totals = _global_sum(dist, torch.stack([loss_sum, correct.float(), seen]))
                secs = time.time() - t0
                n = max(float(totals[2]), 1.0)
                last = {"epoch": ep, "step": done, "lr": lr, "loss": float(totals[0]) / n,
                        "train_acc": 100.0 * float(totals[1]) / n,
                        "images_per_s": float(totals[2]) / max(secs, 1e-9), "seconds": secs,
                        "path_digest": f"{digest:08x}"}
                if bar is not None:
                    bar.set_postfix(epoch=ep, loss=f"{last['loss']:.3f}",
                                    acc=f"{last['train_acc']:.1f}")
                if dist.main and spec.metrics_path:
                    _append_metrics(spec.metrics_path, last)
                extra: Dict[str, Any] = {}
                stop = bool(spec.epoch_callback and spec.epoch_callback(ep, extra))
                scalars = extra.pop("scalars", None) or {}
                if board is not None:
                    board.epoch(ep, last, scalars)
                if stop:
                    extra["finished"] = True
                    last["stopped_early"] = True
                if dist.main and spec.ckpt_dir:
                    guard.save(optimizer, done, ep, (0.0, 0.0, 0), extra=extra)
                    if spec.keep_every_epochs and (ep % spec.keep_every_epochs == 0 or stop):
                        guard.save(optimizer, done, ep, (0.0, 0.0, 0), name=f"epoch_{ep}.pt",
                                   extra=extra)
                if stop:
                    break
                loss_sum.zero_()
                correct.zero_()
                seen.zero_()
                t0, digest = time.time(), 0
            elif save:
                totals = _global_sum(dist, torch.stack([loss_sum, correct.float(), seen]))
                if dist.main:
                    guard.save(optimizer, done, epoch, [float(v) for v in totals], digest)
    finally:  # a divergence, full disk or Ctrl-C leaves no half-drawn bar before its message
        if bar is not None:
            bar.close()
        if board is not None:
            board.close()
    dist.barrier()
    return last


def _allreduce_grads(model: nn.Module):
    """Sum the gradients of the parameters this step touched over all processes, in one
    coalesced all-reduce (every rank ran the same path, so the set is the same everywhere)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def _global_sum(dist: Dist, t: torch.Tensor) -> torch.Tensor:
    if dist.world > 1:
        t = t.clone()
        torch.distributed.all_reduce(t)
    return t


def _check_same_paths(dist: Dist, digest: int, epoch: int):
    """Once per epoch: every rank must have trained the same sequence of paths."""
    if dist.world <= 1:
        return
    got = [None] * dist.world
    torch.distributed.all_gather_object(got, digest)
    if len(set(got)) != 1:
        raise RlnasError(f"ranks sampled different paths in epoch {epoch}: {got}")


def _progress(total, start, spec):
    if not spec.progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=start, desc=spec.desc, unit="step", mininterval=1.0,
                dynamic_ncols=True, leave=False)


# ----------------------------------------------------------------------------------------------
# Optional TensorBoard logging: RLNAS_TENSORBOARD=1 (RUN/tensorboard) or =DIR (DIR/<run name>)
# ----------------------------------------------------------------------------------------------
TENSORBOARD_ENV = "RLNAS_TENSORBOARD"
_OFF = ("", "0", "false", "no", "off")
_ON = ("1", "true", "yes", "on")


def tensorboard_dir(run_dir: Optional[Path]) -> Optional[Path]:
    """Where a run's TensorBoard events go: None when ``$RLNAS_TENSORBOARD`` is unset, empty or
    0/false/no/off (or the loop writes no metrics.csv); ``RUN/tensorboard`` for 1/true/yes/on;
    ``DIR/<run name>`` for any other value DIR, so that ``tensorboard --logdir DIR`` shows each
    run as its own line."""
    value = os.environ.get(TENSORBOARD_ENV, "").strip()
    if run_dir is None or value.lower() in _OFF:
        return None
    run_dir = Path(run_dir)
    if value.lower() in _ON:
        return run_dir / "tensorboard"
    return Path(value).expanduser() / (run_dir.resolve().name or "run")


def _summary_writer():
    """torch's SummaryWriter class, imported only when TensorBoard logging is asked for."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise RlnasError(f"{TENSORBOARD_ENV} is set but the tensorboard package is not installed: "
                         "pip install 'rlnas[tensorboard]' (or unset "
                         f"{TENSORBOARD_ENV})") from None
    return SummaryWriter


def check_tensorboard(run_dir: Optional[Path]) -> Optional[Path]:
    """Fail before any work when TensorBoard logging is asked for but cannot be done."""
    where = tensorboard_dir(run_dir)
    if where is not None:
        _summary_writer()
    return where


class _Board:
    """Per-epoch scalars of one training loop: ``<desc>/loss``, ``<desc>/train_acc`` (accuracy
    on the labels trained on: the random labels of an RLNAS supernet), ``<desc>/lr``,
    ``<desc>/images_per_s`` and whatever the epoch callback hands over (the supernet's
    ``<desc>/stability_tau``), with the epoch as the step."""

    KEYS = (("loss", "loss"), ("train_acc", "train_acc"), ("lr", "lr"),
            ("images_per_s", "images_per_s"))

    def __init__(self, writer, desc: str):
        self.writer, self.desc = writer, desc

    def epoch(self, ep: int, row: Dict[str, Any], scalars: Dict[str, float]):
        try:
            for key, tag in self.KEYS:
                if key in row:
                    self.writer.add_scalar(f"{self.desc}/{tag}", float(row[key]), ep)
            for tag, v in scalars.items():
                if v is not None:
                    self.writer.add_scalar(f"{self.desc}/{tag}", float(v), ep)
            self.writer.flush()
        except OSError as exc:
            raise RlnasError(f"cannot write TensorBoard events: {os_error_text(exc)}") from None

    def close(self):
        try:
            self.writer.close()
        except OSError:
            pass  # the events already flushed are kept; a close error must not hide another


def open_tensorboard(spec: LoopSpec, first_epoch: int = 1) -> Optional[_Board]:
    """A TensorBoard logger for the loop when ``$RLNAS_TENSORBOARD`` asks for one (the run is
    the folder of ``spec.metrics_path``). Events of epochs >= ``first_epoch`` that an earlier,
    interrupted process wrote are purged, so a resumed run shows each epoch once."""
    where = check_tensorboard(spec.metrics_path.parent if spec.metrics_path else None)
    if where is None:
        return None
    writer_cls = _summary_writer()
    make_dir(where, "TensorBoard folder")
    try:
        writer = writer_cls(log_dir=str(where), purge_step=first_epoch if first_epoch > 1 else None)
    except OSError as exc:
        raise RlnasError(f"cannot write TensorBoard events to {where}: {os_error_text(exc)}") \
            from None
    return _Board(writer, spec.desc)


# Steps between reads of the losses: on CPU reading a number costs nothing; on a GPU a read each
# step would make the host wait for the device each step. Nothing computed after a non-finite
# loss is written anyway, since a check also precedes every metrics row and checkpoint.
CPU_CHECK_EVERY = 1
CUDA_CHECK_EVERY = 20


class _Guard:
    """Stops training at the first non-finite loss, before anything is written from it, and
    writes the checkpoints (so that an error can say which one is left, and from which step).

    Each step's loss is added, on the device, to a small buffer that is read back every
    CPU_CHECK_EVERY or CUDA_CHECK_EVERY steps and always before a metrics row or a checkpoint.
    Before those the weights and optimizer state are checked too: a step with a finite loss can
    still leave an inf (a BatchNorm running variance, or a supernet op that the next steps'
    paths do not use)."""

    def __init__(self, spec: LoopSpec, start_step: int):
        self.spec = spec
        every = CPU_CHECK_EVERY if spec.device.type == "cpu" else CUDA_CHECK_EVERY
        self.losses = torch.zeros(every, device=spec.device)
        self.lrs: list = []  # the lr of each step in the buffer
        self.first = start_step  # the step of losses[0]
        last = spec.ckpt_dir / "last.pt" if spec.ckpt_dir else None
        self.saved = start_step if last is not None and last.exists() else None  # its step

    def begin(self, lr: float):
        self.lrs.append(lr)

    def add(self, loss: torch.Tensor):
        self.losses[len(self.lrs) - 1] += loss.detach().float()  # no host sync

    def due(self, done: int) -> bool:
        return done - self.first >= len(self.losses)

    def check(self, done: int, optimizer=None):
        n = done - self.first
        losses = _global_sum(self.spec.dist, self.losses[:n]).tolist() if n else []
        for i, v in enumerate(losses):
            if not math.isfinite(v):
                raise self._diverged(self.first + i, f"loss is {v}", self.lrs[i])
        if optimizer is not None:
            bad = _first_nonfinite(self.spec.model, optimizer)
            if bad:
                raise self._diverged(done - 1, bad, self.lrs[-1])
        self.losses.zero_()
        self.lrs.clear()
        self.first = done

    def _diverged(self, step: int, what: str, lr: float) -> RlnasError:
        epoch = step // self.spec.loader.steps_per_epoch + 1
        # a resume would repeat the same steps bit for bit, and train.lr is fixed for a run
        if self.saved is not None:
            advice = (f"kept the last finite checkpoint {self.spec.ckpt_dir / 'last.pt'} "
                      f"(step {self.saved}); lower train.lr and use a new run directory")
        elif self.spec.ckpt_dir:
            advice = ("no checkpoint was written before it; lower train.lr and use a new run "
                      "directory")
        else:
            advice = "lower the learning rate"
        return RlnasError(f"training diverged at epoch {epoch}, step {step}: {what} (lr {lr:g}); "
                          f"{advice}")

    def save(self, optimizer, step: int, epoch: int, epoch_stats, digest: int = 0,
             name: str = "last.pt", extra: Optional[Dict[str, Any]] = None):
        try:
            _save(self.spec, optimizer, step, epoch, epoch_stats, digest, name, extra)
        except RlnasError as err:  # a full disk or a read-only run: say what is left
            last = self.spec.ckpt_dir / "last.pt"
            left = (f"{last} (step {self.saved}) is intact and the same command resumes from it"
                    if self.saved is not None else "no checkpoint was kept")
            raise RlnasError(f"{err}; training stopped at step {step}: {left}") from None
        if name == "last.pt":
            self.saved = step


def _first_nonfinite(model: nn.Module, optimizer) -> Optional[str]:
    """What holds a NaN or inf first, model tensors then optimizer state; one host sync."""
    named = [(f"{k} is not finite", v) for k, v in model.state_dict().items()
             if v.is_floating_point()]
    named += [("the optimizer state is not finite", v) for state in optimizer.state.values()
              for v in state.values() if torch.is_tensor(v) and v.is_floating_point()]
    if not named:
        return None
    ok = torch.stack([torch.isfinite(v).all() for _, v in named])
    if bool(ok.all()):
        return None
    return named[int((~ok).nonzero()[0, 0])][0]


def _save(spec: LoopSpec, optimizer, step: int, epoch: int, epoch_stats, digest: int = 0,
          name: str = "last.pt", extra: Optional[Dict[str, Any]] = None):
    # path_digest: the running crc32 of a partly done epoch's paths, so that a resumed run logs
    # the same digest (checkpoints without it resume with the digest restarted from 0)
    save_checkpoint(spec.ckpt_dir / name, dict(spec.ckpt_meta or {}, **(extra or {}), step=step,
                                               epoch=epoch, model=spec.model.state_dict(),
                                               optimizer=optimizer.state_dict(),
                                               epoch_stats=list(epoch_stats),
                                               path_digest=int(digest)))


def _append_metrics(path: Path, row: Dict[str, float]):
    try:
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    except OSError as exc:
        raise RlnasError(f"cannot write {path}: {os_error_text(exc)}") from None


# ----------------------------------------------------------------------------------------------
# Supernet training: `rlnas train`
# ----------------------------------------------------------------------------------------------
def prepare_training_data(cfg: Dict[str, Any]):
    """Training images per the config: the NB201 half where asked, then the subset."""
    d = cfg["data"]
    data = load_dataset(d["dataset"], d["root"], split="train")
    notes = [f"{data.name}: {data.source}"]
    if d.get("nb201_half"):
        idx, desc = nb201_train_half(data, d.get("split_file"), seed=cfg["seed"])
        data = data.subset(idx)
        notes.append(desc)
    if d.get("subset"):
        if d["subset"] > len(data.y):
            raise RlnasError(f"data.subset={d['subset']} exceeds the {len(data.y)} training images")
        data = data.subset(np.arange(d["subset"]))
        notes.append(f"first {d['subset']} images kept (data.subset)")
    return data, "; ".join(notes)


def model_meta(cfg: Dict[str, Any], num_classes: int) -> Dict[str, Any]:
    """Identity fields stored in every checkpoint and checked when one is loaded."""
    return {"space": cfg["space"], "model_config": dict(cfg["model"]),
            "num_classes": int(num_classes)}


def train_supernet(cfg: Dict[str, Any], run_dir, progress=True, stop_at_step=None,
                   note: Optional[str] = None) -> Dict:
    """Train (or resume) the supernet of ``cfg`` in ``run_dir``; under torchrun, one process
    per device trains the same path on its share of each global batch (rank 0 writes).
    ``note`` is printed (stderr, rank 0) once the data and run directory are checked and
    training is about to start. The run is locked meanwhile (``rlnas.files.run_lock``): a second
    process on it is refused, naming this one."""
    run_dir = make_dir(Path(run_dir))
    with run_lock(run_dir, "train"):
        return _train_supernet(cfg, run_dir, progress, stop_at_step, note)


def _train_supernet(cfg: Dict[str, Any], run_dir: Path, progress, stop_at_step, note) -> Dict:
    saved_cfg = run_dir / "config.yaml"
    resume = check_run_dir(cfg, run_dir)
    check_tensorboard(run_dir)  # a missing tensorboard package fails before the data loads
    space = recorded_space(cfg["space"], run_dir / "config.yaml")
    dist, device = init_distributed(cfg["device"])
    t = cfg["train"]
    check_parallel(t, dist)
    data, data_desc = prepare_training_data(cfg)
    lab = cfg["labels"]
    k = lab["num_classes"] or data.num_classes
    labels_path = run_dir / "labels.npz"
    if labels_path.exists():
        labels, meta = load_labels(labels_path)
        if len(labels) != len(data.y) or meta.get("kind") != lab["kind"]:
            raise RlnasError(f"{labels_path} holds {len(labels)} {meta.get('kind')} labels but the "
                             f"data has {len(data.y)} images; the run's data changed")
        label_desc = meta.get("description", "")
    else:
        labels, label_desc = make_labels(lab["kind"], data.y, k, lab["seed"])
    dist.barrier()  # every rank has checked the run directory before rank 0 writes to it
    if dist.main:
        make_dir(run_dir / "ckpt", "checkpoint folder")
        atomic_write_text(saved_cfg, config_mod.dump(cfg))
        if not labels_path.exists():
            save_labels(labels_path, labels, {"kind": lab["kind"], "num_classes": int(k),
                                              "seed": lab["seed"], "description": label_desc})
        info = {"space": cfg["space"], "dataset": data.name, "data": data_desc,
                "labels": label_desc, "num_images": int(len(data.y)), "num_classes": int(k),
                "dataset_classes": int(data.num_classes),
                "image_size": int(data.image_size[0]),
                "train_resolution": int(cfg["data"].get("resolution") or data.image_size[0]),
                "device": str(device),
                "processes": dist.world,
                # what the checkpoints are trained with: config.yaml may be edited, this is
                # the record a resume and every later stage compare with
                "config": cfg}
        atomic_write_text(run_dir / "run.json", json.dumps(info, indent=2) + "\n")

    torch.manual_seed(cfg["seed"])  # W0 is a function of the seed
    model = space.supernet(num_classes=k, **cfg["model"]).to(device)
    if CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)
    loader = make_loader(data, labels, t["batch_size"], device=device, seed=cfg["seed"],
                         augment=cfg["data"]["augment"], channels_last=CHANNELS_LAST,
                         resolution=cfg["data"].get("resolution"),
                         transform=cfg["data"].get("transform"))
    num_cells = model.num_search_cells
    seed = cfg["seed"]
    meta = model_meta(cfg, k)
    spec = LoopSpec(model=model, loader=loader, epochs=t["epochs"], lr=t["lr"],
                    lr_min=t["lr_min"], momentum=t["momentum"], nesterov=t["nesterov"],
                    weight_decay=t["weight_decay"], device=device, precision=cfg["precision"],
                    lr_schedule=t["lr_schedule"], label_smoothing=t["label_smoothing"],
                    grad_clip_norm=t["grad_clip_norm"], grad_clip_value=t["grad_clip_value"],
                    wd_conv_only=t["wd_conv_only"], wd_classifier=t.get("wd_classifier", False),
                    accumulate=t["accumulate"], dist=dist,
                    grad_sync=t["grad_sync"],
                    path_fn=lambda step: space.sample_training_path(seed, step, num_cells),
                    ckpt_dir=run_dir / "ckpt", ckpt_every_steps=t["ckpt_every_steps"],
                    keep_every_epochs=t["keep_every_epochs"], ckpt_meta=meta,
                    metrics_path=run_dir / "metrics.csv", progress=progress, desc="supernet")
    optimizer = make_optimizer(spec)
    ckpt = start_or_resume(spec, optimizer, run_dir, resume)
    if ckpt.get("finished"):
        return {"resumed": True, "already_done": True, "steps": int(ckpt["step"])}
    start, epoch_stats = int(ckpt.get("step", 0)), ckpt.get("epoch_stats")
    if t.get("stop_when_stable") is not None:
        state0 = (load_checkpoint(run_dir / "ckpt" / "init.pt", expect=meta)["model"] if resume
                  else {k: v.detach().clone() for k, v in model.state_dict().items()})
        spec.epoch_callback = StabilityStop(space, state0, model, t["stop_when_stable"],
                                            t["stability_every"], run_dir / "stability.csv",
                                            ckpt.get("stability_prev"), dist.main,
                                            variant=training_variant(cfg))
    total = loader.steps_per_epoch * t["epochs"]
    if start >= total:
        return {"resumed": True, "already_done": True, "steps": total}
    if note and dist.main:
        print(note, file=sys.stderr)
    last = run_loop(spec, optimizer, start_step=start, stop_at_step=stop_at_step,
                    epoch_stats=epoch_stats, path_digest=int(ckpt.get("path_digest", 0)))
    return dict(last, resumed=bool(start), steps=total)


# what a run or retraining writes right after its config.yaml
_WRITTEN_WITH_CONFIG = ("run.json", "labels.npz", "arch.json")


def check_run_dir(cfg: Dict[str, Any], run_dir: Path) -> bool:
    """True when ``run_dir`` holds a run to resume (with a compatible config)."""
    saved = run_dir / "config.yaml"
    # a config.yaml alone may be the user's own: a run has what rlnas writes next to it
    if saved.exists() and any((run_dir / n).exists() for n in _WRITTEN_WITH_CONFIG):
        config_mod.check_resume_compatible(config_mod.load_yaml(saved), cfg, run_dir)
        check_recorded_config(cfg, run_dir)
        resume = (run_dir / "ckpt" / "last.pt").exists()
        if resume and not (run_dir / "arch.json").exists() \
                and not (run_dir / "ckpt" / "init.pt").exists():
            raise RlnasError(f"run {run_dir} has ckpt/last.pt but no ckpt/init.pt (W0): the "
                             f"angle can never rank it, so it is not resumed; train a new run "
                             f"with --out NEW")
        return resume
    try:  # the lock file alone (a run that failed before writing anything) is not a run
        foreign = run_dir.exists() and any(p.name != LOCK_NAME for p in run_dir.iterdir())
    except OSError as exc:
        raise RlnasError(f"cannot read run directory {run_dir}: {os_error_text(exc)}") from None
    if foreign:
        raise RlnasError(f"{run_dir} exists and is not an rlnas run (no config.yaml); "
                         "choose an empty or new directory")
    return False


def recorded_config(run_dir: Path, info: Optional[Dict[str, Any]] = None
                    ) -> Optional[Dict[str, Any]]:
    """The config a run's checkpoints were trained with, as recorded in its run.json when
    training started (``info``: that run.json, already read); None for runs made before rlnas
    recorded it (or an unreadable run.json)."""
    if info is None:
        try:
            info = json.loads((run_dir / "run.json").read_text())
        except (OSError, ValueError):
            return None
    recorded = info.get("config") if isinstance(info, dict) else None
    # completed as config.yaml is: keys a later rlnas added take the defaults that keep the
    # behaviour the run was trained with
    return config_mod.complete(recorded) if isinstance(recorded, dict) else None


def check_recorded_config(cfg: Dict[str, Any], run_dir: Path, keys=None,
                          info: Optional[Dict[str, Any]] = None) -> None:
    """RlnasError unless ``cfg`` may continue (``keys``: only those keys may differ from) what
    the run was trained with (run.json); runs without the record are not checked.

    Args:
        cfg: the config of the command (read from the possibly edited config.yaml).
        run_dir: the run.
        keys: None (resume: :func:`rlnas.config.check_resume_compatible`) or the dotted keys
            that a later stage depends on (rank, search: the space, scorer and model).
        info: the run's run.json where the caller has read it already."""
    recorded = recorded_config(run_dir, info)
    if recorded is None:
        return
    how = ("its config.yaml was edited after training (run.json records what the checkpoints "
           "were trained with): restore config.yaml, or train a new run with --out NEW")
    if keys is None:
        try:
            config_mod.check_resume_compatible(recorded, cfg, run_dir)
        except RlnasError as err:
            raise RlnasError(f"{err}; {how}") from None
        return
    a, b = config_mod.flatten(recorded), config_mod.flatten(cfg)
    for k in sorted(set(a) | set(b)):
        if any(k == p or k.startswith(p + ".") for p in keys) and a.get(k) != b.get(k):
            raise RlnasError(f"run {run_dir} was trained with {k}={a.get(k)!r}, but its "
                             f"config.yaml says {b.get(k)!r}; {how}")


def check_parallel(t: Dict[str, Any], dist: Dist):
    if t["batch_size"] < dist.world * t["accumulate"]:
        raise RlnasError(f"global batch {t['batch_size']} is smaller than processes x "
                         f"accumulate = {dist.world} x {t['accumulate']}")
    if t["grad_sync"] not in ("coalesced", "ddp"):
        raise RlnasError(f"train.grad_sync must be coalesced or ddp, got {t['grad_sync']!r}")


def start_or_resume(spec: LoopSpec, optimizer, run_dir: Path, resume: bool) -> Dict[str, Any]:
    """Load ``ckpt/last.pt`` into model and optimizer (returned), or save W0 as ``ckpt/init.pt``
    before the first step (returns {})."""
    if resume:
        ckpt = load_checkpoint(run_dir / "ckpt" / "last.pt", expect=spec.ckpt_meta)
        if ckpt.get("finished"):
            return ckpt
        spec.model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if int(ckpt["step"]) > 0 and spec.dist.main:
            # metrics rows of a partly logged epoch are re-logged from the checkpoint on
            _truncate_metrics(run_dir / "metrics.csv",
                              int(ckpt["step"]) // spec.loader.steps_per_epoch)
        return ckpt
    if spec.dist.main:
        save_checkpoint(run_dir / "ckpt" / "init.pt", dict(spec.ckpt_meta, step=0, epoch=0,
                                                           model=spec.model.state_dict()))
        try:
            (run_dir / "metrics.csv").unlink(missing_ok=True)
        except OSError as exc:
            raise RlnasError(f"cannot remove {run_dir / 'metrics.csv'}: {os_error_text(exc)}") \
                from None
    return {}


def training_variant(cfg: Dict[str, Any]) -> str:
    """The angle variant that follows a run over training: its search scorer where that is one
    (``rlnas.angle.VARIANTS``), else the paper's angle."""
    from .angle import VARIANTS
    name = config_mod.search_scorer(cfg)
    return name if name in VARIANTS else "angle"


class StabilityStop:
    """Stop supernet training once the angle ranking has settled (an extension of the paper).

    Every ``every`` epochs the angle (the run's variant, ``training_variant``) of a fixed set of
    archs (all of them where the space is enumerable, else 2,000 seeded samples) is computed from
    W0 and the current weights; training stops when Kendall's tau with the previous check is
    >= 1 - ``tol``. The previous ranking
    travels in the checkpoint, so a resumed run decides exactly as an uninterrupted one."""

    def __init__(self, space, state0, model, tol, every, log_path, prev=None, write=True,
                 variant="angle"):
        if not (0 <= float(tol) < 1) or int(every) < 1:
            raise RlnasError(f"train.stop_when_stable must be in [0, 1) and train.stability_every "
                             f">= 1, got {tol!r} and {every!r}")
        self.space, self.state0, self.model, self.variant = space, state0, model, variant
        self.tol, self.every, self.log_path, self.write = float(tol), int(every), log_path, write
        archs = space.enumerate()
        if archs is None:
            rng = np.random.default_rng(0)
            archs = np.array([space.sample(rng) for _ in range(2000)])
        self.archs = archs
        self.prev = None if prev is None else np.asarray(prev, dtype=np.float64)

    def __call__(self, epoch: int, extra: Dict[str, Any]) -> bool:
        if epoch % self.every:
            return False
        stateT = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        angles = AngleScorer.from_states(self.space, self.state0, stateT, self.variant)(self.archs)
        tau = None if self.prev is None else float(kendalltau(self.prev, angles).statistic)
        self.prev = angles
        extra["stability_prev"] = torch.from_numpy(angles)
        if tau is not None:
            extra["scalars"] = {"stability_tau": tau}  # TensorBoard only, not the checkpoint
        stop = tau is not None and tau >= 1 - self.tol
        if self.write:
            try:
                new = not self.log_path.exists()
                with open(self.log_path, "a") as f:
                    if new:
                        f.write("epoch,tau_previous,stop\n")
                    f.write(f"{epoch},{'' if tau is None else f'{tau:.6f}'},{int(stop)}\n")
            except OSError as exc:
                raise RlnasError(f"cannot write {self.log_path}: {os_error_text(exc)}") from None
        return stop


def _truncate_metrics(path: Path, epochs_done: int):
    if not path.exists():
        return
    with open(path) as f:
        rows = list(csv.reader(f))
    keep = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= epochs_done]
    atomic_write_text(path, "".join(",".join(r) + "\n" for r in keep))


# ----------------------------------------------------------------------------------------------
# Loading a trained run
# ----------------------------------------------------------------------------------------------
@dataclass
class Run:
    path: Path
    cfg: Dict[str, Any]
    info: Dict[str, Any]

    @property
    def space(self):
        return recorded_space(self.cfg["space"], self.path / "config.yaml")

    @property
    def meta(self):
        return model_meta(self.cfg, self.info["num_classes"])

    def checkpoint_state(self, name: str) -> Dict[str, torch.Tensor]:
        ckpt = load_checkpoint(self.path / "ckpt" / name, expect=self.meta)
        model = self.space.supernet(num_classes=self.info["num_classes"], **self.cfg["model"])
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise RlnasError(f"checkpoint {self.path / 'ckpt' / name} does not match the "
                             f"{self.cfg['space']} supernet of this run "
                             f"({str(err).splitlines()[0][:100]})") from None
        return {k: v.detach().cpu() for k, v in ckpt["model"].items()}


def open_run(path) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise RlnasError(f"run directory {path} not found")
    if not (path / "config.yaml").exists() or not (path / "run.json").exists():
        raise RlnasError(f"{path} is not an rlnas run (no config.yaml/run.json); "
                         "create one with `rlnas train`")
    cfg = config_mod.read_config_file(path / "config.yaml")
    config_mod.validate(cfg, where=path / "config.yaml")
    info = read_run_info(path / "run.json")
    # rank and search would score by another scorer or space and replace the run's results
    check_recorded_config(cfg, path, keys=("space", "search.scorer", "model", "labels"),
                          info=info)
    return Run(path, cfg, info)


def read_run_info(path: Path) -> Dict[str, Any]:
    """A run's ``run.json``, checked: a damaged file is one line naming it, not a traceback.

    Args:
        path: the ``run.json`` file.

    Returns:
        The run's record, a mapping holding a positive integer ``num_classes``.
    """
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RlnasError(f"{path} is corrupt (not JSON text)") from None
    if not isinstance(info, dict):
        raise RlnasError(f"{path} is corrupt: it must hold a JSON object, not "
                         f"{type(info).__name__}")
    k = info.get("num_classes")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise RlnasError(f"{path} is corrupt: num_classes must be a positive integer, "
                         f"found {k!r}")
    return info
