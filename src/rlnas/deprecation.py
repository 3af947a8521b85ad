"""Names kept for one release after they moved or were renamed: the warning they give.

A moved module stays as a thin module at its old path that re-exports the new names and calls
:func:`warn_moved` (``rlnas.engine``, ``rlnas.stages``, ...); a renamed keyword argument stays
accepted by :func:`renamed_keyword`.
"""
from __future__ import annotations

import functools
import warnings
from typing import Callable


def warn_moved(old: str, new: str) -> None:
    """A DeprecationWarning that the module ``old`` moved to ``new`` (called by the old module
    when it is imported)."""
    warnings.warn(f"{old} is deprecated and will be removed in the next release: import from "
                  f"{new}", DeprecationWarning, stacklevel=3)


def renamed_keyword(old: str, new: str) -> Callable:
    """Decorator: the keyword argument ``old`` of the function is accepted as ``new`` for one
    release, with a DeprecationWarning (both at once is a TypeError)."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"{fn.__name__}() got both {old}= (deprecated) and {new}=")
                warnings.warn(f"{fn.__name__}({old}=...) is deprecated: use {new}=",
                              DeprecationWarning, stacklevel=2)
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)
        return wrapper
    return deco
