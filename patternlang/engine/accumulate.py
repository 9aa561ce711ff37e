"""Running sums of the measures, per layer, kept on the device between batches.

The hook of each layer hands its attention `[batch, head_index, query_pos, key_pos]`
to `Accumulator.add_layer`, which reduces it at once against every pattern of the
batch and adds the result to the running sums: nothing of the batch is kept after
the hook returns, and nothing is copied to the host until `Accumulator.result`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from patternlang.engine.measures import (
    MEASURES,
    BatchTargets,
    Exclusions,
    partial_sums,
    prepare_targets,
    wide_dtype,
)


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


class Accumulator:
    """Running sums `[layer, pattern, head_index]` for every measure, plus their denominators.

    Example:
        acc = Accumulator(n_patterns=1, n_layers=2, n_heads=4, measures=("mass",),
                          groups=[PatternGroup((0,), Exclusions())], heads={0: None, 1: None})
        acc.start_batch(detection, lengths)   # detection [1, batch, q, k]
        acc.add_layer(0, attention0); acc.add_layer(1, attention1)
        acc.result()["mass"]                 # [1, 2, 4]
    """

    def __init__(
        self,
        *,
        n_patterns: int,
        n_layers: int,
        n_heads: int,
        measures: tuple[str, ...],
        groups: list[PatternGroup],
        heads: dict[int, tuple[int, ...] | None],
        device: torch.device | str = "cpu",
    ):
        self.n_patterns, self.n_layers, self.n_heads = n_patterns, n_layers, n_heads
        self.measures = measures
        self.heads = heads
        self.groups = groups
        self.device = torch.device(device)
        dtype = wide_dtype(self.device)
        self.sums = {m: torch.zeros(n_layers, n_patterns, n_heads, dtype=dtype, device=self.device) for m in measures}
        self.target_rows = torch.zeros(n_patterns, dtype=dtype, device=self.device)
        self.n_prompts = 0
        # Per layer: the head indices asked for (None = all heads, no selection needed).
        self.head_index = {
            layer: None if chosen is None else torch.tensor(chosen, dtype=torch.long, device=self.device)
            for layer, chosen in heads.items()
        }
        self.group_index = [torch.tensor(g.indices, dtype=torch.long, device=self.device) for g in groups]
        self._batch: list[BatchTargets] = []

    def start_batch(self, detection: Tensor, lengths: Tensor) -> None:
        """Prepare the measures' targets for a new batch; `detection` is `[pattern, batch, q, k]`."""
        lengths = lengths.to(self.device)
        self._batch = []
        for group, index in zip(self.groups, self.group_index):
            part = detection if len(group.indices) == self.n_patterns else detection[index]
            targets = prepare_targets(part, lengths, group.exclusions, self.measures)
            self.target_rows.index_add_(0, index, targets.target_rows.to(self.target_rows.dtype))
            self._batch.append(targets)
        self.n_prompts += int(lengths.shape[0])

    def add_layer(self, layer: int, attention: Tensor) -> None:
        """Reduce one layer's attention `[batch, head_index, q, k]` into the running sums."""
        heads = self.head_index[layer]
        attention = attention.detach()
        if attention.device != self.device:
            attention = attention.to(self.device)
        if heads is not None:
            attention = attention.index_select(1, heads)
        for targets, index in zip(self._batch, self.group_index):
            for measure, partial in partial_sums(attention, targets, self.measures).items():
                rows = self.sums[measure][layer]  # [pattern, head]
                partial = partial.to(rows.dtype)
                if heads is None:
                    rows.index_add_(0, index, partial)
                else:
                    # Scatter into [pattern, head] at (group patterns) x (chosen heads).
                    block = torch.zeros(partial.shape[0], self.n_heads, dtype=rows.dtype, device=rows.device)
                    block.index_copy_(1, heads, partial)
                    rows.index_add_(0, index, block)

    def result(self) -> dict[str, Tensor]:
        """Scores `{measure: [pattern, layer, head_index]}`, float32 on the CPU, NaN where not computed.

        Row measures divide by the target rows of each pattern (no target rows: NaN);
        prompt measures divide by the number of prompts.
        """
        asked = asked_heads(self.heads, self.n_layers, self.n_heads)
        out = {}
        for measure, sums in self.sums.items():
            sums = sums.cpu().to(torch.float64)
            if MEASURES[measure].averaged_over == "prompts":
                denominator = torch.tensor(float(self.n_prompts), dtype=torch.float64)
                values = sums / denominator
            else:
                rows = self.target_rows.cpu().to(torch.float64)[None, :, None]
                values = torch.where(rows > 0, sums / rows.clamp_min(1), torch.nan)
            values = values.permute(1, 0, 2)  # [pattern, layer, head]
            values = torch.where(asked[None], values, torch.nan)
            out[measure] = values.to(torch.float32).contiguous()
        return out
