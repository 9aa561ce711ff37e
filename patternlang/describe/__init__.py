"""Every head described: search the rules the language can write for the one that explains a head.

`describe(model, prompts)` scores tens of thousands of candidate rules (`families.py`, a registry)
for every head from shared sufficient statistics (`stats.py`, `scoring.py`), picks each head's rule
on half of the prompts and reports it on the other half (`run.py`), and can replace the best-described
heads by their rules to measure what is lost (`replace.py`). docs/describe.md has the method.
"""

from patternlang.describe.families import FAMILIES, Base, Candidate, CandidateFamily, register_family
from patternlang.describe.result import Alternative, Description, HeadDescription, Replacement
from patternlang.describe.run import describe

__all__ = ["FAMILIES", "Alternative", "Base", "Candidate", "CandidateFamily", "Description", "HeadDescription",
           "Replacement", "describe", "register_family"]
