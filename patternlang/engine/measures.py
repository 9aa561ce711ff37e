"""The measures: how well one head's attention matches one pattern, as a registry.

Each `Measure` entry says everything about one measure: its name, range and documentation
(for the settings pass, the CLI and docs/measures.md), what it needs prepared from the
detection tensors (`prepares`), its partial sum for one batch and layer, and what the sums
are divided by at the end (`averaged_over`). Adding a measure is one `register_measure` call.

Every measure is a small pure function of one batch: the head's attention
`[batch, head_index, query_pos, key_pos]` and what `prepare_targets` derived once
from the batch's detection tensors `[pattern, batch, query_pos, key_pos]`. Each
returns its *partial sums* per prompt, `[batch, pattern, head_index]`; the engine adds the partial sums of
every prompt and divides by the matching count at the end (target rows for the
row measures, prompts for TransformerLens' `mul` and `abs`). That is why scores do
not depend on how prompts are batched.

Definitions (docs/measures.md has worked examples):

- `mass`: share of the row's attention (renormalised over the keys that count)
  that falls on the pattern's targets, weighted by the pattern's values scaled to a
  row maximum of 1; mean over target rows.
- `tv`: 1 - total variation distance between the renormalised attention row and
  the pattern row normalised to sum 1, i.e. `sum_k min(a_k, p_k)`; mean over target rows.
- `argmax`: share of target rows whose most-attended counted key is a target.
- `mul`, `abs`: TransformerLens' `compute_head_attention_similarity_score`, whole
  matrix per prompt, mean over prompts.
- `copying`: the head's direct effect on the logits of the tokens it attends to on targets
  (`engine/copying.py`), attention-weighted; needs the model's outputs (a pass to the logits).
- `lift`: `mass` over the mass of a chance head that attends uniformly over each row's
  counted keys (every measure's chance baseline is that head's score).

"Keys that count" are the real (non-padding) keys `k <= q`, minus key 0 with
`exclude_bos` and minus `k == q` with `exclude_current_token`. A *target row* is a
real query row whose pattern row has a positive value on a counted key. A target row on
which a head has no counted attention at all (every bit of it on excluded keys) scores 0
in `mass`, `tv` and `argmax`: nothing of it lands on a target.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import torch
from torch import Tensor

from patternlang.engine.cells import cell_products
from patternlang.engine.copying import copying_sum, no_chance
from patternlang.measure_table import (MEASURE_TABLE, AveragedOver, MeasureInfo, declare_measure, measure_docs,
                                       measures_averaged_over)
from patternlang.engine.sink import offsink_sum, sink_sum
from patternlang.registry import Registry

__all__ = [  # noqa: F822 (ATTENTION_MEASURES, MEASURE_DOCS, ROW_MEASURES, PROMPT_MEASURES: live, module __getattr__)
    "ATTENTION_MEASURES", "BlockSplit", "Measure", "MEASURES", "MEASURE_DOCS", "ROW_MEASURES", "PROMPT_MEASURES", "Exclusions", "BatchTargets",
    "LayerWork", "counted_cells", "prepare_targets", "partial_sums", "register_measure", "wide_dtype",
]


def wide_dtype(device: torch.device | str) -> torch.dtype:
    """float64 for sums and counts, except where the device has none (MPS)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


@dataclass(frozen=True, slots=True)
class Exclusions:
    """Which keys a head's attention is not judged on."""

    bos: bool = False
    current: bool = False


def counted_cells(lengths: Tensor, size: int, exclusions: Exclusions, first_query: int = 0) -> Tensor:
    """Bool `[batch, query_pos, key_pos]`: real query and key, `k <= q`, minus exclusions.

    Queries `first_query .. size-1` over keys `0 .. size-1` (a block of query rows; the whole
    square by default).

    Example: `counted_cells(torch.tensor([2]), 3, Exclusions())[0]` is the lower
    triangle of the 2x2 real block, padded with False to 3x3.
    """
    keys = torch.arange(size, device=lengths.device)
    queries = keys[first_query:]
    real_keys = keys[None, :] < lengths[:, None]  # [batch, k]
    real_queries = queries[None, :] < lengths[:, None]  # [batch, q]
    causal = queries[:, None] >= keys[None, :]  # [q, k]
    cells = real_queries[:, :, None] & real_keys[:, None, :] & causal
    if exclusions.bos:
        cells[:, :, 0] = False
    if exclusions.current:
        cells &= queries[:, None] != keys[None, :]
    return cells




@dataclass(frozen=True, slots=True)
class BatchTargets:
    """Everything the measures need from one batch's detection tensors (built once per batch).

    The core is `by_cell` `[batch, query_pos, key_pos, column]`: the counted detection
    values with the pattern last, so that one batched matmul per layer multiplies a head's
    attention row by every pattern's row at once (`cell_products`). Its last column is the
    counted cells themselves, so the same matmul also gives each row's counted attention.
    Fields not needed by the requested measures are None.
    """

    cells: Tensor  # bool [batch, query_pos, key_pos], the counted cells
    lengths: Tensor  # long [batch], real lengths
    by_cell: Tensor  # float32 [batch, q, k, column]: pattern columns, then the cells column
    n_patterns: int
    row_columns: slice  # the columns the row measures read: the positive part of each pattern
    raw_columns: slice  # the columns mul and abs read: the values as given (the same columns
    # unless a pattern has negative values and both kinds of measure were asked for)
    target_rows: Tensor  # float [batch, pattern], each prompt's number of target rows
    row_weight: Tensor | None  # float [batch, q, pattern]: 1 / the row's maximum on target rows, else 0 (mass)
    row_normalised: Tensor | None  # float [pattern, batch, q, k]: rows scaled to sum 1 (tv)
    is_target: Tensor | None  # bool [batch, q, k, pattern]: a positive value on a counted cell (argmax)
    first_query: int = 0  # the position of row 0 (a block of query rows; keys always start at 0)

    @property
    def detection(self) -> Tensor:
        """The counted detection values as given, `[pattern, batch, q, k]` (a view of `by_cell`)."""
        return self.by_cell[..., self.raw_columns].permute(3, 0, 1, 2)


def prepare_targets(
    detection: Tensor, lengths: Tensor, exclusions: Exclusions, measures: tuple[str, ...], first_query: int = 0
) -> BatchTargets:
    """Mask one batch's detection tensors `[pattern, batch, q, k]` and derive what the measures use.

    With `first_query`, `detection` is a block of query rows `first_query .. k-1` over keys
    `0 .. k-1` (`[pattern, batch, k - first_query, k]`, as `detection_block` makes it).
    `detection` is read, never changed; it may be freed once this returns.
    """
    n_patterns, batch, rows, size = detection.shape
    if rows != size - first_query:
        raise ValueError(f"a block of {rows} query rows from {first_query} needs {rows + first_query} keys, "
                         f"got {size}")
    cells = counted_cells(lengths, size, exclusions, first_query)
    by_pattern = detection.permute(1, 2, 3, 0)  # [batch, q, k, pattern]
    row_measures = any(MEASURES[m].averaged_over == "target rows" for m in measures)
    raw_measures = any(MEASURES[m].averaged_over == "prompts" for m in measures)
    # Row measures read a pattern as targets and weights, so only its positive part;
    # TransformerLens' mul and abs take any values as they are. Only tensors given to
    # `detect_head` can be negative; then both views need their own columns.
    negative = bool(detection.numel() and detection.min() < 0)
    prepares = set().union(*(MEASURES[m].prepares for m in measures))
    split = negative and row_measures and raw_measures
    n_columns = n_patterns * (2 if split else 1) + 1
    by_cell = torch.empty(batch, rows, size, n_columns, dtype=torch.float32, device=detection.device)
    # Selected, not multiplied: a non-finite value outside the counted cells cannot leak in.
    zero = torch.zeros((), dtype=torch.float32, device=detection.device)
    torch.where(cells[..., None], by_pattern, zero, out=by_cell[..., :n_patterns])
    by_cell[..., -1] = cells
    row_columns = slice(0, n_patterns)
    raw_columns = slice(0, n_patterns)
    if split:
        raw_columns = slice(n_patterns, 2 * n_patterns)
        by_cell[..., raw_columns] = by_cell[..., row_columns]
    if negative and row_measures:
        by_cell[..., row_columns].clamp_(min=0.0)

    positive = by_cell[..., row_columns]
    row_max = positive.amax(dim=2)  # [batch, q, pattern]
    has_target = row_max > 0
    target_rows = has_target.sum(dim=1).to(wide_dtype(detection.device))  # [batch, pattern]
    row_weight = row_normalised = is_target = None
    # Divisions only where the divisor is positive (selected, so no inf or NaN is ever formed).
    if "row_weight" in prepares:
        row_weight = torch.where(has_target, 1.0 / torch.where(has_target, row_max, 1.0), 0.0)
    if "row_normalised" in prepares:
        row_sum = positive.sum(dim=2, keepdim=True)
        normalised = torch.where(has_target[:, :, None], positive / torch.where(row_sum > 0, row_sum, 1.0), 0.0)
        row_normalised = normalised.permute(3, 0, 1, 2).contiguous()
    if "is_target" in prepares:
        is_target = positive > 0
    return BatchTargets(cells, lengths, by_cell, n_patterns, row_columns, raw_columns, target_rows,
                        row_weight, row_normalised, is_target, first_query)


def kept_attention(attention: Tensor, cells: Tensor) -> Tensor:
    """Attention `[batch, head_index, q, k]` (as float32) zeroed outside the counted cells."""
    return torch.where(cells[:, None], attention.float(), 0.0)


def renormalised_attention(kept: Tensor) -> Tensor:
    """Kept attention with every row rescaled to sum 1 (rows with nothing kept stay zero)."""
    row_sum = kept.sum(dim=-1, keepdim=True)
    return kept / torch.where(row_sum > 0, row_sum, 1.0)


def mass_sum(products: Tensor, targets: BatchTargets) -> Tensor:
    """Per prompt, the sum over target rows of the weighted attention mass on targets:
    `[batch, pattern, head_index]`.

    Per row: `sum_k A[q, k] * D[q, k]` (from `cell_products`) divided by the row's counted
    attention (the renormalisation) and by the row's maximum of `D` (the weights' scale).
    """
    row_attention = products[..., -1:]  # [batch, q, head, 1]
    # A row without counted attention scores 0 (selected, so no 0/0 is formed).
    shares = products[..., targets.row_columns] / torch.where(row_attention > 0, row_attention, 1.0)
    weight = targets.row_weight[:, :, None, :]
    # Only target rows are read (selected): whatever a model computes for padded queries stays out.
    return torch.where(weight > 0, shares * weight, 0.0).sum(dim=1).transpose(1, 2)


def mul_parts(products: Tensor, targets: BatchTargets) -> tuple[Tensor, Tensor]:
    """TransformerLens `mul`'s sums over the rows at hand: `sum(A' * D)` `[batch, pattern, head_index]`
    and `sum(A')` `[batch, 1, head_index]`, where `A'` is the attention with excluded cells zeroed.
    Both add over blocks of query rows; a prompt's score is their ratio (`mul_finish`)."""
    queries = torch.arange(products.shape[1], device=products.device) + targets.first_query
    real = (queries[None, :] < targets.lengths[:, None])[:, :, None, None]
    products = torch.where(real, products, 0.0)  # padded query rows are not read
    numerator = products[..., targets.raw_columns].sum(dim=1)  # [batch, head, pattern]
    denominator = products[..., -1:].sum(dim=1)  # [batch, head, 1]
    return numerator.transpose(1, 2), denominator.transpose(1, 2)


def mul_finish(parts: tuple[Tensor, Tensor], lengths: Tensor) -> Tensor:
    """TransformerLens `mul` per prompt from a whole prompt's `mul_parts`: `[batch, pattern, head_index]`
    (NaN where a head has no counted attention, as in TransformerLens)."""
    numerator, denominator = parts
    return numerator / denominator


def mul_prompt_scores(products: Tensor, targets: BatchTargets) -> Tensor:
    """TransformerLens `mul` per prompt: `[pattern, batch, head_index]`.

    `sum(A' * D) / sum(A')` where `A'` is the attention with excluded cells zeroed.
    """
    return mul_finish(mul_parts(products, targets), targets.lengths).transpose(0, 1)


def tv_sum(normalised: Tensor, targets: BatchTargets) -> Tensor:
    """Per prompt, the sum over target rows of `sum_k min(a_k, p_k)`: `[batch, pattern, head_index]`."""
    rows = []
    scratch = torch.empty_like(normalised)
    for pattern_row in targets.row_normalised:  # [batch, q, k]; an elementwise min, no matmul form
        torch.minimum(normalised, pattern_row[:, None], out=scratch)
        rows.append(scratch.sum(dim=(2, 3)))
    return torch.stack(rows, dim=1)


def argmax_hits(attention: Tensor, targets: BatchTargets) -> Tensor:
    """Per prompt, the number of target rows whose most-attended counted key is a target:
    `[batch, pattern, head_index]`.

    Renormalising a row does not move its maximum, so the raw attention is enough.
    """
    # Uncounted keys get -1 so they never win over a counted key (attention >= 0); a row
    # whose counted attention is all zero has no most-attended key and scores no hit.
    top_value, top_key = attention.masked_fill(~targets.cells[:, None], -1.0).max(dim=-1)  # [batch, head, q]
    batch, heads, queries = top_key.shape
    index = top_key.transpose(1, 2)[..., None].expand(batch, queries, heads, targets.n_patterns)
    hits = targets.is_target.gather(2, index) & (top_value.transpose(1, 2) > 0)[..., None]  # [batch, q, head, pattern]
    return hits.sum(dim=1).transpose(1, 2).to(torch.float32)


def abs_parts(kept: Tensor, targets: BatchTargets) -> tuple[Tensor]:
    """TransformerLens `abs`'s sum over the rows at hand: `sum|A' - D'|` `[batch, pattern, head_index]`.
    Every nonzero cell is a counted one (k <= q), so the sums add over blocks of query rows."""
    scratch = torch.empty_like(kept)
    per_pattern = []
    for detection in targets.detection:  # [batch, q, k]
        torch.sub(kept, detection[:, None], out=scratch)
        per_pattern.append(scratch.abs_().sum(dim=(-1, -2)))
    return (torch.stack(per_pattern, dim=1),)


def abs_finish(parts: tuple[Tensor], lengths: Tensor) -> Tensor:
    """TransformerLens `abs` per prompt from a whole prompt's `abs_parts`: `1 - round(sum|A' - D'| / length, 3)`,
    `[batch, pattern, head_index]`."""
    # Same float32 steps as TransformerLens (`mean * size`), so that its rounding to
    # 3 decimals falls the same way; then the rounding itself in float64.
    total = parts[0].to(torch.float32)
    size = lengths[:, None, None].to(torch.float32)
    raw = (total / (size * size)) * size
    return 1.0 - torch.round(raw.to(wide_dtype(raw.device)), decimals=3)


def abs_prompt_scores(kept: Tensor, targets: BatchTargets) -> Tensor:
    """TransformerLens `abs` per prompt: `1 - round(sum|A' - D'| / length, 3)`, `[pattern, batch, head_index]`."""
    return abs_finish(abs_parts(kept, targets), targets.lengths).transpose(0, 1)


# ---- the registry ---------------------------------------------------------------------------
class LayerWork:
    """One layer's attention on one batch, with the intermediate results measures share,
    each computed at most once (`mass` and `mul` share one matmul; `tv` and `abs` the kept
    attention)."""

    def __init__(self, attention: Tensor, targets: BatchTargets, extras=None):
        self.attention = attention.float()
        self.targets = targets
        self.extras = extras  # the layer's model outputs (`copying.LayerOutputs`), for measures that need them

    @cached_property
    def products(self) -> Tensor:
        return cell_products(self.attention, self.targets.by_cell)

    @cached_property
    def kept(self) -> Tensor:
        return kept_attention(self.attention, self.targets.cells)

    @cached_property
    def renormalised(self) -> Tensor:
        return renormalised_attention(self.kept)


def uniform_attention(cells: Tensor) -> Tensor:
    """`[batch, 1, q, k]`: a head that spreads each row evenly over its counted keys (the chance head)."""
    counted = cells.float()
    return (counted / counted.sum(dim=-1, keepdim=True).clamp_min(1.0))[:, None]


def random_key_hits(targets: BatchTargets) -> Tensor:
    """Per prompt, the expected `argmax` hits of a head that picks one counted key at random:
    the sum over target rows of (target keys / counted keys), `[batch, pattern, 1]`."""
    counted = targets.cells.sum(dim=2).float()  # [batch, q]
    on_targets = targets.is_target.sum(dim=2).float()  # [batch, q, pattern]
    share = on_targets / counted.clamp_min(1.0)[..., None]
    return share.sum(dim=1)[..., None]


@dataclass(frozen=True, slots=True)
class BlockSplit:
    """How a measure that is not a sum over rows splits over blocks of query rows (the engine's
    block path, `engine/blocked.py`): `parts(work)` gives sums over the block's rows that add
    over blocks (each `[batch, pattern or 1, head_index]`), and `finish(parts, lengths)` turns a
    whole prompt's added parts into its partial sum `[batch, pattern, head_index]`. TransformerLens'
    `mul` is a ratio of two such sums, `abs` a rounded function of one."""

    parts: Callable[[LayerWork], tuple[Tensor, ...]]
    finish: Callable[[tuple[Tensor, ...], Tensor], Tensor]


@dataclass(frozen=True, slots=True)
class Measure:
    """One measure's implementation, registered against its metadata (`info`, a torch-free
    `measure_table.MeasureInfo`: name, doc, range, direction, what it is averaged over, ...).

    `partial_sum(work)` gives its sum for each prompt of one batch, `[batch, pattern, head_index]`;
    the engine adds those over prompts and divides by the number of target rows or of prompts
    (`averaged_over`); a pattern with nothing to divide by scores NaN.

    Its chance baseline is the score of a head that attends uniformly over each row's counted
    keys: by default `partial_sum` on that head; `chance`, when given, computes it instead
    (`argmax`, where a uniform row has no single most-attended key). A measure `relative_to`
    another is that one's sums over its chance sums (`lift`: mass over chance mass).

    On blocks of query rows (`engine/blocked.py`), `partial_sum` of a block is summed over the
    blocks of a prompt, which is right for sums over rows; a measure that is not one says how it
    splits (`blocks`, a `BlockSplit`)."""

    info: MeasureInfo
    partial_sum: Callable[[LayerWork], Tensor]
    prepares: frozenset[str] = field(default_factory=frozenset)  # row_weight, row_normalised, is_target
    chance: Callable[[BatchTargets], Tensor] | None = None  # [batch, pattern, 1]
    blocks: BlockSplit | None = None  # None: `partial_sum` is a sum over rows, which adds over blocks
    copies: frozenset[str] = field(default_factory=frozenset)  # attention-sized copies it makes (ATTENTION_COPIES)

    # The metadata, read from `info` (one source: the table).
    @property
    def name(self) -> str:
        return self.info.name

    @property
    def range(self) -> str:
        return self.info.range

    @property
    def doc(self) -> str:
        return self.info.doc

    @property
    def averaged_over(self) -> AveragedOver:
        return self.info.averaged_over

    @property
    def relative_to(self) -> str | None:
        return self.info.relative_to

    @property
    def bounds(self) -> tuple[float, float]:
        """Where a score can lie: intervals are clipped to it."""
        return self.info.bounds

    @property
    def needs(self) -> frozenset[str]:
        """"z": the heads' outputs (a pass to the logits)."""
        return self.info.needs

    @property
    def signed(self) -> bool:
        """0 is a meaningful middle (copying: + raises, - lowers); chance means nothing then."""
        return self.info.signed

    @property
    def direction(self) -> str:
        """Which way is "more" of the pattern ("higher" or "lower")."""
        return self.info.direction

    @property
    def low(self) -> float:
        return self.bounds[0]

    @property
    def high(self) -> float:
        return self.bounds[1]

    def block_parts(self, work: LayerWork) -> tuple[Tensor, ...]:
        """Sums over the rows of `work` that add over blocks of query rows."""
        return self.blocks.parts(work) if self.blocks is not None else (self.partial_sum(work),)

    def finish(self, parts: tuple[Tensor, ...], lengths: Tensor) -> Tensor:
        """A whole prompt's partial sums `[batch, pattern, head_index]` from its added `block_parts`."""
        return self.blocks.finish(parts, lengths) if self.blocks is not None else parts[0]

    def chance_parts(self, targets: BatchTargets) -> tuple[Tensor, ...]:
        """The chance head's `block_parts` (`[batch, pattern, 1]` each); a custom `chance` is a sum over rows."""
        if self.chance is not None:
            return (self.chance(targets),)
        return self.block_parts(LayerWork(uniform_attention(targets.cells), targets))

    def chance_sum(self, targets: BatchTargets) -> Tensor:
        """Per prompt, the chance head's partial sum: `[batch, pattern]`."""
        return self.finish(self.chance_parts(targets), targets.lengths)[..., 0]


ATTENTION_COPIES: dict[str, int] = {
    "kept": 2,  # `LayerWork.kept` and a scratch tensor of its size (tv, abs)
    "renormalised": 1,  # `LayerWork.renormalised` (tv)
    "masked": 1,  # the attention with uncounted keys filled, for its maximum (argmax)
}
"""Attention-sized float32 copies (per head) a measure's partial sum makes, by name: the block path's
memory estimate (`blocked.block_cell_bytes`) adds those of the measures asked for."""

MEASURES: Registry[Measure] = Registry("measure")
"""The measures' implementations, in the order of their metadata in `MEASURE_TABLE`."""


def register_measure(name: str, range: str | None = None, doc: str | None = None, *,
                     averaged_over: AveragedOver | None = None,
                     partial_sum: Callable[[LayerWork], Tensor], prepares: tuple[str, ...] = (),
                     chance: Callable[[BatchTargets], Tensor] | None = None,
                     relative_to: str | None = None,
                     bounds: tuple[float, float] | None = None,
                     needs: tuple[str, ...] = (), blocks: BlockSplit | None = None,
                     copies: tuple[str, ...] = (), signed: bool = False,
                     direction: Literal["higher", "lower"] = "higher") -> Measure:
    """Add a measure's implementation (see `Measure`); `blocks` only for a measure whose partial sum
    is not a sum over rows; `copies`: the attention-sized copies it makes (`ATTENTION_COPIES`).

    A measure whose metadata is already in `MEASURE_TABLE` (the shipped ones) takes it from there and
    gives only its implementation; a new one gives `range`, `doc` and `averaged_over` (and `bounds`,
    `relative_to`, `needs` where they apply), which go into the table first.
    """
    if chance is not None and blocks is not None:
        raise ValueError(f"measure {name!r}: a custom chance is added over blocks of rows, so it needs a "
                         f"measure that is a sum over rows (no `blocks`)")
    if name in MEASURE_TABLE:
        info = MEASURE_TABLE[name]
        given = {"range": range, "doc": doc, "averaged_over": averaged_over, "relative_to": relative_to,
                 "bounds": bounds, "needs": frozenset(needs) or None}
        differ = [key for key, value in given.items() if value is not None and value != getattr(info, key)]
        if differ:
            raise ValueError(f"measure {name!r} is in the measure table with other {', '.join(differ)}: "
                             f"give only its implementation")
        declared = False
    else:
        if range is None or doc is None or averaged_over is None:
            raise ValueError(f"measure {name!r} is new: give its range, doc and averaged_over")
        if relative_to is not None and relative_to not in MEASURES:
            raise ValueError(f"measure {name!r} is relative to {relative_to!r}, which is not registered")
        low, high = bounds if bounds is not None else (-math.inf, math.inf)
        info = declare_measure(MeasureInfo(name, doc, range, averaged_over, low=None if math.isinf(low) else low,
                                           high=None if math.isinf(high) else high, relative_to=relative_to,
                                           signed=signed, direction=direction,
                                           needs=frozenset(needs)))
        declared = True
    if info.relative_to is not None and info.relative_to not in MEASURES:
        raise ValueError(f"measure {name!r} is relative to {info.relative_to!r}, which is not registered")
    try:
        return MEASURES.register(Measure(info, partial_sum, frozenset(prepares), chance, blocks, frozenset(copies)))
    except ValueError:
        if declared:
            MEASURE_TABLE.unregister(name)
        raise


register_measure("mass", prepares=("row_weight",), partial_sum=lambda work: mass_sum(work.products, work.targets))
register_measure("tv", prepares=("row_normalised",), copies=("kept", "renormalised"), partial_sum=lambda work: tv_sum(work.renormalised, work.targets))
register_measure("argmax", prepares=("is_target",), copies=("masked",), partial_sum=lambda work: argmax_hits(work.attention, work.targets),
                 chance=random_key_hits)
register_measure(
    "mul", partial_sum=lambda work: mul_prompt_scores(work.products, work.targets).transpose(0, 1),
    blocks=BlockSplit(lambda work: mul_parts(work.products, work.targets), mul_finish),
)
register_measure(
    "abs", copies=("kept",), partial_sum=lambda work: abs_prompt_scores(work.kept, work.targets).transpose(0, 1),
    blocks=BlockSplit(lambda work: abs_parts(work.kept, work.targets), abs_finish),
)
register_measure("lift", prepares=("row_weight",), partial_sum=lambda work: mass_sum(work.products, work.targets))
register_measure("copying", prepares=("row_weight",), chance=no_chance, partial_sum=copying_sum)
register_measure("sink", prepares=("row_weight",), partial_sum=sink_sum)
register_measure("offsink", prepares=("row_weight",), partial_sum=offsink_sum)


def __getattr__(name: str):
    """`ATTENTION_MEASURES`, `MEASURE_DOCS`, `ROW_MEASURES`, `PROMPT_MEASURES`: read live from the
    registries at each access (a measure registered later is in them), never snapshots."""
    if name == "ATTENTION_MEASURES":  # the measures that read attention alone (every one but `copying`), by name
        return {m.name: m for m in MEASURES.entries() if not m.needs}
    if name == "MEASURE_DOCS":
        return measure_docs()
    if name == "ROW_MEASURES":  # averaged over target rows (pooled over prompts)
        return measures_averaged_over("target rows")
    if name == "PROMPT_MEASURES":  # computed per prompt on the whole matrix, then averaged over prompts
        return measures_averaged_over("prompts")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def partial_sums(attention: Tensor, targets: BatchTargets, measures: tuple[str, ...],
                 extras=None) -> dict[str, Tensor]:
    """Every requested measure's per-prompt partial sums for one batch and one layer:
    `{measure: [batch, pattern, head_index]}` (`extras`: the layer's model outputs, for `copying`)."""
    work = LayerWork(attention, targets, extras)
    return {measure: MEASURES[measure].partial_sum(work) for measure in measures}
