"""The engine on patterns that read the model's predictions and on the `copying` measure: a
hand-set model whose one head attends to the token the model predicts, and the cost of runs
without such patterns (the same single stopped pass as before)."""

from __future__ import annotations

import random

import pytest
import torch

from patternlang import detect
from patternlang.testing.hand_set import make_hand_set_model
from patternlang.testing.predicting import COPY_WEIGHT, PREDICTION_HEAD, make_predicting_model

random.seed(0)
TEXTS = ["".join(random.choice("abcdef") for _ in range(30)) for _ in range(6)]
PRED_RULE = "attend k where tok[k] == pred[q] and k < q"


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_the_head_attending_to_the_predicted_token_ranks_first_with_the_sign_of_its_copying(sign):
    model = make_predicting_model(sign)
    scores = detect(model, TEXTS, PRED_RULE, measures=["mass", "copying"], progress=False)
    top_label, top_mass = scores.top(PRED_RULE, k=1, measure="mass")[0]
    assert top_label == "L1H0" and top_mass > 0.99
    copying = scores.values["copying"][0]
    assert copying[PREDICTION_HEAD] == pytest.approx(sign * COPY_WEIGHT, abs=1e-3)
    others = [copying[layer, head].abs().item() for layer in range(2) for head in range(2)
              if (layer, head) != PREDICTION_HEAD]
    assert max(others) < 1e-3  # heads that do not attend to the targets carry no copying


def test_top_n_and_the_logit_lens_read_what_the_residual_stream_predicts():
    model = make_predicting_model()
    rules = [PRED_RULE, "attend k where lens_predicted(tok[k], q, 1, 0) and k < q",
             "attend k where predicted(tok[k], q, 1) and k < q"]
    scores = detect(model, TEXTS, rules, progress=False)
    torch.testing.assert_close(scores.values["mass"][1], scores.values["mass"][0])  # block 0 already predicts
    torch.testing.assert_close(scores.values["mass"][2], scores.values["mass"][0])
    wider = detect(model, TEXTS, "attend k where predicted(tok[k], q, 3) and k < q", progress=False)
    assert wider.evidence["attend k where predicted(tok[k], q, 3) and k < q"].n_rows >= scores.evidence[PRED_RULE].n_rows


def test_a_lens_layer_beyond_the_model_is_a_clear_error():
    from patternlang import InputError

    with pytest.raises(InputError, match="2 blocks"):
        detect(make_predicting_model(), TEXTS, "attend k where lens_predicted(tok[k], q, 1, 5)", progress=False)


class CountingModel:
    """Wraps a model and records every `run_with_hooks` call: its hook names and return type."""

    def __init__(self, model):
        self._model = model
        self.calls: list[tuple[tuple[str, ...], object]] = []

    def run_with_hooks(self, tokens, fwd_hooks=(), return_type="logits", **kwargs):
        self.calls.append((tuple(name for name, _ in fwd_hooks), return_type))
        return self._model.run_with_hooks(tokens, fwd_hooks=fwd_hooks, return_type=return_type, **kwargs)

    def __getattr__(self, name):
        return getattr(self._model, name)


def test_runs_without_model_aware_patterns_cost_exactly_one_stopped_pass_per_batch():
    model = CountingModel(make_hand_set_model(3))
    detect(model, TEXTS, ["previous_token_head", "attend k where tok[k] == tok[q]"], batch_size=2, progress=False)
    assert len(model.calls) == 3  # one pass per batch
    for names, return_type in model.calls:
        assert return_type is None and all(name.endswith("attn.hook_pattern") for name in names)


def test_a_model_aware_pattern_still_costs_one_pass_per_batch_run_to_the_logits():
    model = CountingModel(make_predicting_model())
    detect(model, TEXTS, ["previous_token_head", PRED_RULE], measures=["mass", "copying"], batch_size=2,
           progress=False)
    assert len(model.calls) == 3
    assert all(return_type == "logits" for _, return_type in model.calls)
