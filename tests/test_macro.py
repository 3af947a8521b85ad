"""NAS-Bench-Macro as a built-in space (rlnas.spaces.macro): the benchmark's network (params and
FLOPs of every key against the benchmark file), the 8-digit key notation, identity
canonicalisation, the standalone network, and the angle against an explicit construction."""
import json

import numpy as np
import pytest
import torch

from conftest import reference_variants
from rlnas.angle import VARIANTS, AngleScorer
from rlnas.errors import RlnasError
from rlnas.spaces import get_space
from rlnas.spaces.macro import OP_NAMES, STAGES

SPACE = get_space("nasbench-macro")


@pytest.fixture(scope="module")
def macro_file(shared_data):
    path = shared_data / "nasbench-macro" / "nas-bench-macro_cifar10.json"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return json.loads(path.read_text())


def test_params_and_flops_equal_the_benchmark_file_for_every_key(macro_file):
    keys = sorted(macro_file)
    assert len(keys) == 6561
    archs = np.array([SPACE.from_str(k) for k in keys])
    cost = SPACE.cost(archs)
    np.testing.assert_allclose(cost["params"] * 1e6, [macro_file[k]["params"] for k in keys],
                               rtol=0, atol=1e-3)
    np.testing.assert_allclose(cost["flops"] * 1e6, [macro_file[k]["flops"] for k in keys],
                               rtol=0, atol=1e-3)
    # the thop convention of the other spaces counts the classifier (2 in - 1) out
    thop = SPACE.cost(archs[:5], thop=True)["flops"] - cost["flops"][:5]
    np.testing.assert_allclose(thop * 1e6, 10 * 1279, atol=1e-6)


def test_canonical_keys_carry_the_same_numbers_and_count_3969_networks(macro_file):
    canon = {k: SPACE.to_str(SPACE.canonical(SPACE.from_str(k))) for k in macro_file}
    assert len(set(canon.values())) == 3969
    assert all(macro_file[k]["mean_acc"] == macro_file[c]["mean_acc"] for k, c in canon.items())


def test_canonical_moves_stride1_identities_to_the_end_of_their_stage():
    assert SPACE.to_str(SPACE.canonical(SPACE.from_str("01102120"))) == "01120120"
    # a first-of-stage identity is a conv1x1 + BN (stride 2): it stays
    assert SPACE.to_str(SPACE.canonical(SPACE.from_str("00000000"))) == "00000000"
    assert SPACE.to_str(SPACE.canonical(SPACE.from_str("20201002"))) == "20210020"
    arch = SPACE.from_str("10210021")
    assert SPACE.canonical(SPACE.canonical(arch)) == SPACE.canonical(arch)


def test_key_notation_and_op_names():
    arch = SPACE.from_str("22212220")
    assert arch == (2, 2, 2, 1, 2, 2, 2, 0) and SPACE.to_str(arch) == "22212220"
    assert SPACE.from_str(" ".join(OP_NAMES[a] for a in arch)) == arch
    for bad in ("2221222", "222122203", "22212223", "2221222x", "", 22212220):
        with pytest.raises(RlnasError):
            SPACE.from_str(bad)
    assert SPACE.num_genes == sum(STAGES) == 8 and len(SPACE.enumerate()) == 6561


def test_network_matches_the_benchmark_layout():
    net = SPACE.network(SPACE.from_str("12012010"))
    x = torch.randn(2, 3, 32, 32)
    assert net(x).shape == (2, 10)
    # stride-2 identity = conv1x1 + BN; stride-1 identity has no parameters
    assert net.blocks[2].downsample is not None and net.blocks[7].downsample is None
    assert net.blocks[1].residual and not net.blocks[0].residual
    assert sum(p.numel() for p in net.parameters()) == round(
        SPACE.cost(np.array([SPACE.from_str("12012010")]))["params"][0] * 1e6)


def _reference_parts(s0, sT, arch):
    """The arch's vector written by hand: stem conv + BN, head conv + BN + classifier weight;
    an MB op's three convs + three BNs; a stride-2 identity its conv + BN; a stride-1 identity
    eye(C)."""
    def t(state, k):
        return state[k].double().reshape(-1)

    def conv_bn(prefix, convs, bns):
        keys = [f"{prefix}{c}.weight" for c in convs] + [f"{prefix}{b}.{w}" for b in bns
                                                         for w in ("weight", "bias")]
        keys.sort(key=lambda k: int(k[len(prefix):].split(".")[0]))
        return keys
    fixed = conv_bn("stem.", [0], [1]) + conv_bn("head.", [0], [1]) + ["head.6.weight"]
    parts = [("fixed", None, t(s0, k), t(sT, k)) for k in fixed]
    for b, a in enumerate(arch):
        prefix = f"blocks.{b}.{OP_NAMES[a]}."
        if a == 0 and f"{prefix}downsample.0.weight" not in s0:
            c = SPACE.blocks[b].c_out
            v0 = vT = torch.eye(c, dtype=torch.float64).reshape(-1)
        else:
            keys = conv_bn(prefix + "downsample.", [0], [1]) if a == 0 else \
                conv_bn(prefix + "conv.", [0, 3, 6], [1, 4, 7])
            v0, vT = (torch.cat([t(s, k) for k in keys]) for s in (s0, sT))
        parts.append(((b, a), b, v0, vT))
    return parts


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_angle_variant_matches_the_explicit_reference(variant):
    torch.manual_seed(0)
    s0 = {k: v.clone() for k, v in SPACE.supernet().state_dict().items()}
    sT = {k: v + 0.3 * torch.randn_like(v) if v.is_floating_point() else v for k, v in s0.items()}
    archs = np.random.default_rng(0).integers(0, 3, (30, 8))
    fast = AngleScorer.from_states(SPACE, s0, sT, variant)(archs)
    slow = [reference_variants(_reference_parts(s0, sT, a))[variant] for a in archs]
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
