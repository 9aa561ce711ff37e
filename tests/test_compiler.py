"""The vectorised compiler against the plain-Python reference evaluator (the oracle)."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patternlang import compile_rule
from patternlang.compiler import evaluate_all, reference_matrix
from tests.rule_strategies import SPECIAL_IDS, VOCAB, prompts, rules
from tests.rule_strategies import token_features as _features



def _reference(pattern, prompt) -> torch.Tensor:
    return torch.tensor(reference_matrix(pattern.program.expr, prompt, [VOCAB[t] for t in prompt], SPECIAL_IDS))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule=rules(), batch=st.lists(prompts, min_size=1, max_size=4))
def test_program_equals_reference_on_padded_batches(rule, batch):
    pattern = compile_rule(rule)
    result = pattern.evaluate(_features(batch))
    width = result.shape[-1]
    for i, prompt in enumerate(batch):
        n = len(prompt)
        torch.testing.assert_close(result[i, :n, :n], _reference(pattern, prompt), atol=1e-6, rtol=1e-6)
        assert not result[i, n:, :].any() and not result[i, :, n:].any(), "padding must stay zero"
    assert torch.equal(result, torch.tril(result)), "the result must be lower-triangular"
    assert result.shape == (len(batch), width, width)


@settings(max_examples=50, deadline=None)
@given(batch=st.lists(prompts, min_size=1, max_size=3))
def test_evaluate_all_stacks_patterns_and_shares_features(batch):
    patterns = [compile_rule("attend k where tok[k] == tok[q] and k < q"),
                compile_rule("attend k where tok[k] == tok[q] shift +1"),
                compile_rule("attend k where word[k] == word[q] and k < q")]
    features = _features(batch)
    stacked = evaluate_all(patterns, features)
    assert stacked.shape[:2] == (3, len(batch))
    for index, pattern in enumerate(patterns):
        assert torch.equal(stacked[index], pattern.evaluate(_features(batch)))


def test_out_of_range_reads_compare_false():
    # tok[k - 1] does not exist at k = 0, so neither == nor != holds there.
    equal = compile_rule("attend k where tok[k - 1] == tok[q]").matrix([1, 1, 1])
    unequal = compile_rule("attend k where tok[k - 1] != tok[q]").matrix([1, 1, 1])
    assert equal[:, 0].sum() == 0 and unequal[:, 0].sum() == 0
    assert equal.tolist() == [[0, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_shift_moves_keys_and_drops_what_leaves_the_triangle():
    later = compile_rule("(attend k where k == q) shift +1").matrix([5, 6, 7])
    assert later.sum() == 0  # (q, q) -> (q, q + 1) leaves the triangle
    earlier = compile_rule("(attend k where k == q) shift -2").matrix([5, 6, 7, 8])
    assert earlier.tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]]


def test_weights_sum_and_normalize():
    mix = compile_rule("(attend k where k == 0) weight 0.2 + 0.8 * (attend k where k == q - 1)")
    matrix = mix.matrix([1, 2, 3])
    torch.testing.assert_close(matrix[2], torch.tensor([0.2, 0.8, 0.0]))
    torch.testing.assert_close(matrix[1], torch.tensor([1.0, 0.0, 0.0]))  # both targets are key 0
    spread = compile_rule("attend k where q - k <= 1 normalize").matrix([1, 2, 3])
    torch.testing.assert_close(spread.sum(-1), torch.ones(3))


def test_set_operations():
    tokens = [1, 2, 1, 2]
    dup = compile_rule("attend k where tok[k] == tok[q] and k < q").matrix(tokens)
    prev = compile_rule("attend k where k == q - 1").matrix(tokens)
    assert torch.equal(compile_rule("duplicate_token_head | previous_token_head").matrix(tokens), torch.maximum(dup, prev))
    assert torch.equal(compile_rule("duplicate_token_head & previous_token_head").matrix(tokens), torch.minimum(dup, prev))
    assert torch.equal(compile_rule("duplicate_token_head - previous_token_head").matrix(tokens), dup * (prev == 0))


def test_batch_matrix_and_single_prompt_agree():
    pattern = compile_rule("attend k where tok[k] == tok[q] shift +1")
    batch = pattern.matrix(torch.tensor([[1, 2, 1, 2], [3, 3, 3, 3]]))
    assert batch.shape == (2, 4, 4)
    assert torch.equal(batch[0], pattern.matrix([1, 2, 1, 2]))
