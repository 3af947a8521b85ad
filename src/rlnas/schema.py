"""The config schema, declared once: every key with its type, default, range or choices and doc.

:data:`KEYS` is the one place a config key is declared. ``rlnas.config`` derives from it the
numeric ranges (``NUMERIC_RANGES``), the allowed values that ``validate`` enforces, the defaults a
partial config is completed with at load, the refusal of unknown keys (with the nearest valid
name) and the commented listing of ``rlnas config --show PRESET``. From it too come the typed
config every stage reads (:class:`Config`: ``cfg.train.lr``, one read-only :class:`Section` view
per section, generated, not declared again), the schema listing of ``rlnas config --show`` and
the comments of the presets (:func:`annotate`).

Two kinds of config share the schema: a supernet run (``rlnas train``/``run``/``rank``/
``search``: kind ``search``) and a retraining (``rlnas retrain``, ``rlnas check``: kind
``retrain``). A key belongs to one kind or both; a config is completed with the keys of its kind
only, so a run's ``config.yaml`` gains no retraining keys and vice versa.

The ``model`` section belongs to the space: its keys are the keywords of the space's
``supernet(...)``/``network(...)``, whose signatures hold their defaults, so model keys are
declared for their ranges and docs but never filled in, and a user space may declare its own.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from .errors import RlnasError

SEARCH, RETRAIN = "search", "retrain"
BOTH = (SEARCH, RETRAIN)


@dataclass(frozen=True)
class NumRange:
    """The values a numeric config key takes: ``lo`` / ``hi`` bounds (None: unbounded; ``*_open``:
    the bound itself excluded), integers only or any finite number, null or not."""

    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    nullable: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.integer and self.lo == 1 and not self.lo_open:
            text = "a positive integer" + ("" if self.hi is None else f" (at most {self.hi})")
        elif self.hi is None:
            text = f"{kind} {'>' if self.lo_open else '>='} {self.lo}"
        else:
            text = (f"{kind} in {'(' if self.lo_open else '['}{self.lo}, "
                    f"{self.hi}{')' if self.hi_open else ']'}")
        return text + (" or null" if self.nullable else "")

    def check(self, key: str, value) -> None:
        """RlnasError naming the key, the value and the range unless ``value`` is in range."""
        import math
        if value is None and self.nullable:
            return
        shown = f"{key}={'null' if value is None else repr(value)}"
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or (self.integer and not isinstance(value, int))):
            raise RlnasError(f"{shown}: expected {self.describe()}")
        if not math.isfinite(value):
            raise RlnasError(f"{shown} is not a finite number: expected {self.describe()}")
        low = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        high = self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)
        if low or high:
            raise RlnasError(f"{shown} is out of range: expected {self.describe()}")


def _int(lo, hi=None, null=False) -> NumRange:
    return NumRange(lo, hi, integer=True, nullable=null)


_POSITIVE = NumRange(0, lo_open=True)
_POSITIVE_OR_NULL = NumRange(0, lo_open=True, nullable=True)
_NON_NEGATIVE = NumRange(0)
_PROBABILITY = NumRange(0, 1, hi_open=True)  # 1 would drop / smooth away everything
_SEED = _int(0, 2**32 - 1)  # NumPy's RandomState (the label generator) takes seeds < 2**32
# Upper bounds far above any real run, below what would exhaust memory or never end: a typo
# (epochs=1e9) fails at once, stating the bound.
_MAX_EPOCHS = 100_000
_MAX_BATCH = 1_000_000
_MAX_IMAGES = 1_000_000_000
_MAX_COUNT = 10_000_000  # population sizes, generations, samples, archs reported
MODEL_SIZE = _int(1, 100_000)  # also the range of a user space's own integer model keys


@dataclass(frozen=True)
class Key:
    """One config key.

    Attributes:
        path: the dotted key (``train.lr``).
        default: the value a config without the key takes (the behaviour before the key existed
            where it was added later).
        doc: one line for ``rlnas config --show`` and the presets.
        range: the numbers it takes (numeric keys).
        choices: the values it takes (keys with a fixed set).
        choices_text: how the error message lists ``choices``.
        kinds: the config kinds the key belongs to (``search``, ``retrain``).
        fill: whether a config of its kind lacking the key is completed with ``default``
            (model keys are not: the space's signature holds their defaults).
        deprecated: accepted in old configs, read by no code, absent from the presets.
    """

    path: str
    default: Any
    doc: str
    range: Optional[NumRange] = None
    choices: Optional[Tuple[Any, ...]] = None
    choices_text: Optional[str] = None
    kinds: Tuple[str, ...] = BOTH
    fill: bool = True
    deprecated: bool = False

    @property
    def section(self) -> str:
        return self.path.partition(".")[0] if "." in self.path else ""

    def check_choice(self, value) -> None:
        """RlnasError in the form ``KEY must be A, B or C, got 'x'`` unless ``value`` is one of
        the choices."""
        if self.choices is not None and value not in self.choices:
            listed = self.choices_text or _or_list([c for c in self.choices if c is not None])
            raise RlnasError(f"{self.path} must be {listed}, got {value!r}")


def _or_list(items: List[Any]) -> str:
    words = [str(i) for i in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


S, R = (SEARCH,), (RETRAIN,)
# The defaults of the keys every config has are the paper's NB201 CIFAR-10 recipe
# (configs/nb201-cifar10.yaml); retraining-only keys take the DARTS CIFAR-10 protocol's.
KEYS: Tuple[Key, ...] = (
    Key("space", None, "the search space: nb201 | darts | nasbench-macro | mobilenet | "
        "package.module:ATTRIBUTE (a user space)", fill=False),
    Key("seed", 0, "model init, path sampler and augmentation", _SEED),
    Key("device", "auto", "auto | cpu | cuda | cuda:N"),
    Key("precision", "auto", "auto (bf16 autocast on CUDA where supported, else fp32) | fp32 | "
        "bf16 | fp16", choices=("auto", "fp32", "bf16", "fp16")),
    # data
    Key("data.dataset", "cifar10", "cifar10 | cifar100 | imagenet16-120 | imagenet | digits | "
        "npz | folder"),
    Key("data.root", "data/cifar10", "the training images (cifar-10-batches-py, train_*.npz or "
        "an image folder)"),
    Key("data.test_root", None, "test images if elsewhere; null = data.root", kinds=R),
    Key("data.allow_test_overlap", False, "true: accept test images that are also training "
        "images (else refused)", kinds=R),
    Key("data.nb201_half", False, "'cifar10-valid' semantics: train on the 25k NB201 train half"),
    Key("data.split_file", None, "with nb201_half: NB201's cifar-split.txt; null = a seeded "
        "class-balanced half"),
    Key("data.subset", None, "keep only the first N training images (reduced budgets)",
        _int(2, _MAX_IMAGES, null=True)),
    Key("data.augment", True, "random crop (pad 4) + horizontal flip"),
    Key("data.resolution", None, "images resized once to this size (px); null = as stored",
        _int(4, 100_000, null=True)),
    Key("data.transform", None, "image folders only: official (square crop + lighting, no "
        "mean/std) | torchvision (RandomResizedCrop + flip, ImageNet mean/std)",
        choices=(None, "official", "torchvision"), choices_text="official or torchvision"),
    Key("data.cutout", 0, "side of the cutout square (0 = off)", _int(0, 100_000), kinds=R),
    # labels
    Key("labels.kind", "random", "random | true (the paper's ablation; retraining: true)",
        choices=("random", "true"), choices_text="'random' or 'true'"),
    Key("labels.num_classes", None, "K of the random labels; null = the dataset's classes",
        _int(2, _MAX_IMAGES, null=True)),
    Key("labels.seed", 0, "the label generator's seed (numpy RandomState, drawn once)", _SEED),
    # model: the space's keywords (defaults in its supernet/network signature)
    Key("model.channels", None, "C of the first stage", MODEL_SIZE, fill=False),
    Key("model.cells", None, "searchable cells per stage (NB201) or in all (choice spaces)",
        MODEL_SIZE, fill=False),
    Key("model.layers", None, "cells of the DARTS network", MODEL_SIZE, fill=False),
    Key("model.stem_multiplier", None, "DARTS stem width = this x channels", MODEL_SIZE,
        fill=False),
    Key("model.variant", None, "DARTS: cifar | imagenet (stem and macro layout, spec 3.2 / 3.3)",
        fill=False),
    Key("model.auxiliary", None, "DARTS network: auxiliary head", fill=False),
    Key("model.dropout", None, "dropout before the classifier", _PROBABILITY, fill=False),
    Key("model.drop_path", None, "final drop-path probability (grows linearly from 0)",
        _PROBABILITY, fill=False),
    # train
    Key("train.epochs", 250, "epochs of the schedule", _int(1, _MAX_EPOCHS)),
    Key("train.batch_size", 64, "global batch: split over torchrun processes and micro-batches",
        _int(1, _MAX_BATCH)),
    Key("train.lr", 0.025, "initial learning rate", _POSITIVE),
    Key("train.lr_min", 0.001, "final learning rate of the schedule", _NON_NEGATIVE),
    Key("train.momentum", 0.9, "SGD momentum", _PROBABILITY),
    Key("train.nesterov", True, "Nesterov momentum"),
    Key("train.weight_decay", 0.0005, "SGD weight decay", _NON_NEGATIVE),
    Key("train.wd_conv_only", False, "true: weight decay on 4-D conv weights only (ImageNet)"),
    Key("train.wd_classifier", False, "with wd_conv_only: the classifier's weight decayed too"),
    Key("train.lr_schedule", "cosine", "cosine (per epoch) | linear (per step, to lr_min) | "
        "linear_warmup", choices=("cosine", "linear", "linear_warmup")),
    Key("train.warmup_epochs", 0, "linear_warmup: epochs of linear warm-up", _int(0, _MAX_EPOCHS)),
    Key("train.label_smoothing", 0.0, "label smoothing of the loss", _PROBABILITY),
    Key("train.grad_clip_norm", None, "clip_grad_norm_ threshold; null = no clipping",
        _POSITIVE_OR_NULL),
    Key("train.grad_clip_value", None, "clip_grad_value_ threshold; null = no clipping",
        _POSITIVE_OR_NULL),
    Key("train.aux_weight", 0.0, "weight of the auxiliary head's loss (DARTS networks)",
        _NON_NEGATIVE),
    Key("train.accumulate", 1, "micro-batches per step and process (same update, less memory)",
        _int(1, _MAX_BATCH)),
    Key("train.grad_sync", "coalesced", "torchrun: coalesced all-reduce of touched grads | ddp",
        choices=("coalesced", "ddp")),
    Key("train.sampler", None, "deprecated, read by no code: the space sets its path sampler",
        choices=(None, "urs", "uniform"), kinds=S, fill=False, deprecated=True),
    Key("train.ckpt_every_steps", 0, "extra mid-epoch checkpoints (0 = at epoch ends only)",
        _int(0)),
    Key("train.keep_every_epochs", 0, "keep ckpt/epoch_N.pt every N epochs (0 = keep none)",
        _int(0)),
    Key("train.stop_when_stable", None, "extension: stop once tau(the scorer's angle ranking, "
        "previous check) >= 1 - this; null = never", NumRange(0, 1, hi_open=True, nullable=True),
        kinds=S),
    Key("train.stability_every", 5, "epochs between those checks", _int(1, _MAX_EPOCHS), kinds=S),
    # search (supernet runs)
    Key("search.scorer", "angle", "what rank/search/run score by: angle (the paper) or any "
        "`rlnas scorers` name", kinds=S),
    Key("search.method", "evolution", "evolution | exhaustive | random", kinds=S),
    Key("search.population", 100, "evolution: population size", _int(1, _MAX_COUNT), kinds=S),
    Key("search.topk", 30, "evolution: parents kept per generation", _int(1, _MAX_COUNT), kinds=S),
    Key("search.mutations", 50, "evolution: children by mutation per generation",
        _int(1, _MAX_COUNT), kinds=S),
    Key("search.crossovers", 50, "evolution: children by crossover per generation",
        _int(1, _MAX_COUNT), kinds=S),
    Key("search.crossover_first", False, "evolution: crossover children before mutation ones",
        kinds=S),
    Key("search.mutation_prob", 0.1, "evolution: per-gene mutation probability", NumRange(0, 1),
        kinds=S),
    Key("search.generations", 20, "evolution: generations", _int(1, _MAX_COUNT), kinds=S),
    Key("search.num_samples", 1000, "random search budget", _int(1, _MAX_COUNT), kinds=S),
    Key("search.max_params", None, "M params of the space's benchmark network; null = no limit",
        _POSITIVE_OR_NULL, kinds=S),
    Key("search.max_flops", None, "M FLOPs of the space's benchmark network; null = no limit",
        _POSITIVE_OR_NULL, kinds=S),
    Key("search.report_top", 10, "archs written to result.json", _int(1, _MAX_COUNT), kinds=S),
    Key("evaluate.nasbench201", None, "compact NB201 table (CSV: arch + accuracy columns)",
        kinds=S),
    # retraining
    Key("eval.every_epochs", 1, "test top-1/top-5 every N epochs (and after the last; 0 = after "
        "the last only)", _int(0, _MAX_EPOCHS), kinds=R),
)

BY_PATH: Dict[str, Key] = {k.path: k for k in KEYS}
SECTIONS = tuple(dict.fromkeys(k.section for k in KEYS if k.section))
# The sections whose keys are not all declared here: the space declares its model keywords.
OPEN_SECTIONS = ("model",)


# ----------------------------------------------------------------------------------------------
# The typed config: attribute access generated from KEYS
# ----------------------------------------------------------------------------------------------
class Section:
    """A read-only, typed view of one section of a config tree: its attributes are the section's
    declared keys (generated from :data:`KEYS`, e.g. ``cfg.train.lr``). A key the tree lacks
    reads as its schema default; a name that is not a declared key is an AttributeError (a
    misspelt read fails instead of reading None). The tree is not copied."""

    __slots__ = ("_tree",)
    NAME = ""
    KEYS: Dict[str, Key] = {}

    def __init__(self, tree: Union["Section", Mapping[str, Any], None] = None):
        if isinstance(tree, Section):
            tree = tree._tree
        object.__setattr__(self, "_tree", tree if isinstance(tree, Mapping) else {})

    def __setattr__(self, name, value):
        raise AttributeError(f"config section {self.NAME!r} is read-only")

    @classmethod
    def of(cls, **values) -> "Section":
        """A section holding ``values`` (the other keys read as their defaults), e.g. the
        short training budget of ``rlnas check``: ``TrainSection.of(epochs=2, lr=0.05)``."""
        for name in values:
            if name not in cls.KEYS:
                raise unknown_key_error(f"{cls.NAME}.{name}", BY_PATH)
        return cls(dict(values))

    def as_dict(self) -> Dict[str, Any]:
        """Every declared key of the section with the value it reads as."""
        return {name: getattr(self, name) for name in self.KEYS}

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"{type(self).__name__}({body})"


def _reader(name: str, key: Key) -> property:
    default = key.default

    def read(self):
        return self._tree.get(name, default)
    read.__doc__ = key.doc
    return property(read)


def _section_type(section: str) -> type:
    # a deprecated key is read by no code: it has no attribute, so none can read it
    keys = {k.path.partition(".")[2]: k for k in KEYS if k.section == section and not k.deprecated}
    members = {name: _reader(name, key) for name, key in keys.items()}
    members.update(NAME=section, KEYS=keys, __slots__=(),
                   __doc__=f"The ``{section}`` section of a config (generated from KEYS).")
    return type(f"{section.capitalize()}Section", (Section,), members)


#: The typed view of each closed section (``model`` is the space's: a plain dict).
SECTION_TYPES: Dict[str, type] = {name: _section_type(name) for name in SECTIONS
                                  if name not in OPEN_SECTIONS}
TrainSection = SECTION_TYPES["train"]
DataSection = SECTION_TYPES["data"]


class Config(dict):
    """A resolved config: the tree that ``config.yaml`` holds (a dict of sections), with typed
    attribute access generated from :data:`KEYS`: ``cfg.seed``, ``cfg.train.lr``,
    ``cfg.data.root``, ``cfg.search.topk``; ``cfg.model`` is the space's keyword dict. Built once
    when a config is loaded (:func:`rlnas.config.load_config`); :meth:`of` wraps a tree that
    came from elsewhere. Reading a key the tree lacks gives its schema default."""

    @classmethod
    def of(cls, tree: Mapping[str, Any]) -> "Config":
        """``tree`` as a Config (itself where it is one; its sections are not copied)."""
        return tree if isinstance(tree, Config) else cls(tree)

    @property
    def model(self) -> Dict[str, Any]:
        """The ``model`` section: the keywords of the space's ``supernet`` / ``network``."""
        value = self.get("model")
        return dict(value) if isinstance(value, Mapping) else {}

    def tree(self) -> Dict[str, Any]:
        """A plain nested dict of the config (for YAML)."""
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in self.items()}


def _config_member(key: Key) -> property:
    def read(self):
        return self.get(key.path, key.default)
    read.__doc__ = key.doc
    return property(read)


def _section_member(section: str) -> property:
    view = SECTION_TYPES[section]

    def read(self):
        return view(self.get(section))
    read.__doc__ = view.__doc__
    return property(read)


for _key in KEYS:
    if not _key.section:
        setattr(Config, _key.path, _config_member(_key))
for _name in SECTION_TYPES:
    setattr(Config, _name, _section_member(_name))


def numeric_ranges() -> Dict[str, NumRange]:
    """Every numeric key and the values it takes."""
    return {k.path: k.range for k in KEYS if k.range is not None}


def config_kind(cfg: Dict[str, Any]) -> str:
    """``retrain`` for a retraining config (it has an ``eval`` section, or retraining-only data
    keys, and no ``search`` section), else ``search``."""
    if "search" in cfg or "evaluate" in cfg:
        return SEARCH
    data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    retrain_data = any(BY_PATH[p].kinds == R and p.split(".")[1] in data
                       for p in BY_PATH if p.startswith("data."))
    return RETRAIN if "eval" in cfg or retrain_data else SEARCH


def defaults(kind: str) -> Dict[str, Any]:
    """The nested defaults of the filled keys of config kind ``kind``."""
    out: Dict[str, Any] = {}
    for k in KEYS:
        if k.fill and kind in k.kinds:
            node = out
            for part in k.path.split(".")[:-1]:
                node = node.setdefault(part, {})
            node[k.path.split(".")[-1]] = k.default
    return out


def merge(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    """``base`` with every key of ``over`` put over it (sections merged key by key; a new
    nested mapping is returned, the inputs are left as they are)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def check_sections(cfg: Dict[str, Any], where: str) -> None:
    """RlnasError unless every section of ``cfg`` is a mapping (``where``: the file named)."""
    for name in SECTIONS:
        value = cfg.get(name)
        if value is not None and not isinstance(value, dict):
            raise RlnasError(f"{where}: section {name!r} must be a mapping of keys, "
                             f"not {value!r}")


def nearest(key: str, known: Iterable[str]) -> Optional[str]:
    """The known key nearest to ``key`` (spelling of the whole dotted key, else of its last
    part: ``epoch`` -> ``train.epochs``), or None."""
    known = sorted(known)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    if close:
        return close[0]
    leaf = key.rsplit(".", 1)[-1]
    leaves = {}
    for k in known:
        leaves.setdefault(k.rsplit(".", 1)[-1], k)
    close = difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.75)
    return leaves[close[0]] if close else None


def unknown_key_error(key: str, known: Iterable[str], where: str = "") -> RlnasError:
    """The one-line refusal of ``key``, naming the nearest valid key where one is near."""
    near = nearest(key, known)
    hint = f"; did you mean {near}?" if near else "; `rlnas config --show PRESET` lists the keys"
    return RlnasError(f"{where}unknown config key {key!r}{hint}")


def check_known_keys(flat: Dict[str, Any], where: str = "") -> None:
    """RlnasError for the first key of the flattened config ``flat`` that the schema does not
    declare (the model section, which the space declares, excepted)."""
    for key in flat:
        if key in BY_PATH or key.partition(".")[0] in OPEN_SECTIONS:
            continue
        if not flat[key] and isinstance(flat[key], dict):
            continue  # an empty section (`model: {}`)
        raise unknown_key_error(key, BY_PATH, where)


def describe(cfg: Dict[str, Any]) -> str:
    """``cfg`` as YAML, each declared key commented with its doc (``rlnas config --show``)."""
    import yaml
    lines: List[str] = []
    for name, value in cfg.items():
        if isinstance(value, dict) and value:
            lines.append(f"{name}:")
            for sub, item in value.items():
                lines.append(_commented(f"  {sub}: {_scalar(yaml, item)}", f"{name}.{sub}"))
        else:
            lines.append(_commented(f"{name}: {_scalar(yaml, value)}", name))
    return "\n".join(lines) + "\n"


def describe_schema() -> str:
    """Every declared key as YAML with its default, commented with its doc and the values it
    takes (``rlnas config --show`` without a config)."""
    import yaml
    lines = ["# Every config key: its default, what it is, the values it takes. Supernet runs",
             "# (train, rank, search, run) and retrainings (retrain, check) have the keys of their",
             "# kind; model keys are the space's keywords (their defaults are the space's).", ""]
    section = ""
    for key in KEYS:
        if key.section != section:
            section = key.section
            lines.append(f"{section}:")
        leaf = key.path.rpartition(".")[2]
        line = f"{'  ' if section else ''}{leaf}: {_scalar(yaml, key.default)}"
        lines.append(_commented(line, key.path) + f" [{_values(key)}]")
    return "\n".join(lines) + "\n"


def _values(key: Key) -> str:
    """What ``key`` takes and where it belongs, for :func:`describe_schema`."""
    parts = []
    if key.range is not None:
        parts.append(key.range.describe())
    if key.choices is not None:
        parts.append("one of " + _or_list(["null" if c is None else c for c in key.choices]))
    if key.section in OPEN_SECTIONS:
        parts.append("the space's keyword")
    elif not parts:
        parts.append("true or false" if isinstance(key.default, bool) else
                     "text" if isinstance(key.default, str) else "text or null")
    if key.kinds != BOTH:
        parts.append({SEARCH: "supernet runs only", RETRAIN: "retrainings only"}[key.kinds[0]])
    if key.deprecated:
        parts.append("deprecated: accepted in old configs, read by no code")
    return "; ".join(parts)


_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<value>[^#]*?)"
                       r"\s*(?:#.*)?$")


def annotate(text: str) -> str:
    """The text of a YAML config with the line of every declared key commented with the key's
    doc (any comment it had is replaced); full-line comments and every other line are kept.
    The presets are written so (``tests/test_config.py`` checks it): their comments are
    generated from :data:`KEYS`, and a note of their own goes on a comment line above a key."""
    out: List[str] = []
    section = None
    for line in text.split("\n"):
        m = _KEY_LINE.match(line)
        if m is None or line.lstrip().startswith("#"):
            out.append(line)
            continue
        indent, name, value = m.group("indent"), m.group("key"), m.group("value").rstrip()
        if not indent:
            section = name if not value.strip() else None
            path = name
        else:
            path = f"{section}.{name}" if section else None
        if path in BY_PATH and value.strip():
            out.append(_commented(f"{indent}{name}:{value}", path))
        else:
            out.append(line)
    return "\n".join(out)


def _scalar(yaml, value) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _commented(line: str, path: str) -> str:
    key = BY_PATH.get(path)
    if key is None:
        return line
    return f"{line:<30} # {key.doc}"
