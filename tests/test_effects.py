"""Effects (patternlang.effects): metrics against hand computations, ablation against a plain
TransformerLens hook on hook_z written here, patching a run into itself, attribution against exact
ablation on a model linear in the heads, random baselines, the JSON contract and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from patternlang.effects import Metric, ablate, attribute, patch, rank_correlation, resolve_metric
from patternlang.effects.effect_inputs import prepare
from patternlang.effects.metrics import MetricBatch, induction_targets
from patternlang.effects.effect_results import mean_and_interval, random_baseline
from patternlang.errors import InputError, UnknownNameError
from patternlang.probes import Prompts, get_probe
from patternlang.testing import make_hand_set_model, make_linear_model
from patternlang.testing.predicting import make_predicting_model


# ---- metrics against hand computations ---------------------------------------------------------
def _batch(tokens, lengths, labels=None):
    tokens = torch.tensor(tokens)
    return MetricBatch(tokens, torch.tensor(lengths), tuple(labels or [None] * len(tokens)), tuple(range(len(tokens))))


def _log_softmax(row, index):
    return row[index] - math.log(sum(math.exp(x) for x in row))


def test_loss_is_the_mean_next_token_cross_entropy_over_real_tokens():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5)
    batch = _batch([[0, 3, 1, 4], [0, 2, 2, 0]], [4, 3])  # the second prompt is padded after 3 tokens
    got = resolve_metric("loss")(logits, batch)
    rows = logits.tolist()
    first = -sum(_log_softmax(rows[0][t], [0, 3, 1, 4][t + 1]) for t in range(3)) / 3
    second = -sum(_log_softmax(rows[1][t], [0, 2, 2][t + 1]) for t in range(2)) / 2
    assert got.tolist() == pytest.approx([first, second], abs=1e-5)


def test_induction_loss_reads_only_the_tokens_induction_predicts():
    tokens = [[0, 5, 6, 7, 5, 6, 7]]
    assert induction_targets(torch.tensor(tokens), torch.ones(1, 7, dtype=torch.bool)).tolist() == [
        [False, False, False, False, True, True]]  # targets at positions 5 and 6 (6 after 5, 7 after 6)
    torch.manual_seed(1)
    logits = torch.randn(1, 7, 9)
    got = resolve_metric("induction_loss")(logits, _batch(tokens, [7]))
    rows = logits[0].tolist()
    expected = -(_log_softmax(rows[4], 6) + _log_softmax(rows[5], 7)) / 2
    assert float(got[0]) == pytest.approx(expected, abs=1e-5)


def test_logit_diff_reads_the_span_tokens_at_the_end_span():
    logits = torch.zeros(1, 5, 10)
    logits[0, 4, 7], logits[0, 4, 3], logits[0, 3, 7] = 2.5, -1.0, 100.0  # position 3 is not END
    labels = [("", "IO", "S1", "", "END")]
    batch = _batch([[0, 7, 3, 3, 9]], [5], labels)
    assert float(resolve_metric("logit_diff")(logits, batch)[0]) == pytest.approx(3.5)
    assert float(resolve_metric("logit_diff(S1, IO)")(logits, batch)[0]) == pytest.approx(-3.5)


def test_retrieval_is_the_probability_of_the_answer_tokens_teacher_forced():
    torch.manual_seed(2)
    logits = torch.randn(1, 5, 6)
    labels = [("", "", "END", "answer", "answer")]
    got = resolve_metric("retrieval")(logits, _batch([[0, 1, 2, 4, 5]], [5], labels))
    rows = logits[0].tolist()
    expected = math.exp(_log_softmax(rows[2], 4) + _log_softmax(rows[3], 5))
    assert float(got[0]) == pytest.approx(expected, rel=1e-5)


def test_metric_specs_and_their_errors():
    assert resolve_metric("logit_diff").direction == "higher" and resolve_metric("loss").direction == "lower"
    assert resolve_metric("logit_diff(IO, S2)").args == ("IO", "S2")
    with pytest.raises(UnknownNameError, match="did you mean 'logit_diff'"):
        resolve_metric("logit_dif")
    with pytest.raises(InputError, match="must say which way is better"):
        resolve_metric(lambda logits, batch: logits[:, 0, 0])
    with pytest.raises(InputError, match="takes 2 argument"):
        resolve_metric("logit_diff(IO, S1, S2)")
    with pytest.raises(InputError, match="direction"):
        Metric("mine", lambda logits, batch: logits[:, 0, 0], "up")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="one value per prompt"):
        Metric("bad", lambda logits, batch: logits, "higher")(torch.zeros(1, 2, 3), _batch([[0, 1]], [2]))
    with pytest.raises(InputError, match="no token labelled 'END'"):
        resolve_metric("logit_diff")(torch.zeros(1, 2, 3), _batch([[0, 1]], [2], [("IO", "S1")]))


# ---- ablation against a plain hook on hook_z ---------------------------------------------------
def next_logit(logits, batch):
    """A user metric: the mean logit of each real next token (linear in the logits)."""
    targets = logits[:, :-1].gather(-1, batch.tokens[:, 1:, None]).squeeze(-1)
    real = batch.real[:, 1:]
    return torch.where(real, targets, 0.0).sum(1) / real.sum(1)


NEXT_LOGIT = Metric("next_logit", next_logit, "higher")


def projected(logits, batch):
    """A user metric linear in the logits that every head of the linear model reaches: each real
    position's logits against fixed weights over the vocabulary, averaged."""
    weights = torch.linspace(-1.0, 1.0, logits.shape[-1]) ** 3
    per_position = (logits * weights).sum(-1)
    return torch.where(batch.real, per_position, 0.0).sum(1) / batch.real.sum(1)


PROJECTED = Metric("projected", projected, "higher")
TEXTS = ["abcabcab", "hello hello", "xyzxyzxyzxy", "the cat the"]


def oracle(model, texts, metric, heads, method, label=None, labels=None):
    """The metric per prompt, ablated by a plain TransformerLens hook on hook_z, prompt by prompt."""
    metric = resolve_metric(metric)
    inputs = prepare(model, Prompts(texts=tuple(texts), spans=labels) if labels else list(texts))
    batches = [inputs.batch([i]) for i in range(len(texts))]
    where = [b.mask(label) if label else b.real for b in batches]
    means = {}
    if method == "mean":  # the mean of z over every prompt's chosen positions, per head
        for layer in {layer for layer, _ in heads}:
            kept = []
            for b, mask in zip(batches, where):
                _, cache = model.run_with_cache(b.tokens, names_filter=f"blocks.{layer}.attn.hook_z")
                kept.append(cache[f"blocks.{layer}.attn.hook_z"][mask])
            means[layer] = torch.cat(kept).mean(dim=0)
    out = []
    for b, mask in zip(batches, where):
        def hook(z, hook, mask=mask):
            layer = int(hook.name.split(".")[1])
            z = z.clone()
            for head_layer, head in heads:
                if head_layer == layer:  # z [1, pos, head_index, d_head]; mask [1, pos]
                    z[:, :, head][mask] = 0.0 if method == "zero" else means[layer][head]
            return z
        hooks = [(f"blocks.{layer}.attn.hook_z", hook) for layer in sorted({layer for layer, _ in heads})]
        with torch.no_grad():
            clean = metric(model(b.tokens), b)
            ablated = metric(model.run_with_hooks(b.tokens, fwd_hooks=hooks), b)
        out.append(float(ablated[0] - clean[0]))
    return out


@pytest.mark.parametrize("method", ["zero", "mean"])
def test_ablation_equals_a_plain_hook_on_hook_z(method):
    model = make_predicting_model(sign=-1.0)
    effects = ablate(model, TEXTS, None, metric="loss", method=method, progress=False)
    for label, effect in effects.entries.items():
        expected = oracle(model, TEXTS, "loss", effect.heads, method)
        assert effect.changes.tolist() == pytest.approx(expected, abs=1e-5), label
    assert any(abs(e.mean) > 0.05 for e in effects.entries.values())  # something did change
    together = ablate(model, TEXTS, "L0H0,L1H0", metric=NEXT_LOGIT, method=method, together=True, progress=False)
    assert list(together.entries) == ["L0H0+L1H0"]
    assert together["L0H0+L1H0"].changes.tolist() == pytest.approx(
        oracle(model, TEXTS, NEXT_LOGIT, [(0, 0), (1, 0)], method), abs=1e-5)


def _labelled(texts):
    """Spans: IO the first character, S1 the second, END the last."""
    return tuple({"IO": [[0, 1]], "S1": [[1, 2]], "END": [[len(t) - 1, len(t)]]} for t in texts)


@pytest.mark.parametrize("method", ["zero", "mean"])
def test_ablation_at_a_span_equals_the_hook_at_those_tokens(method):
    model = make_predicting_model(sign=1.0)
    prompts = Prompts(texts=tuple(TEXTS), spans=_labelled(TEXTS))
    effects = ablate(model, prompts, "L0H0,L1H0", metric="loss", method=method, positions="END", progress=False)
    for effect in effects.entries.values():
        expected = oracle(model, TEXTS, "loss", effect.heads, method, label="END", labels=_labelled(TEXTS))
        assert effect.changes.tolist() == pytest.approx(expected, abs=1e-5)


def test_several_ablations_per_pass_give_what_one_per_pass_gives():
    model = make_predicting_model(sign=-1.0)
    many = ablate(model, TEXTS, None, metric="loss", progress=False)  # every head in one pass (replicas)
    one = ablate(model, TEXTS, None, metric="loss", budget=1.0, progress=False)  # one prompt row per pass
    for label in many.entries:
        assert many[label].changes.tolist() == pytest.approx(one[label].changes.tolist(), abs=1e-6)


def test_resample_takes_another_prompts_z():
    model = make_linear_model()
    texts = ["abcd", "efgh", "ijkl", "mnop"]
    effects = ablate(model, texts, "L0H0", metric=NEXT_LOGIT, method="resample", seed=3, progress=False)
    again = ablate(model, texts, "L0H0", metric=NEXT_LOGIT, method="resample", seed=3, progress=False)
    assert effects["L0H0"].changes.tolist() == again["L0H0"].changes.tolist()
    assert all(abs(c) > 0 for c in effects["L0H0"].changes.tolist())  # each took a different prompt's z
    with pytest.raises(InputError, match="same length"):
        ablate(model, ["abc", "defg"], "L0H0", metric=NEXT_LOGIT, method="resample", progress=False)


# ---- patching ------------------------------------------------------------------------------
def test_patching_a_run_into_itself_changes_nothing():
    model = make_predicting_model(sign=-1.0)
    prompts = Prompts(texts=tuple(TEXTS), spans=_labelled(TEXTS))
    for positions in (None, "END", ["IO", "END"]):
        effects = patch(model, prompts, prompts, None, metric="loss", positions=positions, progress=False)
        assert effects.entries and all(e.changes.abs().max() == 0 for e in effects.entries.values())
    other = Prompts(texts=("bbcabcab", "jello hello", "xyzxyzxyzxz", "she cat the"), spans=_labelled(TEXTS))
    moved = patch(model, prompts, other, None, metric="loss", progress=False)
    assert any(e.changes.abs().max() > 1e-3 for e in moved.entries.values())
    with pytest.raises(InputError, match="same token length"):
        patch(model, prompts, ["ab"] * 4, None, metric="loss", progress=False)


def test_the_ioi_probe_gives_abc_twins_with_the_same_labels():
    from patternlang.probes.labelled import ioi_cases

    clean, abc = ioi_cases(16, 0), ioi_cases(16, 0, "abc")
    for a, b in zip(clean, abc):
        assert [s[0] for s in a.spans] == [s[0] for s in b.spans] and a.template == b.template
        names = {b.text[start:end] for label, start, end in b.spans if label != "END"}
        assert len(names) == 3 and not names & {a.io, a.subject}
    with pytest.raises(InputError, match="variant"):
        get_probe("ioi", variant="abd")


# ---- attribution ---------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["zero", "mean", "resample"])
def test_attribution_equals_exact_ablation_on_a_model_linear_in_the_heads(method):
    model = make_linear_model()
    texts = ["abababa", "hehehel", "xyzxyzx", "cacacat"]  # one length: resample at every position
    effects = attribute(model, texts, metric=PROJECTED, method=method, top_k=4, progress=False)
    for label, effect in effects.entries.items():
        assert float(effect.changes.abs().max()) > 1e-2, label  # every head moves the metric on some prompt
        assert effect.estimate == pytest.approx(effect.mean, abs=1e-5), label
    if method == "zero":  # mean and resample move a linear metric by 0 on average: ties, no ranks
        assert effects.rank_correlation == pytest.approx(1.0)


def test_attribution_of_a_patch_equals_the_exact_patch_on_the_linear_model():
    model = make_linear_model()
    clean = Prompts(texts=("abcabca", "hello w"), spans=_labelled(["abcabca", "hello w"]))
    corrupted = Prompts(texts=("xbcabcq", "jellp w"), spans=_labelled(["abcabca", "hello w"]))
    effects = attribute(model, clean, metric=PROJECTED, corrupted=corrupted, positions="END", top_k=4, progress=False)
    exact = patch(model, clean, corrupted, None, metric=PROJECTED, positions="END", progress=False)
    for label, effect in effects.entries.items():
        assert effect.estimate == pytest.approx(exact[label].mean, abs=1e-5)
        assert effect.mean == pytest.approx(exact[label].mean, abs=1e-6)
    assert effects.to_dict()["effects"]["L0H0"].keys() >= {"estimate", "patching", "ci"}


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_attribution_agrees_in_sign_with_ablation_on_the_hand_set_models(sign):
    model = make_predicting_model(sign=sign)
    effects = attribute(model, TEXTS, metric="loss", top_k=4, progress=False)
    moved = [e for e in effects.entries.values() if abs(e.mean) > 1e-4]
    assert len(moved) >= 2  # the bigram head and the prediction head matter
    for effect in moved:
        assert math.copysign(1, effect.estimate) == math.copysign(1, effect.mean), effect.label
    # the prediction head suppresses (sign -1: ablating it lowers the loss) or copies (+1: raises it)
    assert math.copysign(1, effects["L1H0"].mean) == sign
    flat = attribute(make_hand_set_model(), TEXTS, metric="loss", top_k=6, progress=False)
    assert all(e.estimate == 0 and e.mean == 0 for e in flat.entries.values())  # no head reaches its logits


# ---- random baselines, statistics, results ------------------------------------------------------
def test_random_baselines_are_reproducible_with_a_seed_and_from_the_same_layers():
    model = make_predicting_model(sign=-1.0)
    run = lambda seed: ablate(model, TEXTS, "L1H0", metric="loss", together=True, random_sets=6, seed=seed,  # noqa: E731
                              progress=False)["L1H0"].baseline
    a, b, c = run(0), run(0), run(5)
    assert a.sets == b.sets and a.effects == b.effects
    assert all(heads == ((1, 1),) for heads in a.sets)  # layer 1 has one other head
    assert 0 < a.p_value <= 1 and c.sets == a.sets  # one choice only: any seed draws it
    wide = make_linear_model()
    draws = [ablate(wide, TEXTS, "L0H0,L1H1", metric=NEXT_LOGIT, together=True, random_sets=4, seed=s,
                    progress=False)["L0H0+L1H1"].baseline.sets for s in (0, 0)]
    assert draws[0] == draws[1] and all(h == ((0, 1), (1, 0)) for h in draws[0])


def test_empirical_p_value_and_percentile():
    baseline = random_baseline(2.0, [((0, 1),)] * 4, [0.5, -3.0, 1.0, 2.5])
    assert baseline.p_value == pytest.approx((1 + 2) / 5)  # -3.0 and 2.5 are at least as large in size
    assert baseline.percentile == pytest.approx(3 / 4)
    assert baseline.mean == pytest.approx(0.25)


def test_mean_interval_and_rank_correlation_by_hand():
    mean, (low, high) = mean_and_interval(torch.tensor([1.0, 2.0, 3.0]))
    assert mean == pytest.approx(2.0) and high - mean == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5)
    assert mean_and_interval(torch.tensor([1.0]))[1] is None
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)


def test_effects_json_contract(tmp_path):
    model = make_predicting_model(sign=-1.0)
    effects = attribute(model, TEXTS, metric="loss", top_k=2, progress=False)
    data = json.loads(effects.to_json(tmp_path / "E.json"))
    assert json.loads((tmp_path / "E.json").read_text()) == data
    assert set(data["effects"]) == {"L0H0", "L0H1", "L1H0", "L1H1"}
    exact = [label for label, entry in data["effects"].items() if entry["ablation"] is not None]
    assert len(exact) == 2
    for label, entry in data["effects"].items():
        assert isinstance(entry["estimate"], float)
        if entry["ablation"] is None:
            assert entry["ci"] is None
        else:
            assert entry["ci"][0] <= entry["ablation"] <= entry["ci"][1]
            assert entry["ablation"] == pytest.approx(float((effects[label].changes).mean()))
    assert data["direction"] == "lower" and data["method"] == "zero" and data["top_k"] == 2


def test_bad_arguments_are_clear_errors():
    model = make_predicting_model()
    with pytest.raises(InputError, match="method must be one of"):
        ablate(model, TEXTS, "L0H0", method="erase", progress=False)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="out of range"):
        ablate(model, TEXTS, "L5H0", progress=False)
    with pytest.raises(InputError, match="has no labelled spans"):
        ablate(model, TEXTS, "L0H0", positions="END", progress=False)
    with pytest.raises(InputError, match="random_sets"):
        ablate(model, TEXTS, "L0H0", random_sets=-1, progress=False)
    with pytest.raises(InputError, match="too few"):
        ablate(model, TEXTS, "L1H0,L1H1", together=True, random_sets=2, progress=False)


def test_scores_keep_effects_through_json(tmp_path):
    from patternlang.effects import attach_effects
    from patternlang.engine import Scores, detect

    model = make_predicting_model(sign=-1.0)
    scores = detect(model, TEXTS, ["previous_token_head"], progress=False)
    effects = attribute(model, TEXTS, metric="loss", top_k=1, progress=False)
    joined = attach_effects(scores, effects)
    assert joined.effects["loss"]["effects"]["L1H0"]["estimate"] == pytest.approx(effects["L1H0"].estimate)
    joined.to_json(tmp_path / "s.json")
    back = Scores.from_json(tmp_path / "s.json")
    assert back.effects == json.loads(json.dumps(joined.effects))
    assert "effects" not in json.loads(scores.to_json())  # unchanged without


# ---- the commands --------------------------------------------------------------------------
def _serve(monkeypatch, model):
    import patternlang.models

    monkeypatch.setattr(patternlang.models, "load_model", lambda *args, **kwargs: model)


def test_cli_effects_writes_the_contract(tmp_path, monkeypatch, capsys):
    from patternlang.cli import main

    _serve(monkeypatch, make_predicting_model(sign=-1.0))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"text": t, "spans": s}) + "\n" for t, s in zip(TEXTS, _labelled(TEXTS))))
    out = tmp_path / "E.json"
    with pytest.raises(SystemExit) as stop:
        main(["effects", "--prompts", str(prompts), "--metric", "loss", "--positions", "S1", "--top-k", "2",
              "--json", str(out), "--no-progress"])
    assert stop.value.code in (0, None)
    data = json.loads(out.read_text())
    assert data["positions"] == "S1" and data["metric"] == "loss" and len(data["effects"]) == 4
    assert sum(entry["ablation"] is not None for entry in data["effects"].values()) == 2
    shown = capsys.readouterr().out
    assert "rank correlation" in shown and "L0H0" in shown


def test_cli_ablate_with_random_sets(tmp_path, monkeypatch, capsys):
    from patternlang.cli import main

    _serve(monkeypatch, make_linear_model())
    out = tmp_path / "A.json"
    with pytest.raises(SystemExit) as stop:
        main(["ablate", "--heads", "L0H0", "--prompts", str(_text_file(tmp_path)), "--metric", "loss",
              "--random-sets", "3", "--together", "--json", str(out), "--no-progress"])
    assert stop.value.code in (0, None)
    entry = json.loads(out.read_text())["effects"]["L0H0"]
    assert entry["random_baseline"]["n"] == 3 and entry["random_baseline"]["sets"][0] == ["L0H1"]


def _text_file(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("\n".join(TEXTS) + "\n")
    return path


@pytest.mark.parametrize("argv, message", [
    (["effects", "--metric", "logit_dif"], "did you mean 'logit_diff'"),
    (["effects", "--method", "erase"], "--method must be one of"),
    (["effects", "--probe", "ioi(batch=0)"], "at least 1"),
    (["effects", "--json", "out.txt"], ".json"),
    (["ablate", "--heads", "L1X"], "cannot read a head"),
    (["detect", "--effects", "los"], "did you mean 'loss'"),
])
def test_cli_refuses_bad_arguments_before_loading(no_model, capsys, argv, message):
    from patternlang.cli import main

    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 1
    assert message in capsys.readouterr().err


# ---- the embedded model ------------------------------------------------------------------------
@pytest.mark.model
@pytest.mark.parametrize("method", ["zero", "mean"])
def test_ablation_equals_a_plain_hook_on_smollm2(embedded_model, method):
    prompts = get_probe("ioi", batch=2)()
    effects = ablate(embedded_model, prompts, "L23H1,L24H4,L10H3", metric="logit_diff", method=method,
                     positions="END", progress=False)
    for effect in effects.entries.values():
        expected = oracle(embedded_model, prompts.texts, "logit_diff", effect.heads, method, label="END",
                          labels=prompts.spans)
        assert effect.changes.tolist() == pytest.approx(expected, abs=1e-5)


@pytest.mark.model
def test_patching_smollm2_into_itself_changes_nothing_and_abc_matters(embedded_model):
    clean = get_probe("ioi", batch=2)()
    same = patch(embedded_model, clean, clean, "L23H3,L24H4", metric="logit_diff", positions="END", progress=False)
    assert all(float(e.changes.abs().max()) < 1e-5 for e in same.entries.values())
    abc = get_probe("ioi", batch=2, variant="abc")()
    moved = patch(embedded_model, clean, abc, "L23H3", metric="logit_diff", positions="END", progress=False)
    assert abs(moved["L23H3"].mean) > 0.05



def test_cli_detect_with_effects_keeps_them_in_the_scores_json(tmp_path, monkeypatch):
    from patternlang.cli import main

    _serve(monkeypatch, make_predicting_model(sign=-1.0))
    out = tmp_path / "S.json"
    with pytest.raises(SystemExit) as stop:
        main(["detect", "previous_token_head", "--prompts", str(_text_file(tmp_path)), "--effects", "loss",
              "--json", str(out), "--no-progress"])
    assert stop.value.code in (0, None)
    data = json.loads(out.read_text())
    assert data["patterns"]["previous_token_head"]["scores"]["mass"]  # the scores as before
    entry = data["effects"]["loss"]["effects"]["L1H0"]
    assert isinstance(entry["estimate"], float) and entry["ablation"] is not None and entry["ablation"] < 0


def test_effects_go_into_an_atlas_document_it_still_accepts():
    from patternlang.atlas.document import FORMAT, check_document
    from patternlang.effects.atlas import add_effects

    model = make_predicting_model(sign=-1.0)
    effects = attribute(model, TEXTS, metric="loss", top_k=1, progress=False)
    doc = {"format": FORMAT, "model": {"name": "tiny", "id": "tiny", "n_layers": 2, "n_heads": 2}, "patterns": {},
           "measures": ["mass"]}
    add_effects(doc, effects)
    check_document(doc)
    entry = doc["effects"]["loss"]
    assert entry["direction"] == "lower" and set(entry["heads"]) == {"L0H0", "L0H1", "L1H0", "L1H1"}
    assert entry["heads"]["L1H0"]["estimate"] == pytest.approx(effects["L1H0"].estimate, abs=1e-3)
    with pytest.raises(InputError, match="atlas document"):
        add_effects({"model": {"n_layers": 30, "n_heads": 9}}, effects)


def test_the_public_api_offers_the_effects_calls():
    import patternlang

    assert patternlang.ablate is ablate and patternlang.attribute is attribute and patternlang.patch is patch
    assert {"ablate", "attribute", "patch", "Effects"} <= set(dir(patternlang))


def test_random_sets_follow_the_seed():
    model = make_hand_set_model()  # 3 heads a layer: a choice of 2 for each draw
    draw = lambda seed: ablate(model, TEXTS, "L1H0", metric="loss", together=True, random_sets=8, seed=seed,  # noqa: E731
                               progress=False)["L1H0"].baseline.sets
    assert draw(0) == draw(0) and draw(0) != draw(1)
    assert set(draw(0)) == {((1, 1),), ((1, 2),)}
