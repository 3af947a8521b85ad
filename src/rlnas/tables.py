"""Ground-truth tables: the NAS-Bench-201 table (:func:`load_nb201_table`) and any benchmark
table for `rlnas evaluate --benchmark FILE` (:func:`load_benchmark_table`).

The NB201 table is a CSV with an ``arch`` column (NB201 arch strings) and one or more of the
accuracy columns in :data:`ACCURACY_COLUMNS` (top-1 accuracy in percent, 200 epochs, mean
over seeds). ``params_m`` and ``flops_m`` are read too when present; any other column is
ignored. The shipped table is ``shared/data/nasbench201.csv`` (see its ``SOURCE.md``).

Benchmark table formats, recognised from the file itself:

* **NB201 CSV** (``arch`` + NB201 accuracy columns, above): space ``nb201``.
* **NAS-Bench-Macro JSON** (``{"01201120": {"mean_acc": .., "test_acc": [3 seeds], "params",
  "flops"}, ...}``): space ``nasbench-macro``. The 6,561 keys are 3,969 distinct networks
  (:meth:`rlnas.spaces.macro.MacroSpace.canonical`); each network is one row under its canonical
  key, its numbers the mean over the keys that build it (the file gives those keys the same
  numbers, so this is the canonical key's value). Columns ``mean_acc`` and ``test_acc_seed0..2``;
  ``params_m`` / ``flops_m`` from the file (its FLOPs convention).
* **DARTS-214 CSV** (``genotype`` + ``test_acc_best`` ...): space ``darts``; every numeric column
  but ``index`` is an accuracy column, ``test_acc_best`` first (the primary). Costs are those of
  the trained network: CIFAR-10, C=36, 20 cells (:data:`DARTS_TRAINED_NETWORK`).
* **Generic CSV** ``arch,<accuracy columns>[,params_m,flops_m]``: ``arch`` in the run's space
  notation (``space.from_str``), every other column an accuracy column (in %, higher is better).
  Its space is the run's.

Bad input (missing file, empty, wrong columns or shape, an arch not in the space, duplicates)
raises a one-line :class:`~rlnas.errors.RlnasError` naming the file.
"""
from __future__ import annotations

import csv
import json
import math
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import RlnasError

#: Known accuracy columns, in report order, with what each one measures (NB201, hp='200',
#: is_random=False: last of 200 epochs, mean over the seeds the benchmark has).
ACCURACY_COLUMNS: "OrderedDict[str, str]" = OrderedDict(
    [
        (
            "cifar10_valid",
            "NB201 'cifar10-valid' / 'x-valid': trained on the 25k train half of CIFAR-10 "
            "train, top-1 accuracy (%) on the 25k held-out valid half, 200 epochs, mean over "
            "seeds.",
        ),
        (
            "cifar10_test",
            "NB201 'cifar10' / 'ori-test': trained on all 50k CIFAR-10 train images "
            "(train+valid), top-1 accuracy (%) on the 10k CIFAR-10 test set, 200 epochs, "
            "mean over seeds (NATS-tss v1.0 release).",
        ),
        (
            "cifar100_valid",
            "NB201 'cifar100' / 'x-valid': trained on the 50k CIFAR-100 train set, top-1 "
            "accuracy (%) on the 'x-valid' half (5k) of the CIFAR-100 test set, 200 epochs, "
            "mean over seeds.",
        ),
        (
            "cifar100_test",
            "NB201 'cifar100' / 'x-test': trained on the 50k CIFAR-100 train set, top-1 "
            "accuracy (%) on the 'x-test' half (the other 5k) of the CIFAR-100 test set, "
            "200 epochs, mean over seeds.",
        ),
        (
            "imagenet16_valid",
            "NB201 'ImageNet16-120' / 'x-valid': trained on the ImageNet16-120 train set, "
            "top-1 accuracy (%) on the 'x-valid' half (3k) of its test set, 200 epochs, "
            "mean over seeds.",
        ),
        (
            "imagenet16_test",
            "NB201 'ImageNet16-120' / 'x-test': trained on the ImageNet16-120 train set, "
            "top-1 accuracy (%) on the 'x-test' half (the other 3k) of its test set, "
            "200 epochs, mean over seeds.",
        ),
    ]
)

#: Optional numeric columns read when present (CIFAR-10 network, NB201 counting).
EXTRA_COLUMNS: "OrderedDict[str, str]" = OrderedDict(
    [
        ("params_m", "parameters in millions of the CIFAR-10 network, as NB201 counts them."),
        ("flops_m",
         "FLOPs in millions of the CIFAR-10 network (32x32 input), as NB201 counts them."),
    ]
)


# --------------------------------------------------------------------------------------
# Table
# --------------------------------------------------------------------------------------


class NB201Table:
    """A loaded ground-truth table.

    Attributes:
        path: where it was read from.
        archs: arch strings in file order.
        index: arch string -> row number (0-based, file order).
        columns: column name -> float64 array (accuracy columns present, plus
            ``params_m`` / ``flops_m`` when present), aligned with ``archs``.
        accuracy_columns: the accuracy columns present, in :data:`ACCURACY_COLUMNS` order.
    """

    def __init__(self, path, archs: list, columns: dict):
        self.path = Path(path)
        self.archs = list(archs)
        self.index = {a: i for i, a in enumerate(self.archs)}
        self.columns = dict(columns)
        self.accuracy_columns = [c for c in ACCURACY_COLUMNS if c in self.columns]

    def __len__(self) -> int:
        return len(self.archs)

    def __contains__(self, arch) -> bool:
        return arch in self.index

    def __repr__(self) -> str:
        return (f"NB201Table({str(self.path)!r}, rows={len(self.archs)}, "
                f"columns={list(self.columns)})")

    def rows(self, arch_strs: Sequence[str]) -> np.ndarray:
        """Row numbers of ``arch_strs``; RlnasError naming how many are missing and the first."""
        if isinstance(arch_strs, str):
            raise RlnasError("expected a list of arch strings, got a single string")
        arch_strs = list(arch_strs)
        out = np.empty(len(arch_strs), dtype=np.int64)
        missing = 0
        first_missing = None
        for i, a in enumerate(arch_strs):
            r = self.index.get(a) if isinstance(a, str) else None
            if r is None:
                missing += 1
                if first_missing is None:
                    first_missing = a
                out[i] = -1
            else:
                out[i] = r
        if missing:
            raise RlnasError(
                f"{missing} of {len(arch_strs)} archs are not in table {self.path}; "
                f"first missing: {first_missing!r}"
            )
        return out

    def lookup(self, arch_strs: Sequence[str], column: str) -> np.ndarray:
        """Values of ``column`` for ``arch_strs`` (float64 array, same order)."""
        if column not in self.columns:
            raise RlnasError(
                f"column {column!r} is not in table {self.path}; it has: {', '.join(self.columns)}"
            )
        return self.columns[column][self.rows(arch_strs)].astype(np.float64, copy=True)


def load_nb201_table(path) -> NB201Table:
    """Read a NAS-Bench-201 ground-truth CSV (see module docstring); RlnasError on bad input."""
    path = Path(path)
    if not path.exists():
        raise RlnasError(f"NB201 table {path} does not exist")
    if not path.is_file():
        raise RlnasError(f"NB201 table {path} is not a file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header, used = _nb201_header(path, next(reader, None))
            archs, values = _nb201_rows(path, reader, header, used)
    except RlnasError:
        raise
    except UnicodeDecodeError as exc:
        raise RlnasError(f"NB201 table {path} is not a readable UTF-8 CSV file "
                         f"({exc.reason})") from None
    except csv.Error as exc:
        raise RlnasError(f"NB201 table {path} is not a readable CSV file ({exc})") from None
    except OSError as exc:
        raise RlnasError(f"cannot read NB201 table {path}: {exc.strerror or exc}") from None
    if not archs:
        raise RlnasError(f"NB201 table {path} has a header but no data rows")
    columns = {c: np.asarray(values[c], dtype=np.float64) for c in used}
    return NB201Table(path, archs, columns)


def _nb201_header(path: Path, header: Optional[List[str]]) -> Tuple[List[str], List[str]]:
    """(the header's names, the columns read: the accuracy columns, then the extra ones) of an
    NB201 table; its header must name ``arch`` and at least one accuracy column, each once."""
    if header is None or not any(h.strip() for h in header):
        raise RlnasError(f"NB201 table {path} is empty (no header line)")
    header = [h.strip() for h in header]
    seen = set()
    for h in header:
        if h in seen:
            raise RlnasError(f"NB201 table {path}: column {h!r} appears twice in the header")
        seen.add(h)
    if "arch" not in header:
        raise RlnasError(
            f"NB201 table {path} has no 'arch' column (header: {', '.join(header)})"
        )
    acc_cols = [c for c in ACCURACY_COLUMNS if c in header]
    if not acc_cols:
        raise RlnasError(
            f"NB201 table {path} has none of the accuracy columns "
            f"{', '.join(ACCURACY_COLUMNS)}"
        )
    return header, acc_cols + [c for c in EXTRA_COLUMNS if c in header]


def _nb201_rows(path: Path, reader, header: List[str],
                used: List[str]) -> Tuple[list, Dict[str, list]]:
    """(archs, {column: values}) of the data rows of an NB201 table (blank lines skipped): every
    row as long as the header, its arch non-empty and seen once, its values finite numbers."""
    arch_pos = header.index("arch")
    used_pos = [(c, header.index(c)) for c in used]
    n_fields = len(header)
    archs: list = []
    values: Dict[str, list] = {c: [] for c in used}
    first_row_of: dict = {}
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        line = reader.line_num
        if len(row) != n_fields:
            raise RlnasError(
                f"NB201 table {path}, line {line}: {len(row)} fields, header has {n_fields}"
            )
        arch = row[arch_pos].strip()
        if not arch:
            raise RlnasError(f"NB201 table {path}, line {line}: empty 'arch' value")
        if arch in first_row_of:
            raise RlnasError(
                f"NB201 table {path}, line {line}: duplicate arch {arch!r} "
                f"(first seen on line {first_row_of[arch]})"
            )
        first_row_of[arch] = line
        archs.append(arch)
        for c, pos in used_pos:
            values[c].append(_nb201_value(path, line, c, row[pos].strip()))
    return archs, values


def _nb201_value(path: Path, line: int, column: str, text: str) -> float:
    where = f"NB201 table {path}, line {line}"
    if not text:
        raise RlnasError(f"{where}: missing value in column {column!r}")
    try:
        v = float(text)
    except ValueError:
        raise RlnasError(f"{where}: non-numeric value {text!r} in column {column!r}") from None
    if not math.isfinite(v):
        raise RlnasError(f"{where}: non-finite value {text!r} in column {column!r}")
    return v


# --------------------------------------------------------------------------------------
# Benchmark tables of every space
# --------------------------------------------------------------------------------------
#: The network the DARTS-214 cells were trained as (cost keyword arguments of DartsSpace.cost).
DARTS_TRAINED_NETWORK = {"network": "cifar", "channels": 36, "layers": 20, "num_classes": 10,
                         "image_size": 32}

#: Size bins used for the within-size tau where a table's archs have no groups of equal size.
SIZE_BIN = 20


class BenchmarkTable(NB201Table):
    """A ground-truth table of one space, its archs in the space's notation.

    Attributes (beyond :class:`NB201Table`'s ``path``, ``archs``, ``index``,
    ``columns``, ``accuracy_columns``):
        kind: ``nb201``, ``nasbench-macro``, ``darts-214`` or ``generic``.
        space: the space name the table belongs to (None: the run's, for a generic table).
        semantics: accuracy column -> what it measures.
        cost_kwargs: keyword arguments of ``space.cost`` for the benchmark's network (None: the
            space's own defaults).
        title: a name for reports.
        notes: how the table was read (canonicalisation, duplicates), for the report.
    """

    def __init__(self, path, archs: list, columns: dict, accuracy_columns: List[str], *,
                 kind: str, space: Optional[str], semantics: Dict[str, str], title: str,
                 cost_kwargs: Optional[dict] = None, notes: Optional[List[str]] = None):
        super().__init__(path, archs, columns)
        self.accuracy_columns = list(accuracy_columns)
        self.kind, self.space, self.title = kind, space, title
        self.semantics = dict(semantics)
        self.cost_kwargs = cost_kwargs
        self.notes = list(notes or [])

    def __repr__(self) -> str:
        return (f"BenchmarkTable({str(self.path)!r}, kind={self.kind!r}, rows={len(self.archs)}, "
                f"columns={self.accuracy_columns})")

    @property
    def primary(self) -> str:
        """The column constrained picks are judged on (CIFAR-10 test on NB201, else the first)."""
        return "cifar10_test" if "cifar10_test" in self.accuracy_columns else \
            self.accuracy_columns[0]

    def check_space(self, space_name: str) -> None:
        """RlnasError where the table is of another space than ``space_name``."""
        if self.space is not None and self.space != space_name:
            raise RlnasError(f"benchmark table {self.path} is a {self.kind} table (space "
                             f"{self.space}); the run's space is {space_name}")


def _fail(path, problem: str):
    raise RlnasError(f"benchmark table {path}: {problem}")


def load_benchmark_table(path, space=None) -> BenchmarkTable:
    """Read a benchmark table of any supported format (module docstring).

    Args:
        path: the file.
        space: the run's space object (needed for a generic CSV, whose archs are parsed and
            normalised with it; optional for the three known benchmarks).
    Returns:
        a :class:`BenchmarkTable`.
    """
    path = Path(path)
    if not path.exists():
        _fail(path, "does not exist")
    if not path.is_file():
        _fail(path, "is not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        _fail(path, "is not a UTF-8 text file")
    except OSError as exc:
        _fail(path, f"cannot be read ({exc.strerror or exc})")
    if not text.strip():
        _fail(path, "is empty")
    if text.lstrip().startswith("{"):
        return _load_macro_json(path, text)
    header = _csv_header(path, text)
    if "genotype" in header:
        return _load_darts_csv(path, text, header)
    if "arch" not in header:
        _fail(path, f"has neither an 'arch' nor a 'genotype' column (header: {', '.join(header)})")
    if any(c in ACCURACY_COLUMNS for c in header):
        return _from_nb201(path)
    if space is None:
        _fail(path, "is a generic CSV (arch + accuracy columns): its space is the run's; "
                    "load it with the run's space")
    return _load_generic_csv(path, text, header, space)


def _csv_header(path, text: str) -> List[str]:
    try:
        header = next(csv.reader(text.splitlines()), None)
    except csv.Error as exc:
        _fail(path, f"is not a readable CSV file ({exc})")
    header = [h.strip() for h in header or []]
    if not any(header):
        _fail(path, "is empty (no header line)")
    if len(set(header)) != len(header):
        _fail(path, "a column appears twice in the header")
    return header


def _from_nb201(path) -> BenchmarkTable:
    t = load_nb201_table(path)
    return BenchmarkTable(path, t.archs, t.columns, t.accuracy_columns, kind="nb201",
                          space="nb201", title="NAS-Bench-201",
                          semantics={c: ACCURACY_COLUMNS[c] for c in t.accuracy_columns})


def _number(path, where: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        _fail(path, f"{where}: non-numeric value {value!r}")
    if not math.isfinite(v):
        _fail(path, f"{where}: non-finite value {value!r}")
    return v


# --- NAS-Bench-Macro --------------------------------------------------------------------------
def _load_macro_json(path, text: str) -> BenchmarkTable:
    from .spaces.macro import macro_space
    try:
        data = json.loads(text)
    except ValueError as exc:
        _fail(path, f"is not valid JSON ({exc})")
    if not isinstance(data, dict) or not data:
        _fail(path, "expected a JSON object of NAS-Bench-Macro keys -> results")
    space = macro_space()
    groups: Dict[str, List[dict]] = {}
    n_seeds = None
    for key, rec in data.items():
        if not isinstance(rec, dict) or "mean_acc" not in rec:
            _fail(path, f"key {key!r}: expected an object with 'mean_acc'")
        canon = space.to_str(space.canonical(space.from_str(key)))
        seeds = rec.get("test_acc") if isinstance(rec.get("test_acc"), list) else []
        if n_seeds is None:
            n_seeds = len(seeds)
        elif len(seeds) != n_seeds:
            _fail(path, f"key {key!r}: {len(seeds)} per-seed accuracies, others have {n_seeds}")
        row = {"mean_acc": _number(path, f"key {key!r}, mean_acc", rec["mean_acc"])}
        for i, v in enumerate(seeds):
            row[f"test_acc_seed{i}"] = _number(path, f"key {key!r}, test_acc[{i}]", v)
        for src, dst in (("params", "params_m"), ("flops", "flops_m")):
            if src in rec:
                row[dst] = _number(path, f"key {key!r}, {src}", rec[src]) / 1e6
        groups.setdefault(canon, []).append(row)
    archs = sorted(groups)
    names = list(groups[archs[0]][0])
    if any(set(r) != set(names) for rows in groups.values() for r in rows):
        _fail(path, "keys carry different fields (mean_acc, test_acc, params, flops)")
    # duplicate keys (same network) carry the same numbers in the file: their mean is that value
    columns = {c: np.array([np.mean([r[c] for r in groups[a]]) for a in archs]) for c in names}
    acc_cols = [c for c in names if c not in EXTRA_COLUMNS]
    semantics = {"mean_acc": "NAS-Bench-Macro CIFAR-10 test accuracy (%), mean of 3 seeds"}
    semantics.update({c: f"NAS-Bench-Macro CIFAR-10 test accuracy (%), seed {c[-1]}"
                      for c in acc_cols if c != "mean_acc"})
    note = (f"{len(data)} keys = {len(archs)} distinct networks after identity "
            f"canonicalisation; each network scored once under its canonical key, its numbers "
            f"the mean over its keys")
    return BenchmarkTable(path, archs, columns, acc_cols, kind="nasbench-macro",
                          space="nasbench-macro", title="NAS-Bench-Macro", semantics=semantics,
                          notes=[note])


# --- CSV tables -------------------------------------------------------------------------------
def _csv_rows(path, text: str, header: List[str]):
    reader = csv.reader(text.splitlines())
    next(reader)
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            _fail(path, f"line {reader.line_num}: {len(row)} fields, header has {len(header)}")
        yield reader.line_num, dict(zip(header, (v.strip() for v in row)))


def _table_from_rows(path, text, header, arch_col, acc_cols, normalise, **meta) -> BenchmarkTable:
    """Rows of a CSV -> a table: ``normalise`` maps the arch text to the space's string."""
    archs, seen = [], {}
    values = {c: [] for c in acc_cols + [c for c in EXTRA_COLUMNS if c in header]}
    for line, row in _csv_rows(path, text, header):
        arch = normalise(row[arch_col], line)
        if arch in seen:
            _fail(path, f"line {line}: arch {row[arch_col]!r} is the same network as line "
                        f"{seen[arch]}")
        seen[arch] = line
        archs.append(arch)
        for c in values:
            values[c].append(_number(path, f"line {line}, column {c!r}", row[c]))
    if not archs:
        _fail(path, "has a header but no data rows")
    columns = {c: np.asarray(v, dtype=np.float64) for c, v in values.items()}
    return BenchmarkTable(path, archs, columns, acc_cols, **meta)


def _load_darts_csv(path, text: str, header: List[str]) -> BenchmarkTable:
    from .spaces import get_space
    space = get_space("darts")
    acc_cols = [c for c in header if c not in ("index", "genotype") and c not in EXTRA_COLUMNS]
    if "test_acc_best" in acc_cols:
        acc_cols.remove("test_acc_best")
        acc_cols.insert(0, "test_acc_best")
    if not acc_cols:
        _fail(path, "has a 'genotype' column but no accuracy column")

    def normalise(genotype, line):
        try:
            return space.to_str(space.from_str(genotype))
        except RlnasError as exc:
            _fail(path, f"line {line}: not a DARTS genotype ({exc})")

    semantics = {c: f"DARTS CIFAR-10 test accuracy (%), {c} (C=36, 20 cells, 600 epochs)"
                 for c in acc_cols}
    return _table_from_rows(path, text, header, "genotype", acc_cols, normalise,
                            kind="darts-214", space="darts", title="DARTS trained cells",
                            semantics=semantics, cost_kwargs=dict(DARTS_TRAINED_NETWORK))


def _load_generic_csv(path, text: str, header: List[str], space) -> BenchmarkTable:
    acc_cols = [c for c in header if c != "arch" and c not in EXTRA_COLUMNS]
    if not acc_cols:
        _fail(path, "has an 'arch' column but no accuracy column (format: arch,<accuracy "
                    "columns>[,params_m,flops_m])")

    def normalise(text_arch, line):
        try:
            arch = space.from_str(text_arch)
            return space.to_str(space.canonical(arch))  # the arch itself in most spaces
        except RlnasError as exc:
            _fail(path, f"line {line}: arch {text_arch!r} is not in the run's space ({exc})")

    semantics = {c: f"{c} (accuracy, %, from the user's table)" for c in acc_cols}
    return _table_from_rows(path, text, header, "arch", acc_cols, normalise, kind="generic",
                            space=None, title=f"the table {Path(path).name}",
                            semantics=semantics)


def size_groups(params: np.ndarray, min_size: int = 10, bin_size: int = SIZE_BIN):
    """Groups for the within-size tau: the params values themselves where the archs come in
    groups of equal size (NB201), else bins of ``bin_size`` archs sorted by params (Macro,
    DARTS: sizes rarely repeat). Returns (groups array, note or None)."""
    params = np.asarray(params, dtype=np.float64)
    _, counts = np.unique(np.round(params, 6), return_counts=True)
    if counts[counts >= min_size].sum() >= 0.5 * len(params):
        return np.round(params, 6), None
    order = np.argsort(params, kind="stable")
    bins = np.empty(len(params), dtype=np.float64)
    bins[order] = np.arange(len(params)) // bin_size
    return bins, (f"few archs share a params count here: 'within-params tau' is the tau inside "
                  f"bins of {bin_size} archs sorted by params")
