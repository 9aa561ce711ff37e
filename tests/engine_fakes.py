"""Small stand-ins for the engine tests: a hooked causal 'model' whose attention is a
deterministic function of the tokens, and a character tokenizer.

The fake is a `HookedRootModule` without `stop_at_layer`, so it also checks that the
engine stops the forward pass on models that lack that argument.
"""

from __future__ import annotations

import math

from types import SimpleNamespace

import torch
from torch import nn
from transformer_lens import ActivationCache, HookedRootModule
from transformer_lens.head_detector import compute_head_attention_similarity_score
from transformer_lens.hook_points import HookPoint

from patternlang.engine.measures import MEASURES, Exclusions


class CharTokenizer:
    """Token id = 3 + byte value; 1 is BOS, 2 is padding."""

    pad_token_id = 2
    bos_token_id = 1
    all_special_ids = [1, 2]

    def encode(self, text: str) -> list[int]:
        return [3 + b for b in text.encode("utf-8")]

    def batch_decode(self, ids, clean_up_tokenization_spaces=False):
        out = []
        for row in ids:
            out.append("".join("<s>" if i == 1 else "<pad>" if i == 2 else bytes([i - 3]).decode("latin-1") for i in row))
        return out


class _Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.hook_pattern = HookPoint()


class _Block(nn.Module):
    def __init__(self):
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
        self.blocks = nn.ModuleList([_Block() for _ in range(n_layers)])
        self.tokenizer = CharTokenizer()
        self.layers_run: list[int] = []
        self.forward_calls = 0
        self.setup()

    def to_tokens(self, text, prepend_bos=None):
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

    def run_with_cache(self, *args, **kwargs):
        """Like HookedTransformer's: the cache as an ActivationCache (`cache["pattern", 0, "attn"]`)."""
        output, cache = super().run_with_cache(*args, **kwargs)
        return output, ActivationCache(cache, self)

    def forward(self, tokens, return_type=None):
        self.forward_calls += 1
        for layer, block in enumerate(self.blocks):
            self.layers_run.append(layer)
            block.attn.hook_pattern(self.attention(tokens, layer))
        return None


def random_attention(batch: int, heads: int, lengths: list[int], generator: torch.Generator) -> torch.Tensor:
    """Causal softmax rows on the real block; garbage in padded query rows (they must never count)."""
    width = max(lengths)
    scores = torch.randn(batch, heads, width, width, generator=generator) * 2
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    attention = scores.masked_fill(~causal, float("-inf")).softmax(-1)
    for b, length in enumerate(lengths):
        real = scores[b, :, :length, :length].masked_fill(~causal[:length, :length], float("-inf")).softmax(-1)
        attention[b, :, :length, :length] = real
        attention[b, :, :length, length:] = 0.0
        attention[b, :, length:, :] = torch.rand(heads, width - length, width, generator=generator)
    return attention


def random_detection(n_patterns: int, lengths: list[int], generator: torch.Generator, density: float = 0.3) -> torch.Tensor:
    """Sparse non-negative lower-triangular patterns, zero on padding: [pattern, batch, q, k]."""
    width = max(lengths)
    values = torch.rand(n_patterns, len(lengths), width, width, generator=generator)
    keep = torch.rand(n_patterns, len(lengths), width, width, generator=generator) < density
    detection = (values * keep).tril()
    for b, length in enumerate(lengths):
        detection[:, b, length:, :] = 0
        detection[:, b, :, length:] = 0
    return detection


# ---- the oracle: one prompt, one head, one pattern at a time, in plain Python --------------------
def oracle_rows(attention: list[list[float]], detection: list[list[float]], excl: Exclusions):
    """Per target row: (mass, tv, argmax hit). `attention`/`detection` are one prompt's L x L."""
    rows = []
    size = len(attention)
    for q in range(size):
        keys = [k for k in range(q + 1) if not (excl.bos and k == 0) and not (excl.current and k == q)]
        if not keys:
            continue
        d = [detection[q][k] for k in keys]
        if max(d) <= 0:
            continue
        a = [attention[q][k] for k in keys]
        total = sum(a)
        a = [x / total for x in a]
        mass = sum(x * y / max(d) for x, y in zip(a, d))
        tv = sum(min(x, y / sum(d)) for x, y in zip(a, d))
        best = max(range(len(keys)), key=lambda i: (a[i], -i))  # first maximum
        rows.append((mass, tv, 1.0 if d[best] > 0 else 0.0))
    return rows


def oracle_scores(attention, detection, lengths, excl):
    """{measure: [pattern, head]} computed prompt by prompt, head by head."""
    n_patterns, _, _, _ = detection.shape
    heads = attention.shape[1]
    out = {m: torch.full((n_patterns, heads), math.nan, dtype=torch.float64) for m in MEASURES}
    for p in range(n_patterns):
        for h in range(heads):
            rows, mul, abs_ = [], [], []
            for b, length in enumerate(lengths):
                a = attention[b, h, :length, :length]
                d = detection[p, b, :length, :length]
                rows += oracle_rows(a.tolist(), d.tolist(), excl)
                for measure, bucket in (("mul", mul), ("abs", abs_)):
                    bucket.append(compute_head_attention_similarity_score(
                        a.clone(), d.clone(), exclude_bos=excl.bos, exclude_current_token=excl.current,
                        error_measure=measure))
            if rows:
                for i, m in enumerate(("mass", "tv", "argmax")):
                    out[m][p, h] = sum(r[i] for r in rows) / len(rows)
            out["mul"][p, h] = sum(mul) / len(mul)
            out["abs"][p, h] = sum(abs_) / len(abs_)
    return out
