"""The parser's features: parts of speech, dependencies, named entities and lemmas (spaCy).

Each reads one column of the prompt's annotations (`annotate.Annotations`: the parser's words
aligned to the model's tokens by character offsets; see `annotate/aligned.py` for what BOS,
whitespace-only and multi-word tokens get). They need "syntax": the engine parses every text
prompt once per run when a pattern reads one of them, which takes the optional extra
(`pip install 'patternlang[syntax]'`). String features compare with string literals
(`pos[k] == "NOUN"`); `dephead` and `entstart` are positions (-1 where there is none).

`ancestor(a, b)` (in `builtins.FUNCTIONS`) follows `dephead` up from b, at most
`MAX_ANCESTOR_DEPTH` arcs; `builtins.ancestor_chain` is its definition (the reference
evaluator's), `BatchFeatures.ancestor_chain` the vectorised one.
"""

from __future__ import annotations

from .builtins import MAX_ANCESTOR_DEPTH, ancestor_chain, is_ancestor  # noqa: F401  (documented here)
from .feature_registry import register_feature

_ALIGNMENT = " (every token of a word carries the word's value; BOS and whitespace-only tokens read \"\")"

_STRINGS = (
    ("pos", "the universal part of speech of the token's word (NOUN, VERB, DET, ADP, PROPN, ...)"),
    ("tag", "the fine-grained part-of-speech tag of the token's word (Penn Treebank: NN, VBD, DT, POS, ...)"),
    ("dep", "the dependency label of the token's word (nsubj, dobj, det, poss, pobj, prep, amod, ROOT, ...)"),
    ("ent", "the named-entity type of the token's word (PERSON, ORG, GPE, DATE, ...), \"\" outside entities"),
    ("lemma", "the lemma of the token's word (\"ran\" -> \"run\")"),
)


def _string_feature(field: str, doc: str) -> None:
    register_feature(
        field, "string", doc + _ALIGNMENT,
        needs=("tokens", "syntax"),
        table=lambda batch: batch.annotation(field),
        reference=lambda prompt: list(prompt.annotation(field)),
    )


for _field, _doc in _STRINGS:
    _string_feature(_field, _doc)

register_feature(
    "dephead", "position", "the position of the first token of the syntactic head of the token's word; "
    "-1 at the parser's root and on tokens with no word (BOS, whitespace). `dephead[k] == q`: k is a "
    "dependent of q",
    needs=("tokens", "syntax"),
    table=lambda batch: batch.annotation("dephead"),
    reference=lambda prompt: list(prompt.annotation("dephead")),
)

register_feature(
    "entstart", "position", "the position of the first token of the named entity the token is in; -1 "
    "outside entities. `entstart[k] == entstart[q] and ent[q] != \"\"`: k and q are in the same entity",
    needs=("tokens", "syntax"),
    table=lambda batch: batch.annotation("entstart"),
    reference=lambda prompt: list(prompt.annotation("entstart")),
)
