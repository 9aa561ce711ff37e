"""Rendering results for people, one module per output format: `text` (terminal grids and
tables), `png` (matplotlib), `html` (self-contained pages), `jsonfile`; `colors` holds the one
colour scale PNG and HTML share, `data` what every format shows, `save` picks a format by suffix.

Pure functions over tensors, labels and `patternlang.engine.Scores`.
"""

# Members load on first use (as engine/__init__.py does): the formats import torch and matplotlib,
# and the listing commands (`report/listing.py`) must not pay for them.
from patternlang.lazy_torch import lazy_members

_MEMBERS = {
    "ColorScale": "patternlang.report.colors",
    "EXPLANATION_SUFFIXES": "patternlang.report.save",
    "HEATMAP_SUFFIXES": "patternlang.report.save",
    "MATRIX_SUFFIXES": "patternlang.report.save",
    "MatrixSummary": "patternlang.report.data",
    "display_token": "patternlang.report.tokens",
    "explanation_to_text": "patternlang.report.explain_text",
    "fit_scale": "patternlang.report.colors",
    "matrix_to_json": "patternlang.report.jsonfile",
    "matrix_to_text": "patternlang.report.text",
    "render_explanation_text": "patternlang.report.explain_text",
    "render_matrix_text": "patternlang.report.text",
    "save_explanation": "patternlang.report.save",
    "save_heatmap": "patternlang.report.save",
    "save_heatmap_html": "patternlang.report.html",
    "save_heatmap_png": "patternlang.report.png",
    "save_matrix": "patternlang.report.save",
    "save_matrix_html": "patternlang.report.html",
    "save_matrix_json": "patternlang.report.jsonfile",
    "save_matrix_png": "patternlang.report.png",
    "summarize_matrix": "patternlang.report.data",
    "top_heads_table": "patternlang.report.text",
}


__getattr__ = lazy_members(__name__, _MEMBERS)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MEMBERS))


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
