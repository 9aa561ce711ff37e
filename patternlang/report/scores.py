"""Scores for people: the top heads per pattern as a table, and layer x head heatmaps.

Works on the engine's `Scores` through its public surface only: `patterns`, `measures`,
`get(pattern, measure=None) -> [n_layers, n_heads]` (NaN for heads not scored),
`top(pattern, k, measure=None) -> [("L5H1", value), ...]`, and the provenance fields
`model`, `n_prompts`, `n_tokens`, `n_layers`, `n_heads`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from rich.table import Table
from rich.text import Text

from patternlang.errors import InputError
from patternlang.report.htmlpage import CellColors, escape, page
from patternlang.files import suffix_of, writing
from patternlang.heads import parse_head

HEATMAP_SUFFIXES = (".png", ".html")
MISSING = "–"


class ScoresLike(Protocol):
    """What the report needs from `patternlang.engine.Scores`."""

    patterns: tuple[str, ...]
    measures: tuple[str, ...]
    model: str
    n_prompts: int
    n_tokens: int
    n_layers: int
    n_heads: int

    def get(self, pattern: str, measure: str | None = None) -> torch.Tensor: ...

    def top(self, pattern: str, k: int, measure: str | None = None) -> list[tuple[str, float]]: ...


# --------------------------------------------------------------------------- helpers


def _grid(scores: ScoresLike, pattern: str, measure: str | None) -> np.ndarray:
    """One pattern's scores as a float64 array [n_layers, n_heads]."""
    return torch.as_tensor(scores.get(pattern, measure)).detach().to("cpu", torch.float64).numpy()


def _check_measures(scores: ScoresLike, measures: Sequence[str] | None) -> tuple[str, ...]:
    if measures is None:
        return tuple(scores.measures)
    if isinstance(measures, str):
        measures = (measures,)
    unknown = [m for m in measures if m not in scores.measures]
    if unknown:
        raise InputError(
            f"no scores for measure {unknown[0]!r}",
            hint=f"these scores have: {', '.join(scores.measures)}",
        )
    return tuple(measures)


def _ranking_measure(scores: ScoresLike, pattern: str, measure: str | None) -> str | None:
    """The measure a pattern is ranked by: `measure`, or the name of the pattern's default.

    Scores only expose the default through `get(pattern)`, so the name is found by matching
    that grid against each named measure; None when no named measure matches.
    """
    if measure is not None:
        return measure
    if hasattr(scores, "measure_of"):
        return scores.measure_of(pattern)
    default = _grid(scores, pattern, None)
    for name in scores.measures:
        if np.array_equal(default, _grid(scores, pattern, name), equal_nan=True):
            return name
    return None


def _format(value: float) -> str:
    return MISSING if math.isnan(value) else f"{value:.3f}"


def _caption(scores: ScoresLike) -> str:
    parts = [str(getattr(scores, "model", "") or "")]
    for field, unit in (("n_prompts", "prompts"), ("n_tokens", "tokens")):
        value = getattr(scores, field, None)
        if value is not None:
            parts.append(f"{value} {unit}")
    layers, heads = getattr(scores, "n_layers", None), getattr(scores, "n_heads", None)
    if layers is not None and heads is not None:
        parts.append(f"{layers}×{heads} heads")
    return " · ".join(p for p in parts if p)


# --------------------------------------------------------------------------- table


def top_heads_table(scores: ScoresLike, k: int = 5, measures: Sequence[str] | None = None) -> Table:
    """A rich table of the `k` best heads of every pattern, one section per pattern.

    Heads are ranked by `measures[0]`, or by each pattern's default measure when `measures` is
    None; every listed measure (default: all the scores have) gets a column, so a head's other
    scores sit beside the one it was ranked by (shown bold). The caption gives the model, the
    number of prompts and tokens.

    >>> from rich.console import Console
    >>> Console().print(top_heads_table(scores, k=3))  # doctest: +SKIP
    """
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    shown = _check_measures(scores, measures)
    primary = shown[0] if measures else None
    ranking = {p: _ranking_measure(scores, p, primary) for p in scores.patterns}
    # A separate score column only when some pattern's ranking measure is not among the columns.
    score_column = any(ranking[p] not in shown for p in scores.patterns)

    title = f"top {k} heads per pattern" + (f", by {primary}" if primary else "")
    caption = _caption(scores)
    # min_width keeps the caption on one line under a narrow table.
    table = Table(title=title, caption=caption, caption_justify="left", min_width=len(caption))
    table.add_column("pattern", style="cyan", no_wrap=True)
    table.add_column("#", justify="right", style="bright_black")
    table.add_column("head", no_wrap=True)
    if score_column:
        table.add_column("score", justify="right")
    for name in shown:
        table.add_column(name, justify="right")

    for pattern in scores.patterns:
        top = scores.top(pattern, k, measure=primary)
        grids = {name: _grid(scores, pattern, name) for name in shown}
        by = Text(f"by {ranking[pattern]}" if ranking[pattern] else "by default", style="bright_black")
        if not top:
            table.add_row(Text(pattern), "", Text("no scored heads", style="bright_black"))
        for rank, (label, value) in enumerate(top, start=1):
            layer, head = parse_head(label)
            if rank == 1:
                first = Text(pattern, style="bold")
                if len(top) == 1:
                    first.append("\n").append_text(by)
            else:
                first = by if rank == 2 else Text("")
            cells: list[Text | str] = [first, str(rank), label]
            if score_column:
                cells.append(Text(_format(value), style="bold"))
            for name in shown:
                style = "bold" if name == ranking[pattern] else ""
                cells.append(Text(_format(float(grids[name][layer, head])), style=style))
            table.add_row(*cells)
        table.add_section()
    return table


# --------------------------------------------------------------------------- heatmaps


@dataclass(frozen=True, slots=True)
class _Scale:
    vmin: float
    vmax: float
    cmap: str
    mark: str = "#e41a1c"  # outline of the best head: a colour the colour map does not use


def _shared_scale(grids: Sequence[np.ndarray]) -> _Scale:
    """[0, 1] for measures that live there; symmetric around 0 for signed ones; else [0, max]."""
    values = np.concatenate([g[np.isfinite(g)] for g in grids]) if grids else np.array([])
    if values.size == 0:
        return _Scale(0.0, 1.0, "viridis")
    low, high = float(values.min()), float(values.max())
    if low >= 0.0 and high <= 1.0:
        return _Scale(0.0, 1.0, "viridis")
    if low < 0.0:
        bound = max(abs(low), abs(high))
        return _Scale(-bound, bound, "RdBu_r", mark="#00c000")
    return _Scale(0.0, high, "viridis")


@dataclass(frozen=True, slots=True)
class _Panel:
    pattern: str
    grid: np.ndarray  # [n_layers, n_heads]
    measure: str | None
    best: tuple[str, float] | None  # ("L5H1", value)


def _panels(scores: ScoresLike, measure: str | None) -> list[_Panel]:
    if measure is not None:
        _check_measures(scores, [measure])
    if not scores.patterns:
        raise InputError("these scores hold no patterns; there is nothing to draw")
    panels = []
    for pattern in scores.patterns:
        top = scores.top(pattern, 1, measure=measure)
        panels.append(
            _Panel(
                pattern=pattern,
                grid=_grid(scores, pattern, measure),
                measure=_ranking_measure(scores, pattern, measure),
                best=(top[0][0], float(top[0][1])) if top else None,
            )
        )
    return panels


def _layout(n_panels: int, n_layers: int, n_heads: int) -> tuple[int, int]:
    """Rows and columns of panels: tall panels (many layers, few heads) sit more to a row."""
    max_columns = 6 if n_layers >= 2 * n_heads else 4
    rows = math.ceil(n_panels / max_columns)
    return rows, math.ceil(n_panels / rows)


def _tick_step(n: int, limit: int) -> int:
    return 1 if n <= limit else math.ceil(n / limit)


def save_heatmap(scores: ScoresLike, path: str | Path, *, measure: str | None = None) -> Path:
    """Write layer x head heatmaps of `scores`, one panel per pattern, as PNG or HTML (by suffix).

    Rows are layers (layer 0 on top), columns heads; heads not scored (NaN) are grey; the best
    head of each panel is outlined (red; green on signed scores) and named in its title. All panels share one colour
    scale: [0, 1] when every score lies there. `measure` picks the measure (default: each
    pattern's own). The HTML file is self-contained (no script, no CDN).

    >>> save_heatmap(scores, "heads.png")  # doctest: +SKIP
    """
    suffix = suffix_of(path, HEATMAP_SUFFIXES, "a heatmap")
    panels = _panels(scores, measure)
    scale = _shared_scale([p.grid for p in panels])
    if suffix == ".png":
        _heatmap_png(scores, panels, scale, measure, path)
    else:
        _heatmap_html(scores, panels, scale, measure, path)
    return Path(path)


def _panel_title(panel: _Panel, measure: str | None) -> str:
    title = panel.pattern
    if measure is None and panel.measure:
        title += f" ({panel.measure})"
    if panel.best is not None:
        title += f"\nbest {panel.best[0]}: {panel.best[1]:.2f}"
    else:
        title += "\nno scored heads"
    return title


def _heading(scores: ScoresLike, measure: str | None) -> str:
    return f"attention heads by pattern · measure: {measure or 'each pattern’s default'}"


def _heatmap_png(
    scores: ScoresLike, panels: list[_Panel], scale: _Scale, measure: str | None, path: str | Path
) -> None:
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    n_layers, n_heads = panels[0].grid.shape
    rows, columns = _layout(len(panels), n_layers, n_heads)
    # Square cells, ~0.22 in, shrunk for big models so a panel stays under ~6 x 8 in.
    cell = min(0.22, 6.0 / max(n_heads, 1), 8.0 / max(n_layers, 1))
    panel_width = max(1.4, n_heads * cell) + 0.7  # room for layer tick labels
    panel_height = max(1.4, n_layers * cell) + 1.0  # room for the two-line title and head labels
    fig = Figure(
        figsize=(columns * panel_width + 1.2, rows * panel_height + 0.7), layout="constrained"
    )
    axes = fig.subplots(rows, columns, squeeze=False)
    cmap = colormaps[scale.cmap].with_extremes(bad="#d0d0d0")
    layer_step, head_step = _tick_step(n_layers, 32), _tick_step(n_heads, 16)

    image = None
    for index, ax in enumerate(axes.flat):
        if index >= len(panels):
            ax.set_axis_off()
            continue
        panel = panels[index]
        image = ax.imshow(
            np.ma.masked_invalid(panel.grid), cmap=cmap, vmin=scale.vmin, vmax=scale.vmax,
            interpolation="nearest", aspect="equal",
        )
        ax.set_title(_panel_title(panel, measure), fontsize=8, parse_math=False)
        ax.set_xticks(range(0, n_heads, head_step))
        ax.set_yticks(range(0, n_layers, layer_step))
        ax.tick_params(labelsize=6, length=2)
        ax.set_xlabel("head", fontsize=7)
        if index % columns == 0:
            ax.set_ylabel("layer", fontsize=7)
        if panel.best is not None:
            layer, head = parse_head(panel.best[0])
            ax.add_patch(
                Rectangle((head - 0.5, layer - 0.5), 1, 1, fill=False, edgecolor=scale.mark, linewidth=1.6)
            )
    label = measure or (panels[0].measure if len({p.measure for p in panels}) == 1 else None) or "score"
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8 if rows == 1 else 0.5, aspect=30, label=label)
    suptitle = _heading(scores, measure)
    caption = _caption(scores)
    fig.suptitle(f"{suptitle}\n{caption}" if caption else suptitle, fontsize=9)
    with writing(path) as out, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from font")
        fig.savefig(out, format="png", dpi=110)


def _heatmap_html(
    scores: ScoresLike, panels: list[_Panel], scale: _Scale, measure: str | None, path: str | Path
) -> None:
    colors = CellColors(scale.cmap, scale.vmin, scale.vmax)
    sections = []
    for panel in panels:
        n_layers, n_heads = panel.grid.shape
        best = parse_head(panel.best[0]) if panel.best is not None else None
        rows = ['<tr><th class="axis">layer \\ head</th>' + "".join(f"<th>{h}</th>" for h in range(n_heads)) + "</tr>"]
        for layer in range(n_layers):
            cells = [f'<tr><th class="row">{layer}</th>']
            for head in range(n_heads):
                value = float(panel.grid[layer, head])
                text = MISSING if math.isnan(value) else f"{value:.2f}"
                tip = f"L{layer}H{head} {panel.pattern}: {'not scored' if math.isnan(value) else f'{value:.4f}'}"
                style = colors.style(value)
                mark = ""
                if best == (layer, head):
                    mark, style = ' class="best"', f"{style};outline-color:{scale.mark}"
                cells.append(f'<td{mark} style="{style}" title="{escape(tip)}">{text}</td>')
            rows.append("".join(cells) + "</tr>")
        title = escape(_panel_title(panel, measure)).replace("\n", "<br>")
        sections.append(
            f'<div class="panel"><h2>{title}</h2>\n<table class="grid">\n' + "\n".join(rows) + "\n</table></div>"
        )
    heading = _heading(scores, measure)
    body = (
        f"<h1>{escape(heading)}</h1>\n<p class=\"meta\">{escape(_caption(scores))}</p>\n"
        f'<div class="panels">\n' + "\n".join(sections) + "\n</div>\n"
        f'<p class="legend">Colour scale {scale.vmin:g} to {scale.vmax:g}, shared by all panels; '
        f"grey {MISSING}: head not scored; outlined: the best head of the pattern.</p>"
    )
    with writing(path) as out:
        out.write_text(page(heading, body), encoding="utf-8")
