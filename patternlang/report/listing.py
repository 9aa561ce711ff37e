"""What the listing commands show (`patternlang list / features / measures / cache`): rich tables and
JSON records built from the registries and the library, so the CLI only prints them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from patternlang.measure_table import MEASURE_TABLE  # torch-free: listing the measures loads no engine
from patternlang.models import weights_cache
from patternlang.syntax.builtins import FUNCTIONS
from patternlang.syntax.features import FEATURES, NEEDS


def patterns_json(patterns: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"name": p.name, "rule": p.rule, "doc": p.doc, "probe": str(p.settings.probe or ""),
             "measure": p.settings.measure, "file": Path(p.filename).name if p.filename else None}
            for p in patterns]


def patterns_table(patterns: Sequence[Any], title: str) -> Table:
    table = Table(title=Text(title), show_lines=True)
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("rule and settings", ratio=3)
    table.add_column("what it detects", ratio=2)
    for p in patterns:
        table.add_row(p.name, Text(p.rule), Text(p.description))
    return table


def features_json() -> dict[str, Any]:
    return {"features": [{"name": f.name, "kind": f.kind, "needs": sorted(f.needs), "doc": f.doc}
                         for f in FEATURES.entries()],
            "functions": [{"name": f.name, "args": list(f.args), "result": f.result, "doc": f.description}
                          for f in FUNCTIONS.values()]}


def features_tables() -> tuple[Table, Table]:
    """The token features, and the string functions."""
    table = Table(title=Text("Token features: write NAME[position], e.g. tok[k], str[q - 1]"))
    for column in ("feature", "kind", "needs", "value"):
        table.add_column(column, style="bold cyan" if column == "feature" else None)
    for feature in FEATURES.entries():
        needs = ", ".join(n for n in NEEDS if n in feature.needs)
        table.add_row(Text(f"{feature.name}[i]"), feature.kind, needs, Text(feature.doc))
    functions = Table(title="String functions")
    for column in ("function", "result", "value"):
        functions.add_column(column, style="bold cyan" if column == "function" else None)
    for function in FUNCTIONS.values():
        functions.add_row(Text(f"{function.name}({', '.join(function.args)})"), function.result,
                          Text(function.description))
    return table, functions


def measures_json() -> list[dict[str, Any]]:
    return [{"name": m.name, "range": m.range, "averaged_over": m.averaged_over, "doc": m.doc}
            for m in MEASURE_TABLE.entries()]


def measures_table() -> Table:
    table = Table(title="Measures: --measure NAME, or `measure NAME` in a pattern")
    for column in ("measure", "range", "mean over", "what it says"):
        table.add_column(column, style="bold cyan" if column == "measure" else None)
    for measure in MEASURE_TABLE.entries():
        table.add_row(measure.name, measure.range, measure.averaged_over, Text(measure.doc))
    return table


def cache_lines() -> list[str]:
    """`patternlang cache info`: the cache folder, its de-quantised weights and other items, sizes."""
    entries = weights_cache.cached_entries()
    others = weights_cache.other_cached()
    lines = [f"cache folder: {weights_cache.cache_base()} (move it with ${weights_cache.CACHE_ENV})",
             "de-quantised weights (weights/):"]
    lines += [f"  {entry.name}  {size / 2**20:,.0f} MiB" for entry, size in entries]
    if not entries:
        lines.append("  (empty: the next load of a GGUF model fills it)")
    if others:
        lines.append("also (joined GGUF files, saved tokenizers; rebuilt when needed):")
    lines += [f"  {kind}/{item.name}  {size / 2**20:,.0f} MiB" for kind, item, size in others]
    total = sum(size for _, size in entries) + sum(size for _, _, size in others)
    lines.append(f"in all: {total / 2**20:,.0f} MiB (`patternlang cache clear` deletes it)")
    return lines


def clear_cache() -> str:
    """Delete the cache; what was deleted, in words."""
    models, others = len(weights_cache.cached_entries()), len(weights_cache.other_cached())
    weights_cache.clear_cache()
    return f"deleted {models} cached model(s) and {others} other item(s) from {weights_cache.cache_base()}"
