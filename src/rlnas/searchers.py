"""Architecture searchers: SPOS-style evolution (the official RLNAS search), exhaustive, random.

Every searcher *maximises* a score. A score function takes an int64 array ``(N, num_genes)`` of
archs and returns a float array ``(N,)``; searchers call it on whole batches (evolution: one call
per generation), never on one arch at a time. NaN scores are treated as ``-inf`` (the worst).

Evolution follows the SPOS / RLNAS searcher:

* a ``visited`` dict (arch -> score) makes sure each arch is scored at most once;
* the top-k list is a running pool, merged with each generation's candidates and re-sorted;
* each generation: ``mutations`` mutants of random top-k parents (each gene redrawn with
  probability ``mutation_prob`` from ``space.mutation_choices``), ``crossovers`` uniform crossovers
  of two random top-k parents, then uniform random archs up to ``population``. A candidate that is
  already visited, invalid or violates the constraint is retried, at most 10x the number wanted.
  With ``crossover_first`` (the official MobileNet searcher) the crossovers come first and the
  mutations fill up to ``population`` minus the crossovers made;
* the final pick is the best arch of the top-k pool.

Constraints (``Constraint``) bound params / FLOPs in millions as reported by ``space.cost``, and
latency in ms as a latency model (``rlnas.latency``) gives it, and are checked *before* scoring: a
violating arch is never scored. A bound no arch meets is an error
before the search starts: found by enumeration, or from ``space.cost_bounds`` (the exact min / max
of each cost) where a space too large to enumerate offers it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from .errors import RlnasError
from .files import finite_or_none

if TYPE_CHECKING:  # runtime import not needed: searchers only use the SearchSpace interface
    from .spaces.base import SearchSpace

Arch = Tuple[int, ...]
ScoreFn = Callable[[np.ndarray], np.ndarray]
ProgressFn = Callable[[int, float], None]

_RETRY_FACTOR = 10          # tries allowed per wanted mutation / crossover / random arch
# tries allowed per arch of the initial population (rejection sampling), as the official
# searchers (max_iters = 1000 x num): under the MobileNet space's 475 M FLOPs limit only about
# 1 uniform arch in 400 is legal
_INIT_RETRY_FACTOR = 1000


# ------------------------------------------------------------------------------------------
# settings
# ------------------------------------------------------------------------------------------
@dataclass
class EvolutionSettings:
    """Evolution hyper-parameters. Defaults are the NB201 settings of the paper."""

    population: int = 100
    topk: int = 30
    mutations: int = 50
    crossovers: int = 50
    mutation_prob: float = 0.1
    generations: int = 20
    crossover_first: bool = False  # MobileNet order: crossovers, then mutations up to population

    def __post_init__(self):
        for name in ("population", "topk", "mutations", "crossovers", "generations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise RlnasError(f"evolution setting {name} must be a positive integer, "
                                 f"got {value!r}")
            setattr(self, name, int(value))
        if self.topk > self.population:
            raise RlnasError(f"evolution setting topk={self.topk} exceeds "
                             f"population={self.population}")
        if self.mutations + self.crossovers > self.population:
            raise RlnasError(
                f"evolution settings mutations + crossovers = {self.mutations + self.crossovers} "
                f"exceed population={self.population}")
        try:
            prob = float(self.mutation_prob)
        except (TypeError, ValueError):
            raise RlnasError(f"evolution setting mutation_prob must be a number, "
                             f"got {self.mutation_prob!r}")
        if not (0.0 <= prob <= 1.0):
            raise RlnasError(f"evolution setting mutation_prob must be in [0, 1], "
                             f"got {self.mutation_prob!r}")
        self.mutation_prob = prob
        if not isinstance(self.crossover_first, (bool, np.bool_)):
            raise RlnasError(f"evolution setting crossover_first must be true or false, got "
                             f"{self.crossover_first!r}")
        self.crossover_first = bool(self.crossover_first)

    @classmethod
    def for_space(cls, name: Optional[str]) -> "EvolutionSettings":
        """Paper presets: 'nb201' (100/30/50/50), 'darts' (50/10/25/25), 'mobilenet' (50/10, 25
        crossovers first, then mutations up to 50), else SPOS defaults (50/10/25/25)."""
        key = (name or "").lower()
        if key == "nb201":
            return cls(population=100, topk=30, mutations=50, crossovers=50, mutation_prob=0.1,
                       generations=20)
        if key == "darts":
            return cls(population=50, topk=10, mutations=25, crossovers=25, mutation_prob=0.1,
                       generations=20)
        if key == "mobilenet":
            return cls(population=50, topk=10, mutations=25, crossovers=25, mutation_prob=0.1,
                       generations=20, crossover_first=True)
        return cls(population=50, topk=10, mutations=25, crossovers=25, mutation_prob=0.1,
                   generations=20)

    def max_evaluations(self) -> int:
        return self.population * (self.generations + 1)


# ------------------------------------------------------------------------------------------
# constraints
# ------------------------------------------------------------------------------------------
def _fmt(value: float) -> str:
    return f"{float(value):.4g}"


_UNITS = {"params": "M", "flops": "M", "latency": "ms"}


@dataclass
class Constraint:
    """Bounds on params / FLOPs, in millions as given by ``space.cost(archs, **cost_kwargs)``,
    and on latency in ms as ``latency(archs)`` gives it (a ``rlnas.latency.LatencyModel``; its
    ``bounds()``, where known, refuse a limit below the fastest arch of a large space)."""

    max_params: Optional[float] = None
    max_flops: Optional[float] = None
    min_params: Optional[float] = None
    min_flops: Optional[float] = None
    cost_kwargs: Dict[str, Any] = field(default_factory=dict)
    max_latency: Optional[float] = None
    latency: Optional[Any] = None

    def __post_init__(self):
        if self.max_latency is not None and self.latency is None:
            raise RlnasError("constraint max_latency needs a latency model (measured here or a "
                             "device table)")
        for name in ("max_params", "max_flops", "min_params", "min_flops", "max_latency"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise RlnasError(f"constraint {name} must be a number, got {getattr(self, name)!r}")
            if not math.isfinite(value) or value < 0:
                raise RlnasError(f"constraint {name} must be a finite number >= 0, got {value!r}")
            setattr(self, name, value)
        for what in ("params", "flops"):
            lo, hi = getattr(self, f"min_{what}"), getattr(self, f"max_{what}")
            if lo is not None and hi is not None and lo > hi:
                raise RlnasError(f"constraint min_{what}={_fmt(lo)} M exceeds "
                                 f"max_{what}={_fmt(hi)} M")
        self.cost_kwargs = dict(self.cost_kwargs or {})

    # (name, cost key, is_max)
    def _bounds(self) -> List[Tuple[str, str, bool, float]]:
        out = []
        for name, key, is_max in (("max_params", "params", True), ("max_flops", "flops", True),
                                  ("min_params", "params", False), ("min_flops", "flops", False),
                                  ("max_latency", "latency", True)):
            value = getattr(self, name)
            if value is not None:
                out.append((name, key, is_max, value))
        return out

    @property
    def is_active(self) -> bool:
        return bool(self._bounds())

    def describe(self) -> str:
        bounds = self._bounds()
        if not bounds:
            return "no constraint"
        return ", ".join(f"{name}={_fmt(value)} {_UNITS[key]}" for name, key, _, value in bounds)

    def _bound_masks(self, space: "SearchSpace", archs: np.ndarray):
        archs = np.asarray(archs, dtype=np.int64).reshape(-1, space.num_genes)
        keys = {key for _, key, _, _ in self._bounds()}
        cost = space.cost(archs, **self.cost_kwargs) if keys - {"latency"} else {}
        if "latency" in keys:
            cost["latency"] = np.asarray(self.latency(archs), dtype=np.float64)
        masks = []
        for name, key, is_max, value in self._bounds():
            if key not in cost:
                raise RlnasError(f"space {space.name} reports no {key!r} cost, needed by {name}")
            c = np.asarray(cost[key], dtype=np.float64).reshape(-1)
            masks.append((name, key, is_max, value, c, c <= value if is_max else c >= value))
        return archs, masks

    def mask(self, space: "SearchSpace", archs: np.ndarray) -> np.ndarray:
        """Boolean array (N,): which archs satisfy every bound (all True without a constraint)."""
        archs = np.asarray(archs, dtype=np.int64).reshape(-1, space.num_genes)
        ok = np.ones(len(archs), dtype=bool)
        if not self.is_active or len(archs) == 0:
            return ok
        _, masks = self._bound_masks(space, archs)
        for *_, m in masks:
            ok &= m
        return ok

    def check_feasible(self, space: "SearchSpace") -> Optional[int]:
        """Raise RlnasError when no arch of an enumerable space satisfies the constraint.

        Returns the number of feasible archs, or None where the space is not enumerable (or no
        constraint is set) and nothing could be checked.
        """
        if not self.is_active:
            return None
        archs = space.enumerate()
        if archs is None:
            extremes = self._extremes(space)  # {key: (min, max)}, where known
            masks = [(name, key, is_max, value, c, c <= value if is_max else c >= value)
                     for name, key, is_max, value in self._bounds() if key in extremes
                     for c in [np.asarray(extremes[key], dtype=np.float64)]]
            if not masks:
                return None
            count = None
        else:
            archs, masks = self._bound_masks(space, archs)
            ok = np.ones(len(archs), dtype=bool)
            for *_, m in masks:
                ok &= m
            count = int(ok.sum())
        if count or (count is None and all(m.any() for *_, m in masks)):
            return count
        for name, key, is_max, value, c, m in masks:
            if not m.any():
                raise RlnasError(self._unmet(space, name, key, is_max, value, c))
        raise RlnasError(f"no architecture of space {space.name} satisfies {self.describe()} "
                         f"together (each bound alone is satisfiable)")

    def _unmet(self, space: "SearchSpace", name: str, key: str, is_max: bool, value: float,
               c: np.ndarray) -> str:
        """Why no arch meets one bound: the extreme arch's cost (latency: the fastest that can
        run, and where the numbers come from)."""
        unit = _UNITS[key]
        if key == "latency":
            runs = c[np.isfinite(c)]
            fastest = _fmt(runs.min()) if runs.size else "inf"
            return (f"no architecture of space {space.name} satisfies {name}={_fmt(value)} "
                    f"{unit}; the fastest takes {fastest} {unit} ({self.latency.source})")
        extreme = (("the smallest has " + _fmt(c.min())) if is_max
                   else ("the largest has " + _fmt(c.max())))
        return (f"no architecture of space {space.name} satisfies {name}={_fmt(value)} {unit}; "
                f"{extreme} {unit}")

    def _extremes(self, space: "SearchSpace") -> Dict[str, Tuple[float, float]]:
        """(min, max) of each bounded cost known without enumerating: the space's params /
        FLOPs bounds, the latency model's bounds."""
        keys = {key for _, key, _, _ in self._bounds()}
        extremes = dict(space.cost_bounds(**self.cost_kwargs) or {}) if keys - {"latency"} else {}
        if "latency" in keys and self.latency.bounds() is not None:
            extremes["latency"] = tuple(self.latency.bounds())
        return extremes


# ------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------
@dataclass
class SearchResult:
    """What a searcher found. ``archs`` / ``scores``: every scored arch, best first."""

    method: str
    archs: np.ndarray
    scores: np.ndarray
    top: List[Tuple[Arch, float]]
    history: List[Dict[str, Any]] = field(default_factory=list)
    evaluations: int = 0
    seconds: float = 0.0

    @property
    def best_arch(self) -> Arch:
        if not self.top:
            raise RlnasError(f"{self.method} search scored no architecture")
        return self.top[0][0]

    @property
    def best_score(self) -> float:
        if not self.top:
            raise RlnasError(f"{self.method} search scored no architecture")
        return self.top[0][1]

    def to_dict(self, space: "SearchSpace", k: Optional[int] = 10) -> Dict[str, Any]:
        """JSON-able summary; lists the ``k`` best archs (all with ``k=None``) as space strings."""
        n = len(self.archs) if k is None else min(int(k), len(self.archs))
        ranked = []
        for i in range(n):
            arch = tuple(int(v) for v in self.archs[i])
            ranked.append({"rank": i + 1, "arch": space.to_str(arch), "genome": list(arch),
                           "score": finite_or_none(self.scores[i])})
        best = None
        if self.top:
            arch, score = self.top[0]
            best = {"arch": space.to_str(arch), "genome": [int(v) for v in arch],
                    "score": finite_or_none(score)}
        history = [{key: (finite_or_none(v) if isinstance(v, (float, np.floating)) else
                          int(v) if isinstance(v, (int, np.integer)) else v)
                    for key, v in h.items()} for h in self.history]
        return {"method": self.method, "space": space.name,
                "evaluations": int(self.evaluations), "seconds": float(self.seconds),
                "best": best, "top": ranked, "history": history}


# ------------------------------------------------------------------------------------------
# shared machinery
# ------------------------------------------------------------------------------------------
class _Scorer:
    """Calls the score function on batches, checks its output, counts evaluations."""

    def __init__(self, space: "SearchSpace", score_fn: ScoreFn):
        self.space = space
        self.score_fn = score_fn
        self.evaluations = 0

    def __call__(self, archs: np.ndarray) -> np.ndarray:
        archs = np.asarray(archs, dtype=np.int64).reshape(-1, self.space.num_genes)
        if len(archs) == 0:
            return np.zeros(0, dtype=np.float64)
        raw = self.score_fn(archs)
        try:
            scores = np.asarray(raw, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise RlnasError(f"score function returned {type(raw).__name__}, expected a float "
                             f"array")
        if scores.shape != (len(archs),):
            raise RlnasError(f"score function returned {scores.size} scores for {len(archs)} archs")
        self.evaluations += len(archs)
        return np.where(np.isnan(scores), -np.inf, scores)


def _sort_desc(scores: np.ndarray) -> np.ndarray:
    """Indices sorting best first; ties keep their original order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def _as_tuple(row) -> Arch:
    return tuple(int(v) for v in row)


class _Legality:
    """Decides whether a candidate arch may be scored: valid, within the constraint."""

    def __init__(self, space: "SearchSpace", constraint: Optional[Constraint]):
        self.space = space
        self.constraint = constraint if constraint is not None else Constraint()
        self.enum = space.enumerate()
        self.legal_array: Optional[np.ndarray] = None   # enumerable: every legal arch, in order
        self.legal_set: Optional[Set[Arch]] = None
        if self.enum is not None:
            enum = np.asarray(self.enum, dtype=np.int64).reshape(-1, space.num_genes)
            mask = self.constraint.mask(space, enum)
            if not mask.any():
                self.constraint.check_feasible(space)      # raises with the explaining message
            self.legal_array = enum[mask]
            self.legal_set = set(map(tuple, self.legal_array.tolist()))
        elif self.constraint.is_active:
            self.constraint.check_feasible(space)          # raises where cost_bounds rule it out
        self._cache: Dict[Arch, bool] = {}

    def filter(self, archs: Sequence[Arch]) -> List[bool]:
        """Legality of each arch (visited-ness not included)."""
        if self.legal_set is not None:
            return [a in self.legal_set for a in archs]
        unknown = [a for a in dict.fromkeys(archs) if a not in self._cache]
        if unknown:
            valid = [bool(self.space.is_valid(a)) for a in unknown]
            check = [a for a, v in zip(unknown, valid) if v]
            ok = self.constraint.mask(self.space, np.array(check, dtype=np.int64)) if (
                check and self.constraint.is_active) else np.ones(len(check), dtype=bool)
            for a, v in zip(unknown, valid):
                if not v:
                    self._cache[a] = False
            for a, v in zip(check, ok):
                self._cache[a] = bool(v)
        return [self._cache[a] for a in archs]


def _collect(make: Callable[[], Arch], need: int, cap: int, legality: _Legality,
             taken: Dict[Arch, Any], pending: Dict[Arch, None]) -> int:
    """Generate up to ``cap`` candidates with ``make`` until ``need`` new legal ones are in
    ``pending``.

    A candidate is accepted if it is legal, not in ``taken`` (visited) and not already pending.
    Candidates are generated in rounds of the number still wanted so the constraint check (which
    may call ``space.cost``) stays vectorised. Returns the number of tries used.
    """
    tries = 0
    got = 0
    while got < need and tries < cap:
        n = min(need - got, cap - tries)
        batch = [make() for _ in range(n)]
        tries += n
        fresh = [a for a in batch if a not in taken and a not in pending]
        if not fresh:
            continue
        legal = dict(zip(fresh, legality.filter(fresh)))
        for a in fresh:
            if got >= need:
                break
            if legal[a] and a not in pending:
                pending[a] = None
                got += 1
    return tries


def _draw_legal(space: "SearchSpace", legality: _Legality, rng: np.random.Generator, need: int,
                cap: int, at_least: int) -> Dict[Arch, None]:
    """Up to ``need`` distinct legal archs drawn uniformly (at most ``cap`` draws), as a search
    starts (evolution: its first population; random search: its sample). RlnasError where a
    constraint leaves fewer than ``at_least`` of them in a space that cannot be enumerated."""
    pending: Dict[Arch, None] = {}
    _collect(lambda: _as_tuple(space.sample(rng)), need, cap, legality, {}, pending)
    if len(pending) < at_least and legality.legal_array is None and \
            legality.constraint.is_active:
        what = "no" if not pending else f"only {len(pending)} of {need}"
        raise RlnasError(
            f"{what} random architectures of space {space.name} satisfy "
            f"{legality.constraint.describe()} after {cap} tries; the limit seems impossible (or "
            f"too tight to search)")
    return pending


def _fill_from_enumeration(legality: _Legality, need: int, taken: Dict[Arch, Any],
                           pending: Dict[Arch, None], rng: np.random.Generator) -> None:
    """Draw up to ``need`` unvisited legal archs uniformly from an enumerable space's legal set."""
    if need <= 0 or legality.legal_array is None:
        return
    free = [i for i, row in enumerate(map(tuple, legality.legal_array.tolist()))
            if row not in taken and row not in pending]
    if not free:
        return
    pick = rng.choice(len(free), size=min(need, len(free)), replace=False)
    for j in pick:
        pending[_as_tuple(legality.legal_array[free[int(j)]])] = None


def _finish(method: str, visited: Dict[Arch, float], top: List[Tuple[Arch, float]],
            history: List[Dict[str, Any]], scorer: _Scorer, start: float,
            num_genes: int) -> SearchResult:
    archs = list(visited)
    scores = np.array([visited[a] for a in archs], dtype=np.float64)
    order = _sort_desc(scores)
    arr = np.array(archs, dtype=np.int64).reshape(-1, num_genes)[order]
    return SearchResult(method=method, archs=arr, scores=scores[order], top=top, history=history,
                        evaluations=scorer.evaluations, seconds=time.perf_counter() - start)


# ------------------------------------------------------------------------------------------
# searchers
# ------------------------------------------------------------------------------------------
def evolution_search(space: "SearchSpace", score_fn: ScoreFn,
                     settings: Optional[EvolutionSettings] = None,
                     constraint: Optional[Constraint] = None, seed: int = 0,
                     progress: Optional[ProgressFn] = None) -> SearchResult:
    """SPOS-style evolutionary search maximising ``score_fn`` (see the module docstring).

    ``settings`` defaults to ``EvolutionSettings.for_space(space.name)``. ``progress`` is called
    as ``progress(generation, best_score)`` after the initial population (generation 0) and after
    each generation. Deterministic for a fixed ``seed``.
    """
    start = time.perf_counter()
    settings = settings if settings is not None else EvolutionSettings.for_space(space.name)
    constraint = constraint if constraint is not None else Constraint()
    rng = np.random.default_rng(seed)
    legality = _Legality(space, constraint)
    scorer = _Scorer(space, score_fn)
    G = space.num_genes

    visited: Dict[Arch, float] = {}
    top: List[Tuple[Arch, float]] = []
    history: List[Dict[str, Any]] = []

    def evaluate(pending: Dict[Arch, None], generation: int) -> None:
        nonlocal top
        cands = list(pending)
        scores = scorer(np.array(cands, dtype=np.int64).reshape(-1, G))
        new = []
        for a, s in zip(cands, scores):
            visited[a] = float(s)
            new.append((a, float(s)))
        pool = top + new                        # running pool: old entries first, so they win ties
        order = _sort_desc(np.array([s for _, s in pool], dtype=np.float64))
        top = [pool[i] for i in order[:settings.topk]]
        best = top[0][1] if top else -math.inf
        history.append({"generation": generation, "best_score": best,
                        "mean_topk_score": (float(np.mean([s for _, s in top])) if top
                                            else -math.inf),
                        "evaluated_so_far": scorer.evaluations})
        if progress is not None:
            progress(generation, best)

    # initial population: uniform random archs
    need = settings.population
    pending = _draw_legal(space, legality, rng, need, _INIT_RETRY_FACTOR * need, need)
    if len(pending) < need:
        _fill_from_enumeration(legality, need - len(pending), visited, pending, rng)
    if not pending:
        raise RlnasError(f"could not draw any architecture of space {space.name}")
    evaluate(pending, 0)

    for generation in range(1, settings.generations + 1):
        pending, n_mut, n_cross = _offspring(space, settings, [a for a, _ in top], rng, legality,
                                             visited)
        if not pending:                         # an enumerable space fully visited: nothing left
            history.append({"generation": generation, "best_score": top[0][1],
                            "mean_topk_score": float(np.mean([s for _, s in top])),
                            "evaluated_so_far": scorer.evaluations})
            if progress is not None:
                progress(generation, top[0][1])
            continue
        evaluate(pending, generation)
        history[-1].update({"mutations": n_mut, "crossovers": n_cross,
                            "random": len(pending) - n_mut - n_cross})

    return _finish("evolution", visited, top, history, scorer, start, G)


def _offspring(space: "SearchSpace", settings: EvolutionSettings, parents: List[Arch],
               rng: np.random.Generator, legality: _Legality,
               visited: Dict[Arch, float]) -> Tuple[Dict[Arch, None], int, int]:
    """(candidates, mutations, crossovers) of one generation: legal archs not visited before,
    crossovers and mutations of ``parents`` (in the order ``settings`` say), then random archs,
    then, where those fall short, unvisited archs of the enumeration."""
    pending: Dict[Arch, None] = {}

    def mutant() -> Arch:
        parent = parents[int(rng.integers(len(parents)))]
        return _as_tuple(space.mutate(parent, rng, settings.mutation_prob))

    def child() -> Arch:
        p1 = parents[int(rng.integers(len(parents)))]
        p2 = parents[int(rng.integers(len(parents)))]
        return _as_tuple(space.crossover(p1, p2, rng))

    def random_arch() -> Arch:
        return _as_tuple(space.sample(rng))

    if settings.crossover_first:
        _collect(child, settings.crossovers, _RETRY_FACTOR * settings.crossovers, legality,
                 visited, pending)
        n_cross = len(pending)
        need = settings.population - n_cross
        _collect(mutant, need, _RETRY_FACTOR * need, legality, visited, pending)
        n_mut = len(pending) - n_cross
    else:
        before = len(pending)
        _collect(mutant, settings.mutations, _RETRY_FACTOR * settings.mutations, legality,
                 visited, pending)
        n_mut = len(pending) - before
        _collect(child, settings.crossovers, _RETRY_FACTOR * settings.crossovers, legality,
                 visited, pending)
        n_cross = len(pending) - before - n_mut
    need = settings.population - len(pending)
    _collect(random_arch, need, _RETRY_FACTOR * max(need, 1), legality, visited, pending)
    if len(pending) < settings.population:
        _fill_from_enumeration(legality, settings.population - len(pending), visited, pending,
                               rng)
    return pending, n_mut, n_cross


def _score_all(method: str, space: "SearchSpace", score_fn: ScoreFn, archs: np.ndarray,
               topk: int, batch_size: int, start: float) -> SearchResult:
    """Score a fixed set of archs in batches; the result sorted best first (stable)."""
    scorer = _Scorer(space, score_fn)
    scores = np.concatenate([scorer(archs[i:i + batch_size])
                             for i in range(0, len(archs), batch_size)]
                            ) if len(archs) else np.zeros(0)
    order = _sort_desc(scores)
    archs, scores = archs[order], scores[order]
    top = [(_as_tuple(archs[i]), float(scores[i])) for i in range(min(topk, len(archs)))]
    history = [{"generation": 0, "best_score": top[0][1] if top else -math.inf,
                "mean_topk_score": float(np.mean([s for _, s in top])) if top else -math.inf,
                "evaluated_so_far": scorer.evaluations}]
    return SearchResult(method, archs, scores, top, history, scorer.evaluations,
                        time.perf_counter() - start)


def exhaustive_search(space: "SearchSpace", score_fn: ScoreFn,
                      constraint: Optional[Constraint] = None, batch_size: int = 100_000, *,
                      topk: int = 30) -> SearchResult:
    """Score every legal arch of an enumerable space; best first, ties in enumeration order."""
    start = time.perf_counter()
    enum = space.enumerate()
    if enum is None:
        raise RlnasError(f"space {space.name} is too large for exhaustive search; use evolution")
    if batch_size <= 0:
        raise RlnasError(f"batch_size must be positive, got {batch_size}")
    constraint = constraint if constraint is not None else Constraint()
    enum = np.asarray(enum, dtype=np.int64).reshape(-1, space.num_genes)
    mask = constraint.mask(space, enum)
    if not mask.any():
        constraint.check_feasible(space)                # raises with the explaining message
    archs = enum[mask]
    return _score_all("exhaustive", space, score_fn, archs, topk, batch_size, start)


def _check_num_samples(num_samples) -> int:
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or \
            num_samples <= 0:
        raise RlnasError(f"num_samples must be a positive integer, got {num_samples!r}")
    return int(num_samples)


def random_search(space: "SearchSpace", score_fn: ScoreFn, num_samples: int = 1000,
                  constraint: Optional[Constraint] = None, seed: int = 0, *, topk: int = 30,
                  batch_size: int = 100_000) -> SearchResult:
    """Score ``num_samples`` distinct legal archs drawn uniformly (all legal ones if fewer)."""
    start = time.perf_counter()
    num_samples = _check_num_samples(num_samples)
    constraint = constraint if constraint is not None else Constraint()
    rng = np.random.default_rng(seed)
    legality = _Legality(space, constraint)
    G = space.num_genes
    if legality.legal_array is not None:
        legal = legality.legal_array
        pick = rng.choice(len(legal), size=min(num_samples, len(legal)), replace=False)
        archs = legal[pick]
    else:
        pending = _draw_legal(space, legality, rng, num_samples, _RETRY_FACTOR * num_samples, 1)
        archs = np.array(list(pending), dtype=np.int64).reshape(-1, G)
    return _score_all("random", space, score_fn, archs, topk, batch_size, start)


SEARCHERS: Dict[str, Callable[..., SearchResult]] = {
    "evolution": evolution_search,
    "exhaustive": exhaustive_search,
    "random": random_search,
}


def check_search(method: str, space: "SearchSpace", constraint: Optional[Constraint] = None,
                 seed: int = 0, settings: Optional[EvolutionSettings] = None,
                 num_samples: int = 1000) -> None:
    """Every refusal ``run_search`` makes before it scores an arch, made without scoring (no
    weights needed: ``rlnas run`` calls it before training, ``rlnas search`` before loading the
    checkpoints). An unknown method or a seed that is not an integer >= 0; an exhaustive search
    of a space too large to enumerate; a random budget below 1; a limit no arch meets, exactly
    where the space is enumerable or knows its cost bounds, else by the very draws the search
    would start with (the same seed): too few legal archs there and the search would stop.

    Args:
        method: 'evolution', 'exhaustive' or 'random'.
        space: the space searched.
        constraint: the limits (None: none).
        seed: the search's seed.
        settings: evolution's (default: the space's preset).
        num_samples: the random search's budget.

    Raises:
        RlnasError: what the search would raise, with the same message.
    """
    if method not in SEARCHERS:
        raise RlnasError(f"unknown search method {method!r}; known: {', '.join(sorted(SEARCHERS))}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RlnasError(f"the search seed must be an integer >= 0, got {seed!r}")
    constraint = constraint if constraint is not None else Constraint()
    if method == "exhaustive":
        if space.enumerate() is None:
            raise RlnasError(f"space {space.name} is too large for exhaustive search; use "
                             f"evolution")
        constraint.check_feasible(space)
        return
    settings = settings if settings is not None else EvolutionSettings.for_space(space.name)
    need = settings.population if method == "evolution" else _check_num_samples(num_samples)
    legality = _Legality(space, constraint)  # refuses a limit known to be impossible
    if legality.legal_array is None and constraint.is_active:  # the search's own first draws
        factor = _INIT_RETRY_FACTOR if method == "evolution" else _RETRY_FACTOR
        _draw_legal(space, legality, np.random.default_rng(seed), need, factor * need,
                    need if method == "evolution" else 1)


def run_search(method: str, space: "SearchSpace", score_fn: ScoreFn,
               constraint: Optional[Constraint] = None, seed: int = 0,
               settings: Optional[EvolutionSettings] = None, num_samples: int = 1000,
               progress: Optional[ProgressFn] = None) -> SearchResult:
    """Run the searcher named ``method`` ('evolution', 'exhaustive' or 'random')."""
    if method not in SEARCHERS:
        raise RlnasError(f"unknown search method {method!r}; known: {', '.join(sorted(SEARCHERS))}")
    if method == "evolution":
        return evolution_search(space, score_fn, settings=settings, constraint=constraint,
                                seed=seed, progress=progress)
    if method == "exhaustive":
        return exhaustive_search(space, score_fn, constraint=constraint)
    return random_search(space, score_fn, num_samples=num_samples, constraint=constraint, seed=seed)


__all__ = ["EvolutionSettings", "Constraint", "SearchResult", "evolution_search",
           "exhaustive_search", "random_search", "SEARCHERS", "check_search", "run_search"]
