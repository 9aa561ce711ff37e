"""`AttentionBlocks` providers for tests and benchmarks (`engine/blocked.py`'s protocol).

- `hook_pattern_blocks`: a capture function that runs the model once with `hook_pattern` hooks and
  slices each needed layer's whole pattern: exact, quadratic in memory; the oracle of the block
  path (`detect(..., attention=hook_pattern_blocks)` must equal `attention="pattern"`).
- `RandomAttentionBlocks`: random causal softmaxed attention, made block by block and never kept,
  so no model runs and nothing quadratic is held (the block path's memory benchmark).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from patternlang.engine.forward import run_attention_hooks


class SlicedAttention:
    """Blocks sliced out of whole `[batch, head_index, q, k]` attention patterns, per layer."""

    def __init__(self, patterns: dict[int, Tensor]):
        self.layers = tuple(sorted(patterns))
        self._patterns = patterns

    def block(self, layer: int, q_start: int, q_stop: int) -> Tensor:
        return self._patterns[layer][:, :, q_start:q_stop, :q_stop].float()


def hook_pattern_blocks(model: Any, tokens: Tensor, lengths: Tensor, layers: Sequence[int]) -> SlicedAttention:
    """A `CaptureBlocks` function: one hooked forward pass, every layer in `layers` kept whole.

    >>> from patternlang import detect                                                   # doctest: +SKIP
    >>> detect(model, prompts, "induction_head", attention=hook_pattern_blocks)         # doctest: +SKIP
    """
    patterns: dict[int, Tensor] = {}
    run_attention_hooks(model, tokens, layers,
                        lambda layer, pattern: patterns.__setitem__(layer, pattern.detach().float().clone()))
    return SlicedAttention(patterns)


class RandomAttentionBlocks:
    """Random attention of `n_heads` heads on prompts of `lengths`: each row softmaxed over its
    causal, real keys (zero elsewhere). Rows are made in chunks of `CHUNK` queries seeded by
    (seed, layer, chunk), so a row is the same whichever block asks for it (blocks of any size
    agree with one whole block)."""

    CHUNK = 16

    def __init__(self, lengths: Tensor, n_heads: int, layers: Sequence[int], seed: int = 0):
        self.lengths = lengths.to("cpu", torch.long)
        self.n_heads = n_heads
        self.layers = tuple(layers)
        self.seed = seed

    def block(self, layer: int, q_start: int, q_stop: int) -> Tensor:
        out = torch.zeros(len(self.lengths), self.n_heads, q_stop - q_start, q_stop)
        first = q_start // self.CHUNK * self.CHUNK
        for chunk_start in range(first, q_stop, self.CHUNK):
            chunk_stop = chunk_start + self.CHUNK
            generator = torch.Generator().manual_seed((self.seed * 1_000_003 + layer) * 1_000_003 + chunk_start)
            scores = torch.randn(len(self.lengths), self.n_heads, self.CHUNK, chunk_stop, generator=generator)
            queries = torch.arange(chunk_start, chunk_stop)[:, None]
            keys = torch.arange(chunk_stop)[None, :]
            allowed = (keys <= queries)[None] & (keys[None] < self.lengths[:, None, None])  # [batch, q, k]
            scores.masked_fill_(~allowed[:, None], -torch.inf)
            rows = torch.softmax(scores, dim=-1).nan_to_num_(0.0)  # a row with no real key: zero
            low, high = max(q_start, chunk_start), min(q_stop, chunk_stop)
            keep = min(chunk_stop, q_stop)  # keys beyond q_stop are k > q for these rows: zero
            out[:, :, low - q_start: high - q_start, :keep] = rows[:, :, low - chunk_start: high - chunk_start, :keep]
        return out


def random_attention_blocks(n_heads: int, seed: int = 0) -> Callable[..., RandomAttentionBlocks]:
    """A `CaptureBlocks` function that ignores the model and gives `RandomAttentionBlocks`."""
    def capture(model: Any, tokens: Tensor, lengths: Tensor, layers: Sequence[int]) -> RandomAttentionBlocks:
        return RandomAttentionBlocks(lengths, n_heads, layers, seed)

    capture.__name__ = "random_attention_blocks"
    return capture
