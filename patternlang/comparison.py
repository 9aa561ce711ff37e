"""Two `Scores` side by side (two models, two checkpoints, two prompt sets): how much each head's
score changed, and which heads changed most.

Scores of the same shape (layers x heads) are compared head by head: `difference[measure]` is
B - A, `[pattern, layer, head]`, over the patterns and measures both hold. Scores of different
shapes (two different models) have no head in common; `changed_most` then refuses, and `top`
gives each side's own best heads, to set side by side.

Only `Scores`' public fields are read, so files written by any version of `Scores.to_json` compare.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from patternlang.engine.scores import Scores
from patternlang.errors import InputError, did_you_mean
from patternlang.heads import head_label


class Change(NamedTuple):
    """One head's score in A and in B, and how much it changed (`delta` = b - a)."""

    label: str
    a: float
    b: float
    delta: float


@dataclass(frozen=True, eq=False)
class Comparison:
    """What `compare` found. `patterns` and `measures` are those both hold (in A's order);
    `difference[measure]` is B - A `[pattern, layer, head]` (NaN where either is NaN), empty when
    the shapes differ; `only_in_a` / `only_in_b` name the patterns and measures one side lacks."""

    a: Scores
    b: Scores
    patterns: tuple[str, ...]
    measures: tuple[str, ...]
    difference: Mapping[str, Tensor]
    measure: str | None = None  # the measure named; None: each pattern's own (`measure_of`)
    labels: tuple[str, str] = ("A", "B")

    @property
    def same_shape(self) -> bool:
        return (self.a.n_layers, self.a.n_heads) == (self.b.n_layers, self.b.n_heads)

    @property
    def only_in_a(self) -> dict[str, list[str]]:
        return _only(self.a, self.patterns, self.measures)

    @property
    def only_in_b(self) -> dict[str, list[str]]:
        return _only(self.b, self.patterns, self.measures)

    def measure_of(self, pattern: str) -> str:
        """The measure a pattern is compared by: the one named, else A's own for the pattern (B's,
        when A's is not in both), else the first measure both hold."""
        self._check_pattern(pattern)
        if self.measure is not None:
            return self.measure
        for side in (self.a, self.b):
            own = side.measure_of(pattern)
            if own in self.measures:
                return own
        return self.measures[0]

    def _measure(self, pattern: str, measure: str | None) -> str:
        return self.measure_of(pattern) if measure is None else _shared_measure(measure, self.a, self.b,
                                                                                self.measures, self.labels)

    def _check_pattern(self, pattern: str) -> None:
        if pattern not in self.patterns:
            raise InputError(f"{pattern!r} is not a pattern both scores hold; they share: " + ", ".join(self.patterns),
                             hint=did_you_mean(str(pattern), self.patterns))

    def changed_most(self, pattern: str, k: int = 5, measure: str | None = None) -> list[Change]:
        """The `k` heads whose score changed most (by |B - A|), largest first; heads that did not
        change, or have a NaN score on either side, never rank.

        >>> comparison.changed_most("induction_head", k=1)  # doctest: +SKIP
        [Change(label='L5H1', a=0.12, b=0.91, delta=0.79)]
        """
        if not self.same_shape:
            raise InputError(f"{self.describe_shapes()}: no head is in both, so no head changed",
                             hint="compare each side's own best heads: Comparison.top(pattern)")
        chosen = self._measure(pattern, measure)
        index = self.patterns.index(pattern)
        delta = self.difference[chosen][index].flatten()
        a_grid = self.a.get(pattern, chosen).flatten()
        b_grid = self.b.get(pattern, chosen).flatten()
        finite = torch.nonzero(~torch.isnan(delta) & (delta != 0)).flatten()
        order = finite[torch.argsort(delta[finite].abs(), descending=True, stable=True)][: max(0, k)]
        n_heads = self.a.n_heads
        return [Change(head_label(int(i) // n_heads, int(i) % n_heads), float(a_grid[i]), float(b_grid[i]),
                       float(delta[i])) for i in order]

    def top(self, pattern: str, k: int = 5, measure: str | None = None
            ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """Each side's own `k` best heads for `pattern`: `(A's, B's)`, whatever their shapes."""
        chosen = self._measure(pattern, measure)
        return self.a.top(pattern, k, chosen), self.b.top(pattern, k, chosen)

    def describe_shapes(self) -> str:
        a, b = self.a, self.b
        return (f"{self.labels[0]} has {a.n_layers}×{a.n_heads} heads and {self.labels[1]} "
                f"{b.n_layers}×{b.n_heads}")

    def to_dict(self, k: int = 5) -> dict[str, Any]:
        """JSON-ready: both sides' provenance, what only one holds, each pattern's measure, the
        difference grids (null for NaN) and the `k` heads that changed most, or, when the shapes
        differ, each side's `k` best heads."""
        data: dict[str, Any] = {
            "a": _side(self.a, self.labels[0]),
            "b": _side(self.b, self.labels[1]),
            "same_shape": self.same_shape,
            "patterns": list(self.patterns),
            "measures": list(self.measures),
            "only_in_a": self.only_in_a,
            "only_in_b": self.only_in_b,
            "measure_of": {p: self.measure_of(p) for p in self.patterns},
        }
        if self.same_shape:
            data["difference"] = {p: {m: _nested(self.difference[m][i]) for m in self.measures}
                                  for i, p in enumerate(self.patterns)}
            data["changed_most"] = {p: [{"head": c.label, "a": c.a, "b": c.b, "delta": c.delta}
                                        for c in self.changed_most(p, k)] for p in self.patterns}
        else:
            data["top"] = {p: {side: [{"head": label, "score": score} for label, score in ranked]
                               for side, ranked in zip(("a", "b"), self.top(p, k))} for p in self.patterns}
        return data


def compare(a: Scores, b: Scores, *, measure: str | None = None, labels: tuple[str, str] = ("A", "B")) -> Comparison:
    """A and B side by side, over the patterns and measures both hold.

    `measure`: the measure to rank changes by (it must be in both); None: each pattern's own.
    Scores that share no pattern, or no measure, raise `InputError`. Scores of different shapes
    (two models) compare too, but only by each side's best heads (`Comparison.top`).

    >>> before, after = Scores.from_json("step1000.json"), Scores.from_json("step5000.json")  # doctest: +SKIP
    >>> compare(before, after).changed_most("induction_head", k=3)  # doctest: +SKIP
    [Change(label='L5H1', a=0.12, b=0.91, delta=0.79), ...]
    """
    for side, label in ((a, labels[0]), (b, labels[1])):
        if not isinstance(side, Scores):
            raise InputError(f"{label} is a {type(side).__name__}, not Scores",
                             hint="read a scores file with Scores.from_json(path)")
    patterns = tuple(p for p in a.patterns if p in b.patterns)
    if not patterns:
        raise InputError(f"{labels[0]} and {labels[1]} share no pattern: {labels[0]} has {_names(a.patterns)}, "
                         f"{labels[1]} has {_names(b.patterns)}",
                         hint="score the same patterns in both runs")
    measures = tuple(m for m in a.measures if m in b.measures)
    if not measures:
        raise InputError(f"{labels[0]} and {labels[1]} share no measure: {labels[0]} has {_names(a.measures)}, "
                         f"{labels[1]} has {_names(b.measures)}",
                         hint="score both with a common --measure")
    if measure is not None:
        _shared_measure(measure, a, b, measures, labels)
    difference: dict[str, Tensor] = {}
    if (a.n_layers, a.n_heads) == (b.n_layers, b.n_heads):
        for m in measures:
            difference[m] = torch.stack([b.get(p, m).float() - a.get(p, m).float() for p in patterns])
    return Comparison(a, b, patterns, measures, difference, measure, labels)


def _shared_measure(measure: str, a: Scores, b: Scores, shared: tuple[str, ...], labels: tuple[str, str]) -> str:
    if measure in shared:
        return measure
    lacking = [label for side, label in zip((a, b), labels) if measure not in side.measures]
    if len(lacking) == 2:
        raise InputError(f"neither {labels[0]} nor {labels[1]} has scores for measure {measure!r}; "
                         f"both have: {', '.join(shared)}", hint=did_you_mean(str(measure), shared))
    side = a if lacking[0] == labels[0] else b
    raise InputError(f"{lacking[0]} has no scores for measure {measure!r}; it has: {', '.join(side.measures)}",
                     hint=f"compare by a measure both have: {', '.join(shared)}")


def _only(side: Scores, patterns: tuple[str, ...], measures: tuple[str, ...]) -> dict[str, list[str]]:
    return {"patterns": [p for p in side.patterns if p not in patterns],
            "measures": [m for m in side.measures if m not in measures]}


def _side(scores: Scores, label: str) -> dict[str, Any]:
    return {"label": label, "model": scores.model, "n_prompts": scores.n_prompts, "n_layers": scores.n_layers,
            "n_heads": scores.n_heads}


def _names(names: tuple[str, ...], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "") if names else "none"


def _nested(grid: Tensor) -> list[list[float | None]]:
    return [[None if math.isnan(v) else v for v in row] for row in grid.tolist()]
