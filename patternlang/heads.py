"""Head labels, parsed and written in one place: `L5H1` (TransformerLens' way) or `5.1`.

Below the engine and the report (both import it); imports nothing of patternlang but its errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from patternlang.errors import InputError

HeadsSpec = Any  # None | "5.1,6.9" | "L5H1 L6H9" | [(5, 1), "L6H9"] | {5: [1, 2]}

_HEAD_TEXT = re.compile(r"^\s*(?:[lL](\d+)[hH](\d+)|(\d+)\s*[.:]\s*(\d+))\s*$")


def head_label(layer: int, head: int) -> str:
    """TransformerLens' way of naming a head: `head_label(5, 1) == "L5H1"`."""
    return f"L{layer}H{head}"


def parse_head(label: str) -> tuple[int, int]:
    """One head label as `(layer, head)`: "L5H1", "l5h1", "5.1" or "5:1".

    >>> parse_head("L12H3")
    (12, 3)
    >>> parse_head("5.1")
    (5, 1)
    """
    if not isinstance(label, str):
        raise InputError(f"cannot read a head from {label!r}", hint='write heads as "5.1" or "L5H1"')
    match = _HEAD_TEXT.match(label)
    if match is None:
        raise InputError(f"cannot read a head from {label!r}", hint='write heads as "5.1" or "L5H1"')
    layer, head = (match.group(1), match.group(2)) if match.group(1) is not None else (match.group(3), match.group(4))
    return int(layer), int(head)


def parse_heads(spec: HeadsSpec, n_layers: int, n_heads: int) -> dict[int, tuple[int, ...] | None]:
    """`{layer: chosen heads}` with `None` meaning every head of the layer; layers in order.

    Accepts None (every head), "5.1,6.9" or "L5H1 L6H9", a list of `(layer, head)` pairs
    or head strings, one `(layer, head)` pair, or a dict `{layer: [heads]}` (`{layer: None}`:
    every head of that layer, as this function's own result writes it).

    >>> parse_heads("L1H0, 0.2", n_layers=2, n_heads=4)
    {0: (2,), 1: (0,)}
    """
    if spec is None:
        return {layer: None for layer in range(n_layers)}
    pairs = _pairs(spec)
    if not pairs:
        raise InputError("no heads chosen", hint="leave heads=None to score every head")
    chosen: dict[int, set[int]] = {}
    for layer, head in pairs:
        if head is None and 0 <= layer < n_layers:  # {layer: None}: every head of the layer
            chosen.setdefault(layer, set()).update(range(n_heads))
            continue
        if not 0 <= layer < n_layers or not 0 <= (head or 0) < n_heads:
            raise InputError(
                f"{'layer ' + str(layer) if head is None else 'head ' + head_label(layer, head)} is out of range: "
                f"the model has {n_layers} layers "
                f"(0-{n_layers - 1}) and {n_heads} heads per layer (0-{n_heads - 1})"
            )
        chosen.setdefault(layer, set()).add(head if head is not None else 0)  # None was handled above
    return {
        layer: None if len(heads) == n_heads else tuple(sorted(heads))
        for layer, heads in sorted(chosen.items())
    }


def check_heads(spec: HeadsSpec) -> None:
    """Check how heads are written, before any model is loaded (their range needs the model).

    >>> check_heads("L5H1, 6.9")
    """
    if spec is not None and not _pairs(spec):
        raise InputError("no heads chosen", hint="leave heads=None to score every head")


def _pairs(spec: HeadsSpec) -> list[tuple[int, int | None]]:
    if isinstance(spec, str):
        parts = [p for p in re.split(r"[,\s]+", spec.strip()) if p]
        return [parse_head(p) for p in parts]
    if isinstance(spec, Mapping):
        pairs: list[tuple[int, int | None]] = []
        for layer, heads in spec.items():
            if heads is None:  # every head of the layer
                pairs.append((_as_int(layer, spec), None))
                continue
            if isinstance(heads, int):
                heads = [heads]
            pairs.extend((_as_int(layer, spec), _as_int(h, spec)) for h in heads)
        return pairs
    if isinstance(spec, tuple) and len(spec) == 2 and all(_is_int(x) for x in spec):
        return [(int(spec[0]), int(spec[1]))]
    try:
        items = list(spec)
    except TypeError:
        raise InputError(f"cannot read heads from {spec!r}",
                         hint='use "5.1,6.9", "L5H1", [(5, 1)] or {5: [1]}') from None
    pairs = []
    for item in items:
        if isinstance(item, str):
            pairs.append(parse_head(item))
        elif isinstance(item, (tuple, list)) and len(item) == 2 and all(_is_int(x) for x in item):
            pairs.append((int(item[0]), int(item[1])))
        else:
            raise InputError(f"cannot read a head from {item!r}", hint='use (layer, head), "5.1" or "L5H1"')
    return pairs


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) or (hasattr(x, "__index__") and not isinstance(x, bool))


def _as_int(x: Any, spec: Any) -> int:
    if not _is_int(x):
        raise InputError(f"cannot read heads from {spec!r}: {x!r} is not an integer")
    return int(x)


def heads_labels(heads: dict[int, tuple[int, ...] | None], n_heads: int) -> list[str]:
    """The chosen heads as labels, layer by layer: `["L0H2", "L1H0"]`."""
    return [head_label(layer, h) for layer, hs in heads.items() for h in (range(n_heads) if hs is None else hs)]
