"""Search spaces: the registry (:mod:`rlnas.spaces.registry`: ``get_space``, ``register_space``,
``space_factory``, ``allow_space``), the contract every space meets (:mod:`rlnas.spaces.base`),
the shared building blocks (:mod:`rlnas.spaces.ops`), the declarative chain spaces
(:mod:`rlnas.spaces.choice`) and the built-in spaces, registered on import: ``nb201``, ``darts``,
``mobilenet`` and ``nasbench-macro``.
"""
from . import darts, macro, mobilenet, nb201  # noqa: F401  (the built-in spaces register on import)
from .base import Arch, SearchSpace
from .registry import (
    allow_space,
    get_space,
    list_spaces,
    recorded_space,
    register_space,
    space_factory,
)

__all__ = ["Arch", "SearchSpace", "allow_space", "get_space", "list_spaces", "recorded_space",
           "register_space", "space_factory"]
