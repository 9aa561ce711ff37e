"""Text -> AST: the Lark parser, the tree-to-AST transformer and syntax errors with a caret."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, get_args

from lark import Lark, Token, Transformer, Tree, v_args
from lark.tree import Meta
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from ..errors import Location, PatternError, PatternSyntaxError
from ..resources import grammar_path
from . import ast

# Deeper trees than this are refused before they reach recursive code.
MAX_DEPTH = 150
# Room for a file of 10,000 short definitions; Lark reads some 100,000 characters a second.
MAX_SOURCE_CHARS = 500_000

KEYWORDS = ("pattern", "attend", "where", "shift", "weight", "and", "or", "not",
            "measure", "exclude", "probe", "normalize", "last", "first", "rank", "require")

# Readable names for the grammar's named terminals, for "expected ..." messages.
_TERMINAL_NAMES = {
    "NAME": "a name",
    "INT": "an integer",
    "NUMBER": "a number",
    "SIGNED_NUMBER": "a number",
    "SIGNED_INT": "an integer offset such as +1",
    "STRING": "a string",
    "CMP_OP": "a comparison (== != < <= > >=)",
    "$END": "the end of the text",
}


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        start=["module", "rule_text", "probe_spec"],
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=False,
    )


@lru_cache(maxsize=1)
def _terminal_text() -> dict[str, str]:
    """Terminal name -> what a user would type ('==' rather than __ANON_3)."""
    names = dict(_TERMINAL_NAMES)
    names.update({f"_{keyword.upper()}": repr(keyword) for keyword in KEYWORDS})
    for term in _parser().terminals:
        if term.name not in names and term.pattern.type == "str":
            names[term.name] = repr(term.pattern.value)
    return names


# Where a (line, column, end column) of the parsed text lies for the user: in the text itself,
# or, for a rule taken out of a YAML file, in that file.
Place = Callable[[int, int, "int | None"], Location]


def _in_text(text: str, filename: str | None) -> Place:
    def place(line: int, column: int, end: int | None = None) -> Location:
        return Location(line, column, text, filename, end_column=end)
    return place


def parse_module(text: str, filename: str | None = None) -> ast.Module:
    """Parse the text of a `.pattern` file into a Module of Definitions."""
    place = _in_text(text, filename)
    module = _to_ast(_parse(text, "module", place), text, place)
    return ast.Module(definitions=tuple(module), filename=filename)


def parse_rule(text: str, filename: str | None = None,
               place: Place | None = None) -> tuple[ast.PExpr, tuple[ast.Setting, ...]]:
    """Parse an inline rule such as `attend k where k == q - 1` (settings may follow).

    `place` maps positions in `text` to where the user sees them (see `Place`)."""
    place = place or _in_text(text, filename)
    expr, settings = _to_ast(_parse(text, "rule_text", place), text, place)  # `rule_text`'s pair
    return expr, settings


def parse_probe(text: str) -> tuple[str, tuple[tuple[str, int | float | str], ...]]:
    """`repeated_random` or `repeated_random(length=64)`: a probe as the `probe` setting writes it."""
    place = _in_text(text, None)
    setting = _to_ast(_parse(text, "probe_spec", place), text, place)
    return setting.probe, setting.args


def _parse(text: str, start: str, place: Place) -> Tree[Token]:
    if text.startswith("\ufeff"):  # a byte-order mark some editors write: a space keeps the columns
        text = " " + text[1:]
    if len(text) > MAX_SOURCE_CHARS:
        raise PatternSyntaxError(f"the text is too long ({len(text)} characters, at most {MAX_SOURCE_CHARS})",
                                 place(1, 1, None))
    try:
        tree = _parser().parse(text, start=start)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, place) from None
    except RecursionError:
        raise PatternSyntaxError("the text is nested too deeply to read", place(1, 1, None)) from None
    _check_depth(tree, place)
    return tree


def _check_depth(tree: Tree[Token], place: Place) -> None:
    # Iterative, so that absurd nesting is reported instead of overflowing the stack later.
    # An attend's modifiers sit side by side in the tree but nest in the AST: count them as depth.
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if node.data == "attend":
            depth += sum(1 for child in node.children if isinstance(child, Tree))
        if depth > MAX_DEPTH:
            meta = node.meta
            raise PatternSyntaxError(
                f"the expression is nested too deeply (more than {MAX_DEPTH} levels)",
                place(getattr(meta, "line", 1), getattr(meta, "column", 1), None),
                hint="split it into named patterns that refer to each other",
            )
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def _syntax_error(exc: UnexpectedInput, text: str, place: Place) -> PatternSyntaxError:
    line = getattr(exc, "line", None) or 1
    column = getattr(exc, "column", None) or 1
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        # Lines as Lark counts them (only "\n" ends one): after the last non-empty line.
        lines = text.rstrip("\r\n").split("\n")
        line, column = len(lines), len(lines[-1].rstrip("\r")) + 1
    opening = _unclosed_triple_quote(text)
    if opening is not None and _error_offset(exc, text) >= opening:
        at_line = text.count("\n", 0, opening) + 1
        at_column = opening - (text.rfind("\n", 0, opening) + 1) + 1
        return PatternSyntaxError('this triple-quoted string is not closed', place(at_line, at_column, at_column + 3),
                                  hint='end it with """')
    loc = place(line, column, None)
    if isinstance(exc, UnexpectedCharacters):
        position = _stream_position(exc)
        char = text[position] if position is not None and position < len(text) else ""
        hint = None
        if char == "=":
            hint = "compare with '==' (a single '=' is only for probe arguments)"
        elif char in "\"'":
            hint = "this string is not closed on its line; use triple quotes for text over several lines"
        return PatternSyntaxError(f"unexpected character {char!r}", loc, hint)

    expected = _ordered({_terminal_text().get(name, name) for name in _expected_terminals(exc)})
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        token: Token = exc.token
        loc = place(line, column, column + max(1, len(str(token))))
        message = f"unexpected {_describe(token)}"
    else:
        message = "the text ends too early"
    if expected:
        message += "; expected " + _join(expected)
    return PatternSyntaxError(message, loc, _hint_for(exc, expected, text))


def _unclosed_triple_quote(text: str) -> int | None:
    """Where a triple-quoted string opens that is never closed (Lark reads its quotes as `""` and `"`)."""
    opening, start = None, 0
    while (found := text.find('"""', start)) >= 0:
        opening = found if opening is None else None
        start = found + 3
    return opening


def _error_offset(exc: UnexpectedInput, text: str) -> int:
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END" and exc.token.start_pos is not None:
        start: int = exc.token.start_pos
        return start
    position = _stream_position(exc) if isinstance(exc, UnexpectedCharacters) else None
    return len(text) if position is None else position


def _stream_position(exc: UnexpectedInput) -> int | None:
    """Where in the text an unexpected character is (lark declares `pos_in_stream` None on the base class)."""
    position = getattr(exc, "pos_in_stream", None)
    return position if isinstance(position, int) else None


def _expected_terminals(exc: UnexpectedInput) -> set[str]:
    # The LALR tables merge states, so `exc.expected` can list tokens that could never follow;
    # asking the interactive parser what it accepts gives the true set.
    parser = getattr(exc, "interactive_parser", None)
    if parser is not None:
        try:
            return set(parser.accepts())
        except Exception:  # an internal failure must not hide the user's syntax error
            pass
    return set(getattr(exc, "expected", ()) or ())


def _describe(token: Token) -> str:
    if token.type == "NAME":
        return f"name {str(token)!r}"
    return repr(str(token))


def _ordered(names: set[str]) -> list[str]:
    # Kinds of thing first ("a comparison"), then keywords, then punctuation.
    return sorted(names, key=lambda n: (not n[:1].isalpha(), not n.strip("'")[:1].isalpha(), n))


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def _hint_for(exc: UnexpectedInput, expected: list[str], text: str) -> str | None:
    if not isinstance(exc, UnexpectedToken):
        return None
    token = exc.token
    previous = [t for t in getattr(exc, "token_history", None) or [] if t is not None]
    before = text[: token.start_pos] if token.start_pos is not None else text
    if previous and str(previous[-1]) == "attend" and previous[-1].type == "NAME":
        return "an `attend` rule cannot follow an operator; put it in parentheses: p | (attend k where ...)"
    if str(token) == "*":
        return "scale a pattern with a number in front, `0.5 * p`, or with `p weight 0.5`"
    if str(token) in {"|", "&", "+", "-"} and re.search(r"\battend\b", before):
        return "an `attend` rule reaches to the end of the expression; put it in parentheses " \
               "to combine it: (attend k where ...) | other_pattern"
    glued = _glued_keyword(token, previous, text, expected)
    if glued:
        return glued
    if token.type == "NAME" or (previous and previous[-1].type == "NAME"):
        for word in [str(token)] + [str(t) for t in previous[-1:] if t.type == "NAME"]:
            close = difflib.get_close_matches(word, KEYWORDS, n=1, cutoff=0.75)
            if close and close[0] != word:
                return f"did you mean the keyword {close[0]!r} instead of {word!r}?"
    if str(token) == "=":
        return "compare with '=='"
    if str(token) in KEYWORDS and token.type == "NAME":
        return f"{str(token)!r} is a keyword and cannot be used as a name"
    return None


def _glued_keyword(token: Token, previous: list[Token], text: str, expected: list[str]) -> str | None:
    """A hint for a keyword written against a word or a number: `orq`, `measuretv`, `1or`."""
    # The unexpected word, where the keyword it starts with could stand; or the word before it
    # when what follows the keyword is a one-letter name (`attendk where`), so that a real name
    # such as `notable_head` is not taken apart.
    candidates: list[tuple[str, Callable[[str, str], bool]]] = []
    if token.type == "NAME":
        candidates += [(str(token), lambda keyword, rest: repr(keyword) in expected)]
    if previous and previous[-1].type == "NAME":
        candidates += [(str(previous[-1]), lambda keyword, rest: len(rest) == 1)]
    for word, plausible in candidates:
        for keyword in sorted(KEYWORDS, key=len, reverse=True):
            rest = word[len(keyword):]
            if word.startswith(keyword) and re.fullmatch(r"[A-Za-z_]\w*", rest) and plausible(keyword, rest):
                return f"a keyword stands alone: write `{keyword} {rest}` if you meant the keyword {keyword!r}"
    start = token.start_pos
    if str(token) in KEYWORDS and start and text[start - 1].isalnum():
        return f"put a space before the keyword {str(token)!r}"
    return None


# ---- parse tree -> AST ------------------------------------------------------------------------
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def unquote(raw: str) -> str:
    """A STRING token's text without quotes. Known escapes are decoded; others are kept as
    written, so regular expressions like "\\s" need no doubling. No eval."""
    body = raw[3:-3] if raw.startswith('"""') else raw[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), body, flags=re.S)


def _dedent_doc(doc: str) -> str:
    lines = doc.strip("\n").splitlines()
    if not lines:
        return ""
    rest = [ln for ln in lines[1:] if ln.strip()]
    indent = min((len(ln) - len(ln.lstrip()) for ln in rest), default=0)
    return "\n".join([lines[0].strip()] + [ln[indent:] for ln in lines[1:]]).strip()


def _to_ast(tree: Tree[Token], text: str, place: Place) -> Any:
    try:
        return _AstBuilder(text, place).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, PatternError):
            raise exc.orig_exc from None
        raise


class _Selection(str):
    """`last` / `first` after `attend` (a str, so that it is told apart from the variable's Token)."""


def _combine(op: ast.SetOp) -> Callable[[_AstBuilder, Meta, list[Any]], ast.Combine]:
    """The transformer method building a `Combine` of `op` (`union`, `intersect`, `add`, `difference`)."""
    def build(self: _AstBuilder, meta: Meta, children: list[Any]) -> ast.Combine:
        left, right = children
        return ast.Combine(op, left, right, loc=self._loc(meta))
    return build


# The grammar's operator and selection tokens as the AST's literal types (a KeyError: a grammar change).
_COMPARE_OPS: dict[str, ast.CompareOp] = {op: op for op in get_args(ast.CompareOp)}
_SELECTIONS: dict[str, ast.Selection] = {select: select for select in get_args(ast.Selection)}
_Modifier = Callable[[ast.PExpr], ast.PExpr]  # `shift N` / `weight X`, applied to what they follow


@v_args(meta=True)
class _AstBuilder(Transformer[Token, Any]):
    def __init__(self, text: str, place: Place):
        super().__init__()
        self.text = text
        self.place = place

    def _loc(self, meta: Meta) -> Location | None:
        if getattr(meta, "empty", True):
            return None
        end = meta.end_column if meta.end_line == meta.line else None
        return self.place(meta.line, meta.column, end)

    def _name(self, token: Token) -> str:
        """A name written by the user; keywords are reserved even where the grammar would allow them."""
        if str(token) in KEYWORDS:
            raise PatternSyntaxError(f"{str(token)!r} is a keyword and cannot be used as a name",
                                     self._tok_loc(token), hint="choose another name")
        return str(token)

    def _tok_loc(self, token: Token) -> Location:
        line, column = token.line or 1, token.column or 1  # a lexed token has both
        return self.place(line, column, column + max(1, len(str(token))))

    # module level
    def module(self, meta: Meta, children: list[Any]) -> list[ast.Definition]:
        return list(children)

    def probe_spec(self, meta: Meta, children: list[Any]) -> ast.ProbeSetting:
        name, *args = children
        return ast.ProbeSetting(self._name(name), tuple(args[0]) if args else (), loc=self._tok_loc(name))

    def rule_text(self, meta: Meta, children: list[Any]) -> tuple[ast.PExpr, tuple[ast.Setting, ...]]:
        expr, *settings = children
        return expr, tuple(settings)

    def definition(self, meta: Meta, children: list[Any]) -> ast.Definition:
        name, *rest = children
        doc = ""
        if rest and isinstance(rest[0], Token) and rest[0].type == "STRING":
            doc = _dedent_doc(unquote(str(rest[0])))
            rest = rest[1:]
        expr, *settings = rest
        source = self.text[meta.start_pos:meta.end_pos]
        return ast.Definition(self._name(name), doc, expr, tuple(settings), source=source, loc=self._tok_loc(name))

    # settings
    def measure_setting(self, meta: Meta, children: list[Any]) -> ast.MeasureSetting:
        return ast.MeasureSetting(self._name(children[0]), loc=self._tok_loc(children[0]))

    def exclude_setting(self, meta: Meta, children: list[Any]) -> ast.ExcludeSetting:
        return ast.ExcludeSetting(self._name(children[0]), loc=self._tok_loc(children[0]))

    def probe_setting(self, meta: Meta, children: list[Any]) -> ast.ProbeSetting:
        name, *args = children
        return ast.ProbeSetting(self._name(name), tuple(args[0]) if args else (), loc=self._tok_loc(name))

    def normalize_setting(self, meta: Meta, children: list[Any]) -> ast.NormalizeSetting:
        return ast.NormalizeSetting(loc=self._loc(meta))

    def rank_setting(self, meta: Meta, children: list[Any]) -> ast.RankSetting:
        return ast.RankSetting(str(children[0]), loc=self._tok_loc(children[0]))

    def require_setting(self, meta: Meta, children: list[Any]) -> ast.RequireSetting:
        measure, op, number = children
        return ast.RequireSetting(self._name(measure), _COMPARE_OPS[str(op)], float(str(number)),
                                  loc=self._tok_loc(measure))

    def probe_args(self, meta: Meta, children: list[Any]) -> list[tuple[str, int | float | str]]:
        return list(children)

    def probe_arg(self, meta: Meta, children: list[Any]) -> tuple[str, int | float | str]:
        name, value = children
        return (str(name), value)

    def number(self, meta: Meta, children: list[Any]) -> int | float:
        raw = str(children[0])
        return int(raw) if re.fullmatch(r"[+-]?\d+", raw) else float(raw)

    def string(self, meta: Meta, children: list[Any]) -> str:
        return unquote(str(children[0]))

    # pattern expressions
    union = _combine("union")
    intersect = _combine("intersect")
    add = _combine("add")
    difference = _combine("difference")

    def scale(self, meta: Meta, children: list[Any]) -> ast.Scale:
        factor, operand = children
        return ast.Scale(float(factor), operand, loc=self._tok_loc(factor))

    def modified(self, meta: Meta, children: list[Any]) -> ast.PExpr:
        operand: ast.PExpr
        modifier: _Modifier
        operand, modifier = children
        return modifier(operand)

    def ref(self, meta: Meta, children: list[Any]) -> ast.Ref:
        return ast.Ref(self._name(children[0]), loc=self._tok_loc(children[0]))

    def normalize(self, meta: Meta, children: list[Any]) -> ast.Normalize:
        return ast.Normalize(children[0], loc=self._loc(meta))

    def attend(self, meta: Meta, children: list[Any]) -> ast.PExpr:
        select = "all"
        if isinstance(children[0], _Selection):
            select, *children = children
        var, *rest = children
        cond = None
        if rest and not callable(rest[0]):
            cond, *rest = rest
        node: ast.PExpr = ast.Attend(self._name(var), cond, _SELECTIONS[str(select)], loc=self._tok_loc(var))
        for modifier in rest:
            node = modifier(node)
        return node

    def select_last(self, meta: Meta, children: list[Any]) -> _Selection:
        return _Selection("last")

    def select_first(self, meta: Meta, children: list[Any]) -> _Selection:
        return _Selection("first")

    # Modifiers come back as functions of their operand, so `attend ... shift +1 weight 2`
    # and `(...) shift +1` build the same nodes.
    def shift(self, meta: Meta, children: list[Any]) -> _Modifier:
        token = children[0]
        loc = self._tok_loc(token)
        return lambda operand: ast.Shift(int(str(token)), operand, loc=loc)

    def weight(self, meta: Meta, children: list[Any]) -> _Modifier:
        token = children[0]
        loc = self._tok_loc(token)
        return lambda operand: ast.Scale(float(token), operand, loc=loc)

    # conditions
    def or_(self, meta: Meta, children: list[Any]) -> ast.Or:
        return ast.Or(children[0], children[1], loc=self._loc(meta))

    def and_(self, meta: Meta, children: list[Any]) -> ast.And:
        return ast.And(children[0], children[1], loc=self._loc(meta))

    def not_(self, meta: Meta, children: list[Any]) -> ast.Not:
        return ast.Not(children[0], loc=self._loc(meta))

    def compare(self, meta: Meta, children: list[Any]) -> ast.Compare:
        left, op, right = children
        return ast.Compare(_COMPARE_OPS[str(op)], left, right, loc=self._tok_loc(op))

    def truth(self, meta: Meta, children: list[Any]) -> ast.Truth:
        return ast.Truth(children[0], loc=self._loc(meta))

    # values
    def plus(self, meta: Meta, children: list[Any]) -> ast.Arith:
        return ast.Arith("+", children[0], children[1], loc=self._loc(meta))

    def minus(self, meta: Meta, children: list[Any]) -> ast.Arith:
        return ast.Arith("-", children[0], children[1], loc=self._loc(meta))

    def name(self, meta: Meta, children: list[Any]) -> ast.Name:
        return ast.Name(self._name(children[0]), loc=self._tok_loc(children[0]))

    def int_lit(self, meta: Meta, children: list[Any]) -> ast.IntLit:
        return ast.IntLit(int(str(children[0])), loc=self._tok_loc(children[0]))

    def str_lit(self, meta: Meta, children: list[Any]) -> ast.StrLit:
        return ast.StrLit(unquote(str(children[0])), loc=self._tok_loc(children[0]))

    def neg(self, meta: Meta, children: list[Any]) -> ast.Neg:
        return ast.Neg(children[0], loc=self._loc(meta))

    def index(self, meta: Meta, children: list[Any]) -> ast.Index:
        feature, value = children
        return ast.Index(self._name(feature), value, loc=self._tok_loc(feature))

    def call(self, meta: Meta, children: list[Any]) -> ast.Call:
        func, *args = children
        return ast.Call(self._name(func), tuple(args), loc=self._tok_loc(func))
