"""The token features a rule can read (`tok[k]`, `str[q - 1]`, `word[k]`, ...): one registry.

Each entry says everything about one feature: its name and kind (for the checker), what a
batch must provide for it (`needs`, for the engine), a vectorised implementation over a
batch (for the compiler), a plain-Python implementation over one prompt (for the reference
evaluator, the compiler's oracle) and its documentation (for `patternlang features` and the
docs' table). Adding a feature is one `register_feature(...)` call here and its tests.

The implementations receive the batch (`compiler.batch.BatchFeatures`) or the prompt
(`compiler.reference.ReferencePrompt`) and use only their methods, so this module imports no
torch: the checker reads the registry without loading it.

The batch API: `tokens`, `mask` and `positions` tensors, `table(name)` (another feature's
`[batch, pos]` table), `text_ids()` (each token's id in the batch's string table),
`text_flags(predicate)` (a predicate of the token text, run once per distinct text) and
`offsets()` (each token's character span, `[batch, pos, 2]`) and `annotation(field)` (a
parser annotation per token, `[batch, pos]`: string ids or positions).
The prompt API: `tokens`, `special` (lists), `texts()`, `spans()` and `annotation(field)`
(raise without them) and `column(name)` (another feature's values, one per position).

The parser's features (`pos`, `dep`, `dephead`, ...) are registered in `parsed.py`.
"""

from __future__ import annotations

from typing import Any

from .builtins import starts_word
from .feature_registry import FEATURES, NEEDS, Feature, register_feature

__all__ = ["FEATURES", "NEEDS", "Feature", "features_markdown", "register_feature"]


# ---- the features ------------------------------------------------------------------------------
register_feature(
    "tok", "token", "the token id at a position",
    table=lambda batch: batch.tokens,
    reference=lambda prompt: list(prompt.tokens),
)

register_feature(
    "str", "string", "the token's text as the tokenizer decodes it alone; a token that decodes to "
    "U+FFFD (a piece of a character split over tokens) reads the text its offsets cover in the prompt",
    needs=("tokens", "texts"),
    table=lambda batch: batch.text_ids(),
    reference=lambda prompt: list(prompt.texts()),
)

register_feature(
    "special", "bool", "true where the token is a special token (BOS, EOS, ...)",
    needs=("tokens", "special_ids"),
    table=lambda batch: batch.special,
    reference=lambda prompt: list(prompt.special),
)


def _start_table(batch: Any) -> Any:  # BatchFeatures -> [batch, pos] (feature_registry)
    special = batch.table("special")
    after_special = special.roll(1, dims=1)
    after_special[:, 0] = False
    first = (batch.positions == 0).unsqueeze(0)
    return (batch.text_flags(starts_word) | special | after_special | first) & batch.mask


def _start_reference(prompt: Any) -> list[bool]:  # ReferencePrompt
    texts, special = prompt.texts(), prompt.special
    return [p == 0 or special[p] or (p > 0 and special[p - 1]) or starts_word(texts[p])
            for p in range(len(texts))]


register_feature(
    "start", "bool", "true where the token starts a word: the first token, special tokens and the "
    "token after one, and tokens whose text begins with whitespace or a marker such as Ġ or ▁",
    needs=("tokens", "texts", "special_ids"),
    table=_start_table,
    reference=_start_reference,
)


def _running_index(flags: list[bool]) -> list[int]:
    index, out = -1, []
    for flag in flags:
        index += bool(flag)
        out.append(index)
    return out


register_feature(
    "word", "word", "the index of the word the token belongs to (0 for the first word; a word "
    "starts where `start` is true)",
    needs=("tokens", "texts", "special_ids"),
    table=lambda batch: batch.table("start").long().cumsum(dim=1) - 1,
    reference=lambda prompt: _running_index(prompt.column("start")),
)

SENTENCE_END = (".", "!", "?", "。", "！", "？")


def ends_sentence(text: str) -> bool:
    """A token ends a sentence when its text, without trailing whitespace, ends in . ! or ?
    (or their full-width forms 。！？)."""
    return text.rstrip().endswith(SENTENCE_END)


def _sentence_table(batch: Any) -> Any:
    word = batch.table("word")
    ends = batch.text_flags(ends_sentence) & batch.mask
    # Per word: how many of its tokens end a sentence; a word start whose previous word
    # holds one begins a new sentence.
    ends_per_word = word.new_zeros(word.shape).scatter_add_(1, word.clamp(min=0), ends.long())
    previous_word_ends = ends_per_word.gather(1, (word - 1).clamp(min=0)) > 0
    begins = batch.table("start") & (word > 0) & previous_word_ends
    begins = begins | (batch.positions == 0).unsqueeze(0)
    return begins.long().cumsum(dim=1) - 1


def _sentence_reference(prompt: Any) -> list[int]:
    # Literally the definition: the first token, then the first word start after a token
    # ending in . ! or ?
    starts, texts = prompt.column("start"), prompt.texts()
    sentence, pending, out = 0, False, []
    for position, text in enumerate(texts):
        if position > 0 and starts[position] and pending:
            sentence, pending = sentence + 1, False
        out.append(sentence)
        pending = pending or ends_sentence(text)
    return out


register_feature(
    "sentence", "sentence", "the index of the sentence the token belongs to: a sentence starts at "
    "the first token and at the first word start after a token ending in `.`, `!` or `?` (or `。！？`)",
    needs=("tokens", "texts", "special_ids"),
    table=_sentence_table,
    reference=_sentence_reference,
)


from . import parsed  # noqa: E402,F401  (registers the parser's features: pos, dep, dephead, ...)
from . import span_labels  # noqa: E402,F401  (span: the prompt set's labelled spans)
from . import predictions  # noqa: E402,F401  (pred and predicted(): what the model predicts)


def features_markdown() -> str:
    """The docs' table of features (docs/language.md), generated from the registry."""
    rows = ["| feature | kind | needs | value |", "|---|---|---|---|"]
    for feature in FEATURES.entries():
        needs = ", ".join(n for n in NEEDS if n in feature.needs)
        rows.append(f"| `{feature.name}[i]` | {feature.kind} | {needs} | {feature.doc} |")
    return "\n".join(rows)
