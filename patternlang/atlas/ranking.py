"""Which pattern a head matches best, read from an atlas document alone (no torch).

A head's label is its *verdict* (`engine/verdicts.py`, the one verdict function `detect
--verdicts` and `Scores` use too): `head_verdict` builds the verdict's candidates from the
document's pattern entries. `head_matches` lists every pattern's raw match, the verdict's label
first; the sink pattern is background, never a contender.

Patterns differ in their chance level (a bos head's chance is far higher than an induction
head's), so heads are ranked by the score's *excess over chance*: `(score - baseline) /
(1 - baseline)` for measures bounded by 1 (mass, tv, argmax): 0 at chance, 1 at a perfect head;
`score - baseline` for unbounded measures. *Lift* is `score / baseline`. The site's script
(`site_assets.py`) computes the same numbers in the browser; the tests keep the two equal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from patternlang.engine.verdicts import (DEFAULT_FOOTING, SINK_PATTERN, Candidate, Footing, Verdict,
                                        rule_of_expression, verdict)
from patternlang.errors import PatternError
from patternlang.measure_table import MEASURE_TABLE
from patternlang.syntax.parser import parse_rule

AMBIGUOUS_WITHIN = 0.1
"""Patterns whose excess is within this of a head's best are shown as matching it as well."""
MATCH_FLOOR = 0.2
"""Below this excess over chance a head is said to match no pattern."""


@dataclass(frozen=True, slots=True)
class Match:
    pattern: str
    measure: str
    score: float
    baseline: float
    excess: float
    lift: float
    ci_low: float
    ci_high: float
    n_rows: int
    n_prompts: int


def excess(score: float | None, baseline: float | None, upper: float | None) -> float:
    """The score's excess over chance (module docstring); NaN where either is unknown."""
    if score is None or baseline is None or math.isnan(score) or math.isnan(baseline):
        return math.nan
    if upper is not None and math.isfinite(upper) and upper > baseline:
        return (score - baseline) / (upper - baseline)
    return score - baseline


def lift(score: float | None, baseline: float | None) -> float:
    if score is None or baseline is None or not baseline > 0:
        return math.nan
    return score / baseline


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def pattern_measure(doc: Mapping[str, Any], pattern: str, measure: str | None = None) -> str:
    entry = doc["patterns"][pattern]
    chosen = measure or entry.get("measure") or doc["measures"][0]
    return chosen if chosen in entry["scores"] else doc["measures"][0]


def is_signed(doc: Mapping[str, Any], measure: str) -> bool:
    """Whether a measure's sign means something (`copying`: + copies, - suppresses): its chance means
    nothing and its maps are two-sided, 0 in the middle. From the measure table; a measure it does not
    know is signed when the document's bounds let it go below 0."""
    if measure in MEASURE_TABLE:
        return MEASURE_TABLE[measure].signed
    low = (doc.get("measure_bounds", {}).get(measure) or [None, None])[0]
    return low is not None and low < 0


def ranks_lowest(doc: Mapping[str, Any], pattern: str, measure: str | None = None) -> bool:
    """Whether a pattern's candidates are its lowest scores in `measure` (default: its own), as
    `Scores.ranks_lowest`: the pattern's `rank` for its own measure, else the measure's direction."""
    entry = doc["patterns"][pattern]
    chosen = pattern_measure(doc, pattern, measure)
    if chosen == pattern_measure(doc, pattern) and entry.get("rank") in ("lowest", "highest"):
        return bool(entry["rank"] == "lowest")
    return chosen in MEASURE_TABLE and MEASURE_TABLE[chosen].direction == "lower"


def strength(score: float | None, baseline: float | None, upper: float | None, *, signed: bool = False,
             lowest: bool = False, lower: float | None = None) -> float:
    """How far a score goes the pattern's way: its excess over chance (`excess`), mirrored for a
    pattern ranked lowest (`(chance - score) / (chance - lower)`); for a signed measure, where chance
    means nothing, the score itself (its negation when ranked lowest). NaN where unknown."""
    if signed:
        return math.nan if score is None or math.isnan(score) else (-score if lowest else score)
    if lowest:
        return excess(None if score is None else -score, None if baseline is None else -baseline,
                      None if lower is None else -lower)
    return excess(score, baseline, upper)


def head_matches(doc: Mapping[str, Any], layer: int, head: int, measure: str | None = None) -> list[Match]:
    """Every pattern's match for one head: the verdict's label first (when it has one), then by
    excess over chance (NaN last; a signed measure has no chance, so no excess: NaN)."""
    bounds = doc.get("measure_bounds", {})
    matches = []
    for name, entry in doc["patterns"].items():
        m = pattern_measure(doc, name, measure)
        score = _num(entry["scores"][m][layer][head])
        # a signed measure (copying) has no chance level: no excess over it, no lift
        baseline = math.nan if is_signed(doc, m) else _num(entry.get("baseline", {}).get(m))
        upper = (bounds.get(m) or [None, None])[1]
        ci = (entry.get("ci95") or {}).get(m)
        matches.append(Match(
            pattern=name, measure=m, score=score, baseline=baseline,
            excess=excess(score, baseline, upper), lift=lift(score, baseline),
            ci_low=_num(ci["low"][layer][head]) if ci else math.nan,
            ci_high=_num(ci["high"][layer][head]) if ci else math.nan,
            n_rows=int(entry.get("n_rows", 0)), n_prompts=int(entry.get("n_prompts", 0)),
        ))
    label = _stored_label(doc, layer, head) if measure is None else None
    return sorted(matches, key=lambda match: (match.pattern != label, math.isnan(match.excess),
                                              -_or(match.excess, 0.0)))


def _or(value: float, default: float) -> float:
    return default if math.isnan(value) else value


def _stored_label(doc: Mapping[str, Any], layer: int, head: int) -> str | None:
    from patternlang.heads import head_label

    found = doc.get("heads", {}).get(head_label(layer, head), {}).get("verdict")
    if found is not None:
        return found.get("label")
    return head_verdict(doc, layer, head).label if doc.get("patterns") else None


def best_pattern(doc: Mapping[str, Any], layer: int, head: int) -> str | None:
    """The pattern a head is drawn with: its verdict's label, or, for a head labelled none, the
    pattern it comes closest to (the runner-up); None when nothing is scored."""
    found = head_verdict(doc, layer, head)
    return found.label or found.runner_up


def contenders(matches: list[Match]) -> list[Match]:
    """The patterns a head matches about as well as its best (within `AMBIGUOUS_WITHIN`), when the
    best clears `MATCH_FLOOR`: more than one means the head is ambiguous. The sink pattern is
    background (docs/verdicts.md), never a contender."""
    matches = [m for m in matches if m.pattern != SINK_PATTERN]
    if not matches or math.isnan(matches[0].excess) or matches[0].excess < MATCH_FLOOR:
        return []
    top = matches[0].excess
    return [m for m in matches if not math.isnan(m.excess) and m.excess >= top - AMBIGUOUS_WITHIN]


# ---- verdicts from a document ----------------------------------------------------------------------
ATTENTION_MEASURES = ("mass", "tv", "argmax")


def document_candidates(doc: Mapping[str, Any], layer: int, head: int) -> list[Candidate]:
    """The verdict's candidates for one head, from the document's pattern entries: each pattern's
    attention measure (its own, or `mass` for a pattern ranked by a signed one such as `copying`),
    its `sink`/`offsink` scores when the document holds them, the `require` conditions it fails
    and its positional baseline."""
    from patternlang.engine.verdicts import holds, parse_requirement

    bounds = doc.get("measure_bounds", {})
    found = []
    for name, entry in doc["patterns"].items():
        scores = entry["scores"]
        m = pattern_measure(doc, name)
        if m not in ATTENTION_MEASURES and "mass" in scores:
            m = "mass"
        ci = (entry.get("ci95") or {})
        baseline = entry.get("baseline", {})

        def cell(measure: str, grids: Mapping[str, Any] = scores) -> float | None:
            grid = grids.get(measure)
            return None if grid is None else _optional(grid[layer][head])

        has_sink = "sink" in scores and "offsink" in scores
        failed = tuple(text for text in entry.get("requires", ())
                       if not holds(parse_requirement(text)[1], _num(cell(parse_requirement(text)[0])),
                                    parse_requirement(text)[2]))
        upper = (bounds.get(m) or [None, None])[1]
        found.append(Candidate(
            pattern=name, measure=m, probe=str(entry.get("probe", "")), score=_num(cell(m)),
            baseline=_num(baseline.get(m)),
            ci_low=_num(ci[m]["low"][layer][head]) if m in ci else math.nan,
            ci_high=_num(ci[m]["high"][layer][head]) if m in ci else math.nan,
            upper=upper, n_rows=int(entry.get("n_rows", 0)), n_prompts=int(entry.get("n_prompts", 0)),
            sink=cell("sink") if has_sink else None, offsink=cell("offsink") if has_sink else None,
            sink_baseline=_optional(baseline.get("sink")) if has_sink else None,
            offsink_baseline=_optional(baseline.get("offsink")) if has_sink else None,
            offsink_low=_optional(ci["offsink"]["low"][layer][head]) if has_sink and "offsink" in ci else None,
            offsink_high=_optional(ci["offsink"]["high"][layer][head]) if has_sink and "offsink" in ci else None,
            failed=failed, positional=positional_baseline(entry),
        ))
    return found


def positional_baseline(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """The entry's positional baseline, with whether the pattern is that very rule, read from the
    pattern's rule text whenever it parses (a document may predate the stored flag, or hold a wrong
    one: a version of the schema filled a missing flag with False), else the stored flag."""
    baseline = entry.get("positional_baseline")
    if baseline is None:
        return None
    try:
        expr, _ = parse_rule(str(entry.get("rule", "")))
    except PatternError:
        return dict(baseline)
    return {**baseline, "pattern_is_rule": rule_of_expression(expr) == baseline.get("rule")}


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


def head_verdict(doc: Mapping[str, Any], layer: int, head: int, *, footing: Footing = DEFAULT_FOOTING) -> Verdict:
    """One head's verdict from an atlas document alone."""
    return verdict(document_candidates(doc, layer, head), footing=footing)
