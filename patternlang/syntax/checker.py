"""AST -> checked definitions: names resolved, kinds checked, settings validated.

The checker collects every problem it finds and raises them together, so one run of
`patternlang check` shows all that is wrong with a file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from ..errors import (CycleError, ErrorGroup, Location, PatternError, PatternTypeError,
                      UnknownNameError, did_you_mean)
from ..settings import EXCLUSIONS, MEASURES, ProbeSpec, Settings
from . import ast
from .builtins import FEATURES, FUNCTIONS, NAMES, NUMERIC_KINDS, Kind, compiled_regex

MAX_SHIFT = 100_000
# Bounds that keep every matrix finite in float32 and every position in int64.
MAX_INT = 10**9
MAX_WEIGHT = 1e6
MAX_TOTAL_WEIGHT = 1e12
ORDERED_OPS = ("<", "<=", ">", ">=")


@dataclass(frozen=True, slots=True)
class CheckedDefinition:
    """A definition whose references are inlined: `expr` holds no `Ref` node."""

    name: str
    doc: str
    expr: ast.PExpr
    settings: Settings
    source: str = field(default="", compare=False)
    filename: str | None = field(default=None, compare=False)
    loc: Location | None = field(default=None, compare=False)


class Checker:
    """Checks the definitions of one file against each other and a library of known ones."""

    def __init__(self, library: Mapping[str, CheckedDefinition] | None = None):
        self.library = dict(library or {})
        self.errors: list[PatternError] = []

    def _error(self, error: PatternError) -> None:
        self.errors.append(error)

    def _raise_if_errors(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ErrorGroup(self.errors)

    # ---- entry points --------------------------------------------------------------------
    def check_module(self, module: ast.Module) -> list[CheckedDefinition]:
        local: dict[str, ast.Definition] = {}
        for definition in module.definitions:
            if definition.name in local:
                self._error(PatternError(f"pattern {definition.name!r} is defined twice in this file",
                                         definition.loc, hint="rename one of them"))
            else:
                local[definition.name] = definition
        for definition in local.values():
            self._check_expr(definition.expr, local)
        order = self._cycle_free_order(local)
        checked: dict[str, CheckedDefinition] = {}
        for name in order:
            definition = local[name]
            settings = self._settings(definition.settings)
            expr = self._inline(definition.expr, checked)
            self._check_total_weight(expr, definition.loc)
            checked[name] = CheckedDefinition(name, definition.doc, expr, settings, definition.source,
                                              module.filename, definition.loc)
        self._raise_if_errors()
        return [checked[d.name] for d in module.definitions if d.name in checked and local[d.name] is d]

    def check_rule(self, expr: ast.PExpr, settings: tuple[ast.Setting, ...], name: str = "rule",
                   source: str = "") -> CheckedDefinition:
        self._check_expr(expr, {})
        checked_settings = self._settings(settings)
        self._raise_if_errors()
        inlined = self._inline(expr, {})
        self._check_total_weight(inlined, getattr(expr, "loc", None))
        self._raise_if_errors()
        return CheckedDefinition(name, "", inlined, checked_settings, source)

    # ---- pattern expressions ----------------------------------------------------------------
    def _check_expr(self, expr: ast.PExpr, local: Mapping[str, ast.Definition]) -> None:
        stack = [expr]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Attend):
                if node.var != "k":
                    self._error(PatternError(f"the key variable of an `attend` rule is always `k`, not {node.var!r}",
                                             node.loc, hint="write: attend k where ..."))
                elif node.cond is not None:
                    self._check_cond(node.cond)
            elif isinstance(node, ast.Ref):
                if node.name not in local and node.name not in self.library:
                    known = list(local) + list(self.library)
                    self._error(UnknownNameError(f"unknown pattern {node.name!r}", node.loc,
                                                 did_you_mean(node.name, known)))
            elif isinstance(node, ast.Combine):
                stack += [node.left, node.right]
            elif isinstance(node, ast.Scale):
                if not math.isfinite(node.factor) or not 0 <= node.factor <= MAX_WEIGHT:
                    self._error(PatternTypeError(f"a weight must be a number from 0 to {MAX_WEIGHT:g}, "
                                                 f"not {node.factor:g}", node.loc))
                stack.append(node.operand)
            elif isinstance(node, ast.Shift):
                if abs(node.offset) > MAX_SHIFT:
                    self._error(PatternTypeError(f"shift {node.offset:+d} is too far (at most {MAX_SHIFT} positions)",
                                                 node.loc))
                stack.append(node.operand)
            elif isinstance(node, ast.Normalize):
                stack.append(node.operand)

    def _check_total_weight(self, expr: ast.PExpr, loc: Location | None) -> None:
        """Weights multiply along nested scales and add up in sums: keep the largest value finite."""
        largest: dict[int, float] = {}
        stack: list[tuple[ast.PExpr, bool]] = [(expr, False)]
        while stack:  # post-order without recursion: the tree can be deep after inlining
            node, done = stack.pop()
            if isinstance(node, (ast.Attend, ast.Ref)):
                largest[id(node)] = 1.0
            elif not done:
                stack.append((node, True))
                children = [node.left, node.right] if isinstance(node, ast.Combine) else [node.operand]
                stack.extend((child, False) for child in children)
            elif isinstance(node, ast.Combine):
                left, right = largest[id(node.left)], largest[id(node.right)]
                largest[id(node)] = left + right if node.op == "add" else max(left, right)
            elif isinstance(node, ast.Scale):
                largest[id(node)] = largest[id(node.operand)] * node.factor
            elif isinstance(node, ast.Normalize):
                largest[id(node)] = 1.0
            else:
                largest[id(node)] = largest[id(node.operand)]
        if largest[id(expr)] > MAX_TOTAL_WEIGHT:
            self._error(PatternTypeError(f"the weights multiply up to {largest[id(expr)]:g}, more than "
                                         f"{MAX_TOTAL_WEIGHT:g}", loc, hint="use smaller weights"))

    def _cycle_free_order(self, local: Mapping[str, ast.Definition]) -> list[str]:
        """Definitions in an order where each comes after those it refers to; cycles are errors."""
        order: list[str] = []
        state: dict[str, str] = {}

        def refs(expr: ast.PExpr) -> list[ast.Ref]:
            found, stack = [], [expr]
            while stack:
                node = stack.pop()
                if isinstance(node, ast.Ref):
                    found.append(node)
                elif isinstance(node, ast.Combine):
                    stack += [node.right, node.left]
                elif isinstance(node, (ast.Scale, ast.Shift, ast.Normalize)):
                    stack.append(node.operand)
            return found

        for start in local:
            if start in state:
                continue
            # Iterative depth-first search; the path gives the cycle for the message.
            path: list[tuple[str, list[ast.Ref]]] = [(start, refs(local[start].expr))]
            state[start] = "open"
            while path:
                name, pending = path[-1]
                if not pending:
                    state[name] = "done"
                    order.append(name)
                    path.pop()
                    continue
                ref = pending.pop(0)
                if ref.name not in local:
                    continue
                if state.get(ref.name) == "open":
                    names = [n for n, _ in path]
                    cycle = names[names.index(ref.name):] + [ref.name]
                    self._error(CycleError("patterns refer to each other in a loop: " + " -> ".join(cycle),
                                           ref.loc, hint="a pattern cannot contain itself"))
                    state[ref.name] = "broken"
                    continue
                if ref.name not in state:
                    state[ref.name] = "open"
                    path.append((ref.name, refs(local[ref.name].expr)))
        return [name for name in order if state.get(name) == "done"]

    def _inline(self, expr: ast.PExpr, checked: Mapping[str, CheckedDefinition]) -> ast.PExpr:
        """Replace references with the expressions they name (local first, then the library)."""
        if isinstance(expr, ast.Ref):
            target = checked.get(expr.name) or self.library.get(expr.name)
            if target is None:  # already reported
                return ast.Attend("k", ast.Truth(ast.Name("false")), loc=expr.loc)
            inner = target.expr
            return ast.Normalize(inner, loc=expr.loc) if target.settings.normalize else inner
        if isinstance(expr, ast.Combine):
            return ast.Combine(expr.op, self._inline(expr.left, checked), self._inline(expr.right, checked),
                               loc=expr.loc)
        if isinstance(expr, ast.Scale):
            return ast.Scale(expr.factor, self._inline(expr.operand, checked), loc=expr.loc)
        if isinstance(expr, ast.Shift):
            return ast.Shift(expr.offset, self._inline(expr.operand, checked), loc=expr.loc)
        if isinstance(expr, ast.Normalize):
            return ast.Normalize(self._inline(expr.operand, checked), loc=expr.loc)
        return expr

    # ---- conditions ---------------------------------------------------------------------------
    def _check_cond(self, cond: ast.Cond) -> None:
        if isinstance(cond, (ast.And, ast.Or)):
            self._check_cond(cond.left)
            self._check_cond(cond.right)
        elif isinstance(cond, ast.Not):
            self._check_cond(cond.operand)
        elif isinstance(cond, ast.Truth):
            kind = self._kind(cond.value)
            if kind is not None and kind != "bool":
                self._error(PatternTypeError(f"a condition must be true or false, but this is a {kind}",
                                             cond.value.loc or cond.loc,
                                             hint="compare it with something, e.g. `tok[k] == tok[q]`"))
        elif isinstance(cond, ast.Compare):
            self._check_compare(cond)

    def _check_compare(self, cond: ast.Compare) -> None:
        left, right = self._kind(cond.left), self._kind(cond.right)
        if left is None or right is None:
            return
        if left in NUMERIC_KINDS and right in NUMERIC_KINDS:
            if left != right and "number" not in (left, right):
                self._error(PatternTypeError(f"cannot compare a {left} with a {right}", cond.loc,
                                             hint="positions compare with positions (q, k), words with words"))
            elif "token" in (left, right) and cond.op in ORDERED_OPS:
                self._error(PatternTypeError(f"token ids have no order; {cond.op!r} cannot compare them", cond.loc,
                                             hint="use == or !="))
        elif left == right == "string" or left == right == "bool":
            if cond.op in ORDERED_OPS:
                self._error(PatternTypeError(f"{left}s can only be compared with == or !=", cond.loc))
        else:
            self._error(PatternTypeError(f"cannot compare a {left} with a {right}", cond.loc))

    def _kind(self, value: ast.Value) -> Kind | None:
        """The kind of a value, or None after reporting why it has none."""
        if isinstance(value, ast.IntLit):
            if abs(value.value) > MAX_INT:
                self._error(PatternTypeError(f"the number {value.value} is too large (at most {MAX_INT:,})",
                                             value.loc))
                return None
            return "number"
        if isinstance(value, ast.StrLit):
            return "string"
        if isinstance(value, ast.Name):
            if value.name in NAMES:
                return NAMES[value.name]
            hint = did_you_mean(value.name, list(NAMES) + list(FEATURES) + list(FUNCTIONS))
            if value.name in FEATURES:
                hint = f"{value.name} is a feature: index it with a position, e.g. {value.name}[k]"
            self._error(UnknownNameError(f"unknown name {value.name!r} (positions are q and k)", value.loc, hint))
            return None
        if isinstance(value, ast.Neg):
            kind = self._kind(value.operand)
            if kind is not None and kind != "number":
                self._error(PatternTypeError(f"cannot negate a {kind}", value.loc))
                return None
            return kind
        if isinstance(value, ast.Arith):
            return self._arith_kind(value)
        if isinstance(value, ast.Index):
            if value.feature not in FEATURES:
                hint = did_you_mean(value.feature, FEATURES)
                if value.feature in FUNCTIONS:
                    hint = f"{value.feature} is a function: call it with parentheses, {value.feature}(...)"
                self._error(UnknownNameError(f"unknown feature {value.feature!r}; features are "
                                             + ", ".join(FEATURES), value.loc, hint))
                self._kind(value.index)
                return None
            index = self._kind(value.index)
            if index is not None and index not in ("position", "number"):
                self._error(PatternTypeError(f"{value.feature}[...] needs a position such as k or q - 1, "
                                             f"not a {index}", value.index.loc or value.loc))
            return FEATURES[value.feature][0]
        if isinstance(value, ast.Call):
            return self._call_kind(value)
        raise TypeError(f"not a value node: {value!r}")

    def _arith_kind(self, value: ast.Arith) -> Kind | None:
        left, right = self._kind(value.left), self._kind(value.right)
        if left is None or right is None:
            return None
        for kind in (left, right):
            if kind not in NUMERIC_KINDS or kind == "token":
                what = "token ids" if kind == "token" else f"{kind}s"
                self._error(PatternTypeError(f"{what} cannot be used in arithmetic", value.loc,
                                             hint="only positions (q, k), word indices and integers add up"))
                return None
        if left == right:
            # position - position is a distance (an int); position + position stays a position.
            return "number" if value.op == "-" and left != "number" else left
        if "number" in (left, right):
            return left if right == "number" else right
        self._error(PatternTypeError(f"cannot mix a {left} and a {right} in arithmetic", value.loc))
        return None

    def _call_kind(self, value: ast.Call) -> Kind | None:
        function = FUNCTIONS.get(value.func)
        if function is None:
            hint = did_you_mean(value.func, FUNCTIONS)
            if value.func in FEATURES:
                hint = f"{value.func} is a feature: index it with square brackets, {value.func}[k]"
            self._error(UnknownNameError(f"unknown function {value.func!r}; functions are "
                                         + ", ".join(FUNCTIONS), value.loc, hint))
            return None
        if len(value.args) != len(function.args):
            self._error(PatternTypeError(f"{value.func}() takes {len(function.args)} argument(s), "
                                         f"got {len(value.args)}", value.loc))
            return None
        ok = True
        for position, (arg, expected) in enumerate(zip(value.args, function.args), start=1):
            if expected == "literal":
                if not isinstance(arg, ast.StrLit):
                    self._error(PatternTypeError(f"argument {position} of {value.func}() must be a string "
                                                 "written in the rule, like \"Ġ\"", arg.loc or value.loc))
                    ok = False
                elif value.func == "matches":
                    try:
                        compiled_regex(arg.value)
                    except Exception as exc:  # re.error, and OverflowError for absurd repeats
                        self._error(PatternTypeError(f"bad regular expression {arg.value!r}: {exc}", arg.loc))
                        ok = False
                continue
            kind = self._kind(arg)
            if kind is not None and kind != expected:
                self._error(PatternTypeError(f"argument {position} of {value.func}() must be a {expected}, "
                                             f"not a {kind}", arg.loc or value.loc))
                ok = False
        return function.result if ok else None

    # ---- settings -------------------------------------------------------------------------------
    def _settings(self, settings: tuple[ast.Setting, ...]) -> Settings:
        values: dict[str, object] = {}
        seen: dict[str, ast.Setting] = {}

        def once(key: str, node: ast.Setting) -> bool:
            if key in seen:
                self._error(PatternError(f"the setting {key!r} is given twice", node.loc))
                return False
            seen[key] = node
            return True

        for node in settings:
            if isinstance(node, ast.MeasureSetting):
                if node.measure not in MEASURES:
                    self._error(UnknownNameError(f"unknown measure {node.measure!r}; measures are "
                                                 + ", ".join(MEASURES), node.loc,
                                                 did_you_mean(node.measure, MEASURES)))
                elif once("measure", node):
                    values["measure"] = node.measure
            elif isinstance(node, ast.ExcludeSetting):
                if node.what not in EXCLUSIONS:
                    self._error(UnknownNameError(f"cannot exclude {node.what!r}; write `exclude bos` or "
                                                 "`exclude current`", node.loc, did_you_mean(node.what, EXCLUSIONS)))
                elif once(f"exclude {node.what}", node):
                    values["exclude_bos" if node.what == "bos" else "exclude_current"] = True
            elif isinstance(node, ast.ProbeSetting):
                if once("probe", node) and self._check_probe(node):
                    values["probe"] = ProbeSpec(node.probe, node.args)
            elif isinstance(node, ast.NormalizeSetting):
                if once("normalize", node):
                    values["normalize"] = True
        return Settings(**values)

    def _check_probe(self, node: ast.ProbeSetting) -> bool:
        from .. import probes  # the probe registry knows each probe's arguments

        try:
            probes.validate_probe_args(node.probe, node.args)  # the pairs: a repeated argument is an error
        except PatternError as exc:
            exc.location = exc.location or node.loc
            self._error(exc)
            return False
        return True
