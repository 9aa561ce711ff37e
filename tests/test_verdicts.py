"""Verdicts (engine/verdicts.py), positional baselines (engine/baselines.py), the sink measures,
measure direction, `rank lowest` and `require` through Scores, tables and the atlas ranking."""

from __future__ import annotations

import os
import re

import math

import pytest
import torch

from patternlang.engine import detect
from patternlang.engine.baselines import RULES, best_rules, new_rule_sums, rule_attention, add_rules
from patternlang.engine.measures import MEASURES, Exclusions, prepare_targets
from patternlang.engine.scores import Scores
from patternlang.engine.verdicts import Candidate, verdict
from patternlang.report.text import top_heads_table, verdicts_table
from patternlang.testing.hand_set import BOS_HEAD, PREVIOUS_TOKEN_HEAD, make_hand_set_model


def _candidate(pattern, score, baseline=0.1, probe="natural", **extra):
    return Candidate(pattern, "mass", probe, score, baseline, **extra)


# ---- the verdict function ---------------------------------------------------------------------------
def test_label_runner_up_margin_and_footing():
    found = verdict([_candidate("previous_token_head", 0.82, ci_low=0.8, ci_high=0.84, n_rows=100, n_prompts=10),
                     _candidate("induction_head", 0.46, 0.01, probe="repeated_random"),
                     _candidate("bos_head", 0.4, 0.2)], footing="raw")
    assert found.label == "previous_token_head" and found.runner_up == "induction_head"
    assert found.margin == pytest.approx(0.8 - (0.45 / 0.99), abs=1e-6)
    assert found.sink_share == 0.4  # the sink pattern's score: data, not a label
    assert "probes compared: natural, repeated_random" in found.footing
    assert "runner-up on repeated_random" in found.reason
    assert found.evidence["rows"] == 100 and found.evidence["interval"] == [0.8, 0.84]


def test_no_label_below_the_floor_and_the_sink_only_when_nothing_else_matches():
    weak = [_candidate("previous_token_head", 0.2), _candidate("bos_head", 0.5, 0.2)]
    assert verdict(weak, footing="raw").label is None  # parks 0.5: below SINK_LABEL
    parked = [_candidate("previous_token_head", 0.2), _candidate("bos_head", 0.9, 0.2)]
    assert verdict(parked, footing="raw").label == "bos_head"
    both = [_candidate("previous_token_head", 0.7), _candidate("bos_head", 0.95, 0.2)]
    assert verdict(both, footing="raw").label == "previous_token_head"  # the sink is background


def test_a_failed_require_is_no_candidate():
    found = verdict([_candidate("name_mover_head", 0.66, failed=("copying > 0",)),
                     _candidate("negative_name_mover_head", 0.66)], footing="raw")
    assert found.label == "negative_name_mover_head"
    assert found.failed == {"name_mover_head": ["copying > 0"]}


def test_nonsink_footing_renormalises_and_leaves_fully_parked_heads_undefined():
    # 0.3 of the attention on targets, 0.6 parked on BOS: 0.75 of what is not parked.
    free = _candidate("previous_token_head", 0.3, sink=0.6, offsink=0.3, sink_baseline=0.1, offsink_baseline=0.09)
    stand = free.on("nonsink")
    assert stand.score == pytest.approx(0.75) and stand.chance == pytest.approx(0.1)
    assert verdict([free], footing="nonsink").label == "previous_token_head"
    parked = _candidate("previous_token_head", 0.0, sink=1.0, offsink=0.0, sink_baseline=0.1, offsink_baseline=0.09)
    assert math.isnan(parked.on("nonsink").score)  # undefined, not 0
    assert verdict([parked], footing="nonsink").label is None


def test_explained_by_position():
    positional = {"rule": "k == q - 2", "score": 0.7, "measure": "mass"}
    found = verdict([_candidate("subject_head", 0.72, ci_low=0.65, ci_high=0.79, positional=positional)], footing="raw")
    assert found.label == "subject_head" and found.explained_by_position
    assert found.position["margin"] == pytest.approx(0.02)
    clear = verdict([_candidate("subject_head", 0.95, ci_low=0.9, ci_high=0.99, positional=positional)], footing="raw")
    assert not clear.explained_by_position
    itself = {"rule": "k == q - 1", "score": 1.0, "measure": "mass", "pattern_is_rule": True}
    own = verdict([_candidate("previous_token_head", 0.9, ci_low=0.8, positional=itself)], footing="raw")
    assert not own.explained_by_position and own.position["pattern_is_positional"]


def test_a_match_position_explains_gives_way_to_the_next_clear_one():
    # L16H0 on SmolLM2: entity_head's targets always hold q - 1, so its high score says only
    # "previous token"; previous_token_head, the rule itself, is the label.
    rule = {"rule": "k == q - 1", "score": 1.0, "measure": "mass"}
    found = verdict([_candidate("entity_head", 0.94, 0.15, ci_low=0.93, positional=rule),
                     _candidate("previous_token_head", 0.78, 0.12, ci_low=0.77, positional={**rule, "pattern_is_rule": True}),
                     _candidate("bos_head", 0.19, 0.15)], footing="raw")
    assert found.label == "previous_token_head" and found.passed_over == ["entity_head"]
    alone = verdict([_candidate("entity_head", 0.94, 0.15, ci_low=0.93, positional=rule)], footing="raw")
    assert alone.label == "entity_head" and alone.explained_by_position  # nothing else: labelled, flagged


def test_positional_rule_of_a_pattern():
    from patternlang.engine.verdicts import positional_rule
    from patternlang.library import load_pattern

    assert positional_rule(load_pattern("previous_token_head")) == "k == q - 1"
    assert positional_rule(load_pattern("bos_head")) == "k == 0"
    assert positional_rule(load_pattern("current_token_head")) == "k == q"
    assert positional_rule(load_pattern("induction_head")) is None


# ---- positional baselines -----------------------------------------------------------------------------
def test_rule_attention_is_one_hot_and_empty_before_the_prompt():
    cells = torch.ones(1, 4, 4, dtype=torch.bool).tril()
    rules = rule_attention(cells)
    assert rules.shape == (1, len(RULES), 4, 4)
    assert rules[0, RULES.index("k == q - 1"), 2].tolist() == [0, 1, 0, 0]
    assert rules[0, RULES.index("k == q - 3"), 2].sum() == 0
    assert rules[0, RULES.index("k == 0"), 3].tolist() == [1, 0, 0, 0]
    block = rule_attention(cells[:, 2:], first_query=2)  # rows 2..3 of a block
    assert block[0, RULES.index("k == q"), 0].tolist() == [0, 0, 1, 0]


def test_best_rule_of_a_previous_token_pattern_is_itself():
    n = 6
    detection = torch.zeros(2, 1, n, n)
    for q in range(2, n):
        detection[0, 0, q, q - 2] = 1.0     # two back: k == q - 2 scores 1
        detection[1, 0, q, [0, q - 1]] = 1.0  # BOS or previous: both rules score 1 on every row
    targets = prepare_targets(detection, torch.tensor([n]), Exclusions(), ("mass",))
    sums = new_rule_sums(("mass", "copying"), 2, torch.float64, "cpu")
    assert list(sums) == ["mass"]  # copying has no positional baseline
    add_rules(sums, torch.tensor([0, 1]), targets)
    found = best_rules(sums, targets.target_rows.sum(0), ["two_back", "either"], {"two_back": "mass", "either": "mass"})
    assert found["two_back"]["rule"] == "k == q - 2" and found["two_back"]["score"] == pytest.approx(1.0)
    assert found["either"]["score"] == pytest.approx(1.0)


# ---- through detect and Scores, on the hand-set model ----------------------------------------------------
@pytest.fixture(scope="module")
def scores():
    model = make_hand_set_model()
    prompts = ["abcabcab", "xyzxyzxy", "hello hello", "the cat the cat"]
    return detect(model, prompts, ["previous_token_head", "induction_head", "bos_head", "current_token_head"],
                  measures=("mass", "sink", "offsink"))


def test_sink_measures_on_known_heads(scores):
    sink = scores.get("previous_token_head", "sink")
    assert float(sink[BOS_HEAD]) > 0.99
    assert float(sink[PREVIOUS_TOKEN_HEAD]) < 0.2  # only row 1's target is BOS itself
    offsink = scores.get("previous_token_head", "offsink")
    assert float(offsink[BOS_HEAD]) < 1e-3


def test_positional_baselines_in_scores_and_json(scores):
    baseline = scores.positional_baseline("previous_token_head")
    assert baseline["rule"] == "k == q - 1" and baseline["score"] == pytest.approx(1.0, abs=1e-6)
    assert baseline["pattern_is_rule"] and not scores.positional_baseline("induction_head")["pattern_is_rule"]
    assert scores.to_dict()["patterns"]["previous_token_head"]["positional_baseline"]["rule"] == "k == q - 1"
    assert scores.positional_baseline("bos_head")["rule"] == "k == 0"


def test_verdicts_of_the_hand_set_heads(scores):
    verdicts = scores.verdicts()
    assert verdicts["L0H0"].label == "previous_token_head"
    assert verdicts["L1H0"].label == "induction_head"
    assert verdicts["L0H2"].label == "bos_head" and verdicts["L0H2"].sink_share > 0.99
    assert verdicts["L1H1"].label == "current_token_head"
    data = scores.to_dict(verdicts=True)["verdicts"]
    assert data["L0H0"]["label"] == "previous_token_head" and data["L0H2"]["sink_share"] > 0.99
    text = str(verdicts_table(scores).columns[1]._cells)
    assert "induction_head" in text


def test_the_verdict_table_never_cuts_a_head_label_on_a_narrow_terminal(scores):
    from rich.console import Console

    console = Console(width=60, record=True, file=open(os.devnull, "w"))
    console.print(verdicts_table(scores))
    shown = console.export_text()
    assert all(head in shown for head in ("L0H0", "L0H1", "L0H2", "L1H0", "L1H1", "L1H2")), shown
    assert not re.search(r"L\d*…|L\d+H…", shown), shown  # no head label cut with an ellipsis


def _manual_scores(settings):
    grid = torch.tensor([[[0.5, -0.9, 0.1]], [[0.2, 0.3, 0.4]]])  # [pattern, layer, head]
    return Scores(patterns=("p", "q"), measures=("copying",), values={"copying": grid}, n_layers=1, n_heads=3,
                  settings=settings)


def test_top_follows_rank_lowest_and_the_measure_direction():
    plain = _manual_scores({"pattern_measures": {"p": "copying", "q": "copying"}})
    assert [h for h, _ in plain.top("p", 3)] == ["L0H0", "L0H2", "L0H1"]
    ranked = _manual_scores({"pattern_measures": {"p": "copying", "q": "copying"}, "pattern_ranks": {"p": "lowest"}})
    assert [h for h, _ in ranked.top("p", 3)] == ["L0H1", "L0H2", "L0H0"]
    assert [h for h, _ in ranked.top("p", 3, lowest=False)] == ["L0H0", "L0H2", "L0H1"]
    assert [h for h, _ in ranked.top("q", 1)] == ["L0H2"]  # its own rank: highest
    assert MEASURES["copying"].signed and MEASURES["mass"].direction == "higher"
    assert (MEASURES["mass"].low, MEASURES["mass"].high) == (0.0, 1.0)


def test_require_flags_heads_and_the_table_shows_them():
    scores = _manual_scores({"pattern_measures": {"p": "copying", "q": "copying"},
                             "pattern_requires": {"q": ["copying > 0.35"]}})
    assert scores.requirement_failures("q").tolist() == [[True, True, False]]
    from rich.console import Console

    console = Console(width=120, record=True)
    console.print(top_heads_table(scores, k=2))
    rows = [line for line in console.export_text().splitlines() if "L0H1" in line]
    assert any("✗ require" in line for line in rows)  # fails, but shown, flagged; never silently dropped


def test_signed_measures_show_no_chance():
    scores = _manual_scores({"pattern_measures": {"p": "copying", "q": "copying"}})
    from rich.console import Console

    console = Console(width=120, record=True)
    console.print(top_heads_table(scores, k=2))
    assert "chance" not in console.export_text().split("top 2")[1].replace("×chance", "")


# ---- what a head matters for (engine/matters.py) -----------------------------------------------------
from patternlang.engine.matters import ESTIMATE_TOP, estimate_places, matters_for, sentence  # noqa: E402


def _effects(heads, direction="lower", **extra):
    """An atlas document's compact effects of one metric: `heads` label -> (estimate, ablation, ci)."""
    return {"direction": direction, "method": "zero", "positions": None, "n_prompts": 32, "probe": "natural",
            **extra, "heads": {label: {"estimate": e, "ablation": a, "ci": ci} for label, (e, a, ci) in heads.items()}}


def test_a_head_run_exactly_matters_when_its_interval_excludes_zero():
    effects = {"loss": _effects({"L0H0": (0.1, 0.12, [0.08, 0.16]), "L0H1": (-0.9, -0.05, [-0.2, 0.1]),
                                 "L0H2": (0.02, -0.03, [-0.05, -0.01])})}
    (loss,) = matters_for(effects, "L0H0")
    assert (loss.metric, loss.basis, loss.change, loss.ci, loss.role) == ("loss", "ablation", 0.12, (0.08, 0.16), "helps")
    assert loss.text == "loss (ablation raises loss by 0.12 [0.08, 0.16]: the head helps it)"
    assert matters_for(effects, "L0H1") == ()  # the largest estimate, but the exact interval holds 0
    (better,) = matters_for(effects, "L0H2")  # ablating it lowers the loss: the head hurts it
    assert better.role == "hurts" and better.text == "loss (ablation lowers loss by 0.030 [0.010, 0.050]: the head hurts it)"
    assert matters_for({}, "L0H0") is None and matters_for(None, "L0H0") is None  # nothing measured


def test_direction_positions_and_the_effects_json_of_patching():
    higher = {"logit_diff(IO, S1)": {"kind": "attribution", "direction": "higher", "method": "zero",
                                     "positions": "END", "n_prompts": 64,
                                     "effects": {"L9H6": {"estimate": -1.7, "ablation": -1.49, "ci": [-1.92, -1.07]},
                                                 "L10H7": {"estimate": 0.4, "ablation": 0.22, "ci": [0.1, 0.34]}}}}
    (lowered,) = matters_for(higher, "L9H6")  # an Effects.to_dict(): heads under "effects"
    assert lowered.role == "helps" and lowered.positions == "END"
    assert lowered.text == "logit_diff(IO, S1) (ablation at END lowers logit_diff(IO, S1) by 1.49 [1.07, 1.92]: the head helps it)"
    assert matters_for(higher, "L10H7")[0].role == "hurts"  # a negative name mover
    patched = {"logit_diff(IO, S1)": {"kind": "patching", "direction": "higher", "method": "patch", "positions": None,
                                      "effects": {"L9H6": {"estimate": None, "patching": -0.8, "ci": [-1.0, -0.6]}}}}
    (found,) = matters_for(patched, "L9H6")
    assert found.basis == "patching" and found.text.startswith("logit_diff(IO, S1) (patching lowers")


def test_a_head_not_run_exactly_matters_by_its_estimate_only_where_none_was_and_says_so():
    heads = {f"L{i}H0": (100 - i / 2, None, None) for i in range(200)}  # 200 heads, estimates 100, 99.5, ...
    checked = dict(heads, L0H0=(100.0, 80.0, [70.0, 90.0]))  # the largest run exactly: the rest are no evidence
    assert matters_for({"loss": _effects(checked)}, "L0H0")[0].basis == "ablation"
    assert all(matters_for({"loss": _effects(checked)}, f"L{i}H0") == () for i in range(1, 200))
    effects = {"loss": _effects(heads)}
    assert estimate_places(200) == ESTIMATE_TOP == 10
    (second,) = matters_for(effects, "L1H0")
    assert (second.basis, second.rank, second.of, second.ci) == ("estimate", 2, 200, None)
    assert second.text == ("loss (estimated, not run exactly: ablation would raise loss by about 99.50, the 2nd "
                           "largest estimate of 200 heads: the head helps it)")
    assert matters_for(effects, "L9H0")[0].rank == 10 and matters_for(effects, "L10H0") == ()
    small = {"loss": _effects({"L0H0": (1.0, None, None), "L0H1": (0.9, None, None), "L0H2": (0.001, None, None)})}
    assert [len(matters_for(small, h)) for h in ("L0H0", "L0H1", "L0H2")] == [1, 0, 0]  # 3 heads: only the largest
    tiny = {"loss": _effects({f"L{i}H0": (1.0 if i == 0 else 0.05, None, None) for i in range(200)})}
    assert matters_for(tiny, "L1H0") == ()  # below a tenth of the largest


def test_the_verdict_says_attends_like_x_and_matters_for_y():
    effects = {"loss": _effects({"L0H0": (0.1, 0.12, [0.08, 0.16])})}
    found = verdict([_candidate("previous_token_head", 0.82, ci_low=0.8, ci_high=0.84)],
                    matters=matters_for(effects, "L0H0"))
    assert found.summary == ("attends like previous_token_head, and matters for loss (ablation raises loss by 0.12 "
                             "[0.08, 0.16]: the head helps it)")
    data = found.to_dict()
    assert data["label"] == "previous_token_head" and data["matters_for"][0]["ci"] == [0.08, 0.16]
    assert data["matters_for"][0]["text"].startswith("loss (ablation raises")
    plain = verdict([_candidate("previous_token_head", 0.82)])
    assert "matters_for" not in plain.to_dict() and plain.summary == "attends like previous_token_head"
    none = verdict([_candidate("previous_token_head", 0.1)], matters=())
    assert none.summary == "attends like no pattern (closest: previous_token_head); matters for none of the metrics measured"
    assert sentence("x", None, [{"text": "loss (...)"}, {"text": "induction_loss (...)"}]) == \
        "attends like x, and matters for loss (...) and induction_loss (...)"


def test_detect_verdicts_with_effects_say_what_heads_matter_for(tmp_path, monkeypatch):
    import json

    import patternlang.models
    from patternlang.cli import main
    from patternlang.testing.linear import make_linear_model

    monkeypatch.setattr(patternlang.models, "load_model", lambda *args, **kwargs: make_linear_model())
    prompts = tmp_path / "p.txt"
    prompts.write_text("abcabcab\nhello hello\nxyzxyzxyzxy\nthe cat the\n")
    out = tmp_path / "S.json"
    with pytest.raises(SystemExit) as stop:
        main(["detect", "previous_token_head", "--prompts", str(prompts), "--effects", "loss", "--verdicts",
              "--json", str(out), "--no-progress"])
    assert stop.value.code in (0, None)
    data = json.loads(out.read_text())
    verdicts = data["verdicts"]
    assert all(isinstance(v["matters_for"], list) for v in verdicts.values())
    exact = data["effects"]["loss"]["effects"]
    for label, v in verdicts.items():
        for m in v["matters_for"]:
            assert m["basis"] == "ablation" and (m["ci"][0] > 0 or m["ci"][1] < 0)
            assert m["change"] == pytest.approx(exact[label]["ablation"], abs=1e-4)
    expected = {label for label, e in exact.items() if e["ci"] and (e["ci"][0] > 0 or e["ci"][1] < 0)}
    assert expected and {label for label, v in verdicts.items() if v["matters_for"]} == expected
    from patternlang.engine.scores import Scores

    table = verdicts_table(Scores.from_json(out))
    assert table.columns[-1].header == "matters for"
    assert any("loss" in str(cell) for cell in table.columns[-1]._cells)
