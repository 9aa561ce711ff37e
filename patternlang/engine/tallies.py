"""What the running sums give: `Tallies` (scores, intervals, baselines, sample sizes), the heads
asked for, the pattern groups by exclusion, and Student's t quantiles for the intervals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from patternlang.engine.measures import Exclusions

__all__ = ["PatternGroup", "Tallies", "Z_95", "asked_heads", "t_quantile_975"]


def asked_heads(heads: dict[int, tuple[int, ...] | None], n_layers: int, n_heads: int) -> Tensor:
    """Bool `[n_layers, n_heads]`: the heads chosen (`heads[layer]` None = every head of the layer)."""
    asked = torch.zeros(n_layers, n_heads, dtype=torch.bool)
    for layer, chosen in heads.items():
        asked[layer, slice(None) if chosen is None else list(chosen)] = True
    return asked


@dataclass(frozen=True, slots=True)
class PatternGroup:
    """Patterns scored with the same exclusions (most runs have one group)."""

    indices: tuple[int, ...]  # positions in the pattern list
    exclusions: Exclusions


Z_95 = 1.959963984540054
"""The standard normal's 97.5% quantile."""

_T_975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
          2.200985, 2.178813, 2.160369, 2.144787, 2.13145, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
          2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.04523, 2.042272)
"""Student's t 97.5% quantiles for 1 .. 30 degrees of freedom (scipy.stats.t.ppf, 6 decimals)."""


def t_quantile_975(degrees: Tensor) -> Tensor:
    """Student's t 97.5% quantile per entry of `degrees` (float; NaN below 1): a table up to 30,
    beyond it the Cornish-Fisher expansion around the normal (off by less than 1e-5)."""
    z = Z_95
    v = degrees.to(torch.float64).clamp_min(1.0)
    expansion = (z + (z ** 3 + z) / (4 * v) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * v ** 2)
                 + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * v ** 3))
    table = torch.tensor(_T_975, dtype=torch.float64)
    index = (v.round().long().clamp(1, len(_T_975)) - 1)
    quantile = torch.where(v <= len(_T_975), table[index], expansion)
    return torch.where(degrees >= 1, quantile, torch.nan)


@dataclass(frozen=True, slots=True)
class Tallies:
    """What the engine measured, on the CPU: scores with their evidence.

    `values`, `ci_low`, `ci_high`: `{measure: [pattern, layer, head_index]}` float32, NaN where
    not computed (heads not asked for, nothing to divide by, fewer than 2 prompts for an
    interval). `baseline`: `{measure: [pattern]}`, the score of a head attending uniformly over
    each row's counted keys. `n_rows`, `n_prompts`: `[pattern]`, the target rows and the
    prompts with at least one target row. `per_prompt` (when asked for): `{measure:
    [prompt, pattern, layer, head_index]}` in the order the prompts were given. `attention`: how
    the attention was read (`{"path": "blocks", "query_block": 96}` or `{"path": "hook_pattern",
    "why": ...}`), set by the engine.
    """

    values: dict[str, Tensor]
    ci_low: dict[str, Tensor]
    ci_high: dict[str, Tensor]
    baseline: dict[str, Tensor]
    n_rows: Tensor
    n_prompts: Tensor
    n_prompts_total: int
    per_prompt: dict[str, Tensor] | None = field(default=None)
    attention: dict[str, Any] | None = field(default=None)  # which path read the attention (`detect`'s provenance)
