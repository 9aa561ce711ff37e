"""patternlang: a small language for attention-head detection patterns, and a fast engine.

>>> import patternlang
>>> patternlang.compile_rule("attend k where tok[k] == tok[q] shift +1").matrix([3, 4, 3, 4]).tolist()[2]
[0.0, 1.0, 0.0, 0.0]
"""

from __future__ import annotations

from typing import Any

from .errors import (CycleError, ErrorGroup, InputError, ModelLoadError, PatternError, PatternFileError,
                     PatternSyntaxError, PatternTypeError, UnknownNameError)
from .library import check_files, compile_rule, load_pattern, load_patterns, shipped_names, shipped_patterns
from .pattern import Pattern
from .pipeline import build, check_module, compile_pattern
from .pipeline import parse as parse_source
from .settings import ProbeSpec, Settings
from .syntax.parser import parse_module as parse
from .syntax.parser import parse_rule
from .syntax.unparse import unparse

__version__ = "0.1.0"

# The engine and the model loaders pull in transformers; import them on first use so that
# working with patterns alone stays quick.
_LAZY = {
    "detect": ("patternlang.engine", "detect"),
    "Scores": ("patternlang.engine", "Scores"),
    "detect_head": ("patternlang.engine", "detect_head"),
    "load_model": ("patternlang.models", "load_model"),
    "probes": ("patternlang.probes", None),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attribute = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attribute is None else getattr(module, attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'patternlang' has no attribute {name!r}")


__all__ = [
    "CycleError", "ErrorGroup", "InputError", "ModelLoadError", "Pattern", "PatternError", "PatternFileError",
    "PatternSyntaxError", "PatternTypeError", "ProbeSpec", "Scores", "Settings", "UnknownNameError",
    "build", "check_files", "check_module", "compile_pattern", "compile_rule", "detect", "detect_head", "load_model",
    "load_pattern", "load_patterns", "parse", "parse_rule", "parse_source", "shipped_names", "shipped_patterns",
    "unparse",
]
