"""`detect`: score every head of a model against every pattern, one forward pass per batch.

The recipe: the options (`DetectOptions`) and the patterns make a `RunPlan` (plan.py); a
`ChunkedRun` (run.py) reads the prompts chunk by chunk, each chunk tokenized with the inputs its
patterns read (inputs.py) and scored batch by batch by the chunk's `AttentionReader`
(readers.py: hooked and stopped, query blocks for long prompts, deferred to the logits for
patterns reading predictions and the `copying` measure) into running sums (accumulate.py);
checkpoints and `torch.distributed` ranks wrap that loop; `Scores` at the end.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from patternlang.engine import distributed
from patternlang.engine.accumulate import Accumulator
from patternlang.engine.checkpoint import DEFAULT_CHECKPOINT_EVERY, CheckpointFile, run_fingerprint
from patternlang.engine.chunks import DEFAULT_CHUNK_PROMPTS, ChunkReader, StreamedPrompts
from patternlang.engine.hooked import HookedModel
from patternlang.engine.inputs import (
    check_labels_given,
    prompt_labels,
    prompt_offsets,
    prompt_source,
    span_readers,
    split_character_texts,
    unlabelled_prompts_error,
)
from patternlang.engine.options import DEFAULT_MEASURE, DetectOptions, check_measures, own_measure
from patternlang.engine.pattern_tensors import resolve_patterns
from patternlang.engine.plan import RunPlan
from patternlang.engine.progress import progress_reporter
from patternlang.engine.run import ChunkedRun, score_tokens, starts_labelled
from patternlang.engine.scores import Evidence, RunSettings, Scores, ScoreSource
from patternlang.engine.undefined import ScoreWarning, describe_undefined, undefined_scores
from patternlang.errors import InputError
from patternlang.heads import heads_labels
from patternlang.probes.stream import InMemoryPrompts, PromptSource
from patternlang.prompts import split_prompts
from patternlang.engine.baselines import best_rules
from patternlang.engine.verdicts import pattern_records

__all__ = ["DEFAULT_MEASURE", "DetectOptions", "ScoreWarning", "check_measures", "detect", "describe_undefined",
           "prompt_labels", "prompt_offsets", "score_tokens", "span_readers", "split_character_texts",
           "undefined_scores", "unlabelled_prompts_error"]


def detect(
    model: HookedModel,
    prompts: Any,
    patterns: Any,
    *,
    measures: str | Sequence[str] | None = None,
    exclude_bos: bool | None = None,
    exclude_current_token: bool | None = None,
    heads: Any = None,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    prepend_bos: bool = True,
    per_prompt: bool = False,
    attention: str | Callable[..., Any] = "auto",
    chunk_size: int | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int | None = None,
) -> Scores:
    """Score every head of `model` against every pattern on `prompts`.

    Args:
        model: a TransformerLens model (TransformerBridge, or any hooked model exposing
            `blocks.{l}.attn.hook_pattern`, `cfg.n_layers`, `cfg.n_heads`).
        prompts: strings (tokenized one by one with `model.to_tokens`, BOS per
            `prepend_bos`), token-id lists or 1-D tensors, a `[batch, pos]` tensor (token
            ids are used exactly as given), a probe (a `patternlang.probes.Prompts`, or
            `probes.get_probe(name, **args)`), a prompt file `Path` (.txt, .jsonl, .parquet, a
            `datasets` folder: read lazily, `probes.open_prompts`), a `probes.PromptSource`, or
            an iterator of prompts (read once).
        patterns: one or a list of: shipped pattern names, `Pattern` objects, rule text,
            `.pattern`/YAML files, or `[q, k]` lower-triangular tensors (then every prompt
            must have length q).
        measures: any of the measure table's (`patternlang.measure_table.measure_names()`,
            docs/measures.md). None: each pattern's own `measure` setting (`DEFAULT_MEASURE` where it names none), every
            pattern scored with all of them.
        exclude_bos / exclude_current_token: leave key 0 / the diagonal out of the
            comparison. None: each pattern's own setting (False for tensors); True or
            False: the same for every pattern.
        heads: None (every head), "5.1,6.9", "L5H1 L6H9", [(5, 1)], or {5: [1]}.
            Heads not chosen score NaN; layers after the last chosen one are not run.
        batch_size: prompts per forward pass; None chooses from free memory.
        device: where detection tensors and reductions live (default: the model's).
        progress: True (default): show progress, batch by batch and layer by layer, where someone
            watches: a bar on stderr when it is a terminal, a notebook bar in Jupyter; only
            for runs that last over ~2 s, and removed when done. Never in pipes, logs or CI.
            False: never.
        prepend_bos: prepend BOS to text prompts (token-id prompts are never changed).
        per_prompt: also keep every prompt's own scores (`Scores.prompt_scores`,
            `best_prompts`); memory grows with the number of prompts (everything else stays flat).
        attention: how each layer's attention is read (docs/long_context.md). "auto" (default):
            a chunk of prompts holding one longer than 1024 tokens is read by blocks of query
            rows, memory linear in the prompt length, where the model allows it; other chunks
            whole from `hook_pattern`; "blocks": always by blocks (an error naming the reason
            where that cannot run); "pattern": always `hook_pattern`. The scores are the same
            either way (within 1e-5); `Scores.settings["attention"]` says which path ran and
            why (`{"path": "mixed", "paths": ...}` when chunks, ranks or a resumed run took both).
        chunk_size: prompts read, tokenized and batched at a time (default
            `chunks.DEFAULT_CHUNK_PROMPTS`); the scores do not depend on it (within 1e-5 where it
            changes which path `attention="auto"` takes).
        checkpoint: a folder: save the running sums there every `checkpoint_every` batches
            (default `checkpoint.DEFAULT_CHECKPOINT_EVERY`) and at the end, and resume from what
            it holds; a checkpoint of another run (model, patterns, prompts, settings) is refused.

    Inside an initialised `torch.distributed` process group of several processes, prompt i is
    scored by rank `i % world_size` and the sums are added across ranks at the end: every rank
    returns the same `Scores` (docs/scale.md).

    Returns:
        `Scores` with `values[measure]` of shape `[n_patterns, n_layers, n_heads]`, their 95%
        intervals over prompts (`ci_low`, `ci_high`), and each pattern's sample sizes and
        chance baseline (`evidence`).

    Example:
        >>> scores = detect(model, ["The cat sat. The cat sat."], "induction_head")  # doctest: +SKIP
        >>> scores.top("induction_head", k=3)                                       # doctest: +SKIP
        [('L4H5', 0.91), ('L6H1', 0.88), ('L5H0', 0.52)]
    """
    options = DetectOptions(measures=measures, exclude_bos=exclude_bos, exclude_current_token=exclude_current_token,
                            heads=heads, batch_size=batch_size, device=device, progress=progress,
                            prepend_bos=prepend_bos, per_prompt=per_prompt, attention=attention,
                            chunk_size=chunk_size, checkpoint=checkpoint, checkpoint_every=checkpoint_every)
    return detect_with(model, prompts, patterns, options)


def detect_with(model: HookedModel, prompts: Any, patterns: Any, options: DetectOptions) -> Scores:
    """`detect` with its options as one `DetectOptions` (the effects and describe helpers build one)."""
    plan = RunPlan.build(model, resolve_patterns(patterns), options)
    source = prompt_source(prompts, model)
    check_labels_given(source, plan.detectors)
    shard = distributed.current_shard()
    saver = None
    if shard is not None or options.checkpoint is not None:  # the weights are read for a digest only here
        fingerprint = run_fingerprint(model, plan.facts, plan.detectors, measures=plan.measures,
                                      exclusions=plan.exclusions, heads=plan.heads,
                                      prepend_bos=options.prepend_bos, per_prompt=options.per_prompt,
                                      source=source.name, shard=shard)
        if shard is not None:  # every rank must run the same scoring, or the sums mean nothing
            distributed.check_same_everywhere(shard, {k: v for k, v in fingerprint.items() if k != "processes"})
        if options.checkpoint is not None:
            saver = CheckpointFile(options.checkpoint, fingerprint, shard)
    total = getattr(source, "total", None)
    accumulator = plan.new_accumulator((total or 0) if options.per_prompt else None)
    reader = ChunkReader(source, options.chunk_size or DEFAULT_CHUNK_PROMPTS, shard, hashing=saver is not None,
                         checkpoint_dir=saver.directory if saver is not None else None)
    run = ChunkedRun(plan, reader, accumulator, saver, every=options.checkpoint_every or DEFAULT_CHECKPOINT_EVERY,
                     labelled=starts_labelled(source))
    saved = saver.load() if saver is not None else None
    if saved is not None:
        run.restore(saved)
    description = f"scoring {total:,} prompts" if total is not None else "scoring prompts"
    with progress_reporter(options.progress and (shard is None or shard.rank == 0), 0, description) as reporter:
        run.run(reporter)
    n_read = reader.position
    if shard is not None:
        join_ranks(run, shard, n_read)
    accumulator.trim_prompts(n_read)
    if accumulator.n_prompts == 0:
        raise InputError(f"no prompts to score in {source.name}", hint="give at least one prompt")
    readers = span_readers(plan.detectors)
    if readers and not run.labelled:  # the same on every rank: all of them say it
        raise unlabelled_prompts_error(readers[0])
    return scores_of(plan, run, source, n_read, processes=None if shard is None else shard.world_size)


def join_ranks(run: ChunkedRun, shard: Any, n_read: int) -> None:
    """Add every rank's running sums and counts (each rank then holds the whole run's)."""
    accumulator = run.accumulator
    distributed.collective("adding the running sums of every rank", accumulator.all_reduce)
    run.n_tokens, run.n_batches = distributed.sum_counts([run.n_tokens, run.n_batches])
    if accumulator.per_prompt is not None:
        mine = torch.tensor([shard.owns(i) for i in range(n_read)], dtype=torch.bool)
        distributed.collective("gathering the per-prompt scores", accumulator.all_gather_prompts, n_read, mine)
    # Each rank chose its chunks' attention path from its own prompts: every rank reports all of them.
    for path in distributed.gather_objects(accumulator.attention):
        accumulator.record_path(path)
    run.labelled = any(distributed.gather_objects(run.labelled))


def scores_of(plan: RunPlan, run: ChunkedRun, source: PromptSource, n_read: int, processes: int | None) -> Scores:
    """The run's `Scores`: values, intervals and evidence from the sums, settings, the prompts shown."""
    accumulator: Accumulator = run.accumulator
    tallies = accumulator.result()
    names, options = plan.names, plan.options
    undefined = undefined_scores(tallies.values, names, plan.heads, tallies.n_rows)
    records = pattern_records(plan.detectors)
    settings = RunSettings(
        exclusions={d.name: {"bos": e.bos, "current": e.current} for d, e in zip(plan.detectors, plan.exclusions)},
        batch_size=options.batch_size if options.batch_size is not None else "auto",
        n_batches=run.n_batches,
        prepend_bos=options.prepend_bos,
        heads=None if options.heads is None else heads_labels(plan.heads, plan.facts.n_heads),
        pattern_measures={d.name: own_measure(d) for d in plan.detectors},
        attention=accumulator.attention,
        processes=processes,
        undefined=undefined or None,
        # [verdicts] ranks, requirements, positional baselines (engine/verdicts.py, engine/baselines.py)
        **records,
        positional_baselines=best_rules(
            accumulator.rule_sums, tallies.n_rows, list(names),
            {d.name: own if (own := own_measure(d)) in plan.measures else plan.measures[0] for d in plan.detectors},
            records["positional_patterns"]),
    )
    if undefined:
        warnings.warn(ScoreWarning(describe_undefined(undefined, accumulator.n_prompts)), stacklevel=4)
    evidence = {
        name: Evidence(int(tallies.n_rows[i]), int(tallies.n_prompts[i]), tallies.n_prompts_total,
                       {m: float(tallies.baseline[m][i]) for m in plan.measures})
        for i, name in enumerate(names)
    }
    kept = {}
    if tallies.per_prompt is not None:
        kept = {name: {m: tallies.per_prompt[m][:, i] for m in plan.measures} for i, name in enumerate(names)}
    shown: tuple[Any, ...] | StreamedPrompts
    spans: Sequence[Any] | StreamedPrompts | None
    if isinstance(source, InMemoryPrompts):
        shown, spans = tuple(split_prompts(source.items)), source.spans  # as given, as before
    else:
        shown = StreamedPrompts(source, n_read)
        spans = StreamedPrompts(source, n_read, part=1) if run.labelled else None
    return Scores(
        patterns=tuple(names), measures=plan.measures, values=tallies.values, ci_low=tallies.ci_low,
        ci_high=tallies.ci_high, evidence=evidence, per_prompt=kept, model=plan.facts.described,
        n_prompts=accumulator.n_prompts, n_tokens=run.n_tokens, settings=settings,
        n_layers=plan.facts.n_layers, n_heads=plan.facts.n_heads,
        sources=(ScoreSource(plan.model, shown, {d.name: d for d in plan.detectors}, spans),),
    )
