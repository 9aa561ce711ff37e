"""The prompts of a `describe` run, batch by batch: every head's attention and the base matrices.

`attention_batches` is the loop the sufficient statistics (`search.collect_stats`) and the mixtures'
fit (`mixture.py`) share: per batch of prompts, one pass gives every layer's attention (the engine's
pass to the logits when a base reads the model's predictions, else a hooked pass stopped after the
last layer asked for), and the normal compiler and engine give each base condition's matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from patternlang.discovery.families import Base
from patternlang.discovery.last_first import select_keys
from patternlang.engine.batching import pad_batch, plan_batches
from patternlang.engine.forward import run_attention_hooks
from patternlang.engine.inputs import model_pass, prompt_inputs
from patternlang.engine.pattern_tensors import resolve_patterns
from patternlang.models.facts import model_facts

__all__ = ["base_matrices", "layer_attention", "reads_predictions", "attention_batches", "prompt_groups"]


def base_matrices(model: Any, items: Sequence[Any], token_lists: Sequence[Tensor], indices: Sequence[int],
                  bases: Sequence[Base], compiled: dict[str, Any],
                  predictions: dict[int | None, Tensor] | None = None) -> tuple[Any, Tensor]:
    """The batch of prompts `indices` (right-padded) and its base matrices `[base, batch, n, n]` (0/1),
    each conjunct by the normal compiler and engine (`detection_tensors`), conjunctions as products.
    `predictions`: the batch's (the engine's pass to the logits, `model_pass`), for bases reading
    `pred` (None: computed here by that pass when a base needs them)."""
    names = list(compiled)
    chosen_items = [items[i] for i in indices]
    chosen_tokens = [token_lists[i] for i in indices]
    local = pad_batch(chosen_tokens, list(range(len(indices))), pad=0, device=torch.device("cpu"))
    detection = None
    if names:
        detectors = resolve_patterns([compiled[name] for name in names])
        inputs = prompt_inputs(model, None, chosen_items, chosen_tokens, detectors)
        if predictions is None and reads_predictions(compiled):
            padded = pad_batch(token_lists, list(indices), pad=model_facts(model).pad_id, device=torch.device("cpu"))
            passed = model_pass(model, padded.tokens, [], detectors, ())
            predictions = None if passed is None else passed.predictions
        if predictions is not None:
            predictions = {layer: top.to("cpu") for layer, top in predictions.items()}
        detection = inputs.detection(model, local, detectors, predictions) > 0  # [conjunct, batch, n, n]
    row = {name: i for i, name in enumerate(names)}
    n = local.tokens.shape[1]
    triangle = torch.ones(n, n, dtype=torch.bool).tril()
    real = local.mask[:, :, None] & local.mask[:, None, :] & triangle
    out = torch.empty(len(bases), len(indices), n, n, dtype=torch.bool)
    keys = torch.arange(n)
    for i, base in enumerate(bases):
        matrix = real.clone()
        for cond in base.conjuncts:
            if cond == "k < q":
                matrix &= keys[:, None] > keys[None, :]
            elif cond != "true" and detection is not None:
                matrix &= detection[row[cond]]
        out[i] = select_keys(matrix, base.select) if base.select else matrix
    return local, out


def reads_predictions(compiled: dict[str, Any]) -> bool:
    """Whether a compiled base reads the model's predictions (`pred[q]`: a pass to the logits)."""
    return any("predictions" in pattern.needs for pattern in compiled.values())


def layer_attention(model: Any, tokens: Tensor, layers: Sequence[int]) -> Tensor:
    """`[batch, layer x head, n, n]`: every head of `layers`, in order, from one hooked pass."""
    caught: dict[int, Tensor] = {}
    run_attention_hooks(model, tokens, layers, lambda layer, pattern: caught.__setitem__(layer, pattern.detach()
                                                                                          .to("cpu", torch.float32)))
    return torch.cat([caught[layer] for layer in layers], dim=1)


def prompt_groups(items: Sequence[Any], indices: Sequence[int]) -> list[list[int]]:
    """`indices` split into the text prompts and the token-id prompts (each batch is of one kind), empty groups left out."""
    groups = [[i for i in indices if isinstance(items[i], str)], [i for i in indices if not isinstance(items[i], str)]]
    return [group for group in groups if group]


def attention_batches(model: Any, items: Sequence[Any], token_lists: Sequence[Tensor], indices: Sequence[int],
                      layers: Sequence[int], bases: Sequence[Base], compiled: dict[str, Any], *, batch_size: int,
                      say: Callable[[str], None] = lambda _m: None, label: str = "") -> Iterator[tuple[Any, Tensor, Tensor]]:
    """Per batch of the prompts `indices`: `(padded, attention, matrices)`, with `padded` the batch as
    `pad_batch` gives it (on the model's device), `attention [batch, layer x head, n, n]` every head of
    `layers` in order (float32, on the CPU, padding keys zeroed) and `matrices [base, batch, n, n]`
    the bases' matrices (bool, `base_matrices`)."""
    facts = model_facts(model)
    plan = plan_batches([token_lists[i].numel() for i in indices], batch_size)
    # Bases reading `pred` need the engine's pass to the logits, which also gives the attention.
    detectors = resolve_patterns(list(compiled.values())) if reads_predictions(compiled) else []
    for number, group in enumerate(plan, 1):
        chosen = [indices[i] for i in group]
        padded = pad_batch(token_lists, chosen, pad=facts.pad_id, device=torch.device(facts.device))
        passed = model_pass(model, padded.tokens, layers, detectors, ()) if detectors else None
        _batch, matrices = base_matrices(model, items, token_lists, chosen, bases, compiled,
                                         None if passed is None else passed.predictions)
        if passed is None:
            attention = layer_attention(model, padded.tokens, layers)
        else:
            attention = torch.cat([passed.attention[layer].to("cpu", torch.float32) for layer in layers], dim=1)
            del passed
        # Padding keys may hold attention in models that ignore it: only real cells count.
        attention = attention * padded.mask.cpu()[:, None, None, :]
        yield padded, attention, matrices
        say(f"describe: {label} batch {number}/{len(plan)}")
