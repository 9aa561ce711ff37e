"""Tokenizing prompts the TransformerLens way, with or without a loaded model."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import InputError
from .models.embedded import embedded_model_path
from .models import resolve_model_spec
from .models.weights_cache import cache_folder
from .prompts import check_token_ids, split_prompts


def _cache_dir() -> Path:
    return cache_folder("tokenizers") / "SmolLM2-135M-Instruct"


@lru_cache(maxsize=1)
def default_tokenizer() -> Any:
    """The embedded model's tokenizer, without loading the model.

    Reading it out of the GGUF file takes seconds, so the first call saves it in the user's
    cache folder (~/.cache/patternlang) and later calls read that.
    """
    from transformers import AutoTokenizer

    cache = _cache_dir()
    if (cache / "tokenizer_config.json").is_file():
        try:
            return AutoTokenizer.from_pretrained(cache)
        except Exception:  # a stale or broken cache is rebuilt below
            pass
    gguf = embedded_model_path()  # a ModelLoadError saying how to install it when it is missing
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(cache)
    except OSError:
        pass  # a read-only home only costs speed
    return tokenizer


def tokenize_prompt(text: str, *, model: Any = None, prepend_bos: bool = True) -> tuple[list[int], list[str]]:
    """Token ids and token strings of one prompt; BOS is prepended like TransformerLens does."""
    if model is not None:
        if getattr(model, "tokenizer", None) is None:
            raise InputError("this model has no tokenizer, so it cannot read a prompt as text",
                             hint='write the tokens out with --tokens "a b c", or save a tokenizer beside the model')
        ids = model.to_tokens(text, prepend_bos=prepend_bos, truncate=False)[0].tolist()
        return ids, token_texts(model.tokenizer, ids, text=text)
    tokenizer = default_tokenizer()
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if prepend_bos and tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id] + ids
    return ids, token_texts(tokenizer, ids, text=text)


REPLACEMENT_CHARACTER = "\ufffd"


def token_texts(tokenizer: Any, ids: list[int], text: str | None = None) -> list[str]:
    """Each token's text as the tokenizer decodes it on its own.

    SentencePiece tokenizers (Llama, Mistral, Gemma) mark a word start with "▁" but drop the
    space when a lone token is decoded; the space is put back, so that `str[k]` and word starts
    read the same for every tokenizer (" cat", as GPT-2's decoding gives it).

    A character split over several tokens (byte-level BPE or byte fallback: Japanese, emoji,
    Greek) decodes to "�" token by token. Such tokens read what the run of pieces decodes to
    together, so each of the tokens of "日" reads "日" (and of " 🎉", " 🎉"). This is computed
    from the ids alone, so a prompt given as text or as the same token ids reads the same
    (`text` is accepted and not needed).
    """
    texts = [tokenizer.decode([i]) for i in ids]
    pieces = tokenizer.convert_ids_to_tokens(list(ids))
    texts = [" " + text if isinstance(piece, str) and piece.startswith("\u2581") and not text[:1].isspace()
             else text for text, piece in zip(texts, pieces)]
    if any(REPLACEMENT_CHARACTER in t for t in texts):
        texts = _texts_from_neighbours(tokenizer, ids, texts)
    return texts


MAX_PIECES = 64
"""The longest run of tokens read together: byte pieces can chain characters (a token holding the
end of one character and the start of the next), so a run may span several characters."""


def _texts_from_neighbours(tokenizer: Any, ids: list[int], texts: list[str]) -> list[str]:
    """Tokens that still read "�" (no text, or no offsets): each run of tokens that decodes whole
    only together (the pieces of one character) reads what the run decodes to, as the text route
    gives each piece the character its offsets cover; so `str[k]` is the same either way."""
    fixed = list(texts)
    start = 0
    while start < len(ids):
        if REPLACEMENT_CHARACTER not in fixed[start]:
            start += 1
            continue
        for end in range(start + 2, min(len(ids), start + MAX_PIECES) + 1):
            whole = tokenizer.decode(list(ids[start:end]))
            if REPLACEMENT_CHARACTER not in whole:
                fixed[start:end] = [whole] * (end - start)
                start = end
                break
        else:
            start += 1
    return fixed


def token_offsets(tokenizer: Any, ids: list[int], text: str) -> list[tuple[int, int]] | None:
    """Each token's character span `(start, end)` in `text`, from the tokenizer's offsets.

    Tokens before the text's own (a prepended BOS) get `(0, 0)`. None when the tokenizer gives
    no offsets (a slow tokenizer) or its encoding of `text` is not the end of `ids`."""
    try:
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, TypeError, ValueError):  # a slow tokenizer has no offsets
        return None
    encoded, spans = list(encoding["input_ids"]), encoding["offset_mapping"]
    start = len(ids) - len(encoded)  # a prepended BOS comes first
    if start < 0 or list(ids[start:]) != encoded:
        return None
    return [(0, 0)] * start + [(int(begin), int(end)) for begin, end in spans]




def prompt_token_offsets(tokenizer: Any, items: Any, token_lists: Any, *, pattern: str, reads: str,
                         hint: str) -> list[list[tuple[int, int]]]:
    """Each prompt's token character spans (`token_offsets`), for a pattern that needs them.

    Token-id prompts have none, nor has a tokenizer without offsets: that is an `InputError`
    naming the pattern, what it `reads` and the prompt, before any forward pass."""

    offsets = []
    for index, item in enumerate(split_prompts(items)):
        spans = None
        if isinstance(item, str) and tokenizer is not None:
            spans = token_offsets(tokenizer, token_lists[index].tolist(), item)
        if spans is None:
            why = "is token ids" if not isinstance(item, str) else "has no offsets from the tokenizer"
            raise InputError(f"pattern {pattern!r} reads {reads}, but prompt {index} {why}", hint=hint)
        offsets.append(spans)
    return offsets

def default_special_ids() -> tuple[int, ...]:
    """The embedded tokenizer's special token ids, sorted (a loaded model's are in `model_facts`)."""
    return tuple(sorted({int(i) for i in getattr(default_tokenizer(), "all_special_ids", None) or ()}))


def vocabulary_size_before_loading(model_name: str | Path | None) -> int | None:
    """The vocabulary size of the model `model_name` names, where it is known without loading the model.

    Known for the embedded model (its tokenizer is read alone, and cached on disk); None
    for other models, whose token ids are checked once the model is loaded.
    """

    try:
        embedded = resolve_model_spec(model_name).source == "embedded"
    except InputError:
        return None  # load_model reports a bad name
    if not embedded:
        return None
    try:
        return len(default_tokenizer())
    except Exception:  # noqa: BLE001 - any failure here only moves the check to after the model loads
        return None


def check_token_ids_before_loading(prompts: Any, model_name: str | Path | None) -> None:
    """Check token-id prompts (a `Prompts`) against the named model's vocabulary before it loads, where possible.

    Text prompts and models whose vocabulary is unknown before loading pass; the engine
    checks them again after tokenizing, before the forward pass.
    """

    if getattr(prompts, "tokens", None) is None:
        return
    d_vocab = vocabulary_size_before_loading(model_name)
    if d_vocab is not None:
        check_token_ids(prompts.tokens, d_vocab=d_vocab, vocabulary="the embedded model's")
