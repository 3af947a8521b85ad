"""The registry of search spaces: string names are the public API (``get_space('nb201')``).

A name is a registered space (``nb201``, ``darts``, ``mobilenet``) or ``package.module:ATTRIBUTE``
naming a user's space: a ``SearchSpace`` instance (e.g. a ``choice.ChoiceSpace`` declaration),
a SearchSpace class, or a function marked ``@space_factory`` returning one (nothing else a name
points at is called). The module is found on the import path or else, its top-level package
only, in the working directory (which is not put on ``sys.path``, so nothing there shadows an
installed module): ``space: examples.my_space:SPACE`` in a config works from the folder holding
``examples/``. A name read back from a run file is imported only once the user has named it
(``recorded_space``). The space is renamed to that string, which is what run
directories and checkpoints record, so every later stage finds it again.
"""
from __future__ import annotations

import copy
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import sys
from typing import Callable, Dict, Set

from ..errors import RlnasError, UserCodeError
from .base import SearchSpace

_SPACES: Dict[str, Callable[[], SearchSpace]] = {}


def register_space(name: str):
    """Decorator on a space class (or a factory): make it constructible by name."""
    def deco(cls):
        _SPACES[name] = cls
        cls.name = name
        return cls
    return deco


# user spaces (``module:ATTR``) the user has named in this process: on the command line, in their
# own config file or through the API. A name read back from a run file (checkpoint, run.json,
# a run's config.yaml, export.json) is imported only if it is in here: whoever can write a run
# folder must not be able to make rlnas run code.
_NAMED_BY_USER: Set[str] = set()


def allow_space(spec: str) -> None:
    """Let run files that name the user space ``spec`` import it (the user names it again).

    Args:
        spec: ``package.module:ATTRIBUTE`` as the run records it.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise RlnasError(f"allow_space: expected 'package.module:ATTRIBUTE', got {spec!r}")
    _NAMED_BY_USER.add(spec)


def space_factory(fn):
    """Decorator declaring ``fn`` a factory returning a SearchSpace, so that
    ``module:fn`` may name it (rlnas calls no other function a space name points at)."""
    fn.rlnas_space_factory = True
    return fn


def _is_space_maker(obj) -> bool:
    """A SearchSpace class or a declared factory: checked before anything is called, so that
    ``builtins:exit`` or ``pdb:set_trace`` are refused rather than run."""
    if isinstance(obj, type):
        return issubclass(obj, SearchSpace)
    return inspect.isfunction(obj) and getattr(obj, "rlnas_space_factory", False) is True


def _import_user_module(module_name: str):
    """Import ``module_name``: from the import path as is, or else its top-level package from
    the working directory (a package there may be a namespace package: a folder without
    ``__init__.py``, such as ``examples/``). The working directory is never put on
    ``sys.path``, so a ``json.py`` or ``matplotlib.py`` lying there does not shadow the
    installed module."""
    top = module_name.partition(".")[0]
    try:
        found = top in sys.modules or importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        spec = importlib.machinery.PathFinder.find_spec(top, [os.getcwd()])
        if spec is None:
            raise ImportError(f"no module named {top!r} on the import path nor in "
                              f"{os.getcwd()}")
        module = importlib.util.module_from_spec(spec)  # a namespace package gets its loader
        sys.modules[top] = module
        try:
            if spec.loader is not None:
                spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(top, None)
            raise
    return importlib.import_module(module_name)


def _user_code_error(where: str, err: Exception) -> RlnasError:
    """``err``, raised by the user's module or factory, as one line saying where first: an
    RlnasError (from rlnas's checks of a declaration) keeps its type, anything else becomes a
    UserCodeError (the caller chains the original, whose traceback the CLI prints)."""
    if isinstance(err, RlnasError):
        return type(err)(f"{where}: {err}")
    text = (str(err).strip().splitlines() or [""])[0][:200]
    return UserCodeError(f"{where} failed: {type(err).__name__}{': ' + text if text else ''}")


def _import_space(spec: str, **kwargs) -> SearchSpace:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise RlnasError(f"search space {spec!r}: expected a registered name or "
                         "'package.module:ATTRIBUTE'")
    try:
        module = _import_user_module(module_name)
    except ImportError as err:
        raise RlnasError(f"search space {spec!r}: cannot import {module_name!r} ({err})") from None
    except Exception as err:  # the module's own code failed (a declaration at its top level)
        raise _user_code_error(f"search space {spec!r}: importing {module_name!r}", err) \
            from (err.__cause__ if isinstance(err, RlnasError) else err)
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise RlnasError(f"search space {spec!r}: module {module_name!r} has no attribute "
                         f"{attr!r}") from None
    space = obj
    if not isinstance(obj, SearchSpace):
        if not _is_space_maker(obj):
            raise RlnasError(f"search space {spec!r} is not a SearchSpace (nor a SearchSpace "
                             f"class or a function marked @space_factory): got "
                             f"{type(obj).__name__}")
        try:
            space = obj(**kwargs)
        except TypeError as err:
            raise RlnasError(f"search space {spec!r}: calling it failed ({err})") from None
        except Exception as err:
            raise _user_code_error(f"search space {spec!r}: its factory", err) \
                from (err.__cause__ if isinstance(err, RlnasError) else err)
    if not isinstance(space, SearchSpace):
        raise RlnasError(f"search space {spec!r}: its factory returned "
                         f"{type(space).__name__}, not a SearchSpace")
    if space.name != spec:
        space = copy.copy(space)  # the declaration's own object keeps its name
        space.name = spec
    return space


def get_space(name: str, **kwargs) -> SearchSpace:
    """The space ``name`` names, as the user names it (a user space named here may then be
    imported again where a run file records it).

    Args:
        name: a registered name or ``package.module:ATTRIBUTE``.
        **kwargs: passed to the space's class or factory.

    Returns:
        the SearchSpace.
    """
    if isinstance(name, str) and ":" in name:
        space = _import_space(name, **kwargs)
        _NAMED_BY_USER.add(name)
        return space
    if not isinstance(name, str) or name not in _SPACES:
        raise RlnasError(f"unknown search space {name!r}; known: {', '.join(sorted(_SPACES))} "
                         "(or 'package.module:ATTRIBUTE')")
    return _SPACES[name](**kwargs)


def recorded_space(name, where, **kwargs) -> SearchSpace:
    """The space a run file records: a registered one, or a user space the user has named in
    this process (``allow_space``); any other ``module:ATTR`` is refused before any import.

    Args:
        name: the name the file records.
        where: the file or run, for the message.
        **kwargs: passed to the space's class or factory.

    Returns:
        the SearchSpace.
    """
    if isinstance(name, str) and ":" in name and name not in _NAMED_BY_USER:
        raise RlnasError(
            f"{where} was made with the user space {name!r}; rlnas does not import code a run "
            f"file names: name the space again with `--space {name}` (Python: "
            f"rlnas.allow_space({name!r}), or get_space({name!r}) first)")
    return get_space(name, **kwargs)


def list_spaces():
    return sorted(_SPACES)
