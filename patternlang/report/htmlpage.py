"""Self-contained HTML pages: inline CSS, no script, no CDN (reports are read on offline machines).

Cell colours come from the same matplotlib colour maps as the PNG figures, so a head looks the
same in both.
"""

from __future__ import annotations

import html
import math

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.colors import Colormap

MISSING_COLOR = "#d9d9d9"  # heads not scored, cells outside the lower triangle

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin-bottom: 0.2em; }
h2 { font-size: 1.05em; margin: 1.2em 0 0.3em; }
p.meta { color: #555; margin-top: 0; }
.panels { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.panel { flex: none; }
table.grid { border-collapse: collapse; font-size: 11px; font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }
table.grid td { width: 2.6em; height: 1.5em; text-align: center; border: 1px solid #fff; padding: 0; }
table.grid td.tri { background: #fff; }
table.matrix td { width: 2em; }
table.grid td.best { outline: 2px solid #d62728; outline-offset: -2px; font-weight: bold; }
table.grid th { font-weight: normal; color: #444; padding: 0 0.3em; white-space: pre; }
table.grid th.row { text-align: right; }
table.grid th.col { vertical-align: bottom; height: auto; }
table.grid th.col span { writing-mode: vertical-rl; transform: rotate(180deg); display: inline-block; }
table.grid th.axis { color: #888; font-style: italic; }
.legend { color: #555; font-size: 0.9em; margin-top: 0.5em; }
"""


def escape(text: str) -> str:
    """HTML-escape text for element content and attribute values."""
    return html.escape(text, quote=True)


def page(title: str, body: str) -> str:
    """A complete HTML document around `body` (already HTML) with the report style sheet."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


class CellColors:
    """Background and text colours for values under one colour map and value range."""

    def __init__(self, cmap: "str | Colormap", vmin: float, vmax: float):
        # matplotlib is imported here, not at module load, to keep `patternlang` quick to start.
        from matplotlib import colormaps
        from matplotlib.colors import Normalize, to_hex, to_rgb

        self._to_hex, self._to_rgb = to_hex, to_rgb
        self._cmap = colormaps[cmap] if isinstance(cmap, str) else cmap
        self._norm = Normalize(vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1.0, clip=True)

    def style(self, value: float) -> str:
        """An inline `style` value for a cell holding `value` (grey for NaN)."""
        if math.isnan(value):
            return f"background:{MISSING_COLOR};color:#777"
        rgb = self._to_rgb(self._cmap(self._norm(value)))
        # Relative luminance decides between dark and light text so numbers stay readable.
        luminance = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
        text = "#000" if luminance > 0.5 else "#fff"
        return f"background:{self._to_hex(rgb)};color:{text}"
