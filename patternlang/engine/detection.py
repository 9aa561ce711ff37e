"""`detect`: score every head of a model against every pattern, one forward pass per batch.

The recipe: tokenize -> bucket by length and right-pad -> per batch, detection tensors
for every pattern at once -> one hooked forward pass whose `hook_pattern` hooks reduce
each layer's attention into running sums (stopped after the last needed layer) ->
`Scores`. Patterns that read the model's predictions, and the `copying` measure, take the
deferred path instead (`model_outputs.py`): the same one pass per batch, run to the logits,
with the needed layers' attention kept and reduced after it. Long prompts take the block
path (`blocked.py`): attention and detection by blocks of query rows, memory linear in the
prompt length; `attention=` chooses.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from patternlang.annotate.spacy_parser import prompt_syntax
from patternlang.engine.accumulate import Accumulator, PatternGroup, Tallies, asked_heads
from patternlang.engine.batching import (
    TokenStrings,
    auto_budget,
    blocked_bytes_per_prompt_estimate,
    bytes_per_prompt_estimate,
    pad_batch,
    plan_batches,
    tokenize,
)
from patternlang.engine.blocked import BLOCK_MEMORY, choose_attention, merge_attention_paths, score_blocked_batch
from patternlang.engine.pattern_tensors import (
    Detector,
    batch_features,
    check_matrix_sizes,
    detection_block,
    resolve_patterns,
)
from patternlang.engine.forward import run_attention_hooks
from patternlang.engine.model_outputs import Readout, extra_bytes_per_prompt, outputs_plan, run_with_outputs
from patternlang.engine.progress import progress_reporter
from patternlang.engine.measures import MEASURES, Exclusions
from patternlang.engine.scores import Evidence, Scores, ScoreSource
from patternlang.errors import InputError, did_you_mean
from patternlang.heads import heads_labels, parse_heads
from patternlang.models.facts import model_facts
from patternlang.probes.stream import InMemoryPrompts

DEFAULT_MEASURE = "mass"


def detect(
    model: Any,
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
    attention: str | Callable = "auto",
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
        measures: any of "mass", "tv", "argmax", "mul", "abs", "lift" (docs/measures.md). None:
            each pattern's own `measure` setting ("mass" where it names none), every
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
    from patternlang.engine import distributed
    from patternlang.engine.checkpoint import DEFAULT_CHECKPOINT_EVERY, CheckpointFile, run_fingerprint
    from patternlang.engine.chunks import DEFAULT_CHUNK_PROMPTS, ChunkReader, StreamedPrompts

    detectors = resolve_patterns(patterns)
    chosen_measures = check_measures(measures, detectors)
    exclusions = [
        Exclusions(
            bos=_setting(exclude_bos, detector, "exclude_bos"),
            current=_setting(exclude_current_token, detector, "exclude_current"),
        )
        for detector in detectors
    ]
    facts = model_facts(model)
    n_layers, n_heads = facts.shape
    chosen_heads = parse_heads(heads, n_layers, n_heads)
    for name, value in (("batch_size", batch_size), ("chunk_size", chunk_size), ("checkpoint_every", checkpoint_every)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise InputError(f"{name} must be a positive integer or None, got {value!r}")
    source = prompt_source(prompts, model)
    check_labels_given(source, detectors)
    shard = distributed.current_shard()
    accumulator = new_accumulator(model, len(detectors), chosen_measures, exclusions, chosen_heads, device,
                                  per_prompt=(getattr(source, "total", None) or 0) if per_prompt else None)
    fingerprint = None  # read the weights for a digest only where a checkpoint or the ranks need it
    if shard is not None or checkpoint is not None:
        fingerprint = run_fingerprint(model, facts, detectors, measures=chosen_measures, exclusions=exclusions,
                                      heads=chosen_heads, prepend_bos=prepend_bos, per_prompt=per_prompt,
                                      source=source.name, shard=shard)
    if shard is not None:  # every rank must run the same scoring, or the sums mean nothing
        distributed.check_same_everywhere(shard, {k: v for k, v in fingerprint.items() if k != "processes"})
    saver = CheckpointFile(checkpoint, fingerprint, shard) if checkpoint is not None else None
    counts = {"n_tokens": 0, "n_batches": 0}  # this process's; with a checkpoint, since the run began
    saved = saver.load() if saver is not None else None
    reader = ChunkReader(source, chunk_size or DEFAULT_CHUNK_PROMPTS, shard, hashing=saver is not None,
                         checkpoint_dir=saver.directory if saver is not None else None)
    if saved is not None:
        accumulator.load_state_dict(saved["accumulator"])
        counts = {key: int(saved[key]) for key in counts}
        reader.resume_at = (int(saved["position"]), str(saved["digest"]))
        reader.skip = set(saved["done"].tolist())
    every = checkpoint_every or DEFAULT_CHECKPOINT_EVERY
    # "labelled": some prompt read has spans (before a restart too), so span patterns can be scored
    run = {"chunk": None, "done": [], "lengths": [], "since_saved": 0, "scored": 0,
           "labelled": (saved is not None and bool(saved.get("labelled", False)))
           or (isinstance(source, InMemoryPrompts) and source.spans is not None)}
    total = getattr(source, "total", None)

    def save(finished: bool = False) -> None:
        """The running sums and the place in the source: after the last batch, or before the
        chunk in progress plus which of its prompts are done."""
        if finished:
            position, digest, done = reader.position, reader.digest(), []
        else:
            chunk = run["chunk"]
            position, digest = chunk.start, chunk.start_digest
            done = sorted(set(run["done"]) | {i for i in reader.skip if i >= position})
        saver.save({"accumulator": accumulator.state_dict(), "position": position, "digest": digest,
                    "done": torch.tensor(done, dtype=torch.long), "labelled": run["labelled"], **counts})

    def on_batch(positions: Sequence[int]) -> None:
        run["done"].extend(run["chunk"].indices[i] for i in positions)
        counts["n_tokens"] += sum(run["lengths"][i] for i in positions)  # counted when scored, as the sums
        run["scored"] += len(positions)
        if total is None or total > reader.size:  # a run of several chunks: say how far it got
            reporter.note = f"{run['scored']:,} prompts scored, {_of_total(reader.position, total)} read"
        counts["n_batches"] += 1
        run["since_saved"] += 1
        if saver is not None and run["since_saved"] >= every:
            save()
            run["since_saved"] = 0

    description = f"scoring {total:,} prompts" if total is not None else "scoring prompts"
    with progress_reporter(progress and (shard is None or shard.rank == 0), 0, description) as reporter:
        for chunk in reader:
            run["chunk"], run["done"] = chunk, []
            token_lists = tokenize(model, chunk.items, prepend_bos=prepend_bos, indices=chunk.indices)
            texts = split_character_texts(model, chunk.items, token_lists, detectors)
            offsets = prompt_offsets(model, chunk.items, token_lists, detectors)
            labels = chunk_labels(chunk.spans, detectors)
            run["labelled"] = run["labelled"] or any(row is not None for row in chunk.spans)
            syntax = prompt_syntax(model, chunk.items, token_lists, detectors)
            check_matrix_sizes(detectors, [t.numel() for t in token_lists])
            accumulator.reserve_prompts(chunk.indices[-1] + 1)
            run["lengths"] = [t.numel() for t in token_lists]
            score_tokens(
                model, token_lists, detectors,
                measures=chosen_measures, exclusions=exclusions, heads=chosen_heads,
                batch_size=batch_size, device=device, texts=texts, offsets=offsets,
                syntax=syntax, labels=labels, accumulator=accumulator, run_indices=chunk.indices,
                attention=attention,
                reporter=reporter, on_batch=on_batch,
            )
    if saver is not None:
        save(finished=True)  # a rerun turns it straight into the scores
    n_prompts_read = reader.position
    n_prompts = accumulator.n_prompts
    if shard is not None:
        distributed.collective("adding the running sums of every rank", accumulator.all_reduce)
        counts["n_tokens"], counts["n_batches"] = distributed.sum_counts([counts["n_tokens"], counts["n_batches"]])
        if accumulator.per_prompt is not None:
            mine = torch.tensor([shard.owns(i) for i in range(n_prompts_read)], dtype=torch.bool)
            distributed.collective("gathering the per-prompt scores", accumulator.all_gather_prompts,
                                   n_prompts_read, mine)
        n_prompts = accumulator.n_prompts
        # Each rank chose its chunks' attention path from its own prompts: every rank reports all of them.
        for path in distributed.gather_objects(accumulator.attention):
            if path is not None:
                accumulator.attention = merge_attention_paths(accumulator.attention, path)
        run["labelled"] = any(distributed.gather_objects(run["labelled"]))
    accumulator.trim_prompts(n_prompts_read)
    if n_prompts == 0:
        raise InputError(f"no prompts to score in {source.name}", hint="give at least one prompt")
    readers = span_readers(detectors)
    if readers and not run["labelled"]:  # the same on every rank: all of them say it
        raise unlabelled_prompts_error(readers[0])
    tallies = accumulator.result()
    settings = {
        "exclusions": {d.name: {"bos": e.bos, "current": e.current} for d, e in zip(detectors, exclusions)},
        "batch_size": batch_size if batch_size is not None else "auto",
        "n_batches": counts["n_batches"],
        "prepend_bos": prepend_bos,
        "heads": None if heads is None else heads_labels(chosen_heads, n_heads),
        "pattern_measures": {d.name: getattr(d.settings, "measure", None) or DEFAULT_MEASURE for d in detectors},
        "attention": accumulator.attention,
    }
    if shard is not None:
        settings["processes"] = shard.world_size
    names = [d.name for d in detectors]
    undefined = undefined_scores(tallies.values, names, chosen_heads, tallies.n_rows)
    if undefined:
        settings["undefined"] = undefined
        warnings.warn(ScoreWarning(describe_undefined(undefined, n_prompts)), stacklevel=2)
    evidence = {
        name: Evidence(int(tallies.n_rows[i]), int(tallies.n_prompts[i]), tallies.n_prompts_total,
                       {m: float(tallies.baseline[m][i]) for m in chosen_measures})
        for i, name in enumerate(names)
    }
    kept = {}
    if tallies.per_prompt is not None:
        kept = {name: {m: tallies.per_prompt[m][:, i] for m in chosen_measures} for i, name in enumerate(names)}
    if isinstance(source, InMemoryPrompts):
        shown, spans = tuple(_split(source.items)), source.spans  # as given, as before
    else:
        shown = StreamedPrompts(source, n_prompts_read)
        spans = StreamedPrompts(source, n_prompts_read, part=1) if run["labelled"] else None
    return Scores(
        patterns=tuple(names),
        measures=chosen_measures,
        values=tallies.values,
        ci_low=tallies.ci_low,
        ci_high=tallies.ci_high,
        evidence=evidence,
        per_prompt=kept,
        model=facts.described,
        n_prompts=n_prompts,
        n_tokens=counts["n_tokens"],
        settings=settings,
        n_layers=n_layers,
        n_heads=n_heads,
        sources=(ScoreSource(model, shown, {d.name: d for d in detectors}, spans),),
    )


def new_accumulator(model: Any, n_patterns: int, measures: tuple[str, ...], exclusions: Sequence[Exclusions],
                    heads: dict[int, tuple[int, ...] | None], device: torch.device | str | None,
                    per_prompt: int | None = None) -> Accumulator:
    """The running sums of a run on `model` (on `device`, default the model's); `per_prompt`: rows
    for that many prompts' own scores (None: not kept)."""
    facts = model_facts(model)
    n_layers, n_heads = facts.shape
    work_device = torch.device(device) if device is not None else facts.device
    return Accumulator(
        n_patterns=n_patterns, n_layers=n_layers, n_heads=n_heads, measures=measures,
        groups=_groups(exclusions), heads=heads, device=work_device, per_prompt=per_prompt,
    )


def score_tokens(
    model: Any,
    token_lists: Sequence[Tensor],
    detectors: Sequence[Detector],
    *,
    measures: tuple[str, ...],
    exclusions: Sequence[Exclusions],
    heads: dict[int, tuple[int, ...] | None],
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    attention_source: Callable[[int], Tensor] | None = None,
    texts: dict[int, list[str]] | None = None,
    offsets: dict[int, list[tuple[int, int]]] | None = None,
    per_prompt: bool = False,
    syntax: dict[int, Any] | None = None,
    labels: dict[int, Any] | None = None,
    attention: str | Callable = "auto",
    outputs_source: Callable[[Tensor], Any] | None = None,
    accumulator: Accumulator | None = None,
    run_indices: Sequence[int] | None = None,
    reporter: Any = None,
    on_batch: Callable[[Sequence[int]], None] | None = None,
) -> tuple[Tallies | None, int]:
    """The engine's core: checked token lists and detectors in, `Tallies` (scores
    `{measure: [pattern, layer, head]}` with their evidence) and the number of batches out.

    `attention_source(layer)`, when given, supplies the attention of a single batch
    instead of a forward pass (`detect_head` with a cache). `texts[i]`, when given, are
    prompt i's token texts, position by position (`split_character_texts`); other prompts'
    tokens read their decoded text. `offsets[i]` are prompt i's character spans, for patterns
    that need them (`prompt_offsets`); `syntax[i]` its parser annotations (`prompt_syntax`);
    `labels[i]` its labelled spans (`prompt_labels`). `outputs_source(tokens)`, when given,
    supplies a single batch's deferred pass (`model_outputs.BatchOutputs`) instead of running it
    (`explain`, which draws from the same pass). `per_prompt`: also keep each prompt's scores.
    `attention`: the path (`detect`'s, or a capture function `blocked.CaptureBlocks`);
    `Tallies.attention` (and `accumulator.attention`, over a run's chunks) says which ran.

    A run in chunks (`detect`) passes its own `accumulator` (the Tallies returned are then None:
    the caller reads them at the end), each token list's index in the whole run (`run_indices`),
    its progress `reporter`, and `on_batch(indices)`, called after each batch with the positions in
    `token_lists` it scored.
    """
    facts = model_facts(model)
    n_layers, n_heads = facts.shape
    input_device = facts.device
    work_device = torch.device(device) if device is not None else input_device
    owned = accumulator is None
    if accumulator is None:
        accumulator = new_accumulator(model, len(detectors), measures, exclusions, heads, device,
                                      per_prompt=len(token_lists) if per_prompt else None)
    lengths = [t.numel() for t in token_lists]
    # Patterns reading the model's predictions and measures reading its outputs defer the scoring
    # to after a pass to the logits (model_outputs.py); every other run is the stopped pass.
    outputs = outputs_plan(detectors, measures, n_layers) if attention_source is None else None
    capture, path = choose_attention(attention, model, longest=max(lengths, default=0),
                                     needs_outputs=_needs_outputs(outputs), attention_given=attention_source is not None)
    if capture is not None:
        per_prompt_bytes = blocked_bytes_per_prompt_estimate(model, len(detectors), measures, len(heads))
    else:
        per_prompt_bytes = bytes_per_prompt_estimate(model, len(detectors), len(measures))
    # Recorded before any batch, so that a checkpoint saved halfway says how its sums were read.
    accumulator.attention = merge_attention_paths(accumulator.attention, path)
    extra = extra_bytes_per_prompt(model, outputs, len(heads))
    plan = plan_batches(
        lengths, batch_size,
        bytes_per_prompt=per_prompt_bytes if extra is None else (lambda n: per_prompt_bytes(n) + extra(n)),
        memory_budget=auto_budget(work_device) if batch_size is None else None,
    )
    readout = Readout(model) if outputs is not None else None
    if outputs is not None and outputs.z:
        accumulator.W_O, accumulator.readout = model.W_O.detach(), readout
    strings = TokenStrings(model) if facts.tokenizer is not None else None
    reads_spans = bool(span_readers(detectors))
    specials = facts.special_ids
    padding = facts.pad_id
    layers = sorted(heads)
    block_budget = min(BLOCK_MEMORY, auto_budget(work_device))
    description = f"scoring {len(token_lists)} prompts"
    with (nullcontext(reporter) if reporter is not None else
          progress_reporter(progress, len(plan) * len(layers), description)) as reporter:
        if not owned:
            reporter.set_total(reporter.total + len(plan) * len(layers))
        for number, indices in enumerate(plan, start=1):
            on_attention = reporter.counting(accumulator.add_layer, f"batch {number}/{len(plan)}")
            batch = pad_batch(token_lists, indices, padding, input_device)
            rows = _batch_texts(indices, token_lists, texts, strings) if texts else None
            spans = [offsets[index] for index in indices] if offsets else None
            parsed = [syntax[index] for index in indices] if syntax else None
            # A batch of a labelled run whose prompts have no spans of their own reads "" everywhere.
            labelled = [labels.get(index) for index in indices] if labels is not None and reads_spans else None
            passed = None
            if outputs is not None:  # one pass to the logits first, its attention kept
                passed = (outputs_source(batch.tokens) if outputs_source is not None
                          else run_with_outputs(model, batch.tokens, layers, outputs, readout))
            features = batch_features(detectors, batch, strings=strings, texts=rows, offsets=spans, syntax=parsed,
                                      labels=labelled, special_ids=specials, device=work_device,
                                      predictions=passed.predictions if passed is not None else None)
            prompt_indices = indices if run_indices is None else [run_indices[i] for i in indices]
            if capture is not None:
                query_block = score_blocked_batch(
                    model, capture, accumulator, detectors, batch, features, layers, device=work_device,
                    budget=block_budget, advance=reporter.advance, status=f"batch {number}/{len(plan)}",
                    indices=prompt_indices)
                accumulator.attention = merge_attention_paths(accumulator.attention, {**path, "query_block": query_block})
                if on_batch is not None:
                    on_batch(indices)
                continue
            detection = detection_block(detectors, batch, features, 0, batch.tokens.shape[1], device=work_device)
            del features
            accumulator.start_batch(detection, batch.lengths, prompt_indices)
            del detection  # the accumulator keeps what it needs; free the rest before the forward pass
            if passed is not None:
                accumulator.outputs = passed
                for layer in layers:
                    on_attention(layer, passed.attention.pop(layer))
                accumulator.outputs = passed = None
            elif attention_source is None:
                run_attention_hooks(model, batch.tokens, layers, on_attention)
            else:
                with torch.inference_mode():
                    for layer in layers:
                        on_attention(layer, attention_source(layer))
            if on_batch is not None:
                on_batch(indices)
    return (accumulator.result() if owned else None), len(plan)


def _needs_outputs(outputs: Any) -> str | None:
    """Why a run needs the model's outputs (which only the hook_pattern path reads), or None."""
    if outputs is None:
        return None
    if outputs.predictions:
        return "a pattern reads the model's predictions (a pass to the logits)"
    return "the copying measure reads the heads' outputs (a pass to the logits)"


def split_character_texts(model: Any, items: Any, token_lists: Sequence[Tensor],
                          detectors: Sequence[Detector]) -> dict[int, list[str]]:
    """Per-position token texts of the text prompts where a character is split over tokens.

    Decoded token by token, such tokens read U+FFFD; `tokenize.token_texts` reads them from the
    prompt's text through the tokenizer's offsets instead. Only prompts that need it (and only
    when a pattern reads token texts) get their own texts; every other token keeps the decoded
    text, shared by id."""
    tokenizer = model_facts(model).tokenizer
    needs_texts = any("texts" in getattr(d.pattern, "needs", ()) for d in detectors)
    if tokenizer is None or not needs_texts or not hasattr(tokenizer, "convert_ids_to_tokens"):
        return {}
    from patternlang.prompts import split_prompts
    from patternlang.tokenize import REPLACEMENT_CHARACTER, token_texts

    decoded = TokenStrings(model)  # each distinct id decoded once, not each position
    texts: dict[int, list[str]] = {}
    for index, item in enumerate(split_prompts(items)):
        if isinstance(item, str):
            ids = token_lists[index].tolist()
            if any(REPLACEMENT_CHARACTER in text for text in decoded(ids)):
                texts[index] = token_texts(tokenizer, ids, text=item)
    return texts


def prompt_offsets(model: Any, items: Any, token_lists: Sequence[Tensor],
                   detectors: Sequence[Detector]) -> dict[int, list[tuple[int, int]]]:
    """Every prompt's character spans, when a pattern reads a feature that needs them; else {}.

    Spans come from the tokenizer's offsets into each text prompt; token-id prompts have none,
    which is an error for such a pattern (before any forward pass)."""
    needing = [d.name for d in detectors if "offsets" in getattr(d.pattern, "needs", ())]
    if not needing:
        return {}
    from patternlang.tokenize import prompt_token_offsets

    offsets = prompt_token_offsets(model_facts(model).tokenizer, items, token_lists, pattern=needing[0],
                                   reads="character offsets",
                                   hint="give text prompts to a model with a fast (Hugging Face) tokenizer")
    return dict(enumerate(offsets))


def prompt_labels(prompt_set: Any, detectors: Sequence[Detector]) -> dict[int, Any]:
    """Every prompt's labelled spans (`spans.Labels`), when a pattern reads `span`; else {}.

    They come with a prompt set (`Prompts.spans`: the `ioi` and `needle` probes, JSONL files
    with "spans"); a pattern reading them on prompts without any is an error before any forward
    pass. A prompt of a labelled set without spans of its own reads "" everywhere."""
    needing = span_readers(detectors)
    if not needing:
        return {}
    from patternlang import probes

    spans = prompt_set.spans if isinstance(prompt_set, probes.Prompts) else None
    if spans is None:
        raise unlabelled_prompts_error(needing[0])
    return {index: row for index, row in enumerate(spans) if row is not None}


def span_readers(patterns: Sequence[Any]) -> list[str]:
    """The names of the patterns (or detectors) that read labelled spans (`span[...]`)."""
    return [p.name for p in patterns if "spans" in getattr(getattr(p, "pattern", p), "needs", ())]


def unlabelled_prompts_error(pattern: str) -> InputError:
    """The error for a pattern reading labelled spans on prompts none of which has any."""
    return InputError(f"pattern {pattern!r} reads labelled spans (span[...]), but the prompts have none",
                      hint="use a probe that labels its prompts (ioi, needle), a JSONL prompt file with "
                           "\"spans\", or Prompts(texts=..., spans=...)")


def check_labels_given(source: Any, detectors: Sequence[Detector]) -> None:
    """A pattern reading labelled spans on in-memory prompts without any is an error before any
    forward pass (a streamed file's spans are known only as it is read: `chunk_labels`)."""
    if isinstance(source, InMemoryPrompts) and source.spans is None:
        prompt_labels(source.prompts, detectors)


def chunk_labels(spans: Sequence[Any], detectors: Sequence[Detector]) -> dict[int, Any]:
    """A chunk's labelled spans by position in the chunk, when a pattern reads `span`; else {}.

    A prompt without spans of its own reads "" everywhere. Whether a streamed source labels any
    of its prompts is known only once it is read (on every rank): `detect` says so at the end
    (the CLI reads a prompt file once before the model loads, and says so at once)."""
    if not span_readers(detectors):
        return {}
    return {index: row for index, row in enumerate(spans) if row is not None}


def prompt_source(prompts: Any, model: Any) -> Any:
    """What `detect` reads prompts from (`probes.stream.PromptSource`): a prompt file `Path` or a
    source as given, read lazily; an iterator read once; anything else (lists, tensors, a
    `Prompts`, a bound probe) in memory, as before."""
    from patternlang.probes import Prompts
    from patternlang.probes.stream import OnePassPrompts, PromptSource, open_prompts

    if isinstance(prompts, PromptSource):
        return prompts
    if isinstance(prompts, Path):
        return open_prompts(prompts)
    prompt_set = _prompt_set(prompts, model)
    if isinstance(prompt_set, Iterator) and not isinstance(prompt_set, (str, Tensor)):
        return OnePassPrompts(prompt_set)
    if isinstance(prompt_set, Prompts):
        return InMemoryPrompts(prompt_set)
    return InMemoryPrompts(_split(prompt_set), name="prompts")


def _of_total(done: int, total: int | None) -> str:
    return f"{done:,}/{total:,}" if total is not None else f"{done:,}"


def _batch_texts(indices: Sequence[int], token_lists: Sequence[Tensor], texts: dict[int, list[str]],
                 strings: Any) -> list[list[str]] | None:
    if strings is None or not any(index in texts for index in indices):
        return None
    return [texts[index] if index in texts else strings(token_lists[index].tolist()) for index in indices]


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


def check_measures(measures: str | Sequence[str] | None, detectors: Sequence[Detector] = ()) -> tuple[str, ...]:
    """The measures to compute, in order, without repeats; unknown names raise `InputError`."""
    if measures is None:
        # Each pattern's own measure (or the default), in pattern order.
        measures = [getattr(d.settings, "measure", None) or DEFAULT_MEASURE for d in detectors] or [DEFAULT_MEASURE]
    elif isinstance(measures, str):
        measures = [m for m in measures.replace(",", " ").split() if m]
    elif not isinstance(measures, Iterable) or isinstance(measures, (bytes, bytearray, set, frozenset)):
        raise InputError(f"measures must be a measure's name, names separated by commas or a list of names, "
                         f"not {type(measures).__name__}", hint='measures="mass,tv" or measures=["mass", "tv"]')
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


def _setting(explicit: bool | None, detector: Detector, name: str) -> bool:
    if explicit is not None:
        return bool(explicit)
    settings = detector.settings
    return bool(getattr(settings, name, False)) if settings is not None else False


def _groups(exclusions: Sequence[Exclusions]) -> list[PatternGroup]:
    by_exclusion: dict[Exclusions, list[int]] = {}
    for index, exclusion in enumerate(exclusions):
        by_exclusion.setdefault(exclusion, []).append(index)
    return [PatternGroup(tuple(indices), exclusion) for exclusion, indices in by_exclusion.items()]


def _prompt_set(prompts: Any, model: Any) -> Any:
    """A bound probe (from `get_probe`) built: a `Prompts`; anything else as given."""
    from patternlang import probes

    if callable(prompts) and not isinstance(prompts, (Tensor, probes.Prompts)):
        prompts = prompts(model)  # a probe bound with get_probe(name, **args)
    return prompts


def _split(items: Any) -> list:
    from patternlang.prompts import split_prompts

    return split_prompts(items)
