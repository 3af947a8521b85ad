"""The paper's MobileNet-like space (ProxylessNAS GPU space; spec 3.4, 4.3, 5, 6.3, 7.3),
declared with the choice-block API (``choice.py``).

Stem Conv3x3 s2 3->40 + BN + ReLU6 and a fixed MBConv (expand 1, k3) 40->24; 21 choice blocks in
stages (c, n, s) = (32,4,2) (56,4,2) (112,4,2) (128,4,1) (256,4,2) (432,1,1); head Conv1x1 to
4 x 432 = 1728 + BN + ReLU6, global average pooling, dropout (retraining only), Linear.

Ops 0..5 = k3e3, k3e6, k5e3, k5e6, k7e3, k7e6 (MBConv: 1x1 expand + BN + ReLU6, kxk depthwise +
BN + ReLU6, 1x1 linear + BN, residual where stride 1 and C_in = C_out), and skip (identity, code
-1) on the 15 blocks that keep their shape: not on block 0 nor on the first block of each later
stage (4, 8, 12, 16, 20). The genome holds each block's op index (skip = 6); the notation is the
official ``model_id``, e.g. ``'2 0 -1 2 2 0 2 4 0 4 4 2 4 2 4 2 0 0 0 2 2'`` (Table 5).

Angle (spec 4.3, the official ``get_arch_vector``): fixed parts weights only (stem conv, the
fixed block's depthwise and pointwise convs, the 1x1 head conv, the classifier weight: no BN, no
bias); an MBConv adds its expand conv + BN1 weight/bias, depthwise conv + BN2 weight/bias and
linear conv (BN3 excluded); skip adds the constant eye(C). Cost: params of the standalone network
(BN included), FLOPs = conv multiply-adds + the classifier's (2 in - 1) out at 224x224 and 1000
classes; the published arch costs 5.256 M params and 473.2 M FLOPs (spec 7.3).
"""
from __future__ import annotations

import functools
from typing import List

import torch.nn as nn

from .choice import Choice, ChoiceSpace, Op, skip, weights_only
from .ops import InvertedResidual, conv_bn_act
from .registry import register_space

STAGES = ((32, 4, 2), (56, 4, 2), (112, 4, 2), (128, 4, 1), (256, 4, 2), (432, 1, 1))
KERNELS_EXPANSIONS = ((3, 3), (3, 6), (5, 3), (5, 6), (7, 3), (7, 6))  # op codes 0..5
PUBLISHED = "2 0 -1 2 2 0 2 4 0 4 4 2 4 2 4 2 0 0 0 2 2"  # spec 6.3 / 7.5


def mbconv_angle(module: InvertedResidual) -> List[str]:
    """Expand conv + BN1 w/b, depthwise conv + BN2 w/b, linear conv; BN3 excluded (spec 4.3)."""
    return ["conv.0.weight", "conv.1.weight", "conv.1.bias", "conv.3.weight", "conv.4.weight",
            "conv.4.bias", "conv.6.weight"]


OPS = tuple(Op(f"k{k}e{e}", functools.partial(InvertedResidual, kernel=k, expand=e),
               angle=mbconv_angle,
               code=str(i)) for i, (k, e) in enumerate(KERNELS_EXPANSIONS))
SKIP = skip(code="-1")


@register_space("mobilenet")
@functools.lru_cache(maxsize=None)
def mobilenet_space(width: float = 1.0, input_size: int = 224,
                    num_classes: int = 1000) -> ChoiceSpace:
    """The space at the paper's size (``get_space('mobilenet')``), or with every channel count
    scaled by ``width`` (rounded to a multiple of 8) and costs reported at ``input_size`` for
    reduced runs; name such a space in a config as ``mypkg.mymodule:SPACE``."""
    def ch(c: int) -> int:
        return c if width == 1.0 else max(8, int(round(c * width / 8)) * 8)

    blocks = []
    for c, n, s in STAGES:
        blocks += [Choice(OPS + ((SKIP,) if i else ()), ch(c), s if i == 0 else 1)
                   for i in range(n)]
    c_stem, c_first, c_last = ch(40), ch(24), ch(STAGES[-1][0])
    paper = (width, input_size, num_classes) == (1.0, 224, 1000)
    return ChoiceSpace(
        "mobilenet" if paper else f"mobilenet-w{width:g}-{input_size}px-{num_classes}",
        stem=lambda: nn.Sequential(*conv_bn_act(3, c_stem, 3, 2, nn.ReLU6),
                                   InvertedResidual(c_stem, c_first, 1, kernel=3, expand=1)),
        blocks=blocks,
        head=lambda classes, dropout: nn.Sequential(
            *conv_bn_act(c_last, 4 * c_last, 1, 1, nn.ReLU6), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Dropout(dropout), nn.Linear(4 * c_last, classes)),
        input_size=input_size, num_classes=num_classes, fixed_angle=weights_only)
