"""`describe`: for every head, the rule of the language that best explains its attention.

The recipe: tokenize; split the prompts into a selection half (even positions) and a held-out
half (odd); compile every base condition of the chosen families once; for each half, batch by
batch, one hooked forward pass collects every layer's attention and `stats.batch_stats` adds the
sufficient statistics; every candidate is scored for every head from them (`scoring.py`); each
head's best candidate on the selection half (IoU minus the complexity penalty) is reported with
its held-out scores, and the finalists' held-out `mass` comes from the normal engine on the
compiled rules (`detect`), with its interval and chance baseline. Then each head's weighted
description (a mixture of a few rules and BOS, `mixture.py`) is fitted on the selection half and
checked on the held-out one, and the replacement check (`replace.py`) runs when asked.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from patternlang.annotate.spacy_parser import syntax_available
from patternlang.discovery.families import (
    COMPLEXITY_PENALTY,
    Base,
    Candidate,
    bases_of,
    candidates_of,
    choose_families,
)
from patternlang.discovery.attention_batches import attention_batches, base_matrices, layer_attention, prompt_groups
from patternlang.discovery.descriptions import Alternative, Description, HeadDescription
from patternlang.discovery.mixture import MIXTURE_PENALTY, MIXTURE_SIZE, MixtureCheck, check_mixtures, components, fit_mixtures
from patternlang.discovery.replace import replace_heads
from patternlang.discovery.scoring import CandidateScores, score_candidates
from patternlang.discovery.stats import BINARY_THRESHOLD, HeadStats, batch_stats
from patternlang.engine.batching import tokenize
from patternlang.errors import InputError
from patternlang.heads import head_label, parse_heads
from patternlang.library import compile_rule
from patternlang.models.facts import model_facts
from patternlang.prompts import split_prompts

__all__ = ["describe", "collect_stats", "base_matrices", "layer_attention", "BATCH_SIZE", "MIN_LIFT", "MIN_ON_SHARE", "SINK_SHARE", "RUNNERS_UP"]

BATCH_SIZE = 16
MIN_LIFT = 1.5
"""A rule is above chance when the engine's held-out 95% interval of its mass lies above the chance
head's mass and the mass is at least MIN_LIFT times it."""
MIN_ON_SHARE = 0.05
"""A head whose binarised non-sink attention marks fewer cells than this share of its rows is
judged as a sink head: only the BOS rule is tried for it."""
SINK_SHARE = 0.5
RUNNERS_UP = 3
Progress = Callable[[str], None]


def describe(model: Any, prompts: Any, heads: Any = None, families: Iterable[str] | None = None, *,
             batch_size: int = BATCH_SIZE, progress: Progress | None = None,
             replace: float | None = None, mixture: int = MIXTURE_SIZE) -> Description:
    """Describe every head (or `heads`) of `model` by the rule of the language that fits it best.

    Args:
        model: a TransformerLens model (`blocks.{l}.attn.hook_pattern`), as `detect` takes it.
        prompts: at least 4 prompts (strings, token ids or a probe's `Prompts`): the even ones
            select the rules, the odd ones are held out and give every number reported.
        heads: None (every head), "L16H0 L17H3", [(16, 0)], ... as `detect` takes them.
        families: names of candidate families (`FAMILIES`), default every one.
        replace: the share of all heads to replace by their rules for the replacement check
            (`replace_heads`), e.g. 0.25; None: no check. With mixtures, the check is made twice:
            the best-described heads by their single rules, and the best-fitted by their mixtures.
        mixture: the most rules (besides BOS) of each head's weighted description (`mixture.py`),
            fitted on the selection half and checked on the held-out one; 0: no mixtures.

    >>> d = describe(model, probes.make_probe("natural"))             # doctest: +SKIP
    >>> d["L16H0"].rule, d["L16H0"].score                             # doctest: +SKIP
    ('attend k where k == q - 1 exclude bos', 0.93)
    """
    seconds: dict[str, float] = {}
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    if mixture < 0:
        raise InputError(f"mixture takes the most rules of a mixture, 0 or more, got {mixture}")
    facts = model_facts(model)
    chosen_families = choose_families(families)
    items = split_prompts(prompts)
    if len(items) < 4:
        raise InputError(f"describe needs at least 4 prompts, got {len(items)}",
                         hint="half of the prompts select the rules, the other half is held out")
    token_lists = tokenize(model, items)
    wanted = parse_heads(heads, facts.n_layers, facts.n_heads) if heads is not None else None
    head_list = _head_list(wanted, facts.n_layers, facts.n_heads)
    layers = sorted({layer for layer, _ in head_list})
    selection = list(range(0, len(items), 2))
    held_out = list(range(1, len(items), 2))
    n_offsets = max(t.numel() for t in token_lists)
    offered = _offered(items) | ({"predictions"} if hasattr(model, "W_U") else set())
    bases = bases_of(chosen_families, offered)
    candidates = [c for base in bases for c in candidates_of(base, n_offsets - 1)]
    base_index = {base.cond: i for i, base in enumerate(bases)}
    say(f"describe: {len(bases)} bases, {len(candidates):,} candidate rules, {len(head_list)} heads, "
        f"{len(selection)} + {len(held_out)} prompts")
    compiled = _compile_bases(bases)
    seconds["setup"] = time.perf_counter() - started

    def half_stats(indices: list[int], label: str) -> list[HeadStats]:
        """The statistics of each prompt set in `indices`: text prompts, token-id prompts."""
        t0 = time.perf_counter()
        stats = [collect_stats(model, items, token_lists, group, layers, bases, compiled, n_offsets,
                               batch_size=batch_size, say=say, label=label) for group in prompt_groups(items, indices)]
        seconds[f"stats_{label}"] = time.perf_counter() - t0
        return stats

    train_groups = half_stats(selection, "selection")
    t0 = time.perf_counter()
    train = sum(train_groups[1:], train_groups[0])
    train_scores = _rank_over_groups(score_candidates(train, candidates, base_index),
                                     [score_candidates(g, candidates, base_index) for g in train_groups], candidates)
    seconds["score_selection"] = time.perf_counter() - t0
    test_groups = half_stats(held_out, "held-out")
    test = sum(test_groups[1:], test_groups[0])
    test_scores = score_candidates(test, candidates, base_index)
    flat = {pair: i for i, pair in enumerate((layer, head) for layer in layers for head in range(facts.n_heads))}
    picks = {pair: _pick(train, train_scores, test_scores, candidates, flat[pair]) for pair in head_list}
    t0 = time.perf_counter()
    say("describe: exact held-out scores of the finalists (engine)")
    exact = _engine_scores(model, [items[i] for i in held_out], picks, candidates)
    seconds["engine_held_out"] = time.perf_counter() - t0
    mixtures: dict[int, tuple[list[int | None], list[float], float]] = {}
    check = MixtureCheck()
    if mixture:
        t0 = time.perf_counter()
        say(f"describe: mixtures of up to {mixture} rules and BOS (selection half)")
        indices = [flat[pair] for pair in head_list]
        mixtures = fit_mixtures(model, items, token_lists, selection, layers, indices, bases, compiled, candidates,
                                train_scores, size=mixture, batch_size=batch_size, say=say)
        seconds["mixtures_selection"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        singles = {flat[pair]: pick[0] for pair, pick in picks.items() if pick is not None}
        check = check_mixtures(model, items, token_lists, held_out, layers, bases, compiled, candidates, mixtures,
                               singles, batch_size=batch_size, say=say)
        seconds["mixtures_held_out"] = time.perf_counter() - t0

    def mixture_fields(index: int, above: bool) -> dict[str, Any]:
        if index not in mixtures:
            return {}
        parts, weights, fit = mixtures[index]
        return {"mixture": components(candidates, parts, weights), "mixture_train_fit": fit,
                "mixture_fit": check.fit(index), "mixture_iou": check.iou(index),
                "rule_fit": check.rule_fit(index) if above else None}
    out: dict[str, HeadDescription] = {}
    errors = []
    for (layer, head), pick in picks.items():
        index = flat[(layer, head)]
        sink = float(test.bos_mass[index] / max(test.rows, 1.0))
        if pick is None:
            out[head_label(layer, head)] = HeadDescription(head_label(layer, head), None, None, None, None, None,
                                                           None, None, None, None, False, sink,
                                                           **mixture_fields(index, False))
            continue
        winner, runners = pick
        cand = candidates[winner]
        score, low, high, chance = exact[(cand.rule, layer, head)]
        family_mass = float(test_scores.mass[index, winner])
        if score == score and family_mass == family_mass:
            errors.append(abs(score - family_mass))
        above = bool(low > chance and score >= MIN_LIFT * chance)
        iou = _num(test_scores.iou[index, winner])
        out[head_label(layer, head)] = HeadDescription(
            head=head_label(layer, head), rule=cand.rule if above else None, family=cand.family if above else None,
            score=score, interval=(low, high), chance=chance, explained=score if cand.base.cond != "k == 0" else None,
            iou=iou, coverage=_num(test_scores.coverage[index, winner]),
            train_iou=_num(train_scores.iou[index, winner]), above_chance=above, sink=sink,
            runners_up=tuple(Alternative(candidates[r].rule, candidates[r].family, _num(test_scores.mass[index, r]),
                                         _num(test_scores.iou[index, r])) for r in runners),
            best_rule=cand.rule, **mixture_fields(index, above))
    description = Description(
        model=facts.described, heads=out, n_candidates=len(candidates), n_bases=len(bases),
        families=tuple(f.name for f in chosen_families), n_prompts_selection=len(selection),
        n_prompts_held_out=len(held_out), binary_threshold=BINARY_THRESHOLD,
        complexity_penalty=COMPLEXITY_PENALTY, seconds=seconds,
        max_family_error=max(errors) if errors else None, mixture_size=mixture,
        mixture_penalty=MIXTURE_PENALTY if mixture else None)
    if replace is not None:
        t0 = time.perf_counter()
        say(f"describe: replacement check, the best-described {replace:.0%} of the heads")
        # Perplexity on the held-out text prompts (natural text; random token ids are unpredictable
        # by design), or on every held-out prompt when none is text.
        kept = [items[i] for i in held_out if isinstance(items[i], str)] or [items[i] for i in held_out]
        single = replace_heads(model, kept, description, share=replace, batch_size=batch_size)
        before = (single.perplexity_before, single.n_tokens)
        with_sink = replace_heads(model, kept, description, share=replace, batch_size=batch_size, keep_sink=True,
                                  before=before)
        mixed = (replace_heads(model, kept, description, share=replace, batch_size=batch_size, mixture=True,
                               before=before) if mixture else None)
        seconds["replacement"] = time.perf_counter() - t0
        description = Description(**{**description.__dict__, "replacement": single,
                                     "replacement_with_sink": with_sink, "replacement_mixture": mixed})
    seconds["total"] = time.perf_counter() - started
    return description


def _num(value: Tensor) -> float | None:
    value = float(value)
    return value if value == value else None


def _head_list(wanted: Any, n_layers: int, n_heads: int) -> list[tuple[int, int]]:
    if wanted is None:
        return [(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    out = []
    for layer, chosen in sorted(wanted.items()):
        for head in (range(n_heads) if chosen is None else chosen):
            out.append((layer, int(head)))
    return out


def _offered(items: Sequence[Any]) -> frozenset[str]:
    """What the prompts offer beyond tokens: the parser's features for text prompts when spaCy's
    pipeline is installed (the model's predictions are offered by `describe` when it has `W_U`)."""
    if all(isinstance(item, str) for item in items) and syntax_available():
        return frozenset({"syntax"})
    return frozenset()


def _compile_bases(bases: Sequence[Base]) -> dict[str, Any]:
    """Each distinct conjunct compiled once (`attend k where COND`), by its condition."""
    compiled: dict[str, Any] = {}
    for base in bases:
        for cond in base.conjuncts:
            if cond not in compiled and cond not in ("true", "k < q"):
                compiled[cond] = compile_rule(f"attend k where {cond}", name=f"base_{len(compiled)}")
    return compiled


def collect_stats(model: Any, items: Sequence[Any], token_lists: Sequence[Tensor], indices: Sequence[int],
                  layers: Sequence[int], bases: Sequence[Base], compiled: dict[str, Any], n_offsets: int, *,
                  batch_size: int = BATCH_SIZE, say: Progress = lambda _m: None, label: str = "") -> HeadStats:
    """The sufficient statistics of every head of `layers` on the prompts `indices`."""
    facts = model_facts(model)
    stats = HeadStats.zeros(len(layers) * facts.n_heads, len(bases), n_offsets)
    for padded, attention, matrices in attention_batches(model, items, token_lists, indices, layers, bases, compiled,
                                                         batch_size=batch_size, say=say, label=label):
        batch_stats(stats, attention, padded.lengths.cpu(), matrices)
    return stats


def _rank_over_groups(pooled: CandidateScores, groups: list[CandidateScores],
                      candidates: Sequence[Candidate]) -> CandidateScores:
    """Rank by the mean over the prompt sets (text, token ids) of each set's IoU, minus the complexity
    penalty: a rule must hold on each set, not only where one set's structure happens to match it
    (`k == q - 49` on the 50-token repeats of `repeated_random`). Sets where neither the head nor
    the rule marks a cell are left out of the mean."""
    if len(groups) < 2:
        return pooled
    mean_iou = torch.nanmean(torch.stack([g.iou for g in groups]), dim=0)
    complexity = torch.tensor([c.complexity for c in candidates], dtype=torch.float64)
    rank = torch.where(torch.isnan(pooled.rank), pooled.rank, mean_iou - COMPLEXITY_PENALTY * complexity)
    return dataclasses.replace(pooled, rank=rank)


def _pick(train: HeadStats, train_scores: CandidateScores, test_scores: CandidateScores,
          candidates: Sequence[Candidate], index: int) -> tuple[int, list[int]] | None:
    """The winner and runners-up of one head on the selection half (candidate indices)."""
    on_share = float(train.on[index]) / max(train.counted_rows, 1.0)
    bos = [i for i, c in enumerate(candidates) if c.base.cond == "k == 0"]
    if on_share < MIN_ON_SHARE:
        sink = float(train.bos_mass[index]) / max(train.rows, 1.0)
        if bos and sink >= SINK_SHARE:
            return bos[0], []
        return None
    rank = train_scores.rank[index].clone()
    rank[torch.isnan(rank)] = -float("inf")
    if not torch.isfinite(rank).any():
        return None
    order = torch.argsort(rank, descending=True, stable=True)
    winner = int(order[0])
    seen = {(round(float(train_scores.iou[index, winner]), 9), round(float(train_scores.mass[index, winner]), 9))}
    runners: list[int] = []
    for i in order[1:].tolist():
        if len(runners) >= RUNNERS_UP or rank[i] == -float("inf"):
            break
        key = (round(float(train_scores.iou[index, i]), 9), round(float(train_scores.mass[index, i]), 9))
        if key in seen:  # the same cells under another name: not a runner-up
            continue
        seen.add(key)
        runners.append(i)
    return winner, runners


def _engine_scores(model: Any, prompts: list[Any], picks: dict, candidates: Sequence[Candidate]) -> dict:
    """`(rule, layer, head) -> (mass, low, high, chance)` by `detect` on the held-out prompts."""
    from patternlang.engine.detection import detect

    rules = sorted({candidates[p[0]].rule for p in picks.values() if p is not None})
    if not rules:
        return {}
    patterns = [compile_rule(rule, name=f"rule_{i}") for i, rule in enumerate(rules)]
    heads = {}
    for (layer, head), pick in picks.items():
        if pick is not None:
            heads.setdefault(layer, []).append(head)
    scores = detect(model, prompts, patterns, measures="mass", heads=heads, progress=False)
    out = {}
    for i, rule in enumerate(rules):
        grid = scores.get(f"rule_{i}", "mass")
        low, high = scores.interval(f"rule_{i}", "mass")
        chance = scores.baseline(f"rule_{i}", "mass")
        for (layer, head), pick in picks.items():
            if pick is not None and candidates[pick[0]].rule == rule:
                out[(rule, layer, head)] = (float(grid[layer, head]), float(low[layer, head]),
                                            float(high[layer, head]), float(chance))
    return out
