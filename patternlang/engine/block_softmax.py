"""The arithmetic of the block path (attention_blocks.py): a block of query rows' attention from the
kept post-rotary queries and keys, exactly as eager attention computes it (grouped-query heads,
scaling, soft-capping, causal, padding and sliding-window masks, float32 softmax)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["_LayerFacts", "_block_softmax", "_grouped_matmul", "_key_start"]


@dataclass(frozen=True, slots=True)
class _LayerFacts:
    scaling: float
    sliding_window: int | None
    softcap: float | None


def _key_start(facts: _LayerFacts, q_start: int) -> int:
    """The first key any query from `q_start` on may see (only the window's keys on a sliding layer)."""
    return 0 if facts.sliding_window is None else max(0, q_start - facts.sliding_window + 1)


def _grouped_matmul(left: Tensor, right: Tensor) -> Tensor:
    """`left [batch, heads, m, n] @ right [batch, kv_heads, n, p]` with each kv head shared by
    `heads // kv_heads` query heads (grouped-query attention), without repeating `right`."""
    batch, n_heads, m, n = left.shape
    n_kv = right.shape[1]
    grouped = left.reshape(batch, n_kv, n_heads // n_kv, m, n)
    return torch.matmul(grouped, right.unsqueeze(2)).reshape(batch, n_heads, m, right.shape[-1])


def _block_softmax(query: Tensor, key: Tensor, lengths: Tensor, facts: _LayerFacts,
                   q_start: int, q_stop: int) -> tuple[Tensor, int]:
    """float32 `[batch, heads, q_stop - q_start, q_stop - k_start]` and `k_start`: the softmax of
    queries q_start .. q_stop-1 over keys k_start .. q_stop-1, the same arithmetic as HF's and the
    bridge's eager attention (logits times scaling, soft-capping, masked, float32 softmax).

    Masked cells (k > q, padding keys, outside the window) are zero; a row with no key it may see
    (a padding query past the window of every real key) is all zero."""
    k_start = _key_start(facts, q_start)
    # In place where eager attention makes a new tensor (same values): a block holds two copies, not five.
    logits = _grouped_matmul(query[:, :, q_start:q_stop], key[:, :, k_start:q_stop].transpose(-1, -2))
    logits.mul_(facts.scaling)
    if facts.softcap is not None:
        logits.div_(facts.softcap).tanh_().mul_(facts.softcap)
    device = logits.device
    q_pos = torch.arange(q_start, q_stop, device=device).view(-1, 1)
    k_pos = torch.arange(k_start, q_stop, device=device).view(1, -1)
    allowed = k_pos <= q_pos
    if facts.sliding_window is not None:
        allowed = allowed & (k_pos > q_pos - facts.sliding_window)
    allowed = allowed.unsqueeze(0) & (k_pos.unsqueeze(0) < lengths.view(-1, 1, 1))  # [batch, q, k]
    allowed = allowed.unsqueeze(1)
    logits.masked_fill_(~allowed, float("-inf"))
    probabilities = torch.softmax(logits, dim=-1, dtype=torch.float32)
    del logits
    blind = ~allowed.any(dim=-1, keepdim=True)
    if bool(blind.any()):  # softmax of a row of -inf is NaN: such a row attends nothing
        probabilities.masked_fill_(blind, 0.0)
    return probabilities, k_start
