"""Which models take the block path (attention_blocks.py): `blocked_route` says why one cannot."""

from __future__ import annotations

from typing import Any

__all__ = ["CHECKED_ARCHITECTURES", "blocked_route"]

CHECKED_ARCHITECTURES = ("LlamaForCausalLM", "Gemma3ForCausalLM")
"""HF model classes whose route has been checked against the bridge's `hook_pattern` (tests)."""

_WRAPPER_SEGMENT = "._original_component"
"""What a bridge inserts into the names of the HF modules it wraps."""


def blocked_route(model: Any) -> str | None:
    """None when `capture_attention_blocks` works for `model`; else a short reason, and the
    engine computes attention through `hook_pattern` instead.

    >>> blocked_route(load_model()) is None   # doctest: +SKIP
    True
    >>> blocked_route(make_hand_set_model())   # doctest: +SKIP
    'HandSetModel is not a Hugging Face model wrapped by a TransformerBridge ...'
    """
    hf_model = _wrapped_hf_model(model)
    if hf_model is None:
        return (f"{type(model).__name__} is not a Hugging Face model wrapped by a TransformerBridge "
                "(a TransformerLens-native checkpoint, a HookedTransformer or a test model)")
    if getattr(model, "_weights_processed", False) or getattr(model, "compatibility_mode", False):
        # Folded or centred weights change what the bridge computes from the HF modules' tensors.
        return "the bridge's weights have been processed (process_weights or compatibility mode)"
    architecture = type(hf_model).__name__
    if architecture not in CHECKED_ARCHITECTURES:
        return (f"blockwise attention has not been checked against hook_pattern for {architecture} "
                f"(checked: {', '.join(CHECKED_ARCHITECTURES)})")
    config = hf_model.config
    if getattr(config, "use_bidirectional_attention", False):
        return f"{architecture} is configured with bidirectional attention"
    if getattr(config, "pretraining_tp", 1) not in (None, 1):
        return f"{architecture} is configured with pretraining_tp={config.pretraining_tp}"
    if getattr(config, "attn_logit_softcapping", None) is not None:
        # HF's Gemma 3 attention never passes this to its attention function; the bridge applies it.
        return (f"{architecture} sets attn_logit_softcapping, which the bridge applies and HF's "
                "attention does not: the two disagree")
    if getattr(config, "sliding_window", None) is not None and getattr(config, "layer_types", None) is None:
        return f"{architecture} has a sliding window but no per-layer layer_types"
    return None


def _wrapped_hf_model(model: Any) -> Any:
    """The HF model inside a TransformerBridge, or None."""
    try:
        from transformer_lens.model_bridge import TransformerBridge
        from transformers import PreTrainedModel
    except ImportError:
        return None
    if not isinstance(model, TransformerBridge):
        return None
    hf_model = getattr(model, "original_model", None)
    return hf_model if isinstance(hf_model, PreTrainedModel) else None
