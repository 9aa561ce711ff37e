"""Shortformer position embeddings for TransformerLens' native models.

HookedTransformer's "shortformer" models (the ARENA attention-only models among them) add
the position embedding to the inputs of the queries and keys only, after `ln1`, and never
to the residual stream; the values and the residual see token embeddings alone.
TransformerLens 4 builds native models with "standard" or "rotary" positions only, so
`load_model` builds a "standard" model and `make_shortformer` switches its classes to the
two below, which differ from TransformerLens' own only where shortformer differs.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from transformer_lens.model_bridge.sources.native.model import NativeAttention, NativeModel
from transformer_lens.utilities.activation_functions import apply_softcap


class ShortformerAttention(NativeAttention):
    """`NativeAttention` whose queries and keys read `ln1(resid) + pos_embed`."""

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
        pattern_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, seq, _ = hidden_states.shape
        pos_embed = getattr(self, "shortformer_pos_embed", None)
        if pos_embed is None:
            raise RuntimeError("a shortformer attention layer ran outside its model's forward")
        qk_input = hidden_states + pos_embed

        q = self.q(qk_input).view(batch, seq, self.n_heads, self.d_head).transpose(1, 2)
        k = self.k(qk_input).view(batch, seq, self.n_kv_heads, self.d_head).transpose(1, 2)
        v = self.v(hidden_states).view(batch, seq, self.n_kv_heads, self.d_head).transpose(1, 2)
        if self.kv_repeats > 1:
            k = k.repeat_interleave(self.kv_repeats, dim=1)
            v = v.repeat_interleave(self.kv_repeats, dim=1)

        scores = torch.matmul(q, k.transpose(-2, -1)) / self.scale
        scores = apply_softcap(scores, self.attn_scores_soft_cap)
        if self.causal:
            block_mask = self.causal_mask[:seq, :seq]
        else:
            block_mask = torch.zeros(seq, seq, dtype=torch.bool, device=scores.device)
        if attention_mask is not None:
            block_mask = self._combine_attention_mask(block_mask, attention_mask, batch=batch)
        scores = scores.masked_fill(block_mask, float("-inf"))
        pattern = F.softmax(scores, dim=-1).masked_fill(block_mask, 0.0)
        if pattern_fn is not None:
            pattern = pattern_fn(pattern)

        attn = torch.matmul(pattern, v).transpose(1, 2).contiguous().view(batch, seq, -1)
        return self.o(attn), pattern


class ShortformerModel(NativeModel):
    """`NativeModel` that hands the position embedding to each attention layer instead of
    adding it to the residual stream."""

    def forward(
        self,
        input_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
        inputs_embeds: Optional[torch.Tensor] = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Exactly one of input_ids or inputs_embeds must be provided.")
        model_input = input_ids if input_ids is not None else inputs_embeds
        hidden_states = self.tok_embed(input_ids) if input_ids is not None else inputs_embeds
        batch, seq = model_input.shape[:2]
        if seq > self.cfg.n_ctx:
            raise ValueError(f"input length {seq} exceeds n_ctx={self.cfg.n_ctx}")
        if position_ids is None:
            position_ids = torch.arange(seq, device=model_input.device).unsqueeze(0).expand(batch, -1)

        pos_embed = self.pos(position_ids)
        attentions = self.__dict__["_shortformer_attentions"]
        for attention in attentions:
            attention.shortformer_pos_embed = pos_embed
        try:
            for block in self.layers:
                (hidden_states,) = block(hidden_states, attention_mask=attention_mask, position_ids=position_ids)
        finally:
            for attention in attentions:
                attention.shortformer_pos_embed = None
        logits = self.head(self.ln_out(hidden_states))
        return apply_softcap(logits, self.output_logits_soft_cap)


def make_shortformer(bridge: Any) -> None:
    """Switch a bridge built by `boot_native` with standard positions to shortformer ones."""
    model = bridge.original_model
    if type(model) is not NativeModel:
        raise TypeError(f"expected a TransformerLens NativeModel, got {type(model).__name__}")
    attentions = [module for module in model.modules() if type(module) is NativeAttention]
    if len(attentions) != model.cfg.n_layers:
        raise TypeError(f"found {len(attentions)} attention layers in a {model.cfg.n_layers}-layer model")
    for attention in attentions:
        attention.__class__ = ShortformerAttention
        attention.shortformer_pos_embed = None
    model.__class__ = ShortformerModel
    model.__dict__["_shortformer_attentions"] = attentions  # a plain list: not submodules twice
    bridge.cfg.positional_embedding_type = "shortformer"
