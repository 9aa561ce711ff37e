"""Reports for the terminal: a detection matrix as a grid of glyphs over its tokens, and the top
heads of every pattern as a table. Both are rich renderables (coloured on a terminal); plain
text comes from `matrix_to_text` or from printing to a console without colour.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from patternlang.errors import InputError
from patternlang.heads import parse_head
from patternlang.report.data import (
    caption,
    checked_matrix,
    checked_measures,
    format_score,
    ranking_measure,
    score_grid,
    summarize_matrix,
)
from patternlang.report.tokens import display_tokens

if TYPE_CHECKING:
    from patternlang.engine.scores import Scores

FULL = "█"  # weight exactly 1
ZERO = "·"  # weight 0
ABOVE_ONE = "+"
BELOW_ZERO = "-"
NOT_A_NUMBER = "?"

TOKEN_WIDTH = 12  # cells for a token in the grid's row labels

_STYLES = {
    FULL: "bold green",
    ZERO: "bright_black",
    ABOVE_ONE: "bold magenta",
    BELOW_ZERO: "bold magenta",
    NOT_A_NUMBER: "bold red",
}
_DIGIT_STYLE = "yellow"


# --------------------------------------------------------------------------- matrix grid


def _glyph(value: float) -> str:
    """One character for a weight: █ for 1, · for 0, else its first decimal digit (0.37 -> "3")."""
    if math.isnan(value):
        return NOT_A_NUMBER
    if value == 0:
        return ZERO
    if abs(value - 1.0) <= 1e-6:
        return FULL
    if value > 1:
        return ABOVE_ONE
    if value < 0:
        return BELOW_ZERO
    return str(min(int(value * 10), 9))


def _index_header(n: int, prefix_width: int) -> list[Text]:
    """Column numbers written vertically, one line per decimal place, so each column stays 2 wide."""
    places = len(str(n - 1))
    lines = []
    for place in reversed(range(places)):
        cells = []
        for j in range(n):
            digits = str(j)
            # Show a digit only where the number has one (no leading zeros).
            cells.append(digits[-place - 1] if place < len(digits) else " ")
        lines.append(Text(" " * prefix_width + " ".join(cells), style="bright_black", no_wrap=True))
    return lines


def render_matrix_text(
    matrix: Any,
    tokens: Sequence[str],
    *,
    max_tokens: int = 40,
    title: str | None = None,
) -> Group:
    """A rich renderable grid of a detection matrix: rows are query tokens, columns key positions.

    Rows are labelled with the position and the token (whitespace made visible, "␣" for a space,
    "\\n" for a newline); columns carry the same position numbers, written vertically. A cell shows
    "█" for weight 1, "·" for 0 and the first decimal digit for weights in between (0.5 -> "5");
    the upper triangle is blank. Above `max_tokens` positions only the first `max_tokens` rows
    and columns are drawn, under a summary of the whole matrix.

    >>> import torch
    >>> from rich.console import Console
    >>> Console().print(render_matrix_text(torch.eye(3), ["<s>", " a", " a"], title="current"))  # doctest: +SKIP
    """
    if max_tokens < 1:
        raise InputError(f"max_tokens must be at least 1, got {max_tokens}")
    m = checked_matrix(matrix, tokens)
    summary = summarize_matrix(m, tokens)
    n = summary.n_tokens
    shown = min(n, max_tokens)

    lines: list[Text] = []
    if title:
        lines.append(Text(title, style="bold"))
    lines.append(Text(summary.describe(), style="bright_black"))
    if shown < n:
        lines.append(
            Text(f"showing the first {shown} of {n} tokens (max_tokens={max_tokens})", style="yellow")
        )
    if n == 0:
        return Group(*lines)

    labels = display_tokens(list(tokens[:shown]), max_width=TOKEN_WIDTH)
    label_width = max(cell_len(label) for label in labels)
    index_width = len(str(shown - 1))
    prefix_width = index_width + 1 + label_width + 1
    lines.extend(_index_header(shown, prefix_width))

    values = m[:shown, :shown].tolist()
    for q in range(shown):
        row = Text(no_wrap=True)
        row.append(f"{q:>{index_width}} ", style="bright_black")
        row.append(labels[q] + " " * (label_width - cell_len(labels[q])), style="cyan")
        row.append(" ")
        for k in range(q + 1):
            glyph = _glyph(values[q][k])
            row.append(glyph, style=_STYLES.get(glyph, _DIGIT_STYLE))
            if k < q:
                row.append(" ")
        lines.append(row)

    legend = f"rows: query, columns: key (same positions) · {FULL} = 1  {ZERO} = 0"
    if summary.fractional:
        legend += "  digit d = 0.d… (first decimal)"
    lines.append(Text(legend, style="bright_black"))
    if summary.above_diagonal:
        lines.append(
            Text(
                f"note: {summary.above_diagonal} nonzero cells above the diagonal are not shown "
                "(a head cannot attend to later tokens)",
                style="yellow",
            )
        )
    return Group(*lines)


def matrix_to_text(
    matrix: Any,
    tokens: Sequence[str],
    *,
    max_tokens: int = 40,
    title: str | None = None,
    width: int = 120,
) -> str:
    """`render_matrix_text` as plain text (no colour), for tests, logs and `--show` output.

    >>> import torch
    >>> print(matrix_to_text(torch.tensor([[1.0, 0], [1, 0]]), ["<s>", " a"]), end="")
    2×2 · 2 marked cells · 2/2 rows with a target · 1.00 targets per row
          0 1
    0 <s> █
    1 ␣a  █ ·
    rows: query, columns: key (same positions) · █ = 1  · = 0
    """
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False, highlight=False)
    # soft_wrap: a wide grid is printed as it is rather than wrapped or cropped at `width`.
    console.print(
        render_matrix_text(matrix, tokens, max_tokens=max_tokens, title=title), soft_wrap=True
    )
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


# --------------------------------------------------------------------------- top heads


def top_heads_table(scores: Scores, k: int = 5, measures: Sequence[str] | None = None) -> Table:
    """A rich table of the `k` best heads of every pattern, one section per pattern.

    Heads are ranked by `measures[0]`, or by each pattern's own measure (`Scores.measure_of`)
    when `measures` is None; every listed measure (default: all the scores have) gets a column,
    so a head's other scores sit beside the one it was ranked by (shown bold). The caption gives
    the model, the number of prompts and tokens, and the model's shape.

    >>> from rich.console import Console
    >>> Console().print(top_heads_table(scores, k=3))  # doctest: +SKIP
    """
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    shown = checked_measures(scores, measures)
    primary = shown[0] if measures else None

    title = f"top {k} heads per pattern" + (f", by {primary}" if primary else "")
    text = caption(scores)
    # min_width keeps the caption on one line under a narrow table.
    table = Table(title=title, caption=text, caption_justify="left", min_width=len(text))
    table.add_column("pattern", style="cyan", no_wrap=True)
    table.add_column("#", justify="right", style="bright_black")
    table.add_column("head", no_wrap=True)
    for name in shown:
        table.add_column(name, justify="right")

    for pattern in scores.patterns:
        ranked_by = ranking_measure(scores, pattern, primary)
        top = scores.top(pattern, k, measure=primary)
        grids = {name: score_grid(scores, pattern, name) for name in shown}
        by = Text(f"by {ranked_by}", style="bright_black")
        if not top:
            table.add_row(Text(pattern), "", Text("no scored heads", style="bright_black"))
        for rank, (label, _) in enumerate(top, start=1):
            layer, head = parse_head(label)
            if rank == 1:
                first = Text(pattern, style="bold")
                if len(top) == 1:
                    first.append("\n").append_text(by)
            else:
                first = by if rank == 2 else Text("")
            cells: list[Text | str] = [first, str(rank), label]
            for name in shown:
                style = "bold" if name == ranked_by else ""
                cells.append(Text(format_score(float(grids[name][layer, head])), style=style))
            table.add_row(*cells)
        table.add_section()
    return table
