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
