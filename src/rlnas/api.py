"""The Python API: the stages of the ``rlnas`` command as functions that return data.

    import rlnas
    run = rlnas.train("demo-digits", "runs/d", overrides={"epochs": 2, "model.channels": 4})
    ranking = run.rank()                  # every arch, best first (also writes ranking.csv)
    result = run.search(max_params=0.5)   # the dict written to result.json
    report = run.evaluate(nasbench201="nasbench201.csv")  # the dict of evaluation.json

The command line (``rlnas.cli``) calls these functions: ``train`` is ``rlnas train``,
``Run.rank`` is ``rlnas rank``, ``Run.search`` is ``rlnas search``, ``evaluate`` /
``Run.evaluate`` are ``rlnas evaluate``, ``Run.check``, ``retrain`` and ``export`` the verbs of
those names; they read and write the same files in the run directory, so a run started here can
be continued from the shell and the other way round.
Errors in the user's input raise :class:`rlnas.RlnasError` (the one-line messages the CLI
prints). Heavy modules (torch) are imported on first use, not by ``import rlnas``.
"""
from __future__ import annotations

from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Union,
)

from .checks import int_arg, names_arg, path_arg, str_arg
from .errors import RlnasError

if TYPE_CHECKING:  # the names below load torch: imported on first use (``__getattr__``)
    from .pipeline.rank import Ranking
    from .rundir import Run, open_run
    from .scorers import Scorer, get_scorer

PathLike = Union[str, Path]
Overrides = Union[Mapping[str, Any], Iterable[str], None]

__all__ = ["train", "open_run", "evaluate", "retrain", "export", "load_config", "get_scorer",
           "list_scorers", "get_space", "list_spaces", "list_presets", "allow_space", "Run",
           "Ranking", "Scorer", "RlnasError"]


# The run handle, its ranking and scorer classes and the functions that make them live with the
# code they belong to (rlnas.rundir, rlnas.pipeline.rank, rlnas.scorers); they are the API's
# names too, loaded on first use so that ``import rlnas`` stays light.
_ELSEWHERE = {"Run": "rundir", "open_run": "rundir", "Ranking": "pipeline.rank",
              "Scorer": "scorers", "get_scorer": "scorers"}


def __getattr__(name):
    if name in _ELSEWHERE:
        import importlib
        value = getattr(importlib.import_module(f"{__package__}.{_ELSEWHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    try:
        items = list(overrides)
    except TypeError:
        raise RlnasError(f"overrides must be a mapping or a list of key=value strings, not "
                         f"{type(overrides).__name__} {overrides!r}") from None
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
    saved = _run_config(path_arg(config, "config"))
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
    config = path_arg(config, "config")
    out = None if out is None else path_arg(out, "out")
    saved = _run_config(config)
    name = str(saved or config)
    default = saved.parent if saved is not None else Path("runs") / Path(name).stem
    return TrainingPlan(load_config(name, overrides), Path(out or default), saved is not None)


def run_training(plan: TrainingPlan, *, progress: bool = True, caller: str = "rlnas.train",
                 preset: Optional[PathLike] = None,
                 before_training: Optional[Callable[[Dict[str, Any]], None]] = None) -> Run:
    """Train (or resume) the supernet of a :class:`TrainingPlan`; returns its :class:`Run`
    with ``train_result``. Before a new run the preset note (``rlnas.config.preset_note``: the
    fast recipe on a CPU) is printed to stderr, prefixed with ``caller``; ``preset`` is the
    name the config was given by (default: none, no note). ``before_training``: a check of the
    run's record (what run.json will hold) made before anything is written
    (``rlnas.pipeline.train.train_supernet``)."""
    from .config import preset_note
    from .distributed import resolve_device
    from .pipeline import train as train_stage
    from .rundir import open_run
    cfg = plan.config
    note = None if plan.continues or preset is None else \
        preset_note(str(preset), cfg, resolve_device(cfg.device).type)
    res = train_stage.train_supernet(cfg, plan.out, progress=progress,
                                     note=note and f"{caller}: {note}",
                                     before_training=before_training)
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
    arch = str_arg(arch, "arch")
    out = None if out is None else path_arg(out, "out")
    cfg = load_config(config, overrides)
    out = Path(out or Path("runs") / Path(str(config)).stem)
    return dict(train_network(cfg, arch, out, progress=progress), out=str(out))


def export(run: PathLike, out: Optional[PathLike] = None, *, onnx: bool = False) -> List[str]:
    """``rlnas export``: the retrained network of the retraining folder ``run`` as a
    ``torch.export`` program (``model.pt2``; TorchScript ``model.ts`` where that fails), a state
    dict (``model.pt``), ``export.json`` and with ``onnx`` ``model.onnx``, in ``out`` (default
    ``RUN/export``). Returns the paths written."""
    from .pipeline.export import export as export_stage
    return export_stage(path_arg(run, "run"), None if out is None else path_arg(out, "out"),
                        onnx=onnx)


def evaluate(runs: Sequence[Union[Run, PathLike]], nasbench201: Optional[PathLike] = None,
             scorers: Union[str, Sequence[str]] = ("angle",), *,
             columns: Optional[Sequence[str]] = None, sample: Optional[int] = None,
             proxy: Optional[Dict[str, Any]] = None, out: Optional[PathLike] = None,
             result: Optional[str] = None, progress: bool = True,
             benchmark: Optional[PathLike] = None, latency_table: Optional[PathLike] = None,
             latency_devices: Optional[Sequence[str]] = None) -> Dict[str, Any]:
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
    each scorer's top-pick percentile and top-10 mean accuracy are added. ``latency_table``
    and ``latency_devices`` (a device table such as HW-NAS-Bench's and its device columns):
    the constrained-search ladder under each device's latency limits, next to params / FLOPs."""
    from .pipeline.evaluate import evaluate_runs
    from .rundir import Run, open_run
    if isinstance(runs, (str, Path, Run)):
        runs = [runs]
    if not isinstance(runs, (list, tuple)):
        raise RlnasError(f"runs must be a Run, a run directory or a list of them, got "
                         f"{type(runs).__name__} {runs!r}")
    handles = [r if isinstance(r, Run) else open_run(r) for r in runs]
    names = names_arg(scorers, "scorers")
    table, benchmark, out, latency_table = (
        None if v is None else path_arg(v, what) for v, what in
        ((nasbench201, "nasbench201"), (benchmark, "benchmark"), (out, "out"),
         (latency_table, "latency_table")))
    columns = None if columns is None else names_arg(columns, "columns")
    latency_devices = (None if latency_devices is None
                       else names_arg(latency_devices, "latency_devices"))
    sample = None if sample is None else int_arg(sample, "sample", 1)
    result = None if result is None else str_arg(result, "result")
    if proxy is not None and not isinstance(proxy, Mapping):
        raise RlnasError(f"proxy must be a dict of options, got {type(proxy).__name__} "
                         f"{proxy!r}")
    return evaluate_runs(handles, table, scorers=names, columns=columns, sample=sample,
                         proxy=proxy, out_dir=out, progress=progress, result=result,
                         benchmark=benchmark, latency_table=latency_table,
                         latency_devices=latency_devices)
