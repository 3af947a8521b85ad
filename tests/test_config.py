"""Tests for rlnas.config and rlnas.schema: numbers in every usual notation, the range of every
numeric key (one table, NUMERIC_RANGES, enforced by validate), and the schema declared once
(rlnas.schema.KEYS): the typed config and the presets' comments generated from it,
`rlnas config --show`, and no declared key that no code reads."""
import ast
import inspect
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from rlnas.cli import main
from rlnas.config import NUMERIC_RANGES, PRESET_DIR, flatten, list_presets, load_config, validate
from rlnas.errors import RlnasError
from rlnas.loop import LoopSpec
from rlnas.schema import (
    BY_PATH,
    KEYS,
    OPEN_SECTIONS,
    SECTION_TYPES,
    Config,
    TrainSection,
    annotate,
    describe_schema,
)
from rlnas.spaces import get_space, list_spaces

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


# === the schema declared once (rlnas.schema.KEYS) =================================================
# The config schema declared once (rlnas.schema.KEYS): the typed config generated from it, the
# presets' comments generated from it, `rlnas config --show`, and no declared key that no code
# reads.
SRC = Path(__file__).resolve().parents[1] / "src" / "rlnas"


# ----------------------------------------------------------------------------------------------
# the typed config
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", list_presets())
def test_typed_access_reads_the_tree(preset):
    cfg = load_config(preset)
    assert isinstance(cfg, Config) and isinstance(cfg, dict)
    for path, value in flatten(cfg).items():
        section, _, leaf = path.partition(".")
        if section in OPEN_SECTIONS:
            assert cfg.model[leaf] == value
        elif leaf:
            assert getattr(getattr(cfg, section), leaf) == value, path
        else:
            assert getattr(cfg, path) == value, path


def test_a_missing_key_reads_its_default_and_a_misspelt_one_fails():
    cfg = Config.of({"train": {"epochs": 3}})
    assert cfg.train.epochs == 3 and cfg.train.lr == BY_PATH["train.lr"].default
    assert cfg.seed == BY_PATH["seed"].default and cfg.model == {}
    with pytest.raises(AttributeError):
        cfg.train.lrr
    with pytest.raises(AttributeError):
        cfg.train.sampler  # deprecated: read by no code, so no attribute
    with pytest.raises(AttributeError):
        cfg.train.lr = 1.0  # read-only


def test_loop_spec_takes_every_recipe_key_from_the_train_section():
    values = {"epochs": 7, "lr": 0.3, "lr_min": 0.01, "momentum": 0.5, "nesterov": False,
              "weight_decay": 0.01, "lr_schedule": "linear", "warmup_epochs": 2,
              "label_smoothing": 0.1, "grad_clip_norm": 3.0, "grad_clip_value": 4.0,
              "wd_conv_only": True, "wd_classifier": True, "aux_weight": 0.4, "accumulate": 2,
              "grad_sync": "ddp", "ckpt_every_steps": 5, "keep_every_epochs": 3}
    spec = LoopSpec.from_train(TrainSection.of(**values), model=None, loader=None, device="cpu")
    assert {k: getattr(spec, k) for k in values} == values
    defaults = LoopSpec.from_train(TrainSection.of(epochs=1), model=None, loader=None,
                                   device="cpu")
    assert defaults.lr_schedule == BY_PATH["train.lr_schedule"].default


# ----------------------------------------------------------------------------------------------
# no declared key that no code reads
# ----------------------------------------------------------------------------------------------
def _section_names(func: ast.AST, sections):
    """Local names bound to a config section in ``func``: ``t = cfg.train``,
    ``d = DataSection(...)``, ``recipe = TrainSection.of(...)``."""
    views = {f"{s.capitalize()}Section": s for s in sections}
    names = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            pairs = [(node.targets[0], node.value)]
            if isinstance(node.targets[0], ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs = list(zip(node.targets[0].elts, node.value.elts))  # d, x = cfg.data, ...
            for target, value in pairs:
                if isinstance(value, ast.Call):
                    f = value.func
                    value = f.value if isinstance(f, ast.Attribute) and f.attr == "of" else f
                section = (value.attr if isinstance(value, ast.Attribute) else
                           value.id if isinstance(value, ast.Name) else None)
                section = views.get(section, section)
                if isinstance(target, ast.Name) and section in sections:
                    names[target.id] = section
        elif isinstance(node, ast.arg) and node.annotation is not None:
            ann = ast.unparse(node.annotation)
            if ann in views:
                names[node.arg] = views[ann]
    return names


def config_reads(sources, keys=KEYS):
    """The dotted keys of ``keys`` that the Python ``sources`` read through the typed config:
    ``<expr>.<section>.<key>``, ``<name>.<key>`` where the name is bound to a section, and
    ``<...cfg|config>.<top-level key>``."""
    sections = {k.section for k in keys if k.section}
    top = {k.path for k in keys if not k.section}
    read = set()
    for source in sources:
        tree = ast.parse(source)
        funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Lambda))]
        for func in funcs + [tree]:
            local = _section_names(func, sections)
            for node in ast.walk(func):
                if not isinstance(node, ast.Attribute):
                    continue
                owner = node.value
                if isinstance(owner, ast.Attribute) and owner.attr in sections:
                    read.add(f"{owner.attr}.{node.attr}")
                elif isinstance(owner, ast.Name) and owner.id in local:
                    read.add(f"{local[owner.id]}.{node.attr}")
                elif node.attr in top and ast.unparse(owner).endswith(("cfg", "config", ")")):
                    read.add(node.attr)
    return read


def unread_keys(sources, keys=KEYS):
    """Declared keys (not deprecated, not the space's model keywords) that no source reads."""
    read = config_reads(sources, keys)
    return [k.path for k in keys
            if not k.deprecated and k.section not in OPEN_SECTIONS and k.path not in read]


def _sources():
    return [p.read_text() for p in SRC.rglob("*.py")]


def test_every_declared_key_is_read_by_some_code():
    assert unread_keys(_sources()) == []


def test_the_unread_key_check_finds_a_key_no_code_reads():
    from rlnas.schema import Key
    extra = KEYS + (Key("train.never_read", 0, "a key no code reads"),
                    Key("search.unused", None, "another"))
    assert unread_keys(_sources(), extra) == ["train.never_read", "search.unused"]
    code = textwrap.dedent("""
        def f(cfg, d: DataSection):
            t = cfg.train
            recipe = TrainSection.of(epochs=1)
            s, n = Config.of(cfg).labels, 3
            return t.never_read, cfg.search.unused, d.root, recipe.lr, cfg.seed, s.kind
    """)
    assert {"train.never_read", "search.unused", "data.root", "train.lr", "seed",
            "labels.kind"} <= config_reads([code], extra)


def test_every_model_key_is_a_keyword_of_a_built_in_space():
    keywords = set()
    for name in list_spaces():
        space = get_space(name)
        for method in (space.supernet, space.network):
            keywords |= set(inspect.signature(method).parameters)
    model_keys = [k.path.partition(".")[2] for k in KEYS if k.section == "model"]
    assert [k for k in model_keys if k not in keywords] == []


# ----------------------------------------------------------------------------------------------
# the presets' comments and `rlnas config --show`
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", list_presets())
def test_preset_comments_are_the_schema_docs(preset):
    text = (PRESET_DIR / f"{preset}.yaml").read_text()
    assert annotate(text) == text, (
        f"a key's comment in {preset}.yaml is not its doc in rlnas.schema.KEYS; rewrite it "
        f"with rlnas.schema.annotate (a note of the preset's own goes on a line above the key)")


def test_a_preset_comment_that_disagrees_with_the_schema_is_found():
    text = (PRESET_DIR / "nb201-cifar10.yaml").read_text()
    stale = text.replace("# cosine (per epoch) | linear (per step, to lr_min) | linear_warmup",
                         "# cosine (per epoch) | linear (per step, to lr_min)")
    assert stale != text and annotate(stale) == text
    assert annotate("train:\n  lr: 0.1\n") == "train:\n" + \
        f"{'  lr: 0.1':<30} # {BY_PATH['train.lr'].doc}\n"


def test_config_show_prints_the_resolved_config_with_docs(capsys):
    assert main(["config", "--show", "demo-digits", "epochs=3"]) == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out) == load_config("demo-digits", ["epochs=3"])
    assert f"# {BY_PATH['train.epochs'].doc}" in out and "epochs: 3 " in out


def test_config_show_without_a_config_lists_the_schema(capsys):
    assert main(["config", "--show"]) == 0
    out = capsys.readouterr().out
    assert out == describe_schema()
    listed = flatten(yaml.safe_load(out))
    assert set(listed) == {k.path for k in KEYS}
    for name in SECTION_TYPES:
        assert f"\n{name}:\n" in out


def test_config_without_show_is_one_line_error(capsys):
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlnas config: error: nothing to do") and err.count("\n") == 1
