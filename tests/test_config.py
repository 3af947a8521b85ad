"""Tests for rlnas.config: numbers in every usual notation, and the range of every numeric key
(one table, NUMERIC_RANGES, enforced by validate)."""
import re
from pathlib import Path

import pytest
import yaml

from rlnas.config import NUMERIC_RANGES, PRESET_DIR, flatten, list_presets, load_config, validate
from rlnas.errors import RlnasError

ROOT = Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted(PRESET_DIR.glob("*.yaml")) + sorted((ROOT / "examples").glob("*.yaml"))


def _numeric_keys(path: Path):
    """Keys whose value in ``path`` is a number (booleans are not numbers)."""
    return {k for k, v in flatten(yaml.safe_load(path.read_text())).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _preset_with(key: str) -> str:
    return next(p for p in list_presets() if key in flatten(load_config(p)))


def _value(cfg, key):
    return flatten(cfg)[key]


# ----------------------------------------------------------------------------------------------
# the table covers every numeric key, and every shipped config is in range
# ----------------------------------------------------------------------------------------------
def test_every_numeric_key_of_every_config_has_a_range():
    seen = set()
    for path in CONFIG_FILES:
        keys = _numeric_keys(path)
        missing = sorted(keys - set(NUMERIC_RANGES))
        assert not missing, f"{path.name}: numeric keys without a range: {missing}"
        seen |= keys
    # no stale entry: every range belongs to a key some config has (null-valued ones included)
    every_key = set().union(*(flatten(yaml.safe_load(p.read_text())) for p in CONFIG_FILES))
    assert set(NUMERIC_RANGES) <= every_key, sorted(set(NUMERIC_RANGES) - every_key)
    assert seen  # the configs were read


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_every_shipped_config_validates(path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # examples.my_space:SPACE imports from the repo root
    cfg = load_config(str(path))
    validate(cfg)
    for key, value in flatten(cfg).items():  # and integer keys hold integers
        if key in NUMERIC_RANGES and NUMERIC_RANGES[key].integer and value is not None:
            assert type(value) is int, (key, value)


# ----------------------------------------------------------------------------------------------
# each range, just inside and just outside its bounds
# ----------------------------------------------------------------------------------------------
def _cases():
    """(key, override value, accepted?) around the bounds of every range in the table."""
    out = []
    for key, r in NUMERIC_RANGES.items():
        step = 1 if r.integer else 1e-9
        if r.lo is not None:
            out.append((key, r.lo if r.lo_open else r.lo - step, False))
            out.append((key, r.lo + step if r.lo_open else r.lo, True))
        if r.hi is not None:
            out.append((key, r.hi if r.hi_open else r.hi + step, False))
            out.append((key, r.hi - step if r.hi_open else r.hi, True))
        if r.integer:
            out.append((key, r.lo + 1.5, False))  # in range, but not an integer
        out.append((key, None, r.nullable))
    return out


@pytest.mark.parametrize("key, value, ok", _cases(),
                         ids=[f"{k}={v!r}" for k, v, _ in _cases()])
def test_range_bounds(key, value, ok):
    preset = _preset_with(key)
    text = "null" if value is None else repr(value)
    if ok:
        cfg = load_config(preset, [f"{key}={text}"])
        assert _value(cfg, key) == value
    else:
        with pytest.raises(RlnasError) as ei:
            load_config(preset, [f"{key}={text}"])
        msg = str(ei.value)
        assert msg.startswith(f"{key}=") and "expected" in msg and "\n" not in msg, msg


# Spot checks written out by hand, so that a wrong range in the table fails here too.
@pytest.mark.parametrize("override, message", [
    ("lr=-1", "train.lr=-1.0 is out of range: expected a number > 0"),
    ("lr=0", "train.lr=0.0 is out of range: expected a number > 0"),
    ("epochs=0", "train.epochs=0 is out of range: expected a positive integer (at most 100000)"),
    ("batch=0",
     "train.batch_size=0 is out of range: expected a positive integer (at most 1000000)"),
    ("channels=0",
     "model.channels=0 is out of range: expected a positive integer (at most 100000)"),
    ("train.momentum=1", "train.momentum=1.0 is out of range: expected a number in [0, 1)"),
    ("train.label_smoothing=1",
     "train.label_smoothing=1.0 is out of range: expected a number in [0, 1)"),
    ("train.weight_decay=-1e-5",
     "train.weight_decay=-1e-05 is out of range: expected a number >= 0"),
    ("train.grad_clip_norm=0",
     "train.grad_clip_norm=0 is out of range: expected a number > 0 or null"),
    ("train.stop_when_stable=1",
     "train.stop_when_stable=1 is out of range: expected a number in [0, 1) or null"),
    ("search.mutation_prob=1.01",
     "search.mutation_prob=1.01 is out of range: expected a number in [0, 1]"),
    ("search.topk=0",
     "search.topk=0 is out of range: expected a positive integer (at most 10000000)"),
    ("search.max_flops=0", "search.max_flops=0 is out of range: expected a number > 0 or null"),
    ("subset=1", "data.subset=1 is out of range: expected an integer in [2, 1000000000] or null"),
    ("resolution=3",
     "data.resolution=3 is out of range: expected an integer in [4, 100000] or null"),
    ("num_label_classes=1",
     "labels.num_classes=1 is out of range: expected an integer in [2, 1000000000] or null"),
    ("label_seed=-1", "labels.seed=-1 is out of range: expected an integer in [0, 4294967295]"),
    ("seed=4294967296", "seed=4294967296 is out of range: expected an integer in [0, 4294967295]"),
    ("lr=null", "train.lr=null: expected a number > 0"),
])
def test_out_of_range_messages(override, message):
    with pytest.raises(RlnasError) as ei:
        load_config("nb201-cifar10", [override])
    assert str(ei.value) == message


@pytest.mark.parametrize("override", [
    "lr=1e6", "train.lr_min=0", "search.mutation_prob=0", "search.mutation_prob=1",
    "train.ckpt_every_steps=0", "train.keep_every_epochs=0", "train.stop_when_stable=0",
    "train.grad_clip_norm=null", "train.grad_clip_value=0.5", "num_label_classes=2", "seed=0",
    "subset=2", "resolution=4", "search.max_params=0.5", "train.label_smoothing=0.999",
])
def test_values_at_the_edge_are_accepted(override):
    load_config("nb201-cifar10", [override])


def test_retrain_keys_edges():
    for override in ["data.cutout=0", "model.drop_path=0", "train.aux_weight=0",
                     "train.warmup_epochs=0", "eval.every_epochs=0"]:
        load_config("retrain-darts-cifar10", [override])
    for override, key in [("data.cutout=-1", "data.cutout"),
                          ("model.drop_path=1", "model.drop_path"),
                          ("train.aux_weight=-0.1", "train.aux_weight"),
                          ("eval.every_epochs=-1", "eval.every_epochs")]:
        with pytest.raises(RlnasError, match=f"^{key}="):
            load_config("retrain-darts-cifar10", [override])


def test_warmup_must_leave_epochs_to_decay_over():
    load_config("retrain-darts-imagenet", ["epochs=6"])  # warmup_epochs 5
    with pytest.raises(RlnasError, match=r"train.warmup_epochs=5 must be below train.epochs=5"):
        load_config("retrain-darts-imagenet", ["epochs=5"])


def test_a_user_space_model_size_must_be_a_positive_integer():
    cfg = load_config("nb201-cifar10")
    cfg["model"]["width"] = 0  # a key of a user's space, not in the table
    with pytest.raises(RlnasError, match=r"^model.width=0 is out of range: expected a positive"):
        validate(cfg)


# ----------------------------------------------------------------------------------------------
# numbers in every usual notation (YAML 1.1 reads 1e-3 as text)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("override, key, expected", [
    ("lr=1e-3", "train.lr", 0.001),
    ("lr=1E-3", "train.lr", 0.001),
    ("lr=1e6", "train.lr", 1e6),
    ("lr=2.5e+0", "train.lr", 2.5),
    ("lr=.5", "train.lr", 0.5),
    ("lr=1", "train.lr", 1.0),  # an integer for a float key stays a float
    ("train.weight_decay=3e-5", "train.weight_decay", 3e-5),
    ("train.lr_min=0", "train.lr_min", 0.0),
    ("epochs=1_000", "train.epochs", 1000),
    ("epochs=1e3", "train.epochs", 1000),  # an integral float for an integer key
    ("batch=2E2", "train.batch_size", 200),
    ("subset=5e3", "data.subset", 5000),  # null in the preset: the table says integer
    ("max_flops=6e2", "search.max_flops", 600.0),
    ("labels=true", "labels.kind", "true"),  # a word key keeps the word
])
def test_number_notations(override, key, expected):
    value = _value(load_config("nb201-cifar10", [override]), key)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("override, message", [
    ("lr=abc", "train.lr='abc': expected a number > 0"),
    ("lr=true", "train.lr='true': expected a number > 0"),
    ("epochs=2.5", "train.epochs=2.5: expected a positive integer (at most 100000)"),
    ("epochs=1e-3", "train.epochs=0.001: expected a positive integer (at most 100000)"),
    ("lr=nan", "train.lr=nan is not a finite number: expected a number > 0"),
    ("lr=inf", "train.lr=inf is not a finite number: expected a number > 0"),
])
def test_what_is_not_a_number_in_range(override, message):
    with pytest.raises(RlnasError) as ei:
        load_config("nb201-cifar10", [override])
    assert str(ei.value) == message


def test_a_config_file_may_write_exponents_too(tmp_path):
    text = (PRESET_DIR / "nb201-cifar10.yaml").read_text()
    text = re.sub(r"(?m)^  lr: .*$", "  lr: 1e-3", text)
    text = re.sub(r"(?m)^  epochs: .*$", "  epochs: 2e2", text)
    assert yaml.safe_load(text)["train"]["lr"] == "1e-3"  # what YAML 1.1 makes of it
    (tmp_path / "mine.yaml").write_text(text)
    cfg = load_config(str(tmp_path / "mine.yaml"))
    assert cfg["train"]["lr"] == 0.001 and cfg["train"]["epochs"] == 200
    assert type(cfg["train"]["epochs"]) is int
