"""Attention by blocks of queries, without the model ever holding a layer's `[heads, q, k]` tensor.

The route. A TransformerBridge computes attention in its own components (the bridge's eager
attention, which builds the whole `[batch, heads, q, k]` pattern for `hook_pattern`), and it has
replaced the HF model's modules with those components, so `bridge.original_model` runs them too,
and a function registered in transformers' `AttentionInterface` is never called. So the route
builds a second, unbridged HF model of the same class from the same config, on the meta device,
and puts the bridge's own parameter and buffer tensors into it (the same tensor objects: no
second copy of the weights). Its `config._attn_implementation` names `patternlang_blockwise`,
registered here, which every HF attention module calls with the post-rotary queries and keys
(q/k norms and rotary already applied by HF's own code), the scaling and the sliding window.
It computes the layer's output a block of queries at a time (logits of the
block over the keys it may see, the same float32 softmax as eager attention, times V), so no
tensor holds more than one block's rows. The name is not in `AttentionMaskInterface`, so HF
builds no `[q, k]` mask either: the causal, sliding-window and padding masks are applied per
block from the prompts' lengths.

For the layers asked for, the function keeps the post-rotary queries `[batch, heads, pos,
d_head]` and keys `[batch, kv_heads, pos, d_head]` (linear in pos), and the run stops in the
last of them (our own exception, as `forward.py` does with hooks). `AttentionBlocks.block`
recomputes one block's softmax from them with the same arithmetic (rounded to the model's dtype,
as hook_pattern is), which equals the bridge's `hook_pattern` within 1e-5 (bit for bit in the
tests, tests/test_attention_blocks.py, float32 and bfloat16), and on sliding-window layers reads
only the keys inside the window.

Why this and not the alternatives: replacing the bridge component's forward would tie us to
TransformerLens' private internals, which change between releases; the HF attention interface is
public and receives exactly the post-rotary tensors. Only the architectures checked against
`hook_pattern` take the route (`blocked_route` names the reason for any other model, and the
engine falls back to `hook_pattern`).

Memory kept by a capture: batch x pos x (n_heads + n_kv_heads) x d_head x 4 bytes per layer
asked for (SmolLM2-135M: 9 + 3 heads of 64 -> 3 KiB per token per layer).
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from patternlang.engine.block_route import _WRAPPER_SEGMENT, blocked_route
from patternlang.engine.block_softmax import _block_softmax, _grouped_matmul, _key_start, _LayerFacts
from patternlang.errors import InputError

ATTENTION_NAME = "patternlang_blockwise"
"""The name the blockwise attention function is registered under in transformers' AttentionInterface."""

_LOGITS_BUDGET = 2**22
"""The most logits (float32 elements) one block of the forward pass computes at once (16 MiB):
the query block shrinks as the prompts grow, so memory stays linear in their length."""

class AttentionBlocks(Protocol):
    """What a capture hands to the scorer: one layer's attention for a block of queries at a time."""

    layers: tuple[int, ...]

    def block(self, layer: int, q_start: int, q_stop: int) -> Tensor:
        """float32 [batch, head_index, q_stop - q_start, q_stop]: the attention of queries
        q_start .. q_stop-1 over keys 0 .. q_stop-1, exactly as hook_pattern would hold it
        (zero where k > q, on padding keys and outside a sliding window)."""
        ...


class _StopCapture(Exception):
    """Raised by the last needed layer's attention: nothing after it is worth computing."""


# ---------------------------------------------------------------------------------------------
# The unbridged model sharing the bridge's tensors


@dataclass(frozen=True, slots=True)
class _Shared:
    model: Any  # the unbridged HF model
    signature: tuple[tuple[str, int, str], ...]  # the bridge's tensors it was built on


_SHARED: weakref.WeakKeyDictionary[Any, _Shared] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def _bridge_tensors(hf_model: Any) -> dict[str, Tensor]:
    """The wrapped HF model's parameters and buffers by their plain HF names (the bridge's
    `._original_component` wrappers taken out), tied ones under every name."""
    tensors: dict[str, Tensor] = {}
    for named in (hf_model.named_parameters(remove_duplicate=False), hf_model.named_buffers(remove_duplicate=False)):
        for name, tensor in named:
            tensors[name.replace(_WRAPPER_SEGMENT, "")] = tensor
    return tensors


def _signature(tensors: dict[str, Tensor]) -> tuple[tuple[str, int, str], ...]:
    return tuple((name, tensor.data_ptr(), str(tensor.device)) for name, tensor in tensors.items())


def shared_hf_model(model: Any) -> Any:
    """The unbridged HF model running blockwise attention on `model`'s own weight tensors.

    Built once per bridge (rebuilt when its tensors have moved, e.g. to another device); it holds
    no weights of its own. Raises InputError naming the reason when the route does not work.
    """
    reason = blocked_route(model)
    if reason is not None:
        raise InputError(f"attention blocks cannot be computed for this model: {reason}",
                         hint="use attention='pattern' (hook_pattern)")
    hf_model = model.original_model
    tensors = _bridge_tensors(hf_model)
    signature = _signature(tensors)
    with _SHARED_LOCK:
        cached = _SHARED.get(model)
        if cached is not None and cached.signature == signature:
            return cached.model
        shared = _build_shared(hf_model, tensors)
        _SHARED[model] = _Shared(shared, signature)
        return shared


def _build_shared(hf_model: Any, tensors: dict[str, Tensor]) -> Any:
    _register_attention()
    config = copy.deepcopy(hf_model.config)
    config._attn_implementation = ATTENTION_NAME
    config.use_cache = False
    with torch.device("meta"):
        shared = type(hf_model)._from_config(config)
    missing = []
    for module_name, module in shared.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for slots in (module._parameters, module._buffers):
            for leaf, tensor in slots.items():
                if tensor is None:
                    continue
                source = tensors.get(prefix + leaf)
                if source is None or source.shape != tensor.shape:
                    missing.append(prefix + leaf)
                    continue
                slots[leaf] = source  # the bridge's own tensor object: shared, not copied
    if missing:
        raise InputError(f"attention blocks cannot be computed for this model: the bridge has no tensor for "
                         f"{', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else ""),
                         hint="use attention='pattern' (hook_pattern)")
    shared.eval()
    return shared


# ---------------------------------------------------------------------------------------------
# The attention function


_ACTIVE = threading.local()


@dataclass(slots=True)
class _Capture:
    """What one run keeps, and where it stops."""

    lengths: Tensor  # [batch] on the model's device
    keep: frozenset[int]
    stop_after: int | None
    queries: dict[int, Tensor]
    keys: dict[int, Tensor]
    facts: dict[int, _LayerFacts]
    stores: tuple[Tensor, Tensor] | None = None  # every kept layer's queries, and keys, in one tensor each


def _register_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, _blockwise_attention)


_HARMLESS_KWARGS = frozenset({"position_ids", "cache_position", "output_attentions", "use_cache",
                              "past_key_values", "position_embeddings", "is_causal"})


def _blockwise_attention(module: Any, query: Tensor, key: Tensor, value: Tensor, attention_mask: Tensor | None,
                         dropout: float = 0.0, scaling: float | None = None, sliding_window: int | None = None,
                         softcap: float | None = None, **kwargs: Any) -> tuple[Tensor, None]:
    """transformers' attention-function signature: query `[batch, heads, q, d]`, key and value
    `[batch, kv_heads, k, d]` -> output `[batch, q, heads, d]` (no weights returned)."""
    capture: _Capture | None = getattr(_ACTIVE, "capture", None)
    if capture is None:
        raise RuntimeError("patternlang's blockwise attention runs only inside capture_attention_blocks")
    unexpected = sorted(name for name, value_ in kwargs.items() if value_ is not None and name not in _HARMLESS_KWARGS)
    if attention_mask is not None or unexpected or (dropout and module.training):
        what = "an attention mask" if attention_mask is not None else (unexpected or ["dropout"])
        raise InputError(f"blockwise attention was given {what}, which it does not implement",
                         hint="use attention='pattern' (hook_pattern)")
    layer = int(module.layer_idx)
    facts = _LayerFacts(float(scaling if scaling is not None else module.head_dim ** -0.5),
                        int(sliding_window) if sliding_window else None,
                        float(softcap) if softcap else None)
    batch, n_heads, n_pos, d_head = query.shape
    output = query.new_empty(batch, n_pos, n_heads, value.shape[-1])
    rows = max(1, _LOGITS_BUDGET // max(1, batch * n_heads * n_pos))
    for q_start in range(0, n_pos, rows):
        q_stop = min(n_pos, q_start + rows)
        probabilities, k_start = _block_softmax(query, key, capture.lengths, facts, q_start, q_stop)
        mixed = _grouped_matmul(probabilities.to(value.dtype), value[:, :, k_start:q_stop])
        output[:, q_start:q_stop] = mixed.transpose(1, 2)
    if layer in capture.keep:
        _keep(capture, layer, query, key)
        capture.facts[layer] = facts
    if layer == capture.stop_after:
        raise _StopCapture()
    return output, None


def _keep(capture: _Capture, layer: int, query: Tensor, key: Tensor) -> None:
    """Copy the layer's q/k into one store allocated for all kept layers at the first of them:
    kept one by one, they would pin chunks between the forward pass's freed ones, and the
    fragmented heap would hold far more than the q/k themselves."""
    if capture.stores is None:
        count = len(capture.keep)
        capture.stores = (query.new_empty((count, *query.shape)), key.new_empty((count, *key.shape)))
    index = sorted(capture.keep).index(layer)
    capture.queries[layer] = capture.stores[0][index].copy_(query)
    capture.keys[layer] = capture.stores[1][index].copy_(key)


# ---------------------------------------------------------------------------------------------
# Capturing


class CapturedAttention:
    """The post-rotary queries and keys of a capture's layers; `block` recomputes their attention.

    Holds `batch x pos x (n_heads + n_kv_heads) x d_head` floats per layer, nothing quadratic.
    """

    def __init__(self, capture: _Capture) -> None:
        self.layers: tuple[int, ...] = tuple(sorted(capture.queries))
        self.lengths = capture.lengths
        self._queries = capture.queries
        self._keys = capture.keys
        self._facts = capture.facts
        self.n_pos = next(iter(capture.queries.values())).shape[2] if capture.queries else 0

    def sliding_window(self, layer: int) -> int | None:
        """The layer's sliding window (None: global attention)."""
        return self._layer_facts(layer).sliding_window

    def key_range(self, layer: int, q_start: int, q_stop: int) -> tuple[int, int]:
        """The keys `block(layer, q_start, q_stop)` reads: `(first, stop)`; outside, it writes zeros."""
        return _key_start(self._layer_facts(layer), q_start), q_stop

    def block(self, layer: int, q_start: int, q_stop: int) -> Tensor:
        """float32 [batch, head_index, q_stop - q_start, q_stop]: the attention of queries
        q_start .. q_stop-1 over keys 0 .. q_stop-1, as hook_pattern holds it on the real query
        rows (zero where k > q, on padding keys and outside a sliding window).

        >>> captured = capture_attention_blocks(model, tokens, lengths, [3])   # doctest: +SKIP
        >>> captured.block(3, 0, 128).shape   # doctest: +SKIP
        torch.Size([2, 9, 128, 128])
        """
        facts = self._layer_facts(layer)
        if not 0 <= q_start < q_stop <= self.n_pos:
            raise InputError(f"query block {q_start}..{q_stop} is outside 0..{self.n_pos}",
                             hint="ask for 0 <= q_start < q_stop <= the prompts' padded length")
        query = self._queries[layer]
        probabilities, k_start = _block_softmax(query, self._keys[layer], self.lengths, facts, q_start, q_stop)
        if query.dtype != torch.float32:  # hook_pattern holds the softmax rounded to the model's dtype
            probabilities = probabilities.to(query.dtype).float()
        if k_start == 0:
            return probabilities
        batch, n_heads, rows, _ = probabilities.shape
        full = probabilities.new_zeros(batch, n_heads, rows, q_stop)
        full[..., k_start:] = probabilities
        return full

    def _layer_facts(self, layer: int) -> _LayerFacts:
        facts = self._facts.get(layer)
        if facts is None:
            raise InputError(f"layer {layer} was not captured", hint=f"captured layers: {list(self.layers)}")
        return facts

    def __repr__(self) -> str:
        return f"CapturedAttention(layers={list(self.layers)}, pos={self.n_pos})"


def capture_attention_blocks(model: Any, tokens: Tensor, lengths: Tensor, layers: Sequence[int]) -> AttentionBlocks:
    """Run `model` once on right-padded `tokens [batch, pos]` (real lengths `lengths`), stopping
    in the last layer of `layers`, without any `[heads, q, k]` tensor (memory linear in pos);
    keeps the post-rotary queries and keys of `layers`, from which `block()` computes attention.

    Raises InputError when the route does not work for the model (`blocked_route` says why) or
    the arguments are out of range.

    >>> tokens = torch.tensor([[1, 5, 9, 2], [1, 7, 2, 2]])   # doctest: +SKIP
    >>> blocks = capture_attention_blocks(load_model(), tokens, torch.tensor([4, 2]), [0, 5])   # doctest: +SKIP
    >>> blocks.block(5, 2, 4).shape   # doctest: +SKIP
    torch.Size([2, 9, 2, 4])
    """
    shared = shared_hf_model(model)
    n_layers = int(shared.config.num_hidden_layers)
    wanted = sorted({int(layer) for layer in layers})
    if not wanted:
        raise InputError("no layers to capture", hint="pass at least one layer index")
    if wanted[0] < 0 or wanted[-1] >= n_layers:
        raise InputError(f"layer {wanted[0] if wanted[0] < 0 else wanted[-1]} is out of range",
                         hint=f"the model has layers 0..{n_layers - 1}")
    capture = _new_capture(shared, tokens, lengths, keep=frozenset(wanted), stop_after=wanted[-1])
    _run(shared, tokens, capture)
    return CapturedAttention(capture)


def logits_by_route(model: Any, tokens: Tensor, lengths: Tensor) -> Tensor:
    """The final logits `[batch, pos, vocab]` of a full run through the blockwise attention
    (nothing kept): on the real positions, the same as the bridge's own logits."""
    shared = shared_hf_model(model)
    return _run(shared, tokens, _new_capture(shared, tokens, lengths, keep=frozenset(), stop_after=None)).logits


def final_residual_by_route(model: Any, tokens: Tensor, lengths: Tensor) -> Tensor:
    """The last layer's output after the final norm `[batch, pos, d_model]` (the bridge's
    `ln_final.hook_out`), without the unembedding, whose cost a large vocabulary dominates."""
    shared = shared_hf_model(model)
    capture = _new_capture(shared, tokens, lengths, keep=frozenset(), stop_after=None)
    return _run(shared.base_model, tokens, capture).last_hidden_state


def _new_capture(shared: Any, tokens: Tensor, lengths: Tensor, *, keep: frozenset[int],
                 stop_after: int | None) -> _Capture:
    if not isinstance(tokens, Tensor) or tokens.ndim != 2 or tokens.is_floating_point() or tokens.numel() == 0:
        raise InputError("tokens must be a non-empty integer tensor [batch, pos]",
                         hint="right-pad the prompts' token ids into one tensor")
    lengths = torch.as_tensor(lengths)
    if lengths.shape != (tokens.shape[0],) or lengths.is_floating_point():
        raise InputError(f"lengths must be integers, one per prompt ({tokens.shape[0]}), "
                         f"not shape {tuple(lengths.shape)}", hint="pass each prompt's real length")
    if int(lengths.min()) < 1 or int(lengths.max()) > tokens.shape[1]:
        raise InputError(f"lengths must lie in 1..{tokens.shape[1]} (the padded length)",
                         hint="pass each prompt's real length, padding excluded")
    device = next(shared.parameters()).device
    return _Capture(lengths.to(device), keep, stop_after, {}, {}, {})


def _run(module: Any, tokens: Tensor, capture: _Capture) -> Any:
    """`module`'s output on `tokens` with `capture` active; None when it stopped in its last layer."""
    device = next(module.parameters()).device
    previous = getattr(_ACTIVE, "capture", None)
    _ACTIVE.capture = capture
    try:
        with torch.inference_mode():
            return module(input_ids=tokens.to(device), use_cache=False)
    except _StopCapture:
        return None
    finally:
        _ACTIVE.capture = previous
