"""One pattern's detection matrix on one text prompt, for every pattern: what `patternlang compile
--prompt` shows for patterns that read more than the tokens.

A pattern that reads the parser's annotations (`pos`, `dephead`, ...), labelled spans
(`span[...]`), character offsets or the model's predictions gets them as `detect` and `show` do,
by the engine's own code (`explanation.prompt_inputs`): the prompt is parsed with spaCy, its
spans come from `--spans` or a labelled line of a JSONL prompt file, and the model is run to its
logits when the pattern reads predictions (said on stderr, as it takes a moment).

>>> matrix, tokens = prompt_matrix(models.load_model(), "determiner_head", "The cat saw a dog.")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from patternlang.engine.batching import pad_batch, tokenize
from patternlang.engine.pattern_tensors import check_matrix_sizes, resolve_patterns
from patternlang.errors import InputError
from patternlang.engine.explanation import MAX_TOKENS, _one_prompt
from patternlang.engine.inputs import _token_texts, model_pass, prompt_inputs
from patternlang import models  # models.load_model read at call time (tests replace it)
from patternlang.models.facts import model_facts
from patternlang.probes import from_file
from patternlang.prompts import Prompts

MODEL_INPUTS = frozenset({"syntax", "spans", "offsets", "predictions"})
"""What a pattern may read that token ids and their texts alone do not give."""

SPANS_HINT = ('give the prompt\'s labelled spans: --spans \'{"IO": [[5, 9]]}\' (character ranges of --prompt, '
              'end exclusive), or a labelled line of a JSONL file: --prompts FILE.jsonl --index N')


def reads_model_inputs(pattern: Any) -> frozenset[str]:
    """What of `MODEL_INPUTS` a compiled pattern reads (empty: its tokens are enough)."""
    return frozenset(getattr(pattern, "needs", ())) & MODEL_INPUTS


def prompt_matrix(model: Any, pattern: Any, prompt: Any, *, spans: Any = None, prepend_bos: bool = True,
                  say: Callable[[str], None] | None = None) -> tuple[Tensor, list[str]]:
    """`(matrix [q, k], token texts)` of one pattern on one prompt (a text, or a `Prompts` holding
    one, with its spans), with whatever the pattern reads: parsed with spaCy, labelled spans,
    offsets, and the model's predictions from a pass to the logits (`say` tells of it)."""
    detectors = resolve_patterns(pattern)
    if len(detectors) != 1:
        raise InputError(f"compile shows one pattern, and {pattern!s} holds {len(detectors)}",
                         hint="name one, e.g. file.pattern:NAME")
    detector = detectors[0]
    needs = reads_model_inputs(detector.pattern)
    item, prompt_set = _one_prompt(prompt, spans)
    if prompt_set is None and "spans" in needs:
        raise InputError(f"pattern {detector.name!r} reads labelled spans (span[...]), and this prompt has none",
                         hint=SPANS_HINT)
    if not isinstance(item, str) and needs - {"predictions"}:
        raise InputError(f"pattern {detector.name!r} reads {_what(needs)}, which token ids do not carry",
                         hint="give the prompt as text")
    token_lists = tokenize(model, [item], prepend_bos=prepend_bos)
    n = token_lists[0].numel()
    if n > MAX_TOKENS:
        raise InputError(f"the prompt has {n} tokens; compile shows at most {MAX_TOKENS}",
                         hint="show a shorter prompt")
    check_matrix_sizes(detectors, [n])
    facts = model_facts(model)
    if "syntax" in needs and say is not None:
        say(f"parsing the prompt with spaCy: {detector.name} reads the parser's annotations")
    inputs = prompt_inputs(model, prompt_set, [item], token_lists, detectors)
    batch = pad_batch(token_lists, [0], facts.pad_id, torch.device("cpu"))
    predictions = None
    if "predictions" in needs:
        if say is not None:
            say(f"running {facts.described} to its logits: {detector.name} reads the model's predictions")
        passed = model_pass(model, batch.tokens, [], detectors, ())
        predictions = None if passed is None else passed.predictions
    detection = inputs.detection(model, batch, detectors, predictions)
    return detection[0, 0].clone(), _token_texts(model, token_lists[0].tolist(), item)


def _what(needs: frozenset[str]) -> str:
    words = {"syntax": "the parser's annotations", "spans": "labelled spans", "offsets": "character offsets",
             "predictions": "the model's predictions"}
    return ", ".join(words[n] for n in sorted(needs))


def labelled_prompt(prompt: str | None, spans_json: str | None, prompt_file: Path | None, index: int) -> Any:
    """The prompt `compile` shows: `--prompt` (with `--spans`, JSON) or line `index` of `--prompts`,
    as a `Prompts` of one when it carries spans; checked before any model loads."""
    if prompt_file is not None:
        if prompt is not None or spans_json is not None:
            raise InputError("--prompts gives the prompt and its spans; leave out --prompt and --spans")
        prompts = from_file(prompt_file)
        if index >= len(prompts):
            raise InputError(f"--index {index} is out of range: --prompts {prompt_file} holds {len(prompts)} prompts",
                             hint=f"pick one from 0 to {len(prompts) - 1}")
        labels = prompts.spans[index] if prompts.spans is not None else None
        if labels is None or prompts.texts is None:  # only text prompts carry spans
            return list(prompts)[index]
        return Prompts(texts=(prompts.texts[index],), spans=(labels,))
    if prompt is None or not prompt:
        raise InputError("--prompt is empty")
    if spans_json is None:
        return prompt
    try:
        spans = json.loads(spans_json)
    except (ValueError, RecursionError) as error:
        raise InputError(f"--spans is not JSON: {error}", hint=SPANS_HINT) from None
    return Prompts(texts=(prompt,), spans=(spans,))


def compile_on_prompt(pattern: Any, *, prompt: str | None, spans_json: str | None, prompt_file: Path | None,
                      index: int, model_name: str | None, prepend_bos: bool,
                      say: Callable[[str], None]) -> tuple[Tensor, list[str]]:
    """`patternlang compile PATTERN --prompt TEXT` (or `--prompts FILE --index N`) for a pattern that
    reads more than its tokens: the prompt checked, the model loaded (the embedded one by default),
    then `prompt_matrix`."""
    item = labelled_prompt(prompt, spans_json, prompt_file, index)
    if "spans" in reads_model_inputs(pattern) and isinstance(item, str):
        raise InputError(f"pattern {pattern.name!r} reads labelled spans (span[...]), and this prompt has none",
                         hint=SPANS_HINT)
    say(f"loading {model_name or 'the embedded model'} for what {pattern.name} reads ...")
    return prompt_matrix(models.load_model(model_name), pattern, item, prepend_bos=prepend_bos, say=say)
