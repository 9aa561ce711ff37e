"""The built-in prompt generators: `repeated_random` and `natural`.

Importing this module does not import torch; `repeated_random` imports it when it draws.

>>> prompts = repeated_random(length=4, repeats=2, batch=1, vocab=(10, 20), bos_id=0)
>>> prompts.tokens
((0, 14, 19, 13, 10, 14, 19, 13, 10),)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from patternlang.errors import InputError, PatternTypeError
from patternlang.probes.prompt_files import from_file
from patternlang.prompts import MAX_PROMPT_TOKENS, MAX_PROMPTS, MAX_TOKEN_ID, Prompts, describe_value, show_int
from patternlang.resources import data_path

REPEATED_RANDOM_VOCAB_START = 1000
"""First token id `repeated_random` draws from when the vocabulary is large (>= 2000)."""
REPEATED_RANDOM_VOCAB_STOP = 20000
"""One past the last token id it draws from (or the vocabulary size, if smaller)."""
MAX_PROBE_TOKENS = 2**24
"""Most token ids one generated probe may hold in all (batch x prompt length): about 16.7 million."""
SEED_RANGE = (-(2**63), 2**64 - 1)
"""The seeds torch's random generator accepts."""


# ---------------------------------------------------------------------------
# repeated_random


def repeated_random(model_or_tokenizer: Any = None, *, length: int = 50, repeats: int = 2, batch: int = 32,
                    vocab: tuple[int, int] | None = None, seed: int = 0, prepend_bos: bool = True,
                    bos_id: int | None = None) -> Prompts:
    """The standard induction probe: BOS, then `length` random tokens repeated `repeats` times.

    Tokens are drawn uniformly from `vocab = (lo, hi)` (`lo` included, `hi` excluded). The
    default range, from a model's or tokenizer's vocabulary size `V`, is
    `[1000, min(V, 20000))` when `V >= 2000`: it skips the special tokens, bytes and short
    fragments at the start of BPE vocabularies and the rare tokens at their end. For a
    smaller vocabulary it is every id above the tokenizer's special ones (or above the BOS
    id). The same `seed` gives the same tokens on every machine.

    Without a model, pass `vocab=` and (with `prepend_bos=True`) `bos_id=`. Sizes are
    checked before anything is drawn: a prompt holds at most `MAX_PROMPT_TOKENS` tokens and
    the probe at most `MAX_PROBE_TOKENS`.

    >>> p = repeated_random(length=3, repeats=3, batch=2, vocab=(5, 9), bos_id=0, seed=1)
    >>> [len(row) for row in p], p.tokens[0][1:4] == p.tokens[0][4:7] == p.tokens[0][7:10]
    ([10, 10], True)
    """
    check_repeated_random_sizes(length=length, repeats=repeats, batch=batch, prepend_bos=prepend_bos)
    check_int_range("repeated_random", "seed", seed, *SEED_RANGE)
    vocab_size, n_ctx, tokenizer_bos, special_ids = vocab_facts(model_or_tokenizer)
    lo, hi = random_vocab_range(vocab, vocab_size, special_ids, tokenizer_bos)
    if prepend_bos:
        bos_id = tokenizer_bos if bos_id is None else bos_id
        if bos_id is None:
            raise InputError("repeated_random needs the BOS token id to prepend it",
                             hint="pass a model or tokenizer, or bos_id=..., or prepend_bos=False")
        check_int_range("repeated_random", "bos_id", bos_id, 0, MAX_TOKEN_ID)
    total = length * repeats + (1 if prepend_bos else 0)
    if n_ctx is not None and total > n_ctx:
        raise InputError(f"repeated_random prompts would be {total} tokens long, more than the model's "
                         f"context of {n_ctx}", hint="lower length or repeats")

    import torch

    generator = torch.Generator().manual_seed(seed)
    random_tokens = torch.randint(lo, hi, (batch, length), generator=generator)
    rows = random_tokens.repeat(1, repeats)
    if prepend_bos:
        rows = torch.cat([torch.full((batch, 1), bos_id, dtype=rows.dtype), rows], dim=1)
    name = f"repeated_random(length={length}, repeats={repeats}, batch={batch}, seed={seed})"
    description = (f"{batch} prompts: {'BOS + ' if prepend_bos else ''}{length} random tokens from "
                   f"[{lo}, {hi}) repeated {repeats} times")
    # Drawn from [lo, hi) with 0 <= lo < hi <= 2**63 - 1 and a checked BOS id: nothing left to check.
    return Prompts._already_checked(tokens=tuple(tuple(row) for row in rows.tolist()), name=name,
                                    description=description)


def check_repeated_random_sizes(*, length: Any, repeats: Any, batch: Any, prepend_bos: bool = True) -> None:
    """Refuse sizes that are not positive integers, or that would not fit in memory, before drawing.

    >>> check_repeated_random_sizes(length=10**12, repeats=2, batch=1)
    Traceback (most recent call last):
    ...
    patternlang.errors.InputError: error: argument 'length' of repeated_random must be at most 1048576, got 1000000000000
    """
    check_int_range("repeated_random", "length", length, 1, MAX_PROMPT_TOKENS)
    check_int_range("repeated_random", "repeats", repeats, 1, MAX_PROMPT_TOKENS)
    check_int_range("repeated_random", "batch", batch, 1, MAX_PROMPTS)
    prompt_length = length * repeats + (1 if prepend_bos else 0)
    if prompt_length > MAX_PROMPT_TOKENS:
        raise InputError(f"repeated_random prompts would be {prompt_length:,} tokens long (length x repeats), "
                         f"more than the {MAX_PROMPT_TOKENS:,} any prompt may have",
                         hint="lower length or repeats")
    if batch * prompt_length > MAX_PROBE_TOKENS:
        raise InputError(f"repeated_random would make {batch:,} prompts of {prompt_length:,} tokens, "
                         f"{batch * prompt_length:,} in all, more than the {MAX_PROBE_TOKENS:,} a probe may hold",
                         hint="lower batch, length or repeats, or run several seeds and join the scores")


def check_int_range(probe: str, arg: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> None:
    """`value` must be an integer (not a boolean) within `[minimum, maximum]`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PatternTypeError(f"argument {arg!r} of {probe} must be an integer, not {describe_value(value)}")
    if minimum is not None and value < minimum:
        raise InputError(f"argument {arg!r} of {probe} must be at least {minimum}, got {show_int(value)}")
    if maximum is not None and value > maximum:
        raise InputError(f"argument {arg!r} of {probe} must be at most {maximum}, got {show_int(value)}")


def vocab_facts(source: Any) -> tuple[int | None, int | None, int | None, tuple[int, ...]]:
    """(vocabulary size, context length, BOS id, special ids) of a model or a tokenizer."""
    if source is None:
        return None, None, None, ()
    tokenizer = getattr(source, "tokenizer", None) if hasattr(source, "cfg") else source
    cfg = getattr(source, "cfg", None)
    vocab_size = getattr(cfg, "d_vocab", None) if cfg is not None else None
    if (vocab_size is None or vocab_size <= 0) and tokenizer is not None:
        try:
            vocab_size = len(tokenizer)
        except TypeError:
            vocab_size = getattr(tokenizer, "vocab_size", None)
    n_ctx = getattr(cfg, "n_ctx", None) if cfg is not None else None
    bos = getattr(tokenizer, "bos_token_id", None) if tokenizer is not None else None
    special = tuple(getattr(tokenizer, "all_special_ids", None) or ()) if tokenizer is not None else ()
    return vocab_size, n_ctx, bos, special


def random_vocab_range(vocab: Any, vocab_size: int | None, special_ids: Sequence[int],
                       bos: int | None) -> tuple[int, int]:
    """The `[lo, hi)` range `repeated_random` draws from: `vocab` checked, or the default for the vocabulary."""
    if vocab is not None:
        if (not isinstance(vocab, (tuple, list)) or len(vocab) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in vocab)):
            raise InputError(f"vocab must be a pair of token ids (lo, hi), got {vocab!r}")
        lo, hi = vocab
        shown = f"vocab=({show_int(lo)}, {show_int(hi)})"
        if not 0 <= lo < hi:
            raise InputError(f"{shown} is empty or negative; it needs 0 <= lo < hi")
        if hi > MAX_TOKEN_ID:
            raise InputError(f"{shown} goes past the largest token id, {MAX_TOKEN_ID}")
        if vocab_size is not None and hi > vocab_size:
            raise InputError(f"{shown} goes past the model's vocabulary of {vocab_size} tokens")
        return lo, hi
    if vocab_size is None:
        raise InputError("repeated_random needs a vocabulary range to draw from",
                         hint="pass a model or tokenizer, or vocab=(lo, hi)")
    if vocab_size >= 2 * REPEATED_RANDOM_VOCAB_START:
        return REPEATED_RANDOM_VOCAB_START, min(vocab_size, REPEATED_RANDOM_VOCAB_STOP)
    reserved = [i for i in (*special_ids, bos) if i is not None and i < vocab_size]
    lo = max(reserved) + 1 if reserved else 0
    if lo >= vocab_size:
        raise InputError(f"the vocabulary of {vocab_size} tokens has no ordinary tokens to draw from")
    return lo, vocab_size


# ---------------------------------------------------------------------------
# natural

NATURAL_FILE = "natural.txt"


@lru_cache(maxsize=1)
def _natural_corpus() -> Prompts:
    return from_file(data_path(NATURAL_FILE))


def natural_size() -> int:
    """How many prompts the shipped `natural` corpus holds."""
    return len(_natural_corpus())


def natural(batch: int | None = None) -> Prompts:
    """English sentences and short paragraphs written for patternlang, one prompt each.

    They repeat names and words (so duplicate-token and induction heads have targets), and
    hold long multi-token words, numbers and punctuation. `batch` keeps the first `batch`.

    >>> len(natural(batch=5))
    5
    """
    prompts = _natural_corpus()
    description = f"{len(prompts)} English sentences and short paragraphs shipped with patternlang"
    return _first_texts(prompts, "natural", description, batch, check_natural_batch)


def _first_texts(prompts: Prompts, name: str, description: str, batch: int | None,
                 check_batch: Callable[[int], None]) -> Prompts:
    """A shipped text probe, or its first `batch` prompts (checked by `check_batch`), named so."""
    if batch is not None:
        check_batch(batch)
        prompts = prompts.take(batch)
        description = f"the first {batch} of {description}"
        name = f"{name}(batch={batch})"
    return Prompts(texts=prompts.texts, name=name, description=description)


PROSE_FILE = "prose.txt"
PROSE_GENERATED = 100  # paragraphs from templates after the hand-written ones

_PEOPLE = ("Maria Lopez", "Barack Obama", "Angela Merkel", "Hans Zimmermann", "Aiko Tanaka", "Oliver Twist",
           "Fatima Al-Sayed", "Jean-Luc Picard", "Priya Raman", "Elena Petrova", "Kwame Mensah", "Sofia Rossi")
_PLACES = ("New York City", "San Francisco", "Buenos Aires", "Rio de Janeiro", "the United Kingdom", "South Korea",
           "Los Angeles", "Cape Town", "Hong Kong", "New Zealand", "Kuala Lumpur", "Saint Petersburg")
_NOUNS = ("book", "letter", "car", "house", "painting", "report", "garden", "bicycle", "camera", "violin",
          "contract", "recipe", "telescope", "umbrella", "lantern", "manuscript")
_ADJECTIVES = ("old", "new", "red", "strange", "expensive", "broken", "beautiful", "small", "famous", "heavy")
_VERBS = (("bought", "buy"), ("sold", "sell"), ("repaired", "repair"), ("painted", "paint"), ("found", "find"),
          ("borrowed", "borrow"), ("described", "describe"), ("photographed", "photograph"), ("opened", "open"),
          ("studied", "study"))
_POSSESSIVES = ("his", "her", "their", "our", "my", "its")
_TEMPLATES = (
    "{person}'s {adj} {noun} {verb} the {noun2} in {place}.",
    "Which {noun} did {person} {verb_base}?",
    "The {noun} that {person} {verb} was {adj}.",
    "{poss} {noun} {verb} the {adj} {noun2} near the {noun3}.",
    "What did the {noun} {verb_base} in {place}?",
    "{person} {verb} {poss_lower} {noun} for the {noun2} of {person2}.",
)


def _generated_prose(count: int) -> list[str]:
    """`count` paragraphs of four sentences from templates, the same every time."""
    rng = random.Random(20190611)  # Clark et al.'s arXiv date
    paragraphs = []
    for _ in range(count):
        sentences = []
        for template in rng.sample(_TEMPLATES, 4):
            past, base = rng.choice(_VERBS)
            poss = rng.choice(_POSSESSIVES)
            nouns = rng.sample(_NOUNS, 3)
            people = rng.sample(_PEOPLE, 2)
            sentence = template.format(person=people[0], person2=people[1], place=rng.choice(_PLACES),
                                       adj=rng.choice(_ADJECTIVES), noun=nouns[0], noun2=nouns[1], noun3=nouns[2],
                                       verb=past, verb_base=base, poss=poss.capitalize(), poss_lower=poss)
            sentences.append(sentence[0].upper() + sentence[1:])
        paragraphs.append(" ".join(sentences))
    return paragraphs


def parsed_prose(batch: int | None = None) -> Prompts:
    """English prose for the syntactic patterns (`patterns/syntax.pattern`), one paragraph a
    prompt: 40 written by hand (`data/prose.txt`), then 100 of four sentences each from
    templates with multi-word names and places, possessives, questions and relative clauses
    (objects before their verbs). `batch` keeps the first `batch`.

    >>> len(parsed_prose(batch=3)), len(parsed_prose())
    (3, 140)
    """
    shipped = from_file(data_path(PROSE_FILE))
    if shipped.texts is None:
        raise InputError(f"the shipped {PROSE_FILE} holds token ids, not text", hint="reinstall patternlang")
    prompts = Prompts(texts=tuple(shipped.texts) + tuple(_generated_prose(PROSE_GENERATED)))
    description = f"{len(prompts)} English prose paragraphs shipped with patternlang for the syntactic patterns"
    return _first_texts(prompts, "parsed_prose", description, batch, check_prose_batch)


def check_prose_batch(batch: Any) -> None:
    """`batch` must be a whole number from 1 to the size of the prose corpus."""
    check_int_range("parsed_prose", "batch", batch, 1)
    count = len(from_file(data_path(PROSE_FILE))) + PROSE_GENERATED
    if batch > count:
        raise InputError(f"parsed_prose has {count} prompts; cannot take batch={batch}",
                         hint=f"use batch={count} or fewer")


def check_natural_batch(batch: Any) -> None:
    """`batch` must be a whole number from 1 to the size of the corpus."""
    check_int_range("natural", "batch", batch, 1)
    count = natural_size()
    if batch > count:
        raise InputError(f"natural has {count} prompts; cannot take batch={batch}",
                         hint=f"use batch={count} or fewer")
