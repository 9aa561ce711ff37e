"""The model-loader registry (a `Registry` keyed by `source`): every loader patternlang knows, in the order
they are asked.

`resolve_model_spec` walks this list and the first loader whose `claim` returns a target
reads the model. The order is the rule for ambiguous input:

1. the embedded model: no name, or one of its names (even if a folder of that name exists);
2. local files and folders: a Hugging Face folder, a TransformerLens `.pt`/`.pth`
   checkpoint, a `.gguf` file;
3. a name on the Hugging Face hub.

Adding a loader is one entry:

    >>> from patternlang.models import ModelLoader, register_model_loader   # doctest: +SKIP
    >>> register_model_loader(ModelLoader(                                  # doctest: +SKIP
    ...     source="safetensors", describes="a .safetensors file",
    ...     claim=lambda request: request.path if request.path and request.path.suffix == ".safetensors" else None,
    ...     load=load_safetensors), before="hub")
"""

from __future__ import annotations

from patternlang.models.gemma import GEMMA_LOADER
from patternlang.models.legacy import TL_CHECKPOINT_LOADER
from patternlang.models.loaders import EMBEDDED_LOADER, GGUF_LOADER, HF_DIRECTORY_LOADER, HUB_LOADER
from patternlang.models.spec import ModelLoader
from patternlang.registry import Registry

MODEL_LOADERS: Registry[ModelLoader] = Registry("model loader", key="source")
"""The registered loaders, in the order `resolve_model_spec` asks them."""
for _loader in (EMBEDDED_LOADER, HF_DIRECTORY_LOADER, TL_CHECKPOINT_LOADER, GGUF_LOADER, GEMMA_LOADER, HUB_LOADER):
    MODEL_LOADERS.register(_loader)
del _loader


def model_loaders() -> tuple[ModelLoader, ...]:
    """The registered loaders, in resolution order (read live)."""
    return MODEL_LOADERS.entries()


def model_loader(source: str) -> ModelLoader:
    """The registered loader called `source` (a `ModelSpec.source`); `UnknownNameError` with a did-you-mean
    when none is."""
    return MODEL_LOADERS.get(source)


def register_model_loader(loader: ModelLoader, *, before: str | None = None) -> ModelLoader:
    """Add a loader, asked before the one called `before` (by default, last).

    Raises `ValueError` when a loader with the same `source` is already registered or
    `before` names none.
    """
    return MODEL_LOADERS.register(loader, before=before)
