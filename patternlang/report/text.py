"""Reports for the terminal: a detection matrix as a grid of glyphs over its tokens, and the top
heads of every pattern as a table. Both are rich renderables (coloured on a terminal); plain
text comes from `matrix_to_text` or from printing to a console without colour.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.cells import cell_len
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from patternlang.engine.measures import MEASURES
from patternlang.engine.matters import Mattering, decimals
from patternlang.engine.verdicts import Footing, is_positional
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


TABLE_WIDTH = 80
"""Columns a table is laid out for when no width is given (a plain terminal)."""


def top_heads_table(scores: Scores, k: int = 5, measures: Sequence[str] | None = None, *,
                    ci: bool = False, width: int | None = None) -> Group:
    """The `k` best heads of every pattern, one section per pattern, as rich tables.

    Heads are ranked by `measures[0]`, or by each pattern's own measure (`Scores.measure_of`)
    when `measures` is None; every listed measure (default: all the scores have) gets a column,
    so a head's other scores sit beside the one it was ranked by (shown bold). Each pattern's
    cell says what its scores rest on (target rows, prompts), its chance baseline and which
    keys were excluded; `×chance` is the ranked score over that baseline; `ci=True` adds each
    score's 95% interval. Numbers are never cut: measures that do not fit in `width` columns
    (default: 80) go on to a further table. The caption gives the model, prompts, tokens and
    shape.

    >>> from rich.console import Console
    >>> Console().print(top_heads_table(scores, k=3))  # doctest: +SKIP
    """
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    shown = checked_measures(scores, measures)
    primary = shown[0] if measures else None
    width = max(40, width or TABLE_WIDTH)
    sections = [_Section.of(scores, pattern, k, primary, shown, ci) for pattern in scores.patterns]

    # Columns: pattern, head, ×chance (first table), then one per measure (two with intervals),
    # in chunks that fit; each column takes its widest cell, a space either side and a rule.
    fixed = _width_of([s.label_width for s in sections], 14, 26) + 2 + len("head") + 3
    chunks: list[list[str]] = [[]]
    used = fixed + len("×chance") + 3
    for name in shown:
        need = max(len(name), len("-0.000")) + 3 + ((len("-0.000–-0.000") + 3) if ci else 0)
        if chunks[-1] and used + need > width:
            chunks.append([])
            used = fixed
        chunks[-1].append(name)
        used += need

    title = f"top {k} heads per pattern" + (f", by {primary}" if primary else "")
    tables = []
    for number, chunk in enumerate(chunks):
        part = title if len(chunks) == 1 else f"{title} ({number + 1}/{len(chunks)}: {', '.join(chunk)})"
        last = number == len(chunks) - 1
        table = Table(title=part, caption=caption(scores) if last else None, caption_justify="left",
                      box=box.MINIMAL, expand=False)
        table.add_column("pattern", style="cyan", overflow="fold", max_width=26)
        table.add_column("head", no_wrap=True)
        if number == 0:
            table.add_column("×chance", justify="right", no_wrap=True)
        for name in chunk:
            table.add_column(name, justify="right", no_wrap=True)
            if ci:
                table.add_column("95% CI", justify="right", no_wrap=True, style="bright_black")
        notes = number == 0 and any(section.has_notes for section in sections)
        if notes:  # "✗ require": fails a `require` (not a candidate); "position": explained by position
            table.add_column("note", no_wrap=True)
        for section in sections:
            section.add_rows(table, chunk, ci=ci, with_lift=number == 0, with_notes=notes)
            table.add_section()
        tables.append(table)
    return Group(*tables)


def _width_of(widths: Sequence[int], low: int, high: int) -> int:
    return min(high, max([low, *widths]))


class _Section:
    """One pattern's rows: its top heads, with what the scores rest on in the first column."""

    def __init__(self, pattern: str, label: list[Text], rows: list[tuple[str, str, dict[str, Text], str]],
                 grids: dict[str, Any]):
        self.pattern, self.label, self.rows, self.grids = pattern, label, rows, grids

    @property
    def label_width(self) -> int:
        return max(cell_len(line.plain) for line in self.label)

    @classmethod
    def of(cls, scores: Scores, pattern: str, k: int, primary: str | None, shown: Sequence[str],
           ci: bool) -> "_Section":
        ranked_by = ranking_measure(scores, pattern, primary)
        label = [Text(pattern, style="bold"), Text(f"by {ranked_by}", style="bright_black")]
        evidence = scores.evidence.get(pattern)
        baseline = scores.baseline(pattern, ranked_by)
        if evidence is not None:
            label.append(Text(f"{evidence.n_rows} rows, {evidence.n_prompts}/{evidence.n_prompts_run} prompts",
                              style="bright_black"))
        signed = ranked_by in MEASURES and MEASURES[ranked_by].signed
        if not math.isnan(baseline) and not signed:  # a signed measure's chance means nothing
            label.append(Text(f"chance {format_score(baseline)}", style="bright_black"))
        if scores.ranks_lowest(pattern, primary):
            label.append(Text("lowest first", style="bright_black"))
        excluded = _exclusions(scores, pattern)
        if excluded:
            label.append(Text(f"excl. {excluded}", style="bright_black"))
        requires = dict(scores.settings).get("pattern_requires", {}).get(pattern, [])
        if requires:
            label.append(Text("require " + ", ".join(requires), style="bright_black"))
        position = scores.positional_baseline(pattern)
        if position is not None and position.get("measure") == ranked_by and not is_positional(position):
            label.append(Text(f"position {position['rule']}: {format_score(position['score'])}",
                              style="bright_black"))
        else:
            position = None
        grids = {name: score_grid(scores, pattern, name) for name in shown}
        intervals = {name: scores.interval(pattern, name) for name in shown} if ci else {}
        low_grid = scores.interval(pattern, ranked_by)[0]
        failed = scores.requirement_failures(pattern)
        rows: list[tuple[str, str, dict[str, Text], str]] = []
        passing = 0
        for label_text, value in scores.top(pattern, scores.n_layers * scores.n_heads, measure=primary):
            if passing >= k:
                break
            layer, head = parse_head(label_text)
            fails = bool(failed[layer, head])
            if fails and len(rows) - passing >= k:
                continue
            passing += not fails
            cells: dict[str, Text] = {}
            for name in shown:
                cells[name] = Text(format_score(float(grids[name][layer, head])),
                                   style="bright_black" if fails else ("bold" if name == ranked_by else ""))
                if ci:
                    low, high = (float(bound[layer, head]) for bound in intervals[name])
                    cells[name + " ci"] = Text(_interval(low, high))
            lift = value / baseline if baseline and not math.isnan(baseline) and baseline > 0 else math.nan
            shown_lift = "" if signed else ("–" if math.isnan(lift) else f"{lift:.1f}×")
            low = float(low_grid[layer, head])
            note = ""
            if position is not None and position["score"] >= (value if math.isnan(low) else low):
                note = "position"  # its margin over the positional rule is within its interval
            if fails:
                note = "✗ require"
            rows.append((label_text, shown_lift, cells, note))
        return cls(pattern, label, rows, grids)

    @property
    def has_notes(self) -> bool:
        return any(row[3] for row in self.rows)

    def add_rows(self, table: Table, chunk: Sequence[str], *, ci: bool, with_lift: bool,
                 with_notes: bool = False) -> None:
        if not self.rows:
            table.add_row(Text("\n").join(self.label), Text("no scored heads", style="bright_black"))
            return
        for index, (label, lift, cells, note) in enumerate(self.rows):
            values: list[Text | str] = []
            for name in chunk:
                values.append(cells[name])
                if ci:
                    values.append(cells[name + " ci"])
            first = self.label[index] if index < len(self.label) else Text("")
            if index == len(self.rows) - 1 and len(self.label) > len(self.rows):
                first = Text("\n").join(self.label[index:])  # the rest of the label under the last head
            table.add_row(first, label, *([lift] if with_lift else []), *values,
                          *([Text(note, style="bright_black")] if with_notes else []))


def verdicts_table(scores: Scores, *, footing: Footing | None = None) -> Table:
    """Every head's verdict (`Scores.verdicts`): label, runner-up, margin, sink share, evidence."""
    table = Table(title="verdicts", box=box.MINIMAL, expand=False, caption=caption(scores), caption_justify="left")
    verdicts = scores.verdicts(footing=footing)
    measured = any(v.matters_for is not None for v in verdicts.values())  # effects beside the scores
    for column in ("head", "label", "excess", "runner-up", "margin", "sink", "rows", "note",
                   *(["matters for"] if measured else [])):
        # A head's label is never cut; pattern names fold onto a second line on a narrow terminal.
        table.add_column(column, no_wrap=column not in ("label", "runner-up", "note"),
                         overflow="fold" if column in ("label", "runner-up", "matters for") else "ellipsis",
                         min_width=max(map(len, verdicts), default=4) if column == "head" else None,
                         justify="right" if column in ("excess", "margin", "sink", "rows") else "left")
    words = ""
    for label, verdict in verdicts.items():
        words = verdict.footing
        note = "explained by position" if verdict.explained_by_position else ""
        table.add_row(label, verdict.label or "none", _number(verdict.strength), verdict.runner_up or "",
                      _number(verdict.margin), _number(verdict.sink_share),
                      str(verdict.evidence.get("rows", "")), note,
                      *([_matters(verdict.matters_for)] if measured else []))
    table.title = f"verdicts ({words})" if words else "verdicts"
    return table


def _matters(matters: Sequence[Mattering] | None) -> str:
    """What a head matters for, short: `loss +0.12 [+0.08, +0.16] helps`; an estimate `~+0.30 (est.)`."""
    shown = []
    for m in matters or ():
        digits = decimals(m.change)
        if m.ci is None:
            shown.append(f"{m.metric} ~{m.change:+.{digits}f} (est.) {m.role}")
        else:
            shown.append(f"{m.metric} {m.change:+.{digits}f} [{m.ci[0]:+.{digits}f}, {m.ci[1]:+.{digits}f}] {m.role}")
    return "; ".join(shown)


def _number(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.2f}"


def _interval(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "–"
    return f"{low:.3f}–{high:.3f}"


def _exclusions(scores: Scores, pattern: str) -> str:
    """"bos, current" for the keys left out of a pattern's comparison ("" when none)."""
    chosen = dict(scores.settings).get("exclusions", {}).get(pattern, {})
    return ", ".join(name for name in ("bos", "current") if chosen.get(name))
