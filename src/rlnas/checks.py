"""Argument checks at the Python API's boundary: a value of the wrong type is an
:class:`~rlnas.errors.RlnasError` naming the argument and what it takes, not a ``TypeError``
from deep inside (``open_run(123)``, ``search(seed='x')``, ``evaluate(scorers=123)``).

Each check returns the value in the form the code below it uses (a ``Path``, an ``int``, a list
of names), so a function checks and converts its arguments in one line each.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Optional

from .errors import RlnasError

SEED_MAX = 2**32 - 1  # NumPy's RandomState takes seeds below 2**32 (as the config's seed keys)


def _got(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, str) else repr(value)


def path_arg(value: Any, name: str) -> Path:
    """``value`` as a Path: a non-empty string or an ``os.PathLike`` (a ``Run``, a ``Path``).

    Args:
        value: the argument.
        name: its name, for the message.

    Returns:
        the Path.

    Raises:
        RlnasError: ``value`` is not a path.
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise RlnasError(f"{name} must be a path (a str or os.PathLike), got {_got(value)}")
    return Path(value)


def int_arg(value: Any, name: str, minimum: Optional[int] = None,
            maximum: Optional[int] = None) -> int:
    """``value`` as an int in ``[minimum, maximum]`` (None: unbounded). Booleans and floats are
    refused, even 2.0: a count or seed given as a float is a mistake somewhere.

    Raises:
        RlnasError: not an integer, or out of range.
    """
    import numbers
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise RlnasError(f"{name} must be an integer, got {_got(value)}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = (f">= {minimum}" if maximum is None else f"<= {maximum}" if minimum is None
                  else f"in [{minimum}, {maximum}]")
        raise RlnasError(f"{name} must be an integer {bounds}, got {value}")
    return value


def seed_arg(value: Any, name: str = "seed") -> int:
    """A seed: an integer in [0, 2**32 - 1] (what NumPy's generators take)."""
    return int_arg(value, name, 0, SEED_MAX)


def str_arg(value: Any, name: str) -> str:
    """``value`` as a non-empty string.

    Raises:
        RlnasError: not a string, or empty.
    """
    if not isinstance(value, str) or not value.strip():
        raise RlnasError(f"{name} must be a non-empty string, got {_got(value)}")
    return value


def names_arg(value: Any, name: str) -> List[str]:
    """Names given as a comma-separated string (``"angle,params"``) or a sequence of strings.

    Raises:
        RlnasError: anything else, or no name at all.
    """
    if isinstance(value, str):
        names = [s.strip() for s in value.split(",") if s.strip()]
    elif isinstance(value, (list, tuple)):
        for item in value:
            str_arg(item, f"each of {name}")
        names = [s.strip() for s in value]
    else:
        raise RlnasError(f"{name} must be a comma-separated string or a list of strings, got "
                         f"{_got(value)}")
    if not names:
        raise RlnasError(f"{name} names nothing: {value!r}")
    return names
