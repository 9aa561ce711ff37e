"""Rendering results for people, one module per output format: `text` (terminal grids and
tables), `png` (matplotlib), `html` (self-contained pages), `jsonfile`; `colors` holds the one
colour scale PNG and HTML share, `data` what every format shows, `save` picks a format by suffix.

Pure functions over tensors, labels and `patternlang.engine.Scores`.
"""

from patternlang.report.colors import ColorScale, fit_scale
from patternlang.report.data import MatrixSummary, summarize_matrix
from patternlang.report.html import save_heatmap_html, save_matrix_html
from patternlang.report.jsonfile import matrix_to_json, save_matrix_json
from patternlang.report.png import save_heatmap_png, save_matrix_png
from patternlang.report.explain_text import explanation_to_text, render_explanation_text
from patternlang.report.save import (
    EXPLANATION_SUFFIXES,
    HEATMAP_SUFFIXES,
    MATRIX_SUFFIXES,
    save_explanation,
    save_heatmap,
    save_matrix,
)
from patternlang.report.text import matrix_to_text, render_matrix_text, top_heads_table
from patternlang.report.tokens import display_token

__all__ = [
    "EXPLANATION_SUFFIXES",
    "HEATMAP_SUFFIXES",
    "MATRIX_SUFFIXES",
    "ColorScale",
    "MatrixSummary",
    "display_token",
    "explanation_to_text",
    "fit_scale",
    "matrix_to_json",
    "matrix_to_text",
    "render_explanation_text",
    "render_matrix_text",
    "save_explanation",
    "save_heatmap",
    "save_heatmap_html",
    "save_heatmap_png",
    "save_matrix",
    "save_matrix_html",
    "save_matrix_json",
    "save_matrix_png",
    "summarize_matrix",
    "top_heads_table",
]
