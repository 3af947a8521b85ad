"""NAS-Bench-201 search space (spec sections 3.1, 4.1): genome, notation, supernet, cost, angle
pieces.

A cell is a DAG on 4 nodes with 6 edges in the order (1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2);
node i is the sum of its incoming edges and node 3 is the output. A genome is 6 op indices:
0 none, 1 skip_connect, 2 nor_conv_1x1, 3 nor_conv_3x3, 4 avg_pool_3x3 (5^6 = 15,625 cells).
"""
from __future__ import annotations

import itertools
import re
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..angle import STATS, vector_stats
from ..errors import RlnasError
from .base import Arch, SearchSpace, refuse_model_options
from .ops import ReLUConvBN
from .registry import register_space

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NONE, SKIP, CONV1, CONV3, POOL = range(5)
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from), genome order
EDGE_INDEX = {e: k for k, e in enumerate(EDGES)}
# Every input->output path of the cell as edge indices ([0,3], [0,2,3], [0,1,2,3], [0,1,3]).
PATHS = ((3,), (1, 5), (0, 2, 5), (0, 4))
NUM_ARCHS = 5 ** 6

_MODEL_OPTIONS = ("num_classes", "channels", "cells")  # of supernet() and network()

_ARCH_RE = re.compile(r"^\|(.+)\|\+\|(.+)\|\+\|(.+)\|$")


def valid_paths(arch: Sequence[int]) -> List[Tuple[int, ...]]:
    """The cell paths that contain no ``none`` edge."""
    return [p for p in PATHS if all(arch[e] != NONE for e in p)]


def _live_path_ops(arch_strs):
    """Per arch string, the ops of each input->output path without a ``none`` edge, or None
    for a string that is not an NB201 arch string."""
    if isinstance(arch_strs, str):
        arch_strs = [arch_strs]
    for a in arch_strs:
        if not isinstance(a, str):
            yield None
            continue
        toks = [t for t in a.strip().replace("+", "").split("|") if t]
        if len(toks) != 6 or not all("~" in t for t in toks):
            yield None
            continue
        ops = [t.split("~")[0] for t in toks]  # genome (edge) order, as NB201Space.to_str
        yield [[ops[e] for e in path] for path in PATHS if all(ops[e] != "none" for e in path)]


def nb201_disconnected(arch_strs) -> np.ndarray:
    """Boolean mask: True for an NB201 cell with no input->output path (every path holds a
    ``none`` edge). Such a cell's network ignores its input (NB201 accuracy ~10 % on CIFAR-10,
    an angle of 0). Strings that are not NB201 arch strings count as connected."""
    return np.array([live is not None and not live for live in _live_path_ops(arch_strs)],
                    dtype=bool)


def nb201_conv_free(arch_strs) -> np.ndarray:
    """Boolean mask: True for a connected NB201 cell with no convolution on any input->output
    path (only skip_connect / avg_pool_3x3 there): its cells train no weight the output uses,
    so the angle and distance scorers give it 0. Other strings: False."""
    return np.array([bool(live) and not any("conv" in op for path in live for op in path)
                     for live in _live_path_ops(arch_strs)], dtype=bool)


# ----------------------------------------------------------------------------------------------
# The space
# ----------------------------------------------------------------------------------------------
@register_space("nb201")
class NB201Space(SearchSpace):
    num_genes = 6

    def gene_choices(self, gene: int) -> Sequence[int]:
        return range(5)

    def mutation_choices(self, gene: int) -> Sequence[int]:
        return range(1, 5)  # the official EA never mutates to `none`

    def to_str(self, arch: Arch) -> str:
        self._check(arch)
        ops = [f"{OPS[arch[EDGE_INDEX[(i, j)]]]}~{j}" for i in (1, 2, 3) for j in range(i)]
        return f"|{ops[0]}|+|{ops[1]}|{ops[2]}|+|{ops[3]}|{ops[4]}|{ops[5]}|"

    def from_str(self, text: str) -> Arch:
        if not isinstance(text, str):
            raise RlnasError(f"an NB201 arch must be text, got {type(text).__name__}")
        m = _ARCH_RE.match(text.strip())
        if not m:
            raise RlnasError(f"malformed NB201 arch string {text!r}: expected "
                             "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'")
        genome = [0] * 6
        for i, group in enumerate(m.groups(), start=1):
            items = group.split("|")
            if len(items) != i:
                raise RlnasError(f"malformed NB201 arch string {text!r}: node {i} needs {i} inputs")
            for j, item in enumerate(items):
                op, _, src = item.partition("~")
                if op not in OPS:
                    raise RlnasError(f"unknown NB201 op {op!r} in {text!r}; "
                                     f"known: {', '.join(OPS)}")
                if src != str(j):
                    raise RlnasError(f"malformed NB201 arch string {text!r}: "
                                     f"expected input ~{j} at node {i}, got {item!r}")
                genome[EDGE_INDEX[(i, j)]] = OPS.index(op)
        return tuple(genome)

    def _check(self, arch):
        if not self.is_valid(arch):
            raise RlnasError(f"not an NB201 genome: {arch!r} (6 ints in 0..4)")

    def enumerate(self) -> np.ndarray:
        return np.array(list(itertools.product(range(5), repeat=6)), dtype=np.int64)

    # --- cost ------------------------------------------------------------------------------
    def cost(self, archs: np.ndarray, channels: int = 16, cells: int = 5, num_classes: int = 10,
             image_size: int = 32) -> Dict[str, np.ndarray]:
        """Params (M) and FLOPs (M) of the standalone NB201 network, counted as NB201 does:
        conv weights + BN affine + classifier for params; Conv2d and Linear multiply-adds
        (bias included) for FLOPs; pooling, skip and none are free."""
        archs = self.genome_array(archs)
        t = cost_table(channels, cells, num_classes, image_size)
        n1 = (archs == CONV1).sum(1)
        n3 = (archs == CONV3).sum(1)
        return {k: (t[k][0] + t[k][1] * n1 + t[k][2] * n3) / 1e6 for k in ("params", "flops")}

    def cost_defaults(self, info: Dict) -> Dict:
        """The benchmark network (C=16, N=5) on the run's dataset (its own classes, not the K of
        the random labels)."""
        return {"num_classes": int(info.get("dataset_classes", info["num_classes"])),
                "image_size": int(info["image_size"])}

    def arch_diagram(self, arch: Arch) -> Dict:
        """The cell as a graph: nodes 0 (input) to 3 (output), one edge per op that is not
        ``none`` (node i sums its incoming edges)."""
        self._check(arch)
        return {"kind": "cells", "cells": [{
            "title": "NB201 cell (every cell of the network)", "inputs": 1,
            "nodes": ["0\ninput", "1", "2", "3\noutput"],
            "edges": [(j, i, OPS[arch[k]]) for k, (i, j) in enumerate(EDGES)
                      if arch[k] != NONE]}]}

    # --- models ----------------------------------------------------------------------------
    def supernet(self, num_classes: int = 10, *, channels: int = 16, cells: int = 5,
                 **unknown) -> "NB201Supernet":
        """The weight-sharing supernet (``forward(x, path)``: one genome, or one per searchable
        cell).

        Args:
            num_classes: classifier outputs.
            channels: C of the first stage (doubled at each of the two reductions).
            cells: searchable cells per stage (N).
            **unknown: refused.

        Returns:
            the ``NB201Supernet``.
        """
        refuse_model_options(self.name, "supernet", unknown, _MODEL_OPTIONS)
        return NB201Supernet(channels, cells, num_classes)

    def network(self, arch: Arch, num_classes: int = 10, *, channels: int = 16, cells: int = 5,
                **unknown) -> "NB201Network":
        """The standalone network of one cell (BN affine, as the benchmark's).

        Args:
            arch: a valid genome.
            num_classes, channels, cells: as ``supernet``.
            **unknown: refused.

        Returns:
            the ``NB201Network``.
        """
        refuse_model_options(self.name, "network", unknown, _MODEL_OPTIONS)
        self._check(arch)
        return NB201Network(tuple(arch), channels, cells, num_classes)

    def sample_training_path(self, seed: int, step: int, num_cells: int) -> np.ndarray:
        return sample_urs(seed, step, num_cells)

    # --- angle -----------------------------------------------------------------------------
    def angle_pieces(self, state0: Dict[str, torch.Tensor], stateT: Dict[str, torch.Tensor]):
        return nb201_angle_pieces(state0, stateT)

    def angle_multiplicity(self, archs: np.ndarray) -> np.ndarray:
        return nb201_multiplicity(archs)


def cost_table(channels: int, cells: int, num_classes: int, image_size: int):
    """(fixed, per nor_conv_1x1 edge, per nor_conv_3x3 edge) counts for params and FLOPs."""
    C, H, K = channels, image_size, num_classes
    stage = [(C * 2 ** s, (H // 2 ** s) ** 2) for s in range(3)]  # (channels, spatial positions)
    p1 = sum(cells * (c * c + 2 * c) for c, _ in stage)
    p3 = sum(cells * (9 * c * c + 2 * c) for c, _ in stage)
    f1 = sum(cells * c * c * hw for c, hw in stage)
    f3 = sum(cells * 9 * c * c * hw for c, hw in stage)
    p0 = 27 * C + 2 * C  # stem conv + BN
    f0 = 27 * C * stage[0][1]
    for (ci, _), (co, hw) in zip(stage[:-1], stage[1:]):  # ResNet reduction blocks
        p0 += 9 * ci * co + 2 * co + 9 * co * co + 2 * co + ci * co
        f0 += (9 * ci * co + 9 * co * co + ci * co) * hw
    cl = stage[-1][0]
    p0 += 2 * cl + cl * K + K  # lastact BN + classifier
    f0 += cl * K + K
    return {"params": (p0, p1, p3), "flops": (f0, f1, f3)}


def sample_urs(seed: int, step: int, num_cells: int) -> np.ndarray:
    """Per-cell uniform random sampling ('urs'): a (num_cells, 6) array of op indices.

    For each node, one op per incoming edge is drawn uniformly; a node whose edges all drew
    `none` is redrawn. A pure function of (seed, step): every DDP rank and every resumed run
    draws the same path for the same global step without saving any sampler state.
    """
    rng = np.random.default_rng([int(seed), int(step)])
    out = np.empty((num_cells, 6), dtype=np.int64)
    for c in range(num_cells):
        for node, idx in ((1, [0]), (2, [1, 2]), (3, [3, 4, 5])):
            while True:
                draw = rng.integers(0, 5, size=node)
                if (draw != NONE).any():
                    break
            out[c, idx] = draw
    return out


# ----------------------------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------------------------
class ResNetBlock(nn.Module):
    """NB201's stride-2 ResNet basic block between stages (BN affine)."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x):
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class Edge(nn.Module):
    """All parametric candidates of one edge; skip and none need no module."""

    def __init__(self, c, affine):
        super().__init__()
        self.conv1x1 = ReLUConvBN(c, c, 1, affine=affine)
        self.conv3x3 = ReLUConvBN(c, c, 3, affine=affine)

    def forward(self, x, op: int):
        if op == CONV1:
            return self.conv1x1(x)
        if op == CONV3:
            return self.conv3x3(x)
        if op == POOL:
            return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        return x  # skip_connect


class _Edge1(nn.Module):
    """One fixed op (standalone network)."""

    def __init__(self, c, op):
        super().__init__()
        self.op = op
        if op == CONV1:
            self.conv1x1 = ReLUConvBN(c, c, 1)
        elif op == CONV3:
            self.conv3x3 = ReLUConvBN(c, c, 3)

    def forward(self, x):
        return Edge.forward(self, x, self.op)


def cell_forward(edge_fn, x, arch):
    """Run one cell: node i = sum of non-`none` edges into it; a node with no input is zero."""
    nodes = [x]
    for i in (1, 2, 3):
        acc = None
        for j in range(i):
            e = EDGE_INDEX[(i, j)]
            if arch[e] == NONE:
                continue  # `none` is skipped, not multiplied by zero
            y = edge_fn(e, nodes[j])
            acc = y if acc is None else acc + y
        nodes.append(torch.zeros_like(x) if acc is None else acc)
    return nodes[3]


class SearchCell(nn.Module):
    def __init__(self, c):
        super().__init__()
        # cell BN is non-affine in the supernet (spec 3.1)
        self.edges = nn.ModuleList(Edge(c, affine=False) for _ in EDGES)

    def forward(self, x, arch):
        return cell_forward(lambda e, h: self.edges[e](h, int(arch[e])), x, arch)


class InferCell(nn.Module):
    def __init__(self, c, arch):
        super().__init__()
        self.arch = tuple(arch)
        self.edges = nn.ModuleList(_Edge1(c, op) for op in self.arch)

    def forward(self, x):
        return cell_forward(lambda e, h: self.edges[e](h), x, self.arch)


class _Macro(nn.Module):
    """Stem, 3 stages of cells with ResNet blocks between them, BN-ReLU, GAP, linear."""

    def __init__(self, channels, cells, num_classes, make_cell):
        super().__init__()
        self.channels, self.cells_per_stage, self.num_classes = channels, cells, num_classes
        C = channels
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers, self.searchable = [], []
        for s in range(3):
            c = C * 2 ** s
            if s > 0:
                layers.append(ResNetBlock(c // 2, c))
            for _ in range(cells):
                self.searchable.append(len(layers))
                layers.append(make_cell(c))
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(4 * C), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(4 * C, num_classes)

    @property
    def num_search_cells(self):
        return 3 * self.cells_per_stage

    def _head(self, x):
        x = self.lastact(x)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class NB201Supernet(_Macro):
    """Weight-sharing supernet. ``forward(x, arch)`` runs one path: ``arch`` is one genome
    shared by all searchable cells, or one genome per searchable cell (shape (cells*3, 6))."""

    def __init__(self, channels=16, cells=5, num_classes=10):
        super().__init__(channels, cells, num_classes, SearchCell)

    def forward(self, x, arch):
        archs = np.asarray(arch, dtype=np.int64)
        if archs.ndim == 1:
            archs = np.broadcast_to(archs, (self.num_search_cells, 6))
        x = self.stem(x)
        k = 0
        for cell in self.cells:
            if isinstance(cell, SearchCell):
                x = cell(x, archs[k])
                k += 1
            else:
                x = cell(x)
        return self._head(x)


class NB201Network(_Macro):
    """Standalone NB201 network for one cell (BN affine, as in the benchmark's trained nets)."""

    def __init__(self, arch, channels=16, cells=5, num_classes=10):
        self.arch = tuple(arch)
        super().__init__(channels, cells, num_classes, lambda c: InferCell(c, self.arch))

    def forward(self, x):
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self._head(x)


# ----------------------------------------------------------------------------------------------
# Angle pieces (spec 4.1, DESIGN "The angle, computed fast and exactly")
# ----------------------------------------------------------------------------------------------
_PIECE_OPS = (CONV1, CONV3, POOL)


def piece_names() -> List[str]:
    return ["fixed"] + [f"edge{i}<-{j}:{OPS[op]}" for (i, j) in EDGES for op in _PIECE_OPS]


def fixed_keys(state: Dict[str, torch.Tensor]) -> List[str]:
    """Stem conv + BN, the ResNet blocks' conv_a/conv_b conv + BN and downsample conv, lastact BN
    and classifier: the parts every arch uses (spec 4.1)."""
    keys = ["stem.0.weight", "stem.1.weight", "stem.1.bias"]
    blocks = sorted({k.split(".")[1] for k in state if k.startswith("cells.") and ".conv_a." in k},
                    key=int)
    for b in blocks:
        keys += [f"cells.{b}.conv_a.1.weight", f"cells.{b}.conv_a.2.weight",
                 f"cells.{b}.conv_a.2.bias", f"cells.{b}.conv_b.1.weight",
                 f"cells.{b}.conv_b.2.weight", f"cells.{b}.conv_b.2.bias",
                 f"cells.{b}.downsample.1.weight"]
    keys += ["lastact.0.weight", "lastact.0.bias", "classifier.weight", "classifier.bias"]
    return keys


def search_cell_ids(state: Dict[str, torch.Tensor]) -> List[int]:
    return sorted({int(k.split(".")[1]) for k in state if ".edges." in k})


def edge_tensor(state, cell: int, edge: int, op: int) -> torch.Tensor:
    """The tensor an edge's op contributes: the conv weight, or the constant 1/9 kernel of shape
    [C_out, 3, 3] for pooling (shape borrowed from that edge's 3x3 conv, as the official code)."""
    if op == POOL:
        w = state[f"cells.{cell}.edges.{edge}.conv3x3.1.weight"]
        return torch.full((w.shape[0], 3, 3), 1.0 / 9.0, dtype=torch.float64)
    name = "conv1x1" if op == CONV1 else "conv3x3"
    return state[f"cells.{cell}.edges.{edge}.{name}.1.weight"]


def nb201_angle_pieces(state0, stateT) -> Tuple[List[str], np.ndarray]:
    """(names, stats) with stats[p] = (<u_p(W0), u_p(WT)>, |u_p(W0)|^2, |u_p(WT)|^2,
    |u_p(WT) - u_p(W0)|^2) in float64 (``rlnas.angle.STATS``).

    Piece 0 is every fixed tensor; piece (edge, op) sums that edge's op tensor over all
    searchable cells (the genotype is shared, so cells always use the same op per edge)."""
    stats = np.zeros((1 + 6 * len(_PIECE_OPS), len(STATS)))
    try:
        for k in fixed_keys(state0):
            stats[0] += vector_stats(state0[k], stateT[k])
        for cell in search_cell_ids(state0):
            for e in range(6):
                for m, op in enumerate(_PIECE_OPS):
                    stats[1 + 3 * e + m] += vector_stats(edge_tensor(state0, cell, e, op),
                                                   edge_tensor(stateT, cell, e, op))
    except KeyError as err:
        raise RlnasError(f"checkpoint is not an NB201 supernet: missing tensor {err}") from None
    return piece_names(), stats


def nb201_multiplicity(archs: np.ndarray) -> np.ndarray:
    """m[a, p]: how often piece p occurs in v_a. An edge occurs once per valid path through it;
    the fixed piece occurs once if any path is valid (else the arch scores 0)."""
    archs = np.asarray(archs, dtype=np.int64).reshape(-1, 6)
    ok = np.stack([np.all(archs[:, list(p)] != NONE, axis=1) for p in PATHS], 1)  # (N, 4)
    on_path = np.zeros((len(PATHS), 6))
    for k, p in enumerate(PATHS):
        on_path[k, list(p)] = 1
    uses = ok.astype(np.float64) @ on_path  # (N, 6): valid paths through each edge
    m = np.zeros((archs.shape[0], 1 + 6 * len(_PIECE_OPS)))
    m[:, 0] = ok.any(1)
    for e in range(6):
        for j, op in enumerate(_PIECE_OPS):
            m[:, 1 + 3 * e + j] = uses[:, e] * (archs[:, e] == op)
    return m
