"""The run directory: what a supernet run or a retraining writes beside its checkpoints and how
a later command reads it back (``Run``, ``open_run``), checks that it may continue it
(``check_run_dir``, ``check_recorded_config``) and identifies its checkpoints (``model_meta``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch

from . import config as config_mod
from .checkpoint import load_checkpoint, load_model_state
from .checks import path_arg, seed_arg, str_arg
from .errors import RlnasError
from .files import LOCK_NAME, os_error_text
from .schema import Config
from .spaces import recorded_space

PathLike = Union[str, Path]


def model_meta(cfg: Dict[str, Any], num_classes: int) -> Dict[str, Any]:
    """Identity fields stored in every checkpoint and checked when one is loaded."""
    cfg = Config.of(cfg)
    return {"space": cfg.space, "model_config": cfg.model,
            "num_classes": int(num_classes)}


# what a run or retraining writes right after its config.yaml
_WRITTEN_WITH_CONFIG = ("run.json", "labels.npz", "arch.json")


def check_run_dir(cfg: Dict[str, Any], run_dir: Path) -> bool:
    """True when ``run_dir`` holds a run to resume (with a compatible config)."""
    saved = run_dir / "config.yaml"
    # a config.yaml alone may be the user's own: a run has what rlnas writes next to it
    if saved.exists() and any((run_dir / n).exists() for n in _WRITTEN_WITH_CONFIG):
        try:
            info = json.loads((run_dir / "run.json").read_text())
        except (OSError, ValueError):
            info = None
        # the checkpoints' config is run.json's record; config.yaml is compared only where there
        # is none (an older run): an edited config.yaml must not be taken for what was trained
        if recorded_config(run_dir, info) is None:
            config_mod.check_resume_compatible(config_mod.load_yaml(saved), cfg, run_dir)
        check_recorded_config(cfg, run_dir, info=info)
        resume = (run_dir / "ckpt" / "last.pt").exists()
        if resume and not (run_dir / "arch.json").exists() \
                and not (run_dir / "ckpt" / "init.pt").exists():
            raise RlnasError(f"run {run_dir} has ckpt/last.pt but no ckpt/init.pt (W0): the "
                             f"angle can never rank it, so it is not resumed; train a new run "
                             f"with --out NEW")
        return resume
    try:  # the lock file alone (a run that failed before writing anything) is not a run
        foreign = run_dir.exists() and any(p.name != LOCK_NAME for p in run_dir.iterdir())
    except OSError as exc:
        raise RlnasError(f"cannot read run directory {run_dir}: {os_error_text(exc)}") from None
    if foreign:
        raise RlnasError(f"{run_dir} exists and is not an rlnas run (no config.yaml); "
                         "choose an empty or new directory")
    return False


def recorded_config(run_dir: Path, info: Optional[Dict[str, Any]] = None
                    ) -> Optional[Dict[str, Any]]:
    """The config a run's checkpoints were trained with, as recorded in its run.json when
    training started (``info``: that run.json, already read); None for runs made before rlnas
    recorded it (or an unreadable run.json)."""
    if info is None:
        try:
            info = json.loads((run_dir / "run.json").read_text())
        except (OSError, ValueError):
            return None
    recorded = info.get("config") if isinstance(info, dict) else None
    # completed as config.yaml is: keys a later rlnas added take the defaults that keep the
    # behaviour the run was trained with
    return config_mod.complete(recorded) if isinstance(recorded, dict) else None


def check_recorded_config(cfg: Dict[str, Any], run_dir: Path, keys=None,
                          info: Optional[Dict[str, Any]] = None) -> None:
    """RlnasError unless ``cfg`` may continue (``keys``: only those keys may differ from) what
    the run was trained with (run.json); runs without the record are not checked.

    Args:
        cfg: the config of the command (read from the possibly edited config.yaml).
        run_dir: the run.
        keys: None (resume: :func:`rlnas.config.check_resume_compatible`) or the dotted keys
            that a later stage depends on (rank, search: the space, scorer and model).
        info: the run's run.json where the caller has read it already."""
    if info is None:
        try:
            info = json.loads((run_dir / "run.json").read_text())
        except (OSError, ValueError):
            info = None
    recorded = recorded_config(run_dir, info)
    if recorded is None:
        return
    check_config_file_complete(run_dir, info["config"])
    how = ("its config.yaml was edited after training (run.json records what the checkpoints "
           "were trained with): restore config.yaml, or train a new run with --out NEW")
    if keys is None:
        try:
            config_mod.check_resume_compatible(recorded, cfg, run_dir)
        except RlnasError as err:
            raise RlnasError(f"{err}; {how}") from None
        return
    a, b = config_mod.flatten(recorded), config_mod.flatten(cfg)
    for k in sorted(set(a) | set(b)):
        if any(k == p or k.startswith(p + ".") for p in keys) and a.get(k) != b.get(k):
            raise RlnasError(f"run {run_dir} was trained with {k}={a.get(k)!r}, but its "
                             f"config.yaml says {b.get(k)!r}; {how}")


def check_config_file_complete(run_dir: Path, record: Dict[str, Any]) -> None:
    """RlnasError when the run's config.yaml lacks keys its run.json records (a file cut short):
    completed with the schema's defaults it would silently be another run's config.

    Args:
        run_dir: the run (or retraining).
        record: the config recorded in its run.json, as written."""
    path = run_dir / "config.yaml"
    saved = config_mod.flatten(config_mod.load_yaml(path))
    missing = [k for k in config_mod.flatten(record) if k not in saved]
    if missing:
        listed = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3
                                           else "")
        raise RlnasError(f"{path} is damaged: it lacks {listed}, with which the run was trained "
                         f"(run.json records them); restore it (run.json's \"config\" holds "
                         f"every value)")


class Run:
    """A supernet run directory (made by ``rlnas.train`` or ``rlnas train``): what every stage
    after training takes, and the Python API's handle on it (``rlnas.open_run``).

    ``path``, ``config`` (the saved config tree), ``info`` (``run.json``), ``space`` (the
    search space), ``scorer`` (the run's ``search.scorer``), ``cost_kwargs`` (the benchmark
    network the costs refer to), ``train_result`` (the statistics of the ``rlnas.train`` call
    that returned this handle, else None). The stages (``rank``, ``search``, ``evaluate``,
    ``check``) write into ``path`` as the command line does and return what they wrote as
    data; they are imported when called (they sit above this module)."""

    def __init__(self, path: PathLike, config: Dict[str, Any], info: Dict[str, Any],
                 train_result: Optional[Dict[str, Any]] = None):
        self.path, self.config, self.info = Path(path), Config.of(config), info
        self.train_result = train_result

    @property
    def cfg(self) -> Dict[str, Any]:
        """Deprecated name of :attr:`config` (kept for one release)."""
        return self.config

    @property
    def space(self):
        """The run's search space (a ``rlnas.spaces.SearchSpace``)."""
        return recorded_space(self.config.space, self.path / "config.yaml")

    @property
    def scorer(self) -> str:
        """The run's scorer (``search.scorer``), the default of rank / search."""
        return config_mod.search_scorer(self.config)

    @property
    def cost_kwargs(self) -> Dict[str, Any]:
        """Limits and reported costs refer to the space's benchmark network (NB201: C=16, N=5,
        on the run's dataset), whatever size the supernet was trained at."""
        return self.space.cost_defaults(self.info)

    @property
    def meta(self) -> Dict[str, Any]:
        """The identity fields of the run's checkpoints (:func:`model_meta`)."""
        return model_meta(self.config, self.info["num_classes"])

    def checkpoint_state(self, name: str) -> Dict[str, torch.Tensor]:
        """The supernet weights of ``ckpt/<name>`` (checked against the run's supernet), on
        the CPU."""
        ckpt = load_checkpoint(self.path / "ckpt" / name, expect=self.meta)
        model = self.space.supernet(num_classes=self.info["num_classes"], **self.config.model)
        load_model_state(model, ckpt["model"], self.path / "ckpt" / name, self.config.space)
        return {k: v.detach().cpu() for k, v in ckpt["model"].items()}

    def checkpoints(self) -> List[str]:
        """File names in the run's ``ckpt/`` folder (``init.pt``, ``last.pt``, ``epoch_N.pt``)."""
        d = self.path / "ckpt"
        return sorted(p.name for p in d.glob("*.pt")) if d.is_dir() else []

    def get_scorer(self, name: Optional[str] = None, checkpoint: str = "last.pt", **options):
        """:func:`rlnas.get_scorer` on this run (default: the run's scorer)."""
        from .scorers import get_scorer
        return get_scorer(self.scorer if name is None else name, self, checkpoint=checkpoint,
                          **options)

    def rank(self, scorer: Optional[str] = None, checkpoint: str = "last.pt",
             out: Optional[PathLike] = None, *, progress: bool = True):
        """``rlnas rank``: score every arch (enumerable spaces: NB201) and return the
        :class:`rlnas.api.Ranking`, best first. Writes ``ranking.csv`` (the run's scorer) or
        ``ranking-<scorer>.csv`` (another one), or ``out``, and the returned ranking is that
        file. ``checkpoint`` names the trained checkpoint in ``ckpt/``; ``progress``: progress
        bars of slow scorers. ``Ranking.info`` holds what the ranking reported (file, timings,
        best arch)."""
        from .pipeline.rank import Ranking, rank
        res = rank(self, checkpoint=checkpoint,
                   scorer=None if scorer is None else str_arg(scorer, "scorer"),
                   out=None if out is None else path_arg(out, "out"), progress=progress)
        ranking = Ranking.read(res["path"])
        ranking.info = res
        return ranking

    def ranking(self, scorer: Optional[str] = None):
        """The ranking an earlier ``rank`` wrote for ``scorer`` (default: the run's), without
        scoring again."""
        from .pipeline.rank import Ranking, ranking_path
        scorer = self.scorer if scorer is None else str_arg(scorer, "scorer")
        return Ranking.read(ranking_path(self, scorer))

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
        method, scorer, name = (None if v is None else str_arg(v, what) for v, what in
                                ((method, "method"), (scorer, "scorer"), (name, "name")))
        seed = None if seed is None else seed_arg(seed)
        return search(self, method=method, checkpoint=checkpoint, max_params=max_params,
                      max_flops=max_flops, seed=seed, scorer=scorer, name=name,
                      max_latency=max_latency, latency_table=latency_table,
                      latency_device=latency_device, latency_setting=latency_setting,
                      progress=progress)

    def result_file(self, name: Optional[str] = None) -> Path:
        """The file of a search result: the latest (``result.json``), or ``name`` (a search
        name such as ``evolution-angle_sum``, a ``result-*.json`` file name in the run, or a path
        to one).

        Raises:
            RlnasError: no such result, or the file named is not a search result."""
        name = None if name is None else str_arg(name, "name")
        candidates = ([self.path / "result.json"] if not name else
                      [self.path / name, self.path / f"result-{name}.json", Path(name)])
        for p in candidates:
            if p.is_file():
                if not (p.name == "result.json" or (p.name.startswith("result-")
                                                     and p.name.endswith(".json"))):
                    raise RlnasError(f"{p.name} is not a search result; results of "
                                     f"{self.path}: {self._result_names()}")
                return p
        raise RlnasError(f"no search result {name or 'result.json'!r} in {self.path} "
                         f"(its results: {self._result_names()}); run Run.search() first")

    def _result_names(self) -> str:
        """The run's search result files, for an error message."""
        return ", ".join(sorted(p.name for p in self.path.glob("result*.json"))) or "none"

    def result(self, name: Optional[str] = None) -> Dict[str, Any]:
        """A search result written earlier, without searching again: the latest
        (``result.json``), or ``name`` (see :meth:`result_file`)."""
        p = self.result_file(name)
        try:
            found = json.loads(p.read_text())
        except ValueError:
            raise RlnasError(f"{p} is not valid JSON") from None
        if not isinstance(found, dict) or "top" not in found:
            raise RlnasError(f"{p} is not a search result (no 'top'); results of "
                             f"{self.path}: {self._result_names()}")
        return found

    def evaluate(self, nasbench201: Optional[PathLike] = None,
                 scorers: Union[str, Sequence[str], None] = None, *,
                 others: Sequence[Union["Run", PathLike]] = (), **kwargs) -> Dict[str, Any]:
        """``rlnas evaluate`` on this run (and ``others``, e.g. runs of other seeds): see
        :func:`rlnas.evaluate`. ``nasbench201`` defaults to the config's
        ``evaluate.nasbench201``; ``scorers`` to the run's scorer and the ``params`` baseline.
        ``benchmark=FILE``: any benchmark table instead (see :func:`rlnas.evaluate`)."""
        from .api import evaluate
        if kwargs.get("benchmark") is not None:
            if nasbench201 is not None:
                raise RlnasError("give nasbench201 or benchmark, not both")
            return evaluate([self, *others], None,
                            scorers=scorers if scorers is not None else [self.scorer, "params"],
                            **kwargs)
        table = nasbench201 or self.config.evaluate.nasbench201
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
              test_root: Optional[PathLike] = None, progress: bool = False,
              log: Optional[Callable] = None) -> Dict[str, Any]:
        """``rlnas check``: retrain ``archs`` top-ranked, middle-ranked and random archs with the
        true labels (``epochs``, ``images``, ``image_size``, ``channels``/``cells``: the budget)
        and judge ``scorer`` (default the run's) against the params / flops baselines by
        Kendall tau, with a bootstrap interval. Writes ``check.json`` / ``check.csv`` in ``out``
        (default ``RUN/check``; resumable; ``data_root`` / ``test_root``: the data, default the
        run's) and returns the report (``rows``, ``tau``,
        ``difference_interval``, ``winner``, ``verdict``). ``log``: progress lines (default:
        none)."""
        from .pipeline.check import check_run
        return check_run(self, archs=archs, epochs=epochs, images=images,
                         image_size=image_size, channels=channels, cells=cells, seed=seed,
                         scorer=scorer, out=Path(out) if out is not None else None,
                         data_root=str(data_root) if data_root is not None else None,
                         test_root=str(test_root) if test_root is not None else None,
                         progress=progress, log=log or (lambda line: None))

    def retrain_top(self, top: int = 3, random: int = 3, epochs: int = 2,
                    images: Optional[int] = None, image_size: Optional[int] = None,
                    channels: Optional[int] = None, cells: Optional[int] = None, seed: int = 0,
                    result: Optional[str] = None, out: Optional[PathLike] = None,
                    data_root: Optional[PathLike] = None, test_root: Optional[PathLike] = None,
                    progress: bool = False, log: Optional[Callable] = None) -> Dict[str, Any]:
        """``rlnas retrain RUN --top K``: retrain the ``top`` best archs of a search (``result``:
        its name, default the latest), the largest arch and ``random`` random archs under its
        limits, with the true labels and ``check``'s short recipe (``epochs``, ``images``,
        ``image_size``, ``channels``/``cells``, ``seed``: the same for every arch), and report
        them side by side. Writes ``retrain-top.json`` / ``.csv`` / ``.md`` in ``out`` (default
        ``RUN/retrain-top``; resumable) and returns the report (``rows`` with each arch's role,
        score, params, FLOPs and test accuracy, ``noise``, ``summary``). ``log``: progress
        lines (default: none)."""
        from .pipeline.check import retrain_top
        return retrain_top(self, top=top, random=random, epochs=epochs, images=images,
                           image_size=image_size, channels=channels, cells=cells, seed=seed,
                           result=result, out=Path(out) if out is not None else None,
                           data_root=str(data_root) if data_root is not None else None,
                           test_root=str(test_root) if test_root is not None else None,
                           progress=progress, log=log or (lambda line: None))

    def __repr__(self):
        return f"Run({str(self.path)!r}, space={self.config.space!r}, scorer={self.scorer!r})"

    def __fspath__(self) -> str:
        return str(self.path)


def open_run(path: PathLike) -> Run:
    """The :class:`Run` in directory ``path`` (a run made by ``rlnas.train`` or ``rlnas train``),
    its config validated and checked against what its checkpoints were trained with.

    Raises:
        RlnasError: if ``path`` is not a path (a str or os.PathLike), is missing, a file, or
            not a run.
    """
    path = path_arg(path, "the run directory")
    if path.exists() and not path.is_dir():
        raise RlnasError(f"{path} is a file, not a run directory")
    if not path.is_dir():
        raise RlnasError(f"run directory {path} not found")
    if not (path / "config.yaml").exists() or not (path / "run.json").exists():
        raise RlnasError(f"{path} is not an rlnas run (no config.yaml/run.json); "
                         "create one with `rlnas train`")
    cfg = config_mod.load_config(str(path / "config.yaml"))  # validated as the run's record
    info = read_run_info(path / "run.json")
    # rank and search would score by another scorer or space and replace the run's results
    check_recorded_config(cfg, path, keys=("space", "search.scorer", "model", "labels"),
                          info=info)
    return Run(path, cfg, info)


def read_run_info(path: Path) -> Dict[str, Any]:
    """A run's ``run.json``, checked: a damaged file is one line naming it, not a traceback.

    Args:
        path: the ``run.json`` file.

    Returns:
        The run's record, a mapping holding a positive integer ``num_classes``.
    """
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RlnasError(f"{path} is corrupt (not JSON text)") from None
    if not isinstance(info, dict):
        raise RlnasError(f"{path} is corrupt: it must hold a JSON object, not "
                         f"{type(info).__name__}")
    k = info.get("num_classes")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise RlnasError(f"{path} is corrupt: num_classes must be a positive integer, "
                         f"found {k!r}")
    return info
