"""The hand-set tiny model (patternlang.testing): each head is exactly the kind it claims.

Oracle: the expected pattern of each kind written as plain Python loops over positions.
"""

from __future__ import annotations

import pytest
import torch

from patternlang.probes import repeated_random
from patternlang.testing import (
    BOS_HEAD,
    BOS_ID,
    CURRENT_TOKEN_HEAD,
    DUPLICATE_TOKEN_HEAD,
    INDUCTION_HEAD,
    PAD_ID,
    PREVIOUS_TOKEN_HEAD,
    UNIFORM_HEAD,
    make_hand_set_model,
)


@pytest.fixture(scope="module")
def model():
    return make_hand_set_model()


def run_patterns(model, tokens, **kwargs) -> dict[int, torch.Tensor]:
    patterns = {}
    model.run_with_hooks(tokens, return_type=None, fwd_hooks=[
        (lambda name: name.endswith("hook_pattern"),
         lambda pattern, hook: patterns.__setitem__(int(hook.name.split(".")[1]), pattern.clone()))], **kwargs)
    return patterns


def expected_pattern(kind: str, tokens: list[int]) -> torch.Tensor:
    """Each row spread evenly over the kind's targets; BOS (k = 0) when there are none."""
    n = len(tokens)
    out = torch.zeros(n, n)
    for q in range(n):
        if kind == "previous_token_head":
            targets = [max(q - 1, 0)]
        elif kind == "duplicate_token_head":
            targets = [k for k in range(q) if tokens[k] == tokens[q]]
        elif kind == "induction_head":
            targets = [k for k in range(1, q + 1) if tokens[k - 1] == tokens[q]]
        elif kind == "bos_head":
            targets = [0]
        elif kind == "current_token_head":
            targets = [q]
        else:
            targets = list(range(q + 1))
        for k in targets or [0]:
            out[q, k] = 1 / len(targets or [0])
    return out


def test_hook_names_and_shapes(model):
    assert model.cfg.n_layers == 2 and model.cfg.n_heads == 3
    assert "blocks.1.attn.hook_pattern" in model.hook_dict
    tokens = model.to_tokens(["abcab", "xy"])
    patterns = run_patterns(model, tokens)
    assert patterns[0].shape == patterns[1].shape == (2, 3, 6, 6)  # [batch, head_index, query_pos, key_pos]


def test_previous_token_head_is_exact(model):
    prompts = repeated_random(model, length=30, repeats=2, batch=4)
    tokens = torch.tensor(prompts.tokens)
    pattern = run_patterns(model, tokens)[0][:, PREVIOUS_TOKEN_HEAD[1]]
    q = torch.arange(1, tokens.shape[1])
    assert torch.all(pattern[:, q, q - 1] > 0.99)
    assert torch.all(pattern[:, 0, 0] > 0.99)


@pytest.mark.parametrize("text", ["abcabcab", "the cat sat on the mat", "aaaa", "xyz", "Mary and John; John and Mary."])
def test_every_head_matches_its_oracle(model, text):
    tokens = model.to_tokens(text)
    patterns = run_patterns(model, tokens)
    for (layer, head), kind in model.head_kinds.items():
        expected = expected_pattern(kind, tokens[0].tolist())
        torch.testing.assert_close(patterns[layer][0, head], expected, atol=1e-6, rtol=0,
                                   msg=lambda m, layer=layer, head=head, kind=kind: f"L{layer}H{head} ({kind}): {m}")


def test_induction_head_on_repeated_random_tokens(model):
    length = 20
    tokens = torch.tensor(repeated_random(model, length=length, repeats=3, batch=8, seed=3).tokens)
    pattern = run_patterns(model, tokens)[INDUCTION_HEAD[0]][:, INDUCTION_HEAD[1]]
    for b in range(tokens.shape[0]):
        expected = expected_pattern("induction_head", tokens[b].tolist())
        torch.testing.assert_close(pattern[b], expected, atol=1e-6, rtol=0)
    # With distinct tokens in a period, every query of the repeat has one target: one period
    # back, plus one.
    period = torch.randperm(97, generator=torch.Generator().manual_seed(0))[:length] + 3
    distinct = torch.cat([torch.tensor([BOS_ID]), period, period])[None]
    pattern = run_patterns(model, distinct)[INDUCTION_HEAD[0]][0, INDUCTION_HEAD[1]]
    q = torch.arange(length + 1, distinct.shape[1])
    assert torch.all(pattern[q, q - length + 1] > 0.99)


def test_induction_needs_the_previous_token_head(model):
    """Zeroing L0H0's pattern through a hook breaks the composition: the hook's output is used."""
    tokens = model.to_tokens("abcdabcd")
    layer, head = INDUCTION_HEAD

    def ablate(pattern, hook):
        pattern[:, PREVIOUS_TOKEN_HEAD[1]] = 0.0
        return pattern

    patterns = {}
    model.run_with_hooks(tokens, return_type=None, fwd_hooks=[
        ("blocks.0.attn.hook_pattern", ablate),
        (f"blocks.{layer}.attn.hook_pattern", lambda p, hook: patterns.__setitem__("induction", p[0, head]))])
    assert torch.all(patterns["induction"][1:, 0] > 0.99)  # only the BOS fallback is left


def test_head_kind_table(model):
    assert model.head_kinds[PREVIOUS_TOKEN_HEAD] == "previous_token_head"
    assert model.head_kinds[DUPLICATE_TOKEN_HEAD] == "duplicate_token_head"
    assert model.head_kinds[BOS_HEAD] == "bos_head"
    assert model.head_kinds[INDUCTION_HEAD] == "induction_head"
    assert model.head_kinds[CURRENT_TOKEN_HEAD] == "current_token_head"
    assert model.head_kinds[UNIFORM_HEAD] == "uniform"
    deeper = make_hand_set_model(n_layers=3)
    assert deeper.heads_of_kind("induction_head") == [(1, 0), (2, 0)]
    assert make_hand_set_model(n_layers=1).head_kinds.keys() == {(0, 0), (0, 1), (0, 2)}


def test_tokens(model):
    assert model.to_str_tokens("ab a") == ["<bos>", "a", "b", " ", "a"]
    tokens = model.to_tokens(["abc", "a"])
    assert tokens[0, 0] == BOS_ID and tokens[1].tolist()[2:] == [PAD_ID, PAD_ID]
    assert model.to_tokens("ab", prepend_bos=False).shape == (1, 2)
    assert model.to_string(tokens[0]) == "abc"
    assert model.to_str_tokens(tokens)[1] == ["<bos>", "a", "<pad>", "<pad>"]
    assert model.to_single_token("q") == model.tokenizer.encode("q")[0]
    assert model.to_tokens("\u00e9")[0, 1].item() == model.tokenizer.unk_token_id


def test_attention_mask_keeps_padding_keys_out(model):
    tokens = model.to_tokens(["abab", "ab"], padding_side="left")
    mask = tokens != PAD_ID
    patterns = run_patterns(model, tokens, attention_mask=mask)
    uniform = patterns[UNIFORM_HEAD[0]][1, UNIFORM_HEAD[1]]
    assert torch.all(uniform[:, :2] == 0)  # two padding keys on the left
    torch.testing.assert_close(uniform[2:, 2:].sum(-1), torch.ones(3))


def test_inputs_the_model_refuses(model):
    with pytest.raises(ValueError, match="n_ctx"):
        model(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match="token ids"):
        model(torch.tensor([[0, 100]]))
