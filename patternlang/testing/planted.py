"""A tiny hooked model whose heads attend exactly by planted rules: the ground truth of `describe`.

`make_planted_model({(0, 0): "attend k where k == q - 1", ...})` gives a model (the hand-set
model's character tokenizer and conventions) whose head `(layer, head)` attends, on every prompt,
uniformly over the targets of its rule's compiled matrix, and all on BOS in rows without a target;
heads without a rule attend uniformly over every key (with `random_heads`: by a softmax of seeded random
scores of the query's and key's tokens and positions, an attention no rule explains). Its `blocks.{l}.attn.hook_pattern` is a real
TransformerLens `HookPoint`, and the logits read the heads' outputs (each head copies a fixed random
projection of the tokens it attends to), so replacing a pattern through the hook changes them.

>>> model = make_planted_model({(0, 0): "attend k where k == q - 1"})
>>> model.planted[(0, 0)]
'attend k where k == q - 1'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from patternlang.compiler import BatchFeatures
from patternlang.discovery.replace import rule_attention
from patternlang.library import compile_rule
from patternlang.pattern import Pattern
from patternlang.testing.fake_attention import PatternOnlyBlock
from patternlang.testing.hand_set import (BOS_ID, CHARACTERS, PAD_ID, SPECIAL_TOKENS, UNK_ID, HandSetConfig,
                                          HandSetModel, TokenSubspace)

__all__ = ["PlantedModel", "make_planted_model", "planted_attention"]


def planted_attention(matrix: Tensor, mask: Tensor) -> Tensor:
    """Rows of `matrix [batch, q, k]` (0/1) normalised to sum 1; a real row without a target puts
    everything on key 0 (BOS); padding rows are 0: what the replacement check sets a head to."""
    return rule_attention(matrix, mask)


class PlantedModel(HandSetModel):
    """The hand-set model's tokens and conventions; attention from planted rules."""

    def __init__(self, cfg: HandSetConfig, rules: dict[tuple[int, int], Any], seed: int = 0,
                 random_heads: bool = False):
        super().__init__(cfg, [PatternOnlyBlock() for _ in range(cfg.n_layers)])
        self.planted = dict(rules)
        # Rule text, or a function of a batch's `BatchFeatures` giving `[batch, q, k]` (for rules the
        # grammar cannot write yet).
        self.patterns: dict[tuple[int, int], Pattern | Callable[[BatchFeatures], Tensor]] = {
            head: compile_rule(rule) if isinstance(rule, str) else rule for head, rule in rules.items()}
        generator = torch.Generator().manual_seed(seed)
        self.W_OV = nn.Parameter(torch.randn(cfg.n_layers, cfg.n_heads, cfg.d_vocab, cfg.d_vocab, generator=generator),
                                 requires_grad=False)
        # The logits are the residual stream itself: the unembedding is the identity (read by the
        # engine's pass to the logits, for patterns reading the model's predictions).
        self.register_buffer("W_U", torch.eye(cfg.d_vocab), persistent=False)
        self.head_kinds = {head: "planted" for head in rules}
        self.random_heads = random_heads
        # Random attention scores: token and position embeddings per layer and head, scaled so
        # that rows are far from uniform.
        self.random_tok = nn.Parameter(3 * torch.randn(cfg.n_layers, cfg.n_heads, cfg.d_vocab, 4, generator=generator),
                                       requires_grad=False)
        self.random_pos = nn.Parameter(3 * torch.randn(cfg.n_layers, cfg.n_heads, cfg.n_ctx, 4, generator=generator),
                                       requires_grad=False)

    def forward(self, input: Any, return_type: str | None = "logits", prepend_bos: bool | None = None,
                padding_side: str | None = None, attention_mask: Tensor | None = None, **kwargs: Any) -> Tensor | None:
        tokens = self.to_tokens(input, prepend_bos, padding_side) if isinstance(input, (str, list)) else input
        if tokens.dim() == 1:
            tokens = tokens[None]
        batch, seq = tokens.shape
        mask = tokens != PAD_ID
        if attention_mask is not None:
            mask = attention_mask.bool()
        strings = dict(enumerate(self.tokenizer.vocab))
        features = BatchFeatures.build(tokens, mask, strings=strings, special_ids=(BOS_ID, PAD_ID, UNK_ID))
        causal = torch.ones(seq, seq, dtype=torch.bool).tril()
        uniform = (causal[None] & mask[:, None, :] & mask[:, :, None]).to(torch.float32)
        one_hot = nn.functional.one_hot(tokens, self.cfg.d_vocab).float()
        logits = one_hot.clone()
        for layer, block in enumerate(self.blocks):
            heads = []
            for head in range(self.cfg.n_heads):
                pattern = self.patterns.get((layer, head))
                if pattern is not None:
                    matrix = pattern.evaluate(features) if isinstance(pattern, Pattern) else pattern(features)
                    heads.append(planted_attention(matrix, mask))
                elif self.random_heads:
                    heads.append(self._random(tokens, mask, causal, layer, head))
                else:
                    heads.append(planted_attention(uniform, mask))
            attention = block.attn.hook_pattern(torch.stack(heads, dim=1))  # [batch, head, q, k]
            values = torch.einsum("bkv,hvw->bhkw", one_hot, self.W_OV[layer])
            logits = logits + torch.einsum("bhqk,bhkw->bqw", attention, values)
        return logits if return_type is not None else None

    def _random(self, tokens: Tensor, mask: Tensor, causal: Tensor, layer: int, head: int) -> Tensor:
        seq = tokens.shape[1]
        x = self.random_tok[layer, head][tokens] + self.random_pos[layer, head][:seq]  # [batch, pos, 4]
        scores = torch.einsum("bqe,bke->bqk", x, x.roll(1, dims=-1))
        allowed = causal[None] & mask[:, None, :]
        attention = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1).nan_to_num(0.0)
        return torch.where(mask[:, :, None], attention, 0.0)


def make_planted_model(rules: dict[tuple[int, int], Any], *, n_layers: int | None = None, n_heads: int | None = None,
                       n_ctx: int = 96, seed: int = 0, random_heads: bool = False) -> PlantedModel:
    """A model whose head `(layer, head)` attends by `rules[(layer, head)]` (others: uniformly)."""
    n_layers = n_layers or max(layer for layer, _ in rules) + 1
    n_heads = n_heads or max(head for _, head in rules) + 1
    d_vocab = len(SPECIAL_TOKENS) + len(CHARACTERS)
    cfg = HandSetConfig(n_layers=n_layers, n_heads=n_heads, n_ctx=n_ctx, d_vocab=d_vocab, d_model=d_vocab,
                        d_head=d_vocab, strength=0.0, model_name="planted-rules")
    model = PlantedModel(cfg, rules, seed, random_heads)
    model.unembed = TokenSubspace(0, d_vocab)
    model.eval()
    return model
