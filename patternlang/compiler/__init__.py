"""Compile checked patterns into vectorised Programs and evaluate them on batches."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .features import BatchFeatures
from .program import Program, compile_expr
from .reference import reference_matrix

__all__ = ["BatchFeatures", "Program", "compile_expr", "evaluate_all", "reference_matrix"]


def evaluate_all(patterns: Sequence, features: BatchFeatures, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Detection tensors of every pattern on one batch: [n_patterns, batch, query_pos, key_pos].

    The features (and sub-expressions that patterns share) are computed once for all patterns.
    """
    if not patterns:
        return torch.zeros(0, features.batch, features.n_pos, features.n_pos, dtype=dtype,
                           device=device or features.device)
    matrices = [pattern.evaluate(features) for pattern in patterns]
    stacked = torch.stack(matrices).to(dtype=dtype)
    return stacked if device is None else stacked.to(device)
