"""The language pipeline: public stages, shared linking, depth after linking, unparse, registries."""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager

import pytest
import torch
from hypothesis import HealthCheck, given, settings

import patternlang as pl
from patternlang.compiler import reference_matrix
from patternlang.errors import PatternError, UnknownNameError
from patternlang.pipeline import build, check_module, parse
from patternlang.syntax import ast
from patternlang.syntax.features import FEATURES, ends_sentence, register_feature
from patternlang.syntax.parser import parse_module, parse_rule
from patternlang.syntax.unparse import UnparseError, rule_text, unparse
from tests.rule_strategies import SPECIAL_IDS, VOCAB, prompts, rules


@contextmanager
def time_limit(seconds: int):
    def fail(*_):
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def reuse_file(depth: int) -> str:
    lines = ["pattern p1: attend k where tok[k] == tok[q] shift +1"]
    lines += [f"pattern p{i}: p{i - 1} | p{i - 1}" for i in range(2, depth + 1)]
    return "\n".join(lines)


# ---- the stages are public ---------------------------------------------------------------------
def test_each_stage_can_be_run_alone():
    module = parse("pattern prev: attend k where k == q - 1\npattern two: prev shift +1", "pattern")
    assert [d.name for d in module.definitions] == ["prev", "two"]
    patterns = check_module(module)
    assert [p.name for p in patterns] == ["prev", "two"]
    assert patterns[1].matrix([1, 2, 3]).tolist() == [[0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]  # no k = -1 to move
    # the linked expression holds no reference; the rule is kept as written
    assert not any(isinstance(node, ast.Ref) for node in ast.walk(patterns[1].expr))
    assert patterns[1].rule == "prev shift +1"


def test_yaml_pattern_files_and_inline_rules_share_one_entry(tmp_path):
    text = "patterns:\n  - name: prev\n    rule: attend k where k == q - 1\n"
    from_yaml = build(text, "yaml", "rules.yaml")[0]
    from_file = build("pattern prev: attend k where k == q - 1", "pattern", "rules.pattern")[0]
    inline = build("attend k where k == q - 1", "rule")[0]
    assert from_yaml.expr == from_file.expr == inline.expr
    assert inline.name == "attend k where k == q - 1"


def test_build_is_cached_by_source_text_and_compiles_at_load():
    text = "pattern cached_one: attend k where k == q - 2"
    first = build(text, "pattern", "a.pattern")
    assert build(text, "pattern", "a.pattern") is first
    assert first[0].program is not None and first[0].needs == frozenset({"tokens"})
    assert pl.load_pattern("fuzzy_duplicate_head").needs == frozenset({"tokens", "texts"})


# ---- linking shares sub-patterns ---------------------------------------------------------------
def test_forty_deep_reuse_checks_and_compiles_in_linear_time():
    with time_limit(20):  # copied instead of shared, this would never finish (2**40 nodes)
        start = time.perf_counter()
        patterns = build(reuse_file(40), "pattern", library={})
        elapsed = time.perf_counter() - start
    deepest = patterns[-1]
    assert len(list(ast.walk(deepest.expr))) < 60  # 40 combines + the attend rule's few nodes
    with time_limit(20):  # a second, separately built copy: equal, compared and cached in linear time
        again = build(reuse_file(40), "pattern", library={})[-1]
        assert again.expr is not deepest.expr and again.expr == deepest.expr
        assert again.program is deepest.program
    assert deepest.matrix([1, 2, 1, 2]).tolist()[2] == [0.0, 1.0, 0.0, 0.0]
    print(f"forty-deep reuse file: checked and compiled in {elapsed:.3f} s")


def test_a_chain_of_ten_thousand_references_gives_a_result():
    text = "pattern p1: attend k where k == q - 1\n" + "\n".join(
        f"pattern p{i}: p{i - 1}" for i in range(2, 10_001))
    with time_limit(60):
        patterns = build(text, "pattern", library={})
    assert patterns[-1].matrix([5, 6]).tolist() == [[0.0, 0.0], [1.0, 0.0]]


def test_a_deep_chain_of_shifts_is_a_clear_error_not_a_recursion_error():
    text = "pattern p1: attend k where k == q - 1\n" + "\n".join(
        f"pattern p{i}: p{i - 1} shift +1" for i in range(2, 10_001))
    with time_limit(60), pytest.raises(PatternError) as raised:
        build(text, "pattern", library={})
    message = str(raised.value)
    assert "nested too deeply once its references are filled in" in message
    assert message.count("error:") == 1  # patterns built on the failing one are not reported again


def test_an_inline_rule_named_like_a_shipped_pattern_refers_to_it():
    rule = pl.compile_rule("current_word_head")
    assert rule.expr == pl.load_pattern("current_word_head").expr


def test_weights_that_would_overflow_or_underflow_are_refused():
    with pytest.raises(PatternError, match="multiply up to"):
        pl.compile_rule("0 * (1000000 * 1000000 * 1000000 * (attend k))")
    with pytest.raises(PatternError, match="multiply down to"):
        pl.compile_rule("normalize(0.000001 * 0.000001 * 0.000001 * 0.000001 * 0.000001 * (attend k))")


# ---- the AST -------------------------------------------------------------------------------------
def test_passes_raise_on_a_node_type_they_do_not_know():
    class Mystery(ast.Node):
        __slots__ = ()

    from patternlang.syntax.kinds import check_kinds
    from patternlang.syntax.problems import Problems

    with pytest.raises(TypeError, match="does not handle Mystery"):
        check_kinds(Mystery(), Problems())
    with pytest.raises(TypeError, match="does not handle Mystery"):
        unparse(Mystery())
    from patternlang.syntax.link import fill_references

    with pytest.raises(TypeError, match="does not handle Mystery"):
        fill_references(Mystery(), {})


def test_children_and_walk_are_generic():
    expr, _ = parse_rule("(attend k where tok[k] == tok[q]) | previous_token_head")
    kinds = [type(node).__name__ for node in ast.walk(expr)]
    assert kinds == ["Combine", "Attend", "Compare", "Index", "Name", "Index", "Name", "Ref"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule=rules())
def test_unparse_reads_back_as_the_same_rule(rule):
    expr, settings_ = parse_rule(rule + " measure tv exclude bos")
    text = rule_text(expr, settings_)
    assert parse_rule(text) == (expr, settings_)
    assert rule_text(*parse_rule(text)) == text  # a fixed point: names of inline rules are stable


def test_inline_rules_have_round_trippable_names():
    pattern = pl.compile_rule("(attend   k where tok[k]==tok[q])  shift  +1  measure tv")
    assert pattern.name == "attend k where tok[k] == tok[q] shift +1 measure tv"
    assert pl.compile_rule(pattern.name).expr == pattern.expr


def test_unparse_refuses_what_the_grammar_cannot_write():
    with pytest.raises(UnparseError):
        unparse(ast.Arith("-", ast.Name("q"), ast.Arith("-", ast.Name("k"), ast.IntLit(1))))


def test_shipped_files_unparse_to_equal_definitions():
    for pattern in pl.shipped_patterns():
        if pattern.filename and pattern.filename.endswith(".pattern"):
            module = parse_module(open(pattern.filename, encoding="utf-8").read())
            for definition in module.definitions:
                assert parse_module(unparse(definition)).definitions[0] == definition


# ---- the feature registry ----------------------------------------------------------------------
def test_sentence_feature_on_an_example():
    texts = ["<s>", "Hi", ".", " Yo", " there", "!", " Ok", "?", "\n"]
    pattern = pl.compile_rule("attend k where sentence[k] == sentence[q]")
    sentence = pattern.matrix(list(range(len(texts))), texts)
    # sentences: [<s> Hi .] [ Yo there !] [ Ok ?] [\n]: "\n" is a word start after "?"
    assert sentence[4].tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert sentence[7].tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 0]
    assert sentence[8].tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert ends_sentence(" ?\n") and ends_sentence("。") and not ends_sentence('."')


@settings(max_examples=200, deadline=None)
@given(prompt=prompts)
def test_sentence_feature_equals_its_reference(prompt):
    texts = [VOCAB[t] for t in prompt]
    pattern = pl.compile_rule("attend k where sentence[k] == sentence[q] - 1 or sentence[k] == sentence[q]")
    expected = reference_matrix(pattern.expr, prompt, texts, SPECIAL_IDS)
    assert pattern.matrix(prompt, texts, special_ids=SPECIAL_IDS).tolist() == expected


def test_the_shipped_sentence_pattern_uses_the_new_feature():
    pattern = pl.load_pattern("sentence_first_token_head")
    assert "sentence[k]" in pattern.rule
    texts = ["<s>", "A", " b", ".", " C", " d"]
    assert pattern.matrix(list(range(6)), texts, special_ids={0}).argmax(dim=-1).tolist()[1:] == [1, 1, 1, 4, 4]


def test_a_feature_added_through_the_registry_alone_works_everywhere():
    name = "parity"
    register_feature(name, "number", "the position's parity (a test feature)",
                     table=lambda batch: (batch.positions % 2).unsqueeze(0).expand(batch.batch, -1),
                     reference=lambda prompt: [p % 2 for p in range(prompt.n)])
    try:
        pattern = build("attend k where parity[k] == parity[q]", "rule", library={})[0]
        assert pattern.matrix([1, 2, 3, 4])[3].tolist() == [0.0, 1.0, 0.0, 1.0]
        assert reference_matrix(pattern.expr, [1, 2, 3, 4])[3] == [0.0, 1.0, 0.0, 1.0]
        with pytest.raises(PatternError, match="cannot compare a number with a string"):
            build('attend k where parity[k] == "x"', "rule", library={})
    finally:
        del FEATURES._entries[name]
    with pytest.raises(UnknownNameError, match="unknown feature 'parity'"):
        build("attend k where parity[k] == 1", "rule", library={})


def test_feature_docs_table_lists_every_registered_feature():
    text = open("docs/language.md", encoding="utf-8").read()
    for feature in FEATURES.entries():
        assert f"| `{feature.name}[i]` | {feature.kind} |" in text, feature.name


# ---- the measure registry ------------------------------------------------------------------------
def test_measure_registry_drives_the_settings_pass():
    from patternlang.engine.measures import MEASURES

    assert MEASURES.names() == ("mass", "tv", "argmax", "mul", "abs", "lift", "copying", "sink", "offsink")
    with pytest.raises(UnknownNameError, match="did you mean 'mass'"):
        pl.compile_rule("attend k measure mas")


def test_measures_docs_table_agrees_with_the_registry():
    from patternlang.engine.measures import MEASURES

    rows = {line.split("|")[1].strip(): line.split("|")[2].strip()
            for line in open("docs/measures.md", encoding="utf-8") if line.startswith("| `")}
    assert {name.strip("`"): value for name, value in rows.items()} == {m.name: m.range for m in MEASURES.entries()}


def test_ast_nodes_pickle_and_copy_with_their_hash():
    import copy
    import pickle

    expr, _ = parse_rule("(attend k where tok[k] == tok[q]) shift +1 | bos_head")
    for clone in (pickle.loads(pickle.dumps(expr)), copy.copy(expr), copy.deepcopy(expr)):
        assert clone == expr and hash(clone) == hash(expr)


def test_reprs_of_linked_patterns_stay_short():
    deepest = build(reuse_file(40), "pattern", library={})[-1]
    assert len(repr(deepest.expr)) < 200 and "nodes once shared sub-patterns are written out" in repr(deepest.expr)
    with pytest.raises(UnparseError, match="print the pattern's `.rule`"):
        unparse(deepest.expr)
    assert repr(deepest) == "Pattern('p40', rule='p39 | p39')"
    assert len(deepest._repr_html_()) < 40_000 and "HTML view failed" not in deepest._repr_html_()


def test_padding_and_normalize_never_make_non_finite_values():
    batch = [[1, 2, 3, 1, 2, 3], [4, 5]]
    patterns = [pl.compile_rule("normalize(attend k where k > q)"), pl.load_pattern("local_window_head"),
                pl.compile_rule("0 * (attend k) + normalize(attend k where tok[k] == tok[q])")]
    tokens = torch.tensor([[1, 2, 3, 1, 2, 3], [4, 5, 0, 0, 0, 0]])
    mask = tokens != 0
    from patternlang.compiler import BatchFeatures

    for pattern in patterns:
        result = pattern.evaluate(BatchFeatures.build(tokens, mask))
        assert torch.isfinite(result).all()
        assert not result[1, 2:].any() and not result[1, :, 2:].any()
    assert batch  # the prompts above


def test_errors_name_the_pattern_and_its_file():
    text = "pattern fine: attend k\npattern foo: attend k where tok[k] < tok[q]\npattern bar: nowhere_head\n"
    with pytest.raises(PatternError) as raised:
        check_module(parse(text, "pattern", "heads.pattern"))
    shown = str(raised.value)
    assert "heads.pattern:2:36 (in pattern 'foo')" in shown
    assert "heads.pattern:3:14 (in pattern 'bar')" in shown and "unknown pattern 'nowhere_head'" in shown
    with pytest.raises(PatternError) as raised:
        pl.compile_rule("attend k where tok[k] < tok[q]")
    assert "in pattern" not in str(raised.value)  # an inline rule is named by itself


def test_a_feature_can_need_character_offsets():
    from patternlang.compiler import BatchFeatures

    register_feature("chars", "number", "how many characters the token covers (a test feature)", needs=("offsets",),
                     table=lambda batch: batch.offsets()[..., 1] - batch.offsets()[..., 0],
                     reference=lambda prompt: [end - start for start, end in prompt.spans()])
    try:
        pattern = build("attend k where chars[k] == chars[q]", "rule", library={})[0]
        assert "offsets" in pattern.needs
        features = BatchFeatures.build(torch.tensor([[1, 2, 3, 0]]), torch.tensor([[True, True, True, False]]),
                                       offsets=[[(0, 2), (2, 3), (3, 5)]])
        assert pattern.evaluate(features)[0, 2].tolist() == [1.0, 0.0, 1.0, 0.0]
        assert reference_matrix(pattern.expr, [1, 2, 3], offsets=[(0, 2), (2, 3), (3, 5)])[2] == [1.0, 0.0, 1.0]
        with pytest.raises(PatternError, match="reads character offsets"):
            pattern.matrix([1, 2, 3])
    finally:
        del FEATURES._entries["chars"]
