"""Does a head matter? What a verdict adds to "attends like X": "and matters for Y", from the
head's measured effects (docs/verdicts.md, "Matters for").

Imports no torch: reads effects as their JSON, either an `Effects.to_dict()` (`Scores.effects`,
`detect --effects`) or an atlas document's compact form (`doc["effects"]`, `effects/atlas.py`),
keyed by metric.

A head **matters for a metric** when
1. it was run exactly (ablated, or patched; `attribute` runs the heads with the largest
   estimates) and the 95% interval over prompts of the metric's change, intervened minus
   clean, excludes 0 (basis "ablation" or "patching"); a head run exactly whose interval holds
   0 does not matter, whatever its estimate; or
2. no head at all was run exactly for that metric (`attribute(..., top_k=0)`), and the head's
   attribution estimate is among the `ESTIMATE_TOP` largest in size of every head's estimate for
   that metric, within the top `ESTIMATE_FRACTION` of the heads (at least the largest one: on a
   4-head model only the largest), and at least `ESTIMATE_SHARE` of the largest (basis
   "estimate": a first-order guess, not checked, and said so). Where the largest estimates were
   run exactly, the heads below them do not matter by estimate: on SmolLM2, estimates ranked just
   below the exact ones ablated to about 0 (L2H2, L10H8 on `loss`) or changed sign (L0H6 on
   `induction_loss`), so an unchecked estimate there would be a claim the measurements refute.

Its role: it **helps** the metric when the intervention makes the metric worse (in the metric's
direction: loss up, logit difference down), and **hurts** it when the intervention makes it better.

>>> effects = {"loss": {"direction": "lower", "method": "zero", "n_prompts": 32, "probe": "natural",
...            "heads": {"L1H0": {"estimate": 0.1, "ablation": 0.12, "ci": [0.08, 0.16]}}}}
>>> [m.text for m in matters_for(effects, "L1H0")]
['loss (ablation raises loss by 0.12 [0.08, 0.16]: the head helps it)']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LEVEL = 0.95
"""The interval's level: a head run exactly matters when this interval of its mean change excludes 0."""
ESTIMATE_TOP = 10
"""A head not run exactly matters when its estimate is among this many largest in size ..."""
ESTIMATE_FRACTION = 0.05
"""... within this share of the heads (the top 5%: 13 of SmolLM2's 270, so 10 binds there) ..."""
ESTIMATE_SHARE = 0.1
"""... and at least this share of the largest estimate in size."""
RULE = (f"a head matters for a metric when its exact ablation's {LEVEL:.0%} interval of the change excludes 0; "
        f"where no head was ablated exactly, when its estimate is among the {ESTIMATE_TOP} largest in size (and "
        f"the top {ESTIMATE_FRACTION:.0%} of heads) and at least {ESTIMATE_SHARE:g} of the largest (said as estimated)")
"""The definition in words, for pages and tables."""


@dataclass(frozen=True, slots=True)
class Mattering:
    """One metric a head matters for. `change`: the mean change of the metric, intervened minus
    clean (basis "estimate": the attribution estimate of it); `ci`: its 95% interval over prompts
    (None for an estimate); `role`: "helps" (the intervention makes the metric worse) or "hurts";
    `rank`/`of`: the estimate's place by size among `of` heads (basis "estimate")."""

    metric: str
    basis: str
    change: float
    ci: tuple[float, float] | None
    direction: str
    role: str
    probe: str | None = None
    method: str = "zero"
    positions: str | None = None
    n_prompts: int = 0
    rank: int | None = None
    of: int | None = None

    @property
    def text(self) -> str:
        """`loss (ablation raises loss by 0.12 [0.08, 0.16]: the head helps it)`."""
        verb = "raises" if self.change > 0 else "lowers"
        digits = decimals(self.change)
        size = f"{abs(self.change):.{digits}f}"
        if self.basis == "estimate":
            return (f"{self.metric} (estimated, not run exactly: {self.intervention} would {verb[:-1]} "
                    f"{self.metric} by about {size}, the {_ordinal(self.rank or 0)} largest estimate of {self.of} "
                    f"heads: the head {self.role} it)")
        shown = ""
        if self.ci is not None:
            low, high = sorted(abs(x) for x in self.ci)
            shown = f" [{low:.{digits}f}, {high:.{digits}f}]"
        return f"{self.metric} ({self.intervention} {verb} {self.metric} by {size}{shown}: the head {self.role} it)"

    @property
    def intervention(self) -> str:
        """`ablation`, `mean ablation`, `patching`, with ` at END` for a span."""
        word = "patching" if self.basis == "patching" else (
            "ablation" if self.method in ("zero", "") else f"{self.method} ablation")
        return word + (f" at {self.positions}" if self.positions else "")

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "basis": self.basis, "change": _round(self.change),
                "ci": None if self.ci is None else [_round(self.ci[0]), _round(self.ci[1])],
                "direction": self.direction, "role": self.role, "probe": self.probe, "method": self.method,
                "positions": self.positions, "n_prompts": self.n_prompts, "rank": self.rank, "of": self.of,
                "text": self.text}


def matters_for(effects: Mapping[str, Any] | None, label: str) -> tuple[Mattering, ...] | None:
    """The metrics head `label` matters for (see the module docstring), in the order of `effects`;
    None when there are no effects to read (nothing was measured), () when it matters for none."""
    if not effects:
        return None
    found = []
    for metric, entry in effects.items():
        if not isinstance(entry, Mapping):
            continue
        mattering = _mattering(str(metric), entry, label)
        if mattering is not None:
            found.append(mattering)
    return tuple(found)


def _mattering(metric: str, entry: Mapping[str, Any], label: str) -> Mattering | None:
    heads = entry.get("heads") if isinstance(entry.get("heads"), Mapping) else entry.get("effects")
    if not isinstance(heads, Mapping) or not isinstance(heads.get(label), Mapping):
        return None
    head = heads[label]
    direction = str(entry.get("direction") or "higher")
    patching = entry.get("kind") == "patching" or entry.get("method") == "patch"
    found = entry.get("settings")
    settings: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    common: dict[str, Any] = {"direction": direction, "probe": entry.get("probe") or settings.get("prompts"),
              "method": str(entry.get("method") or "zero"), "positions": entry.get("positions"),
              "n_prompts": int(entry.get("n_prompts") or 0)}
    exact = _number(head.get("patching" if patching else "ablation"))
    if exact is None:
        exact = _number(head.get("ablation")) if patching else None
    if exact is not None:
        ci = head.get("ci")
        low, high = (_number(ci[0]), _number(ci[1])) if isinstance(ci, Sequence) and len(ci) == 2 else (None, None)
        if low is None or high is None or low <= 0 <= high:
            return None  # run exactly, and its interval holds 0 (or there is none): it does not matter
        return Mattering(metric, "patching" if patching else "ablation", exact, (low, high),
                         role=_role(exact, direction), **common)
    if any(_number(h.get("patching" if patching else "ablation")) is not None
           for h in heads.values() if isinstance(h, Mapping)):
        return None  # the largest estimates were run exactly: below them an estimate is no evidence
    estimate = _number(head.get("estimate"))
    if estimate is None or estimate == 0:
        return None
    sizes = sorted((abs(v) for v in (_number(h.get("estimate")) for h in heads.values() if isinstance(h, Mapping))
                    if v is not None), reverse=True)
    rank = 1 + sum(1 for size in sizes if size > abs(estimate))
    if rank > estimate_places(len(heads)) or abs(estimate) < ESTIMATE_SHARE * sizes[0]:
        return None
    return Mattering(metric, "estimate", estimate, None, role=_role(estimate, direction), rank=rank, of=len(sizes),
                     **common)


def estimate_places(n_heads: int) -> int:
    """How many of `n_heads` heads can matter by their estimate alone: the `ESTIMATE_TOP` largest,
    at most the top `ESTIMATE_FRACTION` of the heads, at least 1.

    >>> estimate_places(270), estimate_places(144), estimate_places(4)
    (10, 7, 1)
    """
    return max(1, min(ESTIMATE_TOP, int(ESTIMATE_FRACTION * n_heads)))


def _role(change: float, direction: str) -> str:
    worse = change > 0 if direction == "lower" else change < 0
    return "helps" if worse else "hurts"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _round(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


def decimals(value: float) -> int:
    """Decimals that show two significant digits of `value` (at least 2, at most 4)."""
    if value == 0 or not math.isfinite(value):
        return 2
    return min(4, max(2, 1 - math.floor(math.log10(abs(value)))))


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def sentence(label: str | None, runner_up: str | None, matters: Sequence[Any] | None) -> str:
    """A verdict in words: `attends like X`, then `, and matters for Y (...)` from the matters'
    texts (`Mattering`s or their dicts), `; matters for none of the metrics measured` when
    effects were measured and none matters; nothing about effects when none were measured."""
    words = f"attends like {label}" if label else "attends like no pattern" + (
        f" (closest: {runner_up})" if runner_up else "")
    if matters is None:
        return words
    texts = [m.text if isinstance(m, Mattering) else str(m.get("text") or m.get("metric") or "")
             if isinstance(m, Mapping) else str(m) for m in matters]
    if not texts:
        return words + "; matters for none of the metrics measured"
    return words + ", and matters for " + " and ".join(texts)
