"""A batch of prompts as the compiler sees it: its features, computed once and shared by every pattern.

Each feature's `[batch, pos]` table comes from its entry in the feature registry
(`syntax/features.py`) and is computed at most once per batch. Token texts are handled
through a per-batch string table: each distinct text gets an integer id, so
`str[k] == str[q]` is an integer comparison, and a string function such as `lower` runs
once per distinct text (a lookup table), never once per position.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..syntax.builtins import FUNCTIONS, MAX_ANCESTOR_DEPTH
from ..syntax.features import FEATURES

if TYPE_CHECKING:
    import torch
else:
    from ..lazy_torch import torch  # a batch's tables are tensors; compiling a pattern needs none

StringSource = Mapping[int, str] | Callable[[list[int]], list[str]]


class BatchFeatures:
    """Features of right-padded prompts `tokens [batch, pos]` with `mask [batch, pos]`."""

    def __init__(self, tokens: torch.Tensor, mask: torch.Tensor, strings: StringSource | None,
                 special_ids: Collection[int], texts: Sequence[Sequence[str]] | None = None,
                 offsets: torch.Tensor | None = None, syntax: Sequence[Any] | None = None,
                 labels: Sequence[Any] | None = None, predictions: Mapping[int | None, torch.Tensor] | None = None):
        self.tokens = tokens
        self.mask = mask
        self.batch, self.n_pos = tokens.shape
        self.device = tokens.device
        self._strings = strings
        self.special_ids = frozenset(int(i) for i in special_ids)
        self.memo: dict[Any, Any] = {}  # per-batch results shared by all patterns (by AST node)
        self._table: list[str] = []
        self._table_index: dict[str, int] = {}
        self._luts: dict[tuple[str, tuple[str, ...]], torch.Tensor] = {}
        self._texts = texts  # per position, where the tokenizer's offsets gave them
        self._offsets = offsets  # [batch, pos, 2] character spans, where given
        self._syntax = syntax  # per prompt: the parser's annotations aligned to its tokens (annotate.Annotations)
        self._labels = labels  # per prompt: its labelled spans (`spans.Labels`) or None
        self._predictions = predictions  # {layer or None: [batch, pos, top] ranked token ids}
        self._tables: dict[str, torch.Tensor] = {}
        self._flags: dict[Callable[[str], bool], torch.Tensor] = {}
        self.positions = torch.arange(self.n_pos, device=self.device)
        # The cells a Program evaluates: every query and key, unless seen through `window`.
        self.query_positions = self.key_positions = self.positions
        self.query_mask = self.key_mask = self.mask

    def window(self, q_start: int, q_stop: int) -> "BatchFeatures":
        """The same batch evaluated on queries `q_start .. q_stop-1` and keys `0 .. q_stop-1`.

        A Program on the window gives `[batch, q_stop - q_start, q_stop]`, the rows q_start ..
        q_stop-1 of the full matrix cut to q_stop keys (every pattern is lower-triangular, so
        nothing is lost). Feature tables, the string table and lookups stay `[batch, pos]` and
        are shared with this batch (computed once); only the pairwise results are the window's,
        in a memo of its own, so that windows never mix.

        >>> f = BatchFeatures.build(torch.tensor([[1, 2, 3, 4]]))
        >>> w = f.window(2, 4)
        >>> (len(w.query_positions), len(w.key_positions), f.n_pos)
        (2, 4, 4)
        """
        if not 0 <= q_start < q_stop <= self.n_pos:
            raise ValueError(f"window [{q_start}, {q_stop}) is not inside 0 .. {self.n_pos}")
        view = copy.copy(self)  # shares the feature tables, string table and lookups (dicts, lists)
        view.memo = {}
        view.query_positions = self.positions[q_start:q_stop]
        view.key_positions = self.positions[:q_stop]
        view.query_mask = self.mask[:, q_start:q_stop]
        view.key_mask = self.mask[:, :q_stop]
        return view

    @property
    def n_queries(self) -> int:
        """Query rows a Program evaluates (all positions, or a window's)."""
        return len(self.query_positions)

    @property
    def n_keys(self) -> int:
        """Key columns a Program evaluates (all positions, or up to a window's last query)."""
        return len(self.key_positions)

    @classmethod
    def build(cls, tokens: torch.Tensor | Sequence[Sequence[int]], mask: torch.Tensor | None = None, *,
              strings: StringSource | None = None, special_ids: Collection[int] = (),
              texts: Sequence[Sequence[str]] | None = None,
              offsets: Sequence[Sequence[tuple[int, int]]] | None = None,
              syntax: Sequence[Any] | None = None, labels: Sequence[Any] | None = None,
              predictions: Mapping[int | None, Any] | None = None,
              device: torch.device | str | None = None) -> "BatchFeatures":
        """Features for `tokens [batch, pos]` (right-padded), `mask` True on real tokens.

        Token texts are needed only by patterns that read them (`str`, `word`, `start`, ...):
        `texts` gives each real position's text (one row per prompt, as long as its real
        tokens), else `strings` maps token ids to their text (a dict, or a function of a
        list of ids). `offsets` give each real position's character span `(start, end)` in
        its prompt's text, for features that need them (`needs` "offsets"). `syntax` gives each
        prompt's parser annotations (`annotate.Annotations`, one value per real token), for the
        parser's features (`needs` "syntax": `pos`, `dep`, `dephead`, ...). `labels` gives each
        prompt's labelled spans (`spans.Labels`: `(label, start, end)`, or None), for `span`;
        `predictions[layer]` the model's ranked top token ids `[batch, pos, top]` (layer None:
        the final logits), for `pred`, `predicted` and `lens_predicted`.

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
        if texts is not None:
            lengths = mask.sum(dim=1).tolist()
            if len(texts) != tokens.shape[0] or any(len(row) != n for row, n in zip(texts, lengths)):
                raise InputError(f"texts give {[len(row) for row in texts]} texts for prompts of "
                                 f"{lengths} tokens")
        spans = None
        if offsets is not None:
            lengths = mask.sum(dim=1).tolist()
            if len(offsets) != tokens.shape[0] or any(len(row) != n for row, n in zip(offsets, lengths)):
                raise InputError(f"offsets give {[len(row) for row in offsets]} spans for prompts of {lengths} tokens")
            spans = torch.zeros(tokens.shape[0], tokens.shape[1], 2, dtype=torch.long)
            for row, row_spans in enumerate(offsets):
                if row_spans:
                    spans[row, : len(row_spans)] = torch.tensor([tuple(span) for span in row_spans], dtype=torch.long)
            spans = spans.to(tokens.device)
        if syntax is not None:
            lengths = mask.sum(dim=1).tolist()
            if len(syntax) != tokens.shape[0] or any(len(row) != n for row, n in zip(syntax, lengths)):
                raise InputError(f"syntax gives annotations of {[len(row) for row in syntax]} tokens for prompts "
                                 f"of {lengths} tokens")
        if labels is not None and len(labels) != tokens.shape[0]:
            raise InputError(f"labels are given for {len(labels)} prompts, the batch holds {tokens.shape[0]}")
        ranked = None
        if predictions is not None:
            ranked = {}
            for layer, ids in predictions.items():
                ids = torch.as_tensor(ids, dtype=torch.long, device=tokens.device)
                if ids.dim() != 3 or tuple(ids.shape[:2]) != tuple(tokens.shape):
                    raise InputError(f"predictions of layer {layer} have shape {tuple(ids.shape)}, expected "
                                     f"[{tokens.shape[0]}, {tokens.shape[1]}, top]")
                ranked[layer] = ids
        return cls(tokens, mask, strings, special_ids, texts, spans, syntax, labels, ranked)

    # ---- strings -------------------------------------------------------------------------
    def intern(self, text: str) -> int:
        index = self._table_index.get(text)
        if index is None:
            index = self._table_index[text] = len(self._table)
            self._table.append(text)
        return index

    def _decode(self, ids: list[int]) -> list[str]:
        if self._strings is None:
            raise InputError("this pattern reads token text (str, word, start, ...), but no token strings "
                             "were given", hint="pass str_tokens=..., or use a model with a tokenizer")
        if callable(self._strings):
            return list(self._strings(ids))
        try:
            return [self._strings[i] for i in ids]
        except KeyError as exc:
            raise InputError(f"no token text given for token id {exc.args[0]}") from None

    def offsets(self) -> torch.Tensor:
        """Each token's character span in its prompt, `[batch, pos, 2]` (start, end)."""
        if self._offsets is None:
            raise InputError("this pattern reads character offsets, but none were given",
                             hint="pass offsets=[[(start, end), ...], ...] for each prompt's tokens")
        return self._offsets

    def annotation(self, field: str) -> torch.Tensor:
        """A parser annotation of every token, `[batch, pos]` long: string fields (`pos`, `dep`,
        ...) as ids in the batch's string table, position fields (`dephead`, `entstart`) as
        positions; padding reads "" or -1."""
        key = "__annotation__" + field
        table = self._tables.get(key)
        if table is None:
            if self._syntax is None:
                raise InputError(f"this pattern reads the parser's {field!r}, but no annotations were given",
                                 hint="give text prompts to detect (it parses them), or syntax=[Annotations, ...]")
            table = torch.full((self.batch, self.n_pos), -1, dtype=torch.long)
            for row, annotations in enumerate(self._syntax):
                values = list(annotations.column(field))
                if values and isinstance(values[0], str):
                    values = [self.intern(value) for value in values]
                    table[row] = self.intern("")
                if values:
                    table[row, : len(values)] = torch.tensor(values, dtype=torch.long)
            table = self._tables[key] = table.to(self.device)
        return table

    def span_labels(self) -> torch.Tensor:
        """Each token's span label as an id in the batch's string table, `[batch, pos]` ("" outside
        every labelled span): a token carries the first labelled span its offsets overlap."""
        table = self._tables.get("__span_labels__")
        if table is None:
            if self._labels is None:
                raise InputError("this pattern reads span labels (span[...]), but the prompts have none",
                                 hint="use a probe that labels its prompts (ioi, needle) or a JSONL file with "
                                      "\"spans\"")
            offsets = self.offsets()
            begin, end = offsets[..., 0], offsets[..., 1]
            table = torch.full((self.batch, self.n_pos), self.intern(""), dtype=torch.long, device=self.device)
            covers = (end > begin) & self.mask
            for row, spans in enumerate(self._labels):
                # In reverse, so that the first span a token overlaps is written last and wins.
                for label, start, stop in reversed(spans or ()):
                    overlap = covers[row] & (begin[row] < stop) & (end[row] > start)
                    table[row] = torch.where(overlap, self.intern(label), table[row])
            table = self._tables["__span_labels__"] = table
        return table

    def predictions(self, layer: int | None) -> torch.Tensor:
        """The model's ranked top predictions at every position, `[batch, pos, top]` long (layer
        None: its final logits; else the logit lens after block `layer`)."""
        if self._predictions is None or layer not in self._predictions:
            where = "its final logits" if layer is None else f"the logit lens after block {layer}"
            raise InputError(f"this pattern reads the model's predictions ({where}), but none were given",
                             hint="score it with `detect`, which runs the model to its logits for such patterns")
        return self._predictions[layer]

    def ancestor_chain(self) -> torch.Tensor:
        """`[batch, pos, MAX_ANCESTOR_DEPTH]` long: `[b, x, d]` is the position reached from x by
        following `dephead` d + 1 times, -1 once the chain leaves the prompt (`ancestor(y, x)` is
        "y is in x's chain"). Linear in the prompt length, unlike a `[pos, pos]` table."""
        table = self._tables.get("__ancestor_chain__")
        if table is None:
            heads = self.table("dephead")                               # [batch, pos], -1: none
            steps = []
            current = self.positions.view(1, -1).expand(self.batch, -1)
            alive = self.mask.clone()
            for _ in range(MAX_ANCESTOR_DEPTH):
                current = heads.gather(1, current.clamp(min=0))
                alive = alive & (current >= 0) & (current < self.n_pos)
                current = torch.where(alive, current, 0)
                steps.append(torch.where(alive, current, -1))
            table = self._tables["__ancestor_chain__"] = torch.stack(steps, dim=-1)
        return table

    def text_ids(self) -> torch.Tensor:
        """Each token's id in the batch's string table, [batch, pos] (padding: an arbitrary id)."""
        table = self._tables.get("__text_ids__")  # in the shared tables, so that windows reuse it
        if table is None:
            if self._texts is not None:
                ids = [[self.intern(text) for text in row] for row in self._texts]
                table = torch.zeros(self.batch, self.n_pos, dtype=torch.long)
                for row, row_ids in enumerate(ids):
                    table[row, : len(row_ids)] = torch.tensor(row_ids, dtype=torch.long)
                table = table.to(self.device)
            else:
                unique = torch.unique(self.tokens[self.mask])
                texts = self._decode(unique.tolist())
                sid_of_unique = torch.tensor([self.intern(t) for t in texts] or [0], dtype=torch.long,
                                             device=self.device)
                where = torch.searchsorted(unique, self.tokens).clamp(max=max(len(unique) - 1, 0))
                table = sid_of_unique[where]
            self._tables["__text_ids__"] = table
        return table

    def text_flags(self, predicate: Callable[[str], bool]) -> torch.Tensor:
        """`predicate` of each token's text, [batch, pos] bool; run once per distinct text."""
        flags = self._flags.get(predicate)
        if flags is None:
            ids = self.text_ids()
            lut = torch.tensor([bool(predicate(text)) for text in self._table] or [False], dtype=torch.bool,
                               device=self.device)
            flags = self._flags[predicate] = lut[ids]
        return flags

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
        """True on the tokens whose id is a special token's (BOS, EOS, ...), [batch, pos]."""
        if "__special__" not in self._tables:
            ids = torch.tensor(sorted(self.special_ids), dtype=torch.long, device=self.device)
            self._tables["__special__"] = torch.isin(self.tokens, ids) & self.mask
        return self._tables["__special__"]

    def table(self, name: str) -> torch.Tensor:
        """The [batch, pos] table behind `name[...]`, from the feature registry, computed once."""
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = FEATURES[name].table(self)
        return table

    def __getattr__(self, name: str) -> torch.Tensor:
        # `features.word`, `features.start`...: a registered feature's table by attribute.
        if name.startswith("_") or name not in FEATURES:
            raise AttributeError(name)
        return self.table(name)
