"""DARTS-like search space (spec sections 1.2, 3.2, 3.3, 4.2, 5, 6.2, 7.2, 7.5, 9).

Cell: two input nodes (0 = c_{k-2}, 1 = c_{k-1}, each preprocessed), four intermediate nodes
2..5, output = concatenation of the four intermediate nodes. Node j (j = 2..5) has an edge from
every earlier node, 14 edges in all, in the order

    node 2 <- 0, 1 | node 3 <- 0, 1, 2 | node 4 <- 0..3 | node 5 <- 0..4   (offsets 0, 2, 5, 9)

Ops, in the official index order: 0 none, 1 max_pool_3x3, 2 avg_pool_3x3, 3 skip_connect,
4 sep_conv_3x3, 5 sep_conv_5x5, 6 dil_conv_3x3, 7 dil_conv_5x5.

Genome: 28 ints, the 14 normal-cell edges then the 14 reduction-cell edges. A genome is valid
iff every intermediate node has exactly two non-``none`` inputs (node j = 2..5 has exactly j - 2
``none`` edges). ``repair`` is the official ``check_cand``: too few ``none`` -> random non-none
edges become ``none``; too many -> random ``none`` edges get an op drawn uniformly from 1..7.

Notation: the DARTS genotype, ``Genotype(normal=[('sep_conv_5x5', 0), ...], normal_concat=[2, 3,
4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])`` (per node, its two inputs in edge order);
``from_str`` also takes a 28-int genome written as ``[4, 4, 0, 3, ...]``.

Differences from the official code, on purpose:
  * Mutation: the official evolution only ever mutates the first 14 genes (the normal cell;
    spec 9.7), and the ImageNet variant never mutates to ``none``. Here ``mutation_choices`` is
    0..7 for every gene and the searcher mutates BOTH cells; ``repair`` restores validity.
  * Angle vector: the official ``get_arch_vector`` appends a ``dil_conv`` edge's BN weight twice
    (the bias slot reads ``.weight``; spec 9.4). We append BN weight AND bias (bug fixed).

State-dict names mirror the official ``super_model.py`` / DARTS ``model.py`` module layout
(``stem``/``stem0``/``stem1``, ``cells.{i}.preprocess{0,1}``, ``cells.{i}._ops.{edge}._ops.{op}``
in the supernet, ``cells.{i}._ops.{k}`` in a standalone network, ``classifier``), so the angle
extraction finds its tensors by name (and official checkpoints should load once their
``module.`` prefix is stripped; not tested against a real one).

Cost: analytic params (BN included, auxiliary head excluded unless asked) and FLOPs as the
official vendored thop counts them: Conv2d multiply-adds plus Linear (2*in - 1)*out; the
published Table 3 values (spec 7.2) need the (2*in - 1) Linear rule. Standalone networks have
no BN after pooling (DARTS ``model.py``); ``network='supernet-*'`` counts the supernet path
(pool BNs add parameters, no FLOPs).
"""
from __future__ import annotations

import ast
import itertools
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..angle import STATS, vector_stats
from ..errors import RlnasError
from .base import Arch, SearchSpace, refuse_model_options
from .ops import Identity, ReLUConvBN as SharedReLUConvBN
from .registry import register_space

OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
       "dil_conv_3x3", "dil_conv_5x5")
NONE, MAX_POOL, AVG_POOL, SKIP, SEP3, SEP5, DIL3, DIL5 = range(8)
NUM_OPS = len(OPS)
STEPS = 4                      # intermediate nodes per cell
NUM_EDGES = 14                 # edges per cell
NUM_GENES = 2 * NUM_EDGES      # normal + reduce
OFFSETS = (0, 2, 5, 9)         # first edge of node 2, 3, 4, 5
EDGES = tuple((j, k) for j in range(2, 6) for k in range(j))  # (to, from), genome order
EDGE_INDEX = {e: i for i, e in enumerate(EDGES)}
CELL_TYPES = ("normal", "reduce")
CONCAT = (2, 3, 4, 5)
PIECE_OPS = tuple(range(1, NUM_OPS))  # every op but none has a piece


def _enumerate_paths() -> Tuple[Tuple[int, ...], ...]:
    """Every path from input node 0 or 1 to any intermediate node 2..5, as edge indices."""
    paths = []
    for end in (5, 4, 3, 2):
        for src in (0, 1):
            mids = range(2, end)
            for r in range(len(mids), -1, -1):
                for sub in itertools.combinations(mids, r):
                    nodes = (src,) + sub + (end,)
                    paths.append(tuple(EDGE_INDEX[(nodes[t], nodes[t - 1])]
                                       for t in range(1, len(nodes))))
    return tuple(paths)


PATHS = _enumerate_paths()  # 30 paths (16 end at node 5, 8 at 4, 4 at 3, 2 at 2)
_ON_PATH = np.zeros((len(PATHS), NUM_EDGES))
for _p, _path in enumerate(PATHS):
    _ON_PATH[_p, list(_path)] = 1.0


def reduction_layers(layers: int) -> Tuple[int, int]:
    """Indices of the two reduction cells (layers//3 and 2*layers//3, as DARTS)."""
    return (layers // 3, 2 * layers // 3)


def _as_genome(arch) -> Tuple[int, ...]:
    if isinstance(arch, torch.Tensor):
        arch = arch.tolist()
    g = tuple(int(v) for v in np.asarray(arch).reshape(-1))
    return g


def genome_errors(arch: Sequence[int]) -> Optional[str]:
    """None if ``arch`` is a valid genome, else why not."""
    if len(arch) != NUM_GENES:
        return f"expected {NUM_GENES} genes, got {len(arch)}"
    if any(not 0 <= int(v) < NUM_OPS for v in arch):
        return f"genes must be op indices 0..{NUM_OPS - 1}"
    for c, ctype in enumerate(CELL_TYPES):
        half = arch[c * NUM_EDGES:(c + 1) * NUM_EDGES]
        for j, off in enumerate(OFFSETS):
            n_in = sum(int(v) != NONE for v in half[off:off + j + 2])
            if n_in != 2:
                return f"{ctype} cell node {j + 2} has {n_in} inputs, needs exactly 2"
    return None


def repair_half(half: Sequence[int], rng: np.random.Generator) -> List[int]:
    """The official ``check_cand`` on one cell (14 genes): node j (0-based) keeps exactly j
    ``none`` edges."""
    out = [int(v) for v in half]
    for j, off in enumerate(OFFSETS):
        idx = list(range(off, off + j + 2))
        nones = [i for i in idx if out[i] == NONE]
        if len(nones) < j:
            others = [i for i in idx if out[i] != NONE]
            for i in rng.choice(others, size=j - len(nones), replace=False):
                out[int(i)] = NONE
        elif len(nones) > j:
            for i in rng.choice(nones, size=len(nones) - j, replace=False):
                out[int(i)] = int(rng.integers(1, NUM_OPS))
    return out


def sample_path(seed: int, step: int) -> np.ndarray:
    """The supernet path of global step ``step``: one 28-gene genome (normal + reduce), uniform
    over the 8 ops per edge then repaired. A pure function of (seed, step)."""
    rng = np.random.default_rng([int(seed), int(step)])
    draw = rng.integers(0, NUM_OPS, size=NUM_GENES)
    out = repair_half(draw[:NUM_EDGES], rng) + repair_half(draw[NUM_EDGES:], rng)
    return np.asarray(out, dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# Notation
# ----------------------------------------------------------------------------------------------
def genome_to_pairs(half: Sequence[int]) -> List[Tuple[str, int]]:
    """One cell's genome -> DARTS genotype list: per node, its non-none inputs in edge order."""
    return [(OPS[half[EDGE_INDEX[(j, k)]]], k) for j in range(2, 6) for k in range(j)
            if half[EDGE_INDEX[(j, k)]] != NONE]


def _pairs_to_half(pairs, what: str, text: str) -> List[int]:
    if not isinstance(pairs, (list, tuple)) or len(pairs) != 2 * STEPS:
        raise RlnasError(f"malformed DARTS genotype {text!r}: {what} needs {2 * STEPS} "
                         "(op, input) pairs, two per node")
    half = [NONE] * NUM_EDGES
    for n in range(STEPS):
        j = n + 2
        for item in pairs[2 * n:2 * n + 2]:
            if (not isinstance(item, (list, tuple)) or len(item) != 2
                    or not isinstance(item[0], str) or isinstance(item[1], bool)
                    or not isinstance(item[1], int)):
                raise RlnasError(f"malformed DARTS genotype {text!r}: {what} item {item!r} "
                                 "is not an (op, input) pair")
            op, k = item
            if op not in OPS:
                raise RlnasError(f"unknown DARTS op {op!r} in {what}; known: {', '.join(OPS[1:])}")
            if op == "none":
                raise RlnasError(f"'none' cannot appear in a DARTS genotype ({what}, node {j})")
            if not 0 <= k < j:
                raise RlnasError(f"{what} node {j} takes input {k}; inputs must be in 0..{j - 1}")
            e = EDGE_INDEX[(j, k)]
            if half[e] != NONE:
                raise RlnasError(f"{what} node {j} takes input {k} twice; each node needs two "
                                 "different inputs")
            half[e] = OPS.index(op)
    return half


def _literal(node, text):
    """A literal, or ``range(a, b)`` as a list."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
            and not node.keywords):
        args = [_literal(a, text) for a in node.args]
        if 1 <= len(args) <= 3 and all(isinstance(a, int) for a in args):
            return list(range(*args))
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        raise RlnasError(f"malformed DARTS genotype {text!r}: cannot read "
                         f"{ast.unparse(node)!r}") from None


_GENOME_RE = re.compile(r"^[\[(]?\s*-?\d+(\s*,\s*-?\d+)*\s*,?\s*[\])]?$")


def parse_arch(text: str) -> Tuple[int, ...]:
    """Genotype string or 28-int genome text -> a valid genome (RlnasError otherwise)."""
    if not isinstance(text, str):
        raise RlnasError(f"DARTS arch must be text, got {type(text).__name__}")
    s = text.strip()
    if _GENOME_RE.match(s):
        genome = tuple(int(v) for v in re.findall(r"-?\d+", s))
        err = genome_errors(genome)
        if err:
            raise RlnasError(f"not a DARTS genome {text!r}: {err}")
        return genome
    try:
        tree = ast.parse(s, mode="eval").body
    except SyntaxError:
        raise RlnasError(f"malformed DARTS arch {text!r}: expected 'Genotype(normal=[...], "
                         "normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])' "
                         f"or {NUM_GENES} comma-separated ints") from None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)
            and tree.func.id == "Genotype"):
        raise RlnasError(f"malformed DARTS arch {text!r}: expected 'Genotype(normal=[...], ...)' "
                         f"or {NUM_GENES} comma-separated ints")
    fields = ("normal", "normal_concat", "reduce", "reduce_concat")
    if len(tree.args) > len(fields):
        raise RlnasError(f"malformed DARTS genotype {text!r}: too many fields")
    vals = {}
    for name, node in zip(fields, tree.args):
        vals[name] = _literal(node, text)
    for kw in tree.keywords:
        if kw.arg not in fields or kw.arg in vals:
            raise RlnasError(f"malformed DARTS genotype {text!r}: unexpected field {kw.arg!r}")
        vals[kw.arg] = _literal(kw.value, text)
    missing = [f for f in fields if f not in vals]
    if missing:
        raise RlnasError(f"malformed DARTS genotype {text!r}: missing {', '.join(missing)}")
    for name in ("normal_concat", "reduce_concat"):
        v = vals[name]
        if not isinstance(v, (list, tuple)) or list(v) != list(CONCAT):
            raise RlnasError(f"{name} must be [2, 3, 4, 5] in this space, got {v!r}")
    return tuple(_pairs_to_half(vals["normal"], "normal", text)
                 + _pairs_to_half(vals["reduce"], "reduce", text))


def format_arch(arch: Sequence[int]) -> str:
    n, r = genome_to_pairs(arch[:NUM_EDGES]), genome_to_pairs(arch[NUM_EDGES:])
    return (f"Genotype(normal={n!r}, normal_concat={list(CONCAT)!r}, "
            f"reduce={r!r}, reduce_concat={list(CONCAT)!r})")


# ----------------------------------------------------------------------------------------------
# The space
# ----------------------------------------------------------------------------------------------
_NET_DEFAULTS = {  # network -> (channels, layers, num_classes, image_size)
    "imagenet": (48, 14, 1000, 224), "cifar": (36, 20, 10, 32),
    "supernet-imagenet": (48, 14, 1000, 224), "supernet-cifar": (16, 8, 10, 32)}
_SUPERNET_DEFAULTS = {"cifar": (16, 8), "imagenet": (48, 14)}


@register_space("darts")
class DartsSpace(SearchSpace):
    num_genes = NUM_GENES

    def gene_choices(self, gene: int) -> Sequence[int]:
        return range(NUM_OPS)

    def mutation_choices(self, gene: int) -> Sequence[int]:
        return range(NUM_OPS)  # any op, both cells; repair restores validity (module docstring)

    def sample(self, rng: np.random.Generator) -> Arch:
        return self.repair(tuple(int(v) for v in rng.integers(0, NUM_OPS, size=NUM_GENES)), rng)

    def repair(self, arch: Arch, rng: np.random.Generator) -> Arch:
        arch = _as_genome(arch)
        if len(arch) != NUM_GENES or any(not 0 <= v < NUM_OPS for v in arch):
            raise RlnasError(f"not a DARTS genome: {arch!r} ({NUM_GENES} ints in 0..{NUM_OPS - 1})")
        return tuple(repair_half(arch[:NUM_EDGES], rng) + repair_half(arch[NUM_EDGES:], rng))

    def is_valid(self, arch: Arch) -> bool:
        try:
            return genome_errors(_as_genome(arch)) is None
        except (TypeError, ValueError):
            return False

    def _check(self, arch) -> Tuple[int, ...]:
        g = _as_genome(arch)
        err = genome_errors(g)
        if err:
            raise RlnasError(f"not a DARTS genome {g!r}: {err}")
        return g

    def to_str(self, arch: Arch) -> str:
        return format_arch(self._check(arch))

    def from_str(self, text: str) -> Arch:
        return parse_arch(text)

    def enumerate(self) -> None:
        return None  # ~1e18 archs

    # --- cost ------------------------------------------------------------------------------
    def cost(self, archs: np.ndarray, network: str = "imagenet", channels: Optional[int] = None,
             layers: Optional[int] = None, num_classes: Optional[int] = None,
             image_size: Optional[int] = None, auxiliary: bool = False,
             stem_multiplier: int = 3) -> Dict[str, np.ndarray]:
        """Params (M) and FLOPs (M) per arch, analytically (see ``cost_tables``)."""
        archs = self.genome_array(archs)
        t = cost_tables(network, channels, layers, num_classes, image_size, auxiliary,
                        stem_multiplier)
        genes = np.arange(NUM_GENES)
        return {k: (t[k][0] + t[k][1][genes, archs].sum(1)) / 1e6 for k in ("params", "flops")}

    def cost_defaults(self, info: Dict) -> Dict:
        """The paper's reporting setting (spec 7.2): NetworkImageNet, C=48, 14 cells, 1000
        classes, 224x224, whatever data the supernet was trained on."""
        return {"network": "imagenet", "channels": 48, "layers": 14, "num_classes": 1000,
                "image_size": 224}

    def arch_diagram(self, arch: Arch) -> Dict:
        """The normal and the reduction cell as graphs: inputs c_{k-2}, c_{k-1}, intermediate
        nodes 0-3 (each the sum of its two chosen edges), output c_{k} (their concatenation)."""
        g = self._check(arch)
        nodes = ["$c_{k-2}$", "$c_{k-1}$", "0", "1", "2", "3", "$c_{k}$"]
        cells = []
        for t, kind in enumerate(CELL_TYPES):
            half = g[t * NUM_EDGES:(t + 1) * NUM_EDGES]
            edges = [(k, j, OPS[half[e]]) for e, (j, k) in enumerate(EDGES) if half[e] != NONE]
            edges += [(j, len(nodes) - 1, "") for j in CONCAT]
            cells.append({"title": f"{kind} cell", "inputs": 2, "nodes": nodes,
                          "edges": edges})
        return {"kind": "cells", "cells": cells}

    # --- models ----------------------------------------------------------------------------
    def supernet(self, num_classes: int = 10, *, variant: str = "cifar",
                 channels: Optional[int] = None, layers: Optional[int] = None,
                 stem_multiplier: int = 3, **unknown) -> "DartsSupernet":
        """The weight-sharing supernet (``forward(x, genome)``: one 28-gene path).

        Args:
            num_classes: classifier outputs.
            variant: ``cifar`` or ``imagenet`` (stem and macro layout, spec 3.2 / 3.3).
            channels: C of the first cell stage (default 16 / 48 by variant).
            layers: cells, reductions at layers//3 and 2*layers//3 (default 8 / 14).
            stem_multiplier: the CIFAR stem's Conv3x3(3 -> stem_multiplier * C).
            **unknown: refused.

        Returns:
            the ``DartsSupernet``.
        """
        refuse_model_options(self.name, "supernet", unknown, (
            "num_classes", "variant", "channels", "layers", "stem_multiplier"))
        if variant not in _SUPERNET_DEFAULTS:
            raise RlnasError(f"unknown DARTS supernet variant {variant!r}; known: cifar, imagenet")
        c0, l0 = _SUPERNET_DEFAULTS[variant]
        return DartsSupernet(num_classes, variant, channels or c0, layers or l0, stem_multiplier)

    def network(self, arch: Arch, num_classes: Optional[int] = None, *,
                variant: str = "imagenet", channels: Optional[int] = None,
                layers: Optional[int] = None, auxiliary: bool = False, drop_path: float = 0.0,
                stem_multiplier: int = 3, **unknown) -> "DartsNetwork":
        """The standalone network (``NetworkCIFAR`` / ``NetworkImageNet``) of one genotype.

        Args:
            arch: a valid genome.
            num_classes: classifier outputs (default 10 / 1000 by variant).
            variant: ``cifar`` or ``imagenet`` (default: the paper's reporting network).
            channels, layers: as ``supernet`` (default 36, 20 / 48, 14 by variant).
            auxiliary: add the auxiliary head (its logits returned in training mode).
            drop_path: the initial drop-path probability.
            stem_multiplier: as ``supernet``.
            **unknown: refused.

        Returns:
            the ``DartsNetwork``.
        """
        refuse_model_options(self.name, "network", unknown, (
            "num_classes", "variant", "channels", "layers", "auxiliary", "drop_path",
            "stem_multiplier"))
        if variant not in ("cifar", "imagenet"):
            raise RlnasError(f"unknown DARTS network variant {variant!r}; known: cifar, imagenet")
        c0, l0, k0, _ = _NET_DEFAULTS[variant]
        return DartsNetwork(self._check(arch), variant, channels or c0, layers or l0,
                            num_classes or k0, auxiliary, drop_path, stem_multiplier)

    def sample_training_path(self, seed: int, step: int, num_cells: int = 0) -> np.ndarray:
        """One genome for the whole supernet (normal cells share the first half, reduction
        cells the second); ``num_cells`` is not needed (one genome per cell type)."""
        return sample_path(seed, step)

    # --- angle -----------------------------------------------------------------------------
    def angle_pieces(self, state0: Dict[str, torch.Tensor], stateT: Dict[str, torch.Tensor]):
        return darts_angle_pieces(state0, stateT)

    def angle_multiplicity(self, archs: np.ndarray) -> np.ndarray:
        return darts_multiplicity(archs)


# ----------------------------------------------------------------------------------------------
# Modules (DARTS operations; all BN affine)
# ----------------------------------------------------------------------------------------------
class ReLUConvBN(nn.Module):
    """The shared ReLU-conv-BN (``rlnas.spaces.ops``) under ``op``, the official layout."""

    def __init__(self, c_in, c_out, kernel, stride, padding):
        super().__init__()
        self.op = SharedReLUConvBN(c_in, c_out, kernel, stride, padding)

    def forward(self, x):
        return self.op(x)


class SepConv(nn.Module):
    """Two (ReLU, depthwise kxk, pointwise 1x1, BN) units; the first carries the stride."""

    def __init__(self, c_in, c_out, kernel, stride, padding):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, bias=False),
            nn.BatchNorm2d(c_in),
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, 1, padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out))

    def forward(self, x):
        return self.op(x)


class DilConv(nn.Module):
    """ReLU, depthwise kxk with dilation 2, pointwise 1x1, BN."""

    def __init__(self, c_in, c_out, kernel, stride, padding, dilation):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in,
                      bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out))

    def forward(self, x):
        return self.op(x)


class FactorizedReduce(nn.Module):
    """Stride-2 1x1 convs on x and on x shifted by one pixel, concatenated, then BN."""

    def __init__(self, c_in, c_out):
        super().__init__()
        if c_out % 2:
            raise RlnasError(f"DARTS FactorizedReduce needs an even channel count, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class Zero(nn.Module):
    """`none`: never run by the supernet (skipped), kept so op indices match the official list."""

    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


def make_op(op: int, c: int, stride: int, pool_bn: bool) -> nn.Module:
    """One candidate op; ``pool_bn``: pooling followed by its own affine BN (supernet)."""
    if op == NONE:
        return Zero(stride)
    if op in (MAX_POOL, AVG_POOL):
        pool = (nn.MaxPool2d(3, stride, 1) if op == MAX_POOL
                else nn.AvgPool2d(3, stride, 1, count_include_pad=False))
        return nn.Sequential(pool, nn.BatchNorm2d(c)) if pool_bn else pool
    if op == SKIP:
        return Identity(c, c, 1) if stride == 1 else FactorizedReduce(c, c)
    if op == SEP3:
        return SepConv(c, c, 3, stride, 1)
    if op == SEP5:
        return SepConv(c, c, 5, stride, 2)
    if op == DIL3:
        return DilConv(c, c, 3, stride, 2, 2)
    if op == DIL5:
        return DilConv(c, c, 5, stride, 4, 2)
    raise RlnasError(f"unknown DARTS op index {op}")


class MixedOp(nn.Module):
    """All 8 candidates of one supernet edge (index = op index); runs one of them."""

    def __init__(self, c, stride):
        super().__init__()
        self._ops = nn.ModuleList(make_op(op, c, stride, pool_bn=True) for op in range(NUM_OPS))

    def forward(self, x, op: int):
        return self._ops[op](x)


def _preprocess(c_pp, c_p, c, reduction_prev):
    pre0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
    return pre0, ReLUConvBN(c_p, c, 1, 1, 0)


class SearchCell(nn.Module):
    def __init__(self, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        self.preprocess0, self.preprocess1 = _preprocess(c_pp, c_p, c, reduction_prev)
        self._ops = nn.ModuleList(MixedOp(c, 2 if reduction and k < 2 else 1) for _, k in EDGES)

    def forward(self, s0, s1, half: Sequence[int]):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for j, off in enumerate(OFFSETS):
            acc = None
            for k, h in enumerate(states):
                op = half[off + k]
                if op == NONE:
                    continue  # skipped, not multiplied by zero
                y = self._ops[off + k](h, op)
                acc = y if acc is None else acc + y
            if acc is None:
                raise RlnasError(f"DARTS node {j + 2} has no non-none input; repair the genome")
            states.append(acc)
        return torch.cat(states[2:], dim=1)


def _stems(variant, c, stem_multiplier):
    """(modules, C of s0, C of s1, reduction_prev of the first cell)."""
    if variant == "cifar":
        cs = stem_multiplier * c
        stem = nn.Sequential(nn.Conv2d(3, cs, 3, padding=1, bias=False), nn.BatchNorm2d(cs))
        return {"stem": stem}, cs, cs, False
    if c % 2:
        raise RlnasError(f"DARTS ImageNet networks need an even channel count, got {c}")
    stem0 = nn.Sequential(
        nn.Conv2d(3, c // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c // 2),
        nn.ReLU(inplace=False),
        nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c))
    stem1 = nn.Sequential(nn.ReLU(inplace=False),
                          nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c))
    return {"stem0": stem0, "stem1": stem1}, c, c, True


def _layout(layers, c, c_s0, c_s1, reduction_prev):
    """Per cell: (c_pp, c_p, c_curr, reduction, reduction_prev)."""
    red = reduction_layers(layers)
    out, c_pp, c_p, c_curr = [], c_s0, c_s1, c
    for i in range(layers):
        reduction = i in red
        if reduction:
            c_curr *= 2
        out.append((c_pp, c_p, c_curr, reduction, reduction_prev))
        reduction_prev = reduction
        c_pp, c_p = c_p, 4 * c_curr
    return out


class _Macro(nn.Module):
    def _build_stem(self, variant, channels, stem_multiplier):
        if variant not in ("cifar", "imagenet"):
            raise RlnasError(f"unknown DARTS variant {variant!r}; known: cifar, imagenet")
        stems, c_s0, c_s1, red_prev = _stems(variant, channels, stem_multiplier)
        for name, m in stems.items():
            self.add_module(name, m)
        return c_s0, c_s1, red_prev

    def _stem_forward(self, x):
        if self.variant == "cifar":
            s = self.stem(x)
            return s, s
        s0 = self.stem0(x)
        return s0, self.stem1(s0)

    def _head(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class DartsSupernet(_Macro):
    """Weight-sharing DARTS supernet (spec 3.2 CIFAR / 3.3 ImageNet). ``forward(x, genome)``
    runs one path: normal cells use genome[:14], reduction cells genome[14:]; ``none`` edges
    are skipped. Every cell instance has its own weights."""

    def __init__(self, num_classes=10, variant="cifar", channels=16, layers=8, stem_multiplier=3):
        super().__init__()
        self.variant, self.channels, self.layers = variant, channels, layers
        self.num_classes = num_classes
        c_s0, c_s1, red_prev = self._build_stem(variant, channels, stem_multiplier)
        layout = _layout(layers, channels, c_s0, c_s1, red_prev)
        self.cells = nn.ModuleList(SearchCell(*spec) for spec in layout)
        self.reduction_layers = [i for i, c in enumerate(self.cells) if c.reduction]
        self.classifier = nn.Linear(4 * layout[-1][2], num_classes)
        if variant == "imagenet":  # spec 3.3: the official final init loop
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_uniform_(m.weight)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0.0, 0.01)
                    nn.init.zeros_(m.bias)

    @property
    def num_search_cells(self) -> int:
        return len(self.cells)

    def forward(self, x, genome):
        g = _as_genome(genome)
        if len(g) != NUM_GENES:
            raise RlnasError(f"DARTS supernet path must have {NUM_GENES} genes, got {len(g)}")
        normal, reduce = g[:NUM_EDGES], g[NUM_EDGES:]
        s0, s1 = self._stem_forward(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, reduce if cell.reduction else normal)
        return self._head(s1)


# --- standalone network ---------------------------------------------------------------------
def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class InferCell(nn.Module):
    """A cell with only the genotype's ops (DARTS ``model.py`` layout: ``_ops.{0..7}``)."""

    def __init__(self, half, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        self.preprocess0, self.preprocess1 = _preprocess(c_pp, c_p, c, reduction_prev)
        edges = [(j, k, half[EDGE_INDEX[(j, k)]]) for j in range(2, 6) for k in range(j)
                 if half[EDGE_INDEX[(j, k)]] != NONE]
        self._indices = [k for _, k, _ in edges]
        self._ops = nn.ModuleList(make_op(op, c, 2 if reduction and k < 2 else 1, pool_bn=False)
                                  for _, k, op in edges)

    def forward(self, s0, s1, drop_prob: float = 0.0):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for n in range(STEPS):
            acc = None
            for m in (2 * n, 2 * n + 1):
                op = self._ops[m]
                h = op(states[self._indices[m]])
                if self.training and drop_prob > 0.0 and not isinstance(op, Identity):
                    h = drop_path(h, drop_prob)
                acc = h if acc is None else acc + h
            states.append(acc)
        return torch.cat(states[2:], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS auxiliary heads: CIFAR (8x8 input, pool 5/3, BN after the 2x2 conv) and ImageNet
    (pool 5/2, no BN after the 2x2 conv, as the DARTS code)."""

    def __init__(self, c, num_classes, variant):
        super().__init__()
        stride = 3 if variant == "cifar" else 2
        layers = [nn.ReLU(inplace=False), nn.AvgPool2d(5, stride=stride, padding=0,
                                                      count_include_pad=False),
                  nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=False),
                  nn.Conv2d(128, 768, 2, bias=False)]
        if variant == "cifar":
            layers.append(nn.BatchNorm2d(768))
        layers.append(nn.ReLU(inplace=False))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class DartsNetwork(_Macro):
    """Standalone DARTS network (``NetworkCIFAR`` / ``NetworkImageNet``) for one genotype.
    ``forward(x)`` returns logits; in training mode with ``auxiliary`` it returns
    ``(logits, aux_logits)``. Set ``drop_path_prob`` to change the drop-path rate."""

    def __init__(self, arch, variant="imagenet", channels=48, layers=14, num_classes=1000,
                 auxiliary=False, drop_path=0.0, stem_multiplier=3):
        super().__init__()
        self.arch = tuple(arch)
        self.variant, self.channels, self.layers = variant, channels, layers
        self.num_classes, self.auxiliary = num_classes, bool(auxiliary)
        self.drop_path_prob = float(drop_path)
        c_s0, c_s1, red_prev = self._build_stem(variant, channels, stem_multiplier)
        normal, reduce = self.arch[:NUM_EDGES], self.arch[NUM_EDGES:]
        layout = _layout(layers, channels, c_s0, c_s1, red_prev)
        self.cells = nn.ModuleList(InferCell(reduce if spec[3] else normal, *spec)
                                   for spec in layout)
        self.reduction_layers = [i for i, c in enumerate(self.cells) if c.reduction]
        self.aux_layer = 2 * layers // 3
        if self.auxiliary:
            self.auxiliary_head = AuxiliaryHead(4 * layout[self.aux_layer][2], num_classes,
                                                variant)
        self.classifier = nn.Linear(4 * layout[-1][2], num_classes)

    def forward(self, x):
        aux = None
        s0, s1 = self._stem_forward(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_layer and self.auxiliary and self.training:
                aux = self.auxiliary_head(s1)
        logits = self._head(s1)
        return (logits, aux) if aux is not None else logits


# ----------------------------------------------------------------------------------------------
# Analytic cost (spec 7.2): params = every parameter (BN included, auxiliary head excluded
# unless asked); FLOPs = multiply-adds of Conv2d (out_elems * k*k*C_in/groups, no bias: DARTS
# convs have none) and Linear (thop's count_linear: (2*in - 1) * out), as the official vendored
# thop counts them; BN, pooling, ReLU and additions are free.
# ----------------------------------------------------------------------------------------------
def _half(h: int) -> int:
    return (h + 1) // 2  # every stride-2 op here (3x3 p1, 5x5 p2, dil, 1x1 p0): ceil(h/2)


def _op_cost(op: int, c: int, h_in: int, stride: int, pool_bn: bool) -> Tuple[int, int]:
    """(params, MACs) of one edge op on a c-channel h_in x h_in input."""
    ho = _half(h_in) if stride == 2 else h_in
    hw = ho * ho
    if op == NONE:
        return 0, 0
    if op in (MAX_POOL, AVG_POOL):
        return (2 * c if pool_bn else 0), 0
    if op == SKIP:
        if stride == 1:
            return 0, 0
        return c * (c // 2) * 2 + 2 * c, 2 * (c // 2) * c * hw
    k = {SEP3: 3, SEP5: 5, DIL3: 3, DIL5: 5}[op]
    unit_p, unit_f = c * k * k + c * c + 2 * c, hw * (c * k * k + c * c)
    return (2 * unit_p, 2 * unit_f) if op in (SEP3, SEP5) else (unit_p, unit_f)


def cost_tables(network="imagenet", channels=None, layers=None, num_classes=None,
                image_size=None, auxiliary=False, stem_multiplier=3):
    """{'params': (fixed, table (28, 8)), 'flops': (...)}: the cost of an arch is
    fixed + sum over genes g of table[g, arch[g]]."""
    if network not in _NET_DEFAULTS:
        raise RlnasError(f"unknown DARTS cost network {network!r}; known: "
                         f"{', '.join(sorted(_NET_DEFAULTS))}")
    c0, l0, k0, h0 = _NET_DEFAULTS[network]
    C, L = int(channels or c0), int(layers or l0)
    K, H = int(num_classes or k0), int(image_size or h0)
    variant = "cifar" if network.endswith("cifar") else "imagenet"
    pool_bn = network.startswith("supernet")
    if C % 2:
        raise RlnasError(f"DARTS networks need an even channel count, got {C}")
    fp = ff = 0
    if variant == "cifar":
        cs = stem_multiplier * C
        fp += 27 * cs + 2 * cs
        ff += 27 * cs * H * H
        h_pp = h_p = H
        c_s0 = c_s1 = cs
        red_prev = False
    else:
        h1 = _half(H)
        h2 = _half(h1)
        h3 = _half(h2)
        fp += 27 * (C // 2) + 2 * (C // 2) + 9 * (C // 2) * C + 2 * C + 9 * C * C + 2 * C
        ff += 27 * (C // 2) * h1 * h1 + 9 * (C // 2) * C * h2 * h2 + 9 * C * C * h3 * h3
        h_pp, h_p = h2, h3
        c_s0 = c_s1 = C
        red_prev = True
    tp = np.zeros((NUM_GENES, NUM_OPS))
    tf = np.zeros((NUM_GENES, NUM_OPS))
    layout = _layout(L, C, c_s0, c_s1, red_prev)
    h_aux = None
    for i, (c_pp, c_p, c, reduction, reduction_prev) in enumerate(layout):
        # preprocess0 / preprocess1 bring both inputs to h_p, c channels
        if reduction_prev:
            fp += 2 * c_pp * (c // 2) + 2 * c
            ff += 2 * c_pp * (c // 2) * h_p * h_p
        else:
            fp += c_pp * c + 2 * c
            ff += c_pp * c * h_pp * h_pp
        fp += c_p * c + 2 * c
        ff += c_p * c * h_p * h_p
        h_out = _half(h_p) if reduction else h_p
        base = NUM_EDGES if reduction else 0
        for e, (j, k) in enumerate(EDGES):
            stride = 2 if reduction and k < 2 else 1
            h_in = h_p if k < 2 else h_out
            for op in range(NUM_OPS):
                p, f = _op_cost(op, c, h_in, stride, pool_bn)
                tp[base + e, op] += p
                tf[base + e, op] += f
        h_pp, h_p = h_p, h_out
        if i == 2 * L // 3:
            h_aux, c_aux = h_out, 4 * c
    c_last = 4 * layout[-1][2]
    fp += c_last * K + K
    ff += (2 * c_last - 1) * K
    if auxiliary and not pool_bn and h_aux is not None:
        ha = (h_aux - 5) // (3 if variant == "cifar" else 2) + 1
        hb = ha - 1
        fp += c_aux * 128 + 2 * 128 + 128 * 768 * 4 + (2 * 768 if variant == "cifar" else 0)
        fp += 768 * K + K
        ff += c_aux * 128 * ha * ha + 128 * 768 * 4 * hb * hb + (2 * 768 - 1) * K
    return {"params": (float(fp), tp), "flops": (float(ff), tf)}


# ----------------------------------------------------------------------------------------------
# Angle pieces (spec 4.2, DESIGN "The angle, computed fast and exactly")
# ----------------------------------------------------------------------------------------------
def piece_names() -> List[str]:
    return ["fixed"] + [f"{t}:edge{j}<-{k}:{OPS[op]}" for t in CELL_TYPES for (j, k) in EDGES
                        for op in PIECE_OPS]


def _piece_index(ctype: int, edge: int, op: int) -> int:
    return 1 + (ctype * NUM_EDGES + edge) * len(PIECE_OPS) + (op - 1)


def cell_ids(state: Dict[str, torch.Tensor]) -> List[int]:
    return sorted({int(k.split(".")[1]) for k in state if k.startswith("cells.")})


def is_reduction_cell(state, cell: int) -> bool:
    return f"cells.{cell}._ops.0._ops.{SKIP}.conv_1.weight" in state


def fixed_tensors(state: Dict[str, torch.Tensor]) -> List[torch.Tensor]:
    """Stem(s) conv + BN w/b, each cell's preprocess0/preprocess1, the classifier weight (+ bias
    on ImageNet): appended once per arch (spec 4.2)."""
    imagenet = "stem0.0.weight" in state
    if imagenet:
        keys = ["stem0.0.weight", "stem0.1.weight", "stem0.1.bias", "stem0.3.weight",
                "stem0.4.weight", "stem0.4.bias", "stem1.1.weight", "stem1.2.weight",
                "stem1.2.bias"]
    else:
        keys = ["stem.0.weight", "stem.1.weight", "stem.1.bias"]
    for i in cell_ids(state):
        p0 = f"cells.{i}.preprocess0"
        if f"{p0}.conv_1.weight" in state:
            keys += [f"{p0}.conv_1.weight", f"{p0}.conv_2.weight", f"{p0}.bn.weight",
                     f"{p0}.bn.bias"]
        else:
            keys += [f"{p0}.op.1.weight", f"{p0}.op.2.weight", f"{p0}.op.2.bias"]
        p1 = f"cells.{i}.preprocess1"
        keys += [f"{p1}.op.1.weight", f"{p1}.op.2.weight", f"{p1}.op.2.bias"]
    keys.append("classifier.weight")
    if imagenet:
        keys.append("classifier.bias")
    return [state[k] for k in keys]


def edge_tensors(state, cell: int, edge: int, op: int) -> List[torch.Tensor]:
    """The tensors one edge's op contributes to a path (spec 4.2; dil_conv BN bias fixed)."""
    pre = f"cells.{cell}._ops.{edge}._ops"
    if op in (MAX_POOL, AVG_POOL):
        c = state[f"{pre}.{SEP3}.op.1.weight"].shape[0]
        const = torch.full((c * 9,), 1.0 / 9.0, dtype=torch.float64)
        return [const, state[f"{pre}.{op}.1.weight"], state[f"{pre}.{op}.1.bias"]]
    if op == SKIP:
        if f"{pre}.{SKIP}.conv_1.weight" in state:
            return [state[f"{pre}.{SKIP}.conv_1.weight"], state[f"{pre}.{SKIP}.conv_2.weight"],
                    state[f"{pre}.{SKIP}.bn.weight"], state[f"{pre}.{SKIP}.bn.bias"]]
        c = state[f"{pre}.{SEP3}.op.6.weight"].shape[0]
        return [torch.eye(c, dtype=torch.float64).reshape(-1)]
    if op in (SEP3, SEP5):
        return [state[f"{pre}.{op}.op.{m}.weight"] for m in (1, 2, 5, 6)] + [
            state[f"{pre}.{op}.op.3.weight"], state[f"{pre}.{op}.op.3.bias"],
            state[f"{pre}.{op}.op.7.weight"], state[f"{pre}.{op}.op.7.bias"]]
    if op in (DIL3, DIL5):
        return [state[f"{pre}.{op}.op.1.weight"], state[f"{pre}.{op}.op.2.weight"],
                state[f"{pre}.{op}.op.3.weight"], state[f"{pre}.{op}.op.3.bias"]]
    raise RlnasError(f"op {op} has no angle tensors")


def _stats(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> np.ndarray:
    out = np.zeros(len(STATS))
    for a, b in zip(xs, ys):
        out += vector_stats(a, b)
    return out


def darts_angle_pieces(state0, stateT) -> Tuple[List[str], np.ndarray]:
    """(names, stats (P, 4) float64, ``rlnas.angle.STATS``). Piece 0: the fixed tensors;
    piece (cell type, edge, op): that edge's op tensors summed over every cell of that type."""
    names = piece_names()
    stats = np.zeros((len(names), len(STATS)))
    try:
        stats[0] = _stats(fixed_tensors(state0), fixed_tensors(stateT))
        for cell in cell_ids(state0):
            t = int(is_reduction_cell(state0, cell))
            for e in range(NUM_EDGES):
                for op in PIECE_OPS:
                    stats[_piece_index(t, e, op)] += _stats(edge_tensors(state0, cell, e, op),
                                                            edge_tensors(stateT, cell, e, op))
    except KeyError as err:
        raise RlnasError(f"checkpoint is not a DARTS supernet: missing tensor {err}") from None
    return names, stats


def darts_multiplicity(archs: np.ndarray) -> np.ndarray:
    """m[a, p]: how often piece p occurs in v_a. An edge occurs once per valid path (no `none`
    edge) through it, in every cell of its type; the fixed piece occurs once if any path of
    either cell type is valid (else v_a is empty and the angle is 0)."""
    archs = np.asarray(archs, dtype=np.int64).reshape(-1, NUM_GENES)
    n = archs.shape[0]
    a = archs.reshape(n, 2, NUM_EDGES)
    is_none = (a == NONE).astype(np.float64)
    valid = (is_none @ _ON_PATH.T) == 0                       # (n, 2, 30)
    uses = valid.astype(np.float64) @ _ON_PATH                # (n, 2, 14)
    onehot = a[..., None] == np.asarray(PIECE_OPS)[None, None, None, :]  # (n, 2, 14, 7)
    m = np.empty((n, 1 + NUM_GENES * len(PIECE_OPS)))
    m[:, 0] = valid.any(axis=(1, 2))
    m[:, 1:] = (uses[..., None] * onehot).reshape(n, -1)
    return m
