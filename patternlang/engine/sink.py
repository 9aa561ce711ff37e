"""The attention sink as background: two measures that let a head be judged on the attention it
does not park on BOS (docs/verdicts.md).

- `sink`: on a pattern's target rows, the share of the head's attention on position 0 (BOS,
  the sink), whatever the pattern's exclusions.
- `offsink`: on the same rows, the head's attention on the pattern's targets other than
  position 0 (weighted as `mass` weighs them), *not* renormalised.

Both are sums over target rows, so their ratio is a ratio of sums: `nonsink = offsink / (1 -
sink)` is the share of the attention a head does not park on the sink that lands on the
pattern's targets, pooled over the target rows. A row on which the head parks everything adds
nothing to either sum: it is undefined and left out, never counted as 0; a head that parks every
row has an undefined (NaN) `nonsink` score (`engine/verdicts.py`).

Each returns per-prompt partial sums `[batch, pattern, head_index]` from a layer's work (see
`engine/measures.py`); both add over blocks of query rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:  # annotations only: measures.py imports this module to register the two measures
    from patternlang.engine.measures import LayerWork


def sink_sum(work: "LayerWork") -> Tensor:
    """Per prompt, the sum over target rows of the head's attention on position 0."""
    on_sink = work.attention[..., 0]  # [batch, head, q]
    target_row = work.targets.prepared("row_weight") > 0  # [batch, q, pattern]
    # Selected, not multiplied: a non-finite value on a padded row cannot leak in.
    on_targets = torch.where(target_row[:, None], on_sink[..., None], 0.0)  # [batch, head, q, pattern]
    return on_targets.sum(dim=2).transpose(1, 2)


def offsink_sum(work: "LayerWork") -> Tensor:
    """Per prompt, the sum over target rows of the head's weighted attention on targets other than
    position 0, not renormalised: `sum_k>0 A[q, k] D[q, k] / max_k D[q, k]`."""
    targets = work.targets
    products = work.products[..., targets.row_columns]  # [batch, q, head, pattern]: sum_k A D over counted k
    on_sink = work.attention[..., 0].transpose(1, 2)[..., None]  # [batch, q, head, 1]
    sink_value = targets.by_cell[:, :, 0, targets.row_columns][:, :, None, :]  # [batch, q, 1, pattern]
    off = products - on_sink * sink_value  # key 0's part taken out (0 when key 0 is not counted)
    weight = targets.prepared("row_weight")[:, :, None, :]
    return torch.where(weight > 0, off * weight, 0.0).sum(dim=1).transpose(1, 2)
