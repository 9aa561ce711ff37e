"""The measures' arithmetic on one layer's attention: per-prompt partial sums (`mass`, `tv`, `argmax`)
and the parts of the per-prompt means (`mul`, `abs`), each against a batch's `BatchTargets`."""

from __future__ import annotations


import torch
from torch import Tensor

from patternlang.engine.targets import BatchTargets, wide_dtype


def kept_attention(attention: Tensor, cells: Tensor) -> Tensor:
    """Attention `[batch, head_index, q, k]` (as float32) zeroed outside the counted cells."""
    return torch.where(cells[:, None], attention.float(), 0.0)


def renormalised_attention(kept: Tensor) -> Tensor:
    """Kept attention with every row rescaled to sum 1 (rows with nothing kept stay zero)."""
    row_sum = kept.sum(dim=-1, keepdim=True)
    return kept / torch.where(row_sum > 0, row_sum, 1.0)


def mass_sum(products: Tensor, targets: BatchTargets) -> Tensor:
    """Per prompt, the sum over target rows of the weighted attention mass on targets:
    `[batch, pattern, head_index]`.

    Per row: `sum_k A[q, k] * D[q, k]` (from `cell_products`) divided by the row's counted
    attention (the renormalisation) and by the row's maximum of `D` (the weights' scale).
    """
    row_attention = products[..., -1:]  # [batch, q, head, 1]
    # A row without counted attention scores 0 (selected, so no 0/0 is formed).
    shares = products[..., targets.row_columns] / torch.where(row_attention > 0, row_attention, 1.0)
    weight = targets.prepared("row_weight")[:, :, None, :]
    # Only target rows are read (selected): whatever a model computes for padded queries stays out.
    return torch.where(weight > 0, shares * weight, 0.0).sum(dim=1).transpose(1, 2)


def mul_parts(products: Tensor, targets: BatchTargets) -> tuple[Tensor, Tensor]:
    """TransformerLens `mul`'s sums over the rows at hand: `sum(A' * D)` `[batch, pattern, head_index]`
    and `sum(A')` `[batch, 1, head_index]`, where `A'` is the attention with excluded cells zeroed.
    Both add over blocks of query rows; a prompt's score is their ratio (`mul_finish`)."""
    queries = torch.arange(products.shape[1], device=products.device) + targets.first_query
    real = (queries[None, :] < targets.lengths[:, None])[:, :, None, None]
    products = torch.where(real, products, 0.0)  # padded query rows are not read
    numerator = products[..., targets.raw_columns].sum(dim=1)  # [batch, head, pattern]
    denominator = products[..., -1:].sum(dim=1)  # [batch, head, 1]
    return numerator.transpose(1, 2), denominator.transpose(1, 2)


def mul_finish(parts: tuple[Tensor, Tensor], lengths: Tensor) -> Tensor:
    """TransformerLens `mul` per prompt from a whole prompt's `mul_parts`: `[batch, pattern, head_index]`
    (NaN where a head has no counted attention, as in TransformerLens)."""
    numerator, denominator = parts
    return numerator / denominator


def mul_prompt_scores(products: Tensor, targets: BatchTargets) -> Tensor:
    """TransformerLens `mul` per prompt: `[pattern, batch, head_index]`.

    `sum(A' * D) / sum(A')` where `A'` is the attention with excluded cells zeroed.
    """
    return mul_finish(mul_parts(products, targets), targets.lengths).transpose(0, 1)


def tv_sum(normalised: Tensor, targets: BatchTargets) -> Tensor:
    """Per prompt, the sum over target rows of `sum_k min(a_k, p_k)`: `[batch, pattern, head_index]`."""
    rows = []
    scratch = torch.empty_like(normalised)
    for pattern_row in targets.prepared("row_normalised"):  # [batch, q, k]; an elementwise min, no matmul form
        torch.minimum(normalised, pattern_row[:, None], out=scratch)
        rows.append(scratch.sum(dim=(2, 3)))
    return torch.stack(rows, dim=1)


def argmax_hits(attention: Tensor, targets: BatchTargets) -> Tensor:
    """Per prompt, the number of target rows whose most-attended counted key is a target:
    `[batch, pattern, head_index]`.

    Renormalising a row does not move its maximum, so the raw attention is enough.
    """
    # Uncounted keys get -1 so they never win over a counted key (attention >= 0); a row
    # whose counted attention is all zero has no most-attended key and scores no hit.
    top_value, top_key = attention.masked_fill(~targets.cells[:, None], -1.0).max(dim=-1)  # [batch, head, q]
    batch, heads, queries = top_key.shape
    index = top_key.transpose(1, 2)[..., None].expand(batch, queries, heads, targets.n_patterns)
    is_target = targets.prepared("is_target")  # [batch, q, k, pattern]
    hits = is_target.gather(2, index) & (top_value.transpose(1, 2) > 0)[..., None]  # [batch, q, head, pattern]
    return hits.sum(dim=1).transpose(1, 2).to(torch.float32)


def abs_parts(kept: Tensor, targets: BatchTargets) -> tuple[Tensor]:
    """TransformerLens `abs`'s sum over the rows at hand: `sum|A' - D'|` `[batch, pattern, head_index]`.
    Every nonzero cell is a counted one (k <= q), so the sums add over blocks of query rows."""
    scratch = torch.empty_like(kept)
    per_pattern = []
    for detection in targets.detection:  # [batch, q, k]
        torch.sub(kept, detection[:, None], out=scratch)
        per_pattern.append(scratch.abs_().sum(dim=(-1, -2)))
    return (torch.stack(per_pattern, dim=1),)


def abs_finish(parts: tuple[Tensor], lengths: Tensor) -> Tensor:
    """TransformerLens `abs` per prompt from a whole prompt's `abs_parts`: `1 - round(sum|A' - D'| / length, 3)`,
    `[batch, pattern, head_index]`."""
    # Same float32 steps as TransformerLens (`mean * size`), so that its rounding to
    # 3 decimals falls the same way; then the rounding itself in float64.
    total = parts[0].to(torch.float32)
    size = lengths[:, None, None].to(torch.float32)
    raw = (total / (size * size)) * size
    return 1.0 - torch.round(raw.to(wide_dtype(raw.device)), decimals=3)


def abs_prompt_scores(kept: Tensor, targets: BatchTargets) -> Tensor:
    """TransformerLens `abs` per prompt: `1 - round(sum|A' - D'| / length, 3)`, `[pattern, batch, head_index]`."""
    return abs_finish(abs_parts(kept, targets), targets.lengths).transpose(0, 1)


# ---- the registry ---------------------------------------------------------------------------
