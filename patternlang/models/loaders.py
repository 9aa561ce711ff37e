"""The loaders for the embedded model, GGUF files, Hugging Face folders and hub names.

Each is a `ModelLoader` entry (what it claims, how it loads); `registry.py` puts them in
order. TransformerLens' own legacy checkpoints have their loader in `legacy.py`.
transformers and TransformerLens are imported inside the loaders, on first use.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from patternlang.errors import ModelLoadError
from patternlang.models.embedded import (DEFAULT_MODEL_NAME, EMBEDDED_QUANTISATION, embedded_model_path,
                                         is_embedded_name)
from patternlang.models.names import (is_near_embedded_name, known_hub_names, official_hub_name, suggest_model_name,
                                      with_suggestion)
from patternlang.models.spec import ClaimedTarget, ModelLoader, ModelRequest

# Hub families stored in the pre-HF TransformerLens format; TransformerLens has a
# dedicated loader for them.
TL_LEGACY_PREFIXES = ("NeelNanda/", "ArthurConmy/", "Baidicoot/")
GGUF_SUFFIX = ".gguf"
HF_CONFIG_FILE = "config.json"


# ---------------------------------------------------------------------------
# The embedded model


def _claim_embedded(request: ModelRequest) -> ClaimedTarget | None:
    if request.is_default or (request.text is not None and is_embedded_name(request.text)):
        return DEFAULT_MODEL_NAME
    return None


def _load_embedded(target: ClaimedTarget, *, device: str, dtype: torch.dtype) -> Any:
    return load_gguf(embedded_model_path(), device=device, dtype=dtype, model_name=DEFAULT_MODEL_NAME)


EMBEDDED_LOADER = ModelLoader(
    source="embedded",
    describes="no name, 'smollm2' or 'SmolLM2-135M-Instruct': the embedded SmolLM2-135M-Instruct",
    claim=_claim_embedded,
    load=_load_embedded,
    quantisation=EMBEDDED_QUANTISATION,
)


# ---------------------------------------------------------------------------
# GGUF files


def _claim_gguf(request: ModelRequest) -> ClaimedTarget | None:
    path = request.path
    return path if path is not None and path.is_file() and path.suffix.lower() == GGUF_SUFFIX else None


def load_gguf(target: ClaimedTarget, *, device: str, dtype: torch.dtype, model_name: str | None = None) -> Any:
    """A GGUF checkpoint, de-quantized by transformers, wrapped by TransformerLens.

    The de-quantized weights are cached on disk (`weights_cache`): the first load takes tens
    of seconds and says so, later ones read the cache in a few."""
    from patternlang.models import weights_cache

    path = Path(target)
    entry = loaded = None
    if weights_cache.enabled():
        try:
            entry = weights_cache.entry_for(path, str(dtype).removeprefix("torch."))
        except OSError:
            entry = None  # an unreadable file fails below with the loader's own message
        if entry is not None:
            with quiet_hf_loading():
                loaded = weights_cache.load_cached(entry, dtype)
    if loaded is None:
        started = time.perf_counter()
        weights_cache.say(f"de-quantising {path.name} (the first load takes a while; later ones read a cache)")
        loaded = _read_gguf(path, dtype)
        seconds = time.perf_counter() - started
        if entry is not None and weights_cache.save(entry, *loaded):
            weights_cache.say(f"de-quantised in {seconds:.0f} s; cached in {entry}")
        else:
            weights_cache.say(f"de-quantised in {seconds:.0f} s")
    hf_model, tokenizer = loaded
    return _boot_transformers(model_name or str(path), hf_model, tokenizer, device=device, dtype=dtype)


def _read_gguf(path: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with quiet_hf_loading():
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            hf_model = AutoModelForCausalLM.from_pretrained(
                path.parent, gguf_file=path.name, attn_implementation="eager", dtype=dtype)
    except Exception as exc:  # transformers raises many kinds; the cause goes into the message
        raise ModelLoadError(f"could not read the GGUF model {str(path)!r}: {cause(exc)}") from exc
    return hf_model, tokenizer


GGUF_LOADER = ModelLoader(
    source="gguf",
    describes="a .gguf file (de-quantized to float)",
    claim=_claim_gguf,
    load=load_gguf,
    quantisation="GGUF",
)


# ---------------------------------------------------------------------------
# Hugging Face checkpoint folders


def _claim_hf_directory(request: ModelRequest) -> ClaimedTarget | None:
    path = request.path
    return path if path is not None and path.is_dir() and (path / HF_CONFIG_FILE).is_file() else None


def _load_hf_directory(target: ClaimedTarget, *, device: str, dtype: torch.dtype) -> Any:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(target)
    try:
        with quiet_hf_loading():
            hf_model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager", dtype=dtype)
    except Exception as exc:
        raise ModelLoadError(f"could not load the Hugging Face checkpoint in {str(path)!r}: {cause(exc)}") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as exc:
        raise ModelLoadError(f"the checkpoint in {str(path)!r} has no usable tokenizer: {cause(exc)}",
                             hint="save one beside the weights with tokenizer.save_pretrained(dir)") from exc
    # The directory itself is the model's name: with the weights already loaded, TransformerLens
    # only records it (and adapters that patch remote code read that code from the directory),
    # so nothing is fetched from the hub.
    return _boot_transformers(str(path), hf_model, tokenizer, device=device, dtype=dtype)


HF_DIRECTORY_LOADER = ModelLoader(
    source="hf_directory",
    describes="a folder with config.json (a Hugging Face checkpoint from save_pretrained)",
    claim=_claim_hf_directory,
    load=_load_hf_directory,
)


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
                             f"{cause(exc)}") from exc


# ---------------------------------------------------------------------------
# Names on the Hugging Face hub


def _claim_hub_name(request: ModelRequest) -> ClaimedTarget | None:
    """A name TransformerLens knows (aliases resolved), or any `owner/name` repository.

    A bare name (no owner) that TransformerLens does not know is left unclaimed, so it fails
    at once with a did-you-mean: every bare name on the hub is a legacy one TransformerLens
    lists. An unknown `owner/name` cannot be judged a typo offline (about one real repository
    in seven is two letters away from a sibling), so it goes to the hub, whose failure
    message carries the did-you-mean; only a near-miss of the embedded model's own name
    is left unclaimed. Without TransformerLens' registry nothing can be judged, and every
    name goes to the hub.
    """
    if request.path is not None or request.text is None:
        return None
    official = official_hub_name(request.text)
    if official is not None:
        return official
    if is_near_embedded_name(request.text):
        return None
    owner, slash, repository = request.text.partition("/")
    if slash and owner and repository and "/" not in repository:
        return request.text
    return None if known_hub_names() else request.text


def _load_from_hub(target: ClaimedTarget, *, device: str, dtype: torch.dtype) -> Any:
    from transformer_lens.model_bridge import TransformerBridge

    name = str(target)
    try:
        with quiet_hf_loading():
            if name.startswith(TL_LEGACY_PREFIXES):
                return TransformerBridge.boot_tl_legacy(name, device=device, dtype=dtype)
            return TransformerBridge.boot_transformers(name, device=device, dtype=dtype)
    except Exception as exc:
        if _is_download_error(exc):
            suggestion = suggest_model_name(name) if official_hub_name(name) is None else None
            raise ModelLoadError(
                f"could not download {name!r} from the Hugging Face hub: {cause(exc)}",
                hint=with_suggestion(suggestion, "check the model name and your connection, "
                                                 "or pass a local checkpoint directory / .pt file"),
            ) from exc
        raise ModelLoadError(f"could not load {name!r} from the Hugging Face hub: {cause(exc)}",
                             hint="check that TransformerLens supports this architecture") from exc


def _is_download_error(exc: BaseException) -> bool:
    # huggingface_hub's errors derive from OSError (or requests' ConnectionError, an OSError too).
    return isinstance(exc, (OSError, ConnectionError)) or type(exc).__module__.startswith("huggingface_hub")


HUB_LOADER = ModelLoader(
    source="hub",
    describes="a model name on the Hugging Face hub ('gpt2', 'EleutherAI/pythia-70m', a TransformerLens alias)",
    claim=_claim_hub_name,
    load=_load_from_hub,
)


# ---------------------------------------------------------------------------
# Helpers shared with legacy.py


@contextlib.contextmanager
def quiet_hf_loading() -> Iterator[None]:
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


def cause(exc: BaseException, limit: int = 600) -> str:
    """An exception as one line for a message: its type, then its text cut to `limit` characters."""
    text = " ".join(str(exc).split())
    if len(text) > limit:  # load_state_dict lists every mismatched key
        text = text[:limit] + " ..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
