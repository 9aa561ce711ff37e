"""`ablate`, `patch` and `attribute`: does a head matter for a metric?

All three replace heads' outputs `z` (`blocks.{l}.attn.hook_z`, TransformerLens' convention) at
the chosen positions (every token, or the tokens of a span label such as `END`) and compare the
metric with the clean run, prompt by prompt.

- `ablate`: `method="zero"` (z set to 0), `"mean"` (z set to its mean over every prompt's chosen
  positions, per head), `"resample"` (z taken from another prompt, drawn with `seed`: at the same
  position for `positions=None`, among prompts of the same length; at the same rank among the
  chosen positions for a label). Each head alone, or the heads as one set (`together=True`), with
  `random_sets` random sets of the same size from the same layers as a baseline.
- `patch`: each head's z at the chosen positions copied from the `corrupted` run of paired prompts
  (same token length; `ioi(variant="abc")` gives the IOI paper's ABC prompts) into the clean run.
- `attribute`: every head's effect estimated from one forward and one backward pass (attribution
  patching, Nanda 2023: the metric's gradient with respect to z, dotted with the change the
  intervention makes to z), then the `top_k` heads by the size of their estimate intervened on
  exactly, and Spearman's rank correlation between estimate and exact effect among them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Literal

import torch

from patternlang.effects.effect_inputs import EffectInputs, Positions, prepare
from patternlang.effects.metrics import Metric, resolve_metric
from patternlang.effects.passes import CleanRun, Heads, Replacement, Shape, clean_pass, intervened, n_batches
from patternlang.effects.effect_results import Effect, Effects, random_baseline, rank_correlation
from patternlang.engine.progress import progress_reporter
from patternlang.errors import InputError
from patternlang.heads import head_label, parse_heads
from patternlang.models.facts import model_facts

Method = Literal["zero", "mean", "resample"]
METHODS = ("zero", "mean", "resample")
MAX_RANDOM_SETS = 10_000


def _check(method: str, positions: Positions, random_sets: int = 0) -> None:
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if positions is not None and (not isinstance(positions, str) or not positions.strip()):
        raise InputError(f"positions must be None (every token) or a span label such as 'END', not {positions!r}")
    if isinstance(random_sets, bool) or not isinstance(random_sets, int) or not 0 <= random_sets <= MAX_RANDOM_SETS:
        raise InputError(f"random_sets must be a whole number from 0 to {MAX_RANDOM_SETS:,}, not {random_sets!r}")


def head_list(spec: Any, shape: Shape) -> list[tuple[int, int]]:
    """Heads as `(layer, head)` pairs, layer by layer (None: every head of the model)."""
    chosen = parse_heads(spec, shape.n_layers, shape.n_heads)
    return [(layer, h) for layer, hs in chosen.items() for h in (range(shape.n_heads) if hs is None else hs)]


def set_label(heads: Heads) -> str:
    return "+".join(head_label(*h) for h in heads)


def replacement_for(method: str, clean: CleanRun, inputs: EffectInputs, positions: Positions,
                    seed: int) -> Replacement:
    """What replaces z: zeros, the mean over every prompt's chosen positions, or another prompt's."""
    if method == "zero":
        return Replacement("zero")
    if method == "mean":
        return Replacement("mean", mean=torch.cat(clean.z).mean(dim=0))  # [n_layers, n_heads, d_head]
    return Replacement("resample", per_prompt=[_aligned(clean.z[source], clean.z[index].shape[0])
                                              for index, source in enumerate(resample_sources(inputs, positions, seed))])


def resample_sources(inputs: EffectInputs, positions: Positions, seed: int) -> list[int]:
    """For each prompt, the other prompt its z is taken from: a random derangement, within prompts
    of the same length when every position is replaced."""
    n = len(inputs)
    if n < 2:
        raise InputError("resample ablation needs at least 2 prompts (each takes another prompt's z)")
    groups: dict[int, list[int]] = {}
    for index, tokens in enumerate(inputs.token_lists):
        groups.setdefault(tokens.numel() if positions is None else 0, []).append(index)
    rng = random.Random(seed)
    sources = [0] * n
    for length, members in groups.items():
        if len(members) < 2:
            raise InputError(f"resample ablation at every position takes z from another prompt of the same length, "
                             f"and prompt {members[0]} is the only one of {length} tokens",
                             hint="ablate at a span (positions='END') or give prompts of equal length")
        shift = rng.randrange(1, len(members))
        shuffled = members[:]
        rng.shuffle(shuffled)
        for i, member in enumerate(shuffled):  # a cyclic shift of a shuffle: nobody keeps their own
            sources[member] = shuffled[(i + shift) % len(shuffled)]
    return sources


def _aligned(source: torch.Tensor, count: int) -> torch.Tensor:
    """The source's chosen positions matched to `count` of the target's by rank (the last repeated)."""
    if source.shape[0] == count:
        return source
    index = torch.arange(count).clamp_max(source.shape[0] - 1)
    return source[index]


def random_sets_for(chosen: Heads, shape: Shape, n: int, rng: random.Random) -> list[Heads]:
    """`n` random head sets of `chosen`'s size from the same layers, never a chosen head."""
    per_layer: dict[int, int] = {}
    for layer, _ in chosen:
        per_layer[layer] = per_layer.get(layer, 0) + 1
    taken = set(chosen)
    sets = []
    for _ in range(n):
        heads: list[tuple[int, int]] = []
        for layer, count in sorted(per_layer.items()):
            others = [(layer, h) for h in range(shape.n_heads) if (layer, h) not in taken]
            if len(others) < count:
                raise InputError(f"layer {layer} has {len(others)} heads besides the chosen ones, too few to draw "
                                 f"random sets of {count} from it")
            heads += sorted(rng.sample(others, count))
        sets.append(tuple(heads))
    return sets


def _model_name(model: Any) -> str:
    return model_facts(model).described


def ablate(model: Any, prompts: Any, heads: Any = None, *, metric: Any = "loss", method: Method = "zero",
           positions: Positions = None, together: bool = False, random_sets: int = 0, seed: int = 0,
           batch_size: int | None = None, budget: float | None = None, progress: bool = True) -> Effects:
    """The metric with heads' outputs (`hook_z`) ablated, against the clean run, per prompt.

    `heads`: "L23H1,L24H4", pairs, `{layer: [heads]}` or None (every head), each ablated alone, or
    all at once with `together=True`. `random_sets=N`: N random sets of the same size from the same
    layers (`seed`), ablated the same way: their effects and where the chosen set falls among them.

    >>> effects = ablate(model, get_probe("ioi"), "L23H1,L24H4", metric="logit_diff",
    ...                  positions="END", together=True, random_sets=20)   # doctest: +SKIP
    >>> effects["L23H1+L24H4"].mean, effects["L23H1+L24H4"].baseline.p_value   # doctest: +SKIP
    """
    _check(method, positions, random_sets)
    metric = resolve_metric(metric)
    shape = Shape.of(model)
    chosen = head_list(heads, shape)
    inputs = prepare(model, prompts)
    units: list[Heads] = [tuple(chosen)] if together else [((layer, head),) for layer, head in chosen]
    rng = random.Random(seed)
    draws = {unit: random_sets_for(unit, shape, random_sets, rng) for unit in units} if random_sets else {}
    all_sets = units + [s for unit in units for s in draws.get(unit, [])]
    total = n_batches(model, inputs, batch_size, budget) + len(all_sets)
    with progress_reporter(progress, total, f"ablating ({method})") as reporter:
        clean = clean_pass(model, inputs, metric, positions, batch_size=batch_size, budget=budget,
                           advance=lambda: reporter.advance(1, "clean run"), keep_z=method != "zero")
        replacement = replacement_for(method, clean, inputs, positions, seed)
        values = intervened(model, inputs, metric, positions, replacement, all_sets, batch_size=batch_size,
                            budget=budget, advance=lambda n: reporter.advance(n, "ablated runs"))
    changes = values - clean.values[None, :]
    entries: dict[str, Effect] = {}
    row = {s: i for i, s in enumerate(all_sets)}
    for unit in units:
        effect = Effect(set_label(unit), unit, changes[row[unit]], positions=positions)
        if unit in draws:
            observed = effect.mean
            baseline_effects = [float(changes[row[s]][torch.isfinite(changes[row[s]])].mean()) for s in draws[unit]]
            effect = Effect(effect.label, unit, effect.changes, positions=positions,
                            baseline=random_baseline(observed if observed is not None else float("nan"),
                                                     draws[unit], baseline_effects))
        entries[effect.label] = effect
    return Effects("ablation", metric.label, metric.direction, method, positions, _model_name(model), clean.values,
                   entries, settings={"shape": [shape.n_layers, shape.n_heads], "together": together,
                                      "random_sets": random_sets, "seed": seed,
                                      "prompts": inputs.prompts.description or inputs.prompts.name})


def patch(model: Any, clean: Any, corrupted: Any, heads: Any = None, *, metric: Any = "logit_diff",
          positions: Positions | Sequence[str] = None, batch_size: int | None = None, budget: float | None = None,
          progress: bool = True) -> Effects:
    """Each head's output `z` at the chosen positions copied from the `corrupted` run into the clean
    run (prompt i of `corrupted` pairs with prompt i of `clean`; same token lengths): the change of
    the metric, patched minus clean. `positions`: None, a label, or several labels (one entry per
    head and position group, `L9H6@END`).

    >>> effects = patch(model, get_probe("ioi"), get_probe("ioi", variant="abc"), "L23H1",
    ...                 metric="logit_diff", positions=["S2", "END"])   # doctest: +SKIP
    """
    metric = resolve_metric(metric)
    groups: list[Positions] = list(positions) if isinstance(positions, (list, tuple)) else [positions]  # type: ignore[list-item]
    for group in groups:
        _check("zero", group)
    shape = Shape.of(model)
    chosen = head_list(heads, shape)
    clean_inputs, corrupted_inputs = prepare(model, clean), prepare(model, corrupted)
    check_pairs(clean_inputs, corrupted_inputs)
    entries: dict[str, Effect] = {}
    clean_values = None
    total = len(groups) * (2 * n_batches(model, clean_inputs, batch_size, budget) + len(chosen))
    with progress_reporter(progress, total, "patching") as reporter:
        for group in groups:
            clean_run, replacement = patch_source(model, clean_inputs, corrupted_inputs, metric, group, batch_size,
                                                  budget, lambda: reporter.advance(1, "clean and corrupted runs"))
            clean_values = clean_run.values
            values = intervened(model, clean_inputs, metric, group, replacement, [((lh),) for lh in chosen],
                                batch_size=batch_size, budget=budget,
                                advance=lambda n, where=group or "every token": reporter.advance(n, f"patched at {where}"))
            changes = values - clean_run.values[None, :]
            for i, (layer, head) in enumerate(chosen):
                label = head_label(layer, head) + (f"@{group}" if len(groups) > 1 else "")
                entries[label] = Effect(label, ((layer, head),), changes[i], positions=group)
    assert clean_values is not None
    return Effects("patching", metric.label, metric.direction, "patch", groups[0] if len(groups) == 1 else
                   ",".join(g or "all" for g in groups), _model_name(model), clean_values, entries,
                   settings={"shape": [shape.n_layers, shape.n_heads],
                             "corrupted": corrupted_inputs.prompts.description or corrupted_inputs.prompts.name,
                             "prompts": clean_inputs.prompts.description or clean_inputs.prompts.name})


def check_pairs(clean: EffectInputs, corrupted: EffectInputs) -> None:
    if len(clean) != len(corrupted):
        raise InputError(f"patching pairs prompt i of the clean run with prompt i of the corrupted run, but there are "
                         f"{len(clean)} clean and {len(corrupted)} corrupted prompts")
    for index, (a, b) in enumerate(zip(clean.token_lists, corrupted.token_lists)):
        if a.numel() != b.numel():
            raise InputError(f"clean prompt {index} has {a.numel()} tokens and its corrupted twin {b.numel()}: "
                             "patching needs pairs of the same token length",
                             hint="build corrupted prompts by swapping single-token words (ioi(variant='abc'))")


def patch_source(model: Any, clean_inputs: EffectInputs, corrupted_inputs: EffectInputs, metric: Metric,
                 positions: Positions, batch_size: int | None, budget: float | None, advance: Any,
                 *, gradient: bool = False) -> tuple[CleanRun, Replacement]:
    """The clean run (with gradients when asked) and the corrupted run's z as the replacement."""
    clean_run = clean_pass(model, clean_inputs, metric, positions, gradient=gradient, batch_size=batch_size,
                           budget=budget, advance=advance)
    corrupted_run = clean_pass(model, corrupted_inputs, _no_metric(metric), positions, batch_size=batch_size,
                               budget=budget, advance=advance)
    for index, (a, b) in enumerate(zip(clean_run.z, corrupted_run.z)):
        if a.shape[0] != b.shape[0]:
            raise InputError(f"prompt {index}: {a.shape[0]} clean tokens labelled {positions!r} but "
                             f"{b.shape[0]} in its corrupted twin", hint="pairs must label the same token positions")
    return clean_run, Replacement("patch", per_prompt=corrupted_run.z)


def _no_metric(metric: Metric) -> Metric:
    """The corrupted run needs z alone; its metric (which may read labels it lacks) is not computed."""
    return Metric("none", lambda logits, batch: torch.zeros(len(batch)), metric.direction)


def attribute(model: Any, prompts: Any, heads: Any = None, *, metric: Any = "loss", method: Method = "zero",
              positions: Positions = None, corrupted: Any = None, top_k: int = 20, seed: int = 0,
              batch_size: int | None = None, budget: float | None = None, progress: bool = True) -> Effects:
    """Every head's effect, estimated from one forward and one backward pass, then the `top_k` by the
    size of their estimate intervened on exactly (ablation by `method`, or patching from
    `corrupted`), with the rank correlation of estimate and exact effect among them.

    The estimate of head h on a prompt is `sum over the chosen positions of (z' - z) . dM/dz`, with
    z' what the intervention puts in (0, the mean, another prompt's z, the corrupted run's z): exact
    for a metric linear in the heads' outputs, a first-order approximation otherwise.

    >>> effects = attribute(model, get_probe("ioi"), metric="logit_diff", positions="END", top_k=20)  # doctest: +SKIP
    >>> effects["L23H1"].estimate, effects["L23H1"].mean, effects.rank_correlation   # doctest: +SKIP
    """
    _check(method, positions)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise InputError(f"top_k must be a whole number of heads (0 or more), not {top_k!r}")
    metric = resolve_metric(metric)
    shape = Shape.of(model)
    chosen = head_list(heads, shape)
    inputs = prepare(model, prompts)
    top_k = min(top_k, len(chosen))
    passes = n_batches(model, inputs, batch_size, budget, gradient=True) * (2 if corrupted is not None else 1)
    with progress_reporter(progress, passes + top_k, "attribution") as reporter:
        if corrupted is not None:
            corrupted_inputs = prepare(model, corrupted)
            check_pairs(inputs, corrupted_inputs)
            clean, replacement = patch_source(model, inputs, corrupted_inputs, metric, positions, batch_size, budget,
                                              lambda: reporter.advance(1, "clean and corrupted runs"), gradient=True)
        else:
            clean = clean_pass(model, inputs, metric, positions, gradient=True, batch_size=batch_size, budget=budget,
                               advance=lambda: reporter.advance(1, "forward and backward pass"))
            replacement = replacement_for(method, clean, inputs, positions, seed)
        estimates = estimate(clean, replacement)  # [n_prompts, n_layers, n_heads]
        mean_estimate = _nanmean(estimates)
        order = sorted(chosen, key=lambda lh: -abs(float(mean_estimate[lh])))
        top = order[:top_k]
        values = intervened(model, inputs, metric, positions, replacement, [(lh,) for lh in top],
                            batch_size=batch_size, budget=budget,
                            advance=lambda n: reporter.advance(n, f"exact runs of the top {top_k}"))
    changes = values - clean.values[None, :]
    exact = {lh: changes[i] for i, lh in enumerate(top)}
    entries = {}
    for layer, head in chosen:
        label = head_label(layer, head)
        entries[label] = Effect(label, ((layer, head),), exact.get((layer, head)),
                                estimate=float(mean_estimate[layer, head]), positions=positions)
    correlation = rank_correlation([entries[head_label(*lh)].estimate for lh in top],
                                   [entries[head_label(*lh)].mean for lh in top])
    settings: dict[str, Any] = {"shape": [shape.n_layers, shape.n_heads], "seed": seed, "prompts": inputs.prompts.description or inputs.prompts.name}
    if corrupted is not None:
        settings["corrupted"] = corrupted_inputs.prompts.description or corrupted_inputs.prompts.name
    return Effects("attribution", metric.label, metric.direction, "patch" if corrupted is not None else method,
                   positions, _model_name(model), clean.values, entries, rank_correlation=correlation, top_k=top_k,
                   settings=settings)


def estimate(clean: CleanRun, replacement: Replacement) -> torch.Tensor:
    """`[n_prompts, n_layers, n_heads]`: per prompt, sum over the chosen positions of (z' - z) . grad."""
    assert clean.grad is not None
    rows = []
    for index, (z, grad) in enumerate(zip(clean.z, clean.grad)):
        change = replacement.values(index, z) - z  # [n_positions, L, H, d]
        rows.append((change * grad).sum(dim=(0, 3)))
    return torch.stack(rows)


def _nanmean(values: torch.Tensor) -> torch.Tensor:
    finite = torch.isfinite(values)
    total = torch.where(finite, values, 0.0).sum(dim=0)
    return total / finite.sum(dim=0).clamp_min(1)
