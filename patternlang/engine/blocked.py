"""Scoring a batch by blocks of query rows: memory linear in the prompt length.

The hook_pattern path holds, per batch, every pattern's `[batch, q, k]` detection tensor and
one layer's `[batch, head_index, q, k]` attention: quadratic in the prompt length. Here the
query rows go in blocks `[q_start, q_stop)` (the outer loop): each block's detection rows
(keys `0 .. q_stop-1`, `detection_block`) and the measures' targets are built once, then every
needed layer's attention block comes from an `AttentionBlocks` provider and its sums over the
block's rows are added up. Row measures add over blocks as they are; TransformerLens' `mul` and
`abs` keep their parts per prompt and are finished when the batch is done (`Measure.blocks`);
the prompts' evidence (target rows, chance sums) is counted once per block and handed to the
accumulator once per batch. Nothing of size `q x k` outlives a block.

Memory of one block: `query_block * n_keys * batch * block_cell_bytes(...)`; the block size is
chosen so that this stays under a budget (`query_block_size`, docs/long_context.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from patternlang.engine.accumulate import Accumulator
from patternlang.engine.attention_blocks import AttentionBlocks, capture_attention_blocks
from patternlang.engine.block_route import blocked_route
from patternlang.engine.baselines import add_rules
from patternlang.engine.batching import Batch
from patternlang.engine.measures import ATTENTION_COPIES, MEASURES, LayerWork, prepare_targets
from patternlang.engine.pattern_tensors import Detector, detection_block
from patternlang.errors import InputError, did_you_mean

MIN_QUERY_BLOCK = 16
"""The smallest block of query rows (smaller blocks cost more Python per token than they save)."""
MAX_QUERY_BLOCK = 512
"""The largest block of query rows (beyond it the matmuls are no faster)."""
BLOCK_MEMORY = 256 * 2**20
"""Bytes one block's work may take (detection rows, targets and one layer's attention block)."""
AUTO_BLOCKS_FROM = 1024
"""`attention="auto"` scores by blocks when the longest prompt has more tokens than this."""


CaptureBlocks = Callable[[Any, Tensor, Tensor, Sequence[int]], AttentionBlocks]
"""`capture(model, tokens [batch, pos], lengths [batch], layers) -> AttentionBlocks`."""


def model_route() -> tuple[CaptureBlocks, Callable[[Any], str | None]]:
    """The model's own block route (`engine/attention_blocks.py`): its capture function and its
    `blocked_route(model)` check."""
    return capture_attention_blocks, blocked_route


def route_unavailable(model: Any) -> str | None:
    """None when the model's attention can be captured in blocks; else why not."""
    return model_route()[1](model)


ATTENTION_PATHS = ("auto", "blocks", "pattern")
"""`detect(attention=...)`: by blocks where it pays and works, by blocks (or an error), by hook_pattern."""


def choose_attention(attention: Any, model: Any, *, longest: int, needs_outputs: str | None,
                     attention_given: bool) -> tuple[CaptureBlocks | None, dict[str, Any]]:
    """Which path scores a run: `(capture, provenance)`, capture None for the hook_pattern path.

    `attention`: "auto" (blocks for prompts longer than `AUTO_BLOCKS_FROM` tokens where the
    model's route works, else hook_pattern), "blocks" (an `InputError` naming the reason where
    it cannot run), "pattern", or a capture function (`CaptureBlocks`, e.g.
    `testing.hook_pattern_blocks`). `needs_outputs`: why the run needs the model's outputs
    (predictions, `copying`), which only the hook_pattern path reads; `attention_given`: the
    caller supplies the attention itself (`detect_head` with a cache).
    """
    if callable(attention):
        why = needs_outputs or ("the attention is given by the caller" if attention_given else None)
        if why:
            raise InputError(f"attention by blocks cannot run here: {why}", hint="use attention='pattern'")
        return attention, {"path": "blocks", "provider": getattr(attention, "__name__", type(attention).__name__)}
    if not isinstance(attention, str) or attention not in ATTENTION_PATHS:
        raise InputError(f"attention must be one of {', '.join(ATTENTION_PATHS)}, got {attention!r}",
                         hint=did_you_mean(str(attention), ATTENTION_PATHS)
                         or "auto chooses blocks for long prompts where the model allows it")
    if attention == "pattern":
        return None, {"path": "hook_pattern", "why": "asked for (attention='pattern')"}
    why = ("the attention is given by the caller" if attention_given else None) or needs_outputs
    if why is None and attention == "auto" and longest <= AUTO_BLOCKS_FROM:
        why = f"no prompt is longer than {AUTO_BLOCKS_FROM} tokens"  # checked first: most runs, no route asked
    if why is None:
        why = route_unavailable(model)
    if why is not None:
        if attention == "blocks":
            raise InputError(f"attention='blocks' cannot run here: {why}",
                             hint="use attention='pattern' (or 'auto', which falls back to it)")
        return None, {"path": "hook_pattern", "why": why}
    return model_route()[0], {"path": "blocks"}


def block_cell_bytes(n_patterns: int, n_heads: int, measures: Sequence[str]) -> int:
    """Bytes a block holds per (prompt, query row, key): the detection rows and a pattern's
    intermediate results while it is evaluated (`4 * 2P`), the counted cells (1) and
    `by_cell` (`4 * (P + 1)`), `tv`'s normalised rows (`4P`), `argmax`'s target flags (`P`),
    and per head the attention block, its selected copy and the measures' working copies
    (`4H` each: kept and scratch for `tv`/`abs`, renormalised for `tv`, masked for `argmax`)."""
    prepares = set().union(*(MEASURES[m].prepares for m in measures)) if measures else set()
    patterns = max(1, n_patterns)
    cell = 4 * 2 * patterns + 1 + 4 * (patterns + 1)
    if "row_normalised" in prepares:
        cell += 4 * patterns
    if "is_target" in prepares:
        cell += patterns
    copies = 2 + sum(ATTENTION_COPIES[copy] for copy in set().union(*(MEASURES[m].copies for m in measures)))
    return cell + 4 * n_heads * copies


def query_block_size(n_keys: int, n_prompts: int, cell_bytes: int, budget: float = BLOCK_MEMORY) -> int:
    """Query rows per block: the most (a multiple of 16, from `MIN_QUERY_BLOCK` to `MAX_QUERY_BLOCK`)
    whose block `rows * n_keys * n_prompts * cell_bytes` fits `budget`; at most the prompt.

    >>> query_block_size(8192, 1, 300)
    96
    """
    rows = int(budget // max(1, n_keys * n_prompts * cell_bytes))
    rows = max(MIN_QUERY_BLOCK, min(MAX_QUERY_BLOCK, rows // 16 * 16))
    return min(rows, n_keys)


def blocked_bytes_per_prompt_estimate(model: Any, n_patterns: int, measures: Sequence[str],
                                      n_layers_needed: int) -> Callable[[int], float]:
    """Memory (bytes) one prompt of length `L` takes on the block path (`engine/blocked.py`):
    linear in `L`. The residual stream and MLP activations of one layer, what the attention
    route keeps per needed layer (the post-rotary queries and keys, float32), and the prompt's
    share of a block of the smallest size (`MIN_QUERY_BLOCK` rows of `L` keys, `block_cell_bytes`
    each); a larger budget only makes the blocks taller (`query_block_size`)."""
    cfg = getattr(model, "cfg", None)
    heads = int(getattr(cfg, "n_heads", 16) or 16)
    kv_heads = int(getattr(cfg, "n_key_value_heads", None) or heads)
    d_model = int(getattr(cfg, "d_model", 1024) or 1024)
    d_head = int(getattr(cfg, "d_head", d_model // heads) or d_model // heads)
    d_mlp = int(getattr(cfg, "d_mlp", 4 * d_model) or 4 * d_model)
    cell = block_cell_bytes(n_patterns, heads, measures)

    def estimate(length: int) -> float:
        stream = 4 * length * (12 * d_model + 4 * d_mlp)
        kept = 4 * length * n_layers_needed * (heads + kv_heads) * d_head
        block = MIN_QUERY_BLOCK * length * cell
        return float(stream + kept + block)

    return estimate


def score_blocked_batch(model: Any, capture: CaptureBlocks, accumulator: Accumulator, detectors: Sequence[Detector],
                        batch: Batch, features: Any, layers: Sequence[int], *, device: torch.device, budget: float,
                        advance: Callable[[int, str], None] | None = None, status: str = "",
                        indices: Sequence[int] | None = None) -> int:
    """Capture one batch's attention with `capture` and score it by blocks; returns the block size.

    `advance(steps, status)` moves the progress by `len(layers)` steps over the batch's blocks;
    `indices`: the batch's prompts' positions in the whole run (default `batch.indices`)."""
    blocks = capture(model, batch.tokens, batch.lengths, list(layers))
    width = int(batch.tokens.shape[1])
    heads = max((len(c) if c is not None else accumulator.n_heads for c in accumulator.heads.values()), default=1)
    cell = block_cell_bytes(accumulator.n_patterns, heads, accumulator.measures)
    query_block = query_block_size(width, len(batch.indices), cell, budget)
    reported = 0

    def on_block(done: int, total: int) -> None:
        nonlocal reported
        steps = done * len(layers) // total - reported
        if advance is not None and steps:
            advance(steps, f"{status}, query block {done}/{total}" if status else f"query block {done}/{total}")
        reported += steps

    score_batch_by_blocks(accumulator, blocks, detectors, batch, features, layers, query_block=query_block,
                          device=device, on_block=on_block, indices=indices)
    return query_block


def score_batch_by_blocks(
    accumulator: Accumulator,
    blocks: AttentionBlocks,
    detectors: Sequence[Detector],
    batch: Batch,
    features: Any,
    layers: Sequence[int],
    *,
    query_block: int,
    device: torch.device,
    on_block: Callable[[int, int], None] | None = None,
    indices: Sequence[int] | None = None,
) -> None:
    """Score one batch into `accumulator` from `blocks`, query block by query block.

    `features`: the batch's `pattern_tensors.batch_features` (tables `[batch, pos]`, shared by
    every block). `on_block(done, total)` is called after each block (progress); `indices`: the
    batch's prompts' positions in the whole run, for per-prompt scores (default `batch.indices`).
    """
    width = int(batch.tokens.shape[1])
    lengths = accumulator.begin_batch(batch.lengths, list(batch.indices if indices is None else indices))
    groups = accumulator.groups
    measures = accumulator.measures
    chance_measures = accumulator.chance_measures
    # Per group: target rows [batch, group pattern], the chance head's parts per base measure, and
    # per (layer, measure) the parts of the partial sums; all added over blocks.
    rows: list[Tensor | None] = [None] * len(groups)
    chance: list[dict[str, tuple[Tensor, ...]]] = [{} for _ in groups]
    parts: list[dict[tuple[int, str], tuple[Tensor, ...]]] = [{} for _ in groups]
    starts = range(0, width, query_block)
    for done, q_start in enumerate(starts, start=1):
        q_stop = min(width, q_start + query_block)
        detection = detection_block(detectors, batch, features, q_start, q_stop, device=device)
        targets = []
        for number, group in enumerate(groups):
            part = detection if len(group.indices) == accumulator.n_patterns else detection[accumulator.group_index[number]]
            prepared = prepare_targets(part, lengths, group.exclusions, accumulator.prepared_measures, q_start)
            rows[number] = _added(rows[number], prepared.target_rows)
            add_rules(accumulator.rule_sums, accumulator.group_index[number], prepared)  # [verdicts] baselines
            for measure in chance_measures:
                chance[number][measure] = _added_parts(chance[number].get(measure),
                                                       MEASURES[measure].chance_parts(prepared))
            targets.append(prepared)
        del detection, part  # the targets hold what the layers need
        for layer in layers:
            attention = accumulator.chosen_heads(layer, blocks.block(layer, q_start, q_stop)).float()
            for number, prepared in enumerate(targets):
                work = LayerWork(attention, prepared)  # shares products and kept attention between measures
                for measure in measures:
                    key = (layer, measure)
                    parts[number][key] = _added_parts(parts[number].get(key), MEASURES[measure].block_parts(work))
            del attention, work
        del targets, prepared
        if on_block is not None:
            on_block(done, len(starts))
    for number in range(len(groups)):
        chance_sums = {m: MEASURES[m].finish(chance[number][m], lengths)[..., 0] for m in chance_measures}
        denominators = accumulator.add_evidence(number, rows[number], chance_sums)
        for layer in layers:
            for measure in measures:
                partial = MEASURES[measure].finish(parts[number][(layer, measure)], lengths)
                accumulator.add_partials(layer, number, measure, partial, denominators)


def _added(total: Tensor | None, value: Tensor) -> Tensor:
    value = value.to(torch.float64 if value.device.type != "mps" else torch.float32)
    return value.clone() if total is None else total.add_(value)


def _added_parts(total: tuple[Tensor, ...] | None, values: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    if total is None:
        return tuple(_added(None, value) for value in values)
    return tuple(_added(t, value) for t, value in zip(total, values))
