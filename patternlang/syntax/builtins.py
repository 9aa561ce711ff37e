"""The language's built-in names: kinds, the position names and the string functions.

One table serves the checker (kinds and signatures), the compiler (which applies the
Python functions once per distinct string in a batch) and the reference evaluator.
Token features (`tok`, `str`, `word`, ...) are a registry of their own: `features.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Literal

import re2

Kind = Literal["position", "word", "sentence", "token", "number", "string", "bool"]

# Positions, words, sentences and token ids are whole numbers of different kinds. A bare
# literal, or the difference of two positions, is a plain "number" and fits any of them.
NUMERIC_KINDS = ("position", "word", "sentence", "token", "number")

NAMES: dict[str, Kind] = {"q": "position", "k": "position", "true": "bool", "false": "bool"}

# Tokenizers mark a leading space with these instead of " ".
WORD_START_MARKERS = ("Ġ", "▁", "Ċ", "\u2581")


def starts_word(text: str) -> bool:
    """A token begins a new word when it starts with whitespace or a word-start marker."""
    return bool(text) and (text[0].isspace() or text.startswith(WORD_START_MARKERS))


def strip_token(text: str) -> str:
    return text.strip().strip("".join(WORD_START_MARKERS)).strip()


# ---- regular expressions ----------------------------------------------------------------------
# `matches` runs on RE2: its time is linear in the length of the text whatever the pattern, so
# `(a+)+$` on an 81-character token of `=` cannot hang the way it does with Python's backtracking
# `re`. The price is the syntax RE2 refuses (lookaround, backreferences, ...): it is refused when
# the rule is checked, with the construct named.

class RegexError(ValueError):
    """A regular expression RE2 cannot compile; `str()` says what is wrong, on one line."""


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    return options


_RE2_OPTIONS = _re2_options()

_LINEAR_TIME = ("`matches` uses RE2, which runs in time linear in the text and has no lookaround, "
                "backreferences, atomic groups, possessive quantifiers or conditionals")

# Prefix of RE2's error message -> what the user wrote, in words (the first that fits wins).
_UNSUPPORTED = (
    ("invalid perl operator: (?=", "lookahead `(?=...)`"),
    ("invalid perl operator: (?!", "negative lookahead `(?!...)`"),
    ("invalid perl operator: (?<=", "lookbehind `(?<=...)`"),
    ("invalid perl operator: (?<!", "negative lookbehind `(?<!...)`"),
    ("invalid perl operator: (?>", "an atomic group `(?>...)`"),
    ("invalid perl operator: (?(", "a conditional `(?(...)...)`"),
    ("invalid perl operator: (?#", "a comment `(?#...)`"),
    ("invalid perl operator: (?P=", "a named backreference `(?P=name)`"),
)


def _explain(pattern: str, message: str) -> str:
    """RE2's error message turned into what the user wrote and what to do instead."""
    if message.startswith("invalid perl operator: (?P") and "(?P=" in pattern:
        message = "invalid perl operator: (?P="
    for prefix, construct in _UNSUPPORTED:
        if message.startswith(prefix):
            return f"{construct} is not supported: {_LINEAR_TIME}"
    escape = re.fullmatch(r"invalid escape sequence: \\(.)", message)
    if escape and escape.group(1).isdigit():
        return f"a backreference `\\{escape.group(1)}` is not supported: {_LINEAR_TIME}"
    if escape and escape.group(1) == "Z":
        return "`\\Z` is not supported by RE2: use `\\z` or `$` for the end of the text"
    if escape:
        return f"the escape `\\{escape.group(1)}` is not supported by RE2"
    if message.startswith("bad repetition operator: ") and message.endswith("+"):
        return f"a possessive quantifier `{message.rsplit(' ', 1)[1]}` is not supported: {_LINEAR_TIME}"
    if message.startswith("invalid perl operator: (?"):
        return (f"`{message.rsplit(' ', 1)[1]}` is not supported by RE2 (inline flags may be i, m, s and U: "
                "`(?i)abc`)")
    if message.startswith("invalid repetition size"):
        return f"{message}: RE2 repeats a piece at most 1000 times"
    if message.startswith("pattern too large"):
        return "the regular expression is too large for RE2; write a shorter one"
    return message


@lru_cache(maxsize=256)
def compiled_regex(pattern: str) -> re2._Regexp:
    """The RE2 regular expression for a pattern of `matches`; `RegexError` if RE2 refuses it.

    >>> compiled_regex("(a+)+$").search("=" * 81) is None
    True
    >>> compiled_regex("a(?=b)")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    patternlang.syntax.builtins.RegexError: lookahead `(?=...)` is not supported: ...
    """
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        raw = exc.args[0] if exc.args else ""
        message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        raise RegexError(_explain(pattern, message)) from None
    except UnicodeEncodeError:  # a lone surrogate, e.g. from an undecodable command-line byte
        raise RegexError("the regular expression holds characters that are not valid text "
                         "(unpaired surrogates)") from None


@lru_cache(maxsize=1 << 16)  # RE2's Python wrapper costs ~3 µs a call; token texts recur batch after batch
def regex_search(text: str, pattern: str) -> bool:
    """`matches(text, pattern)`: whether the RE2 `pattern` matches somewhere in `text`.

    >>> regex_search("=" * 64, "^(=+)+$"), regex_search("Ġcat", "^[.,]$")
    (True, False)
    """
    try:
        return compiled_regex(pattern).search(text) is not None
    except UnicodeEncodeError:  # RE2 reads UTF-8; a token text with a lone surrogate reads as U+FFFD
        return compiled_regex(pattern).search(_SURROGATE.sub("\ufffd", text)) is not None


_SURROGATE = re.compile("[\ud800-\udfff]")


# How many dependency arcs `ancestor(a, b)` follows up from b at most.
MAX_ANCESTOR_DEPTH = 8


def ancestor_chain(heads: list[int], position: int, depth: int = MAX_ANCESTOR_DEPTH) -> list[int]:
    """The positions reached from `position` by following `heads` (dephead) 1 to `depth` times.

    >>> ancestor_chain([-1, 2, -1, 1], 3)
    [1, 2]
    """
    chain, current = [], position
    for _ in range(depth):
        current = heads[current]
        if not 0 <= current < len(heads):
            break
        chain.append(current)
    return chain


def is_ancestor(heads: list[int], a: int, b: int) -> bool:
    """`ancestor(a, b)`: a is reached from b by following dephead 1 to MAX_ANCESTOR_DEPTH times."""
    return a in ancestor_chain(heads, b)


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    args: tuple[str, ...]          # kinds; "literal" = a string literal written in the rule
    result: Kind
    apply: Callable[..., Any]      # Python implementation on plain strings (on `column` first, if set)
    description: str
    needs: tuple[str, ...] = ("tokens", "texts")  # what a batch must provide (features.NEEDS)
    column: str | None = None      # a feature whose whole column `apply` reads first (positional functions)


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function("lower", ("string",), "string", str.lower, "the text in lower case"),
        Function("strip", ("string",), "string", strip_token,
                 "the text without surrounding spaces or word-start markers (Ġ, ▁)"),
        Function("startswith", ("string", "literal"), "bool", str.startswith, "the text begins with a literal"),
        Function("endswith", ("string", "literal"), "bool", str.endswith, "the text ends with a literal"),
        Function("contains", ("string", "literal"), "bool", lambda s, sub: sub in s,
                 "the literal occurs in the text"),
        Function("matches", ("string", "literal"), "bool",
                 regex_search,
                 "a regular expression (RE2 syntax, searched anywhere in the text) matches the text"),
        Function("iequals", ("string", "string"), "bool",
                 lambda a, b: strip_token(a).lower() == strip_token(b).lower(),
                 "the texts are equal ignoring case, spaces and word-start markers"),
        Function("word_start", ("string",), "bool", starts_word,
                 "the text begins with whitespace or a word-start marker"),
        Function("ancestor", ("position", "position"), "bool", is_ancestor,
                 f"ancestor(a, b): a is a syntactic ancestor of b, reached by following dephead up from b "
                 f"1 to {MAX_ANCESTOR_DEPTH} times (the syntax extra)",
                 needs=("tokens", "syntax"), column="dephead"),
    )
}
