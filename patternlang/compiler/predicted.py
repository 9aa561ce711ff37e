"""`predicted(x, p, N)` and `lens_predicted(x, p, N, L)` compiled: is token x among the model's
top N predictions at position p (`syntax/predictions.py`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..syntax import ast
from ..syntax.predictions import call_request
from .batch import BatchFeatures

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    from ..lazy_torch import torch  # imported when a Program is evaluated, not when one is compiled


def _three_d(value: Tensor) -> Tensor:
    return value.view(*([1] * (3 - value.dim())), *value.shape)


def compile_predicted(value: ast.Call, compile_value: Callable[[ast.Value], Callable[[BatchFeatures], Any]],
                      both_valid: Callable[[Any, Any], Any]) -> Callable[[BatchFeatures], tuple[Any, Any]]:
    token_of, position_of = (compile_value(arg) for arg in value.args[:2])
    layer, top = call_request(value)

    def predicted(f: BatchFeatures) -> tuple[Any, Any]:
        (token, token_valid), (position, position_valid) = token_of(f), position_of(f)
        ranked = f.predictions(layer)                                   # [batch, pos, top]
        position, token = _three_d(position), _three_d(token)
        inside = (position >= 0) & (position < f.n_pos)
        safe = position.clamp(0, f.n_pos - 1)
        rows = torch.arange(f.batch, device=f.device).view(-1, 1, 1)
        data = None
        for rank in range(min(top, ranked.shape[-1])):                 # one [batch, q?, k?] compare per rank
            hit = ranked[..., rank][rows, safe] == token
            data = hit if data is None else data | hit
        valid = inside & f.mask[rows, safe]
        return data, both_valid(valid, both_valid(token_valid, position_valid))
    return predicted
