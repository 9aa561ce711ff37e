"""The head atlas: its documents (built on the hand-set model, whose heads are known), the site
rendered from them alone, the command, and the pages in a real headless Chromium."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from patternlang.atlas import FORMAT, build_atlas, build_document, load_documents, read_document, render_site
from patternlang.atlas.document import EXAMPLE_TOKENS, model_id
from patternlang.atlas.ranking import best_pattern, contenders, excess, head_matches
from patternlang.errors import InputError
from patternlang.settings import ProbeSpec
from patternlang.testing.hand_set import (BOS_HEAD, INDUCTION_HEAD, PREVIOUS_TOKEN_HEAD, UNIFORM_HEAD,
                                          make_hand_set_model)

PATTERNS = ["previous_token_head", "induction_head", "bos_head"]
PROBE = ProbeSpec("repeated_random", (("length", 12), ("batch", 6)))


@pytest.fixture(scope="module")
def model():
    return make_hand_set_model(n_ctx=512)


@pytest.fixture(scope="module")
def atlas_dir(tmp_path_factory, model) -> Path:
    out = tmp_path_factory.mktemp("atlas")
    build_atlas([model], out, patterns=PATTERNS, probe=PROBE)
    return out


@pytest.fixture(scope="module")
def doc(atlas_dir) -> dict:
    return load_documents(atlas_dir)[0]


def test_document_holds_scores_with_their_evidence(doc):
    assert doc["format"] == FORMAT
    assert doc["model"]["n_layers"] == 2 and doc["model"]["n_heads"] == 3
    assert list(doc["patterns"]) == PATTERNS
    entry = doc["patterns"]["induction_head"]
    assert entry["probe"] == str(PROBE) and entry["rule"] and entry["measure"] == "mass"
    assert entry["n_prompts"] == 6 and entry["n_rows"] > 0 and 0 < entry["baseline"]["mass"] < 1
    layer, head = INDUCTION_HEAD
    assert entry["scores"]["mass"][layer][head] > 0.99
    assert entry["ci95"]["mass"]["low"][layer][head] <= entry["scores"]["mass"][layer][head]
    best = entry["best_prompts"][layer][head]
    assert len(best) == 3 and all(0 <= i < 6 for i, _ in best)
    assert len(doc["probes"][str(PROBE)]["digest"]) == 16


def test_each_head_best_pattern_and_examples(doc):
    for (layer, head), name in ((PREVIOUS_TOKEN_HEAD, "previous_token_head"), (INDUCTION_HEAD, "induction_head"),
                                (BOS_HEAD, "bos_head")):
        assert best_pattern(doc, layer, head) == name
        drawn = doc["heads"][f"L{layer}H{head}"]
        assert drawn["pattern"] == name
        example = drawn["examples"][0]
        n = example["n_tokens"]
        assert n <= EXAMPLE_TOKENS and len(example["attention"]) == len(example["matrix"]) == n * (n + 1) // 2
        assert len(doc["prompts"][example["probe"]][str(example["prompt"])]) == n
    # The previous-token head puts (almost) all its attention on k = q - 1.
    example = doc["heads"]["L0H0"]["examples"][0]
    assert example["attention"][1:3] == [1000, 0]  # row 1: keys 0, 1


def test_statistics(doc):
    stats = doc["stats"]
    assert stats["bos"][BOS_HEAD[0]][BOS_HEAD[1]] > 0.99
    assert stats["distance"][PREVIOUS_TOKEN_HEAD[0]][PREVIOUS_TOKEN_HEAD[1]] == pytest.approx(1.0, abs=0.01)
    assert stats["entropy"][PREVIOUS_TOKEN_HEAD[0]][PREVIOUS_TOKEN_HEAD[1]] < 0.01
    uniform = stats["entropy"][UNIFORM_HEAD[0]][UNIFORM_HEAD[1]]
    assert uniform > 1.0  # log of the row length, on average


def test_ranking_by_excess_over_chance():
    assert excess(0.5, 0.5, 1.0) == 0.0 and excess(1.0, 0.2, 1.0) == 1.0
    assert excess(0.6, 0.2, None) == pytest.approx(0.4)
    assert math.isnan(excess(None, 0.2, 1.0))


def test_ambiguous_head_names_every_contender(doc):
    twin = copy.deepcopy(doc)
    twin["patterns"]["induction_twin"] = copy.deepcopy(twin["patterns"]["induction_head"])
    matches = head_matches(twin, *INDUCTION_HEAD)
    assert {m.pattern for m in contenders(matches)} == {"induction_head", "induction_twin"}


def test_rerun_with_one_more_pattern_scores_only_it(model, doc, monkeypatch):
    import patternlang.engine.survey as survey_module

    scored = []
    real = survey_module.survey

    def spy(model, patterns=None, **kwargs):
        scored.append([p.name for p in patterns])
        return real(model, patterns, **kwargs)

    monkeypatch.setattr(survey_module, "survey", spy)
    grown = build_document(model, [*PATTERNS, "current_token_head"], probe=PROBE, existing=copy.deepcopy(doc))
    assert scored == [["current_token_head"]]
    assert list(grown["patterns"]) == [*PATTERNS, "current_token_head"]
    assert grown["patterns"]["induction_head"] == doc["patterns"]["induction_head"]
    assert grown["heads"]["L1H1"]["pattern"] == "current_token_head"  # drawn anew: its best changed
    scored.clear()
    again = build_document(model, [*PATTERNS, "current_token_head"], probe=PROBE, existing=copy.deepcopy(grown))
    assert scored == [] and again["patterns"] == grown["patterns"]


def test_document_of_another_model_is_refused(model, doc):
    other = copy.deepcopy(doc)
    other["model"]["name"] = "someone-else"
    with pytest.raises(InputError, match="not of hand-set-tiny"):
        build_document(model, PATTERNS, probe=PROBE, existing=other)
    with pytest.raises(InputError, match="not a patternlang atlas document"):
        render_site([{"format": "patternlang.scores/2"}], Path("unused"))


def test_site_is_rendered_from_documents_alone(atlas_dir, doc, tmp_path):
    # Merging: a second model's document (another shape) beside the first; no model is loaded.
    second = copy.deepcopy(doc)
    second["model"].update(name="copy/renamed", id=model_id("copy/renamed"))
    out = tmp_path / "site"
    written = render_site([doc, second], out)
    names = {p.relative_to(out).as_posix() for p in written}
    assert {"index.html", "models/hand-set-tiny.html", "heads/hand-set-tiny/L1H0.html",
            "patterns/induction_head.html", "compare/hand-set-tiny__renamed.html",
            "assets/atlas.js", "assets/search-index.js"} <= names
    model_page = (out / "models/hand-set-tiny.html").read_text()
    assert model_page.count('class="cell"') == 6
    assert 'href="../heads/hand-set-tiny/L1H0.html"' in model_page
    for path in written:  # nothing from the network
        text = path.read_text()
        assert "http://" not in text and "https://" not in text, path
    head_page = (out / "heads/hand-set-tiny/L1H0.html").read_text()
    assert f'{doc["patterns"]["induction_head"]["scores"]["mass"][1][0]:.3f}' in head_page
    index = (out / "assets/search-index.js").read_text()
    assert '"L1H0"' in index and '"induction_head"' in index


def test_cli_builds_and_renders(tmp_path, doc, atlas_dir):
    from typer.testing import CliRunner

    from patternlang.cli import app

    out = tmp_path / "atlas"
    (out / "data").mkdir(parents=True)
    source = tmp_path / "elsewhere.json"
    source.write_text(json.dumps(doc))
    result = CliRunner().invoke(app, ["atlas", "--out", str(out), "--add", str(source), "--render-only"])
    assert result.exit_code == 0, result.output
    assert (out / "index.html").is_file() and read_document(out / "data/hand-set-tiny.json")["model"] == doc["model"]
    result = CliRunner().invoke(app, ["atlas", "--out", str(tmp_path / "empty"), "--render-only"])
    assert isinstance(result.exception, InputError) and "no atlas documents" in str(result.exception)


def _cell(page: str, label: str) -> tuple[str, str]:
    """The opening tag of a head's cell on the model map, and the letter inside it."""
    import re

    found = re.search(r'(<td class="cell"[^>]*data-label="' + label + r'"[^>]*>)<a [^>]*>([^<]*)</a>', page)
    assert found, label
    return found[1], found[2]


def test_model_map_labels_heads_by_verdict_with_the_sink_as_a_shade(doc, tmp_path):
    render_site([doc], tmp_path)
    page = (tmp_path / "models/hand-set-tiny.html").read_text()
    assert '<option value="verdict" selected>' in page
    tag, letter = _cell(page, "L1H0")
    assert 'data-verdict="induction_head"' in tag and letter == "I"
    tag, letter = _cell(page, "L0H0")
    assert 'data-verdict="previous_token_head"' in tag and letter == "PT"
    for label in ("L0H1", "L1H1"):  # no verdict: no letter
        tag, letter = _cell(page, label)
        assert 'data-verdict=""' in tag and letter == ""
    # The sink head: a full band (its share of attention on BOS is 1), never the letter B.
    tag, letter = _cell(page, "L0H2")
    assert letter == "" and 'data-sink="1.00"' in tag and "inset 0 -18px 0" in tag
    tag, _ = _cell(page, "L1H1")
    assert "inset 0 -1px 0" in tag  # a share of 0.04: a thin band
    data = json.loads(page.split('id="atlas-data">')[1].split("</script>")[0])
    assert data["verdicts"]["L0H2"] == {"p": "bos_head", "sink": 1.0, "shown": False}


def test_head_page_shows_the_verdict(doc, tmp_path):
    render_site([doc], tmp_path)
    page = (tmp_path / "heads/hand-set-tiny/L1H0.html").read_text()
    verdict = doc["heads"]["L1H0"]["verdict"]
    assert 'id="verdict"' in page
    assert '<b class="verdict-label"><a href="../../patterns/induction_head.html">induction_head</a></b>' in page
    assert '<b class="runner-up">previous_token_head</b>' in page
    assert f'<b class="margin">{verdict["margin"]:.2f}</b>' in page
    assert f'<b class="sink-share">{verdict["sink_share"]:.2f}</b>' in page
    assert "footing: all on repeated_random(length=12, batch=6)" in page
    assert "explained by position: no" in page or "best positional rule" not in page
    assert "95% interval 1.000 – 1.000" in page and "79 rows, 6 prompts" in page
    none = (tmp_path / "heads/hand-set-tiny/L1H1.html").read_text()
    assert '<b class="verdict-label">none</b>' in none and "closest: induction_head" in none
    assert "evidence:" not in none  # no label: no evidence to show
    # A verdict explained by position says so, and a hostile reason comes out escaped.
    twin = copy.deepcopy(doc)
    twin["heads"]["L1H0"]["verdict"].update(explained_by_position=True, reason="<script>x</script>",
                                            position={"rule": "k == q - 1", "score": 0.9, "margin": 0.05})
    render_site([twin], tmp_path / "twin")
    page = (tmp_path / "twin/heads/hand-set-tiny/L1H0.html").read_text()
    assert '<b class="explained">explained by position</b>' in page and "explained by position: yes" in page
    assert "<code>k == q - 1</code> scores 0.90" in page
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page


def test_verdict_fields_are_checked(doc):
    bad = copy.deepcopy(doc)
    bad["heads"]["L1H0"]["verdict"]["margin"] = "large"
    with pytest.raises(InputError, match="margin"):
        render_site([bad], Path("unused"))
    bad = copy.deepcopy(doc)
    bad["heads"]["L1H0"]["verdict"]["passed_over"] = ["x" * 100_000]
    with pytest.raises(InputError, match="passed_over"):
        render_site([bad], Path("unused"))


def test_pattern_page_shows_its_docstring_once(doc, tmp_path):
    render_site([doc], tmp_path)
    page = (tmp_path / "patterns/induction_head.html").read_text()
    assert page.count("Induction head: attends to the token right after") == 1


def test_head_page_lists_prompts_by_their_text(doc, tmp_path):
    twin = copy.deepcopy(doc)
    for probe in twin["probes"].values():
        probe["previews"] = None  # the texts come from the document's tokens
    entry = doc["patterns"]["induction_head"]
    index = entry["best_prompts"][1][0][0][0]
    twin["prompts"][entry["probe"]][str(index)] = ["<b>tok", "en</b>", " two"]
    render_site([twin], tmp_path)
    page = (tmp_path / "heads/hand-set-tiny/L1H0.html").read_text()
    assert f"prompt {index}: " in page and "&lt;b&gt;token&lt;/b&gt; two" in page and "<b>token" not in page


def test_cli_says_the_size_of_the_site(tmp_path, doc):
    from typer.testing import CliRunner

    from patternlang.cli import app

    source = tmp_path / "doc.json"
    source.write_text(json.dumps(doc))
    out = tmp_path / "atlas"
    result = CliRunner().invoke(app, ["atlas", "--out", str(out), "--add", str(source), "--render-only"])
    assert result.exit_code == 0, result.output
    n_files = sum(1 for p in out.rglob("*") if p.is_file())
    assert f"{n_files} files, " in result.output and " MiB" in result.output and " MB)" not in result.output


def test_effects_are_added_and_shown(model, atlas_dir, tmp_path):
    import shutil

    out = tmp_path / "atlas"
    shutil.copytree(atlas_dir / "data", out / "data")
    build_atlas([model], out, patterns=PATTERNS, probe=PROBE, effects=["loss"], effects_top_k=1)
    doc = load_documents(out)[0]
    entry = doc["effects"]["loss"]
    assert entry["direction"] == "lower" and len(entry["heads"]) == 6
    exact = [label for label, e in entry["heads"].items() if e["ablation"] is not None]
    assert len(exact) == 1
    label = exact[0]
    page = (out / f"heads/hand-set-tiny/{label}.html").read_text()
    effect = entry["heads"][label]
    assert '<table class="data" id="effects">' in page and "lower is better" in page
    assert f'<td class="n estimate">{effect["estimate"]:.3f}</td>' in page
    assert f'<td class="n ablation">{effect["ablation"]:.3f}</td>' in page
    other = next(x for x in entry["heads"] if x != label)
    assert '<td class="n ablation">–</td>' in (out / f"heads/hand-set-tiny/{other}.html").read_text()
    model_page = (out / "models/hand-set-tiny.html").read_text()
    assert '<figure data-metric="loss">' in model_page and f"{label} effect on loss: " in model_page
    assert model_page.count("<rect ") == 6


def test_effects_in_a_document_are_checked(doc):
    good = copy.deepcopy(doc)
    good["effects"] = {"loss": {"direction": "lower", "method": "zero", "n_prompts": 6,
                                "heads": {"L1H0": {"estimate": 0.5, "ablation": None, "ci": [0.1, 0.9]}}}}
    for heads in ({"L9H0": {"estimate": 0.5}}, {"L1H0": {"estimate": "big"}}, {"L1H0": {"ci": [1.0]}}):
        bad = copy.deepcopy(good)
        bad["effects"]["loss"]["heads"] = heads
        with pytest.raises(InputError, match="effects"):
            render_site([bad], Path("unused"))


def test_cli_effects_option(tmp_path):
    from typer.testing import CliRunner

    from patternlang.cli import app

    result = CliRunner().invoke(app, ["atlas", "--out", str(tmp_path), "--render-only", "--effects", "loss"])
    assert isinstance(result.exception, InputError) and "--effects" in str(result.exception)
    result = CliRunner().invoke(app, ["atlas", "--out", str(tmp_path), "--effects", "no_such_metric"])
    assert "unknown metric 'no_such_metric'" in str(result.exception)  # checked before a model is loaded
    assert "loading" not in result.output
    result = CliRunner().invoke(app, ["atlas", "--out", str(tmp_path), "--render-only", "--describe"])
    assert isinstance(result.exception, InputError) and "--describe" in str(result.exception)


def test_descriptions_are_added_and_shown(model, atlas_dir, tmp_path):
    import shutil

    out = tmp_path / "atlas"
    shutil.copytree(atlas_dir / "data", out / "data")
    build_atlas([model], out, patterns=PATTERNS, probe=PROBE, describe=True)
    doc = load_documents(out)[0]
    described = doc["heads"]["L0H0"]["description"]  # the previous-token head
    assert described["rule"] and "q - 1" in described["rule"] and described["above_chance"]
    assert 0 < described["score"] <= 1 and 0 < described["iou"] <= 1
    page = (out / "heads/hand-set-tiny/L0H0.html").read_text()
    assert 'id="description"' in page and '<pre class="rule described-rule">' in page
    assert f'<b class="described-score">{described["score"]:.3f}</b>' in page
    assert f'<b class="described-iou">{described["iou"]:.3f}</b>' in page
    mixture = described["mixture"]  # the weighted description: rules of the language, weights on the simplex
    assert mixture and all(0 <= part["weight"] <= 1 for part in mixture)
    assert sum(part["weight"] for part in mixture) == pytest.approx(1, abs=1e-3)
    assert 'class="data mixture"' in page and f'<b class="mixture-fit">{described["mixture_fit"]:.3f}</b>' in page
    # The model map coloured by description: the head's rule in its cell's title, families in the legend.
    model_page = next((out / "models").glob("*.html")).read_text()
    assert "<h2>Descriptions</h2>" in model_page and described["family"] in model_page
    assert f'<title>L0H0: {described["rule"]} ({described["family"]};' in model_page
    # Optional: without --describe no head has one, and no page shows the section.
    assert all(h.get("description") is None for h in load_documents(atlas_dir)[0]["heads"].values())
    assert 'id="description"' not in (atlas_dir / "heads/hand-set-tiny/L0H0.html").read_text()
    assert "<h2>Descriptions</h2>" not in next((atlas_dir / "models").glob("*.html")).read_text()


def test_descriptions_in_a_document_are_checked(doc, tmp_path):
    twin = copy.deepcopy(doc)
    twin["heads"]["L1H2"]["description"] = {"rule": "<i>attend</i> k where k == 0", "score": 0.5, "iou": 0.25,
                                            "interval": [0.4, 0.6], "above_chance": True}
    render_site([twin], tmp_path)
    page = (tmp_path / "heads/hand-set-tiny/L1H2.html").read_text()
    assert "&lt;i&gt;attend&lt;/i&gt; k where k == 0" in page and "<i>attend" not in page
    for bad_value in ({"score": "high"}, {"interval": [0.1]}, {"rule": "x" * 300_000}):
        bad = copy.deepcopy(doc)
        bad["heads"]["L1H2"]["description"] = bad_value
        with pytest.raises(InputError, match="description"):
            render_site([bad], tmp_path / "bad")


# --------------------------------------------------------------------------- in a real browser
# (the `chromium` fixture is conftest.py's)


def test_pages_in_chromium(chromium, atlas_dir, doc, tmp_path):
    second = copy.deepcopy(doc)
    second["model"].update(name="copy/renamed", id=model_id("copy/renamed"))
    render_site([doc, second], atlas_dir)

    page = chromium.open(atlas_dir / "models/hand-set-tiny.html")
    assert page.evaluate("document.querySelectorAll('#head-grid td.cell').length") == 2 * 3
    colours = page.evaluate("Array.from(document.querySelectorAll('#head-grid td.cell')).map(c => c.style.background)")
    assert sum(bool(c) for c in colours) == 6  # the script coloured every cell
    title = page.evaluate("document.querySelector('td.cell[data-label=\"L1H0\"]').title")
    assert "induction_head" in title and "lift" in title and "prompts" in title
    page.screenshot(tmp_path / "model.png")
    page.click('td.cell[data-label="L1H0"] a')
    assert page.evaluate("location.pathname").endswith("/heads/hand-set-tiny/L1H0.html")

    shown = page.evaluate("Object.fromEntries(Array.from(document.querySelectorAll('#scores tbody tr'))"
                          ".map(r => [r.dataset.pattern, r.querySelector('td.score').textContent]))")
    for name in PATTERNS:
        assert shown[name] == f'{doc["patterns"][name]["scores"]["mass"][1][0]:.3f}'
    n = doc["heads"]["L1H0"]["examples"][0]["n_tokens"]
    assert page.evaluate("document.querySelector('div.view table.attn').rows.length") == n
    page.screenshot(tmp_path / "head.png")

    for url in ("patterns/induction_head.html", "compare/hand-set-tiny__renamed.html", "index.html"):
        other = chromium.open(atlas_dir / url)
        assert other.evaluate("document.querySelectorAll('main h1').length") == 1
        assert other.errors == [], (url, other.errors)
    pattern = chromium.open(atlas_dir / "patterns/induction_head.html")
    assert pattern.evaluate("document.querySelectorAll('.mosaic svg').length") == 2
    pattern.evaluate("document.getElementById('search').value = 'L1H0';"
                     "document.getElementById('search').dispatchEvent(new Event('input'))")
    assert pattern.evaluate("document.querySelectorAll('#search-results a').length") == 2  # one per model
    assert page.errors == [] and pattern.errors == []


# --------------------------------------------------------------------------- real models


def test_gemma_is_claimed_by_its_short_name():
    from patternlang.models import resolve_model_spec

    for name in ("gemma-3-270m", "Gemma3-270M"):
        assert resolve_model_spec(name).source == "gemma"
    assert resolve_model_spec(None).source == "embedded"


@pytest.mark.model
def test_atlas_document_of_the_embedded_model(embedded_model):
    doc = build_document(embedded_model, ["previous_token_head", "bos_head"],
                         probe=ProbeSpec("repeated_random", (("length", 10), ("batch", 4))))
    assert (doc["model"]["n_layers"], doc["model"]["n_heads"]) == (30, 9)
    assert doc["model"]["quantisation"] and len(doc["heads"]) > 0
    assert len(doc["stats"]["bos"]) == 30 and all(0 <= v <= 1 for row in doc["stats"]["bos"] for v in row)
