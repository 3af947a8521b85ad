"""rlnas: neural architecture search with random labels (Zhang et al., CVPR 2021).

The Python API (the same code path as the ``rlnas`` command; details in :mod:`rlnas.api`)::

    import rlnas
    run = rlnas.train("demo-digits", "runs/d", overrides={"epochs": 2, "channels": 4})
    ranking = run.rank()              # rlnas rank: every arch, best first (-> ranking.csv)
    result = run.search()             # rlnas search: the result.json dict
    run = rlnas.open_run("runs/d")    # a run made earlier, here or with the CLI

Also ``rlnas.evaluate``, ``rlnas.retrain``, ``rlnas.export``, ``rlnas.load_config``,
``rlnas.get_scorer`` / ``list_scorers``, ``rlnas.get_space`` / ``list_spaces`` / ``allow_space``,
``rlnas.list_presets`` and ``rlnas.RlnasError``.
The names are imported on first use, so ``import rlnas`` does not import torch.
"""
from .errors import RlnasError

__version__ = "0.1.0"

_API = ("train", "open_run", "evaluate", "retrain", "export", "load_config", "get_scorer",
        "list_scorers", "get_space", "list_spaces", "list_presets", "allow_space", "Run",
        "Ranking", "Scorer")

__all__ = [*_API, "RlnasError", "__version__"]


def __getattr__(name):
    """Load the API module on first access of one of its names (PEP 562)."""
    if name in _API:
        from . import api
        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))
