"""One forward pass per batch, hooked on `blocks.{l}.attn.hook_pattern`, stopped after the last needed layer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from patternlang.engine.shapes import Attention, Tokens
from patternlang.errors import InputError


class _StopForward(Exception):
    """Raised by the last needed layer's hook: nothing after it is worth computing."""


def pattern_hook_name(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_pattern"


def run_attention_hooks(
    model: Any, tokens: Tokens, layers: Sequence[int], on_attention: Callable[[int, Attention], None],
    hooks: Sequence[tuple[str, Callable[..., Any]]] = (),
) -> None:
    """Run `model` on `tokens` and call `on_attention(layer, pattern)` for each layer in `layers`.

    `pattern` is `[batch, head_index, query_pos, key_pos]`. The pass stops right after
    the last layer's pattern: our own exception, raised from its hook, works for every
    hooked model (TransformerBridge, HookedRootModule) and stops earlier than
    `stop_at_layer` could (which stops at the next block's input, after this layer's
    attention output and MLP, and cannot skip the unembedding after the last block).
    `hooks`: more `(hook name, hook)` pairs run first (an intervention's, `readers.Intervention`).
    """
    layers = sorted(set(layers))
    if not layers:
        return
    last = layers[-1]
    fired: list[int] = []

    def make_hook(layer: int) -> Callable[..., None]:
        def hook(pattern: Attention, hook: Any = None) -> None:
            on_attention(layer, pattern)
            fired.append(layer)
            if layer == last:
                raise _StopForward()

        return hook

    reading = [(pattern_hook_name(layer), make_hook(layer)) for layer in layers]
    try:
        with torch.inference_mode():
            model.run_with_hooks(tokens, fwd_hooks=[*hooks, *reading], return_type=None)
    except Exception as error:  # noqa: BLE001 - our stop signal may come back wrapped
        if not _is_stop(error):
            raise
    missing = sorted(set(layers) - set(fired))
    if missing:
        raise InputError(
            f"the model never produced {pattern_hook_name(missing[0])}",
            hint="the model must expose attention patterns (for a TransformerBridge, load the HF model "
                 "with attn_implementation='eager')",
        )


def _is_stop(error: BaseException | None) -> bool:
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, _StopForward):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False
