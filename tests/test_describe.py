"""`describe`: candidate families, sufficient statistics against the engine, planted ground truth,
the replacement check and the CLI."""

from __future__ import annotations

import json
import random
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import patternlang as pl
from patternlang.discovery import FAMILIES, describe
from patternlang.discovery.families import bases_of, candidates_of, choose_families
from patternlang.discovery.replace import perplexity, replace_heads, rule_attention
from patternlang.discovery.search import _compile_bases, collect_stats
from patternlang.discovery.scoring import score_candidates
from patternlang.discovery.stats import to_offsets
from patternlang.engine.batching import tokenize
from patternlang.errors import InputError
from patternlang.testing.planted import make_planted_model

WORDS = "the cat sat on a mat , and the dog ran . then it was late ; we slept".split()


def sentences(n: int, seed: int = 0, words: int = 12) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) for _ in range(n)]


# ---- families ---------------------------------------------------------------------------------

def test_families_generate_tens_of_thousands_of_rules_that_parse():
    bases = bases_of(choose_families(None), frozenset({"syntax", "predictions"}))
    candidates = [c for base in bases for c in candidates_of(base, 64)]
    assert len(candidates) >= 10_000
    assert len({c.rule for c in candidates}) == len(candidates)  # no rule twice
    rng = random.Random(0)
    for candidate in rng.sample(candidates, 300) + [c for c in candidates if c.base.family in ("offset", "bos")]:
        pattern = pl.load_pattern(candidate.rule)
        assert pattern.rule is not None


def test_every_family_is_in_the_registry_and_unknown_ones_are_refused():
    assert {"offset", "bos", "token_equality", "feature_equality", "key_string", "conjunction"} <= set(FAMILIES.names())
    with pytest.raises(InputError, match="did you mean 'offset'"):
        choose_families(["ofset"])


def test_simpler_rules_have_lower_complexity():
    bases = {b.cond: b for b in bases_of(choose_families(None), frozenset())}
    plain = candidates_of(bases["tok[k] == tok[q]"], 64)
    assert plain[0].complexity < plain[1].complexity  # "and k < q" adds one
    conj = [c for b in bases.values() if b.family == "conjunction" for c in candidates_of(b, 64)]
    assert min(c.complexity for c in conj) == 2


# ---- statistics -------------------------------------------------------------------------------

def test_to_offsets_reads_each_row_backwards():
    matrix = torch.arange(16.0).reshape(1, 4, 4).tril()
    out = to_offsets(matrix, 5)
    for q in range(4):
        for d in range(5):
            expected = matrix[0, q, q - d] if 0 <= q - d else 0.0
            assert out[0, q, d] == expected


@pytest.fixture(scope="module")
def random_model():
    return make_planted_model({(0, 0): "attend k where k == q - 1"}, n_layers=2, n_heads=3, random_heads=True)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), picks=st.lists(st.integers(0, 10**9), min_size=12, max_size=12))
def test_family_scores_equal_the_engine_on_the_compiled_rules(random_model, seed, picks):
    """Candidates drawn from the generator: the mass read off the sufficient statistics equals the
    engine's `mass` of the compiled rule (its own settings: exclude bos), every head, within 1e-5."""
    model = random_model
    rng = random.Random(seed)
    prompts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9))) for _ in range(5)]
    bases = bases_of(choose_families(None), frozenset({"predictions"}))
    token_lists = tokenize(model, prompts)
    n_offsets = max(t.numel() for t in token_lists)
    candidates = [c for base in bases for c in candidates_of(base, n_offsets - 1)]
    chosen = [candidates[p % len(candidates)] for p in picks]
    chosen_bases = list({c.base.cond: c.base for c in chosen}.values())
    stats = collect_stats(model, prompts, token_lists, list(range(len(prompts))), [0, 1], chosen_bases,
                          _compile_bases(chosen_bases), n_offsets, batch_size=2)
    scores = score_candidates(stats, chosen, {b.cond: i for i, b in enumerate(chosen_bases)})
    engine = pl.detect(model, prompts, [pl.compile_rule(c.rule, name=f"c{i}") for i, c in enumerate(chosen)],
                       measures="mass", progress=False)
    for i, _candidate in enumerate(chosen):
        exact = engine.get(f"c{i}", "mass").reshape(-1).double()
        family = scores.mass[:, i]
        both = ~torch.isnan(exact)
        assert torch.equal(both, ~torch.isnan(family))  # undefined (no target row) in both or neither
        assert torch.allclose(family[both], exact[both], atol=1e-5)


# ---- planted ground truth ---------------------------------------------------------------------

PLANTED = {
    (0, 0): "attend k where k == q - 1",
    (0, 1): "attend k where k == q - 4",
    (0, 2): "attend k where tok[k - 1] == tok[q]",                  # induction
    (1, 0): "attend k where tok[k] == tok[q] and k < q",            # duplicate
    (1, 1): "attend k where word[k] == word[q] and k < q",          # same word
    (1, 2): "attend k where tok[k] == tok[q - 1] and start[k]",     # a conjunction
}


@pytest.fixture(scope="module")
def planted_description():
    model = make_planted_model(PLANTED)
    prompts = sentences(24, seed=1)
    return model, prompts, describe(model, prompts)


@pytest.mark.parametrize("head", sorted(PLANTED))
def test_describe_recovers_every_planted_rule(planted_description, head):
    model, prompts, description = planted_description
    found = description[f"L{head[0]}H{head[1]}"]
    assert found.above_chance and found.rule is not None
    held_out = prompts[1::2]
    tokens = [model.to_str_tokens(p) for p in held_out]
    planted = pl.compile_rule(PLANTED[head]).matrix(str_tokens=tokens, special_ids=[0, 1, 2])
    rule = pl.load_pattern(found.rule).matrix(str_tokens=tokens, special_ids=[0, 1, 2])
    planted[..., 0] = 0  # candidates are judged without BOS (exclude bos)
    rule[..., 0] = 0
    assert torch.equal(planted, rule), (found.rule, PLANTED[head])
    # IoU < 1 only where a row has over 10 targets: none of them reaches the binarising threshold (0.1).
    assert found.iou > 0.8 and found.score == pytest.approx(1.0, abs=1e-6)


def test_description_reports_held_out_evidence_and_runners_up(planted_description):
    _model, _prompts, description = planted_description
    head = description["L0H0"]
    low, high = head.interval
    assert low <= head.score <= high + 1e-9
    assert head.chance < 0.5 and head.coverage == pytest.approx(1.0)
    assert head.runners_up and all(r.rule != head.rule for r in head.runners_up)
    assert description.max_family_error < 1e-5
    data = json.loads(description.to_json())
    assert data["heads"]["L0H0"]["rule"] == head.rule and data["heads"]["L0H0"]["score"] == pytest.approx(head.score)


def test_a_head_nothing_explains_gets_none_above_chance():
    model = make_planted_model({(0, 0): "attend k where k == q - 1"}, n_heads=2)  # L0H1 attends uniformly
    description = describe(model, sentences(16, seed=2, words=20), heads="L0H1")
    assert not description["L0H1"].above_chance and description["L0H1"].rule is None
    assert "none above chance" in description.table()


def test_describe_refuses_too_few_prompts():
    with pytest.raises(InputError, match="at least 4 prompts"):
        describe(make_planted_model({(0, 0): "attend k where k == q"}), ["a b", "c d"])


# ---- replacement ------------------------------------------------------------------------------

def test_rule_attention_normalises_rows_and_falls_back_to_bos():
    matrix = torch.tensor([[[0, 0, 0], [1, 1, 0], [0, 0, 0]]], dtype=torch.float32)
    mask = torch.tensor([[True, True, False]])
    out = rule_attention(matrix, mask)
    assert out[0].tolist() == [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]


def test_replacing_a_planted_head_by_its_own_rule_changes_nothing_and_another_rule_does():
    model = make_planted_model({(0, 0): "attend k where k == q - 1", (0, 1): "attend k where k == q"})
    prompts = sentences(6, seed=3)
    before, n = perplexity(model, prompts)
    same, _ = perplexity(model, prompts, {(0, 0): "attend k where k == q - 1"})
    other, _ = perplexity(model, prompts, {(0, 0): "attend k where k == q - 2"})
    assert n > 0 and same == pytest.approx(before, rel=1e-6)
    assert abs(other - before) > 1e-3


def test_replace_heads_lists_the_best_described_heads(planted_description):
    model, prompts, description = planted_description
    check = replace_heads(model, prompts[1::2], description, share=2 / 6)
    assert len(check.heads) == 2
    assert check.perplexity_after == pytest.approx(check.perplexity_before, rel=1e-5)  # planted rules are exact
    with pytest.raises(InputError, match="share"):
        replace_heads(model, prompts, description, share=1.5)


# ---- CLI --------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--replace", "2"], "--replace"),
    (["--families", "ofset"], "did you mean 'offset'"),
    (["--heads", "L1X"], "head"),
    (["--json", "out.txt"], ".json"),
])
def test_cli_refuses_bad_options_before_loading_the_model(no_model, capsys, args, message):
    from patternlang.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["describe", *args])
    assert stop.value.code == 1
    assert message in capsys.readouterr().err


def test_a_description_reads_back_from_its_json(planted_description, tmp_path):
    from patternlang.discovery import Description

    _model, _prompts, description = planted_description
    path = tmp_path / "d.json"
    description.to_json(path)
    again = Description.from_json(path)
    assert again.heads["L1H1"] == description.heads["L1H1"]
    assert again.markdown() == description.markdown()
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="not a description"):
        Description.from_json(tmp_path / "bad.json")


def test_the_benchmark_runs_at_a_tiny_size(import_bench, tmp_path):
    bench = import_bench("describe")
    results = bench.main(["--tiny", "--json", str(tmp_path / "r.json")])
    assert results["n_candidates"] >= 5_000 and results["n_heads"] == 6
    assert results["seconds"]["family scoring"] > 0 and results["ratio"] > 0
    text = bench.render(results)
    assert f"{results['ratio']:.2f}" in text and bench.target_rows(results) == []
    full = dict(results, target=3.0, ratio=2.5)
    assert bench.target_rows(full)[0][2] is True


def test_patternlang_describe_is_callable_however_it_was_imported():
    import patternlang
    import patternlang.discovery.cli  # noqa: F401  (the CLI imports the package: the function stays the function)

    model = make_planted_model({(0, 0): "attend k where k == q - 1"})
    description = patternlang.describe(model, sentences(4, seed=5), heads="L0H0", families=["offset"])
    assert description["L0H0"].rule == "attend k where k == q - 1 exclude bos"


# ---- the prediction family (`tok[k] == pred[q]`) ---------------------------------------------

@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_prediction_family_scores_equal_the_engine_on_the_compiled_rules(random_model, seed):
    """Every candidate of the prediction family: the mass read off the statistics (whose pass to the
    logits gives the predictions) equals the engine's `mass` of the compiled rule, every head."""
    model = random_model
    rng = random.Random(seed)
    prompts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10))) for _ in range(5)]
    bases = bases_of(choose_families(["prediction"]), frozenset({"predictions"}))
    assert {b.cond for b in bases} == {"tok[k] == pred[q]", "tok[k + 1] == pred[q]", "tok[k - 1] == pred[q]"}
    token_lists = tokenize(model, prompts)
    n_offsets = max(t.numel() for t in token_lists)
    chosen = [c for base in bases for c in candidates_of(base, n_offsets - 1)]
    stats = collect_stats(model, prompts, token_lists, list(range(len(prompts))), [0, 1], bases,
                          _compile_bases(bases), n_offsets, batch_size=2)
    scores = score_candidates(stats, chosen, {b.cond: i for i, b in enumerate(bases)})
    with warnings.catch_warnings():  # candidates that mark no key on these prompts warn (NaN in both)
        warnings.simplefilter("ignore")
        engine = pl.detect(model, prompts, [pl.compile_rule(c.rule, name=f"c{i}") for i, c in enumerate(chosen)],
                           measures="mass", progress=False)
    defined = 0
    for i, _candidate in enumerate(chosen):
        exact = engine.get(f"c{i}", "mass").reshape(-1).double()
        family = scores.mass[:, i]
        both = ~torch.isnan(exact)
        assert torch.equal(both, ~torch.isnan(family))
        assert torch.allclose(family[both], exact[both], atol=1e-5)
        defined += int(both.sum())
    assert defined > 0  # the predictions do mark keys


def test_prediction_family_is_a_default_and_base_matrices_read_the_predictions(random_model):
    """The family is on by default; `base_matrices` without predictions passes to the logits itself
    and gives the same matrices as with the statistics pass's predictions."""
    from patternlang.discovery.search import base_matrices
    from patternlang.engine.batching import pad_batch
    from patternlang.engine.inputs import model_pass
    from patternlang.engine.pattern_tensors import resolve_patterns

    assert "prediction" in {f.name for f in choose_families(None)}
    # A model without an unembedding offers no predictions: the family's bases are left out.
    assert not [b for b in bases_of(choose_families(None), frozenset()) if b.family == "prediction"]
    model = random_model
    prompts = sentences(3, seed=5, words=8)
    bases = bases_of(choose_families(["prediction"]), frozenset({"predictions"}))
    compiled = _compile_bases(bases)
    token_lists = tokenize(model, prompts)
    _batch, own = base_matrices(model, prompts, token_lists, [0, 1, 2], bases, compiled)
    padded = pad_batch(token_lists, [0, 1, 2], pad=0, device=torch.device("cpu"))
    passed = model_pass(model, padded.tokens, [], resolve_patterns(list(compiled.values())), ())
    _batch, given_ = base_matrices(model, prompts, token_lists, [0, 1, 2], bases, compiled, passed.predictions)
    assert torch.equal(own, given_) and own.any()


def test_describe_finds_the_prediction_head_of_the_predicting_model():
    """The hand-set model's L1H0 attends to earlier keys equal to its prediction (BOS when none):
    `describe` names a rule of the prediction family for it."""
    from patternlang.testing.predicting import make_predicting_model

    model = make_predicting_model(1.0)
    rng = random.Random(3)
    letters = "abcdefghij"
    prompts = ["".join(rng.choice(letters) for _ in range(24)) for _ in range(16)]
    found = describe(model, prompts, heads="L1H0", families=["offset", "token_equality", "prediction"])["L1H0"]
    assert found.above_chance and found.family == "prediction", found.best_rule
    assert "tok[k] == pred[q]" in found.rule
