"""The schema of a scores file (`Scores.to_json`), checked before any of it is used.

A file `compare` or `Scores.from_json` reads may come from anywhere: `validate_scores` checks its
types, its grids' shapes (`n_layers x n_heads`, both bounded), that every number is finite and
inside its measure's range (`MEASURES[m].bounds`; null is a missing score) and, before parsing,
how deeply it nests (`files.read_json`). One clear error names the file and the field.

The grid checks (`check_grid`, `field_error`) are shared with the atlas documents' schema.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from patternlang.engine.measures import MEASURES
from patternlang.errors import InputError

FORMAT = "patternlang.scores/2"  # what `Scores.to_dict` writes (engine/scores.py's FORMAT)
MAX_LAYERS = 512
MAX_HEADS = 512
MAX_HEAD_COUNT = 32768  # layers x heads: more than the largest published model
MAX_NAME = 1000  # characters of a pattern, measure or model name
MAX_PROMPTS = 10_000_000
SLACK = 1e-6  # rounding: a stored mass of 1.0000001 is still a mass

Name = Annotated[str, Field(max_length=MAX_NAME)]
Count = Annotated[int, Field(ge=0, le=10**12)]
Number = float | None  # finite (allow_inf_nan=False); null: no score
Grid = list[list[Number]]

STRICT = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")
"""Every model: JSON's own types only (no "1" for 1, no true for 1), no NaN or infinity."""


def bounds_of(measure: str) -> tuple[float, float]:
    """Where a measure's scores can lie; any finite number for a measure this patternlang lacks."""
    return MEASURES[measure].bounds if measure in MEASURES else (-math.inf, math.inf)


def check_grid(grid: Sequence[Sequence[Number]], n_layers: int, n_heads: int, where: str,
               bounds: tuple[float, float] = (-math.inf, math.inf)) -> None:
    """A `[layer][head]` grid of `n_layers x n_heads` numbers (or null) inside `bounds`; a
    ValueError naming the first cell that is not."""
    if len(grid) != n_layers:
        raise ValueError(f"{where}: {len(grid)} rows, the model has {n_layers} layers")
    for layer, row in enumerate(grid):
        if len(row) != n_heads:
            raise ValueError(f"{where}[{layer}]: {len(row)} values, the model has {n_heads} heads")
        for head, value in enumerate(row):
            check_number(value, f"{where}[{layer}][{head}]", bounds)


def check_number(value: Number, where: str, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if value is not None and not (low - SLACK <= value <= high + SLACK):
        raise ValueError(f"{where}: {value!r} lies outside the measure's range [{low:g}, {high:g}]")


def check_shape(n_layers: int, n_heads: int) -> None:
    if n_layers * n_heads > MAX_HEAD_COUNT:
        raise ValueError(f"n_layers x n_heads = {n_layers * n_heads}: at most {MAX_HEAD_COUNT} heads")


def field_error(error: ValidationError, what: str, path: object | None) -> InputError:
    """One InputError from pydantic's errors: the file, the first bad field (dotted), what is wrong."""
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "the top level"
    source = f"{what} {str(path)!r}" if path is not None else what
    message = first["msg"].removeprefix("Value error, ")
    more = error.error_count() - 1
    return InputError(f"{source} is not valid: field {where}: {message}"
                      + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""),
                      hint="it was not written by patternlang, or was changed since; write it again")


class Interval(BaseModel):
    model_config = STRICT
    low: Grid
    high: Grid


class PatternScores(BaseModel):
    model_config = STRICT
    scores: dict[Name, Grid]
    ci95: dict[Name, Interval] | None = None
    n_rows: Count | None = None
    n_prompts: Count | None = None
    n_prompts_run: Count | None = None
    baseline: dict[Name, Number] = {}
    per_prompt: dict[Name, list[Grid]] | None = None


class ScoresFile(BaseModel):
    """`Scores.to_dict`'s form (version 2), or version 1's bare `{measure: grid}` pattern entries."""

    model_config = STRICT
    format: Name = "patternlang.scores/1"
    model: Name = "model"
    measures: list[Name] = Field(min_length=1, max_length=100)
    patterns: dict[Name, PatternScores] = Field(max_length=10_000)
    n_layers: int = Field(ge=1, le=MAX_LAYERS)
    n_heads: int = Field(ge=1, le=MAX_HEADS)
    n_prompts: Count = 0
    n_tokens: Count = 0
    settings: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _version_1(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("format", "patternlang.scores/1") == "patternlang.scores/1":
            patterns = data.get("patterns")
            if isinstance(patterns, Mapping):
                data = {**data, "patterns": {p: {"scores": e} for p, e in patterns.items()}}
        return data

    @model_validator(mode="after")
    def _shapes(self) -> ScoresFile:
        if self.format not in ("patternlang.scores/1", FORMAT):
            raise ValueError(f"unknown format {self.format!r} (this patternlang reads {FORMAT})")
        check_shape(self.n_layers, self.n_heads)
        shape = (self.n_layers, self.n_heads)
        for name, entry in self.patterns.items():
            for m in self.measures:
                if m not in entry.scores:
                    raise ValueError(f"patterns.{name}.scores has no {m!r}, one of the file's measures")
                check_grid(entry.scores[m], *shape, f"patterns.{name}.scores.{m}", bounds_of(m))
                if entry.ci95 is not None:
                    if m not in entry.ci95:
                        raise ValueError(f"patterns.{name}.ci95 has no {m!r}")
                    for side in ("low", "high"):
                        check_grid(getattr(entry.ci95[m], side), *shape, f"patterns.{name}.ci95.{m}.{side}",
                                   bounds_of(m))
                if m in entry.baseline:
                    check_number(entry.baseline[m], f"patterns.{name}.baseline.{m}", bounds_of(m))
                if entry.per_prompt is not None:
                    for i, grid in enumerate(entry.per_prompt.get(m, [])):
                        check_grid(grid, *shape, f"patterns.{name}.per_prompt.{m}[{i}]", bounds_of(m))
            if self.format != "patternlang.scores/1" and entry.n_rows is not None:
                for key in ("n_prompts", "n_prompts_run"):
                    if getattr(entry, key) is None:
                        raise ValueError(f"patterns.{name} has n_rows but no {key}")
        return self


def validate_scores(data: Any, path: object | None = None) -> ScoresFile:
    """`data` checked against the scores schema; an InputError naming `path` and the field. A file of
    another format is said as such first (its fields would only mislead)."""
    found = data.get("format", "patternlang.scores/1") if isinstance(data, Mapping) else None
    if found is not None and found not in ("patternlang.scores/1", FORMAT):
        where = f" {str(path)!r}" if path is not None else ""
        raise InputError(f"the scores file{where} has an unknown format {str(found)[:100]!r} "
                         f"(this patternlang reads {FORMAT})", hint="write it again with this patternlang")
    try:
        return ScoresFile.model_validate(data)
    except ValidationError as error:
        raise field_error(error, "the scores file", path) from None
