"""What a head is called: one verdict from the scores of every pattern on the same head.

Imports no torch: `Scores`, `detect --verdicts` and the atlas (from its JSON document alone)
build `Candidate`s from what they hold and call the one function `verdict`.

How a head gets its label (docs/verdicts.md has the measurements behind each choice):

1. **Footing.** Each pattern is scored on its own probe; scores are compared by their *excess
   over that probe's chance* (`(score - chance) / (1 - chance)` for measures bounded by 1: 0 at
   chance, 1 for a perfect head), which puts patterns with different chance levels and probes on
   one scale; the verdict says so (`footing`, and the probes of the label and the runner-up).
   On the `nonsink` footing (the default) every pattern but the sink pattern is scored on the
   attention the head does not park on BOS: `offsink / (1 - sink)` against the chance head's own
   such share; a head that parks every target row has no such score (undefined, not 0).
   Patterns ranked by a signed measure (`copying`) take part through their attention (`mass`)
   with their `require` conditions as gates.
2. **Gates.** A pattern whose `require` conditions fail for the head is not a candidate (its
   score is still shown, flagged).
3. **The sink is background.** The sink pattern (`bos_head`) is no competitor: it is the label only
   when no other pattern clears `FLOOR` and the head parks at least `SINK_LABEL` of its attention
   on BOS.
4. **Label.** The best candidate if its excess clears `FLOOR`, else none. The runner-up and the
   margin between them are part of the verdict, as are the evidence (rows, prompts, the interval
   of the label's score on the footing) and the positional baseline: when the best fixed-offset
   rule (`k == q - d`, `k == 0`) scores inside the label's interval, the head is flagged
   "explained by position".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from patternlang.engine.matters import Mattering, sentence
from patternlang.measure_table import MEASURE_TABLE
from patternlang.syntax.unparse import unparse

MAX_OFFSET = 16
RULES: tuple[str, ...] = tuple(f"k == q - {d}" if d else "k == q" for d in range(MAX_OFFSET + 1)) + ("k == 0",)
"""The positional rules of the baselines (`engine/baselines.py`), in the order of their sums."""
SINK_PATTERN = "bos_head"
FLOOR = 0.2
"""Below this excess over chance a head matches no pattern."""
SINK_LABEL = 0.6
"""A head matching nothing else is labelled with the sink pattern when it parks at least this
share of its attention on BOS (on the sink pattern's rows)."""
FREE_ATTENTION_MIN = 1e-6
"""Below this share of attention off the sink, a head's non-sink score is undefined."""
Footing = Literal["nonsink", "raw"]
DEFAULT_FOOTING: Footing = "raw"
"""Measured on SmolLM2-135M (docs/verdicts.md): the non-sink footing inflates every score toward 1
on heads that park most of their attention and reorders labels by how much of each probe's rows
is parked; scoring on target rows only already keeps the sink out of the rows that have nothing
to attend to. Verdicts compare raw scores; the sink share is reported beside them."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One pattern's scores for one head, as the verdict reads them.

    `score`, `baseline`, `ci_low`, `ci_high`: the pattern's attention measure (`measure`), with
    `upper` its upper bound (None: unbounded); `sink`/`offsink` and their chance values: the
    head's `sink` and `offsink` scores on the pattern's rows (None when not scored);
    `failed`: the pattern's `require` conditions the head fails; `positional`: the best
    positional rule's scores on the same rows, `{"rule", "score", "sink", "offsink"}`."""

    pattern: str
    measure: str
    probe: str
    score: float
    baseline: float
    ci_low: float = math.nan
    ci_high: float = math.nan
    upper: float | None = 1.0
    n_rows: int = 0
    n_prompts: int = 0
    sink: float | None = None
    offsink: float | None = None
    sink_baseline: float | None = None
    offsink_baseline: float | None = None
    offsink_low: float | None = None
    offsink_high: float | None = None
    failed: tuple[str, ...] = ()
    positional: Mapping[str, Any] | None = None

    def on(self, footing: Footing) -> "Standing":
        """The candidate's score, chance and interval on a footing."""
        if footing == "nonsink" and self.pattern != SINK_PATTERN and self.measure == "mass" and self.sink is not None \
                and self.offsink is not None and self.sink_baseline is not None and self.offsink_baseline is not None:
            score = _share(self.offsink, self.sink)
            chance = _share(self.offsink_baseline, self.sink_baseline)
            low = _share(self.offsink_low, self.sink)
            high = _share(self.offsink_high, self.sink)
            position = None
            if self.positional is not None and self.positional.get("offsink") is not None:
                position = _share(self.positional["offsink"], self.positional.get("sink") or 0.0)
            return Standing(score, chance, low, high, 1.0, position)
        position = None if self.positional is None else self.positional.get("score")
        return Standing(self.score, self.baseline, self.ci_low, self.ci_high, self.upper, position)


def _share(off: float | None, sink: float | None) -> float:
    if off is None or sink is None or math.isnan(off) or math.isnan(sink):
        return math.nan
    free = 1.0 - sink
    return off / free if free > FREE_ATTENTION_MIN else math.nan


@dataclass(frozen=True, slots=True)
class Standing:
    score: float
    chance: float
    low: float
    high: float
    upper: float | None
    position: float | None

    @property
    def excess(self) -> float:
        return excess(self.score, self.chance, self.upper)


def excess(score: float | None, baseline: float | None, upper: float | None) -> float:
    """The score's excess over chance: `(score - chance) / (upper - chance)` for a bounded measure,
    `score - chance` otherwise; NaN where either is unknown."""
    if score is None or baseline is None or math.isnan(score) or math.isnan(baseline):
        return math.nan
    if upper is not None and math.isfinite(upper) and upper > baseline:
        return (score - baseline) / (upper - baseline)
    return score - baseline


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a head is called, and why (see the module docstring).

    `label`: a pattern name or None; `runner_up` and `margin` (the label's excess minus the
    runner-up's, on the footing); `sink_share`: the head's share of attention on BOS;
    `footing`: how the patterns were compared, in words; `evidence`: the label's measure,
    probe, score on the footing, its interval, rows and prompts; `position`: the best positional
    rule on the label's rows and the head's margin over it; `explained_by_position`: that
    margin is within the label's interval; `failed`: patterns left out by their `require`;
    `matters_for`: the metrics the head matters for (`engine/matters.py`; None: no effects were
    measured, (): it matters for none of them); `summary`: all of it in words."""

    label: str | None
    runner_up: str | None
    margin: float | None
    sink_share: float | None
    footing: str
    strength: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    position: dict[str, Any] | None = None
    explained_by_position: bool = False
    failed: dict[str, list[str]] = field(default_factory=dict)
    reason: str = ""
    passed_over: list[str] = field(default_factory=list)  # better matches that position explains
    matters_for: tuple[Mattering, ...] | None = None

    @property
    def summary(self) -> str:
        """`attends like previous_token_head, and matters for loss (ablation raises loss by 0.12 [0.08, 0.16]: ...)`."""
        return sentence(self.label, self.runner_up, self.matters_for)

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON; `matters_for` (a list of `Mattering.to_dict()`) only when effects were measured."""
        data = _finite(asdict(self))
        del data["matters_for"]
        if self.matters_for is not None:
            data["matters_for"] = [m.to_dict() for m in self.matters_for]
        return data


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    return value


def footing_words(footing: Footing, probes: Sequence[str]) -> str:
    """The footing in words, naming the probes compared."""
    base = ("each pattern on its own probe, by excess over that probe's chance"
            + (", on the attention not parked on BOS" if footing == "nonsink" else ", on all attention"))
    distinct = sorted(set(p for p in probes if p))
    if len(distinct) > 1:
        return base + f" (probes compared: {', '.join(distinct)})"
    if distinct:
        return base.replace("each pattern on its own probe", f"all on {distinct[0]}")
    return base.replace("each pattern on its own probe", "all on the same prompts").replace("that probe's", "their")


def verdict(candidates: Sequence[Candidate], *, footing: Footing = DEFAULT_FOOTING,
            sink_pattern: str = SINK_PATTERN, matters: Sequence[Mattering] | None = None) -> Verdict:
    """One head's verdict from its candidates (one per pattern scored), with `matters` (what it
    matters for: `engine.matters.matters_for`) kept beside it; see the module docstring.

    >>> v = verdict([Candidate("previous_token_head", "mass", "natural", 0.8, 0.1, 0.7, 0.9, n_rows=90,
    ...                        n_prompts=9),
    ...              Candidate("current_token_head", "mass", "natural", 0.3, 0.1)], footing="raw")
    >>> v.label, v.runner_up, round(v.margin, 3)
    ('previous_token_head', 'current_token_head', 0.556)
    """
    found = _verdict(candidates, footing, sink_pattern)
    return found if matters is None else replace(found, matters_for=tuple(matters))


def _verdict(candidates: Sequence[Candidate], footing: Footing, sink_pattern: str) -> Verdict:
    sink_share = None
    for candidate in candidates:
        if candidate.pattern == sink_pattern and not math.isnan(candidate.score):
            sink_share = candidate.score
    standings = {c.pattern: c.on(footing) for c in candidates}
    failed = {c.pattern: list(c.failed) for c in candidates if c.failed}
    competing = [c for c in candidates if c.pattern != sink_pattern and not c.failed
                 and not math.isnan(standings[c.pattern].excess)]
    competing.sort(key=lambda c: -standings[c.pattern].excess)
    # A candidate that position explains (and that is not itself the positional rule) gives way to
    # the next one that clears the floor: L16H0 is a previous-token head, not an entity head.
    explained_by = {c.pattern for c in competing
                    if standings[c.pattern].excess >= FLOOR and _explained(c, standings[c.pattern])}
    clear = [c for c in competing if c.pattern not in explained_by]
    if clear and standings[clear[0].pattern].excess >= FLOOR:
        competing = clear + [c for c in competing if c.pattern in explained_by]
    probes = [c.probe for c in candidates]
    words = footing_words(footing, probes)
    best = competing[0] if competing else None
    runner = competing[1] if len(competing) > 1 else None
    if sink_share is None and best is not None and best.sink is not None:
        sink_share = best.sink
    if best is None or standings[best.pattern].excess < FLOOR:
        sink = next((c for c in candidates if c.pattern == sink_pattern), None)
        if sink is not None and sink_share is not None and sink_share >= SINK_LABEL:
            stand = standings[sink.pattern]
            return Verdict(sink.pattern, best.pattern if best else None,
                           None if best is None else stand.excess - standings[best.pattern].excess,
                           sink_share, words, stand.excess, _evidence(sink, stand), None, False, failed,
                           f"matches no other pattern (best excess below {FLOOR}) and parks "
                           f"{sink_share:.2f} of its attention on BOS")
        why = "no pattern scored" if best is None else \
            f"no pattern clears an excess of {FLOOR} over chance (best: {best.pattern}, " \
            f"{standings[best.pattern].excess:.2f})"
        return Verdict(None, best.pattern if best else None, None, sink_share, words, None, {}, None, False,
                       failed, why)
    stand = standings[best.pattern]
    margin = stand.excess - standings[runner.pattern].excess if runner is not None else None
    position = None
    explained = False
    if stand.position is not None and not math.isnan(stand.position):
        rule = (best.positional or {}).get("rule")
        position = {"rule": rule, "score": stand.position, "margin": stand.score - stand.position}
        if is_positional(best.positional):
            position["pattern_is_positional"] = True  # previous_token_head is `k == q - 1`: nothing to explain
        explained = _explained(best, stand)
    if runner is not None and best.probe != runner.probe:
        words_runner = f"; label on {best.probe}, runner-up on {runner.probe}"
    else:
        words_runner = ""
    reason = f"{best.pattern}: excess {stand.excess:.2f} over chance" + (
        f", {margin:.2f} above {runner.pattern}" if runner is not None else "") + words_runner
    if explained:
        reason += f"; explained by position ({position['rule']} scores {position['score']:.2f})"
    if explained_by - {best.pattern}:
        reason += "; passed over as explained by position: " + ", ".join(sorted(explained_by - {best.pattern}))
    return Verdict(best.pattern, runner.pattern if runner else None, margin, sink_share, words, stand.excess,
                   _evidence(best, stand), position, explained, failed, reason,
                   sorted(explained_by - {best.pattern}))


def is_positional(baseline: Mapping[str, Any] | None) -> bool:
    """Whether a pattern is itself its best positional rule (`previous_token_head` is `k == q - 1`):
    "explained by position" does not apply to it."""
    return bool(baseline is not None and baseline.get("pattern_is_rule"))


def _explained(candidate: Candidate, stand: Standing) -> bool:
    """The head's margin over the pattern's best positional rule is within its interval."""
    if is_positional(candidate.positional) or stand.position is None or math.isnan(stand.position):
        return False
    low = stand.low if not math.isnan(stand.low) else stand.score
    return stand.position >= low


def positional_rule(pattern: Any) -> str | None:
    """The positional rule a pattern is, when it is one (`attend k where k == q - 1`), else None."""
    expr = getattr(pattern, "expr", None)
    return None if expr is None else rule_of_expression(expr)


def rule_of_expression(expr: Any) -> str | None:
    """The positional rule an expression is (`attend k where k == 0` -> "k == 0"), else None."""
    text = unparse(expr)
    return next((rule for rule in RULES if text == f"attend k where {rule}"), None)


def _evidence(candidate: Candidate, stand: Standing) -> dict[str, Any]:
    return {"measure": candidate.measure, "probe": candidate.probe, "score": stand.score, "chance": stand.chance,
            "interval": [stand.low, stand.high], "rows": candidate.n_rows, "prompts": candidate.n_prompts,
            "sink": candidate.sink}


# ---- what the engine keeps for the verdicts (called from `detect`) -----------------------------
def required_measures(detectors: Sequence[Any]) -> list[str]:
    """The measures the patterns' `require` conditions read (scored in the same run)."""
    found: list[str] = []
    for detector in detectors:
        for requirement in getattr(getattr(detector, "settings", None), "requires", ()) or ():
            if requirement.measure not in found:
                found.append(requirement.measure)
    return found


def verdict_measures(patterns: Sequence[Any], measures: Sequence[str] | None = None) -> tuple[str, ...]:
    """The measures a run needs for verdicts: `measures` (default: mass and the patterns' own and
    required ones), plus `sink` and `offsink` (the non-sink footing)."""
    if measures is None:
        measures = ["mass", *(p.settings.measure for p in patterns if getattr(p.settings, "measure", None)),
                    *required_measures(patterns)]
    return tuple(dict.fromkeys([*measures, "sink", "offsink"]))


def pattern_records(detectors: Sequence[Any]) -> dict[str, Any]:
    """Per-pattern settings the verdicts and the tables read: `pattern_ranks` (lowest/highest,
    where a pattern says), `pattern_requires` (its `require` conditions as text) and
    `positional_patterns` (the patterns that are themselves a positional rule, and which)."""
    ranks, requires, rules = {}, {}, {}
    for detector in detectors:
        rule = positional_rule(getattr(detector, "pattern", None))
        if rule is not None:
            rules[detector.name] = rule
        settings = getattr(detector, "settings", None)
        if getattr(settings, "rank", None):
            ranks[detector.name] = settings.rank
        if getattr(settings, "requires", ()):
            requires[detector.name] = [str(r) for r in settings.requires]
    return {"pattern_ranks": ranks, "pattern_requires": requires, "positional_patterns": rules}


def parse_requirement(text: str) -> tuple[str, str, float]:
    """`"copying > 0"` -> ("copying", ">", 0.0): a requirement as `pattern_records` writes it."""
    measure, op, value = text.split(" ", 2)
    return measure, op, float(value)


def holds(op: str, score: float, value: float) -> bool:
    """Whether `score op value` (NaN never holds)."""
    if score is None or math.isnan(score):
        return False
    return {"==": score == value, "!=": score != value, "<": score < value, "<=": score <= value,
            ">": score > value, ">=": score >= value}[op]


def head_candidates(scores: Any, layer: int, head: int) -> list[Candidate]:
    """Every pattern's `Candidate` for one head of `scores` (a `Scores`), as `verdict` reads them."""
    settings = dict(scores.settings)
    probes = settings.get("probes", {})

    def value(grids: Mapping[str, Any], measure: str, index: int) -> float | None:
        return float(grids[measure][index, layer, head]) if measure in grids and grids else None

    found = []
    for index, name in enumerate(scores.patterns):
        measure = scores.measure_of(name)
        if MEASURE_TABLE[measure].signed or measure not in ("mass", "tv", "argmax"):
            measure = "mass" if "mass" in scores.measures else measure  # compared through its attention
        failed = scores.requirement_failures(name)[layer, head]
        evidence = scores.evidence.get(name)
        has = "sink" in scores.measures and "offsink" in scores.measures
        found.append(Candidate(
            pattern=name, measure=measure, probe=str(probes.get(name, "")),
            score=float(scores.values[measure][index, layer, head]),
            baseline=scores.baseline(name, measure),
            ci_low=_as_float(value(scores.ci_low, measure, index)),
            ci_high=_as_float(value(scores.ci_high, measure, index)),
            upper=MEASURE_TABLE[measure].high,
            n_rows=evidence.n_rows if evidence else 0, n_prompts=evidence.n_prompts if evidence else 0,
            sink=value(scores.values, "sink", index) if has else None,
            offsink=value(scores.values, "offsink", index) if has else None,
            sink_baseline=scores.baseline(name, "sink") if has else None,
            offsink_baseline=scores.baseline(name, "offsink") if has else None,
            offsink_low=value(scores.ci_low, "offsink", index) if has else None,
            offsink_high=value(scores.ci_high, "offsink", index) if has else None,
            failed=tuple(settings.get("pattern_requires", {}).get(name, ())) if bool(failed) else (),
            positional=scores.positional_baseline(name),
        ))
    return found


def _as_float(value: Any) -> float:
    return math.nan if value is None else float(value)
