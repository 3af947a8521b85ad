"""The run directory: what a supernet run or a retraining writes beside its checkpoints and how
a later command reads it back (``Run``, ``open_run``), checks that it may continue it
(``check_run_dir``, ``check_recorded_config``) and identifies its checkpoints (``model_meta``)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from . import config as config_mod
from .checkpoint import load_checkpoint
from .errors import RlnasError
from .files import LOCK_NAME, os_error_text
from .spaces import recorded_space


def model_meta(cfg: Dict[str, Any], num_classes: int) -> Dict[str, Any]:
    """Identity fields stored in every checkpoint and checked when one is loaded."""
    return {"space": cfg["space"], "model_config": dict(cfg["model"]),
            "num_classes": int(num_classes)}


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
