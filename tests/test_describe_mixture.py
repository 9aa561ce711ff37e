"""Weighted descriptions (`discovery/mixture.py`): the weights' fit, planted mixtures, the mixture's
matrix, and the replacement by mixtures through the hook."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

import patternlang as pl
from patternlang.discovery import Description, describe
from patternlang.discovery.families import bases_of, candidates_of, choose_families
from patternlang.discovery.mixture import (
    BOS_RULE,
    MixtureStats,
    component_rows,
    fit_weights,
    greedy_mixture,
    mixture_rows,
    per_set,
)
from patternlang.discovery.replace import best_fitted, perplexity, replace_heads, rule_attention
from patternlang.discovery.search import _compile_bases, base_matrices
from patternlang.engine.batching import pad_batch, tokenize
from patternlang.engine.inputs import prompt_inputs
from patternlang.engine.pattern_tensors import resolve_patterns
from patternlang.errors import InputError
from patternlang.models.facts import model_facts
from patternlang.testing.planted import make_planted_model

WORDS = "the cat sat on a mat , and the dog ran . then it was late ; we slept".split()
PREVIOUS = "attend k where k == q - 1"
INDUCTION = "attend k where tok[k - 1] == tok[q]"
PLANTED_WEIGHTS = ((PREVIOUS, 0.5), (BOS_RULE, 0.3), (INDUCTION, 0.2))


def sentences(n: int, seed: int = 0, words: int = 14) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) for _ in range(n)]


def hand_built(parts):
    """A planted head's attention: `sum w * rule_attention(rule's cells)` (a function of the batch's features)."""
    compiled = [(pl.compile_rule(rule), weight) for rule, weight in parts]

    def attention(features):
        rows = [weight * rule_attention(pattern.evaluate(features), features.mask) for pattern, weight in compiled]
        return sum(rows[1:], rows[0])

    return attention


# ---- the weights ----------------------------------------------------------------------------

def _sums(rows: torch.Tensor, target: torch.Tensor):
    flat = rows.reshape(rows.shape[0], -1).double()
    a = target.reshape(-1).double()
    return (flat @ flat.T).numpy(), (flat @ a).numpy(), float(a @ a)


def test_greedy_mixture_recovers_known_weights_on_the_simplex():
    generator = torch.Generator().manual_seed(0)
    rows = torch.rand(6, 40, 9, generator=generator)
    rows = rows / rows.sum(dim=-1, keepdim=True)  # six row-stochastic components, 0 playing BOS
    target = 0.5 * rows[2] + 0.3 * rows[0] + 0.2 * rows[4]
    gram, b, aa = _sums(rows, target)
    parts, weights, fit = greedy_mixture(gram, b, aa, size=3, penalty=1e-4)
    found = dict(zip(parts, weights))
    assert set(found) == {0, 2, 4}
    assert found[2] == pytest.approx(0.5, abs=1e-6) and found[0] == pytest.approx(0.3, abs=1e-6)
    assert fit == pytest.approx(1.0, abs=1e-9)
    assert min(weights) >= 0 and sum(weights) == pytest.approx(1.0)


def test_weights_stay_non_negative_and_sum_to_one_when_the_target_is_outside_the_hull():
    rows = torch.eye(4)[None].expand(10, 4, 4).permute(1, 0, 2)  # component i: every row on key i
    target = torch.zeros(10, 4)
    target[:, 1] = 1.5
    target[:, 2] = -0.5  # outside the simplex: the unconstrained optimum would be (0, 1.5, -0.5, 0)
    gram, b, aa = _sums(rows, target)
    weights, error = fit_weights(gram, b, aa, [0, 1, 2, 3])
    assert np.all(weights >= 0) and weights.sum() == pytest.approx(1.0)
    assert weights[1] == pytest.approx(1.0) and error == pytest.approx(10 * 0.5 ** 2 * 2)


def test_a_rule_must_earn_its_place():
    generator = torch.Generator().manual_seed(1)
    rows = torch.rand(3, 30, 7, generator=generator)
    rows = rows / rows.sum(dim=-1, keepdim=True)
    target = 0.99 * rows[1] + 0.01 * rows[2]
    gram, b, aa = _sums(rows, target)
    parts, weights, _ = greedy_mixture(gram, b, aa, size=3, penalty=0.05)
    assert 1 in parts and 2 not in parts  # the 1% rule does not raise the fit by 0.05 (BOS, 0, is always tried)
    parts, _, _ = greedy_mixture(gram, b, aa, size=3, penalty=0.0)
    assert set(parts) >= {1, 2}


def test_each_prompt_set_weighs_the_same():
    """A rule that fits only the large prompt set (as `k == q - 49` fits `repeated_random` for an
    induction head) loses to one that fits both, once each set's error is taken relative to it."""
    generator = torch.Generator().manual_seed(3)

    def stochastic(*shape):
        x = torch.rand(*shape, generator=generator)
        return x / x.sum(dim=-1, keepdim=True)

    big = stochastic(3, 400, 8)  # components 0 (BOS), 1 (fits both sets fairly), 2 (fits the big set only)
    big[1] = 0.7 * big[2] + 0.3 * big[1]
    target_big = big[2].clone()
    small = stochastic(3, 10, 8)
    target_small = small[1].clone()
    sets = []
    for rows, target in ((big, target_big), (small, target_small)):
        gram, b, aa = _sums(rows, target)
        sets.append(MixtureStats({0: [1, 2]}, {0: torch.tensor(gram)}, {0: torch.tensor(b)}, {0: aa}))
    pooled = MixtureStats({0: [1, 2]}, {0: sets[0].gram[0] + sets[1].gram[0]}, {0: sets[0].b[0] + sets[1].b[0]},
                          {0: sets[0].aa[0] + sets[1].aa[0]})
    fair = per_set(sets)
    assert fair.aa[0] == 2.0
    first = [greedy_mixture(s.gram[0].numpy(), s.b[0].numpy(), s.aa[0], size=1, penalty=0.0)[0] for s in (pooled, fair)]
    assert 2 in first[0] and 1 in first[1] and 2 not in first[1]


# ---- the matrices ---------------------------------------------------------------------------

def test_component_rows_equal_the_compiled_rule_and_mixture_rows_sum_to_one():
    """Each candidate's rows (its base's cells within its range) equal `rule_attention` of the
    compiled rule text; a mixture's rows sum to 1 on every real row and to 0 on padding."""
    model = make_planted_model({(0, 0): PREVIOUS})
    prompts = sentences(3, seed=4, words=9) + ["the cat"]
    token_lists = tokenize(model, prompts)
    n_offsets = max(t.numel() for t in token_lists)
    bases = bases_of(choose_families(None), frozenset())
    candidates = [c for base in bases for c in candidates_of(base, n_offsets - 1)]
    chosen = random.Random(0).sample(candidates, 40) + [c for c in candidates if c.base.cond == "k == 0"]
    used = list({c.base.cond: c.base for c in chosen}.values())
    batch, matrices = base_matrices(model, prompts, token_lists, list(range(len(prompts))), used, _compile_bases(used))
    position = {b.cond: i for i, b in enumerate(used)}
    # The replacement's route: the compiled rule texts, detected on the batch (`replace.perplexity`).
    detectors = resolve_patterns([pl.compile_rule(c.rule, name=f"c{i}") for i, c in enumerate(chosen)])
    inputs = prompt_inputs(model, None, prompts, token_lists, detectors)
    local = pad_batch(token_lists, list(range(len(prompts))), pad=model_facts(model).pad_id, device=torch.device("cpu"))
    detected = inputs.detection(model, local, detectors)
    all_rows = []
    for i, candidate in enumerate(chosen):
        rows = component_rows(matrices[position[candidate.base.cond]], candidate, batch.mask)
        assert torch.equal(rows, rule_attention(detected[i], local.mask)), candidate.rule
        all_rows.append(rows)
    weights = torch.rand(len(all_rows), generator=torch.Generator().manual_seed(2))
    mixed = mixture_rows(torch.stack(all_rows), (weights / weights.sum()).tolist())
    sums = mixed.sum(dim=-1)
    assert torch.allclose(sums[batch.mask], torch.ones(int(batch.mask.sum())), atol=1e-5)
    assert torch.all(sums[~batch.mask] == 0)


# ---- planted heads --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def planted():
    rules = {(0, 0): PREVIOUS, (0, 1): hand_built(PLANTED_WEIGHTS), (0, 2): INDUCTION}
    model = make_planted_model(rules)
    prompts = sentences(24, seed=7)
    return model, prompts, describe(model, prompts, families=["offset", "bos", "token_equality"])


def _matrix(model, parts, prompts):
    """The mixture's matrix `[batch, q, k]` on `prompts`, by the compiled rule texts."""
    tokens = [model.to_str_tokens(p) for p in prompts]
    n = max(len(t) for t in tokens)
    mask = torch.tensor([[i < len(t) for i in range(n)] for t in tokens])
    out = torch.zeros(len(prompts), n, n)
    for rule, weight in parts:
        cells = pl.compile_rule(rule).matrix(str_tokens=tokens, special_ids=[0, 1, 2])[:, :n, :n] > 0
        out += weight * rule_attention(cells, mask)
    return out


def test_a_pure_rule_head_gets_all_its_weight_on_that_rule(planted):
    model, prompts, description = planted
    for label, rule in (("L0H0", PREVIOUS), ("L0H2", INDUCTION)):
        head = description[label]
        assert len(head.mixture) == 1 and head.mixture[0].weight == pytest.approx(1.0)
        held_out = prompts[1::2]
        assert torch.allclose(_matrix(model, [(head.mixture[0].rule, 1.0)], held_out),
                              _matrix(model, [(rule, 1.0)], held_out))
        assert head.mixture_fit == pytest.approx(1.0, abs=1e-5) and head.mixture_train_fit == pytest.approx(1.0, abs=1e-6)
        assert head.rule_fit == pytest.approx(1.0, abs=1e-5)


def test_a_head_planted_as_a_mixture_comes_back_with_its_weights(planted):
    model, prompts, description = planted
    head = description["L0H1"]
    weights = [c.weight for c in head.mixture]
    assert len(head.mixture) == 3, head.mixture_text()
    assert min(weights) >= 0 and sum(weights) == pytest.approx(1.0)
    assert weights == pytest.approx([0.5, 0.3, 0.2], abs=1e-4)  # heaviest first
    assert head.mixture[1].rule == BOS_RULE
    held_out = prompts[1::2]
    found = _matrix(model, [(c.rule, c.weight) for c in head.mixture], held_out)
    assert torch.allclose(found, _matrix(model, PLANTED_WEIGHTS, held_out), atol=1e-4)
    assert head.mixture_fit == pytest.approx(1.0, abs=1e-4)
    assert head.mixture_iou == pytest.approx(1.0)  # the binarised mixture is the binarised head
    # The single rule explains less of it than the mixture does.
    assert head.rule_fit is None or head.rule_fit < head.mixture_fit - 0.1
    assert description.mean_mixture_iou is not None


def test_replacing_by_a_mixture_through_the_hook_equals_the_hand_built_head():
    """The model whose L0H0 is replaced by a mixture through `hook_pattern` predicts exactly as the
    same model whose L0H0 was built as that mixture."""
    parts = [(PREVIOUS, 0.6), (BOS_RULE, 0.25), ("attend k where tok[k] == tok[q] and k < q", 0.15)]
    uniform_first = make_planted_model({(0, 1): "attend k where k == q"}, n_heads=2)  # L0H0 uniform
    built = make_planted_model({(0, 0): hand_built(parts), (0, 1): "attend k where k == q"}, n_heads=2)
    prompts = sentences(6, seed=9)
    replaced, n = perplexity(uniform_first, prompts, mixtures={(0, 0): parts})
    expected, m = perplexity(built, prompts)
    unchanged, _ = perplexity(uniform_first, prompts)
    assert n == m and replaced == pytest.approx(expected, rel=1e-6)
    assert abs(unchanged - expected) > 1e-3  # the replacement did something
    with pytest.raises(InputError, match="sum to 1"):
        perplexity(uniform_first, prompts, mixtures={(0, 0): [(PREVIOUS, 0.6)]})
    with pytest.raises(InputError, match="both a rule and a mixture"):
        perplexity(uniform_first, prompts, {(0, 0): PREVIOUS}, mixtures={(0, 0): parts})


def test_replace_heads_by_mixtures_lists_the_best_fitted_heads(planted):
    model, prompts, description = planted
    check = replace_heads(model, prompts[1::2], description, share=2 / 3, mixture=True)
    assert check.kind == "mixture" and len(check.heads) == 2
    assert list(check.heads) == best_fitted(description, 2 / 3, 3)
    # Every planted head is exactly its mixture: replacing any of them changes nothing.
    assert check.perplexity_after == pytest.approx(check.perplexity_before, rel=1e-5)
    with pytest.raises(InputError, match="keep_sink"):
        replace_heads(model, prompts, description, mixture=True, keep_sink=True)


def test_describe_with_replace_reports_both_checks_and_the_json_keeps_the_mixture(tmp_path):
    model = make_planted_model({(0, 0): PREVIOUS, (0, 1): hand_built(PLANTED_WEIGHTS)})
    prompts = sentences(12, seed=11)
    description = describe(model, prompts, families=["offset", "bos", "token_equality"], replace=0.5)
    assert description.replacement is not None and description.replacement.kind == "rule"
    mixed = description.replacement_mixture
    assert mixed is not None and mixed.kind == "mixture" and len(mixed.heads) == 1
    path = tmp_path / "d.json"
    description.to_json(path)
    data = json.loads(path.read_text())
    entry = data["heads"]["L0H1"]
    assert isinstance(entry["rule"], str) and isinstance(entry["score"], float)  # the contract stands
    assert [set(c) for c in entry["mixture"]] == [{"rule", "weight"}] * len(entry["mixture"])
    for component in entry["mixture"]:
        pl.load_pattern(component["rule"])  # every component is rule text
    assert data["replacement_mixture"]["kind"] == "mixture" and data["mean_mixture_iou"] is not None
    again = Description.from_json(path)
    assert again.heads["L0H1"] == description.heads["L0H1"]
    assert again.replacement_mixture == description.replacement_mixture
    assert "mixture IoU" in again.markdown()
    # A description written before mixtures reads back without them.
    for head in data["heads"].values():
        for key in ("mixture", "mixture_fit", "mixture_iou", "mixture_train_fit", "rule_fit"):
            head.pop(key)
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    assert Description.from_json(old).heads["L0H1"].mixture == ()


def test_no_mixtures_when_asked_for_none():
    model = make_planted_model({(0, 0): PREVIOUS})
    description = describe(model, sentences(6, seed=3), families=["offset", "bos"], mixture=0)
    assert description["L0H0"].mixture == () and description.mixture_size == 0
    with pytest.raises(InputError, match="mixture"):
        describe(model, sentences(6, seed=3), families=["offset"], mixture=-1)


def test_no_far_offset_is_a_finalist():
    """`k == q - d` with d > MAX_OFFSET is never a mixture's component (BOS in disguise on short prompts)."""
    from patternlang.discovery.mixture import MAX_OFFSET, finalists
    from patternlang.discovery.scoring import score_candidates
    from patternlang.discovery.search import collect_stats

    model = make_planted_model({(0, 0): "attend k where k == q - 20", (0, 1): "attend k where k == q - 2"})
    prompts = sentences(6, seed=5)
    token_lists = tokenize(model, prompts)
    n_offsets = max(t.numel() for t in token_lists)
    bases = bases_of(choose_families(["offset", "bos"]), frozenset())
    candidates = [c for base in bases for c in candidates_of(base, n_offsets - 1)]
    stats = collect_stats(model, prompts, token_lists, list(range(6)), [0], bases, _compile_bases(bases), n_offsets)
    scores = score_candidates(stats, candidates, {b.cond: i for i, b in enumerate(bases)})
    far = [candidates[i].rule for i in finalists(scores, candidates, 0) if candidates[i].exact]
    assert far and all(candidates[i].lo <= MAX_OFFSET for i in finalists(scores, candidates, 0) if candidates[i].exact)
    assert "attend k where k == q - 2 exclude bos" == candidates[finalists(scores, candidates, 1)[0]].rule
