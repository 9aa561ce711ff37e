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
from typing import Any, Literal

import torch
from torch import Tensor

from patternlang.engine.cells import cell_products
from patternlang.engine.copying import LayerOutputs, copying_sum, no_chance
from patternlang.measure_table import (MEASURE_TABLE, AveragedOver, MeasureInfo, declare_measure, measure_docs,
                                       measures_averaged_over)
from patternlang.engine.sink import offsink_sum, sink_sum
from patternlang.engine.targets import BatchTargets, Exclusions, counted_cells, wide_dtype
from patternlang.engine.measure_sums import (  # noqa: F401 (re-exported: the measures' own arithmetic)
    kept_attention,
    renormalised_attention,
    mass_sum,
    mul_parts,
    mul_finish,
    mul_prompt_scores,
    tv_sum,
    argmax_hits,
    abs_parts,
    abs_finish,
    abs_prompt_scores,
)
from patternlang.registry import Registry

__all__ = [  # noqa: F822 (ATTENTION_MEASURES, MEASURE_DOCS, ROW_MEASURES, PROMPT_MEASURES: live, module __getattr__)
    "ATTENTION_MEASURES", "BlockSplit", "Measure", "MEASURES", "MEASURE_DOCS", "ROW_MEASURES", "PROMPT_MEASURES", "Exclusions", "BatchTargets",
    "LayerWork", "counted_cells", "prepare_targets", "partial_sums", "register_measure", "wide_dtype",
]


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


class LayerWork:
    """One layer's attention on one batch, with the intermediate results measures share,
    each computed at most once (`mass` and `mul` share one matmul; `tv` and `abs` the kept
    attention)."""

    def __init__(self, attention: Tensor, targets: BatchTargets, extras: LayerOutputs | None = None):
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
    on_targets = targets.prepared("is_target").sum(dim=2).float()  # [batch, q, pattern]
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


def __getattr__(name: str) -> Any:
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
                 extras: LayerOutputs | None = None) -> dict[str, Tensor]:
    """Every requested measure's per-prompt partial sums for one batch and one layer:
    `{measure: [batch, pattern, head_index]}` (`extras`: the layer's model outputs, for `copying`)."""
    work = LayerWork(attention, targets, extras)
    return {measure: MEASURES[measure].partial_sum(work) for measure in measures}
