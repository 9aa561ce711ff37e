"""`detect` end to end on a small hooked fake model: oracle, batching invariance, early stop, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from patternlang.engine import detect
from patternlang.engine.batching import plan_batches, tokenize
from patternlang.engine.measures import ATTENTION_MEASURES as MEASURES, Exclusions
from patternlang.errors import InputError, PatternError
from patternlang.heads import parse_heads
from patternlang.library import load_pattern
from patternlang.testing import FakeAttentionModel, oracle_scores

PATTERNS = [
    "previous_token_head",
    "induction_head",
    "attend k where k == 0",
    "attend k where tok[k] == tok[q] and k < q",
]


def prompts(n: int = 9, seed: int = 0) -> list[list[int]]:
    """Token-id prompts of mixed lengths with repeats (so induction has targets)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        half = torch.randint(10, 40, (2 + i % 5,), generator=g).tolist()
        out.append([1] + half + half)
    return out


@pytest.fixture(scope="module")
def model():
    return FakeAttentionModel(n_layers=3, n_heads=4, n_ctx=24)


def test_detect_matches_the_per_prompt_oracle(model):
    data = prompts()
    for excl in (Exclusions(), Exclusions(bos=True, current=True)):
        scores = detect(model, data, PATTERNS, measures=MEASURES, exclude_bos=excl.bos,
                        exclude_current_token=excl.current, batch_size=4, progress=False)
        # Oracle: each prompt alone (no padding), every head and pattern in plain Python.
        patterns = [load_pattern(p) for p in PATTERNS]
        for layer in range(3):
            attention = [model.attention(torch.tensor([p]), layer) for p in data]
            detection = [torch.stack([pat.matrix(p) for pat in patterns])[:, None] for p in data]
            # Pool all prompts in one padded call to the oracle, which loops prompt by prompt.
            width = max(len(p) for p in data)
            att = torch.zeros(len(data), 4, width, width)
            det = torch.zeros(len(PATTERNS), len(data), width, width)
            for b, (a, d) in enumerate(zip(attention, detection)):
                n = a.shape[-1]
                att[b, :, :n, :n] = a[0]
                det[:, b, :n, :n] = d[:, 0]
            expected = oracle_scores(att, det, [len(p) for p in data], excl)
            for m in MEASURES:
                torch.testing.assert_close(scores.values[m][:, layer].double(), expected[m], rtol=0, atol=1e-5,
                                           equal_nan=True, msg=f"{m} layer {layer}")


def test_scores_do_not_depend_on_batching_or_order(model):
    data = prompts(11, seed=3)
    reference = detect(model, data, PATTERNS, measures=MEASURES, batch_size=1, progress=False)
    shuffled = list(reversed(data))
    for batch_size, items in ((3, data), (5, shuffled), (None, data), (64, shuffled)):
        scores = detect(model, items, PATTERNS, measures=MEASURES, batch_size=batch_size, progress=False)
        for m in MEASURES:
            torch.testing.assert_close(scores.values[m], reference.values[m], rtol=0, atol=1e-5, equal_nan=True)
    assert reference.settings["n_batches"] == 11


def test_one_forward_pass_per_batch_stopped_after_the_last_needed_layer(model):
    model.forward_calls = 0
    model.layers_run.clear()
    scores = detect(model, prompts(6), "previous_token_head", heads="L1H2, 0.3", batch_size=3, progress=False)
    assert model.forward_calls == 2
    assert max(model.layers_run) == 1  # layer 2 never ran
    grid = scores.get("previous_token_head")
    assert not torch.isnan(grid[1, 2]) and not torch.isnan(grid[0, 3])
    assert torch.isnan(grid).sum() == 3 * 4 - 2
    assert scores.settings["heads"] == ["L0H3", "L1H2"]


def test_string_prompts_are_tokenized_one_by_one_with_bos(model):
    with_bos = detect(model, ["abab", "abcabc x"], "induction_head", progress=False)
    without = detect(model, ["abab", "abcabc x"], "induction_head", prepend_bos=False, progress=False)
    assert with_bos.n_tokens == 5 + 9 and without.n_tokens == 4 + 8
    ids = detect(model, [[1] + [3 + ord(c) for c in "abab"], [1] + [3 + ord(c) for c in "abcabc x"]],
                 "induction_head", progress=False)
    torch.testing.assert_close(ids.values["mass"], with_bos.values["mass"], equal_nan=True)


def test_a_2d_tensor_of_prompts_and_a_raw_tensor_pattern(model):
    data = torch.tensor([prompt[:7] for prompt in prompts(4) if len(prompt) >= 7])
    eye = torch.eye(7).roll(-1, dims=1).tril()  # previous token, as a raw matrix
    scores = detect(model, data, [eye, "previous_token_head"], measures=("mass", "mul"), progress=False)
    assert scores.patterns == ("tensor_0", "previous_token_head")
    for m in ("mass", "mul"):
        torch.testing.assert_close(scores.values[m][0], scores.values[m][1])


def test_pattern_settings_apply_unless_overridden(model):
    rule = load_pattern("attend k where k <= q\nmeasure tv\nexclude bos")
    scores = detect(model, prompts(3), [rule, "previous_token_head"], progress=False)
    assert scores.measures == ("tv", "mass")
    assert scores.settings["exclusions"][rule.name] == {"bos": True, "current": False}
    assert scores.settings["exclusions"]["previous_token_head"] == {"bos": False, "current": False}
    forced = detect(model, prompts(3), [rule], measures="mass", exclude_bos=False, progress=False)
    assert forced.measures == ("mass",) and forced.settings["exclusions"][rule.name]["bos"] is False


def test_duplicate_names_are_made_unique(model):
    scores = detect(model, prompts(2), ["previous_token_head", "previous_token_head"], progress=False)
    assert scores.patterns == ("previous_token_head", "previous_token_head#2")


# ---- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompts": []}, "no prompts"),
        ({"prompts": [[1, 2], []]}, "prompt 1 is empty"),
        ({"prompts": [""], "prepend_bos": False}, "prompt 0 is empty"),
        ({"prompts": [list(range(30))]}, "prompt 0 has 30 tokens, more than the model's context of 24"),
        ({"prompts": [[1, 2, 999]]}, "token id 999"),
        ({"prompts": [[1, 2.5]]}, "token ids must be integers"),
        ({"prompts": [[1, 2**70]]}, "prompt 0, position 1: token id 1180591620717411303424 does not fit in 64 bits"),
        ({"prompts": [[1, 2], [1, -3]]}, "prompt 1, position 1: token ids cannot be negative"),
        ({"prompts": ["ab", [1, 999]]}, "prompt 1, position 1: token id 999 is outside the model's vocabulary"),
        ({"prompts": np.array([[1, 2], [3, 2**40]])}, "prompt 1, position 1: token id 1099511627776 is outside"),
        ({"prompts": np.array([[1.0, 2.0]])}, "integer token ids, not float64"),
        ({"prompts": torch.tensor([[1, 2]], dtype=torch.bool)}, "integer token ids, not torch.bool"),
        ({"prompts": "a" * 1_000_001}, "prompt 0 has 1,000,001 characters"),
        ({"patterns": [torch.ones(3, 3)]}, "pattern 0: the detection tensor of shape (3, 3) is not lower-triangular"),
        ({"patterns": ["previous_token_head", torch.eye(4)]}, "pattern 1 (tensor_1) is a tensor of shape (4, 4), but prompt 0 has 3 tokens"),
        ({"patterns": [torch.ones(3, 4)]}, "square [q, k] matrix, got shape (3, 4)"),
        ({"patterns": [-torch.eye(3)]}, "negative values"),
        ({"patterns": []}, "no patterns given"),
        ({"measures": ("mass", "kl")}, "unknown measure 'kl'"),
        ({"measures": ()}, "no measures given"),
        ({"heads": [(3, 0)]}, "head L3H0 is out of range: the model has 3 layers (0-2) and 4 heads per layer (0-3)"),
        ({"heads": "L0H4"}, "head L0H4 is out of range"),
        ({"heads": "five"}, "cannot read a head from 'five'"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
    ],
)
def test_bad_input_raises_input_error_naming_the_problem(model, kwargs, message):
    args = {"prompts": [[1, 5, 6]], "patterns": ["previous_token_head"]} | kwargs
    with pytest.raises(InputError) as caught:
        detect(model, args.pop("prompts"), args.pop("patterns"), progress=False, **args)
    assert message in str(caught.value)


def test_unknown_pattern_names_raise_a_pattern_error(model):
    with pytest.raises(PatternError, match="previous_token_heda"):
        detect(model, [[1, 2, 3]], "previous_token_heda", progress=False)


# ---- the pieces ----------------------------------------------------------------------------
def test_plan_batches_buckets_by_length():
    lengths = [3, 9, 4, 8, 9]
    assert plan_batches(lengths, 2) == [[1, 4], [3, 2], [0]]
    auto = plan_batches(lengths, None, bytes_per_prompt=lambda n: n * n, memory_budget=200)
    assert auto == [[1, 4], [3, 2, 0]]  # 81 bytes each for the first batch, 64 for the second
    assert sorted(i for b in auto for i in b) == list(range(5))


def test_parse_heads_forms():
    assert parse_heads(None, 2, 3) == {0: None, 1: None}
    assert parse_heads("1.2,0.0 L0H1", 2, 3) == {0: (0, 1), 1: (2,)}
    assert parse_heads([(1, 0), "L1H1", (1, 2)], 2, 3) == {1: None}
    assert parse_heads({0: [2], 1: 1}, 2, 3) == {0: (2,), 1: (1,)}
    assert parse_heads((1, 2), 2, 3) == {1: (2,)}


def test_tokenize_keeps_token_ids_exactly(model):
    out = tokenize(model, [[5, 6], torch.tensor([7, 8, 9])])
    assert [t.tolist() for t in out] == [[5, 6], [7, 8, 9]]
    assert tokenize(model, [5, 6, 7])[0].tolist() == [5, 6, 7]  # a flat list is one prompt


def test_probes_are_accepted(model):
    from patternlang import probes

    bound = probes.get_probe("repeated_random", length=4, batch=3)
    scores = detect(model, bound, "induction_head", progress=False)
    made = bound(model)
    direct = detect(model, made, "induction_head", progress=False)
    ids = detect(model, [list(row) for row in made.tokens], "induction_head", progress=False)
    assert scores.n_prompts == 3 and scores.n_tokens == 27
    torch.testing.assert_close(direct.values["mass"], scores.values["mass"])
    torch.testing.assert_close(ids.values["mass"], scores.values["mass"])
    texts = detect(model, probes.Prompts(texts=("abab", "xyxy")), "induction_head", progress=False)
    assert texts.n_tokens == 10  # BOS prepended to each text


def test_the_hand_set_tiny_model_every_measure_and_text_features():
    from patternlang.testing import make_hand_set_model

    tiny = make_hand_set_model()
    texts = ["the cat sat on the mat", "abcdefabcdef", "a tiny model, hand set"]
    patterns = ["previous_token_head", "current_token_head", "current_word_head", "induction_head"]
    one = detect(tiny, texts, patterns, measures=MEASURES, batch_size=1, progress=False)
    all_ = detect(tiny, texts, patterns, measures=MEASURES, progress=False)
    for m in MEASURES:
        torch.testing.assert_close(one.values[m], all_.values[m], rtol=0, atol=1e-5, equal_nan=True)
    for m in ("mass", "tv", "argmax", "mul"):
        assert one.top("previous_token_head", 1, m)[0][0] == "L0H0"
        assert one.top("current_token_head", 1, m)[0][0] == "L1H1"
    # current_word_head reads token text (word[...]): decoded through the model's to_str_tokens.
    assert not torch.isnan(one.get("current_word_head")).all()


def test_progress_bar_on_a_terminal_and_automatic_batches(model, monkeypatch):
    import sys

    from patternlang.engine import batching

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(batching, "free_memory", lambda device: 400_000.0)  # room for 2 prompts per batch
    data = prompts(9)
    scores = detect(model, data, PATTERNS, progress=True)
    assert scores.settings["batch_size"] == "auto" and scores.settings["n_batches"] > 1
    reference = detect(model, data, PATTERNS, batch_size=9, progress=False)
    torch.testing.assert_close(scores.values["mass"], reference.values["mass"], rtol=0, atol=1e-5, equal_nan=True)


def test_pattern_objects_and_files(model, tmp_path):
    path = tmp_path / "mine.pattern"
    path.write_text('pattern first_token:\n    attend k where k == 0\n\npattern self_token:\n    attend k where k == q\n')
    scores = detect(model, prompts(3), [path, load_pattern("previous_token_head")], progress=False)
    assert scores.patterns == ("first_token", "self_token", "previous_token_head")
    with pytest.raises(InputError, match="cannot use dict as a pattern"):
        detect(model, prompts(3), [{"rule": "x"}], progress=False)


def test_engine_detect_is_the_function_after_its_submodule_is_imported():
    import subprocess
    import sys

    code = ("import patternlang.engine.tl_compat, patternlang.engine.detection\n"
            "from patternlang.engine import detect\n"
            "from patternlang.engine.detection import score_tokens\n"
            "print(callable(detect) and detect.__name__ == 'detect' and callable(score_tokens))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"


def test_public_functions_stay_functions_after_their_submodules_are_imported():
    import subprocess
    import sys

    code = ("import patternlang as pl, patternlang.engine.explanation, patternlang.comparison, patternlang.probes\n"
            "print(callable(pl.explain) and pl.explain.__name__ == 'explain' and hasattr(pl.probes, 'get_probe'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"


def test_no_public_function_shares_its_name_with_a_submodule():
    # Importing a submodule sets it on its package, so a clash would turn `pl.NAME` into a module.
    import importlib.util

    import patternlang
    import patternlang.engine

    clashes = [name for name, (_, attribute) in patternlang._LAZY.items()
               if attribute is not None and importlib.util.find_spec(f"patternlang.{name}") is not None]
    clashes += [f"engine.{name}" for name in patternlang.engine._LAZY
                if importlib.util.find_spec(f"patternlang.engine.{name}") is not None]
    assert clashes == []
