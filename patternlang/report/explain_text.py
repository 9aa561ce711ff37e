"""Why a head scored, for the terminal: the head's attention and the pattern's matrix as two grids
of glyphs over the prompt's tokens (side by side when the terminal is wide enough, else one above
the other), with the prompt's scores.

Glyphs are those of `report.text`'s detection grid ("█" 1, "·" 0, a digit for the first decimal).
In the pattern grid, a cell the measures do not count (key 0 with exclude bos, the diagonal with
exclude current) shows "x"; in the attention grid it keeps its value (where a head puts its
attention matters even there) and is drawn dim. A "*" before a row's token marks a target row.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.console import Console, Group
from rich.text import Text

from patternlang.errors import InputError
from patternlang.report.text import _DIGIT_STYLE, _STYLES, FULL, TOKEN_WIDTH, ZERO, _glyph, _index_header
from patternlang.report.tokens import display_tokens

if TYPE_CHECKING:
    from patternlang.engine.explanation import Explanation

EXCLUDED = "x"  # a cell of the pattern grid the measures do not count
TARGET_ROW = "*"
GAP = "   "  # between the two grids when side by side


class ExplanationText:
    """A rich renderable of an `Explanation`; the layout follows the width it is given."""

    def __init__(self, explanation: Explanation, max_tokens: int = 40):
        if max_tokens < 1:
            raise InputError(f"max_tokens must be at least 1, got {max_tokens}")
        self.explanation = explanation
        self.max_tokens = max_tokens

    def __rich_console__(self, console: Any, options: Any) -> Any:
        yield Group(*self.lines(options.max_width))

    def lines(self, width: int) -> list[Text]:
        why = self.explanation
        n = why.n_tokens
        shown = min(n, self.max_tokens)
        lines = [Text(why.title, style="bold"), Text(f"rule: {why.rule}", style="bright_black")]
        scores = Text(why.scores_line())
        for measure in why.scores:
            reason = why.why_undefined(measure)
            if reason:
                scores.append(f"\n  {measure} undefined: {reason}", style="yellow")
        lines.append(scores)
        if why.excluded:
            lines.append(Text(f"not counted: {why.excluded}", style="bright_black"))
        if shown < n:
            lines.append(Text(f"showing the first {shown} of {n} tokens (max_tokens={self.max_tokens})",
                              style="yellow"))
        labels = display_tokens(list(why.tokens[:shown]), max_width=TOKEN_WIDTH)
        notes = token_notes(why, shown)  # the token's labelled span and the model's next-token prediction
        labels = [label + note for label, note in zip(labels, notes)]
        label_width = max(cell_len(label) for label in labels)
        index_width = len(str(shown - 1))
        prefix_width = index_width + 1 + len(TARGET_ROW) + label_width + 1
        block_width = 2 * shown - 1
        attention = why.attention[:shown, :shown].tolist()
        matrix = why.matrix[:shown, :shown].tolist()
        counted = why.counted[:shown, :shown].tolist()
        target_rows = why.target_rows[:shown].tolist()
        attention_title = f"attention of {why.head}"
        pattern_title = f"pattern {why.pattern}"

        def prefix(q: int) -> Text:
            row = Text(no_wrap=True)
            row.append(f"{q:>{index_width}} ", style="bright_black")
            row.append(TARGET_ROW if target_rows[q] else " ", style="bold yellow")
            row.append(labels[q] + " " * (label_width - cell_len(labels[q])), style="cyan")
            return row.append(" ")

        def cells(q: int, values: list[list[float]], pattern: bool) -> Text:
            row = Text(no_wrap=True)
            for k in range(q + 1):
                glyph = _glyph(values[q][k])
                style = _STYLES.get(glyph, _DIGIT_STYLE if glyph != "0" else "bright_black")
                if not counted[q][k]:
                    glyph, style = (EXCLUDED, "red") if pattern else (glyph, "dim")
                row.append(glyph, style=style)
                if k < q:
                    row.append(" ")
            return row

        side_by_side = prefix_width + 2 * block_width + len(GAP) <= width
        header = _index_header(shown, 0)
        if side_by_side:
            if len(attention_title) < block_width + len(GAP) and len(pattern_title) <= block_width:
                heading = Text(" " * prefix_width, no_wrap=True, style="bold")
                heading.append(attention_title.ljust(block_width + len(GAP)) + pattern_title)
            else:  # titles wider than the grids
                heading = Text(f"left: {attention_title} · right: {pattern_title}", style="bold")
            lines.append(heading)
            for line in header:
                lines.append(Text(" " * prefix_width + line.plain + GAP + line.plain, style="bright_black",
                                  no_wrap=True))
            for q in range(shown):
                row = prefix(q).append_text(cells(q, attention, False))
                row.append(" " * (block_width - (2 * q + 1)) + GAP)
                lines.append(row.append_text(cells(q, matrix, True)))
        else:
            for title, values, pattern in ((attention_title, attention, False), (pattern_title, matrix, True)):
                lines.append(Text(title, style="bold"))
                lines.extend(Text(" " * prefix_width + line.plain, style="bright_black", no_wrap=True)
                             for line in header)
                lines.extend(prefix(q).append_text(cells(q, values, pattern)) for q in range(shown))
        legend = (f"rows: query, columns: key · {FULL} = 1  {ZERO} = 0  digit d = 0.d… · "
                  f"{TARGET_ROW} target row")
        if why.span_labels is not None:
            legend += " · [LABEL] the token's labelled span"
        if why.predicted is not None:
            legend += " · >x the model's top prediction after the token"
        if why.excluded:
            legend += f" · {EXCLUDED} not counted"
        lines.append(Text(legend, style="bright_black"))
        return lines


def token_notes(why: Explanation, shown: int) -> list[str]:
    """Per token, what a model-aware pattern reads beside it: " [IO]" for a token in a labelled
    span, " >x" for the model's top prediction after it ("" for others); every format shows them."""
    notes = [""] * shown
    if why.span_labels is not None:
        notes = [note + (f" [{label}]" if label else "") for note, label in zip(notes, why.span_labels[:shown])]
    if why.predicted is not None:
        predicted = display_tokens(list(why.predicted[:shown]), max_width=TOKEN_WIDTH)
        notes = [f"{note} >{text}" for note, text in zip(notes, predicted)]
    return notes


def render_explanation_text(explanation: Explanation, *, max_tokens: int = 40) -> ExplanationText:
    """A rich renderable: the head's attention beside the pattern's matrix, with the prompt's scores.

    >>> from rich.console import Console
    >>> Console().print(render_explanation_text(why))  # doctest: +SKIP
    """
    return ExplanationText(explanation, max_tokens)


def explanation_to_text(explanation: Explanation, *, width: int = 120, max_tokens: int = 40) -> str:
    """`render_explanation_text` as plain text (no colour), laid out for `width` columns."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False, highlight=False)
    console.print(render_explanation_text(explanation, max_tokens=max_tokens), soft_wrap=True)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"
