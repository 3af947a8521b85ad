"""Deprecated (kept for one release): ``rlnas.stages`` moved to ``rlnas.pipeline.rank`` and
``rlnas.pipeline.search``; its scorer helpers are ``rlnas.get_scorer`` (``rlnas.scorers``) and
``Run.cost_kwargs`` / ``Run.scorer`` now."""
from .deprecation import renamed_keyword, warn_moved
from .pipeline.rank import Ranking, best_first, check_scores, rank, ranking_path
from .pipeline.search import check_search_name, search, search_name, size_summary
from .scorers import ScoreContext, check_checkpoint_name, get_scorer, needs_data


def cost_kwargs(run):
    """Deprecated: ``run.cost_kwargs``."""
    return run.cost_kwargs


def run_scorer(run, scorer=None):
    """Deprecated: ``scorer or run.scorer``."""
    return scorer or run.scorer


@renamed_keyword("final", "checkpoint")
def score_context(run, checkpoint="last.pt", **options):
    """Deprecated: ``rlnas.scorers.ScoreContext.for_run``."""
    return ScoreContext.for_run(run, checkpoint, **options)


def scorer_for(run, scorer, final="last.pt", bars=True):
    """Deprecated: ``rlnas.get_scorer(scorer, run, checkpoint=final, progress=bars).fn``."""
    return get_scorer(scorer, run, checkpoint=final, progress=bars).fn


def read_ranking(path, column="angle"):
    """Deprecated: ``Ranking.read(path)`` (its ``arch`` and ``score``)."""
    ranking = Ranking.read(path)
    return ranking.arch, ranking.score


warn_moved("rlnas.stages", "rlnas.pipeline.rank, rlnas.pipeline.search and rlnas.scorers")
