"""Prompt files: `.txt` (one prompt per line), `.jsonl` (one JSON value per line), `.json` (a list).

Reading is bounded: the file must be a regular file (not a directory, FIFO, device or
socket, checked with `os.stat` before it is opened and again on the open handle, which is
opened without blocking), of at most `MAX_PROMPT_FILE_BYTES` bytes, UTF-8 text without NUL
bytes, with at most `MAX_PROMPTS` prompts. So a 10 GB file, `/dev/zero` or a named pipe
with no writer gives a clear `InputError` at once, with bounded memory.

>>> from_file("prompts.jsonl")   # {"text": "The cat sat."} per line  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patternlang.errors import InputError, Location
from patternlang.files import special_file_kind
from patternlang.prompts import MAX_PROMPTS, Prompts, as_token_ids, check_text
from patternlang.spans import check_spans

MAX_PROMPT_FILE_BYTES = 256 * 2**20
"""Largest prompt file read: 256 MiB."""
PROMPT_FILE_TYPES = {".txt": "txt", ".text": "txt", "": "txt", ".jsonl": "jsonl", ".json": "json"}
"""File suffix -> format."""

_NOT_SPACE = re.compile(r"\S")
_SPLIT_HINT = (f"split it into files of at most {MAX_PROMPT_FILE_BYTES // 2**20} MiB and "
               f"{MAX_PROMPTS:,} prompts (for example with `split -l 100000 prompts.txt part_`), "
               "and score each")


def check_prompt_file(path: str | Path, *, bounded: bool = True) -> Path:
    """Check, without reading it, that `path` names a prompt file patternlang can read.

    It must exist, be a regular file (not a directory, FIFO, device or socket), hold at most
    `MAX_PROMPT_FILE_BYTES` bytes (unless `bounded` is False: a file read line by line,
    `probes/stream.py`) and have a known suffix. Returns the path (with `~` expanded). The
    checker calls this for `probe file(path=...)`.

    >>> check_prompt_file("/dev/zero")
    Traceback (most recent call last):
    ...
    patternlang.errors.InputError: error: prompt file '/dev/zero' is a character device, not a regular file
    hint: give the path of a .txt, .jsonl or .json file
    """
    path = _as_path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"prompt file {str(path)!r} does not exist",
                         hint="paths are relative to the working directory") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL character in the path
        raise InputError(f"cannot read prompt file {_shown(path)}: {_reason(exc)}") from None
    _check_stat(info, path, bounded=bounded)
    _check_suffix(path)
    return path


def from_file(path: str | Path) -> Prompts:
    """Prompts from a file.

    - `.txt` (or `.text`, or no suffix): one prompt per line; blank lines are skipped.
    - `.jsonl`: one JSON value per line: an object with a "text" (or "prompt") string or a
      "tokens" list of ids, or a bare string, or a bare list of ids. A text object may label
      character ranges of its text, `"spans": {"IO": [[start, end]], ...}` (end exclusive),
      which `span[k]` reads (`patternlang.spans`).
    - `.json`: a list of such values.

    All prompts of a file must be text, or all token ids. Reading is bounded (see the
    module's docstring); errors name the file and the line.
    """
    path = check_prompt_file(path)
    source = _read_bounded(path)
    file_type = PROMPT_FILE_TYPES[path.suffix.lower()]
    if file_type == "jsonl":
        entries = _jsonl_entries(source, path)
    elif file_type == "json":
        entries = _json_entries(source, path)
    else:
        entries = ((number, line.rstrip("\r"), line) for number, line in _non_blank_lines(source))
    return _prompts_from_entries(entries, path)


# ---------------------------------------------------------------------------
# Reading, bounded


def _as_path(path: Any) -> Path:
    if isinstance(path, Path):
        return path.expanduser()
    if not isinstance(path, str):
        raise InputError(f"a prompt file path must be a string or a Path, not {type(path).__name__}")
    if not path.strip():
        raise InputError("the prompt file path is empty", hint='write file(path="prompts.txt")')
    return Path(path).expanduser()


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() not in PROMPT_FILE_TYPES:
        raise InputError(f"cannot read prompts from {path.name!r}: unknown file type {path.suffix!r}",
                         hint="use .txt (one prompt per line), .jsonl or .json")


def _check_stat(info: os.stat_result, path: Path, *, bounded: bool = True) -> None:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise InputError(f"prompt file {_shown(path)} is a directory", hint="give the path of a file inside it")
    if not stat.S_ISREG(mode):
        kind = special_file_kind(mode)
        raise InputError(f"prompt file {_shown(path)} is {kind}, not a regular file",
                         hint="give the path of a .txt, .jsonl or .json file")
    if bounded and info.st_size > MAX_PROMPT_FILE_BYTES:
        raise InputError(f"prompt file {_shown(path)} has {_size(info.st_size)}, more than the "
                         f"{_size(MAX_PROMPT_FILE_BYTES)} patternlang reads", hint=_SPLIT_HINT)


def open_prompt_file(path: Path) -> Any:
    """`path` opened for reading bytes, or an `InputError` saying why not. Non-blocking, so that
    a file swapped for a FIFO after the stat cannot hang the open."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        return open(os.open(path, flags), "rb")
    except FileNotFoundError:
        raise InputError(f"prompt file {_shown(path)} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read prompt file {_shown(path)}: {_reason(exc)}") from None


def check_no_nul(data: bytes, path: Path, *, start: int, line_of: Callable[[int], int]) -> None:
    """A NUL byte in `data` (the file's bytes from byte `start` on) is an error naming its byte and line."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputError(f"prompt file {_shown(path)} is a binary file, not text (a NUL byte at byte {start + nul}, "
                         f"line {line_of(nul)})", hint="prompt files are UTF-8 text")


def decode_utf8(data: bytes, path: Path, *, start: int, line_of: Callable[[int], int]) -> str:
    """`data` (the file's bytes from byte `start` on) as text; bytes that are not UTF-8 are an error
    naming their byte and line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"prompt file {_shown(path)} is not UTF-8 text (byte {start + exc.start}, "
                         f"line {line_of(exc.start)})",
                         hint="save it as UTF-8 (for example with `iconv -t UTF-8`)") from None


def _read_bounded(path: Path) -> str:
    with open_prompt_file(path) as handle:
        try:
            _check_stat(os.fstat(handle.fileno()), path)
            data = handle.read(MAX_PROMPT_FILE_BYTES + 1)
        except OSError as exc:
            raise InputError(f"cannot read prompt file {_shown(path)}: {_reason(exc)}") from None
    if len(data) > MAX_PROMPT_FILE_BYTES:  # it grew after the stat
        raise InputError(f"prompt file {_shown(path)} has more than the {_size(MAX_PROMPT_FILE_BYTES)} "
                         "patternlang reads", hint=_SPLIT_HINT)

    def line_of(offset: int) -> int:
        return _line_of_byte(data, offset)

    check_no_nul(data, path, start=0, line_of=line_of)
    text = decode_utf8(data, path, start=0, line_of=line_of)
    return text.removeprefix("\ufeff")  # a byte-order mark is not part of the first prompt


def _line_of_byte(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _non_blank_lines(source: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of each line holding more than whitespace, found without a Python loop over blank lines."""
    number, counted_to, position = 1, 0, 0
    while True:
        found = _NOT_SPACE.search(source, position)
        if found is None:
            return
        start = source.rfind("\n", 0, found.start()) + 1
        end = source.find("\n", found.start())
        end = len(source) if end < 0 else end
        number += source.count("\n", counted_to, start)
        counted_to = start
        yield number, source[start:end]
        position = end + 1


def _jsonl_entries(source: str, path: Path) -> Iterator[tuple[int, Any, str | None]]:
    for number, line in _non_blank_lines(source):
        yield number, _jsonl_value(path, number, line), line


def _jsonl_value(path: Path, number: int, line: str) -> Any:
    """Line `number` of a JSONL file, decoded; an error placed at its line and column."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"line {number} is not valid JSON: {exc.msg}",
                         _line_location(path, number, line, exc.colno)) from None
    except (RecursionError, ValueError) as exc:  # nesting too deep; integers of thousands of digits
        raise InputError(f"line {number} cannot be read as JSON: {_json_limit(exc)}",
                         _line_location(path, number, line)) from None


_DECODER = json.JSONDecoder()
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _skip_space(source: str, position: int) -> int:
    """The first position at or after `position` that is not JSON whitespace."""
    found = _JSON_SPACE.match(source, position)  # matches always (possibly nothing)
    return position if found is None else found.end()


def _json_entries(source: str, path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """The items of a JSON list one at a time, so that a bad item or one too many stops the reading there.

    A JSON list has no per-item line numbers; items are numbered from 1 instead.
    """
    position = _skip_space(source, 0)
    if not source.startswith("[", position):
        data = _decode(source, position, path)[0]
        raise InputError(f"{_shown(path)} must hold a JSON list of prompts, not a {type(data).__name__}")
    position = _skip_space(source, position + 1)
    number = 0
    if not source.startswith("]", position):
        while True:
            value, position = _decode(source, position, path)
            number += 1
            yield number, value, None
            position = _skip_space(source, position)
            if source.startswith(",", position):
                position = _skip_space(source, position + 1)
            elif source.startswith("]", position):
                break
            else:
                _raise_json_error(source, position, path, "Expecting ',' delimiter")
    position = _skip_space(source, position + 1)
    if position != len(source):
        _raise_json_error(source, position, path, "Extra data")


def _decode(source: str, position: int, path: Path) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(source, position)
    except json.JSONDecodeError as exc:
        _raise_json_error(source, exc.pos, path, exc.msg)
    except (RecursionError, ValueError) as exc:
        raise InputError(f"{_shown(path)} cannot be read as JSON: {_json_limit(exc)}") from None
    raise AssertionError("unreachable")  # _raise_json_error always raises


def _raise_json_error(source: str, position: int, path: Path, message: str) -> None:
    start = source.rfind("\n", 0, position) + 1
    end = source.find("\n", position)
    line = source[start:len(source) if end < 0 else end]
    number = source.count("\n", 0, start) + 1
    raise InputError(f"not valid JSON: {message}", _line_location(path, number, line, position - start + 1))


def _json_limit(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "it is nested too deeply"
    return str(exc).split(";")[0]


@dataclass(frozen=True, slots=True)
class _LineLocation(Location):
    """A place in a prompt file, carrying its own (clipped) line instead of the whole file's text."""

    line_text: str = ""
    shown_column: int = 1  # the column within line_text, which may be clipped

    def source_line(self) -> str:
        return self.line_text

    def render(self) -> str:
        # Location's own rendering of the clipped line, under a header with the real column.
        shown = Location(self.line, self.shown_column, "\n" * (self.line - 1) + self.line_text, self.filename)
        body = shown.render().split("\n", 1)[1:]
        return "\n".join([f"{self.filename or '<file>'}:{self.line}:{self.column}", *body])


def _line_location(path: Path, number: int, line: str, column: int = 1) -> Location:
    """Where line `number` of a prompt file is wrong; a long line is shown clipped around the column."""
    line, shown_column = line.rstrip("\r"), column
    if len(line) > _SHOWN_LINE:
        left = max(0, min(column - 1 - _SHOWN_LINE // 3, len(line) - _SHOWN_LINE))
        clipped = line[left:left + _SHOWN_LINE]
        prefix = "..." if left else ""
        suffix = "..." if left + _SHOWN_LINE < len(line) else ""
        shown_column, line = column - left + len(prefix), prefix + clipped + suffix
    return _LineLocation(number, column, "", str(path), line_text=line, shown_column=shown_column)


_SHOWN_LINE = 120


def _prompts_from_entries(entries: Iterator[tuple[int, Any, str | None]], path: Path) -> Prompts:
    texts: list[str] = []
    tokens: list[tuple[int, ...]] = []
    spans: list[Any] = []  # per text prompt: its labelled spans, or None
    line_of = "item" if PROMPT_FILE_TYPES[path.suffix.lower()] == "json" else "line"
    for number, value, line in entries:
        if len(texts) + len(tokens) >= MAX_PROMPTS:
            where, prefix = _entry_place(path, number, line)
            raise InputError(f"{prefix}{line_of} {number}: the file holds more than {MAX_PROMPTS:,} prompts",
                             where, hint=_SPLIT_HINT)
        prompt, labelled = prompt_of_entry(value, number, line, path, line_of)
        if isinstance(prompt, str):
            texts.append(prompt)
            spans.append(labelled)
        else:
            tokens.append(prompt)
        if texts and tokens:
            where, prefix = _entry_place(path, number, line)
            raise InputError(f"{prefix}{line_of} {number}: a file holds text prompts or token-id prompts, not both",
                             where)
    if not texts and not tokens:
        raise InputError(f"prompt file {_shown(path)} holds no prompts")
    description = f"prompts read from {path}"
    if texts:  # every prompt passed check_text or as_token_ids above
        return Prompts._already_checked(texts=tuple(texts), name=path.name, description=description,
                                        spans=tuple(spans) if any(row is not None for row in spans) else None)
    return Prompts._already_checked(tokens=tuple(tokens), name=path.name, description=description)


def _entry_place(path: Path, number: int, line: str | None) -> tuple[Location | None, str]:
    """Where an entry is: lines have a Location (rendered with the file name and the line); list items
    do not, and their messages start with the file's name instead."""
    if line is not None:
        return _line_location(path, number, line), ""
    return None, f"{path}: "


def prompt_of_entry(value: Any, number: int, line: str | None, path: Path,
                    line_of: str = "line") -> tuple[str | tuple[int, ...], Any]:
    """One entry of a prompt file, checked: `(text or token ids, labelled spans or None)`.

    `value` is the entry as read (a line's text, or a JSON value); `number` its line (or item)
    number and `line` its source line, for the error's place. The streamed readers
    (`probes/stream.py`) check their entries with this too, so both give the same messages."""
    where, prefix = _entry_place(path, number, line)
    labelled = None
    if isinstance(value, dict):
        labelled = value.get("spans")
        keys = [key for key in ("text", "prompt", "tokens") if key in value]
        if len(keys) != 1:
            found = ", ".join(sorted(map(str, value))[:10]) or "none"
            raise InputError(f"{prefix}{line_of} {number}: an object needs exactly one of the fields "
                             f"\"text\", \"prompt\" or \"tokens\"; found {found}", where)
        value = value[keys[0]]
    if isinstance(value, str):
        if not value.strip():
            raise InputError(f"{prefix}{line_of} {number}: the prompt is empty", where)
        text = _checked(check_text, value, prefix, line_of, number, where)
        if labelled is None:
            return text, None
        return text, _checked(lambda v, i: check_spans(labelled, v, i), value, prefix, line_of, number, where)
    if isinstance(value, list):
        if labelled is not None:
            raise InputError(f"{prefix}{line_of} {number}: labelled spans need a text prompt, not token ids",
                             where)
        return _checked(as_token_ids, value, prefix, line_of, number, where), None
    raise InputError(f"{prefix}{line_of} {number}: a prompt is a string or a list of token ids, "
                     f"not {type(value).__name__}", where)


def _checked(check: Any, value: Any, prefix: str, line_of: str, number: int, where: Location | None) -> Any:
    """`check(value, 0)` with its error placed at the file's line (or item) instead of "prompt 0"."""
    try:
        return check(value, 0)
    except InputError as exc:
        place = f"{prefix}{line_of} {number}"
        message = exc.message
        for head, joint in (("prompt 0: ", ": "), ("prompt 0, ", ": "), ("prompt 0 ", " ")):
            if message.startswith(head):
                message = joint + message[len(head):]
                break
        else:
            message = ": " + message
        raise InputError(place + message, where, exc.hint) from None


def _shown(path: Path) -> str:
    text = str(path)
    return repr(text if len(text) <= 200 else text[:100] + "..." + text[-97:])


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _size(n_bytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}" if n_bytes % scale else f"{n_bytes // scale} {unit}"
    return f"{n_bytes} bytes"
