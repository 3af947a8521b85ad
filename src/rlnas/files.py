"""Atomic output files: everything rlnas writes goes to a temp file in the same folder and is
renamed over the target, so a reader (or a crash) never sees a half-written file."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import RlnasError


def atomic_write(path, write_fn: Callable[[str], None], suffix: str = ".tmp") -> Path:
    """Call ``write_fn(tmp_path)``, fsync, then rename over ``path``. The folder must exist
    (run directories create theirs); OS errors become one-line RlnasErrors."""
    path = Path(path)
    if not path.parent.is_dir():
        raise RlnasError(f"cannot write {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise RlnasError(f"cannot write {path}: it is a folder")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write_fn(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise RlnasError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json_atomic(obj, path) -> Path:
    """``obj`` as JSON (indent 2, trailing newline); serialised before any file is touched."""
    try:
        text = json.dumps(obj, indent=2) + "\n"
    except (TypeError, ValueError) as exc:
        raise RlnasError(f"cannot write {path}: not JSON-serialisable ({exc})") from None
    return atomic_write_text(path, text)
