"""Annotations a parser gives a prompt, aligned to the model's tokens.

`aligned.py` holds the record the compiler reads (`Annotations`: one value per model token
for every parser feature) and the alignment from the parser's words to the model's tokens by
character offsets; `spacy_parser.py` runs spaCy (the optional `syntax` extra, imported only
when a pattern reads a parser feature). Nothing here imports torch.
"""

from .aligned import ANNOTATION_FIELDS, Annotations, ParsedWord, align_words, empty_annotations

__all__ = ["ANNOTATION_FIELDS", "Annotations", "ParsedWord", "align_words", "empty_annotations"]
