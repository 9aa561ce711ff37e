"""`Scores`: every head's score against every pattern, per measure, with provenance."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from patternlang.errors import InputError, did_you_mean
from patternlang.engine.explanation import Explanation, explain
from patternlang.engine.score_schema import validate_scores
from patternlang.files import read_json, writing
from patternlang.engine.score_records import Evidence, RunSettings, ScoreSource, finite_or_none, float_or_nan
from patternlang.engine.score_tables import RECORD_FIELDS, records_frame, score_records, write_csv
from patternlang.engine.matters import matters_for
from patternlang.engine.verdicts import (DEFAULT_FOOTING, Footing, Verdict, head_candidates, holds, parse_requirement,
                                         verdict)
from patternlang.measure_table import MEASURE_TABLE
from patternlang.heads import head_label, parse_heads

__all__ = ["FORMAT", "RECORD_FIELDS", "Evidence", "RunSettings", "ScoreSource", "Scores"]

FORMAT = "patternlang.scores/2"
"""The JSON format's name and version (version 1 had no "format" key and no evidence)."""


@dataclass(frozen=True, slots=True, eq=False)
class Scores:
    """Scores `[pattern, layer, head_index]` per measure (float32, CPU; NaN for heads not scored),
    with their evidence: 95% intervals over prompts (`ci_low`, `ci_high`, same shapes), each
    pattern's sample sizes and chance baseline (`evidence`), and, when `detect` was asked for
    them, every prompt's own scores (`per_prompt`).

    Example:
        scores = detect(model, prompts, ["previous_token_head", "induction_head"])
        scores.get("induction_head")           # [n_layers, n_heads], the pattern's measure
        scores.top("induction_head", k=3)      # [("L5H1", 0.93), ...]
        scores.interval("induction_head")      # (low, high), each [n_layers, n_heads]
        scores.evidence["induction_head"]      # Evidence(n_rows=1280, n_prompts=16, ..., baseline=...)
        scores.to_json("scores.json")
    """

    patterns: tuple[str, ...]
    measures: tuple[str, ...]
    values: Mapping[str, Tensor]
    model: str = "model"
    n_prompts: int = 0
    n_tokens: int = 0
    settings: RunSettings = field(default_factory=lambda: RunSettings(given=()))
    n_layers: int = 0
    n_heads: int = 0
    sources: tuple[ScoreSource, ...] = field(default=(), repr=False)
    ci_low: Mapping[str, Tensor] = field(default_factory=dict, repr=False)
    ci_high: Mapping[str, Tensor] = field(default_factory=dict, repr=False)
    evidence: Mapping[str, Evidence] = field(default_factory=dict, repr=False)
    per_prompt: Mapping[str, Mapping[str, Tensor]] = field(default_factory=dict, repr=False)  # pattern -> measure -> [prompt, layer, head]
    effects: Mapping[str, Any] = field(default_factory=dict, repr=False)  # metric -> `Effects.to_dict()` (patternlang.effects.scored_effects.attach_effects)

    def __post_init__(self) -> None:
        if not isinstance(self.settings, RunSettings):  # a plain mapping (a file's, a caller's)
            object.__setattr__(self, "settings", RunSettings.from_dict(self.settings))
        expected = (len(self.patterns), self.n_layers, self.n_heads)
        for measure in self.measures:
            for kind, grids in (("values", self.values), ("ci_low", self.ci_low), ("ci_high", self.ci_high)):
                if kind != "values" and not grids:
                    continue
                if measure not in grids:
                    raise ValueError(f"Scores has no {kind} for measure {measure!r}")
                if tuple(grids[measure].shape) != expected:
                    raise ValueError(f"{kind}[{measure!r}] has shape {tuple(grids[measure].shape)}, expected {expected}")

    # ---- lookup ---------------------------------------------------------------------------
    def _pattern_index(self, pattern: str | int) -> int:
        if isinstance(pattern, int) and not isinstance(pattern, bool):
            if not -len(self.patterns) <= pattern < len(self.patterns):
                raise InputError(f"pattern index {pattern} is out of range: {len(self.patterns)} patterns scored")
            return pattern % len(self.patterns)
        if pattern not in self.patterns:
            raise InputError(f"no scores for pattern {pattern!r}; scored: " + ", ".join(self.patterns),
                             hint=did_you_mean(str(pattern), self.patterns))
        return self.patterns.index(pattern)

    def _measure(self, measure: str | None) -> str:
        if measure is None:
            return self.measures[0]
        if measure not in self.measures:
            raise InputError(f"no scores for measure {measure!r}; scored: " + ", ".join(self.measures),
                             hint=did_you_mean(str(measure), self.measures))
        return measure

    def measure_of(self, pattern: str | int) -> str:
        """The measure a pattern is ranked by when none is named: its own (`measure tv` in its
        definition) when that was scored, else the first."""
        name = self.patterns[self._pattern_index(pattern)]
        own = (self.settings.pattern_measures or {}).get(name)
        return own if own in self.measures else self.measures[0]

    def get(self, pattern: str | int, measure: str | None = None) -> Tensor:
        """One pattern's scores `[n_layers, n_heads]` (measure: the pattern's own, see `measure_of`)."""
        chosen = self.measure_of(pattern) if measure is None else self._measure(measure)
        return self.values[chosen][self._pattern_index(pattern)]

    def top(self, pattern: str | int, k: int = 5, measure: str | None = None, *,
            lowest: bool | None = None) -> list[tuple[str, float]]:
        """The `k` best heads for a pattern, best first: `[("L5H1", 0.93), ...]`; NaN never ranks.

        Best is highest, or lowest where the pattern says `rank lowest` (for its own measure) or
        the measure's direction is "lower"; `lowest=True`/`False` overrides (`ranks_lowest`)."""
        grid = self.get(pattern, measure).flatten()
        if lowest is None:
            lowest = self.ranks_lowest(pattern, measure)
        finite = torch.nonzero(~torch.isnan(grid)).flatten()
        order = finite[torch.argsort(grid[finite], descending=not lowest, stable=True)][: max(0, k)]
        return [(head_label(int(i) // self.n_heads, int(i) % self.n_heads), float(grid[i])) for i in order]

    def ranks_lowest(self, pattern: str | int, measure: str | None = None) -> bool:
        """Whether a pattern's candidates are its lowest scores in `measure` (default: its own):
        the pattern's `rank` setting for its own measure, else the measure's direction."""
        name = self.patterns[self._pattern_index(pattern)]
        chosen = self.measure_of(pattern) if measure is None else self._measure(measure)
        rank = (self.settings.pattern_ranks or {}).get(name)
        if rank is not None and chosen == (self.settings.pattern_measures or {}).get(name, chosen):
            return rank == "lowest"
        return chosen in MEASURE_TABLE and MEASURE_TABLE[chosen].direction == "lower"

    def requirement_failures(self, pattern: str | int) -> Tensor:
        """Bool `[n_layers, n_heads]`: the heads that fail one of the pattern's `require` conditions
        (on the same prompts; a condition whose measure was not scored fails every head)."""
        name = self.patterns[self._pattern_index(pattern)]
        failed = torch.zeros(self.n_layers, self.n_heads, dtype=torch.bool)
        for text in dict(self.settings).get("pattern_requires", {}).get(name, ()):
            measure, op, value = parse_requirement(text)
            if measure not in self.measures:
                return torch.ones_like(failed)
            grid = self.values[measure][self._pattern_index(pattern)]
            failed |= torch.tensor([[not holds(op, float(v), value) for v in row] for row in grid.tolist()])
        return failed

    def positional_baseline(self, pattern: str | int) -> dict[str, Any] | None:
        """The best positional rule on the pattern's target rows (`k == q - d`, d in 0..16, or
        `k == 0`): `{"rule", "score", "measure", ...}`, or None when its measure has none."""
        name = self.patterns[self._pattern_index(pattern)]
        found = dict(self.settings).get("positional_baselines", {}).get(name)
        return dict(found) if found else None

    def verdict(self, head: Any, *, footing: Footing | None = None) -> Verdict:
        """What one head is called (`engine.verdicts.verdict`), from every pattern these scores hold."""
        layer, index = self.head_of(head)  # with what it matters for, from effects beside the scores (matters.py)
        return verdict(head_candidates(self, layer, index), footing=footing or DEFAULT_FOOTING,
                       matters=matters_for(self.effects, head_label(layer, index)))

    def verdicts(self, *, footing: Footing | None = None) -> dict[str, Verdict]:
        """Every head's verdict: `{"L5H1": Verdict, ...}`."""
        return {head_label(layer, h): self.verdict((layer, h), footing=footing)
                for layer in range(self.n_layers) for h in range(self.n_heads)}

    # ---- evidence -------------------------------------------------------------------------
    def baseline(self, pattern: str | int, measure: str | None = None) -> float:
        """What a head attending uniformly over each row's counted keys scores (NaN if unknown)."""
        name = self.patterns[self._pattern_index(pattern)]
        chosen = self.measure_of(pattern) if measure is None else self._measure(measure)
        evidence = self.evidence.get(name)
        return float(evidence.baseline.get(chosen, math.nan)) if evidence else math.nan

    def interval(self, pattern: str | int, measure: str | None = None) -> tuple[Tensor, Tensor]:
        """The 95% interval over prompts of one pattern's scores: `(low, high)`, each `[n_layers, n_heads]`.

        The ratio of sums over prompts, its standard error by the delta method, Student's t; NaN with fewer
        than 2 prompts with target rows, or for scores read from a file written without them."""
        chosen = self.measure_of(pattern) if measure is None else self._measure(measure)
        index = self._pattern_index(pattern)
        if not self.ci_low:
            nan = torch.full((self.n_layers, self.n_heads), math.nan)
            return nan, nan.clone()
        return self.ci_low[chosen][index], self.ci_high[chosen][index]

    def prompt_scores(self, pattern: str | int, head: Any, measure: str | None = None) -> Tensor:
        """One head's score on each prompt, `[n_prompts]` (NaN on a prompt without target rows).

        Needs `detect(..., per_prompt=True)`."""
        name = self.patterns[self._pattern_index(pattern)]
        chosen = self.measure_of(pattern) if measure is None else self._measure(measure)
        if name not in self.per_prompt:
            raise InputError(f"no per-prompt scores for {name!r}",
                             hint="run detect(..., per_prompt=True) to keep every prompt's scores")
        layer, head_index = self.head_of(head)
        return self.per_prompt[name][chosen][:, layer, head_index]

    def best_prompts(self, pattern: str | int, head: Any, k: int = 5, measure: str | None = None,
                     *, worst: bool = False) -> list[tuple[int, float]]:
        """The `k` prompts where a head matches the pattern most (`worst=True`: least):
        `[(prompt index, score), ...]`; prompts without target rows never rank."""
        scores = self.prompt_scores(pattern, head, measure)
        finite = torch.nonzero(~torch.isnan(scores)).flatten()
        order = finite[torch.argsort(scores[finite], descending=not worst, stable=True)][: max(0, k)]
        return [(int(i), float(scores[i])) for i in order]

    def worst_prompts(self, pattern: str | int, head: Any, k: int = 5,
                      measure: str | None = None) -> list[tuple[int, float]]:
        """The `k` prompts where a head matches the pattern least (see `best_prompts`)."""
        return self.best_prompts(pattern, head, k, measure, worst=True)

    def head_of(self, head: Any) -> tuple[int, int]:
        """One head as `(layer, head_index)`, checked against the model's shape: "L5H1", "5.1" or (5, 1)."""
        chosen = parse_heads(head, self.n_layers, self.n_heads)
        pairs = [(layer, h) for layer, hs in chosen.items() for h in (range(self.n_heads) if hs is None else hs)]
        if len(pairs) != 1:
            raise InputError(f"name one head, not {len(pairs)}: {head!r}", hint='e.g. "L5H1"')
        return pairs[0]

    def source_of(self, pattern: str | int) -> ScoreSource:
        """The model, prompts and pattern a pattern's scores came from (in memory only)."""
        name = self.patterns[self._pattern_index(pattern)]
        for source in self.sources:
            if name in source.patterns:
                return source
        raise InputError(f"the scores of {name!r} were read from a file and hold no model or prompts",
                         hint="run detect(...) in this session to draw a head's evidence")

    # ---- export ---------------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        return {
            "n_prompts": self.n_prompts,
            "n_tokens": self.n_tokens,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "settings": _jsonable(dict(self.settings)),
        }

    def to_dict(self, *, verdicts: bool = False) -> dict[str, Any]:
        """The JSON form (NaN -> None):

        `{"format", "model", "measures", "patterns": {name: {"scores": {measure: [[per head] per
        layer]}, "ci95": {measure: {"low": grid, "high": grid}}, "n_rows", "n_prompts",
        "n_prompts_run", "baseline": {measure: float}, "per_prompt": {measure: [grid per
        prompt]} (when kept)}}, "n_prompts", "n_tokens", "n_layers", "n_heads", "settings"}`.
        """
        patterns = {}
        for i, name in enumerate(self.patterns):
            entry: dict[str, Any] = {"scores": {m: _nested(self.values[m][i]) for m in self.measures}}
            if self.ci_low:
                entry["ci95"] = {m: {"low": _nested(self.ci_low[m][i]), "high": _nested(self.ci_high[m][i])}
                                 for m in self.measures}
            if name in self.evidence:
                entry.update(self.evidence[name].to_dict())
            baseline = self.positional_baseline(name)  # [verdicts]
            if baseline is not None:
                entry["positional_baseline"] = {key: finite_or_none(value) if isinstance(value, float) else value
                                                for key, value in baseline.items()}
            if name in self.per_prompt:
                entry["per_prompt"] = {m: [_nested(grid) for grid in self.per_prompt[name][m]] for m in self.measures}
            patterns[name] = entry
        data = {"format": FORMAT, "model": self.model, "measures": list(self.measures), "patterns": patterns,
                **self.provenance()}
        if verdicts:  # [verdicts] every head's verdict (engine/verdicts.py)
            data["verdicts"] = {head: found.to_dict() for head, found in self.verdicts().items()}
        if self.effects:  # each head's effect on a metric, beside its scores (attach_effects)
            data["effects"] = dict(self.effects)
        return data

    def to_json(self, path: str | Path | None = None, *, indent: int | None = 2, verdicts: bool = False) -> str:
        """The `to_dict` form as JSON text (null for NaN); also written to `path` when given."""
        text = json.dumps(self.to_dict(verdicts=verdicts), indent=indent, allow_nan=False)
        if path is not None:
            with writing(path) as target:
                target.write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Scores":
        """Read back what `to_dict` wrote (this format, or version 1's bare `{measure: grid}` entries),
        checked first against the schema (`score_schema.py`)."""
        validate_scores(data)
        try:
            version = data.get("format", "patternlang.scores/1")
            if version not in ("patternlang.scores/1", FORMAT):
                raise ValueError(f"unknown format {version!r} (this patternlang reads {FORMAT})")
            patterns = tuple(data["patterns"])
            measures = tuple(data["measures"])
            n_layers, n_heads = int(data["n_layers"]), int(data["n_heads"])
            entries = {p: data["patterns"][p] for p in patterns}
            scores = {p: entry["scores"] if version == FORMAT else entry for p, entry in entries.items()}

            def grids(read: Callable[[str, str], Any]) -> dict[str, Tensor]:
                return {m: torch.stack([_grid(read(p, m), n_layers, n_heads) for p in patterns])
                        if patterns else torch.zeros(0, n_layers, n_heads) for m in measures}

            values = grids(lambda p, m: scores[p][m])
            low = high = {}
            if patterns and all("ci95" in entry for entry in entries.values()):
                low = grids(lambda p, m: entries[p]["ci95"][m]["low"])
                high = grids(lambda p, m: entries[p]["ci95"][m]["high"])
            evidence = {
                p: Evidence(int(entry["n_rows"]), int(entry["n_prompts"]), int(entry["n_prompts_run"]),
                            {m: float_or_nan(v) for m, v in dict(entry["baseline"]).items()})
                for p, entry in entries.items() if version == FORMAT and "n_rows" in entry
            }
            per_prompt = {
                p: {m: torch.stack([_grid(g, n_layers, n_heads) for g in entry["per_prompt"][m]]) for m in measures}
                for p, entry in entries.items() if version == FORMAT and entry.get("per_prompt")
            }
            return cls(patterns, measures, values, model=str(data.get("model", "model")),
                       n_prompts=int(data.get("n_prompts", 0)), n_tokens=int(data.get("n_tokens", 0)),
                       settings=RunSettings.from_dict(dict(data.get("settings", {}))), n_layers=n_layers,
                       n_heads=n_heads, ci_low=low, ci_high=high, evidence=evidence, per_prompt=per_prompt,
                       effects=dict(data.get("effects") or {}))
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
            raise InputError(f"not a patternlang scores file: {error}") from None

    @classmethod
    def from_json(cls, path: str | Path) -> "Scores":
        data = read_json(path, "the scores file")
        validate_scores(data, path)
        if not isinstance(data, Mapping):  # not reached: the schema refuses anything but an object
            raise InputError(f"not a patternlang scores file: {str(path)!r} holds no JSON object")
        return cls.from_dict(data)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per (pattern, measure, layer, head): pattern, measure, layer, head, label, score,
        its 95% interval (ci_low, ci_high), the pattern's chance baseline, n_rows and n_prompts
        (None where NaN or unknown)."""
        return score_records(self)

    def to_csv(self, path: str | Path) -> None:
        """The records as CSV with a header row; NaN is an empty cell."""
        write_csv(self, path)

    def to_dataframe(self) -> Any:
        """The records as a pandas DataFrame (pandas is optional and imported only then)."""
        return records_frame(self)

    def __repr__(self) -> str:
        return (f"Scores(model={self.model!r}, {len(self.patterns)} patterns x {self.n_layers} layers x "
                f"{self.n_heads} heads, measures={','.join(self.measures)}, n_prompts={self.n_prompts})")

    def show(self, pattern: str | int, head: Any, prompt: Any = 0, *, out: str | Path | None = None) -> Explanation:
        """Why `head` scored against `pattern`: its attention beside the pattern's matrix on one prompt,
        with that prompt's scores in every measure scored (`patternlang.engine.explanation`), judged with the
        exclusions the pattern was scored with.

        `prompt`: an index into the prompts these scores came from (drawn with its labelled spans,
        if it has any), or a text or token ids.
        Returns the `Explanation` (printed: terminal grids; in Jupyter: the interactive HTML);
        `out="why.png"` / `.html` / `.json` also writes it to that file.

        >>> scores.show("induction_head", "L5H1", 0, out="why.html")  # doctest: +SKIP
        """
        name = self.patterns[self._pattern_index(pattern)]
        source = self.source_of(name)
        index = spans = None
        if isinstance(prompt, int) and not isinstance(prompt, bool):
            if not -len(source.prompts) <= prompt < len(source.prompts):
                raise InputError(f"prompt {prompt} is out of range: {name!r} was scored on "
                                 f"{len(source.prompts)} prompts", hint="pass an index, a text or token ids")
            index = prompt % len(source.prompts)
            prompt = source.prompts[index]
            if source.spans is not None:  # a labelled prompt set: its prompts' labels, () for one without
                spans = source.spans[index] or ()
        settings = dict(self.settings)
        exclusions = settings.get("exclusions", {}).get(name, {})
        why = explain(source.model, source.patterns[name], head, prompt, measures=self.measures,
                      exclude_bos=exclusions.get("bos"), exclude_current_token=exclusions.get("current"),
                      prepend_bos=settings.get("prepend_bos", True), prompt_index=index, spans=spans)
        if out is not None:
            why.save(out)
        return why

    def _repr_html_(self) -> str:
        """Jupyter's view: provenance, best heads and sample sizes per pattern, heatmaps."""
        from patternlang.reprs import safe_html, scores_html  # lazy: reprs draws with report, above the engine

        return safe_html(scores_html, self)


def _nested(grid: Tensor) -> list[list[float | None]]:
    return [[None if math.isnan(v) else v for v in row] for row in grid.tolist()]


def _grid(rows: Any, n_layers: int, n_heads: int) -> Tensor:
    """A `[n_layers, n_heads]` grid from nested lists with None for NaN."""
    return torch.tensor([[math.nan if v is None else v for v in row] for row in rows],
                        dtype=torch.float32).reshape(n_layers, n_heads)


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
