"""`detect_head`: a drop-in for `transformer_lens.head_detector.detect_head`, batched.

Same signature, same numbers (`mul` and `abs`, both exclusions, head subsets, `-1`
for heads not asked for, the model's dtype), but all prompts go through the model in
batches and every head is scored at once. It also accepts any patternlang pattern
name or rule text as `detection_pattern`; bad input raises `InputError`, not `assert`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor

from patternlang.engine.accumulate import asked_heads
from patternlang.engine.detection import score_tokens
from patternlang.engine.pattern_tensors import Detector, check_matrix, check_matrix_sizes, resolve_patterns
from patternlang.engine.measures import Exclusions
from patternlang.errors import InputError
from patternlang.heads import parse_heads
from patternlang.models.facts import model_facts
from patternlang.prompts import check_token_ids

ErrorMeasure = Literal["abs", "mul"]
TL_HEAD_NAMES = ("previous_token_head", "duplicate_token_head", "induction_head")


def detect_head(
    model: Any,
    seq: str | list[str],
    detection_pattern: Tensor | str,
    heads: list[tuple[int, int]] | dict[int, list[int]] | None = None,
    cache: Any = None,
    *,
    exclude_bos: bool = False,
    exclude_current_token: bool = False,
    error_measure: ErrorMeasure = "mul",
    batch_size: int | None = None,
) -> Tensor:
    """Score heads like TransformerLens' `detect_head`: `[n_layers, n_heads]`, -1 for heads not asked for.

    `seq` is a prompt or a list of prompts (the score is the mean over prompts);
    `detection_pattern` is one of TransformerLens' head names (computed with
    TransformerLens' own functions), a `[seq_len, seq_len]` lower-triangular tensor,
    or any patternlang pattern name or rule text. `cache` (from `run_with_cache` on
    the single prompt) is used instead of a forward pass. `batch_size` (not in
    TransformerLens) sets the prompts per forward pass (None: from free memory).

    Scores equal TransformerLens' to float32 precision. With `batch_size=1` the forward
    passes are TransformerLens' own, and the scores agree within 1e-7; batches of padded
    prompts change the matmul shapes, hence the attention's last bits, which
    `exclude_bos` can magnify (it divides by the small attention left off the BOS) to
    about 1e-6.

    Example:
        >>> detect_head(model, "The cat sat on the mat. The cat", "induction_head")  # doctest: +SKIP
        tensor([[0.0312, ...]])
    """
    if error_measure not in ("mul", "abs"):
        raise InputError(f"invalid error_measure={error_measure!r}", hint="use 'mul' or 'abs'")
    prompts = [seq] if isinstance(seq, str) else list(seq) if isinstance(seq, (list, tuple)) else None
    if prompts is None or not all(isinstance(p, str) for p in prompts):
        raise InputError("seq must be a string or a list of strings")
    if not prompts:
        raise InputError("seq is an empty list: no prompts to score")
    if cache is not None and len(prompts) != 1:
        raise InputError("a cache holds the activations of one prompt, so `cache` needs a single prompt",
                         hint="pass one prompt with its cache, or omit the cache")

    facts = model_facts(model)  # first: a clear InputError for an object that is not a model
    cfg = model.cfg
    n_layers, n_heads = facts.shape
    # The model's default BOS, like TransformerLens; never cut to the context (an error instead).
    token_lists = [_to_tokens(model, p) for p in prompts]
    for index, tokens in enumerate(token_lists):
        if tokens.numel() < 2 or (facts.n_ctx is not None and tokens.numel() > facts.n_ctx):
            raise InputError(f"prompt {index} has {tokens.numel()} tokens; it must have at least 2 "
                             f"and fit the context of {facts.n_ctx}")
    check_token_ids(token_lists, d_vocab=facts.d_vocab)  # a tokenizer can outgrow the model
    detector = _detector(detection_pattern, error_measure)
    check_matrix_sizes([detector], [t.numel() for t in token_lists])
    chosen = parse_heads(heads, n_layers, n_heads)

    attention_source = None
    if cache is not None:
        attention_source = _cache_source(cache, token_lists[0].numel())
    tallies, _ = score_tokens(
        model, token_lists, [detector],
        measures=(error_measure,),
        exclusions=[Exclusions(bos=exclude_bos, current=exclude_current_token)],
        heads=chosen,
        batch_size=batch_size,
        attention_source=attention_source,
    )
    scores = tallies.values[error_measure][0]  # [n_layers, n_heads], NaN where not asked for
    asked = asked_heads(chosen, n_layers, n_heads)
    result = torch.where(asked, scores, torch.tensor(-1.0))
    return result.to(getattr(cfg, "dtype", torch.float32) or torch.float32)


def _to_tokens(model: Any, prompt: str) -> Tensor:
    try:
        tokens = model.to_tokens(prompt, truncate=False)
    except TypeError:  # a model whose to_tokens cannot truncate anyway
        tokens = model.to_tokens(prompt)
    return tokens.reshape(-1).cpu()


def _detector(detection_pattern: Tensor | str, error_measure: str) -> Detector:
    if isinstance(detection_pattern, Tensor):
        matrix = check_matrix(detection_pattern, 0, allow_negative=True)
        if error_measure == "mul" and not set(matrix.unique().tolist()).issubset({0.0, 1.0}):
            # TransformerLens warns the same way: 'mul' reads best with 0/1 patterns.
            logging.warning("Using detection pattern with values other than 0 or 1 with error_measure 'mul'")
        return Detector("detection_pattern", matrix=matrix)
    if isinstance(detection_pattern, str) and detection_pattern in TL_HEAD_NAMES:
        from transformer_lens import head_detector

        make = getattr(head_detector, f"get_{detection_pattern}_detection_pattern")
        return Detector(detection_pattern, per_prompt=lambda tokens: make(tokens[None].cpu()))
    if isinstance(detection_pattern, str):
        return resolve_patterns([detection_pattern])[0]
    raise InputError(f"detection_pattern must be a tensor, a head name or a pattern, got {type(detection_pattern).__name__}",
                     hint="TransformerLens names: " + ", ".join(TL_HEAD_NAMES))


def _cache_source(cache: Any, length: int) -> Callable[[int], Tensor]:
    def attention(layer: int) -> Tensor:
        try:
            pattern = cache["pattern", layer, "attn"]
        except (KeyError, TypeError, IndexError):
            try:
                pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
            except (KeyError, TypeError, IndexError):
                raise InputError(f"the cache has no attention pattern for layer {layer}",
                                 hint="make it with model.run_with_cache(prompt)") from None
        if pattern.dim() == 3:
            pattern = pattern[None]
        if pattern.dim() != 4 or pattern.shape[0] != 1 or pattern.shape[-1] != length:
            raise InputError(f"the cache's layer {layer} pattern has shape {tuple(pattern.shape)}, "
                             f"which does not fit one prompt of {length} tokens")
        return pattern

    return attention
