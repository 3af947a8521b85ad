"""`rlnas train`: the supernet trained on the run's labels (random by default) with the space's
path sampler, in the run directory (resumed exactly where one exists), and the optional stop
once the ranking is stable (``StabilityStop``)."""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch
from scipy.stats import kendalltau

from .. import config as config_mod
from ..angle import VARIANTS, AngleScorer
from ..checkpoint import load_checkpoint
from ..data import make_loader, prepare_training_data
from ..distributed import CHANNELS_LAST, check_parallel, init_distributed
from ..errors import RlnasError
from ..files import atomic_write_text, make_dir, run_lock
from ..labels import load_labels, make_labels, save_labels
from ..loop import LoopSpec, make_optimizer, run_loop, start_or_resume
from ..rundir import check_run_dir, model_meta
from ..schema import Config
from ..spaces import recorded_space
from ..tensorboard import check_tensorboard


def train_supernet(cfg: Dict[str, Any], run_dir, progress=True, stop_at_step=None,
                   note: Optional[str] = None,
                   before_training: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict:
    """Train (or resume) the supernet of ``cfg`` (a loaded config) in ``run_dir``; under
    torchrun, one process per device trains the same path on its share of each global batch
    (rank 0 writes). ``note`` is printed (stderr, rank 0) once the data and run directory are
    checked and training is about to start. ``before_training`` is called with the run's record
    (what run.json holds) once the data are loaded, before anything is written: ``rlnas run``
    checks its search there. The run is locked meanwhile (``rlnas.files.run_lock``): a second
    process on it is refused, naming this one; a refused first start leaves no folder behind."""
    new = not Path(run_dir).exists()
    run_dir = make_dir(Path(run_dir))
    try:
        with run_lock(run_dir, "train"):
            return _train_supernet(Config.of(cfg), run_dir, progress, stop_at_step, note,
                                   before_training)
    except BaseException:
        if new:  # rmdir: only if empty, i.e. nothing of the run was written
            with contextlib.suppress(OSError):
                run_dir.rmdir()
        raise


def _train_supernet(cfg: Config, run_dir: Path, progress, stop_at_step, note,
                    before_training=None) -> Dict:
    resume = check_run_dir(cfg, run_dir)
    check_tensorboard(run_dir)  # a missing tensorboard package fails before the data loads
    space = recorded_space(cfg.space, run_dir / "config.yaml")
    dist, device = init_distributed(cfg.device)
    train = cfg.train
    check_parallel(train, dist)
    data, data_desc = prepare_training_data(cfg)
    labels, k = _prepare_run(cfg, data, data_desc, run_dir, dist, device, space,
                             before_training)
    torch.manual_seed(cfg.seed)  # W0 is a function of the seed
    model = space.supernet(num_classes=k, **cfg.model).to(device)
    if CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)
    loader = make_loader(data, labels, train.batch_size, device=device, seed=cfg.seed,
                         augment=cfg.data.augment, channels_last=CHANNELS_LAST,
                         resolution=cfg.data.resolution, transform=cfg.data.transform)
    num_cells, seed, meta = model.num_search_cells, cfg.seed, model_meta(cfg, k)
    spec = LoopSpec.from_train(
        train, model, loader, device, precision=cfg.precision, dist=dist,
        path_fn=lambda step: space.sample_training_path(seed, step, num_cells),
        ckpt_dir=run_dir / "ckpt", ckpt_meta=meta, metrics_path=run_dir / "metrics.csv",
        progress=progress, desc="supernet")
    if train.stop_when_stable is not None:  # its log: appended after each epoch's checkpoint
        spec.epoch_logs[STABILITY_LOG] = STABILITY_COLUMNS  # and synced with it on resume
        spec.epoch_log_blanks = ("tau_previous",)
    optimizer = make_optimizer(spec)
    ckpt = start_or_resume(spec, optimizer, run_dir, resume)
    if ckpt.get("finished"):
        return {"resumed": True, "already_done": True, "steps": int(ckpt["step"])}
    start, epoch_stats = int(ckpt.get("step", 0)), ckpt.get("epoch_stats")
    if train.stop_when_stable is not None:
        state0 = (load_checkpoint(run_dir / "ckpt" / "init.pt", expect=meta)["model"] if resume
                  else {k: v.detach().clone() for k, v in model.state_dict().items()})
        spec.epoch_callback = StabilityStop(space, state0, model, train.stop_when_stable,
                                            train.stability_every, ckpt.get("stability_prev"),
                                            variant=training_variant(cfg))
        spec.may_stop_early = "when stable"
    total = loader.steps_per_epoch * train.epochs
    if start >= total:
        return {"resumed": True, "already_done": True, "steps": total}
    if note and dist.main:
        print(note, file=sys.stderr)
    last = run_loop(spec, optimizer, start_step=start, stop_at_step=stop_at_step,
                    epoch_stats=epoch_stats, path_digest=int(ckpt.get("path_digest", 0)))
    return dict(last, resumed=bool(start), steps=total)


def _prepare_run(cfg: Config, data, data_desc: str, run_dir: Path, dist, device, space,
                 before_training=None):
    """(labels, K): the run's labels, read back from ``labels.npz`` on a resume, else drawn;
    rank 0 writes ``config.yaml``, ``labels.npz`` and ``run.json`` (the record of what the
    checkpoints are trained with) once every rank has checked the run directory and what would
    fail later has been checked: the space on the training images, its model options, and
    ``before_training`` (called with the record)."""
    lab = cfg.labels
    labels_path = run_dir / "labels.npz"
    k = lab.num_classes or data.num_classes
    if labels_path.exists():
        labels, meta = load_labels(labels_path)
        if len(labels) != len(data.y) or meta.get("kind") != lab.kind:
            raise RlnasError(f"{labels_path} holds {len(labels)} {meta.get('kind')} labels but the "
                             f"data has {len(data.y)} images; the run's data changed")
        label_desc = meta.get("description", "")
    else:
        labels, label_desc = make_labels(lab.kind, data.y, k, lab.seed)
    # a network that cannot run on these images fails here, not at the first step
    space.check_image_size(data.image_size, cfg.data.resolution, int(k))
    with torch.device("meta"):  # model options the space refuses: before anything is written
        space.supernet(num_classes=k, **cfg.model)
    info = {"space": cfg.space, "dataset": data.name, "data": data_desc,
            "labels": label_desc, "num_images": int(len(data.y)), "num_classes": int(k),
            "dataset_classes": int(data.num_classes),
            "image_size": int(data.image_size[0]),
            "train_resolution": int(cfg.data.resolution or data.image_size[0]),
            "device": str(device),
            "processes": dist.world,
            # what the checkpoints are trained with: config.yaml may be edited, this is
            # the record a resume and every later stage compare with
            "config": cfg.tree()}
    if before_training is not None:
        before_training(info)
    dist.barrier()  # every rank has checked the run directory before rank 0 writes to it
    if dist.main:
        make_dir(run_dir / "ckpt", "checkpoint folder")
        atomic_write_text(run_dir / "config.yaml", config_mod.dump(cfg))
        if not labels_path.exists():
            save_labels(labels_path, labels, {"kind": lab.kind, "num_classes": int(k),
                                              "seed": lab.seed, "description": label_desc})
        atomic_write_text(run_dir / "run.json", json.dumps(info, indent=2) + "\n")
    return labels, k


def training_variant(cfg: Dict[str, Any]) -> str:
    """The angle variant that follows a run over training: its search scorer where that is one
    (``rlnas.angle.VARIANTS``), else the paper's angle."""
    name = config_mod.search_scorer(cfg)
    return name if name in VARIANTS else "angle"


STABILITY_LOG, STABILITY_COLUMNS = "stability.csv", ("epoch", "tau_previous", "stop")


class StabilityStop:
    """Stop supernet training once the angle ranking has settled (an extension of the paper).

    Every ``every`` epochs the angle (the run's variant, ``training_variant``) of a fixed set of
    archs (all of them where the space is enumerable, else 2,000 seeded samples) is computed from
    W0 and the current weights; training stops when Kendall's tau with the previous check is
    >= 1 - ``tol``. The previous ranking travels in the checkpoint, so a resumed run decides
    exactly as an uninterrupted one. Each check is a row of ``stability.csv`` (the loop's
    ``log_rows``: written after the epoch's checkpoint, carried in it)."""

    def __init__(self, space, state0, model, tol, every, prev=None, variant="angle"):
        if not (0 <= float(tol) < 1) or int(every) < 1:
            raise RlnasError(f"train.stop_when_stable must be in [0, 1) and train.stability_every "
                             f">= 1, got {tol!r} and {every!r}")
        self.space, self.state0, self.model, self.variant = space, state0, model, variant
        self.tol, self.every = float(tol), int(every)
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
        row = (epoch, "" if tau is None else f"{tau:.6f}", int(stop))
        extra["log_rows"] = {STABILITY_LOG: dict(zip(STABILITY_COLUMNS, row))}
        return stop
