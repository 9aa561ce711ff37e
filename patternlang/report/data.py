"""What the reports show, whatever the format: a checked detection matrix and its summary, and
one grid of scores per pattern with its best head.

The format modules (`text`, `png`, `html`, `jsonfile`) draw what this module prepares, so a
check or a count is written once and every format agrees on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from patternlang.errors import InputError, did_you_mean
from patternlang.heads import parse_head

if TYPE_CHECKING:  # the engine's package pulls in the model loaders; only the type is needed
    from patternlang.engine.scores import Scores

MISSING = "–"  # a head that was not scored


# --------------------------------------------------------------------------- detection matrices


def checked_matrix(matrix: Any, tokens: Sequence[str]) -> torch.Tensor:
    """`matrix` as a float64 CPU tensor [query_pos, key_pos], checked against `tokens`.

    >>> checked_matrix([[1, 0], [0, 1]], ["a", "b"]).dtype
    torch.float64
    """
    try:
        tensor = torch.as_tensor(matrix).detach().to("cpu", torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        raise InputError(f"the detection matrix is not a numeric tensor: {error}") from None
    shape = tuple(tensor.shape)
    if tensor.ndim != 2 or shape[0] != shape[1]:
        hint = "pass one prompt's matrix, e.g. matrices[0]" if tensor.ndim == 3 else None
        raise InputError(
            f"a detection matrix must be square [query_pos, key_pos]; got shape {list(shape)}", hint=hint
        )
    if isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens):
        raise InputError(
            "tokens must be a list of strings, one per position",
            hint="use model.to_str_tokens(prompt)",
        )
    if len(tokens) != shape[0]:
        raise InputError(
            f"the detection matrix covers {shape[0]} positions but {len(tokens)} tokens were given",
            hint="pass the string tokens of the same prompt, without padding",
        )
    return tensor


@dataclass(frozen=True, slots=True)
class MatrixSummary:
    """Counts that describe a detection matrix at a glance."""

    n_tokens: int
    marked_cells: int  # nonzero cells on or below the diagonal
    rows_with_targets: int  # query positions with at least one marked key
    above_diagonal: int  # nonzero cells above the diagonal (should be 0)
    fractional: bool  # some weight is neither 0 nor 1

    @property
    def targets_per_row(self) -> float:
        return self.marked_cells / self.n_tokens if self.n_tokens else 0.0

    def describe(self) -> str:
        """One line: size, marked cells, rows with a target, targets per row."""
        n = self.n_tokens
        return (
            f"{n}×{n} · {self.marked_cells} marked cells · "
            f"{self.rows_with_targets}/{n} rows with a target · "
            f"{self.targets_per_row:.2f} targets per row"
        )


def summarize_matrix(matrix: Any, tokens: Sequence[str]) -> MatrixSummary:
    """Count marked cells, rows with a target and cells above the diagonal.

    >>> summarize_matrix(torch.eye(3), ["a", "b", "c"]).describe()
    '3×3 · 3 marked cells · 3/3 rows with a target · 1.00 targets per row'
    """
    m = checked_matrix(matrix, tokens)
    nonzero = m != 0  # NaN counts as marked: it is something, and the grid shows it
    lower = torch.ones_like(nonzero).tril()
    marked = nonzero & lower
    values = m[marked]
    fractional = bool(((values != 1) & ~values.isnan()).any())
    return MatrixSummary(
        n_tokens=m.shape[0],
        marked_cells=int(marked.sum()),
        rows_with_targets=int(marked.any(dim=1).sum()),
        above_diagonal=int((nonzero & ~lower).sum()),
        fractional=fractional,
    )


# --------------------------------------------------------------------------- scores


def score_grid(scores: Scores, pattern: str, measure: str | None) -> np.ndarray:
    """One pattern's scores as a float64 array [n_layers, n_heads] (NaN: not scored)."""
    grid: np.ndarray = scores.get(pattern, measure).detach().to("cpu", torch.float64).numpy()
    return grid


def checked_measures(scores: Scores, measures: Sequence[str] | str | None) -> tuple[str, ...]:
    """The measures to show: all that `scores` hold when None, else the named ones, each checked."""
    if measures is None:
        return tuple(scores.measures)
    if isinstance(measures, str):
        measures = (measures,)
    unknown = [m for m in measures if m not in scores.measures]
    if unknown:
        raise InputError(
            f"no scores for measure {unknown[0]!r}; these scores have: {', '.join(scores.measures)}",
            hint=did_you_mean(str(unknown[0]), scores.measures),
        )
    if not measures:
        raise InputError("no measure named", hint=f"these scores have: {', '.join(scores.measures)}")
    return tuple(measures)


def ranking_measure(scores: Scores, pattern: str, measure: str | None) -> str:
    """The measure a pattern is ranked by: `measure`, or the pattern's own (`Scores.measure_of`)."""
    return measure if measure is not None else scores.measure_of(pattern)


def format_score(value: float) -> str:
    """Three decimals, or "–" for a head not scored."""
    return MISSING if math.isnan(value) else f"{value:.3f}"


def caption(scores: Scores) -> str:
    """Where the scores come from: "model · 8 prompts · 400 tokens · 30×9 heads", and "attention
    in query blocks of 96" when the engine read it by blocks (`detect(attention=...)`)."""
    parts = [
        str(scores.model or ""),
        f"{scores.n_prompts} prompts",
        f"{scores.n_tokens} tokens",
        f"{scores.n_layers}×{scores.n_heads} heads",
    ]
    path = dict(scores.settings).get("attention") or {}
    if path.get("path") == "mixed":  # a streamed run whose chunks took both paths
        path = {**path["paths"].get("blocks", {}), "partly": True}
    if path.get("path") == "blocks":
        block = path.get("query_block")
        sizes = "-".join(str(size) for size in block) if isinstance(block, list) else str(block)
        parts.append(f"attention {'partly ' if path.get('partly') else ''}in query blocks of {sizes}")
    return " · ".join(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class Panel:
    """One pattern's layer x head grid in a heatmap, with its best head."""

    pattern: str
    grid: np.ndarray  # [n_layers, n_heads], NaN: not scored
    measure: str
    best: tuple[int, int, float] | None  # (layer, head, value); None when no head was scored
    best_name: str = "best"  # what the marked head is ("most changed" in a difference)
    signed: bool = False  # values are differences, written with their sign

    def title(self, measure_named: bool) -> str:
        """The pattern, its measure unless one was named for all panels, and its best head."""
        title = self.pattern if measure_named else f"{self.pattern} ({self.measure})"
        if self.best is None:
            unchanged = self.signed and bool(np.isfinite(self.grid).any())  # a difference that is 0 everywhere
            return title + ("\nno head changed" if unchanged else "\nno scored heads")
        layer, head, value = self.best
        return title + f"\n{self.best_name} L{layer}H{head}: {self.format(value)}"

    def format(self, value: float) -> str:
        """A cell's value in two decimals (with its sign, for differences)."""
        return f"{value:+.2f}" if self.signed else f"{value:.2f}"


def heatmap_panels(scores: Scores, measure: str | None) -> list[Panel]:
    """A panel per pattern; `measure` None ranks each pattern by its own measure."""
    if measure is not None:
        checked_measures(scores, [measure])
    if not scores.patterns:
        raise InputError("these scores hold no patterns; there is nothing to draw")
    panels = []
    for pattern in scores.patterns:
        failed = scores.requirement_failures(pattern)  # the best candidate: a head that fails a `require` is none
        top = [(h, v) for h, v in scores.top(pattern, scores.n_layers * scores.n_heads, measure=measure)
               if not failed[parse_head(h)]][:1]
        best = (*parse_head(top[0][0]), float(top[0][1])) if top else None
        panels.append(Panel(pattern, score_grid(scores, pattern, measure), ranking_measure(scores, pattern, measure),
                            best, "best (lowest)" if scores.ranks_lowest(pattern, measure) else "best"))
    return panels


def heatmap_heading(measure: str | None) -> str:
    """The heading above all panels of a heatmap."""
    return f"attention heads by pattern · measure: {measure or 'each pattern’s default'}"
