"""Registry of search spaces: string names are the public API (``get_space('nb201')``)."""
from __future__ import annotations

from typing import Callable, Dict

from ..errors import RlnasError
from .base import Arch, SearchSpace

_SPACES: Dict[str, Callable[[], SearchSpace]] = {}


def register_space(name: str):
    """Class decorator: make a space constructible by name."""
    def deco(cls):
        _SPACES[name] = cls
        cls.name = name
        return cls
    return deco


def get_space(name: str, **kwargs) -> SearchSpace:
    if name not in _SPACES:
        raise RlnasError(f"unknown search space {name!r}; known: {', '.join(sorted(_SPACES))}")
    return _SPACES[name](**kwargs)


def list_spaces():
    return sorted(_SPACES)


from . import nb201  # noqa: E402,F401  (registers 'nb201')
from . import darts  # noqa: E402,F401  (registers 'darts')

__all__ = ["Arch", "SearchSpace", "get_space", "list_spaces", "register_space"]
