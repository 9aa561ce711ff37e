"""The one colour scale of every figure: a value gets the same colour in a PNG and in an HTML page,
in a detection matrix and in a heatmap of scores.

- Values in [0, 1] (weights, most measures): a sequential blue map over [0, 1]. Its near-white end
  is cut off, so a 0 below the diagonal stands apart from blank (white) and missing (grey) cells.
- Values below 0 (signed scores such as `mul`): a diverging map symmetric around 0, blue for
  positive values as above, red for negative ones.
- Values above 1 and none below 0: the sequential map over [0, max].
- Differences (`diverging_scale`, for `compare`): always the diverging map, centred on 0, so
  that no change is white, a gain blue and a loss red, whatever the signs present.

matplotlib is imported when a colour is first needed, not at module load, so that importing
`patternlang.report` stays quick.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from matplotlib.colors import Colormap

MISSING_COLOR = "#d9d9d9"  # heads not scored
BLANK_COLOR = "#ffffff"  # cells with no meaning (above a matrix's diagonal)
SEQUENTIAL_MARK = "#e41a1c"  # outline of a best head: red, which the blue map never uses
DIVERGING_MARK = "#00a000"  # green, which neither end of the red-blue map uses

Kind = Literal["sequential", "diverging"]


@lru_cache(maxsize=None)
def _colormap(kind: Kind) -> "Colormap":
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    if kind == "sequential":
        return ListedColormap(colormaps["Blues"](np.linspace(0.12, 1.0, 256)), name="patternlang_sequential")
    return colormaps["RdBu"].copy()


@dataclass(frozen=True, slots=True)
class ColorScale:
    """A value range and a colour map; `fit_scale` picks both from the values to draw.

    >>> scale = fit_scale([[0.0, 0.5, 1.0]])
    >>> (scale.vmin, scale.vmax, scale.kind)
    (0.0, 1.0, 'sequential')
    >>> scale.css(float("nan"))
    'background:#d9d9d9;color:#777'
    """

    vmin: float
    vmax: float
    kind: Kind = "sequential"

    @property
    def mark(self) -> str:
        """The outline colour of a highlighted cell (the best head)."""
        return SEQUENTIAL_MARK if self.kind == "sequential" else DIVERGING_MARK

    def colormap(self, missing: str = MISSING_COLOR) -> "Colormap":
        """The matplotlib colour map, drawing NaN and masked cells in `missing`."""
        return _colormap(self.kind).with_extremes(bad=missing)

    def rgb(self, value: float) -> tuple[float, float, float]:
        """The colour of `value` as (r, g, b) in [0, 1]; values outside the range are clipped."""
        span = self.vmax - self.vmin
        position = 0.0 if span <= 0 else min(1.0, max(0.0, (value - self.vmin) / span))
        red, green, blue, _ = _colormap(self.kind)(position)
        return float(red), float(green), float(blue)

    def text_color(self, value: float) -> str:
        """Black or white, whichever reads better on the colour of `value`."""
        if math.isnan(value):
            return "#777"
        red, green, blue = self.rgb(value)
        luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
        return "#000" if luminance > 0.5 else "#fff"

    def hex(self, value: float) -> str:
        """The colour of `value` as "#rrggbb"; grey for NaN."""
        if math.isnan(value):
            return MISSING_COLOR
        return "#" + "".join(f"{round(c * 255):02x}" for c in self.rgb(value))

    def css(self, value: float) -> str:
        """An inline `style` value for an HTML cell holding `value`: background and text colour."""
        return f"background:{self.hex(value)};color:{self.text_color(value)}"


def fit_scale(grids: Iterable[Any]) -> ColorScale:
    """The scale for these values (arrays, tensors or nested lists; NaN and inf ignored).

    [0, 1] when every value lies there; symmetric around 0 when some value is negative;
    [0, max] otherwise.

    >>> fit_scale([[-0.5, 2.0]])
    ColorScale(vmin=-2.0, vmax=2.0, kind='diverging')
    >>> fit_scale([[0.0, 3.0]])
    ColorScale(vmin=0.0, vmax=3.0, kind='sequential')
    """
    values = _finite(grids)
    if values.size == 0:
        return ColorScale(0.0, 1.0)
    low, high = float(values.min()), float(values.max())
    if low < 0.0:
        bound = max(abs(low), abs(high))
        return ColorScale(-bound, bound, "diverging")
    return ColorScale(0.0, max(1.0, high))


def diverging_scale(grids: Iterable[Any]) -> ColorScale:
    """The diverging scale symmetric around 0 for differences (NaN and inf ignored): 0 is white,
    positive blue, negative red; [-1, 1] when every value is 0 or none is finite.

    >>> diverging_scale([[0.1, -0.25]])
    ColorScale(vmin=-0.25, vmax=0.25, kind='diverging')
    >>> diverging_scale([[0.0]])
    ColorScale(vmin=-1.0, vmax=1.0, kind='diverging')
    """
    values = _finite(grids)
    bound = float(np.abs(values).max()) if values.size else 0.0
    bound = bound if bound > 0 else 1.0
    return ColorScale(-bound, bound, "diverging")


def _finite(grids: Iterable[Any]) -> np.ndarray:
    arrays = [np.asarray(grid.detach().cpu() if hasattr(grid, "detach") else grid, dtype=np.float64).ravel()
              for grid in grids]
    values = np.concatenate(arrays) if arrays else np.array([])
    finite: np.ndarray = values[np.isfinite(values)]
    return finite
