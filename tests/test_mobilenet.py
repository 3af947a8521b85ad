"""The paper's MobileNet space (spec 3.4, 4.3, 5, 6.3, 7.3): blocks and notation, published
costs, supernet size, the angle against the official get_arch_vector written out by hand, scoring
speed, FLOPs-limited evolution, presets and the bench row."""
import time

import numpy as np
import pytest
import torch

from conftest import reference_variants
from rlnas.angle import VARIANTS, AngleScorer, angle_between
from rlnas.config import load_config
from rlnas.errors import RlnasError
from rlnas.searchers import Constraint, EvolutionSettings, evolution_search
from rlnas.spaces import get_space
from rlnas.spaces.mobilenet import PUBLISHED, mobilenet_space

SPACE = get_space("mobilenet")
NO_SKIP = (0, 4, 8, 12, 16, 20)
CHANNELS = [32] * 4 + [56] * 4 + [112] * 4 + [128] * 4 + [256] * 4 + [432]


def test_blocks_ops_and_notation():
    assert SPACE.name == "mobilenet" and SPACE.num_genes == 21 and get_space("mobilenet") is SPACE
    assert [len(SPACE.gene_choices(b)) for b in range(21)] == [
        6 if b in NO_SKIP else 7 for b in range(21)]
    assert SPACE.enumerate() is None  # 6^6 * 7^15 archs
    assert [op.name for op in SPACE.blocks[1].ops] == [
        "k3e3", "k3e6", "k5e3", "k5e6", "k7e3", "k7e6", "skip"]
    assert SPACE.c_in == [24] + CHANNELS[:-1] and [b.c_out for b in SPACE.blocks] == CHANNELS
    arch = SPACE.from_str(PUBLISHED)
    assert arch == (2, 0, 6, 2, 2, 0, 2, 4, 0, 4, 4, 2, 4, 2, 4, 2, 0, 0, 0, 2, 2)
    assert SPACE.to_str(arch) == PUBLISHED
    # spec 7.5, by op names
    assert SPACE.from_str("k5e3 k3e3 skip k5e3 k5e3 k3e3 k5e3 k7e3 k3e3 k7e3 k7e3 k5e3 k7e3 k5e3 "
                          "k7e3 k5e3 k3e3 k3e3 k3e3 k5e3 k5e3") == arch
    for b in NO_SKIP:
        bad = PUBLISHED.split()
        bad[b] = "-1"
        with pytest.raises(RlnasError, match=f"block {b} of mobilenet has no op '-1'"):
            SPACE.from_str(" ".join(bad))
    with pytest.raises(RlnasError, match="expected 21 ops"):
        SPACE.from_str("2 0 -1")


def test_published_arch_costs_and_supernet_size():
    """Spec 7.3: the model_id builds a net of 5.256 M params / 473.2 M FLOPs; the supernet has
    27.7 M params (spec 3.4)."""
    arch = SPACE.from_str(PUBLISHED)
    cost = SPACE.cost(np.array([arch]))
    assert round(float(cost["params"][0]), 3) == 5.256
    assert round(float(cost["flops"][0]), 1) == 473.2
    net = SPACE.network(arch, dropout=0.2)
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(cost["params"][0] * 1e6)
    assert isinstance(net.head[5], torch.nn.Dropout) and net.head[5].p == 0.2
    with torch.no_grad():
        assert net.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 1000)
    with torch.device("meta"):
        supernet = SPACE.supernet()
    assert round(sum(p.numel() for p in supernet.parameters()) / 1e6, 1) == 27.7
    assert supernet.num_search_cells == 21
    lo, hi = SPACE.cost_bounds()["flops"]
    assert lo < 475 < hi


# --- angle (spec 4.3) -----------------------------------------------------------------------
def official_parts(s0, sT, arch):
    """The official get_arch_vector, written out: fixed conv / classifier weights (no BN, no
    bias), then per block the MBConv's expand conv, BN1 w/b, depthwise conv, BN2 w/b, linear
    conv, or eye(C_out, C_in) for skip."""
    def t(state, k):
        return state[k].double().reshape(-1)
    fixed = ["stem.0.weight", "stem.3.conv.0.weight", "stem.3.conv.3.weight", "head.0.weight",
             "head.6.weight"]
    parts = [("fixed", None, t(s0, k), t(sT, k)) for k in fixed]
    for b, a in enumerate(arch):
        if a == 6:
            c = s0[f"blocks.{b}.k3e3.conv.6.weight"].shape[0]
            v0 = vT = torch.eye(c, c, dtype=torch.float64).reshape(-1)
        else:
            op = ["k3e3", "k3e6", "k5e3", "k5e6", "k7e3", "k7e6"][a]
            keys = [f"blocks.{b}.{op}.conv.{k}" for k in (
                "0.weight", "1.weight", "1.bias", "3.weight", "4.weight", "4.bias", "6.weight")]
            v0, vT = (torch.cat([t(s, k) for k in keys]) for s in (s0, sT))
        parts.append(((b, a), b, v0, vT))
    return parts


@pytest.fixture(scope="module")
def states():
    """Random W0 and WT of a quarter-width MobileNet supernet (the same blocks and keys)."""
    space = mobilenet_space(width=0.25, input_size=64, num_classes=10)
    torch.manual_seed(0)
    s0 = {k: v.clone() for k, v in space.supernet().state_dict().items()}
    sT = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v for k, v in s0.items()}
    return space, s0, sT


def random_archs(space, n, seed):
    rng = np.random.default_rng(seed)
    return np.array([space.sample(rng) for _ in range(n)])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_decomposed_angle_matches_the_official_vector(states, variant):
    space, s0, sT = states
    archs = np.concatenate([random_archs(space, 12, seed=1),
                            np.array([space.from_str(PUBLISHED), [0] + [6, 6, 6, 0] * 5])])
    fast = AngleScorer.from_states(space, s0, sT, variant)(archs)
    slow = [reference_variants(official_parts(s0, sT, a))[variant] for a in archs]
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    if variant == "angle":
        parts = official_parts(s0, sT, archs[0])
        assert fast[0] == pytest.approx(angle_between(torch.cat([p[2] for p in parts]),
                                                      torch.cat([p[3] for p in parts])), abs=1e-12)
    assert len(set(np.round(fast, 9))) == len(archs)


def test_a_thousand_candidates_score_in_well_under_a_second(states):
    space, s0, sT = states
    scorer = AngleScorer.from_states(space, s0, sT)
    archs = random_archs(space, 1000, seed=2)
    t0 = time.perf_counter()
    angles = scorer(archs)
    dt = time.perf_counter() - t0
    print(f"\nscored 1,000 MobileNet candidates in {dt * 1e3:.1f} ms")
    assert angles.shape == (1000,) and np.isfinite(angles).all() and (angles > 0).all()
    with pytest.raises(RlnasError, match="not a mobilenet-w0.25-64px-10 supernet: blocks.0.k3e3"):
        AngleScorer.from_states(space, s0 | {"blocks.0.k3e3.conv.0.weight": torch.zeros(1)},
                                s0)


# --- search ---------------------------------------------------------------------------------
def test_flops_limited_evolution_with_the_official_settings():
    settings = EvolutionSettings.for_space("mobilenet")
    assert (settings.population, settings.topk, settings.crossovers, settings.mutation_prob,
            settings.generations, settings.crossover_first) == (50, 10, 25, 0.1, 20, True)
    limit = Constraint(max_flops=475)
    rng = np.random.default_rng(0)
    table = rng.normal(size=(21, 7))  # a separable stand-in for the angle

    def score(archs):
        return table[np.arange(21), archs].sum(1)
    settings.generations = 5
    res = evolution_search(SPACE, score, settings=settings, constraint=limit, seed=0)
    flops = SPACE.cost(res.archs)["flops"]
    assert len(res.archs) == 300 and (flops <= 475).all()
    assert res.history[-1]["crossovers"] + res.history[-1]["mutations"] == 50
    with pytest.raises(RlnasError, match="no architecture of space mobilenet satisfies "
                                         "max_flops=100 M; the smallest has 184.2 M"):
        evolution_search(SPACE, score, settings=settings, constraint=Constraint(max_flops=100))


# --- presets and bench ----------------------------------------------------------------------
def test_presets_follow_the_spec():
    cfg = load_config("mobilenet-imagenet")
    t, s = cfg["train"], cfg["search"]
    assert cfg["space"] == "mobilenet" and cfg["labels"]["kind"] == "random"
    assert cfg["data"]["dataset"] == "imagenet" and cfg["data"]["augment"]
    assert (t["epochs"], t["batch_size"], t["lr"], t["lr_min"], t["lr_schedule"]) == (
        120, 512, 0.25, 0.0005, "linear")
    assert (t["weight_decay"], t["label_smoothing"], t["grad_clip_value"]) == (4e-5, 0.1, 5.0)
    assert (s["scorer"], s["population"], s["topk"], s["crossovers"], s["max_flops"]) == (
        "angle", 50, 10, 25, 475) and s["crossover_first"]
    rt = load_config("retrain-mobilenet-imagenet")
    t = rt["train"]
    assert rt["labels"]["kind"] == "true" and rt["model"] == {"dropout": 0.2}
    assert (t["epochs"], t["batch_size"], t["lr"], t["lr_min"], t["lr_schedule"],
            t["label_smoothing"], t["grad_clip_norm"]) == (240, 1024, 0.5, 0.0, "linear", 0.1, 5.0)


@pytest.mark.slow
def test_bench_row_at_paper_size():
    from rlnas.throughput import run_bench
    table = run_bench(["mobilenet"], device="cpu", steps=1, batch=2)
    print("\n" + table)
    assert table.count("| mobilenet |") == 3
