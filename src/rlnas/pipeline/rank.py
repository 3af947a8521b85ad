"""`rlnas rank`: every arch of an enumerable space scored by the run's scorer (or another one),
written best first to ``ranking.csv`` (``ranking-<scorer>.csv`` for another scorer). Ranking and
every search order archs by score with ties broken by genome (:func:`best_first`), so their
first rows agree. Also what the stages after training share: the scorer of a run
(:func:`scorer_for`) and the cost keywords of its benchmark network (:func:`cost_kwargs`)."""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from ..config import search_scorer
from ..data import prepare_training_data
from ..errors import RlnasError
from ..files import atomic_write_text, run_lock
from ..rundir import Run
from ..scorers import ScoreContext, get_scorer


def cost_kwargs(run: Run) -> Dict[str, Any]:
    """Limits and reported costs refer to the space's benchmark network (NB201: C=16, N=5, on the
    run's dataset), whatever size the supernet was trained at."""
    return run.space.cost_defaults(run.info)


def check_checkpoint_name(final: str) -> str:
    """A checkpoint is named by its file name in the run's ckpt/ folder; a path could point a
    scorer at any file (and a run's results at another run's weights)."""
    if not isinstance(final, str) or final in ("", ".", "..") or any(
            c in final for c in ("/", "\\", "\0")):
        raise RlnasError(f"checkpoint {final!r} must be the name of a file in the run's ckpt/ "
                         f"folder (e.g. last.pt or epoch_10.pt), not a path")
    return final


def score_context(run: Run, final: str = "last.pt", **options) -> ScoreContext:
    check_checkpoint_name(final)
    return ScoreContext(space=run.space, run=run, cost_kwargs=cost_kwargs(run), checkpoint=final,
                        seed=run.cfg["seed"], options=options)


def needs_data(scorer: str) -> bool:
    """True when a scorer (or a member of an ensemble) is a zero-cost proxy: it scores networks
    on a batch of the run's training images."""
    from ..proxies import PROXY_NAMES
    return any(part.strip() in PROXY_NAMES for part in scorer.split("+"))


def scorer_for(run: Run, scorer: str, final: str = "last.pt", bars: bool = True):
    """The score function of ``scorer`` on ``run``, with the run's images where it needs them;
    ``bars``: progress bars of slow scorers (the proxies), shown after 2 s."""
    options = {"data": prepare_training_data(run.cfg)[0]} if needs_data(scorer) else {}
    return get_scorer(scorer, score_context(run, final, progress=bars, **options))


def run_scorer(run: Run, scorer: Optional[str] = None) -> str:
    """The scorer asked for, else the one the run's config names."""
    return scorer or search_scorer(run.cfg)


def check_scores(scores: np.ndarray, scorer: str, run: Run) -> np.ndarray:
    """Refuse a scoring in which no arch got a finite score: it would rank archs by nothing and
    replace the run's earlier results."""
    if not np.isfinite(scores).any():
        raise RlnasError(f"{run.path}: {scorer} gave no arch a finite score; nothing written")
    return scores


def best_first(scores, archs) -> np.ndarray:
    """Indices ordering archs best first: by score (NaN last), ties by genome in lexicographic
    order (the enumeration order of NB201 and the choice spaces). ``rank`` (ranking.csv) and
    every search (result.json, visited.csv) order by this, so their first rows agree on ties."""
    archs = np.asarray(archs, dtype=np.int64)
    archs = archs.reshape(len(archs), -1)
    key = -np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    return np.lexsort(tuple(archs[:, g] for g in range(archs.shape[1] - 1, -1, -1)) + (key,))


def ranking_path(run: Run, scorer: str) -> Path:
    return run.path / ("ranking.csv" if scorer == run_scorer(run) else f"ranking-{scorer}.csv")


def rank(run: Run, final: str = "last.pt", scorer: Optional[str] = None,
         out: Optional[Path] = None, bars: bool = True) -> Dict[str, Any]:
    """Score every arch of an enumerable space; write ``ranking.csv`` (the run's scorer) or
    ``ranking-<scorer>.csv`` (another one), best first, with a column named after the scorer.
    Holds the run's lock; the file is written only once every arch is scored."""
    scorer = run_scorer(run, scorer)
    space = run.space
    archs = space.enumerate()
    if archs is None:
        raise RlnasError(f"space {space.name} is too large to rank exhaustively; use `rlnas search`")
    with run_lock(run.path, "rank"):
        return _rank(run, archs, final, scorer, out, bars)


def _rank(run: Run, archs: np.ndarray, final: str, scorer: str, out: Optional[Path],
          bars: bool = True):
    space = run.space
    t0 = time.perf_counter()
    fn = scorer_for(run, scorer, final, bars)
    t1 = time.perf_counter()
    scores = check_scores(np.asarray(fn(archs), dtype=np.float64), scorer, run)
    t2 = time.perf_counter()
    order = best_first(scores, archs)
    cost = space.cost(archs, **cost_kwargs(run))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "arch", scorer, "params_m", "flops_m"])
    for r, i in enumerate(order, start=1):
        w.writerow([r, space.to_str(tuple(archs[i])), f"{scores[i]:.12g}",
                    f"{cost['params'][i]:.6f}", f"{cost['flops'][i]:.5f}"])
    path = out or ranking_path(run, scorer)
    atomic_write_text(path, buf.getvalue())
    return {"path": str(path), "num_archs": int(len(archs)), "checkpoint": final,
            "scorer": scorer, "setup_seconds": t1 - t0, "score_seconds": t2 - t1,
            "best_arch": space.to_str(tuple(archs[order[0]])), "best_score": float(scores[order[0]])}


def read_ranking(path: Path, column: str = "angle"):
    """(arch strings, scores) of a ranking file."""
    if not path.exists():
        raise RlnasError(f"{path} not found; run `rlnas rank` first")
    with open(path) as f:
        rows = list(csv.DictReader(f))
    if not rows or "arch" not in rows[0] or column not in rows[0]:
        raise RlnasError(f"{path} is not a ranking file (needs arch and {column} columns)")
    try:
        return [r["arch"] for r in rows], np.array([float(r[column]) for r in rows])
    except ValueError:
        raise RlnasError(f"{path} has a non-numeric {column}") from None
