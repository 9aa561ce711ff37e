"""The loop that follows a `RunPlan`: chunks of prompts, batches of a chunk, a reader per chunk.

`score_chunk` is the data flow of one chunk: its reader and batches from the plan, then per batch
pad -> the batch's inputs -> the reader reduces its attention into the accumulator. `ChunkedRun`
walks a prompt source chunk by chunk around it, with what a checkpoint saves (the running sums and
the place in the source); ranks and the final scores wrap it in `detection.detect`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from patternlang.engine.hooked import HookedModel
from patternlang.engine.accumulate import Accumulator, Tallies
from patternlang.engine.batching import pad_batch
from patternlang.engine.checkpoint import CheckpointFile
from patternlang.engine.chunks import Chunk, ChunkReader
from patternlang.engine.inputs import ChunkInputs, chunk_inputs, span_readers
from patternlang.engine.measures import Exclusions
from patternlang.engine.model_outputs import BatchOutputs
from patternlang.engine.options import DetectOptions
from patternlang.engine.pattern_tensors import Detector
from patternlang.engine.plan import Heads, RunPlan
from patternlang.engine.progress import ProgressReporter, progress_reporter
from patternlang.engine.readers import BatchWork, LayerAttention
from patternlang.probes.stream import InMemoryPrompts


def score_chunk(plan: RunPlan, inputs: ChunkInputs, accumulator: Accumulator, progress: ProgressReporter, *,
                run_indices: Sequence[int] | None = None,
                on_batch: Callable[[Sequence[int]], None] | None = None) -> int:
    """Score one chunk's prompts into `accumulator`; returns its number of batches.

    `run_indices[i]`: prompt i's index in the whole run (default: its position in the chunk);
    `on_batch(positions)` after each batch, with the positions in the chunk it scored."""
    reader = plan.reader(max(inputs.lengths, default=0))
    accumulator.record_path(reader.path)  # before any batch: a checkpoint saved halfway says how
    batches = plan.batches(inputs.lengths, reader)
    progress.set_total(progress.total + len(batches) * len(plan.layers))
    for number, positions in enumerate(batches, start=1):
        work = BatchWork(
            batch=pad_batch(inputs.token_lists, positions, plan.facts.pad_id, plan.facts.device),
            inputs=inputs.for_batch(positions, plan.strings),
            prompt_indices=list(positions) if run_indices is None else [run_indices[i] for i in positions],
            status=f"batch {number}/{len(batches)}",
        )
        reader.score(plan, work, accumulator, progress)
        if on_batch is not None:
            on_batch(positions)
    return len(batches)


def score_tokens(
    model: HookedModel,
    token_lists: Sequence[Tensor],
    detectors: Sequence[Detector],
    *,
    measures: tuple[str, ...],
    exclusions: Sequence[Exclusions],
    heads: Heads,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    attention_source: Callable[[int], LayerAttention] | None = None,
    texts: dict[int, list[str]] | None = None,
    offsets: dict[int, list[tuple[int, int]]] | None = None,
    per_prompt: bool = False,
    syntax: dict[int, Any] | None = None,
    labels: dict[int, Any] | None = None,
    attention: Any = "auto",
    outputs_source: Callable[[Tensor], BatchOutputs] | None = None,
) -> tuple[Tallies, int]:
    """Checked token lists and detectors in, `Tallies` and the number of batches out: one chunk,
    its inputs given (`explain`, `detect_head`).

    `attention_source(layer)`, when given, supplies the attention of a single batch instead of a
    forward pass (`detect_head` with a cache); `outputs_source(tokens)` a single batch's deferred
    pass (`explain`, which draws from the same pass). `texts`, `offsets`, `syntax`, `labels`: the
    prompts' inputs by position (`inputs.ChunkInputs`)."""
    options = DetectOptions(batch_size=batch_size, device=device, progress=progress, per_prompt=per_prompt,
                            attention=attention)
    plan = RunPlan.of(model, detectors, measures, exclusions, heads, options, given=attention_source,
                      outputs_source=outputs_source)
    inputs = ChunkInputs(list(token_lists), texts or {}, offsets or {}, syntax or {},
                         labels if labels is not None and plan.reads_spans else None)
    accumulator = plan.new_accumulator(len(token_lists) if per_prompt else None)
    with progress_reporter(progress, 0, f"scoring {len(token_lists)} prompts") as reporter:
        n_batches = score_chunk(plan, inputs, accumulator, reporter)
    return accumulator.result(), n_batches


@dataclass
class ChunkedRun:
    """A run over a prompt source, chunk by chunk: the counts a checkpoint keeps and the chunk in
    progress (which of its prompts are done), saved every `every` batches by `saver`."""

    plan: RunPlan
    reader: ChunkReader
    accumulator: Accumulator
    saver: CheckpointFile | None = None
    every: int = 1
    n_tokens: int = 0  # this process's; with a checkpoint, since the run began
    n_batches: int = 0
    labelled: bool = False  # some prompt read has spans (before a restart too): span patterns can be scored
    scored: int = 0
    since_saved: int = 0
    chunk: Chunk | None = None
    done: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)

    def restore(self, saved: dict[str, Any]) -> None:
        """Continue from a checkpoint's state (`save`'s)."""
        self.accumulator.load_state_dict(saved["accumulator"])
        self.n_tokens, self.n_batches = int(saved["n_tokens"]), int(saved["n_batches"])
        self.reader.resume_at = (int(saved["position"]), str(saved["digest"]))
        self.reader.skip = set(saved["done"].tolist())
        self.labelled = self.labelled or bool(saved.get("labelled", False))

    def run(self, progress: ProgressReporter) -> None:
        """Score every chunk the reader gives, then save the finished state (when checkpointing)."""
        total = getattr(self.reader.source, "total", None)
        for chunk in self.reader:
            self.chunk, self.done = chunk, []
            inputs = chunk_inputs(self.plan.model, chunk.items, chunk.spans, self.plan.detectors,
                                  prepend_bos=self.plan.options.prepend_bos, indices=chunk.indices)
            self.labelled = self.labelled or any(row is not None for row in chunk.spans)
            self.accumulator.reserve_prompts(chunk.indices[-1] + 1)
            self.lengths = inputs.lengths
            score_chunk(self.plan, inputs, self.accumulator, progress, run_indices=chunk.indices,
                        on_batch=lambda positions: self.after_batch(positions, progress, total))
        if self.saver is not None:
            self.save(finished=True)  # a rerun turns it straight into the scores

    def after_batch(self, positions: Sequence[int], progress: ProgressReporter, total: int | None) -> None:
        assert self.chunk is not None  # set by `run` before any batch
        self.done.extend(self.chunk.indices[i] for i in positions)
        self.n_tokens += sum(self.lengths[i] for i in positions)  # counted when scored, as the sums
        self.scored += len(positions)
        if total is None or total > self.reader.size:  # a run of several chunks: say how far it got
            read = f"{self.reader.position:,}/{total:,}" if total is not None else f"{self.reader.position:,}"
            progress.note = f"{self.scored:,} prompts scored, {read} read"
        self.n_batches += 1
        self.since_saved += 1
        if self.saver is not None and self.since_saved >= self.every:
            self.save()
            self.since_saved = 0

    def save(self, finished: bool = False) -> None:
        """The running sums and the place in the source: after the last batch, or before the
        chunk in progress plus which of its prompts are done."""
        assert self.saver is not None
        if finished or self.chunk is None:
            position, digest, done = self.reader.position, self.reader.digest(), []
        else:
            position, digest = self.chunk.start, self.chunk.start_digest
            done = sorted(set(self.done) | {i for i in self.reader.skip if i >= position})
        self.saver.save({"accumulator": self.accumulator.state_dict(), "position": position, "digest": digest,
                         "done": torch.tensor(done, dtype=torch.long), "labelled": self.labelled,
                         "n_tokens": self.n_tokens, "n_batches": self.n_batches})


def starts_labelled(source: Any) -> bool:
    """In-memory prompts with spans are labelled before any is read."""
    return isinstance(source, InMemoryPrompts) and source.spans is not None


__all__ = ["ChunkedRun", "score_chunk", "score_tokens", "span_readers", "starts_labelled"]
