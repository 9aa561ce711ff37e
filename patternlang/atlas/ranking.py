"""Which pattern a head matches best, read from an atlas document alone (no torch).

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


def head_matches(doc: Mapping[str, Any], layer: int, head: int, measure: str | None = None) -> list[Match]:
    """Every pattern's match for one head, best first (NaN last)."""
    bounds = doc.get("measure_bounds", {})
    matches = []
    for name, entry in doc["patterns"].items():
        m = pattern_measure(doc, name, measure)
        score = _num(entry["scores"][m][layer][head])
        baseline = _num(entry.get("baseline", {}).get(m))
        upper = (bounds.get(m) or [None, None])[1]
        ci = entry.get("ci95", {}).get(m)
        matches.append(Match(
            pattern=name, measure=m, score=score, baseline=baseline,
            excess=excess(score, baseline, upper), lift=lift(score, baseline),
            ci_low=_num(ci["low"][layer][head]) if ci else math.nan,
            ci_high=_num(ci["high"][layer][head]) if ci else math.nan,
            n_rows=int(entry.get("n_rows", 0)), n_prompts=int(entry.get("n_prompts", 0)),
        ))
    return sorted(matches, key=lambda match: (math.isnan(match.excess), -_or(match.excess, 0.0)))


def _or(value: float, default: float) -> float:
    return default if math.isnan(value) else value


def best_pattern(doc: Mapping[str, Any], layer: int, head: int) -> str | None:
    """The pattern a head matches best (highest excess over chance), None when nothing is scored."""
    matches = head_matches(doc, layer, head)
    return matches[0].pattern if matches and not math.isnan(matches[0].excess) else None


def contenders(matches: list[Match]) -> list[Match]:
    """The patterns a head matches about as well as its best (within `AMBIGUOUS_WITHIN`), when the
    best clears `MATCH_FLOOR`: more than one means the head is ambiguous."""
    if not matches or math.isnan(matches[0].excess) or matches[0].excess < MATCH_FLOOR:
        return []
    top = matches[0].excess
    return [m for m in matches if not math.isnan(m.excess) and m.excess >= top - AMBIGUOUS_WITHIN]
