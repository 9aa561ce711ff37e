"""How a run's attention was read, as `Scores.settings["attention"]` records it, joined over chunks and ranks."""

from __future__ import annotations

from typing import Any

__all__ = ["merge_attention_paths"]


def merge_attention_paths(earlier: dict[str, Any] | None, path: dict[str, Any]) -> dict[str, Any]:
    """The provenance of a run read in several calls (a streamed run's chunks choose their path
    each): the same path stays as it is, block sizes are joined, and a run that took both paths
    says so: `{"path": "mixed", "paths": {"blocks": {...}, "hook_pattern": {...}}}`."""
    if path.get("path") == "mixed":  # another run's joined provenance (a rank's): its parts one by one
        merged = earlier
        for part in path["paths"].values():
            merged = merge_attention_paths(merged, part)
        return dict(path) if merged is None else merged
    if earlier is None or earlier == path:
        return dict(path)
    paths = dict(earlier["paths"]) if earlier.get("path") == "mixed" else {earlier["path"]: earlier}
    name = path["path"]
    if name not in paths:
        paths[name] = dict(path)
    elif name == "blocks":  # join the block sizes; a hook_pattern path keeps its first reason
        sizes = sorted(set(_as_list(paths[name].get("query_block"))) | set(_as_list(path.get("query_block"))))
        paths[name] = {**paths[name], "query_block": sizes[0] if len(sizes) == 1 else sizes}
    return dict(next(iter(paths.values()))) if len(paths) == 1 else {"path": "mixed", "paths": paths}


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
