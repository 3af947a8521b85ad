"""Deprecated (kept for one release): ``rlnas.stages`` moved to ``rlnas.pipeline.rank`` (ranking,
the run's scorer) and ``rlnas.pipeline.search``."""
from .deprecation import warn_moved
from .pipeline.rank import (best_first, check_checkpoint_name, check_scores,  # noqa: F401
                            cost_kwargs, needs_data, rank, ranking_path, read_ranking,
                            run_scorer, score_context, scorer_for)
from .pipeline.search import (check_search_name, search, search_name,  # noqa: F401
                              size_summary)

warn_moved("rlnas.stages", "rlnas.pipeline.rank and rlnas.pipeline.search")
