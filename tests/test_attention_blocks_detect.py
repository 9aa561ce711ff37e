"""detect through the model's own block route (`engine/attention_blocks.py`) against hook_pattern."""

from __future__ import annotations

import warnings

import pytest
import torch

from patternlang.engine import detect

PATTERNS = ["previous_token_head", "duplicate_token_head", "induction_head", "bos_head", "attend k where k == q - 2"]
MEASURES = ["mass", "tv", "argmax", "mul", "abs", "lift"]


def prompts(vocab: int, lengths: list[int], seed: int = 0) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    rows = [torch.randint(3, vocab, (n,), generator=generator).tolist() for n in lengths]
    for row in rows:
        row[0] = 1
    return rows


def assert_paths_agree(model, token_lists):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        blocks = detect(model, token_lists, PATTERNS, measures=MEASURES, attention="blocks", progress=False)
        pattern = detect(model, token_lists, PATTERNS, measures=MEASURES, attention="pattern", progress=False)
    assert blocks.settings["attention"]["path"] == "blocks"
    assert pattern.settings["attention"]["path"] == "hook_pattern"
    for measure in MEASURES:
        torch.testing.assert_close(blocks.values[measure], pattern.values[measure], atol=1e-5, rtol=0,
                                   equal_nan=True, msg=measure)


def test_detect_by_the_route_equals_hook_pattern_on_a_tiny_gemma3():
    from patternlang.testing.tiny_bridges import make_tiny_bridge

    model = make_tiny_bridge("gemma3", sliding_window=5)
    assert_paths_agree(model, prompts(model.cfg.d_vocab, [40, 27, 19]))


@pytest.mark.model
def test_detect_by_the_route_equals_hook_pattern_on_smollm2(embedded_model):
    assert_paths_agree(embedded_model, prompts(embedded_model.cfg.d_vocab, [90, 61], seed=1))
