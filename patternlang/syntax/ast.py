"""The typed AST of the pattern language.

Nodes are frozen dataclasses named after the grammar rules. Each keeps its source
location in `loc`, which takes no part in equality or hashing, so the same rule
written in two places is one node for the compiler's cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

from ..errors import Location

_LOC = field(default=None, compare=False, hash=False, repr=False)


# ---- values inside a condition -----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Name:
    """`q`, `k`, `true` or `false`."""

    name: str
    loc: Location | None = _LOC


@dataclass(frozen=True, slots=True)
class IntLit:
    value: int
    loc: Location | None = _LOC


@dataclass(frozen=True, slots=True)
class StrLit:
    value: str
    loc: Location | None = _LOC


@dataclass(frozen=True, slots=True)
class Index:
    """A token feature at a position: `tok[k]`, `str[q - 1]`, `word[k]`."""

    feature: str
    index: "Value"
    loc: Location | None = _LOC


@dataclass(frozen=True, slots=True)
class Call:
    """A function of values: `lower(str[k])`, `startswith(str[k], "Ġ")`."""

    func: str
    args: tuple["Value", ...]
    loc: Location | None = _LOC


@dataclass(frozen=True, slots=True)
class Arith:
    op: Literal["+", "-"]
    left: "Value"
    right: "Value"
    loc: Location | None = _LOC


@dataclass(frozen=True, slots=True)
class Neg:
    operand: "Value"
    loc: Location | None = _LOC


Value = Union[Name, IntLit, StrLit, Index, Call, Arith, Neg]


# ---- conditions ------------------------------------------------------------------------------
CompareOp = Literal["==", "!=", "<", "<=", ">", ">="]


@dataclass(frozen=True, slots=True)
class Compare:
    op: CompareOp
    left: Value
    right: Value
    loc: Location | None = _LOC


@dataclass(frozen=True, slots=True)
class Truth:
    """A value used as a condition on its own: `startswith(str[k], " ")`, `true`."""

    value: Value
    loc: Location | None = _LOC


@dataclass(frozen=True, slots=True)
class And:
    left: "Cond"
    right: "Cond"
    loc: Location | None = _LOC


@dataclass(frozen=True, slots=True)
class Or:
    left: "Cond"
    right: "Cond"
    loc: Location | None = _LOC


@dataclass(frozen=True, slots=True)
class Not:
    operand: "Cond"
    loc: Location | None = _LOC


Cond = Union[Compare, Truth, And, Or, Not]


# ---- pattern expressions (float [query, key] matrices) ------------------------------------
@dataclass(frozen=True, slots=True)
class Attend:
    """`attend k where COND`: ones where COND holds (and k <= q)."""

    var: str
    cond: Cond | None
    loc: Location | None = _LOC


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to another named pattern."""

    name: str
    loc: Location | None = _LOC


SetOp = Literal["union", "intersect", "add", "difference"]


@dataclass(frozen=True, slots=True)
class Combine:
    """`a | b` (max), `a & b` (min), `a + b` (sum), `a - b` (a where b is zero)."""

    op: SetOp
    left: "PExpr"
    right: "PExpr"
    loc: Location | None = _LOC


@dataclass(frozen=True, slots=True)
class Scale:
    """`0.8 * a`, or `a weight 0.8`."""

    factor: float
    operand: "PExpr"
    loc: Location | None = _LOC


@dataclass(frozen=True, slots=True)
class Shift:
    """`a shift +N`: every marked key moves N positions later (k -> k + N)."""

    offset: int
    operand: "PExpr"
    loc: Location | None = _LOC


@dataclass(frozen=True, slots=True)
class Normalize:
    """`normalize(a)`: each row scaled to sum 1 (rows without targets stay zero)."""

    operand: "PExpr"
    loc: Location | None = _LOC


PExpr = Union[Attend, Ref, Combine, Scale, Shift, Normalize]


# ---- settings and definitions -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MeasureSetting:
    measure: str
    loc: Location | None = _LOC


@dataclass(frozen=True, slots=True)
class ExcludeSetting:
    what: str
    loc: Location | None = _LOC


@dataclass(frozen=True, slots=True)
class ProbeSetting:
    probe: str
    args: tuple[tuple[str, int | float | str], ...]
    loc: Location | None = _LOC


@dataclass(frozen=True, slots=True)
class NormalizeSetting:
    loc: Location | None = _LOC


Setting = Union[MeasureSetting, ExcludeSetting, ProbeSetting, NormalizeSetting]


@dataclass(frozen=True, slots=True)
class Definition:
    name: str
    doc: str
    expr: PExpr
    settings: tuple[Setting, ...]
    source: str = field(default="", compare=False, hash=False, repr=False)
    loc: Location | None = _LOC


@dataclass(frozen=True, slots=True)
class Module:
    definitions: tuple[Definition, ...]
    filename: str | None = None
