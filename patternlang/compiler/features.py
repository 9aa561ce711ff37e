"""Token features of a batch of prompts, computed once per batch and shared by every pattern.

Token strings are handled through a per-batch string table: each distinct string gets an
integer id, so `str[k] == str[q]` is an integer comparison, and a string function such as
`lower` runs once per distinct string (a lookup table), never once per position.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import torch

from ..errors import InputError
from ..syntax.builtins import FUNCTIONS, starts_word

StringSource = Mapping[int, str] | Callable[[list[int]], list[str]]


class BatchFeatures:
    """Features of right-padded prompts `tokens [batch, pos]` with `mask [batch, pos]`."""

    def __init__(self, tokens: torch.Tensor, mask: torch.Tensor, strings: StringSource | None,
                 special_ids: Collection[int]):
        self.tokens = tokens
        self.mask = mask
        self.batch, self.n_pos = tokens.shape
        self.device = tokens.device
        self._strings = strings
        self.special_ids = frozenset(int(i) for i in special_ids)
        self.memo: dict[Any, Any] = {}  # per-batch results shared by all patterns (by AST node)
        self._table: list[str] = []
        self._table_index: dict[str, int] = {}
        self._luts: dict[tuple, torch.Tensor] = {}
        self._token_sid: torch.Tensor | None = None
        self._word: torch.Tensor | None = None
        self._start: torch.Tensor | None = None
        self._special: torch.Tensor | None = None
        self.positions = torch.arange(self.n_pos, device=self.device)

    @classmethod
    def build(cls, tokens: torch.Tensor | Sequence[Sequence[int]], mask: torch.Tensor | None = None, *,
              strings: StringSource | None = None, special_ids: Collection[int] = (),
              device: torch.device | str | None = None) -> "BatchFeatures":
        """Features for `tokens [batch, pos]` (right-padded), `mask` True on real tokens.

        `strings` maps token ids to their text (a dict, or a function of a list of ids);
        it is needed only by patterns that read `str`, `word` or `start`.

        >>> f = BatchFeatures.build(torch.tensor([[1, 5, 5]]), strings={1: "<s>", 5: " a"})
        >>> f.word.tolist()
        [[0, 1, 2]]
        """
        tokens = torch.as_tensor(tokens, dtype=torch.long)
        if tokens.dim() == 1:
            tokens = tokens.unsqueeze(0)
        if tokens.dim() != 2:
            raise InputError(f"tokens must be [batch, pos], got shape {tuple(tokens.shape)}")
        if device is not None:
            tokens = tokens.to(device)
        if mask is None:
            mask = torch.ones_like(tokens, dtype=torch.bool)
        else:
            mask = torch.as_tensor(mask, dtype=torch.bool, device=tokens.device)
            if mask.shape != tokens.shape:
                raise InputError(f"mask shape {tuple(mask.shape)} differs from tokens shape {tuple(tokens.shape)}")
        return cls(tokens, mask, strings, special_ids)

    # ---- strings -------------------------------------------------------------------------
    def intern(self, text: str) -> int:
        index = self._table_index.get(text)
        if index is None:
            index = self._table_index[text] = len(self._table)
            self._table.append(text)
        return index

    def _decode(self, ids: list[int]) -> list[str]:
        if self._strings is None:
            raise InputError("this pattern reads token text (str[...], word[...] or start[...]), but no token "
                             "strings were given", hint="pass str_tokens=..., or use a model with a tokenizer")
        if callable(self._strings):
            return list(self._strings(ids))
        try:
            return [self._strings[i] for i in ids]
        except KeyError as exc:
            raise InputError(f"no token string given for token id {exc.args[0]}") from None

    @property
    def token_sid(self) -> torch.Tensor:
        """String-table id of every token, [batch, pos] (padding maps to an arbitrary id)."""
        if self._token_sid is None:
            unique = torch.unique(self.tokens[self.mask])
            texts = self._decode(unique.tolist())
            sid_of_unique = torch.tensor([self.intern(t) for t in texts] or [0], dtype=torch.long,
                                         device=self.device)
            where = torch.searchsorted(unique, self.tokens).clamp(max=max(len(unique) - 1, 0))
            self._token_sid = sid_of_unique[where]
        return self._token_sid

    def lut(self, function: str, *literal: str) -> torch.Tensor:
        """A lookup table over the string table: `function` applied to every distinct string."""
        key = (function, literal)
        table = self._luts.get(key)
        if table is None or len(table) < len(self._table):
            apply = FUNCTIONS[function].apply
            snapshot = list(self._table)
            results = [apply(text, *literal) for text in snapshot]
            if FUNCTIONS[function].result == "string":
                values = [self.intern(r) for r in results]
                dtype = torch.long
            else:
                values, dtype = results, torch.bool
            table = torch.tensor(values, dtype=dtype, device=self.device)
            self._luts[key] = table
        return table

    # ---- per-position features ------------------------------------------------------------------
    @property
    def special(self) -> torch.Tensor:
        if self._special is None:
            ids = torch.tensor(sorted(self.special_ids), dtype=torch.long, device=self.device)
            self._special = torch.isin(self.tokens, ids) & self.mask
        return self._special

    @property
    def start(self) -> torch.Tensor:
        """True where a word starts: the first token, special tokens and the token after
        one, and tokens whose text begins with whitespace or a marker such as Ġ or ▁."""
        if self._start is None:
            sid = self.token_sid
            begins = torch.tensor([starts_word(t) for t in self._table] or [False], dtype=torch.bool,
                                  device=self.device)[sid]
            special = self.special
            after_special = torch.zeros_like(special)
            after_special[:, 1:] = special[:, :-1]
            first = self.positions.unsqueeze(0) == 0
            self._start = (begins | special | after_special | first) & self.mask
        return self._start

    @property
    def word(self) -> torch.Tensor:
        """Index of the word each token belongs to, [batch, pos]."""
        if self._word is None:
            self._word = torch.cumsum(self.start.long(), dim=1) - 1
        return self._word

    def feature_table(self, name: str) -> torch.Tensor:
        """The [batch, pos] table behind `name[...]`."""
        if name == "tok":
            return self.tokens
        if name == "str":
            return self.token_sid
        return getattr(self, name)
