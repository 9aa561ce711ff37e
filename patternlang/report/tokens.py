"""Showing tokens to people: whitespace and control characters made visible, long tokens cut.

Tokens such as " cat", "\\n\\n" or "<|endoftext|>" are ambiguous or invisible when printed
as they are; every report shows them through `display_token` so a grid row labelled "␣cat"
is unmistakably the token with a leading space.
"""

from __future__ import annotations

import unicodedata

from rich.cells import cell_len, set_cell_size

# Characters with a conventional escape; everything else invisible gets a \x or \u escape.
_NAMED_ESCAPES = {" ": "␣", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}
EMPTY_TOKEN = "∅"
ELLIPSIS = "…"


def _escape_char(char: str) -> str:
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    # Cc: control, Cf: format (zero-width...), Zs/Zl/Zp: other spaces and separators.
    if unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"}:
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
    return char


def display_token(token: str, max_width: int | None = None) -> str:
    """Return `token` with whitespace and control characters made visible, cut to `max_width` cells.

    Spaces become "␣", newlines "\\n", tabs "\\t", other invisible characters "\\xNN" or
    "\\uNNNN"; a backslash is doubled so escapes stay unambiguous. The empty token is "∅".
    Width is counted in terminal cells (a CJK character takes two), and a cut token ends in "…".

    >>> display_token(" cat")
    '␣cat'
    >>> display_token("\\n\\n")
    '\\\\n\\\\n'
    >>> display_token("<|endoftext|>", max_width=8)
    '<|endof…'
    """
    shown = "".join(_escape_char(c) for c in token) if token else EMPTY_TOKEN
    if max_width is not None and cell_len(shown) > max_width:
        shown = set_cell_size(shown, max(max_width - 1, 0)).rstrip() + ELLIPSIS
    return shown


def display_tokens(tokens: list[str], max_width: int | None = None) -> list[str]:
    """`display_token` applied to every token."""
    return [display_token(t, max_width) for t in tokens]
