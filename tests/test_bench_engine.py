"""The engine paths the benchmarks made fast, checked against plain computations:
query blocks for long prompts, patterns written straight into the detection tensor, and
the separate columns kept for patterns with negative values."""

from __future__ import annotations

import pytest
import torch

from patternlang.compiler import BatchFeatures, evaluate_all
from patternlang.engine import cells
from patternlang.engine.accumulate import Accumulator, PatternGroup
from patternlang.engine.measures import ATTENTION_MEASURES as MEASURES, Exclusions, cell_products
from patternlang.library import load_pattern
from patternlang.testing import oracle_scores, random_attention, random_detection


def engine_scores(attention, detection, lengths, excl, chosen=MEASURES):
    acc = Accumulator(n_patterns=detection.shape[0], n_layers=1, n_heads=attention.shape[1], measures=tuple(chosen),
                      groups=[PatternGroup(tuple(range(detection.shape[0])), excl)], heads={0: None})
    acc.start_batch(detection, torch.tensor(lengths))
    acc.add_layer(0, attention)
    return {m: v[:, 0] for m, v in acc.result().values.items()}


@pytest.mark.parametrize("block", [1, 3, 4, 100])
def test_query_blocks_give_the_plain_einsum(block):
    g = torch.Generator().manual_seed(3)
    attention = torch.rand(2, 3, 10, 10, generator=g).tril()
    by_cell = torch.rand(2, 10, 10, 5, generator=g) * torch.ones(10, 10).tril()[None, :, :, None]  # [b, q, k, c]
    expected = torch.einsum("bhqk,bqkc->bqhc", attention, by_cell)
    torch.testing.assert_close(cell_products(attention, by_cell, block=block), expected)


@pytest.mark.parametrize("excl", [Exclusions(), Exclusions(True, True)], ids=["plain", "bos+current"])
def test_every_measure_matches_the_oracle_when_long_prompts_go_by_query_blocks(monkeypatch, excl):
    monkeypatch.setattr(cells, "QUERY_BLOCK", 3)  # prompts of up to 8 tokens: 1 to 3 blocks, with padding
    g = torch.Generator().manual_seed(11)
    lengths = [8, 5, 2, 7]
    attention = random_attention(len(lengths), 3, lengths, g)
    detection = random_detection(3, lengths, g, density=0.5)
    ours = engine_scores(attention, detection, lengths, excl)
    expected = oracle_scores(attention, detection, lengths, excl)
    for m in MEASURES:
        torch.testing.assert_close(ours[m].double(), expected[m], rtol=0, atol=2e-6, equal_nan=True, msg=m)


def test_evaluate_all_writes_into_any_layout_what_it_would_stack():
    patterns = [load_pattern(name) for name in ("previous_token_head", "induction_head", "bos_head")]
    tokens = torch.tensor([[1, 5, 6, 5, 6, 2], [1, 7, 7, 7, 2, 2]])
    mask = torch.tensor([[True] * 5 + [False], [True] * 4 + [False] * 2])
    features = BatchFeatures.build(tokens, mask)
    stacked = evaluate_all(patterns, features)
    pattern_last = torch.full((2, 6, 6, 3), 9.0)  # garbage that must all be overwritten
    returned = evaluate_all(patterns, BatchFeatures.build(tokens, mask), out=pattern_last.permute(3, 0, 1, 2))
    assert torch.equal(returned, stacked)
    assert torch.equal(pattern_last.permute(3, 0, 1, 2), stacked)
    with pytest.raises(ValueError, match="out has shape"):
        evaluate_all(patterns, features, out=torch.empty(2, 2, 6, 6))


def test_negative_patterns_keep_their_values_for_mul_and_their_positive_part_for_row_measures():
    g = torch.Generator().manual_seed(5)
    lengths = [6, 4]
    attention = random_attention(2, 2, lengths, g)
    detection = random_detection(2, lengths, g, density=0.6) - 0.3 * random_detection(2, lengths, g, density=0.6)
    assert (detection < 0).any()
    together = engine_scores(attention, detection, lengths, Exclusions(), chosen=("mass", "argmax", "mul", "abs"))
    alone = {m: engine_scores(attention, detection, lengths, Exclusions(), chosen=(m,))[m]
             for m in ("mass", "argmax", "mul", "abs")}
    for m, values in alone.items():
        torch.testing.assert_close(together[m], values, msg=m)
    positive = engine_scores(attention, detection.clamp_min(0), lengths, Exclusions(), chosen=("mass", "argmax"))
    torch.testing.assert_close(together["mass"], positive["mass"])
    torch.testing.assert_close(together["argmax"], positive["argmax"])
    expected = oracle_scores(attention, detection, lengths, Exclusions())
    torch.testing.assert_close(together["mul"].double(), expected["mul"], rtol=0, atol=2e-6)
    torch.testing.assert_close(together["abs"].double(), expected["abs"], rtol=0, atol=2e-6)
