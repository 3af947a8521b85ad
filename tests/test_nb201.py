import csv

import numpy as np
import pytest
import torch

from conftest import reference_variants
from rlnas.angle import VARIANTS, AngleScorer, angle_between
from rlnas.errors import RlnasError
from rlnas.spaces import get_space
from rlnas.spaces.nb201 import NONE, fixed_keys, sample_urs, search_cell_ids

SPACE = get_space("nb201")
EXAMPLE = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
           "|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")


def test_enumerate_and_strings_roundtrip():
    archs = SPACE.enumerate()
    assert archs.shape == (15625, 6)
    assert len({tuple(a) for a in archs}) == 15625
    strs = [SPACE.to_str(tuple(a)) for a in archs]
    assert len(set(strs)) == 15625
    assert all(SPACE.from_str(s) == tuple(a) for s, a in zip(strs, archs))
    assert SPACE.from_str(EXAMPLE) == (3, 3, 3, 1, 3, 3)


@pytest.mark.parametrize("bad", [
    "", "|nor_conv_3x3~0|",
    "|conv~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|",
    "|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|none~1|none~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|none~3|"])
def test_malformed_strings_raise(bad):
    with pytest.raises(RlnasError):
        SPACE.from_str(bad)


def test_bad_genome_raises():
    with pytest.raises(RlnasError):
        SPACE.to_str((0, 1, 2, 3, 4, 5))
    with pytest.raises(RlnasError):
        SPACE.network((1, 2))


def test_cost_matches_nasbench201_table(nb201_table_path):
    with open(nb201_table_path) as f:
        rows = list(csv.DictReader(f))
    archs = np.array([SPACE.from_str(r["arch"]) for r in rows])
    cost = SPACE.cost(archs)
    params = np.array([float(r["params_m"]) for r in rows])
    flops = np.array([float(r["flops_m"]) for r in rows])
    assert len(rows) == 15625
    np.testing.assert_allclose(cost["params"], params, atol=1e-6)
    np.testing.assert_allclose(cost["flops"], flops, atol=1e-5)


def _count_flops(model, size):
    """Reference FLOPs: multiply-adds of every Conv2d and Linear (+bias) via forward hooks."""
    total = [0]

    def conv_hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
        total[0] += out.numel() * (k + (m.bias is not None))

    def lin_hook(m, inp, out):
        total[0] += out.numel() * (m.in_features + (m.bias is not None))

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(conv_hook)
        elif isinstance(m, torch.nn.Linear):
            m.register_forward_hook(lin_hook)
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    return total[0]


@pytest.mark.parametrize("cfg", [dict(channels=4, cells=1, num_classes=10, image_size=16),
                                 dict(channels=8, cells=2, num_classes=7, image_size=32)])
def test_cost_matches_built_network(cfg):
    rng = np.random.default_rng(0)
    size = cfg.pop("image_size")
    for _ in range(5):
        arch = SPACE.sample(rng)
        net = SPACE.network(arch, **cfg)
        cost = SPACE.cost(np.array([arch]), image_size=size, **cfg)
        assert cost["params"][0] * 1e6 == pytest.approx(sum(p.numel() for p in net.parameters()))
        assert cost["flops"][0] * 1e6 == pytest.approx(_count_flops(net, size))


def test_sampler_is_pure_and_never_disconnects_a_node():
    a = sample_urs(3, 17, 15)
    assert np.array_equal(a, sample_urs(3, 17, 15))
    assert not np.array_equal(a, sample_urs(3, 18, 15))
    many = np.concatenate([sample_urs(0, t, 15) for t in range(200)])
    assert (many[:, 0] != NONE).all()
    assert ((many[:, 1:3] != NONE).any(1)).all()
    assert ((many[:, 3:6] != NONE).any(1)).all()
    # edge 3<-2 is uniform over 5 ops up to the redraw of all-none triples
    counts = np.bincount(many[:, 5], minlength=5)
    assert counts.min() > 0.15 * len(many)


def test_supernet_path_equals_standalone_network():
    """A supernet path computes the same function as the standalone net with the same weights
    (cell BNs are non-affine in the supernet, so compare in train mode with fresh stats)."""
    torch.manual_seed(0)
    arch = (3, 0, 4, 1, 2, 0)
    sup = SPACE.supernet(channels=4, cells=1, num_classes=5)
    net = SPACE.network(arch, channels=4, cells=1, num_classes=5)
    sd = sup.state_dict()
    net_sd = net.state_dict()
    for k in net_sd:
        if k in sd:
            net_sd[k] = sd[k]
    net.load_state_dict(net_sd)  # cell BN affine params stay at 1/0 = identity
    x = torch.randn(4, 3, 16, 16)
    torch.testing.assert_close(sup(x, arch), net(x))
    per_cell = np.tile(np.array(arch), (3, 1))
    torch.testing.assert_close(sup(x, per_cell), sup(x, arch))


def test_disconnected_cell_outputs_zero_features():
    net = SPACE.network((0, 0, 0, 0, 0, 0), channels=4, cells=1, num_classes=3)
    out = net(torch.randn(2, 3, 8, 8))
    assert out.shape == (2, 3) and torch.isfinite(out).all()


# --- angle against the explicit, official-style construction -------------------------------
def reference_parts(state0, stateT, arch_str):
    """Slow reference: v_a path by path as weight_angle.py builds it, as (label, cell, v0, vT)
    parts (label "fixed" or (edge, op)); no parts when every path holds `none`."""
    nodes = [[tuple(x.split("~")) for x in g.split("|") if x] for g in arch_str.split("+")]
    op_of = {(i + 1, int(j)): op for i, node in enumerate(nodes) for op, j in node}
    head, cells, tail = [], [], []

    def part(key, label="fixed", cell=None):
        return (label, cell, state0[key], stateT[key])

    fixed = fixed_keys(state0)
    head = [part(k) for k in fixed[:-4]]
    tail = [part(k) for k in fixed[-4:]]
    valid = 0
    for path in ([0, 3], [0, 2, 3], [0, 1, 2, 3], [0, 1, 3]):
        ops = [op_of[(path[t], path[t - 1])] for t in range(1, len(path))]
        if "none" in ops:
            continue
        valid += 1
        for cell in search_cell_ids(state0):
            for t in range(1, len(path)):
                e = {(1, 0): 0, (2, 0): 1, (2, 1): 2, (3, 0): 3, (3, 1): 4, (3, 2): 5}[
                    (path[t], path[t - 1])]
                op = ops[t - 1]
                if op == "skip_connect":
                    continue
                if op == "avg_pool_3x3":
                    c = state0[f"cells.{cell}.edges.{e}.conv3x3.1.weight"].shape[0]
                    const = torch.ones(c * 9, dtype=torch.float64) / 9
                    cells.append(((e, op), cell, const, const.clone()))
                else:
                    name = "conv1x1" if op == "nor_conv_1x1" else "conv3x3"
                    cells.append(part(f"cells.{cell}.edges.{e}.{name}.1.weight", (e, op), cell))
    return head + cells + tail if valid else []


def reference_angle(state0, stateT, arch_str):
    parts = reference_parts(state0, stateT, arch_str)
    if not parts:
        return 0.0
    return angle_between(torch.cat([p[2].reshape(-1).double() for p in parts]),
                         torch.cat([p[3].reshape(-1).double() for p in parts]))


def _random_pair(seed, channels=4, cells=2):
    torch.manual_seed(seed)
    sup0 = SPACE.supernet(channels=channels, cells=cells, num_classes=5)
    state0 = {k: v.clone() for k, v in sup0.state_dict().items()}
    stateT = {k: (v + 0.3 * torch.randn_like(v.float()).to(v.dtype) if v.is_floating_point()
                  else v) for k, v in state0.items()}
    # BN affine weights also move; BN of cells is non-affine and has no weight
    return state0, stateT


def test_angle_decomposition_matches_reference():
    state0, stateT = _random_pair(0)
    scorer = AngleScorer.from_states(SPACE, state0, stateT)
    rng = np.random.default_rng(1)
    archs = [SPACE.sample(rng) for _ in range(60)]
    archs += [(0, 0, 0, 0, 0, 0), (1, 1, 1, 1, 1, 1), (4, 4, 4, 4, 4, 4), (0, 3, 0, 3, 0, 3),
              (3, 0, 0, 0, 3, 0), (1, 0, 0, 0, 0, 0)]
    fast = scorer(np.array(archs))
    slow = [reference_angle(state0, stateT, SPACE.to_str(a)) for a in archs]
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    assert fast[60] == 0.0  # all-none
    assert fast[-1] == 0.0  # input disconnected from output
    assert fast[-2] > 0


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_angle_variant_matches_its_explicit_reference(variant):
    state0, stateT = _random_pair(2)
    scorer = AngleScorer.from_states(SPACE, state0, stateT, variant)
    rng = np.random.default_rng(3)
    archs = [SPACE.sample(rng) for _ in range(40)] + [
        (0, 0, 0, 0, 0, 0), (1, 1, 1, 1, 1, 1), (4, 4, 4, 4, 4, 4), (3, 3, 3, 3, 3, 3),
        (3, 0, 0, 0, 3, 0), (1, 0, 0, 0, 0, 0), (1, 4, 2, 1, 3, 1)]
    fast = scorer(np.array(archs))
    slow = [reference_variants(reference_parts(state0, stateT, SPACE.to_str(a)))[variant]
            for a in archs]
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    assert fast[40] == 0.0  # all none: no valid path
    assert (fast[41] == 0.0) == (variant != "angle")  # skips only: just the fixed part


def test_piece_angle_variants_see_through_the_fixed_part():
    """angle_mean / angle_sum: a pool adds a piece that does not move (lowers the mean), a
    conv one that does; the paper's angle can rank them the other way round."""
    state0, stateT = _random_pair(4)
    conv = (3, 1, 1, 1, 1, 1)
    pool = (4, 1, 1, 1, 1, 1)
    for v in ("angle_mean", "angle_sum", "angle_cell"):
        s = AngleScorer.from_states(SPACE, state0, stateT, v)(np.array([conv, pool]))
        assert s[0] > 0 and s[1] == 0.0, v


def test_angle_refuses_diverged_weights():
    state0, stateT = _random_pair(0)
    stateT = dict(stateT, **{"classifier.weight": stateT["classifier.weight"] * float("nan")})
    with pytest.raises(RlnasError, match="non-finite"):
        AngleScorer.from_states(SPACE, state0, stateT)
    with pytest.raises(RlnasError, match="unknown angle variant"):
        AngleScorer.from_states(SPACE, state0, state0, "angle_max")


def test_angle_of_identical_weights_is_zero_and_all_cells_scored_fast():
    state0, _ = _random_pair(1)
    scorer = AngleScorer.from_states(SPACE, state0, state0)
    angles = scorer(SPACE.enumerate())
    assert angles.shape == (15625,)
    assert np.abs(angles).max() < 1e-6


def test_angle_rejects_mismatched_states():
    s0, _ = _random_pair(0)
    s1, _ = _random_pair(0, channels=8)
    with pytest.raises(RlnasError):
        AngleScorer.from_states(SPACE, s0, {k: v for k, v in s0.items() if "classifier" not in k})
    del s1
