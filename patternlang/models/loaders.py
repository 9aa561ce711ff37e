"""The loaders for the embedded model, GGUF files, Hugging Face folders and hub names.

Each is a `ModelLoader` entry (what it claims, how it loads); `registry.py` puts them in
order. TransformerLens' own legacy checkpoints have their loader in `legacy.py`.
torch, transformers and TransformerLens are imported inside the loaders, on first use, so that
resolving a name (and failing on a mistyped one) takes no time.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patternlang.errors import ModelLoadError
from patternlang.models.embedded import (DEFAULT_MODEL_NAME, EMBEDDED_QUANTISATION, embedded_model_path,
                                         is_embedded_name)
from patternlang.models.names import (is_near_embedded_name, known_hub_names, official_hub_name, suggest_model_name,
                                      with_suggestion)
from patternlang.models import weights_cache
from patternlang.models.hub import hub_access, unreachable_reason
from patternlang.models.spec import ClaimedTarget, ModelLoader, ModelRequest

if TYPE_CHECKING:
    import torch

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
        dtype_name = str(dtype).removeprefix("torch.")
        weights_cache.say(f"de-quantising {path.name} to {dtype_name} ({_cold_load_note(path, entry)})")
        loaded = _read_gguf(path, dtype)
        seconds = time.perf_counter() - started
        if entry is not None and weights_cache.save(entry, *loaded):
            weights_cache.say(f"de-quantised {path.name} in {seconds:.1f} s; cached in {entry}")
        else:
            weights_cache.say(f"de-quantised {path.name} in {seconds:.1f} s")
    hf_model, tokenizer = loaded
    return _boot_transformers(model_name or str(path), hf_model, tokenizer, device=device, dtype=dtype)


# De-quantising runs at about 4 MB of GGUF file a second on one core of a 2-core machine
# (the embedded 98 MB Q4_1 file: about 25 s).
_GGUF_MB_PER_SECOND = 4.0


def _cold_load_note(path: Path, entry: Path | None) -> str:
    """What the first load of a GGUF file costs, and what happens afterwards, for the message."""
    try:
        seconds = max(5, 5 * round(path.stat().st_size / 2**20 / _GGUF_MB_PER_SECOND / 5))
    except OSError:
        seconds = None
    estimate = f"about {seconds:.0f} s on a 2-core machine" if seconds else "this takes a while"
    if entry is None:
        return f"{estimate}; the weights cache is off, so every load does this"
    return f"first load of this file, {estimate}; cached afterwards in {entry.parent}"


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
    name = str(target)
    # Whether the hub answers is asked once, first: unreachable, huggingface_hub would retry
    # every request for some 40 s; here it is put in offline mode, so that only a model in
    # the local Hugging Face cache loads, and anything else fails at once.
    with hub_access() as state:
        if state != "online" and not name.startswith(TL_LEGACY_PREFIXES) and not _in_hf_cache(name):
            raise _hub_unreachable(name, state)  # before TransformerLens is imported: at once
        from transformer_lens.model_bridge import TransformerBridge

        try:
            with quiet_hf_loading():
                if name.startswith(TL_LEGACY_PREFIXES):
                    return TransformerBridge.boot_tl_legacy(name, device=device, dtype=dtype)
                return TransformerBridge.boot_transformers(name, device=device, dtype=dtype)
        except Exception as exc:
            if _is_download_error(exc):
                if state != "online":
                    raise _hub_unreachable(name, state) from exc
                raise ModelLoadError(
                    f"could not download {name!r} from the Hugging Face hub: {cause(exc)}",
                    hint=with_suggestion(_typo_hint(name), "check the model name and your connection, "
                                                           "or pass a local checkpoint directory / .pt file"),
                ) from exc
            raise ModelLoadError(f"could not load {name!r} from the Hugging Face hub: {cause(exc)}",
                                 hint="check that TransformerLens supports this architecture") from exc


def _in_hf_cache(name: str) -> bool:
    """True when the local Hugging Face cache holds the repository's config.json."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, HF_CONFIG_FILE), str)
    except Exception:  # a name the hub would refuse, or no huggingface_hub: let the loader say
        return True


def _hub_unreachable(name: str, state: str) -> ModelLoadError:
    return ModelLoadError(
        f"could not download {name!r} from the Hugging Face hub: {unreachable_reason(state)}, "
        "and it is not in the local Hugging Face cache",
        hint=with_suggestion(_typo_hint(name), "pass a local checkpoint directory, a .pt or .gguf file, or leave "
                                               "the model out for the embedded SmolLM2-135M-Instruct"))


def _typo_hint(name: str) -> str | None:
    return suggest_model_name(name) if official_hub_name(name) is None else None


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
