"""A detection matrix as JSON: `{"pattern", "tokens", "matrix"}`, for other programs to read.

(Scores have their own JSON and CSV forms: `Scores.to_json`, `Scores.to_csv`.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from patternlang.files import writing
from patternlang.report.data import checked_matrix


def matrix_to_json(matrix: Any, tokens: Sequence[str], *, name: str | None = None) -> dict[str, Any]:
    """A JSON-ready dict: {"pattern": name, "tokens": [...], "matrix": [[...], ...]}.

    >>> import torch
    >>> matrix_to_json(torch.eye(2), ["a", "b"], name="current_token_head")
    {'pattern': 'current_token_head', 'tokens': ['a', 'b'], 'matrix': [[1.0, 0.0], [0.0, 1.0]]}
    """
    m = checked_matrix(matrix, tokens)
    return {"pattern": name, "tokens": list(tokens), "matrix": m.tolist()}


def save_matrix_json(matrix: Any, tokens: Sequence[str], path: str | Path, *, name: str | None = None) -> Path:
    """Write `matrix_to_json` to `path` (UTF-8, tokens as they are, one line)."""
    data = matrix_to_json(matrix, tokens, name=name)
    with writing(path) as out:
        out.write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")
    return Path(path)
