"""Turning a user's `--model` argument (text, a `Path`, or nothing) into a `ModelSpec`.

Nothing is loaded: the argument is examined once (`model_request`), then the registry's
loaders are asked in order (`registry.py`); the first that claims it decides. What no
loader claims is a `ModelLoadError` saying why, with a did-you-mean for misspelt names.
"""

from __future__ import annotations

from pathlib import Path

from patternlang.errors import ModelLoadError
from patternlang.models.embedded import is_embedded_name
from patternlang.models.names import suggest_model_name, with_suggestion
from patternlang.models.registry import model_loaders
from patternlang.models.spec import ModelRequest, ModelSpec

# Text that names a file or folder, never a hub model ("gpt2", "EleutherAI/pythia-70m").
_PATH_SUFFIXES = (".pt", ".pth", ".gguf", ".json", ".safetensors", ".bin")
_NAME_SOURCES = ("embedded", "hub")  # loaders that read names, not files: left out of file hints
_LOCAL_HINT = ("pass a Hugging Face checkpoint directory, a .pt file with its .json config, "
               "a .gguf file, or a model name on the hub")


def resolve_model_spec(name: str | Path | None = None) -> ModelSpec:
    """Decide which loader a model name needs, checking local paths exist.

    >>> resolve_model_spec(None).source
    'embedded'
    >>> resolve_model_spec("gpt2")
    ModelSpec(source='hub', target='gpt2')
    """
    request = model_request(name)
    for loader in model_loaders():
        target = loader.claim(request)
        if target is not None:
            return ModelSpec(loader.source, target)
    raise _unclaimed(request)


def check_model_name(name: str) -> None:
    """Fail at once on a model name that no loader claims (a `ModelLoadError` with a
    did-you-mean); needs neither torch nor the network. Paths, missing ones included, are left
    to `resolve_model_spec` when the model loads, so that they are reported in their turn."""
    text = name.strip()
    if not text or is_embedded_name(text) or _looks_like_path(text) or Path(text).expanduser().exists():
        return
    resolve_model_spec(text)


def model_request(name: str | Path | None) -> ModelRequest:
    """Examine a model argument: a name, an existing path, or an error for a path that is not there.

    A name of the embedded model stays a name even where a folder of that name exists.
    """
    if name is None:
        return ModelRequest()
    if isinstance(name, str):
        text = name.strip()
        if not text:
            raise ModelLoadError("the model name is empty",
                                 hint="leave it out to use the embedded SmolLM2-135M-Instruct")
        if is_embedded_name(text):
            return ModelRequest(text=text)
        path = Path(text).expanduser()
        if not path.exists():
            if _looks_like_path(text):
                raise _missing_path(path)
            return ModelRequest(text=text)
        return ModelRequest(text=text, path=path.resolve())
    if isinstance(name, Path):
        path = name.expanduser()
        if not path.exists():
            raise _missing_path(path)
        return ModelRequest(path=path.resolve())
    raise ModelLoadError(f"a model name must be a string or a path, not {type(name).__name__}")


def _looks_like_path(text: str) -> bool:
    return (text.startswith((".", "/", "~", "\\"))
            or "\\" in text
            or text.count("/") > 1
            or text.lower().endswith(_PATH_SUFFIXES))


def _missing_path(path: Path) -> ModelLoadError:
    return ModelLoadError(f"no such file or directory: {str(path)!r}", hint=_LOCAL_HINT)


def _unclaimed(request: ModelRequest) -> ModelLoadError:
    """Why no loader took the request, in the user's terms."""
    path = request.path
    if path is not None and path.is_dir():
        return ModelLoadError(
            f"directory {str(path)!r} has no config.json, so it is not a Hugging Face checkpoint",
            hint="save one with model.save_pretrained(dir) and tokenizer.save_pretrained(dir); "
                 "for a TransformerLens checkpoint pass the .pt file itself")
    if path is not None:
        suffix = path.suffix.lower()
        return ModelLoadError(f"cannot load a model from {str(path)!r}: unknown file type {suffix or '(none)'!r}",
                              hint="pass " + "; or ".join(loader.describes for loader in model_loaders()
                                                          if loader.source not in _NAME_SOURCES))
    text = request.text or ""
    suggestion = suggest_model_name(text)
    return ModelLoadError(
        f"unknown model name {text!r}: it is not a name patternlang or TransformerLens knows, "
        "nor a file or folder here",
        hint=with_suggestion(suggestion, "name a hub repository as owner/name (e.g. 'openai-community/gpt2'), "
                                         "a local checkpoint, or leave --model out for the embedded "
                                         "SmolLM2-135M-Instruct"))
