"""Registry of search spaces: string names are the public API (``get_space('nb201')``).

A name is a registered space (``nb201``, ``darts``, ``mobilenet``) or ``package.module:ATTRIBUTE``
naming a user's space: a ``SearchSpace`` instance (e.g. a ``choice.ChoiceSpace`` declaration),
or a class / factory returning one. The module is imported with the working directory on the
import path (as ``python -m`` does), so ``space: examples.my_space:SPACE`` in a config works from
the folder holding ``examples/``. The space is renamed to that string, which is what run
directories and checkpoints record, so every later stage finds it again.
"""
from __future__ import annotations

import copy
import importlib
import os
import sys
from typing import Callable, Dict

from ..errors import RlnasError
from .base import Arch, SearchSpace

_SPACES: Dict[str, Callable[[], SearchSpace]] = {}


def register_space(name: str):
    """Decorator on a space class (or a factory): make it constructible by name."""
    def deco(cls):
        _SPACES[name] = cls
        cls.name = name
        return cls
    return deco


def _import_space(spec: str, **kwargs) -> SearchSpace:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise RlnasError(f"search space {spec!r}: expected a registered name or "
                         "'package.module:ATTRIBUTE'")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise RlnasError(f"search space {spec!r}: cannot import {module_name!r} ({err})") from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise RlnasError(f"search space {spec!r}: module {module_name!r} has no attribute "
                         f"{attr!r}") from None
    space = obj
    if not isinstance(obj, SearchSpace) and callable(obj):
        try:
            space = obj(**kwargs)
        except TypeError as err:
            raise RlnasError(f"search space {spec!r}: calling it failed ({err})") from None
    if not isinstance(space, SearchSpace):
        raise RlnasError(f"search space {spec!r} is not a SearchSpace (nor a class or factory "
                         f"returning one): got {type(space).__name__}")
    if space.name != spec:
        space = copy.copy(space)  # the declaration's own object keeps its name
        space.name = spec
    return space


def get_space(name: str, **kwargs) -> SearchSpace:
    if isinstance(name, str) and ":" in name:
        return _import_space(name, **kwargs)
    if name not in _SPACES:
        raise RlnasError(f"unknown search space {name!r}; known: {', '.join(sorted(_SPACES))} "
                         "(or 'package.module:ATTRIBUTE')")
    return _SPACES[name](**kwargs)


def list_spaces():
    return sorted(_SPACES)


from . import nb201  # noqa: E402,F401  (registers 'nb201')
from . import darts  # noqa: E402,F401  (registers 'darts')
from . import mobilenet  # noqa: E402,F401  (registers 'mobilenet')
from . import macro  # noqa: E402,F401  (registers 'nasbench-macro')

__all__ = ["Arch", "SearchSpace", "get_space", "list_spaces", "register_space"]
