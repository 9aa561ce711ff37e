"""Every head described: search the rules the language can write for the one that explains a head.

`describe(model, prompts)` scores tens of thousands of candidate rules (`families.py`, a registry)
for every head from shared sufficient statistics (`stats.py`, `scoring.py`), picks each head's rule
on half of the prompts and reports it on the other half (`run.py`), and can replace the best-described
heads by their rules to measure what is lost (`replace.py`). docs/describe.md has the method.

`describe`, `replace_heads` and `perplexity` import torch, so they load on first use (the CLI
imports this package to register its command, and must start fast).
"""

from __future__ import annotations

from patternlang.lazy_torch import lazy_members

from patternlang.discovery.families import FAMILIES, Base, Candidate, CandidateFamily, register_family
from patternlang.discovery import last_first  # noqa: F401, E402 - registers the last/first family after the others
from patternlang.discovery.descriptions import Alternative, Description, HeadDescription, Replacement

__all__ = ["FAMILIES", "Alternative", "Base", "Candidate", "CandidateFamily", "Description", "HeadDescription",
           "Replacement", "describe", "perplexity", "register_family", "replace_heads"]

_LAZY = {"describe": "patternlang.discovery.search", "replace_heads": "patternlang.discovery.replace",
         "perplexity": "patternlang.discovery.replace"}


__getattr__ = lazy_members(__name__, _LAZY)
