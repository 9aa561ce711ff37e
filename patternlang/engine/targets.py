"""What every measure reads of a batch: the counted cells (padding, causality, the exclusions)
and the detection tensors prepared once per batch (`BatchTargets`); `wide_dtype` for the sums."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor


def wide_dtype(device: torch.device | str) -> torch.dtype:
    """float64 for sums and counts, except where the device has none (MPS)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


@dataclass(frozen=True, slots=True)
class Exclusions:
    """Which keys a head's attention is not judged on."""

    bos: bool = False
    current: bool = False


def counted_cells(lengths: Tensor, size: int, exclusions: Exclusions, first_query: int = 0) -> Tensor:
    """Bool `[batch, query_pos, key_pos]`: real query and key, `k <= q`, minus exclusions.

    Queries `first_query .. size-1` over keys `0 .. size-1` (a block of query rows; the whole
    square by default).

    Example: `counted_cells(torch.tensor([2]), 3, Exclusions())[0]` is the lower
    triangle of the 2x2 real block, padded with False to 3x3.
    """
    keys = torch.arange(size, device=lengths.device)
    queries = keys[first_query:]
    real_keys = keys[None, :] < lengths[:, None]  # [batch, k]
    real_queries = queries[None, :] < lengths[:, None]  # [batch, q]
    causal = queries[:, None] >= keys[None, :]  # [q, k]
    cells = real_queries[:, :, None] & real_keys[:, None, :] & causal
    if exclusions.bos:
        cells[:, :, 0] = False
    if exclusions.current:
        cells &= queries[:, None] != keys[None, :]
    return cells




Prepared = Literal["row_weight", "row_normalised", "is_target"]
"""The `BatchTargets` fields built only for the measures that read them (`Measure.prepares`)."""


@dataclass(frozen=True, slots=True)
class BatchTargets:
    """Everything the measures need from one batch's detection tensors (built once per batch).

    The core is `by_cell` `[batch, query_pos, key_pos, column]`: the counted detection
    values with the pattern last, so that one batched matmul per layer multiplies a head's
    attention row by every pattern's row at once (`cell_products`). Its last column is the
    counted cells themselves, so the same matmul also gives each row's counted attention.
    Fields not needed by the requested measures are None.
    """

    cells: Tensor  # bool [batch, query_pos, key_pos], the counted cells
    lengths: Tensor  # long [batch], real lengths
    by_cell: Tensor  # float32 [batch, q, k, column]: pattern columns, then the cells column
    n_patterns: int
    row_columns: slice  # the columns the row measures read: the positive part of each pattern
    raw_columns: slice  # the columns mul and abs read: the values as given (the same columns
    # unless a pattern has negative values and both kinds of measure were asked for)
    target_rows: Tensor  # float [batch, pattern], each prompt's number of target rows
    row_weight: Tensor | None  # float [batch, q, pattern]: 1 / the row's maximum on target rows, else 0 (mass)
    row_normalised: Tensor | None  # float [pattern, batch, q, k]: rows scaled to sum 1 (tv)
    is_target: Tensor | None  # bool [batch, q, k, pattern]: a positive value on a counted cell (argmax)
    first_query: int = 0  # the position of row 0 (a block of query rows; keys always start at 0)

    def prepared(self, name: Prepared) -> Tensor:
        """The field `name`, which only the measures that name it in their `prepares` have built
        (engine/measures.py); reading one that was not prepared is a `ValueError` naming it."""
        value: Tensor | None = getattr(self, name)
        if value is None:
            raise ValueError(f"BatchTargets.{name} was not prepared: a measure that reads it must "
                             f"list {name!r} in its `prepares`")
        return value

    @property
    def detection(self) -> Tensor:
        """The counted detection values as given, `[pattern, batch, q, k]` (a view of `by_cell`)."""
        return self.by_cell[..., self.raw_columns].permute(3, 0, 1, 2)
