"""The measures' metadata, without torch: what the language layer, the CLI and docs know of a measure.

A measure has two halves, as einops keeps `parsing.py` apart from its backends:

- its `MeasureInfo` here (name, doc, range, sign, direction, what it is averaged over, what it is
  relative to, what it needs from the model): the settings pass (`syntax/settings_pass.py`), the
  pattern checker and `patternlang measures` read this table, and importing it imports no torch;
- its implementation in `engine/measures.py` (`register_measure`), which registers against this
  table: a shipped measure's entry is declared here, a new measure's entry is added by
  `register_measure` itself when it is not here yet.

`MEASURE_TABLE` is a `Registry`, read live: a measure registered later is seen at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from patternlang.registry import Registry

AveragedOver = Literal["target rows", "prompts"]
Direction = Literal["higher", "lower"]


@dataclass(frozen=True, slots=True)
class MeasureInfo:
    """What is known of a measure without computing it.

    `low`, `high`: where a score can lie (None where unbounded; intervals are clipped to it);
    `range`: the same, as the docs and `patternlang measures` write it ("0 .. max D");
    `signed`: whether the sign itself means something (`copying`: + copies, - suppresses);
    `direction`: which way means "more like the pattern" ("higher" or "lower");
    `averaged_over`: "target rows" (pooled over prompts) or "prompts" (per prompt, then the mean);
    `relative_to`: the measure this one is a ratio to its chance of (`lift` to `mass`);
    `needs`: what it reads besides attention ("z": the heads' outputs, a pass to the logits).
    """

    name: str
    doc: str
    range: str
    averaged_over: AveragedOver
    low: float | None = None
    high: float | None = None
    signed: bool = False
    direction: Direction = "higher"
    relative_to: str | None = None
    needs: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.averaged_over not in ("target rows", "prompts"):
            raise ValueError(f"measure {self.name!r}: averaged_over must be 'target rows' or 'prompts', "
                             f"not {self.averaged_over!r}")
        if self.direction not in ("higher", "lower"):
            raise ValueError(f"measure {self.name!r}: direction must be 'higher' or 'lower', not {self.direction!r}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"measure {self.name!r}: low {self.low} is above high {self.high}")

    @property
    def bounds(self) -> tuple[float, float]:
        """`(low, high)` with infinities where unbounded."""
        return (-math.inf if self.low is None else self.low, math.inf if self.high is None else self.high)

    @property
    def reads_attention_only(self) -> bool:
        """True when the measure reads attention alone (no model outputs)."""
        return not self.needs

    def summary(self) -> str:
        """`doc (range)`, as `patternlang check` and the docs show a measure."""
        return f"{self.doc} ({self.range})"


MEASURE_TABLE: Registry[MeasureInfo] = Registry("measure")
"""Every measure's metadata, in registration order (the shipped ones below, then any added)."""


def declare_measure(info: MeasureInfo) -> MeasureInfo:
    """Add a measure's metadata (`engine.measures.register_measure` calls this for a new measure)."""
    if info.relative_to is not None and info.relative_to not in MEASURE_TABLE:
        raise ValueError(f"measure {info.name!r} is relative to {info.relative_to!r}, which is not registered")
    return MEASURE_TABLE.register(info)


def measure_names() -> tuple[str, ...]:
    """The measures' names, in registration order (live)."""
    return MEASURE_TABLE.names()


def measure_info(name: str) -> MeasureInfo:
    """The metadata of the measure `name`; an unknown name raises `UnknownNameError` with a did-you-mean."""
    return MEASURE_TABLE.get(name)


def attention_measure_names() -> tuple[str, ...]:
    """The measures that read attention alone (every one but those needing model outputs), live."""
    return tuple(info.name for info in MEASURE_TABLE.entries() if info.reads_attention_only)


def measures_averaged_over(what: AveragedOver) -> frozenset[str]:
    """The measures averaged over "target rows" or over "prompts", live."""
    return frozenset(info.name for info in MEASURE_TABLE.entries() if info.averaged_over == what)


def measure_docs() -> dict[str, str]:
    """`{name: "doc (range)"}` for every measure, live."""
    return {info.name: info.summary() for info in MEASURE_TABLE.entries()}


def default_measure() -> str:
    """The measure used when neither the pattern nor the caller names one: the first registered (`mass`)."""
    return MEASURE_TABLE.names()[0]


for _info in (
    MeasureInfo("mass", "attention mass on the pattern's targets, weighted by its values", "0 .. 1",
                "target rows", low=0.0, high=1.0),
    MeasureInfo("tv", "1 - total variation distance to the pattern row normalised to sum 1", "0 .. 1",
                "target rows", low=0.0, high=1.0),
    MeasureInfo("argmax", "share of rows whose most-attended key is a target", "0 .. 1", "target rows",
                low=0.0, high=1.0),
    MeasureInfo("mul", "TransformerLens 'mul': sum(A*D)/sum(A) per prompt, mean over prompts", "0 .. max D",
                "prompts"),
    MeasureInfo("abs", "TransformerLens 'abs': 1 - round(sum|A-D|/len, 3) per prompt, mean over prompts",
                "unbounded", "prompts"),
    MeasureInfo("lift", "mass over the chance mass of a head attending uniformly (1 = chance, 6 = 6x chance)",
                "0 .. 1/chance", "target rows", low=0.0, relative_to="mass"),
    MeasureInfo("copying", "direct effect of the head's output on the logits of the tokens it attends to "
                "on targets (+ raises them: name movers; - lowers them: copy suppression)", "logits, signed",
                "target rows", signed=True, needs=frozenset({"z"})),
    MeasureInfo("sink", "share of attention on position 0 (BOS, the sink) on the pattern's target rows", "0 .. 1",
                "target rows", low=0.0, high=1.0),
    MeasureInfo("offsink", "attention on the targets other than position 0, not renormalised "
                "(offsink / (1 - sink): the score on the attention not parked on the sink)", "0 .. 1",
                "target rows", low=0.0, high=1.0),
):
    declare_measure(_info)
del _info
