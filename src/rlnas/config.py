"""One documented config tree: a YAML preset (``configs/*.yaml``) plus ``key=value`` overrides.

The resolved tree is saved as ``config.yaml`` in the run directory, so every later stage (rank,
search, evaluate) and a resumed run sees exactly the settings the supernet was trained with.

Numbers may be written as Python reads them (``lr=1e-3``, ``1E6``, ``.5``, ``epochs=1_000``),
in overrides and in YAML files alike, although YAML 1.1 reads ``1e-3`` as text. Every numeric
key has its range in :data:`NUMERIC_RANGES`, which :func:`validate` enforces.

Every key is declared once, in :mod:`rlnas.schema`: a config is completed at load with the
declared defaults of the keys it lacks, a key the schema does not know is refused with the
nearest valid name, and a user file may name ``base: PRESET`` and give only what differs.
:func:`load_config` returns it as a :class:`rlnas.schema.Config`: the tree, with typed access
(``cfg.train.lr``) for the stages.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import yaml

from . import schema
from .errors import RlnasError
from .schema import Config, NumRange, TrainSection  # NumRange: the type of NUMERIC_RANGES' values

PRESET_DIR = Path(__file__).resolve().parent / "configs"

# Short names for the overrides people type most.
ALIASES = {
    "epochs": "train.epochs", "batch": "train.batch_size", "batch_size": "train.batch_size",
    "lr": "train.lr", "channels": "model.channels", "layers": "model.layers",
    "root": "data.root", "data": "data.root", "dataset": "data.dataset", "subset": "data.subset",
    "test_root": "data.test_root", "resolution": "data.resolution",
    "split_file": "data.split_file", "labels": "labels.kind",
    "num_label_classes": "labels.num_classes",
    "label_seed": "labels.seed", "nasbench201": "evaluate.nasbench201", "method": "search.method",
    "max_params": "search.max_params", "max_flops": "search.max_flops",
    "scorer": "search.scorer",
}

# Aliases whose key depends on the space: the first of the keys that the config has is meant.
# ``cells`` is the number of searchable cells: per stage in NB201 and the choice spaces
# (model.cells), in all in DARTS (model.layers).
SPACE_ALIASES = {"cells": ("model.cells", "model.layers")}


def resolve_alias(key: str, known) -> str:
    """The dotted key that ``key`` (a dotted key, or a short alias) means in a config with the
    flattened keys ``known``."""
    for candidate in SPACE_ALIASES.get(key, ()):
        if candidate in known:
            return candidate
    if key in SPACE_ALIASES:
        return SPACE_ALIASES[key][0]
    return ALIASES.get(key, key)

# Keys that may change when an existing run is resumed: they do not change the result.
# The process count may change on resume too; keep processes x train.accumulate constant (it sets
# the batch each BatchNorm sees) for a continuation identical to the uninterrupted run.
RESUME_MUTABLE = {"device", "precision", "data.root", "data.split_file", "evaluate.nasbench201",
                  "train.ckpt_every_steps", "train.keep_every_epochs", "train.accumulate",
                  "train.grad_sync"}


# Every numeric key, with the values it may take: derived from the schema (rlnas.schema.KEYS;
# tests/test_config.py checks that no numeric key of a config is missing).
NUMERIC_RANGES: Dict[str, NumRange] = schema.numeric_ranges()
_MODEL_SIZE = schema.MODEL_SIZE


@dataclass(frozen=True)
class FastRecipe:
    """A measured fast recipe (benchmarks/RESULTS.md): the preset, what quality to expect, and,
    where no recipe measured reaches a useful quality, the limit every weak-answer line of the
    space states."""
    space: str
    preset: str
    quality: str
    limit: Optional[str] = None


# Paper presets whose full schedule is days of CPU time, and the measured fast recipe to propose
# instead on a machine without a GPU (benchmarks/RESULTS.md, "Ground truth on every space").
FAST_RECIPES = {
    "nb201-cifar10": FastRecipe(
        "nb201", "nb201-cifar10-fast",
        "Kendall tau 0.72 with NB201 CIFAR-10 test over all 15,625 cells (the paper's recipe: "
        "0.508) in about 3 minutes on 2 CPU cores"),
    "nasbench-macro": FastRecipe(
        "nasbench-macro", "nasbench-macro-fast",
        "Kendall tau 0.75 with the benchmark's accuracy over its 3,969 networks (FLOPs alone: "
        "0.55, the paper's angle: about 0), a top pick at the 99.6th percentile, in about 2 "
        "minutes on 2 CPU cores"),
    "darts-cifar10": FastRecipe(
        "darts", "darts-cifar10-fast",
        "Kendall tau 0.21 with the test accuracy of 214 fully trained DARTS cells (params alone: "
        "0.17), the 10 best-scored of them 97.25 % on average (the set: 97.03 %)",
        limit="on the DARTS space no CPU recipe measured ranks fully trained cells much better "
              "than their params count (best: tau 0.21 against 0.17; the angle alone 0.10), so "
              "the genotype is a candidate to retrain and compare, not a proven winner"),
}

# The scorer proposed where a space has no measured recipe: the one with the largest mean margin
# over the best free size baseline across NB201, NAS-Bench-Macro and DARTS-214 (RESULTS).
CROSS_SPACE_SCORER = "distance"

# Keys that do not change what a run measures: where its data is, seeds, checkpoint bookkeeping.
_RECIPE_FREE_KEYS = {"seed", "device", "precision", "data.root", "data.split_file",
                     "labels.seed", "train.keep_every_epochs", "train.ckpt_every_steps",
                     "train.grad_sync", "train.accumulate", "evaluate.nasbench201"}


def fast_recipe(space: Optional[str]) -> Optional[FastRecipe]:
    """The measured fast recipe of a built-in space, or None."""
    return next((r for r in FAST_RECIPES.values() if r.space == space), None)


def _flat(cfg: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in cfg.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def measured_recipe(cfg: Dict[str, Any]) -> Optional[FastRecipe]:
    """The fast recipe a run's config is (training and scoring as measured; seeds and paths
    free), or None."""
    recipe = fast_recipe(Config.of(cfg).space)
    if recipe is None:
        return None
    mine, theirs = _flat(cfg), _flat(load_config(recipe.preset))
    measured = (k for k in theirs if k == "search.scorer" or (
        k not in _RECIPE_FREE_KEYS and not k.startswith("search.")))  # search limits are free
    same = all(mine.get(k) == theirs[k] for k in measured)
    return recipe if same else None


def preset_note(preset: str, cfg: Dict[str, Any], device_type: str) -> Optional[str]:
    """One line for the user before training: on a CPU, a paper preset's long schedule gets the
    proposal of its fast recipe; a fast recipe says what quality to expect. None otherwise."""
    name, epochs = Path(preset).stem, Config.of(cfg).train.epochs
    if name in FAST_RECIPES and device_type == "cpu" and epochs >= 50:
        recipe = FAST_RECIPES[name]
        return (f"note: {name} is the paper's {epochs}-epoch recipe, days on a "
                f"CPU. For a good answer in minutes use the preset {recipe.preset} (same "
                f"overrides): {recipe.quality}; see benchmarks/RESULTS.md.")
    for paper, recipe in FAST_RECIPES.items():
        if name == recipe.preset:
            limit = f". Known limit: {recipe.limit}" if recipe.limit else ""
            return (f"note: {recipe.preset} is the measured fast recipe for {paper}; expect "
                    f"{recipe.quality}{limit} (benchmarks/RESULTS.md).")
    return None


def list_presets() -> List[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_yaml(path) -> Dict[str, Any]:
    path = Path(path)
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f)
    except FileNotFoundError:
        raise RlnasError(f"config file {path} not found") from None
    except yaml.YAMLError as err:
        raise RlnasError(f"config file {path} is not valid YAML: "
                         f"{str(err).splitlines()[0]}") from None
    except UnicodeDecodeError:  # binary junk in place of the file
        raise RlnasError(f"config file {path} is not UTF-8 text (damaged?)") from None
    if not isinstance(cfg, dict):
        raise RlnasError(f"config file {path} must hold a mapping at top level")
    return cfg


def resolve_preset(name_or_path: str) -> Path:
    """A preset name (``nb201-cifar10``) or a path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    preset = PRESET_DIR / f"{p.stem if p.suffix in ('.yaml', '.yml') else name_or_path}.yaml"
    if preset.exists():
        return preset
    raise RlnasError(f"unknown preset or config file {name_or_path!r}; presets: "
                     f"{', '.join(list_presets())}")


def run_config_path(name_or_path: str) -> Optional[Path]:
    """``RUN/config.yaml`` where ``name_or_path`` is a run directory (a folder with a saved
    config.yaml), else None. A bare preset name stays the preset even where a folder of that
    name exists in the working directory (write ``./NAME`` for the folder)."""
    p = Path(name_or_path)
    bare = p.name == str(name_or_path) and (PRESET_DIR / f"{name_or_path}.yaml").exists()
    if not bare and p.is_dir() and (p / "config.yaml").is_file():
        return p / "config.yaml"
    return None


def flatten(cfg: Dict[str, Any], prefix="") -> Dict[str, Any]:
    out = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _parse_value(text: str):
    try:
        return yaml.safe_load(text) if text != "" else None
    except yaml.YAMLError:
        return text


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text_number(text: str):
    """``text`` as Python reads a number (1e-3, 1E6, .5, 1_000), else None. YAML 1.1 (PyYAML)
    reads exponents without a dot as text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None


def _numeric_value(key: str, value, old):
    """The value of numeric ``key`` (in NUMERIC_RANGES, or whose preset value ``old`` is a
    number), a number read from text where YAML left one as text; None stays None and
    anything else that is not a number is returned as is, for ``validate`` to refuse."""
    rng = NUMERIC_RANGES.get(key)
    if isinstance(value, str):
        number = _text_number(value.strip())
        value = value if number is None else number
    if not _is_number(value):
        return value
    if isinstance(value, float) and value.is_integer() and (
            (rng is not None and rng.integer) or (rng is None and isinstance(old, int))):
        return int(value)  # epochs=1e3
    if isinstance(value, int) and isinstance(old, float):
        return float(value)  # lr=1 keeps the key a float in config.yaml
    return value


def _set(cfg: Dict[str, Any], key: str, value) -> None:
    node = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        node = node[p]
    node[parts[-1]] = value


def apply_overrides(cfg: Dict[str, Any], overrides: Iterable[str]) -> Dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    known = flatten(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise RlnasError(f"override {item!r} is not of the form key=value")
        key = resolve_alias(key, known)
        if key not in known:
            raise schema.unknown_key_error(key, known)
        value = _parse_value(raw)
        old = known[key]
        if key in NUMERIC_RANGES or _is_number(old):
            value = _numeric_value(key, value, old)
            if value is not None and not _is_number(value):
                rng = NUMERIC_RANGES.get(key)
                what = rng.describe() if rng else f"a number like {old!r}"
                raise RlnasError(f"{key}={raw!r}: expected {what}")
        elif isinstance(old, str) and value is not None and not isinstance(value, str):
            value = raw  # e.g. labels=true is the word, not the boolean
        elif (old is not None and value is not None
              and isinstance(old, bool) != isinstance(value, bool)):
            raise RlnasError(f"{key}={raw!r}: expected a value like {old!r}")
        _set(cfg, key, value)
        known[key] = value
    return cfg


def load_config(preset: str, overrides: Iterable[str] = ()) -> Config:
    """The complete, validated config of a preset, YAML file or run's config.yaml.

    Args:
        preset: a preset name, a YAML file (which may name ``base: PRESET`` and give only what
            differs) or a run's ``config.yaml``.
        overrides: ``key=value`` items (dotted keys or short aliases).

    Returns:
        The config tree, every declared key of its kind present (missing ones take the
        schema's defaults), as a :class:`rlnas.schema.Config` (typed access: ``cfg.train.lr``).
    """
    path = resolve_preset(preset)
    cfg = read_config_file(path)
    cfg = apply_overrides(cfg, overrides)
    named = any(str(o).partition("=")[0].strip() == "space" for o in overrides)
    validate(cfg, where=None if named or not _in_run(path) else path)
    return Config(cfg)


def read_config_file(path, _seen=()) -> Dict[str, Any]:
    """The complete config of the YAML file ``path``: its ``base:`` preset (if it names one)
    with the file's keys put over it, numbers written as text read as numbers, unknown keys
    refused, missing keys completed with the schema's defaults; not yet validated."""
    path = Path(path)
    cfg = load_yaml(path)
    schema.check_sections(cfg, f"config file {path}")
    base = cfg.pop("base", None)
    if base is not None:
        cfg = schema.merge(_read_base(base, path, _seen), cfg)
    for key, value in flatten(cfg).items():  # a YAML file's `lr: 1e-3` is text too
        if key in NUMERIC_RANGES and isinstance(value, str):
            _set(cfg, key, _numeric_value(key, value, None))
    schema.check_known_keys(flatten(cfg), f"config file {path}: ")
    return complete(cfg)


def _read_base(base, path: Path, seen) -> Dict[str, Any]:
    """The config that ``base: NAME`` in the file ``path`` names: a preset, or a YAML file
    (relative to ``path``'s folder)."""
    if not isinstance(base, str) or not base.strip():
        raise RlnasError(f"config file {path}: base must name a preset or YAML file, got "
                         f"{base!r}")
    beside = path.parent / base
    target = beside if beside.suffix in (".yaml", ".yml") and beside.is_file() \
        else resolve_preset(base)
    if target.resolve() in seen or target.resolve() == path.resolve():
        raise RlnasError(f"config file {path}: base {base!r} names itself (a cycle of bases)")
    return read_config_file(target, tuple(seen) + (path.resolve(),))


def complete(cfg: Dict[str, Any], kind: Optional[str] = None) -> Dict[str, Any]:
    """``cfg`` with every declared key of its kind that it lacks set to the schema's default
    (keys it has keep their place and value; a section that is not a mapping is left for
    :func:`validate` to refuse).

    Args:
        cfg: a config tree (not changed).
        kind: ``search`` or ``retrain``; None: :func:`rlnas.schema.config_kind` decides.

    Returns:
        A new config tree."""
    out = copy.deepcopy(cfg)
    for name in schema.SECTIONS:  # `search:` with nothing under it
        if name in out and out[name] is None:
            out[name] = {}
    for key in schema.KEYS:
        if not key.fill or (kind or schema.config_kind(cfg)) not in key.kinds:
            continue
        node, parts = out, key.path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node.setdefault(parts[-1], copy.deepcopy(key.default))
    return out


def _in_run(path) -> bool:
    """Whether ``path`` lies in a folder rlnas wrote (a run or retraining): its space name is
    then a record, not the user's word."""
    folder = Path(path).parent
    return any((folder / name).exists() for name in ("run.json", "arch.json", "ckpt"))


def validate(cfg: Dict[str, Any], where=None):
    """Catch values that would fail late with an unclear message. ``where``: the run file the
    config was read from (a user space it names is then imported only if the user named it)."""
    from .spaces import get_space, recorded_space
    space = Config.of(cfg).space or ""
    if where is None:
        get_space(space)
    else:
        recorded_space(space, where)
    flat = flatten(cfg)
    for key, value in flat.items():
        rng = NUMERIC_RANGES.get(key)
        if rng is None and key.startswith("model.") and type(value) is int:  # not bool
            rng = _MODEL_SIZE  # a user space's own sizes, as the known ones
        if rng is not None:
            rng.check(key, value)
    for name in ("data", "labels", "train"):  # the sections every stage reads
        if not isinstance(cfg.get(name), dict):
            raise RlnasError(f"the config has no {name!r} section (a truncated file?); "
                             f"restore it, or name a preset to start from with base: PRESET")
    for key in schema.KEYS:  # the keys with a fixed set of values: lr_schedule, labels.kind, ...
        if key.choices is not None and key.path in flat:
            key.check_choice(flat[key.path])
    train = Config.of(cfg).train
    if train.lr_schedule == "linear_warmup" and train.warmup_epochs >= train.epochs:
        # the schedule decays over epochs - warmup_epochs: none left
        raise RlnasError(f"train.warmup_epochs={train.warmup_epochs} must be below "
                         f"train.epochs={train.epochs} with lr_schedule linear_warmup")


def search_scorer(cfg: Dict[str, Any]) -> str:
    """What rank, search and run score by: ``search.scorer`` (runs made before that key existed
    used the paper's angle)."""
    return Config.of(cfg).search.scorer or "angle"


def dump(cfg: Dict[str, Any]) -> str:
    """The config tree as the YAML of ``config.yaml``."""
    return yaml.safe_dump(Config.of(cfg).tree(), sort_keys=False)


def constant_schedule(train) -> bool:
    """True when the learning rate does not depend on ``train.epochs``: the cosine (per epoch)
    or linear (per step) schedule with ``lr_min`` equal to ``lr``. Every other schedule decays
    over all epochs, so the rate of a past step changes with ``train.epochs``. ``train``: a
    config's train section."""
    train = TrainSection(train)
    return train.lr_schedule in ("cosine", "linear") and train.lr_min == train.lr


def epochs_change_reason(saved: Dict[str, Any], new: Dict[str, Any]) -> Optional[str]:
    """None where ``train.epochs`` may change on resume (a constant-rate schedule, more epochs:
    the continuation is exactly the longer run), else why not."""
    t, new_t = Config.of(saved).train, Config.of(new).train
    old_e, new_e, schedule = t.epochs, new_t.epochs, t.lr_schedule
    if constant_schedule(t) and constant_schedule(new_t) and new_e > old_e:
        return None
    if new_e < old_e:
        return (f"train.epochs={new_e} is below the {old_e} the run was started with; its "
                f"checkpoints past epoch {new_e} would not be the shorter run's")
    how = {"cosine": "the cosine schedule sets each epoch's rate from train.epochs",
           "linear": "the linear schedule decays each step's rate over all train.epochs",
           "linear_warmup": "the warm-up schedule decays over train.epochs"}.get(
        schedule, f"the {schedule} schedule depends on train.epochs")
    return (f"extending train.epochs from {old_e} to {new_e} would change the learning rate of the "
            f"steps already trained ({how}, lr {t.lr} -> {t.lr_min}), so the result "
            f"would be neither run; train the longer schedule in a new run directory (--out NEW), "
            f"or use a constant rate (train.lr_min equal to train.lr, schedule cosine or linear), "
            f"with which train.epochs can be extended exactly")


def check_resume_compatible(saved: Dict[str, Any], new: Dict[str, Any], run_dir):
    """RlnasError unless ``new`` may continue the run trained with ``saved``: only the keys of
    :data:`RESUME_MUTABLE` may differ, and ``train.epochs`` may grow where the schedule does
    not depend on it (:func:`epochs_change_reason`)."""
    a, b = flatten(saved), flatten(new)
    # keys a later rlnas added are absent from older runs; their defaults keep the old behaviour
    # a deprecated key (train.sampler) is read by no code: its presence changes nothing
    diff = sorted(k for k in a if a[k] != b.get(k) and k not in RESUME_MUTABLE
                  and not getattr(schema.BY_PATH.get(k), "deprecated", False))
    if "train.epochs" in diff:
        reason = epochs_change_reason(saved, new) if isinstance(b.get("train.epochs"), int) \
            else "train.epochs is missing"
        if reason is None:
            diff.remove("train.epochs")
        elif diff == ["train.epochs"]:
            raise RlnasError(f"run {run_dir}: {reason}")
    if diff:
        k = diff[0]
        raise RlnasError(f"run {run_dir} was trained with {k}={a.get(k)!r}, not {b.get(k)!r}; "
                         f"use a new run directory (differs in: {', '.join(diff)})")
