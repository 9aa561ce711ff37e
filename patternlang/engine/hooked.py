"""`HookedModel`: what the engine reads of a model, as a `typing.Protocol` (instead of `Any`).

A TransformerLens `TransformerBridge` or `HookedTransformer`, the hand-set and fake models of
`patternlang.testing`, and legacy checkpoints all satisfy it: a `cfg` with the shape, hooks
run by `run_with_hooks`, and (for text prompts) `to_tokens`. The deferred pass also reads `W_O`
and the unembedding (`model_outputs.Readout`); `model_facts` reads the rest (tokenizer, device).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class HookedModel(Protocol):
    """A model the engine can score: `cfg.n_layers`, `cfg.n_heads`, and hooked forward passes on
    `blocks.{l}.attn.hook_pattern` (`[batch, head_index, query_pos, key_pos]`)."""

    cfg: Any

    def run_with_hooks(self, *args: Any, fwd_hooks: Sequence[tuple[str, Callable[..., Any]]] = (),
                       **kwargs: Any) -> Any: ...

    def to_tokens(self, *args: Any, **kwargs: Any) -> Tensor: ...
