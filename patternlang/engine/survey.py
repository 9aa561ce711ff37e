"""Score patterns on the prompts that suit each of them: their default probes.

`detect` scores many patterns on one prompt set. A survey of the shipped library needs
several prompt sets (induction on repeated random tokens, current-word on natural text), so
it groups patterns by probe, runs `detect` once per group and joins the results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from patternlang.engine.detection import detect_with
from patternlang.engine.hooked import HookedModel
from patternlang.engine.options import DetectOptions
from patternlang.engine.progress import one_run
from patternlang.engine.score_records import RunSettings
from patternlang.engine.scores import Scores
from patternlang.library import load_patterns, shipped_patterns
from patternlang.pattern import Pattern
from patternlang.probes import make_probe
from patternlang.settings import ProbeSpec

FALLBACK_PROBE = ProbeSpec("natural")


def survey(model: HookedModel, patterns: Any = None, *, probe: ProbeSpec | None = None,
           options: DetectOptions | None = None, **detect_args: Any) -> Scores:
    """Score each pattern on its own default probe (or every pattern on `probe`).

    `patterns`: anything `detect` takes; None means every shipped pattern. Patterns without a
    default probe use natural text. `options` (or `detect`'s keyword arguments): how each run scores.

    >>> scores = survey(load_model())  # every shipped pattern  # doctest: +SKIP
    >>> scores.settings["probes"]["induction_head"]  # doctest: +SKIP
    'repeated_random'
    """
    chosen = _distinct_names(shipped_patterns() if patterns is None else load_patterns(
        patterns if isinstance(patterns, (list, tuple)) else [patterns]))
    options = options if options is not None else DetectOptions(**detect_args)
    if options.measures is None:
        # One set of measures for every group: mass, plus any measure a pattern names as its own.
        named = [p.settings.measure for p in chosen if p.settings.measure]
        named += [r.measure for p in chosen for r in p.settings.requires]  # [verdicts] read on the same prompts
        options = replace(options, measures=tuple(dict.fromkeys(["mass", *named])))
    groups: dict[ProbeSpec, list[Pattern]] = {}
    for pattern in chosen:
        spec = probe or pattern.settings.probe or FALLBACK_PROBE
        groups.setdefault(spec, []).append(pattern)
    with one_run():  # one run for the progress bar's delay
        parts = [(spec, detect_with(model, make_probe(spec.name, spec.args, model=model), members, options))
                 for spec, members in groups.items()]
    return join_scores(parts, order=[p.name for p in chosen])


def _distinct_names(patterns: list[Pattern]) -> list[Pattern]:
    """Two patterns of the same name (from two files, say) are told apart as `name`, `name#2`."""
    seen: dict[str, int] = {}
    distinct = []
    for pattern in patterns:
        seen[pattern.name] = seen.get(pattern.name, 0) + 1
        count = seen[pattern.name]
        distinct.append(pattern if count == 1 else replace(pattern, name=f"{pattern.name}#{count}"))
    return distinct


def join_scores(parts: Sequence[tuple[ProbeSpec, Scores]], order: Sequence[str]) -> Scores:
    """One Scores from several runs over the same model and measures."""
    first = parts[0][1]
    index = {(name): (part, i) for _, part in parts for i, name in enumerate(part.patterns)}
    names = [name for name in order if name in index]
    names = list(dict.fromkeys(names))
    def stacked(field: str) -> dict[str, torch.Tensor]:
        if not all(getattr(index[name][0], field) for name in names):
            return {}
        return {measure: torch.stack([getattr(index[name][0], field)[measure][index[name][1]] for name in names])
                for measure in first.measures}

    values = stacked("values")
    settings = dict(first.settings)
    settings["probes"] = {name: str(spec) for spec, part in parts for name in part.patterns}
    for key in ("pattern_measures", "exclusions", "undefined",  # per-pattern records, one from each run
                "pattern_ranks", "pattern_requires", "positional_baselines", "positional_patterns"):  # [verdicts]
        settings[key] = {name: value for _, part in parts for name, value in dict(part.settings).get(key, {}).items()}
    if not settings["undefined"]:
        del settings["undefined"]
    if len(parts) > 1:
        settings["runs"] = [{"probe": str(spec), "patterns": list(part.patterns), "n_prompts": part.n_prompts,
                             "n_tokens": part.n_tokens, **dict(part.settings)} for spec, part in parts]
    return Scores(
        patterns=tuple(names), measures=first.measures, values=values, model=first.model,
        n_prompts=sum(part.n_prompts for _, part in parts), n_tokens=sum(part.n_tokens for _, part in parts),
        settings=RunSettings.from_dict(settings), n_layers=first.n_layers, n_heads=first.n_heads,
        sources=tuple(source for _, part in parts for source in part.sources),
        ci_low=stacked("ci_low"), ci_high=stacked("ci_high"),
        evidence={name: index[name][0].evidence[name] for name in names if name in index[name][0].evidence},
        per_prompt={name: index[name][0].per_prompt[name] for name in names if name in index[name][0].per_prompt},
    )
