"""Latency as a search cost: measured on this machine, or read from a measured device table.

A latency model maps archs to milliseconds (``model(archs) -> (N,) float64``) and says where its
numbers come from (``source``). Three kinds:

* ``ChainLatency`` (chain spaces, ``ChoiceSpace``): a lookup table of the stem, the head and every
  (block, op), each measured in isolation at the block's input shape; an arch's latency is the sum
  of its entries (ProxylessNAS's predictor). One table per setting, built once and cached.
* ``CellLatency`` (cell spaces, NB201 and DARTS: the ops of a cell interact, so no per-op sum is
  accurate): each candidate network is measured once, end to end, and cached by canonical arch.
* ``TableLatency``: a device table (HW-NAS-Bench's CSVs for NB201): one row per arch (column
  ``arch`` in the space's notation), the device named by its column (``pixel3`` or
  ``pixel3_latency``). A negative entry (HW-NAS-Bench's -1: could not be compiled for the device)
  is an arch that cannot run there: infinitely slow, never within a limit.

Measurements are torch eager, ``eval()`` and inference mode, ``warmup`` untimed calls then the
median of ``repeats`` timed ones, with torch's intra-op threads fixed to ``threads`` while timing
(and restored after). A table is keyed by (space, model options, device, batch, input size,
threads, precision) and cached as JSON in ``$RLNAS_CACHE`` (default ``~/.cache/rlnas``); the file
also records the machine, the torch version and how long building it took.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from .errors import RlnasError
from .files import make_dir, os_error_text, write_json_atomic

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CACHE_VERSION = 1


# ----------------------------------------------------------------------------------------------
# Measuring one module
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LatencySetting:
    """How latency is measured here. ``device``: a torch device string; ``batch``: images per
    call; ``threads``: torch intra-op threads while timing; ``precision``: fp32, fp16 or bf16;
    ``warmup`` / ``repeats``: untimed and timed calls per measurement (the median is kept)."""

    device: str = "cpu"
    batch: int = 1
    threads: int = 1
    precision: str = "fp32"
    warmup: int = 3
    repeats: int = 9

    def __post_init__(self):
        for name in ("batch", "threads", "repeats"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RlnasError(f"latency {name} must be a positive integer, got {value!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise RlnasError(f"latency warmup must be an integer >= 0, got {self.warmup!r}")
        if self.precision not in PRECISIONS:
            raise RlnasError(f"unknown latency precision {self.precision!r}; known: "
                             f"{', '.join(PRECISIONS)}")
        try:
            device = torch.device(self.device)
        except RuntimeError:
            raise RlnasError(f"unknown latency device {self.device!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RlnasError(f"latency device {self.device!r}: CUDA is not available here")
        if device.type == "cpu" and self.precision == "fp16":
            raise RlnasError("latency precision fp16 needs a GPU; on the CPU use fp32 or bf16")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Threads:
    """Fix torch's intra-op threads for a measurement; the caller's setting comes back after."""

    def __init__(self, threads: int):
        self.threads, self.before = threads, None

    def __enter__(self):
        self.before = torch.get_num_threads()
        torch.set_num_threads(self.threads)

    def __exit__(self, *exc):
        torch.set_num_threads(self.before)


def prepare(module: nn.Module, setting: LatencySetting) -> nn.Module:
    """``module`` in eval mode on the setting's device and dtype (what is timed)."""
    return module.eval().to(device=setting.device, dtype=PRECISIONS[setting.precision])


def time_module(module: nn.Module, x: torch.Tensor, setting: LatencySetting) -> float:
    """Median wall time of ``module(x)`` in ms (``module`` and ``x`` already prepared).

    Args:
        module: an ``nn.Module`` on the setting's device and dtype, in eval mode.
        x: its input.
        setting: warm-up, repeats and threads.

    Returns:
        the median of ``setting.repeats`` timed calls, in milliseconds.
    """
    device = x.device
    times = []
    with _Threads(setting.threads), torch.inference_mode():
        for _ in range(setting.warmup):
            module(x)
        _sync(device)
        for _ in range(setting.repeats):
            t0 = time.perf_counter()
            module(x)
            _sync(device)
            times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def measure_network(net: nn.Module, input_shape: Sequence[int],
                    setting: LatencySetting) -> float:
    """End-to-end latency (ms) of a network on a zero-mean random batch of ``input_shape``
    (channels, height, width), batch ``setting.batch``."""
    net = prepare(net, setting)
    x = _input(input_shape, setting)
    return time_module(net, x, setting)


def _input(shape: Sequence[int], setting: LatencySetting) -> torch.Tensor:
    # a fixed generator: the numbers never matter to the time, but keep runs reproducible
    g = torch.Generator().manual_seed(0)
    x = torch.randn(setting.batch, *shape, generator=g)
    return x.to(device=setting.device, dtype=PRECISIONS[setting.precision])


# ----------------------------------------------------------------------------------------------
# The cache
# ----------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """``$RLNAS_CACHE``, else ``~/.cache/rlnas``."""
    return Path(os.environ.get("RLNAS_CACHE") or Path.home() / ".cache" / "rlnas")


def machine() -> Dict[str, Any]:
    """What the numbers were measured on."""
    info = {"host": platform.node(), "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}
    return info


def _cache_key(kind: str, space, model: Dict[str, Any], input_shape, setting) -> Dict[str, Any]:
    return {"version": CACHE_VERSION, "kind": kind, "space": space.name,
            "model": {k: model[k] for k in sorted(model)}, "device": setting.device,
            "batch": setting.batch, "input": [int(v) for v in input_shape],
            "threads": setting.threads, "precision": setting.precision}


class _CacheFile:
    """One latency table as a JSON file named by the hash of its key; entries are ms."""

    def __init__(self, key: Dict[str, Any], folder: Optional[Path] = None):
        self.key = key
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        self.path = Path(folder or cache_dir()) / f"latency-{key['kind']}-{digest}.json"
        self.entries: Dict[str, float] = {}
        self.seconds = 0.0
        self._read()

    def _read(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            return  # unreadable or corrupt: measured again and rewritten
        if isinstance(data, dict) and data.get("key") == self.key and isinstance(
                data.get("entries"), dict):
            self.entries = {str(k): float(v) for k, v in data["entries"].items()}
            self.seconds = float(data.get("seconds", 0.0))

    def save(self) -> None:
        make_dir(self.path.parent, "latency cache folder")
        write_json_atomic({"key": self.key, "machine": machine(),
                           "written": time.strftime("%Y-%m-%d %H:%M:%S"),
                           "seconds": self.seconds, "entries": self.entries}, self.path)


# ----------------------------------------------------------------------------------------------
# Latency models
# ----------------------------------------------------------------------------------------------
class LatencyModel:
    """Archs -> latency in ms. ``source``: where the numbers come from (result files record it);
    ``bounds()``: (fastest, slowest) where known without measuring every arch."""

    source: str = ""

    def __call__(self, archs) -> np.ndarray:
        raise NotImplementedError

    def bounds(self) -> Optional[Tuple[float, float]]:
        return None

    def describe(self) -> Dict[str, Any]:
        return {"source": self.source}


def _setting_text(setting: LatencySetting, input_shape) -> str:
    return (f"{setting.device}, batch {setting.batch}, input {'x'.join(map(str, input_shape))}, "
            f"{setting.threads} thread{'s' if setting.threads > 1 else ''}, {setting.precision}")


class ChainLatency(LatencyModel):
    """Per-(block, op) lookup table of a ``ChoiceSpace`` plus stem and head (module docstring).

    Args:
        space: the chain space.
        setting: how to measure.
        input_size: the image side or (H, W) (default: the space's declared size).
        num_classes: the head's outputs (default: the space's).
        folder: the cache folder (default ``cache_dir()``).
        log: called with a line when a table is built.
    """

    def __init__(self, space, setting: LatencySetting = LatencySetting(), input_size=None,
                 num_classes: Optional[int] = None, folder=None,
                 log: Optional[Callable[[str], None]] = None):
        self.space, self.setting = space, setting
        size = space.input_size if input_size is None else (
            (int(input_size),) * 2 if isinstance(input_size, (int, np.integer)) else
            tuple(int(v) for v in input_size))
        self.num_classes = int(num_classes or space.num_classes)
        self.input_shape = (space.in_channels, *size)
        model = {"num_classes": self.num_classes}
        self.cache = _CacheFile(_cache_key("chain", space, model, self.input_shape, setting),
                                folder)
        self.built_now = False
        if not self._complete():
            self._build()
            if log:
                log(f"latency table of {space.name} ({_setting_text(setting, self.input_shape)}) "
                    f"built in {self.cache.seconds:.1f} s: {self.cache.path}")
        self.fixed = self.cache.entries["stem"] + self.cache.entries["head"]
        self.ops = np.array([self.cache.entries[self.op_key(b, o)]
                             for b in range(space.num_genes)
                             for o in range(int(space.num_ops[b]))], dtype=np.float64)
        self.source = f"measured here ({_setting_text(setting, self.input_shape)})"

    @staticmethod
    def op_key(block: int, op: int) -> str:
        return f"block{block}.op{op}"

    def _names(self) -> List[str]:
        return ["stem", "head"] + [self.op_key(b, o) for b in range(self.space.num_genes)
                                   for o in range(int(self.space.num_ops[b]))]

    def _complete(self) -> bool:
        return all(name in self.cache.entries for name in self._names())

    def _build(self) -> None:
        """Time the stem, every (block, op) at the block's input and the head; a block's input
        is op 0's output of the previous block (every op of a block outputs the same shape)."""
        space, setting = self.space, self.setting
        t0 = time.perf_counter()
        entries: Dict[str, float] = {}
        seen: Dict[Tuple, float] = {}  # repeated blocks of a stage: the same op on one shape
        with torch.no_grad():
            x = _input(self.input_shape, setting)
            stem = prepare(space.make_stem(), setting)
            entries["stem"] = time_module(stem, x, setting)
            x = stem(x)
            for b, block in enumerate(space.blocks):
                nxt = None
                for o, op in enumerate(block.ops):
                    key = (id(op), space.c_in[b], block.c_out, block.stride, tuple(x.shape))
                    module = prepare(space.make_op(b, o), setting)
                    if key not in seen:
                        seen[key] = time_module(module, x, setting)
                    entries[self.op_key(b, o)] = seen[key]
                    if nxt is None:
                        nxt = module(x)
                x = nxt
            head = prepare(space.make_head(self.num_classes), setting)
            entries["head"] = time_module(head, x, setting)
        self.cache.entries = entries
        self.cache.seconds = time.perf_counter() - t0
        self.cache.save()
        self.built_now = True

    def table(self) -> Dict[str, float]:
        """Every entry of the lookup table (ms): stem, head, ``block<b>.op<o>``."""
        return dict(self.cache.entries)

    def __call__(self, archs) -> np.ndarray:
        archs = self.space.genome_array(archs)
        return self.fixed + self.ops[self.space.offsets + archs].sum(axis=1)

    def bounds(self) -> Tuple[float, float]:
        per_block = np.split(self.ops, np.cumsum(self.space.num_ops)[:-1])
        return (self.fixed + sum(float(o.min()) for o in per_block),
                self.fixed + sum(float(o.max()) for o in per_block))

    def describe(self) -> Dict[str, Any]:
        return {"source": self.source, "kind": "per-(block, op) lookup table, summed",
                "cache": str(self.cache.path), "build_seconds": self.cache.seconds}


class CellLatency(LatencyModel):
    """Every candidate network measured once end to end, cached by canonical arch (module
    docstring); the cache file is rewritten after each call that measured something new.

    Args:
        space: a cell space (NB201, DARTS) or any space with ``network``.
        network_kwargs: passed to ``space.network(arch, **network_kwargs)``.
        input_shape: (channels, height, width) of one image.
        setting: how to measure.
        folder: the cache folder.
    """

    def __init__(self, space, network_kwargs: Dict[str, Any], input_shape: Sequence[int],
                 setting: LatencySetting = LatencySetting(), folder=None):
        self.space, self.setting = space, setting
        self.network_kwargs = dict(network_kwargs)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.cache = _CacheFile(_cache_key("cell", space, self.network_kwargs, self.input_shape,
                                           setting), folder)
        self.measured = 0  # networks measured by this object (the rest came from the cache)
        self.source = f"measured here ({_setting_text(setting, self.input_shape)})"

    def _key(self, arch) -> str:
        return self.space.to_str(self.space.canonical(tuple(int(v) for v in arch)))

    def __call__(self, archs) -> np.ndarray:
        archs = np.asarray(archs, dtype=np.int64).reshape(-1, self.space.num_genes)
        keys = [self._key(a) for a in archs]
        missing = [(k, a) for k, a in dict(zip(keys, map(tuple, archs.tolist()))).items()
                   if k not in self.cache.entries]
        if missing:
            t0 = time.perf_counter()
            torch_state = torch.random.get_rng_state()  # building a network draws its weights
            try:
                for key, arch in missing:
                    net = self.space.network(arch, **self.network_kwargs)
                    self.cache.entries[key] = measure_network(net, self.input_shape, self.setting)
                    self.measured += 1
            finally:
                torch.random.set_rng_state(torch_state)
            self.cache.seconds += time.perf_counter() - t0
            self.cache.save()
        return np.array([self.cache.entries[k] for k in keys], dtype=np.float64)

    def describe(self) -> Dict[str, Any]:
        return {"source": self.source, "kind": "each network measured once, end to end",
                "cache": str(self.cache.path), "networks": len(self.cache.entries),
                "measure_seconds": self.cache.seconds}


def cell_network_setup(space, cost_kwargs: Dict[str, Any]) -> Tuple[Dict[str, Any], Tuple]:
    """The ``network`` keywords and input shape of the network a space's costs refer to
    (``cost_kwargs``, as ``space.cost`` takes them), for the cell spaces.

    Args:
        space: NB201 or DARTS.
        cost_kwargs: the run's cost keywords (``space.cost_defaults``).

    Returns:
        (network keywords, (3, H, W)).
    """
    from .spaces.darts import DartsSpace
    from .spaces.nb201 import NB201Space
    kw = dict(cost_kwargs)
    if isinstance(space, NB201Space):
        size = int(kw.pop("image_size", 32))
        net = {"num_classes": int(kw.pop("num_classes", 10)),
               "channels": int(kw.pop("channels", 16)), "cells": int(kw.pop("cells", 5))}
    elif isinstance(space, DartsSpace):
        defaults = space.cost_defaults({})
        size = int(kw.pop("image_size", None) or defaults["image_size"])
        net = {"variant": kw.pop("network", "imagenet"), "num_classes": kw.pop("num_classes", None),
               "channels": kw.pop("channels", None), "layers": kw.pop("layers", None),
               "stem_multiplier": int(kw.pop("stem_multiplier", 3))}
        kw.pop("auxiliary", None)  # the auxiliary head runs only in training
        net = {k: v for k, v in net.items() if v is not None}
    else:
        raise RlnasError(f"space {space.name}: no rule for the network its costs refer to; "
                         f"measure it with a CellLatency of your own network keywords")
    if kw:
        raise RlnasError(f"space {space.name}: cost option(s) {', '.join(sorted(kw))} have no "
                         f"latency meaning")
    return net, (3, size, size)


def measured_here(space, cost_kwargs: Optional[Dict[str, Any]] = None,
                  setting: LatencySetting = LatencySetting(), folder=None,
                  log: Optional[Callable[[str], None]] = None) -> LatencyModel:
    """The latency model of ``space`` measured on this machine, at the size its costs refer to.

    Args:
        space: any registered space or a ``ChoiceSpace``.
        cost_kwargs: the run's cost keywords (``space.cost_defaults(run.info)``).
        setting: how to measure.
        folder: the cache folder (default ``cache_dir()``).
        log: called with a line when a chain table is built.

    Returns:
        a ``ChainLatency`` for chain spaces, else a ``CellLatency``.
    """
    from .spaces.choice import ChoiceSpace
    kw = dict(cost_kwargs or {})
    if isinstance(space, ChoiceSpace):
        kw.pop("thop", None)  # a FLOPs convention (NAS-Bench-Macro), no latency meaning
        unknown = set(kw) - {"input_size", "num_classes"}
        if unknown:
            raise RlnasError(f"space {space.name}: cost option(s) {', '.join(sorted(unknown))} "
                             "have no latency meaning")
        return ChainLatency(space, setting, kw.get("input_size"), kw.get("num_classes"),
                            folder, log)
    net, shape = cell_network_setup(space, kw)
    return CellLatency(space, net, shape, setting, folder)


# ----------------------------------------------------------------------------------------------
# Device tables
# ----------------------------------------------------------------------------------------------
class TableLatency(LatencyModel):
    """Latency from a measured device table (module docstring).

    Args:
        space: the space the table's ``arch`` column is written in.
        path: the CSV file.
        device: the column, by name or by device (``pixel3`` -> ``pixel3_latency``).
    """

    def __init__(self, space, path, device: str):
        self.space, self.path = space, Path(path)
        header, rows = _read_csv(self.path)
        self.column = _pick_column(self.path, header, device)
        self.values = _table_values(space, self.path, header, rows, self.column)
        _check_coverage(space, self.path, self.values)
        finite = [v for v in self.values.values() if math.isfinite(v)]
        if not finite:
            raise RlnasError(f"{self.path}: column {self.column} holds no latency (every entry "
                             f"is negative: not measured on that device)")
        self.source = f"table {self.path} column {self.column}"

    def __call__(self, archs) -> np.ndarray:
        archs = np.asarray(archs, dtype=np.int64).reshape(-1, self.space.num_genes)
        out = np.empty(len(archs), dtype=np.float64)
        for i, arch in enumerate(archs):
            key = self.space.to_str(self.space.canonical(tuple(int(v) for v in arch)))
            if key not in self.values:
                raise RlnasError(f"{self.path}: no row for arch {key!r} (column {self.column}); "
                                 f"the table does not cover space {self.space.name}")
            out[i] = self.values[key]
        return out

    def bounds(self) -> Tuple[float, float]:
        finite = [v for v in self.values.values() if math.isfinite(v)]
        return min(finite), max(finite)

    def describe(self) -> Dict[str, Any]:
        missing = sum(not math.isfinite(v) for v in self.values.values())
        return {"source": self.source, "file": str(self.path), "column": self.column,
                "rows": len(self.values), "not_on_device": missing}


def _read_csv(path: Path) -> Tuple[List[str], List[List[str]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RlnasError(f"latency table {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RlnasError(f"cannot read latency table {path}: {os_error_text(exc)}") from None
    try:
        lines = list(csv.reader(text.splitlines()))
    except csv.Error as exc:
        raise RlnasError(f"latency table {path} is not a CSV file ({exc})") from None
    lines = [row for row in lines if row]
    if not lines:
        raise RlnasError(f"latency table {path} is empty")
    header = [h.strip() for h in lines[0]]
    if "arch" not in header:
        raise RlnasError(f"latency table {path} has no 'arch' column (columns: "
                         f"{', '.join(header[:8])})")
    return header, lines[1:]


def latency_columns(header: Sequence[str]) -> List[str]:
    """The columns of a table that can be a device's latency (all but ``index``, ``arch``
    and HW-NAS-Bench's energy / intensity columns)."""
    return [h for h in header if h not in ("index", "arch") and not h.endswith(
        ("_energy", "_arithmetic_intensity"))]


def _pick_column(path: Path, header: List[str], device: str) -> str:
    if not isinstance(device, str) or not device:
        raise RlnasError(f"latency table {path}: name the device column (--latency-device); "
                         f"known: {', '.join(latency_columns(header))}")
    for name in (device, f"{device}_latency"):
        if name in latency_columns(header):
            return name
    raise RlnasError(f"latency table {path} has no device column {device!r}; known: "
                     f"{', '.join(latency_columns(header))}")


def _table_values(space, path: Path, header: List[str], rows: List[List[str]],
                  column: str) -> Dict[str, float]:
    a, c = header.index("arch"), header.index(column)
    values: Dict[str, float] = {}
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise RlnasError(f"{path} line {line}: {len(row)} fields, the header has "
                             f"{len(header)}")
        try:
            arch = space.canonical(space.from_str(row[a]))
        except RlnasError as err:
            raise RlnasError(f"{path} line {line}: {err}") from None
        try:
            value = float(row[c])
        except ValueError:
            raise RlnasError(f"{path} line {line}: {column} is {row[c]!r}, not a number") from None
        if math.isnan(value):
            raise RlnasError(f"{path} line {line}: {column} is NaN")
        key = space.to_str(arch)
        value = math.inf if value < 0 else value  # not measurable on the device
        if key in values and values[key] != value:
            raise RlnasError(f"{path} line {line}: arch {key!r} appears twice with different "
                             f"{column}")
        values[key] = value
    if not values:
        raise RlnasError(f"latency table {path} has a header but no rows")
    return values


def _check_coverage(space, path: Path, values: Dict[str, float]) -> None:
    """An enumerable space's table must hold every arch (else a search would stop halfway)."""
    archs = space.enumerate()
    if archs is None:
        return
    keys = {space.to_str(space.canonical(tuple(int(v) for v in a))) for a in archs}
    missing = keys - set(values)
    if missing:
        raise RlnasError(f"latency table {path} does not cover space {space.name}: "
                         f"{len(missing)} of its {len(keys)} archs have no row (e.g. "
                         f"{sorted(missing)[0]!r})")


def latency_model(space, cost_kwargs: Optional[Dict[str, Any]] = None, table=None,
                  device: Optional[str] = None, setting: Optional[LatencySetting] = None,
                  folder=None, log: Optional[Callable[[str], None]] = None) -> LatencyModel:
    """A device table where ``table`` is given, else latency measured here.

    Args:
        space: the search space.
        cost_kwargs: the size the costs refer to (measured here only).
        table: a device table CSV, or None.
        device: its device column (with ``table`` only).
        setting: how to measure here (default ``LatencySetting()``).
        folder: the cache folder.
        log: progress lines.

    Returns:
        the ``LatencyModel``.
    """
    if table is not None:
        return TableLatency(space, table, device)
    if device is not None:
        raise RlnasError("--latency-device names a column of --latency-table; give the table")
    return measured_here(space, cost_kwargs, setting or LatencySetting(), folder, log)


def pareto_front(scores, latency) -> np.ndarray:
    """Indices of the archs no other arch beats on both counts (higher score, lower latency),
    fastest first.

    Args:
        scores: (N,) higher is better (NaN: worst).
        latency: (N,) ms (inf: cannot run).

    Returns:
        the front's indices, by latency ascending (ties: best score first).
    """
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    latency = np.asarray(latency, dtype=np.float64)
    order = np.lexsort((-scores, latency))
    front, best = [], -np.inf
    for i in order:
        if math.isfinite(latency[i]) and scores[i] > best:
            front.append(int(i))
            best = scores[i]
    return np.array(front, dtype=np.int64)


__all__ = ["LatencySetting", "LatencyModel", "ChainLatency", "CellLatency", "TableLatency",
           "cache_dir", "latency_model", "measured_here", "measure_network", "pareto_front",
           "time_module"]
