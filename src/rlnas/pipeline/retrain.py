"""`rlnas retrain`: the found architecture as a standalone network, trained from scratch with the
TRUE labels on the same loop as the supernet (device-resident batches, autocast, torchrun, exact
resume) and evaluated on the test split (``eval.csv``, ``retrain.json``)."""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from .. import config as config_mod
from ..data import align_test_split, load_dataset, make_loader, prepare_training_data
from ..distributed import CHANNELS_LAST, check_parallel, init_distributed
from ..errors import RlnasError
from ..files import atomic_write_text, make_dir, run_lock
from ..loop import LoopSpec, make_optimizer, read_epoch_log, run_loop, start_or_resume
from ..rundir import check_run_dir
from ..schema import Config, DataSection
from ..spaces import recorded_space

EVAL_COLUMNS = ("epoch", "top1", "top5")  # eval.csv: the test evaluations of a retraining


def resolve_arch(space, spec: str) -> Tuple[tuple, str]:
    """An arch from its notation, from a ``result.json`` (its best arch) or from a run directory
    holding one. Returns (arch, where it came from)."""
    path = Path(spec)
    try:
        exists = path.exists()
    except OSError:  # e.g. a genotype string longer than a file name may be
        exists = False
    if not exists:
        return space.from_str(spec), "given on the command line"
    if path.is_dir():
        path = path / "result.json"
        if not path.exists():
            raise RlnasError(f"{spec} has no result.json; run `rlnas search {spec}` first")
    if path.suffix == ".json" and path.exists():
        try:
            res = json.loads(path.read_text())
            best, res_space = res["top"][0]["arch"], res["space"]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError):
            raise RlnasError(f"{path} is not an rlnas result.json") from None
        if res_space != space.name:
            raise RlnasError(f"{path} holds a {res_space} architecture, but the preset is for "
                             f"space {space.name}")
        return space.from_str(best), f"best of {path}"
    return space.from_str(spec), "given on the command line"


def _topk(out: torch.Tensor, y: torch.Tensor, k: int) -> int:
    k = min(k, out.shape[1])
    return int((out.topk(k, 1).indices == y[:, None]).any(1).sum())


@torch.no_grad()
def evaluate_network(model, loader) -> Dict[str, float]:
    """top-1 / top-5 (%) over all images of ``loader`` (an un-augmented one), one pass in its
    batches (so an image-folder loader decodes the next batch while this one is evaluated)."""
    model.eval()
    n, c1, c5 = loader.num_samples, 0, 0
    for step in range(loader.steps_per_epoch):
        x, y = loader.batch(step)
        out = model(x)
        c1 += _topk(out, y, 1)
        c5 += _topk(out, y, 5)
    model.train()
    return {"top1": 100.0 * c1 / n, "top5": 100.0 * c5 / n}


# The share of test images that may also be training images (real datasets hold a few exact
# duplicates) before a retraining is refused: beyond it the test accuracy measures memory.
TEST_OVERLAP_LIMIT = 0.01


def _image_keys(data):
    """One key per image: a digest of its uint8 pixels (in-memory sets), or its file path (image
    folders, decoded on the fly; hashing a million files would take longer than the check is
    worth)."""
    if getattr(data, "x", None) is None:
        return [os.path.abspath(p) for p in data.paths]
    x = np.ascontiguousarray(data.x).reshape(len(data.x), -1)
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in x]


def check_test_data(d: DataSection, data, data_desc: str, test) -> int:
    """Refuse a test set that is the training file, or shares more than TEST_OVERLAP_LIMIT of
    its images with the training set, unless ``data.allow_test_overlap`` asks for it; return
    how many test images are also training images. ``d``: the config's data section."""
    d = DataSection(d)
    allow, train_src, test_src = bool(d.allow_test_overlap), d.root, d.test_root or d.root
    if not allow and train_src and os.path.isfile(train_src) and os.path.isfile(test_src) and \
            os.path.samefile(train_src, test_src):
        raise RlnasError(f"the test data {test_src} is the training data file (data.root) "
                         f"itself; give held-out images as data.test_root, or set "
                         f"data.allow_test_overlap=true to train on the test set knowingly")
    train_keys = set(_image_keys(data))
    shared = sum(k in train_keys for k in _image_keys(test))
    if shared > TEST_OVERLAP_LIMIT * len(test):
        what = (f"{shared:,} of {len(test):,} test images ({100 * shared / len(test):.1f}%) are "
                f"also training images (training: {data_desc}; test: {test.source})")
        if not allow:
            raise RlnasError(f"{what}; give held-out images as data.test_root, or set "
                             f"data.allow_test_overlap=true to accept it")
        print(f"warning: {what}; accepted (data.allow_test_overlap)", file=sys.stderr)
    return shared


def _check_retrain_dir(cfg: Dict[str, Any], run_dir: Path, arch_str: str) -> bool:
    """True when ``run_dir`` holds this retraining to resume; refuses another arch or config."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RlnasError(f"cannot retrain in {run_dir}: it is a file, not a folder")
    arch_file = run_dir / "arch.json"
    if arch_file.exists():
        try:
            saved = json.loads(arch_file.read_text())["arch"]
        except (ValueError, KeyError, TypeError):
            raise RlnasError(f"{arch_file} is corrupt; use a new directory") from None
        if saved != arch_str:
            raise RlnasError(f"{run_dir} retrains {saved}, not {arch_str}; use a new directory")
    return check_run_dir(cfg, run_dir)


def train_network(cfg: Dict[str, Any], arch_spec: str, run_dir, progress: bool = True,
                  stop_at_step: Optional[int] = None) -> Dict[str, Any]:
    """Train the standalone network of ``arch_spec`` per ``cfg`` in ``run_dir`` (resumes).
    The run directory, the data and the test overlap are checked before anything is written;
    training holds the run's lock."""
    run_dir, cfg = Path(run_dir), Config.of(cfg)
    space = recorded_space(cfg.space, "the retraining config")
    arch, source = resolve_arch(space, arch_spec)
    arch_str = space.to_str(arch)
    _check_retrain_dir(cfg, run_dir, arch_str)  # fails fast, before the data is loaded
    dist, device = init_distributed(cfg.device)
    train, d = cfg.train, cfg.data
    check_parallel(train, dist)
    data, data_desc = prepare_training_data(cfg)
    space.check_image_size(data.image_size, d.resolution, int(data.num_classes))
    test = align_test_split(data, load_dataset(d.dataset, d.test_root or d.root, split="test"))
    shared = check_test_data(d, data, data_desc, test)
    m = cfg.model
    drop_path = float(m.pop("drop_path", 0.0) or 0.0)
    with torch.device("meta"):  # model options the space refuses: before anything is written
        space.network(arch, num_classes=data.num_classes, **m)
    make_dir(run_dir, "retraining directory")
    with run_lock(run_dir, "retrain"):
        # again under the lock: another process may have started this run meanwhile
        resume = _check_retrain_dir(cfg, run_dir, arch_str)
        if dist.main:
            _write_run_files(cfg, run_dir, space, arch, source, data, data_desc, test, shared,
                             device, dist)
        dist.barrier()
        torch.manual_seed(cfg.seed)
        model = space.network(arch, num_classes=data.num_classes, **m).to(device)
        channels_last = CHANNELS_LAST
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        loader, test_loader = _loaders(cfg, data, test, device, channels_last)

        def before_epoch(epoch):  # DARTS: drop-path probability grows linearly over training
            if hasattr(model, "drop_path_prob"):
                model.drop_path_prob = drop_path * epoch / train.epochs

        eval_every = int(cfg.eval.every_epochs or 0)

        def after_epoch(epoch, extra):
            if dist.main and (epoch == train.epochs or (eval_every and epoch % eval_every == 0)):
                res = evaluate_network(model, test_loader)
                # logged as metrics.csv is: once the epoch's checkpoint is on disk (the loop)
                extra["log_rows"] = {"eval.csv": {"epoch": str(epoch),
                                                  "top1": f"{res['top1']:.4f}",
                                                  "top5": f"{res['top5']:.4f}"}}
                # TensorBoard (when on): retrain/test_top1 and retrain/test_top5 at this epoch
                extra["scalars"] = {"test_top1": res["top1"], "test_top5": res["top5"]}
            return False

        meta = {"space": space.name, "arch": arch_str, "model_config": cfg.model,
                "num_classes": int(data.num_classes)}
        spec = LoopSpec.from_train(train, model, loader, device, precision=cfg.precision,
                                   dist=dist, before_epoch=before_epoch,
                                   epoch_callback=after_epoch, ckpt_dir=run_dir / "ckpt",
                                   ckpt_meta=meta, metrics_path=run_dir / "metrics.csv",
                                   epoch_logs={"eval.csv": EVAL_COLUMNS},
                                   progress=progress, desc="retrain")
        optimizer = make_optimizer(spec)
        ckpt = start_or_resume(spec, optimizer, run_dir, resume)
        start = int(ckpt.get("step", 0))
        total = loader.steps_per_epoch * train.epochs
        if start < total:
            run_loop(spec, optimizer, start_step=start, stop_at_step=stop_at_step,
                     epoch_stats=ckpt.get("epoch_stats"))
        return _summary(run_dir, arch_str, model, train.epochs, dist)


def _write_run_files(cfg: Config, run_dir: Path, space, arch, source: str, data, data_desc,
                     test, shared, device, dist) -> None:
    """config.yaml, arch.json and run.json of a retraining: what its checkpoints are trained
    with."""
    d = cfg.data
    arch_str = space.to_str(arch)
    atomic_write_text(run_dir / "config.yaml", config_mod.dump(cfg))
    atomic_write_text(run_dir / "arch.json", json.dumps(
        {"space": space.name, "arch": arch_str, "genome": [int(g) for g in arch],
         "source": source}, indent=2) + "\n")
    atomic_write_text(run_dir / "run.json", json.dumps(
        {"space": space.name, "kind": "retrain", "dataset": data.name, "data": data_desc,
         "test": test.source, "test_images_in_training": shared,
         "labels": "true labels", "num_images": int(len(data.y)),
         "num_classes": int(data.num_classes),
         "image_size": int(d.resolution or data.image_size[0]),
         # the input normalisation (export.json tells a user's program)
         "mean": [float(v) for v in data.mean], "std": [float(v) for v in data.std],
         "device": str(device), "processes": dist.world,
         "config": cfg.tree()}, indent=2) + "\n")  # what the checkpoints are trained with


def _loaders(cfg: Config, data, test, device, channels_last: bool) -> tuple:
    """(training loader, test loader) of a retraining: true labels, the config's augmentation
    for training; the test set in evaluation mode, 500 images a batch."""
    d = cfg.data
    loader = make_loader(data, data.y, cfg.train.batch_size, device=device, seed=cfg.seed,
                         augment=d.augment, channels_last=channels_last,
                         cutout=int(d.cutout or 0), resolution=d.resolution,
                         transform=d.transform)
    test_loader = make_loader(test, test.y, 500, device=device, channels_last=channels_last,
                              eval_mode=True, resolution=d.resolution, transform=d.transform)
    return loader, test_loader


def _summary(run_dir: Path, arch_str: str, model, epochs: int, dist) -> Dict[str, Any]:
    """retrain.json (written by the main process): the last and the best evaluation row."""
    rows = _read(run_dir / "eval.csv", epochs)
    if not rows:
        raise RlnasError(f"{run_dir}: no evaluation was recorded")
    best = max(rows, key=lambda r: r["top1"])
    summary = {"arch": arch_str, "params_m": sum(p.numel() for p in model.parameters()
                                                 if p.requires_grad) / 1e6,
               "last": rows[-1], "best": best, "epochs": epochs}
    if dist.main:
        atomic_write_text(run_dir / "retrain.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _read(path: Path, epochs: int):
    """The evaluations of eval.csv (checked: ``rlnas.loop.read_epoch_log``)."""
    _, rows = read_epoch_log(path, epochs, every_epoch=False, columns=EVAL_COLUMNS)
    return [{"epoch": int(r["epoch"]), "top1": float(r["top1"]), "top5": float(r["top5"])}
            for r in rows]
