"""Tests for patternlang.report: terminal grids, JSON, PNG and HTML files, top-head tables."""

from __future__ import annotations

import io
import json
import math
import re

import pytest
import torch
from matplotlib.image import imread
from rich.console import Console

from patternlang.errors import InputError
from patternlang.report import (
    display_token,
    matrix_to_json,
    matrix_to_text,
    render_matrix_text,
    save_heatmap,
    save_matrix,
    save_matrix_html,
    save_matrix_png,
    summarize_matrix,
    top_heads_table,
)

# --------------------------------------------------------------------------- fixtures


# "<s> The cat sat . The cat sat": the induction pattern marks the token after the earlier copy.
TOKENS = ["<s>", " The", " cat", " sat", ".", " The", " cat", " sat"]


def induction_matrix(tokens: list[str]) -> torch.Tensor:
    """Hand-written reference: key k+1 for every earlier k with tok[k] == tok[q]."""
    n = len(tokens)
    m = torch.zeros(n, n)
    for q in range(n):
        for k in range(q):
            if tokens[k] == tokens[q]:
                m[q, k + 1] = 1.0
    return m


class FakeScores:
    """Stand-in for patternlang.engine.Scores with its documented surface."""

    def __init__(self, data: dict[str, dict[str, torch.Tensor]], default: dict[str, str]):
        self._data, self._default = data, default
        self.patterns = tuple(data)
        self.measures = tuple(next(iter(data.values())))
        self.n_layers, self.n_heads = next(iter(next(iter(data.values())).values())).shape
        self.model, self.n_prompts, self.n_tokens = "fake-model", 8, 400

    def get(self, pattern, measure=None):
        return self._data[pattern][measure or self._default[pattern]].clone()

    def top(self, pattern, k, measure=None):
        grid = self.get(pattern, measure).flatten()
        ranked = torch.argsort(torch.nan_to_num(grid, nan=-math.inf), descending=True).tolist()
        ranked = [i for i in ranked if not math.isnan(grid[i])]
        return [(f"L{i // self.n_heads}H{i % self.n_heads}", float(grid[i])) for i in ranked[:k]]


def fake_scores(n_patterns=3, n_layers=4, n_heads=3, seed=0) -> FakeScores:
    gen = torch.Generator().manual_seed(seed)
    data, default = {}, {}
    for i in range(n_patterns):
        match = torch.rand(n_layers, n_heads, generator=gen)
        mass = torch.rand(n_layers, n_heads, generator=gen)
        match[0, 0] = mass[0, 0] = float("nan")  # a head not scored
        data[f"pattern_{i}"] = {"match": match, "mass": mass}
        default[f"pattern_{i}"] = "match" if i % 2 == 0 else "mass"
    return FakeScores(data, default)


def grid_rows(text: str) -> dict[int, str]:
    """Grid lines of `matrix_to_text` output, keyed by query position."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"^\s*(\d+) \S+\s+([·█0-9+\-? ]*)$", line)
        if match:
            rows[int(match.group(1))] = match.group(2)
    return rows


def cells(row: str) -> list[str]:
    """The glyphs of one grid row (cells are 2 characters wide)."""
    return list(row[::2])


def assert_png(path, min_size=(200, 200)):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[0] >= min_size[0] and image.shape[1] >= min_size[1]
    return image


# --------------------------------------------------------------------------- tokens


@pytest.mark.parametrize(
    "token, shown",
    [
        (" cat", "␣cat"),
        ("\n", "\\n"),
        ("\t x", "\\t␣x"),
        ("a\\nb", "a\\\\nb"),  # a real backslash stays distinct from an escaped newline
        ("\x07", "\\x07"),
        ("\u200b", "\\u200b"),
        ("", "∅"),
        ("<|endoftext|>", "<|endoftext|>"),
    ],
)
def test_display_token_makes_invisible_characters_visible(token, shown):
    assert display_token(token) == shown


def test_display_token_truncates_to_cells():
    assert display_token("abcdefghij", max_width=5) == "abcd…"
    assert display_token("abc", max_width=5) == "abc"
    cut = display_token("漢字漢字漢字", max_width=5)  # two cells per character
    assert cut.endswith("…") and len(cut) <= 3


# --------------------------------------------------------------------------- text grid


def test_text_grid_shows_tokens_and_marks_of_known_matrix():
    matrix = induction_matrix(TOKENS)
    text = matrix_to_text(matrix, TOKENS, title="induction_head")
    assert text.splitlines()[0] == "induction_head"
    assert "8×8 · 3 marked cells · 3/8 rows with a target" in text
    for label in ("<s>", "␣The", "␣cat", "␣sat"):
        assert label in text
    rows = grid_rows(text)
    assert sorted(rows) == list(range(8))
    for q, row in rows.items():
        glyphs = cells(row)
        assert len(glyphs) == q + 1, f"row {q} must stop at the diagonal: {row!r}"
        marked = [k for k, g in enumerate(glyphs) if g == "█"]
        assert marked == torch.nonzero(matrix[q]).flatten().tolist()
        assert all(g in "█·" for g in glyphs)


def test_text_grid_leaves_upper_triangle_blank_and_notes_marks_there():
    matrix = torch.ones(4, 4)  # not lower-triangular: 6 cells above the diagonal
    text = matrix_to_text(matrix, ["a", "b", "c", "d"])
    rows = grid_rows(text)
    assert [len(cells(rows[q])) for q in range(4)] == [1, 2, 3, 4]
    assert "6 nonzero cells above the diagonal are not shown" in text


def test_text_grid_shows_fractional_weights_as_first_decimal():
    matrix = torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0], [1 / 3, 0.97, 0.04]])
    text = matrix_to_text(matrix, ["a", "b", "c"])
    rows = grid_rows(text)
    assert cells(rows[1]) == ["5", "5"]
    assert cells(rows[2]) == ["3", "9", "0"]
    assert "digit d = 0.d" in text


def test_text_grid_column_numbers_line_up_with_cells():
    n = 12
    text = matrix_to_text(torch.eye(n), [f"t{i}" for i in range(n)])
    lines = text.splitlines()
    units = next(line for line in lines if line.strip().startswith("0 1 2 3"))
    tens = lines[lines.index(units) - 1]
    last = next(line for line in lines if line.startswith("11 "))
    # The diagonal mark of row 11 sits under column number "11".
    column = last.index("█")
    assert units[column] == "1" and tens[column] == "1"
    assert last.index("█") == len(last) - 1


def test_text_grid_summarises_above_max_tokens():
    n = 50
    matrix = torch.zeros(n, n)
    matrix[torch.arange(1, n), torch.arange(n - 1)] = 1.0  # previous token
    text = matrix_to_text(matrix, [f"w{i}" for i in range(n)], max_tokens=10)
    assert "50×50 · 49 marked cells · 49/50 rows with a target · 0.98 targets per row" in text
    assert "showing the first 10 of 50 tokens" in text
    assert sorted(grid_rows(text)) == list(range(10))
    assert "w10" not in text
    # Below the limit there is no note.
    assert "showing the first" not in matrix_to_text(matrix, [f"w{i}" for i in range(n)], max_tokens=50)


def test_text_grid_fits_a_120_column_terminal_at_40_tokens():
    n = 40
    tokens = [" a_rather_long_token_name"] * n
    text = matrix_to_text(torch.ones(n, n).tril(), tokens)
    assert sorted(grid_rows(text)) == list(range(n))
    assert max(len(line) for line in text.splitlines() if "█" in line) <= 100


def test_render_matrix_text_is_a_rich_renderable():
    console = Console(file=io.StringIO(), width=100, color_system="truecolor", force_terminal=True)
    console.print(render_matrix_text(induction_matrix(TOKENS), TOKENS))
    assert "\x1b[" in console.file.getvalue()  # styled when the terminal has colour


def test_summary_counts_match_hand_counts():
    summary = summarize_matrix(induction_matrix(TOKENS), TOKENS)
    assert (summary.marked_cells, summary.rows_with_targets, summary.above_diagonal) == (3, 3, 0)
    assert summary.targets_per_row == pytest.approx(3 / 8)
    assert not summary.fractional


@pytest.mark.parametrize(
    "matrix, tokens, message",
    [
        (torch.zeros(2, 3, 3), ["a", "b", "c"], "must be square"),
        (torch.zeros(3, 2), ["a", "b", "c"], "must be square"),
        (torch.zeros(3, 3), ["a", "b"], "3 positions but 2 tokens"),
        (torch.zeros(2, 2), "ab", "list of strings"),
        (torch.zeros(2, 2), [1, 2], "list of strings"),
    ],
)
def test_bad_matrix_input_is_an_input_error(matrix, tokens, message):
    with pytest.raises(InputError, match=message):
        matrix_to_text(matrix, tokens)


# --------------------------------------------------------------------------- files


def test_json_round_trips(tmp_path):
    matrix = torch.tensor([[1.0, 0, 0], [0.25, 0.75, 0], [1 / 3, 1 / 3, 1 / 3]])
    tokens = ["<|endoftext|>", " &", "\n"]
    data = matrix_to_json(matrix, tokens, name="current_word_head")
    assert data == json.loads(json.dumps(data))
    path = save_matrix(matrix, tokens, tmp_path / "m.json", name="current_word_head")
    loaded = json.loads(path.read_text(encoding="utf-8"))
    assert loaded["pattern"] == "current_word_head"
    assert loaded["tokens"] == tokens
    assert torch.equal(torch.tensor(loaded["matrix"], dtype=torch.float32), matrix)


def test_matrix_png_is_a_valid_png(tmp_path):
    tokens = TOKENS + ["<|endoftext|>", " $5", "&", "漢字"]
    path = save_matrix(induction_matrix(tokens), tokens, tmp_path / "m.png", title="induction_head")
    assert_png(path)


def test_matrix_png_of_40_tokens_is_large_enough_to_read(tmp_path):
    tokens = [f" tok{i}" for i in range(40)]
    image = assert_png(save_matrix_png(torch.eye(40), tokens, tmp_path / "m.png"))
    # ~0.28 in per token at 100 dpi: cells of ~28 px.
    assert image.shape[0] > 40 * 20 and image.shape[1] > 40 * 20


def test_matrix_png_thins_labels_for_long_prompts(tmp_path):
    n = 150
    assert_png(save_matrix_png(torch.ones(n, n).tril(), [f"t{i}" for i in range(n)], tmp_path / "big.png"))


def test_matrix_html_escapes_tokens_and_is_self_contained(tmp_path):
    tokens = ["<|endoftext|>", " &", "<b>", "\n"]
    matrix = torch.tensor([[1.0, 0, 0, 0], [1, 0, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 0, 1]])
    path = save_matrix(matrix, tokens, tmp_path / "m.html", title="a <title> & more")
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "&lt;|endoftext|&gt;" in html and "<|endoftext|>" not in html
    assert "␣&amp;" in html and "<b>" not in html and "&lt;b&gt;" in html
    assert "a &lt;title&gt; &amp; more" in html
    assert "\\n" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html
    # One data cell per lower-triangle entry, blank cells above.
    assert html.count("<td style=") == 10 and html.count('<td class="tri">') == 6


def test_matrix_html_limits_huge_prompts(tmp_path):
    n = 30
    path = save_matrix_html(torch.eye(n), [str(i) for i in range(n)], tmp_path / "m.html", max_tokens=10)
    html = path.read_text(encoding="utf-8")
    assert "showing the first 10 of 30 tokens" in html
    assert html.count("<tr>") == 11  # header + 10 rows


@pytest.mark.parametrize("name", ["m.txt", "m.svg", "m"])
def test_bad_suffix_is_an_input_error(tmp_path, name):
    with pytest.raises(InputError, match="unknown file type"):
        save_matrix(torch.eye(2), ["a", "b"], tmp_path / name)
    assert not (tmp_path / name).exists()


def test_suffix_is_case_insensitive_and_folders_are_created(tmp_path):
    path = save_matrix(torch.eye(2), ["a", "b"], tmp_path / "new" / "dir" / "M.JSON")
    assert json.loads(path.read_text())["tokens"] == ["a", "b"]


def test_unwritable_path_is_an_input_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="cannot write"):
        save_matrix(torch.eye(2), ["a", "b"], blocker / "m.json")


# --------------------------------------------------------------------------- scores


def table_text(table, width=140) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(table)
    return console.file.getvalue()


def test_top_heads_table_lists_top_heads_with_every_measure():
    scores = fake_scores()
    text = table_text(top_heads_table(scores, k=2))
    for pattern in scores.patterns:
        assert pattern in text
        for rank, (label, value) in enumerate(scores.top(pattern, 2), start=1):
            layer, head = int(label[1:label.index("H")]), int(label[label.index("H") + 1:])
            row = next(line for line in text.splitlines() if f" {label} " in line and f" {rank} " in line)
            for measure in scores.measures:
                assert f"{float(scores.get(pattern, measure)[layer, head]):.3f}" in row
    # Each pattern's default measure is named.
    assert "by match" in text and "by mass" in text
    assert "fake-model · 8 prompts · 400 tokens · 4×3 heads" in text


def test_top_heads_table_ranks_by_first_requested_measure():
    scores = fake_scores()
    text = table_text(top_heads_table(scores, k=1, measures=["mass"]))
    assert "match" not in text.split("\n", 3)[3]  # only the mass column (title aside)
    for pattern in scores.patterns:
        label, value = scores.top(pattern, 1, measure="mass")[0]
        assert re.search(rf"{label}\s+│\s+{value:.3f}", text)


def test_top_heads_table_rejects_unknown_measure():
    with pytest.raises(InputError, match="no scores for measure 'nope'"):
        top_heads_table(fake_scores(), measures=["nope"])


def test_heatmap_png_with_nans(tmp_path):
    scores = fake_scores(n_patterns=8, n_layers=30, n_heads=9)
    for pattern in scores.patterns:
        scores._data[pattern]["match"][5] = float("nan")  # a whole layer not scored
    # 8 panels of 30 layers x 9 heads (the embedded model's shape) need room to stay legible.
    assert_png(save_heatmap(scores, tmp_path / "match.png", measure="match"), min_size=(1000, 800))


def test_heatmap_png_with_all_nan_panel_and_unbounded_scores(tmp_path):
    scores = fake_scores(n_patterns=2)  # ranked by each pattern's default measure
    scores._data["pattern_0"]["match"][:] = float("nan")
    scores._data["pattern_1"]["mass"] = scores._data["pattern_1"]["mass"] * 4 - 2  # signed, beyond [0, 1]
    assert_png(save_heatmap(scores, tmp_path / "heads.png"))


def test_heatmap_html_marks_missing_and_best_heads(tmp_path):
    scores = fake_scores(n_patterns=2, n_layers=4, n_heads=3)
    scores._data = {"a<b>&": scores._data["pattern_0"], "plain": scores._data["pattern_1"]}
    scores._default = {"a<b>&": "match", "plain": "mass"}
    scores.patterns = ("a<b>&", "plain")
    html = save_heatmap(scores, tmp_path / "heads.html", measure="match").read_text(encoding="utf-8")
    assert "a&lt;b&gt;&amp;" in html and "a<b>" not in html
    assert html.count('<table class="grid">') == 2
    assert html.count(": not scored") == 2  # L0H0 of each pattern
    assert html.count('class="best"') == 2
    best = scores.top("plain", 1, measure="match")[0][0]
    assert re.search(rf'class="best"[^>]*title="{best} plain', html)
    assert "<script" not in html and "https://" not in html


def test_heatmap_rejects_bad_suffix_and_measure(tmp_path):
    with pytest.raises(InputError, match="unknown file type"):
        save_heatmap(fake_scores(), tmp_path / "heads.json")
    with pytest.raises(InputError, match="no scores for measure"):
        save_heatmap(fake_scores(), tmp_path / "heads.png", measure="nope")
