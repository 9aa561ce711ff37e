"""Tests for patternlang.report: terminal grids, JSON, PNG and HTML files, top-head tables."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re

import pytest
import torch
from matplotlib.image import imread
from rich.console import Console

from patternlang.errors import InputError
from patternlang.heads import parse_head
from patternlang.report import (
    display_token,
    fit_scale,
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
from patternlang.report.colors import MISSING_COLOR

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


@pytest.fixture(scope="module")
def tiny_scores():
    """Real `Scores` from `detect` on the hand-set tiny model: each pattern has one exact head
    (L0H0 previous token, L1H0 induction, L0H2 BOS, L1H1 current token); `current_tv` is
    ranked by its own measure, tv."""
    from patternlang import compile_rule, detect
    from patternlang.testing import make_hand_set_model

    patterns = ["previous_token_head", "induction_head", "bos_head",
                compile_rule("attend k where k == q measure tv", name="current_tv")]
    return detect(make_hand_set_model(), ["abcdabcd", "the cat sat on the mat the cat sat"], patterns,
                  progress=False)


@pytest.fixture(scope="module")
def wide_scores():
    """Real `Scores` of 8 patterns on a 30-layer x 9-head fake (the embedded model's shape),
    with layer 5 and L0H0 not scored (NaN)."""
    from patternlang import detect
    from patternlang.testing import FakeAttentionModel

    heads = ",".join(f"L{layer}H{head}" for layer in range(30) for head in range(9)
                     if layer != 5 and (layer, head) != (0, 0))
    patterns = ["previous_token_head", "induction_head", "bos_head", "duplicate_token_head",
                "current_token_head", "attend k where k == q - 2", "attend k where k == 1", "attend k where k <= q"]
    return detect(FakeAttentionModel(n_layers=30, n_heads=9), ["abcabcabc", "hello hello"], patterns,
                  heads=heads, progress=False)


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


def table_rows(text: str) -> list[tuple[str, list[str]]]:
    """(pattern, cells) for each body row of a printed top-heads table: cells[0] the pattern
    column, cells[1] the head, then ×chance and the measures."""
    rows, pattern = [], None
    for line in text.splitlines():
        if "│" not in line:
            continue
        cells = [cell.strip() for cell in line.split("│")]
        if cells[0] == "pattern":
            continue
        if cells[0] and pattern is None or cells[0] in PATTERN_NAMES:
            pattern = cells[0]
        if pattern is not None and cells[1]:
            rows.append((pattern, cells))
    return rows


PATTERN_NAMES = {"previous_token_head", "induction_head", "bos_head", "current_tv"}


def test_top_heads_table_lists_top_heads_with_every_measure(tiny_scores):
    scores = tiny_scores
    text = table_text(top_heads_table(scores, k=2))
    for pattern in scores.patterns:
        assert pattern in text
        for label, value in scores.top(pattern, 2):
            layer, head = parse_head(label)
            row = next(cells for name, cells in table_rows(text) if name == pattern and cells[1] == label)
            chance = scores.baseline(pattern)
            assert row[2] == f"{value / chance:.1f}×"
            for measure, shown in zip(scores.measures, row[3:]):
                assert shown == f"{float(scores.get(pattern, measure)[layer, head]):.3f}"
        evidence = scores.evidence[pattern]
        assert f"{evidence.n_rows} rows, {evidence.n_prompts}/2 prompts" in text
    # Each pattern's own measure is named, and the hand-set heads come first.
    assert "by mass" in text and "by tv" in text
    assert "hand-set-tiny · 2 prompts · " in text and " · 2×3 heads" in text
    assert [scores.top(p, 1)[0][0] for p in scores.patterns] == ["L0H0", "L1H0", "L0H2", "L1H1"]
    assert any("L1H0" in line and "1.000" in line for line in text.splitlines())


def test_top_heads_table_ranks_by_first_requested_measure(tiny_scores):
    text = table_text(top_heads_table(tiny_scores, k=1, measures=["tv"]))
    assert "mass" not in text.split("\n", 3)[3]  # only the tv column (title aside)
    for pattern in tiny_scores.patterns:
        label, value = tiny_scores.top(pattern, 1, measure="tv")[0]
        assert re.search(rf"{label}\s+│\s+\S+×\s+│\s+{value:.3f}", text)


def test_top_heads_tables_fit_80_columns_without_cutting_a_number(tiny_scores):
    from patternlang import detect
    from patternlang.testing import make_hand_set_model

    scores = detect(make_hand_set_model(), ["abcdabcd", "the cat sat on the mat"],
                    ["sentence_first_token_head", "attend k where k == q - 1 or k == 0 or tok[k] == tok[q]"],
                    measures=("mass", "tv", "argmax", "mul", "abs", "lift"), exclude_bos=True, progress=False)
    text = table_text(top_heads_table(scores, k=2, ci=True, width=80), width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "(1/" in text  # the measures went on to further tables
    for pattern in scores.patterns:
        for label, _ in scores.top(pattern, 2):
            layer, head = parse_head(label)
            for measure in scores.measures:
                assert f"{float(scores.get(pattern, measure)[layer, head]):.3f}" in text
                low, high = (float(bound[layer, head]) for bound in scores.interval(pattern, measure))
                assert f"{low:.3f}–{high:.3f}" in text
    assert "excl. bos" in text


def test_top_heads_table_shows_unscored_heads_as_a_dash(tiny_scores):
    from patternlang import detect
    from patternlang.testing import make_hand_set_model

    scores = detect(make_hand_set_model(), ["abcabc"], ["bos_head"], heads="L0H2", progress=False)
    text = table_text(top_heads_table(scores, k=3))
    assert "L0H2" in text and "L0H1" not in text  # NaN never ranks
    assert scores.top("bos_head", 3) == [("L0H2", pytest.approx(1.0, abs=1e-6))]


def test_top_heads_table_rejects_unknown_measure_and_k(tiny_scores):
    with pytest.raises(InputError, match="no scores for measure 'nope'"):
        top_heads_table(tiny_scores, measures=["nope"])
    with pytest.raises(InputError, match="k must be at least 1"):
        top_heads_table(tiny_scores, k=0)


def test_heatmap_png_with_nans(tmp_path, wide_scores):
    assert torch.isnan(wide_scores.get("bos_head")[5]).all()
    # 8 panels of 30 layers x 9 heads (the embedded model's shape) need room to stay legible.
    assert_png(save_heatmap(wide_scores, tmp_path / "mass.png", measure="mass"), min_size=(1000, 800))


def test_heatmap_png_with_all_nan_panel_and_signed_scores(tmp_path):
    from patternlang import detect
    from patternlang.testing import make_hand_set_model

    # `abs` is unbounded below: a pattern with many targets per row scores far under 0.
    scores = detect(make_hand_set_model(), ["abcdabcd"], ["bos_head", "attend k where k <= q"],
                    measures=("abs",), heads="L0H1,L1H0", progress=False)
    assert float(torch.nan_to_num(scores.get("attend k where k <= q"), nan=0.0).min()) < 0
    assert fit_scale([scores.get(p) for p in scores.patterns]).kind == "diverging"
    assert_png(save_heatmap(scores, tmp_path / "heads.png"))
    nothing = detect(make_hand_set_model(), ["abc"], ["bos_head"], heads="L0H0", progress=False)
    nothing = dataclasses.replace(nothing, values={"mass": torch.full_like(nothing.values["mass"], math.nan)})
    assert_png(save_heatmap(nothing, tmp_path / "empty.png"))
    assert "no scored heads" in save_heatmap(nothing, tmp_path / "empty.html").read_text(encoding="utf-8")


def test_heatmap_html_marks_missing_and_best_heads(tmp_path):
    from patternlang import compile_rule, detect
    from patternlang.testing import make_hand_set_model

    odd = compile_rule("attend k where k == 0", name="a<b>&")
    scores = detect(make_hand_set_model(), ["abcabc", "hello there"], [odd, "previous_token_head"],
                    heads="L0H1,L0H2,L1H0,L1H1,L1H2,L0H0", progress=False)
    partial = detect(make_hand_set_model(), ["abcabc"], [odd, "previous_token_head"],
                     heads="L0H1,L0H2,L1H0,L1H1,L1H2", progress=False)  # L0H0 not scored
    html = save_heatmap(partial, tmp_path / "heads.html", measure="mass").read_text(encoding="utf-8")
    assert "a&lt;b&gt;&amp;" in html and "a<b>" not in html
    assert html.count('<table class="grid">') == 2
    assert html.count(": not scored") == 2  # L0H0 of each pattern
    assert html.count('class="best"') == 2
    assert re.search(r'class="best"[^>]*title="L0H2 a&lt;b&gt;&amp;', html)  # the BOS head
    best = partial.top("previous_token_head", 1, measure="mass")[0][0]
    assert re.search(rf'class="best"[^>]*title="{best} previous_token_head', html)
    assert "<script" not in html and "https://" not in html
    assert "L0H0" in save_heatmap(scores, tmp_path / "all.html").read_text(encoding="utf-8")


def test_png_and_html_share_one_colour_scale(tmp_path, tiny_scores):
    """The colour of a cell in the HTML page is the colour matplotlib draws for it in the PNG."""
    from matplotlib.colors import Normalize, to_hex

    grid = tiny_scores.get("induction_head").double().numpy()
    scale = fit_scale([tiny_scores.get(p) for p in tiny_scores.patterns])
    html = save_heatmap(tiny_scores, tmp_path / "h.html").read_text(encoding="utf-8")
    norm = Normalize(scale.vmin, scale.vmax, clip=True)
    for layer in range(grid.shape[0]):
        for head in range(grid.shape[1]):
            drawn = to_hex(scale.colormap()(norm(grid[layer, head])))
            assert f"background:{drawn}" in html
            assert scale.hex(float(grid[layer, head])) == drawn


@pytest.mark.parametrize("values, expected", [
    ([[0.0, 0.5], [1.0, math.nan]], (0.0, 1.0, "sequential")),
    ([[0.0, 3.0]], (0.0, 3.0, "sequential")),
    ([[-0.5, 0.25]], (-0.5, 0.5, "diverging")),
    ([[-3.0, 2.0]], (-3.0, 3.0, "diverging")),
    ([[math.nan, math.inf]], (0.0, 1.0, "sequential")),
    ([], (0.0, 1.0, "sequential")),
])
def test_fit_scale_picks_range_and_map(values, expected):
    scale = fit_scale(values)
    assert (scale.vmin, scale.vmax, scale.kind) == expected


def test_colour_scale_greys_out_missing_and_keeps_text_readable():
    scale = fit_scale([[0.0, 1.0]])
    assert scale.css(math.nan).startswith(f"background:{MISSING_COLOR}")
    assert scale.text_color(1.0) == "#fff" and scale.text_color(0.0) == "#000"  # dark blue vs pale blue
    assert scale.hex(5.0) == scale.hex(1.0) and scale.hex(-1.0) == scale.hex(0.0)  # clipped to the range
    assert scale.mark != fit_scale([[-1.0, 1.0]]).mark


def test_heatmap_rejects_bad_suffix_and_measure(tmp_path, tiny_scores):
    with pytest.raises(InputError, match="unknown file type"):
        save_heatmap(tiny_scores, tmp_path / "heads.json")
    with pytest.raises(InputError, match="no scores for measure"):
        save_heatmap(tiny_scores, tmp_path / "heads.png", measure="nope")
    assert not any(tmp_path.iterdir())
