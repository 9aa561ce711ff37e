"""Rendering results for people: detection matrices over a prompt's tokens, top-head tables,
layer x head heatmaps. Pure functions over tensors and labels; files are PNG, HTML (self-contained)
or JSON, chosen by suffix."""

from patternlang.report.matrix import (
    MatrixSummary,
    matrix_to_json,
    matrix_to_text,
    render_matrix_text,
    save_matrix,
    save_matrix_html,
    save_matrix_png,
    summarize_matrix,
)
from patternlang.report.scores import save_heatmap, top_heads_table
from patternlang.report.tokens import display_token

__all__ = [
    "MatrixSummary",
    "display_token",
    "matrix_to_json",
    "matrix_to_text",
    "render_matrix_text",
    "save_heatmap",
    "save_matrix",
    "save_matrix_html",
    "save_matrix_png",
    "summarize_matrix",
    "top_heads_table",
]
