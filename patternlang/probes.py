"""Prompt sets ("probes"): the inputs a model reads while its heads are scored.

A `Prompts` holds either texts (tokenized later by the engine, with BOS prepended the
TransformerLens way) or token ids (used exactly as given). The named probes, usable in
pattern files as `probe repeated_random(length=64)`:

- `repeated_random`: BOS + random tokens repeated, the standard induction probe;
- `natural`: a small corpus of English text shipped with patternlang;
- `file`: prompts read from a .txt, .jsonl or .json file.

>>> prompts = repeated_random(length=4, repeats=2, batch=1, vocab=(10, 20), bos_id=0)
>>> prompts.tokens
((0, 14, 19, 13, 10, 14, 19, 13, 10),)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from patternlang.errors import InputError, Location, PatternTypeError, UnknownNameError, did_you_mean
from patternlang.resources import data_path

PromptKind = Literal["text", "tokens"]
Prompt = str | tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Prompts:
    """A named set of prompts: exactly one of `texts` or `tokens`.

    >>> p = Prompts(texts=("The cat sat.", "A dog ran."), name="pets")
    >>> len(p), p.kind, list(p)[0]
    (2, 'text', 'The cat sat.')
    """

    texts: tuple[str, ...] | None = None
    tokens: tuple[tuple[int, ...], ...] | None = None
    name: str = "prompts"
    description: str = ""

    def __post_init__(self) -> None:
        if (self.texts is None) == (self.tokens is None):
            raise InputError("a prompt set needs exactly one of texts= or tokens=")
        if isinstance(self.texts, str):
            raise InputError("texts= takes a sequence of prompts; write texts=(text,) for one prompt")
        if self.texts is not None:
            texts = tuple(self.texts)
            for index, text in enumerate(texts):
                if not isinstance(text, str):
                    raise InputError(f"prompt {index} is a {type(text).__name__}, not text")
                if not text:
                    raise InputError(f"prompt {index} is empty")
            items: tuple = texts
            object.__setattr__(self, "texts", texts)
        else:
            items = tuple(_token_tuple(row, index) for index, row in enumerate(self.tokens))
            object.__setattr__(self, "tokens", items)
        if not items:
            raise InputError(f"the prompt set {self.name!r} is empty", hint="give at least one prompt")

    @property
    def kind(self) -> PromptKind:
        return "text" if self.texts is not None else "tokens"

    @property
    def items(self) -> tuple[Prompt, ...]:
        """The prompts themselves: strings, or tuples of token ids."""
        return self.texts if self.texts is not None else self.tokens  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self.items)

    def __getitem__(self, index: int) -> Prompt:
        return self.items[index]

    def take(self, n: int) -> "Prompts":
        """The first `n` prompts, as a new set with the same name."""
        if n < 1:
            raise InputError(f"cannot take {n} prompts; take at least 1")
        if self.texts is not None:
            return Prompts(texts=self.texts[:n], name=self.name, description=self.description)
        return Prompts(tokens=self.tokens[:n], name=self.name, description=self.description)

    def as_tensor(self) -> torch.Tensor:
        """Token-id prompts of one length as a `[batch, pos]` long tensor."""
        if self.tokens is None:
            raise InputError(f"{self.name!r} holds text; tokenize it with the model first")
        lengths = {len(row) for row in self.tokens}
        if len(lengths) != 1:
            raise InputError(f"{self.name!r} holds prompts of {len(lengths)} different lengths; "
                             "the engine pads them, as_tensor cannot")
        return torch.tensor(self.tokens, dtype=torch.long)


def _token_tuple(row: Any, index: int) -> tuple[int, ...]:
    if isinstance(row, torch.Tensor):
        if row.dim() != 1 or row.is_floating_point() or row.is_complex() or row.dtype == torch.bool:
            raise InputError(f"prompt {index}: a tensor of token ids must be 1-D integers, "
                             f"got {row.dtype} of shape {tuple(row.shape)}")
        row = row.tolist()
    if isinstance(row, (str, bytes)):
        raise InputError(f"prompt {index} is text inside a set of token-id prompts")
    try:
        values = tuple(row)
    except TypeError:
        raise InputError(f"prompt {index} is a {type(row).__name__}, not a list of token ids") from None
    if not values:
        raise InputError(f"prompt {index} is empty")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"prompt {index}: token ids must be integers, found {value!r}")
        if value < 0:
            raise InputError(f"prompt {index}: token ids cannot be negative, found {value}")
    return values


# ---------------------------------------------------------------------------
# repeated_random

REPEATED_RANDOM_VOCAB_START = 1000
"""First token id `repeated_random` draws from when the vocabulary is large (>= 2000)."""
REPEATED_RANDOM_VOCAB_STOP = 20000
"""One past the last token id it draws from (or the vocabulary size, if smaller)."""


def repeated_random(model_or_tokenizer: Any = None, *, length: int = 50, repeats: int = 2, batch: int = 32,
                    vocab: tuple[int, int] | None = None, seed: int = 0, prepend_bos: bool = True,
                    bos_id: int | None = None) -> Prompts:
    """The standard induction probe: BOS, then `length` random tokens repeated `repeats` times.

    Tokens are drawn uniformly from `vocab = (lo, hi)` (`lo` included, `hi` excluded). The
    default range, from a model's or tokenizer's vocabulary size `V`, is
    `[1000, min(V, 20000))` when `V >= 2000`: it skips the special tokens, bytes and short
    fragments at the start of BPE vocabularies and the rare tokens at their end. For a
    smaller vocabulary it is every id above the tokenizer's special ones (or above the BOS
    id). The same `seed` gives the same tokens on every machine.

    Without a model, pass `vocab=` and (with `prepend_bos=True`) `bos_id=`.

    >>> p = repeated_random(length=3, repeats=3, batch=2, vocab=(5, 9), bos_id=0, seed=1)
    >>> [len(row) for row in p], p.tokens[0][1:4] == p.tokens[0][4:7] == p.tokens[0][7:10]
    ([10, 10], True)
    """
    for arg, value in (("length", length), ("repeats", repeats), ("batch", batch)):
        _check_positive_int("repeated_random", arg, value)
    _check_int("repeated_random", "seed", seed)
    vocab_size, n_ctx, tokenizer_bos, special_ids = _vocab_facts(model_or_tokenizer)
    lo, hi = _random_vocab_range(vocab, vocab_size, special_ids, tokenizer_bos)
    if prepend_bos:
        bos_id = tokenizer_bos if bos_id is None else bos_id
        if bos_id is None:
            raise InputError("repeated_random needs the BOS token id to prepend it",
                             hint="pass a model or tokenizer, or bos_id=..., or prepend_bos=False")
        _check_int("repeated_random", "bos_id", bos_id)
    total = length * repeats + (1 if prepend_bos else 0)
    if n_ctx is not None and total > n_ctx:
        raise InputError(f"repeated_random prompts would be {total} tokens long, more than the model's "
                         f"context of {n_ctx}", hint="lower length or repeats")

    generator = torch.Generator().manual_seed(seed)
    random_tokens = torch.randint(lo, hi, (batch, length), generator=generator)
    rows = random_tokens.repeat(1, repeats)
    if prepend_bos:
        rows = torch.cat([torch.full((batch, 1), bos_id, dtype=rows.dtype), rows], dim=1)
    name = f"repeated_random(length={length}, repeats={repeats}, batch={batch}, seed={seed})"
    description = (f"{batch} prompts: {'BOS + ' if prepend_bos else ''}{length} random tokens from "
                   f"[{lo}, {hi}) repeated {repeats} times")
    return Prompts(tokens=tuple(tuple(row) for row in rows.tolist()), name=name, description=description)


def _vocab_facts(source: Any) -> tuple[int | None, int | None, int | None, tuple[int, ...]]:
    """(vocabulary size, context length, BOS id, special ids) of a model or a tokenizer."""
    if source is None:
        return None, None, None, ()
    tokenizer = getattr(source, "tokenizer", None) if hasattr(source, "cfg") else source
    cfg = getattr(source, "cfg", None)
    vocab_size = getattr(cfg, "d_vocab", None) if cfg is not None else None
    if (vocab_size is None or vocab_size <= 0) and tokenizer is not None:
        try:
            vocab_size = len(tokenizer)
        except TypeError:
            vocab_size = getattr(tokenizer, "vocab_size", None)
    n_ctx = getattr(cfg, "n_ctx", None) if cfg is not None else None
    bos = getattr(tokenizer, "bos_token_id", None) if tokenizer is not None else None
    special = tuple(getattr(tokenizer, "all_special_ids", None) or ()) if tokenizer is not None else ()
    return vocab_size, n_ctx, bos, special


def _random_vocab_range(vocab: Any, vocab_size: int | None, special_ids: Sequence[int],
                        bos: int | None) -> tuple[int, int]:
    if vocab is not None:
        if (not isinstance(vocab, (tuple, list)) or len(vocab) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in vocab)):
            raise InputError(f"vocab must be a pair of token ids (lo, hi), got {vocab!r}")
        lo, hi = vocab
        if not 0 <= lo < hi:
            raise InputError(f"vocab=({lo}, {hi}) is empty or negative; it needs 0 <= lo < hi")
        if vocab_size is not None and hi > vocab_size:
            raise InputError(f"vocab=({lo}, {hi}) goes past the model's vocabulary of {vocab_size} tokens")
        return lo, hi
    if vocab_size is None:
        raise InputError("repeated_random needs a vocabulary range to draw from",
                         hint="pass a model or tokenizer, or vocab=(lo, hi)")
    if vocab_size >= 2 * REPEATED_RANDOM_VOCAB_START:
        return REPEATED_RANDOM_VOCAB_START, min(vocab_size, REPEATED_RANDOM_VOCAB_STOP)
    reserved = [i for i in (*special_ids, bos) if i is not None and i < vocab_size]
    lo = max(reserved) + 1 if reserved else 0
    if lo >= vocab_size:
        raise InputError(f"the vocabulary of {vocab_size} tokens has no ordinary tokens to draw from")
    return lo, vocab_size


# ---------------------------------------------------------------------------
# natural

NATURAL_FILE = "natural.txt"


def natural(batch: int | None = None) -> Prompts:
    """English sentences and short paragraphs written for patternlang, one prompt each.

    They repeat names and words (so duplicate-token and induction heads have targets), and
    hold long multi-token words, numbers and punctuation. `batch` keeps the first `batch`.

    >>> len(natural(batch=5))
    5
    """
    prompts = from_file(data_path(NATURAL_FILE))
    count = len(prompts)
    description = f"{count} English sentences and short paragraphs shipped with patternlang"
    if batch is not None:
        _check_positive_int("natural", "batch", batch)
        if batch > count:
            raise InputError(f"natural has {count} prompts; cannot take batch={batch}",
                             hint=f"use batch={count} or fewer")
        prompts = prompts.take(batch)
        description = f"the first {batch} of {description}"
    name = "natural" if batch is None else f"natural(batch={batch})"
    return Prompts(texts=prompts.texts, name=name, description=description)


# ---------------------------------------------------------------------------
# Files


def from_file(path: str | Path) -> Prompts:
    """Prompts from a file.

    - `.txt`: one prompt per line; blank lines are skipped.
    - `.jsonl`: one JSON value per line: an object with a "text" (or "prompt") string or a
      "tokens" list of ids, or a bare string, or a bare list of ids.
    - `.json`: a list of such values.

    All prompts of a file must be text, or all token ids.

    >>> from_file("prompts.jsonl")   # {"text": "The cat sat."} per line  # doctest: +SKIP
    """
    path = Path(path).expanduser()
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"prompt file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"prompt file {str(path)!r} is a directory") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"prompt file {str(path)!r} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"cannot read prompt file {str(path)!r}: {exc.strerror or exc}") from None

    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        entries = list(_jsonl_entries(source, path))
    elif suffix == ".json":
        entries = _json_entries(source, path)
    elif suffix in (".txt", ".text", ""):
        entries = [(number, line.rstrip("\r")) for number, line in enumerate(source.split("\n"), start=1)
                   if line.strip()]
    else:
        raise InputError(f"cannot read prompts from {path.name!r}: unknown file type {suffix!r}",
                         hint="use .txt (one prompt per line), .jsonl or .json")
    if not entries:
        raise InputError(f"prompt file {str(path)!r} holds no prompts")
    return _prompts_from_entries(entries, path, source)


def _jsonl_entries(source: str, path: Path) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(source.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"line {number} is not valid JSON: {exc.msg}",
                             Location(number, exc.colno, source, str(path))) from None


def _json_entries(source: str, path: Path) -> list[tuple[int, Any]]:
    try:
        data = json.loads(source)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", Location(exc.lineno, exc.colno, source, str(path))) from None
    if not isinstance(data, list):
        raise InputError(f"{str(path)!r} must hold a JSON list of prompts, not a {type(data).__name__}")
    # A JSON list has no per-item line numbers; items are numbered from 1 instead.
    return [(number, item) for number, item in enumerate(data, start=1)]


def _prompts_from_entries(entries: list[tuple[int, Any]], path: Path, source: str) -> Prompts:
    texts: list[str] = []
    tokens: list[tuple[int, ...]] = []
    line_of = "item" if path.suffix.lower() == ".json" else "line"
    for number, value in entries:
        # Lines have a Location (rendered with the file name and the line); list items do not.
        where = Location(number, 1, source, str(path)) if line_of == "line" else None
        prefix = "" if where is not None else f"{path}: "
        if isinstance(value, dict):
            keys = [key for key in ("text", "prompt", "tokens") if key in value]
            if len(keys) != 1:
                raise InputError(f"{prefix}{line_of} {number}: an object needs exactly one of the fields "
                                 f"\"text\", \"prompt\" or \"tokens\"; found {sorted(value) or 'none'}", where)
            value = value[keys[0]]
        if isinstance(value, str):
            if not value.strip():
                raise InputError(f"{prefix}{line_of} {number}: the prompt is empty", where)
            texts.append(value)
        elif isinstance(value, list):
            if not value or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
                raise InputError(f"{prefix}{line_of} {number}: token ids must be a non-empty list of "
                                 "non-negative integers", where)
            tokens.append(tuple(value))
        else:
            raise InputError(f"{prefix}{line_of} {number}: a prompt is a string or a list of token ids, "
                             f"not {type(value).__name__}", where)
        if texts and tokens:
            raise InputError(f"{prefix}{line_of} {number}: a file holds text prompts or token-id prompts, not both",
                             where)
    description = f"prompts read from {path}"
    if texts:
        return Prompts(texts=tuple(texts), name=path.name, description=description)
    return Prompts(tokens=tuple(tokens), name=path.name, description=description)


# ---------------------------------------------------------------------------
# The registry the pattern language checks `probe name(arg=value)` against

ArgType = Literal["int", "float", "str"]
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,)}
_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string"}


@dataclass(frozen=True, slots=True)
class ProbeArg:
    """One argument a probe takes in pattern files."""

    name: str
    type: ArgType
    default: int | float | str | None
    doc: str
    minimum: int | None = None


@dataclass(frozen=True, slots=True)
class ProbeDefinition:
    """A named probe: its arguments and the function that builds its prompts."""

    name: str
    doc: str
    args: tuple[ProbeArg, ...]
    build: Callable[[Mapping[str, Any], Any], Prompts]

    def arg(self, name: str) -> ProbeArg | None:
        return next((arg for arg in self.args if arg.name == name), None)


def _build_repeated_random(args: Mapping[str, Any], model: Any) -> Prompts:
    kwargs = {key: args[key] for key in ("length", "repeats", "batch", "seed") if key in args}
    if "vocab_lo" in args or "vocab_hi" in args:
        if "vocab_lo" in args and "vocab_hi" in args:
            default_lo = default_hi = None
        elif model is None:
            raise InputError("repeated_random needs both vocab_lo and vocab_hi without a model")
        else:  # the bound not given is the model's default one
            size, _, bos, special = _vocab_facts(model)
            default_lo, default_hi = _random_vocab_range(None, size, special, bos)
        kwargs["vocab"] = (args.get("vocab_lo", default_lo), args.get("vocab_hi", default_hi))
    return repeated_random(model, **kwargs)


def _build_natural(args: Mapping[str, Any], model: Any) -> Prompts:
    return natural(batch=args.get("batch"))


def _build_file(args: Mapping[str, Any], model: Any) -> Prompts:
    if "path" not in args:
        raise InputError("probe file needs a path, as in file(path=\"prompts.txt\")")
    return from_file(args["path"])


PROBES: dict[str, ProbeDefinition] = {
    "repeated_random": ProbeDefinition(
        "repeated_random",
        "BOS + random tokens repeated; the standard induction probe",
        (
            ProbeArg("length", "int", 50, "random tokens before each repeat", minimum=1),
            ProbeArg("repeats", "int", 2, "times the random tokens appear", minimum=1),
            ProbeArg("batch", "int", 32, "number of prompts", minimum=1),
            ProbeArg("seed", "int", 0, "random seed; the same seed gives the same tokens"),
            ProbeArg("vocab_lo", "int", None, "first token id drawn (default: 1000, or the first id "
                     "after the special ones in a vocabulary under 2000 tokens)", minimum=0),
            ProbeArg("vocab_hi", "int", None, "one past the last token id drawn (default: 20000 or "
                     "the vocabulary size, whichever is smaller)", minimum=1),
        ),
        _build_repeated_random,
    ),
    "natural": ProbeDefinition(
        "natural",
        "English sentences and short paragraphs shipped with patternlang",
        (ProbeArg("batch", "int", None, "keep only the first `batch` prompts", minimum=1),),
        _build_natural,
    ),
    "file": ProbeDefinition(
        "file",
        "prompts read from a .txt, .jsonl or .json file (path relative to the working directory)",
        (ProbeArg("path", "str", None, "the file to read"),),
        _build_file,
    ),
}


def probe_names() -> list[str]:
    """The names of the probes, sorted."""
    return sorted(PROBES)


def validate_probe_args(name: str, args: Mapping[str, Any] | Sequence[tuple[str, Any]] = ()) -> None:
    """Check a probe name and its arguments without building any prompts.

    Raises `UnknownNameError` (with a "did you mean") for an unknown probe or argument,
    `PatternTypeError` for a value of the wrong type, `InputError` for one out of range.

    >>> validate_probe_args("repeated_random", {"length": 64})
    >>> validate_probe_args("repeated_randm", {})
    Traceback (most recent call last):
    ...
    patternlang.errors.UnknownNameError: error: unknown probe 'repeated_randm'
    hint: did you mean 'repeated_random'?
    """
    definition = _definition(name)
    for arg_name, value in _as_arg_dict(args).items():
        arg = definition.arg(arg_name)
        if arg is None:
            known = [a.name for a in definition.args]
            raise UnknownNameError(f"probe {name!r} has no argument {arg_name!r}",
                                   hint=did_you_mean(arg_name, known)
                                   or f"its arguments are {', '.join(known)}")
        if isinstance(value, bool) or not isinstance(value, _PYTHON_TYPES[arg.type]):
            raise PatternTypeError(f"argument {arg_name!r} of probe {name!r} must be {_TYPE_WORDS[arg.type]}, "
                                   f"not {_describe(value)}")
        if arg.minimum is not None and value < arg.minimum:
            raise InputError(f"argument {arg_name!r} of probe {name!r} must be at least {arg.minimum}, got {value}")


def get_probe(name: str, **args: Any) -> Callable[..., Prompts]:
    """The probe `name` with its arguments bound: call it with an optional model.

    >>> make = get_probe("repeated_random", length=8, batch=2)
    >>> prompts = make(model)   # doctest: +SKIP
    """
    validate_probe_args(name, args)
    definition = PROBES[name]

    def build(model: Any = None) -> Prompts:
        return definition.build(args, model)

    build.__name__ = name
    build.__doc__ = definition.doc
    return build


def make_probe(name: str, args: Mapping[str, Any] | Sequence[tuple[str, Any]] = (), model: Any = None) -> Prompts:
    """Build the prompts of a named probe (as written in a pattern file) for a model.

    `args` is a dict or the `(name, value)` pairs of a `ProbeSpec`.

    >>> len(make_probe("natural", {"batch": 3}))
    3
    """
    arg_dict = _as_arg_dict(args)
    validate_probe_args(name, arg_dict)
    prompts = PROBES[name].build(arg_dict, model)
    if model is not None:
        check_token_ids(prompts, model)
    return prompts


def _definition(name: str) -> ProbeDefinition:
    if not isinstance(name, str) or name not in PROBES:
        raise UnknownNameError(f"unknown probe {name!r}",
                               hint=did_you_mean(str(name), PROBES) or f"probes are {', '.join(probe_names())}")
    return PROBES[name]


def _as_arg_dict(args: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> dict[str, Any]:
    if isinstance(args, Mapping):
        return dict(args)
    pairs = list(args)
    names = [pair[0] for pair in pairs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"probe argument {repeated[0]!r} is given twice")
    return dict(pairs)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, int):
        return f"an integer ({value})"
    return f"a {type(value).__name__}"


def _check_int(probe: str, arg: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PatternTypeError(f"argument {arg!r} of {probe} must be an integer, not {_describe(value)}")


def _check_positive_int(probe: str, arg: str, value: Any) -> None:
    _check_int(probe, arg, value)
    if value < 1:
        raise InputError(f"argument {arg!r} of {probe} must be at least 1, got {value}")


# ---------------------------------------------------------------------------
# Anything the user passes as prompts


def as_prompts(x: Any, model: Any = None) -> Prompts:
    """Turn what a user passes as prompts into a `Prompts`.

    Accepts a `Prompts`, a string (one prompt), a list of strings, a list of token-id
    lists or 1-D tensors, a flat list of token ids (one prompt), a `[batch, pos]` or
    `[pos]` integer tensor, or a `Path` to a prompt file. With a model, token ids are
    checked against its vocabulary.

    >>> as_prompts(["The cat sat.", "A dog ran."]).kind
    'text'
    >>> as_prompts(torch.tensor([[1, 5, 6], [1, 7, 8]])).tokens
    ((1, 5, 6), (1, 7, 8))
    """
    prompts = _as_prompts(x)
    if model is not None:
        check_token_ids(prompts, model)
    return prompts


def _as_prompts(x: Any) -> Prompts:
    if isinstance(x, Prompts):
        return x
    if isinstance(x, Path):
        return from_file(x)
    if isinstance(x, str):
        if not x:
            raise InputError("the prompt is empty")
        return Prompts(texts=(x,), name="prompt")
    if isinstance(x, torch.Tensor):
        if x.dim() == 1:
            x = x.unsqueeze(0)
        if x.dim() != 2:
            raise InputError(f"a tensor of prompts must be [batch, pos] or [pos], got shape {tuple(x.shape)}")
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise InputError(f"a tensor of prompts must hold integer token ids, not {x.dtype}")
        if x.shape[0] == 0:
            raise InputError("no prompts given: the tensor has no rows")
        return Prompts(tokens=tuple(tuple(row) for row in x.tolist()), name="tokens")
    if isinstance(x, (bytes, Mapping)) or not hasattr(x, "__iter__"):
        raise InputError(f"cannot use {type(x).__name__} as prompts",
                         hint="pass strings, lists of token ids, a [batch, pos] tensor, a file Path, or a probe")
    items = list(x)
    if not items:
        raise InputError("no prompts given", hint="pass at least one string or list of token ids")
    if all(isinstance(item, int) and not isinstance(item, bool) for item in items):
        return Prompts(tokens=(tuple(items),), name="tokens")  # a flat list of ids is one prompt
    if all(isinstance(item, str) for item in items):
        return Prompts(texts=tuple(items), name="prompts")
    first_text = next((i for i, item in enumerate(items) if isinstance(item, str)), None)
    if first_text is not None:
        other = next(i for i, item in enumerate(items) if not isinstance(item, str))
        raise InputError(f"prompt {first_text} is text but prompt {other} is not; give all text or all token ids")
    return Prompts(tokens=tuple(items), name="tokens")


def check_token_ids(prompts: Prompts, model: Any) -> None:
    """Raise `InputError` when a token id is outside the model's vocabulary."""
    if prompts.tokens is None:
        return
    vocab_size = getattr(getattr(model, "cfg", None), "d_vocab", None)
    if not vocab_size or vocab_size <= 0:
        return
    for index, row in enumerate(prompts.tokens):
        bad = next((t for t in row if t >= vocab_size), None)
        if bad is not None:
            raise InputError(f"prompt {index}: token id {bad} is outside the model's vocabulary "
                             f"of {vocab_size} tokens")
