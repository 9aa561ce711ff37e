"""Self-contained HTML pages: inline CSS, no script, no CDN (reports are read on offline machines),
rendered from the autoescaping templates `templates/report/` (`templating.py`).

A detection matrix over its tokens as a table, and layer x head heatmaps of scores. Cell colours
come from `report.colors`, the scale the PNG figures use, so a head looks the same in both.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from patternlang.files import writing
from patternlang.report.colors import BLANK_COLOR, ColorScale, fit_scale
from patternlang.report.data import (
    MISSING,
    Panel,
    caption,
    checked_matrix,
    heatmap_heading,
    heatmap_panels,
    summarize_matrix,
)
from patternlang.report.tokens import display_tokens
from patternlang.report.templating import render, trusted

if TYPE_CHECKING:
    from patternlang.engine.scores import Scores

TOKEN_WIDTH = 20  # characters of a token in a row or column header

_CSS = f"""
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.3em; margin-bottom: 0.2em; }}
h2 {{ font-size: 1.05em; margin: 1.2em 0 0.3em; }}
p.meta {{ color: #555; margin-top: 0; }}
.panels {{ display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }}
.panel {{ flex: none; }}
table.grid {{ border-collapse: collapse; font-size: 11px; font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }}
table.grid td {{ width: 2.6em; height: 1.5em; text-align: center; border: 1px solid #fff; padding: 0; }}
table.grid td.tri {{ background: {BLANK_COLOR}; }}
table.matrix td {{ width: 2em; }}
table.grid td.best {{ outline: 2px solid; outline-offset: -2px; font-weight: bold; }}
table.grid th {{ font-weight: normal; color: #444; padding: 0 0.3em; white-space: pre; }}
table.grid th.row {{ text-align: right; }}
table.grid th.col {{ vertical-align: bottom; height: auto; }}
table.grid th.col span {{ writing-mode: vertical-rl; transform: rotate(180deg); display: inline-block; }}
table.grid th.axis {{ color: #888; font-style: italic; }}
.legend {{ color: #555; font-size: 0.9em; margin-top: 0.5em; }}
"""


def escape(text: str) -> str:
    """HTML-escape text for element content and attribute values.

    >>> escape('<|endoftext|> & "q"')
    '&lt;|endoftext|&gt; &amp; &quot;q&quot;'
    """
    return html.escape(text, quote=True)


def page(title: str, body: str) -> str:
    """A complete HTML document around `body` (a fragment rendered from a template) with the report
    style sheet."""
    return render("report/base.html", title=title, css=trusted(_CSS), body=Markup(body))


def _write(path: str | Path, text: str) -> Path:
    with writing(path) as out:
        out.write_text(text, encoding="utf-8")
    return Path(path)


# --------------------------------------------------------------------------- matrix


def save_matrix_html(
    matrix: Any,
    tokens: Sequence[str],
    path: str | Path,
    *,
    title: str | None = None,
    max_tokens: int = 256,
) -> Path:
    """Write the detection matrix as a self-contained HTML table (inline CSS, no script, no CDN).

    Token headers are HTML-escaped ("<|endoftext|>" shows as text); hovering a cell shows
    its query token, key token and weight. At most `max_tokens` rows and columns are drawn.

    >>> save_matrix_html(torch.eye(3), ["<s>", " a", " b"], "/tmp/current.html")  # doctest: +SKIP
    """
    m = checked_matrix(matrix, tokens)
    summary = summarize_matrix(m, tokens)
    n = summary.n_tokens
    shown = min(n, max_tokens)
    full_names = display_tokens(list(tokens[:shown]))
    short_names = display_tokens(list(tokens[:shown]), TOKEN_WIDTH)
    scale = fit_scale([m])

    heading = title or "detection matrix"
    columns = [{"index": k, "full": full_names[k], "short": short_names[k]} for k in range(shown)]
    values = m[:shown, :shown].tolist()
    rows = []
    for q in range(shown):
        cells: list[dict[str, str] | None] = []
        for k in range(shown):
            if k > q:
                cells.append(None)
                continue
            value = values[q][k]
            cells.append({"style": scale.css(value), "text": "" if value == 0 else f"{value:.2g}",
                          "tip": f"query {q} {full_names[q]} → key {k} {full_names[k]}: {value:g}"})
        rows.append({"index": q, "full": full_names[q], "short": short_names[q], "cells": cells})
    notes = [summary.describe()]
    if shown < n:
        notes.append(f"showing the first {shown} of {n} tokens")
    if summary.above_diagonal:
        notes.append(f"{summary.above_diagonal} nonzero cells above the diagonal are not shown")
    return _write(path, render("report/matrix.html", title=heading, css=trusted(_CSS), heading=heading, notes=notes,
                               columns=columns, rows=rows))


# --------------------------------------------------------------------------- heatmaps


def save_heatmap_html(scores: Scores, path: str | Path, *, measure: str | None = None) -> Path:
    """Write layer x head heatmaps of `scores` as a self-contained HTML page, a table per pattern.

    Heads not scored are grey ("–"); the best head of each pattern is outlined; hovering a cell
    shows its head, pattern and score. All tables share one colour scale (`report.colors`).

    >>> save_heatmap_html(scores, "heads.html")  # doctest: +SKIP
    """
    panels = heatmap_panels(scores, measure)
    return draw_heatmap_html(panels, fit_scale([p.grid for p in panels]), path, heading=heatmap_heading(measure),
                             subtitle=caption(scores), measure_named=measure is not None,
                             marked="the best head of the pattern")


def draw_heatmap_html(panels: Sequence[Panel], scale: ColorScale, path: str | Path, *, heading: str, subtitle: str,
                      measure_named: bool, marked: str) -> Path:
    """Layer x head panels on one colour scale as a self-contained HTML page (scores, or
    `compare`'s differences); `marked` says what the outlined head of a panel is."""
    shown = []
    for panel in panels:
        n_layers, n_heads = panel.grid.shape
        best = panel.best[:2] if panel.best is not None else None
        rows = []
        for layer in range(n_layers):
            cells = []
            for head in range(n_heads):
                value = float(panel.grid[layer, head])
                scored = not math.isnan(value)
                style = scale.css(value)
                if best == (layer, head):
                    style = f"{style};outline-color:{scale.mark}"
                cells.append({"best": best == (layer, head), "style": style,
                              "text": panel.format(value) if scored else MISSING,
                              "tip": f"L{layer}H{head} {panel.pattern}: {f'{value:.4f}' if scored else 'not scored'}"})
            rows.append({"layer": layer, "cells": cells})
        shown.append({"title": panel.title(measure_named).split("\n"), "heads": range(n_heads), "rows": rows})
    return _write(path, render("report/heatmaps.html", title=heading, css=trusted(_CSS), heading=heading,
                               subtitle=subtitle.split("\n"), panels=shown, vmin=f"{scale.vmin:g}",
                               vmax=f"{scale.vmax:g}", missing=MISSING, marked=marked))
