"""A run is a plan, built once: what a batch needs, how its attention is read, how the sums are kept.

`RunPlan.build(model, detectors, options)` decides, from the patterns' `needs` and the
`DetectOptions`, once per run: the measures, exclusions, heads and layers; which inputs a batch
reads (`inputs.chunk_inputs`); whether a pass to the logits is needed (`OutputsPlan`); and, per
chunk (the "auto" path depends on its longest prompt), which `AttentionReader` reads the heads.
The loop that follows the plan is `run.score_chunk`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from patternlang.compiler import BatchFeatures
from patternlang.engine.accumulate import Accumulator, PatternGroup
from patternlang.engine.batching import (
    TokenStrings,
    auto_budget,
    bytes_per_prompt_estimate,
    plan_batches,
)
from patternlang.engine.blocked import BLOCK_MEMORY, blocked_bytes_per_prompt_estimate, choose_attention
from patternlang.engine.hooked import HookedModel
from patternlang.engine.inputs import span_readers
from patternlang.engine.measures import Exclusions
from patternlang.engine.model_outputs import BatchOutputs, OutputsPlan, extra_bytes_per_prompt, outputs_plan
from patternlang.engine.options import DetectOptions, check_measures, pattern_setting
from patternlang.engine.pattern_tensors import Detector, batch_features
from patternlang.engine.readers import (
    AttentionReader,
    BatchWork,
    BlockReader,
    DeferredReader,
    GivenReader,
    HookedReader,
    LayerAttention,
)
from patternlang.errors import InputError
from patternlang.heads import parse_heads
from patternlang.models.facts import ModelFacts, model_facts

Heads = dict[int, tuple[int, ...] | None]


@dataclass(frozen=True, eq=False)
class RunPlan:
    """Everything a run decides once. `given`: the caller supplies each layer's attention (no
    pass of ours: `detect_head` with a cache); `outputs_source`: the caller supplies the deferred
    pass (`explain`)."""

    model: HookedModel
    facts: ModelFacts
    detectors: tuple[Detector, ...]
    measures: tuple[str, ...]
    exclusions: tuple[Exclusions, ...]
    heads: Heads
    options: DetectOptions
    outputs: OutputsPlan | None
    given: Callable[[int], LayerAttention] | None = None
    outputs_source: Callable[[Tensor], BatchOutputs] | None = None

    @classmethod
    def build(cls, model: HookedModel, detectors: Sequence[Detector], options: DetectOptions) -> RunPlan:
        """The plan of `detect`: measures, exclusions and heads from the options and the patterns."""
        measures = options.measure_names or check_measures(None, detectors)
        exclusions = tuple(
            Exclusions(bos=pattern_setting(options.exclude_bos, d, "exclude_bos"),
                       current=pattern_setting(options.exclude_current_token, d, "exclude_current"))
            for d in detectors)
        facts = model_facts(model)
        heads = parse_heads(options.heads, *facts.shape)
        return cls.of(model, detectors, measures, exclusions, heads, options)

    @classmethod
    def of(cls, model: HookedModel, detectors: Sequence[Detector], measures: tuple[str, ...],
           exclusions: Sequence[Exclusions], heads: Heads, options: DetectOptions, *,
           given: Callable[[int], LayerAttention] | None = None,
           outputs_source: Callable[[Tensor], BatchOutputs] | None = None) -> RunPlan:
        """A plan from resolved measures, exclusions and heads (`score_tokens`'s callers have them)."""
        facts = model_facts(model)
        # Patterns reading the model's predictions and measures reading its outputs defer the scoring
        # to after a pass to the logits (model_outputs.py); every other run is the stopped pass.
        outputs = outputs_plan(detectors, measures, facts.n_layers) if given is None else None
        return cls(model, facts, tuple(detectors), measures, tuple(exclusions), heads, options, outputs,
                   given, outputs_source)

    # ---- what the plan knows -----------------------------------------------------------
    @cached_property
    def layers(self) -> list[int]:
        return sorted(self.heads)

    @cached_property
    def device(self) -> torch.device:
        """Where detection tensors and reductions live."""
        device = self.options.device
        return torch.device(device) if device is not None else self.facts.device

    @cached_property
    def strings(self) -> TokenStrings | None:
        """Each distinct token id's text, decoded once (None for a model without a tokenizer)."""
        return TokenStrings(self.model) if self.facts.tokenizer is not None else None

    @cached_property
    def reads_spans(self) -> bool:
        return bool(span_readers(self.detectors))

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.detectors]

    # ---- how the sums are kept ---------------------------------------------------------
    def new_accumulator(self, per_prompt: int | None = None) -> Accumulator:
        """The running sums (`per_prompt`: rows for that many prompts' own scores; None: not kept)."""
        n_layers, n_heads = self.facts.shape
        by_exclusion: dict[Exclusions, list[int]] = {}
        for index, exclusion in enumerate(self.exclusions):
            by_exclusion.setdefault(exclusion, []).append(index)
        groups = [PatternGroup(tuple(indices), exclusion) for exclusion, indices in by_exclusion.items()]
        return Accumulator(n_patterns=len(self.detectors), n_layers=n_layers, n_heads=n_heads,
                           measures=self.measures, groups=groups, heads=self.heads, device=self.device,
                           per_prompt=per_prompt)

    # ---- how attention is read ---------------------------------------------------------
    def reader(self, longest: int) -> AttentionReader:
        """The `AttentionReader` of a chunk whose longest prompt has `longest` tokens."""
        interventions = self.options.interventions
        needs = _needs_outputs(self.outputs) or ("an intervention changes the forward pass" if interventions else None)
        capture, path = choose_attention(self.options.attention, self.model, longest=longest, needs_outputs=needs,
                                         attention_given=self.given is not None)
        if capture is not None:
            return BlockReader(path, capture, min(BLOCK_MEMORY, auto_budget(self.device)))
        if self.given is not None:
            if interventions:
                raise InputError("an intervention cannot change attention given by the caller")
            return GivenReader(path, self.given)
        if self.outputs is not None:
            return DeferredReader(path, self.model, self.outputs, self.layers, interventions, self.outputs_source)
        return HookedReader(path, interventions)

    def batches(self, lengths: Sequence[int], reader: AttentionReader) -> list[list[int]]:
        """The chunk's prompts (positions) in batches, sized for `reader`'s memory per prompt."""
        per_prompt = reader.bytes_per_prompt(self)
        extra = extra_bytes_per_prompt(self.model, self.outputs, len(self.heads))
        batch_size = self.options.batch_size
        return plan_batches(
            lengths, batch_size,
            bytes_per_prompt=per_prompt if extra is None else (lambda n: per_prompt(n) + extra(n)),
            memory_budget=auto_budget(self.device) if batch_size is None else None,
        )

    def row_bytes_per_prompt(self) -> Callable[[int], float]:
        return bytes_per_prompt_estimate(self.model, len(self.detectors), len(self.measures))

    def block_bytes_per_prompt(self) -> Callable[[int], float]:
        return blocked_bytes_per_prompt_estimate(self.model, len(self.detectors), self.measures, len(self.heads))

    # ---- what a batch reads ------------------------------------------------------------
    def features(self, work: BatchWork, predictions: dict[int | None, Tensor] | None) -> BatchFeatures | None:
        """The batch's feature tables, shared by every pattern (None: no language pattern)."""
        inputs = work.inputs
        return batch_features(self.detectors, work.batch, strings=self.strings, texts=inputs.texts,
                              offsets=inputs.offsets, syntax=inputs.syntax,
                              labels=inputs.labels if self.reads_spans else None,
                              special_ids=self.facts.special_ids, device=self.device, predictions=predictions)


def _needs_outputs(outputs: Any) -> str | None:
    """Why a run needs the model's outputs (which only the hook_pattern path reads), or None."""
    if outputs is None:
        return None
    if outputs.predictions:
        return "a pattern reads the model's predictions (a pass to the logits)"
    return "the copying measure reads the heads' outputs (a pass to the logits)"
