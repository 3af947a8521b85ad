"""The search-space contract (``rlnas.spaces.base``), checked on every registered space and the
example user space: a new space registered is tested here without new test code. Every zero-cost
proxy scores every space too.

Sizes: the spaces known here run at tiny sizes (``TINY``); any other space runs at its defaults
(``model: {}``, 16 px images).
"""
import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from rlnas.angle import FIXED, STATS
from rlnas.data import ImageData
from rlnas.errors import RlnasError
from rlnas.proxies import PROXY_NAMES, _Runner
from rlnas.scorers import ScoreContext, build_scorer
from rlnas.spaces import get_space, list_spaces
from rlnas.spaces.base import MissingCapability, SearchSpace

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = "examples.my_space:SPACE"  # the README's user space (module:ATTRIBUTE)
SPACES = list_spaces() + [EXAMPLE]

# space: keywords of get_space; model: of supernet() and network(); image: side in px
TINY = {
    "nb201": {"model": {"channels": 4, "cells": 1}, "image": 8},
    "darts": {"model": {"variant": "cifar", "channels": 4, "layers": 3}, "image": 8},
    "mobilenet": {"space": {"width": 0.1, "input_size": 16}, "image": 16},
    "nasbench-macro": {"space": {"input_size": 8}, "image": 8},
}
CLASSES = 3
GARBAGE = ["", "   ", "not an arch", "|||", "[1, 2", "Genotype(", "0 " * 40, None, 42]


def tiny(name):
    return {"space": {}, "model": {}, "image": 16, **TINY.get(name, {})}


@functools.lru_cache(maxsize=None)
def make_space(name) -> SearchSpace:
    if ":" in name:  # a user space is found from the folder holding examples/
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(ROOT)
            return get_space(name)
    return get_space(name, **tiny(name)["space"])


@pytest.fixture(params=SPACES)
def case(request):
    torch.manual_seed(0)
    return request.param, make_space(request.param), tiny(request.param)


def samples(space, n, seed=0):
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def images(side, n=4, seed=0):
    return torch.randn(n, 3, side, side, generator=torch.Generator().manual_seed(seed))


# --- genome ---------------------------------------------------------------------------------
def test_genes_and_choices(case):
    _, space, _ = case
    assert isinstance(space.name, str) and space.name
    assert isinstance(space.num_genes, int) and space.num_genes > 0
    for g in range(space.num_genes):
        choices = [int(v) for v in space.gene_choices(g)]
        assert choices and len(set(choices)) == len(choices)
        assert set(int(v) for v in space.mutation_choices(g)) <= set(choices)
    assert not space.is_valid((-1,) * space.num_genes)
    assert not space.is_valid(tuple(samples(space, 1)[0]) + (0,))


def test_sample_mutate_crossover_repair_are_valid_and_seeded(case):
    _, space, _ = case

    def draw(seed):
        rng = np.random.default_rng(seed)
        out = [space.sample(rng) for _ in range(8)]
        out += [space.mutate(a, rng, 0.5) for a in out[:4]]
        out += [space.crossover(a, b, rng) for a, b in zip(out[:4], out[4:8])]
        raw = [tuple(int(rng.choice(space.gene_choices(g))) for g in range(space.num_genes))
               for _ in range(4)]
        return out + [space.repair(a, rng) for a in raw]

    archs = draw(1)
    for a in archs:
        assert len(a) == space.num_genes and space.is_valid(a), a
        assert all(isinstance(v, (int, np.integer)) for v in a)
    assert archs == draw(1)
    assert len(set(map(tuple, archs))) > 1


# --- notation -------------------------------------------------------------------------------
def test_notation_round_trips_and_refuses_garbage(case):
    _, space, _ = case
    for a in samples(space, 10):
        text = space.to_str(a)
        assert isinstance(text, str) and "\n" not in text
        assert tuple(space.from_str(text)) == tuple(a)
        assert tuple(space.canonical(a)) == tuple(space.canonical(space.from_str(text)))
    for text in GARBAGE:
        with pytest.raises(RlnasError):
            space.from_str(text)
    with pytest.raises(RlnasError):
        space.to_str((-1,) * space.num_genes)


def test_enumerate_lists_distinct_valid_archs(case):
    _, space, _ = case
    archs = space.enumerate()
    if archs is None:
        return  # not enumerable: the documented default
    assert archs.ndim == 2 and archs.shape[1] == space.num_genes and len(archs) > 1
    assert np.issubdtype(archs.dtype, np.integer)
    assert len(np.unique(archs, axis=0)) == len(archs)
    for a in archs[np.random.default_rng(0).choice(len(archs), 200)]:
        assert space.is_valid(tuple(int(v) for v in a))


# --- cost -----------------------------------------------------------------------------------
def test_cost_shapes_and_bounds(case):
    _, space, _ = case
    archs = np.array(samples(space, 6), dtype=np.int64)
    cost = space.cost(archs)
    for key in ("params", "flops"):
        c = np.asarray(cost[key], dtype=np.float64)
        assert c.shape == (len(archs),) and np.isfinite(c).all() and (c > 0).all(), key
        assert space.cost(archs[2:3])[key][0] == pytest.approx(c[2], rel=1e-12)
    bounds = space.cost_bounds()
    if bounds is not None:
        for key in ("params", "flops"):
            lo, hi = bounds[key]
            assert lo <= cost[key].min() + 1e-9 and cost[key].max() <= hi + 1e-9


def test_cost_params_count_the_default_network(case):
    """The declared convention (``SearchSpace.cost``): with no keywords, params are every
    parameter of ``network(arch)`` at its default size (the DARTS auxiliary head is off there)."""
    _, space, _ = case
    archs = samples(space, 3, seed=2)
    params = space.cost(np.array(archs, dtype=np.int64))["params"]
    for a, p in zip(archs, params):
        net = space.network(a)
        assert p * 1e6 == pytest.approx(sum(t.numel() for t in net.parameters()), abs=0.5)


# --- models ---------------------------------------------------------------------------------
def test_supernet_runs_a_sampled_training_path(case):
    _, space, t = case
    net = space.supernet(num_classes=CLASSES, **t["model"])
    cells = net.num_search_cells
    assert isinstance(cells, int) and cells > 0
    path = space.sample_training_path(5, 7, cells)
    assert np.array_equal(path, space.sample_training_path(5, 7, cells))  # (seed, step) only
    paths = [np.asarray(space.sample_training_path(5, s, cells)) for s in range(8)]
    assert any(not np.array_equal(paths[0], p) for p in paths[1:])
    x = images(t["image"])
    for p in (path, samples(space, 1)[0]):  # a training path, or an arch as its own path
        out = net(x, p)
        assert out.shape == (len(x), CLASSES) and torch.isfinite(out).all()


def test_network_runs_and_signatures_agree(case):
    _, space, t = case
    x = images(t["image"], n=2)
    for a in samples(space, 2, seed=3):
        for net in (space.network(a, num_classes=CLASSES, **t["model"]),
                    space.network(a, CLASSES, **t["model"])):  # num_classes second everywhere
            out = net.eval()(x)
            assert out.shape == (len(x), CLASSES) and torch.isfinite(out).all()
    assert space.supernet(CLASSES, **t["model"]).eval()(x, a).shape == (len(x), CLASSES)


def test_unknown_model_options_are_refused_in_one_line(case):
    _, space, t = case
    arch = samples(space, 1)[0]
    for build in (lambda: space.supernet(num_classes=CLASSES, no_such_option=1, **t["model"]),
                  lambda: space.network(arch, num_classes=CLASSES, no_such_option=1,
                                        **t["model"])):
        with pytest.raises(RlnasError, match=r"takes no model option no_such_option "
                                             r"\(known: num_classes") as err:
            build()
        assert "\n" not in str(err.value)


# --- angle ----------------------------------------------------------------------------------
def touched_parameters(net, arch, side):
    """Names of the supernet parameters that arch's path reaches (a gradient flows to them)."""
    net.train().zero_grad(set_to_none=True)
    net(images(side), arch).square().mean().backward()
    return {n for n, p in net.named_parameters() if p.grad is not None}


def perturbed(state, keys, seed):
    g = torch.Generator().manual_seed(seed)
    return {k: v + 0.1 * torch.randn(v.shape, generator=g, dtype=v.dtype) if k in keys
            else v.clone() for k, v in state.items()}


def test_angle_pieces_follow_the_weights_each_arch_uses(case):
    """An arch's pieces (multiplicity > 0) hold exactly the weights its supernet path uses:
    moving every other weight leaves its pieces still, moving its own weights leaves the
    searchable pieces it does not use still."""
    _, space, t = case
    net = space.supernet(num_classes=CLASSES, **t["model"])
    s0 = {k: v.detach().clone() for k, v in net.state_dict().items()}
    names, stats = space.angle_pieces(s0, s0)
    stats = np.asarray(stats)
    assert FIXED in names and stats.shape == (len(names), len(STATS))
    assert np.isfinite(stats).all() and (stats[:, 3] == 0).all()
    searchable = np.array([n != FIXED for n in names])
    params = {n for n, _ in net.named_parameters()}
    for i, arch in enumerate(samples(space, 3, seed=4)):
        mult = np.asarray(space.angle_multiplicity(np.array([arch])))
        assert mult.shape == (1, len(names)) and (mult >= 0).all()
        used = mult[0] > 0
        mine = touched_parameters(net, arch, t["image"])
        moved_others = np.asarray(space.angle_pieces(s0, perturbed(s0, params - mine, i))[1])
        assert moved_others[used, 3].sum() == 0, [n for n, u in zip(names, used) if u]
        moved_mine = np.asarray(space.angle_pieces(s0, perturbed(s0, mine, i))[1])
        assert moved_mine[used, 3].sum() > 0
        idle = ~used & searchable
        assert (moved_mine[idle, 3] == 0).all(), [n for n, m in zip(names, moved_mine[idle, 3] > 0)
                                                  if m]


# --- the base class itself --------------------------------------------------------------------
def test_base_defaults_and_missing_capabilities():
    from test_choice import SumSpace  # genes and a cost only: what a searcher needs
    space = SumSpace()
    arch = space.sample(np.random.default_rng(0))
    assert space.is_valid(arch) and space.repair(arch, None) == arch
    assert space.canonical(arch) == arch and space.enumerate() is None
    assert space.cost_bounds() is None and space.cost_defaults({}) == {}
    for call in (lambda: space.supernet(num_classes=3), lambda: space.network(arch),
                 lambda: space.to_str(arch), lambda: space.from_str("1 2 3 4 0 1 2 3"),
                 lambda: space.sample_training_path(0, 0, 1),
                 lambda: space.angle_pieces({}, {}), lambda: space.angle_multiplicity([arch])):
        with pytest.raises(MissingCapability, match="search space sum provides no"):
            call()
    assert issubclass(MissingCapability, RlnasError)


def test_a_space_without_the_required_methods_is_refused():
    class NoCost(SearchSpace):
        num_genes = 1

        def gene_choices(self, gene):
            return range(2)

    with pytest.raises(TypeError, match="abstract"):
        NoCost()


# === every zero-cost proxy on every space =========================================================
# Every zero-cost proxy scores every space (each registered space and the README's user space):
# with no ``proxy_model`` given the proxies build the space's own network at its defaults, so a
# ``ChoiceSpace`` run is not handed NB201's ``channels``/``cells``.


def images_for(name: str, n: int = 8, seed: int = 0) -> ImageData:
    """``n`` random RGB images at the space's tiny side, labels in 0..CLASSES-1."""
    side = tiny(name)["image"]
    rng = np.random.default_rng(seed)
    return ImageData(x=rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8),
                     y=rng.integers(0, CLASSES, n).astype(np.int64), num_classes=CLASSES,
                     mean=(0.5,) * 3, std=(0.25,) * 3, name="tiny", source="test")


def proxy_options(name: str) -> dict:
    """The proxies' options for a space: its tiny model where it has size keywords, else none
    at all (the default path, the one a ChoiceSpace run takes)."""
    opts = {"data": images_for(name), "batch_size": 4, "progress": False}
    if tiny(name)["model"]:
        opts["proxy_model"] = tiny(name)["model"]
    return opts


@pytest.mark.parametrize("space_name", SPACES)
@pytest.mark.parametrize("scorer", PROXY_NAMES)
def test_every_proxy_scores_every_space(scorer, space_name):
    space = make_space(space_name)
    archs = np.array(samples(space, 2), dtype=np.int64)
    ctx = ScoreContext(space=space, seed=0, options=proxy_options(space_name))
    scores = build_scorer(scorer, ctx)(archs)
    assert scores.shape == (2,) and scores.dtype == np.float64
    assert np.isfinite(scores).any(), f"{scorer} on {space_name}: {scores}"


@pytest.mark.parametrize("space_name", SPACES)
def test_default_proxy_network_is_the_spaces_network(space_name):
    """No ``proxy_model``: the proxies' network is ``space.network(arch, num_classes=K)``, K the
    data's classes (NB201: C=16, N=5, as before; DARTS: its reporting network)."""
    space = make_space(space_name)
    arch = samples(space, 1)[0]
    data = images_for(space_name)
    runner = _Runner(space, ScoreContext(space=space, seed=0, options={"data": data}), "synflow")
    got = runner.build(arch)
    torch.manual_seed(0)
    want = space.network(arch, num_classes=CLASSES)
    assert [tuple(p.shape) for p in got.parameters()] == [tuple(p.shape) for p in want.parameters()]
