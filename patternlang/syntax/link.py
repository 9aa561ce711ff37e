"""The link pass: names resolved, cycles found, references filled in by sharing.

A reference to another pattern (`previous_token_head`, or a name defined earlier in the same
file) is replaced by that pattern's own linked expression: the *same* node, not a copy. A
file that reuses patterns (`p2: p1 | p1`, `p3: p2 | p2`, ...) therefore links into a DAG
whose size is the size of the file, and every later pass walks it once per node. Depth and
weight limits are checked on the linked DAG, so a chain of references cannot build an
expression too deep to compile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import get_args

from ..errors import CycleError, Location, PatternError, PatternTypeError, UnknownNameError, did_you_mean
from . import ast
from .problems import Problems

# Bounds that keep every matrix finite in float32.
MAX_WEIGHT = 1e6
MAX_TOTAL_WEIGHT = 1e12
MIN_TOTAL_WEIGHT = 1e-24
MAX_ROW_KEYS = 1e6
# Levels of nesting a linked expression may have (conditions included); the compiler and
# the reference evaluator recurse over them.
MAX_LINKED_DEPTH = 150


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """What a reference links to: a pattern's linked expression, and whether it is normalised."""

    expr: ast.PExpr
    normalize: bool = False


def link(module: ast.Module, library: Mapping[str, LinkTarget], problems: Problems,
         normalized: Mapping[str, bool] | None = None) -> dict[str, ast.PExpr]:
    """Linked expressions of a file's definitions, by name (those with problems are left out).

    `library` holds the patterns known from elsewhere (the shipped ones); names defined in
    the file come first. `normalized[name]` says whether a local pattern has the
    `normalize` setting, which a reference to it keeps.
    """
    normalized = normalized or {}
    local: dict[str, ast.Definition] = {}
    duplicates: list[ast.Definition] = []
    for definition in module.definitions:
        if definition.name in local:
            problems.add(PatternError(f"pattern {definition.name!r} is defined twice in this file",
                                      definition.loc, hint="rename one of them"))
            duplicates.append(definition)
        else:
            local[definition.name] = definition
    references = {name: _references(d.expr) for name, d in local.items()}
    failed: set[str] = set()
    for name, refs in references.items():
        if _unknown_references(name, refs, local, library, problems):
            failed.add(name)
    # A second definition of a name is checked too, so its own problems are not hidden.
    checked_duplicates = [d for d in duplicates
                          if not _unknown_references(d.name, _references(d.expr), local, library, problems)]
    linked: dict[str, ast.PExpr] = {}

    def targets_of(refs: list[ast.Ref]) -> dict[str, LinkTarget]:
        return {ref.name: (LinkTarget(linked[ref.name], normalized.get(ref.name, False)) if ref.name in local
                           else library[ref.name]) for ref in refs}

    for name in _dependency_order(local, references, problems, failed):
        if name in failed or any(ref.name in failed for ref in references[name] if ref.name in local):
            failed.add(name)  # its reference's problem is reported already
            continue
        expr = fill_references(local[name].expr, targets_of(references[name]))
        problems.pattern = _shown(name)
        if _check_linked(expr, local[name].loc, problems):
            linked[name] = expr
        else:
            failed.add(name)
    for duplicate in checked_duplicates:
        refs = _references(duplicate.expr)
        if all(ref.name in linked or ref.name not in local for ref in refs):
            problems.pattern = _shown(duplicate.name)
            _check_linked(fill_references(duplicate.expr, targets_of(refs)), duplicate.loc, problems)
    problems.pattern = None
    return linked


def _unknown_references(name: str, refs: list[ast.Ref], local: Mapping[str, ast.Definition],
                        library: Mapping[str, LinkTarget], problems: Problems) -> bool:
    """Report the references of definition `name` that name no pattern; True when there are some."""
    problems.pattern = _shown(name)
    unknown = False
    for ref in refs:
        if ref.name not in local and ref.name not in library:
            problems.add(UnknownNameError(f"unknown pattern {ref.name!r}", ref.loc,
                                          did_you_mean(ref.name, list(local) + list(library))))
            unknown = True
    return unknown


_CONDITION_OR_VALUE = get_args(ast.Cond) + get_args(ast.Value)  # nodes that hold no pattern reference


def _shown(name: str) -> str | None:
    """The name errors give for a definition (an inline rule's stand-in name is not shown)."""
    return None if name.startswith("<rule ") else name


def _references(expr: ast.PExpr) -> list[ast.Ref]:
    return [node for node in ast.walk(expr) if isinstance(node, ast.Ref)]


def fill_references(expr: ast.PExpr, targets: Mapping[str, LinkTarget]) -> ast.PExpr:
    """`expr` with every `Ref` replaced by its target's expression, shared, not copied.

    Nodes without references below them are kept as they are; the rest are rebuilt once
    each (children first, iteratively, so deep expressions are fine)."""
    rebuilt: dict[int, ast.Node] = {}
    for node in ast.post_order(expr):
        if isinstance(node, ast.Ref):
            target = targets[node.name]
            rebuilt[id(node)] = ast.Normalize(target.expr, loc=node.loc) if target.normalize else target.expr
        elif isinstance(node, (ast.Combine, ast.Scale, ast.Shift, ast.Normalize)):
            changes = {name: rebuilt[id(value)] for name in node._child_fields
                       if isinstance(value := getattr(node, name), ast.Node) and rebuilt.get(id(value)) is not value}
            rebuilt[id(node)] = node.replace(**changes) if changes else node
        elif isinstance(node, (ast.Attend, *_CONDITION_OR_VALUE)):
            rebuilt[id(node)] = node  # no references inside
        else:
            raise TypeError(f"the link pass does not handle {type(node).__name__} nodes")
    root = rebuilt[id(expr)]
    if not isinstance(root, (ast.Attend, ast.Ref, ast.Combine, ast.Scale, ast.Shift, ast.Normalize)):  # as it was
        raise TypeError(f"the link pass rebuilt a pattern as a {type(root).__name__} node")
    return root


def _dependency_order(local: Mapping[str, ast.Definition], references: Mapping[str, list[ast.Ref]],
                      problems: Problems, failed: set[str]) -> list[str]:
    """Local names ordered so that each comes after those it refers to; cycles are problems."""
    order: list[str] = []
    state: dict[str, str] = {}
    for start in local:
        if start in state:
            continue
        # Iterative depth-first search; the path gives the cycle for the message.
        path: list[tuple[str, list[ast.Ref]]] = [(start, list(references[start]))]
        state[start] = "open"
        while path:
            name, pending = path[-1]
            if not pending:
                state[name] = "done"
                order.append(name)
                path.pop()
                continue
            ref = pending.pop(0)
            if ref.name not in local:
                continue
            if state.get(ref.name) == "open":
                names = [n for n, _ in path]
                cycle = names[names.index(ref.name):] + [ref.name]
                problems.add(CycleError("patterns refer to each other in a loop: " + " -> ".join(cycle),
                                        ref.loc, hint="a pattern cannot contain itself"))
                failed.update(cycle)
                continue
            if ref.name not in state:
                state[ref.name] = "open"
                path.append((ref.name, list(references[ref.name])))
    return order


def _check_linked(expr: ast.PExpr, loc: Location | None, problems: Problems) -> bool:
    """Depth and weight limits of a linked expression, computed once per shared node.

    Every intermediate matrix must stay finite and its smallest non-zero value above
    float32's underflow, or `0 * (...)` and `normalize(...)` would turn an overflow into NaN."""
    depth: dict[int, int] = {}
    largest: dict[int, float] = {}   # the largest value a node's matrix can hold
    smallest: dict[int, float] = {}  # its smallest non-zero value
    for node in ast.post_order(expr):
        depth[id(node)] = 1 + max((depth[id(child)] for child in node.children()), default=0)
        if isinstance(node, ast.Combine):
            left, right = id(node.left), id(node.right)
            largest[id(node)] = (largest[left] + largest[right] if node.op == "add"
                                 else max(largest[left], largest[right]))
            smallest[id(node)] = min(smallest[left], smallest[right])
        elif isinstance(node, ast.Scale):
            factor = node.factor if math.isfinite(node.factor) and 0 <= node.factor <= MAX_WEIGHT else 1.0  # kinds reports it
            largest[id(node)] = largest[id(node.operand)] * factor
            smallest[id(node)] = smallest[id(node.operand)] * factor if factor > 0 else math.inf
        elif isinstance(node, ast.Shift):
            largest[id(node)], smallest[id(node)] = largest[id(node.operand)], smallest[id(node.operand)]
        elif isinstance(node, ast.Normalize):
            inner = id(node.operand)
            largest[id(node)] = 1.0
            # a row of up to MAX_ROW_KEYS keys: its smallest share
            smallest[id(node)] = min(1.0, smallest[inner] / max(largest[inner], 1e-300) / MAX_ROW_KEYS)
        elif isinstance(node, (ast.Attend, *_CONDITION_OR_VALUE)):  # ones; conditions carry no weight
            largest[id(node)], smallest[id(node)] = 1.0, 1.0
        else:
            raise TypeError(f"the link pass does not handle {type(node).__name__} nodes")
    ok = True
    if depth[id(expr)] > MAX_LINKED_DEPTH:
        problems.add(PatternError(
            f"the pattern is nested too deeply once its references are filled in ({depth[id(expr)]} levels, "
            f"at most {MAX_LINKED_DEPTH})", loc, hint="shorten the chain of patterns that build on each other"))
        ok = False
    top = max(largest.values())
    if top > MAX_TOTAL_WEIGHT:
        problems.add(PatternTypeError(f"the weights multiply up to {top:g}, more than {MAX_TOTAL_WEIGHT:g}",
                                      loc, hint="use smaller weights"))
        ok = False
    bottom = min(smallest.values())
    if bottom < MIN_TOTAL_WEIGHT:
        problems.add(PatternTypeError(f"the weights multiply down to {bottom:g}, less than {MIN_TOTAL_WEIGHT:g}, "
                                      "where float32 loses them", loc, hint="use larger weights"))
        ok = False
    return ok
