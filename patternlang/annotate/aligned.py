"""A parser's words aligned to a model's tokens by character offsets.

The parser (spaCy) splits a text into words; the model's tokenizer splits it into tokens, and
the two rarely agree: " unbelievable" may be three tokens of one word, " don" and "'t" two
tokens over the parser's words "do" and "n't". The alignment is by characters:

- A token carries the annotation of the word that holds its first non-whitespace character, so
  every token of a word carries that word's annotation (all three tokens of " unbelievable"
  read `pos` "ADJ"). A token that spans several words (a multi-word token) carries its first
  word's. " don" holds "do" and the "n" of "n't": it reads "do"; "'t" reads "n't".
- A token with no non-whitespace character (BOS and other special tokens, whose span is empty;
  "\\n\\n" and other whitespace-only tokens) carries nothing: every string feature reads "",
  `dephead` and `entstart` read -1.
- `dephead` is the position of the token that holds the first character of the head word (its
  first token). The parser's root (a word that is its own head) reads -1. A word whose head
  begins inside the same token (a multi-word token) points at that token itself.
- `entstart` is the position of the token that holds the first character of the named entity
  the word is in; -1 outside entities (where `ent` is "").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# The string-valued annotations (compared with string literals: `pos[k] == "NOUN"`).
STRING_FIELDS = ("pos", "tag", "dep", "ent", "lemma")
# The position-valued ones (-1 where there is none).
POSITION_FIELDS = ("dephead", "entstart")
ANNOTATION_FIELDS = STRING_FIELDS + POSITION_FIELDS


@dataclass(frozen=True, slots=True)
class ParsedWord:
    """One word as the parser gives it: its character span in the text and its annotation.

    `head` is the index of its syntactic head among the text's words (its own index at a
    root); `ent_start` the character where its named entity begins (-1 outside entities)."""

    start: int
    end: int
    pos: str
    tag: str
    dep: str
    head: int
    ent: str = ""
    ent_start: int = -1
    lemma: str = ""


@dataclass(frozen=True, slots=True)
class Annotations:
    """One prompt's parser annotations, one value per model token (`field[position]`)."""

    pos: tuple[str, ...]
    tag: tuple[str, ...]
    dep: tuple[str, ...]
    ent: tuple[str, ...]
    lemma: tuple[str, ...]
    dephead: tuple[int, ...]
    entstart: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.pos)

    def column(self, field: str) -> tuple[Any, ...]:
        if field not in ANNOTATION_FIELDS:
            raise KeyError(field)
        values: tuple[Any, ...] = getattr(self, field)
        return values

    def rows(self) -> list[dict[str, str | int]]:
        """One dict per token, for reading and for tests."""
        return [{field: getattr(self, field)[p] for field in ANNOTATION_FIELDS} for p in range(len(self))]


def empty_annotations(n_tokens: int) -> Annotations:
    """Annotations of a prompt the parser says nothing about."""
    blank, none = ("",) * n_tokens, (-1,) * n_tokens
    return Annotations(blank, blank, blank, blank, blank, none, none)


def align_words(words: Sequence[ParsedWord], spans: Sequence[tuple[int, int]], text: str) -> Annotations:
    """The annotations of each token (`spans`: each token's character span in `text`).

    >>> words = [ParsedWord(0, 2, "PRON", "PRP", "nsubj", 1), ParsedWord(3, 7, "VERB", "VBD", "ROOT", 1)]
    >>> a = align_words(words, [(0, 0), (0, 2), (2, 5), (5, 7)], "He walked")
    >>> a.pos, a.dephead
    (('', 'PRON', 'VERB', 'VERB'), (-1, 2, -1, -1))
    """
    n_chars = len(text)
    word_at = [-1] * n_chars
    for index, word in enumerate(words):
        for c in range(max(word.start, 0), min(word.end, n_chars)):
            word_at[c] = index
    token_at = [-1] * n_chars  # the first token whose span holds the character
    for position, (begin, end) in enumerate(spans):
        for c in range(max(begin, 0), min(end, n_chars)):
            if token_at[c] < 0:
                token_at[c] = position

    def token_of(char: int) -> int:
        return token_at[char] if 0 <= char < n_chars else -1

    columns: dict[str, list[Any]] = {field: [] for field in ANNOTATION_FIELDS}
    for begin, end in spans:
        index = next((word_at[c] for c in range(max(begin, 0), min(end, n_chars))
                      if not text[c].isspace() and word_at[c] >= 0), -1)
        if index < 0:
            for field in STRING_FIELDS:
                columns[field].append("")
            columns["dephead"].append(-1)
            columns["entstart"].append(-1)
            continue
        word = words[index]
        for field in STRING_FIELDS:
            columns[field].append(getattr(word, field))
        head_is_self = word.head == index or not 0 <= word.head < len(words)
        columns["dephead"].append(-1 if head_is_self else token_of(words[word.head].start))
        columns["entstart"].append(token_of(word.ent_start) if word.ent else -1)
    return Annotations(**{field: tuple(values) for field, values in columns.items()})
