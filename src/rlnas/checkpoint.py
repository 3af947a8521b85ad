"""Atomic, safe checkpoints: written to a temp file then renamed; loaded with weights_only."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict

import torch

from .errors import RlnasError

FORMAT = "rlnas-checkpoint-1"


def atomic_write(path, write_fn, suffix=".tmp"):
    """Call ``write_fn(tmp_path)`` then rename over ``path``: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write_fn(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path, text: str):
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, write)


def save_checkpoint(path, payload: Dict[str, Any]):
    payload = dict(payload, format=FORMAT)
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path, expect: Dict[str, Any] | None = None) -> Dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects; check its identity fields."""
    path = Path(path)
    if not path.is_file():
        raise RlnasError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, garbage bytes, foreign pickle
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RlnasError(f"checkpoint {path} is corrupt or not an rlnas checkpoint ({first[:120]})") \
            from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "model" not in ckpt:
        raise RlnasError(f"{path} is not an rlnas checkpoint")
    for key, want in (expect or {}).items():
        if ckpt.get(key) != want:
            raise RlnasError(f"checkpoint {path} has {key}={ckpt.get(key)!r}, "
                             f"but this run expects {key}={want!r}")
    return ckpt
