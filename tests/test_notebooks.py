"""The notebooks in docs/notebooks run headless from top to bottom (nbclient), so they cannot rot.

A cell that raises, including the notebooks' own asserts that patternlang agrees with the
reference computations, fails the test. The notebooks are committed without outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "docs" / "notebooks"
HEAD_DETECTION = NOTEBOOKS / "head_detection.ipynb"
CELL_TIMEOUT_S = 600


def _html_by_tag(notebook) -> dict[str, str]:
    """The `text/html` outputs of the cells tagged `repr-...`, by tag."""
    found = {}
    for cell in notebook.cells:
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag.startswith("repr-"):
                found[tag] = "".join(o.get("data", {}).get("text/html", "") for o in cell.get("outputs", []))
    return found


def test_notebooks_are_committed_without_outputs():
    import nbformat

    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert HEAD_DETECTION in paths
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear the outputs"


@pytest.mark.model
def test_head_detection_notebook_runs_headless():
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell

    notebook = nbformat.read(HEAD_DETECTION, as_version=4)
    # jupyter_client starts the `python3` kernel with this interpreter; check, so that the
    # notebook never runs against another environment's patternlang.
    notebook.cells.insert(0, new_code_cell(f"import sys\nassert sys.executable == {sys.executable!r}, sys.executable"))
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error

    html = _html_by_tag(notebook)
    expected = {
        "repr-pattern": ["induction_head", "attend k where tok[k] == tok[q] shift +1", "sample prompt"],
        "repr-pattern-word": ["current_word_head", "word[k] == word[q]"],
        "repr-pattern-arena": ["previous_attn", "ARENA", "q == 0"],
        "repr-scores": ["Scores", "top 3 heads", "previous_token_head", "induction_head", "mul, abs", 'title="L'],
        "repr-prompts": ["Prompts", "repeated_random", "median", "prompt 1"],
    }
    assert set(html) == set(expected)
    for tag, parts in expected.items():
        for part in parts:
            assert part in html[tag], (tag, part)
