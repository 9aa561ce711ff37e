"""A hand-set tiny model with one head that attends to the token the model predicts.

Built from the hand-set model's parts (real TransformerLens `HookPoint`s, so `run_with_hooks`,
`hook_pattern`, `hook_z` and `hook_resid_post` are the real machinery). Residual stream:
`[tok (d_vocab) | pos (n_ctx) | pred (d_vocab)]`, and the logits read the *pred* subspace.

    L0H0  bigram head         attends to itself; writes next(tok[q]) into pred (weight 1), so
                              the model predicts pred[q] = next(tok[q]) (the next character id)
    L0H1  bos head            attends to BOS; writes nothing
    L1H0  prediction head     attends to earlier k with tok[k] == pred[q] (BOS when none) and
                              writes `sign * 0.5` times the attended token into pred: `sign` +1
                              copies what it attends to (`copying` > 0), -1 suppresses it (< 0);
                              0.5 < 1 leaves the prediction unchanged either way
    L1H1  current token head  attends to itself; writes nothing

>>> model = make_predicting_model()
>>> model.head_kinds[PREDICTION_HEAD]
'prediction_head'
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

PREDICTION_HEAD = (1, 0)
COPY_WEIGHT = 0.5


def next_token(token: int, d_vocab: int) -> int:
    """The token the model predicts after `token`: the next character id (wrapping; never itself)."""
    first = len(SPECIAL_TOKENS)
    return first + (max(token, first) - first + 1) % (d_vocab - first)


def make_predicting_model(sign: float = 1.0, *, n_ctx: int = 64, strength: float = 40.0) -> HandSetModel:
    """The model above; `sign` +1 (the prediction head copies) or -1 (it suppresses)."""
    d_vocab = len(SPECIAL_TOKENS) + len(CHARACTERS)
    tok, pos, pred = 0, d_vocab, d_vocab + n_ctx
    d_model, d_head = 2 * d_vocab + n_ctx, d_vocab + n_ctx + 1
    bonus, c = d_vocab + n_ctx, strength
    vocab, ctx = torch.arange(d_vocab), torch.arange(n_ctx)
    successor = torch.tensor([next_token(int(t), d_vocab) for t in vocab])

    def zeros(n_heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return (torch.zeros(n_heads, d_model, d_head), torch.zeros(n_heads, d_model, d_head),
                torch.zeros(n_heads, d_model, d_head), torch.zeros(n_heads, d_head, d_model))

    # Layer 0: the bigram head (itself; OV: tok t -> pred next(t)) and a BOS head.
    W_Q, W_K, W_V, W_O = zeros(2)
    W_Q[0, pos + ctx, ctx] = c
    W_K[0, pos + ctx, ctx] = 1.0
    W_V[0, tok + vocab, vocab] = 1.0
    W_O[0, vocab, pred + successor] = 1.0
    W_Q[1, tok + vocab, 0] = c
    W_K[1, pos + 0, 0] = 1.0
    layer0 = HandSetBlock(HandSetAttention(W_Q, W_K, W_V, W_O))

    # Layer 1: the prediction head (query: pred subspace; key: tok subspace; BOS as fallback) and a
    # current-token head.
    W_Q, W_K, W_V, W_O = zeros(2)
    W_Q[0, pred + vocab, vocab] = c
    W_K[0, tok + vocab, vocab] = 1.0
    W_Q[0, tok + vocab, bonus] = c / 2
    W_K[0, pos + 0, bonus] = 1.0
    W_V[0, tok + vocab, vocab] = 1.0
    W_O[0, vocab, pred + vocab] = sign * COPY_WEIGHT
    W_Q[1, pos + ctx, ctx] = c
    W_K[1, pos + ctx, ctx] = 1.0
    layer1 = HandSetBlock(HandSetAttention(W_Q, W_K, W_V, W_O))

    cfg = HandSetConfig(n_layers=2, n_heads=2, n_ctx=n_ctx, d_vocab=d_vocab, d_model=d_model, d_head=d_head,
                        strength=strength, model_name="hand-set-predicting")
    model = HandSetModel(cfg, [layer0, layer1])
    model.unembed = TokenSubspace(pred, d_vocab)
    model.head_kinds = {(0, 0): "bigram_head", (0, 1): "bos_head", (1, 0): "prediction_head",
                        (1, 1): "current_token_head"}
    model.eval()
    return model
