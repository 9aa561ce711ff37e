"""The replacement check: the model run with some heads' attention set to their rules' matrices.

Each replaced head's `blocks.{l}.attn.hook_pattern` is overwritten, on every prompt, by its rule's
compiled matrix with rows normalised to sum 1, and all attention on BOS (key 0) in a row where the
rule marks nothing (`rule_attention`); or by its mixture's matrix, the weighted sum of its rules'
such matrices (`mixture.py`). Perplexity of the next token on the prompts before and after says
what the rules miss of what the heads do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from patternlang.discovery.descriptions import Description, Replacement
from patternlang.engine.batching import pad_batch, plan_batches, tokenize
from patternlang.engine.pattern_tensors import resolve_patterns
from patternlang.errors import InputError
from patternlang.engine.inputs import prompt_inputs
from patternlang.heads import head_label, parse_head
from patternlang.library import compile_rule
from patternlang.models.facts import model_facts

__all__ = ["rule_attention", "replace_heads", "perplexity", "best_described", "best_fitted"]


def rule_attention(matrix: Tensor, mask: Tensor) -> Tensor:
    """Rows of `matrix [batch, q, k]` (>= 0) scaled to sum 1 on real cells; a real row without a
    target puts all of it on key 0 (BOS); padding rows are 0."""
    matrix = torch.where(mask[:, :, None] & mask[:, None, :], matrix.to(torch.float32), 0.0)
    total = matrix.sum(dim=-1, keepdim=True)
    rows = torch.where(total > 0, matrix / torch.where(total > 0, total, 1.0), 0.0)
    empty = (total[..., 0] == 0) & mask
    rows[..., 0] = torch.where(empty, 1.0, rows[..., 0])
    return rows


def best_described(description: Description, share: float, n_heads_total: int) -> list[str]:
    """The best-described `share` of all heads: heads with a rule above chance, by held-out IoU
    (the BOS rule, which has none, by its held-out mass), best first."""
    if not 0 < share <= 1:
        raise InputError(f"the share of heads to replace must be in (0, 1], got {share}")
    n = max(1, round(share * n_heads_total))
    described = [h for h in description.heads.values() if h.above_chance and h.rule]
    described.sort(key=lambda h: -(h.iou if h.iou is not None else (h.score or 0.0)))
    return [h.head for h in described[:n]]


def best_fitted(description: Description, share: float, n_heads_total: int) -> list[str]:
    """The best-fitted `share` of all heads for the mixture replacement: heads with a mixture, by its
    fit on the selection half (`mixture_train_fit`), best first; nothing held out is read."""
    if not 0 < share <= 1:
        raise InputError(f"the share of heads to replace must be in (0, 1], got {share}")
    n = max(1, round(share * n_heads_total))
    fitted = [h for h in description.heads.values() if h.mixture and h.mixture_train_fit is not None]
    fitted.sort(key=lambda h: -(h.mixture_train_fit or 0.0))
    return [h.head for h in fitted[:n]]


def perplexity(model: Any, prompts: Any, rules: dict[tuple[int, int], str] | None = None, *,
               sinks: dict[tuple[int, int], float] | None = None, batch_size: int = 16,
               mixtures: dict[tuple[int, int], Sequence[tuple[str, float]]] | None = None) -> tuple[float, int]:
    """Next-token perplexity of `model` on `prompts` (and the number of tokens predicted), with the
    heads of `rules` (`{(layer, head): rule text}`) attending by their rules' matrices; with `sinks`
    (`{(layer, head): share}`), a head keeps that share of every row on BOS and puts the rest on its
    rule's targets (a variant that keeps the head's attention sink). The heads of `mixtures`
    (`{(layer, head): [(rule text, weight), ...]}`, weights >= 0 summing to 1) attend by the weighted
    sum of their rules' matrices."""
    facts = model_facts(model)
    items = list(prompts)
    token_lists = tokenize(model, items)
    parts: dict[tuple[int, int], list[tuple[str, float]]] = {pair: [(rule, 1.0)] for pair, rule in (rules or {}).items()}
    for pair, given in (mixtures or {}).items():
        if pair in parts:
            raise InputError(f"head {head_label(*pair)} is given both a rule and a mixture")
        weights = [float(w) for _, w in given]
        if not given or min(weights) < 0 or abs(sum(weights) - 1.0) > 1e-4:
            raise InputError(f"head {head_label(*pair)}: a mixture's weights must be >= 0 and sum to 1, got {weights}")
        parts[pair] = [(rule, float(w)) for rule, w in given]
    distinct = sorted({rule for mixture in parts.values() for rule, _ in mixture})
    position = {rule: i for i, rule in enumerate(distinct)}
    compiled = [compile_rule(rule, name=f"replaced_{i}") for i, rule in enumerate(distinct)]
    detectors = resolve_patterns(compiled) if compiled else []
    total, count = 0.0, 0
    for group in plan_batches([t.numel() for t in token_lists], batch_size):
        batch = pad_batch(token_lists, group, pad=facts.pad_id, device=torch.device(facts.device))
        hooks = []
        if detectors:
            local = pad_batch([token_lists[i] for i in group], list(range(len(group))), pad=facts.pad_id,
                              device=torch.device("cpu"))
            inputs = prompt_inputs(model, None, [items[i] for i in group], [token_lists[i] for i in group], detectors)
            matrices = inputs.detection(model, local, detectors)  # [rule, batch, n, n]
            targets = rule_attention_all(matrices, local.mask)
            by_layer: dict[int, list[tuple[int, Tensor]]] = {}
            for (layer, head), mixture in parts.items():
                target = sum((weight * targets[position[rule]] for rule, weight in mixture[1:]),
                             mixture[0][1] * targets[position[mixture[0][0]]])
                if sinks and (layer, head) in sinks:
                    share = float(sinks[(layer, head)])
                    target = target * (1.0 - share)
                    target[..., 0] += share * local.mask
                by_layer.setdefault(layer, []).append((head, target))
            hooks = [(f"blocks.{layer}.attn.hook_pattern", _replacer(entries)) for layer, entries in by_layer.items()]
        with torch.inference_mode():
            logits = model.run_with_hooks(batch.tokens, fwd_hooks=hooks, return_type="logits")
        logits = logits.to(torch.float32)
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
        nxt = batch.tokens[:, 1:]
        picked = logprobs.gather(-1, nxt[..., None])[..., 0]
        valid = batch.mask[:, 1:]
        total += float(-(picked * valid).sum())
        count += int(valid.sum())
    if count == 0:
        raise InputError("no next token to predict: every prompt has a single token")
    return math.exp(total / count), count


def rule_attention_all(matrices: Tensor, mask: Tensor) -> Tensor:
    return torch.stack([rule_attention(m, mask) for m in matrices]) if len(matrices) else matrices


def _replacer(entries: Sequence[tuple[int, Tensor]]):
    def hook(pattern: Tensor, hook: Any = None) -> Tensor:
        pattern = pattern.clone()
        for head, target in entries:
            pattern[:, head] = target.to(device=pattern.device, dtype=pattern.dtype)
        return pattern

    return hook


def replace_heads(model: Any, prompts: Any, description: Description | None = None, *, share: float = 0.25,
                  heads: Sequence[str] | None = None, batch_size: int = 16, keep_sink: bool = False,
                  before: tuple[float, int] | None = None, mixture: bool = False) -> Replacement:
    """Perplexity on `prompts` before and after replacing heads by their rules: `heads` (labels),
    or the best-described `share` of all heads of `description`. `keep_sink`: each head keeps its
    held-out share of attention on BOS (`HeadDescription.sink`) and spreads the rest by its rule.
    `mixture`: each head attends by its mixture instead, and the heads (unless given) are the
    best-fitted `share` (`best_fitted`). `before`: the unchanged model's `perplexity` on the same
    prompts, when already known."""
    facts = model_facts(model)
    if mixture and keep_sink:
        raise InputError("keep_sink is for single rules: a mixture carries its own weight on BOS")
    if heads is None:
        if description is None:
            raise InputError("give a description or the heads to replace")
        choose = best_fitted if mixture else best_described
        heads = choose(description, share, facts.n_layers * facts.n_heads)
    rules, sinks, mixtures = {}, {}, {}
    for label in heads:
        entry = description.heads.get(label) if description is not None else None
        if mixture:
            if entry is None or not entry.mixture:
                raise InputError(f"head {label} has no mixture to replace it by")
            mixtures[parse_head(label)] = [(c.rule, c.weight) for c in entry.mixture]
            continue
        if entry is None or not entry.rule:
            raise InputError(f"head {label} has no rule to replace it by")
        rules[parse_head(label)] = entry.rule
        sinks[parse_head(label)] = entry.sink
    prompts = list(prompts)
    before, n_tokens = before or perplexity(model, prompts, batch_size=batch_size)
    after, _ = perplexity(model, prompts, rules, sinks=sinks if keep_sink else None, batch_size=batch_size,
                          mixtures=mixtures)
    replaced = tuple(head_label(*h) for h in (mixtures if mixture else rules))
    return Replacement(replaced, before, after, len(list(prompts)), n_tokens, keep_sink,
                       "mixture" if mixture else "rule")
