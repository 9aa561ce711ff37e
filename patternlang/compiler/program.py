"""Checked AST -> Program: a tree of vectorised torch operations.

A Program is built once per pattern expression (cached by the expression, which is a
hashable frozen dataclass) and evaluated on a batch's `BatchFeatures`, returning a float
tensor [batch, query_pos, key_pos]: lower-triangular and zero on padding. On a window of
queries (`BatchFeatures.window`) it returns those rows alone, cut to the keys up to the last
query: `q` and `k` are the window's positions, feature tables stay whole.

Inside a condition every value is a pair (data, valid) of tensors that broadcast to
[batch, query_pos, key_pos]: `q` is [1, pos, 1], `k` is [1, 1, pos], so a rule that only
reads `k` costs [batch, 1, pos]. `valid` is False where a feature is read outside the
prompt (`tok[k - 1]` at k = 0, or a padding position); a comparison with such a value is
false. No Python loop runs over positions or prompts.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, TypeVar, Union


from ..syntax import ast
from ..syntax.builtins import FUNCTIONS
from ..syntax.features import FEATURES
from ..syntax.predictions import PREDICTION_FUNCTIONS
from .batch import BatchFeatures
from .predicted import compile_predicted

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    ValuePair = tuple[Tensor, Union[Tensor, None]]  # (data, valid or None when always valid)
    MatrixFn = Callable[[BatchFeatures], Tensor]  # a pattern expression: [batch, q, k] float
    CondFn = Callable[[BatchFeatures], Tensor]  # a condition: bool, broadcasting to [batch, q, k]
    ValueFn = Callable[[BatchFeatures], ValuePair]  # a value: (data, valid)
else:
    from ..lazy_torch import torch  # imported when a Program is evaluated, not when one is compiled

_COMPARE = {  # torch's comparison functions, read when a comparison is evaluated
    "==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge",
}


class Program:
    """A compiled pattern expression. Call it on BatchFeatures.

    `needs`: what a batch must provide for it (see `syntax.features.NEEDS`), the union of
    what the features it reads need; the engine prepares only that."""

    def __init__(self, expr: ast.PExpr, run: Callable[[BatchFeatures], Tensor]):
        self.expr = expr
        self._run = run
        self.needs = needs_of(expr)

    def __call__(self, features: BatchFeatures) -> Tensor:
        return self._run(features)

    def __repr__(self) -> str:
        return f"Program({self.expr!r})"


def needs_of(expr: ast.PExpr) -> frozenset[str]:
    """What a batch must provide to evaluate `expr`."""
    needs = {"tokens"}
    for node in ast.walk(expr):
        if isinstance(node, ast.Index):
            needs |= FEATURES[node.feature].needs
        elif isinstance(node, ast.Call):
            needs |= set(FUNCTIONS[node.func].needs)
    return frozenset(needs)


@lru_cache(maxsize=4096)
def compile_expr(expr: ast.PExpr) -> Program:
    """Compile a checked pattern expression (no `Ref` left) into a Program."""
    return Program(expr, _memoised(expr, _compile_pexpr(expr)))


_Result = TypeVar("_Result")


def _memoised(node: ast.Node, run: Callable[[BatchFeatures], _Result]) -> Callable[[BatchFeatures], _Result]:
    # Patterns scored together often share parts (induction = duplicate shifted); one batch
    # evaluates each distinct node once.
    def memo_run(features: BatchFeatures) -> _Result:
        try:
            found: _Result = features.memo[node]
            return found
        except KeyError:
            result = features.memo[node] = run(features)
            return result
    return memo_run


def _triangle(features: BatchFeatures) -> Tensor:
    """Cells that may be marked: k <= q, both real tokens. [batch, q, k] bool (a window's q and k)."""
    key = "__triangle__"
    if key not in features.memo:
        tril = features.query_positions.view(1, -1, 1) >= features.key_positions.view(1, 1, -1)
        features.memo[key] = tril & features.query_mask.unsqueeze(2) & features.key_mask.unsqueeze(1)
    triangle: Tensor = features.memo[key]
    return triangle


# ---- pattern expressions ----------------------------------------------------------------------
def _compile_pexpr(expr: ast.PExpr) -> Callable[[BatchFeatures], Tensor]:
    return _PExprCompiler().visit(expr)


class _PExprCompiler(ast.Visitor["MatrixFn"]):
    """A pattern expression -> a function of BatchFeatures giving [batch, query_pos, key_pos].

    A node type without a method is a TypeError (`ast.Visitor`); `Ref` has none on purpose:
    references are inlined by the checker."""

    def visit_Attend(self, expr: ast.Attend) -> MatrixFn:
        cond = _compile_cond(expr.cond) if expr.cond is not None else None
        select = expr.select

        def attend(features: BatchFeatures) -> Tensor:
            allowed = _triangle(features)
            marked = allowed if cond is None else cond(features) & allowed
            if select != "all":
                marked = _select_key(marked, features.key_positions, select)
            return marked.float()
        return attend

    def visit_Combine(self, expr: ast.Combine) -> MatrixFn:
        left = compile_expr(expr.left)
        right = compile_expr(expr.right)
        ops: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
            "union": lambda a, b: torch.maximum(a, b),
            "intersect": lambda a, b: torch.minimum(a, b),
            "add": lambda a, b: torch.add(a, b),
            "difference": lambda a, b: torch.where(b == 0, a, 0.0),
        }
        op = ops[expr.op]
        return lambda features: op(left(features), right(features))

    def visit_Scale(self, expr: ast.Scale) -> MatrixFn:
        operand = compile_expr(expr.operand)
        factor = expr.factor
        return lambda features: operand(features) * factor

    def visit_Shift(self, expr: ast.Shift) -> MatrixFn:
        operand = compile_expr(expr.operand)
        offset = expr.offset

        def shift(features: BatchFeatures) -> Tensor:
            # Selected, not multiplied: nothing outside the triangle can leak in.
            return torch.where(_triangle(features), _shift_keys(operand(features), offset), 0.0)
        return shift

    def visit_Normalize(self, expr: ast.Normalize) -> MatrixFn:
        operand = compile_expr(expr.operand)

        def normalize(features: BatchFeatures) -> Tensor:
            matrix = operand(features)
            total = matrix.sum(dim=-1, keepdim=True)
            # The checker keeps every positive row sum far above float32's underflow.
            return torch.where(total > 0, matrix / torch.where(total > 0, total, 1.0), matrix)
        return normalize


def _select_key(marked: Tensor, key_positions: Tensor, select: str) -> Tensor:
    """Keep, in each [.., q, :] row of a bool matrix, only its latest (`last`) or earliest (`first`)
    marked key: one reduction over the key axis, no loop over positions."""
    keys = key_positions.view(1, 1, -1)
    if select == "last":
        chosen = torch.where(marked, keys, -1).amax(dim=-1, keepdim=True)
    else:
        chosen = torch.where(marked, keys, torch.iinfo(keys.dtype).max).amin(dim=-1, keepdim=True)
    return marked & (keys == chosen)


def _shift_keys(matrix: Tensor, offset: int) -> Tensor:
    """Move every mark N keys later (N > 0) or earlier (N < 0); what leaves the matrix drops."""
    n_keys = matrix.shape[-1]
    if offset == 0:
        return matrix
    out = torch.zeros_like(matrix)
    if abs(offset) >= n_keys:
        return out
    if offset > 0:
        out[..., offset:] = matrix[..., : n_keys - offset]
    else:
        out[..., : n_keys + offset] = matrix[..., -offset:]
    return out


# ---- conditions -----------------------------------------------------------------------------
def _compile_cond(cond: ast.Cond) -> Callable[[BatchFeatures], Tensor]:
    return _memoised(cond, _CondCompiler().visit(cond))


class _CondCompiler(ast.Visitor["CondFn"]):
    """A condition -> a function of BatchFeatures giving a bool tensor broadcasting to [batch, q, k]."""

    def visit_And(self, cond: ast.And) -> CondFn:
        left, right = _compile_cond(cond.left), _compile_cond(cond.right)
        return lambda f: left(f) & right(f)

    def visit_Or(self, cond: ast.Or) -> CondFn:
        left, right = _compile_cond(cond.left), _compile_cond(cond.right)
        return lambda f: left(f) | right(f)

    def visit_Not(self, cond: ast.Not) -> CondFn:
        operand = _compile_cond(cond.operand)
        return lambda f: ~operand(f)

    def visit_Truth(self, cond: ast.Truth) -> CondFn:
        value = _compile_value(cond.value)
        return lambda f: _definite(*value(f))

    def visit_Compare(self, cond: ast.Compare) -> CondFn:
        return _compile_compare(cond)


def _definite(data: Tensor, valid: Tensor | None) -> Tensor:
    return data if valid is None else data & valid


def _both_valid(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _compile_compare(cond: ast.Compare) -> CondFn:
    left, right = _compile_value(cond.left), _compile_value(cond.right)
    compare = _COMPARE[cond.op]

    def run(features: BatchFeatures) -> Tensor:
        (a, a_valid), (b, b_valid) = left(features), right(features)
        return _definite(getattr(torch, compare)(a, b), _both_valid(a_valid, b_valid))
    return run


# ---- values -----------------------------------------------------------------------------------
def _const(value: int, features: BatchFeatures) -> ValuePair:
    return torch.tensor(value, dtype=torch.long, device=features.device), None


def _compile_value(value: ast.Value) -> Callable[[BatchFeatures], ValuePair]:
    return _ValueCompiler().visit(value)


class _ValueCompiler(ast.Visitor["ValueFn"]):
    """A value -> a function of BatchFeatures giving (data, valid) (see the module's docstring)."""

    def visit_Name(self, value: ast.Name) -> ValueFn:
        name = value.name
        if name == "q":
            return lambda f: (f.query_positions.view(1, -1, 1), None)
        if name == "k":
            return lambda f: (f.key_positions.view(1, 1, -1), None)
        truth = name == "true"
        return lambda f: (torch.tensor(truth, device=f.device), None)

    def visit_IntLit(self, value: ast.IntLit) -> ValueFn:
        number = value.value
        return lambda f: _const(number, f)

    def visit_StrLit(self, value: ast.StrLit) -> ValueFn:
        text = value.value
        return lambda f: _const(f.intern(text), f)

    def visit_Neg(self, value: ast.Neg) -> ValueFn:
        operand = _compile_value(value.operand)

        def negate(f: BatchFeatures) -> ValuePair:
            data, valid = operand(f)
            return -data, valid
        return negate

    def visit_Arith(self, value: ast.Arith) -> ValueFn:
        left, right = _compile_value(value.left), _compile_value(value.right)
        sign = 1 if value.op == "+" else -1

        def arith(f: BatchFeatures) -> ValuePair:
            (a, a_valid), (b, b_valid) = left(f), right(f)
            return a + sign * b, _both_valid(a_valid, b_valid)
        return arith

    def visit_Index(self, value: ast.Index) -> ValueFn:
        return _memoised(value, _compile_index(value))

    def visit_Call(self, value: ast.Call) -> ValueFn:
        return _memoised(value, _compile_call(value))


def _compile_index(value: ast.Index) -> ValueFn:
    index = _compile_value(value.index)
    feature = value.feature

    def gather(f: BatchFeatures) -> ValuePair:
        table = f.table(feature)                      # [batch, pos]
        idx, idx_valid = index(f)                             # broadcasts to [batch?, q?, k?]
        idx = idx.view(*([1] * (3 - idx.dim())), *idx.shape)  # scalars and [q,k] views to 3-D
        inside = (idx >= 0) & (idx < f.n_pos)
        safe = idx.clamp(0, f.n_pos - 1)
        rows = torch.arange(f.batch, device=f.device).view(-1, 1, 1)
        data = table[rows, safe]                              # [batch, q?, k?]
        valid = inside & f.mask[rows, safe]
        return data, _both_valid(valid, idx_valid)
    return gather


def _string_literal(arg: ast.Value) -> str:
    """A function's argument after its subject: a string written in the rule (the kinds pass allows nothing else)."""
    if not isinstance(arg, ast.StrLit):
        raise TypeError(f"a string literal was expected here, not {type(arg).__name__}")
    return arg.value


def _compile_call(value: ast.Call) -> ValueFn:
    function = FUNCTIONS[value.func]
    if value.func == "ancestor":
        return _compile_ancestor(value)
    if value.func in PREDICTION_FUNCTIONS:
        return compile_predicted(value, _compile_value, _both_valid)
    if value.func == "iequals":
        # Equal after lowering and stripping: compare the canonical strings' ids.
        left, right = (_canonical(_compile_value(arg)) for arg in value.args)

        def iequals(f: BatchFeatures) -> ValuePair:
            (a, a_valid), (b, b_valid) = left(f), right(f)
            return a == b, _both_valid(a_valid, b_valid)
        return iequals

    subject = _compile_value(value.args[0])
    literals = tuple(_string_literal(arg) for arg in value.args[1:])

    def call(f: BatchFeatures) -> ValuePair:
        ids, valid = subject(f)
        table = f.lut(function.name, *literals)
        return table[ids], valid
    return call


def _compile_ancestor(value: ast.Call) -> ValueFn:
    # ancestor(a, b): a is reached from b along dephead: a is among b's chain of heads, one
    # [batch, q?, k?] comparison per step of the batch's [batch, pos, depth] chain table.
    first, second = (_compile_value(arg) for arg in value.args)

    def ancestor(f: BatchFeatures) -> ValuePair:
        (a, a_valid), (b, b_valid) = first(f), second(f)
        a = a.view(*([1] * (3 - a.dim())), *a.shape)
        b = b.view(*([1] * (3 - b.dim())), *b.shape)
        rows = torch.arange(f.batch, device=f.device).view(-1, 1, 1)
        rows, a, b = torch.broadcast_tensors(rows, a, b)
        inside = (a >= 0) & (a < f.n_pos) & (b >= 0) & (b < f.n_pos)
        safe_a, safe_b = a.clamp(0, f.n_pos - 1), b.clamp(0, f.n_pos - 1)
        chain = f.ancestor_chain()                                      # -1 where the chain ended
        data = torch.zeros_like(safe_a, dtype=torch.bool)
        for step in range(chain.shape[-1]):
            data |= chain[..., step][rows, safe_b] == safe_a
        valid = inside & f.mask[rows, safe_a] & f.mask[rows, safe_b]
        return data, _both_valid(valid, _both_valid(a_valid, b_valid))
    return ancestor


def _canonical(value_fn: ValueFn) -> ValueFn:
    def run(f: BatchFeatures) -> ValuePair:
        ids, valid = value_fn(f)
        stripped = f.lut("strip")[ids]  # may add strings to the table: look up `lower` after
        return f.lut("lower")[stripped], valid
    return run
