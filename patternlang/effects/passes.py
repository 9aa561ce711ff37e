"""The forward passes of an effects run, on `blocks.{l}.attn.hook_z` (`[batch, pos, head_index, d_head]`).

- `clean_pass`: the model unchanged; the metric per prompt, and every layer's `z` at the chosen
  positions (what mean ablation averages, what resampling and patching copy);
- `gradient_pass`: the same with one backward pass: the metric's gradient with respect to every
  head's `z` at those positions (attribution patching);
- `intervened`: the metric with head sets' `z` replaced at those positions. Several sets run in
  one forward pass: the batch is repeated along the batch axis, one replica per set, each with
  its own heads replaced (as many replicas as the memory budget allows).

Per prompt, `z` and gradients are kept at the chosen positions only: `[n_positions, n_layers,
n_heads, d_head]`, so an END-only run keeps one position per prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import Tensor

from patternlang.effects.effect_inputs import EffectInputs, Positions, position_mask
from patternlang.effects.metrics import Metric, MetricBatch
from patternlang.engine.batching import auto_budget
from patternlang.errors import InputError

HOOK_Z = "blocks.{}.attn.hook_z"
DEFAULT_BUDGET = 1 << 30  # bytes a pass may plan for on top of the model (1 GiB), at most
Heads = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Shape:
    n_layers: int
    n_heads: int
    d_head: int
    d_model: int
    d_vocab: int

    @classmethod
    def of(cls, model: Any) -> Shape:
        cfg = model.cfg
        return cls(int(cfg.n_layers), int(cfg.n_heads), int(cfg.d_head), int(cfg.d_model), int(cfg.d_vocab))


def row_bytes(shape: Shape, length: int, *, gradient: bool = False) -> float:
    """Memory one prompt row of `length` tokens takes in a pass: logits (and their softmax) and the
    residual stream's activations; with `gradient`, everything the backward pass keeps."""
    logits = 3 * length * shape.d_vocab * 4
    activations = length * shape.n_layers * shape.d_model * 4 * (24 if gradient else 4)
    attention = shape.n_layers * shape.n_heads * length * length * 4 * (3 if gradient else 1)
    return float(logits + activations + attention)


def rows_per_pass(model: Any, inputs: EffectInputs, budget: float | None, *, gradient: bool = False) -> int:
    budget = budget if budget is not None else min(DEFAULT_BUDGET, auto_budget(inputs.device))
    return max(1, int(budget // row_bytes(Shape.of(model), inputs.longest, gradient=gradient)))


def n_batches(model: Any, inputs: EffectInputs, batch_size: int | None, budget: float | None, *,
              gradient: bool = False) -> int:
    """How many batches `clean_pass` makes of the prompts (for progress)."""
    return len(inputs.batches(batch_size or rows_per_pass(model, inputs, budget, gradient=gradient)))


@dataclass
class CleanRun:
    """The unchanged model on every prompt: `values` `[n_prompts]`, and per prompt `z` at the chosen
    positions `[n_positions, n_layers, n_heads, d_head]` (and the gradient, from `gradient_pass`)."""

    values: Tensor
    z: list[Tensor]
    grad: list[Tensor] | None = None


@contextmanager
def frozen_weights(model: Any) -> Iterator[None]:
    """The model's parameters without gradients for the duration (attribution needs only the
    gradient with respect to the activations), restored afterwards."""
    changed = [p for p in model.parameters() if p.requires_grad]
    for parameter in changed:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in changed:
            parameter.requires_grad_(True)


def _split(rows: Tensor, counts: Sequence[int]) -> list[Tensor]:
    return list(torch.split(rows, list(counts)))


def clean_pass(model: Any, inputs: EffectInputs, metric: Metric, positions: Positions, *, gradient: bool = False,
               batch_size: int | None = None, budget: float | None = None,
               advance: Callable[[], None] = lambda: None, keep_z: bool = True) -> CleanRun:
    """The metric on the unchanged model, every layer's `z` at `positions` (and with `gradient`, the
    metric's gradient with respect to it: one forward and one backward pass per batch). `keep_z=False`
    (zero ablation needs no clean `z`): the metric alone, nothing kept."""
    shape = Shape.of(model)
    size = batch_size or rows_per_pass(model, inputs, budget, gradient=gradient)
    values = torch.full((len(inputs),), torch.nan)
    z_rows: list[Tensor | None] = [None] * len(inputs)
    grad_rows: list[Tensor | None] = [None] * len(inputs)
    for indices in inputs.batches(size):
        batch = inputs.batch(indices)
        mask = position_mask(batch, positions)
        counts = mask.sum(dim=1).tolist()
        kept: dict[int, Tensor] = {}
        deltas: dict[int, Tensor] = {}
        hooks = [(HOOK_Z.format(layer), _keeper(kept, deltas, mask, gradient, layer))
                 for layer in range(shape.n_layers)] if keep_z or gradient else []
        if gradient:
            with frozen_weights(model), torch.enable_grad():
                logits = model.run_with_hooks(batch.tokens, fwd_hooks=hooks, return_type="logits")
                batch_values = metric(logits, batch)
                missing = _missing(deltas, shape)
                if missing:
                    raise missing
                ordered = [deltas[layer] for layer in range(shape.n_layers)]
                total = torch.where(torch.isfinite(batch_values), batch_values, 0.0).sum()
                grads = torch.autograd.grad(total, ordered, allow_unused=True)
            del logits
            stacked = torch.stack([(g if g is not None else torch.zeros_like(d))[mask]
                                   for g, d in zip(grads, ordered)], dim=1)
            for row, part in zip(indices, _split(stacked.detach().cpu(), counts)):
                grad_rows[row] = part
        else:
            with torch.inference_mode():
                logits = model.run_with_hooks(batch.tokens, fwd_hooks=hooks, return_type="logits")
                batch_values = metric(logits, batch)
            del logits
            missing = _missing(kept, shape) if hooks else None
        if missing:
            raise missing
        if hooks:
            stacked_z = torch.stack([kept[layer] for layer in range(shape.n_layers)], dim=1).cpu()
            for row, part in zip(indices, _split(stacked_z, counts)):
                z_rows[row] = part
        values[list(indices)] = batch_values.detach().float().cpu()
        advance()
    return CleanRun(values, [z for z in z_rows if z is not None] if all(z is not None for z in z_rows) else [],
                    [g for g in grad_rows if g is not None] if gradient else None)


def _keeper(kept: dict[int, Tensor], deltas: dict[int, Tensor], mask: Tensor, gradient: bool,
            layer: int) -> Callable[..., Tensor]:
    """The clean pass's hook on one layer's z: keep it at the chosen positions; with `gradient`, add
    a zero tensor that requires grad (its gradient is the metric's with respect to z, and it leaves
    the graph to earlier layers whole, as detaching z would not)."""
    def hook(z: Tensor, hook: Any = None) -> Tensor:
        kept[layer] = z.detach()[mask]  # [n_masked, n_heads, d_head]
        if gradient:
            delta = torch.zeros_like(z, requires_grad=True)
            deltas[layer] = delta
            return z + delta
        return z
    return hook


def _missing(found: dict[int, Any], shape: Shape) -> InputError | None:
    absent = [layer for layer in range(shape.n_layers) if layer not in found]
    if not absent:
        return None
    return InputError(f"the model never produced {HOOK_Z.format(absent[0])}",
                      hint="effects replace each head's output z, TransformerLens' hook_z: the model must expose it")


class Replacement:
    """What replaces a head's `z` at the chosen positions: zeros (`zero`), one vector per head
    (`mean`: `[n_layers, n_heads, d_head]`), or per prompt its own values (`resample`, patching:
    `[n_positions, n_layers, n_heads, d_head]`, aligned with the prompt's chosen positions)."""

    def __init__(self, kind: str, mean: Tensor | None = None, per_prompt: Sequence[Tensor] | None = None):
        self.kind, self.mean, self.per_prompt = kind, mean, per_prompt

    def values(self, prompt: int, z: Tensor) -> Tensor:
        """The replacement of prompt `prompt`'s `z` at its chosen positions `[n_positions, L, H, d]`."""
        if self.kind == "zero":
            return torch.zeros_like(z)
        if self.kind == "mean":
            assert self.mean is not None
            return self.mean.expand_as(z)
        assert self.per_prompt is not None
        return self.per_prompt[prompt]

    def dense(self, layer: int, indices: Sequence[int], mask: Tensor, like: Tensor) -> Tensor | float:
        """The replacement for one layer of a batch, broadcastable to `[batch, pos, n_heads, d_head]`."""
        if self.kind == "zero":
            return 0.0
        if self.kind == "mean":
            assert self.mean is not None
            return self.mean[layer].to(like.device, like.dtype)
        assert self.per_prompt is not None
        dense = torch.zeros(mask.shape + like.shape[2:], dtype=like.dtype, device=like.device)
        dense[mask] = torch.cat([self.per_prompt[i][:, layer] for i in indices]).to(like.device, like.dtype)
        return dense


def intervened(model: Any, inputs: EffectInputs, metric: Metric, positions: Positions, replacement: Replacement,
               sets: Sequence[Heads], *, batch_size: int | None = None, budget: float | None = None,
               advance: Callable[[int], None] = lambda n: None, max_replicas: int | None = None) -> Tensor:
    """`[n_sets, n_prompts]`: the metric with each set's heads' `z` replaced at `positions`
    (`max_replicas`: at most that many sets per forward pass; default: as many as memory allows)."""
    shape = Shape.of(model)
    out = torch.full((len(sets), len(inputs)), torch.nan)
    if not sets:
        return out
    rows = rows_per_pass(model, inputs, budget)  # prompt rows one pass may hold, replicas included
    size = batch_size or min(len(inputs), rows)
    for indices in inputs.batches(size):
        batch = inputs.batch(indices)
        mask = position_mask(batch, positions)
        replicas = max(1, rows // len(indices))
        if max_replicas is not None:
            replicas = max(1, min(replicas, max_replicas))
        for start in range(0, len(sets), replicas):
            chunk = sets[start:start + replicas]
            values = run_replicas(model, batch, mask, replacement, chunk, metric, shape)
            out[start:start + len(chunk), list(indices)] = values.cpu()
            advance(len(chunk))
    return out


def run_replicas(model: Any, batch: MetricBatch, mask: Tensor, replacement: Replacement, sets: Sequence[Heads],
                 metric: Metric, shape: Shape) -> Tensor:
    """One forward pass of `len(sets)` replicas of the batch, replica r with `sets[r]` replaced: `[n_sets, batch]`."""
    n_sets, n = len(sets), len(batch)
    layers = sorted({layer for heads in sets for layer, _ in heads})
    hooks = []
    for layer in layers:
        chosen = torch.zeros(n_sets, shape.n_heads, dtype=torch.bool, device=mask.device)
        for replica, heads in enumerate(sets):
            for head_layer, head in heads:
                if head_layer == layer:
                    chosen[replica, head] = True
        where = (chosen[:, None, None, :] & mask[None, :, :, None]).reshape(n_sets * n, mask.shape[1], shape.n_heads)
        hooks.append((HOOK_Z.format(layer), _replacer(where, replacement, layer, batch, mask, n_sets)))
    with torch.inference_mode():
        logits = model.run_with_hooks(batch.tokens.repeat(n_sets, 1), fwd_hooks=hooks, return_type="logits")
        values = metric(logits, batch.repeat(n_sets))
    return values.float().reshape(n_sets, n)


def _replacer(where: Tensor, replacement: Replacement, layer: int, batch: MetricBatch, mask: Tensor, n_sets: int):
    def hook(z: Tensor, hook: Any = None) -> Tensor:
        values = replacement.dense(layer, batch.indices, mask, z)
        if isinstance(values, Tensor) and values.dim() == 4:
            values = values.repeat(n_sets, 1, 1, 1)
        return torch.where(where[..., None], torch.as_tensor(values, dtype=z.dtype, device=z.device), z)
    return hook
