"""The language's built-in names: kinds, the position names and the string functions.

One table serves the checker (kinds and signatures), the compiler (which applies the
Python functions once per distinct string in a batch) and the reference evaluator.
Token features (`tok`, `str`, `word`, ...) are a registry of their own: `features.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Literal

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


@lru_cache(maxsize=256)
def compiled_regex(pattern: str) -> re.Pattern:
    return re.compile(pattern)


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    args: tuple[str, ...]          # kinds; "literal" = a string literal written in the rule
    result: Kind
    apply: Callable                # Python implementation on plain strings
    description: str


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
                 lambda s, pattern: compiled_regex(pattern).search(s) is not None,
                 "a regular expression (Python `re.search`) matches the text"),
        Function("iequals", ("string", "string"), "bool",
                 lambda a, b: strip_token(a).lower() == strip_token(b).lower(),
                 "the texts are equal ignoring case, spaces and word-start markers"),
        Function("word_start", ("string",), "bool", starts_word,
                 "the text begins with whitespace or a word-start marker"),
    )
}
