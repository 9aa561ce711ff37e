"""`span[k]`, `pred[q]`, `predicted(...)` and `lens_predicted(...)`: the compiled program equals the
reference evaluator on random rules over random predictions and labelled spans."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patternlang import PatternError, compile_rule
from patternlang.compiler import reference_matrix
from patternlang.spans import check_spans, token_labels
from tests.rule_strategies import SPECIAL_IDS, VOCAB, model_prompts, model_rules
from tests.rule_strategies import model_features as _features

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule=model_rules(), batch=st.lists(model_prompts(), min_size=1, max_size=4))
def test_program_equals_reference_on_random_predictions_and_spans(rule, batch):
    pattern = compile_rule(rule)
    result = pattern.evaluate(_features(batch))
    for i, (prompt, offsets, labels, ranked) in enumerate(batch):
        n = len(prompt)
        expected = reference_matrix(pattern.program.expr, prompt, [VOCAB[t] for t in prompt], SPECIAL_IDS,
                                    offsets=offsets, labels=labels, predictions=ranked)
        torch.testing.assert_close(result[i, :n, :n], torch.tensor(expected), atol=1e-6, rtol=1e-6)
        assert not result[i, n:, :].any() and not result[i, :, n:].any(), "padding must stay zero"


def test_a_token_carries_the_first_span_it_overlaps_by_one_character():
    spans = check_spans({"IO": [[5, 9]], "S1": [[0, 6]]}, "John Mary went", 0)
    #                        BOS     "John"  " Mary"  " went"  "y" alone
    assert token_labels(spans, [(0, 0), (0, 4), (4, 9), (9, 14), (8, 9)]) == ["", "S1", "IO", "", "IO"]
    # " Mary" (4, 9) overlaps S1 [0, 6) first in the prompt's order? IO is given first, so IO wins.
    assert token_labels(check_spans([("S1", 0, 6), ("IO", 5, 9)], "John Mary went", 0), [(4, 9)]) == ["S1"]


@pytest.mark.parametrize("rule, message", [
    ("attend k where predicted(tok[k], q, 0)", "from 1 to 100"),
    ("attend k where predicted(tok[k], q, k)", "whole number"),
    ("attend k where lens_predicted(tok[k], q, 5, -1)", "block index"),
    ("attend k where predicted(str[k], q, 5)", "must be a token"),
    ("attend k where span[k] == 3", "cannot compare"),
    ("attend k where pred[q] == \"a\"", "cannot compare"),
])
def test_near_misses_are_refused_with_their_reason(rule, message):
    with pytest.raises(PatternError) as caught:
        compile_rule(rule)
    assert message in str(caught.value)


def test_needs_say_what_the_engine_must_prepare():
    from patternlang.syntax.predictions import prediction_requests

    assert compile_rule('attend k where span[k] == "IO"').needs == {"tokens", "offsets", "spans"}
    rule = compile_rule("attend k where tok[k] == pred[q] or lens_predicted(tok[k], q, 7, 3) or predicted(tok[k], q, 2)")
    assert "predictions" in rule.needs
    assert prediction_requests([rule.expr]) == {None: 2, 3: 7}
    assert "predictions" not in compile_rule("attend k where tok[k] == tok[q]").needs


def test_jsonl_prompt_files_give_labelled_spans(tmp_path):
    from patternlang import InputError
    from patternlang.probes import from_file

    path = tmp_path / "ioi.jsonl"
    path.write_text('{"text": "When Mary and John left", "spans": {"IO": [[5, 9]], "S1": [[14, 18]]}}\n'
                    '{"text": "No labels here"}\n', encoding="utf-8")
    prompts = from_file(path)
    assert prompts.spans == ((("IO", 5, 9), ("S1", 14, 18)), None)
    path.write_text('{"text": "short", "spans": {"IO": [[3, 9]]}}\n', encoding="utf-8")
    with pytest.raises(InputError, match="not a non-empty range inside"):
        from_file(path)
