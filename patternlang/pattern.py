"""`Pattern`: a checked, compiled pattern, and its detection matrix on given tokens."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .compiler import BatchFeatures, Program
from .errors import InputError, Location
from .prompts import token_id_rows
from .settings import Settings
from .syntax import ast

if TYPE_CHECKING:
    import torch
else:
    from .lazy_torch import torch  # a Pattern is checked and compiled without torch; evaluating one needs it

# A [q, k] matrix for people to look at: 2**26 float32 cells are 256 MiB (8192 tokens).
MAX_MATRIX_CELLS = 2**26
_SPECIAL_TEXT = re.compile(r"^(<\|.*\|>|<s>|</s>|<bos>|<eos>|<pad>|<unk>|\[CLS\]|\[SEP\]|\[PAD\])$")


@dataclass(frozen=True, eq=False)
class Pattern:
    """A named pattern, checked and compiled: what `load_pattern` returns.

    `expr` is the linked expression (references to other patterns filled in, shared);
    `program` is compiled from it when the pattern is loaded (`pipeline.compile_pattern`).

    >>> from patternlang import compile_rule
    >>> p = compile_rule("attend k where k == q - 1")
    >>> p.matrix([7, 8, 9]).tolist()
    [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """

    name: str
    doc: str
    source: str
    settings: Settings
    expr: ast.PExpr = field(repr=False)
    program: Program = field(repr=False)
    filename: str | None = None
    loc: Location | None = field(default=None, repr=False)
    rule: str = ""  # the expression and settings as written, re-printed on one line (`unparse`)

    @property
    def needs(self) -> frozenset[str]:
        """What a batch must provide to evaluate this pattern (token ids, texts, ...)."""
        return self.program.needs

    def evaluate(self, features: BatchFeatures) -> torch.Tensor:
        """Detection tensor on a batch: [batch, query_pos, key_pos], float32."""
        return self.program(features)

    def matrix(self, tokens: Any = None, str_tokens: Sequence[str] | Sequence[Sequence[str]] | None = None, *,
               special_ids: Collection[int] | None = None,
               offsets: Sequence[tuple[int, int]] | Sequence[Sequence[tuple[int, int]]] | None = None,
               syntax: Any = None) -> torch.Tensor:
        """The detection matrix for one prompt [q, k] or a batch [batch, q, k].

        `tokens`: token ids (a list, a 1-D or 2-D tensor, or a list of lists); `str_tokens`: the
        tokens' text, needed by rules that read `str`, `word` or `start`. With only `str_tokens`,
        equal strings get equal ids. `offsets`: each token's character span `(start, end)`, for
        features that need them; `syntax`: the prompt's parser annotations (`annotate.Annotations`,
        or a list of them for a batch), for the parser's features (`pos`, `dephead`, ...).
        """
        features, single = _features_for(tokens, str_tokens, special_ids, offsets, syntax)
        result = self.evaluate(features)
        return result[0] if single else result

    @property
    def description(self) -> str:
        """The docstring's first paragraph, on one line."""
        first = self.doc.strip().split("\n\n")[0]
        return " ".join(line.strip() for line in first.splitlines())

    def __repr__(self) -> str:
        from .reprs import pattern_repr

        return pattern_repr(self)

    def _repr_html_(self) -> str:
        """Jupyter's view: name, docstring, rule, settings and the matrix on a sample prompt."""
        from .reprs import pattern_html, safe_html

        return safe_html(pattern_html, self)


def _features_for(tokens: Any, str_tokens: Any, special_ids: Collection[int] | None, offsets: Any = None,
                  syntax: Any = None) -> tuple[BatchFeatures, bool]:
    str_rows = None
    if str_tokens is not None:
        one_prompt = len(str_tokens) == 0 or isinstance(str_tokens[0], str)
        str_rows = [list(str_tokens)] if one_prompt else [list(row) for row in str_tokens]
    if tokens is not None:
        checked, single = token_id_rows(tokens)  # checked: integers, >= 0, within 64 bits
        rows = [list(row) for row in checked]
    elif str_rows is not None:
        vocab: dict[str, int] = {}
        rows = [[vocab.setdefault(s, len(vocab)) for s in row] for row in str_rows]
        single = one_prompt
    else:
        raise InputError("give token ids, token strings, or both")
    if not rows or any(len(row) == 0 for row in rows):
        raise InputError("a prompt has no tokens")
    if str_rows is not None:
        if len(str_rows) != len(rows) or any(len(s) != len(r) for s, r in zip(str_rows, rows)):
            raise InputError(f"str_tokens do not match tokens: {[len(s) for s in str_rows]} strings for "
                             f"{[len(r) for r in rows]} tokens")
        if special_ids is None:
            special_ids = {t for row, texts in zip(rows, str_rows) for t, s in zip(row, texts)
                           if _SPECIAL_TEXT.match(s)}
    width = max(len(r) for r in rows)
    if len(rows) * width * width > MAX_MATRIX_CELLS:
        raise InputError(f"{len(rows)} prompt(s) of up to {width} tokens make a matrix of {len(rows) * width * width:,} "
                         f"cells, more than {MAX_MATRIX_CELLS:,}", hint="show a shorter prompt; score long prompts "
                         "with detect, which never builds more than a batch at a time")
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = True
    offset_rows = None
    if offsets is not None:
        offset_rows = [list(offsets)] if single else [list(row) for row in offsets]
    syntax_rows = None
    if syntax is not None:
        syntax_rows = [syntax] if single else list(syntax)
    return BatchFeatures.build(ids, mask, texts=str_rows, offsets=offset_rows, syntax=syntax_rows,
                               special_ids=special_ids or ()), single
