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
import io
import math
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import load_checkpoint, load_model_state, save_checkpoint
from .data import DeviceLoader
from .distributed import Dist, allreduce_grads, autocast_dtype, check_same_paths, global_sum
from .errors import RlnasError
from .files import append_csv_row, atomic_write_text, csv_number, os_error_text, read_csv_rows
from .schema import BY_PATH, TrainSection
from .tensorboard import open_tensorboard


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


def _default(key: str):
    return BY_PATH[f"train.{key}"].default


@dataclass
class LoopSpec:
    """What differs between a supernet and a standalone network run. Built from a config's
    train section by :meth:`from_train`; the recipe fields are train keys of the same names
    (their defaults are the schema's). The keyword form is for loops no config describes."""

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
    lr_schedule: str = _default("lr_schedule")
    warmup_epochs: int = _default("warmup_epochs")
    before_epoch: Optional[Callable[[int], None]] = None  # e.g. the drop-path schedule
    label_smoothing: float = _default("label_smoothing")
    grad_clip_norm: Optional[float] = _default("grad_clip_norm")
    grad_clip_value: Optional[float] = _default("grad_clip_value")
    wd_conv_only: bool = _default("wd_conv_only")
    wd_classifier: bool = _default("wd_classifier")  # with wd_conv_only: linear layers too
    aux_weight: float = _default("aux_weight")  # auxiliary-head loss (standalone DARTS networks)
    accumulate: int = _default("accumulate")  # micro-batches per step and process
    dist: Dist = field(default_factory=Dist)
    grad_sync: str = _default("grad_sync")  # coalesced all-reduce of touched grads | ddp
    ckpt_dir: Optional[Path] = None  # None: no checkpoints (short retraining)
    ckpt_every_steps: int = _default("ckpt_every_steps")
    keep_every_epochs: int = _default("keep_every_epochs")
    ckpt_meta: Optional[Dict[str, Any]] = None
    # called at each epoch end with (epoch, extra checkpoint fields); True stops training. A
    # "scalars" dict put in extra is logged to TensorBoard (when on) and not saved; a
    # "log_rows" dict {file name: row} adds the epoch's rows to logs of ``epoch_logs``.
    epoch_callback: Optional[Callable[[int, Dict[str, Any]], bool]] = None
    # why epoch_callback may stop training before ``epochs`` (e.g. "when stable"): the progress
    # bar then counts the current epoch, so that its ETA is never that of a schedule not run
    may_stop_early: Optional[str] = None
    # metrics.csv: a row per epoch; every log's rows (metrics.csv's and those of the files
    # epoch_logs names, beside it: a retraining's eval.csv) are appended once the epoch's
    # checkpoint is on disk
    metrics_path: Optional[Path] = None
    epoch_logs: Dict[str, Tuple[str, ...]] = field(default_factory=dict)  # name -> columns
    # columns of those logs that may be empty (stability.csv's tau_previous at its first check)
    epoch_log_blanks: Tuple[str, ...] = ()
    progress: bool = True
    desc: str = "train"

    @classmethod
    def from_train(cls, train: TrainSection, model: nn.Module, loader, device: torch.device,
                   **options) -> "LoopSpec":
        """The loop of a config's train section: every recipe key read in this one place.

        Args:
            train: the ``train`` section (``cfg.train``, or ``TrainSection.of(...)`` for a
                budget no config holds).
            model, loader, device: what is trained, on what, where.
            **options: the other fields (``precision``, ``dist``, ``path_fn``, ``ckpt_dir``,
                ``ckpt_meta``, ``metrics_path``, callbacks, ``progress``, ``desc``).

        Returns:
            the LoopSpec.
        """
        return cls(model=model, loader=loader, device=device, epochs=train.epochs, lr=train.lr,
                   lr_min=train.lr_min, momentum=train.momentum, nesterov=train.nesterov,
                   weight_decay=train.weight_decay, lr_schedule=train.lr_schedule,
                   warmup_epochs=train.warmup_epochs, label_smoothing=train.label_smoothing,
                   grad_clip_norm=train.grad_clip_norm, grad_clip_value=train.grad_clip_value,
                   wd_conv_only=train.wd_conv_only, wd_classifier=train.wd_classifier,
                   aux_weight=train.aux_weight, accumulate=train.accumulate,
                   grad_sync=train.grad_sync, ckpt_every_steps=train.ckpt_every_steps,
                   keep_every_epochs=train.keep_every_epochs, **options)


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
    net = _ddp_wrapped(spec) if dist.world > 1 and spec.grad_sync == "ddp" else model
    amp = autocast_dtype(spec.precision, dev)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    spe = loader.steps_per_epoch
    total = spe * spec.epochs
    # TensorBoard first: a missing package fails before a progress bar is drawn
    board = open_tensorboard(spec, start_step // spe + 1) if dist.main else None
    bar = _progress(spe, start_step, spec) if dist.main else None
    last: Dict[str, float] = {}
    stats = [float(v) for v in (epoch_stats or (0.0, 0.0, 0))] if dist.main else [0.0, 0.0, 0]
    # the running sums of the epoch: loss x images, correct, images
    running = (torch.tensor(stats[0], device=dev), torch.tensor(stats[1], device=dev),
               torch.tensor(float(stats[2]), device=dev))
    t0, digest = time.time(), int(path_digest)
    guard = _Guard(spec, start_step)
    model.train()
    try:
        for step in range(start_step, total):
            if stop_at_step is not None and step == stop_at_step:
                raise KeyboardInterrupt(f"stopped at step {step}")
            epoch = step // spe
            lr, path = _begin_step(spec, optimizer, guard, step, start_step)
            if path is not None:
                digest = zlib.crc32(np.ascontiguousarray(path).tobytes(), digest)
            _train_step(spec, net, optimizer, scaler, amp, step, path, guard, running)
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
                last, stop = _end_epoch(spec, optimizer, guard, board, bar, epoch + 1, done,
                                        total, lr, running, t0, digest)
                if stop:
                    break
                if bar is not None and spec.may_stop_early and done < total:
                    bar.reset(total=spe)  # the next epoch's bar: its own ETA
                    bar.set_description(progress_desc(spec, epoch + 1))
                for value in running:
                    value.zero_()
                t0, digest = time.time(), 0
            elif save:
                totals = global_sum(dist, torch.stack([running[0], running[1].float(),
                                                       running[2]]))
                if dist.main:
                    guard.save(optimizer, done, epoch, [float(v) for v in totals], digest)
    finally:  # a divergence, full disk or Ctrl-C leaves no half-drawn bar before its message
        if bar is not None:
            bar.close()
        if board is not None:
            board.close()
    dist.barrier()
    return last


def _ddp_wrapped(spec: LoopSpec) -> nn.Module:
    """The model in DDP's bucketed reducer (``grad_sync='ddp'``), for paths that leave some
    parameters without gradients."""
    dev = spec.device
    return nn.parallel.DistributedDataParallel(
        spec.model, device_ids=[dev.index] if dev.type == "cuda" else None,
        find_unused_parameters=True, broadcast_buffers=False)


def _begin_step(spec: LoopSpec, optimizer, guard: _Guard, step: int, start_step: int):
    """(learning rate, path) of ``step``: the rate set in the optimizer and told to the guard,
    the epoch's hook called at its first step (or the first step run), the path sampled."""
    spe = spec.loader.steps_per_epoch
    lr = learning_rate(spec.lr_schedule, step, spe, spec.epochs, spec.lr, spec.lr_min,
                       spec.warmup_epochs)
    guard.begin(lr)
    if spec.before_epoch and (step % spe == 0 or step == start_step):
        spec.before_epoch(step // spe)
    for g in optimizer.param_groups:
        g["lr"] = lr
    path = spec.path_fn(step) if spec.path_fn else None
    return lr, path


def _train_step(spec: LoopSpec, net: nn.Module, optimizer, scaler, amp, step: int, path,
                guard: _Guard, running) -> None:
    """One update on the global batch of ``step``: its ``world x accumulate`` parts forward and
    backward (each loss weighted by its part's share), the gradients summed over processes,
    clipped, and the optimizer's step. Adds each part's loss, correct count and images to
    ``running``."""
    model, loader, dev, dist = spec.model, spec.loader, spec.device, spec.dist
    loss_sum, correct, seen = running
    parts = dist.world * spec.accumulate
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
        allreduce_grads(model)
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


def _end_epoch(spec: LoopSpec, optimizer, guard: _Guard, board, bar, ep: int, done: int,
               total: int, lr: float, running, t0: float,
               digest: int) -> Tuple[Dict[str, Any], bool]:
    """(the epoch's metrics, whether training stops) at the end of epoch ``ep`` (1-based), whose
    last step is ``done``: the metrics summed over processes, the epoch callback, TensorBoard,
    the checkpoints, then the log rows (appended once their checkpoint is on disk)."""
    dist = spec.dist
    check_same_paths(dist, digest, ep)
    loss_sum, correct, seen = running
    totals = global_sum(dist, torch.stack([loss_sum, correct.float(), seen]))
    secs = time.time() - t0
    n = max(float(totals[2]), 1.0)
    last = {"epoch": ep, "step": done, "lr": lr, "loss": float(totals[0]) / n,
            "train_acc": 100.0 * float(totals[1]) / n,
            "images_per_s": float(totals[2]) / max(secs, 1e-9), "seconds": secs,
            "path_digest": f"{digest:08x}"}
    if bar is not None:
        bar.set_postfix(epoch=ep, loss=f"{last['loss']:.3f}",
                        acc=f"{last['train_acc']:.1f}")
    # the epoch's log rows, by file: appended once its checkpoint is on disk, and
    # carried in it (a kill between the two leaves them to the resume: sync_logs)
    rows = {spec.metrics_path.name: metrics_row(last)} if spec.metrics_path else {}
    extra: Dict[str, Any] = {}
    stop = bool(spec.epoch_callback and spec.epoch_callback(ep, extra))
    scalars = extra.pop("scalars", None) or {}
    rows.update(extra.pop("log_rows", None) or {})
    if board is not None:
        board.epoch(ep, last, scalars)
    if stop:
        extra["finished"] = True
        # early only before the schedule's end: stable at the last epoch is the end
        last["stopped_early"] = done < total
    if dist.main and spec.ckpt_dir:
        extra["log_rows"] = rows
        guard.save(optimizer, done, ep, (0.0, 0.0, 0), extra=extra)
        if spec.keep_every_epochs and (ep % spec.keep_every_epochs == 0 or stop):
            guard.save(optimizer, done, ep, (0.0, 0.0, 0), name=f"epoch_{ep}.pt",
                       extra=extra)
    if dist.main:
        logs = {path.name: path for path in _logs(spec)}
        for name, row in rows.items():
            append_csv_row(logs[name], row, row.values())
    return last, stop


def metrics_row(last: Dict[str, Any]) -> Dict[str, str]:
    """An epoch's metrics as the text of its metrics.csv row (floats to 6 significant digits)."""
    return {k: (f"{v:.6g}" if isinstance(v, float) else str(v)) for k, v in last.items()}


def progress_desc(spec: LoopSpec, epochs_done: int) -> str:
    """The progress bar's label: ``spec.desc``, and where training may stop before the end of
    its schedule (``spec.may_stop_early``), the epoch it counts and that it may be the last."""
    if not spec.may_stop_early:
        return spec.desc
    return (f"{spec.desc} epoch {epochs_done + 1} (up to {spec.epochs}, may stop early "
            f"{spec.may_stop_early})")


def _progress(steps_per_epoch: int, start: int, spec: LoopSpec):
    """The bar over the schedule's steps; where training may stop early, over the current
    epoch's steps (``run_loop`` resets it each epoch): a total and ETA of the whole schedule
    would promise steps that may never run."""
    if not spec.progress:
        return None
    from tqdm.auto import tqdm
    if spec.may_stop_early:
        total, initial = steps_per_epoch, start % steps_per_epoch
    else:
        total, initial = steps_per_epoch * spec.epochs, start
    return tqdm(total=total, initial=initial, desc=progress_desc(spec, start // steps_per_epoch),
                unit="step", mininterval=1.0, dynamic_ncols=True, leave=False)


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
        losses = global_sum(self.spec.dist, self.losses[:n]).tolist() if n else []
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


def start_or_resume(spec: LoopSpec, optimizer, run_dir: Path, resume: bool) -> Dict[str, Any]:
    """Load ``ckpt/last.pt`` into model and optimizer (returned), or save W0 as ``ckpt/init.pt``
    before the first step (returns {})."""
    if resume:
        ckpt = load_checkpoint(run_dir / "ckpt" / "last.pt", expect=spec.ckpt_meta)
        last = run_dir / "ckpt" / "last.pt"
        load_model_state(spec.model, ckpt["model"], last, spec.ckpt_meta["space"])
        check_training_state(ckpt, optimizer, last, spec.loader.steps_per_epoch * spec.epochs)
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError, TypeError, RuntimeError) as err:
            raise RlnasError(f"{last} is damaged: its optimizer state does not load "
                             f"({str(err).splitlines()[0][:100]})") from None
        if spec.dist.main:
            sync_logs(spec, int(ckpt["step"]) // spec.loader.steps_per_epoch,
                      ckpt.get("log_rows"))
        return ckpt  # a run stopped early ("finished") is not trained further
    if spec.dist.main:
        save_checkpoint(run_dir / "ckpt" / "init.pt", dict(spec.ckpt_meta, step=0, epoch=0,
                                                           model=spec.model.state_dict()))
        clear_logs(spec)
    return {}


def check_training_state(ckpt: Dict[str, Any], optimizer, path: Path, total_steps: int) -> None:
    """RlnasError (one line naming ``path``) unless ``ckpt`` holds a training state this run
    can resume: a step in [0, total_steps]; the optimizer state of this model and recipe (as
    many parameter groups and parameters, momentum buffers shaped as their parameters, the
    configured momentum, dampening, nesterov and weight decay); the running metrics of a partly
    done epoch (three finite numbers) and its path digest (a crc32).

    Args:
        ckpt: the loaded checkpoint (model already checked).
        optimizer: the optimizer built for the run (its groups hold the parameters).
        path: the checkpoint file, for the message.
        total_steps: the steps of the whole run."""
    def damaged(what: str) -> RlnasError:
        return RlnasError(f"{path} is damaged: {what}; it cannot be resumed (restore it, or "
                          f"train a new run with --out NEW)")

    step = ckpt.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= total_steps:
        raise damaged(f"its step is {step!r}, not one of the run's {total_steps} steps")
    opt = ckpt.get("optimizer")
    if not isinstance(opt, dict) or not isinstance(opt.get("state"), dict) or \
            not isinstance(opt.get("param_groups"), list):
        raise damaged("it holds no optimizer state (state and param_groups)")
    saved, groups = opt["param_groups"], optimizer.param_groups
    sizes = [len(g["params"]) for g in groups]
    got = [len(s["params"]) if isinstance(s, dict) and isinstance(s.get("params"), list)
           else None for s in saved]
    if got != sizes:
        raise damaged(f"its optimizer has parameter groups of {got} parameters, the run's "
                      f"{sizes}")
    for s, g in zip(saved, groups):
        for key in ("momentum", "dampening", "nesterov", "weight_decay"):
            if key in s and key in g and s[key] != g[key]:
                raise damaged(f"its optimizer's {key} is {s[key]!r}, the run's recipe "
                              f"{g[key]!r}")
    params = dict(zip((i for s in saved for i in s["params"]),
                      (p for g in groups for p in g["params"])))
    for index, state in opt["state"].items():
        if index not in params or not isinstance(state, dict):
            raise damaged(f"its optimizer state names parameter {index!r}, which the run's "
                          f"optimizer does not have")
        p = params[index]
        for key, value in state.items():
            ok = (value is None or torch.is_tensor(value) and value.is_floating_point()
                  and value.shape == p.shape) if key == "momentum_buffer" else \
                torch.is_tensor(value) or isinstance(value, (int, float))
            if not ok:
                shown = (f"a tensor of shape {tuple(value.shape)}" if torch.is_tensor(value)
                         else f"a {type(value).__name__}")
                raise damaged(f"its optimizer's {key} of parameter {index} is {shown}, not a "
                              f"float tensor of shape {tuple(p.shape)}")
    stats = ckpt.get("epoch_stats")
    if stats is not None and not (isinstance(stats, (list, tuple)) and len(stats) == 3 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in stats)):
        raise damaged(f"its epoch_stats are {stats!r}, not three finite numbers")
    digest = ckpt.get("path_digest", 0)
    if isinstance(digest, bool) or not isinstance(digest, int) or not 0 <= digest < 2**32:
        raise damaged(f"its path_digest is {digest!r}, not a crc32")


def _logs(spec: LoopSpec) -> Dict[Path, Dict[str, Any]]:
    """The run's logs of one row per epoch, each with how :func:`read_epoch_log` checks it:
    metrics.csv (a row for every epoch) and, beside it, those of ``epoch_logs`` (their
    columns)."""
    if spec.metrics_path is None:
        return {}
    folder = spec.metrics_path.parent
    return {spec.metrics_path: {"every_epoch": True},
            **{folder / name: {"every_epoch": False, "columns": columns,
                               "blanks": spec.epoch_log_blanks}
               for name, columns in spec.epoch_logs.items()}}


def sync_logs(spec: LoopSpec, epochs_done: int, carried: Optional[Dict[str, Any]]) -> None:
    """On resume, make each log hold exactly the epochs the checkpoint completed: rows of later
    epochs (an older rlnas logged a row before its checkpoint was safe) are removed, saying so
    in one line on stderr; the checkpoint's own epoch row (``carried``, by file name, in an
    epoch-end checkpoint) is added where a kill came between the checkpoint and its row.

    Args:
        spec: the loop (its logs).
        epochs_done: the epochs the checkpoint completed.
        carried: the checkpoint's ``log_rows``, or None.

    Raises:
        RlnasError: a log is damaged, or lacks rows of epochs the checkpoint holds."""
    carried = carried if isinstance(carried, dict) else {}
    for path, how in _logs(spec).items():
        every_epoch = how["every_epoch"]
        try:
            header, rows = read_epoch_log(path, spec.epochs, **how)
            keep = [r for r in rows if int(r["epoch"]) <= epochs_done]
            dropped = [r["epoch"] for r in rows[len(keep):]]
            logged = int(keep[-1]["epoch"]) if keep else 0
            row = carried.get(path.name)
            restore = (isinstance(row, dict) and logged < epochs_done
                       and str(row.get("epoch")) == str(epochs_done))
            if every_epoch and keep and logged + restore < epochs_done:
                raise RlnasError(f"{path} is damaged: it logs epochs up to {logged}, but the "
                                 f"checkpoint the run continues from completed {epochs_done}")
        except RlnasError as err:  # the resumed run would append its rows to it
            raise RlnasError(f"{err}; restore it, or move it aside to resume (the run then logs "
                             f"only the epochs it trains from here)") from None
        if dropped:
            what = f"epoch {dropped[0]}" if len(dropped) == 1 else \
                f"epochs {dropped[0]}-{dropped[-1]}"
            print(f"note: {path} logged {what}, past the {epochs_done} epoch(s) of the "
                  f"checkpoint the run continues from: removed (logged again as the run trains "
                  f"it)", file=sys.stderr)
        if restore:
            header = header or list(row)
            keep.append({h: str(row.get(h, "")) for h in header})
        if keep and (dropped or restore):
            atomic_write_text(path, epoch_log_text(header, keep))
        elif dropped:
            _remove(path)


def clear_logs(spec: LoopSpec) -> None:
    """On a fresh start (no checkpoint), remove the logs an earlier start left: no checkpoint
    holds their epochs. Rows (or damage) are said in one line on stderr."""
    for path in _logs(spec):
        if not path.exists():
            continue
        try:
            _, rows = read_epoch_log(path, spec.epochs, every_epoch=False)
            what = f"{len(rows)} row(s)" if rows else ""
        except RlnasError:
            what = "damaged rows"
        if what:
            print(f"note: {path} logged {what} for which no checkpoint was kept: removed "
                  f"(training starts again from step 0)", file=sys.stderr)
        _remove(path)


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise RlnasError(f"cannot remove {path}: {os_error_text(exc)}") from None


def read_epoch_log(path, epochs: int, every_epoch: bool = True,
                   columns: Optional[Sequence[str]] = None, blanks: Sequence[str] = ()
                   ) -> Tuple[List[str], List[Dict[str, str]]]:
    """A log of one row per epoch that the loop's runs keep (``metrics.csv``; a retraining's
    ``eval.csv``, ``every_epoch=False``), checked: an ``epoch`` column (or exactly
    ``columns``), epochs in 1..``epochs`` in increasing order (with ``every_epoch`` one row per
    epoch from the first logged, which is later than 1 where a resume started a new log), every
    field a finite number (the path digest: hex).

    Args:
        path: the CSV file.
        epochs: the run's epochs.
        every_epoch: whether the log has a row for every epoch.
        columns: the header the log must have (None: any with an ``epoch`` column).
        blanks: columns that may be empty (no value at that epoch).

    Returns:
        (header, rows as dicts of the text written); ([], []) where the file does not exist.

    Raises:
        RlnasError: naming the file and the line when it is damaged.
    """
    path = Path(path)
    if not path.exists():
        return [], []
    rows = read_csv_rows(path, "a log of epochs", "")
    if not rows:
        return [], []
    header = rows[0]
    if "epoch" not in header or len(set(header)) != len(header) or not all(header) or (
            columns is not None and header != list(columns)):
        raise RlnasError(f"{path} is damaged: its header is {','.join(header)[:120]!r}, not "
                         f"the columns rlnas logs ({', '.join(columns or ['epoch', '...'])})")
    out, previous = [], 0
    for line, row in enumerate(rows[1:], start=2):
        rec = dict(zip(header, row))
        for key, text in rec.items():
            if key in blanks and text == "":
                continue
            if key == "path_digest":
                try:
                    int(text, 16)
                except ValueError:
                    raise RlnasError(f"{path} is damaged: line {line}, path_digest is "
                                     f"{text!r}") from None
            else:
                csv_number(text, path, line, key)
        epoch = rec["epoch"].strip()
        expected = previous + 1 if every_epoch and previous else None
        if not epoch.isdigit() or not previous < int(epoch) <= epochs or \
                expected is not None and int(epoch) != expected:
            wanted = (f"{expected}" if expected is not None else
                      f"an epoch in {previous + 1}..{epochs}")
            raise RlnasError(f"{path} is damaged: line {line} logs epoch {rec['epoch']!r}, "
                             f"expected {wanted} (the run has {epochs} epochs)")
        previous = int(epoch)
        out.append(rec)
    return header, out


def epoch_log_text(header: List[str], rows: List[Dict[str, str]]) -> str:
    """The CSV text of ``rows`` under ``header``, as :func:`read_epoch_log` returns them."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header:
        w.writerow(header)
    for r in rows:
        w.writerow([r[h] for h in header])
    return buf.getvalue()
