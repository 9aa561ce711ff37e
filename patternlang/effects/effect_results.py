"""`Effects`: what interventions on heads did to a metric, per head (or head set), with evidence.

Every exact effect is the change of the metric, intervened minus clean, per prompt; its mean over
prompts and a 95% interval over prompts (Student's t on the per-prompt changes). Attribution
adds each head's linear estimate; random baselines add the effects of random head sets of the
same size from the same layers and where the chosen set falls among them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from patternlang.engine.accumulate import t_quantile_975
from patternlang.errors import InputError, did_you_mean
from patternlang.files import writing
from patternlang.heads import head_label

FORMAT = "patternlang.effects/1"


def mean_and_interval(values: Tensor) -> tuple[float, tuple[float, float] | None]:
    """Mean over the finite entries of `values`, and its 95% interval (None below 2 of them)."""
    finite = values[torch.isfinite(values)].double()
    n = int(finite.numel())
    if n == 0:
        return math.nan, None
    mean = float(finite.mean())
    if n < 2:
        return mean, None
    half = float(t_quantile_975(torch.tensor(float(n - 1)))) * float(finite.std(unbiased=True)) / math.sqrt(n)
    return mean, (mean - half, mean + half)


def rank_correlation(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties share their mean rank); None below 2 pairs or with no spread."""
    pairs = [(x, y) for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 2:
        return None
    ranks_a = _ranks([x for x, _ in pairs])
    ranks_b = _ranks([y for _, y in pairs])
    ma, mb = sum(ranks_a) / len(pairs), sum(ranks_b) / len(pairs)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ranks_a, ranks_b))
    va = sum((x - ma) ** 2 for x in ranks_a)
    vb = sum((y - mb) ** 2 for y in ranks_b)
    if va == 0 or vb == 0:
        return None
    return cov / math.sqrt(va * vb)


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


@dataclass(frozen=True)
class RandomBaseline:
    """The effects of `len(sets)` random head sets of the same size from the same layers.

    `p_value`: the share of random sets whose effect is at least as large in size as the chosen
    set's, counting the chosen set itself ((1 + count) / (1 + N), two-sided); `percentile`: the
    share of random effects below the chosen one."""

    sets: tuple[tuple[tuple[int, int], ...], ...]
    effects: tuple[float, ...]
    p_value: float
    percentile: float

    @property
    def mean(self) -> float:
        return sum(self.effects) / len(self.effects)

    @property
    def sd(self) -> float:
        if len(self.effects) < 2:
            return 0.0
        m = self.mean
        return math.sqrt(sum((e - m) ** 2 for e in self.effects) / (len(self.effects) - 1))

    def to_dict(self) -> dict[str, Any]:
        return {"n": len(self.effects), "mean": _finite(self.mean), "sd": _finite(self.sd),
                "p_value": self.p_value, "percentile": self.percentile,
                "effects": [_finite(e) for e in self.effects],
                "sets": [[head_label(*h) for h in heads] for heads in self.sets]}


def random_baseline(observed: float, sets: Sequence[tuple[tuple[int, int], ...]], effects: Sequence[float]) -> RandomBaseline:
    extreme = sum(1 for e in effects if abs(e) >= abs(observed))
    below = sum(1 for e in effects if e < observed)
    return RandomBaseline(tuple(tuple(s) for s in sets), tuple(float(e) for e in effects),
                          (1 + extreme) / (1 + len(effects)), below / len(effects) if effects else math.nan)


@dataclass(frozen=True)
class Effect:
    """One head's (or head set's) effect: `changes` per prompt (intervened minus clean; None when it
    was only estimated), `estimate` (attribution's linear estimate of the mean change, or None),
    `baseline` (random sets, or None)."""

    label: str
    heads: tuple[tuple[int, int], ...]
    changes: Tensor | None = None
    estimate: float | None = None
    baseline: RandomBaseline | None = None
    positions: str | None = None

    @property
    def mean(self) -> float | None:
        """The mean change over prompts (None when not run exactly)."""
        return None if self.changes is None else mean_and_interval(self.changes)[0]

    @property
    def ci(self) -> tuple[float, float] | None:
        return None if self.changes is None else mean_and_interval(self.changes)[1]

    def to_dict(self, exact_key: str) -> dict[str, Any]:
        mean, ci = (None, None) if self.changes is None else mean_and_interval(self.changes)
        entry: dict[str, Any] = {"estimate": _finite(self.estimate), exact_key: _finite(mean),
                                 "ci": None if ci is None else [_finite(ci[0]), _finite(ci[1])],
                                 "heads": [head_label(*h) for h in self.heads]}
        if self.positions is not None:
            entry["positions"] = self.positions
        if self.baseline is not None:
            entry["random_baseline"] = self.baseline.to_dict()
        return entry


@dataclass(frozen=True)
class Effects:
    """What interventions did to a metric. `kind`: "ablation", "patching" or "attribution";
    `clean`: the metric per prompt on the unchanged model; `entries`: label -> `Effect`, labels
    `L23H1` (one head), `L23H1+L23H0` (a set), `L23H1@END` (patching a position group).

    Example:
        effects = ablate(model, get_probe("ioi"), "L23H1,L24H4", metric="logit_diff", positions="END")
        effects.mean("L23H1"), effects.ci("L23H1")
        effects.to_json("effects.json")
    """

    kind: str
    metric: str
    direction: str
    method: str
    positions: str | None
    model: str
    clean: Tensor
    entries: Mapping[str, Effect]
    rank_correlation: float | None = None
    top_k: int | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_prompts(self) -> int:
        return int(self.clean.numel())

    @property
    def clean_mean(self) -> float:
        return mean_and_interval(self.clean)[0]

    def __getitem__(self, label: str) -> Effect:
        if label not in self.entries:
            raise InputError(f"no effect for {label!r}", hint=did_you_mean(str(label), list(self.entries))
                             or f"{len(self.entries)} entries, e.g. {', '.join(list(self.entries)[:3])}")
        return self.entries[label]

    def mean(self, label: str) -> float | None:
        return self[label].mean

    def ci(self, label: str) -> tuple[float, float] | None:
        return self[label].ci

    def ranked(self, *, by: str = "exact", lowest: bool = True) -> list[Effect]:
        """Entries with a value, by their exact mean change (`by="estimate"`: the estimate), lowest first
        (`lowest=False`: highest first)."""
        def key(effect: Effect) -> float | None:
            return effect.mean if by == "exact" else effect.estimate
        chosen = [e for e in self.entries.values() if key(e) is not None and math.isfinite(key(e))]  # type: ignore[arg-type]
        return sorted(chosen, key=lambda e: key(e), reverse=not lowest)  # type: ignore[arg-type, return-value]

    def harmful(self, k: int = 5) -> list[Effect]:
        """The `k` entries whose intervention makes the metric worse the most (its `direction`)."""
        return self.ranked(lowest=self.direction == "higher")[:k]

    @property
    def exact_key(self) -> str:
        return "patching" if self.kind == "patching" or self.settings.get("corrupted") else "ablation"

    def to_dict(self) -> dict[str, Any]:
        """`{"format", "kind", "model", "metric", "direction", "method", "positions", "n_prompts", "clean":
        {"mean", "ci"}, "effects": {label: {"estimate", "ablation" (or "patching"), "ci", "heads", ...}},
        "rank_correlation", "top_k", "settings"}`: the mean change is intervened minus clean."""
        mean, ci = mean_and_interval(self.clean)
        return {
            "format": FORMAT, "kind": self.kind, "model": self.model, "metric": self.metric,
            "direction": self.direction, "method": self.method, "positions": self.positions,
            "n_prompts": self.n_prompts,
            "clean": {"mean": _finite(mean), "ci": None if ci is None else [_finite(ci[0]), _finite(ci[1])]},
            "effects": {label: effect.to_dict(self.exact_key) for label, effect in self.entries.items()},
            "rank_correlation": _finite(self.rank_correlation), "top_k": self.top_k,
            "settings": dict(self.settings),
        }

    def to_json(self, path: str | Path | None = None, *, indent: int | None = 2) -> str:
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            with writing(path) as target:
                target.write_text(text + "\n", encoding="utf-8")
        return text

    def summary(self, k: int = 5) -> str:
        """A few lines for a terminal: the clean metric, the heads that lower and raise it most."""
        mean, ci = mean_and_interval(self.clean)
        lines = [f"{self.kind}: {self.metric} ({self.direction} is better), method {self.method}, positions "
                 f"{self.positions or 'all'}, {self.n_prompts} prompts; clean {_show(mean)}{_show_ci(ci)}"]
        if self.top_k is not None:
            shown = "n/a" if self.rank_correlation is None else f"{self.rank_correlation:+.3f}"
            lines.append(f"attribution vs exact over the top {self.top_k} by estimate: rank correlation {shown}")
        lowering = [e for e in self.ranked(lowest=True) if e.mean is not None and e.mean < 0][:k]
        raising = [e for e in self.ranked(lowest=False) if e.mean is not None and e.mean > 0][:k]
        for title, effects in (("lowers it most", lowering), ("raises it most", raising)):
            lines.append(f"{title}:" + ("" if effects else " none"))
            for effect in effects:
                line = f"  {effect.label}: {_show(effect.mean, signed=True)}{_show_ci(effect.ci)}"
                if effect.estimate is not None:
                    line += f", estimate {_show(effect.estimate, signed=True)}"
                if effect.baseline is not None:
                    b = effect.baseline
                    line += (f"; random sets {_show(b.mean, signed=True)} (sd {_show(b.sd)}, n {len(b.effects)}), "
                             f"p {b.p_value:.3f}")
                lines.append(line)
        return "\n".join(lines)


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _show(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _show_ci(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f" [{ci[0]:+.3f}, {ci[1]:+.3f}]"
