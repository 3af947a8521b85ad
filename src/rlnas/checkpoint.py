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
        raise RlnasError(f"checkpoint {path} is corrupt or not an rlnas checkpoint "
                         f"({first[:120]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "model" not in ckpt:
        raise RlnasError(f"{path} is not an rlnas checkpoint")
    for key, want in (expect or {}).items():
        if ckpt.get(key) != want:
            raise RlnasError(f"checkpoint {path} has {key}={ckpt.get(key)!r}, "
                             f"but this run expects {key}={want!r}")
    return ckpt


def load_model_state(model: torch.nn.Module, state, path, space: str) -> None:
    """Load the weights ``state`` (read from ``path``) into ``model``, built now from the space
    named ``space``; a state that does not fit (the space's code, its model options or the file
    changed after training) is one line naming the file, the space and the first difference.

    Raises:
        RlnasError: ``state`` is not a state dict of tensors, or its keys or shapes differ.
    """
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise RlnasError(f"{path} is damaged: its model is not a state dict of tensors")
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    shapes = [k for k in want if k in state and tuple(state[k].shape) != tuple(want[k].shape)]
    if missing or extra or shapes:
        first = (f"{shapes[0]} has shape {tuple(state[shapes[0]].shape)} there, "
                 f"{tuple(want[shapes[0]].shape)} here" if shapes else
                 f"{missing[0]} is missing there" if missing else
                 f"{extra[0]} is not in the network here")
        raise RlnasError(f"{path} does not match the network of space {space} as built now: "
                         f"{first} ({len(missing)} missing, {len(extra)} unexpected and "
                         f"{len(shapes)} reshaped tensors); the space's code or the checkpoint "
                         f"changed after training: restore the space's code, or train again")
    model.load_state_dict(state)
