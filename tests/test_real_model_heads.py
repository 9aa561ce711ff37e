"""The model-aware patterns on the embedded SmolLM2-135M: `name_mover_head` and `s_inhibition_head`
on the `ioi` probe, `retrieval_head` on `needle`. Their evidence is what the labels imply (one END
row per ioi prompt; the needle's rows recomputed from the model's own logits), their scores are
finite, and properties of the real model hold with slack: margins measured once (the figures in
the comments below, on 16 ioi prompts and 4 needle prompts of length 10, seed 0) and asserted at
about half, on the 8 and 2 prompts the tests run."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from patternlang import detect
from patternlang.probes import make_probe
from tests.conftest import run

pytestmark = pytest.mark.model

MEASURES = ["mass", "copying"]


@pytest.fixture(scope="module")
def ioi_scores(embedded_model):
    prompts = make_probe("ioi", {"batch": 8})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no score may be undefined
        scores = detect(embedded_model, prompts, ["name_mover_head", "s_inhibition_head"], measures=MEASURES,
                        per_prompt=True, progress=False)
    return prompts, scores


def head_of(label: str) -> tuple[int, int]:
    layer, head = label[1:].split("H")
    return int(layer), int(head)


def test_ioi_patterns_have_one_end_row_per_prompt_and_finite_scores(ioi_scores):
    prompts, scores = ioi_scores
    for name in ("name_mover_head", "s_inhibition_head"):
        evidence = scores.evidence[name]
        assert evidence.n_rows == evidence.n_prompts == len(prompts) == 8  # END is one token: one target row each
        assert evidence.baseline["copying"] == 0.0 and 0.02 < evidence.baseline["mass"] < 0.2
        for measure in MEASURES:
            assert torch.isfinite(scores.get(name, measure)).all()


def test_name_movers_attend_end_to_io_far_above_chance_and_copying_tells_them_apart(ioi_scores):
    # Measured: top mass L24H4 0.63, L23H1 0.52, L23H0 0.52 (chance 0.06); copying L24H4 -0.82
    # (a negative name mover), L23H1 and L23H0 about +0.6 (name movers).
    _, scores = ioi_scores
    chance = scores.evidence["name_mover_head"].baseline["mass"]
    top = scores.top("name_mover_head", k=3, measure="mass")
    assert top[0][1] > 0.35 and top[0][1] > 5 * chance
    assert all(head_of(label)[0] >= 20 for label, _ in top)  # late layers, as in GPT-2 small
    copying = scores.get("name_mover_head", "copying")
    signs = [float(copying[head_of(label)]) for label, _ in top]
    assert max(signs) > 0.3, f"a top head should copy the name (copying {signs})"
    assert min(signs) < -0.3, f"a top head should suppress it: a negative name mover (copying {signs})"
    # Heads that barely attend END -> IO carry little copying there, whatever they write.
    mass = scores.get("name_mover_head", "mass")
    assert copying[mass < 0.05].abs().max() < 0.1


def test_s_inhibition_heads_attend_end_to_s2_far_above_chance(ioi_scores):
    # Measured: L20H0 0.79, L25H2 0.77, L23H3 0.62 (chance 0.06).
    _, scores = ioi_scores
    chance = scores.evidence["s_inhibition_head"].baseline["mass"]
    top = scores.top("s_inhibition_head", k=3, measure="mass")
    assert top[0][1] > 0.5 and top[2][1] > 5 * chance


def test_retrieval_heads_on_the_needle_read_the_models_own_predictions(embedded_model):
    from patternlang.spans import token_labels
    from patternlang.tokenization import token_offsets

    prompts = make_probe("needle", {"batch": 2, "length": 10})
    scores = detect(embedded_model, prompts, "retrieval_head", measures=MEASURES, progress=False)
    # The target rows by their definition, from the model's logits: outside the key, where the
    # model's top prediction is a token of the key at or before q.
    rows = 0
    for text, spans in zip(prompts.texts, prompts.spans):
        ids = embedded_model.to_tokens(text)[0]
        labels = token_labels(spans, token_offsets(embedded_model.tokenizer, ids.tolist(), text))
        with torch.inference_mode():
            predicted = embedded_model(ids[None], return_type="logits")[0].argmax(-1).tolist()
        keys = [(k, int(t)) for k, (t, label) in enumerate(zip(ids.tolist(), labels)) if label == "key"]
        rows += sum(1 for q, label in enumerate(labels)
                    if label != "key" and any(k <= q and t == predicted[q] for k, t in keys))
    evidence = scores.evidence["retrieval_head"]
    assert evidence.n_rows == rows and evidence.n_prompts == 2 and rows >= 4  # the answer's tokens at least
    for measure in MEASURES:
        assert torch.isfinite(scores.get("retrieval_head", measure)).all()
    # Measured: L18H6 mass 0.88 (chance 0.03) with copying +0.86: it attends to the key it is
    # about to say and raises it.
    (label, top_mass), = scores.top("retrieval_head", k=1, measure="mass")
    assert top_mass > 0.5 and top_mass > 10 * evidence.baseline["mass"]
    assert float(scores.get("retrieval_head", "copying")[head_of(label)]) > 0.3


def test_cli_show_draws_an_ioi_prompt_as_detect_scored_it(capsys, ioi_scores, embedded_model):
    prompts, scores = ioi_scores
    label = scores.top("name_mover_head", k=1, measure="mass")[0][0]
    code, out, err = run(capsys, "show", "name_mover_head", label, "--probe", "ioi(batch=8)", "--index", "3",
                         "--measure", "mass,copying", "--json")
    assert code == 0, err
    shown = json.loads(out)
    expected = {m: float(scores.per_prompt["name_mover_head"][m][3][head_of(label)]) for m in MEASURES}
    assert shown["scores"] == pytest.approx(expected, abs=1e-4)
    n = len(shown["tokens"])
    assert shown["target_rows"] == [False] * (n - 1) + [True]  # END is the last token
    io = [k for k, span in enumerate(shown["span_labels"]) if span == "IO"]
    assert [k for k, v in enumerate(shown["matrix"][n - 1]) if v] == io and len(io) == 1
