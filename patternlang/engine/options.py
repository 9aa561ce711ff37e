"""`DetectOptions`: every option of a run, typed, documented and checked once (lark's `LarkOptions`).

`detect(model, prompts, patterns, **options)` builds one `DetectOptions` from its keyword
arguments; the plan reads it, and nothing passes the options down one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from patternlang.engine.measures import MEASURES
from patternlang.engine.pattern_tensors import Detector
from patternlang.engine.verdicts import required_measures
from patternlang.errors import InputError, did_you_mean
from patternlang.heads import check_heads

DEFAULT_MEASURE = "mass"


@dataclass(frozen=True, slots=True)
class DetectOptions:
    """How `detect` scores (docs: `detect`'s docstring, which describes each one).

    measures: measure names (a comma- or space-separated string, or a sequence); None: each
        pattern's own `measure` setting ("mass" where it names none).
    exclude_bos / exclude_current_token: leave key 0 / the diagonal out; None: each pattern's own.
    heads: None (every head), "5.1,6.9", "L5H1 L6H9", [(5, 1)] or {5: [1]}.
    batch_size: prompts per forward pass; None chooses from free memory.
    device: where detection tensors and reductions live (default: the model's).
    progress: show a progress bar where someone watches (a terminal, a notebook).
    prepend_bos: prepend BOS to text prompts.
    per_prompt: also keep every prompt's own scores.
    attention: "auto", "blocks", "pattern", or a capture function (`blocked.CaptureBlocks`).
    chunk_size: prompts read, tokenized and batched at a time.
    checkpoint / checkpoint_every: a folder for the running sums, saved every N batches.
    interventions: changes to the forward pass (`readers.Intervention`); none by default.
    """

    measures: str | Sequence[str] | None = None
    exclude_bos: bool | None = None
    exclude_current_token: bool | None = None
    heads: Any = None
    batch_size: int | None = None
    device: torch.device | str | None = None
    progress: bool = True
    prepend_bos: bool = True
    per_prompt: bool = False
    attention: str | Callable[..., Any] = "auto"
    chunk_size: int | None = None
    checkpoint: str | Path | None = None
    checkpoint_every: int | None = None
    interventions: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        """Every option checked once, here, before any model loads (the measure names, how the heads
        are written, the counts); `measures` becomes a tuple of known names."""
        if self.measures is not None:
            object.__setattr__(self, "measures", check_measures(self.measures))
        check_heads(self.heads)
        for name in ("batch_size", "chunk_size", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InputError(f"{name} must be a positive integer or None, got {value!r}")

    @property
    def measure_names(self) -> tuple[str, ...] | None:
        """`measures` as `__post_init__` leaves it: known names in order, or None (each pattern's own)."""
        measures = self.measures
        if measures is None or isinstance(measures, tuple):
            return measures
        return check_measures(measures)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def check_measures(measures: str | Sequence[str] | None, detectors: Sequence[Detector] = ()) -> tuple[str, ...]:
    """The measures to compute, in order, without repeats; unknown names raise `InputError`."""
    if measures is None:
        # Each pattern's own measure (or the default), in pattern order.
        measures = [own_measure(d) for d in detectors] or [DEFAULT_MEASURE]
    elif isinstance(measures, str):
        measures = [m for m in measures.replace(",", " ").split() if m]
    elif not isinstance(measures, Iterable) or isinstance(measures, (bytes, bytearray, set, frozenset)):
        raise InputError(f"measures must be a measure's name, names separated by commas or a list of names, "
                         f"not {type(measures).__name__}", hint='measures="mass,tv" or measures=["mass", "tv"]')
    measures = [*measures, *required_measures(detectors)]  # [verdicts] what `require` conditions read
    chosen: list[str] = []
    for measure in measures:
        if not isinstance(measure, str):
            raise InputError(f"measures must be names (strings), not {type(measure).__name__} ({measure!r:.40})",
                             hint="choose from " + ", ".join(MEASURES))
        if measure not in MEASURES:
            raise InputError(f"unknown measure {measure!r}; measures are " + ", ".join(MEASURES),
                             hint=did_you_mean(str(measure), MEASURES) or "`patternlang measures` explains them")
        if measure not in chosen:
            chosen.append(measure)
    if not chosen:
        raise InputError("no measures given", hint="choose from " + ", ".join(MEASURES))
    return tuple(chosen)


def check_measure_scored(name: str, measures: tuple[str, ...] | None, patterns: Sequence[Any], *,
                         survey: bool, what: str = "--heatmap-measure") -> None:
    """`name` is a measure the run scores: one of `measures`, or else of the patterns' own measures
    (and mass, which a survey always scores)."""
    check_measures(name)  # a measure at all (with a did-you-mean)
    scored = measures or tuple(dict.fromkeys((("mass",) if survey else ()) + check_measures(None, patterns)))
    if name not in scored:
        raise InputError(f"{what} {name} is not among the measures scored ({', '.join(scored)})",
                         hint=f"score it too: --measure {','.join((*scored, name))}")


def own_measure(detector: Any) -> str:
    """A pattern's own measure (`measure tv` in its definition), or the default."""
    return getattr(detector.settings, "measure", None) or DEFAULT_MEASURE


def pattern_setting(explicit: bool | None, detector: Detector, name: str) -> bool:
    """An exclusion as asked (`explicit`), else the pattern's own setting (False for tensors)."""
    if explicit is not None:
        return bool(explicit)
    settings = detector.settings
    return bool(getattr(settings, name, False)) if settings is not None else False
