"""NAS-Bench-Macro (Su et al., CVPR 2021, arXiv 2103.11922): a MobileNetV2-like chain of 8
searchable layers x 3 candidate blocks, every one of its 6,561 architectures trained on CIFAR-10
(``nas-bench-macro_cifar10.json``), declared with the choice-block API (``choice.py``).

The benchmark's network exactly (its ``train/model.py``; the parameter count of all 6,561 keys
equals the file's ``params``):

* stem: conv3x3 3->32 (stride 1, no bias), BN, ReLU;
* stages of [2, 3, 3] layers; the first layer of each stage has stride 2 and doubles the
  channels (32->64, 64->128, 128->256), the others keep the shape;
* ops: ``id`` (code 0): in a first-of-stage layer conv1x1 (stride 2, no bias) + BN, elsewhere a
  true identity; ``mb3_k3`` (code 1) and ``mb6_k5`` (code 2): inverted residual with expansion
  3 / 6 and kernel 3 / 5 (conv1x1, BN, ReLU, depthwise kxk, BN, ReLU, conv1x1, BN; the input
  added where the shape is kept);
* head: conv1x1 256->1280 (no bias), BN, ReLU, global average pooling, Linear(1280, 10).

Notation: the benchmark's 8-digit key, one digit per layer (``'22212220'``); op names separated
by spaces are read too. FLOPs follow the benchmark file's convention (``flops``): convolution
multiply-accumulates plus in x out for the classifier; rlnas's thop convention for other spaces
counts the classifier as (2 in - 1) out, 12,790 more for every key (``cost(..., thop=True)``).

Identity canonicalisation: a stride-1 identity is a no-op, so its position inside a stage does not
change the network. The benchmark moves every identity of a non-first layer to the end of its
stage before training, and keys that become the same network carry the same numbers: the 6,561
keys are 3,969 distinct networks. :meth:`MacroSpace.canonical` gives that network's key
(``'01102120'`` -> ``'01120120'``); reports over the benchmark count each network once.

Angle: the choice-space default (conv weights + BN weight/bias of every op; the true identity
contributes the constant eye(C), spec 4.3); the fixed stem and head the same rule.
"""
from __future__ import annotations

import functools
from typing import List, Sequence

import numpy as np
import torch.nn as nn

from ..errors import RlnasError
from .choice import Choice, ChoiceSpace, Op, angle_tensors, identity_angle
from .ops import InvertedResidual, conv_bn_act
from .registry import register_space

STAGES = (2, 3, 3)  # layers per stage; the first of each has stride 2 and doubles the channels
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
OP_NAMES = ("id", "mb3_k3", "mb6_k5")  # key digits 0, 1, 2


class MacroIdentity(nn.Module):
    """The benchmark's ``Identity``: conv1x1 + BN where the layer changes the shape, else the input
    unchanged."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.channels = c_out
        self.downsample = None if (stride == 1 and c_in == c_out) else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return x if self.downsample is None else self.downsample(x)


def macro_identity_angle(module: MacroIdentity):
    """eye(C) for the true identity (the skip surrogate of spec 4.3), else the conv1x1 + BN."""
    return identity_angle(module) if module.downsample is None else angle_tensors(module)


OPS = (Op("id", MacroIdentity, angle=macro_identity_angle, code="0"),
       Op("mb3_k3", functools.partial(InvertedResidual, expand=3, kernel=3, activation=nn.ReLU),
          code="1"),
       Op("mb6_k5", functools.partial(InvertedResidual, expand=6, kernel=5, activation=nn.ReLU),
          code="2"))

# the classifier's FLOPs: the file counts in x out, the thop rule of the choice spaces
# (2 in - 1) out
_CLASSIFIER_THOP_EXTRA = HEAD_CHANNELS - 1


def _stem() -> nn.Module:
    return nn.Sequential(*conv_bn_act(3, STEM_CHANNELS, 3, 1, nn.ReLU))


def _head(num_classes: int, dropout: float) -> nn.Module:
    c = STEM_CHANNELS * 2 ** len(STAGES)
    return nn.Sequential(*conv_bn_act(c, HEAD_CHANNELS, 1, 1, nn.ReLU), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(),
                         nn.Dropout(dropout), nn.Linear(HEAD_CHANNELS, num_classes))


class MacroSpace(ChoiceSpace):
    """NAS-Bench-Macro's space (module docstring): 8-digit keys, identity canonicalisation, the
    benchmark file's FLOPs convention."""

    def __init__(self, input_size: int = 32, num_classes: int = 10):
        blocks, c = [], STEM_CHANNELS
        for n in STAGES:
            c *= 2
            blocks += [Choice(OPS, c, 2 if i == 0 else 1) for i in range(n)]
        super().__init__("nasbench-macro", stem=_stem, blocks=blocks, head=_head,
                         input_size=input_size, num_classes=num_classes)
        # layer index -> (first layer of its stage, one past its last)
        self.stage_of = [(s, s + n) for s, n in zip(np.cumsum((0,) + STAGES[:-1]), STAGES)
                         for _ in range(n)]

    # --- notation: the benchmark's 8-digit key ---------------------------------------------
    def to_str(self, arch) -> str:
        return "".join(str(v) for v in self._check(arch))

    def from_str(self, text: str):
        if isinstance(text, str) and text.strip().isdigit():
            key = text.strip()
            if len(key) != self.num_genes or set(key) - set("012"):
                raise RlnasError(f"malformed nasbench-macro key {text!r}: expected "
                                 f"{self.num_genes} digits 0 (id), 1 (mb3_k3) or 2 (mb6_k5)")
            return tuple(int(ch) for ch in key)
        return super().from_str(text)

    # --- identity canonicalisation ---------------------------------------------------------
    def canonical(self, arch) -> tuple:
        """The key of the network ``arch`` builds: in every stage, identities of non-first layers
        moved to the end (the benchmark's rule; such keys carry the same numbers)."""
        arch = list(self._check(arch))
        start = 0
        for n in STAGES:
            rest = arch[start + 1:start + n]
            arch[start + 1:start + n] = [v for v in rest if v != 0] + [v for v in rest if v == 0]
            start += n
        return tuple(arch)

    def canonical_batch(self, archs) -> np.ndarray:
        return np.array([self.canonical(a) for a in self.genome_array(archs)], dtype=np.int64)

    # --- cost in the benchmark's convention ------------------------------------------------
    def cost(self, archs, input_size=None, num_classes=None, thop: bool = False):
        """Params (M) and FLOPs (M) as the benchmark file counts them (``thop``: the classifier
        counted (2 in - 1) out, as the other spaces)."""
        out = super().cost(archs, input_size, num_classes)
        if not thop:
            classes = int(num_classes or self.num_classes)
            out["flops"] = out["flops"] - classes * _CLASSIFIER_THOP_EXTRA / 1e6
        return out

    def cost_bounds(self, input_size=None, num_classes=None):
        bounds = super().cost_bounds(input_size, num_classes)
        shift = int(num_classes or self.num_classes) * _CLASSIFIER_THOP_EXTRA / 1e6
        bounds["flops"] = tuple(v - shift for v in bounds["flops"])
        return bounds


@register_space("nasbench-macro")
@functools.lru_cache(maxsize=None)
def macro_space(input_size: int = 32, num_classes: int = 10) -> MacroSpace:
    """NAS-Bench-Macro at the benchmark's size (32x32 CIFAR-10)."""
    return MacroSpace(input_size=input_size, num_classes=num_classes)


def canonical_keys(keys: Sequence[str]) -> List[str]:
    """The canonical key of each benchmark key (helper for tables)."""
    space = macro_space()
    return [space.to_str(space.canonical(space.from_str(k))) for k in keys]
