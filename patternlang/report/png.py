"""PNG figures (matplotlib): a detection matrix over its tokens, and layer x head heatmaps of scores.

Colours come from `report.colors`, so a PNG and the HTML page of the same data agree. matplotlib
is imported inside the functions, to keep `import patternlang` quick.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from patternlang.errors import InputError
from patternlang.files import writing
from patternlang.report.colors import BLANK_COLOR, ColorScale, fit_scale
from patternlang.report.data import Panel, caption, checked_matrix, heatmap_heading, heatmap_panels
from patternlang.report.tokens import display_tokens

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from patternlang.engine.scores import Scores

TOKEN_WIDTH = 18  # characters of a token in a tick label


def _save(fig: Figure, path: str | Path, dpi: int) -> Path:
    with writing(path) as out, warnings.catch_warnings():
        # Tokens in scripts DejaVu Sans lacks draw as boxes; one warning per glyph is noise.
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from font")
        fig.savefig(out, format="png", dpi=dpi)
    return Path(path)


# --------------------------------------------------------------------------- matrix


def _tick_labels(tokens: Sequence[str]) -> list[str]:
    # Index next to the axis on both axes, so the eye can follow a row to its column.
    return [f"{label}  {i}" for i, label in enumerate(display_tokens(list(tokens), TOKEN_WIDTH))]


def save_matrix_png(matrix: Any, tokens: Sequence[str], path: str | Path, *, title: str | None = None) -> Path:
    """Write the detection matrix as a PNG heatmap with the tokens as tick labels.

    Rows are query positions, columns key positions; the upper triangle is left white.
    Sized so that 40 tokens stay legible; beyond ~100 tokens only every k-th label is drawn.

    >>> save_matrix_png(torch.eye(3), ["<s>", " a", " b"], "/tmp/current.png", title="current")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    m = checked_matrix(matrix, tokens).numpy()
    n = m.shape[0]
    if n == 0:
        raise InputError("the detection matrix is empty (a prompt with no tokens): nothing to draw")
    lower: np.ndarray = np.tri(n, dtype=bool)
    scale = fit_scale([m])

    cell = 0.28 if n <= 50 else max(0.08, 14.0 / n)  # inches per token
    font = 8 if n <= 60 else 6
    fig = Figure(figsize=(max(4.5, n * cell + 3.2), max(4.0, n * cell + 2.6)), layout="constrained")
    ax = fig.add_subplot()
    # The upper triangle is masked and drawn blank, like the HTML page's.
    image = ax.imshow(
        np.ma.masked_array(m, mask=~lower), cmap=scale.colormap(missing=BLANK_COLOR),
        vmin=scale.vmin, vmax=scale.vmax, interpolation="nearest",
    )
    step = max(1, math.ceil(n / 100))
    ticks = list(range(0, n, step))
    labels = _tick_labels(tokens)
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
        for q, k in zip(*np.nonzero(lower & (m != 0) & (m != 1))):
            ax.text(k, q, f"{m[q, k]:.2g}", ha="center", va="center", fontsize=6.5,
                    color=scale.text_color(float(m[q, k])))
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title or "detection matrix", fontsize=11)
    fig.colorbar(image, ax=ax, shrink=0.6, label="weight")
    return _save(fig, path, dpi=100)


# --------------------------------------------------------------------------- heatmaps


def _layout(n_panels: int, n_layers: int, n_heads: int) -> tuple[int, int]:
    """Rows and columns of panels: tall panels (many layers, few heads) sit more to a row."""
    max_columns = 6 if n_layers >= 2 * n_heads else 4
    rows = math.ceil(n_panels / max_columns)
    return rows, math.ceil(n_panels / rows)


def _tick_step(n: int, limit: int) -> int:
    return 1 if n <= limit else math.ceil(n / limit)


def save_heatmap_png(scores: Scores, path: str | Path, *, measure: str | None = None) -> Path:
    """Write layer x head heatmaps of `scores` as a PNG, one panel per pattern.

    Rows are layers (layer 0 on top), columns heads; heads not scored (NaN) are grey; the best
    head of each panel is outlined and named in its title. All panels share one colour scale
    (`report.colors`). `measure` picks the measure (default: each pattern's own).

    >>> save_heatmap_png(scores, "heads.png")  # doctest: +SKIP
    """
    panels: list[Panel] = heatmap_panels(scores, measure)
    label = measure or (panels[0].measure if len({p.measure for p in panels}) == 1 else "score")
    return draw_heatmap_png(panels, fit_scale([p.grid for p in panels]), path, heading=heatmap_heading(measure),
                            subtitle=caption(scores), measure_named=measure is not None, label=label)


def draw_heatmap_png(panels: Sequence[Panel], scale: ColorScale, path: str | Path, *, heading: str, subtitle: str,
                     measure_named: bool, label: str) -> Path:
    """Layer x head panels on one colour scale as a PNG (scores, or `compare`'s differences);
    `label` names the colour bar."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    n_layers, n_heads = panels[0].grid.shape
    rows, columns = _layout(len(panels), n_layers, n_heads)
    # Square cells, ~0.22 in, shrunk for big models so a panel stays under ~6 x 8 in.
    cell = min(0.22, 6.0 / max(n_heads, 1), 8.0 / max(n_layers, 1))
    panel_width = max(1.4, n_heads * cell) + 0.7  # room for layer tick labels
    panel_height = max(1.4, n_layers * cell) + 1.0  # room for the two-line title and head labels
    fig = Figure(figsize=(columns * panel_width + 1.2, rows * panel_height + 0.7), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    cmap = scale.colormap()
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
        ax.set_title(panel.title(measure_named), fontsize=8, parse_math=False)
        ax.set_xticks(range(0, n_heads, head_step))
        ax.set_yticks(range(0, n_layers, layer_step))
        ax.tick_params(labelsize=6, length=2)
        ax.set_xlabel("head", fontsize=7)
        if index % columns == 0:
            ax.set_ylabel("layer", fontsize=7)
        if panel.best is not None:
            layer, head, _ = panel.best
            ax.add_patch(
                Rectangle((head - 0.5, layer - 0.5), 1, 1, fill=False, edgecolor=scale.mark, linewidth=1.6)
            )
    if image is None:  # not reached: panels[0] is read above, and the first panel draws an image
        raise InputError("no heatmap panel to draw")
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8 if rows == 1 else 0.5, aspect=30, label=label)
    fig.suptitle(f"{heading}\n{subtitle}" if subtitle else heading, fontsize=9)
    return _save(fig, path, dpi=110)
