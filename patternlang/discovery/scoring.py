"""Scores of every candidate for every head, read off the sufficient statistics (`stats.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from patternlang.discovery.families import COMPLEXITY_PENALTY, Candidate
from patternlang.discovery.stats import HeadStats

__all__ = ["CandidateScores", "score_candidates"]


@dataclass(frozen=True)
class CandidateScores:
    """`[head, candidate]` tensors (float64; NaN where a candidate has no target row).

    `mass`: the engine's `mass` (with `exclude bos`; the BOS rule: without) of each candidate
    rule; `iou`: intersection over union of the rule's cells with the head's binarised attention
    (BOS column left out); `coverage`: share of the rule's cells the head's binarised attention
    covers; `chance`: the mass of a head attending uniformly (the engine's chance baseline);
    `rank`: IoU minus the complexity penalty (the BOS rule: NaN, it is chosen apart)."""

    mass: Tensor
    iou: Tensor
    coverage: Tensor
    chance: Tensor
    rank: Tensor


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den > 0, num / torch.where(den > 0, den, 1.0), torch.full_like(num, float("nan")))


def score_candidates(stats: HeadStats, candidates: Sequence[Candidate], base_index: dict[str, int]) -> CandidateScores:
    """Every candidate's scores for every head, from `stats` (vectorised over candidates)."""
    n_heads = stats.mass.shape[0]
    n_offsets = stats.cells.shape[1]
    cum = lambda x: torch.cat([torch.zeros(*x.shape[:-1], 1, dtype=x.dtype), x.cumsum(dim=-1)], dim=-1)  # noqa: E731
    mass_c, hits_c, chance_c, cells_c = cum(stats.mass), cum(stats.hits), cum(stats.chance), cum(stats.cells)
    bos = [i for i, c in enumerate(candidates) if c.base.cond == "k == 0"]
    regular = [i for i, c in enumerate(candidates) if c.base.cond != "k == 0"]
    shape = (n_heads, len(candidates))
    mass = torch.full(shape, float("nan"), dtype=torch.float64)
    iou, coverage, rank = mass.clone(), mass.clone(), mass.clone()
    chance = torch.full((len(candidates),), float("nan"), dtype=torch.float64)
    if regular:
        chosen = [candidates[i] for i in regular]
        b = torch.tensor([base_index[c.base.cond] for c in chosen])
        lo = torch.tensor([c.lo for c in chosen])
        hi = torch.tensor([min(c.hi, n_offsets - 1) if c.hi is not None else n_offsets - 1 for c in chosen])
        exact = torch.tensor([c.exact for c in chosen])
        span = lambda x: x[..., b, hi + 1] - x[..., b, lo]  # noqa: E731
        rows = torch.where(exact, span(cells_c), stats.reach[lo.clamp(max=1), b, hi])
        m = _ratio(span(mass_c), rows[None])
        hits = span(hits_c)
        cells = span(cells_c)
        union = stats.on[:, None] + cells[None] - hits
        i = _ratio(hits, union)
        complexity = torch.tensor([c.complexity for c in chosen], dtype=torch.float64)
        idx = torch.tensor(regular)
        mass[:, idx] = m
        iou[:, idx] = i
        coverage[:, idx] = _ratio(hits, cells[None].expand_as(hits))
        chance[idx] = _ratio(span(chance_c), rows)
        rank[:, idx] = torch.where(torch.isnan(m), torch.full_like(i, float("nan")), i - COMPLEXITY_PENALTY * complexity)
    for i in bos:
        mass[:, i] = stats.bos_mass / max(stats.rows, 1.0)
        chance[i] = stats.bos_chance / max(stats.rows, 1.0)
    return CandidateScores(mass, iou, coverage, chance[None].expand(shape), rank)
