import time

import numpy as np
import pytest
import torch
import yaml

from conftest import reference_variants
from rlnas.angle import VARIANTS, AngleScorer, angle_between
from rlnas.config import PRESET_DIR, flatten
from rlnas.errors import RlnasError
from rlnas.spaces import get_space
from rlnas.spaces.darts import NONE, PATHS, genome_errors, sample_path

SPACE = get_space("darts")

# spec 7.5, in the official genotypes.py notation
RLDARTS = ("Genotype(normal=[('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('dil_conv_3x3', 0), "
           "('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('dil_conv_5x5', 3), ('dil_conv_5x5', 1), "
           "('dil_conv_3x3', 2)], normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 0), "
           "('dil_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 2), ('dil_conv_3x3', 1), "
           "('sep_conv_3x3', 3), ('max_pool_3x3', 1), ('sep_conv_5x5', 2)], "
           "reduce_concat=range(2, 6))")
RLDARTS_GENOME = (5, 4, 6, 0, 5, 4, 0, 0, 7, 0, 7, 6, 0, 0,
                  5, 6, 4, 0, 5, 0, 6, 0, 4, 0, 1, 5, 0, 0)
IMAGENET_600M = ('Genotype(normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 1), '
                 '("sep_conv_3x3", 2), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2), '
                 '("skip_connect", 0), ("sep_conv_3x3", 4)], normal_concat=[2, 3, 4, 5], '
                 'reduce=[("sep_conv_3x3", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 0), '
                 '("skip_connect", 1), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1), '
                 '("skip_connect", 0), ("sep_conv_3x3", 1)], reduce_concat=[2, 3, 4, 5])')
IMAGENET_600M_GENOME = (4, 4, 0, 3, 4, 0, 4, 4, 0, 3, 0, 0, 0, 4,
                        4, 1, 4, 3, 0, 4, 6, 0, 0, 3, 4, 0, 0, 0)
IMAGENET_FREE = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), "
                 "('sep_conv_3x3', 2), ('sep_conv_3x3', 0), ('sep_conv_5x5', 1), "
                 "('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], normal_concat=range(2, 6), "
                 "reduce=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_5x5', 0), "
                 "('sep_conv_3x3', 2), ('sep_conv_5x5', 0), ('sep_conv_5x5', 2), "
                 "('sep_conv_3x3', 2), ('sep_conv_3x3', 4)], reduce_concat=range(2, 6))")

# the official evolution_search/config.py path list (node sequences)
OFFICIAL_PATHS = [[0, 2, 3, 4, 5], [0, 2, 3, 5], [0, 2, 4, 5], [0, 2, 5], [0, 3, 4, 5], [0, 3, 5],
                  [0, 4, 5], [0, 5], [1, 2, 3, 4, 5], [1, 2, 3, 5], [1, 2, 4, 5], [1, 2, 5],
                  [1, 3, 4, 5], [1, 3, 5], [1, 4, 5], [1, 5], [0, 2, 3, 4], [0, 2, 4], [0, 3, 4],
                  [0, 4], [1, 2, 3, 4], [1, 2, 4], [1, 3, 4], [1, 4], [0, 2, 3], [0, 3],
                  [1, 2, 3], [1, 3], [0, 2], [1, 2]]




def edge_idx(j, k):
    return k + sum(range(2, j))


def random_genomes(n, seed=0):
    rng = np.random.default_rng(seed)
    return [SPACE.sample(rng) for _ in range(n)]


# --- genome and notation -------------------------------------------------------------------
def test_paths_are_the_official_30():
    assert len(PATHS) == 30 == len(OFFICIAL_PATHS)
    official = {tuple(edge_idx(p[t], p[t - 1]) for t in range(1, len(p))) for p in OFFICIAL_PATHS}
    assert set(PATHS) == official


def test_published_genotypes_parse_to_the_right_genomes():
    assert SPACE.from_str(RLDARTS) == RLDARTS_GENOME
    assert SPACE.from_str(IMAGENET_600M) == IMAGENET_600M_GENOME
    free = SPACE.from_str(IMAGENET_FREE)
    assert SPACE.is_valid(free) and NONE not in (free[0], free[1])
    # whitespace, quotes and genome text
    squashed = RLDARTS.replace(" ", "").replace("'", '"')
    assert SPACE.from_str("  " + squashed + "\n") == RLDARTS_GENOME
    assert SPACE.from_str(str(list(IMAGENET_600M_GENOME))) == IMAGENET_600M_GENOME
    assert SPACE.from_str(",".join(map(str, RLDARTS_GENOME))) == RLDARTS_GENOME
    # output notation: DARTS genotype with explicit concat lists
    s = SPACE.to_str(IMAGENET_600M_GENOME)
    assert s.startswith("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
                        "('skip_connect', 1), ('sep_conv_3x3', 2)")
    assert "normal_concat=[2, 3, 4, 5]" in s and s.endswith("reduce_concat=[2, 3, 4, 5])")


def test_round_trip_random_genomes():
    for g in random_genomes(200, seed=3):
        assert SPACE.from_str(SPACE.to_str(g)) == g


@pytest.mark.parametrize("bad", [
    "",
    "Genotype(",
    "Network(normal=[], normal_concat=[2, 3, 4, 5], reduce=[], reduce_concat=[2, 3, 4, 5])",
    RLDARTS.replace("sep_conv_5x5", "sep_conv_7x7", 1),              # unknown op
    RLDARTS.replace("('sep_conv_3x3', 1)", "('none', 1)", 1),        # none in a genotype
    RLDARTS.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)", 1),  # input out of range
    RLDARTS.replace("('sep_conv_3x3', 1), ", "", 1),                 # node with one input
    RLDARTS.replace("('sep_conv_3x3', 1)", "('sep_conv_3x3', 0)", 1),  # same input twice
    RLDARTS.replace("normal_concat=range(2, 6)", "normal_concat=[2, 3]"),
    RLDARTS.replace(", reduce_concat=range(2, 6)", ""),
    RLDARTS.replace("range(2, 6)", "__import__('os')", 1),
    "[4, 4, 0, 3]",                                                  # wrong length
    str(list(IMAGENET_600M_GENOME[:-1]) + [8]),                      # op out of range
    str([0] * 28),                                                   # no inputs
    str([4] * 28),                                                   # too many inputs
])
def test_malformed_strings_raise(bad):
    with pytest.raises(RlnasError) as err:
        SPACE.from_str(bad)
    assert "\n" not in str(err.value)


def test_repair_always_valid_and_keeps_valid_genomes():
    rng = np.random.default_rng(0)
    for _ in range(300):
        raw = tuple(int(v) for v in rng.integers(0, 8, 28))
        fixed = SPACE.repair(raw, rng)
        assert genome_errors(fixed) is None
        # only genes of nodes that were invalid change, and a kept op is never changed to another
        for a, b in zip(raw, fixed):
            assert a == b or a == NONE or b == NONE
    for g in random_genomes(100, seed=1):
        assert SPACE.repair(g, np.random.default_rng(5)) == g
    raw = tuple([0] * 14 + [5] * 14)
    assert (SPACE.repair(raw, np.random.default_rng(7))
            == SPACE.repair(raw, np.random.default_rng(7)))
    with pytest.raises(RlnasError):
        SPACE.repair((1, 2, 3), rng)


def test_mutation_and_crossover_touch_both_cells():
    rng = np.random.default_rng(0)
    parent = IMAGENET_600M_GENOME
    kids = [SPACE.mutate(parent, rng, 0.5) for _ in range(20)]
    assert all(SPACE.is_valid(k) for k in kids)
    assert any(k[14:] != parent[14:] for k in kids)
    assert any(k[:14] != parent[:14] for k in kids)
    assert set(SPACE.mutation_choices(20)) == set(range(8))
    child = SPACE.crossover(RLDARTS_GENOME, IMAGENET_600M_GENOME, rng)
    assert SPACE.is_valid(child)
    assert SPACE.enumerate() is None


def test_sampler_is_pure_and_valid():
    a = SPACE.sample_training_path(3, 17, 8)
    assert isinstance(a, np.ndarray) and a.shape == (28,)
    assert np.array_equal(a, sample_path(3, 17))
    assert not np.array_equal(a, SPACE.sample_training_path(3, 18, 8))
    many = np.stack([SPACE.sample_training_path(0, t, 8) for t in range(400)])
    assert all(SPACE.is_valid(g) for g in many)
    assert len({tuple(g) for g in many}) == 400
    # edge 2<-0 (two candidates, no none allowed): uniform over the 7 real ops after repair
    counts = np.bincount(many[:, 0], minlength=8)
    assert counts[0] == 0 and counts[1:].min() > 0.5 * len(many) / 7


# --- supernets ------------------------------------------------------------------------------
def _used_op_keys(model, x, genome):
    """Names of edge-op parameters that receive a gradient from one forward pass."""
    model.zero_grad(set_to_none=True)
    model(x, genome).sum().backward()
    return {n for n, p in model.named_parameters() if "._ops." in n and p.grad is not None}


@pytest.mark.parametrize("variant,size", [("cifar", 16), ("imagenet", 32)])
def test_supernet_runs_one_shared_path(variant, size):
    torch.manual_seed(0)
    model = SPACE.supernet(num_classes=5, variant=variant, channels=4, layers=5)
    assert model.num_search_cells == 5 and model.reduction_layers == [1, 3]
    x = torch.randn(2, 3, size, size)
    genome = IMAGENET_600M_GENOME
    out = model(x, genome)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    assert torch.equal(model(x, np.array(genome)), out)
    used = _used_op_keys(model, x, genome)
    expect = set()
    for i in range(5):
        half = genome[14:] if i in (1, 3) else genome[:14]
        for e, op in enumerate(half):
            if op != NONE:
                prefix = f"cells.{i}._ops.{e}._ops.{op}."
                expect |= {n for n, _ in model.named_parameters() if n.startswith(prefix)}
    assert used == expect  # exactly the path's ops (pools: their BN), none skipped
    with pytest.raises(RlnasError):
        model(x, genome[:14])


def test_supernet_sizes_match_spec_with_presets():
    for preset, classes, target, tol in (("darts-cifar10", 10, 2.01, 0.005),
                                         ("darts-imagenet", 1000, 25.6, 0.05)):
        cfg = yaml.safe_load(open(PRESET_DIR / f"{preset}.yaml"))
        model = SPACE.supernet(num_classes=classes, **cfg["model"])
        n = sum(p.numel() for p in model.parameters()) / 1e6
        assert abs(n - target) <= tol, (preset, n)
        assert model.num_search_cells == cfg["model"]["layers"]
    # ImageNet layout 4 N, R, 4 N, R, 4 N and the official init
    assert model.reduction_layers == [4, 9]
    bn = model.cells[3]._ops[5]._ops[2][1]
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and not bn.bias.any()
    assert not model.classifier.bias.any() and model.classifier.weight.std() < 0.02


def test_presets_have_the_nb201_preset_keys():
    ref = flatten(yaml.safe_load(open(PRESET_DIR / "nb201-cifar10.yaml")))
    ref = {k for k in ref if not k.startswith("model.")}
    for preset in ("darts-cifar10", "darts-imagenet"):
        cfg = yaml.safe_load(open(PRESET_DIR / f"{preset}.yaml"))
        keys = {k for k in flatten(cfg) if not k.startswith("model.")}
        assert keys == ref, (preset, keys ^ ref)
        assert cfg["space"] == "darts"
        assert set(cfg["model"]) == {"variant", "channels", "layers", "stem_multiplier"}
    c = yaml.safe_load(open(PRESET_DIR / "darts-cifar10.yaml"))
    i = yaml.safe_load(open(PRESET_DIR / "darts-imagenet.yaml"))
    assert (c["train"]["grad_clip_norm"], c["search"]["max_flops"]) == (5.0, None)
    assert (i["train"]["lr_schedule"], i["train"]["grad_clip_value"], i["search"]["max_flops"]) \
        == ("linear", 5.0, 600)


# --- angle against the explicit, official-style construction -------------------------------
def reference_labelled(state, genome, reduction_layers, imagenet):
    """Slow reference: the official get_arch_vector, path by path (dil_conv BN bias fixed), as
    (label, cell, tensor) parts: label "fixed" or (cell type, edge, op); [] if no valid path."""
    def t(key):
        return state[key].reshape(-1).double()

    cells = sorted({int(k.split(".")[1]) for k in state if k.startswith("cells.")})
    vec, extra = [], []
    if imagenet:
        extra += [t(k) for k in ("stem0.0.weight", "stem0.1.weight", "stem0.1.bias",
                                 "stem0.3.weight", "stem0.4.weight", "stem0.4.bias",
                                 "stem1.1.weight", "stem1.2.weight", "stem1.2.bias")]
    else:
        extra += [t("stem.0.weight"), t("stem.1.weight"), t("stem.1.bias")]
    for i in cells:
        cand = genome[14:] if i in reduction_layers else genome[:14]
        p0 = f"cells.{i}.preprocess0."
        if p0 + "conv_1.weight" in state:
            extra += [t(p0 + "conv_1.weight"), t(p0 + "conv_2.weight"), t(p0 + "bn.weight"),
                      t(p0 + "bn.bias")]
        else:
            extra += [t(p0 + "op.1.weight"), t(p0 + "op.2.weight"), t(p0 + "op.2.bias")]
        p1 = f"cells.{i}.preprocess1."
        extra += [t(p1 + "op.1.weight"), t(p1 + "op.2.weight"), t(p1 + "op.2.bias")]
        for path in OFFICIAL_PATHS:
            parts = []
            for idx in range(1, len(path)):
                e = edge_idx(path[idx], path[idx - 1])
                op = cand[e]
                pre = f"cells.{i}._ops.{e}._ops.{op}."
                if op == 0:
                    parts = []
                    break
                start = len(parts)
                if op in (1, 2):
                    c = state[f"cells.{i}._ops.{e}._ops.4.op.1.weight"].shape[0]
                    parts += [torch.ones(c, 3, 3, dtype=torch.float64).reshape(-1) / 9.0,
                              t(pre + "1.weight"), t(pre + "1.bias")]
                elif op == 3:
                    if i in reduction_layers and path[idx - 1] < 2:
                        parts += [t(pre + "conv_1.weight"), t(pre + "conv_2.weight"),
                                  t(pre + "bn.weight"), t(pre + "bn.bias")]
                    else:
                        c = state[f"cells.{i}._ops.{e}._ops.4.op.6.weight"].shape[0]
                        parts.append(torch.eye(c, dtype=torch.float64).reshape(-1))
                elif op in (4, 5):
                    parts += [t(pre + f"op.{m}.weight") for m in (1, 2, 5, 6)]
                    parts += [t(pre + "op.3.weight"), t(pre + "op.3.bias"),
                              t(pre + "op.7.weight"), t(pre + "op.7.bias")]
                else:
                    parts += [t(pre + "op.1.weight"), t(pre + "op.2.weight"),
                              t(pre + "op.3.weight"), t(pre + "op.3.bias")]
                label = (int(i in reduction_layers), e, op)
                parts[start:] = [(label, i, torch.cat(parts[start:]))]
            vec += parts
    if not vec:
        return []
    extra.append(t("classifier.weight"))
    if imagenet:
        extra.append(t("classifier.bias"))
    return vec + [("fixed", None, x) for x in extra]


def reference_vector(state, genome, reduction_layers, imagenet):
    parts = reference_labelled(state, genome, reduction_layers, imagenet)
    return torch.cat([p[2] for p in parts]) if parts else torch.zeros(0, dtype=torch.float64)


def reference_parts(state0, stateT, genome, reduction_layers, imagenet):
    return [(label, c, x0, xT) for (label, c, x0), (_, _, xT) in zip(
        reference_labelled(state0, genome, reduction_layers, imagenet),
        reference_labelled(stateT, genome, reduction_layers, imagenet))]


def _random_pair(variant, seed=0):
    torch.manual_seed(seed)
    model = SPACE.supernet(num_classes=5, variant=variant, channels=4, layers=5)
    state0 = {k: v.clone() for k, v in model.state_dict().items()}
    stateT = {k: (v + 0.3 * torch.randn_like(v) if v.is_floating_point() else v)
              for k, v in state0.items()}
    return model, state0, stateT


@pytest.mark.parametrize("variant", ["cifar", "imagenet"])
def test_angle_decomposition_matches_reference(variant):
    model, state0, stateT = _random_pair(variant)
    scorer = AngleScorer.from_states(SPACE, state0, stateT)
    assert len(scorer.names) == 1 + 2 * 14 * 7
    archs = random_genomes(15, seed=2) + [
        RLDARTS_GENOME, IMAGENET_600M_GENOME, tuple([4, 4, 3, 3, 0, 3, 3, 0, 0, 2, 1, 0, 0, 0] * 2)]
    fast = scorer(np.array(archs))
    slow = []
    for a in archs:
        v0 = reference_vector(state0, a, model.reduction_layers, variant == "imagenet")
        vT = reference_vector(stateT, a, model.reduction_layers, variant == "imagenet")
        slow.append(angle_between(v0, vT))
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    assert (fast > 0).all()
    # an (unrepaired) all-none genome has an empty vector: angle 0 by convention
    assert scorer(np.zeros((1, 28), dtype=np.int64))[0] == 0.0


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_angle_variant_matches_its_explicit_reference(variant):
    model, state0, stateT = _random_pair("cifar", seed=3)
    scorer = AngleScorer.from_states(SPACE, state0, stateT, variant)
    archs = random_genomes(12, seed=5) + [RLDARTS_GENOME, IMAGENET_600M_GENOME]
    fast = scorer(np.array(archs))
    slow = [reference_variants(reference_parts(state0, stateT, a, model.reduction_layers,
                                               False))[variant] for a in archs]
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    assert (fast > 0).all()


def test_angle_of_identical_weights_is_zero_and_scoring_is_fast():
    _, state0, _ = _random_pair("cifar", seed=1)
    scorer = AngleScorer.from_states(SPACE, state0, state0)
    archs = np.array(random_genomes(1000, seed=4))
    t0 = time.perf_counter()
    angles = scorer(archs)
    dt = time.perf_counter() - t0
    print(f"\nscored {len(archs)} DARTS genomes in {dt * 1e3:.1f} ms")
    assert angles.shape == (1000,)
    assert np.abs(angles).max() < 1e-6


def test_angle_rejects_other_checkpoints():
    _, state0, _ = _random_pair("cifar")
    nb = get_space("nb201").supernet(channels=4, cells=1, num_classes=5).state_dict()
    with pytest.raises(RlnasError):
        AngleScorer.from_states(SPACE, nb, nb)


# --- cost -----------------------------------------------------------------------------------
def test_cost_reproduces_the_verified_table3_values():
    archs = np.array([RLDARTS_GENOME, RLDARTS_GENOME, IMAGENET_600M_GENOME])
    c48 = SPACE.cost(archs[[0, 2]], network="imagenet", channels=48, layers=14,
                     num_classes=1000, image_size=224)
    c46 = SPACE.cost(archs[[1]], channels=46)
    params = [c48["params"][0], c46["params"][0], c48["params"][1]]
    flops = [c48["flops"][0], c46["flops"][0], c48["flops"][1]]
    np.testing.assert_allclose(params, [5.675, 5.258, 5.464], atol=1e-3)
    assert [round(f, 1) for f in flops] == [629.1, 580.6, 596.8]
    # the official 600M limit counts the same path in the ImageNet supernet (pool BNs: no FLOPs)
    sup = SPACE.cost(archs, network="supernet-imagenet")
    np.testing.assert_allclose(sup["flops"][[0, 2]], c48["flops"], rtol=0, atol=1e-9)
    assert (sup["flops"][2] <= 600) and (SPACE.cost(archs[[0]])["flops"][0] > 600)
    assert SPACE.cost_defaults({"num_classes": 10, "image_size": 32}) == {
        "network": "imagenet", "channels": 48, "layers": 14, "num_classes": 1000,
        "image_size": 224}
    with pytest.raises(RlnasError):
        SPACE.cost(archs, network="resnet")


def _count(model, x, *args):
    """Reference FLOPs as the official thop: Conv2d out_elems * k*k*C_in/groups (+bias),
    Linear (2*in - 1) * out; and the parameters of the modules that ran."""
    flops, ran = [0], set()

    def conv_hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
        flops[0] += out.numel() * (k + (m.bias is not None))
        ran.add(m)

    def lin_hook(m, inp, out):
        flops[0] += out.numel() * (2 * m.in_features - 1)
        ran.add(m)

    def any_hook(m, inp, out):
        ran.add(m)

    hooks = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook))
        elif not list(m.children()):
            hooks.append(m.register_forward_hook(any_hook))
    with torch.no_grad():
        model(x, *args)
    for h in hooks:
        h.remove()
    params = sum(p.numel() for m in ran for p in m.parameters(recurse=False))
    return flops[0], params


@pytest.mark.parametrize("variant,cfg,size", [
    ("imagenet", dict(channels=8, layers=6, num_classes=7), 64),
    ("cifar", dict(channels=6, layers=5, num_classes=10), 32)])
def test_cost_matches_built_network(variant, cfg, size):
    x = torch.zeros(1, 3, size, size)
    for g in random_genomes(2, seed=11) + [RLDARTS_GENOME]:
        net = SPACE.network(g, variant=variant, **cfg).eval()
        cost = SPACE.cost(np.array([g]), network=variant, image_size=size, **cfg)
        flops, _ = _count(net, x)
        assert cost["params"][0] * 1e6 == pytest.approx(sum(p.numel() for p in net.parameters()))
        assert cost["flops"][0] * 1e6 == pytest.approx(flops)


def test_cost_of_supernet_path_and_auxiliary_head():
    g = IMAGENET_600M_GENOME
    sup = SPACE.supernet(num_classes=10, variant="cifar", channels=4, layers=5).eval()
    flops, params = _count(sup, torch.zeros(1, 3, 32, 32), g)
    cost = SPACE.cost(np.array([g]), network="supernet-cifar", channels=4, layers=5,
                      num_classes=10, image_size=32)
    assert cost["params"][0] * 1e6 == pytest.approx(params)  # pool BN counted as a parameter
    assert cost["flops"][0] * 1e6 == pytest.approx(flops)
    net = SPACE.network(g, variant="cifar", channels=6, layers=5, auxiliary=True).train()
    cost = SPACE.cost(np.array([g]), network="cifar", channels=6, layers=5, auxiliary=True)
    flops, _ = _count(net, torch.zeros(2, 3, 32, 32))
    assert cost["params"][0] * 1e6 == pytest.approx(sum(p.numel() for p in net.parameters()))
    assert cost["flops"][0] * 1e6 == pytest.approx(flops / 2)


def test_standalone_network_outputs_aux_and_drop_path():
    torch.manual_seed(0)
    net = SPACE.network(RLDARTS_GENOME, variant="cifar", channels=6, layers=5, num_classes=3,
                        auxiliary=True, drop_path=0.2)
    x = torch.randn(4, 3, 32, 32)
    logits, aux = net.train()(x)
    assert logits.shape == aux.shape == (4, 3)
    assert net.drop_path_prob == 0.2
    net.drop_path_prob = 0.0
    out = net.eval()(x)
    assert isinstance(out, torch.Tensor) and out.shape == (4, 3)
    assert net.reduction_layers == [1, 3]
    inet = SPACE.network(IMAGENET_600M_GENOME, variant="imagenet", channels=4, layers=5,
                         num_classes=3)
    assert inet.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    with pytest.raises(RlnasError):
        SPACE.network(RLDARTS_GENOME[:14])
