"""The typed AST of the pattern language.

Nodes are frozen dataclasses named after the grammar rules. Each keeps its source
location in `loc`, which takes no part in equality or hashing, so the same rule
written in two places is one node for the compiler's cache.

Every node knows its children (`Node.children`, from its fields), so passes walk the
tree generically (`walk`) and dispatch on the node type with `Visitor`, which raises on
a node type it has no method for instead of skipping it. Linking shares sub-patterns
(`p2: p1 | p1` holds the *same* `p1` node twice), so the AST is a DAG: hashes are
computed once per node from the children's cached hashes, and `walk` visits each
shared node once. Both keep checking and compiling linear in the size of a file.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar, Union

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # Python 3.10: the backport (a dependency there)
    from typing_extensions import dataclass_transform

from ..errors import Location

_LOC = field(default=None, compare=False, hash=False, repr=False)


_N = TypeVar("_N", bound="Node")


class Node:
    """Base of every AST node: generic children, a hash cached at construction, cheap equality."""

    __slots__ = ("_hash",)
    _hash: int
    _child_fields: ClassVar[tuple[str, ...]] = ()
    _value_fields: ClassVar[tuple[str, ...]] = ()
    # Every concrete node is a dataclass (`@node`), which `dataclasses.replace` reads, and restores
    # its cached hash when unpickled (`node` sets `__setstate__`).
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
    __setstate__: ClassVar[Callable[[Any, Any], None]]

    def __post_init__(self) -> None:
        values = tuple(getattr(self, name) for name in self._value_fields)
        object.__setattr__(self, "_hash", hash((type(self).__name__, values)))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(other) is not type(self) or other._hash != self._hash:
            return False
        return _dag_equal(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __repr__(self) -> str:
        size = expanded_size(self)
        if size > MAX_REPR_NODES:  # a linked DAG written out as a tree can be astronomically long
            return f"{type(self).__name__}(<{size:,} nodes once shared sub-patterns are written out>)"
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._value_fields)
        return f"{type(self).__name__}({shown})"

    def children(self) -> tuple["Node", ...]:
        """The child nodes, in source order."""
        found: list[Node] = []
        for name in self._child_fields:
            value = getattr(self, name)
            if isinstance(value, Node):
                found.append(value)
            elif isinstance(value, tuple):
                found.extend(item for item in value if isinstance(item, Node))
        return tuple(found)

    def replace(self: _N, **changes: Any) -> _N:
        return dataclasses.replace(self, **changes)


def _dag_equal(first: Node, second: Node) -> bool:
    """Structural equality of two DAGs, each pair of nodes compared once (iteratively).

    Compared as trees, two separately built copies of `p40: p39 | p39` would take 2**40 steps."""
    compared: set[tuple[int, int]] = set()
    stack = [(first, second)]
    while stack:
        a, b = stack.pop()
        if a is b or (id(a), id(b)) in compared:
            continue
        if type(a) is not type(b) or a._hash != b._hash:
            return False
        compared.add((id(a), id(b)))
        for name in a._value_fields:
            left, right = getattr(a, name), getattr(b, name)
            if isinstance(left, Node) or isinstance(right, Node):
                if not (isinstance(left, Node) and isinstance(right, Node)):
                    return False
                stack.append((left, right))
            elif isinstance(left, tuple) and isinstance(right, tuple) and len(left) == len(right):
                for x, y in zip(left, right):
                    if isinstance(x, Node) and isinstance(y, Node):
                        stack.append((x, y))
                    elif isinstance(x, Node) or isinstance(y, Node) or x != y:
                        return False
            elif left != right:
                return False
    return True


@dataclass_transform(frozen_default=True, eq_default=False, field_specifiers=(field,))
def node(cls: type[_N]) -> type[_N]:
    """Make `cls` a frozen, slotted AST node whose hash and equality ignore `loc`."""
    made = dataclass(frozen=True, slots=True, eq=False, repr=False)(cls)
    restore = vars(made)["__setstate__"]  # dataclass's own: it restores the fields, not the cached hash

    def __setstate__(self: Node, state: Any) -> None:  # pickle, copy and deepcopy: the hash is recomputed
        restore(self, state)
        Node.__post_init__(self)

    made.__setstate__ = __setstate__
    names = tuple(f.name for f in dataclasses.fields(made) if f.compare)
    made._value_fields = names
    made._child_fields = names  # children() keeps the values that are nodes
    return made


def walk(root: Node) -> Iterator[Node]:
    """Every node reachable from `root`, each once (shared sub-patterns too), parents first.

    Iterative, so a deep tree cannot overflow the stack."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(reversed(current.children()))


MAX_REPR_NODES = 2_000


def expanded_size(root: Node) -> int:
    """How many nodes `root` has as a tree, shared sub-patterns counted each time (linear time)."""
    size: dict[int, int] = {}
    for current in post_order(root):
        size[id(current)] = 1 + sum(size[id(child)] for child in current.children())
    return size[id(root)]


def post_order(root: Node) -> list[Node]:
    """Every node reachable from `root`, each once, children before their parents."""
    order: list[Node] = []
    seen: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        current, expanded = stack.pop()
        if expanded:
            order.append(current)
            continue
        if id(current) in seen:
            continue
        seen.add(id(current))
        stack.append((current, True))
        stack.extend((child, False) for child in reversed(current.children()))
    return order


_R = TypeVar("_R")


class Visitor(Generic[_R]):
    """Dispatch on the node type: `visit(node)` calls `visit_<ClassName>(node)`, which returns `_R`
    (`Visitor[str]` writes text, `Visitor[None]` only checks).

    A node type without a method is an error (`TypeError`), never silently skipped, so a
    new node type cannot slip through a pass unnoticed."""

    def visit(self, current: Node, *args: Any) -> _R:
        method: Callable[..., _R] | None = getattr(self, "visit_" + type(current).__name__, None)
        if method is None:
            raise TypeError(f"{type(self).__name__} does not handle {type(current).__name__} nodes")
        return method(current, *args)


# ---- values inside a condition -----------------------------------------------------------
@node
class Name(Node):
    """`q`, `k`, `true` or `false`."""

    name: str
    loc: Location | None = _LOC


@node
class IntLit(Node):
    value: int
    loc: Location | None = _LOC


@node
class StrLit(Node):
    value: str
    loc: Location | None = _LOC


@node
class Index(Node):
    """A token feature at a position: `tok[k]`, `str[q - 1]`, `word[k]`."""

    feature: str
    index: "Value"
    loc: Location | None = _LOC


@node
class Call(Node):
    """A function of values: `lower(str[k])`, `startswith(str[k], "Ġ")`."""

    func: str
    args: tuple["Value", ...]
    loc: Location | None = _LOC


@node
class Arith(Node):
    op: Literal["+", "-"]
    left: "Value"
    right: "Value"
    loc: Location | None = _LOC


@node
class Neg(Node):
    operand: "Value"
    loc: Location | None = _LOC


Value = Union[Name, IntLit, StrLit, Index, Call, Arith, Neg]


# ---- conditions ------------------------------------------------------------------------------
CompareOp = Literal["==", "!=", "<", "<=", ">", ">="]


@node
class Compare(Node):
    op: CompareOp
    left: Value
    right: Value
    loc: Location | None = _LOC


@node
class Truth(Node):
    """A value used as a condition on its own: `startswith(str[k], " ")`, `true`."""

    value: Value
    loc: Location | None = _LOC


@node
class And(Node):
    left: "Cond"
    right: "Cond"
    loc: Location | None = _LOC


@node
class Or(Node):
    left: "Cond"
    right: "Cond"
    loc: Location | None = _LOC


@node
class Not(Node):
    operand: "Cond"
    loc: Location | None = _LOC


Cond = Union[Compare, Truth, And, Or, Not]


# ---- pattern expressions (float [query, key] matrices) ------------------------------------
Selection = Literal["all", "last", "first"]


@node
class Attend(Node):
    """`attend k where COND`: ones where COND holds (and k <= q).

    `select` "last" keeps, in each row, only the latest such key (`attend last k where COND`,
    the nearest earlier X); "first" only the earliest; "all" every one."""

    var: str
    cond: Cond | None
    select: Selection = "all"
    loc: Location | None = _LOC


@node
class Ref(Node):
    """A reference to another named pattern."""

    name: str
    loc: Location | None = _LOC


SetOp = Literal["union", "intersect", "add", "difference"]


@node
class Combine(Node):
    """`a | b` (max), `a & b` (min), `a + b` (sum), `a - b` (a where b is zero)."""

    op: SetOp
    left: "PExpr"
    right: "PExpr"
    loc: Location | None = _LOC


@node
class Scale(Node):
    """`0.8 * a`, or `a weight 0.8`."""

    factor: float
    operand: "PExpr"
    loc: Location | None = _LOC


@node
class Shift(Node):
    """`a shift +N`: every marked key moves N positions later (k -> k + N)."""

    offset: int
    operand: "PExpr"
    loc: Location | None = _LOC


@node
class Normalize(Node):
    """`normalize(a)`: each row scaled to sum 1 (rows without targets stay zero)."""

    operand: "PExpr"
    loc: Location | None = _LOC


PExpr = Union[Attend, Ref, Combine, Scale, Shift, Normalize]


# ---- settings and definitions -------------------------------------------------------------
@node
class MeasureSetting(Node):
    measure: str
    loc: Location | None = _LOC


@node
class ExcludeSetting(Node):
    what: str
    loc: Location | None = _LOC


@node
class ProbeSetting(Node):
    probe: str
    args: tuple[tuple[str, int | float | str], ...]
    loc: Location | None = _LOC


@node
class NormalizeSetting(Node):
    loc: Location | None = _LOC


@node
class RankSetting(Node):
    """`rank lowest` / `rank highest`: which end of the measure the candidates are at."""

    order: str
    loc: Location | None = _LOC


@node
class RequireSetting(Node):
    """`require copying > 0`: a head stays a candidate only where the measure meets the condition."""

    measure: str
    op: CompareOp
    value: float
    loc: Location | None = _LOC


Setting = Union[MeasureSetting, ExcludeSetting, ProbeSetting, NormalizeSetting, RankSetting, RequireSetting]


@node
class Definition(Node):
    name: str
    doc: str
    expr: PExpr
    settings: tuple[Setting, ...]
    source: str = field(default="", compare=False, hash=False, repr=False)
    loc: Location | None = _LOC


@node
class Module(Node):
    definitions: tuple[Definition, ...]
    filename: str | None = None
