"""`span[k]`: the label of the labelled span a token falls in ("IO", "S1", "S2", "END", "needle", ...).

Labels come with the prompt set: JSONL prompt files give character ranges per label
(`{"text": ..., "spans": {"IO": [[5, 9]]}}`) and the `ioi` and `needle` probes label what
they insert. A token carries a label when its character span (from the tokenizer's offsets)
overlaps the labelled range by at least one character; a token overlapping several labelled
spans carries the first in the prompt's order; every other token (and a prepended BOS, which
covers no character) reads "". `patternlang.spans` holds the definition.
"""

from __future__ import annotations

from ..spans import token_labels
from .feature_registry import register_feature

register_feature(
    "span", "string", "the label of the labelled span the token overlaps by at least one character "
    "(\"IO\", \"S1\", \"S2\", \"END\", \"needle\", ...: from the prompt set: `ioi` and `needle` probes, JSONL "
    "files with \"spans\"); the first such span in the prompt's order; \"\" outside every span",
    needs=("tokens", "offsets", "spans"),
    table=lambda batch: batch.span_labels(),
    reference=lambda prompt: token_labels(prompt.labels(), prompt.spans()),
)
