"""Prompt sources read lazily, one prompt at a time, so that a million prompts never sit in memory.

`open_prompts(path)` picks a reader by the path:

- `.txt` (or `.text`, or no suffix): one prompt per non-blank line, as `from_file` reads it;
- `.jsonl`: one JSON value per line, with its labelled spans, as `from_file` reads it;
- `.parquet`: one prompt per row of a column (text, or a list of token ids); needs `pyarrow`;
- a folder written by Hugging Face `datasets` (`Dataset.save_to_disk`): one prompt per row of a
  column; needs `datasets`;
- `.json` (a list): read whole, with `from_file`'s bound, since a JSON list has no lines.

Every entry is checked as it is read, with `from_file`'s messages (`prompt_files.prompt_of_entry`:
the file, the line, a caret). Memory is bounded per entry instead of per file: a line holds at
most `MAX_LINE_BYTES`, a text prompt `MAX_PROMPT_CHARS` characters, a token-id prompt
`MAX_PROMPT_TOKENS` ids; the engine reads a bounded number of prompts at a time (a chunk).
A source can be read as often as asked (each `iter` reads the file again from its start), which
resuming from a checkpoint and `Scores.show` rely on.

>>> source = open_prompts("prompts.jsonl")     # doctest: +SKIP
>>> next(iter(source))                         # doctest: +SKIP
('The cat sat.', None)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from patternlang.errors import InputError, did_you_mean

from . import prompt_files as _files
from .prompt_files import PROMPT_FILE_TYPES, check_prompt_file, from_file, prompt_of_entry
from patternlang.prompts import Prompts

MAX_LINE_BYTES = 32 * 2**20
"""Longest line a streamed prompt file may hold: 32 MiB (a million characters of text, or a
million token ids, fit)."""
PARQUET_SUFFIXES = (".parquet", ".pq")
COLUMN_NAMES = ("text", "prompt", "tokens")
"""The columns a table's prompts are read from when no column is named, first found first."""
_ROWS_PER_READ = 1024

Entry = tuple[Any, Any]
"""One prompt as a source yields it: `(text or token ids, labelled spans or None)`."""


class PromptSource:
    """Prompts read lazily. Iterating yields `(prompt, spans)` pairs; `total` is the number of
    prompts when it is known without reading them all (a table's row count), else None;
    `name` says what the source is (in messages and in a checkpoint's fingerprint)."""

    name: str = "prompts"
    total: int | None = None
    rereadable: bool = True

    def __iter__(self) -> Iterator[Entry]:
        raise NotImplementedError

    def count(self) -> int:
        """Read every prompt once, checking each, and return how many there are (memory flat)."""
        return sum(1 for _ in self)


def open_prompts(path: str | Path, *, column: str | None = None) -> PromptSource:
    """The prompt source a path names (see the module's docstring); `column` names a Parquet
    file's or a dataset's column (default: the first of "text", "prompt", "tokens" it has).

    Nothing but the file's kind is read here; every entry is checked when it is read.
    """
    path = _files._as_path(path)
    if path.is_dir():
        return DatasetFolder(path, column)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return ParquetFile(_regular_file(path), column)
    checked = check_prompt_file(path, bounded=PROMPT_FILE_TYPES.get(path.suffix.lower()) == "json")
    if column is not None:
        raise InputError(f"a column ({column!r}) applies to Parquet files and datasets folders, "
                         f"not to {checked.name!r}", hint="leave the column out for .txt, .jsonl and .json files")
    if PROMPT_FILE_TYPES[checked.suffix.lower()] == "json":
        return InMemoryPrompts(from_file(checked), name=str(checked))
    return LineFile(checked)


class LineFile(PromptSource):
    """A `.txt` or `.jsonl` prompt file, read line by line."""

    def __init__(self, path: Path):
        self.path = path
        self.name = str(path)
        self.jsonl = PROMPT_FILE_TYPES[path.suffix.lower()] == "jsonl"

    def __iter__(self) -> Iterator[Entry]:
        first_kind = None
        count = 0
        for number, line in _non_blank_lines(self.path):
            value = _files._jsonl_value(self.path, number, line) if self.jsonl else line.rstrip("\r")
            prompt, spans = prompt_of_entry(value, number, line, self.path)
            kind = isinstance(prompt, str)
            if first_kind is None:
                first_kind = kind
            elif kind != first_kind:
                raise InputError(f"line {number}: a file holds text prompts or token-id prompts, not both",
                                 _files._line_location(self.path, number, line))
            count += 1
            yield prompt, spans
        if not count:
            raise InputError(f"prompt file {_files._shown(self.path)} holds no prompts")


def _non_blank_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line holding more than whitespace, read a line at a time:
    the same lines, numbers and messages as `prompt_files._read_bounded` and `_non_blank_lines`."""
    with _files.open_prompt_file(path) as handle:
        _files._check_stat(os.fstat(handle.fileno()), path, bounded=False)
        offset, number = 0, 0
        while True:
            try:
                raw = handle.readline(MAX_LINE_BYTES + 1)
            except OSError as exc:
                raise InputError(f"cannot read prompt file {_files._shown(path)}: {_files._reason(exc)}") from None
            if not raw:
                return
            number += 1
            _files.check_no_nul(raw, path, start=offset, line_of=_at_line(number))
            if len(raw) > MAX_LINE_BYTES:
                raise InputError(f"prompt file {_files._shown(path)}: line {number} is longer than "
                                 f"{_files._size(MAX_LINE_BYTES)}", hint="no prompt is that long; is this a prompt file?")
            text = _files.decode_utf8(raw, path, start=offset, line_of=_at_line(number))
            offset += len(raw)
            if number == 1:
                text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the first prompt
            text = text.removesuffix("\n")
            if _files._NOT_SPACE.search(text):
                yield number, text


def _at_line(number: int) -> Callable[[int], int]:
    """`line_of` for bytes all on line `number` (one line of a file read line by line)."""
    return lambda _byte: number


class InMemoryPrompts(PromptSource):
    """Prompts already in memory (a `Prompts`, a list): read from it, as a source."""

    def __init__(self, prompts: Any, *, name: str | None = None):
        self.prompts = prompts
        self.items = list(prompts.items) if isinstance(prompts, Prompts) else prompts
        self.spans = prompts.spans if isinstance(prompts, Prompts) else None
        given = getattr(prompts, "name", None)
        self.name = name or (given if isinstance(given, str) else "prompts")
        self.total = len(self.items)

    def __iter__(self) -> Iterator[Entry]:
        spans = self.spans
        for index, item in enumerate(self.items):
            yield item, (spans[index] if spans is not None else None)


class OnePassPrompts(PromptSource):
    """Prompts from an iterator or generator (any iterable that is not a list): each prompt is a
    text or token ids, checked when it is read; it can be read only once."""

    rereadable = False

    def __init__(self, iterable: Iterable[Any]):
        self.iterator = iter(iterable)
        self.name = f"an iterator ({type(iterable).__name__})"
        self.used = False

    def __iter__(self) -> Iterator[Entry]:
        if self.used:
            raise InputError("these prompts came from an iterator, which can be read only once",
                             hint="pass a list, a prompt file or a Prompts to read them again")
        self.used = True
        for item in self.iterator:
            yield item, None


class _Table(PromptSource):
    """Rows of one column of a table, as prompts; subclasses read the rows in blocks."""

    what = "table"

    def __init__(self, path: Path, column: str | None, columns: list[str]):
        self.path = path
        self.column = _choose_column(column, columns, path, self.what)
        self.name = f"{path} [{self.column}]"

    def blocks(self) -> Iterator[list[Any]]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Entry]:
        number = 0
        for block in self.blocks():
            for value in block:
                number += 1
                if isinstance(value, tuple):
                    value = list(value)
                elif hasattr(value, "tolist") and not isinstance(value, str):
                    value = value.tolist()
                yield prompt_of_entry(value, number, None, self.path, line_of="row")
        if not number:
            raise InputError(f"{self.what} {_files._shown(self.path)} holds no prompts")


class ParquetFile(_Table):
    """A Parquet file's column, read a row group's slice at a time (`pyarrow`)."""

    what = "Parquet file"

    def __init__(self, path: Path, column: str | None):
        parquet = _optional("pyarrow.parquet", "pyarrow", "reading Parquet files")
        try:
            self.file = parquet.ParquetFile(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises its own error types for bad files
            raise InputError(f"cannot read {_files._shown(path)} as Parquet: {exc}") from None
        super().__init__(path, column, list(self.file.schema_arrow.names))
        self.total = int(self.file.metadata.num_rows)

    def blocks(self) -> Iterator[list[Any]]:
        for batch in self.file.iter_batches(batch_size=_ROWS_PER_READ, columns=[self.column]):
            yield batch.column(0).to_pylist()


class DatasetFolder(_Table):
    """A Hugging Face `datasets` folder (`save_to_disk`), memory-mapped; its rows read in blocks."""

    what = "dataset"

    def __init__(self, path: Path, column: str | None):
        if not any((path / marker).is_file() for marker in ("dataset_info.json", "state.json",
                                                            "dataset_dict.json")):
            raise InputError(f"prompt file {_files._shown(path)} is a directory, not a Hugging Face dataset "
                             "(no dataset_info.json or state.json in it)",
                             hint="give a .txt, .jsonl, .json or .parquet file, or a folder written by "
                                  "datasets' save_to_disk")
        datasets = _optional("datasets", "datasets", "reading Hugging Face dataset folders")
        try:
            dataset = datasets.load_from_disk(str(path))
        except Exception as exc:  # noqa: BLE001 - datasets raises many error types for bad folders
            raise InputError(f"cannot read the dataset in {_files._shown(path)}: {exc}") from None
        if isinstance(dataset, datasets.DatasetDict):
            splits = ", ".join(dataset)
            raise InputError(f"{_files._shown(path)} holds several splits ({splits}); prompts are read from one",
                             hint=f"give the folder of one split, for example {path / next(iter(dataset))}")
        self.dataset = dataset
        super().__init__(path, column, list(dataset.column_names))
        self.total = len(dataset)

    def blocks(self) -> Iterator[list[Any]]:
        for batch in self.dataset.select_columns([self.column]).iter(batch_size=_ROWS_PER_READ):
            yield batch[self.column]


def _choose_column(column: str | None, columns: list[str], path: Path, what: str) -> str:
    if column is None:
        for name in COLUMN_NAMES:
            if name in columns:
                return name
        raise InputError(f"{what} {_files._shown(path)} has no column named text, prompt or tokens "
                         f"(its columns: {', '.join(columns[:20]) or 'none'})",
                         hint="name the prompts' column: --prompt-column NAME (column= in Python)")
    if column not in columns:
        raise InputError(f"{what} {_files._shown(path)} has no column {column!r} "
                         f"(its columns: {', '.join(columns[:20]) or 'none'})",
                         hint=did_you_mean(column, columns) or "name one of its columns")
    return column


def _optional(module: str, package: str, purpose: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"{purpose} needs the {package} package, which is not installed",
                         hint=f"pip install {package}") from None


def _regular_file(path: Path) -> Path:
    """`path`, when it names a regular file (of any size); else an `InputError` saying what it is."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"prompt file {str(path)!r} does not exist",
                         hint="paths are relative to the working directory") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read prompt file {_files._shown(path)}: {_files._reason(exc)}") from None
    _files._check_stat(info, path, bounded=False)
    return path
