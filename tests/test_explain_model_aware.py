"""Drawing patterns that see the model (`explain`, `Scores.show`, `patternlang show`, the atlas): a
pattern reading the model's predictions is drawn on the predictions of the engine's own pass to
the logits, a pattern reading labelled spans on the prompt's labels, and both with the prompt's
scores (`copying` included) as `detect` gives them. Oracles: the predictions and the matrix by
their definition from the model's logits, and `detect` on the same prompt."""

from __future__ import annotations

import json

import pytest
import torch

from patternlang import detect
from patternlang.errors import InputError
from patternlang.engine.explanation import explain
from patternlang.prompts import Prompts
from patternlang.testing.predicting import COPY_WEIGHT, PREDICTION_HEAD, make_predicting_model
from tests.conftest import run, serve_instead_of_loading

PRED_RULE = "attend k where tok[k] == pred[q] and k < q"
TEXT = "abcabdcabfe"  # BOS is prepended
# " ... IO ... END": character ranges of TEXT (end exclusive); the CharTokenizer gives one token per character.
SPANS = {"IO": [[1, 2]], "S1": [[4, 5]], "END": [[10, 11]]}


@pytest.fixture(scope="module", params=[1.0, -1.0], ids=["copies", "suppresses"])
def model(request):
    return make_predicting_model(request.param)


def logits_of(model, text: str) -> torch.Tensor:
    with torch.inference_mode():
        return model(model.to_tokens(text), return_type="logits")[0]  # [pos, vocab]


def scored(model, prompts, rule: str, head: tuple[int, int], measures: list[str]) -> dict[str, float]:
    scores = detect(model, prompts, rule, measures=measures, heads=[head], progress=False)
    return {m: float(scores.values[m][0][head]) for m in measures}


def test_a_prediction_pattern_is_drawn_on_the_models_own_predictions(model, tmp_path):
    why = explain(model, PRED_RULE, "L1H0", TEXT, measures=["mass", "copying"])
    ids = model.to_tokens(TEXT)[0]
    predicted = logits_of(model, TEXT).argmax(-1)
    q, k = torch.meshgrid(torch.arange(len(ids)), torch.arange(len(ids)), indexing="ij")
    expected = ((ids[k] == predicted[q]) & (k < q)).float()  # the rule by its definition
    assert expected.sum() >= 3  # the prompt has target cells
    torch.testing.assert_close(why.matrix, expected)
    assert why.scores == pytest.approx(scored(model, [TEXT], PRED_RULE, PREDICTION_HEAD, ["mass", "copying"]),
                                       abs=1e-6)
    sign = model.blocks[1].attn.W_O[0].sum().sign().item()  # +1 copies, -1 suppresses
    assert why.scores["copying"] == pytest.approx(sign * COPY_WEIGHT, abs=1e-3)
    assert why.predicted == tuple(model.to_str_tokens(predicted))  # drawn beside each row
    assert why.span_labels is None
    assert f">{why.predicted[1]}" in why.to_text() and why.save(tmp_path / "why.png").read_bytes()[:4] == b"\x89PNG"


def test_copy_suppression_head_is_drawn_on_the_top_10_predictions(model):
    why = explain(model, "copy_suppression_head", "L1H0", TEXT, measures=["mass", "copying"])
    ids = model.to_tokens(TEXT)[0]
    top10 = logits_of(model, TEXT).topk(10, dim=-1).indices  # [pos, 10]
    special = torch.tensor([i in model.tokenizer.all_special_ids for i in ids.tolist()])
    n = len(ids)
    expected = torch.zeros(n, n)
    for q in range(n):
        for k in range(q):
            expected[q, k] = float(bool((top10[q] == ids[k]).any()) and not special[k])
    torch.testing.assert_close(why.matrix, expected)
    assert why.scores == pytest.approx(
        scored(model, [TEXT], "copy_suppression_head", PREDICTION_HEAD, ["mass", "copying"]), abs=1e-6)


def test_a_span_pattern_is_drawn_on_the_prompts_labels(model):
    why = explain(model, "name_mover_head", "L1H0", TEXT, spans=SPANS, measures=["mass", "copying"])
    n = len(TEXT) + 1
    expected = torch.zeros(n, n)
    expected[n - 1, 2] = 1.0  # END (the last character) -> IO (character 1, after BOS)
    torch.testing.assert_close(why.matrix, expected)
    assert why.target_rows.nonzero().flatten().tolist() == [n - 1]
    assert why.span_labels[2] == "IO" and why.span_labels[5] == "S1" and why.span_labels[-1] == "END"
    labelled = Prompts(texts=(TEXT,), spans=(SPANS,))
    assert why.scores == pytest.approx(scored(model, labelled, "name_mover_head", (1, 0), ["mass", "copying"]),
                                       abs=1e-6)
    # The same prompt given as a labelled prompt set of one.
    again = explain(model, "name_mover_head", "L1H0", labelled, measures=["mass", "copying"])
    torch.testing.assert_close(again.matrix, why.matrix)
    assert again.scores == why.scores
    assert "[END]" in why.to_text() and "[IO]" in why.to_text()
    assert "b [IO]" in why._repr_html_() and "e [END]" in why._repr_html_()  # the HTML's labels too


def test_scores_show_draws_a_labelled_prompt_with_its_own_labels(model):
    texts = (TEXT, "xyzxyzab", "abab")
    spans = (SPANS, {"IO": [[0, 1]], "END": [[7, 8]]}, None)
    scores = detect(model, Prompts(texts=texts, spans=spans), "name_mover_head", measures=["mass", "copying"],
                    per_prompt=True, progress=False)
    for index in range(3):
        why = scores.show("name_mover_head", "L1H0", index)
        per_prompt = {m: float(scores.per_prompt["name_mover_head"][m][index, 1, 0]) for m in scores.measures}
        assert why.scores == pytest.approx(per_prompt, abs=1e-6, nan_ok=True)
    assert scores.show("name_mover_head", "L1H0", 1).matrix[8, 1] == 1.0  # END -> IO of prompt 1's labels
    assert not scores.show("name_mover_head", "L1H0", 2).matrix.any()  # a prompt without labels: no cells


def test_a_span_pattern_on_a_prompt_without_spans_says_how_to_give_them(model):
    with pytest.raises(InputError, match=r"reads labelled spans \(span\[\.\.\.\]\), and this prompt has none") as caught:
        explain(model, "name_mover_head", "L1H0", TEXT)
    assert "spans=" in caught.value.hint and "--probe ioi" in caught.value.hint
    scores = detect(model, Prompts(texts=(TEXT,), spans=(SPANS,)), "name_mover_head", progress=False)
    with pytest.raises(InputError, match="this prompt has none"):
        scores.show("name_mover_head", "L1H0", TEXT)  # a text given to show has no labels either
    with pytest.raises(InputError, match="character ranges of a text prompt"):
        explain(model, "name_mover_head", "L1H0", [0, 5, 6], spans=SPANS)
    with pytest.raises(InputError, match="not a non-empty range inside"):
        explain(model, "name_mover_head", "L1H0", "ab", spans=SPANS)


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def predicting_cli(monkeypatch):
    """`patternlang show` with the hand-set predicting model in place of a loaded one; records each load."""
    return serve_instead_of_loading(monkeypatch, make_predicting_model(-1.0))


def test_cli_show_draws_a_labelled_prompt_of_a_jsonl_file(capsys, tmp_path, predicting_cli):
    path = tmp_path / "ioi.jsonl"
    path.write_text(json.dumps({"text": "no labels"}) + "\n" + json.dumps({"text": TEXT, "spans": SPANS}) + "\n",
                    encoding="utf-8")
    code, out, err = run(capsys, "show", "name_mover_head", "L1H0", "--prompts", str(path), "--index", "1",
                         "--measure", "mass,copying", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["prompt_index"] == 1 and shown["target_rows"].index(True) == len(TEXT)
    assert shown["span_labels"][2] == "IO" and shown["matrix"][len(TEXT)][2] == 1.0
    expected = scored(make_predicting_model(-1.0), Prompts(texts=(TEXT,), spans=(SPANS,)), "name_mover_head",
                      (1, 0), ["mass", "copying"])
    assert shown["scores"] == pytest.approx(expected, abs=1e-6)

    code, out, err = run(capsys, "show", "copy_suppression_head", "L1H0", "--prompt", TEXT, "--measure",
                         "mass,copying")
    assert code == 0, err
    assert "scores on this prompt: mass" in out and "copying -0.500" in out and " >" in out


@pytest.mark.parametrize("args, message", [
    (["--prompt", "ab", "--probe", "ioi"], "exactly one of --prompt TEXT, --tokens"),
    (["--prompt", "ab", "--index", "2"], "--index picks a prompt of --probe or --prompts"),
    (["--probe", "bogus_probe"], "bogus_probe"),
    (["--prompts", "missing.jsonl"], "missing.jsonl"),
])
def test_cli_show_checks_prompt_choices_before_loading(capsys, predicting_cli, args, message):
    code, _, err = run(capsys, "show", "name_mover_head", "L1H0", *args)
    assert code == 1 and message in err and "Traceback" not in err
    assert predicting_cli == []


def test_cli_show_index_out_of_range_and_a_prompt_without_spans(capsys, tmp_path, predicting_cli):
    path = tmp_path / "two.jsonl"
    path.write_text(json.dumps({"text": TEXT, "spans": SPANS}) + "\n" + json.dumps({"text": "ab"}) + "\n",
                    encoding="utf-8")
    code, _, err = run(capsys, "show", "name_mover_head", "L1H0", "--prompts", str(path), "--index", "5")
    assert code == 1 and "--index 5 is out of range" in err and "holds 2 prompts" in err and predicting_cli == []
    code, _, err = run(capsys, "show", "name_mover_head", "L1H0", "--prompt", TEXT)
    assert code == 1 and "and this prompt has none" in err and "--probe ioi" in err and "Traceback" not in err


# --------------------------------------------------------------------------- the atlas


def test_the_atlas_draws_span_and_prediction_patterns_as_explain_does():
    from patternlang.atlas import build_document
    from patternlang.atlas.document import _triangle
    from patternlang.probes import make_probe
    from patternlang.settings import ProbeSpec

    model = make_predicting_model(-1.0, n_ctx=512)  # the statistics read natural text
    probe = ProbeSpec("ioi", (("batch", 4),))
    doc = build_document(model, ["name_mover_head", "copy_suppression_head"], probe=probe)
    prompts = make_probe("ioi", {"batch": 4})
    for name in ("name_mover_head", "copy_suppression_head"):
        sample = doc["patterns"][name]["sample"]  # the pattern's matrix on the probe's first prompt
        why = explain(model, name, "L1H0", next(iter(prompts)), spans=prompts.spans[0])
        n = sample["n_tokens"]
        assert why.matrix[:n, :n].any(), "the sample shows the pattern's cells"
        assert sample["matrix"] == _triangle(why.matrix[:n, :n])
    drawn = doc["heads"]["L1H0"]  # the prediction head: its best pattern is the one reading predictions
    assert drawn["pattern"] == "copy_suppression_head"
    for example in drawn["examples"]:
        why = explain(model, "copy_suppression_head", "L1H0", list(prompts)[example["prompt"]])
        n = example["n_tokens"]
        assert example["matrix"] == _triangle(why.matrix[:n, :n])
        assert example["attention"] == _triangle(why.attention[:n, :n])
