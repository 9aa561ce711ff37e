"""Collecting the problems of a check, so that every one of them is reported at once."""

from __future__ import annotations

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
        """One problem is raised as itself; several as an `ErrorGroup`."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ErrorGroup(self.errors)
