"""Optional extras a pattern needs: a pattern that reads a parser feature needs spaCy.

Checked when a pattern is loaded for use (`load_patterns`, `compile_rule`, `check_files`,
`patternlang check`), so that a missing extra is a clear error naming the feature and the
extra, before any model is loaded. The shipped library itself always loads: `patternlang list`
shows the syntactic patterns with or without the extra.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import ErrorGroup, PatternError
from ..syntax import ast
from ..syntax.builtins import FUNCTIONS
from ..syntax.features import FEATURES
from .spacy_parser import EXTRA, INSTALL_HINT, syntax_available


def first_syntax_read(expr: ast.PExpr) -> ast.Index | ast.Call | None:
    """The first feature read or call of `expr` that needs the parser, if any."""
    for node in ast.walk(expr):
        if isinstance(node, ast.Index) and "syntax" in FEATURES[node.feature].needs:
            return node
        if isinstance(node, ast.Call) and node.func in FUNCTIONS and "syntax" in FUNCTIONS[node.func].needs:
            return node
    return None


def check_extras(patterns: Iterable[Any]) -> None:
    """Raise when a pattern (of `patterns`, `Pattern`s) needs the syntax extra and it is not installed."""
    patterns = list(patterns)
    if not patterns or syntax_available():
        return
    problems = []
    for pattern in patterns:
        node = first_syntax_read(pattern.expr)
        if node is None:
            continue
        what = f"{node.feature}[...]" if isinstance(node, ast.Index) else f"{node.func}(...)"
        problems.append(PatternError(f"pattern {pattern.name!r} reads {what}, which needs the {EXTRA} extra "
                                     "(spaCy and its small English pipeline)", getattr(node, "loc", None),
                                     hint=INSTALL_HINT))
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ErrorGroup(problems)
