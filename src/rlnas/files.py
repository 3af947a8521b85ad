"""Atomic output files and the run-directory lock.

Everything rlnas writes goes to a temp file in the same folder and is renamed over the target, so
a reader (or a crash) never sees a half-written file; a failed write leaves the previous file
intact. One process at a time may write a run directory (``run_lock``)."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from .errors import RlnasError

try:  # POSIX; elsewhere runs are not locked (documented in the README)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

# rlnas's temp files are `.rlnas-tmp.<target name>.<8 mkstemp characters><suffix>`: a name no user
# file has by accident, so that cleaning up after a kill -9 removes only what rlnas made
TEMP_PREFIX = ".rlnas-tmp."
_TEMP_NAME = re.compile(r"\.rlnas-tmp\..+\.[a-z0-9_]{8}\.[A-Za-z0-9]{1,8}")
LOCK_NAME = ".rlnas.lock"
# what rlnas writes first into every run and retraining folder (config.yaml is also a user's
# name, so it alone does not make a folder a run)
RUN_MARKERS = ("config.yaml", "run.json")


def _file_mode() -> int:
    """The mode an ordinary ``open(..., "w")`` would give (0666 minus the umask); mkstemp's
    0600 would make rlnas's outputs unreadable to the group where the rest of a run is not."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def os_error_text(exc: BaseException) -> str:
    """A one-line reason for an OS error (or torch's RuntimeError on a failed write)."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def atomic_write(path, write_fn: Callable[[str], None], suffix: str = ".tmp") -> Path:
    """Call ``write_fn(tmp_path)``, fsync, then rename over ``path``. The folder must exist
    (run directories create theirs); OS errors, and torch's RuntimeError when a disk fills
    during ``torch.save``, become one-line RlnasErrors and leave the previous file intact."""
    path = Path(path)
    if not path.parent.is_dir():
        raise RlnasError(f"cannot write {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise RlnasError(f"cannot write {path}: it is a folder")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.",
                                   suffix=suffix)
        os.close(fd)
        write_fn(tmp)
        os.chmod(tmp, _file_mode())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and not _is_write_failure(exc):
            raise
        raise RlnasError(f"cannot write {path}: {os_error_text(exc)}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            try:
                os.remove(tmp)
            except OSError:
                pass
    return path


def _is_write_failure(exc: RuntimeError) -> bool:
    """torch.save reports a full disk or a vanished file as a RuntimeError of its stream
    writer; anything else is a bug and stays a traceback."""
    text = str(exc).lower()
    return any(s in text for s in ("write", "file", "disk", "space", "errno", "inline_container",
                                   "unexpected pos", "iostream"))


def atomic_write_text(path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json_atomic(obj, path) -> Path:
    """``obj`` as JSON (indent 2, trailing newline); serialised before any file is touched."""
    try:
        text = json.dumps(obj, indent=2) + "\n"
    except (TypeError, ValueError) as exc:
        raise RlnasError(f"cannot write {path}: not JSON-serialisable ({exc})") from None
    return atomic_write_text(path, text)


def finite_or_none(x) -> Optional[float]:
    """``x`` as a float where it is a finite number, else None (JSON has no NaN or inf, and a
    statistic that is undefined is reported as null): None, a bool, text and NaN give None."""
    if x is None or isinstance(x, bool):
        return None
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def slug(text: str) -> str:
    """``text`` with every run of characters other than letters, digits and ``. _ + -``
    replaced by ``_``: a name for a file (``result-<slug>.json``, ``plots/<slug>_vs_...``)."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", str(text))


def append_csv_row(path, header: Iterable[str], row: Iterable) -> None:
    """Append ``row`` to the CSV file ``path`` (``metrics.csv``, ``eval.csv``, ...), writing
    ``header`` first where the file is new; an OS error (a full disk raises on the write, where
    the error names no file) is a one-line RlnasError naming it."""
    path = Path(path)
    try:
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            if new:
                w.writerow(header)
            w.writerow(row)
    except OSError as exc:
        raise RlnasError(f"cannot write {path}: {os_error_text(exc)}") from None


def read_csv_rows(path, what: str, missing: str) -> List[List[str]]:
    """The rows of a CSV file rlnas wrote (header first, empty lines left out), for the checked
    readers of ``ranking.csv`` and ``metrics.csv``.

    Args:
        path: the file.
        what: what the file is, for the message (``a ranking``).
        missing: what to do where it does not exist, for the message.

    Raises:
        RlnasError: naming the file: missing, unreadable, not UTF-8 text, or not CSV."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise RlnasError(f"{path} not found; {missing}") from None
    except UnicodeDecodeError:
        raise RlnasError(f"{path} is damaged: not UTF-8 text ({what})") from None
    except OSError as exc:
        raise RlnasError(f"cannot read {path}: {os_error_text(exc)}") from None
    try:
        rows = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    except csv.Error as exc:
        raise RlnasError(f"{path} is damaged: not CSV text ({exc})") from None
    if rows:
        for line, row in enumerate(rows[1:], start=2):
            if len(row) != len(rows[0]):
                raise RlnasError(f"{path} is damaged: line {line} has {len(row)} fields, the "
                                 f"header {len(rows[0])} (a cut or garbled row)")
    return rows


def csv_number(text: str, path, line: int, column: str, finite: bool = True) -> float:
    """A number of a CSV file rlnas wrote; ``finite``: NaN and inf are damage too (rlnas
    writes none there).

    Raises:
        RlnasError: naming the file, line and column."""
    try:
        value = float(text)
    except ValueError:
        raise RlnasError(f"{path} is damaged: line {line}, {column} is {text!r}, not a "
                         f"number") from None
    if finite and not math.isfinite(value):
        raise RlnasError(f"{path} is damaged: line {line}, {column} is {text!r} (rlnas writes "
                         f"finite numbers there)")
    return value


def make_dir(path, what: str = "run directory") -> Path:
    """Create ``path`` and its parents; an OS error is a one-line RlnasError naming it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RlnasError(f"cannot use {what} {path}: it is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RlnasError(f"cannot create {what} {path}: {os_error_text(exc)}") from None
    return path


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is the name of a temp file ``atomic_write`` makes."""
    return _TEMP_NAME.fullmatch(name) is not None


def is_run_folder(folder) -> bool:
    """Whether ``folder`` holds an rlnas run or retraining (its config.yaml and run.json)."""
    return all((Path(folder) / name).is_file() for name in RUN_MARKERS)


def remove_stale_temps(folder) -> int:
    """Delete temp files an interrupted ``atomic_write`` left in ``folder`` (a kill -9 between
    mkstemp and rename): only files named as rlnas names its temp files. Only called under the
    run lock of a folder that is a run, so no live writer owns them and no user file is hit."""
    folder = Path(folder)
    removed = 0
    if not folder.is_dir():
        return 0
    for p in folder.iterdir():
        if is_temp_name(p.name) and p.is_file() and not p.is_symlink():
            try:
                p.unlink()
                removed += 1
            except OSError:
                pass
    return removed


# (path, thread) -> (open lock file, nesting depth): `rlnas run` trains, ranks and searches in one
# process, and each stage takes the lock of the same run. Per thread, so that a second thread on
# the same run is refused by the flock as a second process is, rather than sharing the lock.
_HELD: Dict[Tuple[str, int], Tuple[object, int]] = {}


def claim_output_folder(folder, manifest: str, is_ours: Callable[[object], bool],
                        command: str, own_names: Iterable[str] = ()) -> None:
    """Refuse to write ``command``'s outputs into ``folder`` where it holds files rlnas did not
    write there: it must be new, empty, or hold ``manifest`` (the file ``command`` writes last)
    with content ``is_ours`` accepts (an earlier output of the same command, which is updated),
    or hold only ``own_names``.

    Args:
        folder: the output folder.
        manifest: the name of the file the command writes last (e.g. export.json).
        is_ours: predicate on the manifest's parsed JSON.
        command: the command, for the message.
        own_names: names accepted without the manifest, in a folder rlnas owns (an output
            folder inside a run, where an interrupted command left them).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    try:
        others = sorted(p.name for p in folder.iterdir()
                        if p.name != LOCK_NAME and not is_temp_name(p.name))
    except OSError as exc:
        raise RlnasError(f"cannot read output folder {folder}: {os_error_text(exc)}") from None
    if not others or set(others) <= set(own_names):
        return
    try:
        ours = manifest in others and is_ours(json.loads((folder / manifest).read_text()))
    except (OSError, ValueError, TypeError, AttributeError):
        ours = False
    if not ours:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise RlnasError(f"output folder {folder} holds files rlnas did not write ({shown}); "
                         f"`rlnas {command} --out` takes a new or empty folder, or one an "
                         f"earlier `rlnas {command}` wrote")


def _holder(lock_path: Path) -> str:
    try:
        info = json.loads(lock_path.read_text())
        return (f"`rlnas {info.get('command', '?')}` (pid {info.get('pid', '?')} on "
                f"{info.get('host', '?')}, since {info.get('started', '?')})")
    except (OSError, ValueError):
        return "another rlnas process"


@contextlib.contextmanager
def run_lock(run_dir, command: str) -> Iterator[None]:
    """Hold ``run_dir/.rlnas.lock`` while ``command`` writes the run; a second rlnas process on
    the same run is refused with the holder's pid and command. The lock is an flock on the file,
    so the kernel releases it when its holder dies (a kill -9 leaves no stale lock); the file
    itself stays and only names the last holder. Processes of a torchrun job other than rank 0
    do not lock (rank 0 holds it for the job)."""
    run_dir = Path(run_dir)
    key = (str(run_dir.resolve()), threading.get_ident())
    if fcntl is None or int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    if key in _HELD:
        f, depth = _HELD[key]
        _HELD[key] = (f, depth + 1)
        try:
            yield
        finally:
            f, depth = _HELD[key]
            _HELD[key] = (f, depth - 1)
        return
    lock_path = run_dir / LOCK_NAME
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        made_lock = not os.path.lexists(lock_path)
        f = open(lock_path, "a+")
    except OSError as exc:
        raise RlnasError(f"cannot use run {run_dir}: {os_error_text(exc)}") from None
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise RlnasError(f"run {run_dir} is in use by {_holder(lock_path)}; wait for it to "
                         f"finish or stop it (one process per run directory)") from None
    try:  # unbuffered, so that a full disk cannot resurface later in close()
        os.ftruncate(f.fileno(), 0)
        os.write(f.fileno(), (json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "command": command,
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n").encode())
    except OSError:
        pass  # the flock is what protects the run; the note is only for the message
    _HELD[key] = (f, 1)
    try:
        if is_run_folder(run_dir):  # never in a user's folder that a run check will refuse
            remove_stale_temps(run_dir)
            remove_stale_temps(run_dir / "ckpt")
        yield
    finally:
        f, depth = _HELD.pop(key, (f, 1))
        if made_lock and not is_run_folder(run_dir):
            # a refused or failed first start: leave the folder as it was found
            with contextlib.suppress(OSError):
                os.remove(lock_path)
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            f.close()
        except OSError:
            pass  # closing the file releases the lock in any case
