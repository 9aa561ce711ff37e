"""Patterns on a window of queries (`BatchFeatures.window`, `detection_block`): equal to the rows
of the full matrix cut to the window's keys, for random rules of every construct, random padded
batches and random windows evaluated one after another on the same batch's features."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patternlang import compile_rule
from patternlang.engine.batching import pad_batch
from patternlang.engine.pattern_tensors import Detector, batch_features, detection_block, detection_tensors
from tests.rule_strategies import (annotated_features, annotated_prompts, model_features, model_prompts, model_rules,
                                   prompts, rules, syntax_rules, token_features)


@st.composite
def windows(draw, width: int) -> list[tuple[int, int]]:
    """One to three windows [q_start, q_stop) inside `width` positions, in any order."""
    chosen = []
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.integers(0, width - 1))
        chosen.append((start, draw(st.integers(start + 1, width))))
    return chosen


def _check_windows(patterns, features, data) -> None:
    full = [pattern.evaluate(features) for pattern in patterns]
    width = features.n_pos
    for q_start, q_stop in data.draw(windows(width)):
        window = features.window(q_start, q_stop)
        for pattern, matrix in zip(patterns, full):
            block = pattern.evaluate(window)
            assert block.shape == (features.batch, q_stop - q_start, q_stop)
            torch.testing.assert_close(block, matrix[:, q_start:q_stop, :q_stop], atol=1e-6, rtol=1e-6)
    # Windows never leave their results in the batch's own memo: the full matrix is unchanged.
    for pattern, matrix in zip(patterns, full):
        torch.testing.assert_close(pattern.evaluate(features), matrix, atol=0, rtol=0)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(rule=rules(), other=rules(), batch=st.lists(prompts, min_size=1, max_size=4), data=st.data())
def test_windows_equal_the_full_rows_on_random_rules(rule, other, batch, data):
    # Two rules on one batch: they share sub-expressions in the memo, as shipped patterns do.
    _check_windows([compile_rule(rule), compile_rule(other)], token_features(batch), data)


@SETTINGS
@given(rule=syntax_rules(), batch=st.lists(annotated_prompts(), min_size=1, max_size=4), data=st.data())
def test_windows_equal_the_full_rows_on_parser_features(rule, batch, data):
    # dephead, ancestor (the chain table), entstart, lemma, string functions.
    _check_windows([compile_rule(rule)], annotated_features(batch), data)


@SETTINGS
@given(rule=model_rules(), batch=st.lists(model_prompts(), min_size=1,
                                                               max_size=4), data=st.data())
def test_windows_equal_the_full_rows_on_spans_and_predictions(rule, batch, data):
    _check_windows([compile_rule(rule)], model_features(batch), data)


def test_detection_blocks_of_every_detector_kind_equal_the_full_tensors():
    token_lists = [torch.tensor([1, 2, 3, 2, 3, 4, 2]), torch.tensor([1, 5, 5, 6]), torch.tensor([1, 7, 8, 7, 8, 9, 7])]
    fixed = torch.tril(torch.rand(7, 7, generator=torch.Generator().manual_seed(0)))

    def duplicates(tokens: torch.Tensor) -> torch.Tensor:  # a per-prompt function, as TransformerLens' own
        return torch.tril((tokens[:, None] == tokens[None, :]).float(), diagonal=-1)

    detectors = [Detector("induction", pattern=compile_rule("attend k where tok[k - 1] == tok[q] and k < q")),
                 Detector("function", per_prompt=duplicates),
                 Detector("previous", pattern=compile_rule("attend k where k == q - 1 shift +1"))]
    batch = pad_batch(token_lists, [0, 1, 2], 0, torch.device("cpu"))
    full = detection_tensors(detectors, batch, strings=None)
    features = batch_features(detectors, batch)
    for q_start, q_stop in [(0, 3), (3, 6), (6, 7), (2, 7), (0, 7)]:
        block = detection_block(detectors, batch, features, q_start, q_stop)
        assert block.shape == (3, 3, q_stop - q_start, q_stop)
        torch.testing.assert_close(block, full[:, :, q_start:q_stop, :q_stop], atol=0, rtol=0)
    # A fixed [q, k] tensor (every prompt of its length).
    same = [torch.tensor([1, 2, 3, 2, 3, 4, 2]), torch.tensor([1, 7, 8, 7, 8, 9, 7])]
    batch = pad_batch(same, [0, 1], 0, torch.device("cpu"))
    tensors = [Detector("fixed", matrix=fixed)]
    full = detection_tensors(tensors, batch)
    block = detection_block(tensors, batch, batch_features(tensors, batch), 4, 7)
    torch.testing.assert_close(block, full[:, :, 4:7, :7], atol=0, rtol=0)


def test_a_window_outside_the_batch_is_refused():
    features = token_features([[1, 2, 3]])
    for q_start, q_stop in [(2, 2), (-1, 2), (0, 4)]:
        try:
            features.window(q_start, q_stop)
        except ValueError as error:
            assert "window" in str(error)
        else:
            raise AssertionError(f"window {(q_start, q_stop)} was accepted")
