"""The `copying` measure: does a head raise (or lower) the logit of the tokens it attends to?

For a head h in layer l, a prompt and a cell (q, k) of the pattern's targets, the direct logit
attribution of the head's output at q to the token at k, as TransformerLens computes it
(`cache.apply_ln_to_stack` then `W_U`; docs/model_features.md):

    DLA(q, k) = ( centre(z[q, h] @ W_O[h]) / scale(q) ) . ( w_final * W_U[:, tok[k]] )

`z[q, h]` is `blocks.l.attn.hook_z` (`[d_head]`), `W_O[h]` the head's output matrix
(`[d_head, d_model]`), `scale(q)` the final norm's divisor on the final residual stream at q
(RMSNorm: its root mean square; LayerNorm: its standard deviation, with `centre` removing the
mean), `w_final` the final norm's weight. Biases are left out (they are not the head's).

Per target row q: `sum_k A[q, k] D'[q, k] DLA(q, k)`, the attention-weighted sum over the row's
target cells (`A` the head's attention as the model computed it, `D'` the pattern's row scaled
to a maximum of 1, as `mass` weighs it): the part of the head's direct effect on those logits
that its attention to the targets carries, so a head that does not attend to the targets
scores about 0 whatever it writes. Then the mean over target rows. Units: logits (the same
units as `model(tokens)`). Positive: the head raises what it attends to (name movers);
negative: it lowers it (copy suppression, negative name movers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from patternlang.engine.cells import cell_products
from patternlang.engine.model_outputs import Readout
from patternlang.engine.targets import BatchTargets

if TYPE_CHECKING:  # annotations only: measures.py imports this module to register `copying`
    from patternlang.engine.measures import LayerWork


@dataclass(frozen=True, slots=True)
class LayerOutputs:
    """What `copying` reads for one layer of one batch (heads already selected)."""

    z: Tensor             # [batch, pos, head, d_head]
    W_O: Tensor           # [head, d_head, d_model]
    final_scale: Tensor   # [batch, pos]
    tokens: Tensor        # [batch, pos]
    readout: Readout

    def direct_logits(self) -> Tensor:
        """`DLA[b, h, q, k]`: the head's output at q on the logit of the token at k, float32."""
        out = torch.einsum("bqhe,hed->bqhd", self.z.float(), self.W_O.float())
        out = self.readout.centre(out) / self.final_scale.float()[:, :, None, None]
        columns = self.readout.unembed_columns(self.tokens.to(out.device))  # [batch, k, d_model]
        return torch.einsum("bqhd,bkd->bhqk", out, columns)


def copying_sum(work: LayerWork) -> Tensor:
    """Per prompt, the sum over target rows of `sum_k A[q, k] D'[q, k] DLA(q, k)`: `[batch, pattern, head]`
    (`D'`: the pattern's row scaled to a maximum of 1, as `mass` weighs it)."""
    targets, extras = work.targets, work.extras
    if extras is None:
        raise ValueError("copying reads the layer's outputs: the run must pass them (`extras`)")
    direct = extras.direct_logits()
    weighted = cell_products(work.attention * direct, targets.by_cell)[..., targets.row_columns]  # [b, q, h, p]
    weight = targets.prepared("row_weight")[:, :, None, :]
    # Only target rows are read (selected): whatever a model computes for padded queries stays out.
    return torch.where(weight > 0, weighted * weight, 0.0).sum(dim=1).transpose(1, 2)


def no_chance(targets: BatchTargets) -> Tensor:
    """A head attending uniformly has no output of its own to attribute: its `copying` is taken as 0."""
    return torch.zeros(targets.target_rows.shape[0], targets.n_patterns, 1, dtype=torch.float32,
                       device=targets.by_cell.device)
