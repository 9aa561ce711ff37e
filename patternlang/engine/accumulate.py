"""Running sums of the measures, per layer, kept on the device between batches.

The hook of each layer hands its attention `[batch, head_index, query_pos, key_pos]`
to `Accumulator.add_layer`, which reduces it at once against every pattern of the
batch and adds the result to the running sums: nothing of the batch is kept after
the hook returns, and nothing is copied to the host until `Accumulator.result`.

Every score is a ratio of sums over prompts, `R = sum_p x_p / sum_p d_p`: `x_p` is prompt
p's partial sum, `d_p` its number of target rows (row measures), 1 (prompt measures) or its
chance sum (`lift`). Besides `sum x` and `sum d`, the accumulator keeps `sum x^2`, `sum x d`
and `sum d^2`, which give the ratio's standard error over prompts (the delta method, as for
a ratio estimator in cluster sampling) with memory flat in the number of prompts, and a 95%
interval with Student's t over the prompts; and the chance head's sums, which give each
pattern's baseline.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from patternlang.engine.baselines import add_rules, new_rule_sums
from patternlang.engine.copying import LayerOutputs
from patternlang.engine.measures import (
    MEASURES,
    BatchTargets,
    partial_sums,
    prepare_targets,
    wide_dtype,
)
from patternlang.engine.provenance import merge_attention_paths
from patternlang.engine.shapes import Attention, Detection, Lengths
from patternlang.engine.tallies import PatternGroup, Tallies, asked_heads, t_quantile_975


__all__ = ["Accumulator", "PatternGroup", "Tallies", "asked_heads", "t_quantile_975"]


class Accumulator:
    """Running sums `[layer, pattern, head_index]` for every measure, with their denominators,
    squares and the chance head's sums.

    Example:
        acc = Accumulator(n_patterns=1, n_layers=2, n_heads=4, measures=("mass",),
                          groups=[PatternGroup((0,), Exclusions())], heads={0: None, 1: None})
        acc.start_batch(detection, lengths)   # detection [1, batch, q, k]
        acc.add_layer(0, attention0); acc.add_layer(1, attention1)
        acc.result().values["mass"]          # [1, 2, 4]
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
        per_prompt: int | None = None,
    ):
        self.n_patterns, self.n_layers, self.n_heads = n_patterns, n_layers, n_heads
        self.measures = measures
        self.heads = heads
        self.groups = groups
        self.device = torch.device(device)
        dtype = self.dtype = wide_dtype(self.device)

        def grid() -> Tensor:
            return torch.zeros(n_layers, n_patterns, n_heads, dtype=dtype, device=self.device)

        def column() -> Tensor:
            return torch.zeros(n_patterns, dtype=dtype, device=self.device)

        self.sums = {m: grid() for m in measures}  # sum_p x
        self.squares = {m: grid() for m in measures}  # sum_p x^2
        self.cross = {m: grid() for m in measures}  # sum_p x d
        self.chance = {m: column() for m in measures}  # the chance head's sum_p x
        # Denominators by kind: "target rows", "prompts", or "chance of <measure>".
        self.denominators = {_denominator_kind(m): column() for m in measures}
        self.denominator_squares = {kind: column() for kind in self.denominators}
        self.target_rows = column()
        self.prompts_with_targets = column()
        # [verdicts] the positional rules' sums {measure: [pattern, rule]} (engine/baselines.py)
        self.rule_sums = new_rule_sums(measures, n_patterns, dtype, self.device)
        self.n_prompts = 0
        # Per layer: the head indices asked for (None = all heads, no selection needed).
        self.head_index = {
            layer: None if chosen is None else torch.tensor(chosen, dtype=torch.long, device=self.device)
            for layer, chosen in heads.items()
        }
        self.group_index = [torch.tensor(g.indices, dtype=torch.long, device=self.device) for g in groups]
        self._batch: list[BatchTargets] = []
        self._batch_denominators: list[dict[str, Tensor]] = []  # per group: kind -> [batch, group pattern]
        # Per-prompt scores, when asked for: {measure: [n_prompts, layer, pattern, head]} (float32, host).
        self.per_prompt: dict[str, Tensor] | None = None
        if per_prompt is not None:
            self.per_prompt = {m: torch.full((per_prompt, n_layers, n_patterns, n_heads), math.nan)
                               for m in measures}
        self._batch_indices: Tensor | None = None
        self._attention: dict[str, Any] | None = None  # which path read the attention (`record_path`)

    @property
    def attention(self) -> dict[str, Any] | None:
        """Which path read the attention of the sums so far (`blocked.merge_attention_paths`'s form)."""
        return self._attention

    def record_path(self, path: dict[str, Any] | None) -> None:
        """Join `path` (how some of the sums' attention was read) to the provenance kept."""
        if path is not None:
            self._attention = merge_attention_paths(self._attention, path)

    def start_batch(self, detection: Detection, lengths: Lengths, indices: list[int] | None = None) -> None:
        """Prepare the measures' targets for a new batch; `detection` is `[pattern, batch, q, k]`;
        `indices`: the batch's prompts' positions in the input (needed for per-prompt scores)."""
        lengths = self.begin_batch(lengths, indices)
        self._batch, self._batch_denominators = [], []
        for number, group in enumerate(self.groups):
            part = detection if len(group.indices) == self.n_patterns else detection[self.group_index[number]]
            targets = prepare_targets(part, lengths, group.exclusions, self.prepared_measures)
            add_rules(self.rule_sums, self.group_index[number], targets)  # [verdicts] positional baselines
            chance = {m: MEASURES[m].chance_sum(targets) for m in self.chance_measures}
            self._batch.append(targets)
            self._batch_denominators.append(self.add_evidence(number, targets.target_rows, chance))

    @property
    def prepared_measures(self) -> tuple[str, ...]:
        """The measures plus those they are relative to (whose chance sums they need prepared)."""
        return _prepared_measures(self.measures)

    @property
    def chance_measures(self) -> tuple[str, ...]:
        """The measures whose chance sums the scores need (each measure's base)."""
        return _chance_measures(self.measures)

    def begin_batch(self, lengths: Tensor, indices: list[int] | None) -> Tensor:
        """Count a new batch's prompts (and keep their indices for per-prompt scores); its lengths on the device."""
        self.n_prompts += int(lengths.shape[0])
        if self.per_prompt is not None:
            if indices is None:
                raise ValueError("per-prompt scores need the batch's prompt indices")
            self._batch_indices = torch.as_tensor(indices, dtype=torch.long)
        return lengths.to(self.device)

    def add_evidence(self, group: int, target_rows: Tensor, chance: dict[str, Tensor]) -> dict[str, Tensor]:
        """Add one batch's per-prompt evidence for the patterns of `groups[group]`: its target rows
        `[batch, group pattern]` and the chance head's partial sums `{base measure: [batch, group pattern]}`.
        Returns the prompts' denominators `{kind: [batch, group pattern]}` for `add_partials`."""
        index = self.group_index[group]
        rows = target_rows.to(self.dtype)
        chance = {m: value.to(self.dtype) for m, value in chance.items()}
        self.target_rows.index_add_(0, index, rows.sum(dim=0))
        self.prompts_with_targets.index_add_(0, index, (rows > 0).sum(dim=0).to(self.dtype))
        denominators = {}
        for kind in self.denominators:
            if kind == "target rows":
                denominator = rows
            elif kind == "prompts":
                denominator = torch.ones_like(rows)
            else:
                denominator = chance[kind.removeprefix("chance of ")]
            denominators[kind] = denominator
            self.denominators[kind].index_add_(0, index, denominator.sum(dim=0))
            self.denominator_squares[kind].index_add_(0, index, denominator.square().sum(dim=0))
        for measure in self.measures:
            # The chance head of a relative measure: its own sums over the base's chance sums.
            self.chance[measure].index_add_(0, index, chance[_base(measure)].sum(dim=0))
        return denominators

    def chosen_heads(self, layer: int, attention: Tensor) -> Tensor:
        """A layer's attention `[batch, head_index, ...]` on the accumulator's device, its asked heads alone."""
        heads = self.head_index[layer]
        attention = attention.detach()
        if attention.device != self.device:
            attention = attention.to(self.device)
        return attention if heads is None else attention.index_select(1, heads)

    def add_layer(self, layer: int, attention: Attention,
                  outputs: LayerOutputs | None = None) -> None:
        """Reduce one layer's attention `[batch, head_index, q, k]` into the running sums
        (`outputs`: the layer's outputs, every head, for measures that read them: `copying`)."""
        heads = self.head_index[layer]
        attention = self.chosen_heads(layer, attention)
        extras = self._layer_outputs(outputs, heads)
        for number, (targets, denominators) in enumerate(zip(self._batch, self._batch_denominators)):
            for measure, partial in partial_sums(attention, targets, self.measures, extras).items():
                self.add_partials(layer, number, measure, partial, denominators)

    def add_partials(self, layer: int, group: int, measure: str, partial: Tensor,
                     denominators: dict[str, Tensor]) -> None:
        """Add one layer's per-prompt partial sums `[batch, group pattern, chosen head]` of `measure`
        (`denominators` from `add_evidence`)."""
        index, heads = self.group_index[group], self.head_index[layer]
        partial = partial.to(self.dtype)
        denominator = denominators[_denominator_kind(measure)][:, :, None]
        self._scatter(self.sums[measure][layer], index, heads, partial.sum(dim=0))
        self._scatter(self.squares[measure][layer], index, heads, partial.square().sum(dim=0))
        self._scatter(self.cross[measure][layer], index, heads, (partial * denominator).sum(dim=0))
        if self.per_prompt is not None:
            self._keep_per_prompt(self.per_prompt[measure], layer, index, heads, partial, denominator)

    def _layer_outputs(self, outputs: LayerOutputs | None, heads: Tensor | None) -> LayerOutputs | None:
        """A layer's outputs on the accumulator's device, its asked heads alone."""
        if outputs is None:
            return None
        z, W_O = outputs.z.to(self.device), outputs.W_O.to(self.device)
        if heads is not None:
            z, W_O = z.index_select(2, heads), W_O.index_select(0, heads)
        return LayerOutputs(z, W_O, outputs.final_scale.to(self.device), outputs.tokens.to(self.device),
                            outputs.readout)

    def _scatter(self, rows: Tensor, index: Tensor, heads: Tensor | None, values: Tensor) -> None:
        """Add `values` `[group pattern, chosen head]` into `rows` `[pattern, head]`."""
        if heads is None:
            rows.index_add_(0, index, values)
        else:
            block = torch.zeros(values.shape[0], self.n_heads, dtype=rows.dtype, device=rows.device)
            block.index_copy_(1, heads, values)
            rows.index_add_(0, index, block)

    def _keep_per_prompt(self, kept: Tensor, layer: int, index: Tensor, heads: Tensor | None,
                         partial: Tensor, denominator: Tensor) -> None:
        """Write one layer's per-prompt scores into `kept`, a measure's `[n_prompts, layer, pattern, head]`."""
        prompts = self._batch_indices
        if prompts is None:  # begin_batch keeps them whenever per-prompt scores are kept
            raise ValueError("per-prompt scores need the batch's prompt indices")
        scores = torch.where(denominator > 0, partial / denominator.clamp_min(1e-300), torch.nan).float().cpu()
        block = kept[:, layer]  # [n_prompts, pattern, head] view
        head_index = torch.arange(self.n_heads) if heads is None else heads.cpu()
        block[prompts[:, None, None], index.cpu()[None, :, None], head_index[None, None, :]] = scores

    def result(self) -> Tallies:
        """Scores, intervals, baselines and sample sizes, float32 on the CPU (see `Tallies`)."""
        asked = asked_heads(self.heads, self.n_layers, self.n_heads)
        n_with_targets = self.prompts_with_targets.cpu().to(torch.float64)
        values: dict[str, Tensor] = {}
        low: dict[str, Tensor] = {}
        high: dict[str, Tensor] = {}
        baseline: dict[str, Tensor] = {}
        for measure in self.measures:
            kind = _denominator_kind(measure)
            total = self.denominators[kind].cpu().to(torch.float64)  # [pattern]
            if kind == "prompts":
                total = torch.full_like(total, float(self.n_prompts))
                n = total.clone()
            else:
                n = n_with_targets
            sums = self.sums[measure].cpu().to(torch.float64).permute(1, 0, 2)  # [pattern, layer, head]
            squares = self.squares[measure].cpu().to(torch.float64).permute(1, 0, 2)
            cross = self.cross[measure].cpu().to(torch.float64).permute(1, 0, 2)
            denominator_squares = self.denominator_squares[kind].cpu().to(torch.float64)
            t = total[:, None, None]
            ratio = torch.where(t > 0, sums / t.clamp_min(1e-300), torch.nan)
            # Residuals e_p = x_p - R d_p: sum e^2 = sum x^2 - 2 R sum x d + R^2 sum d^2 (never below 0).
            residual = (squares - 2 * ratio * cross + ratio.square() * denominator_squares[:, None, None]).clamp_min(0)
            m = n[:, None, None]
            variance = residual * m / ((m - 1).clamp_min(1) * t.square().clamp_min(1e-300))
            # Student's t with n - 1 degrees of freedom: few prompts give honestly wide intervals.
            half_width = torch.where(m >= 2, t_quantile_975(m - 1) * variance.sqrt(), torch.nan)
            floor, ceiling = MEASURES[measure].bounds  # e.g. mass lies in 0 .. 1, and so does its interval
            lower = (ratio - half_width).clamp(min=floor, max=ceiling)
            upper = (ratio + half_width).clamp(min=floor, max=ceiling)
            for target, grid in ((values, ratio), (low, lower), (high, upper)):
                target[measure] = torch.where(asked[None], grid, torch.nan).to(torch.float32).contiguous()
            chance = self.chance[measure].cpu().to(torch.float64)
            baseline[measure] = torch.where(total > 0, chance / total.clamp_min(1e-300), torch.nan).to(torch.float32)
        per_prompt = None
        if self.per_prompt is not None:
            per_prompt = {m: torch.where(asked[None, None], grid.permute(0, 2, 1, 3), torch.nan).contiguous()
                          for m, grid in self.per_prompt.items()}  # [prompt, pattern, layer, head]
        return Tallies(values, low, high, baseline, self.target_rows.cpu().round().long(),
                       self.prompts_with_targets.cpu().round().long(), self.n_prompts, per_prompt, self.attention)


    # ---- state: checkpoints and sums across processes --------------------------------------
    # These walk every running-sum tensor the accumulator holds (`running_sums`), whatever the
    # measures' arithmetic adds, so that saving, loading and summing across ranks cover them all.

    _NOT_SUMS = frozenset({"head_index", "group_index", "per_prompt", "_batch", "_batch_denominators",
                           "_batch_indices"})

    def running_sums(self) -> dict[str, Tensor]:
        """Every running sum by a stable name (`"sums/mass"`, `"target_rows"`, ...): the tensors
        and dicts of tensors among the accumulator's attributes, but for its fixed indices, the
        per-prompt scores and a batch's work."""
        found: dict[str, Tensor] = {}
        for attribute, value in sorted(vars(self).items()):
            if attribute in self._NOT_SUMS:
                continue
            if isinstance(value, Tensor):
                found[attribute] = value
            elif isinstance(value, dict) and value and all(isinstance(v, Tensor) for v in value.values()):
                found.update({f"{attribute}/{key}": tensor for key, tensor in sorted(value.items())})
        return found

    def state_dict(self) -> dict[str, Any]:
        """The running sums, the prompt count and the per-prompt scores (when kept), on the CPU:
        plain dicts, lists and tensors, which `torch.load(..., weights_only=True)` reads back."""
        return {
            "shape": [self.n_patterns, self.n_layers, self.n_heads],
            "measures": list(self.measures),
            "n_prompts": self.n_prompts,
            "sums": {name: tensor.detach().cpu().clone() for name, tensor in self.running_sums().items()},
            "per_prompt": None if self.per_prompt is None else dict(self.per_prompt),
            "attention": self._attention,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()`'s output; a state of another shape or other sums is a `ValueError`."""
        mine = self.running_sums()
        sums = state.get("sums", {})
        if state.get("shape") != [self.n_patterns, self.n_layers, self.n_heads] or sorted(sums) != sorted(mine):
            raise ValueError("the saved running sums do not fit this run's patterns, measures and model")
        for name, tensor in mine.items():
            if sums[name].shape != tensor.shape:
                raise ValueError(f"the saved running sum {name} has shape {tuple(sums[name].shape)}, "
                                 f"not {tuple(tensor.shape)}")
            tensor.copy_(sums[name].to(tensor.device, tensor.dtype))
        self.n_prompts = int(state["n_prompts"])
        self._attention = state.get("attention")
        if (state.get("per_prompt") is None) != (self.per_prompt is None):
            raise ValueError("the saved state and this run differ in keeping per-prompt scores")
        if self.per_prompt is not None:
            self.per_prompt = {m: state["per_prompt"][m].clone() for m in self.measures}

    def reserve_prompts(self, n_prompts: int) -> None:
        """Make room for the per-prompt scores of prompts 0 .. n_prompts-1 (a stream's total is
        learnt as it is read): the rows grow by doubling, new rows NaN."""
        if self.per_prompt is None:
            return
        rows = next(iter(self.per_prompt.values())).shape[0]
        if n_prompts <= rows:
            return
        grown = max(n_prompts, 2 * rows)
        for measure, grid in self.per_prompt.items():
            extra = torch.full((grown - rows, *grid.shape[1:]), math.nan, dtype=grid.dtype)
            self.per_prompt[measure] = torch.cat([grid, extra])

    def trim_prompts(self, n_prompts: int) -> None:
        """Cut the per-prompt rows to exactly `n_prompts` (after `reserve_prompts` grew them)."""
        if self.per_prompt is not None:
            self.reserve_prompts(n_prompts)
            self.per_prompt = {m: grid[:n_prompts].contiguous() for m, grid in self.per_prompt.items()}

    def all_reduce(self, group: Any = None) -> None:
        """Sum every running sum and the prompt count over the processes of `torch.distributed`
        (`group`: the default group when None), in one flattened `all_reduce`: afterwards each
        process holds the sums of all of them, as if it had scored every prompt itself."""
        import torch.distributed as dist

        sums = self.running_sums()
        flat = torch.cat([tensor.reshape(-1).to(self.dtype) for tensor in sums.values()]
                         + [torch.tensor([float(self.n_prompts)], dtype=self.dtype, device=self.device)])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
        start = 0
        for tensor in sums.values():
            tensor.copy_(flat[start:start + tensor.numel()].view_as(tensor))
            start += tensor.numel()
        self.n_prompts = int(round(float(flat[start])))

    def all_gather_prompts(self, n_prompts: int, mine: Tensor, group: Any = None) -> None:
        """Give every process the per-prompt scores of all prompts 0 .. n_prompts-1: each holds the
        rows where `mine` (bool `[n_prompts]`) is True, and the rows of the others arrive by one
        `all_reduce` per measure (every other process adds exact zeros to a row)."""
        import torch.distributed as dist

        if self.per_prompt is None:
            return
        self.trim_prompts(n_prompts)
        for measure, grid in self.per_prompt.items():
            shared = torch.where(mine[:, None, None, None], grid, torch.zeros((), dtype=grid.dtype))
            shared = shared.to(self.device)
            dist.all_reduce(shared, op=dist.ReduceOp.SUM, group=group)
            self.per_prompt[measure] = shared.cpu()


def _base(measure: str) -> str:
    """The measure whose chance head a measure is judged against: its `relative_to`, or itself."""
    return MEASURES[measure].relative_to or measure


def _denominator_kind(measure: str) -> str:
    entry = MEASURES[measure]
    return f"chance of {entry.relative_to}" if entry.relative_to else entry.averaged_over


def _chance_measures(measures: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_base(m) for m in measures))


def _prepared_measures(measures: tuple[str, ...]) -> tuple[str, ...]:
    """The measures plus those they are relative to (whose chance sums they need prepared)."""
    return tuple(dict.fromkeys([*measures, *_chance_measures(measures)]))
