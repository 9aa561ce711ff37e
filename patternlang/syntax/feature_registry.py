"""The feature registry itself: `Feature`, `FEATURES`, `register_feature` and what a batch can provide
(`NEEDS`). The entries are registered in `features.py` (the token features) and in the modules it
imports (`parsed.py`, `span_labels.py`, `predictions.py`), which import this module, not
`features.py`, so the registry and its entries form no import cycle. Read the registry through
`features.FEATURES`: importing `features` registers every built-in entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..registry import Registry
from .builtins import Kind

# What a batch can provide. Token ids, masks and positions are always there; the rest is
# asked for by the features a pattern reads: token texts, the tokenizer's special ids, each
# token's character span in its prompt, a parser's annotations of the prompt aligned to its
# tokens ("syntax": the optional extra, `annotate/`), the prompt set's labelled spans ("spans")
# and the model's own predictions at each position ("predictions", from the forward pass).
NEEDS = ("tokens", "texts", "special_ids", "offsets", "syntax", "spans", "predictions")

@dataclass(frozen=True, slots=True)
class Feature:
    """One token feature: `name[position]` in a rule."""

    name: str
    kind: Kind
    doc: str
    needs: frozenset[str]
    table: Callable[[Any], Any]  # BatchFeatures -> [batch, pos] tensor
    reference: Callable[[Any], list[Any]]  # ReferencePrompt -> one value per position


FEATURES: Registry[Feature] = Registry("feature")


def register_feature(name: str, kind: Kind, doc: str, *, needs: tuple[str, ...] = ("tokens",),
                     table: Callable[[Any], Any], reference: Callable[[Any], list[Any]]) -> Feature:
    unknown = set(needs) - set(NEEDS)
    if unknown:
        raise ValueError(f"feature {name!r} needs {sorted(unknown)}, which no batch provides")
    return FEATURES.register(Feature(name, kind, doc, frozenset(needs), table, reference))
