"""Tiny random Hugging Face models wrapped by TransformerLens' TransformerBridge, built in a second.

The hand-set models of `hand_set.py` are TransformerLens-style fakes; these are real HF
architectures (Llama, Gemma 3 with sliding-window layers), so code that runs the HF model itself
(`engine/attention_blocks.py`) can be checked against the bridge's `hook_pattern` without
loading real weights. They use the embedded tokenizer (cached on disk; no network).

>>> bridge = make_tiny_bridge("gemma3", sliding_window=5)   # doctest: +SKIP
>>> bridge.cfg.n_layers, bridge.cfg.n_heads   # doctest: +SKIP
(3, 4)
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from patternlang.tokenization import default_tokenizer

TINY_LAYER_TYPES = ("sliding_attention", "full_attention", "sliding_attention")


def make_tiny_bridge(architecture: Literal["llama", "gemma3"] = "llama", *, sliding_window: int = 5,
                     attn_logit_softcapping: float | None = None, seed: int = 0) -> Any:
    """A 3-layer, 4-head (2 key-value heads) random model of `architecture`, bridged.

    `gemma3`: layers 0 and 2 attend within `sliding_window` keys, layer 1 globally; its query
    scaling comes from `query_pre_attn_scalar`, with q/k norms, as in Gemma 3.
    """
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM


    tokenizer = default_tokenizer()
    shape = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=256,
                 attn_implementation="eager")
    if architecture == "llama":
        config, model_class = LlamaConfig(**shape), LlamaForCausalLM
    elif architecture == "gemma3":
        config = Gemma3TextConfig(**shape, sliding_window=sliding_window, layer_types=list(TINY_LAYER_TYPES),
                                  query_pre_attn_scalar=6, attn_logit_softcapping=attn_logit_softcapping,
                                  final_logit_softcapping=None)
        model_class = Gemma3ForCausalLM
    else:
        raise ValueError(f"unknown tiny architecture {architecture!r}: 'llama' or 'gemma3'")
    config.architectures = [model_class.__name__]
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        hf_model = model_class(config).eval()
    finally:
        torch.random.set_rng_state(generator_state)
    return TransformerBridge.boot_transformers(f"tiny-{architecture}", hf_model=hf_model, tokenizer=tokenizer,
                                               device="cpu", dtype=torch.float32)
