"""The Python API: the stages of the ``rlnas`` command as functions that return data.

    import rlnas
    run = rlnas.train("demo-digits", "runs/d", overrides={"epochs": 2, "model.channels": 4})
    ranking = run.rank()                  # every arch, best first (also writes ranking.csv)
    result = run.search(max_params=0.5)   # the dict written to result.json
    report = run.evaluate(nasbench201="nasbench201.csv")  # the dict of evaluation.json

Each function calls the same functions as the command line (``rlnas.cli``): ``train`` is
``rlnas train``, ``Run.rank`` is ``rlnas rank``, ``Run.search`` is ``rlnas search`` and
``evaluate`` / ``Run.evaluate`` are ``rlnas evaluate``; they read and write the same files in the
run directory, so a run started here can be continued from the shell and the other way round.
Errors in the user's input raise :class:`rlnas.RlnasError` (the one-line messages the CLI
prints). Heavy modules (torch) are imported on first use, not by ``import rlnas``.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional,
                    Sequence, Union)

from .errors import RlnasError

PathLike = Union[str, Path]
Overrides = Union[Mapping[str, Any], Iterable[str], None]

__all__ = ["train", "open_run", "evaluate", "retrain", "export", "load_config", "get_scorer",
           "list_scorers", "get_space", "list_spaces", "list_presets", "allow_space", "Run",
           "Ranking", "Scorer", "RlnasError"]


# --- configs ----------------------------------------------------------------------------------
def _override_text(value: Any) -> str:
    """A Python value as the text of a ``key=value`` override (None -> null, True -> true)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def override_list(overrides: Overrides) -> List[str]:
    """``key=value`` strings, as the command line takes them, from a mapping
    (``{"epochs": 2, "model.channels": 4}``) or an iterable of such strings (or None)."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        raise RlnasError(f"overrides must be a mapping or a list of key=value strings, not the "
                         f"string {overrides!r}; write [{overrides!r}]")
    if isinstance(overrides, Mapping):
        return [f"{key}={_override_text(value)}" for key, value in overrides.items()]
    items = list(overrides)
    for item in items:
        if not isinstance(item, str):
            raise RlnasError(f"override {item!r} is not a key=value string")
    return items


def _run_config(config: PathLike) -> Optional[Path]:
    """``RUN/config.yaml`` where ``config`` is a run directory, else None (as ``rlnas train RUN``
    decides: ``rlnas.config.run_config_path``, where a bare preset name stays the preset)."""
    from .config import run_config_path
    return run_config_path(str(config))


def load_config(config: PathLike, overrides: Overrides = None) -> Dict[str, Any]:
    """The resolved, validated config tree of a preset name (see :func:`list_presets`), a YAML
    file or a run directory (its saved ``config.yaml``), with ``overrides`` applied.

    ``overrides`` is a mapping ``{"train.epochs": 2, "channels": 4}`` or a list of ``key=value``
    strings; keys are dotted paths or the command line's short aliases (``epochs``,
    ``channels``, ``cells``, ``batch``, ``root``, ``subset``, ...). Raises :class:`RlnasError` on
    an unknown preset or key, or a value out of range."""
    from . import config as config_mod
    saved = _run_config(config)
    return config_mod.load_config(str(saved or config), override_list(overrides))


def list_presets() -> List[str]:
    """Names of the bundled config presets (``rlnas presets``), e.g. ``nb201-cifar10-fast``."""
    from .config import list_presets as _list
    return _list()


# --- spaces and scorers ----------------------------------------------------------------------
def get_space(name: str, **kwargs):
    """A search space by name (``nb201``, ``darts``, ``mobilenet``) or ``package.module:ATTR``;
    a :class:`rlnas.spaces.SearchSpace` with ``sample``, ``enumerate``, ``to_str``/``from_str``
    and ``cost``."""
    from .spaces import get_space as _get
    return _get(name, **kwargs)


def allow_space(spec: str) -> None:
    """Let runs made with the user space ``spec`` (``package.module:ATTR``) import it: rlnas
    imports no code a run file names unless the user names it (here, or by ``get_space``)."""
    from .spaces import allow_space as _allow
    _allow(spec)


def list_spaces() -> List[str]:
    """Names of the registered search spaces."""
    from .spaces import list_spaces as _list
    return _list()


def list_scorers(describe: bool = False) -> Union[List[str], Dict[str, str]]:
    """Names of the registered scorers (``rlnas scorers``); with ``describe=True`` a dict
    ``{name: one-line description}``. Any of them, or a rank ensemble ``"angle+synflow"``, may be
    passed where a scorer is asked for."""
    from .scorers import list_scorers as _list, scorer_info
    names = _list()
    return {n: scorer_info(n).description for n in names} if describe else names


def check_genomes(space, archs):
    """``archs`` as an int64 array ``(N, num_genes)`` of valid genomes of ``space``.

    Raises:
        RlnasError: naming the first arch that is not a sequence of ``num_genes`` integers each
            among its gene's choices (a score of an arch outside the space means nothing)."""
    import numpy as np
    raw = np.asarray(archs, dtype=object)
    if raw.ndim == 1 and len(raw) and not isinstance(raw[0], (list, tuple, np.ndarray)):
        raw = raw.reshape(1, -1)  # one genome
    n = space.num_genes
    if raw.ndim != 2 or raw.shape[1] != n:
        raise RlnasError(f"archs of space {space.name} are genomes of {n} integers; got an "
                         f"array of shape {raw.shape}")
    for row in raw:
        if not all(isinstance(g, (int, np.integer)) and not isinstance(g, bool) for g in row):
            raise RlnasError(f"genome {list(row)!r} of space {space.name}: genes must be "
                             f"integers")
        if not space.is_valid(tuple(int(g) for g in row)):
            raise RlnasError(f"genome {[int(g) for g in row]} is not an arch of space "
                             f"{space.name} (a gene out of its choices)")
    return raw.astype(np.int64)


class Scorer:
    """A scorer built for one space (and run): call it with archs, get scores (bigger = better).

    Archs are arch strings (``space.to_str`` notation), one string, or an int array
    ``(N, num_genes)``; the result is a float64 array ``(N,)``."""

    def __init__(self, name: str, space, fn: Callable, run: Optional["Run"] = None,
                 checkpoint: Optional[str] = None):
        self.name, self.space, self.fn, self.run, self.checkpoint = name, space, fn, run, checkpoint

    def __call__(self, archs) -> "Any":
        import numpy as np
        if isinstance(archs, str):
            archs = [archs]
        if isinstance(archs, (list, tuple)) and archs and isinstance(archs[0], str):
            archs = [self.space.from_str(a) for a in archs]
        return np.asarray(self.fn(check_genomes(self.space, archs)), dtype=np.float64)

    def __repr__(self):
        where = f", run={str(self.run.path)!r}, checkpoint={self.checkpoint!r}" if self.run else ""
        return f"Scorer({self.name!r}, space={self.space.name!r}{where})"


def get_scorer(name: str, run: Union["Run", PathLike, None] = None, *, space: str = "nb201",
               checkpoint: str = "last.pt", seed: int = 0, **options) -> Scorer:
    """A :class:`Scorer` by name (or ensemble ``"a+b"``), as ``rlnas rank`` / ``search`` build it.

    Scorers that read a supernet (``angle*``, ``accuracy``) need ``run`` (a :class:`Run` or its
    directory) and compare ``ckpt/init.pt`` with ``ckpt/<checkpoint>``; for a run, zero-cost
    proxies are given the run's training images, and costs refer to the space's benchmark
    network on the run's dataset. Without a run, ``space`` names the space and ``seed`` seeds
    the scorer; proxies then need ``data=`` (an ``rlnas.data.ImageData``). Further keyword
    ``options`` go to the scorer (e.g. ``batch_size``, ``proxy_model`` for proxies)."""
    from . import scorers
    from .pipeline import rank as stages
    if run is not None:
        run = run if isinstance(run, Run) else open_run(run)
        if not options:  # exactly the function rank and search use
            fn = stages.scorer_for(run._run, name, checkpoint)
        else:
            if stages.needs_data(name) and "data" not in options:
                from .data import prepare_training_data
                options["data"] = prepare_training_data(run.config)[0]
            fn = scorers.get_scorer(name, stages.score_context(run._run, checkpoint, **options))
        return Scorer(name, run.space, fn, run, checkpoint)
    sp = get_space(space)
    fn = scorers.get_scorer(name, scorers.ScoreContext(space=sp, seed=seed, options=options))
    return Scorer(name, sp, fn)


# --- rankings ----------------------------------------------------------------------------------
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
    def read(cls, path: PathLike) -> "Ranking":
        """A ranking file written by ``rlnas rank`` (columns rank, arch, <scorer>, params_m,
        flops_m)."""
        import numpy as np
        path = Path(path)
        if not path.is_file():
            raise RlnasError(f"{path} not found; run `rlnas rank` (or Run.rank()) first")
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows = list(reader)
        fixed = ("rank", "arch", "params_m", "flops_m")
        others = [h for h in header or () if h not in fixed]
        if not header or any(h not in header for h in fixed) or not others:
            raise RlnasError(f"{path} is not a ranking file (rank, arch, <scorer>, params_m, "
                             f"flops_m)")
        scorer = others[0]
        idx = [header.index(h) for h in (scorer, "params_m", "flops_m")]
        try:
            cols = [np.array([float(r[i]) for r in rows], dtype=np.float64) for i in idx]
        except (ValueError, IndexError):
            raise RlnasError(f"{path} has a malformed row") from None
        return cls(scorer, [r[header.index("arch")] for r in rows], *cols, path=path)

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


# --- runs ------------------------------------------------------------------------------------
class Run:
    """A supernet run directory (made by :func:`train` or ``rlnas train``).

    ``path``, ``config`` (the saved config tree), ``info`` (``run.json``), ``space`` (the
    search space), ``scorer`` (the run's ``search.scorer``), ``train_result`` (the statistics of
    the :func:`train` call that returned this handle, else None). The stages write into
    ``path`` as the command line does and return what they wrote as data."""

    def __init__(self, run, train_result: Optional[Dict[str, Any]] = None):
        self._run = run  # rlnas.rundir.Run: what the stages take
        self.train_result = train_result

    @property
    def path(self) -> Path:
        """The run directory."""
        return self._run.path

    @property
    def config(self) -> Dict[str, Any]:
        """The config tree the supernet was trained with (``config.yaml``)."""
        return self._run.cfg

    @property
    def info(self) -> Dict[str, Any]:
        """``run.json``: dataset, images, label classes, image size, device, processes."""
        return self._run.info

    @property
    def space(self):
        """The run's search space (a ``rlnas.spaces.SearchSpace``)."""
        return self._run.space

    @property
    def scorer(self) -> str:
        """The run's scorer (``search.scorer``), the default of rank / search."""
        from .config import search_scorer
        return search_scorer(self.config)

    def checkpoints(self) -> List[str]:
        """File names in the run's ``ckpt/`` folder (``init.pt``, ``last.pt``, ``epoch_N.pt``)."""
        d = self.path / "ckpt"
        return sorted(p.name for p in d.glob("*.pt")) if d.is_dir() else []

    def get_scorer(self, name: Optional[str] = None, checkpoint: str = "last.pt",
                   **options) -> Scorer:
        """:func:`rlnas.get_scorer` on this run (default: the run's scorer)."""
        return get_scorer(name or self.scorer, self, checkpoint=checkpoint, **options)

    def rank(self, scorer: Optional[str] = None, checkpoint: str = "last.pt",
             out: Optional[PathLike] = None, *, progress: bool = True) -> Ranking:
        """``rlnas rank``: score every arch (enumerable spaces: NB201) and return the
        :class:`Ranking`, best first. Writes ``ranking.csv`` (the run's scorer) or
        ``ranking-<scorer>.csv`` (another one), or ``out``, and the returned ranking is that
        file. ``checkpoint`` names the trained checkpoint in ``ckpt/``; ``progress``: progress
        bars of slow scorers. ``Ranking.info`` holds what the ranking reported (file, timings,
        best arch)."""
        from .pipeline.rank import rank
        res = rank(self._run, final=checkpoint, scorer=scorer,
                   out=Path(out) if out is not None else None, bars=progress)
        ranking = Ranking.read(res["path"])
        ranking.info = res
        return ranking

    def ranking(self, scorer: Optional[str] = None) -> Ranking:
        """The ranking an earlier ``rank`` wrote for ``scorer`` (default: the run's), without
        scoring again."""
        from .pipeline.rank import ranking_path, run_scorer
        return Ranking.read(ranking_path(self._run, run_scorer(self._run, scorer)))

    def search(self, method: Optional[str] = None, scorer: Optional[str] = None,
               max_params: Optional[float] = None, max_flops: Optional[float] = None,
               seed: Optional[int] = None, checkpoint: str = "last.pt",
               name: Optional[str] = None, max_latency: Optional[float] = None,
               latency_table=None, latency_device: Optional[str] = None,
               latency_setting=None, *, progress: bool = True) -> Dict[str, Any]:
        """``rlnas search``: search the space by ``scorer`` (default the run's ``search.scorer``)
        with ``method`` (``evolution``, ``exhaustive``, ``random``; default the config's), under
        optional limits in M params / M FLOPs of the benchmark network. Returns the result
        dict the search writes: ``top`` (list of ``{"arch", "genome", <scorer>, "params_m",
        "flops_m"}``, best first), ``method``, ``scorer``, ``constraint``, ``evaluations``,
        ``seconds``, ``history``, ``size``; ``file`` names its ``result-<name>.json`` (``name``
        defaults to one made from the settings; ``result.json`` is a copy of the latest).
        ``max_latency`` (ms), ``latency_table`` (a device CSV) and its ``latency_device``
        column, ``latency_setting`` (``rlnas.latency.LatencySetting``, measured here): as
        ``rlnas search --max-latency`` (each top arch gets ``latency_ms`` and
        ``latency_source``; ``latency`` says where the numbers come from). ``progress``: progress
        bars of slow scorers."""
        from .pipeline.search import search
        return search(self._run, method=method, final=checkpoint, max_params=max_params,
                      max_flops=max_flops, seed=seed, scorer=scorer, name=name,
                      max_latency=max_latency, latency_table=latency_table,
                      latency_device=latency_device, latency_setting=latency_setting,
                      bars=progress)

    def result(self, name: Optional[str] = None) -> Dict[str, Any]:
        """A search result written earlier, without searching again: the latest
        (``result.json``), or ``name`` (a search name such as ``evolution-angle_sum``, or a
        ``result-*.json`` file name)."""
        import json
        have = ", ".join(sorted(p.name for p in self.path.glob("result*.json"))) or "none"
        candidates = ([self.path / "result.json"] if not name else
                      [self.path / name, self.path / f"result-{name}.json"])
        for p in candidates:
            if p.is_file():
                if not (p.name == "result.json" or (p.name.startswith("result-")
                                                     and p.name.endswith(".json"))):
                    raise RlnasError(f"{p.name} is not a search result; results of "
                                     f"{self.path}: {have}")
                try:
                    found = json.loads(p.read_text())
                except ValueError:
                    raise RlnasError(f"{p} is not valid JSON") from None
                if not isinstance(found, dict) or "top" not in found:
                    raise RlnasError(f"{p} is not a search result (no 'top'); results of "
                                     f"{self.path}: {have}")
                return found
        raise RlnasError(f"no search result {name or 'result.json'!r} in {self.path} "
                         f"(its results: {have}); run Run.search() first")

    def evaluate(self, nasbench201: Optional[PathLike] = None,
                 scorers: Union[str, Sequence[str], None] = None, *,
                 others: Sequence[Union["Run", PathLike]] = (), **kwargs) -> Dict[str, Any]:
        """``rlnas evaluate`` on this run (and ``others``, e.g. runs of other seeds): see
        :func:`rlnas.evaluate`. ``nasbench201`` defaults to the config's
        ``evaluate.nasbench201``; ``scorers`` to the run's scorer and the ``params`` baseline.
        ``benchmark=FILE``: any benchmark table instead (see :func:`rlnas.evaluate`)."""
        if kwargs.get("benchmark") is not None:
            if nasbench201 is not None:
                raise RlnasError("give nasbench201 or benchmark, not both")
            return evaluate([self, *others], None,
                            scorers=scorers if scorers is not None else [self.scorer, "params"],
                            **kwargs)
        table = nasbench201 or self.config.get("evaluate", {}).get("nasbench201")
        if not table:
            raise RlnasError(f"{self.path}: no NAS-Bench-201 table; pass nasbench201=PATH "
                             "(a table from `rlnas nasbench201 convert`)")
        return evaluate([self, *others], table,
                        scorers=scorers if scorers is not None else [self.scorer, "params"],
                        **kwargs)

    def check(self, archs: int = 4, epochs: int = 2, images: Optional[int] = None,
              image_size: Optional[int] = None, channels: Optional[int] = None,
              cells: Optional[int] = None, seed: int = 0, scorer: Optional[str] = None,
              out: Optional[PathLike] = None, data_root: Optional[PathLike] = None,
              test_root: Optional[PathLike] = None, progress: bool = False, log: Optional[Callable] = None) -> Dict[str, Any]:
        """``rlnas check``: retrain ``archs`` top-ranked, middle-ranked and random archs with the
        true labels (``epochs``, ``images``, ``image_size``, ``channels``/``cells``: the budget)
        and judge ``scorer`` (default the run's) against the params / flops baselines by
        Kendall tau, with a bootstrap interval. Writes ``check.json`` / ``check.csv`` in ``out``
        (default ``RUN/check``; resumable; ``data_root`` / ``test_root``: the data, default the
        run's) and returns the report (``rows``, ``tau``,
        ``difference_interval``, ``winner``, ``verdict``). ``log``: progress lines (default:
        none)."""
        from .pipeline.check import check_run
        return check_run(self._run, archs=archs, epochs=epochs, images=images,
                         image_size=image_size, channels=channels, cells=cells, seed=seed,
                         scorer=scorer, out=Path(out) if out is not None else None,
                         data_root=str(data_root) if data_root is not None else None,
                         test_root=str(test_root) if test_root is not None else None,
                         progress=progress, log=log or (lambda line: None))

    def __repr__(self):
        return f"Run({str(self.path)!r}, space={self.config['space']!r}, scorer={self.scorer!r})"

    def __fspath__(self) -> str:
        return str(self.path)


def open_run(path: PathLike) -> Run:
    """The :class:`Run` in directory ``path`` (a run made by :func:`train` or ``rlnas train``).
    Raises :class:`RlnasError` if ``path`` is missing, a file, or not a run."""
    from .rundir import open_run as _open
    if Path(path).exists() and not Path(path).is_dir():
        raise RlnasError(f"{path} is a file, not a run directory")
    return Run(_open(path))


class TrainingPlan(NamedTuple):
    """What ``rlnas train CONFIG`` resolves before it trains (:func:`plan_training`)."""

    config: Dict[str, Any]  # the resolved, validated config
    out: Path  # the run directory
    continues: bool  # CONFIG named a run directory: its saved config.yaml is continued


def plan_training(config: PathLike, out: Optional[PathLike] = None,
                  overrides: Overrides = None) -> TrainingPlan:
    """The config and run directory of :func:`train` (and ``rlnas train`` / ``rlnas run``),
    resolved and checked before anything is trained.

    Args:
        config: a preset name, a YAML file or a run directory (its saved ``config.yaml``;
            ``out`` then defaults to it).
        out: the run directory (default ``runs/<preset>``).
        overrides: as :func:`load_config`.

    Returns:
        the :class:`TrainingPlan`.
    """
    saved = _run_config(config)
    name = str(saved or config)
    default = saved.parent if saved is not None else Path("runs") / Path(name).stem
    return TrainingPlan(load_config(name, overrides), Path(out or default), saved is not None)


def run_training(plan: TrainingPlan, *, progress: bool = True, caller: str = "rlnas.train",
                 preset: Optional[PathLike] = None) -> Run:
    """Train (or resume) the supernet of a :class:`TrainingPlan`; returns its :class:`Run`
    with ``train_result``. Before a new run the preset note (``rlnas.config.preset_note``: the
    fast recipe on a CPU) is printed to stderr, prefixed with ``caller``; ``preset`` is the
    name the config was given by (default: none, no note)."""
    from .config import preset_note
    from .distributed import resolve_device
    from .pipeline import train as train_stage
    cfg = plan.config
    note = None if plan.continues or preset is None else \
        preset_note(str(preset), cfg, resolve_device(cfg["device"]).type)
    res = train_stage.train_supernet(cfg, plan.out, progress=progress,
                                     note=note and f"{caller}: {note}")
    run = open_run(plan.out)
    run.train_result = res
    return run


def train(config: PathLike, out: Optional[PathLike] = None, overrides: Overrides = None, *,
          progress: bool = True, caller: str = "rlnas.train") -> Run:
    """``rlnas train``: train a supernet, or resume the run in ``out``; returns its :class:`Run`.

    ``config`` is a preset name (:func:`list_presets`), a YAML file, or a run directory (then
    its saved ``config.yaml`` is used and ``out`` defaults to it: ``train("runs/d")`` resumes
    an interrupted run). ``out`` defaults to ``runs/<preset>`` as on the command line.
    ``overrides``: a mapping ``{"epochs": 2, "model.channels": 4}`` or a list
    ``["epochs=2", "model.channels=4"]`` (see :func:`load_config`). Training an existing run
    resumes it where the config matches and is refused otherwise; a finished run returns at
    once. ``Run.train_result`` holds the statistics (``epoch``, ``loss``, ``train_acc``,
    ``images_per_s``, ``resumed``, ``already_done``, ...). ``progress=False``: no progress bar.
    ``caller`` names the caller in the note printed before training a paper preset on a CPU.
    Under torchrun every process calls this; the handle is for rank 0's stages."""
    return run_training(plan_training(config, out, overrides), progress=progress,
                        caller=caller, preset=config)


def retrain(config: PathLike, arch: str, out: Optional[PathLike] = None,
            overrides: Overrides = None, *, progress: bool = True) -> Dict[str, Any]:
    """``rlnas retrain``: train the standalone network of ``arch`` from scratch with the true
    labels (resumes the retraining in ``out``).

    Args:
        config: a retraining preset (``retrain-nb201-cifar10``) or YAML file.
        arch: an arch string, a ``result.json`` (its best arch) or a run directory (its
            ``result.json``).
        out: the output folder (default ``runs/<preset>``).
        overrides: as :func:`load_config`.
        progress: show a progress bar.

    Returns:
        what ``retrain.json`` holds (``arch``, ``params_m``, ``last`` and ``best`` test top-1 /
        top-5 with their epochs, ``epochs``), and ``out``, the folder.
    """
    from .pipeline.retrain import train_network
    cfg = load_config(config, overrides)
    out = Path(out or Path("runs") / Path(str(config)).stem)
    return dict(train_network(cfg, arch, out, progress=progress), out=str(out))


def export(run: PathLike, out: Optional[PathLike] = None, *, onnx: bool = False) -> List[str]:
    """``rlnas export``: the retrained network of the retraining folder ``run`` as a
    ``torch.export`` program (``model.pt2``; TorchScript ``model.ts`` where that fails), a state
    dict (``model.pt``), ``export.json`` and with ``onnx`` ``model.onnx``, in ``out`` (default
    ``RUN/export``). Returns the paths written."""
    from .pipeline.export import export as export_stage
    return export_stage(run, out, onnx=onnx)


def evaluate(runs: Sequence[Union[Run, PathLike]], nasbench201: Optional[PathLike] = None,
             scorers: Union[str, Sequence[str]] = ("angle",), *,
             columns: Optional[Sequence[str]] = None, sample: Optional[int] = None,
             proxy: Optional[Dict[str, Any]] = None, out: Optional[PathLike] = None,
             result: Optional[str] = None, progress: bool = True,
             benchmark: Optional[PathLike] = None) -> Dict[str, Any]:
    """``rlnas evaluate``: compare scorers with NAS-Bench-201 over one or more NB201 runs (one
    per seed); returns the dict written to ``evaluation.json`` (also ``evaluation.md`` and
    ``plots/``, in ``out``, default the first run). ``scorers``: names / ensembles, as a list or
    a comma-separated string (``"angle_sum,params,synflow"``); ``columns``: accuracy columns of
    the table (default all); ``sample``: score a seeded sample of N cells; ``proxy``: options of
    the zero-cost proxies and the accuracy scorer (``proxy_model={"channels": 16, "cells": 5}``,
    ``batch_size``, ``recal_images``, ``eval_images``); ``result``: which search of the first
    run to report (a search name or ``result-*.json``; default the latest). Key results:
    ``summary`` (mean and std over runs of Kendall tau, Spearman rho, precision@k, top-1
    accuracy per scorer and column), ``per_run``, ``search`` (the searched arch's
    accuracies). ``benchmark``: any benchmark table in place of ``nasbench201`` (NB201 CSV,
    NAS-Bench-Macro JSON, DARTS-214 CSV, or a CSV ``arch,<accuracy columns>[,params_m,flops_m]``
    in the runs' space notation; see ``rlnas.tables``): the archs scored are the table's, and
    each scorer's top-pick percentile and top-10 mean accuracy are added."""
    from .pipeline.evaluate import evaluate_runs
    if isinstance(runs, (str, Path, Run)):
        runs = [runs]
    handles = [r if isinstance(r, Run) else open_run(r) for r in runs]
    names = ([s.strip() for s in scorers.split(",") if s.strip()] if isinstance(scorers, str)
             else list(scorers))
    return evaluate_runs([r._run for r in handles], nasbench201, scorers=names, columns=columns,
                         sample=sample, proxy=proxy, out_dir=Path(out) if out is not None else None,
                         progress=progress, result=result, benchmark=benchmark)
