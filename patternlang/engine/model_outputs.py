"""Model outputs for the patterns and measures that need them: one full forward pass per batch.

Most runs need only attention: `forward.run_attention_hooks` stops the pass after the last
needed layer, and nothing here runs. A pattern that reads the model's predictions (`pred`,
`predicted`, `lens_predicted`: "predictions" in its needs) or a measure that reads the heads'
outputs (`copying`: "z") cannot be scored until the pass has reached the logits. For such runs
the engine *defers the scoring* instead of running the model twice: one pass to the logits,
hooked on every needed layer's `hook_pattern` (kept, not reduced), on `hook_z` for `copying`,
on `blocks.{L}.hook_resid_post` for the logit lens and on the final residual stream; then the
detection tensors are built from the predictions and every kept layer is reduced as usual.
The price is memory (the needed layers' attention of one batch is held until the end of the
pass; the batch planner counts it), not time: one forward pass per batch, as before.

`Readout` is the model's final norm and unembedding, used for the logit lens and for the
direct logit attribution of `copying` (`engine/copying.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from patternlang.errors import InputError
from patternlang.measure_table import MEASURE_TABLE
from patternlang.syntax.predictions import prediction_requests

RESID_POST = "blocks.{}.hook_resid_post"
HOOK_Z = "blocks.{}.attn.hook_z"
HOOK_PATTERN = "blocks.{}.attn.hook_pattern"


@dataclass(frozen=True, slots=True)
class OutputsPlan:
    """What a run needs from the model beyond attention: `predictions` `{layer or None: top N}`
    (None: the final logits) and, for `copying`, every needed layer's `hook_z` with the final
    residual stream's norm scale (`z`)."""

    predictions: dict[int | None, int] = field(default_factory=dict)
    z: bool = False


def outputs_plan(detectors: Sequence[Any], measures: Sequence[str], n_layers: int) -> OutputsPlan | None:
    """The run's `OutputsPlan`, or None when nothing but attention is needed (today's single stopped pass)."""
    exprs = [d.pattern.program.expr for d in detectors
             if d.pattern is not None and "predictions" in d.pattern.needs]
    requests = prediction_requests(exprs)
    for layer in requests:
        if layer is not None and not 0 <= layer < n_layers:
            raise InputError(f"a pattern reads the logit lens after block {layer}, but the model has "
                             f"{n_layers} blocks (0 to {n_layers - 1})")
    z = any("z" in MEASURE_TABLE[m].needs for m in measures)
    if not requests and not z:
        return None
    return OutputsPlan(requests, z)


def extra_bytes_per_prompt(model: Any, plan: OutputsPlan | None, n_layers_needed: int) -> Callable[[int], float] | None:
    """Memory a deferred run holds per prompt of length L on top of a plain one: the needed layers'
    attention, their `z`, and logits over the vocabulary (final and per lens layer)."""
    if plan is None:
        return None
    cfg = model.cfg
    heads, d_head = int(cfg.n_heads), int(getattr(cfg, "d_head", 64) or 64)
    vocab = int(getattr(cfg, "d_vocab", 50_000) or 50_000)
    d_model = int(getattr(cfg, "d_model", 1024) or 1024)
    n_logits = 1 + sum(1 for layer in plan.predictions if layer is not None)

    def estimate(length: int) -> float:
        kept = n_layers_needed * heads * length * length
        z = n_layers_needed * heads * length * d_head if plan.z else 0
        copying = heads * length * (d_model + 2 * length) if plan.z else 0
        return 4.0 * (kept + z + copying + 2 * n_logits * length * vocab)

    return estimate


class Readout:
    """The model's final norm and unembedding: `logits(resid)` (the logit lens), `scale(resid)`
    (the final norm's divisor per position, `[batch, pos]`), `centre(x)` (LayerNorm's mean removal;
    nothing for RMSNorm) and `unembed_columns(tokens)` (`W_U[:, token]` times the norm's weight,
    `[batch, pos, d_model]`): everything direct logit attribution needs, as TransformerLens'
    `cache.apply_ln_to_stack` and `model.W_U` give it."""

    def __init__(self, model: Any):
        self.model = model
        cfg = model.cfg
        self.kind = getattr(cfg, "normalization_type", None)
        self.eps = float(getattr(cfg, "eps", 1e-5) or 1e-5)
        norm = getattr(model, "ln_final", None)
        weight = None
        if norm is not None and self.kind is not None:
            weight = getattr(norm, "w", None)
            if weight is None:
                parameters = dict(norm.named_parameters())
                weight = next((p for name, p in parameters.items() if name.endswith("weight")), None)
        self.weight = None if weight is None else weight.detach()
        self.W_U = model.W_U.detach()  # [d_model, d_vocab]

    def output_weights(self) -> Tensor:
        """Every head's `W_O`, `[layer, head_index, d_head, d_model]`, detached (read when asked: a
        `TransformerBridge` stacks it from its layers)."""
        return self.model.W_O.detach()

    def logits(self, resid: Tensor) -> Tensor:
        model = self.model
        if getattr(model, "ln_final", None) is not None and getattr(model, "unembed", None) is not None:
            return model.unembed(model.ln_final(resid))
        normalised = self.centre(resid) / self.scale(resid)[..., None]
        if self.weight is not None:
            normalised = normalised * self.weight
        return normalised @ self.W_U.to(normalised.dtype)

    def centre(self, x: Tensor) -> Tensor:
        if self.kind in ("LN", "LNPre"):
            return x - x.mean(dim=-1, keepdim=True)
        return x

    def scale(self, resid: Tensor) -> Tensor:
        resid = resid.float()
        if self.kind in ("LN", "LNPre"):
            return (resid.var(dim=-1, unbiased=False) + self.eps).sqrt()
        if self.kind in ("RMS", "RMSPre"):
            return (resid.square().mean(dim=-1) + self.eps).sqrt()
        return torch.ones(resid.shape[:-1], dtype=resid.dtype, device=resid.device)

    def unembed_columns(self, tokens: Tensor) -> Tensor:
        columns = self.W_U.float()[:, tokens].permute(*range(1, tokens.dim() + 1), 0)  # [..., d_model]
        if self.weight is not None:
            columns = columns * self.weight.float()
        return columns


@dataclass
class BatchOutputs:
    """What one deferred pass gave for one batch."""

    attention: dict[int, Tensor]                      # layer -> [batch, head, q, k]
    predictions: dict[int | None, Tensor]             # layer or None -> [batch, pos, top] ranked ids
    z: dict[int, Tensor] = field(default_factory=dict)  # layer -> [batch, pos, head, d_head]
    final_scale: Tensor | None = None                 # [batch, pos], the final norm's divisor
    tokens: Tensor | None = None


def top_predictions(logits: Tensor, top: int) -> Tensor:
    """`[batch, pos, top]` ranked token ids of `logits` `[batch, pos, vocab]`."""
    return logits.topk(min(top, logits.shape[-1]), dim=-1).indices


def run_with_outputs(model: Any, tokens: Tensor, layers: Sequence[int], plan: OutputsPlan,
                     readout: Readout | None = None,
                     intervening: Sequence[tuple[str, Callable[..., Any]]] = ()) -> BatchOutputs:
    """One forward pass to the logits, keeping what `plan` asks for and every layer's attention in `layers`
    (`intervening`: `(hook name, hook)` pairs run first, an intervention's)."""
    layers = sorted(set(layers))
    readout = readout or Readout(model)
    attention: dict[int, Tensor] = {}
    z: dict[int, Tensor] = {}
    resid: dict[int, Tensor] = {}
    last = int(model.cfg.n_layers) - 1
    lens_layers = sorted(layer for layer in plan.predictions if layer is not None)
    resid_layers = set(lens_layers) | ({last} if plan.z else set())

    def keep(store: dict[int, Tensor], layer: int) -> Callable[..., None]:
        def hook(value: Tensor, hook: Any = None) -> None:
            store[layer] = value.detach()
        return hook

    hooks = [*intervening, *((HOOK_PATTERN.format(layer), keep(attention, layer)) for layer in layers)]
    if plan.z:
        hooks += [(HOOK_Z.format(layer), keep(z, layer)) for layer in layers]
    hooks += [(RESID_POST.format(layer), keep(resid, layer)) for layer in sorted(resid_layers)]
    with torch.inference_mode():
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks, return_type="logits")
        missing = sorted(set(layers) - set(attention))
        if missing:
            raise InputError(f"the model never produced {HOOK_PATTERN.format(missing[0])}",
                             hint="the model must expose attention patterns")
        predictions: dict[int | None, Tensor] = {}
        if None in plan.predictions:
            predictions[None] = top_predictions(logits, plan.predictions[None])
        del logits
        for layer in lens_layers:
            predictions[layer] = top_predictions(readout.logits(resid[layer]), plan.predictions[layer])
        final_scale = readout.scale(resid[last]) if plan.z else None
    return BatchOutputs(attention, predictions, z, final_scale, tokens)
