"""The compiled detection matrix of one pattern over one prompt's tokens, for people to read.

A detection matrix is `[query_pos, key_pos]`, lower-triangular: row q says which keys a head
matching the pattern should attend to from query q. Renderers here take the matrix and the
prompt's string tokens (`model.to_str_tokens(prompt)`) and show it as a terminal grid, JSON,
a PNG heatmap or a self-contained HTML table.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.cells import cell_len
from rich.console import Console, Group
from rich.text import Text

from patternlang.errors import InputError
from patternlang.report.htmlpage import CellColors, escape, page
from patternlang.files import suffix_of, writing
from patternlang.report.tokens import display_tokens

FULL = "█"  # weight exactly 1
ZERO = "·"  # weight 0
ABOVE_ONE = "+"
BELOW_ZERO = "-"
NOT_A_NUMBER = "?"

TEXT_TOKEN_WIDTH = 12  # cells for a token in the terminal grid's row labels
PLOT_TOKEN_WIDTH = 18
HTML_TOKEN_WIDTH = 20


def matrix_colormap():
    """Blues without its near-white end, so zero cells below the diagonal stand out from the
    blank upper triangle."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    return ListedColormap(colormaps["Blues"](np.linspace(0.12, 1.0, 256)), name="patternlang_matrix")

_STYLES = {
    FULL: "bold green",
    ZERO: "bright_black",
    ABOVE_ONE: "bold magenta",
    BELOW_ZERO: "bold magenta",
    NOT_A_NUMBER: "bold red",
}
_DIGIT_STYLE = "yellow"


# --------------------------------------------------------------------------- input


def _as_matrix(matrix: Any, tokens: Sequence[str]) -> torch.Tensor:
    """`matrix` as a float64 CPU tensor [query_pos, key_pos], checked against `tokens`."""
    try:
        tensor = torch.as_tensor(matrix).detach().to("cpu", torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        raise InputError(f"the detection matrix is not a numeric tensor: {error}") from None
    shape = tuple(tensor.shape)
    if tensor.ndim != 2 or shape[0] != shape[1]:
        hint = "pass one prompt's matrix, e.g. matrices[0]" if tensor.ndim == 3 else None
        raise InputError(
            f"a detection matrix must be square [query_pos, key_pos]; got shape {list(shape)}", hint=hint
        )
    if isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens):
        raise InputError(
            "tokens must be a list of strings, one per position",
            hint="use model.to_str_tokens(prompt)",
        )
    if len(tokens) != shape[0]:
        raise InputError(
            f"the detection matrix covers {shape[0]} positions but {len(tokens)} tokens were given",
            hint="pass the string tokens of the same prompt, without padding",
        )
    return tensor


@dataclass(frozen=True, slots=True)
class MatrixSummary:
    """Counts that describe a detection matrix at a glance."""

    n_tokens: int
    marked_cells: int  # nonzero cells on or below the diagonal
    rows_with_targets: int  # query positions with at least one marked key
    above_diagonal: int  # nonzero cells above the diagonal (should be 0)
    fractional: bool  # some weight is neither 0 nor 1

    @property
    def targets_per_row(self) -> float:
        return self.marked_cells / self.n_tokens if self.n_tokens else 0.0

    def describe(self) -> str:
        n = self.n_tokens
        return (
            f"{n}×{n} · {self.marked_cells} marked cells · "
            f"{self.rows_with_targets}/{n} rows with a target · "
            f"{self.targets_per_row:.2f} targets per row"
        )


def summarize_matrix(matrix: Any, tokens: Sequence[str]) -> MatrixSummary:
    """Count marked cells, rows with a target and cells above the diagonal.

    >>> summarize_matrix(torch.eye(3), ["a", "b", "c"]).describe()
    '3×3 · 3 marked cells · 3/3 rows with a target · 1.00 targets per row'
    """
    m = _as_matrix(matrix, tokens)
    nonzero = m != 0  # NaN counts as marked: it is something, and the grid shows it
    lower = torch.ones_like(nonzero).tril()
    marked = nonzero & lower
    values = m[marked]
    fractional = bool(((values != 1) & ~values.isnan()).any())
    return MatrixSummary(
        n_tokens=m.shape[0],
        marked_cells=int(marked.sum()),
        rows_with_targets=int(marked.any(dim=1).sum()),
        above_diagonal=int((nonzero & ~lower).sum()),
        fractional=fractional,
    )


# --------------------------------------------------------------------------- terminal


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

    >>> from rich.console import Console
    >>> Console().print(render_matrix_text(torch.eye(3), ["<s>", " a", " a"], title="current"))  # doctest: +SKIP
    """
    if max_tokens < 1:
        raise InputError(f"max_tokens must be at least 1, got {max_tokens}")
    m = _as_matrix(matrix, tokens)
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

    labels = display_tokens(list(tokens[:shown]), max_width=TEXT_TOKEN_WIDTH)
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


# --------------------------------------------------------------------------- files


def matrix_to_json(matrix: Any, tokens: Sequence[str], *, name: str | None = None) -> dict:
    """A JSON-ready dict: {"pattern": name, "tokens": [...], "matrix": [[...], ...]}.

    >>> matrix_to_json(torch.eye(2), ["a", "b"], name="current_token_head")
    {'pattern': 'current_token_head', 'tokens': ['a', 'b'], 'matrix': [[1.0, 0.0], [0.0, 1.0]]}
    """
    m = _as_matrix(matrix, tokens)
    return {"pattern": name, "tokens": list(tokens), "matrix": m.tolist()}


def _plot_labels(tokens: Sequence[str]) -> list[str]:
    # Index next to the axis on both axes, so the eye can follow a row to its column.
    return [f"{label}  {i}" for i, label in enumerate(display_tokens(list(tokens), PLOT_TOKEN_WIDTH))]


def save_matrix_png(matrix: Any, tokens: Sequence[str], path: str | Path, *, title: str | None = None) -> Path:
    """Write the detection matrix as a PNG heatmap with the tokens as tick labels.

    Rows are query positions, columns key positions; the upper triangle is left white.
    Sized so that 40 tokens stay legible; beyond ~100 tokens only every k-th label is drawn.

    >>> save_matrix_png(torch.eye(3), ["<s>", " a", " b"], "/tmp/current.png", title="current")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    m = _as_matrix(matrix, tokens).numpy()
    n = m.shape[0]
    if n == 0:
        raise InputError("the detection matrix is empty (a prompt with no tokens): nothing to draw")
    shown = np.where(np.tri(n, dtype=bool), m, np.nan)
    finite = m[np.isfinite(m)]
    vmin = min(0.0, float(finite.min())) if finite.size else 0.0
    vmax = max(1.0, float(finite.max())) if finite.size else 1.0

    cell = 0.28 if n <= 50 else max(0.08, 14.0 / n)  # inches per token
    font = 8 if n <= 60 else 6
    fig = Figure(figsize=(max(4.5, n * cell + 3.2), max(4.0, n * cell + 2.6)), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(
        shown, cmap=matrix_colormap().with_extremes(bad="white"), vmin=vmin, vmax=vmax,
        interpolation="nearest",
    )
    step = max(1, math.ceil(n / 100))
    ticks = list(range(0, n, step))
    labels = _plot_labels(tokens)
    picked = [labels[i] for i in ticks]
    # parse_math=False: "$" in a token must not switch matplotlib into mathtext.
    ax.set_xticks(ticks, picked, rotation=90, fontsize=font, parse_math=False)
    ax.set_yticks(ticks, picked, fontsize=font, parse_math=False)
    if n <= 60:
        # Thin white lines between cells make single marks easy to locate.
        ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=0.6)
        ax.tick_params(which="minor", length=0)
    if n <= 24:
        # Few cells: print weights that are neither 0 nor 1 (the colour alone hides 0.33 vs 0.25).
        for q, k in zip(*np.nonzero(np.tri(n, dtype=bool) & (m != 0) & (m != 1))):
            ax.text(k, q, f"{m[q, k]:.2g}", ha="center", va="center", fontsize=6.5,
                    color="white" if m[q, k] > 0.6 * vmax else "black")
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title or "detection matrix", fontsize=11)
    fig.colorbar(image, ax=ax, shrink=0.6, label="weight")

    with writing(path) as out, warnings.catch_warnings():
        # Tokens in scripts DejaVu Sans lacks draw as boxes; one warning per glyph is noise.
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from font")
        fig.savefig(out, format="png", dpi=100)
    return Path(path)


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
    m = _as_matrix(matrix, tokens)
    summary = summarize_matrix(m, tokens)
    n = summary.n_tokens
    shown = min(n, max_tokens)
    full_names = display_tokens(list(tokens[:shown]))
    short_names = display_tokens(list(tokens[:shown]), HTML_TOKEN_WIDTH)
    finite = m[m.isfinite()]
    colors = CellColors(
        matrix_colormap(),
        min(0.0, float(finite.min())) if finite.numel() else 0.0,
        max(1.0, float(finite.max())) if finite.numel() else 1.0,
    )

    heading = title or "detection matrix"
    rows = ['<tr><th class="axis">query ↓ key →</th>']
    rows += [
        f'<th class="col" title="{escape(full_names[k])}"><span>{k} {escape(short_names[k])}</span></th>'
        for k in range(shown)
    ]
    rows.append("</tr>")
    values = m[:shown, :shown].tolist()
    for q in range(shown):
        cells = [f'<tr><th class="row" title="{escape(full_names[q])}">{escape(short_names[q])} {q}</th>']
        for k in range(shown):
            if k > q:
                cells.append('<td class="tri"></td>')
                continue
            value = values[q][k]
            text = "" if value == 0 else f"{value:.2g}"
            tip = f"query {q} {full_names[q]} → key {k} {full_names[k]}: {value:g}"
            cells.append(f'<td style="{colors.style(value)}" title="{escape(tip)}">{text}</td>')
        cells.append("</tr>")
        rows.append("".join(cells))

    notes = [escape(summary.describe())]
    if shown < n:
        notes.append(f"showing the first {shown} of {n} tokens")
    if summary.above_diagonal:
        notes.append(f"{summary.above_diagonal} nonzero cells above the diagonal are not shown")
    body = (
        f"<h1>{escape(heading)}</h1>\n<p class=\"meta\">{' · '.join(notes)}</p>\n"
        f'<table class="grid matrix">\n' + "\n".join(rows) + "\n</table>\n"
        '<p class="legend">Rows are query positions, columns key positions; a cell holds the weight '
        "the pattern gives to that key (blank: 0). Spaces show as ␣, newlines as \\n.</p>"
    )
    with writing(path) as out:
        out.write_text(page(heading, body), encoding="utf-8")
    return Path(path)


MATRIX_SUFFIXES = (".png", ".html", ".json")


def save_matrix(
    matrix: Any,
    tokens: Sequence[str],
    path: str | Path,
    *,
    title: str | None = None,
    name: str | None = None,
) -> Path:
    """Write the detection matrix to `path` as PNG, HTML or JSON, chosen by the file's suffix.

    `name` is the pattern's name (stored in JSON, and the default title).

    >>> save_matrix(torch.eye(2), ["a", "b"], "/tmp/m.json", name="current_token_head")  # doctest: +SKIP
    """
    suffix = suffix_of(path, MATRIX_SUFFIXES, "a detection matrix")
    title = title or name
    if suffix == ".png":
        return save_matrix_png(matrix, tokens, path, title=title)
    if suffix == ".html":
        return save_matrix_html(matrix, tokens, path, title=title)
    data = matrix_to_json(matrix, tokens, name=name)
    with writing(path) as out:
        out.write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")
    return Path(path)
