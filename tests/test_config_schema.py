"""The config schema declared once (rlnas.schema.KEYS): the typed config generated from it, the
presets' comments generated from it, `rlnas config --show`, and no declared key that no code
reads."""
import ast
import inspect
import textwrap
from pathlib import Path

import pytest
import yaml

from rlnas.cli import main
from rlnas.config import PRESET_DIR, flatten, list_presets, load_config
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
