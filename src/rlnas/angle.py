"""The RLNAS angle metric, computed by piece decomposition.

theta(a) = arccos(<v_a(W0), v_a(WT)> / (|v_a(W0)| |v_a(WT)|)), where v_a concatenates the
tensors arch ``a`` uses (spec section 4). The dot product and squared norms of a concatenation
are sums over its parts, so each space splits v_a into pieces p with per-run statistics
(d_p, n0_p, nT_p) and per-arch multiplicities m_p(a); scoring N archs is one (N x P) @ (P x 3)
product in float64. An arch with an empty vector (every path dropped) scores 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

import numpy as np
import torch

from .errors import RlnasError


@dataclass
class AngleScorer:
    """Angle of any batch of archs of ``space`` between the two weight sets it was built from."""

    space: object
    names: List[str]
    stats: np.ndarray  # (P, 3): d, n0, nT

    @classmethod
    def from_states(cls, space, state0: Dict[str, torch.Tensor], stateT: Dict[str, torch.Tensor]):
        if set(state0) != set(stateT):
            raise RlnasError("the initial and final checkpoints hold different tensors; "
                             "they are not from the same supernet")
        names, stats = space.angle_pieces(state0, stateT)
        return cls(space, names, stats)

    def __call__(self, archs: np.ndarray) -> np.ndarray:
        return angles_from_pieces(self.space.angle_multiplicity(archs), self.stats)


def angles_from_pieces(mult: np.ndarray, stats: np.ndarray) -> np.ndarray:
    sums = np.asarray(mult, dtype=np.float64) @ np.asarray(stats, dtype=np.float64)  # (N, 3)
    denom = np.sqrt(sums[:, 1] * sums[:, 2])
    out = np.zeros(len(sums))
    ok = denom > 0
    out[ok] = np.arccos(np.clip(sums[ok, 0] / denom[ok], -1.0, 1.0))
    return out


def angle_between(v0: torch.Tensor, vT: torch.Tensor) -> float:
    """arccos of the cosine of two explicit vectors (float64); 0 for empty vectors."""
    if v0.numel() == 0:
        return 0.0
    v0, vT = v0.double(), vT.double()
    cos = float(v0 @ vT) / float(torch.sqrt((v0 @ v0) * (vT @ vT)))
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))
