"""The one place prompts and token ids are coerced and checked.

Everything a user can pass as prompts (a string, a list of strings, token-id lists, tuples,
1-D or 2-D tensors, numpy arrays, a `Prompts`) goes through this module before anything
else reads it, and every check on token ids lives here: empty prompts, ids that are not
integers, negative ids, ids beyond 64 bits, ids outside a vocabulary, prompts longer than a
model's context. Probes, prompt files and the engine's batching all call it.

The module imports neither torch nor numpy: it recognises their arrays when the caller has
already imported them, so the pattern checker can use it without loading torch.

>>> coerce_prompts([[1, 5, 6], (1, 7)]).tokens
((1, 5, 6), (1, 7))
>>> as_token_ids([3, 4], index=0)
(3, 4)
>>> check_token_ids([(1, 2, 70)], d_vocab=50)
Traceback (most recent call last):
...
patternlang.errors.InputError: error: prompt 0, position 2: token id 70 is outside the model's vocabulary of 50 tokens (ids 0..49)
hint: token ids must come from the model's own tokenizer
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal

from patternlang.errors import InputError
from patternlang.spans import check_spans

PromptKind = Literal["text", "tokens"]
TokenIds = tuple[int, ...]
Prompt = str | TokenIds

MAX_TOKEN_ID = 2**63 - 1
"""The largest token id that fits the engine's int64 tensors."""
MAX_PROMPTS = 1_000_000
"""Most prompts one call (or one prompt file) may hold."""
MAX_PROMPT_TOKENS = 2**20
"""Most token ids one prompt may hold, whatever the model (no model has a longer context)."""
MAX_PROMPT_CHARS = 1_000_000
"""Most characters one text prompt may hold (tokenizing more would take long and cannot fit a context)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Prompts:
    """A named set of prompts: exactly one of `texts` or `tokens`, every prompt checked.

    >>> p = Prompts(texts=("The cat sat.", "A dog ran."), name="pets")
    >>> len(p), p.kind, list(p)[0]
    (2, 'text', 'The cat sat.')
    """

    texts: tuple[str, ...] | None = None
    tokens: tuple[TokenIds, ...] | None = None
    name: str = "prompts"
    description: str = ""
    spans: tuple[Any, ...] | None = None  # per text prompt: its labelled spans (`spans.Labels`) or None

    def __post_init__(self) -> None:
        if (self.texts is None) == (self.tokens is None):
            raise InputError("a prompt set needs exactly one of texts= or tokens=")
        if isinstance(self.texts, str):
            raise InputError("texts= takes a sequence of prompts; write texts=(text,) for one prompt")
        if self.texts is not None:
            items: tuple[Prompt, ...] = tuple(check_text(text, index)
                                              for index, text in enumerate(_bounded(self.texts)))
            object.__setattr__(self, "texts", items)
        else:
            items = tuple(as_token_ids(row, index) for index, row in enumerate(_bounded(self.tokens)))
            object.__setattr__(self, "tokens", items)
        if not items:
            raise InputError(f"the prompt set {self.name!r} is empty", hint="give at least one prompt")
        if self.spans is not None:
            object.__setattr__(self, "spans", _checked_spans(self.spans, self.texts))

    @classmethod
    def _already_checked(cls, *, texts: tuple[str, ...] | None = None, tokens: tuple[TokenIds, ...] | None = None,
                         name: str, description: str = "", spans: tuple[Any, ...] | None = None) -> Prompts:
        """A set built from prompts `check_text` / `as_token_ids` passed, without checking them again.

        For readers and generators in this package that check every prompt as they make
        it: a million-prompt file is then not checked twice.
        """
        prompts = object.__new__(cls)
        for field, value in (("texts", texts), ("tokens", tokens), ("name", name), ("description", description),
                             ("spans", spans)):
            object.__setattr__(prompts, field, value)
        if (texts is None) == (tokens is None) or not (texts or tokens):
            raise InputError(f"the prompt set {name!r} is empty", hint="give at least one prompt")
        return prompts

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

    def take(self, n: int) -> Prompts:
        """The first `n` prompts, as a new set with the same name."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InputError(f"cannot take {n!r} prompts; take at least 1")
        if self.texts is not None:
            spans = self.spans[:n] if self.spans is not None else None
            return Prompts(texts=self.texts[:n], name=self.name, description=self.description, spans=spans)
        if self.tokens is None:
            raise InputError("a prompt set needs exactly one of texts= or tokens=")
        return Prompts(tokens=self.tokens[:n], name=self.name, description=self.description)

    def as_tensor(self) -> Any:
        """Token-id prompts of one length as a `[batch, pos]` long tensor."""
        if self.tokens is None:
            raise InputError(f"{self.name!r} holds text; tokenize it with the model first")
        lengths = {len(row) for row in self.tokens}
        if len(lengths) != 1:
            raise InputError(f"{self.name!r} holds prompts of {len(lengths)} different lengths; "
                             "the engine pads them, as_tensor cannot")
        import torch

        return torch.tensor(self.tokens, dtype=torch.long)

    def __repr__(self) -> str:
        from patternlang.reprs import prompts_repr

        return prompts_repr(self)

    def _repr_html_(self) -> str:
        """Jupyter's view: count, lengths (min, median, max) and two prompts, cut short."""
        from patternlang.reprs import prompts_html, safe_html

        return safe_html(prompts_html, self)


# ---------------------------------------------------------------------------
# One prompt


def _checked_spans(spans: Any, texts: tuple[str, ...] | None) -> tuple[Any, ...]:
    """Each text prompt's labelled spans checked against its text (`spans.check_spans`)."""

    if texts is None:
        raise InputError("labelled spans need text prompts (they are character ranges of the text)")
    spans = tuple(spans)
    if len(spans) != len(texts):
        raise InputError(f"spans are given for {len(spans)} prompts, but the set holds {len(texts)}")
    return tuple(None if row is None else check_spans(row, text, index)
                 for index, (row, text) in enumerate(zip(spans, texts)))


def check_text(text: Any, index: int) -> str:
    """A text prompt, checked: a non-empty string of at most `MAX_PROMPT_CHARS` characters.

    >>> check_text("The cat", 0)
    'The cat'
    """
    if not isinstance(text, str):
        raise InputError(f"prompt {index} is {describe_value(text)}, not text")
    if not text:
        raise InputError(f"prompt {index} is empty")
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError(f"prompt {index} has {len(text):,} characters, more than the {MAX_PROMPT_CHARS:,} "
                         "a prompt may have (no model's context holds that much)",
                         hint="split it into several prompts")
    return text


def as_token_ids(item: Any, index: int) -> TokenIds:
    """One prompt of token ids (a list, tuple, 1-D tensor or numpy array) as a checked tuple of ints.

    Refuses text, empty prompts, values that are not integers (floats, booleans), negative
    ids, ids beyond 64 bits and prompts of more than `MAX_PROMPT_TOKENS` ids. `index` is
    the prompt's place in its set, counted from 0, for the error messages.

    >>> as_token_ids((1, 2, 3), index=0)
    (1, 2, 3)
    >>> as_token_ids([1, 2**70], index=4)
    Traceback (most recent call last):
    ...
    patternlang.errors.InputError: error: prompt 4, position 1: token id 1180591620717411303424 does not fit in 64 bits
    hint: token ids are indices into the model's vocabulary
    """
    if type(item) in (tuple, list):  # the common case first: no tensor or array checks
        values = tuple(item) if len(item) <= MAX_PROMPT_TOKENS else item[: MAX_PROMPT_TOKENS + 1]
        return _checked_ints(values, index)
    if _is_tensor(item) or _is_ndarray(item):
        return tuple(as_token_tensor(item, index).tolist())
    if isinstance(item, (str, bytes, bytearray)):
        raise InputError(f"prompt {index} is text inside a set of token-id prompts",
                         hint="give all prompts as text, or all as lists of token ids")
    if isinstance(item, Mapping) or not hasattr(item, "__iter__"):
        raise InputError(f"prompt {index} is {describe_value(item)}, not a list of token ids")
    return _checked_ints(tuple(islice(item, MAX_PROMPT_TOKENS + 1)), index)


def _checked_ints(values: tuple[Any, ...], index: int) -> TokenIds:
    _check_count(len(values), index)
    if not all(type(value) is int for value in values):  # the fast path is plain ints
        values = tuple(_integer(value, index, position) for position, value in enumerate(values))
    low, high = min(values), max(values)
    if low < 0 or high > MAX_TOKEN_ID:
        bad = low if low < 0 else high
        _raise_out_of_range(bad, index, values.index(bad))
    return values


def as_token_tensor(item: Any, index: int) -> Any:
    """One prompt of token ids as a checked 1-D `torch.long` tensor on the CPU (for the engine).

    Takes what `as_token_ids` takes; tensors and numpy arrays are checked without a Python
    loop over their values.
    """
    import torch

    if _is_ndarray(item):
        item = _ndarray_to_tensor(item, index)
    if not isinstance(item, torch.Tensor):
        return torch.tensor(as_token_ids(item, index), dtype=torch.long)
    if item.dim() != 1 or item.is_floating_point() or item.is_complex() or item.dtype == torch.bool:
        raise InputError(f"prompt {index}: a tensor of token ids must be 1-D integers, "
                         f"got {item.dtype} of shape {tuple(item.shape)}")
    _check_count(item.numel(), index)
    try:
        ids = item.detach().to("cpu")
    except (RuntimeError, NotImplementedError) as exc:  # meta or otherwise unreadable tensors
        raise InputError(f"prompt {index}: cannot read the token ids of this tensor ({exc})") from None
    if ids.dtype == getattr(torch, "uint64", None):
        signed = ids.view(torch.int64)  # ids of 2**63 and more read as negative here
        if bool((signed < 0).any()):
            position = int((signed < 0).nonzero()[0, 0])
            _raise_out_of_range(2**63, index, position, shown=f"{int(ids[position].item())}")
        ids = signed
    ids = ids.to(torch.long)
    negative = ids < 0
    if bool(negative.any()):
        position = int(negative.nonzero()[0, 0])
        _raise_out_of_range(int(ids[position]), index, position)
    return ids


def _ndarray_to_tensor(array: Any, index: int) -> Any:
    import numpy
    import torch

    if array.ndim != 1:
        raise InputError(f"prompt {index}: an array of token ids must be 1-D, got shape {array.shape}")
    if array.dtype.kind == "O":  # Python objects: checked one by one
        return torch.tensor(as_token_ids(array.tolist(), index), dtype=torch.long)
    if array.dtype.kind not in "iu":
        raise InputError(f"prompt {index}: token ids must be integers, got an array of {array.dtype}")
    _check_count(array.size, index)
    if array.dtype.kind == "u" and array.dtype.itemsize >= 8 and int(array.max()) > MAX_TOKEN_ID:
        position = int(numpy.argmax(array > MAX_TOKEN_ID))
        _raise_out_of_range(int(array[position]), index, position)
    return torch.from_numpy(numpy.ascontiguousarray(array, dtype=numpy.int64))


def _integer(value: Any, index: int, position: int) -> int:
    # ints, numpy integers and 0-d integer tensors; never floats, booleans or text
    if isinstance(value, (bool, str, bytes)) or getattr(value, "dtype", None) is not None and "bool" in str(value.dtype):
        raise InputError(f"prompt {index}, position {position}: token ids must be integers, found {_short(value)}")
    try:
        return operator.index(value)
    except TypeError:
        raise InputError(f"prompt {index}, position {position}: token ids must be integers, "
                         f"found {_short(value)}") from None


def _check_count(count: int, index: int) -> None:
    if count == 0:
        raise InputError(f"prompt {index} is empty")
    if count > MAX_PROMPT_TOKENS:
        raise InputError(f"prompt {index} has more than {MAX_PROMPT_TOKENS:,} token ids, longer than any "
                         "model's context", hint="split it into several prompts")


def _raise_out_of_range(value: int, index: int, position: int, shown: str | None = None) -> None:
    where = f"prompt {index}, position {position}"
    if value < 0:
        raise InputError(f"{where}: token ids cannot be negative, found {show_int(value)}")
    raise InputError(f"{where}: token id {shown or show_int(value)} does not fit in 64 bits",
                     hint="token ids are indices into the model's vocabulary")


# ---------------------------------------------------------------------------
# Many prompts


def split_prompts(prompts: Any) -> list[Any]:
    """What a user passes as prompts, as a list with one entry per prompt (each still unchecked).

    A string is one prompt; a flat list of integers is one prompt of token ids; a 1-D
    tensor or array is one prompt, a 2-D one a prompt per row; any other iterable is a
    prompt per item. Refuses empty inputs, mappings, bytes and more than `MAX_PROMPTS`
    prompts.

    >>> split_prompts([1, 2, 3]), split_prompts("hi"), split_prompts(["a", [1, 2]])
    ([[1, 2, 3]], ['hi'], ['a', [1, 2]])
    """
    if isinstance(prompts, Prompts):
        return list(prompts.items)
    if isinstance(prompts, str):
        return [prompts]
    if _is_tensor(prompts) or _is_ndarray(prompts):
        dims = prompts.dim() if _is_tensor(prompts) else prompts.ndim
        if dims == 1:
            return [prompts]
        if dims != 2:
            raise InputError(f"a tensor of prompts must be [batch, pos] or [pos], got shape {tuple(prompts.shape)}")
        if not _holds_integers(prompts):
            raise InputError(f"a tensor of prompts must hold integer token ids, not {prompts.dtype}")
        if prompts.shape[0] == 0:
            raise InputError("no prompts given: the tensor has no rows")
        if prompts.shape[0] > MAX_PROMPTS:
            raise _too_many_prompts()
        return list(prompts)
    if isinstance(prompts, (bytes, bytearray, Mapping)) or not hasattr(prompts, "__iter__"):
        raise InputError(f"cannot use {type(prompts).__name__} as prompts",
                         hint="pass strings, lists of token ids, a [batch, pos] tensor, a file Path, or a probe")
    items = list(islice(prompts, MAX_PROMPTS + 1))
    if not items:
        raise InputError("no prompts given", hint="pass at least one string or list of token ids")
    if len(items) > MAX_PROMPTS:
        raise _too_many_prompts()
    if all(_is_integer_scalar(item) for item in items):
        return [items]  # a flat list of ids is one prompt
    return items


def coerce_prompts(prompts: Any) -> Prompts:
    """Anything `split_prompts` takes, as a checked `Prompts`: all text, or all token ids.

    >>> coerce_prompts(["The cat sat.", "A dog ran."]).kind
    'text'
    >>> coerce_prompts("")
    Traceback (most recent call last):
    ...
    patternlang.errors.InputError: error: the prompt is empty
    """
    if isinstance(prompts, Prompts):
        return prompts
    if isinstance(prompts, str):
        if not prompts:
            raise InputError("the prompt is empty")
        return Prompts(texts=(prompts,), name="prompt")
    items = split_prompts(prompts)
    is_text = [isinstance(item, str) for item in items]
    if all(is_text):
        return Prompts(texts=tuple(items), name="prompts")
    if any(is_text):
        first_text, other = is_text.index(True), is_text.index(False)
        raise InputError(f"prompt {first_text} is text but prompt {other} is not; give all text or all token ids")
    return Prompts(tokens=tuple(items), name="tokens")


def token_id_rows(tokens: Any) -> tuple[list[TokenIds], bool]:
    """Token ids of one prompt or of several, as checked rows, and whether they were one prompt.

    One prompt: a flat list of integers or a 1-D tensor or array. Several: a list of such
    lists, or a `[batch, pos]` tensor or array. For `Pattern.matrix(tokens=...)`, where text
    is not a prompt but a mistake for `str_tokens=`.

    >>> token_id_rows([4, 5]), token_id_rows([[4], [5, 6]])
    (([(4, 5)], True), ([(4,), (5, 6)], False))
    """
    if isinstance(tokens, (str, bytes, bytearray)):
        raise InputError(f"tokens must be token ids, not {describe_value(tokens)}",
                         hint="for token texts, pass str_tokens=[...]")
    if _is_tensor(tokens) or _is_ndarray(tokens):
        single = (tokens.dim() if _is_tensor(tokens) else tokens.ndim) == 1
        items = split_prompts(tokens)
    else:
        if isinstance(tokens, Mapping) or not hasattr(tokens, "__iter__"):
            raise InputError(f"tokens must be a list of token ids, not {describe_value(tokens)}")
        listed = list(islice(tokens, MAX_PROMPTS + 1))
        single = bool(listed) and all(_is_integer_scalar(value) for value in listed)
        items = split_prompts(listed)
    rows = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            raise InputError(f"prompt {index}: token ids must be integers, found the text {_short(item)}",
                             hint="for token texts, pass str_tokens=[...]")
        rows.append(as_token_ids(item, index))
    return rows, single


def check_token_ids(token_lists: Sequence[Any], *, d_vocab: int | None = None, n_ctx: int | None = None,
                    vocabulary: str = "the model's", indices: Sequence[int] | None = None) -> None:
    """Check prompts of token ids (tuples or 1-D tensors) against a vocabulary size and a context length.

    Raises `InputError` naming the prompt (counting from 0), the position and the id for
    an empty prompt, an id below 0 or at least `d_vocab`, or a prompt longer than `n_ctx`.
    A limit that is None (or not a positive integer) is not checked. `vocabulary` names
    whose vocabulary it is, for the message; `indices` the prompts' numbers in the caller's
    list when `token_lists` is part of it.

    >>> check_token_ids([(1, 2, 3)], d_vocab=10, n_ctx=3)
    >>> check_token_ids([(1, 2, 3)], n_ctx=2)
    Traceback (most recent call last):
    ...
    patternlang.errors.InputError: error: prompt 0 has 3 tokens, more than the model's context of 2
    hint: shorten or split the prompt
    """
    d_vocab = d_vocab if _is_positive_int(d_vocab) else None
    n_ctx = n_ctx if _is_positive_int(n_ctx) else None
    for place, tokens in enumerate(token_lists):
        index = indices[place] if indices is not None else place
        count = tokens.numel() if _is_tensor(tokens) else len(tokens)
        if count == 0:
            raise InputError(f"prompt {index} is empty (no tokens)")
        if n_ctx is not None and count > n_ctx:
            raise InputError(f"prompt {index} has {count} tokens, more than the model's context of {n_ctx}",
                             hint="shorten or split the prompt")
        low, high = (int(tokens.min()), int(tokens.max())) if _is_tensor(tokens) else (min(tokens), max(tokens))
        if low < 0 or high > MAX_TOKEN_ID:
            bad = low if low < 0 else high
            _raise_out_of_range(bad, index, _position(tokens, bad))
        if d_vocab is not None and high >= d_vocab:
            raise InputError(f"prompt {index}, position {_position(tokens, high)}: token id {high} is outside "
                             f"{vocabulary} vocabulary of {d_vocab} tokens (ids 0..{d_vocab - 1})",
                             hint="token ids must come from the model's own tokenizer")


def model_limits(model: Any) -> tuple[int | None, int | None]:
    """`(d_vocab, n_ctx)` of a TransformerLens-style model (`model.cfg`), None where unknown."""
    cfg = getattr(model, "cfg", None)
    d_vocab, n_ctx = getattr(cfg, "d_vocab", None), getattr(cfg, "n_ctx", None)
    return (d_vocab if _is_positive_int(d_vocab) else None, n_ctx if _is_positive_int(n_ctx) else None)


def describe_value(value: Any) -> str:
    """A short description of a value for error messages: `a string ('64')`, `a number (6.5)`."""
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, str):
        return f"a string ({_clip(repr(value))})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, int):
        return f"an integer ({show_int(value)})"
    return f"a {type(value).__name__}"


def show_int(value: int) -> str:
    """An integer for a message: its digits, or its size when it is too long to print (or to convert)."""
    if abs(value).bit_length() > 200:  # str() of a huge int is slow, and refused past 4300 digits
        return f"{'-' if value < 0 else ''}<an integer of {abs(value).bit_length()} bits>"
    return str(value)


# ---------------------------------------------------------------------------
# Helpers

def _bounded(items: Any) -> Any:
    if isinstance(items, (tuple, list)) and len(items) <= MAX_PROMPTS:
        return items
    if isinstance(items, (str, bytes, Mapping)) or not hasattr(items, "__iter__"):
        raise InputError(f"a prompt set takes a sequence of prompts, not {describe_value(items)}")
    bounded = list(islice(items, MAX_PROMPTS + 1))
    if len(bounded) > MAX_PROMPTS:
        raise _too_many_prompts()
    return bounded


def _too_many_prompts() -> InputError:
    return InputError(f"more than {MAX_PROMPTS:,} prompts in one set",
                      hint="split them into several runs and join the scores")


def _position(tokens: Any, value: int) -> int:
    if _is_tensor(tokens):
        return int((tokens == value).nonzero()[0, 0])
    return list(tokens).index(value)


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_integer_scalar(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if _is_tensor(value):
        return value.dim() == 0 and not (value.is_floating_point() or value.is_complex()) and "bool" not in str(value.dtype)
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.integer)


def _holds_integers(array: Any) -> bool:
    if _is_tensor(array):
        return not (array.is_floating_point() or array.is_complex()) and "bool" not in str(array.dtype)
    return array.dtype.kind in "iuO"


def _is_tensor(value: Any) -> bool:
    # Without torch imported, nothing can be a tensor: no need to import it to ask.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _is_ndarray(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray)


def _short(value: Any) -> str:
    return _clip(repr(value))


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
