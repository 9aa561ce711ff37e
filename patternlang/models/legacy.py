"""TransformerLens legacy checkpoints: a `HookedTransformer` state dict (`.pt` / `.pth`) + its config.

The config is the `.json` of the same name (or `config.json`) beside the weights, the dict
the model was trained with. Three conversions make such a checkpoint load into
TransformerLens 4's native model with the same attention patterns:

- the state-dict keys and shapes (TransformerLens' `convert_tl_checkpoint`);
- rotary models: HookedTransformer rotates dimension `i` with `i + rotary_dim/2`, the
  native model `2i` with `2i+1` (`rotary_halves_to_pairs`);
- shortformer models (the ARENA attention-only models): built as "standard", then switched
  to the shortformer classes below (`make_shortformer`).
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patternlang.errors import ModelLoadError
from patternlang.models.loaders import cause, quiet_hf_loading
from patternlang.models.spec import ClaimedTarget, ModelLoader, ModelRequest
from patternlang.models.hub import hub_access

if TYPE_CHECKING:
    import torch

CHECKPOINT_SUFFIXES = (".pt", ".pth")
_REQUIRED_CONFIG_KEYS = ("d_model", "d_head", "n_layers", "n_ctx", "d_vocab")


def _claim_checkpoint(request: ModelRequest) -> ClaimedTarget | None:
    path = request.path
    return path if path is not None and path.is_file() and path.suffix.lower() in CHECKPOINT_SUFFIXES else None


def load_tl_checkpoint(target: ClaimedTarget, *, device: str, dtype: torch.dtype) -> Any:
    """A legacy HookedTransformer state dict and its JSON config, as a TransformerLens bridge."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

    path = Path(target)
    config_path = checkpoint_config_path(path)
    config = read_tl_config(config_path)
    positions = str(config.get("positional_embedding_type") or "standard").lower()
    shortformer = positions == "shortformer"
    if shortformer:
        # Built as a standard model, then switched to shortformer (make_shortformer).
        config["positional_embedding_type"] = "standard"
    try:
        bridge_config = TransformerBridgeConfig.from_dict(config)
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"{config_path}: not a valid TransformerLens config: {cause(exc)}") from exc

    state_dict = read_state_dict(path)
    tokenizer = _checkpoint_tokenizer(path, config.get("tokenizer_name"))
    try:
        bridge = TransformerBridge.boot_native(bridge_config, tokenizer=tokenizer, device=device, dtype=dtype,
                                               model_name=str(config.get("model_name") or path.stem))
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"TransformerLens cannot build the model described in {config_path}: "
                             f"{cause(exc)}") from exc
    if shortformer:
        make_shortformer(bridge)
    try:
        if any(key.endswith((".W_Q", ".W_E", ".W_U")) for key in state_dict):
            state_dict = {key: value for key, value in state_dict.items()
                          if not key.endswith((".rotary_sin", ".rotary_cos"))}  # recomputed from the config
            if positions == "rotary" and not config.get("rotary_adjacent_pairs", False):
                state_dict = rotary_halves_to_pairs(state_dict, config.get("rotary_dim") or config["d_head"])
            state_dict = convert_tl_checkpoint(state_dict, bridge.cfg)
        bridge.load_state_dict(state_dict, strict=True)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"the weights in {str(path)!r} do not match the config {config_path.name}: "
                             f"{cause(exc)}") from exc
    return bridge


TL_CHECKPOINT_LOADER = ModelLoader(
    source="tl_checkpoint",
    describes="a .pt/.pth TransformerLens state dict with its .json config beside it",
    claim=_claim_checkpoint,
    load=load_tl_checkpoint,
)


# ---------------------------------------------------------------------------
# Reading the files


def checkpoint_config_path(path: Path) -> Path:
    """The checkpoint's config: `model.json` beside `model.pt`, else `config.json` in its folder."""
    for candidate in (path.with_suffix(".json"), path.parent / "config.json"):
        if candidate.is_file():
            return candidate
    raise ModelLoadError(
        f"{str(path)!r} needs its TransformerLens config: no {path.with_suffix('.json').name} "
        f"(or config.json) beside it",
        hint="write the config dict the model was trained with (d_model, d_head, n_heads, n_layers, "
             f"n_ctx, d_vocab, ...) as JSON to {path.with_suffix('.json').name}")


def read_tl_config(path: Path) -> dict[str, Any]:
    """The checkpoint's config as a dict, checked for the keys every model needs."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelLoadError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path}: a TransformerLens config must be a JSON object, not {type(config).__name__}")
    missing = [key for key in _REQUIRED_CONFIG_KEYS if key not in config]
    if missing:
        raise ModelLoadError(f"{path}: the TransformerLens config lacks {', '.join(missing)}")
    # Written by the saving run and meaningless here: the caller picks device and dtype,
    # and the architecture is always TransformerLens' own.
    for key in ("device", "dtype", "architecture", "n_devices"):
        config.pop(key, None)
    return config


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors, read without unpickling code (`weights_only=True`)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise ModelLoadError(f"cannot read the checkpoint {str(path)!r}: {cause(exc)}",
                             hint="it must be a state dict saved with torch.save(model.state_dict(), path)") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{str(path)!r} does not hold a state dict (a dict of tensors)",
                             hint="save it with torch.save(model.state_dict(), path)")
    return state


def _checkpoint_tokenizer(path: Path, tokenizer_name: str | None) -> Any:
    """A tokenizer saved beside the checkpoint, else the config's `tokenizer_name`, else None."""
    from transformers import AutoTokenizer

    if (path.parent / "tokenizer_config.json").is_file() or (path.parent / "tokenizer.json").is_file():
        try:
            return AutoTokenizer.from_pretrained(path.parent)
        except Exception as exc:
            raise ModelLoadError(f"cannot read the tokenizer saved in {str(path.parent)!r}: {cause(exc)}") from exc
    if tokenizer_name:
        try:
            with hub_access(), quiet_hf_loading():  # an unreachable hub fails at once, without retries
                return AutoTokenizer.from_pretrained(tokenizer_name)
        except Exception as exc:
            warnings.warn(f"{path.name}: could not load its tokenizer {tokenizer_name!r} ({cause(exc)}); "
                          "only token-id prompts (such as repeated_random) will work", stacklevel=4)
    return None


# ---------------------------------------------------------------------------
# Rotary layout


def rotary_halves_to_pairs(state_dict: dict[str, torch.Tensor], rotary_dim: int) -> dict[str, torch.Tensor]:
    """Reorder query and key dimensions from HookedTransformer's rotary layout to the native one.

    HookedTransformer (by default) rotates dimension `i` with `i + rotary_dim/2`; the native
    model rotates `2i` with `2i+1`, at the same frequency. Moving dimensions `i` and
    `i + rotary_dim/2` of every query and key to `2i` and `2i+1` gives the same scores.
    """
    import torch

    half = rotary_dim // 2
    pairs = torch.stack([torch.arange(half), torch.arange(half) + half], dim=-1).reshape(-1)
    converted = {}
    for key, tensor in state_dict.items():
        if key.endswith((".W_Q", ".W_K", "._W_K", ".b_Q", ".b_K", "._b_K")):
            order = torch.cat([pairs, torch.arange(rotary_dim, tensor.shape[-1])])
            tensor = tensor[..., order]
        converted[key] = tensor
    return converted


# ---------------------------------------------------------------------------
# Shortformer positions
#
# HookedTransformer's "shortformer" models add the position embedding to the inputs of the
# queries and keys only, after `ln1`, and never to the residual stream; the values and the
# residual see token embeddings alone. TransformerLens 4 builds native models with "standard"
# or "rotary" positions only, so the loader builds a "standard" model and `make_shortformer`
# switches its classes to the two below, which differ from TransformerLens' own only where
# shortformer differs. The classes subclass TransformerLens' and are built on first use, so
# importing this module does not import TransformerLens.


@lru_cache(maxsize=1)
def shortformer_classes() -> tuple[type, type]:
    """`(ShortformerAttention, ShortformerModel)`, subclasses of TransformerLens' native ones."""
    import torch
    import torch.nn.functional as F
    from transformer_lens.model_bridge.sources.native.model import NativeAttention, NativeModel
    from transformer_lens.utilities.activation_functions import apply_softcap

    class ShortformerAttention(NativeAttention):
        """`NativeAttention` whose queries and keys read `ln1(resid) + pos_embed`."""

        def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                    position_ids: torch.Tensor | None = None, pattern_fn: Any = None,
                    **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
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

        def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                    position_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                    **kwargs: Any) -> torch.Tensor:
            if input_ids is not None and inputs_embeds is None:
                model_input, hidden_states = input_ids, self.tok_embed(input_ids)
            elif inputs_embeds is not None and input_ids is None:
                model_input = hidden_states = inputs_embeds
            else:
                raise ValueError("Exactly one of input_ids or inputs_embeds must be provided.")
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

    return ShortformerAttention, ShortformerModel


def make_shortformer(bridge: Any) -> None:
    """Switch a bridge built by `boot_native` with standard positions to shortformer ones."""
    from transformer_lens.model_bridge.sources.native.model import NativeAttention, NativeModel

    attention_class, model_class = shortformer_classes()
    model = bridge.original_model
    if type(model) is not NativeModel:
        raise TypeError(f"expected a TransformerLens NativeModel, got {type(model).__name__}")
    attentions = [module for module in model.modules() if type(module) is NativeAttention]
    if len(attentions) != model.cfg.n_layers:
        raise TypeError(f"found {len(attentions)} attention layers in a {model.cfg.n_layers}-layer model")
    for attention in attentions:
        attention.__class__ = attention_class
        attention.shortformer_pos_embed = None
    model.__class__ = model_class
    model.__dict__["_shortformer_attentions"] = attentions  # a plain list: not submodules twice
    bridge.cfg.positional_embedding_type = "shortformer"
