"""A plain-Python evaluator of the AST: loops over q and k, one prompt at a time.

It is slow on purpose and shares nothing with the vectorised compiler except the
definitions of the string functions, so that tests can use it as the oracle.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from ..syntax import ast
from ..syntax.builtins import FUNCTIONS
from ..syntax.features import FEATURES
from ..syntax.predictions import PREDICTION_FUNCTIONS, call_request

Matrix = list[list[float]]
MISSING = None  # a feature read outside the prompt
# A value at one cell: a position, a number, a string, a flag, or MISSING; feature columns and
# string functions are plain Python (the registries' reference implementations), hence Any.
Value = Any


def reference_matrix(expr: ast.PExpr, tokens: Sequence[int], strings: Sequence[str] | None = None,
                     special_ids: Collection[int] = (), offsets: Sequence[tuple[int, int]] | None = None,
                     syntax: Any = None, labels: Any = None,
                     predictions: dict[int | None, Sequence[Sequence[int]]] | None = None) -> Matrix:
    """The detection matrix of one prompt as nested lists [q][k].

    `strings` are the tokens' texts and `offsets` their character spans, one per position;
    `syntax` the parser's annotations aligned to the tokens (`annotate.Annotations`); `labels`
    the prompt's labelled spans (`spans.Labels`); `predictions[layer]` the model's ranked top
    token ids at every position (layer None: the final logits)."""
    prompt = ReferencePrompt(list(tokens), list(strings) if strings is not None else None, set(special_ids),
                             list(offsets) if offsets is not None else None, syntax, labels, predictions)
    memo: dict[int, Matrix] = {}  # linked patterns share sub-patterns: evaluate each once
    return _pexpr(expr, prompt, memo)


class ReferencePrompt:
    """One prompt for the reference evaluator: token ids, texts, and feature columns by name."""

    def __init__(self, tokens: list[int], strings: list[str] | None, special_ids: set[int],
                 offsets: list[tuple[int, int]] | None = None, syntax: Any = None, labels: Any = None,
                 predictions: dict[int | None, Sequence[Sequence[int]]] | None = None):
        self.tokens = tokens
        self._labels = labels
        self._predictions = predictions
        self.syntax = syntax
        self.strings = strings
        self.offsets = offsets
        self.n = len(tokens)
        self.special = [t in special_ids for t in tokens]
        self._columns: dict[str, list[Value]] = {}

    def texts(self) -> list[str]:
        if self.strings is None:
            raise ValueError("this rule needs token texts")
        return self.strings

    def spans(self) -> list[tuple[int, int]]:
        if self.offsets is None:
            raise ValueError("this rule needs character offsets")
        return self.offsets

    def annotation(self, field: str) -> list[Value]:
        if self.syntax is None:
            raise ValueError("this rule needs the parser's annotations")
        return list(self.syntax.column(field))

    def labels(self) -> Any:
        if self._labels is None:
            raise ValueError("this rule needs labelled spans")
        return self._labels

    def predictions(self, layer: int | None) -> list[list[int]]:
        if self._predictions is None or layer not in self._predictions:
            raise ValueError(f"this rule needs the model's predictions (layer {layer})")
        return [list(ranked) for ranked in self._predictions[layer]]

    def column(self, name: str) -> list[Value]:
        """A feature's value at every position, from its registry entry's reference implementation."""
        if name not in self._columns:
            self._columns[name] = FEATURES[name].reference(self)
        return self._columns[name]

    def feature(self, name: str, position: int) -> Value:
        if not 0 <= position < self.n:
            return MISSING
        return self.column(name)[position]


def _zeros(n: int) -> Matrix:
    return [[0.0] * n for _ in range(n)]


def _pexpr(expr: ast.PExpr, prompt: ReferencePrompt, memo: dict[int, Matrix]) -> Matrix:
    if id(expr) not in memo:
        memo[id(expr)] = _PExprEvaluator(prompt, memo).visit(expr)
    return memo[id(expr)]


class _PExprEvaluator(ast.Visitor[Matrix]):
    """A pattern expression's matrix on one prompt, cell by cell; an unknown node is a TypeError."""

    def __init__(self, prompt: ReferencePrompt, memo: dict[int, Matrix]):
        self.prompt = prompt
        self.memo = memo
        self.n = prompt.n

    def visit_Attend(self, expr: ast.Attend) -> Matrix:
        n, prompt = self.n, self.prompt
        out = [[1.0 if k <= q and (expr.cond is None or _cond(expr.cond, prompt, q, k)) else 0.0
                for k in range(n)] for q in range(n)]
        if expr.select != "all":
            for row in out:
                marked = [k for k in range(n) if row[k]]
                for k in marked:
                    row[k] = 0.0
                if marked:
                    row[marked[-1] if expr.select == "last" else marked[0]] = 1.0
        return out

    def visit_Combine(self, expr: ast.Combine) -> Matrix:
        n = self.n
        a, b = _pexpr(expr.left, self.prompt, self.memo), _pexpr(expr.right, self.prompt, self.memo)
        ops: dict[str, Callable[[float, float], float]] = {
            "union": max,
            "intersect": min,
            "add": lambda x, y: x + y,
            "difference": lambda x, y: x if y == 0 else 0.0,
        }
        op = ops[expr.op]
        return [[op(a[q][k], b[q][k]) for k in range(n)] for q in range(n)]

    def visit_Scale(self, expr: ast.Scale) -> Matrix:
        a = _pexpr(expr.operand, self.prompt, self.memo)
        return [[value * expr.factor for value in row] for row in a]

    def visit_Shift(self, expr: ast.Shift) -> Matrix:
        n = self.n
        a = _pexpr(expr.operand, self.prompt, self.memo)
        out = _zeros(n)
        for q in range(n):
            for k in range(n):
                source = k - expr.offset
                if k <= q and 0 <= source < n:
                    out[q][k] = a[q][source]
        return out

    def visit_Normalize(self, expr: ast.Normalize) -> Matrix:
        a = _pexpr(expr.operand, self.prompt, self.memo)
        return [[value / sum(row) for value in row] if sum(row) > 0 else row for row in a]


def _cond(cond: ast.Cond, prompt: ReferencePrompt, q: int, k: int) -> bool:
    return bool(_CondEvaluator(prompt, q, k).visit(cond))  # a condition's visit gives a bool


def _value(value: ast.Value, prompt: ReferencePrompt, q: int, k: int) -> Value:
    return _CondEvaluator(prompt, q, k).visit(value)


class _CondEvaluator(ast.Visitor[Value]):
    """Conditions (True/False) and values (or MISSING) at one cell (q, k)."""

    def __init__(self, prompt: ReferencePrompt, q: int, k: int):
        self.prompt, self.q, self.k = prompt, q, k

    # conditions
    def visit_And(self, cond: ast.And) -> bool:
        return bool(self.visit(cond.left)) and bool(self.visit(cond.right))

    def visit_Or(self, cond: ast.Or) -> bool:
        return bool(self.visit(cond.left)) or bool(self.visit(cond.right))

    def visit_Not(self, cond: ast.Not) -> bool:
        return not self.visit(cond.operand)

    def visit_Truth(self, cond: ast.Truth) -> bool:
        return self.visit(cond.value) is True

    def visit_Compare(self, cond: ast.Compare) -> bool:
        a, b = self.visit(cond.left), self.visit(cond.right)
        if a is MISSING or b is MISSING:
            return False
        return bool({
            "==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b,
        }[cond.op])

    # values
    def visit_Name(self, value: ast.Name) -> int | bool:
        return {"q": self.q, "k": self.k, "true": True, "false": False}[value.name]

    def visit_IntLit(self, value: ast.IntLit | ast.StrLit) -> int | str:
        return value.value

    visit_StrLit = visit_IntLit

    def visit_Neg(self, value: ast.Neg) -> Value:
        inner = self.visit(value.operand)
        return MISSING if inner is MISSING else -inner

    def visit_Arith(self, value: ast.Arith) -> Value:
        a, b = self.visit(value.left), self.visit(value.right)
        if a is MISSING or b is MISSING:
            return MISSING
        return a + b if value.op == "+" else a - b

    def visit_Index(self, value: ast.Index) -> Value:
        position = self.visit(value.index)
        return MISSING if position is MISSING else self.prompt.feature(value.feature, position)

    def visit_Call(self, value: ast.Call) -> Value:
        prompt = self.prompt
        args = [self.visit(arg) for arg in value.args]
        if any(arg is MISSING for arg in args):
            return MISSING
        function = FUNCTIONS[value.func]
        if value.func in PREDICTION_FUNCTIONS:  # the model's ranked predictions at a position
            layer, top = call_request(value)
            if not 0 <= args[1] < prompt.n:
                return MISSING
            return function.apply(prompt.predictions(layer), args[0], args[1], top)
        if function.column is not None:  # a positional function (ancestor): positions inside the prompt
            if not all(0 <= arg < prompt.n for arg in args):
                return MISSING
            return function.apply(prompt.column(function.column), *args)
        return function.apply(*args)
