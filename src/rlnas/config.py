"""One documented config tree: a YAML preset (``configs/*.yaml``) plus ``key=value`` overrides.

The resolved tree is saved as ``config.yaml`` in the run directory, so every later stage (rank,
search, evaluate) and a resumed run sees exactly the settings the supernet was trained with.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import yaml

from .errors import RlnasError

PRESET_DIR = Path(__file__).resolve().parent / "configs"

# Short names for the overrides people type most.
ALIASES = {
    "epochs": "train.epochs", "batch": "train.batch_size", "batch_size": "train.batch_size",
    "lr": "train.lr", "channels": "model.channels", "cells": "model.cells",
    "root": "data.root", "data": "data.root", "dataset": "data.dataset", "subset": "data.subset",
    "test_root": "data.test_root", "resolution": "data.resolution",
    "split_file": "data.split_file", "labels": "labels.kind", "num_label_classes": "labels.num_classes",
    "label_seed": "labels.seed", "nasbench201": "evaluate.nasbench201", "method": "search.method",
    "max_params": "search.max_params", "max_flops": "search.max_flops",
}

# Keys that may change when an existing run is resumed: they do not change the result.
# The process count may change on resume too; keep processes x train.accumulate constant (it sets
# the batch each BatchNorm sees) for a continuation identical to the uninterrupted run.
RESUME_MUTABLE = {"device", "precision", "data.root", "data.split_file", "evaluate.nasbench201",
                  "train.ckpt_every_steps", "train.keep_every_epochs", "train.accumulate",
                  "train.grad_sync"}


# Paper presets whose full schedule is days of CPU time, and the measured fast recipe to propose
# instead on a machine without a GPU (benchmarks/RESULTS.md, "A good answer in minutes").
FAST_RECIPES = {
    "nb201-cifar10": ("nb201-cifar10-fast",
                      "Kendall tau 0.72 with NB201 CIFAR-10 test over all 15,625 cells (the paper's "
                      "recipe: 0.508) in about 3 minutes on 2 CPU cores"),
    "darts-cifar10": ("darts-cifar10-fast",
                      "a genotype of separable and dilated convolutions (at CPU budgets the "
                      "paper's angle picks a parameter-free one)"),
}


def preset_note(preset: str, cfg: Dict[str, Any], device_type: str) -> Optional[str]:
    """One line for the user before training: on a CPU, a paper preset's long schedule gets the
    proposal of its fast recipe; a fast recipe says what quality to expect. None otherwise."""
    name = Path(preset).stem
    if name in FAST_RECIPES and device_type == "cpu" and cfg["train"]["epochs"] >= 50:
        fast, quality = FAST_RECIPES[name]
        return (f"note: {name} is the paper's {cfg['train']['epochs']}-epoch recipe, days on a "
                f"CPU. For a good answer in minutes use the preset {fast} (same overrides): "
                f"{quality}; see benchmarks/RESULTS.md.")
    for paper, (fast, quality) in FAST_RECIPES.items():
        if name == fast:
            return (f"note: {fast} is the measured fast recipe for {paper}; expect {quality} "
                    f"(benchmarks/RESULTS.md).")
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
        raise RlnasError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
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


def apply_overrides(cfg: Dict[str, Any], overrides: Iterable[str]) -> Dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    known = flatten(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise RlnasError(f"override {item!r} is not of the form key=value")
        key = ALIASES.get(key, key)
        if key not in known:
            raise RlnasError(f"unknown config key {key!r}; known keys: {', '.join(sorted(known))}")
        value = _parse_value(raw)
        old = known[key]
        if isinstance(old, str) and value is not None and not isinstance(value, str):
            value = raw  # e.g. labels=true is the word, not the boolean
        elif old is not None and value is not None:
            if isinstance(old, bool) != isinstance(value, bool) or (
                    isinstance(old, (int, float)) and not isinstance(value, (int, float))):
                raise RlnasError(f"{key}={raw!r}: expected a value like {old!r}")
            if isinstance(old, float) and isinstance(value, int):
                value = float(value)
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = value
        known[key] = value
    return cfg


def load_config(preset: str, overrides: Iterable[str] = ()) -> Dict[str, Any]:
    path = resolve_preset(preset)
    cfg = load_yaml(path)
    cfg = apply_overrides(cfg, overrides)
    validate(cfg)
    return cfg


def validate(cfg: Dict[str, Any]):
    """Catch values that would fail late with an unclear message."""
    from .spaces import get_space
    get_space(cfg.get("space", ""))
    t, m = cfg["train"], cfg["model"]
    sizes = [(f"model.{k}", v) for k, v in m.items()
             if isinstance(v, int) and not isinstance(v, bool)]
    for key, v in [("train.epochs", t["epochs"]), ("train.batch_size", t["batch_size"])] + sizes:
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise RlnasError(f"{key} must be a positive integer, got {v!r}")
    if t.get("lr_schedule", "cosine") not in ("cosine", "linear", "linear_warmup"):
        raise RlnasError("train.lr_schedule must be cosine, linear or linear_warmup, got "
                         f"{t['lr_schedule']!r}")
    if cfg["labels"]["kind"] not in ("random", "true"):
        raise RlnasError(f"labels.kind must be 'random' or 'true', got {cfg['labels']['kind']!r}")
    if cfg["precision"] not in ("auto", "fp32", "bf16", "fp16"):
        raise RlnasError(f"precision must be auto, fp32, bf16 or fp16, got {cfg['precision']!r}")
    sub = cfg["data"].get("subset")
    if sub is not None and (not isinstance(sub, int) or sub < 2):
        raise RlnasError(f"data.subset must be an integer >= 2 or null, got {sub!r}")
    transform = cfg["data"].get("transform")
    if transform not in (None, "official", "torchvision"):
        raise RlnasError(f"data.transform must be official or torchvision, got {transform!r}")
    res = cfg["data"].get("resolution")
    if res is not None and (not isinstance(res, int) or isinstance(res, bool) or res < 4):
        raise RlnasError(f"data.resolution must be an integer >= 4 (pixels) or null, got {res!r}")


def search_scorer(cfg: Dict[str, Any]) -> str:
    """What rank, search and run score by: ``search.scorer`` (runs made before that key existed
    used the paper's angle)."""
    return cfg.get("search", {}).get("scorer") or "angle"


def dump(cfg: Dict[str, Any]) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)


def check_resume_compatible(saved: Dict[str, Any], new: Dict[str, Any], run_dir):
    a, b = flatten(saved), flatten(new)
    # keys a later rlnas added are absent from older runs; their defaults keep the old behaviour
    diff = sorted(k for k in a if a[k] != b.get(k) and k not in RESUME_MUTABLE)
    if diff:
        k = diff[0]
        raise RlnasError(f"run {run_dir} was trained with {k}={a.get(k)!r}, not {b.get(k)!r}; "
                         f"use a new run directory (differs in: {', '.join(diff)})")
