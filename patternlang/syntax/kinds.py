"""The kinds pass: every value's kind (position, word, token id, string, ...) and every number's range.

It runs on each definition's own expression, before references are filled in, so each
problem is reported once, where it is written. Features come from the feature registry
(`features.py`) and functions from `builtins.FUNCTIONS`.
"""

from __future__ import annotations

import math

from ..errors import PatternError, PatternTypeError, UnknownNameError, did_you_mean
from . import ast
from .builtins import FUNCTIONS, NAMES, NUMERIC_KINDS, Kind, compiled_regex
from .features import FEATURES
from .link import MAX_WEIGHT
from .predictions import MAX_LENS_LAYER, MAX_TOP
from .problems import Problems

MAX_SHIFT = 100_000
# Keeps every position in int64 whatever the arithmetic.
MAX_INT = 10**9
ORDERED_OPS = ("<", "<=", ">", ">=")
# Function arguments that are whole numbers written in the rule: kind -> (low, high, in words).
LITERAL_INTS = {
    "count": (1, MAX_TOP, "how many predictions"),
    "layer": (0, MAX_LENS_LAYER, "a block index"),
}


def check_kinds(expr: ast.PExpr, problems: Problems) -> None:
    """Report every kind and range problem of a pattern expression."""
    _KindChecker(problems).visit(expr)


class _KindChecker(ast.Visitor["Kind | None"]):
    def __init__(self, problems: Problems):
        self.problems = problems

    def error(self, error: PatternError) -> None:
        self.problems.add(error)

    # ---- pattern expressions ----------------------------------------------------------------
    def visit_Attend(self, node: ast.Attend) -> None:
        if node.var != "k":
            self.error(PatternError(f"the key variable of an `attend` rule is always `k`, not {node.var!r}",
                                    node.loc, hint="write: attend k where ..."))
        elif node.select not in ("all", "last", "first"):
            self.error(PatternError(f"an `attend` rule selects all, last or first keys, not {node.select!r}",
                                    node.loc, hint="write: attend last k where ..."))
        elif node.cond is not None:
            self.condition(node.cond)

    def visit_Ref(self, node: ast.Ref) -> None:
        pass  # names are the link pass's

    def visit_Combine(self, node: ast.Combine) -> None:
        self.visit(node.left)
        self.visit(node.right)

    def visit_Scale(self, node: ast.Scale) -> None:
        if not math.isfinite(node.factor) or not 0 <= node.factor <= MAX_WEIGHT:
            self.error(PatternTypeError(f"a weight must be a number from 0 to {MAX_WEIGHT:g}, not {node.factor:g}",
                                        node.loc))
        self.visit(node.operand)

    def visit_Shift(self, node: ast.Shift) -> None:
        if abs(node.offset) > MAX_SHIFT:
            self.error(PatternTypeError(f"shift {node.offset:+d} is too far (at most {MAX_SHIFT} positions)",
                                        node.loc))
        self.visit(node.operand)

    def visit_Normalize(self, node: ast.Normalize) -> None:
        self.visit(node.operand)

    # ---- conditions ---------------------------------------------------------------------------
    def condition(self, cond: ast.Cond) -> None:
        self.visit(cond)

    def visit_And(self, cond: ast.And) -> None:
        self.condition(cond.left)
        self.condition(cond.right)

    visit_Or = visit_And

    def visit_Not(self, cond: ast.Not) -> None:
        self.condition(cond.operand)

    def visit_Truth(self, cond: ast.Truth) -> None:
        kind = self.kind(cond.value)
        if kind is not None and kind != "bool":
            self.error(PatternTypeError(f"a condition must be true or false, but this is a {kind}",
                                        cond.value.loc or cond.loc,
                                        hint="compare it with something, e.g. `tok[k] == tok[q]`"))

    def visit_Compare(self, cond: ast.Compare) -> None:
        left, right = self.kind(cond.left), self.kind(cond.right)
        if left is None or right is None:
            return
        if left in NUMERIC_KINDS and right in NUMERIC_KINDS:
            if left != right and "number" not in (left, right):
                self.error(PatternTypeError(f"cannot compare a {left} with a {right}", cond.loc,
                                            hint="positions compare with positions (q, k), words with words"))
            elif "token" in (left, right) and cond.op in ORDERED_OPS:
                self.error(PatternTypeError(f"token ids have no order; {cond.op!r} cannot compare them", cond.loc,
                                            hint="use == or !="))
        elif left == right == "string" or left == right == "bool":
            if cond.op in ORDERED_OPS:
                self.error(PatternTypeError(f"{left}s can only be compared with == or !=", cond.loc))
        else:
            self.error(PatternTypeError(f"cannot compare a {left} with a {right}", cond.loc))

    # ---- values: each returns its kind, or None after reporting why it has none ---------------
    def kind(self, value: ast.Value) -> Kind | None:
        return self.visit(value)

    def visit_IntLit(self, value: ast.IntLit) -> Kind | None:
        if abs(value.value) > MAX_INT:
            self.error(PatternTypeError(f"the number {value.value} is too large (at most {MAX_INT:,})", value.loc))
            return None
        return "number"

    def visit_StrLit(self, value: ast.StrLit) -> Kind:
        return "string"

    def visit_Name(self, value: ast.Name) -> Kind | None:
        if value.name in NAMES:
            return NAMES[value.name]
        hint = did_you_mean(value.name, list(NAMES) + list(FEATURES) + list(FUNCTIONS))
        if value.name in FEATURES:
            hint = f"{value.name} is a feature: index it with a position, e.g. {value.name}[k]"
        self.error(UnknownNameError(f"unknown name {value.name!r} (positions are q and k)", value.loc, hint))
        return None

    def visit_Neg(self, value: ast.Neg) -> Kind | None:
        kind = self.kind(value.operand)
        if kind is not None and kind != "number":
            self.error(PatternTypeError(f"cannot negate a {kind}", value.loc))
            return None
        return kind

    def visit_Arith(self, value: ast.Arith) -> Kind | None:
        left, right = self.kind(value.left), self.kind(value.right)
        if left is None or right is None:
            return None
        for kind in (left, right):
            if kind not in NUMERIC_KINDS or kind == "token":
                what = "token ids" if kind == "token" else f"{kind}s"
                self.error(PatternTypeError(f"{what} cannot be used in arithmetic", value.loc,
                                            hint="only positions (q, k), word and sentence indices and integers "
                                                 "add up"))
                return None
        if left == right:
            # position - position is a distance (an int); position + position stays a position.
            return "number" if value.op == "-" and left != "number" else left
        if "number" in (left, right):
            return left if right == "number" else right
        self.error(PatternTypeError(f"cannot mix a {left} and a {right} in arithmetic", value.loc))
        return None

    def visit_Index(self, value: ast.Index) -> Kind | None:
        if value.feature not in FEATURES:
            hint = did_you_mean(value.feature, FEATURES)
            if value.feature in FUNCTIONS:
                hint = f"{value.feature} is a function: call it with parentheses, {value.feature}(...)"
            self.error(UnknownNameError(f"unknown feature {value.feature!r}; features are "
                                        + ", ".join(FEATURES), value.loc, hint))
            self.kind(value.index)
            return None
        index = self.kind(value.index)
        if index is not None and index not in ("position", "number"):
            self.error(PatternTypeError(f"{value.feature}[...] needs a position such as k or q - 1, not a {index}",
                                        value.index.loc or value.loc))
        return FEATURES[value.feature].kind

    def visit_Call(self, value: ast.Call) -> Kind | None:
        function = FUNCTIONS.get(value.func)
        if function is None:
            hint = did_you_mean(value.func, FUNCTIONS)
            if value.func in FEATURES:
                hint = f"{value.func} is a feature: index it with square brackets, {value.func}[k]"
            self.error(UnknownNameError(f"unknown function {value.func!r}; functions are "
                                        + ", ".join(FUNCTIONS), value.loc, hint))
            return None
        if len(value.args) != len(function.args):
            self.error(PatternTypeError(f"{value.func}() takes {len(function.args)} argument(s), "
                                        f"got {len(value.args)}", value.loc))
            return None
        ok = True
        for position, (arg, expected) in enumerate(zip(value.args, function.args), start=1):
            if expected in LITERAL_INTS:
                ok = self.literal_int(value.func, position, arg, expected) and ok
                continue
            if expected == "literal":
                if not isinstance(arg, ast.StrLit):
                    self.error(PatternTypeError(f"argument {position} of {value.func}() must be a string "
                                                "written in the rule, like \"Ġ\"", arg.loc or value.loc))
                    ok = False
                elif value.func == "matches":
                    try:
                        compiled_regex(arg.value)
                    except Exception as exc:  # re.error, and OverflowError for absurd repeats
                        self.error(PatternTypeError(f"bad regular expression {arg.value!r}: {exc}", arg.loc))
                        ok = False
                continue
            kind = self.kind(arg)
            if kind is not None and kind != expected and not (expected == "position" and kind == "number"):
                self.error(PatternTypeError(f"argument {position} of {value.func}() must be a {expected}, "
                                            f"not a {kind}", arg.loc or value.loc))
                ok = False
        return function.result if ok else None

    def literal_int(self, func: str, position: int, arg: ast.Value, expected: str) -> bool:
        low, high, what = LITERAL_INTS[expected]
        if not isinstance(arg, ast.IntLit) or not low <= arg.value <= high:
            self.error(PatternTypeError(f"argument {position} of {func}() must be {what}, a whole number from "
                                        f"{low} to {high:,} written in the rule", arg.loc))
            return False
        return True
