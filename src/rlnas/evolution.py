"""Deprecated (kept for one release): ``rlnas.evolution`` moved to ``rlnas.searchers``."""
from .deprecation import warn_moved
from .searchers import (
    Constraint,
    EvolutionSettings,
    SearchResult,
    evolution_search,
    exhaustive_search,
    random_search,
    run_search,
)

warn_moved("rlnas.evolution", "rlnas.searchers")
