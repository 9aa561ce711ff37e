"""The `last k where` / `first k where` candidate family (patternlang/discovery/last_first.py).

Its rule text parses only once the grammar has `last`/`first` (the verdicts branch); until then its
matrices are checked against the plain-Python oracle below, and its statistics pick a planted
"last punctuation" head."""

from __future__ import annotations

import random

import pytest
import torch

from patternlang.discovery.families import FAMILIES, Base, candidates_of
from patternlang.discovery.last_first import grammar_has_last_first, last_first_bases, select_keys
from patternlang.discovery.search import _compile_bases, base_matrices, collect_stats
from patternlang.discovery.scoring import score_candidates
from patternlang.engine.batching import tokenize
from patternlang.engine.inputs import _token_texts
from patternlang.library import compile_rule
from patternlang.models.facts import model_facts
from patternlang.testing.planted import make_planted_model

PUNCT = 'matches(str[k], "^\\s*[\\pP\\pS]+\\s*$")'
WORDS = "the cat sat on a mat , and the dog ran . then it was late ; we slept".split()


def oracle(matrix: list[list[bool]], which: str) -> list[list[bool]]:
    """One row at a time: the latest / earliest marked key of each row."""
    out = []
    for row in matrix:
        marked = [k for k, on in enumerate(row) if on]
        pick = (max(marked) if which == "last" else min(marked)) if marked else None
        out.append([k == pick for k in range(len(row))])
    return out


@pytest.mark.parametrize("which", ["last", "first"])
def test_select_keys_equals_the_oracle(which):
    rng = random.Random(0)
    for _ in range(20):
        n = rng.randint(1, 9)
        matrix = torch.tensor([[k <= q and rng.random() < 0.4 for k in range(n)] for q in range(n)])
        assert select_keys(matrix, which).tolist() == oracle(matrix.tolist(), which)


def texts(n, seed):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(10)) for _ in range(n)]


def test_family_matrices_equal_the_oracle_on_the_compiled_conditions():
    """Each base's matrix is the oracle's pick on its condition's matrix (the same engine path, no select)."""
    model = make_planted_model({(0, 0): "attend k where k == q"})
    prompts = texts(4, 1)
    token_lists = tokenize(model, prompts)
    bases = last_first_bases(frozenset())
    plain = [Base(b.cond + " (plain)", b.family, b.complexity, b.conjuncts) for b in bases]
    compiled = _compile_bases(bases)
    _batch, matrices = base_matrices(model, prompts, token_lists, [0, 1, 2, 3], bases, compiled)
    _batch, conditions = base_matrices(model, prompts, token_lists, [0, 1, 2, 3], plain, compiled)
    assert conditions.any()
    for index, base in enumerate(bases):
        for row, ids in enumerate(token_lists):
            n = ids.numel()
            expected = oracle(conditions[index, row, :n, :n].tolist(), base.select)
            assert matrices[index, row, :n, :n].tolist() == expected, base.cond


def test_statistics_pick_a_planted_last_punctuation_head():
    last_punct = compile_rule(f"attend k where {PUNCT}")
    model = make_planted_model({(0, 0): lambda f: select_keys(last_punct.evaluate(f) > 0, "last")})
    prompts = texts(8, 2)
    token_lists = tokenize(model, prompts)
    n_offsets = max(t.numel() for t in token_lists)
    bases = last_first_bases(frozenset())
    candidates = [c for b in bases for c in candidates_of(b, n_offsets - 1)]
    stats = collect_stats(model, prompts, token_lists, list(range(8)), [0], bases, _compile_bases(bases), n_offsets)
    scores = score_candidates(stats, candidates, {b.cond: i for i, b in enumerate(bases)})
    best = candidates[int(torch.nan_to_num(scores.rank[0], nan=-1.0).argmax())]
    assert best.rule == f"attend last k where {PUNCT} exclude bos"
    assert float(scores.iou[0, candidates.index(best)]) == pytest.approx(1.0)


def test_the_family_is_left_out_until_the_grammar_reads_it():
    from patternlang.discovery.families import choose_families

    assert "last_first" not in [f.name for f in choose_families(None)]  # tried when named
    assert [f.name for f in choose_families(["last_first"])] == ["last_first"]
    assert "last_first" in FAMILIES


def test_rule_text_compiles_to_the_family_matrix_once_the_grammar_has_last():
    if not grammar_has_last_first():
        pytest.skip("the grammar has no `last k where` yet (verdicts branch not merged)")
    model = make_planted_model({(0, 0): "attend k where k == q"})
    prompts = texts(3, 3)
    token_lists = tokenize(model, prompts)
    bases = last_first_bases(frozenset())
    _batch, matrices = base_matrices(model, prompts, token_lists, [0, 1, 2], bases, _compile_bases(bases))
    for index, base in enumerate(bases):
        rule = compile_rule(candidates_of(base, 64)[0].rule)
        for row, prompt in enumerate(prompts):
            # The rule on the token texts and special ids the engine reads (as the family's matrices are made).
            ids = token_lists[row].tolist()
            n = len(ids)
            token_texts = _token_texts(model, ids, prompt)
            assert (rule.matrix(ids, token_texts, special_ids=model_facts(model).special_ids) > 0).tolist() == \
                matrices[index, row, :n, :n].tolist(), base.cond
