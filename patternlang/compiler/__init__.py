"""Compile checked patterns into vectorised Programs and evaluate them on batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .batch import BatchFeatures
from .program import Program, compile_expr
from .reference import ReferencePrompt, reference_matrix

if TYPE_CHECKING:
    import torch

    from ..pattern import Pattern
else:
    from ..lazy_torch import torch  # imported when a Program is evaluated, not when one is compiled

__all__ = ["BatchFeatures", "Program", "ReferencePrompt", "compile_expr", "evaluate_all", "reference_matrix"]


def evaluate_all(patterns: Sequence[Pattern], features: BatchFeatures, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """Detection tensors of every pattern on one batch: [n_patterns, batch, query_pos, key_pos]
    (on a window of queries, `features.window(q_start, q_stop)`: its rows and keys).

    The features (and sub-expressions that patterns share) are computed once for all patterns.
    With `out` (a [n_patterns, batch, q, k] tensor of any strides, e.g. a pattern-last
    buffer seen through `permute`), each pattern is written into it as soon as it is
    evaluated, and `out` is returned: no stacked copy is made. `dtype`: float32 by default.
    """
    dtype = torch.float32 if dtype is None else dtype
    if out is not None:
        expected = (len(patterns), features.batch, features.n_queries, features.n_keys)
        if tuple(out.shape) != expected:
            raise ValueError(f"out has shape {tuple(out.shape)}, expected {expected}")
        for index, pattern in enumerate(patterns):
            out[index].copy_(pattern.evaluate(features))
        return out
    if not patterns:
        return torch.zeros(0, features.batch, features.n_queries, features.n_keys, dtype=dtype,
                           device=device or features.device)
    matrices = [pattern.evaluate(features) for pattern in patterns]
    stacked = torch.stack(matrices).to(dtype=dtype)
    return stacked if device is None else stacked.to(device)
