"""Why a head scored (`explain`, `Scores.show`, `patternlang show`): the drawing holds the model's real
attention, the pattern's matrix as scored and the prompt's scores as `detect` gives them, and each
renderer puts the right values in the right cells."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
import torch

from patternlang import compile_rule, detect, load_pattern
from patternlang.engine.measures import Exclusions, counted_cells
from patternlang.errors import InputError
from patternlang.engine.explanation import Explanation, explain
from patternlang.models.facts import model_facts
from patternlang.testing import make_hand_set_model
from patternlang.testing.hand_set import BOS_HEAD, INDUCTION_HEAD, PREVIOUS_TOKEN_HEAD
from tests.conftest import run, serve_instead_of_loading

MEASURES = ("mass", "tv", "argmax", "mul", "abs")
PROMPT = "abcdabcd"  # hand-set tokens are characters; BOS is prepended


@pytest.fixture(scope="module")
def model():
    return make_hand_set_model()


def hooked_attention(model, ids: list[int], layer: int, head: int) -> torch.Tensor:
    name = f"blocks.{layer}.attn.hook_pattern"
    _, cache = model.run_with_cache(torch.tensor([ids]), names_filter=name)
    return cache[name][0, head]


# --------------------------------------------------------------------------- explain


@pytest.mark.parametrize("pattern, head", [
    ("induction_head", INDUCTION_HEAD), ("previous_token_head", PREVIOUS_TOKEN_HEAD), ("bos_head", BOS_HEAD),
    ("previous_token_head", INDUCTION_HEAD),  # a head that does not match: the numbers must be right too
])
@pytest.mark.parametrize("exclusions", [(None, None), (True, False), (True, True)])
@pytest.mark.filterwarnings("ignore:some scores are undefined")  # bos_head without key 0 has no targets
def test_explain_holds_the_real_attention_the_scored_matrix_and_detects_scores(model, pattern, head, exclusions):
    exclude_bos, exclude_current = exclusions
    why = explain(model, pattern, head, PROMPT, measures=MEASURES, exclude_bos=exclude_bos,
                  exclude_current_token=exclude_current)
    ids = list(why.token_ids)
    assert ids == model.to_tokens(PROMPT)[0].tolist()
    assert why.tokens == ("<bos>", *PROMPT) and why.head == f"L{head[0]}H{head[1]}"
    assert torch.equal(why.attention, hooked_attention(model, ids, *head))
    specials = model_facts(model).special_ids
    assert torch.equal(why.matrix, load_pattern(pattern).matrix(ids, special_ids=specials))

    scores = detect(model, [PROMPT], pattern, heads=[head], measures=MEASURES, exclude_bos=exclude_bos,
                    exclude_current_token=exclude_current, progress=False)
    for measure in MEASURES:
        expected = float(scores.get(pattern, measure)[head])
        assert why.scores[measure] == pytest.approx(expected, abs=1e-6, nan_ok=True), measure

    settings = load_pattern(pattern).settings
    chosen = Exclusions(bos=settings.exclude_bos if exclude_bos is None else exclude_bos,
                        current=settings.exclude_current if exclude_current is None else exclude_current)
    assert (why.exclude_bos, why.exclude_current) == (chosen.bos, chosen.current)
    counted = counted_cells(torch.tensor([len(ids)]), len(ids), chosen)[0]
    assert torch.equal(why.counted, counted)
    assert torch.equal(why.target_rows, (torch.where(counted, why.matrix, 0.0) > 0).any(dim=1))


def test_explain_reads_heads_prompts_and_patterns_in_every_form(model):
    rule = "attend k where str[k] == str[q] and k < q"  # reads token texts
    by_label = explain(model, rule, "L0H1", "xyxy")
    assert by_label.pattern == rule and by_label.rule.startswith("attend k where str[k]")
    by_tuple = explain(model, compile_rule(rule), (0, 1), [0, *model.to_tokens("xyxy", prepend_bos=False)[0].tolist()])
    assert torch.equal(by_label.attention, by_tuple.attention) and torch.equal(by_label.matrix, by_tuple.matrix)
    assert by_label.matrix[3, 1] == 1 and by_label.matrix[4, 2] == 1  # the second x and y see the first
    assert explain(model, "bos_head", "0.2", "ab", prepend_bos=False).token_ids == tuple(model.to_tokens("ab", prepend_bos=False)[0].tolist())
    tensor = explain(model, torch.eye(3), "L1H1", "ab")  # a fixed [q, k] tensor of the prompt's length
    assert tensor.scores["mass"] == pytest.approx(1.0) and "tensor" in tensor.rule


def test_explain_errors_are_clear(model, tmp_path, monkeypatch):
    with pytest.raises(InputError, match=r"L9H0 is out of range: the model has 2 layers \(0-1\) and 3 heads"):
        explain(model, "induction_head", "L9H0", PROMPT)
    with pytest.raises(InputError, match="one head"):
        explain(model, "induction_head", "L0H0,L1H0", PROMPT)
    with pytest.raises(InputError, match="one prompt"):
        explain(model, "induction_head", "L1H0", ["ab", "cd"])
    two = tmp_path / "two.pattern"
    two.write_text("pattern a: attend k where k == 0\npattern b: attend k where k == q\n")
    with pytest.raises(InputError, match="holds 2"):
        explain(model, two, "L1H0", PROMPT)
    monkeypatch.setattr("patternlang.engine.explanation.MAX_TOKENS", 5)
    with pytest.raises(InputError, match="has 9 tokens; .* at most 5") as error:
        explain(model, "induction_head", "L1H0", PROMPT)
    assert "shorten" in str(error.value)
    with pytest.raises(InputError, match="has 6 tokens"):
        explain(model, "induction_head", "L1H0", [0, 3, 4, 5, 6, 7])


def test_an_undefined_score_says_why(model):
    why = explain(model, "induction_head", "L1H0", "abc", measures=("mass", "mul"))  # nothing repeats
    assert math.isnan(why.scores["mass"]) and not why.target_rows.any()
    assert "no target rows" in why.why_undefined("mass") and why.why_undefined("mul") is None
    assert "mass undefined: no target rows" in why.to_text()


# --------------------------------------------------------------------------- Scores.show


def test_scores_show_draws_a_scored_prompt_as_it_was_scored(model, tmp_path):
    prompts = ["abab", "xyzxyz", "qrqr"]
    scores = detect(model, prompts, ["induction_head", "previous_token_head"], measures=("mass", "tv"),
                    exclude_bos=True, progress=False)
    why = scores.show("induction_head", "L1H0", 1)
    assert isinstance(why, Explanation) and why.prompt_index == 1 and why.tokens == ("<bos>", *"xyzxyz")
    assert why.exclude_bos and not why.counted[:, 0].any()  # the exclusions the scores were made with
    assert set(why.scores) == {"mass", "tv"} and why.scores["mass"] == pytest.approx(1.0)
    assert "scores on prompt 1" in str(why)
    same = scores.show("induction_head", "L1H0", -2)
    assert torch.equal(same.attention, why.attention) and same.prompt_index == 1
    text = scores.show("induction_head", "L1H0", "abab")
    assert text.prompt_index is None and text.tokens == ("<bos>", *"abab")
    out = tmp_path / "why.html"
    assert isinstance(scores.show(1, (0, 0), 0, out=out), Explanation) and out.read_text().startswith("<!DOCTYPE")

    with pytest.raises(InputError, match="out of range: 'induction_head' was scored on 3 prompts"):
        scores.show("induction_head", "L1H0", 3)
    with pytest.raises(InputError, match="no scores for pattern"):
        scores.show("bos_head", "L1H0", 0)
    from patternlang.engine.scores import Scores

    scores.to_json(tmp_path / "s.json")
    read_back = Scores.from_json(tmp_path / "s.json")
    with pytest.raises(InputError, match="read from a file") as error:
        read_back.show("induction_head", "L1H0", 0)
    assert "detect" in str(error.value)


# --------------------------------------------------------------------------- renderers


class Grids(HTMLParser):
    """The two tables of an explanation page: `cells[grid][q][k]` = the td's attributes, plus the
    row headers' classes, the root id, the scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: dict[str, dict[int, list[dict]]] = {}
        self.row_headers: dict[str, dict[int, dict]] = {}
        self.tables: list[list[dict]] = []  # every row: {"q": str | None, "cells": [{tag, classes, v}]}
        self.scripts: list[tuple[dict, str]] = []
        self.root_id = None
        self._grid = self._q = self._script = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div" and "plw" in (attrs.get("class") or "").split() and self.root_id is None:
            self.root_id = attrs["id"]
        elif tag == "table":
            self._grid = attrs["data-grid"]
            self.cells[self._grid], self.row_headers[self._grid] = {}, {}
            self.tables.append([])
        elif tag == "tr" and self._grid:
            self._q = int(attrs["data-q"]) if "data-q" in attrs else None
            self.tables[-1].append({"q": attrs.get("data-q"), "cells": []})
            if self._q is not None:
                self.cells[self._grid][self._q] = []
        elif tag in ("td", "th") and self._grid:
            self.tables[-1][-1]["cells"].append({"tag": tag, "classes": (attrs.get("class") or "").split(),
                                                 "v": attrs.get("data-v")})
            if tag == "td":
                self.cells[self._grid][self._q].append(attrs)
            elif self._q is not None:
                self.row_headers[self._grid][self._q] = attrs
        elif tag == "script":
            self._script, self._text = attrs, []

    def handle_endtag(self, tag):
        if tag == "table":
            self._grid = None
        elif tag == "script":
            self.scripts.append((self._script, "".join(self._text)))
            self._script = None

    def handle_data(self, data):
        if self._script is not None:
            self._text.append(data)


@pytest.fixture(scope="module")
def shown(model):
    # "<" and "&" in a token must stay text; the previous-token head with both exclusions marks cells.
    return explain(model, "previous_token_head", "L0H0", "a<b&a", measures=("mass", "tv"),
                   exclude_bos=True, exclude_current_token=True)


def test_html_cells_hold_their_values_tokens_and_marks(shown, tmp_path):
    path = shown.save(tmp_path / "why.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # Self-contained: nothing is fetched.
    for outside in ("http://", "https://", "src=", "<link", "@import", "url("):
        assert outside not in page, outside
    assert "a&lt;b" not in page and "&lt;" in page and "<b&" not in page  # tokens are escaped
    grids = Grids()
    grids.feed(page)
    n = shown.n_tokens
    assert set(grids.cells) == {"attention", "pattern"}
    for name, values in (("attention", shown.attention), ("pattern", shown.matrix)):
        rows = grids.cells[name]
        assert sorted(rows) == list(range(n)) and [len(rows[q]) for q in range(n)] == [q + 1 for q in range(n)]
        for q in range(n):
            assert ("t" in grids.row_headers[name][q]["class"].split()) == bool(shown.target_rows[q])
            for k in range(q + 1):
                cell = rows[q][k]
                assert float(cell["data-v"]) == pytest.approx(float(values[q, k]), rel=1e-3, abs=1e-9), (name, q, k)
                assert ("x" in cell["class"].split()) == (not bool(shown.counted[q, k])), (name, q, k)
                title = cell["title"]
                assert title.startswith(f"query {q} {shown_token(shown, q)} → key {k} {shown_token(shown, k)}")
                assert f"attention {float(shown.attention[q, k]):.4g}" in title
                assert f"target {float(shown.matrix[q, k]):.4g}" in title
    assert grids.cells["pattern"][3][2]["title"] == "query 3 b → key 2 <\nattention 1 · target 1"
    assert "not counted (key 0, exclude bos)" in grids.cells["pattern"][2][0]["title"]
    assert "not counted (the diagonal, exclude current)" in grids.cells["attention"][2][2]["title"]
    data = json.loads(next(text for attrs, text in grids.scripts if attrs.get("type") == "application/json"))
    assert data["tokens"] == ["<bos>", "a", "<", "b", "&", "a"] and data["bos"] is True
    assert "</script" not in next(text for attrs, text in grids.scripts if attrs.get("type") == "application/json")
    assert "mass 1.000" in page and "L0H0" in page


def shown_token(why, position):
    from patternlang.report.tokens import display_token

    return display_token(why.tokens[position])


_HARNESS = r"""
const spec = JSON.parse(require("fs").readFileSync(0, "utf8"));
function classList(list) { const s = new Set(list);
  return { contains: c => s.has(c), add: c => s.add(c), remove: c => s.delete(c) }; }
const info = { textContent: "" };
const tables = spec.tables.map(t => ({ rows: t.map(r => {
  const row = { dataset: r.q === null ? {} : { q: r.q }, cells: [] };
  r.cells.forEach((c, i) => { const cell = { tagName: c.tag, classList: classList(c.classes),
    dataset: { v: c.v }, cellIndex: i, parentNode: row };
    cell.closest = sel => (cell.tagName === "td" ? cell : null); row.cells.push(cell); });
  return row; }) }));
const listeners = {};
const root = { addEventListener: (type, f) => { listeners[type] = f; }, contains: () => true,
  querySelector: sel => (sel === "script.plw-data" ? { textContent: spec.data } : sel === ".plw-info" ? info : null),
  querySelectorAll: () => tables };
global.document = { getElementById: id => (id === spec.id ? root : null) };
eval(spec.script);
const [grid, q, k] = spec.hover;
listeners.mouseover({ target: tables[grid].rows[q + 1].cells[k + 1] });
const lit = [];
tables.forEach((t, g) => t.rows.forEach((r, i) => r.cells.forEach((c, j) => {
  if (c.classList.contains("hi")) lit.push([g, i, j]); })));
console.log(JSON.stringify({ info: info.textContent, lit: lit }));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_html_hover_script_fills_the_info_box(shown, tmp_path):
    grids = Grids()
    grids.feed(shown.save(tmp_path / "why.html").read_text(encoding="utf-8"))
    data = next(text for attrs, text in grids.scripts if attrs.get("type") == "application/json")
    script = next(text for attrs, text in grids.scripts if not attrs.get("type"))
    assert subprocess.run(["node", "--check"], input=script, text=True, capture_output=True).returncode == 0

    def hover(grid, q, k):
        spec = {"tables": grids.tables, "data": data, "script": script, "id": grids.root_id, "hover": [grid, q, k]}
        result = subprocess.run(["node", "-e", _HARNESS], input=json.dumps(spec), text=True, capture_output=True,
                                timeout=60)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    seen = hover(1, 3, 2)  # the pattern grid, query 3 ("b"), key 2 ("<")
    assert seen["info"].splitlines() == ["query 3 b  →  key 2 <", "attention 1 · target 1 · target row"]
    # The cell in both grids, its row header in both and its column header in both are outlined.
    assert sorted(seen["lit"]) == [[0, 0, 3], [0, 4, 0], [0, 4, 3], [1, 0, 3], [1, 4, 0], [1, 4, 3]]
    seen = hover(0, 4, 0)
    assert seen["info"].splitlines()[0] == "query 4 &  →  key 0 <bos>"
    assert "not counted (key 0, exclude bos)" in seen["info"] and "target 0" in seen["info"]
    assert "not counted (the diagonal, exclude current)" in hover(0, 2, 2)["info"]


def test_the_jupyter_view_is_the_page_fragment(shown):
    fragment = shown._repr_html_()
    assert fragment.startswith('<div class="plw"') and fragment.endswith("</div>") and "<html" not in fragment
    assert fragment.count('<table class="plw-grid"') == 2
    assert shown._repr_html_() != fragment  # each view has its own id, so two in a notebook stay apart


def test_terminal_grids_side_by_side_and_stacked(shown):
    wide = shown.to_text(width=200)
    lines = wide.splitlines()
    assert lines[0] == "previous_token_head · L0H0 · hand-set-tiny"
    assert "scores on this prompt: mass 1.000 · tv 1.000" in wide
    assert "not counted: key 0 (exclude bos) and the diagonal (exclude current)" in wide
    row = next(line for line in lines if line.startswith("3 *b"))
    attention, pattern = re.split(" {3,}", row[len("3 *<bos> "):])
    # Row 3 ("b") attends to key 2; in the pattern, key 0 and the diagonal are not counted ("x").
    assert attention.split() == ["0", "0", "█", "0"] and pattern.split() == ["x", "·", "█", "x"]
    assert any(line.startswith("2 *<") for line in lines) and any(line.startswith("4 *&") for line in lines)
    assert any(line.startswith("0  <bos>") for line in lines)
    narrow = shown.to_text(width=30)
    assert narrow.count("3 *b") == 2 and "attention of L0H0" in narrow and "pattern previous_token_head" in narrow
    assert str(shown) == shown.to_text()
    assert "showing the first 3 of 6 tokens" in shown.to_text(max_tokens=3)


def test_png_has_the_two_panels(shown, tmp_path):
    from matplotlib.image import imread

    from patternlang.report.explain_png import explanation_figure

    figure = explanation_figure(shown)
    panels = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["attention of L0H0", "pattern previous_token_head"]
    assert (panels[0].images[0].get_array()[3, 2] == pytest.approx(float(shown.attention[3, 2]))
            and panels[1].images[0].get_array()[3, 2] == 1)
    assert panels[0].get_yticklabels()[3].get_text() == "• b  3"  # a target row
    assert "mass 1.000" in figure._suptitle.get_text()
    path = shown.save(tmp_path / "why.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = imread(path).shape[:2]
    assert width > 1.5 * height  # two panels side by side


def test_json_file_and_unknown_suffixes(shown, tmp_path):
    data = json.loads(shown.save(tmp_path / "why.json").read_text(encoding="utf-8"))
    assert data["tokens"] == list(shown.tokens) and data["attention"] == shown.attention.tolist()
    assert data["scores"] == {"mass": 1.0, "tv": 1.0} and data["counted"][2] == [False, True, False, False, False,
                                                                                   False]
    with pytest.raises(InputError, match=r"unknown file type \(.gif\)"):
        shown.save(tmp_path / "why.gif")


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def hand_set_cli(monkeypatch, model):
    """`patternlang show` with the hand-set model in place of a loaded one; records each load."""
    return serve_instead_of_loading(monkeypatch, model)


def test_cli_show_prints_the_grids_and_writes_files(capsys, tmp_path, hand_set_cli):
    html, png, data = tmp_path / "out" / "why.html", tmp_path / "why.png", tmp_path / "why.json"
    code, out, err = run(capsys, "show", "induction_head", "L1H0", "--prompt", "xyzxyz", "--model", "tiny",
                         "--out", str(html), "--out", str(png), "--out", str(data), "--measure", "mass,tv")
    assert code == 0, err
    assert "induction_head · L1H0 · hand-set-tiny" in out and "scores on this prompt: mass 1.000 · tv 1.000" in out
    row = next(line for line in out.splitlines() if line.startswith("4 *x"))
    assert row.split()[2:] == ["0", "0", "█", "0", "0", "·", "·", "█", "·", "·"]
    assert str(html) in err.replace("\n", "") and png.read_bytes()[:4] == b"\x89PNG" and "plw-grid" in html.read_text()
    assert json.loads(data.read_text())["scores"] == {"mass": 1.0, "tv": 1.0}

    code, out, err = run(capsys, "show", "attend k where k == q", "1.1", "--tokens", "0 5 6", "--model", "tiny",
                         "--json", "--include-bos")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["head"] == "L1H1" and shown["token_ids"] == [0, 5, 6] and shown["scores"]["mass"] == pytest.approx(1)


@pytest.mark.parametrize("args, message", [
    (["--prompt", "ab", "--tokens", "1 2"], "exactly one of --prompt"),
    ([], "exactly one of --prompt"),
    (["--tokens", "1 x"], "'x' is not one"),
    (["--prompt", "ab", "--out", "why.gif"], "unknown file type (.gif)"),
    (["--prompt", "ab", "--measure", "bogus"], "unknown measure 'bogus'"),
])
def test_cli_show_checks_what_the_user_wrote_before_loading(capsys, hand_set_cli, args, message):
    code, _, err = run(capsys, "show", "induction_head", "L1H0", "--model", "tiny", *args)
    assert code == 1 and message in err and "Traceback" not in err
    assert hand_set_cli == []
    code, _, err = run(capsys, "show", "induction_head", "L1", "--prompt", "ab", "--model", "tiny")
    assert code == 1 and "cannot read a head from 'L1'" in err and hand_set_cli == []


def test_cli_show_bad_head_names_the_models_shape(capsys, hand_set_cli):
    code, _, err = run(capsys, "show", "induction_head", "L99H0", "--prompt", "ab", "--model", "tiny")
    assert code == 1 and "L99H0 is out of range: the model has 2 layers (0-1) and 3 heads per layer (0-2)" in err


# --------------------------------------------------------------------------- the embedded model


@pytest.mark.model
def test_cli_show_on_the_embedded_model(capsys, tmp_path, embedded_model):
    prompt = "The quick brown fox jumps over the lazy dog."
    best, _ = detect(embedded_model, [prompt], "previous_token_head", progress=False).top("previous_token_head", 1)[0]
    page = tmp_path / "why.html"
    code, out, err = run(capsys, "show", "previous_token_head", best, "--prompt", prompt, "--out", str(page))
    assert code == 0, err
    expected = detect(embedded_model, [prompt], "previous_token_head", heads=best, progress=False)
    value = float(expected.get("previous_token_head")[tuple(int(x) for x in best[1:].split("H"))])
    assert f"mass {value:.3f}" in out and value > 0.5
    grids = Grids()
    grids.feed(page.read_text(encoding="utf-8"))
    n = len(grids.cells["attention"])
    assert n == len(embedded_model.to_tokens(prompt)[0]) and len(grids.cells["pattern"][n - 1]) == n
    # The pattern marks the previous token: row q's cell q-1 holds target 1.
    assert all(float(grids.cells["pattern"][q][q - 1]["data-v"]) == 1 for q in range(2, n))
