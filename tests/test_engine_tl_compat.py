"""`detect_head` against TransformerLens' own `detect_head`: a fake hooked model, then the embedded model."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import head_detector

from patternlang.engine import detect, detect_head
from patternlang.errors import InputError
from patternlang.testing import FakeAttentionModel

PROMPTS = ["abcabcabc", "hello hello world", "xyzzy xyzzy"]


def assert_same_scores(ours: torch.Tensor, theirs: torch.Tensor, measure: str, n_prompts: int,
                       atol: float = 1e-6) -> None:
    """Equal within `atol`. For `abs`, TransformerLens rounds each prompt's score to 3 decimals,
    so a value within float error of a rounding boundary may land one step (0.001 per prompt)
    the other way; allow at most two such heads, and nothing else."""
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    diff = (ours.double() - theirs.double()).abs()
    off = diff > atol
    if measure == "abs" and off.any():
        steps = diff[off] * n_prompts / 1e-3
        assert int(off.sum()) <= 2 and torch.allclose(steps, steps.round(), atol=1e-3), diff[off]
        return
    assert not off.any(), f"max difference {float(diff.max())}"


@pytest.fixture(scope="module")
def fake():
    return FakeAttentionModel(n_layers=3, n_heads=4, n_ctx=32)


@pytest.mark.parametrize("measure", ["mul", "abs"])
@pytest.mark.parametrize(("bos", "current"), [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("name", ["previous_token_head", "duplicate_token_head", "induction_head"])
def test_parity_with_transformerlens_on_a_fake_model(fake, name, measure, bos, current):
    kwargs = dict(exclude_bos=bos, exclude_current_token=current, error_measure=measure)
    theirs = head_detector.detect_head(fake, PROMPTS, name, **kwargs)
    ours = detect_head(fake, PROMPTS, name, **kwargs)
    assert_same_scores(ours, theirs, measure, len(PROMPTS))


def test_parity_for_a_tensor_pattern_heads_subset_and_cache(fake):
    prompt = "the cat the cat"
    size = fake.to_tokens(prompt).shape[-1]
    pattern = torch.zeros(size, size)
    pattern[:, 0] = 1  # everything to BOS
    heads = [(0, 1), (2, 3)]
    for measure in ("mul", "abs"):
        theirs = head_detector.detect_head(fake, prompt, pattern, heads=heads, error_measure=measure)
        ours = detect_head(fake, prompt, pattern, heads=heads, error_measure=measure)
        assert_same_scores(ours, theirs, measure, 1)
        assert (ours == -1).sum() == 3 * 4 - 2
        _, cache = fake.run_with_cache(fake.to_tokens(prompt), remove_batch_dim=True)
        from_cache = detect_head(fake, prompt, pattern, heads={0: [1], 2: [3]}, cache=cache, error_measure=measure)
        torch.testing.assert_close(from_cache, ours)


def test_patternlang_names_and_rules_are_accepted(fake):
    by_name = detect_head(fake, PROMPTS, "bos_head")
    by_rule = detect_head(fake, PROMPTS, "attend k where k == 0")
    torch.testing.assert_close(by_name, by_rule)
    engine = detect(fake, PROMPTS, "bos_head", measures="mul", prepend_bos=True, progress=False)
    torch.testing.assert_close(by_name, engine.get("bos_head"))


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("abc", "previous_token_head"), {"error_measure": "sq"}, "invalid error_measure='sq'"),
        (([], "previous_token_head"), {}, "empty list"),
        ((["ab", "cd"], "previous_token_head"), {"cache": {}}, "needs a single prompt"),
        (("abc", torch.eye(3)), {}, "is a tensor of shape (3, 3), but prompt 0 has 4 tokens"),
        (("abc", torch.ones(4, 4)), {}, "not lower-triangular"),
        (("abc", "previous_token_head"), {"heads": [(9, 0)]}, "head L9H0 is out of range"),
        (("", "previous_token_head"), {}, "must have at least 2"),
        (("abc", 3), {}, "detection_pattern must be a tensor"),
    ],
)
def test_bad_input_raises_input_error(fake, args, kwargs, message):
    with pytest.raises(InputError) as caught:
        detect_head(fake, *args, **kwargs)
    assert message in str(caught.value)


# ---- the embedded model ------------------------------------------------------------------
REAL_PROMPTS = [
    "The cat sat on the mat. The cat sat on the mat.",
    "Alice gave Bob a book, and Bob gave Alice a pen.",
    "one two three four one two three four",
]


@pytest.fixture(scope="module")
def smollm(embedded_model):
    """The embedded SmolLM2 (tests/conftest.py loads it once per session)."""
    return embedded_model


@pytest.mark.model
@pytest.mark.parametrize("measure", ["mul", "abs"])
def test_parity_with_transformerlens_on_the_embedded_model(smollm, measure):
    for name, bos, current, heads in [
        ("previous_token_head", False, False, None),
        ("induction_head", True, True, None),
        ("duplicate_token_head", True, False, [(0, 1), (5, 3), (29, 8)]),
    ]:
        kwargs = dict(heads=heads, exclude_bos=bos, exclude_current_token=current, error_measure=measure)
        theirs = head_detector.detect_head(smollm, REAL_PROMPTS, name, **kwargs)
        # One prompt per forward pass, as TransformerLens runs them: the same numbers.
        unbatched = detect_head(smollm, REAL_PROMPTS, name, batch_size=1, **kwargs)
        assert_same_scores(unbatched, theirs, measure, len(REAL_PROMPTS))
        # Padded batches change the attention's last float32 bits (see detect_head's docstring).
        batched = detect_head(smollm, REAL_PROMPTS, name, **kwargs)
        assert_same_scores(batched, theirs, measure, len(REAL_PROMPTS), atol=1e-5)


@pytest.mark.model
def test_tensor_pattern_and_cache_on_the_embedded_model(smollm):
    prompt = REAL_PROMPTS[0]
    size = smollm.to_tokens(prompt).shape[-1]
    pattern = torch.ones(size, size).tril()
    _, cache = smollm.run_with_cache(prompt, remove_batch_dim=True)
    theirs = head_detector.detect_head(smollm, prompt, pattern, cache=cache, error_measure="abs", exclude_bos=True)
    ours = detect_head(smollm, prompt, pattern, cache=cache, error_measure="abs", exclude_bos=True)
    assert_same_scores(ours, theirs, "abs", 1)
    fresh = detect_head(smollm, prompt, pattern, error_measure="abs", exclude_bos=True)
    assert_same_scores(fresh, theirs, "abs", 1)


def test_ids_from_a_tokenizer_larger_than_the_model_are_refused_before_the_forward_pass():
    from patternlang.engine.batching import tokenize

    small = FakeAttentionModel(n_layers=1, n_heads=2, n_ctx=32, d_vocab=100)  # 'e' is token 3 + 101 = 104
    for run in (lambda: tokenize(small, ["!#", "e"]), lambda: detect_head(small, "ee", "previous_token_head"),
                lambda: detect(small, ["!#", "e"], "previous_token_head", progress=False)):
        with pytest.raises(InputError, match="position 1: token id 104 is outside the model's vocabulary of 100"):
            run()
    assert small.forward_calls == 0
