"""The records a `Scores` holds besides its grids: each pattern's `Evidence`, the run's typed
`RunSettings`, and the in-memory `ScoreSource` a head's evidence is drawn again from."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: chunks.py reads torch (through checkpoint.py), this module does not
    from patternlang.engine.chunks import StreamedPrompts

__all__ = ["Evidence", "RunSettings", "ScoreSource"]


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one pattern's scores rest on.

    `n_rows`: target rows (query rows where the pattern marks a counted key), which the row
    measures average over; `n_prompts`: prompts with at least one target row, which the
    intervals treat as the independent samples; `n_prompts_run`: prompts the pattern was run
    on (what `mul` and `abs` average over); `baseline`: per measure, the score of a chance
    head that attends uniformly over each row's counted keys (`argmax`: picks one at random).
    """

    n_rows: int
    n_prompts: int
    n_prompts_run: int
    baseline: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"n_rows": self.n_rows, "n_prompts": self.n_prompts, "n_prompts_run": self.n_prompts_run,
                "baseline": {m: finite_or_none(v) for m, v in self.baseline.items()}}


@dataclass(frozen=True, slots=True)
class RunSettings(Mapping[str, Any]):
    """How a run scored (`Scores.settings`), one named field per setting; the JSON keys are the
    field names. It reads as a mapping too (`settings["attention"]`, `dict(settings)`): the keys a
    run set, in this order, the optional ones only where set (as the JSON file holds them).

    exclusions: `{pattern: {"bos": bool, "current": bool}}`; batch_size: an int or "auto";
    n_batches: batches scored; prepend_bos: BOS prepended to text prompts; heads: the heads asked
    for ("L5H1 ..." labels) or None for all; pattern_measures: `{pattern: its own measure}`;
    attention: which path read the attention (docs/long_context.md); processes: ranks of a
    distributed run; undefined: `{pattern: {measure: why}}` for NaN scores; probes and runs: a
    survey's probe per pattern and its runs; pattern_ranks, pattern_requires, positional_patterns,
    positional_baselines: what verdicts read (engine/verdicts.py, engine/baselines.py); extra: keys of a file this version does not know.
    """

    exclusions: Mapping[str, Any] | None = None
    batch_size: int | str | None = None
    n_batches: int | None = None
    prepend_bos: bool | None = None
    heads: Sequence[str] | None = None
    pattern_measures: Mapping[str, str] | None = None
    attention: Mapping[str, Any] | None = None
    processes: int | None = None
    undefined: Mapping[str, Mapping[str, str]] | None = None
    probes: Mapping[str, str] | None = None
    runs: Sequence[Mapping[str, Any]] | None = None
    pattern_ranks: Mapping[str, str] | None = None  # `rank lowest|highest`, where a pattern says
    pattern_requires: Mapping[str, Sequence[str]] | None = None  # its `require` conditions, as text
    positional_patterns: Mapping[str, str] | None = None  # patterns that are themselves a positional rule
    positional_baselines: Mapping[str, Any] | None = None  # per pattern: the best fixed-offset rule and its score
    extra: Mapping[str, Any] = field(default_factory=dict)
    given: tuple[str, ...] | None = None  # the keys set, when read from a mapping (None: a run's own)

    _ALWAYS = ("exclusions", "batch_size", "n_batches", "prepend_bos", "heads", "pattern_measures", "attention")
    _OPTIONAL = ("processes", "undefined", "probes", "runs", "pattern_ranks", "pattern_requires",
                 "positional_patterns", "positional_baselines")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSettings:
        """Read a mapping (a JSON file's "settings"), keeping the keys it set and any this version
        does not know."""
        if isinstance(data, RunSettings):
            return data
        known = cls._ALWAYS + cls._OPTIONAL
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known}, given=tuple(data))

    def _keys(self) -> list[str]:
        if self.given is not None:
            return list(self.given)
        return [*self._ALWAYS, *(k for k in self._OPTIONAL if getattr(self, k) is not None)]

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys():
            raise KeyError(key)
        return self.extra[key] if key in self.extra else getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


@dataclass(frozen=True, slots=True, eq=False)
class ScoreSource:
    """What some of the scores were computed from: the model, the prompts as given to `detect`
    (texts or token ids, one entry per prompt), the patterns by name and the prompts' labelled
    spans, if any. Kept in memory only (never written to JSON), so that a head's evidence can be
    drawn again (`Scores.show`)."""

    model: Any
    prompts: tuple[Any, ...] | StreamedPrompts
    patterns: Mapping[str, Any]  # name -> engine Detector
    spans: Sequence[Any] | StreamedPrompts | None = None  # per prompt: its labelled spans (`spans.Labels`) or None; a
    # streamed run's read again from its source (`chunks.StreamedPrompts`)


def finite_or_none(value: float | None) -> float | None:
    """A score as JSON writes it: None for NaN (or None)."""
    return None if value is None or math.isnan(value) else float(value)


def float_or_nan(value: Any) -> float:
    """A score as JSON read it back: NaN for None."""
    return math.nan if value is None else float(value)
