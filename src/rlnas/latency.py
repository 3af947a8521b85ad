"""Latency as a search cost: measured on this machine, or read from a measured device table.

A latency model maps archs to milliseconds (``model(archs) -> (N,) float64``) and says where its
numbers come from (``source``). Three kinds:

* ``ChainLatency`` (chain spaces, ``ChoiceSpace``): a lookup table of the stem, the head and every
  (block, op); an arch's latency is the sum of its entries (ProxylessNAS's predictor). The
  entries are timed *inside running chains*: every op is built once, and paths that cycle through
  a seeded random order of each block's ops run end to end (every op in at least
  ``CHAIN_ROUNDS`` paths), each part timed around its own call; an entry is the median of its
  per-path medians. (An op timed alone, again and again on one input, keeps its weights and
  input in the caches and came out 14-20 % too fast: benchmarks/RESULTS.md.) The sum is then
  calibrated: ``CALIBRATION_ARCHS`` seeded random archs are built as standalone networks
  (``space.network``) and timed end to end, and every prediction is scaled by the median of
  measured / summed (benchmarks/RESULTS.md: without it the sums were 7 % short on Macro and
  15-21 % long on MobileNet at 224 px, its ops timed among all 143 of the supernet's).
* ``CellLatency`` (cell spaces, NB201 and DARTS: the ops of a cell interact, so no per-op sum is
  accurate): each candidate network is measured once, end to end, and cached by canonical arch.
* ``TableLatency``: a device table (HW-NAS-Bench's CSVs for NB201): one row per arch (column
  ``arch`` in the space's notation), the device named by its column (``pixel3`` or
  ``pixel3_latency``). A negative entry (HW-NAS-Bench's -1: could not be compiled for the device)
  is an arch that cannot run there: infinitely slow, never within a limit.

Measurements (``LatencySetting``): torch eager (``eval()``, inference mode) or, with
``runtime="onnxruntime"``, each module exported to ONNX in memory and run by an onnxruntime
``InferenceSession``; ``warmup`` untimed calls then the median of ``repeats`` timed ones, with
``threads`` intra-op threads. On the CPU with one thread the thread CPU time is recorded next to
the wall time of every timed call: where the wall time exceeds it by more than ``LOAD_RATIO``
over a table (other processes took the core), the table was built under load; it is used for
this run, said in one line on stderr, and not cached.

The cache: one JSON file per table in ``$RLNAS_CACHE`` (default ``~/.cache/rlnas``), keyed by the
space's name and a fingerprint of its declaration (two declarations with one name but other
widths get two tables), the network options, the setting, and the machine (CPU model, cores,
torch and runtime versions, GPU): a table measured on another machine is not reused, and the
line saying so names it. The file also records the host, when it was written and how long
building it took.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import math
import os
import platform
import re
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from .errors import RlnasError
from .files import make_dir, os_error_text, write_json_atomic

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
RUNTIMES = ("torch", "onnxruntime")
# 2: chain entries timed inside running chains; declaration and machine in the key
# 3: chain tables calibrated on whole networks (``calibration``)
CACHE_VERSION = 3
CHAIN_ROUNDS = 3   # a chain table runs every (block, op) in at least this many paths
CALIBRATION_ARCHS = 9  # whole networks timed to scale a chain table's sums (module docstring)
LOAD_RATIO = 1.2   # wall / CPU time over a table above this: measured under load, not cached
# cell spaces: the line announcing a long measurement comes after this many networks are timed
ANNOUNCE_AFTER = 5


# ----------------------------------------------------------------------------------------------
# How to measure
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LatencySetting:
    """How latency is measured here. ``device``: a torch device string; ``batch``: images per
    call; ``threads``: intra-op threads while timing; ``precision``: fp32, fp16 or bf16;
    ``warmup`` / ``repeats``: untimed and timed calls per measurement (the median is kept);
    ``runtime``: ``torch`` (eager) or ``onnxruntime`` (CPU, fp32; needs ``rlnas[onnx]``)."""

    device: str = "cpu"
    batch: int = 1
    threads: int = 1
    precision: str = "fp32"
    warmup: int = 3
    repeats: int = 9
    runtime: str = "torch"

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
        if self.runtime not in RUNTIMES:
            raise RlnasError(f"unknown latency runtime {self.runtime!r}; known: "
                             f"{', '.join(RUNTIMES)}")
        if self.runtime == "onnxruntime":
            if device.type != "cpu" or self.precision != "fp32":
                raise RlnasError("latency runtime onnxruntime measures on the CPU in fp32 here "
                                 f"(got {self.device}, {self.precision})")
            missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
            if missing:
                raise RlnasError(f"latency runtime onnxruntime needs {' and '.join(missing)}: "
                                 f"pip install 'rlnas[onnx]'")

    @property
    def checks_load(self) -> bool:
        """Whether the thread CPU time tells the load: on the CPU, one thread (a GPU call's
        wall time waits for the device; with more threads the work is on other threads)."""
        return torch.device(self.device).type == "cpu" and self.threads == 1


def _setting_text(setting: LatencySetting, input_shape) -> str:
    runtime = "" if setting.runtime == "torch" else f", {_runtime_version(setting)}"
    return (f"{setting.device}, batch {setting.batch}, input {'x'.join(map(str, input_shape))}, "
            f"{setting.threads} thread{'s' if setting.threads > 1 else ''}, {setting.precision}"
            f"{runtime}")


def _runtime_version(setting: LatencySetting) -> str:
    if setting.runtime == "onnxruntime":
        import onnxruntime
        return f"onnxruntime {onnxruntime.__version__}"
    return f"torch {torch.__version__}"


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------
class _Threads:
    """Fix torch's intra-op threads for a measurement; the caller's setting comes back after."""

    def __init__(self, threads: int):
        self.threads, self.before = threads, None

    def __enter__(self):
        self.before = torch.get_num_threads()
        torch.set_num_threads(self.threads)

    def __exit__(self, *exc):
        torch.set_num_threads(self.before)


class LoadMeter:
    """Wall time and thread CPU time summed over timed calls (CPU, one thread): their ratio says
    how long the process waited for a core, i.e. whether the numbers were measured under load."""

    def __init__(self, active: bool = True):
        self.active, self.wall, self.cpu = active, 0.0, 0.0

    def add(self, wall: float, cpu: float) -> None:
        self.wall += wall
        self.cpu += cpu

    @property
    def ratio(self) -> Optional[float]:
        """Wall over CPU time, or None where it tells nothing (GPU, several threads, nothing
        timed)."""
        return self.wall / self.cpu if self.active and self.cpu > 0 else None

    @property
    def loaded(self) -> bool:
        """The wall time exceeds the CPU time by more than ``LOAD_RATIO``."""
        return self.ratio is not None and self.ratio > LOAD_RATIO


def time_passes(parts: Sequence[Callable], x, setting: LatencySetting,
                meter: Optional[LoadMeter] = None, cpu_times: bool = False):
    """Time each part of a chain inside the running chain (part i's input is part i-1's output).

    Args:
        parts: callables (prepared modules, or onnxruntime runs), in chain order.
        x: the first part's input.
        setting: warm-up passes, timed passes and threads.
        meter: adds the wall and thread CPU time of every timed call (CPU).
        cpu_times: also return each call's thread CPU time.

    Returns:
        (repeats, len(parts)) milliseconds: per timed pass, each part's time (perf_counter
        around its call; on CUDA events around it, read after the pass is synchronised); with
        ``cpu_times``, (wall, thread CPU time) arrays of that shape (CUDA: CPU time NaN).
    """
    device = x.device if isinstance(x, torch.Tensor) else torch.device("cpu")
    cuda = device.type == "cuda"
    out = np.empty((setting.repeats, len(parts)), dtype=np.float64)
    cpu = np.full((setting.repeats, len(parts)), np.nan)
    clock, cpu_clock = time.perf_counter, time.thread_time
    with _Threads(setting.threads), torch.inference_mode():
        for r in range(-setting.warmup, setting.repeats):
            h = x
            if cuda:
                marks = [torch.cuda.Event(enable_timing=True) for _ in range(len(parts) + 1)]
                marks[0].record()
                for i, part in enumerate(parts):
                    h = part(h)
                    marks[i + 1].record()
                torch.cuda.synchronize(device)
                if r >= 0:
                    out[r] = [a.elapsed_time(b) for a, b in zip(marks, marks[1:])]
                continue
            for i, part in enumerate(parts):
                t0, c0 = clock(), cpu_clock()
                h = part(h)
                c1, t1 = cpu_clock(), clock()
                if r >= 0:
                    out[r, i], cpu[r, i] = 1e3 * (t1 - t0), 1e3 * (c1 - c0)
                    if meter is not None:
                        meter.add(t1 - t0, c1 - c0)
    return (out, cpu) if cpu_times else out


def time_module(module: Callable, x, setting: LatencySetting,
                meter: Optional[LoadMeter] = None) -> float:
    """Median time of ``module(x)`` in ms (``module`` and ``x`` already prepared: see
    ``prepare`` and ``runnable``).

    Args:
        module: an ``nn.Module`` on the setting's device and dtype, in eval mode (or an
            onnxruntime run and its numpy input).
        x: its input.
        setting: warm-up, repeats and threads.
        meter: adds the wall and thread CPU time of the timed calls.

    Returns:
        the median of ``setting.repeats`` timed calls, in milliseconds.
    """
    return float(np.median(time_passes([module], x, setting, meter)[:, 0]))


def prepare(module: nn.Module, setting: LatencySetting) -> nn.Module:
    """``module`` in eval mode on the setting's device and dtype (what torch times)."""
    return module.eval().to(device=setting.device, dtype=PRECISIONS[setting.precision])


def runnable(module: nn.Module, x: torch.Tensor, setting: LatencySetting) -> Callable:
    """What is timed for ``module`` on input ``x`` (prepared): the module itself under torch;
    under onnxruntime the run of a session of its ONNX export at ``x``'s shape (numpy in and
    out), with the setting's intra-op threads."""
    if setting.runtime == "torch":
        return module
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = setting.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    session = ort.InferenceSession(_onnx_bytes(module, x), options,
                                   providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    if not inputs:  # the output does not depend on the input (an NB201 cell of 'none' edges):
        return lambda h: session.run(None, {})[0]  # the exporter folded it to a constant
    name = inputs[0].name
    return lambda h: session.run(None, {name: h})[0]


def runtime_input(x: torch.Tensor, setting: LatencySetting):
    """``x`` as the runtime takes it (a numpy array for onnxruntime)."""
    return x if setting.runtime == "torch" else x.detach().cpu().numpy()


def _onnx_bytes(module: nn.Module, x: torch.Tensor) -> bytes:
    """``module`` as an ONNX model in memory: torch's TorchScript-based exporter (a fraction of
    a second per op; the dynamo exporter takes seconds), the dynamo one where that fails."""
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (x,), buf, input_names=["x"], output_names=["y"],
                              dynamo=False)
        return buf.getvalue()
    except Exception as first:  # a torch without it, or an op it cannot export
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.onnx.export(module, (x,), None, dynamo=True, verbose=False)
            return program.model_proto.SerializeToString()
        except Exception:
            text = (str(first).strip().splitlines() or [""])[0][:200]
            raise RlnasError(f"latency runtime onnxruntime: cannot export "
                             f"{type(module).__name__} to ONNX ({type(first).__name__}: "
                             f"{text})") from None


def measure_network(net: nn.Module, input_shape: Sequence[int], setting: LatencySetting,
                    meter: Optional[LoadMeter] = None) -> float:
    """End-to-end latency (ms) of a network on a zero-mean random batch of ``input_shape``
    (channels, height, width), batch ``setting.batch``."""
    net = prepare(net, setting)
    x = _input(input_shape, setting)
    with torch.no_grad():
        run = runnable(net, x, setting)
    return time_module(run, runtime_input(x, setting), setting, meter)


def _input(shape: Sequence[int], setting: LatencySetting) -> torch.Tensor:
    # a fixed generator: the numbers never matter to the time, but keep runs reproducible
    g = torch.Generator().manual_seed(0)
    x = torch.randn(setting.batch, *shape, generator=g)
    return x.to(device=setting.device, dtype=PRECISIONS[setting.precision])


def _warn(line: str) -> None:
    """A line the user must see (a table measured under load, on another machine): stderr."""
    print(f"rlnas latency: {line}", file=sys.stderr, flush=True)


def _keep_random_state():
    """Building modules draws their weights from torch's generator: the caller's stream (a
    search, a training) goes on as if nothing had been measured."""
    return torch.random.fork_rng(devices=[])


# ----------------------------------------------------------------------------------------------
# The cache
# ----------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """``$RLNAS_CACHE``, else ``~/.cache/rlnas``."""
    return Path(os.environ.get("RLNAS_CACHE") or Path.home() / ".cache" / "rlnas")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key(setting: LatencySetting) -> Dict[str, Any]:
    """What makes a table of this machine (part of the cache key): the CPU model and its
    cores, the torch version, the runtime's version and, on a GPU, its name."""
    key = {"cpu": _cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__}
    if setting.runtime != "torch":
        key["runtime"] = _runtime_version(setting)
    device = torch.device(setting.device)
    if device.type == "cuda":
        key["gpu"] = torch.cuda.get_device_name(device)
    return key


def machine() -> Dict[str, Any]:
    """What the numbers were measured on (recorded with every table)."""
    return {"host": platform.node(), "cpu": _cpu_model(), "arch": platform.machine(),
            "cores": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version()}


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _text(module: nn.Module) -> str:
    return _ADDRESS.sub("", repr(module))  # an object's address is not its declaration


def declaration_fingerprint(space, network_kwargs: Optional[Dict[str, Any]] = None) -> str:
    """A hash of what a space builds, so that two declarations with one name (an 8-channel and
    a 256-channel ``my_space``) do not share a latency table.

    ``ChoiceSpace``: the modules of the stem, every (block, op) and the head (their reprs:
    classes, channels, kernels, strides; built on the meta device), the blocks' channels and
    strides, the input channels and size, and the per-(block, op) params / FLOPs table at the
    declared size. Other spaces: the class and the repr of one network (``network_kwargs``);
    the network options are in the cache key besides."""
    from .spaces.choice import ChoiceSpace
    with _keep_random_state(), torch.device("meta"):
        if isinstance(space, ChoiceSpace):
            costs = space._cost_table()
            parts = {"stem": _text(space.make_stem()),
                     "ops": [[_text(space.make_op(b, o)) for o in range(int(n))]
                             for b, n in enumerate(space.num_ops)],
                     "head": _text(space.make_head(space.num_classes)),
                     "c_in": [int(c) for c in space.c_in],
                     "c_out": [int(b.c_out) for b in space.blocks],
                     "stride": [int(b.stride) for b in space.blocks],
                     "in_channels": space.in_channels, "input_size": list(space.input_size),
                     "costs": [costs.fixed.tolist(), costs.ops.tolist()]}
        else:
            arch = tuple(int(v) for v in space.sample(np.random.default_rng(0)))
            try:
                net = _text(space.network(arch, **(network_kwargs or {})))
            except Exception as err:  # a network that cannot be built on the meta device
                net = f"not built on the meta device: {type(err).__name__}"
            parts = {"class": f"{type(space).__module__}.{type(space).__qualname__}",
                     "network": net}
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _cache_key(kind: str, space, model: Dict[str, Any], input_shape, setting,
               fingerprint: str) -> Dict[str, Any]:
    return {"version": CACHE_VERSION, "kind": kind, "space": space.name,
            "declaration": fingerprint, "model": {k: model[k] for k in sorted(model)},
            "device": setting.device, "batch": setting.batch,
            "input": [int(v) for v in input_shape], "threads": setting.threads,
            "precision": setting.precision, "runtime": setting.runtime,
            "machine": machine_key(setting)}


class _CacheFile:
    """One latency table as a JSON file named by the hash of its key; entries are ms.
    ``other_machine``: where no table of this machine exists but one of another machine does
    (same key otherwise), that file and its machine."""

    def __init__(self, key: Dict[str, Any], folder: Optional[Path] = None):
        self.key = key
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        self.path = Path(folder or cache_dir()) / f"latency-{key['kind']}-{digest}.json"
        self.entries: Dict[str, float] = {}
        self.cpu_entries: Dict[str, float] = {}  # chain tables: in thread CPU time
        self.calibration: Dict[str, Any] = {}  # chain tables: scale, archs, measured, summed
        self.seconds = 0.0
        self.written: Optional[str] = None
        self.other_machine: Optional[Tuple[Path, Dict[str, Any]]] = None
        if not self._read():
            self.other_machine = self._find_other_machine()

    @staticmethod
    def _load(path: Path):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # absent, unreadable or corrupt: measured again and rewritten

    def _read(self) -> bool:
        data = self._load(self.path)
        if isinstance(data, dict) and data.get("key") == self.key and isinstance(
                data.get("entries"), dict):
            self.entries = {str(k): float(v) for k, v in data["entries"].items()}
            self.cpu_entries = {str(k): float(v) for k, v in
                                (data.get("cpu_entries") or {}).items()}
            self.calibration = data.get("calibration") or {}
            self.seconds = float(data.get("seconds", 0.0))
            self.written = data.get("written")
            return True
        return False

    def _find_other_machine(self) -> Optional[Tuple[Path, Dict[str, Any]]]:
        """A table of the same key but another machine, in the same folder."""
        mine = {k: v for k, v in self.key.items() if k != "machine"}
        for path in sorted(self.path.parent.glob(f"latency-{self.key['kind']}-*.json")):
            data = self._load(path)
            key = data.get("key") if isinstance(data, dict) else None
            if isinstance(key, dict) and {k: v for k, v in key.items() if k != "machine"} == mine:
                return path, key.get("machine") or {}
        return None

    def other_machine_line(self, what: str) -> Optional[str]:
        """The line saying a table of another machine is not reused, or None."""
        if self.other_machine is None:
            return None
        path, theirs = self.other_machine
        mine = self.key["machine"]
        differ = ", ".join(f"{k} {theirs.get(k)!r} here {mine.get(k)!r}"
                           for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k))
        return f"{what}: the cached table {path} was measured on another machine ({differ}); " \
               f"not reused, measuring here"

    def save(self) -> None:
        make_dir(self.path.parent, "latency cache folder")
        self.written = time.strftime("%Y-%m-%d %H:%M:%S")
        doc = {"key": self.key, "machine": machine(), "written": self.written,
               "seconds": self.seconds, "entries": self.entries}
        if self.cpu_entries:
            doc["cpu_entries"] = self.cpu_entries
        if self.calibration:
            doc["calibration"] = self.calibration
        write_json_atomic(doc, self.path)


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


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class ChainLatency(LatencyModel):
    """Per-(block, op) lookup table of a ``ChoiceSpace`` plus stem and head, timed inside
    running chains (module docstring).

    Args:
        space: the chain space.
        setting: how to measure.
        input_size: the image side or (H, W) (default: the space's declared size).
        num_classes: the head's outputs (default: the space's).
        folder: the cache folder (default ``cache_dir()``).
        log: called with a line when the table is built and cached (``status()`` says
            where a table came from at any time).
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
        self.cache = _CacheFile(_cache_key("chain", space, model, self.input_shape, setting,
                                           declaration_fingerprint(space)), folder)
        what = f"latency table of {space.name} ({_setting_text(setting, self.input_shape)})"
        self.built_now, self.cached, self.load_ratio = False, True, None
        if not self._complete():
            line = self.cache.other_machine_line(what)
            if line:
                _warn(line)
            meter = self._build()
            self.load_ratio = meter.ratio
            if meter.loaded:
                self.cached = False
                _warn(f"{what} was built under load (wall time {meter.ratio:.2f}x the thread "
                      f"CPU time: other processes took the core); used for this run, not "
                      f"cached: build it again on a quiet machine")
            else:
                self.cache.save()
                if log:
                    log(f"{what}: {self.status()}")
        self.scale = float(self.cache.calibration["scale"])
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
        return all(name in self.cache.entries for name in self._names()) and isinstance(
            self.cache.calibration.get("scale"), (int, float)) and math.isfinite(
            self.cache.calibration["scale"]) and self.cache.calibration["scale"] > 0

    def _build(self) -> LoadMeter:
        """Build every op once, then run ``CHAIN_ROUNDS`` rounds of ``max(num_ops)`` paths; a
        round draws a random order of each block's ops (seeded) and path j takes op
        ``order[j % num_ops]`` of every block, so each op runs in at least one path a round.
        Per path, each part's median over the timed passes; an entry is the median of its
        per-path medians (stem and head: over every path). The same in thread CPU time (on the
        CPU): ``cpu_table``."""
        space, setting = self.space, self.setting
        t0 = time.perf_counter()
        meter = LoadMeter(setting.checks_load)
        with _keep_random_state(), torch.no_grad():
            x = _input(self.input_shape, setting)
            stem = prepare(space.make_stem(), setting)
            ops = [[prepare(space.make_op(b, o), setting) for o in range(int(n))]
                   for b, n in enumerate(space.num_ops)]
            head = prepare(space.make_head(self.num_classes), setting)
            # what is timed (onnxruntime: each module exported at its input's shape); a
            # block's input is op 0's output of the block before (every op of a block outputs
            # the same shape)
            h = x
            stem_run = runnable(stem, h, setting)
            h = stem(h)
            op_runs = []
            for block_ops in ops:
                op_runs.append([runnable(op, h, setting) for op in block_ops])
                h = block_ops[0](h)
            head_run = runnable(head, h, setting)
        x_run = runtime_input(x, setting)
        rng = np.random.default_rng(0)
        samples: Dict[str, List[np.ndarray]] = {name: [] for name in self._names()}
        for _ in range(CHAIN_ROUNDS):
            orders = [rng.permutation(int(n)) for n in space.num_ops]
            for j in range(int(space.num_ops.max())):
                path = [int(order[j % len(order)]) for order in orders]
                parts = [stem_run] + [op_runs[b][o] for b, o in enumerate(path)] + [head_run]
                wall, cpu = time_passes(parts, x_run, setting, meter, cpu_times=True)
                ms = np.stack([np.median(wall, axis=0), np.median(cpu, axis=0)], axis=1)
                samples["stem"].append(ms[0])
                samples["head"].append(ms[-1])
                for b, o in enumerate(path):
                    samples[self.op_key(b, o)].append(ms[1 + b])
        medians = {name: np.median(v, axis=0) for name, v in samples.items()}
        self.cache.entries = {name: float(m[0]) for name, m in medians.items()}
        self.cache.cpu_entries = {name: float(m[1]) for name, m in medians.items()
                                  if np.isfinite(m[1])}
        self.cache.calibration = self._calibrate(x, meter)
        self.cache.seconds = time.perf_counter() - t0
        self.built_now = True
        return meter

    def _calibrate(self, x, meter: LoadMeter) -> Dict[str, Any]:
        """Time ``CALIBRATION_ARCHS`` seeded random archs as standalone networks
        (``space.network``, built fresh, one call end to end; onnxruntime: exported whole) and
        return the scale of the table's sums: the median of measured / summed."""
        space, setting, entries = self.space, self.setting, self.cache.entries
        rng = np.random.default_rng(1)
        archs = [space.sample(rng) for _ in range(CALIBRATION_ARCHS)]
        measured, summed = [], []
        with _keep_random_state(), torch.no_grad():
            for arch in archs:
                net = prepare(space.network(arch, self.num_classes), setting)
                measured.append(time_module(runnable(net, x, setting), runtime_input(x, setting),
                                            setting, meter))
                summed.append(entries["stem"] + entries["head"] + sum(
                    entries[self.op_key(b, int(o))] for b, o in enumerate(arch)))
        ratios = np.array(measured) / np.array(summed)
        return {"scale": float(np.median(ratios)), "archs": [space.to_str(a) for a in archs],
                "measured_ms": measured, "summed_ms": summed}

    def status(self) -> str:
        """Where the table comes from: built now (cached or not) or read from the cache."""
        if not self.built_now:
            return (f"read from cache {self.cache.path} (built in {self.cache.seconds:.1f} s"
                    f"{', ' + self.cache.written if self.cache.written else ''})")
        if not self.cached:
            return (f"built in {self.cache.seconds:.1f} s under load (wall time "
                    f"{self.load_ratio:.2f}x the CPU time), not cached")
        return (f"built in {self.cache.seconds:.1f} s (sums scaled by "
                f"{self.cache.calibration['scale']:.3f} to {CALIBRATION_ARCHS} whole networks), "
                f"cached in {self.cache.path}")

    def table(self) -> Dict[str, float]:
        """Every entry of the lookup table (ms, as timed in the chains; a prediction is their
        sum times ``scale``): stem, head, ``block<b>.op<o>``."""
        return dict(self.cache.entries)

    def cpu_table(self) -> Dict[str, float]:
        """The same entries in thread CPU time (ms; on the CPU, else empty): what the table
        would hold without other processes taking the core."""
        return dict(self.cache.cpu_entries)

    def __call__(self, archs) -> np.ndarray:
        archs = self.space.genome_array(archs)
        return self.scale * (self.fixed + self.ops[self.space.offsets + archs].sum(axis=1))

    def bounds(self) -> Tuple[float, float]:
        per_block = np.split(self.ops, np.cumsum(self.space.num_ops)[:-1])
        return (self.scale * (self.fixed + sum(float(o.min()) for o in per_block)),
                self.scale * (self.fixed + sum(float(o.max()) for o in per_block)))

    def describe(self) -> Dict[str, Any]:
        return {"source": self.source,
                "kind": "per-(block, op) lookup table timed inside running chains, summed and "
                        "scaled to whole networks",
                "calibration": self.cache.calibration,
                "cache": str(self.cache.path), "build_seconds": self.cache.seconds,
                "built_now": self.built_now, "cached": self.cached,
                "load_ratio": self.load_ratio, "table": self.status()}


class CellLatency(LatencyModel):
    """Every candidate network measured once end to end, cached by canonical arch (module
    docstring). The cache file is written after each call that measured something new (and
    every minute of a long measurement, so an interrupted one resumes); networks measured under
    load are used for this run and not cached.

    Args:
        space: a cell space (NB201, DARTS) or any space with ``network``.
        network_kwargs: passed to ``space.network(arch, **network_kwargs)``.
        input_shape: (channels, height, width) of one image.
        setting: how to measure.
        folder: the cache folder.
        log: called with a line before a long measurement (how many networks, about how long:
            the first ``ANNOUNCE_AFTER`` timed, extrapolated).
        progress: a progress bar with an ETA while measuring.
    """

    def __init__(self, space, network_kwargs: Dict[str, Any], input_shape: Sequence[int],
                 setting: LatencySetting = LatencySetting(), folder=None,
                 log: Optional[Callable[[str], None]] = None, progress: bool = False):
        self.space, self.setting = space, setting
        self.network_kwargs = dict(network_kwargs)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.cache = _CacheFile(_cache_key("cell", space, self.network_kwargs, self.input_shape,
                                           setting, declaration_fingerprint(space, network_kwargs)),
                                folder)
        self.log, self.progress = log, progress
        self.transient: Dict[str, float] = {}  # measured under load: this run only
        self.measured = 0  # networks measured by this object (the rest came from the cache)
        self.measured_seconds = 0.0
        self.what = f"latency of {space.name} ({_setting_text(setting, self.input_shape)})"
        self.source = f"measured here ({_setting_text(setting, self.input_shape)})"
        line = self.cache.other_machine_line(self.what)
        if line:
            _warn(line)

    def _key(self, arch) -> str:
        return self.space.to_str(self.space.canonical(tuple(int(v) for v in arch)))

    def _value(self, key: str) -> float:
        return self.cache.entries[key] if key in self.cache.entries else self.transient[key]

    def __call__(self, archs) -> np.ndarray:
        archs = np.asarray(archs, dtype=np.int64).reshape(-1, self.space.num_genes)
        keys = [self._key(a) for a in archs]
        missing = [(k, a) for k, a in dict(zip(keys, map(tuple, archs.tolist()))).items()
                   if k not in self.cache.entries and k not in self.transient]
        if missing:
            self._measure(missing)
        return np.array([self._value(k) for k in keys], dtype=np.float64)

    def _measure(self, missing: List[Tuple[str, Tuple[int, ...]]]) -> None:
        from tqdm.auto import tqdm
        n, t0 = len(missing), time.perf_counter()
        saved_at, new, loaded, worst = t0, 0, 0, 0.0
        bar = None
        try:
            with _keep_random_state():
                for i, (key, arch) in enumerate(missing):
                    if i == ANNOUNCE_AFTER and n >= 4 * ANNOUNCE_AFTER:
                        bar = self._announce(n, time.perf_counter() - t0, tqdm)
                    meter = LoadMeter(self.setting.checks_load)
                    net = self.space.network(arch, **self.network_kwargs)
                    ms = measure_network(net, self.input_shape, self.setting, meter)
                    self.measured += 1
                    if meter.loaded:
                        self.transient[key] = ms
                        loaded, worst = loaded + 1, max(worst, meter.ratio)
                    else:
                        self.cache.entries[key] = ms
                        new += 1
                    if bar is not None:
                        bar.update(1)
                    if new and time.perf_counter() - saved_at > 60:
                        self._save(time.perf_counter() - saved_at)
                        saved_at, new = time.perf_counter(), 0
        finally:
            if bar is not None:
                bar.close()
            self.measured_seconds += time.perf_counter() - t0
            if new:
                self._save(time.perf_counter() - saved_at)
        if loaded:
            _warn(f"{self.what}: {loaded} of {n} networks measured under load (wall time up to "
                  f"{worst:.2f}x the thread CPU time: other processes took the core); used for "
                  f"this run, not cached")

    def _save(self, seconds: float) -> None:
        self.cache.seconds += seconds
        self.cache.save()

    def _announce(self, n: int, elapsed: float, tqdm):
        """Say how many networks will be measured and about how long; the progress bar."""
        each = elapsed / ANNOUNCE_AFTER
        if self.log:
            self.log(f"{self.what}: measuring {n:,} networks, each once end to end: about "
                     f"{_duration(each * n)} ({each:.2f} s each over the first "
                     f"{ANNOUNCE_AFTER}); cached in {self.cache.path} for later runs")
        return tqdm(total=n, initial=ANNOUNCE_AFTER, desc="latency", unit="net",
                    disable=not self.progress, leave=False, file=sys.stderr)

    def status(self) -> str:
        """How many networks came from the cache and how many were measured now."""
        text = f"{len(self.cache.entries):,} networks in cache {self.cache.path}"
        if self.measured:
            text += f"; {self.measured:,} measured now in {_duration(self.measured_seconds)}"
        if self.transient:
            text += f" ({len(self.transient):,} under load, not cached)"
        return text

    def describe(self) -> Dict[str, Any]:
        return {"source": self.source, "kind": "each network measured once, end to end",
                "cache": str(self.cache.path), "networks": len(self.cache.entries),
                "measured_now": self.measured, "measure_seconds": self.measured_seconds,
                "not_cached": len(self.transient), "table": self.status()}


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
                  log: Optional[Callable[[str], None]] = None,
                  progress: bool = False) -> LatencyModel:
    """The latency model of ``space`` measured on this machine, at the size its costs refer to.

    Args:
        space: any registered space or a ``ChoiceSpace``.
        cost_kwargs: the run's cost keywords (``space.cost_defaults(run.info)``).
        setting: how to measure.
        folder: the cache folder (default ``cache_dir()``).
        log: called with a line when a chain table is built, and before a long measurement
            of cell networks.
        progress: cell spaces: a progress bar while measuring networks.

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
    return CellLatency(space, net, shape, setting, folder, log, progress)


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
                  folder=None, log: Optional[Callable[[str], None]] = None,
                  progress: bool = False) -> LatencyModel:
    """A device table where ``table`` is given, else latency measured here.

    Args:
        space: the search space.
        cost_kwargs: the size the costs refer to (measured here only).
        table: a device table CSV, or None.
        device: its device column (with ``table`` only).
        setting: how to measure here (default ``LatencySetting()``).
        folder: the cache folder.
        log: lines on how the table was got (built in how long, read from which cache file)
            and before a long measurement.
        progress: a progress bar while cell networks are measured.

    Returns:
        the ``LatencyModel``.
    """
    if table is not None:
        if setting is not None:
            raise RlnasError("a latency setting (--latency-runtime) is how latency is measured "
                             "here; the --latency-table was measured on its device")
        return TableLatency(space, table, device)
    if device is not None:
        raise RlnasError("--latency-device names a column of --latency-table; give the table")
    return measured_here(space, cost_kwargs, setting or LatencySetting(), folder, log, progress)


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


__all__ = ["LatencySetting", "LatencyModel", "LoadMeter", "ChainLatency", "CellLatency",
           "TableLatency", "cache_dir", "declaration_fingerprint", "latency_model", "machine",
           "machine_key", "measured_here", "measure_network", "pareto_front", "time_module",
           "time_passes"]
