"""Every kind of HTML page patternlang writes, rendered with hostile strings in every string a
document or a prompt can carry, loaded in a real headless Chromium: no payload runs and no
injected element exists (issue 19, "escaping by construction").

Page kinds: the atlas (index, model, head, pattern and comparison pages), `compile --out` (a
detection matrix), `detect --heatmap` (score heatmaps), `compare --heatmap` (difference
heatmaps) and `show --out` (a head's explanation).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from patternlang.atlas import render_site
from patternlang.comparison import compare
from patternlang.engine.scores import Scores
from patternlang.engine.explanation import Explanation
from patternlang.report import save_explanation, save_heatmap, save_matrix
from patternlang.report.changes import save_difference_heatmap

browser = pytest.importorskip("browser", reason="tests/browser.py")

FLAG = "__owned"
PAYLOADS = [
    f"</script><script>window.{FLAG}=1</script>",
    f'"><img src=x onerror="window.{FLAG}=2">',
    f"'\"><svg onload=\"window.{FLAG}=3\">",
    f"javascript:window.{FLAG}=4",
    "{{7*7}}",
    f"</title><script>window.{FLAG}=5</script>",
    f"<!--<script>window.{FLAG}=6</script>-->",
]
HOSTILE = " ".join(PAYLOADS)

CHECK = f"""(() => {{
  const bad = [];
  if (window.{FLAG} !== undefined) bad.push("a payload ran: " + window.{FLAG});
  for (const e of document.querySelectorAll("*")) {{
    for (const a of e.attributes) {{
      if (a.name.startsWith("on")) bad.push("event handler " + e.tagName + " " + a.name);
      if ((a.name === "href" || a.name === "src") && a.value.trim().toLowerCase().startsWith("javascript:"))
        bad.push("javascript URL on " + e.tagName);
    }}
    if (e.tagName === "SCRIPT" && e.type !== "application/json" && e.textContent.includes("{FLAG}"))
      bad.push("an injected script");
    if (["IMG", "IFRAME", "OBJECT", "EMBED"].includes(e.tagName)) bad.push("an injected " + e.tagName);
    if (e.tagName.toLowerCase() === "svg" && e.closest("svg") === e && !e.classList.contains("mosaic-svg"))
      bad.push("an injected svg");
  }}
  return bad;
}})()"""


@pytest.fixture(scope="module")
def chromium():
    if browser.find_chromium() is None:
        pytest.fail("no chromium: apt-get install chromium (.ci/run does)")
    with browser.Browser() as running:
        yield running


def hostile_document(seed: dict, tag: str) -> dict:
    """The seed atlas document with every string it carries replaced by hostile text."""
    doc = json.loads(json.dumps(seed))
    h = f"{tag} {HOSTILE}"
    doc["model"].update(id=h, name=h, described=h, quantisation=h)
    doc["patternlang"] = doc["updated"] = h
    patterns = {}
    for i, (name, entry) in enumerate(doc["patterns"].items()):
        new = f"{h} {i}"
        entry.update(rule=h, doc=h, description=h, file=h, exclusions={h: h})
        entry["positional_baseline"] = {"rule": h, "score": 0.5}  # shown on the pattern page
        patterns[new] = entry
        for drawn in doc["heads"].values():
            if drawn["pattern"] == name:
                drawn["pattern"] = new
    doc["patterns"] = patterns
    old_probes = list(doc["probes"])
    key_map = {old: f"{h} probe {i}" for i, old in enumerate(old_probes)}
    doc["probes"] = {key_map[k]: {**v, "name": h, "kind": h, "description": h,
                                  "previews": [h] * len(v.get("previews") or [])} for k, v in doc["probes"].items()}
    for entry in doc["patterns"].values():
        entry["probe"] = key_map.get(entry["probe"], entry["probe"])
    doc["prompts"] = {key_map.get(k, k): {i: [PAYLOADS[j % len(PAYLOADS)] for j in range(len(toks))]
                                          for i, toks in v.items()} for k, v in doc["prompts"].items()}
    for drawn in doc["heads"].values():
        for ex in drawn["examples"]:
            ex["probe"] = key_map.get(ex["probe"], ex["probe"])
            ex["kind"] = "worst" if ex["kind"] == "worst" else "best"
    doc["stats"]["probe"] = h
    return doc


def hostile_scores(tag: str) -> Scores:
    names = (HOSTILE, PAYLOADS[1])
    grid = torch.tensor([[0.1, 0.9, math.nan], [0.5, 0.2, 0.7]])
    return Scores(names, ("mass",), {"mass": torch.stack([grid, grid.flip(0)])}, model=f"{tag} {HOSTILE}",
                  n_prompts=2, n_tokens=10, settings={}, n_layers=2, n_heads=3)


def hostile_explanation() -> Explanation:
    n = len(PAYLOADS) + 1
    tokens = ("<s>", *PAYLOADS)
    matrix = torch.tril(torch.ones(n, n)) / torch.arange(1, n + 1)[:, None]
    return Explanation(pattern=HOSTILE, rule=HOSTILE, head="L0H1", layer=0, head_index=1, model=HOSTILE,
                       tokens=tokens, token_ids=tuple(range(n)), attention=matrix, matrix=matrix,
                       counted=torch.ones(n, n, dtype=torch.bool), target_rows=torch.ones(n, dtype=torch.bool),
                       scores={"mass": 0.5}, span_labels=tuple(PAYLOADS[i % len(PAYLOADS)] for i in range(n)),
                       predicted=tokens)


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("payload-pages")
    seed = json.loads((Path(__file__).parent / "corpus/documents/atlas_small.json").read_text())
    render_site([hostile_document(seed, "a"), hostile_document(seed, "b")], out / "atlas")
    written = sorted((out / "atlas").rglob("*.html"))
    save_matrix(torch.tril(torch.ones(len(PAYLOADS), len(PAYLOADS))), PAYLOADS, out / "matrix.html", title=HOSTILE,
                name=HOSTILE)
    a, b = hostile_scores("a"), hostile_scores("b")
    save_heatmap(a, out / "heatmap.html")
    save_difference_heatmap(compare(a, b, labels=(HOSTILE, HOSTILE)), out / "compare.html")
    save_explanation(hostile_explanation(), out / "explanation.html")
    return written + [out / name for name in ("matrix.html", "heatmap.html", "compare.html", "explanation.html")]


def test_the_payload_pages_cover_every_kind(pages):
    names = {p.parent.name if p.parent.name in ("models", "heads", "patterns", "compare") else p.name for p in pages}
    assert {"index.html", "models", "patterns", "compare", "matrix.html", "heatmap.html", "compare.html",
            "explanation.html"} <= names | {p.parent.parent.name for p in pages}
    assert all(HOSTILE.split()[0] in p.read_text() or "&lt;/script&gt;" in p.read_text()
               or "\\u003c/script" in p.read_text() for p in pages)


def test_no_payload_runs_and_no_element_is_injected_in_chromium(chromium, pages):
    for path in pages:
        page = chromium.open(path)
        found = page.evaluate(CHECK)
        assert found == [], (path, found)
        text = page.evaluate("document.documentElement.innerText")
        assert "49" not in text.replace("{{7*7}}", "") or "{{7*7}}" in text, path  # never a template's output
        if page.evaluate("!!document.getElementById('search')"):  # the atlas's search lists data as text
            page.evaluate("const s = document.getElementById('search'); s.value = 'script';"
                          "s.dispatchEvent(new Event('input'))")
            assert page.evaluate(CHECK) == [], path
        if page.evaluate("!!document.querySelector('div.view table.attn td')"):  # hover: token texts shown
            page.evaluate("const c = document.querySelector('div.view table.attn td[data-q]');"
                          "c.dispatchEvent(new MouseEvent('mouseover', {bubbles: true}))")
            assert page.evaluate(CHECK) == [], path
        assert page.errors == [], (path, page.errors)


def test_the_page_modules_hold_no_markup_only_templates_do():
    """Escaping by construction: the modules that write pages build data, the templates build markup
    (a tag in an f-string would bypass autoescaping). Docstrings may name tags in backquotes."""
    import ast
    import re

    import patternlang

    root = Path(patternlang.__file__).parent
    tag = re.compile(r"<(td|tr|a|div|p|h[1-6]|table|script|span|svg|rect|li|ul|code|b|br|img|style|title)[\s>/]")
    for module in ("atlas/site.py", "report/html.py", "report/explain_html.py", "engine/prompt_matrix.py",
                   "reprs.py"):
        tree = ast.parse((root / module).read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                assert not tag.search(node.value), (module, node.value[:80])
    assert (root / "templates" / "atlas" / "page.html").is_file() and (root / "templates" / "report" / "base.html").is_file()
