"""Scorers: every performance indicator under one signature, registered by name.

A scorer is built once for a context (space, run, device, options) and then maps an int64
array of archs ``(N, num_genes)`` to a float array ``(N,)``; bigger is better. Searchers and
reports accept any registered name, or an ensemble ``"angle+synflow"`` (:data:`ENSEMBLE`: the
mean of the members' percentile ranks).

:func:`get_scorer` is the one way to get a scorer by name (``rlnas.get_scorer``, and what rank,
search, evaluate and check use): a :class:`Scorer`, for a run or a space. :func:`build_scorer`
is the registry's own step under it: a score function for a :class:`ScoreContext`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np

from .checks import path_arg, seed_arg, str_arg
from .data import prepare_training_data
from .errors import RlnasError
from .rundir import Run, open_run

ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class ScoreContext:
    """What a scorer may need. ``run`` is None for run-free scorers (proxies, cost)."""

    space: Any
    run: Any = None
    cost_kwargs: Dict[str, Any] = field(default_factory=dict)
    checkpoint: str = "last.pt"
    device: str = "cpu"
    seed: int = 0
    options: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_run(cls, run: Run, checkpoint: str = "last.pt", **options) -> "ScoreContext":
        """The context of ``run``: its space, seed and benchmark network's costs, comparing
        ``ckpt/init.pt`` with ``ckpt/<checkpoint>``."""
        return cls(space=run.space, run=run, cost_kwargs=run.cost_kwargs,
                   checkpoint=check_checkpoint_name(checkpoint), seed=run.config.seed,
                   options=options)


def check_checkpoint_name(checkpoint: str) -> str:
    """A checkpoint is named by its file name in the run's ckpt/ folder; a path could point a
    scorer at any file (and a run's results at another run's weights)."""
    if not isinstance(checkpoint, str) or checkpoint in ("", ".", "..") or any(
            c in checkpoint for c in ("/", "\\", "\0")):
        raise RlnasError(f"checkpoint {checkpoint!r} must be the name of a file in the run's "
                         f"ckpt/ folder (e.g. last.pt or epoch_10.pt), not a path")
    return checkpoint


@dataclass
class ScorerInfo:
    name: str
    factory: Callable[[ScoreContext], ScoreFn]
    needs_run: bool
    description: str


_SCORERS: Dict[str, ScorerInfo] = {}


def register_scorer(name: str, needs_run: bool = False, description: str = ""):
    """Decorator for ``factory(ctx) -> score_fn``."""
    def deco(factory):
        _SCORERS[name] = ScorerInfo(name, factory, needs_run, description or (factory.__doc__ or "")
                                    .strip().splitlines()[0])
        return factory
    return deco


def list_scorers() -> List[str]:
    _load_plugins()
    return sorted(_SCORERS)


def scorer_info(name: str) -> ScorerInfo:
    _load_plugins()
    if name not in _SCORERS:
        raise RlnasError(f"unknown scorer {name!r}; known: {', '.join(sorted(_SCORERS))} "
                         "(or an ensemble such as angle+params)")
    return _SCORERS[name]


#: What an ensemble's score means (``rlnas scorers``, the README, result files).
ENSEMBLE = ("rank ensemble a+b+...: the mean over its members of the arch's percentile rank "
            "in a fixed reference set of the space's archs (every arch where the space has "
            "at most 20,000, else a seeded sample of 1,000; a seeded sample of 100 for a "
            "zero-cost proxy member, which costs about a second an arch): (archs of the set "
            "below it + half of those tied with it + 1/2) / set size, NaN lowest; 1 or more "
            "= the best by every member. A function of the arch alone, so scores from "
            "different calls (an evolution search's generations, rank, evaluate) compare")

#: Reference set of an ensemble member: every arch of an enumerable space up to
#: REFERENCE_ENUMERATE_MAX, else a seeded sample of REFERENCE_SAMPLE archs; a zero-cost proxy
#: member (about a second an arch on a CPU) a seeded sample of REFERENCE_SAMPLE_PROXY.
REFERENCE_SAMPLE = 1000
REFERENCE_SAMPLE_PROXY = 100
REFERENCE_ENUMERATE_MAX = 20000


def reference_archs(space, seed: int, size: int = REFERENCE_SAMPLE,
                    enumerate_max: Optional[int] = REFERENCE_ENUMERATE_MAX) -> np.ndarray:
    """A fixed set of archs of ``space`` (int64 ``(N, num_genes)``): all of them where the space
    is enumerable with at most ``enumerate_max`` archs (None: any number), else ``size`` draws of
    ``space.sample`` seeded by ``seed``, duplicates removed, in notation order (the same set on
    every call)."""
    archs = None if enumerate_max == 0 else space.enumerate()
    if archs is None or (enumerate_max is not None and len(archs) > enumerate_max):
        rng = np.random.default_rng(seed)
        seen = {space.to_str(space.sample(rng)) for _ in range(size)}
        archs = [space.from_str(a) for a in sorted(seen)]
    return np.asarray(archs, dtype=np.int64)


def reference_percentile(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each value's percentile rank in the sorted ``reference`` scores: (number below + (number
    tied + 1) / 2) / len(reference), NaN as -inf. For a value of the reference itself this is
    its average rank / N (``scipy.stats.rankdata``'s), so a batch equal to the reference
    ranks as it would alone."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=-np.inf)
    below = np.searchsorted(reference, v, side="left")
    tied = np.searchsorted(reference, v, side="right") - below
    return (below + (tied + 1) / 2) / len(reference)


class _Member:
    """One member of an ensemble and its reference set, scored once on first use."""

    def __init__(self, fn: ScoreFn, archs_of_reference: Callable[[], np.ndarray]):
        self.fn, self._archs_of_reference = fn, archs_of_reference
        self._ref = None  # (index by genome bytes, scores, sorted scores)

    def percentile(self, archs: np.ndarray) -> np.ndarray:
        if self._ref is None:
            ref = self._archs_of_reference()
            scores = np.nan_to_num(np.asarray(self.fn(ref), dtype=np.float64), nan=-np.inf)
            self._ref = ({row.tobytes(): i for i, row in enumerate(ref)}, scores, np.sort(scores))
        index, scores, ordered = self._ref
        where = np.array([index.get(row.tobytes(), -1) for row in archs], dtype=np.int64)
        new = where < 0
        member = np.empty(len(archs))
        member[~new] = scores[where[~new]]
        if new.any():  # archs outside the reference set: score them here
            member[new] = np.asarray(self.fn(archs[new]), dtype=np.float64)
        return reference_percentile(ordered, member)


class _Ensemble:
    """The rank ensemble of score functions (:data:`ENSEMBLE`)."""

    def __init__(self, members: List[_Member]):
        self.members = members

    def __call__(self, archs: np.ndarray) -> np.ndarray:
        archs = np.asarray(archs, dtype=np.int64)
        return np.mean([m.percentile(archs) for m in self.members], axis=0)


def check_scorer_name(spec: str) -> List[str]:
    """The member names of a scorer name or ensemble ``a+b+...``, each a registered scorer.

    Raises:
        RlnasError: an empty name or an unknown member (the known ones listed)."""
    names = [s.strip() for s in str(spec).split("+") if s.strip()]
    if not names:
        raise RlnasError(f"empty scorer name {spec!r}")
    for name in names:
        scorer_info(name)
    return names


def describe_scorer(name: str) -> str:
    """One line saying what ``name``'s score is: the scorer's description, or for an ensemble
    ``a+b`` what its score means (:data:`ENSEMBLE`) and its members."""
    parts = check_scorer_name(name)
    if len(parts) == 1:
        return scorer_info(parts[0]).description
    return (f"mean over {', '.join(parts)} of each arch's percentile rank in a fixed reference "
            f"set of the space's archs (1 = the best by every member; see `rlnas scorers`)")


def build_scorer(spec: str, ctx: ScoreContext) -> ScoreFn:
    """The score function of a scorer by name, or of an ensemble ``a+b+...`` (:data:`ENSEMBLE`:
    the mean of the members' percentile ranks), for the context ``ctx`` (:func:`get_scorer`
    builds the context)."""
    fns, parts = [], check_scorer_name(spec)
    for name in parts:
        info = scorer_info(name)
        if info.needs_run and ctx.run is None:
            raise RlnasError(f"scorer {name!r} needs a trained supernet run")
        fns.append(info.factory(ctx))
    if len(fns) == 1:
        return fns[0]
    return _Ensemble([_Member(fn, _reference_of(part, ctx)) for fn, part in zip(fns, parts)])


def _reference_of(member: str, ctx: ScoreContext) -> Callable[[], np.ndarray]:
    if needs_data(member):  # a proxy: a small sample, never the enumeration
        return lambda: reference_archs(ctx.space, ctx.seed, REFERENCE_SAMPLE_PROXY, 0)
    return lambda: reference_archs(ctx.space, ctx.seed)


def needs_data(scorer: str) -> bool:
    """True when a scorer (or a member of an ensemble) is a zero-cost proxy: it scores networks
    on a batch of the run's training images."""
    from .proxies import PROXY_NAMES
    return any(part.strip() in PROXY_NAMES for part in scorer.split("+"))


def check_genomes(space, archs) -> np.ndarray:
    """``archs`` as an int64 array ``(N, num_genes)`` of valid genomes of ``space``.

    Raises:
        RlnasError: naming the first arch that is not a sequence of ``num_genes`` integers each
            among its gene's choices (``space.genome_array``), or not an arch of the space (a
            score of an arch outside the space means nothing)."""
    arr = space.genome_array(archs)
    for row in arr:
        if not space.is_valid(tuple(int(g) for g in row)):
            raise RlnasError(f"genome {row.tolist()} is not an arch of space {space.name}")
    return arr


class Scorer:
    """A scorer built for one space (and run): call it with archs, get scores (bigger = better).

    Archs are arch strings (``space.to_str`` notation), one string, or an int array
    ``(N, num_genes)``; the result is a float64 array ``(N,)``. ``fn`` is the score function
    itself, on int64 genome arrays that are known to be valid (what the searchers call)."""

    def __init__(self, name: str, space, fn: ScoreFn, run: Optional[Run] = None,
                 checkpoint: Optional[str] = None):
        self.name, self.space, self.fn, self.run, self.checkpoint = name, space, fn, run, checkpoint

    def __call__(self, archs) -> np.ndarray:
        if isinstance(archs, str):
            archs = [archs]
        if isinstance(archs, (list, tuple)) and archs and isinstance(archs[0], str):
            archs = [self.space.from_str(a) for a in archs]
        return np.asarray(self.fn(check_genomes(self.space, archs)), dtype=np.float64)

    def __repr__(self):
        where = f", run={str(self.run.path)!r}, checkpoint={self.checkpoint!r}" if self.run else ""
        return f"Scorer({self.name!r}, space={self.space.name!r}{where})"


def get_scorer(name: str, run: Union[Run, str, Path, None] = None, *, space: str = "nb201",
               checkpoint: str = "last.pt", seed: int = 0, **options) -> Scorer:
    """A :class:`Scorer` by name (or ensemble ``"a+b"``), as ``rlnas rank`` / ``search`` build it.

    Scorers that read a supernet (``angle*``, ``accuracy``) need ``run`` (a ``Run`` or its
    directory) and compare ``ckpt/init.pt`` with ``ckpt/<checkpoint>``; for a run, zero-cost
    proxies are given the run's training images, and costs refer to the space's benchmark
    network on the run's dataset. Without a run, ``space`` names the space and ``seed`` seeds
    the scorer; proxies then need ``data=`` (an ``rlnas.data.ImageData``). Further keyword
    ``options`` go to the scorer (e.g. ``batch_size``, ``proxy_model`` for proxies;
    ``progress=False``: no progress bars of slow scorers). Arguments of the wrong type are an
    :class:`RlnasError` naming the argument."""
    str_arg(name, "scorer name")
    seed = seed_arg(seed)
    if run is None:
        from .spaces import get_space
        sp = get_space(space)
        return Scorer(name, sp, build_scorer(name, ScoreContext(space=sp, seed=seed,
                                                                options=options)))
    run = run if isinstance(run, Run) else open_run(path_arg(run, "run"))
    if needs_data(name) and "data" not in options:
        options["data"] = prepare_training_data(run.config)[0]
    fn = build_scorer(name, ScoreContext.for_run(run, checkpoint, **options))
    return Scorer(name, run.space, fn, run, checkpoint)


PLUGINS = ("proxies", "accuracy")  # modules that register more scorers when imported


def _load_plugins():
    import importlib
    for mod in PLUGINS:
        importlib.import_module(f"{__package__}.{mod}")


# --- built-in scorers -------------------------------------------------------------------------
def _angle_factory(variant: str):
    def factory(ctx: ScoreContext) -> ScoreFn:
        from .angle import AngleScorer
        return AngleScorer.from_states(ctx.space, ctx.run.checkpoint_state("init.pt"),
                                       ctx.run.checkpoint_state(ctx.checkpoint), variant)
    return factory


ANGLE_SCORERS = {
    "angle": "RLNAS angle between the supernet's initial and trained weights of each arch",
    "angle_cell": "the paper's angle without the fixed stem/reduction/head part",
    "angle_mean": "mean angle of the searchable pieces an arch uses (path multiplicities)",
    "angle_sum": "sum of the piece angles an arch uses / sqrt(pieces used)",
    "distance": "Euclidean distance the arch's searchable weights moved in training",
    "distance_sum": "sum of the distances the pieces an arch uses moved / sqrt(pieces used)",
}
for _name, _doc in ANGLE_SCORERS.items():
    register_scorer(_name, needs_run=True, description=_doc)(_angle_factory(_name))


@register_scorer("params")
def _params(ctx: ScoreContext) -> ScoreFn:
    """Parameter count of the benchmark-size network (the size baseline)."""
    return lambda archs: ctx.space.cost(archs, **ctx.cost_kwargs)["params"]


@register_scorer("flops")
def _flops(ctx: ScoreContext) -> ScoreFn:
    """FLOPs of the benchmark-size network (the size baseline)."""
    return lambda archs: ctx.space.cost(archs, **ctx.cost_kwargs)["flops"]


@register_scorer("random")
def _random(ctx: ScoreContext) -> ScoreFn:
    """A fixed random score per arch (seeded): the chance baseline."""
    def score(archs):
        out = np.empty(len(archs))
        for i, a in enumerate(np.asarray(archs)):
            out[i] = np.random.default_rng([ctx.seed, *map(int, a)]).random()
        return out
    return score
