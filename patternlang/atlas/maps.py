"""The atlas's layer x head maps as data for the templates (`macros.html` draws them as SVG): each
map with its axes (layer and head ticks), its colour scale as a bar with numbers and the measure's
name, and a list of the heads at its top, so a map is read by its numbers, not by eye alone.

A `Scale` maps values to the palettes of `assets.palettes`: sequential from `low` to `high` (a
pattern's excess over chance: 0 at chance), or diverging with 0 in the middle, `-high .. high`
(a signed measure such as `copying`, a difference between two models). One scale is shared by the
maps drawn side by side, and its bar says so.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from patternlang.atlas.assets import palettes
from patternlang.heads import head_label

MISSING = "#d9d9d9"  # a head with no score (no target rows): grey
AXIS_LEFT = 30  # pixels left of the map for the layer ticks (L0, L4, ...)
AXIS_TOP = 14  # pixels above it for the head ticks (H0, H1, ...)
TICK_WIDTH = 17  # a head tick needs about this many pixels ("H31" at 8 px)
TICK_HEIGHT = 10  # a layer tick this many
BAR_WIDTH, BAR_HEIGHT = 180, 10
BAR_STEPS = 32  # the bar's colour steps


@dataclass(frozen=True, slots=True)
class Scale:
    """Values to colours: `kind` "seq" over `low .. high`, or "div" over `-high .. high` (0 in the
    middle); `label` names what the colour is (the measure, and how it is read)."""

    kind: str
    low: float
    high: float
    label: str

    def position(self, value: float | None) -> float | None:
        """Where `value` falls on the bar, 0 to 1 (clamped); None for a missing value."""
        if value is None or not math.isfinite(value):
            return None
        span = self.high - self.low
        if not span > 0:
            return 0.5
        return max(0.0, min(1.0, (value - self.low) / span))

    def colour(self, value: float | None) -> str:
        where = self.position(value)
        if where is None:
            return MISSING
        palette = _palette(self.kind)
        return palette[round(where * (len(palette) - 1))]


@functools.cache
def _palette(kind: str) -> tuple[str, ...]:
    return tuple(palettes()[kind])


def excess_scale(values: Sequence[Sequence[Sequence[float | None]]], label: str) -> Scale:
    """A sequential scale from 0 (chance) to 1 (a perfect head), wider where an unbounded measure's
    excess goes past 1."""
    top = max((v for grid in values for row in grid for v in row if v is not None and math.isfinite(v)), default=1.0)
    return Scale("seq", 0.0, max(1.0, top), label)


def diverging_scale(values: Sequence[Sequence[Sequence[float | None]]], label: str, *,
                    at_least: float = 0.0) -> Scale:
    """A two-sided scale, 0 in the middle, to the largest value in size (at least `at_least`)."""
    size = max((abs(v) for grid in values for row in grid for v in row if v is not None and math.isfinite(v)),
               default=0.0)
    size = max(size, at_least)
    return Scale("div", -size if size > 0 else -1.0, size if size > 0 else 1.0, label)


def number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def heatmap(values: Sequence[Sequence[float | None]], scale: Scale, *, url: Callable[[str], str],
            title: Callable[[int, int, float | None], str], width: int, height: int) -> dict[str, Any]:
    """One `[layer][head]` grid as the `heatmap` macro draws it: a rectangle per head (its colour on
    `scale`, its link `url(label)` and hover text `title(layer, head, value)`), layer ticks on the left
    and head ticks on top, thinned so that they never overlap."""
    n_layers, n_heads = len(values), len(values[0]) if values else 0
    h, w = height / max(n_layers, 1), width / max(n_heads, 1)
    rects = []
    for layer, row in enumerate(values):
        for head, value in enumerate(row):
            label = head_label(layer, head)
            rects.append({"url": url(label), "x": f"{AXIS_LEFT + head * w:.2f}", "y": f"{AXIS_TOP + layer * h:.2f}",
                          "w": f"{w:.2f}", "h": f"{h:.2f}", "colour": scale.colour(value), "title": title(layer, head, value),
                          "label": label, "v": "" if value is None or not math.isfinite(value) else f"{value:.6g}"})
    layer_step = max(1, math.ceil(TICK_HEIGHT / h))
    head_step = max(1, math.ceil(TICK_WIDTH / w))
    return {"width": AXIS_LEFT + width, "height": AXIS_TOP + height, "rects": rects,
            "layers": [{"y": f"{AXIS_TOP + (la + 0.5) * h:.2f}", "text": f"L{la}"}
                       for la in range(0, n_layers, layer_step)],
            "heads": [{"x": f"{AXIS_LEFT + (he + 0.5) * w:.2f}", "text": f"H{he}"} for he in range(0, n_heads, head_step)],
            "axis_x": AXIS_LEFT - 3, "axis_y": AXIS_TOP - 4}


def colour_bar(scale: Scale) -> dict[str, Any]:
    """The scale as the `colour_bar` macro draws it: its colours left to right, the numbers at its
    ends and middle (0 for a diverging scale), and its label."""
    step = BAR_WIDTH / BAR_STEPS
    stops = [{"x": f"{i * step:.2f}", "w": f"{step + 0.5:.2f}",
              "colour": scale.colour(scale.low + (scale.high - scale.low) * (i + 0.5) / BAR_STEPS)}
             for i in range(BAR_STEPS)]
    middle = (scale.low + scale.high) / 2
    digits = 2 if max(abs(scale.low), abs(scale.high)) >= 0.1 else 3
    ticks = [{"x": "0", "anchor": "start", "text": number(scale.low, digits)},
             {"x": f"{BAR_WIDTH / 2:.0f}", "anchor": "middle", "text": number(0.0 if scale.kind == "div" else middle, digits)},
             {"x": f"{BAR_WIDTH}", "anchor": "end", "text": number(scale.high, digits)}]
    return {"width": BAR_WIDTH, "height": BAR_HEIGHT + 12, "bar": BAR_HEIGHT, "stops": stops, "ticks": ticks,
            "label": scale.label, "kind": scale.kind, "low": number(scale.low, digits), "high": number(scale.high, digits)}


def top_heads(values: Sequence[Sequence[float | None]], n: int, *, lowest: bool = False,
              by_size: bool = False) -> list[tuple[int, int, float]]:
    """The `n` heads at the top of a grid, `(layer, head, value)`: highest first, lowest first with
    `lowest`, largest in size first with `by_size`; missing values never rank."""
    cells = [(la, he, v) for la, row in enumerate(values) for he, v in enumerate(row)
             if v is not None and math.isfinite(v)]
    if by_size:
        cells.sort(key=lambda c: -abs(c[2]))
    else:
        cells.sort(key=lambda c: c[2] if lowest else -c[2])
    return cells[:n]
