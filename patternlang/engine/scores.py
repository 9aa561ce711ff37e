"""`Scores`: every head's score against every pattern, per measure, with provenance."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from patternlang.errors import InputError
from patternlang.files import writing
from patternlang.heads import head_label

RECORD_FIELDS = ("pattern", "measure", "layer", "head", "label", "score")


@dataclass(frozen=True, slots=True, eq=False)
class Scores:
    """Scores `[pattern, layer, head_index]` per measure (float32, CPU; NaN for heads not scored).

    Example:
        scores = detect(model, prompts, ["previous_token_head", "induction_head"])
        scores.get("induction_head")           # [n_layers, n_heads], first measure
        scores.top("induction_head", k=3)      # [("L5H1", 0.93), ...]
        scores.to_json("scores.json")
    """

    patterns: tuple[str, ...]
    measures: tuple[str, ...]
    values: Mapping[str, Tensor]
    model: str = "model"
    n_prompts: int = 0
    n_tokens: int = 0
    settings: Mapping[str, Any] = field(default_factory=dict)
    n_layers: int = 0
    n_heads: int = 0

    def __post_init__(self) -> None:
        expected = (len(self.patterns), self.n_layers, self.n_heads)
        for measure in self.measures:
            if measure not in self.values:
                raise ValueError(f"Scores has no values for measure {measure!r}")
            if tuple(self.values[measure].shape) != expected:
                raise ValueError(f"values[{measure!r}] has shape {tuple(self.values[measure].shape)}, expected {expected}")

    # ---- lookup ---------------------------------------------------------------------------
    def _pattern_index(self, pattern: str | int) -> int:
        if isinstance(pattern, int) and not isinstance(pattern, bool):
            if not -len(self.patterns) <= pattern < len(self.patterns):
                raise InputError(f"pattern index {pattern} is out of range: {len(self.patterns)} patterns scored")
            return pattern % len(self.patterns)
        if pattern not in self.patterns:
            raise InputError(f"no scores for pattern {pattern!r}", hint="scored: " + ", ".join(self.patterns))
        return self.patterns.index(pattern)

    def _measure(self, measure: str | None) -> str:
        if measure is None:
            return self.measures[0]
        if measure not in self.measures:
            raise InputError(f"no scores for measure {measure!r}", hint="scored: " + ", ".join(self.measures))
        return measure

    def measure_of(self, pattern: str | int) -> str:
        """The measure a pattern is ranked by when none is named: its own (`measure tv` in its
        definition) when that was scored, else the first."""
        name = self.patterns[self._pattern_index(pattern)]
        own = dict(self.settings).get("pattern_measures", {}).get(name)
        return own if own in self.measures else self.measures[0]

    def get(self, pattern: str | int, measure: str | None = None) -> Tensor:
        """One pattern's scores `[n_layers, n_heads]` (measure: the pattern's own, see `measure_of`)."""
        chosen = self.measure_of(pattern) if measure is None else self._measure(measure)
        return self.values[chosen][self._pattern_index(pattern)]

    def top(self, pattern: str | int, k: int = 5, measure: str | None = None) -> list[tuple[str, float]]:
        """The `k` best heads for a pattern, best first: `[("L5H1", 0.93), ...]`; NaN never ranks."""
        grid = self.get(pattern, measure).flatten()
        finite = torch.nonzero(~torch.isnan(grid)).flatten()
        order = finite[torch.argsort(grid[finite], descending=True, stable=True)][: max(0, k)]
        return [(head_label(int(i) // self.n_heads, int(i) % self.n_heads), float(grid[i])) for i in order]

    # ---- export ---------------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        return {
            "n_prompts": self.n_prompts,
            "n_tokens": self.n_tokens,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "settings": _jsonable(dict(self.settings)),
        }

    def to_dict(self) -> dict[str, Any]:
        """`{"model", "measures", "patterns": {name: {measure: [[per head] per layer]}}, ...provenance}`; NaN -> None."""
        return {
            "model": self.model,
            "measures": list(self.measures),
            "patterns": {
                name: {m: _nested(self.values[m][i]) for m in self.measures} for i, name in enumerate(self.patterns)
            },
            **self.provenance(),
        }

    def to_json(self, path: str | Path | None = None, *, indent: int | None = 2) -> str:
        """The `to_dict` form as JSON text (null for NaN); also written to `path` when given."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            with writing(path) as target:
                target.write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Scores":
        """Read back what `to_dict` wrote."""
        try:
            patterns = tuple(data["patterns"])
            measures = tuple(data["measures"])
            n_layers, n_heads = int(data["n_layers"]), int(data["n_heads"])
            values = {
                m: torch.tensor(
                    [[[math.nan if v is None else v for v in row] for row in data["patterns"][p][m]] for p in patterns],
                    dtype=torch.float32,
                ).reshape(len(patterns), n_layers, n_heads)
                for m in measures
            }
            return cls(patterns, measures, values, model=str(data.get("model", "model")),
                       n_prompts=int(data.get("n_prompts", 0)), n_tokens=int(data.get("n_tokens", 0)),
                       settings=dict(data.get("settings", {})), n_layers=n_layers, n_heads=n_heads)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise InputError(f"not a patternlang scores file: {error}") from None

    @classmethod
    def from_json(cls, path: str | Path) -> "Scores":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise InputError(f"cannot read scores from {path}: {error}") from None
        return cls.from_dict(data)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per (pattern, measure, layer, head): pattern, measure, layer, head, label, score (None for NaN)."""
        records = []
        for m in self.measures:
            table = self.values[m].tolist()
            for p, name in enumerate(self.patterns):
                for layer in range(self.n_layers):
                    for head in range(self.n_heads):
                        value = table[p][layer][head]
                        records.append({
                            "pattern": name, "measure": m, "layer": layer, "head": head,
                            "label": head_label(layer, head), "score": None if math.isnan(value) else value,
                        })
        return records

    def to_csv(self, path: str | Path) -> None:
        """The records as CSV with a header row; NaN is an empty cell."""
        with writing(path) as target, open(target, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=RECORD_FIELDS)
            writer.writeheader()
            writer.writerows(self.to_records())

    def to_dataframe(self):
        """The records as a pandas DataFrame (pandas is optional and imported only here)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Scores.to_dataframe needs pandas: pip install pandas") from None
        frame = pd.DataFrame.from_records(self.to_records(), columns=list(RECORD_FIELDS))
        frame["score"] = frame["score"].astype(float)
        return frame

    def __repr__(self) -> str:
        return (f"Scores(model={self.model!r}, {len(self.patterns)} patterns x {self.n_layers} layers x "
                f"{self.n_heads} heads, measures={','.join(self.measures)}, n_prompts={self.n_prompts})")

    def _repr_html_(self) -> str:
        """Jupyter's view: provenance, best heads and sample sizes per pattern, heatmaps."""
        from patternlang.reprs import safe_html, scores_html

        return safe_html(scores_html, self)


def _nested(grid: Tensor) -> list[list[float | None]]:
    return [[None if math.isnan(v) else v for v in row] for row in grid.tolist()]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
