"""A hooked causal 'model' whose attention is a deterministic function of the tokens, and a
byte tokenizer: a stand-in for engine tests and benchmarks that need no real weights.

The fake is a `HookedRootModule` without `stop_at_layer`, so it also checks that the
engine stops the forward pass on models that lack that argument.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from transformer_lens import ActivationCache, HookedRootModule
from transformer_lens.hook_points import HookPoint


class ByteTokenizer:
    """Token id = 3 + byte value; 1 is BOS, 2 is padding."""

    pad_token_id = 2
    bos_token_id = 1
    all_special_ids = [1, 2]

    def encode(self, text: str) -> list[int]:
        return [3 + b for b in text.encode("utf-8")]

    def batch_decode(self, ids: Any, clean_up_tokenization_spaces: bool = False) -> list[str]:
        out = []
        for row in ids:
            out.append("".join("<s>" if i == 1 else "<pad>" if i == 2 else bytes([i - 3]).decode("latin-1") for i in row))
        return out


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_pattern = HookPoint()


class PatternOnlyBlock(nn.Module):
    """A block whose attention is nothing but its `hook_pattern` (`blocks.{l}.attn.hook_pattern`):
    the fakes and the planted model put their attention through it."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = _Attention()


class FakeAttentionModel(HookedRootModule):
    """Causal attention from token and position embeddings; records how many layers ran."""

    def __init__(self, n_layers: int = 3, n_heads: int = 4, n_ctx: int = 24, d_vocab: int = 260, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.cfg = SimpleNamespace(
            n_layers=n_layers, n_heads=n_heads, n_ctx=n_ctx, d_vocab=d_vocab, d_model=8, d_mlp=16,
            device="cpu", dtype=torch.float32, model_name="fake-attention", default_prepend_bos=True,
        )
        d_head = 4
        self.token_q = nn.Parameter(torch.randn(n_layers, d_vocab, n_heads, d_head, generator=generator), requires_grad=False)
        self.token_k = nn.Parameter(torch.randn(n_layers, d_vocab, n_heads, d_head, generator=generator), requires_grad=False)
        self.pos_q = nn.Parameter(torch.randn(n_layers, n_ctx, n_heads, d_head, generator=generator), requires_grad=False)
        self.pos_k = nn.Parameter(torch.randn(n_layers, n_ctx, n_heads, d_head, generator=generator), requires_grad=False)
        self.blocks = nn.ModuleList([PatternOnlyBlock() for _ in range(n_layers)])
        self.tokenizer = ByteTokenizer()
        self.layers_run: list[int] = []
        self.forward_calls = 0
        self.setup()

    def to_tokens(self, text: str | list[str], prepend_bos: bool | None = None) -> torch.Tensor:
        prepend = self.cfg.default_prepend_bos if prepend_bos is None else prepend_bos
        texts = [text] if isinstance(text, str) else list(text)
        rows = [([1] if prepend else []) + self.tokenizer.encode(t) for t in texts]
        width = max(len(r) for r in rows)
        return torch.tensor([r + [2] * (width - len(r)) for r in rows], dtype=torch.long)

    def attention(self, tokens: torch.Tensor, layer: int) -> torch.Tensor:
        """[batch, head_index, query_pos, key_pos] for `tokens [batch, pos]`."""
        pos = tokens.shape[1]
        q = self.token_q[layer][tokens] + self.pos_q[layer][:pos]
        k = self.token_k[layer][tokens] + self.pos_k[layer][:pos]
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k)
        causal = torch.ones(pos, pos, dtype=torch.bool).tril()
        return scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)

    def run_with_cache(self, *args: Any, **kwargs: Any) -> tuple[Any, ActivationCache]:
        """Like HookedTransformer's: the cache as an ActivationCache (`cache["pattern", 0, "attn"]`)."""
        output, cache = super().run_with_cache(*args, **kwargs)
        return output, ActivationCache(cache, self)

    def forward(self, tokens: torch.Tensor, return_type: str | None = None) -> None:
        self.forward_calls += 1
        for layer, block in enumerate(self.blocks):
            self.layers_run.append(layer)
            block.attn.hook_pattern(self.attention(tokens, layer))
        return None
