"""A hand-set tiny model whose logits are linear in every head's output `z`: attribution's oracle.

Built from the hand-set model's parts (real TransformerLens `HookPoint`s: `hook_z` is the real
hook). Residual stream: `[tok (d_vocab) | pos (n_ctx) | out (d_vocab)]`; every head's queries,
keys and values read only the token and position subspaces, which no head writes, and every
head writes only into `out`, which the logits read. So no head's attention or `z` depends on
another head, and the logits are `sum over heads of z @ W_O` read off `out`: a metric linear in
the logits is linear in every head's `z`, and attribution patching's linear estimate of an
ablation or a patch is exact.

    L0H0  current token   writes next(tok[q]) into out (weight 1.0)
    L0H1  previous token  writes tok[q-1] into out (weight -0.5)
    L1H0  uniform         writes the mean of the tokens so far into out (weight 0.3)
    L1H1  previous token  writes next(tok[q-1]) into out (weight 0.8)

>>> make_linear_model().cfg.model_name
'hand-set-linear'
"""

from __future__ import annotations

import torch

from patternlang.testing.hand_set import (
    CHARACTERS,
    SPECIAL_TOKENS,
    HandSetAttention,
    HandSetBlock,
    HandSetConfig,
    HandSetModel,
    TokenSubspace,
)
from patternlang.testing.predicting import next_token

WEIGHTS = {(0, 0): 1.0, (0, 1): -0.5, (1, 0): 0.3, (1, 1): 0.8}
"""How strongly each head writes into the logits (negative: it lowers what it writes)."""


def make_linear_model(*, n_ctx: int = 128, strength: float = 40.0) -> HandSetModel:
    """The 2-layer x 2-head model above."""
    d_vocab = len(SPECIAL_TOKENS) + len(CHARACTERS)
    tok, pos, out = 0, d_vocab, d_vocab + n_ctx
    d_model, d_head = 2 * d_vocab + n_ctx, d_vocab + n_ctx + 1
    c = strength
    vocab, ctx = torch.arange(d_vocab), torch.arange(n_ctx)
    successor = torch.tensor([next_token(int(t), d_vocab) for t in vocab])

    def head(kind: str, weight: float, shifted: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        W_Q, W_K = torch.zeros(d_model, d_head), torch.zeros(d_model, d_head)
        W_V, W_O = torch.zeros(d_model, d_head), torch.zeros(d_head, d_model)
        if kind == "current":
            W_Q[pos + ctx, ctx] = c
            W_K[pos + ctx, ctx] = 1.0
        elif kind == "previous":  # q -> q - 1 (q = 0: itself, by the causal mask alone)
            W_Q[pos + ctx, ctx] = c
            W_K[pos + ctx[:-1], ctx[:-1] + 1] = 1.0
        W_V[tok + vocab, vocab] = 1.0
        W_O[vocab, out + (successor if shifted else vocab)] = weight
        return W_Q, W_K, W_V, W_O

    layers = [
        [head("current", WEIGHTS[(0, 0)], True), head("previous", WEIGHTS[(0, 1)], False)],
        [head("uniform", WEIGHTS[(1, 0)], False), head("previous", WEIGHTS[(1, 1)], True)],
    ]
    blocks = [HandSetBlock(HandSetAttention(*(torch.stack([h[i] for h in heads]) for i in range(4))))
              for heads in layers]
    cfg = HandSetConfig(n_layers=2, n_heads=2, n_ctx=n_ctx, d_vocab=d_vocab, d_model=d_model, d_head=d_head,
                        strength=strength, model_name="hand-set-linear")
    model = HandSetModel(cfg, blocks)
    model.unembed = TokenSubspace(out, d_vocab)
    model.head_kinds = {(0, 0): "current_token_head", (0, 1): "previous_token_head", (1, 0): "uniform",
                        (1, 1): "previous_token_head"}
    model.eval()
    return model
