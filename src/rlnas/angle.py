"""The RLNAS angle metric and its per-piece variants, computed by piece decomposition.

theta(a) = arccos(<v_a(W0), v_a(WT)> / (|v_a(W0)| |v_a(WT)|)), where v_a concatenates the
tensors arch ``a`` uses (spec section 4). The dot product and squared norms of a concatenation
are sums over its parts, so each space splits v_a into pieces p with per-run statistics
(d_p, n0_p, nT_p, and the squared distance moved) and per-arch multiplicities m_p(a); scoring N
archs is one (N x P) @ (P x 4) product in float64. An arch with an empty vector (every path
dropped) scores 0.

The same pieces define variants that look at each piece's own angle
theta_p = arccos(d_p / sqrt(n0_p nT_p)) (0 for a constant surrogate such as NB201's pooling
kernel) instead of hiding them in one long vector, where the fixed stem/head part and the
largest tensors dominate. ``S(a)`` is the set of searchable pieces (every piece but ``fixed``)
that arch ``a`` uses, m_p(a) > 0:

* ``angle``       the paper's angle of the concatenation (fixed part included);
* ``angle_cell``  the paper's formula over the searchable pieces only (fixed part left out);
* ``angle_mean``  sum_p m_p theta_p / sum_p m_p over S(a): the mean piece angle, each piece
                  weighted by how often the paper's path-wise vector repeats it;
* ``angle_sum``   sum_{p in S(a)} theta_p / sqrt(|S(a)|): the piece angles projected on the
                  arch's unit indicator vector, i.e. mean piece angle x sqrt(pieces used). It
                  grows with the number of moving pieces an arch uses (like size) and with how
                  far they moved (unlike size); see benchmarks/RESULTS.md for the measurements.

and, from the same statistics, variants that measure how far the weights moved rather than how
far they turned, with d_p = |u_p(WT) - u_p(W0)| = sqrt(nT_p + n0_p - 2 <u_p(W0), u_p(WT)>) the
Euclidean distance a piece's weights travelled (0 for a constant surrogate):

* ``distance``      sqrt(sum_{p in S(a)} d_p^2): the distance between the arch's searchable
                    weights before and after training, each piece once (beyond the paper);
* ``distance_sum``  sum_{p in S(a)} d_p / sqrt(|S(a)|): ``angle_sum`` with d_p for theta_p.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List

import numpy as np
import torch

from .errors import RlnasError

FIXED = "fixed"  # name of the piece that every arch uses (stem, reductions, head)


def _arccos_cosine(dot: np.ndarray, sq0: np.ndarray, sqT: np.ndarray) -> np.ndarray:
    """arccos(dot / sqrt(sq0 sqT)), elementwise; 0 where a norm is 0 (an empty vector)."""
    denom = np.sqrt(sq0 * sqT)
    out = np.zeros(len(denom))
    ok = denom > 0
    out[ok] = np.arccos(np.clip(dot[ok] / denom[ok], -1.0, 1.0))
    return out


STATS = ("dot", "sq0", "sqT", "sq_moved")  # the columns of a piece's statistics


def vector_stats(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """(<a, b>, |a|^2, |b|^2, |b - a|^2) of two tensors of one shape, in float64: the statistics
    of a piece (or of one of its tensors; they add over the tensors of a piece). The last is
    computed from the difference itself, so it stays exact when b barely differs from a."""
    a, b = a.detach().double().reshape(-1), b.detach().double().reshape(-1)
    diff = b - a
    return np.array([float(a @ b), float(a @ a), float(b @ b), float(diff @ diff)])


def piece_distances(stats: np.ndarray) -> np.ndarray:
    """d_p = |u_p(WT) - u_p(W0)| per piece (column ``sq_moved`` of its statistics)."""
    return np.sqrt(np.asarray(stats, dtype=np.float64)[:, 3])


def piece_angles(stats: np.ndarray) -> np.ndarray:
    """theta_p per piece from its (d, n0, nT); 0 where a norm is 0 (nothing to measure)."""
    stats = np.asarray(stats, dtype=np.float64)
    return _arccos_cosine(stats[:, 0], stats[:, 1], stats[:, 2])


def angles_from_pieces(mult: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """The angle of each arch's concatenated vector (rows of ``mult``)."""
    sums = np.asarray(mult, dtype=np.float64) @ np.asarray(stats, dtype=np.float64)  # (N, 3)
    return _arccos_cosine(sums[:, 0], sums[:, 1], sums[:, 2])


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(len(num))
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return out


def _angle(mult, stats, searchable):
    return angles_from_pieces(mult, stats)


def _angle_cell(mult, stats, searchable):
    return angles_from_pieces(mult * searchable, stats)


def _angle_mean(mult, stats, searchable):
    m = mult * searchable
    return _ratio(m @ piece_angles(stats), m.sum(1))


def _angle_sum(mult, stats, searchable):
    used = (mult * searchable > 0).astype(np.float64)
    return _ratio(used @ piece_angles(stats), np.sqrt(used.sum(1)))


def _distance(mult, stats, searchable):
    used = (mult * searchable > 0).astype(np.float64)
    return np.sqrt(used @ piece_distances(stats) ** 2)


def _distance_sum(mult, stats, searchable):
    used = (mult * searchable > 0).astype(np.float64)
    return _ratio(used @ piece_distances(stats), np.sqrt(used.sum(1)))


# name -> f(mult (N, P), stats (P, 4), searchable (P,) 0/1) -> scores (N,)
VARIANTS: Dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "angle": _angle, "angle_cell": _angle_cell, "angle_mean": _angle_mean,
    "angle_sum": _angle_sum, "distance": _distance, "distance_sum": _distance_sum,
}


@dataclass
class AngleScorer:
    """An angle variant of any batch of archs of ``space`` between the two weight sets it was
    built from (``variant``: a key of ``VARIANTS``; ``angle`` is the paper's)."""

    space: object
    names: List[str]
    stats: np.ndarray  # (P, 4): STATS
    variant: str = "angle"

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise RlnasError(f"unknown angle variant {self.variant!r}; known: "
                             f"{', '.join(VARIANTS)}")
        self.searchable = np.array([n != FIXED for n in self.names], dtype=np.float64)

    @classmethod
    def from_states(cls, space, state0: Dict[str, torch.Tensor], stateT: Dict[str, torch.Tensor],
                    variant: str = "angle"):
        if set(state0) != set(stateT):
            raise RlnasError("the initial and final checkpoints hold different tensors; "
                             "they are not from the same supernet")
        for which, state in (("initial", state0), ("final", stateT)):
            bad = [k for k, v in state.items() if v.is_floating_point() and
                   not bool(torch.isfinite(v).all())]
            if bad:
                raise RlnasError(f"the {which} checkpoint holds non-finite weights ({bad[0]}); "
                                 "the supernet diverged, so its angles mean nothing")
        names, stats = space.angle_pieces(state0, stateT)
        return cls(space, names, stats, variant)

    def __call__(self, archs: np.ndarray) -> np.ndarray:
        mult = np.asarray(self.space.angle_multiplicity(archs), dtype=np.float64)
        return VARIANTS[self.variant](mult, self.stats, self.searchable)


def angle_between(v0: torch.Tensor, vT: torch.Tensor) -> float:
    """arccos of the cosine of two explicit vectors (float64); 0 for empty vectors."""
    if v0.numel() == 0:
        return 0.0
    v0, vT = v0.double(), vT.double()
    cos = float(v0 @ vT) / float(torch.sqrt((v0 @ v0) * (vT @ vT)))
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))
