"""The measures: how well one head's attention matches one pattern.

Every measure is a small pure function of one batch: the head's attention
`[batch, head_index, query_pos, key_pos]` and what `prepare_targets` derived once
from the batch's detection tensors `[pattern, batch, query_pos, key_pos]`. Each
returns a *partial sum* `[pattern, head_index]`; the engine adds the partial sums of
every batch and divides by the matching count at the end (target rows for the
row measures, prompts for TransformerLens' `mul` and `abs`). That is why scores do
not depend on how prompts are batched.

Definitions (docs/measures.md has worked examples):

- `mass`: share of the row's attention (renormalised over the keys that count)
  that falls on the pattern's targets, weighted by the pattern's values scaled to a
  row maximum of 1; mean over target rows.
- `tv`: 1 - total variation distance between the renormalised attention row and
  the pattern row normalised to sum 1, i.e. `sum_k min(a_k, p_k)`; mean over target rows.
- `argmax`: share of target rows whose most-attended counted key is a target.
- `mul`, `abs`: TransformerLens' `compute_head_attention_similarity_score`, whole
  matrix per prompt, mean over prompts.

"Keys that count" are the real (non-padding) keys `k <= q`, minus key 0 with
`exclude_bos` and minus `k == q` with `exclude_current_token`. A *target row* is a
real query row whose pattern row has a positive value on a counted key.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from patternlang.settings import MEASURES, MeasureName as Measure  # one list of measure names

__all__ = [
    "Measure", "MEASURES", "MEASURE_DOCS", "ROW_MEASURES", "PROMPT_MEASURES", "Exclusions", "BatchTargets",
    "counted_cells", "prepare_targets", "partial_sums", "wide_dtype",
]

ROW_MEASURES: frozenset[str] = frozenset({"mass", "tv", "argmax"})
"""Measures averaged over target rows (pooled over prompts)."""
PROMPT_MEASURES: frozenset[str] = frozenset({"mul", "abs"})
"""Measures computed per prompt on the whole matrix, then averaged over prompts."""

MEASURE_DOCS: dict[str, str] = {
    "mass": "attention mass on the pattern's targets, weighted by its values (0..1)",
    "tv": "1 - total variation distance to the pattern row normalised to sum 1 (0..1)",
    "argmax": "share of rows whose most-attended key is a target (0..1)",
    "mul": "TransformerLens 'mul': sum(A*D)/sum(A) per prompt, mean over prompts",
    "abs": "TransformerLens 'abs': 1 - round(sum|A-D|/len, 3) per prompt, mean over prompts",
}


def wide_dtype(device: torch.device | str) -> torch.dtype:
    """float64 for sums and counts, except where the device has none (MPS)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


@dataclass(frozen=True, slots=True)
class Exclusions:
    """Which keys a head's attention is not judged on."""

    bos: bool = False
    current: bool = False


def counted_cells(lengths: Tensor, size: int, exclusions: Exclusions) -> Tensor:
    """Bool `[batch, query_pos, key_pos]`: real query and key, `k <= q`, minus exclusions.

    Example: `counted_cells(torch.tensor([2]), 3, Exclusions())[0]` is the lower
    triangle of the 2x2 real block, padded with False to 3x3.
    """
    positions = torch.arange(size, device=lengths.device)
    real = positions[None, :] < lengths[:, None]  # [batch, pos]
    causal = positions[:, None] >= positions[None, :]  # [q, k]
    cells = real[:, :, None] & real[:, None, :] & causal
    if exclusions.bos:
        cells[:, :, 0] = False
    if exclusions.current:
        cells &= ~torch.eye(size, dtype=torch.bool, device=lengths.device)
    return cells


@dataclass(frozen=True, slots=True)
class BatchTargets:
    """Everything the measures need from one batch's detection tensors (built once per batch).

    Fields not needed by the requested measures are None.
    """

    cells: Tensor  # bool [batch, query_pos, key_pos], the counted cells
    lengths: Tensor  # long [batch], real lengths
    detection: Tensor  # float [pattern, batch, query_pos, key_pos], zero outside `cells`
    target_rows: Tensor  # float [pattern], number of target rows in the batch
    row_max_scaled: Tensor | None  # `detection` / its row maximum (mass), as [batch, q*k, pattern]
    row_normalised: Tensor | None  # `detection` / its row sum (tv)
    is_target: Tensor | None  # bool, detection > 0 (argmax)
    detection_by_prompt: Tensor | None  # `detection` as [batch, q*k, pattern] (mul)


def prepare_targets(
    detection: Tensor, lengths: Tensor, exclusions: Exclusions, measures: tuple[str, ...]
) -> BatchTargets:
    """Mask one batch's detection tensors `[pattern, batch, q, k]` and derive what the measures use."""
    size = detection.shape[-1]
    cells = counted_cells(lengths, size, exclusions)
    counted = detection.float() * cells
    # Row measures read a pattern as targets and weights, so only its positive part;
    # TransformerLens' mul and abs take any values as they are.
    positive = counted.clamp_min(0.0)
    row_max = positive.amax(dim=-1, keepdim=True)  # [pattern, batch, q, 1]
    has_target = row_max > 0
    target_rows = has_target.sum(dim=(1, 2, 3)).to(wide_dtype(counted.device))
    row_max_scaled = row_normalised = is_target = detection_by_prompt = None
    if "mass" in measures:
        row_max_scaled = _by_prompt(torch.where(has_target, positive / row_max.clamp_min(1e-30), 0.0))
    if "tv" in measures:
        row_sum = positive.sum(dim=-1, keepdim=True)
        row_normalised = torch.where(has_target, positive / row_sum.clamp_min(1e-30), 0.0)
    if "argmax" in measures:
        is_target = positive > 0
    if "mul" in measures:
        detection_by_prompt = _by_prompt(counted)
    return BatchTargets(cells, lengths, counted, target_rows, row_max_scaled, row_normalised, is_target,
                        detection_by_prompt)


def _by_prompt(detection: Tensor) -> Tensor:
    """`[pattern, batch, q, k]` -> `[batch, q*k, pattern]`: the right operand of a per-prompt matmul
    with attention viewed as `[batch, head_index, q*k]` (a view, no copy, in every layer)."""
    n_patterns, batch, queries, keys = detection.shape
    return detection.permute(1, 2, 3, 0).reshape(batch, queries * keys, n_patterns).contiguous()


def kept_attention(attention: Tensor, cells: Tensor) -> Tensor:
    """Attention `[batch, head_index, q, k]` (as float32) zeroed outside the counted cells."""
    return attention.float() * cells[:, None]


def renormalised_attention(kept: Tensor) -> Tensor:
    """Kept attention with every row rescaled to sum 1 (rows with nothing kept stay zero)."""
    row_sum = kept.sum(dim=-1, keepdim=True)
    return kept / row_sum.clamp_min(1e-30)


def mass_sum(normalised: Tensor, targets: BatchTargets) -> Tensor:
    """Sum over target rows of the weighted attention mass on targets: `[pattern, head_index]`."""
    # einsum("bhqk,nbqk->nh") as one batched matmul over prompts, then a sum over prompts.
    batch, heads, queries, keys = normalised.shape
    per_prompt = normalised.reshape(batch, heads, queries * keys) @ targets.row_max_scaled  # [b, head, pattern]
    return per_prompt.sum(dim=0).T


def tv_sum(normalised: Tensor, targets: BatchTargets) -> Tensor:
    """Sum over target rows of `sum_k min(a_k, p_k)`: `[pattern, head_index]`."""
    rows = []
    scratch = torch.empty_like(normalised)
    for pattern_row in targets.row_normalised:  # [batch, q, k]; patterns are few
        torch.minimum(normalised, pattern_row[:, None], out=scratch)
        rows.append(scratch.sum(dim=(0, 2, 3)))
    return torch.stack(rows)


def argmax_hits(normalised: Tensor, targets: BatchTargets) -> Tensor:
    """Number of target rows whose most-attended counted key is a target: `[pattern, head_index]`."""
    # Uncounted keys get -1 so they never win over a counted key (attention >= 0).
    masked = normalised.masked_fill(~targets.cells[:, None], -1.0)
    top_key = masked.argmax(dim=-1)  # [batch, head, q]
    n_patterns = targets.is_target.shape[0]
    batch, heads, queries = top_key.shape
    is_target = targets.is_target[:, :, None].expand(n_patterns, batch, heads, queries, -1)
    index = top_key[None, ..., None].expand(n_patterns, batch, heads, queries, 1)
    hits = is_target.gather(-1, index).squeeze(-1)  # [pattern, batch, head, q]
    return hits.sum(dim=(1, 3)).to(normalised.dtype)


def mul_prompt_scores(kept: Tensor, targets: BatchTargets) -> Tensor:
    """TransformerLens `mul` per prompt: `[pattern, batch, head_index]`.

    `sum(A' * D) / sum(A')` where `A'` (`kept`) is the attention with excluded cells zeroed.
    """
    batch, heads, queries, keys = kept.shape
    denominator = kept.sum(dim=(-1, -2))  # [batch, head]
    numerator = kept.reshape(batch, heads, queries * keys) @ targets.detection_by_prompt  # [batch, head, pattern]
    return (numerator / denominator[..., None]).permute(2, 0, 1)


def abs_prompt_scores(kept: Tensor, targets: BatchTargets) -> Tensor:
    """TransformerLens `abs` per prompt: `1 - round(sum|A' - D'| / length, 3)`, `[pattern, batch, head_index]`."""
    scratch = torch.empty_like(kept)
    per_pattern = []
    for detection in targets.detection:  # [batch, q, k]
        torch.sub(kept, detection[:, None], out=scratch)
        per_pattern.append(scratch.abs_().sum(dim=(-1, -2)))
    # Same float32 steps as TransformerLens (`mean * size`), so that its rounding to
    # 3 decimals falls the same way; then the rounding itself in float64.
    size = targets.lengths[None, :, None].to(kept.dtype)
    raw = (torch.stack(per_pattern) / (size * size)) * size
    return 1.0 - torch.round(raw.to(wide_dtype(raw.device)), decimals=3)


def partial_sums(attention: Tensor, targets: BatchTargets, measures: tuple[str, ...]) -> dict[str, Tensor]:
    """Every requested measure's partial sum for one batch and one layer: `{measure: [pattern, head_index]}`.

    Row measures sum over target rows, prompt measures sum per-prompt scores over the batch.
    """
    kept = kept_attention(attention, targets.cells)
    sums: dict[str, Tensor] = {}
    if ROW_MEASURES.intersection(measures):
        normalised = renormalised_attention(kept)
        if "mass" in measures:
            sums["mass"] = mass_sum(normalised, targets)
        if "tv" in measures:
            sums["tv"] = tv_sum(normalised, targets)
        if "argmax" in measures:
            sums["argmax"] = argmax_hits(normalised, targets)
    if "mul" in measures:
        sums["mul"] = mul_prompt_scores(kept, targets).sum(dim=1)
    if "abs" in measures:
        sums["abs"] = abs_prompt_scores(kept, targets).sum(dim=1)
    return sums
