"""Effects in an atlas document: `add_effects(doc, effects)` stores each head's effect on a metric
under `doc["effects"][metric]`, compact (rounded), beside the document's pattern scores, so that a
head page can say "attends like X, and matters for Y" (the head pages list them, the model page maps them).

    doc["effects"]["logit_diff(IO, S1)"] = {"probe": ..., "method": "zero", "positions": "END",
        "direction": "higher", "clean": 3.34, "rank_correlation": 0.97,
        "heads": {"L23H3": {"estimate": -1.71, "ablation": -1.49, "ci": [-1.92, -1.07]}, ...}}
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import Any

from patternlang.effects.effect_results import Effects
from patternlang.errors import InputError

DIGITS = 3


def _round(value: Any) -> float | None:
    if value is None or not math.isfinite(float(value)):
        return None
    return round(float(value), DIGITS)


def document_effects(effects: Effects) -> dict[str, Any]:
    """The compact form of `effects` an atlas document keeps."""
    data = effects.to_dict()
    key = effects.exact_key
    heads = {label: {"estimate": _round(entry["estimate"]), "ablation": _round(entry[key]),
                     "ci": None if entry["ci"] is None else [_round(entry["ci"][0]), _round(entry["ci"][1])]}
             for label, entry in data["effects"].items()}
    return {"probe": data["settings"].get("prompts"), "kind": data["kind"], "method": data["method"],
            "positions": data["positions"], "direction": data["direction"], "n_prompts": data["n_prompts"],
            "clean": _round(data["clean"]["mean"]), "rank_correlation": _round(data["rank_correlation"]),
            "heads": heads}


def add_effects(doc: MutableMapping[str, Any], effects: Effects) -> MutableMapping[str, Any]:
    """Add `effects` to an atlas document of the same model shape (in place; returned)."""
    shape = effects.settings.get("shape")
    model = doc.get("model", {})
    if shape and isinstance(model, dict) and [model.get("n_layers"), model.get("n_heads")] != list(shape):
        raise InputError(f"the effects are of a {shape[0]} x {shape[1]} model, the atlas document's is "
                         f"{model.get('n_layers')} x {model.get('n_heads')}")
    doc.setdefault("effects", {})[effects.metric] = document_effects(effects)
    return doc
