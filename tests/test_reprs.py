"""Text reprs and Jupyter HTML of Pattern, Prompts and Scores (no kernel, no model); `dir(patternlang)`."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
import textwrap
from html.parser import HTMLParser

import pytest
import torch

import patternlang as pl
from patternlang import reprs
from patternlang.engine.scores import Scores
from patternlang.pattern import Pattern
from patternlang.prompts import Prompts

VOID = {"br", "col", "img", "hr", "meta", "input", "wbr"}


class _Checker(HTMLParser):
    """Collects tags and text; fails on a closing tag that does not match the open one."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parsed(markup: str) -> _Checker:
    """Parse HTML, check that its tags nest, and that it is self-contained (no script, style sheet or link)."""
    checker = _Checker()
    checker.feed(markup)
    checker.close()
    assert checker.stack == [], f"unclosed tags: {checker.stack}"
    assert not {"script", "style", "link", "iframe", "img"} & set(checker.tags)
    assert "http://" not in markup and "https://" not in markup
    return checker


def text_of(markup: str) -> str:
    return "".join(parsed(markup).text)


def one_line(text: str, limit: int = 300) -> None:
    assert "\n" not in text and len(text) <= limit, text


# --------------------------------------------------------------------------- Pattern


def test_pattern_repr_is_one_line_with_name_and_rule():
    induction = pl.load_pattern("induction_head")
    text = repr(induction)
    one_line(text)
    assert text.startswith("Pattern('induction_head', rule='attend k where tok[k] == tok[q] shift +1")


def test_inline_rule_repr_names_the_rule_once():
    assert repr(pl.compile_rule("attend k where k == q - 1")) == "Pattern('attend k where k == q - 1')"


def test_a_long_rule_is_cut_in_the_repr():
    rule = " or ".join(f"k == q - {i}" for i in range(1, 60))
    text = repr(pl.compile_rule(f"attend k where {rule}", name="wide"))
    one_line(text)
    assert text.endswith("…')")


def test_pattern_html_shows_doc_rule_settings_and_the_sample_matrix():
    markup = pl.load_pattern("induction_head")._repr_html_()
    text = text_of(markup)
    for part in ("induction_head", "Induction head", "attend k where tok[k] == tok[q] shift +1",
                 "repeated_random", "mass", "classic.pattern", "sample prompt", "marked cells"):
        assert part in text, part
    # the sample matrix: 14 tokens, the induction targets of the repeated phrase are marked
    assert markup.count('title="q ') == 14 * 15 // 2
    assert 'title="q 8 ␣unbelie → k 3 vable: 1"' in markup
    assert len(markup) < 40_000


def test_pattern_html_escapes_doc_and_rule():
    [pattern] = pl.check_module(pl.parse_source(textwrap.dedent('''
        pattern tags:
            """Attends to <script>alert(1)</script> & such."""
            attend k where matches(str[k], "<b>") and k < q
    '''), "pattern"))
    markup = pattern._repr_html_()
    text = text_of(markup)  # parsed: no <script> element, tags nest
    assert "<script>alert(1)</script>" in text and '"<b>"' in text
    assert "&lt;script&gt;" in markup and "&#34;&lt;b&gt;&#34;" in markup


HOSTILE = ("</script><script>alert(1)</script>", '"><img src=x onerror=alert(1)>')


def test_every_view_escapes_hostile_text():
    # from templates/reprs/ (autoescaped): a doc, rule, name or prompt is text wherever it lands
    script, attribute = HOSTILE
    [pattern] = pl.check_module(pl.parse_source(textwrap.dedent(f'''
        pattern hostile:
            """{script} {attribute}"""
            attend k where matches(str[k], {attribute!r}) and k < q
    '''), "pattern"))
    prompts = Prompts(texts=HOSTILE, name=script, description=attribute)
    scores = dataclasses.replace(small_scores(names=HOSTILE, undefined={script: {"mass": attribute}},
                                              exclusions={n: {"bos": True, "current": False} for n in HOSTILE}),
                                 model=attribute)

    def broken(_):
        raise ValueError(attribute)

    views = {"pattern": pattern._repr_html_(), "prompts": prompts._repr_html_(), "scores": scores._repr_html_(),
             "fallback": reprs.safe_html(broken, prompts)}
    for view, markup in views.items():
        text = text_of(markup)  # parsed: no script or img element, tags nest
        assert script in text and attribute in text, view
        assert "</script>" not in markup and "<script" not in markup and "<img" not in markup, view
        assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in markup, view
        assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in markup, view


def test_pattern_html_falls_back_to_text_when_the_matrix_fails(monkeypatch):
    def broken(self, *args, **kwargs):
        raise RuntimeError("no <matrix> today")

    monkeypatch.setattr(Pattern, "matrix", broken)
    markup = pl.load_pattern("previous_token_head")._repr_html_()
    text = text_of(markup)
    assert "previous_token_head" in text and "HTML view failed: RuntimeError: no <matrix> today" in text


def test_repr_html_never_raises(monkeypatch):
    def broken(_):
        raise ValueError("boom")

    monkeypatch.setattr(reprs, "pattern_html", broken)
    monkeypatch.setattr(reprs, "prompts_html", broken)
    monkeypatch.setattr(reprs, "scores_html", broken)
    for obj in (pl.load_pattern("bos_head"), Prompts(texts=("a <b>",)), small_scores()):
        text = text_of(obj._repr_html_())
        assert repr(obj) in text and "ValueError: boom" in text


# --------------------------------------------------------------------------- Prompts


def test_prompts_repr_is_short_for_a_probe():
    prompts = pl.probes.repeated_random(length=40, batch=16, vocab=(10, 20000), bos_id=0)
    text = repr(prompts)
    one_line(text, 250)
    assert "16 token-id prompts, 81 tokens, first: (0, " in text


def test_prompts_of_text():
    prompts = Prompts(texts=("The cat sat.", "A dog ran on.", "Birds <fly>!"), name="pets")
    assert repr(prompts) == "Prompts('pets', 3 texts, 12..13 characters, first: 'The cat sat.')"
    markup = prompts._repr_html_()
    text = text_of(markup)
    assert "pets" in text and "min 12 · median 12 · max 13 · total 37" in text
    assert "The cat sat." in text and "A dog ran on." in text and "Birds" not in text  # two samples
    assert repr(Prompts(tokens=[(1, 2)])).startswith("Prompts('prompts', 1 token-id prompt, 2 tokens")


def test_prompts_html_is_bounded_for_many_long_prompts():
    texts = tuple(f"<i>{i}</i> " + "word " * (i % 5000) for i in range(10_000))
    prompts = Prompts(texts=texts, name="many <prompts>")
    one_line(repr(prompts), 250)
    markup = prompts._repr_html_()
    assert len(markup) < 5_000
    text = text_of(markup)
    assert "10,000" in text and "many <prompts>" in text and "<i>0</i>" in text
    assert "&lt;i&gt;" in markup
    ids = Prompts(tokens=[list(range(1, 5000))] * 3)
    assert len(ids._repr_html_()) < 3_000 and "…" in text_of(ids._repr_html_())


def test_prompts_reprs_and_dir_keep_import_torch_free():
    code = textwrap.dedent("""
        import sys, patternlang
        names = dir(patternlang)
        prompts = patternlang.probes.natural(batch=3)
        repr(prompts), prompts._repr_html_()
        print(names)
        print("torch" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    names_line, torch_line = result.stdout.strip().splitlines()
    assert torch_line == "False"
    names = ast.literal_eval(names_line)
    for name in ("detect", "detect_head", "load_model", "load_pattern", "probes", "Scores", "Pattern", "__version__"):
        assert name in names
    assert not {"Any", "annotations", "_LAZY", "importlib"} & set(names)
    assert names == sorted(names)


def test_every_name_in_dir_resolves():
    for name in dir(pl):
        assert getattr(pl, name) is not None, name


def test_detect_stays_the_function_after_detect_head_is_used():
    # importing the engine's `detect` submodule used to make `pl.detect` that module
    code = "import patternlang as pl; pl.detect_head; import patternlang.engine.detection; print(callable(pl.detect))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "True", result.stderr


# --------------------------------------------------------------------------- Scores


def small_scores(n_patterns: int = 3, names: tuple[str, ...] | None = None, **settings) -> Scores:
    names = names or tuple(f"pattern_{i}" for i in range(n_patterns))
    values = torch.arange(len(names) * 4 * 3, dtype=torch.float32).reshape(len(names), 4, 3) / 100
    values[:, 3, 2] = float("nan")
    defaults = {"exclusions": {n: {"bos": False, "current": False} for n in names}, "batch_size": "auto",
                "n_batches": 1, "prepend_bos": True}
    return Scores(names, ("mass",), {"mass": values}, model="tiny <model>", n_prompts=7, n_tokens=123,
                  settings={**defaults, **settings}, n_layers=4, n_heads=3)


def test_scores_html_shows_provenance_top_heads_sample_sizes_and_heatmaps():
    markup = small_scores()._repr_html_()
    text = text_of(markup)
    for part in ("tiny <model>", "7 prompts · 123 tokens", "4 layers × 3 heads", "top 3 heads",
                 "L3H1 0.100", "nothing (every pattern)", "batch size auto"):
        assert part in text, part
    assert "tiny &lt;model&gt;" in markup
    assert markup.count('title="L') == 3 * 4 * 3  # a cell per head per pattern
    assert 'title="L3H2 not scored"' in markup
    assert "outline:2px solid" in markup  # the best head


def test_scores_html_sample_sizes_come_from_one_function(monkeypatch):
    monkeypatch.setattr(reprs, "sample_sizes", lambda scores, pattern: {"rows seen": f"{len(pattern)} rows"})
    text = text_of(small_scores()._repr_html_())
    assert "rows seen" in text and "9 rows" in text


def test_scores_html_is_bounded_for_many_patterns():
    names = tuple(f"p{i} <rule>" for i in range(100))
    exclusions = {n: {"bos": i % 2 == 0, "current": False} for i, n in enumerate(names)}
    undefined = {names[0]: {"mass": "no target rows <here>"}}
    scores = small_scores(names=names, exclusions=exclusions, undefined=undefined)
    one_line(repr(scores))
    markup = scores._repr_html_()
    assert len(markup) < 150_000
    text = text_of(markup)
    assert "showing 12 of 100 patterns" in text and "… and 50 more patterns" in text
    assert "bos: p0 <rule>, p2 <rule>" in text and "and 42 more" in text
    assert "NaN: mass: no target rows <here>" in text


@pytest.mark.parametrize("n_layers,n_heads", [(80, 64), (2, 1)])
def test_scores_heatmaps_stay_bounded_for_any_model_size(n_layers, n_heads):
    values = torch.rand(5, n_layers, n_heads)
    scores = Scores(tuple("abcde"), ("mass",), {"mass": values}, n_layers=n_layers, n_heads=n_heads)
    markup = scores._repr_html_()
    parsed(markup)
    assert markup.count('title="L') <= max(n_layers * n_heads, reprs.MAX_HEATMAP_CELLS)
    assert len(markup) < 400_000


def test_scores_html_of_a_run_shows_evidence_and_intervals():
    from patternlang.testing import make_hand_set_model

    model = make_hand_set_model()
    scores = pl.detect(model, ["abcabc", "abab xy", "the cat the cat"], ["induction_head", "previous_token_head"],
                       progress=False)
    evidence = scores.evidence["induction_head"]
    text = text_of(scores._repr_html_())
    for part in ("target rows", "prompts with a target", "chance", "[95% interval]",
                 f"{evidence.n_rows:,}", f"{evidence.n_prompts:,} of {evidence.n_prompts_run:,}",
                 f"{scores.baseline('induction_head'):.3f}"):
        assert part in text, part
    low, high = scores.interval("induction_head")
    label, value = scores.top("induction_head", 1)[0]
    layer, head = scores.head_of(label)
    assert f"{label} {value:.3f} [{float(low[layer, head]):.3f}, {float(high[layer, head]):.3f}]" in text
