"""Prompts as an effects run reads them: token ids, each token's span label, batches.

Text prompts are tokenized the engine's way (`engine.batching.tokenize`, BOS prepended); a
prompt set with labelled spans (`ioi`, `needle`, JSONL files with "spans") gives every token its
label by the tokenizer's character offsets (`spans.token_labels`, the rule `span[k]` reads).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from patternlang.effects.metrics import MetricBatch
from patternlang.engine.batching import pad_batch, tokenize
from patternlang.errors import InputError
from patternlang.models.facts import model_facts
from patternlang.probes import Prompts, as_prompts
from patternlang.spans import token_labels
from patternlang.tokenization import token_offsets

Positions = str | None
"""Where an intervention acts: None (every token) or a span label ("END", "IO", ...)."""


@dataclass(frozen=True)
class EffectInputs:
    """A run's prompts: `token_lists` (1-D, CPU), `labels` per prompt (None without spans)."""

    prompts: Prompts
    token_lists: tuple[Tensor, ...]
    labels: tuple[tuple[str, ...] | None, ...]
    pad_id: int
    device: torch.device

    def __len__(self) -> int:
        return len(self.token_lists)

    def batch(self, indices: Sequence[int]) -> MetricBatch:
        padded = pad_batch(self.token_lists, indices, self.pad_id, self.device)
        return MetricBatch(padded.tokens, padded.lengths, tuple(self.labels[i] for i in indices), tuple(indices))

    def batches(self, size: int) -> list[list[int]]:
        """Prompt indices in batches of at most `size`, longest first (little padding)."""
        order = sorted(range(len(self)), key=lambda i: (-self.token_lists[i].numel(), i))
        return [order[i:i + size] for i in range(0, len(order), size)]

    @property
    def longest(self) -> int:
        return max(t.numel() for t in self.token_lists)


def prepare(model: Any, prompts: Any) -> EffectInputs:
    """Tokenize `prompts` (anything `detect` takes in memory, or a bound probe) and label their tokens."""
    if callable(prompts) and not isinstance(prompts, (str, Tensor)) and not hasattr(prompts, "__len__"):
        prompts = prompts(model)  # a bound probe: get_probe("ioi", batch=8)
    prompt_set = prompts if isinstance(prompts, Prompts) else as_prompts(prompts, model)
    facts = model_facts(model)
    token_lists = tokenize(model, prompt_set)
    labels: list[tuple[str, ...] | None] = [None] * len(token_lists)
    if prompt_set.spans is not None and prompt_set.texts is not None:
        for index, (text, spans) in enumerate(zip(prompt_set.texts, prompt_set.spans)):
            if spans is None:
                continue
            ids = token_lists[index].tolist()
            offsets = token_offsets(facts.tokenizer, ids, text) if facts.tokenizer is not None else None
            if offsets is None:
                raise InputError(f"prompt {index} has labelled spans, but the tokenizer gives no character offsets "
                                 "to place them on tokens", hint="use a model with a fast (Hugging Face) tokenizer")
            labels[index] = tuple(token_labels(spans, offsets))
    return EffectInputs(prompt_set, tuple(token_lists), tuple(labels), facts.pad_id, facts.device)


def position_mask(batch: MetricBatch, positions: Positions) -> Tensor:
    """`[batch, pos]` where an intervention acts: every real token, or those labelled `positions`."""
    if positions is None:
        return batch.real
    if not isinstance(positions, str) or not positions:
        raise InputError(f"positions must be None (every token) or a span label such as 'END', not {positions!r}")
    return batch.mask(positions)
