"""`load_model`: resolve the name, check device and dtype, load once per process.

The same resolved model, device and dtype give the same object until `clear_model_cache()`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from patternlang.collector import collector_paused
from patternlang.errors import ModelLoadError
from patternlang.models.facts import record_quantisation
from patternlang.models.registry import model_loader
from patternlang.models.resolve import resolve_model_spec

if TYPE_CHECKING:
    import torch

_MODEL_CACHE: dict[tuple[str, str, str, str], Any] = {}

# Spellings of a dtype -> the name of the torch.dtype (torch is imported on first use).
_DTYPES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float64": "float64", "fp64": "float64", "double": "float64",
}


def load_model(name: str | Path | None = None, *, device: str | torch.device | None = None,
               dtype: torch.dtype | str | None = None) -> Any:
    """Load a model for scoring, or return the one already loaded with these arguments.

    `device` defaults to TransformerLens' choice (CUDA when available, else CPU); `dtype`
    to float32. Raises `ModelLoadError` with the cause when the model cannot be loaded.

    >>> model = load_model()                       # embedded SmolLM2-135M-Instruct  # doctest: +SKIP
    >>> model = load_model("checkpoints/my-gpt")   # a save_pretrained directory    # doctest: +SKIP
    >>> model = load_model("attn_only_2L.pth")     # + attn_only_2L.json beside it  # doctest: +SKIP
    >>> model = load_model("gpt2", device="cuda")  # from the Hugging Face hub      # doctest: +SKIP
    """
    spec = resolve_model_spec(name)
    with collector_paused():  # the first call imports torch, transformers and TransformerLens
        torch_dtype = as_dtype(dtype)
        device_name = as_device(device)
        key = (spec.source, str(spec.target), device_name, str(torch_dtype))
        model = _MODEL_CACHE.get(key)
        if model is None:
            model = _load(spec, device_name, torch_dtype)
            _MODEL_CACHE[key] = model
    return model


def _load(spec: Any, device_name: str, torch_dtype: torch.dtype) -> Any:
    loader = model_loader(spec.source)
    model = loader.load(spec.target, device=device_name, dtype=torch_dtype)
    modules = getattr(model, "modules", None)
    if modules is None or any(module.training for module in modules()):  # eval() costs a bridge 0.06 s
        model.eval()
    if loader.quantisation is not None:
        dtype_name = str(torch_dtype).removeprefix("torch.")
        record_quantisation(model, f"{loader.quantisation}, de-quantised to {dtype_name}")
    return model


def clear_model_cache() -> None:
    """Forget every loaded model (the next `load_model` loads afresh)."""
    _MODEL_CACHE.clear()


def as_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    """A dtype argument as a `torch.dtype`: None is float32; names such as "bf16" are accepted."""
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        key = dtype.strip().lower().removeprefix("torch.")
        if key in _DTYPES:
            return getattr(torch, _DTYPES[key])
    raise ModelLoadError(f"unknown dtype {dtype!r}",
                         hint="use float32, float16 or bfloat16 (or a torch.dtype)")


def as_device(device: str | torch.device | None) -> str:
    """A device argument checked against this machine: None is TransformerLens' choice."""
    import torch

    if device is None:
        from transformer_lens.utilities import get_device

        return str(get_device())
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelLoadError(f"unknown device {device!r}: {exc}",
                             hint="use 'cpu', 'cuda', 'cuda:1' or 'mps'") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} asked for, but this torch sees no CUDA GPU",
                             hint="use --device cpu, or install a CUDA build of torch on a GPU machine")
    if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise ModelLoadError(f"device {device!r} does not exist: {torch.cuda.device_count()} GPU(s) visible")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(f"device {device!r} asked for, but MPS is not available here", hint="use --device cpu")
    return str(chosen)
