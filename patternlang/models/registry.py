"""The model-loader registry: every loader patternlang knows, in the order they are asked.

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

MODEL_LOADERS: list[ModelLoader] = [
    EMBEDDED_LOADER,
    HF_DIRECTORY_LOADER,
    TL_CHECKPOINT_LOADER,
    GGUF_LOADER,
    GEMMA_LOADER,
    HUB_LOADER,
]
"""The registered loaders, in the order `resolve_model_spec` asks them."""


def model_loaders() -> tuple[ModelLoader, ...]:
    """The registered loaders, in resolution order."""
    return tuple(MODEL_LOADERS)


def model_loader(source: str) -> ModelLoader:
    """The registered loader called `source` (a `ModelSpec.source`)."""
    for loader in MODEL_LOADERS:
        if loader.source == source:
            return loader
    registered = ", ".join(loader.source for loader in MODEL_LOADERS)
    raise KeyError(f"no model loader called {source!r}; registered: {registered}")


def register_model_loader(loader: ModelLoader, *, before: str | None = None) -> ModelLoader:
    """Add a loader, asked before the one called `before` (by default, last).

    Raises `ValueError` when a loader with the same `source` is already registered or
    `before` names none.
    """
    if any(existing.source == loader.source for existing in MODEL_LOADERS):
        raise ValueError(f"a model loader called {loader.source!r} is already registered")
    if before is None:
        MODEL_LOADERS.append(loader)
        return loader
    sources = [existing.source for existing in MODEL_LOADERS]
    if before not in sources:
        raise ValueError(f"cannot register {loader.source!r} before {before!r}: no loader has that name "
                         f"(registered: {', '.join(sources)})")
    MODEL_LOADERS.insert(sources.index(before), loader)
    return loader
