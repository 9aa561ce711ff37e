"""One family of errors for everything a user can get wrong.

Errors are raised short, where the problem is found, with a `Location` when the
problem is in pattern source. `str(error)` renders the file, line and column, the
source line with a caret under the offending column, and a hint.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


# A source line longer than this is shown as a window around the caret, clipped with "…".
MAX_SHOWN_CHARS = 120
# A message line longer than this is clipped in the middle (a 100,000-character name in it, say).
MAX_MESSAGE_LINE_CHARS = 500


@dataclass(frozen=True, slots=True)
class Location:
    """A place in pattern source: 1-based line and column, with the text around it."""

    line: int
    column: int
    source: str = ""
    filename: str | None = None
    end_column: int | None = None

    def source_line(self) -> str:
        # Lines as the parser counts them: only "\n" ends one (str.splitlines would also split at
        # form feeds and U+2028 and show the wrong line).
        lines = self.source.split("\n")
        return lines[self.line - 1].rstrip("\r") if 0 < self.line <= len(lines) else ""

    def render(self) -> str:
        """`file:line:column`, the source line (a window of it when long) and a caret under the place.

        >>> print(Location(1, 8, "attend q where k == 0", end_column=9).render())
        <rule>:1:8
           1 | attend q where k == 0
             |        ^
        """
        where = f"{self.filename or '<rule>'}:{self.line}:{self.column}"
        text = self.source_line()
        if not text:
            return where
        start = min(max(self.column - 1, 0), len(text))
        width = max(1, (self.end_column or self.column + 1) - self.column)
        shown, start = _window(text, start)
        width = max(1, min(width, len(shown) - start))
        caret = " " * start + "^" * width
        gutter = f"{self.line:>4} | "
        return f"{where}\n{gutter}{shown}\n{' ' * (len(gutter) - 2)}| {caret}"


def _window(text: str, start: int) -> tuple[str, int]:
    """The part of a source line to show, and where `start` lies in it. Characters that would move
    the caret or garble a terminal (tabs, control characters) are shown as one space or "�"."""
    left, right = 0, len(text)
    if len(text) > MAX_SHOWN_CHARS:
        left = max(0, min(start - MAX_SHOWN_CHARS // 3, len(text) - MAX_SHOWN_CHARS))
        right = left + MAX_SHOWN_CHARS
    shown = "".join(_printable(char) for char in text[left:right])
    start -= left
    if left > 0:
        shown, start = "…" + shown, start + 1
    if right < len(text):
        shown += "…"
    return shown, start


def _printable(char: str) -> str:
    if char.isprintable():
        return char
    return " " if char.isspace() else "\ufffd"


def _clip_line(line: str) -> str:
    if len(line) <= MAX_MESSAGE_LINE_CHARS:
        return line
    half = MAX_MESSAGE_LINE_CHARS // 2
    return f"{line[:half]}…({len(line) - 2 * half} characters left out)…{line[-half:]}"


class PatternError(Exception):
    """Base of every error patternlang raises for bad user input."""

    def __init__(self, message: str, location: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint
        self.pattern: str | None = None  # the pattern being checked, set once by the pipeline

    def __str__(self) -> str:
        parts = []
        if self.location is not None:
            rendered = self.location.render()
            if self.pattern:
                first, _, rest = rendered.partition("\n")
                rendered = f"{first} (in pattern {self.pattern!r})" + (f"\n{rest}" if rest else "")
            parts.append(rendered)
        parts.append(f"error: {self.message}")
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(_clip_line(line) for part in parts for line in part.split("\n"))


class PatternSyntaxError(PatternError):
    """The text does not follow the grammar."""


class UnknownNameError(PatternError):
    """A pattern, feature, function, measure or probe name that does not exist."""


class PatternTypeError(PatternError):
    """An expression combines values of kinds that do not fit (a string compared with a position...)."""


class CycleError(PatternError):
    """Patterns that refer to each other in a loop."""


class PatternFileError(PatternError):
    """A pattern or YAML file that cannot be read or does not match the schema."""


class ErrorGroup(PatternError):
    """Several problems found at once (the checker reports all of them)."""

    def __init__(self, errors: list[PatternError]):
        self.errors = list(errors)
        super().__init__(f"{len(self.errors)} problems found")

    def __str__(self) -> str:
        return "\n\n".join(str(e) for e in self.errors) + f"\n\n{len(self.errors)} problems found"


class InputError(PatternError):
    """Bad input to the engine: prompts, heads, measures, models, detection tensors."""


class ModelLoadError(InputError):
    """A model that cannot be found or loaded."""


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean 'x'?" hint for a misspelt name, or None when nothing is close."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None
