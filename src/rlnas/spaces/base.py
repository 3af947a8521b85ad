"""The search-space interface that every searcher, scorer and command uses.

An architecture ("arch") is a tuple of ints, one per decision (a *genome*). A batch of archs is an
int64 array of shape (N, num_genes). Nothing outside a space module knows its parameter names.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

Arch = Tuple[int, ...]


class SearchSpace:
    """Base class. Subclasses set ``name``, ``num_genes`` and implement the methods below."""

    name: str = ""
    num_genes: int = 0

    # --- genome -------------------------------------------------------------------------
    def gene_choices(self, gene: int) -> Sequence[int]:
        """Values gene ``gene`` may take."""
        raise NotImplementedError

    def mutation_choices(self, gene: int) -> Sequence[int]:
        """Values a mutation may set gene ``gene`` to (NB201 never mutates to ``none``)."""
        return self.gene_choices(gene)

    def sample(self, rng: np.random.Generator) -> Arch:
        """One arch drawn uniformly (then repaired where the space has validity rules)."""
        arch = tuple(int(rng.choice(self.gene_choices(g))) for g in range(self.num_genes))
        return self.repair(arch, rng)

    def mutate(self, arch: Arch, rng: np.random.Generator, prob: float) -> Arch:
        """Each gene is redrawn from ``mutation_choices`` with probability ``prob``."""
        out = list(arch)
        for g in range(self.num_genes):
            if rng.random() < prob:
                out[g] = int(rng.choice(self.mutation_choices(g)))
        return self.repair(tuple(out), rng)

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
        """Uniform crossover: each gene from ``a`` or ``b`` with probability 1/2."""
        out = tuple(int(x if rng.random() < 0.5 else y) for x, y in zip(a, b))
        return self.repair(out, rng)

    def repair(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """Make ``arch`` valid (DARTS: two inputs per node). Identity where every genome is valid."""
        return arch

    def is_valid(self, arch: Arch) -> bool:
        return len(arch) == self.num_genes and all(
            int(v) in self.gene_choices(g) for g, v in enumerate(arch))

    # --- notation -----------------------------------------------------------------------
    def to_str(self, arch: Arch) -> str:
        raise NotImplementedError

    def from_str(self, text: str) -> Arch:
        """Parse the field's notation; raises RlnasError on a malformed or out-of-space string."""
        raise NotImplementedError

    # --- enumeration and cost -----------------------------------------------------------
    def enumerate(self) -> Optional[np.ndarray]:
        """All archs as an (N, num_genes) array where the space is small, else None."""
        return None

    def cost(self, archs: np.ndarray, **model_kwargs) -> Dict[str, np.ndarray]:
        """{'params': M params, 'flops': M FLOPs} per arch of an (N, num_genes) array."""
        raise NotImplementedError

    def cost_defaults(self, info: Dict) -> Dict:
        """``cost`` kwargs for reports and limits of a run (``info`` = the run's run.json)."""
        return {}
