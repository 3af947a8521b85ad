"""Convert the official NAS-Bench-201 / NATS-Bench (topology) benchmark files to the compact table.

The compact table is what :func:`rlnas.tables.load_nb201_table` reads (and what
``rlnas evaluate`` uses): a plain CSV with one row per architecture, the columns
``index, arch, cifar10_valid, cifar10_test, cifar100_valid, cifar100_test,
imagenet16_valid, imagenet16_test`` and, when the archive has them for every row,
``params_m, flops_m``. The loader does not skip ``#`` comment lines, so the CSV is kept
plain and what each column means (NB201 dataset / evaluation set, epochs, seed averaging,
source file, API and version) is written beside it to ``<out>.meta.json``.

Sources (each read through its optional official package, imported only when needed):

* ``nb201``: NAS-Bench-201 ``NAS-Bench-201-v1_0-e61699.pth`` / ``NAS-Bench-201-v1_1-096897.pth``
  through ``nas_201_api`` (``pip install nas-bench-201``).
* ``nats-tss``: NATS-Bench topology search space, the ``NATS-tss-v1_0-3ffb9-simple`` (or
  ``-full``) folder (read in ``fast_mode``) or the single ``NATS-tss-v1_0-3ffb9.pickle.pbz2``
  file, through ``nats_bench`` (``pip install nats_bench``).

For every architecture ``i`` the values are ``api.get_more_info(i, dataset, iepoch=None,
hp=hp, is_random=False)`` (last epoch, mean over the seeds the archive has):

==================  ==================  =================  ===================
column              dataset             evaluation set     get_more_info key
==================  ==================  =================  ===================
cifar10_valid       ``cifar10-valid``   ``x-valid``        ``valid-accuracy``
cifar10_test        ``cifar10``         ``ori-test``       ``test-accuracy``
cifar100_valid      ``cifar100``        ``x-valid``        ``valid-accuracy``
cifar100_test       ``cifar100``        ``x-test``         ``test-accuracy``
imagenet16_valid    ``ImageNet16-120``  ``x-valid``        ``valid-accuracy``
imagenet16_test     ``ImageNet16-120``  ``x-test``         ``test-accuracy``
==================  ==================  =================  ===================

``params_m`` / ``flops_m`` are ``api.get_cost_info(i, 'cifar10-valid')`` (falling back to
``'cifar10'``; the same 10-class network) ``['params']`` / ``['flops']``.

Both benchmark files are Python pickles, and a full unpickle runs whatever code the file
names. By default nothing is fully unpickled:

* the NB201 ``.pth`` is read with ``torch.load(..., weights_only=True)``, which admits tensors
  and containers, plus the NumPy scalars, arrays and dtypes the official files store (the API's
  own ``torch.load`` refuses those under torch >= 2.6, so the converter loads the file itself
  and hands ``NASBench201API`` the dict, without the API's deep copy: the v1.1 file is 4.7 GB);
* every NATS-tss ``.pickle.pbz2`` (the single file, or the folder's meta and per-arch files,
  read lazily) goes through the restricted unpickler of :mod:`rlnas.data`, which admits
  containers, numbers, strings and NumPy scalars/arrays (``nats_bench.api_utils.pickle_load``
  is swapped for it while the conversion runs).

A file that needs anything else (e.g. a NATS ``-full`` archive, whose weights are pickled
tensors) is refused with an error naming what it references; ``trust_pickle=True``
(``rlnas nasbench201 convert --trust-pickle``) reads it with a full unpickle as the official
APIs do: use it only for a file from a trusted source (the official download). Trained
weights kept in the archive are dropped (``api.clear_params``) arch by arch as they are read.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import datetime
import importlib
import os
import pickle
import re
import sys
import time
import warnings
from pathlib import Path

from rlnas.data import (
    DATA_PICKLE_GLOBALS,
    NUMPY_PICKLE_GLOBALS,
    RestrictedUnpickler,
    UnsafePickleError,
)
from rlnas.errors import RlnasError
from rlnas.files import atomic_write, finite_or_none, write_json_atomic
from rlnas.tables import ACCURACY_COLUMNS, load_nb201_table

__all__ = ["convert", "KINDS", "COLUMN_SOURCES", "NUM_ARCHS", "meta_path_for", "detect_kind"]

#: Number of cells in the NB201 / NATS-tss topology space.
NUM_ARCHS = 15625

#: Accepted ``kind`` values.
KINDS = ("auto", "nb201", "nats-tss")

#: column -> (NB201 dataset, evaluation set, ``get_more_info`` key).
COLUMN_SOURCES = {
    "cifar10_valid": ("cifar10-valid", "x-valid", "valid-accuracy"),
    "cifar10_test": ("cifar10", "ori-test", "test-accuracy"),
    "cifar100_valid": ("cifar100", "x-valid", "valid-accuracy"),
    "cifar100_test": ("cifar100", "x-test", "test-accuracy"),
    "imagenet16_valid": ("ImageNet16-120", "x-valid", "valid-accuracy"),
    "imagenet16_test": ("ImageNet16-120", "x-test", "test-accuracy"),
}
assert list(COLUMN_SOURCES) == list(ACCURACY_COLUMNS)

_DATASETS = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")
_TRAINED_ON = {
    "cifar10-valid": "trained on the 25k train half of the CIFAR-10 train set",
    "cifar10": "trained on all 50k CIFAR-10 train images (train+valid)",
    "cifar100": "trained on the 50k CIFAR-100 train set",
    "ImageNet16-120": "trained on the ImageNet16-120 train set",
}
_EVAL_ON = {
    ("cifar10-valid", "x-valid"): "the 25k held-out valid half of the CIFAR-10 train set",
    ("cifar10", "ori-test"): "the 10k CIFAR-10 test set",
    ("cifar100", "x-valid"): "the 'x-valid' half (5k) of the CIFAR-100 test set",
    ("cifar100", "x-test"): "the 'x-test' half (the other 5k) of the CIFAR-100 test set",
    ("ImageNet16-120", "x-valid"): "the 'x-valid' half (3k) of the ImageNet16-120 test set",
    ("ImageNet16-120", "x-test"): "the 'x-test' half (the other 3k) of the ImageNet16-120 test set",
}
_HP_EPOCHS = {"12": 12, "200": 200}

_PACKAGES = {
    # kind: (module, pip name, human name of the source)
    "nb201": ("nas_201_api", "nas-bench-201", "NAS-Bench-201"),
    "nats-tss": ("nats_bench", "nats_bench", "NATS-Bench topology (tss)"),
}

_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
_OP = "(?:" + "|".join(_OPS) + ")"
_ARCH_RE = re.compile(
    rf"^\|{_OP}~0\|\+\|{_OP}~0\|{_OP}~1\|\+\|{_OP}~0\|{_OP}~1\|{_OP}~2\|$"
)

_PROGRESS_EVERY = 1000


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, shortened (the CLI prints RlnasError as one line)."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"rlnas convert: {msg}", file=sys.stderr, flush=True)


def meta_path_for(out) -> Path:
    """The sidecar JSON written beside the table ``out``: ``<out>.meta.json``."""
    out = Path(out)
    return out.with_name(out.name + ".meta.json")


def detect_kind(source) -> str:
    """``'nb201'`` or ``'nats-tss'`` from the name of ``source``; RlnasError when unclear."""
    source = Path(source)
    name = source.name
    low = name.lower()
    if low.startswith("nats-sss"):
        raise RlnasError(
            f"{name} is a NATS-Bench size search space (sss) archive; the NB201 table needs "
            "the topology one (NATS-tss-v1_0-3ffb9)"
        )
    if low.startswith("nats-tss"):
        return "nats-tss"
    if low.endswith(".pth"):
        return "nb201"
    if low.startswith("nas-bench-201") and source.is_dir():
        raise RlnasError(
            f"{name} looks like a NAS-Bench-201 per-arch archive folder, which is not supported; "
            "convert the single NAS-Bench-201-v1_1-096897.pth (or v1_0) file instead"
        )
    raise RlnasError(
        f"cannot tell what benchmark {name} is from its name (expected "
        "NAS-Bench-201-v1_*.pth, a NATS-tss-v1_0-3ffb9-simple folder or "
        "NATS-tss-v1_0-3ffb9.pickle.pbz2); pass kind='nb201' or kind='nats-tss'"
    )


def _import_api(kind: str, source: Path):
    module, pip_name, _ = _PACKAGES[kind]
    try:
        if kind == "nb201":
            import nas_201_api as mod  # noqa: PLC0415  (optional dependency)
        else:
            import nats_bench as mod  # noqa: PLC0415  (optional dependency)
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        if missing is None or missing == module or missing.startswith(module + "."):
            raise RlnasError(
                f"reading {source.name} needs the `{module}` package: pip install {pip_name}"
            ) from None
        raise RlnasError(
            f"reading {source.name} needs the `{module}` package, but importing it failed "
            f"({_one_line(exc)})"
        ) from None
    return mod


def _package_version(dist_name: str):
    try:
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            return version(dist_name)
        except PackageNotFoundError:
            return None
    except Exception:  # pragma: no cover - importlib.metadata is stdlib on 3.8+
        return None


def _untrusted(path, what: str) -> RlnasError:
    return RlnasError(
        f"cannot read {path} safely: it references {what}, which only a full unpickle can build "
        "(and a full unpickle can run any code); pass --trust-pickle (trust_pickle=True) only "
        "for a file from a trusted source such as the official download")


def _torch_safe_globals():
    """What the NB201 .pth needs beyond torch's weights_only defaults: NumPy scalars, arrays
    and dtypes (under the NumPy 1.x and 2.x module names) and the dtype classes the
    weights-only unpickler checks when it sets a dtype's state."""
    import numpy as np  # noqa: PLC0415

    out = []
    for module, name in sorted(NUMPY_PICKLE_GLOBALS):
        with warnings.catch_warnings():  # numpy.core.* is a deprecated alias in NumPy 2
            warnings.simplefilter("ignore")
            try:
                obj = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):  # numpy._core under NumPy 1.x
                continue
        out.append((obj, f"{module}.{name}"))
    dtypes = getattr(np, "dtypes", None)  # NumPy >= 1.25
    out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")] if dtypes else []
    return out


# The NATS archives' state dicts: what a CIFAR batch may hold, plus ordered dicts.
_NATS_PICKLE_GLOBALS = DATA_PICKLE_GLOBALS | {("collections", "OrderedDict")}


def _restricted_pickle_load(file_path, ext=".pbz2"):
    """``nats_bench.api_utils.pickle_load`` (a bz2 pickle, ``ext`` added when the path is not
    a file) through the restricted unpickler."""
    path = str(file_path) if os.path.isfile(str(file_path)) else str(file_path) + ext
    with bz2.BZ2File(path, "rb") as fh:
        return RestrictedUnpickler(fh, path, allowed=_NATS_PICKLE_GLOBALS,
                                   holds="a NATS-Bench topology archive").load()


@contextlib.contextmanager
def _restricted_nats_pickles(mod):
    """Route every archive read of ``nats_bench`` (its modules' ``pickle_load``, also the lazy
    per-arch reads of a folder) through the restricted unpickler while the block runs; a
    refused file ends the block with the --trust-pickle error."""
    owners = [getattr(mod, name, None) for name in ("api_utils", "api_topology")]
    if any(getattr(m, "pickle_load", None) is None for m in owners):
        # fail closed: an unknown nats_bench could read the archive some other way
        raise RlnasError(
            "this nats_bench version has no api_utils/api_topology.pickle_load to read the "
            "archive safely; pass --trust-pickle (trust_pickle=True) only for a file from a "
            "trusted source such as the official download")
    saved = [m.pickle_load for m in owners]
    for m in owners:
        m.pickle_load = _restricted_pickle_load
    try:
        yield
    except UnsafePickleError as exc:
        raise _untrusted(exc.path, exc.name) from None
    finally:
        for m, f in zip(owners, saved):
            m.pickle_load = f


class _SharedDict(dict):
    """A dict whose deepcopy is itself: lets NASBench201API take the loaded file without
    copying it (the API deep-copies a dict argument; the v1.1 file is 4.7 GB)."""

    def __deepcopy__(self, memo):
        return self


# --------------------------------------------------------------------------------------
# Opening the archives
# --------------------------------------------------------------------------------------


def _open_nb201(source: Path, mod, progress: bool, trust_pickle: bool):
    import torch  # noqa: PLC0415

    size_gb = source.stat().st_size / 1e9
    _say(progress, f"loading {source.name} ({size_gb:.2f} GB; the official files take minutes and "
                   "several GB of memory)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if trust_pickle:
                data = torch.load(str(source), map_location="cpu", weights_only=False)
            else:
                with torch.serialization.safe_globals(_torch_safe_globals()):
                    data = torch.load(str(source), map_location="cpu", weights_only=True)
    except MemoryError:
        raise RlnasError(f"out of memory while loading {source}") from None
    except pickle.UnpicklingError as exc:
        # torch's weights-only refusal: "... GLOBAL module.name ..." or "... got <class 'x'>"
        found = re.search(r"GLOBAL ([\w.]+)|got <class '([\w.]+)'>", str(exc))
        if found and not trust_pickle:
            raise _untrusted(source, found.group(1) or found.group(2)) from None
        raise RlnasError(
            f"cannot read {source} as a NAS-Bench-201 .pth file ({_one_line(exc)})"
        ) from None
    except Exception as exc:
        raise RlnasError(
            f"cannot read {source} as a NAS-Bench-201 .pth file ({_one_line(exc)})"
        ) from None
    keys = ("meta_archs", "arch2infos", "evaluated_indexes")
    if not isinstance(data, dict) or any(k not in data for k in keys):
        found = (", ".join(map(str, list(data)[:6])) if isinstance(data, dict)
                 else type(data).__name__)
        raise RlnasError(
            f"{source} is not a NAS-Bench-201 benchmark file: expected the keys "
            f"{', '.join(keys)}, found {found or 'nothing'}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            api = mod.NASBench201API(_SharedDict(data), verbose=False)
    except Exception as exc:
        raise RlnasError(
            f"nas_201_api could not read {source} ({_one_line(exc)})"
        ) from None
    del data
    info = {
        "api": "nas_201_api.NASBench201API",
        "api_version": getattr(mod, "NAS_BENCH_201_API_VERSION", None),
        "package": "nas-bench-201",
        "package_version": _package_version("nas-bench-201"),
        "fast_mode": None,
    }
    return api, info


def _open_nats(source: Path, mod, progress: bool):
    fast = source.is_dir()
    _say(progress, f"opening {source.name} "
                   f"({'folder, fast_mode=True' if fast else 'file, fast_mode=False'})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            api = mod.create(str(source), "tss", fast_mode=fast, verbose=False)
    except MemoryError:
        raise RlnasError(f"out of memory while loading {source}") from None
    except UnsafePickleError:
        raise  # _restricted_nats_pickles words it
    except Exception as exc:
        raise RlnasError(
            f"cannot read {source} as a NATS-Bench topology archive ({_one_line(exc)})"
        ) from None
    version = None
    try:
        version = mod.version()
    except Exception:
        pass
    info = {
        "api": "nats_bench.create(..., 'tss')",
        "api_version": version,
        "package": "nats_bench",
        "package_version": _package_version("nats_bench"),
        "fast_mode": fast,
    }
    return api, info


# --------------------------------------------------------------------------------------
# Reading one architecture
# --------------------------------------------------------------------------------------


def _read_accuracies(api, i: int, hp: str) -> dict:
    """The six accuracies of arch ``i``; raises ``LookupError`` with the reason when absent."""
    infos = {}
    for ds in _DATASETS:
        try:
            infos[ds] = api.get_more_info(i, ds, iepoch=None, hp=hp, is_random=False)
        except UnsafePickleError:
            raise  # a refused per-arch file (folder archives read lazily), not a missing result
        except Exception as exc:
            raise LookupError(f"no hp={hp!r} results on {ds} ({_one_line(exc, 160)})") from None
    row = {}
    for col, (ds, split, key) in COLUMN_SOURCES.items():
        info = infos[ds]
        if not isinstance(info, dict) or key not in info:
            raise LookupError(f"no {split!r} accuracy on {ds} (get_more_info has no {key!r})")
        v = finite_or_none(info[key])
        if v is None:
            raise LookupError(f"{ds} {split!r} accuracy is {info[key]!r}, not a finite number")
        row[col] = v
    return row


def _read_costs(api, i: int, hp: str):
    """(params_m, flops_m) of the CIFAR-10 network, or a reason string when unavailable."""
    last = "get_cost_info is missing"
    if not hasattr(api, "get_cost_info"):
        return last
    for ds in ("cifar10-valid", "cifar10"):
        try:
            info = api.get_cost_info(i, ds, hp=hp)
        except UnsafePickleError:
            raise
        except Exception as exc:
            last = f"get_cost_info({i}, {ds!r}) failed ({_one_line(exc, 160)})"
            continue
        if not isinstance(info, dict):
            last = f"get_cost_info({i}, {ds!r}) returned {type(info).__name__}"
            continue
        p, f = finite_or_none(info.get("params")), finite_or_none(info.get("flops"))
        if p is None or f is None:
            last = f"get_cost_info({i}, {ds!r}) has no finite params/flops"
            continue
        return p, f
    return last


def _drop_weights(api, i: int) -> None:
    clear = getattr(api, "clear_params", None)
    if clear is None:
        return
    try:
        clear(i, None)
    except Exception:
        pass


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


def _fmt(v: float) -> str:
    return repr(float(v))  # shortest text that reads back to the same float


def _column_meta(hp: str) -> dict:
    epochs = _HP_EPOCHS[hp]
    cols = {
        "index": {"semantics": "official NAS-Bench-201 / NATS-tss architecture index (0..15624)."},
        "arch": {"semantics": "NAS-Bench-201 arch string, e.g. |nor_conv_3x3~0|+|...|, as "
                              "api.arch(index)."},
    }
    for col, (ds, split, key) in COLUMN_SOURCES.items():
        cols[col] = {
            "dataset": ds,
            "set": split,
            "get_more_info_key": key,
            "semantics": (
                f"NB201 {ds!r} / {split!r}: {_TRAINED_ON[ds]}, top-1 accuracy (%) on "
                f"{_EVAL_ON[(ds, split)]}, after the last of {epochs} epochs (hp={hp!r}), "
                "mean over the seeds in the archive (is_random=False)."
            ),
        }
    return cols


_COST_META = {
    "params_m": {
        "semantics": "parameters in millions (MB as NB201 prints them) of the CIFAR-10 network "
        "(10 classes), api.get_cost_info(index, 'cifar10-valid')['params'].",
    },
    "flops_m": {
        "semantics": "FLOPs in millions of the CIFAR-10 network (32x32 input) as NB201 counts "
        "them, api.get_cost_info(index, 'cifar10-valid')['flops'].",
    },
}


def _check_out(out: Path, source: Path) -> None:
    if not out.parent.is_dir():
        raise RlnasError(f"cannot write {out}: folder {out.parent} does not exist")
    if out.is_dir():
        raise RlnasError(f"cannot write {out}: it is a folder")
    try:
        if out.exists() and out.resolve() == source.resolve():
            raise RlnasError(f"refusing to overwrite the source {source} with the table")
    except OSError:
        pass


def _write_csv(path: Path, header, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:  # a fresh temp file
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _check_request(source, out, kind, hp) -> tuple:
    """(source, out, kind, hp, meta path) of a conversion, refused in one line before any
    archive is read."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise RlnasError(f"unknown benchmark kind {kind!r}; known: {', '.join(KINDS)}")
    hp = str(hp)
    if hp not in _HP_EPOCHS:
        raise RlnasError(f"hp must be '200' or '12', got {hp!r}")
    source = Path(source)
    out = Path(out)
    if not source.exists():
        raise RlnasError(f"benchmark file {source} does not exist")
    if kind == "auto":
        kind = detect_kind(source)
    _check_out(out, source)
    meta_path = meta_path_for(out)
    if meta_path.is_dir():
        raise RlnasError(f"cannot write {meta_path}: it is a folder")

    if kind == "nb201" and source.is_dir():
        raise RlnasError(
            f"{source} is a folder; a NAS-Bench-201 benchmark is one .pth file "
            "(NAS-Bench-201-v1_1-096897.pth); for a NATS-tss folder use kind='nats-tss'"
        )
    return source, out, kind, hp, meta_path


def _count_archs(api, source: Path, allow_partial: bool) -> int:
    try:
        n_total = len(api)
    except Exception as exc:
        raise RlnasError(
            f"cannot count the architectures in {source} ({_one_line(exc)})") from None
    if n_total > NUM_ARCHS:
        raise RlnasError(
            f"{source} has {n_total} architectures; the NB201 topology space has {NUM_ARCHS} "
            "(is it the right benchmark?)"
        )
    if n_total < NUM_ARCHS and not allow_partial:
        raise RlnasError(
            f"{source} has {n_total} architectures, not {NUM_ARCHS}; pass allow_partial=True "
            "to convert it anyway"
        )
    if n_total == 0:
        raise RlnasError(f"{source} has no architectures")
    return n_total


def _read_arch(api, i: int, source: Path, seen: dict) -> str:
    """The arch string of index ``i``, checked to be an NB201 cell seen at no other index."""
    try:
        arch = api.arch(i)
    except Exception as exc:
        raise RlnasError(
            f"{source}: cannot read the arch string of index {i} ({_one_line(exc)})"
        ) from None
    if not isinstance(arch, str) or not _ARCH_RE.match(arch):
        raise RlnasError(
            f"{source}: index {i} has arch {str(arch)[:80]!r}, not a NAS-Bench-201 "
            "cell string (is it the topology benchmark?)"
        )
    if arch in seen:
        raise RlnasError(
            f"{source}: arch {arch} appears at index {seen[arch]} and {i}"
        )
    seen[arch] = i
    return arch


def _read_rows(api, source: Path, n_total: int, hp: str, allow_partial: bool,
               progress: bool) -> tuple:
    """(rows, skipped, costs_ok, costs_reason): one CSV row per architecture with complete
    results (costs appended while every one so far has them), ``[index, reason]`` of each one
    skipped, and why the costs were given up (None while they were not)."""
    rows = []
    skipped = []  # [index, reason]
    costs_ok = True
    costs_reason = None
    seen = {}
    t_loop = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(n_total):
            if progress and i and i % _PROGRESS_EVERY == 0:
                el = time.monotonic() - t_loop
                _say(progress, f"{i}/{n_total} archs read ({el:.0f} s, about "
                               f"{el / i * (n_total - i):.0f} s left)")
            arch = _read_arch(api, i, source, seen)
            try:
                acc = _read_accuracies(api, i, hp)
            except LookupError as exc:
                if not allow_partial:
                    raise RlnasError(
                        f"{source}: architecture {i} is incomplete: {exc}; pass "
                        "allow_partial=True to skip such architectures"
                    ) from None
                skipped.append([i, str(exc)])
                _drop_weights(api, i)
                continue
            _drop_weights(api, i)
            row = [str(i), arch] + [_fmt(acc[c]) for c in COLUMN_SOURCES]
            if costs_ok:
                c = _read_costs(api, i, hp)
                if isinstance(c, tuple):
                    row += [_fmt(c[0]), _fmt(c[1])]
                else:
                    costs_ok = False
                    costs_reason = f"index {i}: {c}"
            rows.append(row)
    return rows, skipped, costs_ok, costs_reason


def _read_archive(source: Path, kind: str, hp: str, progress: bool, allow_partial: bool,
                  trust_pickle: bool) -> tuple:
    """(api_info, n_total, rows, skipped, costs_ok, costs_reason) of the archive: its reader's
    description, its number of architectures and what :func:`_read_rows` reads of them."""
    mod = _import_api(kind, source)
    with contextlib.ExitStack() as reads:  # all archive reads, the lazy ones too
        if kind == "nats-tss" and not trust_pickle:
            reads.enter_context(_restricted_nats_pickles(mod))
        if kind == "nb201":
            api, api_info = _open_nb201(source, mod, progress, trust_pickle)
        else:
            api, api_info = _open_nats(source, mod, progress)
        n_total = _count_archs(api, source, allow_partial)
        _say(progress, f"{n_total} architectures; reading hp={hp!r} results (is_random=False)")
        return (api_info, n_total) + _read_rows(api, source, n_total, hp, allow_partial,
                                                progress)


def _table_meta(out: Path, source: Path, kind: str, hp: str, api_info: dict, n_total: int,
                rows: list, skipped: list, costs_ok: bool, costs_reason) -> dict:
    """What ``<out>.meta.json`` records: the archive, the query and each column's semantics."""
    columns_meta = _column_meta(hp)
    if costs_ok:
        columns_meta.update({k: dict(v) for k, v in _COST_META.items()})
    return {
        "format": "rlnas NB201 compact table, v1",
        "table": out.name,
        "comment": (
            "Column semantics of the CSV beside this file (kept here because "
            "rlnas.tables.load_nb201_table does not skip '#' comment lines)."
        ),
        "source": source.name,
        "source_path": str(source.resolve()),
        "kind": kind,
        "api": api_info["api"],
        "api_version": api_info["api_version"],
        "package": api_info["package"],
        "package_version": api_info["package_version"],
        "fast_mode": api_info["fast_mode"],
        "hp": hp,
        "epochs": _HP_EPOCHS[hp],
        "iepoch": None,
        "is_random": False,
        "query": "api.get_more_info(index, dataset, iepoch=None, hp=hp, is_random=False)",
        "archs_in_archive": n_total,
        "rows": len(rows),
        "skipped": skipped,
        "costs": (
            "api.get_cost_info(index, 'cifar10-valid' or 'cifar10'), CIFAR-10 network"
            if costs_ok else f"left out: {costs_reason}"
        ),
        "columns": columns_meta,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
    }


# --------------------------------------------------------------------------------------
# The conversion
# --------------------------------------------------------------------------------------


def convert(source, out, kind: str = "auto", hp: str = "200", progress: bool = True,
            allow_partial: bool = False, trust_pickle: bool = False) -> dict:
    """Convert an official NB201 / NATS-tss benchmark archive to the compact CSV table.

    Args:
        source: ``NAS-Bench-201-v1_[01]-*.pth``, a ``NATS-tss-v1_0-3ffb9-simple`` folder or a
            ``NATS-tss-v1_0-3ffb9.pickle.pbz2`` file.
        out: the CSV to write (atomically: temp file + ``os.replace``). The column
            semantics go to ``<out>.meta.json`` (written atomically too), because
            :func:`rlnas.tables.load_nb201_table` does not skip ``#`` comment lines.
        kind: ``'auto'`` (from the name of ``source``), ``'nb201'`` or ``'nats-tss'``.
        hp: ``'200'`` (the 200-epoch results: what ``rlnas evaluate`` assumes) or ``'12'``.
        progress: print progress lines to stderr.
        allow_partial: accept an archive with fewer than 15,625 architectures, or with
            some architectures lacking results (those are skipped and listed in the meta).
        trust_pickle: read the archive with a full unpickle (``weights_only=False``, plain
            ``pickle``), which can run code the file names. Only for a file from a trusted
            source whose safe load was refused (the module docstring says what that admits).

    Returns:
        ``{"rows", "columns", "source", "out", "meta", "kind", "hp", "api", "api_version",
        "archs_in_archive", "skipped", "costs", "seconds"}``.

    Raises:
        RlnasError: (one line) unknown kind or hp, missing source, missing optional
        package, unreadable or wrong-kind archive, an archive the safe load refuses without
        ``trust_pickle``, incomplete archive without ``allow_partial``, unwritable output.
    """
    t0 = time.monotonic()
    source, out, kind, hp, meta_path = _check_request(source, out, kind, hp)
    api_info, n_total, rows, skipped, costs_ok, costs_reason = _read_archive(
        source, kind, hp, progress, allow_partial, trust_pickle)

    if not rows:
        why = f" (first: index {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise RlnasError(f"{source}: no architecture has complete hp={hp!r} results{why}")

    header = ["index", "arch"] + list(COLUMN_SOURCES)
    if costs_ok:
        header += list(_COST_META)
    else:
        rows = [r[: len(header)] for r in rows]
        _say(progress, f"params_m/flops_m left out: {costs_reason}")
    meta = _table_meta(out, source, kind, hp, api_info, n_total, rows, skipped, costs_ok,
                       costs_reason)

    def write(tmp):
        _write_csv(tmp, header, rows)
        load_nb201_table(tmp)  # the table must read back (raises RlnasError otherwise)
        write_json_atomic(meta, meta_path)

    atomic_write(out, write, suffix=".csv")

    seconds = time.monotonic() - t0
    _say(progress, f"wrote {len(rows)} rows to {out} and {meta_path.name} in {seconds:.1f} s"
                   + (f" ({len(skipped)} archs skipped)" if skipped else ""))
    return {
        "rows": len(rows),
        "columns": header,
        "source": str(source),
        "out": str(out),
        "meta": str(meta_path),
        "kind": kind,
        "hp": hp,
        "api": api_info["api"],
        "api_version": api_info["api_version"],
        "archs_in_archive": n_total,
        "skipped": len(skipped),
        "costs": costs_ok,
        "seconds": round(seconds, 3),
    }
