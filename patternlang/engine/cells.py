"""Each head's attention row times each detection column's row, the product every row measure
(and `copying`) reduces: `cell_products`, by blocks of queries for long prompts. Its own module
so that the measures and the `copying` measure share it without importing each other."""

from __future__ import annotations

import torch
from torch import Tensor

QUERY_BLOCK = 64
"""Queries per block when a prompt's attention is reduced (prompts longer than 1.5 blocks):
a block of queries reads only the keys up to its last query, which skips most of the zero
upper triangle, and its operands are strided views of the attention and the detection
tensor, so nothing is copied."""


def cell_products(attention: Tensor, by_cell: Tensor, block: int | None = None) -> Tensor:
    """`[batch, q, head_index, column]`: each head's attention row times each column's row.

    `einsum("bhqk,bqkc->bqhc")` as batched matmuls over queries. Prompts longer than 1.5
    blocks of `block` (default `QUERY_BLOCK`) queries go block by block, prompt by prompt;
    each block reads only the keys up to its last query. The rows may be a block of a
    longer prompt's (`[batch, head_index, q, k]` with k > q: its rows are the last q queries).
    """
    block = block or QUERY_BLOCK
    batch, heads, size, n_keys = attention.shape
    first_query = n_keys - size
    if size <= block + block // 2:
        return torch.matmul(attention.transpose(1, 2), by_cell)
    out = attention.new_empty(batch, size, heads, by_cell.shape[-1])
    for row in range(batch):
        for start in range(0, size, block):
            stop = min(size, start + block)
            keys = first_query + stop
            # [q, head, k] @ [q, k, column]: views with a unit last stride, which bmm takes as they are.
            torch.bmm(attention[row, :, start:stop, :keys].transpose(0, 1), by_cell[row, start:stop, :keys],
                      out=out[row, start:stop])
    return out
