"""A `Comparison` of two `Scores` (`patternlang.comparison`) for people: a table of the heads that
changed most (or, for two shapes, each side's best heads side by side), the comparison as JSON,
and difference heatmaps, B - A, in PNG or HTML on a diverging scale centred on 0
(`colors.diverging_scale`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from rich.console import JustifyMethod
from rich.table import Table
from rich.text import Text

from patternlang.errors import InputError
from patternlang.files import suffix_of, writing
from patternlang.heads import parse_head
from patternlang.report.colors import diverging_scale
from patternlang.report.data import Panel, caption, format_score
from patternlang.report.save import HEATMAP_SUFFIXES
from patternlang.report.html import draw_heatmap_html
from patternlang.report.png import draw_heatmap_png

if TYPE_CHECKING:
    from patternlang.comparison import Comparison


def sides_caption(comparison: Comparison, files: tuple[str, str] | None = None) -> str:
    """Two lines, one per side: "A = a.json: model · 8 prompts · 400 tokens · 30×9 heads"."""
    lines = []
    for index, side in enumerate((comparison.a, comparison.b)):
        name = comparison.labels[index] + (f" = {files[index]}" if files else "")
        lines.append(f"{name}: {caption(side)}")
    return "\n".join(lines)


def comparison_table(comparison: Comparison, k: int = 5, files: tuple[str, str] | None = None) -> Table:
    """The `k` heads that changed most per pattern (A, B, B - A), or, when A and B differ in
    shape, each side's `k` best heads side by side.

    >>> from rich.console import Console
    >>> Console().print(comparison_table(compare(a, b), k=3))  # doctest: +SKIP
    """
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    name_a, name_b = comparison.labels
    by = f", by {comparison.measure}" if comparison.measure else ""
    text = sides_caption(comparison, files)
    width = max(len(line) for line in text.splitlines())
    if comparison.same_shape:
        title = f"heads that changed most per pattern, {name_b} − {name_a}{by}"
        table = Table(title=Text(title), caption=Text(text), caption_justify="left", min_width=width)
        columns: tuple[tuple[str, JustifyMethod], ...] = (
            ("pattern", "left"), ("#", "right"), ("head", "left"), (name_a, "right"), (name_b, "right"),
            (f"{name_b} − {name_a}", "right"))
        for column, justify in columns:
            table.add_column(Text(column), justify=justify, no_wrap=column in ("pattern", "head"))
    else:
        title = f"top {k} heads per pattern, side by side{by}"
        table = Table(title=Text(title), caption=Text(f"{comparison.describe_shapes()}: no head is in both, so "
                                                      f"each side's best heads are shown\n{text}"),
                      caption_justify="left", min_width=width)
        columns = (("pattern", "left"), ("#", "right"), (f"{name_a} head", "left"), (name_a, "right"),
                   (f"{name_b} head", "left"), (name_b, "right"))
        for column, justify in columns:
            table.add_column(Text(column), justify=justify, no_wrap=True)
    for pattern in comparison.patterns:
        first = [Text(pattern, style="bold"), Text(f"by {comparison.measure_of(pattern)}", style="bright_black")]
        rows = _changed_rows(comparison, pattern, k) if comparison.same_shape else _side_rows(comparison, pattern, k)
        if not rows:
            table.add_row(first[0], "", Text(_why_no_rows(comparison, pattern), style="bright_black"))
        for rank, cells in enumerate(rows, start=1):
            label = first[rank - 1] if rank <= 2 else Text("")
            if rank == 1 and len(rows) == 1:
                label = Text.assemble(first[0], "\n", first[1])
            table.add_row(label, str(rank), *cells)
        table.add_section()
    return table


def _why_no_rows(comparison: Comparison, pattern: str) -> str:
    if not comparison.same_shape:
        return "no scored heads"
    index = comparison.patterns.index(pattern)
    delta = comparison.difference[comparison.measure_of(pattern)][index]
    return "no head changed" if not torch.isnan(delta).all() else "no head scored in both"


def _changed_rows(comparison: Comparison, pattern: str, k: int) -> list[list[Text | str]]:
    rows: list[list[Text | str]] = []
    for change in comparison.changed_most(pattern, k):
        style = "blue" if change.delta > 0 else "red" if change.delta < 0 else ""
        rows.append([change.label, format_score(change.a), format_score(change.b),
                     Text(f"{change.delta:+.3f}", style=f"bold {style}".strip())])
    return rows


def _side_rows(comparison: Comparison, pattern: str, k: int) -> list[list[Text | str]]:
    top_a, top_b = comparison.top(pattern, k)
    rows: list[list[Text | str]] = []
    for index in range(max(len(top_a), len(top_b))):
        cells: list[Text | str] = []
        for ranked in (top_a, top_b):
            label, score = ranked[index] if index < len(ranked) else ("", math.nan)
            cells += [label, format_score(score) if label else ""]
        rows.append(cells)
    return rows


def comparison_json(comparison: Comparison, k: int = 5, files: tuple[str, str] | None = None) -> str:
    """`Comparison.to_dict(k)` as JSON text (null for NaN), with each side's file when given."""
    data = comparison.to_dict(k=k)
    if files:
        data["a"]["file"], data["b"]["file"] = files
    return json.dumps(data, indent=2, allow_nan=False, ensure_ascii=False)


def save_comparison_json(comparison: Comparison, path: str | Path, k: int = 5,
                         files: tuple[str, str] | None = None) -> Path:
    with writing(path) as target:
        target.write_text(comparison_json(comparison, k, files) + "\n", encoding="utf-8")
    return Path(path)


def difference_panels(comparison: Comparison) -> list[Panel]:
    """A panel per pattern: B - A over layer x head, the head that changed most outlined."""
    if not comparison.same_shape:
        raise InputError(f"{comparison.describe_shapes()}: there is no difference heatmap of heads that are "
                         "not in both", hint="draw each side's own heatmap with `patternlang detect --heatmap`")
    panels = []
    for index, pattern in enumerate(comparison.patterns):
        measure = comparison.measure_of(pattern)
        grid = comparison.difference[measure][index].detach().to("cpu", torch.float64).numpy()
        most = comparison.changed_most(pattern, 1)
        best = (*parse_head(most[0].label), most[0].delta) if most else None
        panels.append(Panel(pattern, grid, measure, best, best_name="most changed", signed=True))
    return panels


def save_difference_heatmap(comparison: Comparison, path: str | Path, *,
                            files: tuple[str, str] | None = None) -> Path:
    """Write B - A per head, one panel per pattern, as PNG or HTML (by suffix), on a diverging
    scale centred on 0 shared by all panels: blue where B scores higher, red where lower, white
    for no change, grey where either side has no score. The head that changed most is outlined.

    >>> save_difference_heatmap(compare(a, b), "change.png")  # doctest: +SKIP
    """
    suffix = suffix_of(path, HEATMAP_SUFFIXES, "a heatmap")
    panels = difference_panels(comparison)
    scale = diverging_scale([p.grid for p in panels])
    name_a, name_b = comparison.labels
    measure = comparison.measure
    heading = f"change per head, {name_b} − {name_a} · measure: {measure or 'each pattern’s default'}"
    subtitle = sides_caption(comparison, files)
    if suffix == ".png":
        label = f"{name_b} − {name_a}" + (f" ({panels[0].measure})" if len({p.measure for p in panels}) == 1 else "")
        return draw_heatmap_png(panels, scale, path, heading=heading, subtitle=subtitle,
                                measure_named=measure is not None, label=label)
    return draw_heatmap_html(panels, scale, path, heading=heading, subtitle=subtitle,
                             measure_named=measure is not None,
                             marked=f"the head that changed most; blue: {name_b} higher, red: {name_b} lower")
