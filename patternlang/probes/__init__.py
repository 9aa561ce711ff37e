"""Prompt sets ("probes"): the inputs a model reads while its heads are scored.

A `Prompts` (from `patternlang.prompts`) holds either texts (tokenized later by the engine,
with BOS prepended the TransformerLens way) or token ids (used exactly as given). The named
probes, usable in pattern files as `probe repeated_random(length=64)`:

- `repeated_random`: BOS + random tokens repeated, the standard induction probe;
- `natural`: a small corpus of English text shipped with patternlang;
- `file`: prompts read from a .txt, .jsonl or .json file.

The package by job: `registry` (the probes, their arguments, checks without torch),
`generators` (`repeated_random`, `natural`), `prompt_files` (prompt files, read with a bound),
`stream` (`open_prompts`: prompt files, Parquet and `datasets` folders read lazily, for `detect`).
Importing it does not import torch.

>>> prompts = repeated_random(length=4, repeats=2, batch=1, vocab=(10, 20), bos_id=0)
>>> prompts.tokens
((0, 14, 19, 13, 10, 14, 19, 13, 10),)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from patternlang import prompts as _prompts
from patternlang.probes.prompt_files import MAX_PROMPT_FILE_BYTES, check_prompt_file, from_file
from patternlang.probes.generators import (
    MAX_PROBE_TOKENS,
    NATURAL_FILE,
    REPEATED_RANDOM_VOCAB_START,
    REPEATED_RANDOM_VOCAB_STOP,
    natural,
    repeated_random,
)
from patternlang.probes.stream import PromptSource, open_prompts
from patternlang.probes.registry import (
    PROBES,
    ProbeArg,
    ProbeDefinition,
    build_probe,
    get_probe,
    probe_names,
    validate_probe_args,
)
from patternlang.prompts import MAX_PROMPTS, Prompt, PromptKind, Prompts

__all__ = [
    "MAX_PROBE_TOKENS", "MAX_PROMPTS", "MAX_PROMPT_FILE_BYTES", "NATURAL_FILE", "PROBES",
    "REPEATED_RANDOM_VOCAB_START", "REPEATED_RANDOM_VOCAB_STOP", "Prompt", "PromptKind", "Prompts",
    "ProbeArg", "ProbeDefinition", "PromptSource", "as_prompts", "check_prompt_file", "check_token_ids", "from_file",
    "get_probe", "make_probe", "natural", "open_prompts", "probe_names", "repeated_random", "validate_probe_args",
]


def make_probe(name: str, args: Mapping[str, Any] | Sequence[tuple[str, Any]] = (), model: Any = None) -> Prompts:
    """Build the prompts of a named probe (as written in a pattern file) for a model.

    `args` is a dict or the `(name, value)` pairs of a `ProbeSpec`. With a model, token
    ids are checked against its vocabulary and context.

    >>> len(make_probe("natural", {"batch": 3}))
    3
    """
    prompts = build_probe(name, args, model)
    if model is not None:
        check_token_ids(prompts, model)
    return prompts


def as_prompts(x: Any, model: Any = None) -> Prompts:
    """Turn what a user passes as prompts into a `Prompts`.

    Accepts what `patternlang.prompts.coerce_prompts` accepts (a `Prompts`, a string, a
    list of strings, a list of token-id lists, 1-D tensors or arrays, a flat list of ids
    as one prompt, a `[batch, pos]` or `[pos]` integer tensor or array), or a `Path` to a
    prompt file. With a model, token ids are checked against its vocabulary and context.

    >>> as_prompts(["The cat sat.", "A dog ran."]).kind
    'text'
    >>> as_prompts([[1, 5, 6], [1, 7, 8]]).tokens
    ((1, 5, 6), (1, 7, 8))
    """
    prompts = from_file(x) if isinstance(x, Path) else _prompts.coerce_prompts(x)
    if model is not None:
        check_token_ids(prompts, model)
    return prompts


def check_token_ids(prompts: Prompts, model: Any) -> None:
    """Raise `InputError` when a token-id prompt falls outside the model's vocabulary or context.

    Text prompts are checked when the engine tokenizes them. The checks themselves are
    `patternlang.prompts.check_token_ids`; this reads the limits off `model.cfg`.
    """
    if prompts.tokens is None:
        return
    d_vocab, n_ctx = _prompts.model_limits(model)
    _prompts.check_token_ids(prompts.tokens, d_vocab=d_vocab, n_ctx=n_ctx)
