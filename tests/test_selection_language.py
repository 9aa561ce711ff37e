"""`attend last k` / `attend first k`, `rank` and `require`: parser, unparse, kinds, settings,
compiler (vectorised) against hand-computed matrices and the reference evaluator."""

from __future__ import annotations

import pytest
import torch

import patternlang as pl
from patternlang import compile_rule
from patternlang.compiler import reference_matrix
from patternlang.errors import PatternError, PatternSyntaxError, UnknownNameError
from patternlang.settings import Requirement
from patternlang.compiler.program import compile_expr
from patternlang.syntax import ast
from patternlang.syntax.kinds import check_kinds
from patternlang.syntax.problems import Problems
from patternlang.syntax.parser import parse_module, parse_rule
from patternlang.syntax.unparse import rule_text, unparse

COMMAS = ["<s>", "She", " bought", " apples", ",", " pears", ",", " and", " figs", "."]


def _matrix(rule: str, texts: list[str]) -> torch.Tensor:
    return compile_rule(rule).matrix(list(range(len(texts))), texts, special_ids={0})


def test_last_marks_only_the_nearest_earlier_match():
    every = _matrix('attend k where str[k] == ","', COMMAS)
    last = _matrix('attend last k where str[k] == ","', COMMAS)
    assert every[8].nonzero().flatten().tolist() == [4, 6]
    assert last[8].nonzero().flatten().tolist() == [6]          # ` figs`: the second comma only
    assert last[5].nonzero().flatten().tolist() == [4]
    assert last[3].sum() == 0                                    # no comma yet: no target
    assert (last.sum(-1) <= 1).all()


def test_first_marks_only_the_earliest_match():
    first = _matrix('attend first k where str[k] == ","', COMMAS)
    assert first[8].nonzero().flatten().tolist() == [4]
    assert first[9].nonzero().flatten().tolist() == [4]
    assert first[3].sum() == 0


def test_without_where_last_is_the_diagonal_and_first_is_position_zero():
    last = compile_rule("attend last k").matrix([5, 6, 7, 8])
    first = compile_rule("attend first k").matrix([5, 6, 7, 8])
    assert torch.equal(last, torch.eye(4))
    assert first[:, 0].tolist() == [1.0] * 4 and first[:, 1:].sum() == 0


def test_modifiers_apply_after_the_choice():
    shifted = _matrix('attend last k where str[k] == "," shift +1', COMMAS)
    assert shifted[8].nonzero().flatten().tolist() == [7]
    assert shifted[6].sum() == 0  # the latest comma at q=6 is 6 itself; +1 leaves the triangle


def test_last_on_padded_batches_and_windows_agrees_with_the_reference():
    rule = 'attend last k where str[k] == "," and k < q'
    pattern = compile_rule(rule)
    reference = reference_matrix(pattern.expr, list(range(len(COMMAS))), COMMAS, {0})
    assert pattern.matrix(list(range(len(COMMAS))), COMMAS, special_ids={0}).tolist() == reference


def test_parse_and_unparse_round_trip():
    for text in ['attend last k where str[k] == ","', "attend first k", 'attend first k where k < q shift +1']:
        expr, _ = parse_rule(text)
        assert unparse(expr) == text
        assert parse_rule(unparse(expr))[0] == expr
    expr, _ = parse_rule('attend last k where str[k] == ","')
    assert isinstance(expr, ast.Attend) and expr.select == "last"
    assert parse_rule('attend k where str[k] == ","')[0] != expr  # select takes part in equality


def test_selection_words_are_keywords():
    with pytest.raises(PatternSyntaxError):
        parse_rule("attend last where k == 0")
    with pytest.raises(PatternSyntaxError, match="keyword"):
        parse_module("pattern last:\n    attend k\n")


def test_a_hand_built_node_with_an_unknown_selection_is_an_error():
    problems = Problems()
    check_kinds(ast.Attend("k", None, "middle"), problems)
    with pytest.raises(PatternError, match="selects all, last or first"):
        problems.raise_if_any()


def test_compiler_and_reference_refuse_unknown_nodes_the_same_way():
    @ast.node
    class Mystery(ast.Node):  # a hashable node of a type neither pass knows
        pass

    with pytest.raises(TypeError, match="does not handle Mystery"):
        compile_expr(Mystery())
    with pytest.raises(TypeError, match="does not handle Mystery"):
        reference_matrix(Mystery(), [1, 2])


def test_rank_and_require_settings():
    pattern = compile_rule('attend k where k == 0 measure copying rank lowest require copying < 0 require mass > 0.1')
    assert pattern.settings.rank == "lowest"
    assert pattern.settings.requires == (Requirement("copying", "<", 0.0), Requirement("mass", ">", 0.1))
    expr, settings = parse_rule("attend k rank lowest require copying > -0.5")
    assert rule_text(expr, settings) == "attend k rank lowest require copying > -0.5"
    with pytest.raises(UnknownNameError, match="did you mean 'lowest'"):
        compile_rule("attend k rank lowst")
    with pytest.raises(UnknownNameError, match="unknown measure 'copyng'"):
        compile_rule("attend k require copyng > 0")
    with pytest.raises(PatternError, match="given twice"):
        compile_rule("attend k rank lowest rank highest")


def test_requirement_holds():
    requirement = Requirement("copying", ">", 0.0)
    assert requirement.holds(0.3) and not requirement.holds(-0.1) and not requirement.holds(float("nan"))
    assert str(requirement) == "copying > 0"


def test_shipped_patterns_use_last_and_first():
    assert "attend last k" in pl.load_pattern("previous_comma_head").rule
    sentence = pl.load_pattern("sentence_first_token_head")
    assert "attend first k" in sentence.rule
    texts = ["<s>", "A", " b", ".", " C", " d"]
    assert sentence.matrix(list(range(6)), texts, special_ids={0}).argmax(dim=-1).tolist()[1:] == [1, 1, 1, 4, 4]
