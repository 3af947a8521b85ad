"""`rlnas rank`: every arch of an enumerable space scored by the run's scorer (or another one),
written best first to ``ranking.csv`` (``ranking-<scorer>.csv`` for another scorer). Ranking and
every search order archs by score with ties broken by genome (:func:`best_first`), so their
first rows agree. A ranking file (``ranking.csv``, a search's ``visited-<name>.csv``) is
written by :func:`ranking_csv` and read back by :meth:`Ranking.read`."""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np

from ..deprecation import renamed_keyword
from ..errors import RlnasError
from ..files import atomic_write_text, csv_number, read_csv_rows, run_lock
from ..rundir import Run
from ..scorers import get_scorer


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
    """Where the ranking of ``scorer`` goes: ``ranking.csv`` for the run's scorer, else
    ``ranking-<scorer>.csv``."""
    return run.path / ("ranking.csv" if scorer == run.scorer else f"ranking-{scorer}.csv")


def ranking_csv(scorer: str, archs: Sequence[str], scores, params, flops,
                latency_ms=None) -> str:
    """The text of a ranking file: ``rank, arch, <scorer>, params_m, flops_m[, latency_ms]``,
    one row per arch in the order given (best first). The score column is named after the
    scorer and holds its score, bigger is better (``rlnas scorers`` says what each one is; an
    ensemble ``a+b``'s is the mean of the members' percentile ranks in a reference set,
    ``scorers.ENSEMBLE``);
    ``params_m`` / ``flops_m`` are M params / M FLOPs of the space's benchmark network."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "arch", scorer, "params_m", "flops_m"]
               + (["latency_ms"] if latency_ms is not None else []))
    for r, (a, sc, p, fl) in enumerate(zip(archs, scores, params, flops), start=1):
        w.writerow([r, a, f"{sc:.12g}", f"{p:.6f}", f"{fl:.5f}"]
                   + ([f"{latency_ms[r - 1]:.6g}"] if latency_ms is not None else []))
    return buf.getvalue()


@renamed_keyword("final", "checkpoint")
@renamed_keyword("bars", "progress")
def rank(run: Run, checkpoint: str = "last.pt", scorer: Optional[str] = None,
         out: Optional[Path] = None, progress: bool = True) -> Dict[str, Any]:
    """Score every arch of an enumerable space; write ``ranking.csv`` (the run's scorer) or
    ``ranking-<scorer>.csv`` (another one), best first, with a column named after the scorer.
    Holds the run's lock; the file is written only once every arch is scored. ``checkpoint``:
    the trained checkpoint in ``ckpt/``; ``progress``: progress bars of slow scorers."""
    scorer = scorer or run.scorer
    space = run.space
    archs = space.enumerate()
    if archs is None:
        raise RlnasError(f"space {space.name} is too large to rank exhaustively; use "
                         f"`rlnas search`")
    with run_lock(run.path, "rank"):
        return _rank(run, archs, checkpoint, scorer, out, progress)


def _rank(run: Run, archs: np.ndarray, checkpoint: str, scorer: str, out: Optional[Path],
          progress: bool = True):
    space = run.space
    t0 = time.perf_counter()
    fn = get_scorer(scorer, run, checkpoint=checkpoint, progress=progress).fn
    t1 = time.perf_counter()
    scores = check_scores(np.asarray(fn(archs), dtype=np.float64), scorer, run)
    t2 = time.perf_counter()
    order = best_first(scores, archs)
    cost = space.cost(archs, **run.cost_kwargs)
    path = out or ranking_path(run, scorer)
    atomic_write_text(path, ranking_csv(scorer, [space.to_str(tuple(archs[i])) for i in order],
                                        scores[order], cost["params"][order],
                                        cost["flops"][order]))
    return {"path": str(path), "num_archs": int(len(archs)), "checkpoint": checkpoint,
            "scorer": scorer, "setup_seconds": t1 - t0, "score_seconds": t2 - t1,
            "best_arch": space.to_str(tuple(archs[order[0]])),
            "best_score": float(scores[order[0]])}


class Ranking:
    """Every arch of a space scored by one scorer, best first (the rows of ``ranking.csv``).

    Columns as sequences: ``arch`` (strings), ``score``, ``params_m``, ``flops_m`` (numpy
    arrays; costs of the space's benchmark network). ``ranking[i]`` is a record dict
    ``{"rank", "arch", "score", "params_m", "flops_m"}``; ``top(k)`` the first ``k`` records;
    ``to_pandas()`` a DataFrame (needs pandas). ``path`` is the CSV it was read from; ``info``
    what ``Run.rank`` reported (checkpoint, timings, best)."""

    def __init__(self, scorer: str, arch: List[str], score, params_m, flops_m,
                 path: Optional[Path] = None, info: Optional[Dict[str, Any]] = None):
        self.scorer, self.arch, self.score = scorer, arch, score
        self.params_m, self.flops_m, self.path, self.info = params_m, flops_m, path, info or {}

    @classmethod
    def read(cls, path) -> "Ranking":
        """A ranking file written by :func:`ranking_csv` (columns rank, arch, <scorer>,
        params_m, flops_m[, latency_ms]), checked: ranks 1..N in order, distinct archs, numeric
        scores (NaN allowed: rank writes it for an arch without a score, but not for all of
        them), finite costs.

        Raises:
            RlnasError: naming the file (and the line) when it is missing, not a ranking file
                or damaged.
        """
        path = Path(path)
        rows = read_csv_rows(path, "a ranking", "run `rlnas rank` (or Run.rank()) first")
        header = rows[0] if rows else []
        if header[:2] != ["rank", "arch"] or header[3:5] != ["params_m", "flops_m"] or \
                header[5:] not in ([], ["latency_ms"]) or \
                header[2] in ("rank", "arch", "params_m", "flops_m", "latency_ms"):
            raise RlnasError(f"{path} is not a ranking file (rank, arch, <scorer>, params_m, "
                             f"flops_m), or its header is damaged: {','.join(header)[:120]!r}")
        body = rows[1:]
        if not body:
            raise RlnasError(f"{path} is damaged: a header and no ranked arch")
        scorer = header[2]
        for line, r in enumerate(body, start=2):
            if r[0].strip() != str(line - 1):
                raise RlnasError(f"{path} is damaged: line {line} has rank {r[0]!r}, expected "
                                 f"{line - 1}")
            if not r[1].strip():
                raise RlnasError(f"{path} is damaged: line {line} has no arch")
        archs = [r[1] for r in body]
        if len(set(archs)) != len(archs):
            raise RlnasError(f"{path} is damaged: an arch is ranked twice")
        score, params, flops = (
            np.array([csv_number(r[i], path, line, header[i], finite=i != 2)
                      for line, r in enumerate(body, start=2)], dtype=np.float64)
            for i in (2, 3, 4))
        if not np.isfinite(score).any():
            raise RlnasError(f"{path} is damaged: no arch has a finite {scorer} (rank never "
                             f"writes such a ranking)")
        return cls(scorer, archs, score, params, flops, path=path)

    def __len__(self) -> int:
        return len(self.arch)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        return {"rank": i + 1, "arch": self.arch[i], "score": float(self.score[i]),
                "params_m": float(self.params_m[i]), "flops_m": float(self.flops_m[i])}

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return (self[i] for i in range(len(self)))

    @property
    def best(self) -> Dict[str, Any]:
        """The first record (the best arch)."""
        return self[0]

    def top(self, k: int = 10) -> List[Dict[str, Any]]:
        """The ``k`` best records."""
        return [self[i] for i in range(min(k, len(self)))]

    def to_records(self) -> List[Dict[str, Any]]:
        """Every record, best first."""
        return list(self)

    def to_pandas(self):
        """A pandas DataFrame with columns rank, arch, score, params_m, flops_m."""
        import pandas as pd
        return pd.DataFrame(self.to_records())

    def __repr__(self):
        best = f", best={self.arch[0]!r} ({self.score[0]:.4g})" if len(self) else ""
        return f"Ranking({self.scorer!r}, {len(self)} archs{best})"
