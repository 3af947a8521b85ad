"""Searchers on toy spaces small enough to brute-force (no dependence on a real space module)."""
import json
import sys

import numpy as np
import pytest

from rlnas.errors import RlnasError
from rlnas.searchers import (
    SEARCHERS,
    Constraint,
    EvolutionSettings,
    SearchResult,
    evolution_search,
    exhaustive_search,
    random_search,
    run_search,
)

try:
    from rlnas.spaces.base import SearchSpace
except ImportError:  # spaces/__init__ imports sibling space modules that may not exist yet
    SearchSpace = sys.modules["rlnas.spaces.base"].SearchSpace


class ToySpace(SearchSpace):
    """``num_genes`` genes with values 0..values-1; params = 0.01 * (sum + 7) M,
    flops = 2 * sum M."""

    name = "toy"

    def __init__(self, num_genes=4, values=5, enumerable=True):
        self.num_genes = num_genes
        self.values = values
        self.enumerable = enumerable

    def gene_choices(self, gene):
        return list(range(self.values))

    def to_str(self, arch):
        return "-".join(str(int(v)) for v in arch)

    def enumerate(self):
        if not self.enumerable:
            return None
        grids = np.meshgrid(*[np.arange(self.values)] * self.num_genes, indexing="ij")
        return np.stack([g.reshape(-1) for g in grids], axis=1).astype(np.int64)

    def cost(self, archs, **kw):
        s = np.asarray(archs, dtype=np.int64).reshape(-1, self.num_genes).sum(axis=1)
        return {"params": 0.01 * (s + 7), "flops": 2.0 * s}


class NoZeroMutationSpace(ToySpace):
    """0 is a legal value but never sampled and never a mutation target (like NB201's ``none``)."""

    name = "toy-nozero"

    def mutation_choices(self, gene):
        return list(range(1, self.values))

    def sample(self, rng):
        return tuple(int(rng.integers(1, self.values)) for _ in range(self.num_genes))


def arch_index(archs, values=5):
    archs = np.asarray(archs, dtype=np.int64)
    return (archs * values ** np.arange(archs.shape[1])[::-1]).sum(axis=1)


class RecordingScore:
    """A vectorised score that records every call and every arch it scores."""

    def __init__(self, fn):
        self.fn = fn
        self.calls = 0
        self.rows = []

    def __call__(self, archs):
        assert archs.dtype == np.int64 and archs.ndim == 2
        self.calls += 1
        self.rows.extend(map(tuple, archs.tolist()))
        return self.fn(archs)


def separable(target):
    target = np.asarray(target)
    return lambda a: -np.abs(a - target).sum(axis=1).astype(float)


def random_table(num_genes=4, values=5, seed=123):
    table = np.random.default_rng(seed).random(values ** num_genes)   # distinct scores, no ties
    return lambda a: table[arch_index(a, values)]


SMALL = EvolutionSettings(population=20, topk=5, mutations=8, crossovers=8, mutation_prob=0.25,
                          generations=6)


# ---------------------------------------------------------------------------------------------
def test_settings_presets_and_validation():
    nb = EvolutionSettings.for_space("nb201")
    assert (nb.population, nb.topk, nb.mutations, nb.crossovers, nb.mutation_prob, nb.generations) \
        == (100, 30, 50, 50, 0.1, 20)
    assert EvolutionSettings() == nb
    d = EvolutionSettings.for_space("darts")
    assert (d.population, d.topk, d.mutations, d.crossovers, d.mutation_prob, d.generations) \
        == (50, 10, 25, 25, 0.1, 20)
    assert EvolutionSettings.for_space("whatever") == d
    for bad in (dict(population=0), dict(generations=-1), dict(topk=101), dict(mutation_prob=1.5),
                dict(mutation_prob=-0.1), dict(mutations=0), dict(mutations=60, crossovers=50)):
        with pytest.raises(RlnasError):
            EvolutionSettings(**bad)


def test_determinism_for_fixed_seed():
    space = ToySpace()
    fn = random_table()
    a = evolution_search(space, fn, settings=SMALL, seed=7)
    b = evolution_search(space, fn, settings=SMALL, seed=7)
    c = evolution_search(space, fn, settings=SMALL, seed=8)
    assert np.array_equal(a.archs, b.archs) and np.array_equal(a.scores, b.scores)
    assert a.top == b.top and a.evaluations == b.evaluations
    assert [h["best_score"] for h in a.history] == [h["best_score"] for h in b.history]
    assert not np.array_equal(a.archs, c.archs)


@pytest.mark.parametrize("enumerable", [True, False])
def test_no_arch_scored_twice_and_batched_calls(enumerable):
    space = ToySpace(enumerable=enumerable)
    score = RecordingScore(random_table())
    res = evolution_search(space, score, settings=SMALL, seed=1)
    assert len(score.rows) == len(set(score.rows)) == res.evaluations == len(res.archs)
    assert score.calls <= SMALL.generations + 1          # one call per generation at most
    assert set(map(tuple, res.archs.tolist())) == set(score.rows)


def test_nb201_settings_exhaust_small_space_without_duplicates():
    # 625 archs < 2100 possible evaluations: dedup must stop at the space size
    space = ToySpace()
    score = RecordingScore(random_table())
    res = evolution_search(space, score, settings=EvolutionSettings.for_space("nb201"), seed=0)
    assert len(score.rows) == len(set(score.rows)) == res.evaluations == 625
    assert res.best_arch == tuple(res.archs[0]) and res.best_score == res.scores.max()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evaluations_bounded(seed):
    space = ToySpace(num_genes=6, values=5, enumerable=False)
    s = EvolutionSettings(population=30, topk=8, mutations=10, crossovers=10, generations=5)
    res = evolution_search(space, separable([1, 2, 3, 4, 0, 1]), settings=s, seed=seed)
    assert res.evaluations <= s.population + s.generations * s.population
    assert res.evaluations == s.population * (s.generations + 1)   # big space: every slot is filled
    assert [h["generation"] for h in res.history] == list(range(s.generations + 1))
    assert [h["evaluated_so_far"] for h in res.history] == [30 * (g + 1) for g in range(6)]


def test_finds_global_optimum_of_separable_score():
    target = (3, 1, 4, 0, 2, 2, 1, 3)
    space = ToySpace(num_genes=8, values=5, enumerable=False)   # 390625 archs
    res = evolution_search(space, separable(target), settings=EvolutionSettings.for_space("nb201"),
                           seed=0)
    assert res.best_arch == target and res.best_score == 0.0
    assert res.evaluations <= 2100
    best = [h["best_score"] for h in res.history]
    assert best == sorted(best)                                 # running pool never gets worse


def test_mutation_respects_mutation_choices():
    space = NoZeroMutationSpace(num_genes=5, values=4, enumerable=False)
    # the score loves zeros: a searcher that mutated with gene_choices would find them
    res = evolution_search(space, lambda a: (a == 0).sum(axis=1) - 0.01 * a.sum(axis=1),
                           settings=EvolutionSettings(population=20, topk=5, mutations=10,
                                                      crossovers=5, mutation_prob=0.5,
                                                      generations=8),
                           seed=3)
    assert res.evaluations > 100
    assert (res.archs != 0).all()


def test_topk_pool_sorted_and_best_of_visited():
    space = ToySpace()
    res = evolution_search(space, random_table(), settings=SMALL, seed=5)
    scores = [s for _, s in res.top]
    assert len(res.top) == SMALL.topk
    assert scores == sorted(scores, reverse=True)
    assert np.allclose(scores, np.sort(res.scores)[::-1][:SMALL.topk])
    assert [a for a, _ in res.top] == [tuple(r) for r in res.archs[:SMALL.topk].tolist()]
    assert np.all(np.diff(res.scores) <= 0)
    table = random_table()
    assert np.allclose(table(res.archs), res.scores)               # archs and scores line up
    assert res.best_arch == res.top[0][0]
    assert ([h["mean_topk_score"] for h in res.history]
            == sorted(h["mean_topk_score"] for h in res.history))


@pytest.mark.parametrize("enumerable", [True, False])
def test_constraint_respected(enumerable):
    space = ToySpace(enumerable=enumerable)
    con = Constraint(max_params=0.12, min_flops=4)     # 2 <= sum <= 5
    score = RecordingScore(lambda a: a.sum(axis=1).astype(float))   # wants big sums
    res = evolution_search(space, score, settings=SMALL, constraint=con, seed=0)
    sums = np.array(score.rows).sum(axis=1)
    assert ((sums >= 2) & (sums <= 5)).all()          # nothing illegal was even scored
    assert res.best_score == 5.0
    assert con.mask(space, res.archs).all()
    assert con.is_active and not Constraint().is_active
    assert con.describe() == "max_params=0.12 M, min_flops=4 M"
    assert Constraint().describe() == "no constraint"
    sums_all = ToySpace().enumerate().sum(axis=1)
    assert con.check_feasible(ToySpace()) == int(((sums_all >= 2) & (sums_all <= 5)).sum())
    assert con.check_feasible(ToySpace(enumerable=False)) is None


def test_tight_constraint_fewer_legal_than_population():
    space = ToySpace()
    con = Constraint(max_flops=2)                     # sum <= 1: 5 archs
    res = evolution_search(space, random_table(), settings=SMALL, constraint=con, seed=0)
    assert res.evaluations == 5 and len(res.top) == 5


def test_impossible_constraint_enumerable_message():
    with pytest.raises(RlnasError) as err:
        evolution_search(ToySpace(), random_table(), settings=SMALL,
                         constraint=Constraint(max_params=0.01))
    assert str(err.value) == ("no architecture of space toy satisfies max_params=0.01 M; "
                              "the smallest has 0.07 M")
    with pytest.raises(RlnasError, match="the largest has 32 M"):
        Constraint(min_flops=100).check_feasible(ToySpace())
    with pytest.raises(RlnasError, match="together"):
        Constraint(max_params=0.08, min_flops=4).check_feasible(ToySpace())
    with pytest.raises(RlnasError, match="smallest has 0.07 M"):
        exhaustive_search(ToySpace(), random_table(), constraint=Constraint(max_params=0.01))


def test_impossible_constraint_not_enumerable():
    space = ToySpace(num_genes=4, enumerable=False)
    with pytest.raises(RlnasError, match="seems impossible"):
        evolution_search(space, random_table(), settings=SMALL,
                         constraint=Constraint(max_params=0.01))
    with pytest.raises(RlnasError, match="seems impossible"):
        random_search(space, random_table(), num_samples=10, constraint=Constraint(max_params=0.01))


def test_constraint_validation():
    with pytest.raises(RlnasError):
        Constraint(max_params=-1)
    with pytest.raises(RlnasError):
        Constraint(min_params=2, max_params=1)


def test_exhaustive_equals_brute_force():
    space = ToySpace()
    def fn(a):  # many ties: checks stability
        return (a[:, 0] * 3 - a[:, 2]).astype(float)

    res = exhaustive_search(space, fn, batch_size=100)
    enum = space.enumerate()
    order = sorted(range(len(enum)), key=lambda i: -fn(enum[i:i + 1])[0])   # python sort is stable
    assert np.array_equal(res.archs, enum[order])
    assert np.array_equal(res.scores, fn(enum)[order])
    assert res.evaluations == 625
    con = Constraint(max_params=0.1)
    res_c = exhaustive_search(space, fn, constraint=con)
    keep = [i for i in order if enum[i].sum() <= 3]
    assert np.array_equal(res_c.archs, enum[keep])
    with pytest.raises(RlnasError, match="too large for exhaustive search; use evolution"):
        exhaustive_search(ToySpace(enumerable=False), fn)


def test_random_search():
    space = ToySpace()
    score = RecordingScore(random_table())
    res = random_search(space, score, num_samples=50, seed=0)
    assert res.evaluations == 50 == len(set(score.rows))
    assert np.array_equal(res.archs,
                          random_search(space, random_table(), num_samples=50, seed=0).archs)
    assert random_search(space, random_table(), num_samples=10_000).evaluations == 625   # capped
    con = Constraint(max_params=0.1)
    res_c = random_search(space, random_table(), num_samples=1000, constraint=con, seed=1)
    assert res_c.evaluations == int((space.enumerate().sum(axis=1) <= 3).sum())
    assert con.mask(space, res_c.archs).all()
    res_n = random_search(ToySpace(enumerable=False), random_table(), num_samples=40, seed=2)
    assert res_n.evaluations == 40 == len(set(map(tuple, res_n.archs.tolist())))


def test_run_search_dispatch_and_unknown_method():
    space = ToySpace()
    assert set(SEARCHERS) == {"evolution", "exhaustive", "random"}
    seen = []
    res = run_search("evolution", space, random_table(), settings=SMALL, seed=4,
                     progress=lambda g, b: seen.append((g, b)))
    assert isinstance(res, SearchResult) and res.method == "evolution"
    assert [g for g, _ in seen] == list(range(SMALL.generations + 1))
    assert run_search("exhaustive", space, random_table()).evaluations == 625
    assert run_search("random", space, random_table(), num_samples=30).evaluations == 30
    with pytest.raises(RlnasError,
                       match="unknown search method 'genetic'.*evolution, exhaustive, random"):
        run_search("genetic", space, random_table())


def test_to_dict_is_json():
    space = ToySpace()
    res = evolution_search(space, random_table(), settings=SMALL, seed=0)
    d = res.to_dict(space, k=3)
    text = json.dumps(d, allow_nan=False)
    assert len(d["top"]) == 3 and d["top"][0]["arch"] == space.to_str(res.best_arch)
    assert d["best"]["score"] == res.best_score and d["evaluations"] == res.evaluations
    assert json.loads(text)["history"][0]["generation"] == 0
    assert len(res.to_dict(space, k=None)["top"]) == len(res.archs)


def test_bad_score_function_output():
    with pytest.raises(RlnasError, match="scores for"):
        exhaustive_search(ToySpace(), lambda a: np.zeros(3))
