"""Scorers: every performance indicator under one signature, registered by name.

A scorer is built once for a context (space, run, device, options) and then maps an int64
array of archs ``(N, num_genes)`` to a float array ``(N,)``; bigger is better. Searchers and
reports accept any registered name, or an ensemble ``"angle+synflow"`` (mean of ranks).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List

import numpy as np
from scipy.stats import rankdata

from .errors import RlnasError

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


def get_scorer(spec: str, ctx: ScoreContext) -> ScoreFn:
    """A scorer by name, or an ensemble ``a+b+...`` scored by the mean of the members' ranks."""
    names = [s.strip() for s in spec.split("+") if s.strip()]
    if not names:
        raise RlnasError(f"empty scorer name {spec!r}")
    fns = []
    for name in names:
        info = scorer_info(name)
        if info.needs_run and ctx.run is None:
            raise RlnasError(f"scorer {name!r} needs a trained supernet run")
        fns.append(info.factory(ctx))
    if len(fns) == 1:
        return fns[0]

    def ensemble(archs: np.ndarray) -> np.ndarray:
        # ranks within the batch: meaningful when the batch is the whole candidate set
        ranks = [rankdata(np.nan_to_num(f(archs), nan=-np.inf)) for f in fns]
        return np.mean(ranks, axis=0)
    return ensemble


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
