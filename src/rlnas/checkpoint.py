"""Atomic, safe checkpoints: written to a temp file then renamed; loaded with weights_only."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import torch

from .errors import RlnasError
from .files import atomic_write, os_error_text

FORMAT = "rlnas-checkpoint-1"


def save_checkpoint(path, payload: Dict[str, Any]):
    payload = dict(payload, format=FORMAT)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path, expect: Dict[str, Any] | None = None) -> Dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects; check its identity fields."""
    path = Path(path)
    if not path.is_file():
        raise RlnasError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:  # unreadable: the reason, not "corrupt"
        raise RlnasError(f"cannot read checkpoint {path}: {os_error_text(exc)}") from None
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
