"""Bad rules: each malformed rule beside the message, column and hint it must produce."""

from __future__ import annotations

import time

import pytest

from patternlang import compile_rule
from patternlang.errors import (CycleError, ErrorGroup, Location, PatternError, PatternSyntaxError,
                                PatternTypeError, UnknownNameError)
from patternlang.syntax.parser import parse_module
from patternlang.pipeline import check_module

# (rule, error class, text the message must contain, 1-based column of the caret)
MALFORMED = [
    ("attend k where tok[k] = tok[q]", PatternSyntaxError, "unexpected '='", 23),
    ("attend k where k == q - 1 | bos_head", PatternSyntaxError, "unexpected '|'", 27),
    ("atend k where k == 0", PatternSyntaxError, "unexpected name 'k'", 7),
    ("attend k where (k == ", PatternSyntaxError, "ends too early", 22),
    ('attend k where str[k] == "abc', PatternSyntaxError, "unexpected character", 26),
    ("attend k where k == q shift 1.5", PatternSyntaxError, "unexpected '.5'", 30),
    ("attend k where tok[k] == tok[q] and", PatternSyntaxError, "ends too early", 36),
    ("attend k where tokk[k] == tok[q]", UnknownNameError, "unknown feature 'tokk'", 16),
    ("attend k where tok[k] == tok[r]", UnknownNameError, "unknown name 'r'", 30),
    ("attend k where lowr(str[k]) == str[q]", UnknownNameError, "unknown function 'lowr'", 16),
    ("induction_haed shift +1", UnknownNameError, "unknown pattern 'induction_haed'", 1),
    ("attend j where j == 0", PatternError, "always `k`", 8),
    ("attend k where tok[k] < tok[q]", PatternTypeError, "token ids have no order", 23),
    ("attend k where str[k] == k", PatternTypeError, "cannot compare a string with a position", 23),
    ("attend k where word[k] == q", PatternTypeError, "cannot compare a word with a position", 24),
    ("attend k where tok[k] + 1 == tok[q]", PatternTypeError, "cannot be used in arithmetic", 16),
    ("attend k where tok[str[k]] == 1", PatternTypeError, "needs a position", 20),
    ("attend k where tok[k]", PatternTypeError, "must be true or false", 16),
    ('attend k where startswith(str[k], str[q])', PatternTypeError, "must be a string written in the rule", 35),
    ('attend k where matches(str[k], "(")', PatternTypeError, "bad regular expression", 32),
    ('attend k where matches(str[k], "a(?=b)")', PatternTypeError, "lookahead `(?=...)` is not supported", 32),
    ('attend k where matches(str[k], "(?<!a)b")', PatternTypeError, "lookbehind `(?<!...)` is not supported", 32),
    ('attend k where matches(str[k], "(a)\\1")', PatternTypeError, "backreference `\\1` is not supported", 32),
    ('attend k where matches(str[k], "a++")', PatternTypeError, "possessive quantifier", 32),
    ('attend k where matches(str[k], "a{5000}")', PatternTypeError, "at most 1000 times", 32),
    ("attend k where lower(str[k], str[q]) == str[q]", PatternTypeError, "takes 1 argument", 16),
    ("attend k measure mas", UnknownNameError, "unknown measure 'mas'", 18),
    ("attend k exclude boss", UnknownNameError, "cannot exclude 'boss'", 18),
    ("attend k measure tv measure mass", PatternError, "given twice", 29),
    ("(attend k) shift +999999999", PatternTypeError, "too far", 18),
    ("attend k where k == 99999999999999999999", PatternTypeError, "too large", 21),
    ("1e39 * (attend k)", PatternTypeError, "a weight must be a number from 0", 1),
    ("attend k weight -1", PatternSyntaxError, "unexpected", 17),
    # A keyword glued to a word or a number is one token, never silently split.
    ("attend k where k == q orq == k", PatternSyntaxError, "unexpected name 'orq'", 23),
    ("attend k measuretv", PatternSyntaxError, "unexpected name 'measuretv'", 10),
    ("attend k where k == q andnot k == 1", PatternSyntaxError, "unexpected name 'andnot'", 23),
    ("attend k where k == 1or k == q", PatternSyntaxError, "unexpected name 'or'", 22),
    ("attend k shift +1weight 2", PatternSyntaxError, "unexpected name 'weight'", 18),
    ("attendk where k == 0", PatternSyntaxError, "unexpected 'where'", 9),
    ("attend k where notk == q", UnknownNameError, "unknown name 'notk'", 16),
    ("attend k excludebos", PatternSyntaxError, "unexpected name 'excludebos'", 10),
    ('attend k where str[k] == """abc', PatternSyntaxError, "triple-quoted string is not closed", 26),
]


@pytest.mark.parametrize("rule, error, message, column", MALFORMED)
def test_malformed_rules(rule, error, message, column):
    with pytest.raises(error) as info:
        compile_rule(rule)
    raised = info.value
    assert message in raised.message
    assert raised.location is not None and raised.location.column == column, str(raised)
    rendered = str(raised)
    assert rule in rendered and "^" in rendered  # the source line with a caret under it


def test_hints_and_did_you_mean():
    with pytest.raises(UnknownNameError) as info:
        compile_rule("induction_haed shift +1")
    assert "did you mean 'induction_head'" in str(info.value)
    with pytest.raises(PatternSyntaxError) as info:
        compile_rule("attend k where k == q - 1 | bos_head")
    assert "parentheses" in str(info.value)
    with pytest.raises(PatternSyntaxError) as info:
        compile_rule("atend k where k == 0")
    assert "'attend'" in str(info.value)
    with pytest.raises(PatternSyntaxError) as info:
        compile_rule("attend k where tok[k] = tok[q]")
    assert "'=='" in str(info.value)


@pytest.mark.parametrize("rule, hint", [
    ("attend k where k == q orq == k", "write `or q`"),
    ("attend k measuretv", "write `measure tv`"),
    ("attendk where k == 0", "write `attend k`"),
    ("attend k where k == 1or k == q", "put a space before the keyword 'or'"),
])
def test_glued_keywords_say_how_to_separate_them(rule, hint):
    with pytest.raises(PatternSyntaxError) as info:
        compile_rule(rule)
    assert hint in (info.value.hint or "")


def test_names_that_begin_with_a_keyword_are_still_names():
    assert compile_rule("attend k where k == q or k == 0").matrix([1, 2]).tolist() == [[1, 0], [1, 1]]
    text = "pattern order: attend k where k == 0\npattern notable: order | (attend k where k == q)\n"
    names = [d.name for d in check_module(parse_module(text))]
    assert names == ["order", "notable"]
    with pytest.raises(PatternSyntaxError) as info:  # no "write `not able`" for a real name
        check_module(parse_module("pattern p: notable where\n"))
    assert "not able" not in str(info.value)


def test_every_problem_is_reported_at_once_with_file_line_and_column():
    text = (
        "pattern a:\n"
        "    attend k where tok[k] < tok[q]\n"
        "pattern b:\n"
        "    missing_head | a\n"
        "    measure mas\n"
    )
    with pytest.raises(ErrorGroup) as info:
        check_module(parse_module(text, filename="heads.pattern"))
    errors = info.value.errors
    assert len(errors) == 3
    assert {(e.location.line, e.location.column) for e in errors} == {(2, 27), (4, 5), (5, 13)}
    assert "heads.pattern:2:27" in str(info.value)


def test_regular_expressions_run_in_linear_time():
    # Python's backtracking `re` takes hours on these; RE2 answers at once.
    rule = 'attend k where matches(str[k], "(a+)+$") or matches(str[k], "^(=+)+$") or matches(str[k], "(x|x)*y")'
    tokens = ["=" * 81 + "!", "-" * 64, "a" * 80 + "b", "#" * 81, "x" * 5000, "=" * 64]
    started = time.perf_counter()
    matrix = compile_rule(rule).matrix(str_tokens=tokens)
    assert time.perf_counter() - started < 2
    assert matrix[:, 5].tolist() == [0, 0, 0, 0, 0, 1]  # only the all-`=` token matches


def test_regex_errors_name_the_engine_and_stay_quiet():
    with pytest.raises(PatternTypeError) as info:
        compile_rule('attend k where matches(str[k], "(?P<x>a)(?P=x)")')
    assert "named backreference" in info.value.message and "RE2" in info.value.message
    with pytest.raises(PatternTypeError, match="not valid text"):  # an undecodable argv byte
        compile_rule('attend k where matches(str[k], "\udcff")')
    # A token text that is not valid UTF-8 must not break the search either.
    assert compile_rule('attend k where matches(str[k], "b")').matrix(str_tokens=["\udcffb"]).tolist() == [[1]]


def test_very_long_source_lines_are_clipped_around_the_caret():
    rule = "attend k where " + " or ".join(["k == q"] * 2_000) + " orr"  # 16,000 characters
    with pytest.raises(PatternSyntaxError) as info:
        compile_rule(rule)
    shown, caret = str(info.value).splitlines()[1:3]
    assert len(shown) < 200 and shown.startswith("   1 | …") and shown.endswith("orr")
    assert caret.index("^") == shown.index("orr") and caret.count("^") == 3
    # A long name in the middle of a line: a window on both sides, and a clipped message.
    rule = "(attend k) | " + "y" * 100_000 + " | (attend k)"
    with pytest.raises(UnknownNameError) as info:
        compile_rule(rule)
    rendered = str(info.value)
    assert len(rendered) < 1_500 and "characters left out" in rendered
    shown, caret = rendered.splitlines()[1:3]
    assert shown.endswith("…") and 0 < caret.count("^") < 130


def test_the_shown_line_is_the_line_the_parser_counted():
    # A form feed or U+2028 is not a line break for the parser, so it must not be one here.
    text = "pattern a: attend k\x0c where k == 0  # a\u2028b\npattern b: attend k where tok[k] < tok[q]\n"
    with pytest.raises(PatternTypeError) as info:
        check_module(parse_module(text))
    shown, caret = str(info.value).splitlines()[1:3]
    assert "tok[k] < tok[q]" in shown and shown[caret.index("^")] == "<"
    assert Location(1, 3, "a\tb c").render().splitlines()[1].endswith("a b c")  # a tab keeps the caret
    with pytest.raises(PatternSyntaxError) as info:  # the end of the text, after such a line
        parse_module("pattern a: attend k  # x\u2028y\x0c\npattern b: attend k where\n\n")
    assert (info.value.location.line, info.value.location.column) == (2, 26)


def test_a_byte_order_mark_is_read_as_a_space():
    module = parse_module("\ufeffpattern a: attend k where k == 0\n")
    assert module.definitions[0].name == "a"
    with pytest.raises(PatternTypeError) as info:
        check_module(parse_module("\ufeffpattern a: attend k where tok[k] < tok[q]\n"))
    assert info.value.location.column == 35  # the mark counts as a column, as in the user's editor
    shown, caret = str(info.value).splitlines()[1:3]
    assert shown[caret.index("^")] == "<"


def test_cycles_are_errors():
    text = "pattern a: b | c\npattern b: a shift +1\npattern c: attend k\npattern d: d\n"
    with pytest.raises(ErrorGroup) as info:
        check_module(parse_module(text))
    messages = [e.message for e in info.value.errors]
    assert all(isinstance(e, CycleError) for e in info.value.errors)
    assert any("a -> b -> a" in m for m in messages) and any("d -> d" in m for m in messages)


def test_duplicate_definitions():
    with pytest.raises(PatternError, match="defined twice"):
        check_module(parse_module("pattern a: attend k\npattern a: attend k\n"))


def test_deep_nesting_gets_a_clear_error():
    # Parentheses alone add no depth to the tree; they must simply work.
    deep = "attend k where " + "(" * 400 + "k == q" + ")" * 400
    assert compile_rule(deep).matrix([1, 2]).tolist() == [[1, 0], [0, 1]]
    chain = " | ".join(["previous_token_head"] * 400)
    with pytest.raises(PatternSyntaxError, match="nested too deeply"):
        compile_rule(chain)
    nots = "attend k where " + "not " * 400 + "k == q"
    with pytest.raises(PatternSyntaxError, match="nested too deeply"):
        compile_rule(nots)


def test_weights_that_multiply_past_float32_are_refused():
    with pytest.raises(PatternTypeError, match="multiply up to"):
        compile_rule("1000000 * 1000000 * 1000 * (attend k)")
    assert compile_rule("1000 * 2 * (attend k)").matrix([1, 2]).max() == 2000


def test_a_long_chain_of_modifiers_is_nesting_too():
    rule = "attend k" + " shift +1" * 2000
    with pytest.raises(PatternSyntaxError, match="nested too deeply"):
        compile_rule(rule)


def test_repeated_probe_arguments_are_caught_by_the_checker():
    with pytest.raises(PatternError, match="given twice"):
        compile_rule("attend k probe repeated_random(length=3, length=4)")
