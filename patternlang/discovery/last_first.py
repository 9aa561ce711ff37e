"""The `last k where COND` / `first k where COND` family: one target per row, the latest (earliest)
key `k <= q` where the condition holds.

Its bases are ordinary bases whose matrix is reduced to one cell per row (`select_keys`), so the
sufficient statistics and scores of `stats.py` serve it unchanged. It is tried when named
(`families=["last_first"]`, `--families last_first`), not by default: on SmolLM2 it describes the
induction heads by the latest earlier copy alone, which differs from the shipped induction rule wherever
a token recurs. Its matrices equal the compiled `attend last/first k where ...` rules
(tests/test_describe_last_first.py).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from patternlang.lazy_torch import torch  # the CLI registers `describe` at start-up, which must not load torch

from patternlang.discovery.families import KEY_PREDICATES, Base, CandidateFamily, register_family
from patternlang.errors import PatternError

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["select_keys", "grammar_has_last_first", "last_first_bases"]


def select_keys(matrix: Tensor, which: str) -> Tensor:
    """Bool `[..., q, k]`: for each row of `matrix` (bool, lower-triangular), only its latest
    (`which="last"`) or earliest (`"first"`) marked key."""
    n = matrix.shape[-1]
    keys = torch.arange(n, device=matrix.device)
    if which == "last":
        chosen = torch.where(matrix, keys, -1).amax(dim=-1)
    elif which == "first":
        chosen = torch.where(matrix, keys, n).amin(dim=-1)
    else:
        raise ValueError(f"which must be 'last' or 'first', got {which!r}")
    return (keys == chosen[..., None]) & matrix.any(dim=-1, keepdim=True)


@lru_cache(maxsize=1)
def grammar_has_last_first() -> bool:
    """Whether this patternlang's grammar reads `attend last k where ...`."""
    from patternlang.library import compile_rule

    try:
        compile_rule("attend last k where true")
    except PatternError:
        return False
    return True


def last_first_bases(_: frozenset[str]) -> list[Base]:
    conditions = [template.replace("K", at) for template in KEY_PREDICATES.values() for at in ("k", "k - 1")]
    conditions += ["tok[k] == tok[q]", "tok[k - 1] == tok[q]", "word[k] == word[q] - 1", "sentence[k] == sentence[q]"]
    bases = []
    for select in ("last", "first"):
        for cond in conditions:
            for strict in (False, True):
                inner = f"{cond} and k < q" if strict else cond
                parts = (cond, "k < q") if strict else (cond,)
                bases.append(Base(f"{select} k where {inner}", "last_first", 1 + strict, parts, select))
    return bases


register_family(CandidateFamily(
    "last_first", "`last k where COND` / `first k where COND` (the latest / earliest key where a key predicate "
                  "or a relation holds). Tried when named (`--families last_first`): among the defaults it "
                  "describes SmolLM2's induction heads as `last k where tok[k - 1] == tok[q]` (the latest copy "
                  "only), which differs from the induction rule wherever a token recurs",
    last_first_bases, available=grammar_has_last_first, default=False))
