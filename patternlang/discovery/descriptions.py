"""What `describe` returns: each head's rule, its held-out evidence and the runners-up."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Alternative", "Component", "HeadDescription", "Description", "Replacement"]


@dataclass(frozen=True, slots=True)
class Alternative:
    """A runner-up rule with its held-out family scores."""

    rule: str
    family: str
    mass: float
    iou: float


@dataclass(frozen=True, slots=True)
class Component:
    """One rule of a head's mixture and its weight (the weights of a mixture are >= 0 and sum to 1).
    `rule` is rule text (`patternlang.load_pattern` parses it); the BOS part is `attend k where k == 0`."""

    rule: str
    weight: float


@dataclass(frozen=True, slots=True)
class HeadDescription:
    """One head's description.

    `rule`: rule text (`patternlang.load_pattern` parses it; None when nothing is above chance);
    `score`: its held-out `mass` by the engine on the compiled rule (with `exclude bos`: the share
    of the head's non-sink attention on the rule's targets; the BOS rule: the share on key 0);
    `interval`: the engine's 95% interval of it; `chance`: a uniform head's mass on the same rule;
    `explained`: the same as `score` for a rule (the non-sink attention the rule explains);
    `iou`: held-out IoU of the rule's cells with the head's binarised attention; `coverage`:
    held-out share of the rule's cells the head's binarised attention covers; `train_iou`: the
    IoU it was chosen by; `above_chance`: the test of docs/describe.md; `runners_up`: the next
    best rules (equivalent rules left out).

    The weighted description (`mixture.py`; empty when not fitted): `mixture`, up to a few rules
    and BOS with weights >= 0 summing to 1, fitted on the selection half; `mixture_train_fit`: its
    fit there (1 - squared error / the attention's squared sum, the figure the rules were added by);
    `mixture_fit`: held-out share of the head's attention the mixture's matrix holds too (1 - total
    variation, per row, averaged); `mixture_iou`: held-out IoU of the binarised mixture matrix with
    the binarised attention (the same threshold); `rule_fit`: `mixture_fit` of the single `rule`'s
    replacement matrix (rows normalised, BOS where no target)."""

    head: str
    rule: str | None
    family: str | None
    score: float | None
    interval: tuple[float, float] | None
    chance: float | None
    explained: float | None
    iou: float | None
    coverage: float | None
    train_iou: float | None
    above_chance: bool
    sink: float
    runners_up: tuple[Alternative, ...] = ()
    best_rule: str | None = None  # the best rule even when not above chance
    mixture: tuple[Component, ...] = ()
    mixture_train_fit: float | None = None
    mixture_fit: float | None = None
    mixture_iou: float | None = None
    rule_fit: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["interval"] = list(self.interval) if self.interval else None
        data["mixture"] = [{"rule": c.rule, "weight": c.weight} for c in self.mixture]
        return data

    def mixture_text(self) -> str:
        """`0.55 x attend k where k == q - 1 exclude bos + 0.45 x attend k where k == 0` ("" when none)."""
        return " + ".join(f"{c.weight:.2f} x {c.rule}" for c in self.mixture)


@dataclass(frozen=True, slots=True)
class Replacement:
    """The replacement check: perplexity on held-out prompts before and after the chosen heads'
    attention is set to their rules' matrices (rows normalised, BOS where a row has no target)."""

    heads: tuple[str, ...]
    perplexity_before: float
    perplexity_after: float
    n_prompts: int
    n_tokens: int
    keep_sink: bool = False  # the variant where each head keeps its share of attention on BOS
    kind: str = "rule"  # "rule": each head by its single rule; "mixture": by its weighted mixture

    @property
    def increase(self) -> float:
        """Relative increase of perplexity (0.16 = 16%)."""
        return self.perplexity_after / self.perplexity_before - 1.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "heads": list(self.heads), "increase": self.increase}


@dataclass(frozen=True)
class Description:
    """Every described head (`heads["L16H0"]`), how the run went, and the replacement check."""

    model: str
    heads: dict[str, HeadDescription]
    n_candidates: int
    n_bases: int
    families: tuple[str, ...]
    n_prompts_selection: int
    n_prompts_held_out: int
    binary_threshold: float
    complexity_penalty: float
    seconds: dict[str, float] = field(default_factory=dict)
    replacement: Replacement | None = None
    replacement_with_sink: Replacement | None = None
    replacement_mixture: Replacement | None = None
    mixture_size: int = 0  # the most rules a mixture may hold besides BOS (0: no mixtures fitted)
    mixture_penalty: float | None = None
    max_family_error: float | None = None  # |family mass - engine mass| over the described heads

    def __getitem__(self, head: str) -> HeadDescription:
        return self.heads[head]

    @property
    def described(self) -> list[HeadDescription]:
        return [h for h in self.heads.values() if h.above_chance]

    @property
    def mean_iou(self) -> float | None:
        """Average held-out IoU over the heads with a rule above chance."""
        values = [h.iou for h in self.described if h.iou is not None]
        return sum(values) / len(values) if values else None

    @property
    def mean_mixture_iou(self) -> float | None:
        """Average held-out IoU of the binarised mixtures over the same heads as `mean_iou`."""
        values = [h.mixture_iou for h in self.described if h.mixture_iou is not None]
        return sum(values) / len(values) if values else None

    def mean_fit(self, which: str = "mixture_fit", heads: list[HeadDescription] | None = None) -> float | None:
        """Average of a head figure (`mixture_fit`, `rule_fit`, `mixture_iou`, ...) over `heads`
        (default: the heads with a rule above chance), heads without it left out."""
        values = [getattr(h, which) for h in (self.described if heads is None else heads)
                  if getattr(h, which) is not None]
        return sum(values) / len(values) if values else None

    def by_family(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for h in self.described:
            counts[h.family or "none"] = counts.get(h.family or "none", 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "n_candidates": self.n_candidates, "n_bases": self.n_bases,
            "families": list(self.families), "n_prompts_selection": self.n_prompts_selection,
            "n_prompts_held_out": self.n_prompts_held_out, "binary_threshold": self.binary_threshold,
            "complexity_penalty": self.complexity_penalty, "seconds": self.seconds,
            "described": len(self.described), "mean_iou": self.mean_iou, "by_family": self.by_family(),
            "max_family_error": self.max_family_error,
            "replacement": self.replacement.to_dict() if self.replacement else None,
            "replacement_with_sink": self.replacement_with_sink.to_dict() if self.replacement_with_sink else None,
            "mixture_size": self.mixture_size, "mixture_penalty": self.mixture_penalty,
            "mean_mixture_iou": self.mean_mixture_iou, "mean_mixture_fit": self.mean_fit("mixture_fit"),
            "mean_rule_fit": self.mean_fit("rule_fit"),
            "replacement_mixture": self.replacement_mixture.to_dict() if self.replacement_mixture else None,
            "heads": {name: h.to_dict() for name, h in self.heads.items()},
        }

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(_finite(self.to_dict()), indent=2, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, path: str | Path) -> "Description":
        """Read back what `to_json` wrote (the file is checked: a clear error, not a traceback)."""
        from patternlang.errors import InputError

        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            heads = {}
            for name, h in data["heads"].items():
                h = dict(h)
                h["interval"] = tuple(h["interval"]) if h.get("interval") else None
                h["runners_up"] = tuple(Alternative(**r) for r in h.get("runners_up") or ())
                h["mixture"] = tuple(Component(str(c["rule"]), float(c["weight"])) for c in h.get("mixture") or ())
                heads[name] = HeadDescription(**h)
            replacements = {key: Replacement(**{k: v for k, v in data[key].items() if k != "increase"} |
                                             {"heads": tuple(data[key]["heads"])})
                            for key in ("replacement", "replacement_with_sink", "replacement_mixture")
                            if data.get(key)}
            return cls(model=data["model"], heads=heads, n_candidates=data["n_candidates"], n_bases=data["n_bases"],
                       families=tuple(data["families"]), n_prompts_selection=data["n_prompts_selection"],
                       n_prompts_held_out=data["n_prompts_held_out"], binary_threshold=data["binary_threshold"],
                       complexity_penalty=data["complexity_penalty"], seconds=data.get("seconds") or {},
                       max_family_error=data.get("max_family_error"), mixture_size=data.get("mixture_size") or 0,
                       mixture_penalty=data.get("mixture_penalty"), **replacements)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise InputError(f"{path}: not a description written by `patternlang describe --json` ({error})") from None

    def table(self) -> str:
        """A text table: head, rule (or "none above chance"), held-out mass, IoU."""
        lines = [f"{'head':<7} {'mass':>5} {'iou':>5}  rule"]
        for name, h in self.heads.items():
            if h.above_chance:
                lines.append(f"{name:<7} {h.score:5.2f} {h.iou if h.iou is not None else float('nan'):5.2f}  {h.rule}")
            else:
                lines.append(f"{name:<7} {'':>5} {'':>5}  none above chance")
        return "\n".join(lines)

    def markdown(self) -> str:
        """The table of every head as markdown: rule (or "none above chance"), family, held-out mass
        with its interval, chance, IoU, coverage, the share of attention on BOS, and (when fitted)
        the mixture with its held-out fit and IoU."""
        mixed = any(h.mixture for h in self.heads.values())
        extra = " mixture | fit | mixture IoU |" if mixed else ""
        lines = ["| head | rule | family | mass [95%] | chance | IoU | coverage | sink |" + extra,
                 "|---|---|---|---|---|---|---|---|" + ("---|---|---|" if mixed else "")]
        for name, h in self.heads.items():
            tail = (f" {_mixture_cell(h)} | {_two(h.mixture_fit)} | {_two(h.mixture_iou)} |" if mixed else "")
            if h.above_chance:
                rule = _short(h.rule or "").replace("|", "\\|")
                lines.append(f"| {name} | `{rule}` | {h.family} | {h.score:.2f} [{h.interval[0]:.2f}, "
                             f"{h.interval[1]:.2f}] | {h.chance:.2f} | {_two(h.iou)} | {_two(h.coverage)} | {h.sink:.2f} |"
                             + tail)
            else:
                lines.append(f"| {name} | none above chance | | | | | | {h.sink:.2f} |" + tail)
        return "\n".join(lines)

    def __repr__(self) -> str:
        iou = f"{self.mean_iou:.3f}" if self.mean_iou is not None else "n/a"
        return (f"<Description of {self.model}: {len(self.described)}/{len(self.heads)} heads above chance, "
                f"mean held-out IoU {iou}, {self.n_candidates:,} candidates>")


def _short(rule: str) -> str:
    return rule.removeprefix("attend k where ").removesuffix(" exclude bos")


def _mixture_cell(h: HeadDescription) -> str:
    """`0.55 k == q - 1 + 0.45 bos` (rules shortened as in the table)."""
    parts = [f"{c.weight:.2f} " + ("bos" if c.rule == "attend k where k == 0" else f"`{_short(c.rule)}`")
             for c in h.mixture]
    return " + ".join(parts).replace("|", "\\|")


def _two(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _finite(value: Any) -> Any:
    """NaN and infinities as None (JSON has neither), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
