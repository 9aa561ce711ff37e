"""How a batch's attention reaches the running sums: one `AttentionReader` per chunk, chosen by the plan.

Four strategies, one interface (`AttentionReader.score`):

- `HookedReader`: one forward pass hooked on `blocks.{l}.attn.hook_pattern`, stopped after the last
  needed layer (`forward.run_attention_hooks`): each layer reduced as its hook fires.
- `BlockReader`: the long-context path (`blocked.py`): the needed layers' queries and keys kept,
  attention and detection recomputed by blocks of query rows, memory linear in the length.
- `DeferredReader`: a pass to the logits first (`model_outputs.run_with_outputs`), for patterns
  reading the model's predictions and measures reading the heads' outputs (`copying`); the needed
  layers' attention kept and reduced after it.
- `GivenReader`: the attention is supplied by the caller (`detect_head` with a cache).

An `Intervention` changes the pass the readers that run the model run (hooked, deferred): its
`fwd_hooks(tokens)` are added before the readers' own hooks, so a hook that ablates, patches or
replaces a head's attention on `hook_pattern` is what the reading hook then sees. The block path
and a given cache run no pass of ours, and refuse an intervention.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from patternlang.engine.hooked import HookedModel
from patternlang.engine.accumulate import Accumulator
from patternlang.engine.batching import Batch
from patternlang.engine.blocked import CaptureBlocks, score_blocked_batch
from patternlang.engine.copying import LayerOutputs
from patternlang.engine.forward import run_attention_hooks
from patternlang.engine.inputs import BatchInputs
from patternlang.engine.model_outputs import BatchOutputs, OutputsPlan, Readout, run_with_outputs
from patternlang.engine.pattern_tensors import detection_block
from patternlang.engine.progress import ProgressReporter
from patternlang.engine.shapes import Attention, Tokens

if TYPE_CHECKING:  # the plan chooses the readers; they only read it
    from patternlang.engine.plan import RunPlan

Hook = tuple[str, Callable[..., Any]]
LayerAttention = Attention


@runtime_checkable
class Intervention(Protocol):
    """A change to the forward pass (ablating, patching or replacing a head's attention).

    `fwd_hooks(tokens)` gives TransformerLens `(hook name, hook)` pairs for the batch's tokens
    `[batch, pos]`; they run before the reader's own hooks. `name` says what it did (provenance).
    """

    name: str

    def fwd_hooks(self, tokens: Tokens) -> list[Hook]: ...


@dataclass(frozen=True, slots=True)
class BatchWork:
    """One padded batch and its rows of the chunk's inputs; `prompt_indices`: positions in the whole run."""

    batch: Batch
    inputs: BatchInputs
    prompt_indices: list[int]
    status: str


class AttentionReader(ABC):
    """Reads one batch's attention of the plan's layers and reduces it into the accumulator.

    `path` is the provenance recorded in `Scores.settings["attention"]`; `bytes_per_prompt(plan)`
    the memory one prompt of length L takes on this path (what `plan_batches` sizes batches by)."""

    path: dict[str, Any]

    @abstractmethod
    def score(self, plan: RunPlan, work: BatchWork, accumulator: Accumulator, progress: ProgressReporter) -> None:
        """Reduce `work`'s attention into `accumulator`, advancing `progress` one step per layer."""

    def bytes_per_prompt(self, plan: RunPlan) -> Callable[[int], float]:
        return plan.row_bytes_per_prompt()


class _RowsReader(AttentionReader):
    """Readers that see each layer's whole `[batch, head_index, query_pos, key_pos]` attention."""

    def score(self, plan: RunPlan, work: BatchWork, accumulator: Accumulator, progress: ProgressReporter) -> None:
        passed = self.before(work.batch.tokens)
        features = plan.features(work, None if passed is None else passed.predictions)
        detection = detection_block(plan.detectors, work.batch, features, 0, work.batch.tokens.shape[1],
                                    device=plan.device)
        del features
        accumulator.start_batch(detection, work.batch.lengths, work.prompt_indices)
        del detection  # the accumulator keeps what it needs; free the rest before the forward pass
        self.layers(plan, work.batch.tokens, passed, progress.counting(accumulator.add_layer, work.status))

    def before(self, tokens: Tokens) -> BatchOutputs | None:
        """A pass to run before the detection tensors (whose predictions they read), or None."""
        return None

    @abstractmethod
    def layers(self, plan: RunPlan, tokens: Tokens, passed: BatchOutputs | None,
               on_attention: Callable[..., None]) -> None:
        """Call `on_attention(layer, attention[, outputs])` for each of the plan's layers."""


class HookedReader(_RowsReader):
    """One pass hooked on `hook_pattern`, stopped after the last needed layer."""

    def __init__(self, path: dict[str, Any], interventions: Sequence[Intervention] = ()):
        self.path, self.interventions = path, tuple(interventions)

    def layers(self, plan: RunPlan, tokens: Tokens, passed: BatchOutputs | None,
               on_attention: Callable[..., None]) -> None:
        hooks = [hook for intervention in self.interventions for hook in intervention.fwd_hooks(tokens)]
        run_attention_hooks(plan.model, tokens, plan.layers, on_attention, hooks)


class DeferredReader(_RowsReader):
    """A pass to the logits first, its attention (and `z`, predictions) kept; `source(tokens)`, when
    given, supplies that pass instead (`explain`, which draws from the same pass)."""

    def __init__(self, path: dict[str, Any], model: HookedModel, outputs: OutputsPlan, layers: Sequence[int],
                 interventions: Sequence[Intervention] = (),
                 source: Callable[[Tensor], BatchOutputs] | None = None):
        self.path, self.model, self.outputs, self.layer_list = path, model, outputs, list(layers)
        self.interventions, self.source = tuple(interventions), source
        self.readout = Readout(model)
        self.W_O = self.readout.output_weights() if outputs.z else None  # [layer, head_index, d_head, d_model]

    def before(self, tokens: Tokens) -> BatchOutputs:
        if self.source is not None:
            return self.source(tokens)
        hooks = [hook for intervention in self.interventions for hook in intervention.fwd_hooks(tokens)]
        return run_with_outputs(self.model, tokens, self.layer_list, self.outputs, self.readout, hooks)

    def layers(self, plan: RunPlan, tokens: Tokens, passed: BatchOutputs | None,
               on_attention: Callable[..., None]) -> None:
        assert passed is not None  # `before` always passes
        for layer in plan.layers:
            on_attention(layer, passed.attention.pop(layer), self.layer_outputs(passed, layer))

    def layer_outputs(self, passed: BatchOutputs, layer: int) -> LayerOutputs | None:
        if layer not in passed.z or self.W_O is None:
            return None
        return LayerOutputs(passed.z[layer], self.W_O[layer], passed.final_scale, passed.tokens, self.readout)


class GivenReader(_RowsReader):
    """The caller's attention, `source(layer)` `[batch, head_index, query_pos, key_pos]`, instead of a pass."""

    def __init__(self, path: dict[str, Any], source: Callable[[int], LayerAttention]):
        self.path, self.source = path, source

    def layers(self, plan: RunPlan, tokens: Tokens, passed: BatchOutputs | None,
               on_attention: Callable[..., None]) -> None:
        with torch.inference_mode():
            for layer in plan.layers:
                on_attention(layer, self.source(layer))


class BlockReader(AttentionReader):
    """Attention and detection by blocks of query rows from a capture (`blocked.py`)."""

    def __init__(self, path: dict[str, Any], capture: CaptureBlocks, budget: float):
        self.path, self.capture, self.budget = path, capture, budget

    def bytes_per_prompt(self, plan: RunPlan) -> Callable[[int], float]:
        return plan.block_bytes_per_prompt()

    def score(self, plan: RunPlan, work: BatchWork, accumulator: Accumulator, progress: ProgressReporter) -> None:
        features = plan.features(work, None)
        query_block = score_blocked_batch(
            plan.model, self.capture, accumulator, plan.detectors, work.batch, features, plan.layers,
            device=plan.device, budget=self.budget, advance=progress.advance, status=work.status,
            indices=work.prompt_indices)
        accumulator.record_path({**self.path, "query_block": query_block})
