"""Candidate families: the rules `describe` tries, generated from the language, as a registry.

A family contributes *bases*: conditions on `(q, k)` written in the language (`tok[k] == tok[q]`,
`word[k] == word[q]`, `matches(str[k], "...")`, ...). Every base is then tried with the same
*distance ranges*, which cost nothing extra to score (`stats.py`): the whole base, `and k < q`,
`and q - k <= w` and `and k < q and q - k <= w`, and for the base `true` every fixed offset
`k == q - d`. The `conjunction` family pairs the bases of other families (`A and B`).

A family names what its bases need (`needs`: "syntax" for the parser's features, "predictions"
for the model's own), so a run without the syntax extra (or a model without an unembedding) leaves
them out; adding a family (say for a new feature) is one
`register_family(...)` call. Nothing here imports torch: the families are text.

>>> [f for f in FAMILIES.names()][:3]
['offset', 'bos', 'token_equality']
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from patternlang.errors import InputError
from patternlang.registry import Registry

__all__ = ["Base", "Candidate", "CandidateFamily", "FAMILIES", "WINDOWS", "register_family",
           "choose_families", "candidates_of", "rule_text", "COMPLEXITY_PENALTY"]

WINDOWS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48)
"""The window sizes `q - k <= w` tried with every base."""

MAX_OFFSET = 64
"""Fixed offsets `k == q - d` tried: d = 0 .. MAX_OFFSET (and no further than the longest prompt)."""

COMPLEXITY_PENALTY = 0.002
"""Ranking score = IoU - COMPLEXITY_PENALTY x complexity (the number of comparisons in the rule):
equal fits go to the simpler rule, and a rule must fit better by 0.002 per extra comparison."""


@dataclass(frozen=True, slots=True)
class Base:
    """A condition written in the language, the family it came from and its own complexity
    (comparisons); `parts` are the bases it conjoins (a conjunction's, else itself)."""

    cond: str
    family: str
    complexity: int = 1
    parts: tuple[str, ...] = ()
    select: str | None = None  # "last" or "first": one target per row, the latest / earliest k (last_first.py)

    @property
    def conjuncts(self) -> tuple[str, ...]:
        return self.parts or (self.cond,)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One rule: a base restricted to distances `lo <= q - k <= hi` (hi None: no window)."""

    base: Base
    lo: int
    hi: int | None
    exact: bool = False  # the base `true` at one offset d = lo = hi: `k == q - d`

    @property
    def family(self) -> str:
        return self.base.family

    @property
    def rule(self) -> str:
        return rule_text(self.base.cond, self.lo, self.hi, self.exact)

    @property
    def complexity(self) -> int:
        extra = 0 if self.exact else (self.lo > 0) + (self.hi is not None)
        own = 0 if self.base.cond == "true" and not self.exact else self.base.complexity
        return max(1, own + extra)


def rule_text(cond: str, lo: int, hi: int | None, exact: bool = False) -> str:
    """The rule of a base and a distance range, as `patternlang.unparse` would print it, with
    `exclude bos` (candidates are judged on the head's non-sink attention; the BOS rule is not)."""
    if cond == "k == 0":
        return "attend k where k == 0"
    for select in ("last", "first"):
        if cond.startswith(f"{select} k where "):
            inner = cond[len(f"{select} k where "):]
            window = f" and q - k <= {hi}" if hi is not None else ""
            return f"attend {select} k where {inner}{window} exclude bos"
    if exact:
        parts = ["k == q" if lo == 0 else f"k == q - {lo}"]
    else:
        parts = [] if cond == "true" else [cond]
        if lo > 0:
            parts.append("k < q")
        if hi is not None:
            parts.append(f"q - k <= {hi}")
    if not parts:
        return "attend k exclude bos"
    return "attend k where " + " and ".join(parts) + " exclude bos"


@dataclass(frozen=True, slots=True)
class CandidateFamily:
    """A named source of bases. `bases(context)` gets what the run offers (`"syntax"`, `"spans"`)."""

    name: str
    doc: str
    bases: Callable[[frozenset[str]], Sequence[Base]]
    needs: frozenset[str] = field(default_factory=frozenset)
    ranges: bool = True  # try the distance ranges with every base (the BOS rule has none)
    available: Callable[[], bool] = lambda: True  # False: left out of the default families (say why in doc)
    default: bool = True  # False: tried only when named (`families=[...]`, `--families`); say why in doc


FAMILIES: Registry[CandidateFamily] = Registry("candidate family")


def register_family(family: CandidateFamily) -> CandidateFamily:
    """Add a family of candidate rules (its bases are tried with every distance range)."""
    return FAMILIES.register(family)


# ---- the built-in families -----------------------------------------------------------------

SHIFTS = (-2, -1, 0, 1, 2)


def _at(var: str, shift: int) -> str:
    return var if shift == 0 else f"{var} + {shift}" if shift > 0 else f"{var} - {-shift}"


def _token_equality(_: frozenset[str]) -> list[Base]:
    return [Base(f"tok[{_at('k', s)}] == tok[{_at('q', t)}]", "token_equality")
            for s in SHIFTS for t in SHIFTS]


def _feature_equality(offered: frozenset[str]) -> list[Base]:
    family = "feature_equality"
    bases = [Base("word[k] == word[q]", family), Base("word[k] == word[q] - 1", family),
             Base("sentence[k] == sentence[q]", family), Base("sentence[k] == sentence[q] - 1", family),
             Base("iequals(str[k], str[q])", family)]
    if "syntax" in offered:
        bases += [Base(f"{name}[k] == {name}[q]", family) for name in ("lemma", "pos", "dep")]
        bases += [Base("dephead[k] == q", family), Base("dephead[q] == k", family),
                  Base("dephead[k] == dephead[q]", family)]
    if "spans" in offered:
        bases.append(Base("span[k] == span[q]", family))
    return bases


KEY_PREDICATES = {
    "punctuation": 'matches(str[K], "^\\s*[\\pP\\pS]+\\s*$")',
    "newline": 'contains(str[K], "\\n")',
    "capitalised": 'matches(str[K], "^\\s*\\p{Lu}")',
    "word start": "start[K]",
    "digits": 'matches(str[K], "\\d")',
}
"""String predicates on a key; `K` is replaced by `k`, `k - 1` (the token after one) or `k + 1`."""


def _key_predicates(_: frozenset[str]) -> list[Base]:
    bases = []
    for template in KEY_PREDICATES.values():
        for at in ("k", "k - 1", "k + 1"):
            bases.append(Base(template.replace("K", at), "key_string"))
    return bases


PREDICTION_SHIFTS = (-1, 0, 1)


def _prediction(_: frozenset[str]) -> list[Base]:
    """`tok[k + s] == pred[q]`: the key is (s = 0), precedes (s = 1) or follows (s = -1) a copy of the
    token the model predicts at the query."""
    return [Base(f"tok[{_at('k', s)}] == pred[q]", "prediction") for s in PREDICTION_SHIFTS]


def _conjunctions(offered: frozenset[str]) -> list[Base]:
    """Each token- or feature-equality base with each key predicate, and key predicates in pairs."""
    relations = _token_equality(offered) + _feature_equality(offered)
    keys = _key_predicates(offered)
    out = [Base(f"{a.cond} and {b.cond}", "conjunction", 2, (a.cond, b.cond)) for a in relations for b in keys]
    out += [Base(f"{a.cond} and {b.cond}", "conjunction", 2, (a.cond, b.cond))
            for i, a in enumerate(keys) for b in keys[i + 1:] if a.cond.split("[")[1] != b.cond.split("[")[1]
            or a.cond != b.cond]
    return out


register_family(CandidateFamily(
    "offset", "fixed offsets `k == q - d` (d = 0 .. 64) and windows `q - k <= w` over every key",
    lambda _: [Base("true", "offset", 0)]))
register_family(CandidateFamily(
    "bos", "the first token, `k == 0`: the attention sink (judged with the sink, unlike the others)",
    lambda _: [Base("k == 0", "bos")], ranges=False))
register_family(CandidateFamily(
    "token_equality", "`tok[k + s] == tok[q + t]`, |s|, |t| <= 2: duplicate (0, 0), induction (-1, 0), ...",
    _token_equality))
register_family(CandidateFamily(
    "feature_equality", "equal word, sentence, fuzzy text, lemma, pos, dep, dependency head or span of k and q",
    _feature_equality))
register_family(CandidateFamily(
    "key_string", "string predicates on k, k - 1 or k + 1: punctuation, newline, capitalised, word start, digits",
    _key_predicates))
register_family(CandidateFamily(
    "prediction", "`tok[k + s] == pred[q]`, |s| <= 1: the key (or its neighbour) is the token the model predicts "
                  "at q (its final top-1); reading predictions makes the statistics pass run to the logits "
                  "(offered when the model has an unembedding, `W_U`)",
    _prediction, needs=frozenset({"predictions"})))
register_family(CandidateFamily(
    "conjunction", "two bases joined by `and`: a relation with a key predicate, or two key predicates",
    _conjunctions))


def choose_families(names: Iterable[str] | None) -> tuple[CandidateFamily, ...]:
    """The families named (None: every registered default family), with a did-you-mean on a miss."""
    if names is None:
        return tuple(f for f in FAMILIES.entries() if f.available() and f.default)
    chosen = []
    for name in names:
        if name not in FAMILIES:
            close = difflib.get_close_matches(name, FAMILIES.names(), n=1)
            raise InputError(f"unknown candidate family {name!r}",
                             hint=(f"did you mean {close[0]!r}? " if close else "")
                             + "families: " + ", ".join(FAMILIES.names()))
        if not FAMILIES[name].available():
            raise InputError(f"candidate family {name!r} is not available here", hint=FAMILIES[name].doc)
        chosen.append(FAMILIES[name])
    if not chosen:
        raise InputError("no candidate families given", hint="families: " + ", ".join(FAMILIES.names()))
    return tuple(chosen)


def bases_of(families: Sequence[CandidateFamily], offered: frozenset[str]) -> list[Base]:
    """Every base of the families (each condition once, first family wins)."""
    seen: dict[str, Base] = {}
    for family in families:
        if not family.needs <= offered:
            continue
        for base in family.bases(offered):
            seen.setdefault(base.cond, base)
    return list(seen.values())


def candidates_of(base: Base, max_offset: int) -> list[Candidate]:
    """The candidate rules of one base on prompts whose longest distance q - k is `max_offset`."""
    if base.cond == "k == 0":
        return [Candidate(base, 0, None)]
    if base.select == "first":  # the earliest k: a window would change which k is first
        return [Candidate(base, 0, None)]
    if base.select == "last":  # the latest k within a window is the latest k, if it lies within it
        return [Candidate(base, 0, None)] + [Candidate(base, 0, w) for w in WINDOWS if w < max_offset]
    out = []
    if base.cond == "true":
        out += [Candidate(base, d, d, exact=True) for d in range(0, min(MAX_OFFSET, max_offset) + 1)]
        out += [Candidate(base, 1, None)]
    else:
        out += [Candidate(base, 0, None), Candidate(base, 1, None)]
    for w in WINDOWS:
        if w < max_offset:
            out += [Candidate(base, 0, w), Candidate(base, 1, w)]
    return out

