"""patternlang: a small language for attention-head detection patterns, and a fast engine.

>>> import patternlang
>>> patternlang.compile_rule("attend k where tok[k] == tok[q] shift +1").matrix([3, 4, 3, 4]).tolist()[2]
[0.0, 1.0, 0.0, 0.0]
"""

from __future__ import annotations

from typing import Any

from .errors import (CycleError, ErrorGroup, InputError, ModelLoadError, PatternError, PatternFileError,
                     PatternSyntaxError, PatternTypeError, UnknownNameError)
from .settings import ProbeSpec, Settings
from .syntax.parser import parse_module as parse
from .syntax.parser import parse_rule
from .syntax.unparse import unparse
from .version import __version__ as __version__
from .collector import collector_paused

# Everything that needs torch (the compiler, the engine) or transformers (the model loaders) is
# imported on first use, so that `import patternlang` and parsing stay quick.
_LAZY = {
    "check_files": ("patternlang.library", "check_files"),
    "compile_rule": ("patternlang.library", "compile_rule"),
    "load_pattern": ("patternlang.library", "load_pattern"),
    "load_patterns": ("patternlang.library", "load_patterns"),
    "shipped_names": ("patternlang.library", "shipped_names"),
    "shipped_patterns": ("patternlang.library", "shipped_patterns"),
    "Pattern": ("patternlang.pattern", "Pattern"),
    "build": ("patternlang.pipeline", "build"),
    "check_module": ("patternlang.pipeline", "check_module"),
    "compile_pattern": ("patternlang.pipeline", "compile_pattern"),
    "parse_source": ("patternlang.pipeline", "parse"),
    # The defining modules, so that the engine package loads nothing it need not.
    "detect": ("patternlang.engine.detection", "detect"),
    "Scores": ("patternlang.engine.scores", "Scores"),
    "detect_head": ("patternlang.engine.tl_compat", "detect_head"),
    "explain": ("patternlang.engine.explanation", "explain"),
    "load_model": ("patternlang.models", "load_model"),
    "probes": ("patternlang.probes", None),
    "compare": ("patternlang.comparison", "compare"),
    "describe": ("patternlang.discovery.search", "describe"),
    "Comparison": ("patternlang.comparison", "Comparison"),
    "ablate": ("patternlang.effects.interventions", "ablate"),
    "patch": ("patternlang.effects.interventions", "patch"),
    "attribute": ("patternlang.effects.interventions", "attribute"),
    "Effects": ("patternlang.effects.effect_results", "Effects"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib


        module_name, attribute = _LAZY[name]
        with collector_paused():  # most of these import torch
            module = importlib.import_module(module_name)
        value = module if attribute is None else getattr(module, attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'patternlang' has no attribute {name!r}")


__all__ = [
    "Comparison", "CycleError", "Effects", "ablate", "attribute", "patch", "ErrorGroup", "InputError", "ModelLoadError", "Pattern", "PatternError",
    "PatternFileError", "PatternSyntaxError", "PatternTypeError", "ProbeSpec", "Scores", "Settings", "UnknownNameError",
    "build", "check_files", "check_module", "compare", "compile_pattern", "compile_rule", "describe", "detect", "detect_head",
    "explain", "load_model",
    "load_pattern", "load_patterns", "parse", "parse_rule", "parse_source", "shipped_names", "shipped_patterns",
    "unparse",
]


def __dir__() -> list[str]:
    """The public API (what tab completion offers): `__all__`, the `probes` package and the version."""
    return sorted(set(__all__) | {"probes", "__version__"})
