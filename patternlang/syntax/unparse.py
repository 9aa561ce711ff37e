"""AST -> rule text: the inverse of the parser.

`parse_rule(unparse(expr))` gives back an equal AST, so `unparse` names inline rules, prints
what `patternlang list` shows and writes reprs. Parentheses are added only where the
grammar needs them: operators bind as `|` < `&` < `+ -` < `N *` < modifiers, and an `attend`
rule reaches as far right as it can, so it is parenthesised inside a larger expression.

>>> from patternlang.syntax.parser import parse_rule
>>> unparse(parse_rule("(attend k where tok[k]==tok[q])   shift +1 | bos_head")[0])
'(attend k where tok[k] == tok[q] shift +1) | bos_head'
"""

from __future__ import annotations

from . import ast

# Binding strength of pattern expressions (higher binds tighter).
_UNION, _INTER, _SUM, _SCALED, _POSTFIX, _ATOM = range(6)
_COMBINE_LEVEL = {"union": _UNION, "intersect": _INTER, "add": _SUM, "difference": _SUM}
_COMBINE_SYMBOL = {"union": "|", "intersect": "&", "add": "+", "difference": "-"}
# Conditions.
_OR, _AND, _NOT, _COMPARISON = range(4)


class UnparseError(ValueError):
    """An AST the grammar cannot write (only hand-built ASTs can be like that)."""


MAX_UNPARSE_NODES = 100_000


def unparse(node: ast.Node) -> str:
    """Rule text for any pattern expression, condition, value, setting, definition or module.

    A linked expression (`Pattern.expr`) is written out with the patterns it refers to filled
    in; `Pattern.rule` is the rule as written."""
    size = ast.expanded_size(node)
    if size > MAX_UNPARSE_NODES:
        raise UnparseError(f"this expression has {size:,} nodes once its shared sub-patterns are written out, "
                           f"too many to print (at most {MAX_UNPARSE_NODES:,}); print the pattern's `.rule`")
    return _Writer().visit(node)


def rule_text(expr: ast.PExpr, settings: tuple[ast.Setting, ...] = ()) -> str:
    """An inline rule: the expression, then its settings, on one line."""
    return " ".join([unparse(expr), *(unparse(s) for s in settings)])


class _Writer(ast.Visitor[str]):
    # ---- pattern expressions ---------------------------------------------------------------
    def pexpr(self, expr: ast.PExpr, level: int) -> str:
        text = self.visit(expr)
        if isinstance(expr, ast.Attend) or _attend_chain(expr):
            # An attend rule (with its modifiers) swallows everything to its right.
            return text if level == _UNION and not self._inside else f"({text})"
        return f"({text})" if _pexpr_level(expr) < level else text

    _inside = False

    def _operand(self, expr: ast.PExpr, level: int) -> str:
        previous, self._inside = self._inside, True
        try:
            return self.pexpr(expr, level)
        finally:
            self._inside = previous

    def visit_Attend(self, expr: ast.Attend) -> str:
        head = f"attend {expr.var}" if expr.select == "all" else f"attend {expr.select} {expr.var}"
        if expr.cond is None:
            return head
        return f"{head} where {self.cond(expr.cond, _OR)}"

    def visit_Ref(self, expr: ast.Ref) -> str:
        return expr.name

    def visit_Combine(self, expr: ast.Combine) -> str:
        level = _COMBINE_LEVEL[expr.op]
        left = self._operand(expr.left, level)
        right = self._operand(expr.right, level + 1)
        return f"{left} {_COMBINE_SYMBOL[expr.op]} {right}"

    def visit_Scale(self, expr: ast.Scale) -> str:
        if _attend_chain(expr):
            return f"{self.visit(expr.operand)} weight {_number(expr.factor)}"
        return f"{_number(expr.factor)} * {self._operand(expr.operand, _SCALED)}"

    def visit_Shift(self, expr: ast.Shift) -> str:
        if _attend_chain(expr):
            return f"{self.visit(expr.operand)} shift {expr.offset:+d}"
        return f"{self._operand(expr.operand, _POSTFIX)} shift {expr.offset:+d}"

    def visit_Normalize(self, expr: ast.Normalize) -> str:
        previous, self._inside = self._inside, False
        try:
            return f"normalize({self.pexpr(expr.operand, _UNION)})"
        finally:
            self._inside = previous

    # ---- conditions ----------------------------------------------------------------------------
    def cond(self, cond: ast.Cond, level: int) -> str:
        text = self.visit(cond)
        return f"({text})" if _cond_level(cond) < level else text

    def visit_Or(self, cond: ast.Or) -> str:
        return f"{self.cond(cond.left, _OR)} or {self.cond(cond.right, _AND)}"

    def visit_And(self, cond: ast.And) -> str:
        return f"{self.cond(cond.left, _AND)} and {self.cond(cond.right, _NOT)}"

    def visit_Not(self, cond: ast.Not) -> str:
        return f"not {self.cond(cond.operand, _NOT)}"

    def visit_Compare(self, cond: ast.Compare) -> str:
        return f"{self.value(cond.left)} {cond.op} {self.value(cond.right)}"

    def visit_Truth(self, cond: ast.Truth) -> str:
        return self.value(cond.value)

    # ---- values ----------------------------------------------------------------------------------
    def value(self, value: ast.Value) -> str:
        return self.visit(value)

    def visit_Name(self, value: ast.Name) -> str:
        return value.name

    def visit_IntLit(self, value: ast.IntLit) -> str:
        if value.value < 0:
            raise UnparseError("a negative integer literal is written as a negation: Neg(IntLit(n))")
        return str(value.value)

    def visit_StrLit(self, value: ast.StrLit) -> str:
        return quote(value.value)

    def visit_Index(self, value: ast.Index) -> str:
        return f"{value.feature}[{self.value(value.index)}]"

    def visit_Call(self, value: ast.Call) -> str:
        return f"{value.func}(" + ", ".join(self.value(arg) for arg in value.args) + ")"

    def visit_Arith(self, value: ast.Arith) -> str:
        if isinstance(value.right, (ast.Arith,)):
            raise UnparseError("values cannot be parenthesised, so `a - (b - c)` cannot be written")
        return f"{self.value(value.left)} {value.op} {self.value(value.right)}"

    def visit_Neg(self, value: ast.Neg) -> str:
        if isinstance(value.operand, ast.Arith):
            raise UnparseError("values cannot be parenthesised, so `-(a + b)` cannot be written")
        return f"-{self.value(value.operand)}"

    # ---- settings, definitions, files ----------------------------------------------------------------
    def visit_MeasureSetting(self, node: ast.MeasureSetting) -> str:
        return f"measure {node.measure}"

    def visit_ExcludeSetting(self, node: ast.ExcludeSetting) -> str:
        return f"exclude {node.what}"

    def visit_ProbeSetting(self, node: ast.ProbeSetting) -> str:
        if not node.args:
            return f"probe {node.probe}"
        args = ", ".join(f"{name}={quote(v) if isinstance(v, str) else _number(v)}" for name, v in node.args)
        return f"probe {node.probe}({args})"

    def visit_NormalizeSetting(self, node: ast.NormalizeSetting) -> str:
        return "normalize"

    def visit_RankSetting(self, node: ast.RankSetting) -> str:
        return f"rank {node.order}"

    def visit_RequireSetting(self, node: ast.RequireSetting) -> str:
        return f"require {node.measure} {node.op} {_number(node.value)}"

    def visit_Definition(self, node: ast.Definition) -> str:
        lines = [f"pattern {node.name}:"]
        if node.doc:
            doc = node.doc.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
            lines.append(f'    """{doc}"""'.replace("\n", "\n    "))
        lines.append("    " + unparse(node.expr))
        lines += ["    " + unparse(setting) for setting in node.settings]
        return "\n".join(lines)

    def visit_Module(self, node: ast.Module) -> str:
        return "\n\n".join(unparse(d) for d in node.definitions) + "\n"


def _attend_chain(expr: ast.PExpr) -> bool:
    """An `attend` rule followed by modifiers (`attend k where ... shift +1 weight 2`)."""
    while isinstance(expr, (ast.Shift, ast.Scale)):
        expr = expr.operand
    return isinstance(expr, ast.Attend)


def _pexpr_level(expr: ast.PExpr) -> int:
    if isinstance(expr, ast.Combine):
        return _COMBINE_LEVEL[expr.op]
    if isinstance(expr, ast.Scale):
        return _SCALED
    if isinstance(expr, ast.Shift):
        return _POSTFIX
    return _ATOM


def _cond_level(cond: ast.Cond) -> int:
    return {ast.Or: _OR, ast.And: _AND, ast.Not: _NOT}.get(type(cond), _COMPARISON)


def _number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def quote(text: str) -> str:
    """A string literal the parser reads back as `text` (see `parser.unquote`)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'
