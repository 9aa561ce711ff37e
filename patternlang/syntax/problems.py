"""Collecting the problems of a check, so that every one of them is reported at once."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ErrorGroup, PatternError


class Problems:
    """The problems found so far by the passes of one check."""

    def __init__(self) -> None:
        self.errors: list[PatternError] = []
        self.pattern: str | None = None  # the definition being checked: its errors name it

    def add(self, error: PatternError) -> None:
        if error.pattern is None:
            error.pattern = self.pattern
        self.errors.append(error)

    def __bool__(self) -> bool:
        return bool(self.errors)

    def raise_if_any(self) -> None:
        """One problem is raised as itself; several as an `ErrorGroup`, in line order."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ErrorGroup(in_line_order(self.errors))


def in_line_order(errors: Iterable[PatternError]) -> list[PatternError]:
    """Problems sorted by line and column, as a reader meets them (the passes find them pass by
    pass); those without a place keep their order, after the others. Files keep the order in
    which they first appear, so a check of several files reports them in the order given."""
    errors = list(errors)
    files: dict[str | None, int] = {}
    for error in errors:
        if error.location is not None:
            files.setdefault(error.location.filename, len(files))

    def key(error: PatternError) -> tuple[int, int, int, int]:
        loc = error.location
        if loc is None:
            return (1, 0, 0, 0)
        return (0, files[loc.filename], loc.line, loc.column)

    return sorted(errors, key=key)
