"""Shipped patterns equal TransformerLens' own detection patterns and demo matrices."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformer_lens import head_detector

from patternlang import compile_rule, load_pattern

token_sequences = st.lists(st.integers(0, 6), min_size=2, max_size=40)

PAIRS = [
    ("previous_token_head", head_detector.get_previous_token_head_detection_pattern),
    ("duplicate_token_head", head_detector.get_duplicate_token_head_detection_pattern),
    ("induction_head", head_detector.get_induction_head_detection_pattern),
]


@settings(max_examples=200, deadline=None)
@given(tokens=token_sequences)
def test_shipped_patterns_equal_transformer_lens(tokens):
    ids = torch.tensor(tokens)
    for name, oracle in PAIRS:
        ours = load_pattern(name).matrix(ids)
        assert torch.equal(ours, oracle(ids.unsqueeze(0)).to(ours.dtype)), name


@settings(max_examples=100, deadline=None)
@given(tokens=token_sequences)
def test_design_card_rule_is_the_induction_pattern(tokens):
    ids = torch.tensor(tokens)
    rule = compile_rule("attend k where tok[k]==tok[q] shift +1")
    assert torch.equal(rule.matrix(ids), head_detector.get_induction_head_detection_pattern(ids.unsqueeze(0)))


GPT2_TOKENS = ['<|endoftext|>', 'The', ' following', ' lex', 'ical', ' sequence', ' has', ' been', ' optim',
               'ised', ' for', ' the', ' maxim', 'isation', ' of', ' lo', 'qu', 'aciously', ' multit', 'oken',
               ' letter', ' combinations', '.']


def test_current_word_head_on_the_transformer_lens_demo_prompt():
    matrix = load_pattern("current_word_head").matrix(str_tokens=GPT2_TOKENS)
    marked = {(q, k) for q, k in matrix.nonzero().tolist()}
    expected = {(4, 3), (9, 8), (13, 12), (16, 15), (17, 15), (17, 16), (19, 18), (22, 21)}
    assert marked == expected
    assert matrix.diagonal().sum() == 0, "nothing on the current token"
