"""Effects beside pattern scores: `attach_effects(scores, effects)` keeps each head's effect on a
metric in `Scores.effects` (written by `Scores.to_json` under "effects", read back by `from_json`).

    scores = detect(model, get_probe("ioi"), "name_mover_head")
    scores = attach_effects(scores, attribute(model, get_probe("ioi"), metric="logit_diff", positions="END"))
    scores.effects["logit_diff(IO, S1)"]["effects"]["L23H1"]   # {"estimate": ..., "ablation": ..., "ci": ...}
"""

from __future__ import annotations

import dataclasses
from typing import Any

from patternlang.effects.effect_results import Effects
from patternlang.errors import InputError


def attach_effects(scores: Any, effects: Effects) -> Any:
    """A copy of `scores` with `effects` added under its metric's label (one entry per metric)."""
    if not isinstance(effects, Effects):
        raise InputError(f"attach_effects takes the Effects of ablate, patch or attribute, not {type(effects).__name__}")
    if (scores.n_layers, scores.n_heads) != _shape(effects) and _shape(effects) is not None:
        raise InputError(f"the effects are of a model with {_shape(effects)} layers x heads, the scores of "
                         f"{scores.n_layers} x {scores.n_heads}")
    return dataclasses.replace(scores, effects={**dict(scores.effects), effects.metric: effects.to_dict()})


def _shape(effects: Effects) -> tuple[int, int] | None:
    heads = [h for effect in effects.entries.values() for h in effect.heads]
    if not heads:
        return None
    shape = effects.settings.get("shape")
    return tuple(shape) if shape else None
