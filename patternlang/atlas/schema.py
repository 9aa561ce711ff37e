"""The schema of an atlas document (docs/atlas.md), checked before any of it is used.

Documents are copied between machines (the merge route of docs/atlas.md), so a document is
input like any other: `validate_document` checks every field the site reads (types, grids of
`n_layers x n_heads`, bounded sizes, finite numbers inside each measure's range, head labels
and example triangles that fit the model) and names the file and the field of the first problem.
Names that become file names (the model's id, pattern names) go through `files.safe_file_name`
in the site, whatever they hold.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from patternlang.engine.score_schema import (MAX_HEADS, MAX_LAYERS, STRICT, Count, Grid, Interval, Name, Number,
                                             bounds_of, check_grid, check_number, check_shape, field_error)
from patternlang.errors import InputError

FORMAT = "patternlang.atlas/1"
MAX_TOKENS = 64  # tokens of a drawn prompt (document.EXAMPLE_TOKENS)
MAX_TEXT = 200_000  # characters of a rule or a docstring
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Token = Annotated[str, Field(max_length=1000)]
Pair = Annotated[list[int | float | None], Field(min_length=2, max_length=2)]  # [prompt, score]
Ranked = list[list[list[Pair]]]  # [layer][head] -> [[prompt, score], ...]
LABEL = re.compile(r"L(\d{1,4})H(\d{1,4})")
# A `require` condition as `engine/verdicts.pattern_records` writes it: "copying > 0"
REQUIREMENT = re.compile(r"[A-Za-z_]\w{0,99} (==|!=|<=|>=|<|>) [-+]?(\d{1,30}(\.\d{0,30})?|\.\d{1,30})([eE][-+]?\d{1,3})?")


class ModelFacts(BaseModel):
    model_config = STRICT
    name: Name
    id: Name
    described: Text | None = None
    quantisation: Name | None = None
    n_layers: int = Field(ge=1, le=MAX_LAYERS)
    n_heads: int = Field(ge=1, le=MAX_HEADS)
    n_ctx: int | None = None
    d_vocab: int | None = None


class Sample(BaseModel):
    model_config = STRICT
    prompt: int = Field(ge=0)
    n_tokens: int = Field(ge=1, le=MAX_TOKENS)
    matrix: list[int]


class PositionalBaseline(BaseModel):
    """The best fixed-offset rule on the pattern's target rows (`engine/baselines.best_rules`)."""
    model_config = STRICT
    rule: Text | None = None
    score: Number = None
    measure: Name | None = None
    pattern_is_rule: bool | None = None  # None in documents before the field: read from the rule (atlas/ranking.py)
    sink: Number = None
    offsink: Number = None


class PatternEntry(BaseModel):
    model_config = STRICT
    scores: dict[Name, Grid]
    ci95: dict[Name, Interval] | None = None
    baseline: dict[Name, Number] = {}
    n_rows: Count = 0
    n_prompts: Count = 0
    n_prompts_run: Count = 0
    rule: Text = ""
    doc: Text = ""
    description: Text | None = ""
    probe: Name = ""
    measure: Name | None = None
    exclusions: dict[Name, Any] = {}
    file: Name | None = None
    best_prompts: Ranked | None = None
    worst_prompts: Ranked | None = None
    example_scores: list[Grid] = Field(default=[], max_length=100)
    sample: Sample | None = None
    rank: Literal["highest", "lowest"] = "highest"  # `rank lowest`: the lowest scores are the candidates
    requires: list[Annotated[str, Field(max_length=200)]] = Field(default=[], max_length=100)
    positional_baseline: PositionalBaseline | None = None  # optional: documents before it still load

    @field_validator("requires")
    @classmethod
    def _conditions(cls, requires: list[str]) -> list[str]:
        for text in requires:
            if not REQUIREMENT.fullmatch(text):
                raise ValueError(f"{text[:60]!r} is not a condition MEASURE OP NUMBER (e.g. 'copying > 0')")
        return requires


class Example(BaseModel):
    model_config = STRICT
    probe: Name
    prompt: int = Field(ge=0)
    kind: Name = "best"
    score: Number = None
    n_tokens: int = Field(ge=1, le=MAX_TOKENS)
    attention: list[int]
    matrix: list[int]


class VerdictEvidence(BaseModel):
    model_config = STRICT
    measure: Name = ""
    probe: Name = ""
    score: Number = None
    chance: Number = None
    interval: list[Number] = Field(default=[], max_length=2)
    rows: Count | None = None
    prompts: Count | None = None
    sink: Number = None


class VerdictPosition(BaseModel):
    model_config = STRICT
    rule: Text | None = None
    score: Number = None
    margin: Number = None
    pattern_is_positional: bool = False


class HeadMatters(BaseModel):
    """A metric the head matters for (`engine/matters.py` `Mattering.to_dict()`)."""
    model_config = STRICT
    metric: Name
    basis: Name = ""
    change: Number = None
    ci: Annotated[list[Number], Field(min_length=2, max_length=2)] | None = None
    direction: Name = ""
    role: Name = ""
    probe: Text | None = None
    method: Name = ""
    positions: Name | None = None
    n_prompts: Count = 0
    rank: Count | None = None
    of: Count | None = None
    text: Text = ""


class HeadVerdict(BaseModel):
    """A head's verdict, `engine/verdicts.py` `Verdict.to_dict()` (the fields the site shows)."""
    model_config = STRICT
    label: Name | None = None
    runner_up: Name | None = None
    margin: Number = None
    sink_share: Number = None
    footing: Text = ""
    strength: Number = None
    evidence: VerdictEvidence = VerdictEvidence()
    position: VerdictPosition | None = None
    explained_by_position: bool = False
    failed: dict[Name, Annotated[list[Text], Field(max_length=100)]] = Field(default={}, max_length=1000)
    reason: Text = ""
    passed_over: list[Name] = Field(default=[], max_length=1000)
    matters_for: list[HeadMatters] | None = Field(default=None, max_length=100)  # with effects (engine/matters.py)


class MixturePart(BaseModel):
    """One rule of a head's weighted description and its weight (weights >= 0, summing to 1)."""
    model_config = STRICT
    rule: Text
    weight: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class HeadRule(BaseModel):
    """A head's description by `patternlang describe` (discovery `HeadDescription`, held-out numbers)."""
    model_config = STRICT
    rule: Text | None = None
    family: Name | None = None
    score: Number = None
    interval: Annotated[list[Number], Field(min_length=2, max_length=2)] | None = None
    chance: Number = None
    iou: Number = None
    coverage: Number = None
    above_chance: bool = False
    best_rule: Text | None = None
    n_prompts: Count = 0
    mixture: list[MixturePart] = Field(default=[], max_length=16)  # the weighted description (discovery/mixture.py)
    mixture_fit: Number = None
    mixture_iou: Number = None
    rule_fit: Number = None


class Drawn(BaseModel):
    """A head's entry: the pattern its examples draw and the examples, and its verdict (a head may
    carry a verdict alone: `document.add_verdicts`; its fields are read by `ranking.head_verdict`)."""
    model_config = STRICT
    pattern: Name = ""
    examples: list[Example] = Field(default=[], max_length=10)
    verdict: HeadVerdict | None = None
    description: HeadRule | None = None  # `patternlang atlas --describe`


class HeadEffect(BaseModel):
    model_config = STRICT
    estimate: Number = None
    ablation: Number = None
    ci: Annotated[list[Number], Field(min_length=2, max_length=2)] | None = None


class MetricEffects(BaseModel):
    """Each head's effect on one metric (`effects/atlas.py` `document_effects`)."""
    model_config = STRICT
    probe: Text | None = None
    prompts: Text | None = None  # the probe's own description
    kind: Name = ""
    method: Name = ""
    positions: Name | None = None
    direction: Name = ""
    n_prompts: Count = 0
    top_k: Count | None = None
    clean: Number = None
    rank_correlation: Number = None
    digest: Name = ""
    heads: dict[Name, HeadEffect] = Field(default={}, max_length=MAX_LAYERS * MAX_HEADS)


class Probe(BaseModel):
    model_config = STRICT
    name: Name = ""
    n_prompts: Count = 0
    kind: Name = ""
    digest: Name = ""
    description: Text | None = ""
    previews: list[Annotated[str, Field(max_length=1000)]] | None = Field(default=None, max_length=100_000)


class Stats(BaseModel):
    model_config = STRICT
    probe: Name = ""
    n_prompts: Count = 0
    n_rows: Count = 0
    bos: Grid
    distance: Grid
    entropy: Grid


class AtlasDocument(BaseModel):
    model_config = STRICT
    format: Name
    patternlang: Name = ""
    model: ModelFacts
    measures: list[Name] = Field(min_length=1, max_length=100)
    measure_bounds: dict[Name, list[Number]] = {}
    probes: dict[Name, Probe] = {}
    patterns: dict[Name, PatternEntry] = Field(max_length=1000)
    prompts: dict[Name, dict[Annotated[str, Field(pattern=r"^\d{1,9}$")], list[Token]]] = {}
    heads: dict[Name, Drawn] = {}
    stats: Stats | dict[str, Any] = {}
    updated: Name = ""
    effects: dict[Name, MetricEffects] = Field(default={}, max_length=100)  # per metric (effects/atlas.py)

    @model_validator(mode="after")
    def _fits_the_model(self) -> AtlasDocument:
        if self.format != FORMAT:
            raise ValueError(f"format {self.format!r}: this patternlang reads {FORMAT}")
        n_layers, n_heads = self.model.n_layers, self.model.n_heads
        check_shape(n_layers, n_heads)
        shape = (n_layers, n_heads)
        if isinstance(self.stats, dict) and self.stats:
            raise ValueError("stats: an object with bos, distance and entropy grids, or {}")
        if isinstance(self.stats, Stats):
            for key in ("bos", "distance", "entropy"):
                check_grid(getattr(self.stats, key), *shape, f"stats.{key}", (0.0, 1e9))
        for name, entry in self.patterns.items():
            where = f"patterns.{name}"
            for m in self.measures:
                if m not in entry.scores:
                    raise ValueError(f"{where}.scores has no {m!r}, one of the document's measures")
            for m, grid in entry.scores.items():
                check_grid(grid, *shape, f"{where}.scores.{m}", bounds_of(m))
            for m, interval in (entry.ci95 or {}).items():
                check_grid(interval.low, *shape, f"{where}.ci95.{m}.low", bounds_of(m))
                check_grid(interval.high, *shape, f"{where}.ci95.{m}.high", bounds_of(m))
            for m, value in entry.baseline.items():
                check_number(value, f"{where}.baseline.{m}", bounds_of(m))
            own = bounds_of(entry.measure) if entry.measure else (-math.inf, math.inf)
            for i, grid in enumerate(entry.example_scores):
                check_grid(grid, *shape, f"{where}.example_scores[{i}]", own)
            for key in ("best_prompts", "worst_prompts"):
                table = getattr(entry, key)
                if table is not None:
                    _check_ranked(table, shape, f"{where}.{key}", own)
            position = entry.positional_baseline
            if position is not None:
                check_number(position.score, f"{where}.positional_baseline.score",
                             bounds_of(position.measure or entry.measure or self.measures[0]))
            if entry.sample is not None:
                _check_triangle(entry.sample.matrix, entry.sample.n_tokens, f"{where}.sample.matrix")
        for label, drawn in self.heads.items():
            found = LABEL.fullmatch(label)
            if not found or int(found[1]) >= n_layers or int(found[2]) >= n_heads:
                raise ValueError(f"heads.{label}: not a head of a {n_layers}x{n_heads} model (L5H1)")
            if drawn.pattern and drawn.pattern not in self.patterns:  # "": a head with a verdict or description alone
                raise ValueError(f"heads.{label}.pattern: {drawn.pattern!r} is not one of the document's patterns")
            for i, ex in enumerate(drawn.examples):
                _check_triangle(ex.attention, ex.n_tokens, f"heads.{label}.examples[{i}].attention")
                _check_triangle(ex.matrix, ex.n_tokens, f"heads.{label}.examples[{i}].matrix")
                tokens = self.prompts.get(ex.probe, {}).get(str(ex.prompt))
                if tokens is not None and len(tokens) < ex.n_tokens:
                    raise ValueError(f"heads.{label}.examples[{i}]: {ex.n_tokens} tokens drawn, "
                                     f"prompts.{ex.probe}.{ex.prompt} holds {len(tokens)}")
        for metric, effects in self.effects.items():
            for label in effects.heads:
                found = LABEL.fullmatch(label)
                if not found or int(found[1]) >= n_layers or int(found[2]) >= n_heads:
                    raise ValueError(f"effects.{metric}.heads.{label}: not a head of a {n_layers}x{n_heads} model")
        return self


def _check_ranked(table: Ranked, shape: tuple[int, int], where: str, bounds: tuple[float, float]) -> None:
    if len(table) != shape[0] or any(len(row) != shape[1] for row in table):
        raise ValueError(f"{where}: not a {shape[0]}x{shape[1]} grid")
    for layer, row in enumerate(table):
        for head, pairs in enumerate(row):
            for index, score in pairs:
                if not isinstance(index, int) or index < 0:
                    raise ValueError(f"{where}[{layer}][{head}]: prompt {index}")
                check_number(score, f"{where}[{layer}][{head}]", bounds)


def _check_triangle(values: list[int], n: int, where: str) -> None:
    if len(values) != n * (n + 1) // 2:
        raise ValueError(f"{where}: {len(values)} values, a triangle of {n} tokens has {n * (n + 1) // 2}")
    if any(not 0 <= v <= 1000 for v in values):
        raise ValueError(f"{where}: values are thousandths, 0 to 1000")


def validate_document(doc: Any, path: object | None = None) -> AtlasDocument:
    """`doc` checked against the schema; an InputError naming `path` (when given) and the field."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        where = f" {str(path)!r}" if path is not None else ""
        raise InputError(f"not a patternlang atlas document{where} (format {str(found)[:100]!r}; "
                         f"this patternlang reads {FORMAT})")
    try:
        return AtlasDocument.model_validate(doc)
    except ValidationError as error:
        raise field_error(error, "the atlas document", path) from None


def normalised_document(doc: Any, path: object | None = None) -> dict[str, Any]:
    """`doc` checked (`validate_document`), with every field the schema gives a default filled in
    where the file left it out, so that the site reads every field it renders (a document may
    leave out what it has no value for); the file's other keys are kept as they are."""
    checked = validate_document(doc, path).model_dump(mode="json")
    return _filled(doc, checked)


def _filled(raw: Any, checked: Any) -> Any:
    if isinstance(raw, dict) and isinstance(checked, dict):
        out = dict(raw)
        for key, value in checked.items():
            out[key] = _filled(raw[key], value) if key in raw else value
        return out
    return raw
