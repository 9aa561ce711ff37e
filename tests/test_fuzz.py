"""Random text and random mutations of valid rules: only PatternError may come out."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patternlang import PatternError, compile_rule
from patternlang.pipeline import check_module
from patternlang.syntax.parser import parse_module
from tests.rule_strategies import rules

PIECES = ["attend", "k", "q", "where", "tok", "str", "word", "[", "]", "(", ")", "==", "!=", "<", "and", "or",
          "not", "shift", "+1", "-", "+", "|", "&", "*", "weight", "0.5", "normalize", '"a"', "'", '"', ",",
          "pattern", ":", "measure", "exclude", "bos", "probe", "repeated_random", "=", "1", "#", "\n",
          "induction_head", "startswith", "matches", '"("', "1e999", "-0", "\\", "\u00e9", "\x00"]


def _only_pattern_errors(text: str) -> None:
    try:
        compile_rule(text)
    except PatternError as error:
        str(error)  # rendering must not fail either
    try:
        check_module(parse_module(text))
    except PatternError as error:
        str(error)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80))
def test_random_text(text):
    _only_pattern_errors(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=25))
def test_random_token_soup(pieces):
    _only_pattern_errors(" ".join(pieces))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule=rules(), data=st.data())
def test_mutations_of_valid_rules(rule, data):
    words = rule.replace("(", " ( ").replace(")", " ) ").replace("[", " [ ").replace("]", " ] ").split()
    for _ in range(data.draw(st.integers(1, 3))):
        action = data.draw(st.sampled_from(["drop", "swap", "insert", "replace"]))
        if not words:
            break
        i = data.draw(st.integers(0, len(words) - 1))
        if action == "drop":
            del words[i]
        elif action == "swap":
            j = data.draw(st.integers(0, len(words) - 1))
            words[i], words[j] = words[j], words[i]
        elif action == "insert":
            words.insert(i, data.draw(st.sampled_from(PIECES)))
        else:
            words[i] = data.draw(st.sampled_from(PIECES))
    _only_pattern_errors(" ".join(words))
