"""Saving a report to a file whose suffix says the format: the one place that maps suffixes to
the format modules (`png`, `html`, `jsonfile`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patternlang.files import suffix_of, writing
from patternlang.report.explain_html import save_explanation_html
from patternlang.report.explain_png import save_explanation_png
from patternlang.report.html import save_heatmap_html, save_matrix_html
from patternlang.report.jsonfile import save_matrix_json
from patternlang.report.png import save_heatmap_png, save_matrix_png

if TYPE_CHECKING:
    from patternlang.engine.scores import Scores
    from patternlang.engine.explanation import Explanation

MATRIX_SUFFIXES = (".png", ".html", ".json")
HEATMAP_SUFFIXES = (".png", ".html")


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
    return save_matrix_json(matrix, tokens, path, name=name)


def save_heatmap(scores: Scores, path: str | Path, *, measure: str | None = None) -> Path:
    """Write layer x head heatmaps of `scores`, one panel per pattern, as PNG or HTML (by suffix).

    Rows are layers (layer 0 on top), columns heads; heads not scored (NaN) are grey; the best
    head of each panel is outlined and named in its title. All panels share one colour scale
    (`report.colors`: [0, 1] when every score lies there). `measure` picks the measure
    (default: each pattern's own). The HTML file is self-contained (no script, no CDN).

    >>> save_heatmap(scores, "heads.png")  # doctest: +SKIP
    """
    suffix = suffix_of(path, HEATMAP_SUFFIXES, "a heatmap")
    if suffix == ".png":
        return save_heatmap_png(scores, path, measure=measure)
    return save_heatmap_html(scores, path, measure=measure)


EXPLANATION_SUFFIXES = (".png", ".html", ".json")


def save_explanation(explanation: Explanation, path: str | Path) -> Path:
    """Write why a head scored (`patternlang.engine.explanation`) as PNG, HTML (interactive, self-contained) or
    JSON (every value drawn), chosen by the file's suffix.

    >>> save_explanation(explain(model, "induction_head", "L5H1", text), "why.html")  # doctest: +SKIP
    """
    suffix = suffix_of(path, EXPLANATION_SUFFIXES, "a head's explanation")
    if suffix == ".png":
        return save_explanation_png(explanation, path)
    if suffix == ".html":
        return save_explanation_html(explanation, path)

    with writing(path) as target:
        target.write_text(json.dumps(explanation.to_dict(), ensure_ascii=False) + "\n", encoding="utf-8")
    return Path(path)
