"""The choice-block API (rlnas.spaces.choice): declaration checks, genome and notation, path
sampling, supernet and network, measured cost against a thop-style hook count, the decomposed
angle against an explicit concatenation, limits, `package.module:ATTRIBUTE` spaces, the
crossover-first evolution order, and the worked example (examples/my_space.py) end to end."""
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from conftest import reference_variants, write_npz
from rlnas.angle import VARIANTS, AngleScorer
from rlnas.config import load_config
from rlnas.errors import RlnasError
from rlnas.searchers import Constraint, EvolutionSettings, evolution_search, random_search
from rlnas.spaces import get_space
from rlnas.spaces.base import SearchSpace
from rlnas.spaces.choice import Choice, ChoiceSpace, Identity, Op, _measure, angle_tensors, skip

ROOT = Path(__file__).resolve().parents[1]


def conv_op(k, name=None):
    return Op(name or f"conv{k}", lambda c_in, c_out, stride, k=k: nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()))


class Pool(nn.Module):
    """A parameter-free op with a constant angle surrogate (NB201-style 1/9 kernel)."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.channels, self.pool = c_out, nn.AvgPool2d(3, stride, 1)

    def forward(self, x):
        return self.pool(x)


POOL = Op("pool", Pool, angle=lambda m: [torch.full((m.channels, 3, 3), 1 / 9,
                                                    dtype=torch.float64)])


def stem():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())


def head(num_classes, dropout):
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                         nn.Linear(8, num_classes))


def tiny_space(blocks=None, **kw):
    blocks = blocks if blocks is not None else [
        Choice([conv_op(3), conv_op(1)], 8, stride=2),
        Choice([conv_op(3), conv_op(1), skip(), POOL], 8),
        Choice([conv_op(5), skip(code="-1")], 8)]
    return ChoiceSpace("tiny", stem=kw.pop("stem", stem), blocks=blocks,
                       head=kw.pop("head", head), input_size=kw.pop("input_size", 8),
                       num_classes=kw.pop("num_classes", 3), **kw)


SPACE = tiny_space()


# --- declaration ----------------------------------------------------------------------------
@pytest.mark.parametrize("blocks, message", [
    ([], "at least one choice block"),
    ([Choice([], 8)], "block 0 has no candidate ops"),
    ([Choice([conv_op(3), conv_op(5, "conv3")], 8)], "duplicate op names: conv3"),
    ([Choice([conv_op(3), Op("b", conv_op(1).make, code="conv3")], 8)], "duplicate op codes"),
    ([Choice([conv_op(3), skip()], 8)], "block 0 op 'skip': an identity needs a block that "
                                        "keeps its shape, but this one maps 4 -> 8 channels"),
    ([Choice([conv_op(3)], 4), Choice([conv_op(3), skip()], 4, stride=2)], "stride 2"),
    ([Choice([conv_op(3), Op("pool", Pool)], 8, stride=2)],
     "block 0 op 'pool' outputs shape (1, 4, 4, 4), but the block declares 8 channels"),
    ([Choice([conv_op(3), Op("c1", lambda c_in, c_out, stride: nn.Conv2d(c_in, c_out, 1))], 8,
             stride=2)], "block 0 op 'c1' outputs shape (1, 8, 8, 8), but op 'conv3' outputs "
                         "(1, 8, 4, 4)"),
    ([Choice([conv_op(3)], 6)], "head: "),  # the classifier takes 8 features, gets 6
    ([Choice([Op("pop", conv_op(3).make)], 8)], "not an nn.ModuleDict attribute"),
    ([Choice([Op("a", conv_op(3).make, code="x y")], 8)], "without spaces"),
    ([Choice([conv_op(3)], 0)], "c_out must be a positive integer"),
    ([Choice([Op("bad", conv_op(3).make, angle=lambda m: ["0.bias"])], 8)],
     "its angle rule names '0.bias', which it does not have"),
    ([Choice([Op("free", lambda ci, co, s: nn.Conv2d(ci, co, 1), angle=lambda m: [m.weight])],
             8)], "concrete constant tensors"),
])
def test_bad_declarations_fail_when_built_with_one_line(blocks, message):
    with pytest.raises(RlnasError) as err:
        tiny_space(blocks)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_more_bad_declarations():
    with pytest.raises(RlnasError, match="head must be a factory"):
        tiny_space(head=nn.Linear(8, 3))
    with pytest.raises(RlnasError, match=r"head outputs shape \(1, 128\), expected \(1, 3\)"):
        tiny_space(head=lambda num_classes, dropout: nn.Flatten())
    with pytest.raises(RlnasError, match="block 0 op 'odd'.*takes 2 positional"):
        tiny_space([Choice([Op("odd", lambda c_in, c_out: nn.Identity())], 8)])

    class Scaled(nn.Module):  # parameters the default rule cannot see
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(c_out, 1, 1))

        def forward(self, x):
            return torch.cat([x, x], 1) * self.scale
    with pytest.raises(RlnasError, match="default angle rule selects none"):
        tiny_space([Choice([Op("scaled", Scaled)], 8)])
    ok = tiny_space([Choice([Op("scaled", Scaled, angle=lambda m: ["scale"])], 8)])
    assert ok.piece_names() == ["fixed", "block0:scaled"]


def test_identity_needs_equal_shapes():
    assert Identity(4, 4, 1)(torch.ones(1)).item() == 1
    with pytest.raises(RlnasError, match="4 -> 8 channels with stride 1"):
        Identity(4, 8, 1)


# --- genome, notation, sampling ---------------------------------------------------------------
def test_genome_notation_and_enumeration():
    assert SPACE.num_genes == 3 and list(SPACE.num_ops) == [2, 4, 2] and SPACE.c_in == [4, 8, 8]
    archs = SPACE.enumerate()
    assert archs.shape == (16, 3) and len({tuple(a) for a in archs}) == 16
    for a in archs:
        assert SPACE.from_str(SPACE.to_str(a)) == tuple(a)
    assert SPACE.to_str((1, 2, 1)) == "conv1 skip -1"
    # names are accepted where a code differs; brackets and commas too
    assert SPACE.from_str("[conv3, pool, skip]") == (0, 3, 1)
    for bad, why in [("conv3 conv3", "expected 3 ops separated by spaces, got 2"),
                     ("skip conv3 conv5",
                      "block 0 of tiny has no op 'skip'; choices: conv3, conv1"),
                     (3, "must be text")]:
        with pytest.raises(RlnasError, match=why):
            SPACE.from_str(bad)
    with pytest.raises(RlnasError, match="not a tiny arch"):
        SPACE.to_str((2, 0, 0))
    with pytest.raises(RlnasError, match=r"not a tiny arch: gene 1 is 4, its choices are \["):
        SPACE.cost(np.array([[0, 4, 0]]))
    big = tiny_space([Choice([conv_op(3), conv_op(1), conv_op(5)], 8)] * 11)  # 3^11 > 100,000
    assert big.enumerate() is None


def test_training_path_is_a_pure_uniform_function_of_seed_and_step():
    paths = np.array([SPACE.sample_training_path(7, s, 0) for s in range(4000)])
    again = np.array([SPACE.sample_training_path(7, s, 0) for s in range(4000)])
    assert (paths == again).all() and not (paths == SPACE.sample_training_path(8, 0))[:50].all()
    for b, n in enumerate(SPACE.num_ops):
        counts = np.bincount(paths[:, b], minlength=n)
        assert len(counts) == n and abs(counts / 4000 - 1 / n).max() < 0.03


# --- models and cost --------------------------------------------------------------------------
def thop_count(net, size):
    """Reference FLOPs, the official thop way: forward hooks, Conv2d output elements x
    (C_in / groups) x k x k, Linear (2 in - 1) x out."""
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            total[0] += (out.numel() * m.in_channels // m.groups * m.kernel_size[0]
                         * m.kernel_size[1])
        elif isinstance(m, nn.Linear):
            total[0] += (2 * m.in_features - 1) * out.numel()
    handles = [m.register_forward_hook(hook) for m in net.modules()]
    with torch.no_grad():
        net.eval()(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return total[0]


def test_supernet_network_and_cost_agree_with_the_modules():
    torch.manual_seed(0)
    net = SPACE.supernet(num_classes=5)
    assert net.num_search_cells == 3
    x = torch.randn(2, 3, 8, 8)
    for a in SPACE.enumerate():
        assert net(x, a).shape == (2, 5)
    with pytest.raises(RlnasError, match="has 3 ops, got 2"):
        net(x, (0, 0))
    archs = SPACE.enumerate()
    cost = SPACE.cost(archs)
    for a, p, f in zip(archs, cost["params"], cost["flops"]):
        sub = SPACE.network(a, dropout=0.3)
        assert sub(x).shape == (2, 3)
        assert p == pytest.approx(sum(t.numel() for t in sub.parameters()) / 1e6, abs=1e-12)
        assert f == pytest.approx(thop_count(sub, 8) / 1e6, abs=1e-12)
    # another input size / class count is measured on demand
    c16 = SPACE.cost(archs[:3], input_size=16, num_classes=7)
    assert c16["flops"][1] == pytest.approx(thop_count(SPACE.network(archs[1], 7), 16) / 1e6)
    lo, hi = SPACE.cost_bounds()["flops"]
    assert (lo, hi) == (pytest.approx(cost["flops"].min()), pytest.approx(cost["flops"].max()))
    with pytest.raises(RlnasError, match="takes no model option width"):
        SPACE.supernet(width=2)
    with pytest.raises(RlnasError, match="known: num_classes, dropout"):
        SPACE.network((0, 0, 0), channels=3)


class BatchedMatmul(nn.Module):
    def forward(self, x):
        return torch.bmm(x, x.transpose(1, 2))


@pytest.mark.parametrize("module, shape, flops", [
    (nn.Conv2d(4, 6, 3, stride=2, padding=1), (1, 4, 8, 8), 6 * 4 * 4 * 4 * 9),  # bias free
    (nn.Conv2d(6, 6, 5, padding=2, groups=6), (1, 6, 4, 4), 6 * 16 * 25),       # depthwise
    (nn.ConvTranspose2d(4, 6, 2, stride=2), (1, 4, 3, 3), 4 * 9 * 6 * 4),       # per input
    (nn.Linear(10, 7), (3, 10), 3 * (2 * 10 - 1) * 7),                          # thop's rule
    (nn.Linear(10, 7, bias=False), (3, 10), 3 * (2 * 10 - 1) * 7),
    (nn.Sequential(nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1)), (1, 4, 8, 8), 0),
    (BatchedMatmul(), (2, 5, 3), 2 * 5 * 3 * 5),                                 # multiply-adds
])
def test_flop_conventions(module, shape, flops):
    with torch.device("meta"):
        params, counted, y = _measure(module, torch.zeros(shape), "op")
    assert counted == flops and params == sum(p.numel() for p in module.parameters())


def test_stem_given_as_a_module_is_copied_and_reinitialised():
    shared = stem()
    space = tiny_space(stem=shared)
    torch.manual_seed(1)
    a = space.network((0, 0, 0))
    torch.manual_seed(1)
    b = space.network((0, 0, 0))
    assert a.stem is not shared and torch.equal(a.stem[0].weight, b.stem[0].weight)
    assert not torch.equal(a.stem[0].weight, shared[0].weight)


# --- angle ----------------------------------------------------------------------------------
def reference_parts(space, s0, sT, arch):
    """The arch's vector written out by hand, block by block, from the state dicts: stem conv +
    BN w/b and the classifier weight (default rule: no linear bias), conv ops' conv weight + BN
    w/b, skip eye(8), pool a constant 1/9 kernel of shape (8, 3, 3)."""
    def t(state, k):
        return state[k].double().reshape(-1)
    fixed = ["stem.0.weight", "stem.1.weight", "stem.1.bias", "head.3.weight"]
    parts = [("fixed", None, t(s0, k), t(sT, k)) for k in fixed]
    for b, a in enumerate(arch):
        name = space.blocks[b].ops[a].name
        if name == "skip":
            v0 = vT = torch.eye(8, dtype=torch.float64).reshape(-1)
        elif name == "pool":
            v0 = vT = torch.full((72,), 1 / 9, dtype=torch.float64)
        else:
            keys = [f"blocks.{b}.{name}.{k}" for k in ("0.weight", "1.weight", "1.bias")]
            v0, vT = (torch.cat([t(s, k) for k in keys]) for s in (s0, sT))
        parts.append(((b, name), b, v0, vT))
    return parts


def random_states(space, seed=0, **kw):
    torch.manual_seed(seed)
    s0 = {k: v.clone() for k, v in space.supernet(**kw).state_dict().items()}
    sT = {k: v + 0.5 * torch.randn_like(v) if v.is_floating_point() else v for k, v in s0.items()}
    return s0, sT


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_angle_variant_matches_the_explicit_reference(variant):
    s0, sT = random_states(SPACE)
    archs = SPACE.enumerate()
    fast = AngleScorer.from_states(SPACE, s0, sT, variant)(archs)
    slow = [reference_variants(reference_parts(SPACE, s0, sT, a))[variant] for a in archs]
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    assert len(set(np.round(fast, 9))) > 8


@pytest.mark.parametrize("variant", ["distance", "distance_sum"])
def test_distances_stay_exact_when_weights_barely_move(variant):
    # the distance comes from n0 + nT - 2 <u0, uT>: cancellation must not swamp a movement of
    # 1e-5 of the weights (a short, low-rate training)
    s0, _ = random_states(SPACE)
    torch.manual_seed(1)
    sT = {k: v + 1e-5 * v.abs().mean() * torch.randn_like(v) if v.is_floating_point() else v
          for k, v in s0.items()}
    archs = SPACE.enumerate()[:200]
    fast = AngleScorer.from_states(SPACE, s0, sT, variant)(archs)
    slow = [reference_variants(reference_parts(SPACE, s0, sT, a))[variant] for a in archs]
    np.testing.assert_allclose(fast, slow, rtol=1e-6)


def test_angle_rejects_other_checkpoints():
    s0, _ = random_states(SPACE)
    with pytest.raises(RlnasError, match="missing tensor"):
        SPACE.angle_pieces({k: v for k, v in s0.items() if "pool" not in k and "conv5" not in k},
                           s0)
    wide = tiny_space(stem=lambda: nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False),
                                                 nn.BatchNorm2d(6), nn.ReLU()))
    w0, _ = random_states(wide)
    with pytest.raises(RlnasError, match=r"stem.0.weight has shape \(6, 3, 3, 3\), "
                                         r"the space declares \(4, 3, 3, 3\)"):
        SPACE.angle_pieces(w0, w0)
    assert angle_tensors(nn.Sequential(nn.Conv2d(1, 1, 1), nn.LayerNorm(3, bias=False))) == \
        ["0.weight", "1.weight"]


# --- limits and evolution -------------------------------------------------------------------
def test_impossible_limits_are_clear_errors_without_enumerating():
    big = tiny_space([Choice([conv_op(3), conv_op(1), conv_op(5)], 8)] * 11)
    lo, hi = big.cost_bounds()["flops"]
    assert Constraint(max_flops=lo).check_feasible(big) is None  # feasible: nothing to report
    for c, why in [(Constraint(max_flops=lo * 0.99), f"smallest has {lo:.4g} M"),
                   (Constraint(min_flops=hi * 1.01), f"largest has {hi:.4g} M"),
                   (Constraint(max_params=1e-4), "satisfies max_params=0.0001 M")]:
        with pytest.raises(RlnasError, match=why):
            c.check_feasible(big)
        with pytest.raises(RlnasError, match=why):  # before any arch is drawn or scored
            evolution_search(big, lambda a: np.zeros(len(a)), constraint=c)
        with pytest.raises(RlnasError, match=why):
            random_search(big, lambda a: np.zeros(len(a)), constraint=c)


class SumSpace(SearchSpace):
    """8 genes in 0..4, not enumerable; cost = gene sum (M FLOPs)."""

    name = "sum"
    num_genes = 8

    def gene_choices(self, gene):
        return range(5)

    def cost(self, archs, **kw):
        s = np.asarray(archs).reshape(-1, 8).sum(1).astype(float)
        return {"params": s, "flops": s}


@pytest.mark.parametrize("crossover_first", [False, True])
def test_crossover_first_fills_the_population_with_mutations(crossover_first):
    """The official MobileNet order: crossovers first, then mutations up to population minus the
    crossovers made. With crossovers that always repeat a visited parent, all 50 are mutations;
    in the default order 25 mutations come first and random archs fill the rest."""
    space = SumSpace()
    space.crossover = lambda a, b, rng: a  # a parent: always visited, never accepted
    settings = EvolutionSettings(population=50, topk=10, mutations=25, crossovers=25,
                                 mutation_prob=0.5, generations=2, crossover_first=crossover_first)
    res = evolution_search(space, lambda a: a.sum(1).astype(float), settings=settings, seed=3)
    for h in res.history[1:]:
        assert h["crossovers"] == 0
        assert (h["mutations"], h["random"]) == ((50, 0) if crossover_first else (25, 25))
    assert EvolutionSettings.for_space("mobilenet").crossover_first
    assert not EvolutionSettings.for_space("darts").crossover_first
    with pytest.raises(RlnasError, match="crossover_first must be true or false"):
        EvolutionSettings(crossover_first="yes")


# --- user spaces by `package.module:ATTRIBUTE` ------------------------------------------------
def test_module_attribute_spaces(tmp_path, monkeypatch):
    (tmp_path / "user_spaces.py").write_text(
        "from test_choice import tiny_space\n"
        "SPACE = tiny_space()\n"
        "from rlnas.spaces import space_factory\n"
        "@space_factory\ndef factory(**kw):\n    return tiny_space()\n"
        "NOT_A_SPACE = 3\n")
    monkeypatch.chdir(tmp_path)
    space = get_space("user_spaces:SPACE")
    assert space.name == "user_spaces:SPACE" and space.num_genes == 3
    assert sys.modules["user_spaces"].SPACE.name == "tiny"  # the declaration keeps its name
    assert get_space("user_spaces:factory").name == "user_spaces:factory"
    for spec, why in [("user_spaces:NOPE", "has no attribute 'NOPE'"),
                      ("no_such_module:SPACE", "cannot import 'no_such_module'"),
                      ("user_spaces:NOT_A_SPACE", "not a SearchSpace .* got int"),
                      ("user_spaces:", "expected a registered name or 'package.module:ATTRIBUTE'"),
                      ("tiny", "unknown search space 'tiny'")]:
        with pytest.raises(RlnasError, match=why):
            get_space(spec)


# --- the worked example ---------------------------------------------------------------------
def test_example_space_runs_end_to_end_on_tiny_data(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    from examples import my_space
    data = tmp_path / "data"
    data.mkdir()
    write_npz(data / "train_1.npz", 48, seed=0)
    write_npz(data / "test_1.npz", 20, seed=1)
    cfg = load_config(ROOT / "examples" / "my_space.yaml")
    assert cfg["space"] == "examples.my_space:SPACE"
    space = get_space(cfg["space"])
    assert space.enumerate().shape == (8000, 6) and space.num_ops.tolist() == [4, 5] * 3
    t0 = time.perf_counter()
    rows = my_space.main(["--data", str(data), "--out", str(tmp_path / "run"), "--random", "1",
                          "--quiet", "--supernet", "epochs=1", "batch=16",
                          "subset=48", "--retrain", "epochs=1", "subset=48"])
    print(f"\nexample pipeline on tiny data: {time.perf_counter() - t0:.1f} s")
    assert [r["role"] for r in rows] == ["found", "largest", "random 1"]
    limit = cfg["search"]["max_flops"]
    assert all(r["flops_m"] <= limit for r in rows)
    result = json.loads((tmp_path / "run" / "supernet" / "result.json").read_text())
    scorer = cfg["search"]["scorer"]
    assert result["scorer"] == scorer == "distance"
    assert rows[0]["arch"] == result["top"][0]["arch"] and rows[0][scorer] == pytest.approx(
        result["top"][0][scorer])
    cost = space.cost(space.enumerate())
    assert rows[1]["flops_m"] == pytest.approx(cost["flops"][cost["flops"] <= limit].max())
    table = (tmp_path / "run" / "results.md").read_text().splitlines()
    assert [line.split(" | ")[0] for line in table if line.startswith("| ")] == \
        ["| role", "| found", "| largest", "| random 1"]


def test_console_script_imports_a_user_space_from_a_folder_without_init(tmp_path):
    """`rlnas sample pkg.my_space:SPACE` from the folder holding ``pkg/`` (a namespace package,
    no ``__init__.py``, as ``examples/``), by the console script itself: the working directory
    is not on its import path."""
    import subprocess
    script = Path(sys.executable).parent / "rlnas"
    if not script.is_file():
        pytest.skip(f"no console script {script}")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "ops.py").write_text(  # a module of the package the space imports
        "import torch.nn as nn\n"
        "from rlnas.spaces.choice import Op\n"
        "def conv(k):\n"
        "    return Op(f'conv{k}', lambda c_in, c_out, stride: nn.Conv2d(c_in, c_out, k, stride,"
        " k // 2))\n")
    (tmp_path / "pkg" / "my_space.py").write_text(
        "import torch.nn as nn\n"
        "from rlnas.spaces.choice import Choice, ChoiceSpace\n"
        "from pkg.ops import conv\n"
        "SPACE = ChoiceSpace('mine', stem=lambda: nn.Conv2d(3, 4, 3, padding=1),\n"
        "                    blocks=[Choice([conv(3), conv(1)], 8, stride=2),\n"
        "                            Choice([conv(3), conv(5), conv(1)], 8)],\n"
        "                    head=lambda n, d: nn.Sequential(nn.AdaptiveAvgPool2d(1), "
        "nn.Flatten(), nn.Linear(8, n)),\n"
        "                    input_size=8, num_classes=3)\n")
    proc = subprocess.run([str(script), "sample", "pkg.my_space:SPACE", "-n", "3"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rng = np.random.default_rng(0)
    expected = [tuple(int(v) for v in rng.integers(0, [2, 3])) for _ in range(3)]
    ops = [["conv3", "conv1"], ["conv3", "conv5", "conv1"]]
    assert proc.stdout.splitlines() == [" ".join(ops[b][o] for b, o in enumerate(a))
                                        for a in expected]
    # a folder that holds no such module is still a one-line error
    proc = subprocess.run([str(script), "sample", "pkg.nothing:SPACE"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "cannot import 'pkg.nothing'" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
