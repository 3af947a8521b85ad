"""The search-space contract: everything a searcher, scorer or command asks of a space.

An architecture ("arch") is a tuple of ints, one per decision (a *genome*). A batch of archs is an
int64 array of shape (N, num_genes). Nothing outside a space module knows its parameter names.

What a space declares (``tests/test_space_contract.py`` checks all of it on every registered
space and the example space):

* **required of every space** (abstract: a subclass without them cannot be instantiated):
  ``num_genes``, ``gene_choices``, ``cost``;
* **required by the supernet pipeline** (``rlnas train / rank / search / retrain / export``);
  a space used only by a searcher (a toy space, a benchmark table) may leave them out, and then
  calling one raises ``MissingCapability`` (an ``RlnasError``: one line, a clean CLI exit):
  ``to_str``, ``from_str``, ``supernet``, ``network``, ``sample_training_path``,
  ``angle_pieces``, ``angle_multiplicity``;
* **optional, with a documented default** (override where the space has the capability; callers
  always call the method and read the default, never ``getattr``/``hasattr``):
  ``mutation_choices`` (= ``gene_choices``), ``sample`` (uniform, repaired), ``mutate``,
  ``crossover``, ``repair`` (identity), ``is_valid``, ``enumerate`` (None: not enumerable),
  ``cost_bounds`` (None: unknown without enumerating), ``cost_defaults`` ({}), ``canonical``
  (the arch itself: every genome its own network), ``check_image_size`` (any size accepted),
  ``arch_diagram`` (None: no picture of a found arch).

The model methods agree across spaces: ``supernet(num_classes=..., **model)`` and
``network(arch, num_classes=..., **model)``, where ``model`` is the config's ``model:`` section
(each space documents its keywords; an unknown one is refused by ``refuse_model_options``).
A supernet is an ``nn.Module`` with ``num_search_cells`` (an int, passed back to
``sample_training_path``) and ``forward(x, path)`` returning logits, where ``path`` is what
``sample_training_path`` returns or an arch (one genome: the path of that arch).
"""
from __future__ import annotations

import abc
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import RlnasError

Arch = Tuple[int, ...]


class MissingCapability(RlnasError, NotImplementedError):
    """A space was asked for something it does not provide (e.g. a supernet of a toy space)."""


def refuse_model_options(space_name: str, what: str, unknown: Mapping,
                         known: Iterable[str]) -> None:
    """Refuse model keywords a space's ``supernet``/``network`` does not take, in one line.

    Args:
        space_name: the space's name, for the message.
        what: ``"supernet"`` or ``"network"``.
        unknown: the keywords left over after the space took its own.
        known: every keyword the method takes, in the order to list them.

    Raises:
        RlnasError: when ``unknown`` is not empty.
    """
    if unknown:
        raise RlnasError(f"the {space_name} {what} takes no model option "
                         f"{', '.join(sorted(unknown))} (known: {', '.join(known)})")


class SearchSpace(abc.ABC):
    """Base class of every space (module docstring: required, pipeline and optional parts).
    Subclasses set ``name`` and ``num_genes``."""

    name: str = ""
    num_genes: int = 0

    def _missing(self, what: str) -> MissingCapability:
        return MissingCapability(f"search space {self.name or type(self).__name__} provides no "
                                 f"{what}")

    # --- genome (required) ----------------------------------------------------------------
    @abc.abstractmethod
    def gene_choices(self, gene: int) -> Sequence[int]:
        """The values gene ``gene`` may take.

        Args:
            gene: 0 .. num_genes - 1.

        Returns:
            the allowed ints (a range or list).
        """

    # --- genome (optional, defaults) -------------------------------------------------------
    def mutation_choices(self, gene: int) -> Sequence[int]:
        """The values a mutation may set gene ``gene`` to (default: ``gene_choices``; NB201
        never mutates to ``none``).

        Args:
            gene: 0 .. num_genes - 1.

        Returns:
            the allowed ints.
        """
        return self.gene_choices(gene)

    def sample(self, rng: np.random.Generator) -> Arch:
        """One arch, each gene drawn uniformly from ``gene_choices``, then ``repair``-ed.

        Args:
            rng: the searcher's generator (the only source of randomness).

        Returns:
            a valid arch.
        """
        arch = tuple(int(rng.choice(self.gene_choices(g))) for g in range(self.num_genes))
        return self.repair(arch, rng)

    def mutate(self, arch: Arch, rng: np.random.Generator, prob: float) -> Arch:
        """Each gene redrawn from ``mutation_choices`` with probability ``prob``, then repaired.

        Args:
            arch: a valid arch.
            rng: the searcher's generator.
            prob: per-gene mutation probability.

        Returns:
            a valid arch.
        """
        out = list(arch)
        for g in range(self.num_genes):
            if rng.random() < prob:
                out[g] = int(rng.choice(self.mutation_choices(g)))
        return self.repair(tuple(out), rng)

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
        """Uniform crossover: each gene from ``a`` or ``b`` with probability 1/2, then repaired.

        Args:
            a, b: valid archs.
            rng: the searcher's generator.

        Returns:
            a valid arch.
        """
        out = tuple(int(x if rng.random() < 0.5 else y) for x, y in zip(a, b))
        return self.repair(out, rng)

    def repair(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """Make a genome of in-range genes valid (DARTS: exactly two inputs per node). Default:
        the identity, for spaces where every such genome is valid.

        Args:
            arch: num_genes ints, each in its ``gene_choices``.
            rng: the searcher's generator (repairs may draw).

        Returns:
            a valid arch.
        """
        return arch

    def is_valid(self, arch: Arch) -> bool:
        """Whether ``arch`` is an arch of this space (default: right length, genes in range).

        Args:
            arch: any sequence of ints.

        Returns:
            True if valid.
        """
        return len(arch) == self.num_genes and all(
            int(v) in self.gene_choices(g) for g, v in enumerate(arch))

    def genome_array(self, archs) -> np.ndarray:
        """``archs`` (one genome or a batch) as an int64 array ``(N, num_genes)``, every gene
        among its ``gene_choices``: what ``cost``, the latency tables and the scorers may index
        tables with (the one check of a batch of genomes given from outside).

        Args:
            archs: a sequence of ints, or rows of them.

        Returns:
            the array.

        Raises:
            RlnasError: a row of another length, a gene that is not an integer or is out of its
                choices (a cost of an arch outside the space means nothing).
        """
        n = self.num_genes
        try:
            raw = np.asarray(archs)
        except ValueError:  # ragged rows
            raise RlnasError(f"{self.name} archs must be genomes of {n} integers, one row per "
                             f"arch; got rows of different lengths") from None
        if raw.ndim == 1 and raw.size in (0, n):
            raw = raw.reshape(-1, n)
        if raw.ndim != 2 or raw.shape[1] != n or (raw.size and raw.dtype.kind not in "iu"):
            raise RlnasError(f"{self.name} archs must be genomes of {n} integers, one row per "
                             f"arch; got an array of shape {raw.shape} and type {raw.dtype}")
        arr = raw.astype(np.int64)
        for g in range(n):
            choices = list(self.gene_choices(g))
            bad = ~np.isin(arr[:, g], np.asarray(choices, dtype=np.int64))
            if bad.any():
                raise RlnasError(f"genome {arr[bad][0].tolist()} is not a {self.name} arch: "
                                 f"gene {g} is {int(arr[bad][0, g])}, its choices are {choices}")
        return arr

    def canonical(self, arch: Arch) -> Arch:
        """The genome of the network ``arch`` builds, where several genomes build one network
        (NAS-Bench-Macro's identities). Default: ``arch`` itself.

        Args:
            arch: a valid arch.

        Returns:
            the canonical arch (a tuple).
        """
        return tuple(int(v) for v in arch)

    # --- notation (pipeline) ---------------------------------------------------------------
    def to_str(self, arch: Arch) -> str:
        """The arch in the field's notation (what result files, tables and the CLI show).

        Args:
            arch: a valid arch.

        Returns:
            the string; ``from_str`` reads it back to ``arch``.

        Raises:
            RlnasError: ``arch`` is not an arch of this space.
        """
        raise self._missing("notation (to_str)")

    def from_str(self, text: str) -> Arch:
        """Parse the field's notation.

        Args:
            text: an arch string (as ``to_str`` writes it, or a documented alternative).

        Returns:
            the valid arch.

        Raises:
            RlnasError: malformed text, or an arch outside the space.
        """
        raise self._missing("notation (from_str)")

    # --- enumeration and cost --------------------------------------------------------------
    def enumerate(self) -> Optional[np.ndarray]:
        """Every arch, where the space is small enough. Default: None (not enumerable).

        Returns:
            an (N, num_genes) int64 array of distinct valid archs, or None.
        """
        return None

    @abc.abstractmethod
    def cost(self, archs: np.ndarray, **cost_kwargs) -> Dict[str, np.ndarray]:
        """Params and FLOPs of each arch's standalone network. Called with no keywords, the
        params count ``network(arch)``'s parameters (every one, unless the space documents an
        exclusion) at the network's default size.

        Args:
            archs: an (N, num_genes) array (or one arch).
            **cost_kwargs: the space's reporting setting (network size, classes, image size).

        Returns:
            {'params': (N,) M params, 'flops': (N,) M FLOPs}, float64.
        """

    def cost_bounds(self, **cost_kwargs) -> Optional[Dict[str, Tuple[float, float]]]:
        """The smallest and largest cost over all archs, where known without enumerating
        (a size limit no arch meets is then refused up front). Default: None (unknown).

        Args:
            **cost_kwargs: as ``cost``.

        Returns:
            {'params': (min, max), 'flops': (min, max)} in M, or None.
        """
        return None

    def cost_defaults(self, info: Dict) -> Dict:
        """The ``cost`` keywords for the reports and size limits of a run. Default: {}.

        Args:
            info: the run's run.json.

        Returns:
            keywords for ``cost`` / ``cost_bounds``.
        """
        return {}

    def check_image_size(self, image_size: Tuple[int, int], resolution: Optional[int],
                         num_classes: int) -> None:
        """Refuse, before any training, images the space's networks cannot run on, or of a size
        its costs do not describe. Default: every size is accepted (global pooling before the
        classifier; costs at the benchmark size).

        Args:
            image_size: (H, W) of the data's images as stored.
            resolution: ``data.resolution``, the side they are deliberately resized to (None:
                as stored).
            num_classes: the classifier's outputs.

        Raises:
            RlnasError: naming the declared size and the data's.
        """

    def arch_diagram(self, arch: Arch) -> Optional[Dict]:
        """What a picture of ``arch`` shows (``rlnas.archplot`` draws it next to a search's
        result). Default: None (no picture).

        Args:
            arch: one arch.

        Returns:
            ``{"kind": "cells", "cells": [{"title", "inputs": how many input nodes, "nodes":
            [names, inputs first], "edges": [(from, to, op), ...]}]}`` for cell spaces,
            ``{"kind": "chain", "stem", "head", "blocks": [{"op", "detail", "skip"}]}`` for
            chains, or None.
        """
        return None

    # --- models (pipeline) -----------------------------------------------------------------
    def supernet(self, num_classes: Optional[int] = None, **model):
        """The weight-sharing supernet (module docstring: ``num_search_cells``,
        ``forward(x, path)``), freshly initialised from torch's global generator.

        Args:
            num_classes: outputs of the classifier (the K of the random labels).
            **model: the config's ``model:`` section (the space documents its keywords;
                unknown ones raise RlnasError).

        Returns:
            the supernet, an ``nn.Module``.
        """
        raise self._missing("supernet")

    def network(self, arch: Arch, num_classes: Optional[int] = None, **model):
        """The standalone network of one arch (retraining, export, proxies, costs).

        Args:
            arch: a valid arch.
            num_classes: outputs of the classifier.
            **model: the config's ``model:`` section (unknown keywords raise RlnasError).

        Returns:
            an ``nn.Module``; ``forward(x)`` returns logits (some networks return
            ``(logits, aux_logits)`` in training mode, as documented by the space).
        """
        raise self._missing("standalone network")

    def sample_training_path(self, seed: int, step: int, num_cells: int) -> np.ndarray:
        """The supernet path of one training step: a pure function of (seed, step), so every
        process and a resumed run train the same path.

        Args:
            seed: the run's seed.
            step: the global step.
            num_cells: the supernet's ``num_search_cells`` (spaces that draw one genome for
                the whole supernet ignore it).

        Returns:
            an int64 array that the supernet's ``forward(x, path)`` takes.
        """
        raise self._missing("supernet path sampler")

    # --- angle (pipeline; rlnas.angle) -----------------------------------------------------
    def angle_pieces(self, state0: Dict, stateT: Dict) -> Tuple[List[str], np.ndarray]:
        """Per-piece statistics of two supernet states (the angle's decomposition).

        Args:
            state0: the supernet's initial state dict.
            stateT: its trained state dict.

        Returns:
            (names, stats): P piece names (``rlnas.angle.FIXED`` names the piece every arch
            uses) and a (P, 4) float64 array of ``rlnas.angle.STATS`` per piece.

        Raises:
            RlnasError: the states are not this space's supernet.
        """
        raise self._missing("angle pieces")

    def angle_multiplicity(self, archs: np.ndarray) -> np.ndarray:
        """How often each piece occurs in each arch's angle vector.

        Args:
            archs: an (N, num_genes) array.

        Returns:
            an (N, P) float array, in the order of ``angle_pieces``' names; 0 where the arch
            does not use the piece.
        """
        raise self._missing("angle multiplicity")
