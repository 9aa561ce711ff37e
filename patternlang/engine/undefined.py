"""Scores left NaN on heads that were asked for, and why: `Scores.settings["undefined"]` and a `ScoreWarning`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from patternlang.engine.accumulate import asked_heads
from patternlang.engine.measures import MEASURES


class ScoreWarning(UserWarning):
    """Some scores are undefined (NaN); the message says which and why."""


def undefined_scores(values: dict[str, Tensor], patterns: Sequence[str], heads: dict[int, tuple[int, ...] | None],
                     target_rows: Tensor | None = None) -> dict[str, dict[str, str]]:
    """`{pattern: {measure: why}}` for every score left NaN on a head that was asked for
    (`target_rows[i]`: pattern i's number of target rows, where known)."""
    n_layers, n_heads = next(iter(values.values())).shape[1:]
    asked = asked_heads(heads, n_layers, n_heads)
    undefined: dict[str, dict[str, str]] = {}
    for measure, scores in values.items():
        averaged_over = MEASURES[measure].averaged_over
        for index, name in enumerate(patterns):
            if not torch.isnan(scores[index][asked]).any():
                continue
            if averaged_over == "target rows" and (target_rows is None or target_rows[index] == 0):
                why = ("no target rows: on these prompts the pattern marks no counted key in any row "
                       "(try other prompts, or this pattern's own probe)")
            elif averaged_over == "target rows":
                why = "the model's attention holds non-finite values (NaN or inf) on counted cells"
            else:
                why = ("a prompt where a head has no counted attention (a one-token prompt with "
                       "exclude bos, say) makes this per-prompt mean NaN, as in TransformerLens")
            undefined.setdefault(name, {})[measure] = why
    return undefined


def describe_undefined(undefined: dict[str, dict[str, str]], n_prompts: int) -> str:
    lines = [f"some scores are undefined (NaN) on these {n_prompts} prompts:"]
    for pattern, reasons in undefined.items():
        for measure, why in reasons.items():
            lines.append(f"  {pattern} ({measure}): {why}")
    return "\n".join(lines)
