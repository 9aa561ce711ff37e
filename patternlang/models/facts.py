"""One record of the facts about a model that the engine, the probes and the reports read.

`model_facts(model)` builds it from the model's `cfg` and tokenizer, once per model object
(rebuilt when the model has moved to another device or got another tokenizer). Anything
with `cfg.n_layers` and `cfg.n_heads` works: a TransformerLens bridge, a HookedTransformer,
the tiny test models.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from patternlang.errors import InputError

if TYPE_CHECKING:
    import torch

_FACTS: weakref.WeakKeyDictionary[Any, ModelFacts] = weakref.WeakKeyDictionary()
_QUANTISATION: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What patternlang needs to know about a model, read once.

    `device` is where the model's inputs go; `tokenizer` is None for a model that takes
    token ids only; `special_ids` are the tokenizer's special tokens (BOS, EOS, padding...),
    sorted; `pad_id` is the id used to right-pad batches (the tokenizer's pad id, else 0:
    padding is never attended by real tokens); `quantisation` says where quantised weights
    came from ("Q4_1 GGUF, de-quantised to float32" for the embedded model), None for
    weights loaded as they were saved. `n_ctx` and `d_vocab` are None when the model does
    not say.

    >>> facts = model_facts(load_model())   # doctest: +SKIP
    >>> (facts.n_layers, facts.n_heads, facts.bos_token_id, facts.quantisation)   # doctest: +SKIP
    (30, 9, 1, 'Q4_1 GGUF, de-quantised to float32')
    """

    name: str
    n_layers: int
    n_heads: int
    n_ctx: int | None
    d_vocab: int | None
    device: torch.device
    tokenizer: Any = None
    special_ids: tuple[int, ...] = ()
    pad_id: int = 0
    bos_token_id: int | None = None
    quantisation: str | None = None

    @property
    def described(self) -> str:
        """The name with where its weights came from, for scores, files and pictures:
        `HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF, de-quantised to float32)`."""
        return f"{self.name} ({self.quantisation})" if self.quantisation else self.name

    @property
    def shape(self) -> tuple[int, int]:
        """`(n_layers, n_heads)`, the shape of a score table."""
        return self.n_layers, self.n_heads

    @classmethod
    def of(cls, model: Any) -> ModelFacts:
        """The same as `model_facts(model)` (the spelling of the earlier `ModelInfo.of`)."""
        return model_facts(model)


def model_facts(model: Any) -> ModelFacts:
    """The facts about `model`, cached per model object.

    Raises `InputError` for an object that is not a TransformerLens-style model (no
    `cfg.n_layers` / `cfg.n_heads`).
    """
    cached = _cached(model)
    device = _device_of(model)
    tokenizer = getattr(model, "tokenizer", None)
    if cached is not None and cached.device == device and cached.tokenizer is tokenizer:
        return cached
    facts = _read_facts(model, device, tokenizer)
    try:
        _FACTS[model] = facts
    except TypeError:  # an object that cannot be weakly referenced is simply not cached
        pass
    return facts


model_info = model_facts
"""The earlier name of `model_facts`."""
ModelInfo = ModelFacts
"""The earlier name of `ModelFacts`."""


def record_quantisation(model: Any, description: str) -> None:
    """Note where a loaded model's quantised weights came from (called by `load_model`)."""
    _QUANTISATION[model] = description
    _FACTS.pop(model, None)


def model_name(model: Any) -> str:
    """The model's name for provenance: `cfg.model_name`, else its class name.

    >>> model_name(load_model())   # doctest: +SKIP
    'HuggingFaceTB/SmolLM2-135M-Instruct'
    """
    name = getattr(getattr(model, "cfg", None), "model_name", None)
    return str(name) if name else type(model).__name__


def tokenizer_of(model: Any) -> Any:
    """The model's tokenizer, or None when it has none (token-id prompts only)."""
    return getattr(model, "tokenizer", None)


def _cached(model: Any) -> ModelFacts | None:
    try:
        return _FACTS.get(model)
    except TypeError:
        return None


def _read_facts(model: Any, device: torch.device, tokenizer: Any) -> ModelFacts:
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        raise InputError(f"{type(model).__name__} is not a TransformerLens model: it has no cfg",
                         hint="load one with patternlang.models.load_model")
    try:
        n_layers, n_heads = int(cfg.n_layers), int(cfg.n_heads)
    except (AttributeError, TypeError, ValueError):
        raise InputError(f"{type(model).__name__} is not a TransformerLens model: its cfg has no "
                         "integer n_layers and n_heads",
                         hint="load one with patternlang.models.load_model") from None
    pad = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
    bos = getattr(tokenizer, "bos_token_id", None) if tokenizer is not None else None
    special = getattr(tokenizer, "all_special_ids", None) if tokenizer is not None else None
    try:
        quantisation = _QUANTISATION.get(model)
    except TypeError:
        quantisation = None
    return ModelFacts(
        name=model_name(model),
        n_layers=n_layers,
        n_heads=n_heads,
        n_ctx=_optional_int(getattr(cfg, "n_ctx", None)),
        d_vocab=_optional_int(getattr(cfg, "d_vocab", None)),
        device=device,
        tokenizer=tokenizer,
        special_ids=tuple(sorted({int(i) for i in special or ()})),
        pad_id=int(pad) if pad is not None else 0,
        bos_token_id=None if bos is None else int(bos),
        quantisation=quantisation,
    )


def _device_of(model: Any) -> torch.device:
    """Where the model's inputs go: `cfg.device`, else its first parameter's, else the CPU."""
    import torch

    device = getattr(getattr(model, "cfg", None), "device", None)
    if device is not None:
        return torch.device(device)
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")


def _optional_int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
