"""The building blocks several spaces share, defined once: ReLU-conv-BN (NB201's edges and
ResNet blocks, DARTS's cell preprocessing), the identity op of a skip, the inverted residual of
the MobileNet and NAS-Bench-Macro spaces and the conv-BN-activation of their stems and heads.
Their parameter names are those the spaces' checkpoints hold (a ``Sequential``'s indices)."""
from __future__ import annotations

from typing import List, Optional, Type

import torch.nn as nn

from ..errors import RlnasError


class ReLUConvBN(nn.Sequential):
    """ReLU, conv (no bias; padding ``kernel // 2`` unless given), BN (``affine``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1,
                 padding: Optional[int] = None, affine: bool = True):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_out, kernel, stride,
                                   kernel // 2 if padding is None else padding, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine, track_running_stats=True))


class Identity(nn.Module):
    """The skip op: its input unchanged; only where a block keeps the shape."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        if c_in != c_out or stride != 1:
            raise RlnasError(f"an identity needs a block that keeps its shape, but this one maps "
                             f"{c_in} -> {c_out} channels with stride {stride}")
        self.channels = c_in

    def forward(self, x):
        return x


def conv_bn_act(c_in: int, c_out: int, kernel: int, stride: int,
                activation: Type[nn.Module]) -> List[nn.Module]:
    """Conv (no bias, padding ``kernel // 2``), BN, ``activation`` (in place): the layers of a
    stem or head, to be put in a ``Sequential``."""
    return [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
            nn.BatchNorm2d(c_out), activation(inplace=True)]


class InvertedResidual(nn.Module):
    """MobileNetV2's block (``conv``: [1x1 expand, BN, act,] kxk depthwise with the stride, BN,
    act, 1x1 linear, BN; no expand conv when ``expand`` is 1), the input added where the stride
    is 1 and ``c_in == c_out``. ``activation``: ReLU6 (MobileNet) or ReLU (NAS-Bench-Macro)."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int, expand: int,
                 activation: Type[nn.Module] = nn.ReLU6):
        super().__init__()
        hidden = c_in * expand
        expand_layers = [] if expand == 1 else [
            nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
            activation(inplace=True)]
        self.conv = nn.Sequential(
            *expand_layers,
            nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), activation(inplace=True),
            nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)
