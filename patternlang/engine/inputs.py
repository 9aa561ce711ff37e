"""What a batch reads besides its token ids, prepared once per chunk of prompts.

A pattern's `needs` say which inputs a run reads: token texts where a character splits over
tokens (`texts`), character offsets (`offsets`), the parser's annotations (`syntax`) and
labelled spans (`spans`). `chunk_inputs` prepares the needed ones for a chunk's prompts, and
`ChunkInputs.for_batch` picks a batch's rows of them; nothing else is computed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from patternlang.annotate.spacy_parser import prompt_syntax
from patternlang.engine.hooked import HookedModel
from patternlang.engine.batching import TokenStrings, tokenize
from patternlang.engine.model_outputs import outputs_plan, run_with_outputs
from patternlang.engine.pattern_tensors import Detector, check_matrix_sizes, detection_tensors
from patternlang.engine.shapes import TokenList
from patternlang.errors import InputError
from patternlang.models.facts import model_facts
from patternlang.probes import Prompts
from patternlang.probes.stream import InMemoryPrompts, OnePassPrompts, PromptSource, open_prompts
from patternlang.prompts import check_token_ids, split_prompts
from patternlang.spans import token_labels
from patternlang.tokenization import (
    REPLACEMENT_CHARACTER,
    prompt_token_offsets,
    token_texts,
    vocabulary_size_before_loading,
)


@dataclass(frozen=True, slots=True)
class BatchInputs:
    """A batch's rows of the chunk's inputs (None where no pattern reads them)."""

    texts: list[list[str]] | None = None
    offsets: list[list[tuple[int, int]]] | None = None
    syntax: list[Any] | None = None
    labels: list[Any] | None = None


@dataclass(frozen=True, slots=True)
class ChunkInputs:
    """A chunk's prompts, tokenized, with what the patterns read of them, by position in the chunk.

    `texts[i]`: prompt i's token texts where a character splits over tokens (`split_character_texts`;
    other prompts' tokens read their decoded text); `offsets[i]`: its character spans; `syntax[i]`:
    its parser annotations; `labels[i]`: its labelled spans (a prompt of a labelled run without
    spans of its own reads "" everywhere); `labels` None: no pattern reads spans."""

    token_lists: list[TokenList]
    texts: dict[int, list[str]] = field(default_factory=dict)
    offsets: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    syntax: dict[int, Any] = field(default_factory=dict)
    labels: dict[int, Any] | None = None

    @property
    def lengths(self) -> list[int]:
        return [t.numel() for t in self.token_lists]

    def for_batch(self, indices: Sequence[int], strings: TokenStrings | None) -> BatchInputs:
        """The rows of the prompts at `indices` (positions in the chunk)."""
        return BatchInputs(
            texts=_batch_texts(indices, self.token_lists, self.texts, strings) if self.texts else None,
            offsets=[self.offsets[i] for i in indices] if self.offsets else None,
            syntax=[self.syntax[i] for i in indices] if self.syntax else None,
            labels=[self.labels.get(i) for i in indices] if self.labels is not None else None,
        )


def chunk_inputs(model: HookedModel, items: Sequence[Any], spans: Sequence[Any] | None, detectors: Sequence[Detector], *,
                 prepend_bos: bool, indices: Sequence[int] | None = None) -> ChunkInputs:
    """Tokenize a chunk's prompts and prepare what the patterns read of them (`ChunkInputs`)."""
    token_lists = tokenize(model, items, prepend_bos=prepend_bos, indices=indices)
    inputs = ChunkInputs(
        token_lists=token_lists,
        texts=split_character_texts(model, items, token_lists, detectors),
        offsets=prompt_offsets(model, items, token_lists, detectors),
        labels=chunk_labels(spans or (), detectors) if span_readers(detectors) else None,
        syntax=prompt_syntax(model, items, token_lists, detectors),
    )
    check_matrix_sizes(detectors, inputs.lengths)
    return inputs


def split_character_texts(model: HookedModel, items: Any, token_lists: Sequence[Tensor],
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
    decoded = TokenStrings(model)  # each distinct id decoded once, not each position
    texts: dict[int, list[str]] = {}
    for index, item in enumerate(split_prompts(items)):
        if isinstance(item, str):
            ids = token_lists[index].tolist()
            if any(REPLACEMENT_CHARACTER in text for text in decoded(ids)):
                texts[index] = token_texts(tokenizer, ids, text=item)
    return texts


def prompt_offsets(model: HookedModel, items: Any, token_lists: Sequence[Tensor],
                   detectors: Sequence[Detector]) -> dict[int, list[tuple[int, int]]]:
    """Every prompt's character spans, when a pattern reads a feature that needs them; else {}.

    Spans come from the tokenizer's offsets into each text prompt; token-id prompts have none,
    which is an error for such a pattern (before any forward pass)."""
    needing = [d.name for d in detectors if "offsets" in getattr(d.pattern, "needs", ())]
    if not needing:
        return {}
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
    spans = prompt_set.spans if isinstance(prompt_set, Prompts) else None
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


def prompt_source(prompts: Any, model: HookedModel) -> PromptSource:
    """What `detect` reads prompts from (`probes.stream.PromptSource`): a prompt file `Path` or a
    source as given, read lazily; an iterator read once; anything else (lists, tensors, a
    `Prompts`, a bound probe) in memory, as before."""
    if isinstance(prompts, PromptSource):
        return prompts
    if isinstance(prompts, Path):
        return open_prompts(prompts)
    if callable(prompts) and not isinstance(prompts, (Tensor, Prompts)):
        prompts = prompts(model)  # a probe bound with get_probe(name, **args)
    if isinstance(prompts, Iterator) and not isinstance(prompts, (str, Tensor)):
        return OnePassPrompts(prompts)
    if isinstance(prompts, Prompts):
        return InMemoryPrompts(prompts)
    return InMemoryPrompts(split_prompts(prompts), name="prompts")


def check_prompt_stream(source: PromptSource, model_name: str | None, patterns: Sequence[Any] = ()) -> int:
    """Read a streamed prompt file once before the model loads: every entry checked (token ids
    against the embedded model's vocabulary where that is known), memory flat; a pattern reading
    labelled spans on a file none of whose entries has any is an error. Returns the count (and
    sets it as the source's `total`, for the progress bar)."""
    d_vocab = None
    count, block, numbers, labelled = 0, [], [], False
    for prompt, spans in source:
        labelled = labelled or spans is not None
        if not isinstance(prompt, str):
            if d_vocab is None:  # known for the embedded model alone; -1: checked once the model loads
                d_vocab = vocabulary_size_before_loading(model_name) or -1
            if d_vocab > 0:
                block.append(prompt)
                numbers.append(count)
                if len(block) >= 1024:
                    check_token_ids(block, d_vocab=d_vocab, vocabulary="the embedded model's", indices=numbers)
                    block, numbers = [], []
        count += 1
    if block:
        check_token_ids(block, d_vocab=d_vocab, vocabulary="the embedded model's", indices=numbers)
    source.total = count
    readers = span_readers(patterns)
    if readers and not labelled:
        raise unlabelled_prompts_error(readers[0])
    return count


def _batch_texts(indices: Sequence[int], token_lists: Sequence[Tensor], texts: dict[int, list[str]],
                 strings: Any) -> list[list[str]] | None:
    if strings is None or not any(index in texts for index in indices):
        return None
    return [texts[index] if index in texts else strings(token_lists[index].tolist()) for index in indices]


# ---- one prompt's inputs, as `explain` and the atlas's drawings read them -------------------------
@dataclass(frozen=True)
class PromptInputs:
    """What the engine reads of some prompts besides their token ids, as `detect` gathers it:
    split-character texts, character offsets, parser annotations and labelled spans (each `{prompt
    index: value}`, empty when no pattern reads it). `explain` and the atlas draw with it."""

    texts: dict[int, list[str]]
    offsets: dict[int, list[tuple[int, int]]]
    syntax: dict[int, Any]
    labels: dict[int, Any]

    def detection(self, model: HookedModel, batch: Any, detectors: Sequence[Any],
                  predictions: dict[int | None, Tensor] | None = None) -> Tensor:
        """The detection tensors `[pattern, batch, q, k]` of `batch` (on the CPU), by the engine's
        `detection_tensors`; `predictions`: the batch's (`BatchOutputs.predictions`), for patterns
        reading them."""
        facts = model_facts(model)
        rows = batch.indices

        def pick(values: dict[int, Any]) -> list[Any] | None:
            return [values.get(row) for row in rows] if values else None

        texts = None
        if self.texts:
            strings = TokenStrings(model)
            texts = [self.texts.get(row) or strings(batch.tokens[i, :int(batch.lengths[i])].tolist())
                     for i, row in enumerate(rows)]
        return detection_tensors(detectors, batch, strings=TokenStrings(model) if facts.tokenizer is not None else None,
                                 texts=texts, offsets=pick(self.offsets), syntax=pick(self.syntax),
                                 labels=pick(self.labels), special_ids=facts.special_ids, device=torch.device("cpu"),
                                 predictions=predictions)

    def span_labels(self, index: int) -> tuple[str, ...] | None:
        """Prompt `index`'s token labels as `span[k]` reads them (None when no pattern reads spans)."""
        if not self.labels or index not in self.offsets:
            return None
        return tuple(token_labels(self.labels.get(index) or (), self.offsets[index]))


def prompt_inputs(model: HookedModel, prompt_set: Any, items: Sequence[Any], token_lists: Sequence[Tensor],
                  detectors: Sequence[Any]) -> PromptInputs:
    """The `PromptInputs` of `items` (tokenized as `token_lists`) for `detectors`, by the engine's
    own functions; `prompt_set` is the `Prompts` they came from (its labelled spans), or None."""
    return PromptInputs(texts=split_character_texts(model, items, token_lists, detectors),
                        offsets=prompt_offsets(model, items, token_lists, detectors),
                        syntax=prompt_syntax(model, items, token_lists, detectors),
                        labels=prompt_labels(prompt_set, detectors))


def model_pass(model: HookedModel, tokens: Tensor, layers: Sequence[int], detectors: Sequence[Any],
               measures: Sequence[str]) -> Any:
    """The engine's deferred pass to the logits (`model_outputs.BatchOutputs`: the layers'
    attention, the predictions, `z`) when a pattern reads the model's predictions or a measure
    its heads' outputs; None when attention alone is needed."""
    facts = model_facts(model)
    plan = outputs_plan(detectors, measures, facts.n_layers)
    if plan is None:
        return None
    return run_with_outputs(model, tokens.to(facts.device), layers, plan)


def _token_texts(model: HookedModel, ids: list[int], item: Any) -> list[str]:
    """Each token's text as the engine reads it (a character split over tokens read from the
    prompt's text), or its id for a model without a tokenizer or `to_str_tokens`."""
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None and not hasattr(model, "to_str_tokens"):
        return [str(i) for i in ids]
    try:
        if isinstance(item, str) and hasattr(tokenizer, "convert_ids_to_tokens"):
            texts = token_texts(tokenizer, ids, text=item)
        else:
            texts = TokenStrings(model)(ids)
        if tokenizer is not None and hasattr(tokenizer, "convert_ids_to_tokens") and not all(texts):
            # A special token decodes to nothing; its name (<bos>, <|endoftext|>) says which it is.
            names = tokenizer.convert_ids_to_tokens([i for i, text in zip(ids, texts) if not text])
            empty = iter(str(name) for name in names)
            texts = [text or next(empty) for text in texts]
        return texts
    except Exception:  # noqa: BLE001 - token texts are only labels; ids still say which token
        return [str(i) for i in ids]
