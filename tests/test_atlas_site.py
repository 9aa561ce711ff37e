"""The atlas site's reading aids (issue 20, item 7 and items 3 and 5 as they apply to the atlas),
on small hand-written documents (no model): the compare page's axes, colour bars and numbers; a
signed or `rank lowest` pattern ranked its way with a two-sided map and no chance; the positional
baseline beside a pattern page's best heads; the view's state in the URL, in headless Chromium."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import pytest

from patternlang.atlas import render_site
from patternlang.atlas.assets import palettes
from patternlang.atlas.maps import TICK_HEIGHT, TICK_WIDTH, Scale, colour_bar, heatmap, top_heads
from patternlang.atlas.ranking import head_matches, is_signed, ranks_lowest, strength
from patternlang.errors import InputError

CORPUS = Path(__file__).parent / "corpus" / "documents" / "atlas_small.json"
COPYING = [[0.5, -0.2, 0.0], [-0.87, 0.3, 0.1]]  # L1H0 suppresses most, L0H1 a little, L0H0 copies


def small_document() -> dict:
    """The corpus's 2x3 document (previous_token_head, induction_head; written before positional
    baselines, rank and requires existed)."""
    return json.loads(CORPUS.read_text())


def with_signed_pattern(doc: dict, grid=COPYING, name: str = "negative_copier") -> dict:
    """`doc` with a pattern ranked lowest by the signed measure `copying`, requiring `copying < 0`."""
    doc = copy.deepcopy(doc)
    entry = copy.deepcopy(doc["patterns"]["induction_head"])
    entry.update(measure="copying", rank="lowest", requires=["copying < 0"])
    entry["scores"]["copying"] = grid
    entry["ci95"]["copying"] = {"low": [[round(v - 0.1, 3) for v in r] for r in grid],
                                "high": [[round(v + 0.1, 3) for v in r] for r in grid]}
    doc["patterns"][name] = entry
    doc["measure_bounds"]["copying"] = [None, None]
    return doc


def with_positional_baseline(doc: dict, name: str = "induction_head", **baseline) -> dict:
    doc = copy.deepcopy(doc)
    doc["patterns"][name]["positional_baseline"] = {"rule": "k == q - 7", "score": 0.9, "measure": "mass",
                                                    "pattern_is_rule": False, **baseline}
    return doc


def renamed(doc: dict, new_id: str) -> dict:
    doc = copy.deepcopy(doc)
    doc["model"].update(name=f"copy/{new_id}", id=new_id)
    return doc


def page_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def section(page: str, start: str, end: str = "</section>") -> str:
    """The part of `page` from `start` to the next `end`."""
    assert start in page, start
    found = page[page.index(start):]
    return found[:found.index(end)]


def rows_of(table_html: str) -> list[str]:
    return re.findall(r'<tr data-head="(L\d+H\d+)"', table_html)


# --------------------------------------------------------------------------- ranking


def test_strength_follows_the_pattern_way_up():
    assert strength(0.6, 0.2, 1.0) == pytest.approx(0.5)  # excess over chance
    assert strength(0.1, 0.5, 1.0, lowest=True, lower=0.0) == pytest.approx(0.8)  # (chance - score) / chance
    assert strength(-0.87, None, None, signed=True, lowest=True) == pytest.approx(0.87)
    assert strength(0.3, 0.0, None, signed=True) == pytest.approx(0.3)  # chance plays no part
    assert math.isnan(strength(None, None, None, signed=True))


def test_signed_and_lowest_are_read_from_the_measure_table_and_the_document():
    doc = with_signed_pattern(small_document())
    assert is_signed(doc, "copying") and not is_signed(doc, "mass")
    doc["measure_bounds"]["made_up"] = [-1.0, 1.0]
    assert is_signed(doc, "made_up")  # a measure this patternlang lacks: its bounds say
    assert ranks_lowest(doc, "negative_copier") and not ranks_lowest(doc, "induction_head")
    assert not ranks_lowest(doc, "negative_copier", "mass")  # `rank lowest` is for its own measure


# --------------------------------------------------------------------------- maps


def test_heatmap_has_ticks_that_never_overlap_and_a_number_per_cell():
    values = [[(la * 9 + he) / 270 for he in range(9)] for la in range(30)]
    m = heatmap(values, Scale("seq", 0.0, 1.0, "mass"), url=lambda label: label,
                title=lambda la, he, v: f"L{la}H{he}: {v:.3f}", width=120, height=220)
    ys = [float(t["y"]) for t in m["layers"]]
    xs = [float(t["x"]) for t in m["heads"]]
    assert m["layers"][0]["text"] == "L0" and m["heads"][0]["text"] == "H0"
    assert min(b - a for a, b in zip(ys, ys[1:])) >= TICK_HEIGHT
    assert len(xs) == 1 or min(b - a for a, b in zip(xs, xs[1:])) >= TICK_WIDTH
    assert len(m["rects"]) == 270 and m["rects"][-1]["title"] == f"L29H8: {269 / 270:.3f}"
    assert m["rects"][0]["colour"] == palettes()["seq"][0] and m["rects"][-1]["colour"] == palettes()["seq"][-1]


def test_diverging_scale_puts_zero_in_the_middle_of_its_bar():
    scale = Scale("div", -0.87, 0.87, "copying")
    div = palettes()["div"]
    assert scale.colour(-0.87) == div[0] and scale.colour(0.87) == div[-1]
    assert scale.colour(0.0) == div[round((len(div) - 1) / 2)]
    bar = colour_bar(scale)
    assert [t["text"] for t in bar["ticks"]] == ["-0.87", "0.00", "0.87"] and bar["label"] == "copying"


def test_top_heads_orders_by_the_way_asked():
    grid = [[0.5, None, -0.3], [0.1, -0.9, math.nan]]
    assert [(la, he) for la, he, _ in top_heads(grid, 2)] == [(0, 0), (1, 0)]
    assert [(la, he) for la, he, _ in top_heads(grid, 2, lowest=True)] == [(1, 1), (0, 2)]
    assert [(la, he) for la, he, _ in top_heads(grid, 3, by_size=True)] == [(1, 1), (0, 0), (0, 2)]


# --------------------------------------------------------------------------- schema


def test_an_old_document_without_the_new_fields_still_renders(tmp_path):
    doc = small_document()
    assert all("positional_baseline" not in e and "rank" not in e for e in doc["patterns"].values())
    render_site([doc], tmp_path)
    page = page_text(tmp_path / "patterns/induction_head.html")
    assert "no positional baseline in this document" in page and "highest mass first" in page


@pytest.mark.parametrize("field, value, words", [
    ("rank", "sideways", "rank"),
    ("requires", ["copying >> 0"], "requires"),
    ("requires", ["copying > nan"], "requires"),
    ("positional_baseline", {"rule": "k == 0", "score": "high"}, "positional_baseline"),
    ("positional_baseline", {"rule": "k == 0", "score": 1.5, "measure": "mass"}, "positional_baseline.score"),
])
def test_the_new_fields_are_checked(field, value, words, tmp_path):
    doc = small_document()
    doc["patterns"]["induction_head"][field] = value
    with pytest.raises(InputError, match=re.escape(words)):
        render_site([doc], tmp_path)
    assert not (tmp_path / "index.html").exists()


# --------------------------------------------------------------------------- pattern pages


def test_a_signed_pattern_ranked_lowest_lists_its_lowest_heads_first_with_no_chance(tmp_path):
    render_site([with_signed_pattern(small_document())], tmp_path)
    page = page_text(tmp_path / "patterns/negative_copier.html")
    best = section(page, '<section class="best-heads"')
    assert "lowest copying first" in best
    assert rows_of(best) == ["L1H0", "L0H1", "L0H2", "L1H2", "L1H1", "L0H0"]  # from -0.87 up
    assert '<td class="n score">-0.870</td>' in best
    assert "chance" not in best and "excess" not in best  # chance means nothing for a signed measure
    assert "fails copying &lt; 0" in best and best.count("fails copying") == 4  # flagged, never dropped
    maps = section(page, "<h2>Mosaic", "<h2>Best heads")
    assert "chance" not in re.sub(r"<p class=\"meta\">.*?</p>", "", maps, flags=re.S)  # hover texts, the bar
    assert 'data-kind="div" data-low="-0.87" data-high="0.87"' in maps  # two-sided, 0 in the middle
    div = palettes()["div"]
    assert re.search(rf'fill="{div[0]}" data-label="L1H0"', maps)  # the strongest suppressor: one end
    assert re.search(rf'fill="{div[round((len(div) - 1) / 2)]}" data-label="L0H2"', maps)  # 0: the middle
    assert "<title>L1H0 · negative_copier: copying -0.870</title>" in maps


def test_head_pages_show_no_chance_for_a_signed_measure_and_rank_it_lowest_first(tmp_path):
    doc = with_signed_pattern(small_document())
    doc["patterns"]["negative_copier"]["baseline"]["copying"] = 0.0  # what the engine writes (copying.no_chance)
    render_site([doc], tmp_path)
    row = section(page_text(tmp_path / "heads/hand-set-tiny/L1H0.html"), '<tr data-pattern="negative_copier">', "</tr>")
    # chance, lift, excess: none for a signed measure (the document's chance 0.0 is not shown)
    assert '<td class="n" data-v="">none (signed)</td><td class="n" data-v="">–</td><td class="n" data-v="">–</td>' in row
    assert '<td class="n" data-v="1">1 of 6</td>' in row  # -0.87: the lowest, so first
    assert all(math.isnan(m.excess) for m in head_matches(doc, 1, 0) if m.pattern == "negative_copier")


def test_the_positional_baseline_beside_a_pattern_page_best_heads(tmp_path):
    doc = small_document()
    grid = doc["patterns"]["induction_head"]
    grid["scores"]["mass"] = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.92]]
    grid["ci95"]["mass"] = {"low": [[0.0, 0.0, 0.0], [0.95, 0.0, 0.85]], "high": [[0.0, 0.0, 0.0], [1.0, 0.0, 0.97]]}
    render_site([with_positional_baseline(doc)], tmp_path)
    best = section(page_text(tmp_path / "patterns/induction_head.html"), '<section class="best-heads"')
    assert '<code class="positional-rule">k == q - 7</code> scores <b class="positional-score">0.900</b>' in best
    assert rows_of(best)[:2] == ["L1H0", "L1H2"]
    first = section(best, '<tr data-head="L1H0"', "</tr>")
    assert '<td class="n margin">0.100</td>' in first and "explained by position</b>" not in first  # 0.9 < 0.95
    second = section(best, '<tr data-head="L1H2"', "</tr>")
    assert '<td class="n margin">0.020</td>' in second and "explained by position</b>" in second  # 0.9 >= 0.85
    below = section(best, '<tr data-head="L0H0"', "</tr>")  # at chance: not a candidate, not flagged
    assert '<td class="flag">–</td>' in below
    # A pattern that is itself its best positional rule is never "explained by position".
    render_site([with_positional_baseline(doc, "previous_token_head", rule="k == q - 1", score=1.0,
                                          pattern_is_rule=True)], tmp_path / "rule")
    best = section(page_text(tmp_path / "rule/patterns/previous_token_head.html"), '<section class="best-heads"')
    assert "the pattern is itself this rule" in best and "explained by position</b>" not in best


# --------------------------------------------------------------------------- compare page


def test_compare_page_maps_have_axes_a_shared_colour_bar_and_numbers(tmp_path):
    a = with_signed_pattern(small_document())
    b = with_signed_pattern(renamed(small_document(), "other"), grid=[[0.4, -0.1, 0.0], [-0.5, 0.6, 0.1]])
    b["patterns"]["induction_head"]["scores"]["mass"][1][0] = 0.8
    render_site([a, b], tmp_path)
    page = page_text(tmp_path / "compare/hand-set-tiny__other.html")
    induction = section(page, '<section class="compare-pattern" data-pattern="induction_head"')
    assert induction.count('<svg class="mosaic-svg heatmap"') == 3  # A, B and B − A
    for tick in (">L0</text>", ">L1</text>", ">H0</text>", ">H2</text>"):
        assert induction.count(tick) == 3, tick
    maps = re.findall(r'<svg class="mosaic-svg heatmap".*?</svg>', induction, flags=re.S)
    assert all(m.count("<rect") == m.count("<title>L") == 6 for m in maps)  # every cell has its numbers
    assert "<title>L1H0 · induction_head: mass 1.000 (chance 0.085, excess over chance 1.00)</title>" in maps[0]
    assert "<title>L1H0 · induction_head: mass 0.800 (chance 0.085, excess over chance 0.78)</title>" in maps[1]
    shared = section(induction, '<div class="shared-bar">', "</div></div>")
    assert "mass: excess over chance" in shared and 'data-low="0.00" data-high="1.00"' in shared
    assert "change in mass: excess over chance, other − hand-set-tiny" in induction
    top = re.findall(r'<caption class="meta">top 5</caption>.*?</table>', induction, flags=re.S)
    assert len(top) == 2 and ">L1H0</a></td><td class=\"n\">1.000</td>" in top[0]
    assert ">L1H0</a></td><td class=\"n\">0.800</td>" in top[1]
    assert "L1H0 · induction_head: change in mass: excess over chance, other − hand-set-tiny: -0.219<" in induction
    signed = section(page, '<section class="compare-pattern" data-pattern="negative_copier"')
    assert "lowest first" in signed and "excess" not in signed.split("Hover")[1].split("change in")[0]
    assert 'data-kind="div" data-low="-0.87" data-high="0.87"' in signed  # shared by both models
    first_top = re.findall(r"<caption.*?</table>", signed, flags=re.S)[0]
    assert first_top.index(">L1H0<") < first_top.index(">L0H1<") < first_top.index(">L1H1<")
    assert ">L0H0<" not in first_top  # the one copying most is last of six: not in the top 5


# --------------------------------------------------------------------------- in a real browser
# (the `chromium` fixture is conftest.py's)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    doc = with_positional_baseline(with_signed_pattern(small_document()))
    render_site([doc, renamed(doc, "other")], out)
    return out


def opened(chromium, site: Path, url: str, hash_: str = ""):
    """A page of the site opened by its URL with `hash_`, as a link would open it."""
    start = "index.html" if url != "index.html" else "models/hand-set-tiny.html"  # a load event: another page
    page = chromium.open(site / start)
    page.navigate((site / url).as_uri() + hash_)
    return page


def test_the_model_page_view_lives_in_the_url(chromium, site):
    page = opened(chromium, site, "models/hand-set-tiny.html", "#colour=induction_head&t=0.5&measure=mass")
    assert page.evaluate("document.getElementById('f-pattern').value") == "induction_head"
    assert page.evaluate("document.getElementById('f-measure').value") == "mass"
    assert page.evaluate("document.getElementById('f-threshold').value") == "0.5"
    assert page.evaluate("document.getElementById('f-threshold-value').textContent") == "0.50"
    before = page.evaluate("history.length")
    page.evaluate("var s = document.getElementById('f-pattern'); s.value = 'previous_token_head';"
                  "s.dispatchEvent(new Event('change'))")
    page.evaluate("var t = document.getElementById('f-threshold'); t.value = '0.3';"
                  "t.dispatchEvent(new Event('input')); t.dispatchEvent(new Event('change'))")
    hash_ = page.evaluate("location.hash")
    assert "colour=previous_token_head" in hash_ and "t=0.3" in hash_ and "measure=mass" in hash_
    assert page.evaluate("history.length") == before  # replaced, not pushed
    page.click("#head-table thead th:nth-child(3)", navigates=False)  # sort by score
    page.click("#head-table thead th:nth-child(3)", navigates=False)  # descending
    hash_ = page.evaluate("location.hash")
    assert "sort.head-table=2.d" in hash_
    order = page.evaluate("Array.from(document.querySelectorAll('#head-table tbody tr')).map(r => r.cells[0].textContent)")
    # The linked view opens as it was left: same colour, threshold and sort.
    again = opened(chromium, site, "models/hand-set-tiny.html", hash_)
    assert again.evaluate("document.getElementById('f-pattern').value") == "previous_token_head"
    assert again.evaluate("document.getElementById('f-threshold').value") == "0.3"
    assert again.evaluate("Array.from(document.querySelectorAll('#head-table tbody tr'))"
                          ".map(r => r.cells[0].textContent)") == order
    assert again.evaluate("document.querySelector('#head-table thead th:nth-child(3)').className") == "desc"
    # A state naming what the page lacks is ignored, not obeyed.
    odd = opened(chromium, site, "models/hand-set-tiny.html", "#colour=%3Cscript%3E&t=abc&sort.head-table=99.a")
    assert odd.evaluate("document.getElementById('f-pattern').value") == "verdict" or \
        odd.evaluate("document.getElementById('f-pattern').value") == ""
    assert odd.evaluate("document.getElementById('f-threshold').value") == "0.2"
    assert page.errors == [] and again.errors == [] and odd.errors == []


def test_search_and_sorts_live_in_the_url_on_index_and_pattern_pages(chromium, site):
    page = opened(chromium, site, "index.html")
    page.evaluate("var b = document.getElementById('search'); b.value = 'L1H0'; b.dispatchEvent(new Event('input'))")
    assert page.evaluate("location.hash") == "#q=L1H0"
    page.click("#patterns thead th:nth-child(1)", navigates=False)
    page.click("#patterns thead th:nth-child(1)", navigates=False)
    assert page.evaluate("location.hash") == "#q=L1H0&sort.patterns=0.d"
    names = page.evaluate("Array.from(document.querySelectorAll('#patterns tbody tr')).map(r => r.cells[0].textContent)")
    assert names == sorted(names, reverse=True) and len(names) == 3
    index = opened(chromium, site, "index.html", "#sort.patterns=0.d")
    assert index.evaluate("Array.from(document.querySelectorAll('#patterns tbody tr')).map(r => r.cells[0].textContent)") \
        == names
    linked = opened(chromium, site, "patterns/induction_head.html", "#q=L1H0")
    assert linked.evaluate("document.getElementById('search').value") == "L1H0"
    assert linked.evaluate("document.querySelectorAll('#search-results a').length") == 2  # one per model
    linked.click("#best-1 thead th:nth-child(2)", navigates=False)  # sort the best heads by head
    assert "sort.best-1=1.a" in linked.evaluate("location.hash") and "q=L1H0" in linked.evaluate("location.hash")
    heads = linked.evaluate("Array.from(document.querySelectorAll('#best-1 tbody tr')).map(r => r.dataset.head)")
    assert heads == sorted(heads)
    again = opened(chromium, site, "patterns/induction_head.html", linked.evaluate("location.hash"))
    assert again.evaluate("Array.from(document.querySelectorAll('#best-1 tbody tr')).map(r => r.dataset.head)") == heads
    assert page.errors == [] and linked.errors == [] and again.errors == [] and index.errors == []


def test_the_model_page_draws_a_signed_pattern_two_sided_without_chance(chromium, site):
    page = opened(chromium, site, "models/hand-set-tiny.html", "#colour=negative_copier")
    title = page.evaluate("document.querySelector('td.cell[data-label=\"L1H0\"]').title")
    assert "copying -0.870" in title and "chance" not in title and "lift" not in title and "lowest first" in title
    ends = page.evaluate("[Atlas.div(-1), Atlas.div(1)]")
    colours = page.evaluate("['L1H0', 'L0H0'].map(l => getComputedStyle(document.querySelector("
                            "'td.cell[data-label=\"' + l + '\"]')).backgroundColor)")
    probe = page.evaluate("(function (hex) { var d = document.createElement('div'); d.style.background = hex;"
                          "document.body.appendChild(d); var c = getComputedStyle(d).backgroundColor; d.remove();"
                          "return c; })(" + json.dumps(ends[0]) + ")")
    assert colours[0] == probe  # the strongest suppressor at the scale's end
    assert colours[1] != colours[0]
    assert page.errors == []


def test_the_script_strength_equals_the_python_one(chromium, site):
    page = opened(chromium, site, "index.html")
    cases = [(0.6, 0.2, 1.0, None, False, False), (0.1, 0.5, 1.0, 0.0, False, True), (-0.87, None, None, None, True, True),
             (0.3, 0.0, None, None, True, False), (0.7, 0.2, None, None, False, False)]
    for s, b, hi, lo, signed, lowest in cases:
        js = page.evaluate(f"Atlas.strength({json.dumps(s)}, {json.dumps(b)}, {json.dumps(hi)}, {json.dumps(lo)}, "
                           f"{json.dumps(signed)}, {json.dumps(lowest)})")
        assert js == pytest.approx(strength(s, b, hi, signed=signed, lowest=lowest, lower=lo))


def test_the_model_page_heads_table_gives_each_head_its_verdict(tmp_path):
    doc = small_document()
    doc["heads"]["L0H0"]["verdict"] = {"label": "previous_token_head", "sink_share": 0.1}
    doc["heads"]["L0H1"]["verdict"] = {"label": None, "sink_share": 0.7}
    doc["heads"]["L1H2"]["verdict"] = {"label": "induction_head", "sink_share": 0.2, "explained_by_position": True}
    render_site([doc], tmp_path)
    page = page_text(next((tmp_path / "models").glob("*.html")))
    table = section(page, 'id="head-table"', "</table>")
    assert "<th" in table and ">verdict</th>" in table
    cells = {head: re.search(rf'>{head}</a></td><td>([^<]*)</td>', table).group(1) for head in ("L0H0", "L0H1", "L1H2", "L1H0")}
    assert cells == {"L0H0": "previous_token_head", "L0H1": "none",
                     "L1H2": "induction_head (explained by position)", "L1H0": "–"}


def test_a_document_older_than_pattern_is_rule_reads_it_from_the_rule(tmp_path):
    """A baseline stored before `pattern_is_rule` existed: the pattern that *is* the rule
    (`k == q - 1`) is not "explained by position", on the head's verdict and on the pattern page
    (the schema's normalisation must not fill the missing field with False)."""
    from patternlang.atlas.schema import normalised_document
    from patternlang.atlas.ranking import head_verdict

    doc = small_document()
    entry = doc["patterns"]["previous_token_head"]
    entry["rule"] = "attend k where k == q - 1"
    entry["positional_baseline"] = {"rule": "k == q - 1", "score": 1.0, "measure": "mass"}  # no pattern_is_rule
    doc = normalised_document(doc, "old.json")
    assert doc["patterns"]["previous_token_head"]["positional_baseline"]["pattern_is_rule"] is None
    best = max(((la, he) for la in range(2) for he in range(3)),
               key=lambda c: entry["scores"]["mass"][c[0]][c[1]])
    found = head_verdict(doc, *best)
    assert found.label == "previous_token_head" and not found.explained_by_position
    wrong = copy.deepcopy(doc)  # a document that stored False for it (as a version of this stop did)
    wrong["patterns"]["previous_token_head"]["positional_baseline"]["pattern_is_rule"] = False
    assert head_verdict(wrong, *best).label == "previous_token_head"
    render_site([doc], tmp_path)
    page = page_text(next((tmp_path / "patterns").glob("previous_token_head*.html")))
    flags = re.findall(r'<td class="flag">(.*?)</td>', section(page, "<table", "</table>"))
    assert flags and not any("position" in flag for flag in flags)


def test_render_only_shows_verdicts_by_this_versions_rules_not_the_stored_ones(tmp_path):
    from patternlang.atlas import write_document
    from patternlang.atlas.cli import run_atlas
    from patternlang.atlas.document import add_verdicts

    doc = small_document()
    add_verdicts(doc)
    label, current = next((la, h["verdict"]["label"]) for la, h in doc["heads"].items() if h["verdict"]["label"])
    stale = "induction_head" if current != "induction_head" else "previous_token_head"
    doc["heads"][label]["verdict"]["label"] = stale  # what an older version might have stored
    write_document(doc, tmp_path)
    run_atlas(tmp_path, render_only=True, say=lambda text: None)
    table = section(page_text(next((tmp_path / "models").glob("*.html"))), 'id="head-table"', "</table>")
    shown = re.search(rf'>{label}</a></td><td>([^<]*)</td>', table).group(1)
    assert shown == current != stale


def test_a_head_page_with_a_verdict_says_no_second_contradicting_best_match(tmp_path):
    """The old "best match / no pattern clearly matches" note ranks by excess in each pattern's own
    measure, which a signed pattern lacks: beside a verdict (which names label, runner-up and margin)
    it could say "no pattern clearly matches" under "Verdict: negative_name_mover_head"."""
    from patternlang.atlas.document import add_verdicts

    old = small_document()  # no verdicts stored: the note stays
    render_site([old], tmp_path / "old")
    assert "Best match" in page_text(tmp_path / "old/heads/hand-set-tiny/L0H0.html")
    with_verdicts = copy.deepcopy(old)
    add_verdicts(with_verdicts)
    render_site([with_verdicts], tmp_path / "new")
    page = page_text(tmp_path / "new/heads/hand-set-tiny/L0H0.html")
    assert "Verdict" in page and not any(words in page for words in ("Best match", "clearly matches", "Ambiguous"))
