"""Output files: one place that checks suffixes and writable paths, creates folders, turns OS
errors into InputError, and writes several outputs all or nothing (`OutputFiles`)."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from patternlang.errors import InputError, PatternError


def special_file_kind(mode: int) -> str | None:
    """What a path's `st_mode` says it is when it is neither a regular file nor a directory:
    "a named pipe (FIFO)", "a character device", ...; None for files and directories."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")


def suffix_of(path: str | Path, allowed: tuple[str, ...], what: str) -> str:
    """The lower-case suffix of `path` (".png"...), or an InputError naming the allowed ones.

    >>> suffix_of("heads.PNG", (".png", ".html"), "a heatmap")
    '.png'
    """
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


def check_writable(path: str | Path) -> Path:
    """Check, without writing anything, that a file can be written at `path`.

    `path` must not be a directory; an existing file must be writable; otherwise the nearest
    existing directory above it must be writable (the missing ones will be created).
    """
    path = Path(path)
    try:
        _check_writable(path)
    except OSError as error:  # a name too long, a loop of links...
        raise InputError(f"cannot write {str(path)!r}: {error.strerror or error}") from None
    return path


def _check_writable(path: Path) -> None:
    shown = str(path)
    if path.is_dir():
        raise InputError(f"cannot write {shown!r}: it is a directory",
                         hint="give a file name, e.g. " + repr(str(path / "out.json")))
    if path.exists():
        if not os.access(path, os.W_OK):
            raise InputError(f"cannot write {shown!r}: the file is read-only", hint="choose another file name")
        return
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"cannot write {shown!r}: {str(folder)!r} is a file, not a directory",
                         hint="choose a path whose directories are directories")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {shown!r}: the directory {str(folder)!r} is not writable",
                         hint="choose a directory you can write to")


class OutputFiles:
    """Several output files, written all or nothing.

    `plan` checks each path before any work is done (suffix, folder, permissions); `staged`
    hands writers a temporary file beside each target, and renames every temporary into place
    only when all of them were written. If any writer fails, the temporaries and the directories
    made for them are removed, and no target is touched.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> outputs = OutputFiles()
    >>> target = outputs.plan(folder / "new" / "s.json", (".json",), "scores")
    >>> with outputs.staged() as temporary:
    ...     _ = temporary(target).write_text("{}")
    >>> [str(p.relative_to(folder)) for p in sorted(folder.rglob("*"))]
    ['new', 'new/s.json']
    """

    def __init__(self) -> None:
        self._planned: dict[Path, str] = {}  # resolved target -> how the user wrote it

    @property
    def paths(self) -> list[Path]:
        """The planned targets, in the order they were planned."""
        return [Path(shown) for shown in self._planned.values()]

    def plan(self, path: str | Path, allowed: tuple[str, ...] | None = None, what: str = "output") -> Path:
        """Check `path` now (its suffix among `allowed`, writable, not planned twice) and return it."""
        if allowed is not None:
            suffix_of(path, allowed, what)
        target = check_writable(path)
        key = target.resolve()
        if key in self._planned:
            raise InputError(f"two outputs would both write {str(path)!r}", hint="give each output its own file")
        self._planned[key] = str(path)
        return target

    @contextlib.contextmanager
    def staged(self) -> Iterator[Callable[[str | Path], Path]]:
        """Yield `temporary(target) -> Path`, a path to write `target`'s content to; commit on success."""
        temporaries: dict[Path, Path] = {}  # temporary -> target
        made: list[Path] = []  # directories created here, deepest last

        def temporary(target: str | Path) -> Path:
            target = Path(target)
            _make_folders(target.parent, made)
            # Same folder (a rename within one file system is atomic) and same suffix (writers
            # choose the format by it); hidden, so a half-written file is never mistaken for output.
            temp = target.parent / f".{target.name}.{secrets.token_hex(4)}.partial{target.suffix}"
            temporaries[temp] = target
            return temp

        try:
            yield temporary
            for temp, target in temporaries.items():
                if not temp.exists():
                    raise InputError(f"nothing was written for {str(target)!r}")
        except BaseException as error:
            _remove(temporaries, made)
            if isinstance(error, PatternError):
                raise _naming_targets(error, temporaries) from None
            raise
        for temp, target in temporaries.items():
            try:
                os.replace(temp, target)
            except OSError as error:
                _remove(temporaries, [])
                raise InputError(f"cannot write {str(target)!r}: {error.strerror or error}") from None


def _make_folders(folder: Path, made: list[Path]) -> None:
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        try:
            new.mkdir()
        except FileExistsError:
            continue
        except OSError as error:
            raise InputError(f"cannot create the directory {str(new)!r}: {error.strerror or error}") from None
        made.append(new)


def _remove(temporaries: dict[Path, Path], folders: list[Path]) -> None:
    for temp in temporaries:
        with contextlib.suppress(OSError):
            temp.unlink()
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if empty: never removes what someone else put there


def _naming_targets(error: PatternError, temporaries: dict[Path, Path]) -> PatternError:
    """`error` with each temporary file's name replaced by its target's, the file the user named."""
    message = error.message
    for temp, target in temporaries.items():
        message = message.replace(str(temp), str(target))
    if message == error.message:
        return error
    renamed = copy.copy(error)
    renamed.message, renamed.args = message, (message,)
    return renamed


# --------------------------------------------------------------------------- names and folders from data

NAME_LIMIT = 100
"""File names made from data (model ids, pattern names) are at most this many characters (+ suffix)."""


def safe_file_name(name: object, limit: int = NAME_LIMIT) -> str:
    """Any id or name as a safe, bounded file name: letters, digits, `-`, `_` and `.` kept, every
    other character `_`, no leading dot; names that were changed or are longer than `limit` end
    in 12 hex digits of their SHA-256, so two different names never share a file.

    >>> safe_file_name("SmolLM2-135M")
    'SmolLM2-135M'
    >>> safe_file_name("../../victim/settings")
    '_.._victim_settings-3b82ca69893d'
    >>> len(safe_file_name("x" * 300))
    100
    """
    text = str(name)
    kept = "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in text).lstrip(".")
    if kept == text and 0 < len(text) <= limit and kept not in (".", ".."):
        return kept
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{kept[:limit - 13]}-{digest}" if kept else digest


def inside(folder: str | Path, path: str | Path) -> Path:
    """`path` (relative to `folder`, or absolute) when it lies inside `folder` once every link and
    `..` is resolved; an InputError otherwise. Every write of a file named from data goes through it."""
    root = Path(folder).resolve()
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise InputError(f"refusing to write {str(path)!r}: it lies outside the output folder {str(folder)!r}")
    return target


MAX_JSON_DEPTH = 64
_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|([\[\]{}])')


def json_depth(text: str) -> int:
    """How deeply `text`'s arrays and objects nest (brackets inside strings do not count), found
    without parsing, so that a 100,000-deep document costs no recursion.

    >>> json_depth('{"a": [[1], "]]]"]}')
    3
    """
    steps = [1 if b in "[{" else -1 for b in _BRACKETS.findall(text) if b]
    return max(itertools.accumulate(steps), default=0)


def read_json(path: str | Path, what: str, max_depth: int = MAX_JSON_DEPTH) -> object:
    """The JSON in `path`, read as `what` ("the atlas document", "the scores file"): an InputError
    naming the file for one that cannot be read, is not UTF-8 JSON, nests deeper than `max_depth`
    or holds NaN/Infinity (never standard JSON, never written by patternlang)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"cannot read {what} {str(path)!r}: it is not UTF-8 text") from None
    except OSError as error:
        raise InputError(f"cannot read {what} {str(path)!r}: {error.strerror or error}") from None
    depth = json_depth(text)
    if depth > max_depth:
        raise InputError(f"cannot read {what} {str(path)!r}: its JSON nests {depth} levels deep "
                         f"(at most {max_depth})")

    def refuse(constant: str) -> float:
        raise ValueError(f"{constant} is not a number JSON allows")

    try:
        return json.loads(text, parse_constant=refuse)
    except (ValueError, RecursionError) as error:
        raise InputError(f"cannot read {what} {str(path)!r}: not valid JSON ({error})") from None
