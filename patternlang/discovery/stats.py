"""Sufficient statistics: what every candidate of every family is scored from, per head.

All candidates are a *base* matrix `E[q, k]` (a condition compiled by the normal compiler)
restricted to a range of distances `lo <= q - k <= hi`. Seen in *offset space*
(`X[q, d] = X[q, q - d]`), a range is a slice of the last axis, so for each base one
statistic per head and offset serves every range at once:

    P[head, base, d] = sum over prompts and query rows of  a[q, q - d] * E[q, q - d]

with `a` the head's attention renormalised over the keys that count (every real key `k <= q`
but BOS: the head's non-sink attention, as the engine's `mass` with `exclude bos` reads it).
The same sum with `a` replaced by the head's binarised attention gives the intersection of
the IoU, and with a uniform head the chance baseline; head-independent counts (cells per
offset, rows with a target within each distance) give the target rows and the rule's size.
One batched matmul per batch (`[offset, head, rows] @ [offset, rows, base]`) computes them for
every head of every layer and every base.

The BOS rule (`k == 0`) is judged with the sink: its mass is the attention on key 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["BINARY_THRESHOLD", "MIN_CELL", "HeadStats", "to_offsets", "batch_stats", "renormalised", "binarised"]

BINARY_THRESHOLD = 0.1
"""A cell of a head's attention is "on" (binarised 1) when it holds at least this share of the row's
non-sink attention (the row renormalised over the keys but BOS, as `mass` reads it); the BOS column
is left out of the IoU (docs/describe.md)."""

MIN_CELL = 0.05
"""...and at least this share of the whole row (sink included): where a head rests on BOS, the crumbs
of attention left elsewhere are not "on" however the renormalisation inflates them."""


def counted(lengths: Tensor, n: int) -> Tensor:
    """Bool `[batch, q, k]`: real q and k, 1 <= k <= q (BOS left out)."""
    pos = torch.arange(n, device=lengths.device)
    real = pos[None, :] < lengths[:, None]
    cells = real[:, :, None] & real[:, None, :] & (pos[:, None] >= pos[None, :])[None]
    cells[:, :, 0] = False
    return cells


def renormalised(attention: Tensor, cells: Tensor) -> Tensor:
    """`attention [batch, head, q, k]` on the counted cells, rows scaled to sum 1 (0 where a row
    has no counted attention), as the engine's `mass` renormalises it."""
    kept = torch.where(cells[:, None], attention, torch.zeros((), dtype=attention.dtype))
    total = kept.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, kept / torch.where(total > 0, total, 1.0), 0.0)


def binarised(attention: Tensor, cells: Tensor, threshold: float = BINARY_THRESHOLD) -> Tensor:
    """1.0 where a counted cell holds at least `threshold` of the row's attention, else 0."""
    return ((attention >= threshold) & cells[:, None]).to(attention.dtype)


def to_offsets(matrix: Tensor, n_offsets: int) -> Tensor:
    """`[..., q, k]` -> `[..., q, d]` with `out[..., q, d] = matrix[..., q, q - d]` (0 where q - d < 0
    or d >= the matrix's size; offsets up to `n_offsets - 1`)."""
    n = matrix.shape[-1]
    padded = torch.nn.functional.pad(matrix, (0, 1))  # a zero column at index n for the cells outside
    q = torch.arange(n, device=matrix.device)[:, None]
    k = q - torch.arange(n_offsets, device=matrix.device)[None, :]
    index = torch.where(k >= 0, k, n).expand(*matrix.shape[:-1], n_offsets)
    return torch.gather(padded, -1, index)


@dataclass
class HeadStats:
    """Running sums over prompts for `n_heads` heads (every layer's, flattened) and `n_bases` bases.

    `mass`, `hits`, `chance`: `[head, base, offset]` sums of renormalised, binarised and uniform
    attention on the base's cells; `cells [base, offset]`: the base's cells; `reach [2, base, offset]`:
    rows with a target at a distance from lo (0 or 1) to the offset; `on [head]`: binarised
    cells; `bos_mass [head]`, `rows`: attention on key 0 over real rows, and the real rows.
    """

    mass: Tensor
    hits: Tensor
    chance: Tensor
    cells: Tensor
    reach: Tensor
    on: Tensor
    bos_mass: Tensor
    bos_chance: float = 0.0  # a uniform head's attention on key 0, summed over real rows: sum 1 / (q + 1)
    counted_rows: float = 0.0  # real rows with at least one counted key
    rows: float = 0.0
    n_prompts: int = 0

    @classmethod
    def zeros(cls, n_heads: int, n_bases: int, n_offsets: int) -> "HeadStats":
        f64 = torch.float64
        return cls(torch.zeros(n_heads, n_bases, n_offsets, dtype=f64), torch.zeros(n_heads, n_bases, n_offsets, dtype=f64),
                   torch.zeros(n_bases, n_offsets, dtype=f64), torch.zeros(n_bases, n_offsets, dtype=f64),
                   torch.zeros(2, n_bases, n_offsets, dtype=f64), torch.zeros(n_heads, dtype=f64),
                   torch.zeros(n_heads, dtype=f64))


    def __add__(self, other: "HeadStats") -> "HeadStats":
        """The sums of two sets of prompts together."""
        return HeadStats(**{name: getattr(self, name) + getattr(other, name) for name in self.__dataclass_fields__})


BASE_CHUNK = 96
"""Bases per matmul: bounds the offset-space copy of the bases `[offset, rows, bases]`."""


def batch_stats(stats: HeadStats, attention: Tensor, lengths: Tensor, bases: Tensor) -> None:
    """Add one batch to `stats`.

    `attention [batch, head, n, n]` (every layer's heads, flattened; rows of padding zero),
    `lengths [batch]`, `bases [base, batch, n, n]` (0/1, the compiled base conditions).
    """
    batch, n_heads, n, _ = attention.shape
    n_offsets = stats.cells.shape[1]
    attention = attention.to(torch.float32)
    cells = counted(lengths, n)
    real = torch.arange(n)[None, :] < lengths[:, None]  # [batch, q]
    stats.bos_mass += (attention[:, :, :, 0] * real[:, None, :]).sum(dim=(0, 2)).double()
    stats.rows += float(real.sum())
    stats.bos_chance += float((real / (torch.arange(n)[None, :] + 1.0)).sum())
    stats.counted_rows += float(cells.any(dim=-1).sum())
    stats.n_prompts += batch
    renorm = renormalised(attention, cells)
    binary = binarised(renorm, cells) * (attention >= MIN_CELL)
    stats.on += binary.sum(dim=(0, 2, 3)).double()
    n_counted = cells.sum(dim=-1, keepdim=True)
    uniform = torch.where(cells, 1.0 / n_counted.clamp(min=1), 0.0)[:, None]  # [batch, 1, q, k]
    heads = torch.cat([renorm, binary, uniform], dim=1)  # [batch, 2H + 1, q, k]
    rows = to_offsets(heads, n_offsets)  # [batch, 2H+1, q, d]
    width = rows.shape[1]
    left = rows.permute(3, 1, 0, 2).reshape(n_offsets, width, batch * n).contiguous()  # [d, 2H+1, bq]
    counted_offsets = to_offsets(cells.to(torch.float32), n_offsets)  # [batch, q, d]
    for start in range(0, bases.shape[0], BASE_CHUNK):
        chunk = bases[start: start + BASE_CHUNK].to(torch.float32)
        c = chunk.shape[0]
        marked = to_offsets(chunk, n_offsets) * counted_offsets[None]  # [c, batch, q, d]
        right = marked.permute(3, 1, 2, 0).reshape(n_offsets, batch * n, c).contiguous()  # [d, bq, c]; contiguous: bmm is ~15x slower on the strided view
        products = torch.bmm(left, right).double()  # [d, 2H+1, c]
        stats.mass[:, start: start + c] += products[:, :n_heads].permute(1, 2, 0)
        stats.hits[:, start: start + c] += products[:, n_heads: 2 * n_heads].permute(1, 2, 0)
        stats.chance[start: start + c] += products[:, 2 * n_heads].T
        stats.cells[start: start + c] += marked.sum(dim=(1, 2)).double()
        # Rows with a target at a distance in lo .. d, for every d: a running maximum over offsets.
        reach = marked.cummax(dim=-1).values.sum(dim=(1, 2))  # [c, d]
        stats.reach[0, start: start + c] += reach.double()
        stats.reach[1, start: start + c, 1:] += marked[..., 1:].cummax(dim=-1).values.sum(dim=(1, 2)).double()
