"""The atlas gathers effects by itself (effects/atlas.py): each metric on its own probe (the metric
registry's entries), the default set kept to the probes the atlas uses, the number of prompts
bounded, an existing document extended without scoring its patterns again, the verdicts saying
what each head matters for, and the command as a user types it. On the hand-set models of
patternlang.testing; one check on SmolLM2 (marked `model`)."""

from __future__ import annotations

import json
import shutil

import pytest

from patternlang.atlas import build_atlas, load_documents
from patternlang.effects import Metric, register_metric
from patternlang.effects.atlas import AUTO, check_effects, gather_effects, plan_effects, used_probes
from patternlang.effects.metrics import METRICS, metric_of_probe, probe_metrics, resolve_metric
from patternlang.engine import survey as surveying
from patternlang.errors import InputError, UnknownNameError
from patternlang.settings import ProbeSpec
from patternlang.testing.linear import make_linear_model

PATTERNS = ["previous_token_head", "induction_head"]
PROBE = ProbeSpec("repeated_random", (("length", 12), ("batch", 6)))


# ---- the registry says which probe a metric belongs to -----------------------------------------
def test_each_metric_names_its_probe_and_positions_in_the_registry():
    assert {m.name: m.probe for m in probe_metrics()} == {
        "loss": "natural", "induction_loss": "repeated_random", "logit_diff": "ioi", "retrieval": "needle"}
    assert resolve_metric("logit_diff(IO, S2)").positions == "END" and resolve_metric("loss").positions is None
    assert resolve_metric("logit_diff(IO, S2)").probe == "ioi"  # binding keeps the entry's probe
    assert metric_of_probe("ioi") == "logit_diff" and metric_of_probe("needle") == "retrieval"
    assert metric_of_probe("repeated_random") == "induction_loss" and metric_of_probe("parsed_prose") == "loss"


def test_a_user_metric_with_a_probe_joins_the_default_set():
    metric = Metric("first_logit", lambda logits, batch: logits[:, 0, 0], "higher", probe="natural")
    register_metric(metric)
    try:
        planned, _ = plan_effects([AUTO], {"patterns": {}, "probes": {}})
        assert [p.label for p in planned] == ["loss", "first_logit"]
        assert metric_of_probe("natural") == "loss"  # the first registered metric of a probe
    finally:
        METRICS.unregister("first_logit")


# ---- which metric on which probe ---------------------------------------------------------------
def _doc(*probes):
    """A document whose patterns are scored on `probes` (keys as the document writes them)."""
    return {"patterns": {f"p{i}": {"probe": key} for i, key in enumerate(probes)},
            "probes": {key: {"name": key.split("(")[0]} for key in probes}}


def test_the_default_set_is_each_metric_on_its_own_probe_for_the_probes_the_atlas_uses():
    doc = _doc("repeated_random(length=12, batch=6)", "natural")
    assert used_probes(doc) == {"natural": "natural", "repeated_random": "repeated_random(length=12, batch=6)"}
    planned, notes = plan_effects([AUTO], doc)
    assert [(p.label, str(p.probe), p.positions) for p in planned] == [
        ("loss", "natural", None), ("induction_loss", "repeated_random(length=12, batch=6)", None)]
    assert len(notes) == 2 and "logit_diff(IO, S1) (on ioi) left out" in notes[0] and "--effects logit_diff" in notes[0]
    assert "retrieval (on needle) left out" in notes[1]
    everything, notes = plan_effects([AUTO], _doc("natural", "ioi", "needle", "repeated_random"))
    assert [(p.label, str(p.probe), p.positions) for p in everything] == [
        ("loss", "natural", None), ("induction_loss", "repeated_random", None),
        ("logit_diff(IO, S1)", "ioi", "END"), ("retrieval", "needle", None)] and not notes


def test_a_named_metric_goes_on_its_own_probe_even_when_the_atlas_does_not_use_it():
    planned, notes = plan_effects(["logit_diff(IO, S2)", AUTO, "loss"], _doc("natural"))
    assert [(p.label, str(p.probe), p.positions) for p in planned] == [
        ("logit_diff(IO, S2)", "ioi", "END"), ("loss", "natural", None)]
    assert len(notes) == 3  # induction_loss, logit_diff(IO, S1) and retrieval left out of the default set
    planned, notes = plan_effects(["retrieval", AUTO], _doc("natural"))
    assert [p.label for p in planned] == ["retrieval", "loss"] and not any("retrieval" in n for n in notes)
    one = ProbeSpec("natural", (("batch", 5),))
    planned, notes = plan_effects([AUTO], _doc("ioi"), effects_probe=one)  # one probe for all: nothing left out
    assert {str(p.probe) for p in planned} == {"natural(batch=5)"} and len(planned) == 4 and not notes
    user = Metric("top", lambda logits, batch: logits[:, -1].max(-1).values, "higher")  # no probe of its own
    assert str(plan_effects([user], _doc())[0][0].probe) == "natural"
    assert str(plan_effects([user], _doc(), probe=ProbeSpec("ioi", ()))[0][0].probe) == "ioi"  # the atlas's one probe


def test_effects_are_checked_before_a_model_loads():
    assert check_effects([" auto ", "loss"]) == ["auto", "loss"]
    with pytest.raises(UnknownNameError, match="did you mean 'loss'"):
        check_effects(["los"])


# ---- gathered into a document, on the hand-set model --------------------------------------------
@pytest.fixture(scope="module")
def model():
    """The linear model: each head writes into the logits (`L1H0`, the uniform head, lowers the loss)."""
    return make_linear_model(n_ctx=160)


@pytest.fixture(scope="module")
def atlas(tmp_path_factory, model):
    """An atlas of two patterns on repeated_random, then the default effects on 4 prompts a probe."""
    out = tmp_path_factory.mktemp("atlas")
    build_atlas([model], out, patterns=PATTERNS, probe=PROBE)
    said: list[str] = []
    build_atlas([model], out, effects=[AUTO], effects_prompts=4, effects_top_k=2, keep_patterns=True, say=said.append)
    return out, said


def test_the_document_records_what_was_measured_on_what(atlas):
    out, said = atlas
    effects = load_documents(out)[0]["effects"]
    assert list(effects) == ["loss", "induction_loss"]
    loss, induction = effects["loss"], effects["induction_loss"]
    assert loss["probe"] == "natural" and induction["probe"] == str(PROBE)
    for entry in (loss, induction):
        assert entry["n_prompts"] == 4 and entry["top_k"] == 2 and entry["method"] == "zero"
        assert entry["positions"] is None and entry["direction"] == "lower" and isinstance(entry["clean"], float)
        assert sum(head["ablation"] is not None for head in entry["heads"].values()) == 2 and len(entry["heads"]) == 4
    assert any(line.startswith("effects: loss on natural: 4 prompts, every head estimated, the top 2 ablated")
               for line in said), said
    assert any("induction_loss on repeated_random(length=12, batch=6): 4 prompts" in line for line in said)
    assert any("logit_diff(IO, S1) (on ioi) left out" in line for line in said)
    assert any("its 2 patterns are kept as they are" in line for line in said)


def test_verdicts_say_what_each_head_matters_for(atlas):
    out, _ = atlas
    doc = load_documents(out)[0]
    verdicts = {label: head["verdict"] for label, head in doc["heads"].items()}
    assert all(isinstance(v["matters_for"], list) for v in verdicts.values())  # measured: a list, maybe empty
    assert verdicts["L0H1"]["label"] == "previous_token_head" and "sink_share" in verdicts["L0H1"]  # the contract
    found = [(label, m) for label, v in verdicts.items() for m in v["matters_for"]]
    assert ("L1H0", "loss") in [(label, m["metric"]) for label, m in found]  # the uniform head helps the loss
    for label, m in found:
        entry = doc["effects"][m["metric"]]["heads"][label]
        if m["basis"] == "ablation":  # exact: the interval excludes 0
            assert m["change"] == pytest.approx(entry["ablation"]) and (m["ci"][0] > 0 or m["ci"][1] < 0)
        else:
            assert m["basis"] == "estimate" and entry["ablation"] is None and "estimated" in m["text"]
        assert m["role"] == ("helps" if m["change"] > 0 else "hurts")  # loss: lower is better
    label, first = found[0]
    page = (out / f"heads/{doc['model']['id']}/{label}.html").read_text()
    assert "matters for " + first["text"].split(" (")[0] in page and 'class="note summary"' in page
    assert "interval of the change excludes 0" in page  # the definition, on the page


def test_the_model_page_maps_each_metric_and_says_its_probe(atlas):
    out, _ = atlas
    page = next((out / "models").glob("*.html")).read_text()
    assert '<figure data-metric="loss">' in page and '<figure data-metric="induction_loss">' in page
    assert "4 <code>natural</code> prompts" in page and "4 <code>repeated_random(length=12, batch=6)</code>" in page


def test_an_existing_document_gains_effects_without_scoring_its_patterns_again(atlas, model, tmp_path, monkeypatch):
    out, _ = atlas
    shutil.copytree(out / "data", tmp_path / "data")
    before = load_documents(tmp_path)[0]
    monkeypatch.setattr(surveying, "survey", lambda *a, **k: pytest.fail("patterns scored again"))
    said: list[str] = []
    build_atlas([model], tmp_path, effects=["induction_loss", "loss"], effects_prompts=4, effects_top_k=2,
                keep_patterns=True, say=said.append)
    after = load_documents(tmp_path)[0]
    assert after["patterns"] == before["patterns"] and after["effects"] == before["effects"]
    assert sum("kept (measured before on the same 4 prompts)" in line for line in said) == 2, said
    build_atlas([model], tmp_path, effects=["loss"], effects_prompts=3, effects_top_k=2, keep_patterns=True)
    assert load_documents(tmp_path)[0]["effects"]["loss"]["n_prompts"] == 3  # other prompts: measured again


def test_too_few_prompts_are_refused(model):
    with pytest.raises(InputError, match="at least 2 prompts"):
        gather_effects({}, model, [], n_prompts=1)


# ---- the command --------------------------------------------------------------------------------
def test_a_bare_effects_option_means_the_default_set():
    from patternlang.cli import bare_effects

    assert bare_effects(["atlas", "--effects", "--out", "D"]) == ["atlas", "--effects", "auto", "--out", "D"]
    assert bare_effects(["atlas", "--out", "D", "--effects"]) == ["atlas", "--out", "D", "--effects", "auto"]
    assert bare_effects(["atlas", "--effects", "loss"]) == ["atlas", "--effects", "loss"]
    assert bare_effects(["detect", "--effects"]) == ["detect", "--effects"]  # detect's takes one metric


def test_cli_adds_the_default_effects_to_an_existing_atlas(atlas, model, tmp_path, monkeypatch, capsys):
    import patternlang.models
    from patternlang.cli import main

    out, _ = atlas
    shutil.copytree(out / "data", tmp_path / "data")
    path = next((tmp_path / "data").glob("*.json"))
    doc = json.loads(path.read_text())
    del doc["effects"]
    path.write_text(json.dumps(doc))
    monkeypatch.setattr(patternlang.models, "load_model", lambda *args, **kwargs: model)
    monkeypatch.setattr(surveying, "survey", lambda *a, **k: pytest.fail("patterns scored again"))
    with pytest.raises(SystemExit) as stop:
        main(["atlas", "--out", str(tmp_path), "--effects", "--effects-prompts", "3", "--effects-top-k", "1",
              "--no-progress"])
    assert stop.value.code in (0, None)
    err = capsys.readouterr().err
    assert "effects: loss on natural: 3 prompts" in err and "effects: induction_loss on repeated_random" in err
    effects = load_documents(tmp_path)[0]["effects"]
    assert list(effects) == ["loss", "induction_loss"] and effects["loss"]["top_k"] == 1


@pytest.mark.parametrize("argv, message", [
    (["atlas", "--out", "D", "--effects", "los"], "did you mean 'loss'"),
    (["atlas", "--out", "D", "--effects", "--effects-prompts", "1"], "--effects-prompts"),
])
def test_cli_refuses_bad_effects_before_loading(no_model, capsys, argv, message):
    from patternlang.cli import main

    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 1 and message in capsys.readouterr().err


# ---- SmolLM2 ------------------------------------------------------------------------------------
@pytest.mark.model
def test_smollm2_default_effects_on_four_prompts(embedded_model, tmp_path):
    said: list[str] = []
    build_atlas([embedded_model], tmp_path, patterns=["previous_token_head"], probe=ProbeSpec("natural", (("batch", 4),)),
                effects=[AUTO], effects_top_k=3, say=said.append)
    doc = load_documents(tmp_path)[0]
    assert list(doc["effects"]) == ["loss"]  # the atlas uses natural text only: the rest is left out
    entry = doc["effects"]["loss"]
    assert entry["probe"] == "natural(batch=4)" and entry["n_prompts"] == 4 and len(entry["heads"]) == 270
    exact = {label: e for label, e in entry["heads"].items() if e["ablation"] is not None}
    assert len(exact) == 3
    mattering = {label for label, head in doc["heads"].items() for m in head["verdict"]["matters_for"]
                 if m["basis"] == "ablation"}
    assert mattering == {label for label, e in exact.items() if e["ci"][0] > 0 or e["ci"][1] < 0}
