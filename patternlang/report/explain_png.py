"""Why a head scored, as a PNG (matplotlib): two panels over the prompt's tokens, the head's attention
and the pattern's matrix, under a title with the pattern, the head, the model and the prompt's scores.

Cells the measures do not count are hatched; target rows carry "•" before their token. Colours
come from `report.colors`, as in every other figure.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from patternlang.report.colors import BLANK_COLOR, fit_scale
from patternlang.report.png import _save
from patternlang.report.explain_text import token_notes
from patternlang.report.tokens import display_tokens

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from patternlang.engine.explanation import Explanation

TOKEN_WIDTH = 16  # characters of a token in a tick label
MAX_TICKS = 100  # above this many tokens, every k-th token is labelled
RULE_WIDTH = 140  # characters of the rule in the title


def explanation_figure(explanation: Explanation) -> Figure:
    """The two panels as a matplotlib `Figure` (attention left, pattern right)."""
    from matplotlib.collections import PatchCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    why = explanation
    n = why.n_tokens
    lower: np.ndarray = np.tri(n, dtype=bool)
    counted = why.counted.numpy()
    excluded = lower & ~counted
    target_rows = why.target_rows.tolist()
    labels = [token + note for token, note in zip(display_tokens(list(why.tokens), TOKEN_WIDTH), token_notes(why, n))]
    x_labels = [f"{label}  {i}" for i, label in enumerate(labels)]
    y_labels = [f"{'• ' if target_rows[i] else ''}{label}  {i}" for i, label in enumerate(labels)]
    step = max(1, math.ceil(n / MAX_TICKS))
    ticks = list(range(0, n, step))
    font = 8 if n <= 60 else 6

    cell = 0.28 if n <= 40 else max(0.03, 11.0 / n)  # inches per token
    side = n * cell
    fig = Figure(figsize=(max(9.0, 2 * side + 6.0), max(4.5, side + 3.2)), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = ((why.attention.numpy(), f"attention of {why.head}", "attention"),
              (why.matrix.numpy(), f"pattern {why.pattern}", "target weight"))
    for ax, (values, title, label) in zip(axes, panels):
        scale = fit_scale([values])
        image = ax.imshow(np.ma.masked_array(values, mask=~lower), cmap=scale.colormap(missing=BLANK_COLOR),
                          vmin=scale.vmin, vmax=scale.vmax, interpolation="nearest")
        # parse_math=False: "$" in a token must not switch matplotlib into mathtext.
        ax.set_xticks(ticks, [x_labels[i] for i in ticks], rotation=90, fontsize=font, parse_math=False)
        ax.set_yticks(ticks, [y_labels[i] for i in ticks], fontsize=font, parse_math=False)
        if n <= 60:
            ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
            ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
            ax.grid(which="minor", color="white", linewidth=0.6)
            ax.tick_params(which="minor", length=0)
        if excluded.any():
            cells = [Rectangle((k - 0.5, q - 0.5), 1, 1) for q, k in zip(*np.nonzero(excluded))]
            ax.add_collection(PatchCollection(cells, facecolor="none", edgecolor="#555555", hatch="////",
                                              linewidth=0))
        if n <= 16:
            # Few cells: print the values the colour alone cannot tell apart.
            for q, k in zip(*np.nonzero(lower & (values >= 0.005))):
                ax.text(k, q, f"{values[q, k]:.2f}", ha="center", va="center", fontsize=6,
                        color=scale.text_color(float(values[q, k])))
        ax.set_xlabel("key (attended to)")
        ax.set_ylabel("query (attending)")
        ax.set_title(title, fontsize=10, parse_math=False)
        fig.colorbar(image, ax=ax, shrink=0.6, label=label)
    rule = why.rule if len(why.rule) <= RULE_WIDTH else why.rule[: RULE_WIDTH - 1] + "…"
    notes = ["• target row"] + (["hatched: not counted (" + why.excluded + ")"] if why.excluded else [])
    fig.suptitle(f"{why.title}\n{rule}\n{why.scores_line()}   ({'; '.join(notes)})", fontsize=9,
                 parse_math=False)
    return fig


def save_explanation_png(explanation: Explanation, path: str | Path) -> Path:
    """Write the explanation as a PNG: attention and pattern side by side, scores in the title.

    >>> save_explanation_png(why, "why.png")  # doctest: +SKIP
    """
    return _save(explanation_figure(explanation), path, dpi=100)
