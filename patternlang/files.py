"""Output files: one place that checks suffixes, creates folders and turns OS errors into InputError."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from patternlang.errors import InputError


def suffix_of(path: str | Path, allowed: tuple[str, ...], what: str) -> str:
    """The lower-case suffix of `path` (".png"...), or an InputError naming the allowed ones."""
    suffix = Path(path).suffix.lower()
    if suffix not in allowed:
        shown = suffix or "no suffix"
        raise InputError(
            f"cannot save {what} as {str(path)!r}: unknown file type ({shown})",
            hint=f"use one of {', '.join(allowed)}",
        )
    return suffix


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[Path]:
    """Yield `path` as a Path with its folder created; an OSError while writing becomes an InputError."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield path
    except OSError as error:
        raise InputError(
            f"cannot write {str(path)!r}: {error.strerror or error}",
            hint="check that the folder exists and is writable",
        ) from None
