"""torch, imported on its first use: the language layer compiles patterns without it.

A pattern is checked and compiled into a `Program` (a tree of closures) without torch; the closures
call torch only when a Program is evaluated on a batch. Modules of the compiler import `torch` from
here (and the real module under `TYPE_CHECKING`, for types), as einops keeps its parsing free of
backends. After the first use, every attribute read is a plain attribute of this object.

>>> from patternlang.lazy_torch import LazyModule
>>> math = LazyModule("math")
>>> math.sqrt(4.0)
2.0
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


class LazyModule:
    """A module imported when one of its attributes is first read."""

    def __init__(self, name: str):
        object.__setattr__(self, "_lazy_name", name)

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(importlib.import_module(self._lazy_name), attribute)
        object.__setattr__(self, attribute, value)  # cached: the next read does not come here
        return value

    def __repr__(self) -> str:
        return f"<lazily imported module {self._lazy_name!r}>"


torch: Any = LazyModule("torch")


def lazy_members(package: str, members: Mapping[str, str]) -> Callable[[str], Any]:
    """A package's module-level `__getattr__` (PEP 562) that imports each of `members` (name -> the
    module defining it) on first use and keeps it: a package whose members import torch loads it only
    when one is read. `__getattr__ = lazy_members(__name__, {"detect": "patternlang.engine.detection"})`.
    """

    def __getattr__(name: str) -> Any:
        if name not in members:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(members[name]), name)
        setattr(sys.modules[package], name, value)  # the next read does not come here
        return value

    return __getattr__
