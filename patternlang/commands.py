"""What the `detect`, `show`, `compile` and `compare` commands do, apart from reading their options
(cli.py) and printing: every check of what the user wrote (before any model loads), the run, and the
output files (all or none). Each is one public function a Python user can call too.

Loaded by cli.py only when such a command runs: it imports the engine (torch), which `list` and
`check` never need.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from patternlang.comparison import Comparison
from patternlang.engine.prompt_matrix import compile_on_prompt, reads_model_inputs
from patternlang.comparison import compare as compare_scores
from patternlang.effects.cli import check_effects_metric, detect_effects
from patternlang.engine import distributed
from patternlang.engine.detection import DetectOptions, detect_with
from patternlang.engine.explanation import Explanation, explain, prompt_argument
from patternlang.engine.inputs import check_prompt_stream
from patternlang.engine.options import check_measure_scored, check_measures
from patternlang.engine.scores import Scores
from patternlang.engine.survey import survey
from patternlang.engine.verdicts import verdict_measures
from patternlang.errors import InputError
from patternlang.files import OutputFiles
from patternlang.heads import parse_head
from patternlang.library import (
    load_pattern_argument,
    load_pattern_arguments,
    pattern_in_file,
    probe_argument,
    shipped_patterns,
)
from patternlang.models.facts import model_facts
from patternlang.probes import from_file, make_probe
from patternlang.probes.stream import open_prompts
from patternlang.report import EXPLANATION_SUFFIXES, HEATMAP_SUFFIXES, MATRIX_SUFFIXES
from patternlang.report.changes import difference_panels, save_comparison_json, save_difference_heatmap
from patternlang.tokenization import default_special_ids

# Read through their modules when called, so that a test (or a user) replacing one is heard:
# `models.load_model`, `report.save_*`, `tokenizing.tokenize_prompt`.
import patternlang.models as models  # noqa: E402
import patternlang.report as report  # noqa: E402
import patternlang.tokenization as tokenizing  # noqa: E402

Loading = Callable[[], AbstractContextManager[Any]]


def score_heads(model: str | None, patterns: Sequence[str], options: DetectOptions, *,
                prompts: Path | None = None, prompt_column: str | None = None, probe: str | None = None,
                json_path: Path | None = None, csv_path: Path | None = None, heatmap: Sequence[Path] = (),
                heatmap_measure: str | None = None, verdicts: bool = False, effects: str | None = None,
                loading: Loading = nullcontext,
                say: Callable[[str], None] = print) -> Scores | None:
    """`patternlang detect`: score the patterns (`patterns` as written; none: every shipped one) on
    a prompt file (streamed) or each on its own probe (`probe`: one for all), write the files asked
    for (`json_path` "-": none, the caller prints it), and return the scores (None on a torchrun
    rank other than 0, which writes nothing). `verdicts`: also score what a verdict reads (sink and
    offsink) and write every head's verdict into the JSON (docs/verdicts.md). `effects`: a metric
    (`logit_diff`, `loss`, ...): each head's effect on it beside its scores (docs/effects.md)."""
    if prompts is not None and probe is not None:
        raise InputError("give --prompts or --probe, not both")
    if prompts is None and (options.checkpoint is not None or options.checkpoint_every is not None
                            or prompt_column is not None):
        option = "--checkpoint" if options.checkpoint is not None else (
            "--checkpoint-every" if options.checkpoint_every is not None else "--prompt-column")
        raise InputError(f"{option} needs --prompts FILE", hint="checkpoints and columns apply to a prompt file")
    if options.checkpoint_every is not None and options.checkpoint is None:
        raise InputError("--checkpoint-every needs --checkpoint DIR")
    # Everything the user wrote is checked before the model loads (that takes a while).
    outputs = OutputFiles()
    if json_path is not None and str(json_path) != "-":
        outputs.plan(json_path, (".json",), "the scores as JSON")
    if csv_path is not None:
        outputs.plan(csv_path, (".csv",), "the scores as CSV")
    for path in heatmap:
        outputs.plan(path, HEATMAP_SUFFIXES, "a heatmap")
    if effects is not None:
        check_effects_metric(effects)
    chosen = load_pattern_arguments(list(patterns)) if patterns else shipped_patterns()
    probe_spec = probe_argument(probe) if probe else None
    if verdicts:
        options = replace(options, measures=verdict_measures(chosen, options.measures))
    prompt_set = open_prompts(prompts, column=prompt_column) if prompts is not None else None
    if heatmap_measure is not None:
        if not heatmap:
            raise InputError("--heatmap-measure chooses what --heatmap draws, and no --heatmap FILE is given")
        check_measure_scored(heatmap_measure, options.measure_names, chosen, survey=prompt_set is None)
    if prompt_set is not None:  # one pass over the file: every line checked, and counted for the progress bar
        check_prompt_stream(prompt_set, model, chosen)
    rank = distributed.torchrun_rank()
    with loading() if rank == 0 else nullcontext():
        loaded = models.load_model(model, device=options.device)
    started_group = distributed.init_from_environment(model_facts(loaded).device)
    try:
        if prompt_set is not None:
            scores = detect_with(loaded, prompt_set, chosen, options)
        else:
            scores = survey(loaded, chosen, probe=probe_spec, options=options)
    finally:
        if started_group:
            distributed.end_group()
    if rank != 0:
        return None
    if effects is not None:
        scores = detect_effects(scores, loaded, effects, probe=probe_spec, prompts=prompts, progress=options.progress,
                                say=say)
    # All files or none: each is written beside its target, and renamed into place at the end.
    with outputs.staged() as temporary:
        if json_path is not None and str(json_path) != "-":
            scores.to_json(temporary(json_path), verdicts=verdicts)
        if csv_path is not None:
            scores.to_csv(temporary(csv_path))
        for path in heatmap:
            report.save_heatmap(scores, temporary(path), measure=heatmap_measure)
    for path in outputs.paths:
        say(f"wrote {path}")
    return scores


def explain_head(source: str, head: str, *, prompt: str | None = None, tokens: str | None = None,
                 probe: str | None = None, prompts: Path | None = None, index: int | None = None,
                 model: str | None = None, output: Sequence[Path] = (), measures: str | None = None,
                 exclude_bos: bool | None = None, exclude_current: bool | None = None, prepend_bos: bool = True,
                 device: str | None = None, loading: Loading = nullcontext,
                 say: Callable[[str], None] = print) -> Explanation:
    """`patternlang show`: why a head scored on one prompt (`prompt` text, `tokens` ids, or prompt
    `index` of `probe` or of the file `prompts`, with its labelled spans); the files in `output`
    written (all or none)."""
    given = [flag for flag, value in (("--prompt", prompt), ("--tokens", tokens), ("--probe", probe),
                                      ("--prompts", prompts)) if value is not None]
    if len(given) != 1:
        raise InputError('give exactly one of --prompt TEXT, --tokens "1 504 2", --probe NAME or --prompts FILE'
                         + (f" (got {' and '.join(given)})" if given else ""),
                         hint="a pattern reading span[...] needs a labelled prompt: --probe ioi --index 0")
    if index is not None and probe is None and prompts is None:
        raise InputError("--index picks a prompt of --probe or --prompts, and neither is given")
    # Everything the user wrote is checked before the model loads (that takes a while).
    outputs = OutputFiles()
    for path in output:
        outputs.plan(path, EXPLANATION_SUFFIXES, "a head's explanation")
    chosen_measures = check_measures(measures) if measures else None
    parse_head(head)
    pattern = load_pattern_argument(source)
    probe_spec = probe_argument(probe) if probe is not None else None
    prompt_set = None
    if prompts is not None:
        prompt_set = from_file(prompts)
        _check_index(index or 0, prompt_set, f"--prompts {prompts}")
    item: str | Sequence[int] | None = None
    if prompt is not None or tokens is not None:
        item = prompt_argument(prompt, tokens, model)
    with loading():
        loaded = models.load_model(model, device=device)
    spans = None
    if probe_spec is not None:
        prompt_set = make_probe(probe_spec.name, probe_spec.args, loaded)
        _check_index(index or 0, prompt_set, f"--probe {probe}")
    if prompt_set is not None:
        item = list(prompt_set)[index or 0]
        if prompt_set.spans is not None:  # a labelled set: this prompt's labels, () when it has none
            spans = prompt_set.spans[index or 0] or ()
    why = explain(loaded, pattern, head, item, measures=chosen_measures, exclude_bos=exclude_bos,
                  exclude_current_token=exclude_current, prepend_bos=prepend_bos, spans=spans,
                  prompt_index=None if prompt_set is None else index or 0)
    with outputs.staged() as temporary:
        for path in output:
            report.save_explanation(why, temporary(path))
    for path in outputs.paths:
        say(f"wrote {path}")
    return why


def pattern_matrix(source: str, *, pattern: str | None = None, prompt: str | None = None,
                   tokens: str | None = None, model: str | None = None, prepend_bos: bool = True,
                   output: Sequence[Path] = (), spans: str | None = None, prompts: Path | None = None,
                   index: int = 0, say: Callable[[str], None] = print) -> tuple[Any, torch.Tensor, list[str]]:
    """`patternlang compile`: a pattern's detection matrix on one prompt (`prompt` text, tokenized
    with `model`'s tokenizer or the embedded one; `tokens` written out; or entry `index` of a prompt
    file `prompts`); the files in `output` written. A pattern reading the parse, labelled spans
    (`spans` JSON, or a labelled JSONL line) or the model's predictions gets its prompt parsed and
    the model run, saying so (`engine.prompt_matrix`). Returns `(pattern, matrix [q, k], token texts)`."""
    if sum(x is not None for x in (prompt, tokens, prompts)) != 1:
        raise InputError("give exactly one of --prompt TEXT, --tokens \"a b c\" or --prompts FILE")
    # Everything the user wrote is checked before a tokenizer or model loads.
    outputs = OutputFiles()
    for path in output:
        outputs.plan(path, MATRIX_SUFFIXES, "a detection matrix")
    compiled = pattern_in_file(source, pattern) if pattern is not None else load_pattern_argument(source)
    if prompt is not None and not prompt:
        raise InputError("--prompt is empty")
    if tokens is not None:
        str_tokens = tokens.split()
        if not str_tokens:
            raise InputError("--tokens is empty")
        if reads_model_inputs(compiled):
            raise InputError(f"pattern {compiled.name!r} reads what written-out tokens lack (a parse, spans or the "
                             "model's predictions)", hint="give --prompt TEXT (or --prompts FILE.jsonl --index N)")
        matrix = compiled.matrix(str_tokens=str_tokens)
    elif reads_model_inputs(compiled) or prompt is None or spans is not None:  # prompt None: --prompts
        matrix, str_tokens = compile_on_prompt(compiled, prompt=prompt, spans_json=spans, prompt_file=prompts,
                                               index=index, model_name=model, prepend_bos=prepend_bos, say=say)
    else:
        loaded = models.load_model(model) if model is not None else None
        ids, str_tokens = tokenizing.tokenize_prompt(prompt, model=loaded, prepend_bos=prepend_bos)
        specials = model_facts(loaded).special_ids if loaded is not None else default_special_ids()
        matrix = compiled.matrix(ids, str_tokens, special_ids=specials)
    with outputs.staged() as temporary:
        for path in output:
            report.save_matrix(matrix, str_tokens, temporary(path), title=compiled.name, name=compiled.name)
    for path in outputs.paths:
        say(f"wrote {path}")
    return compiled, matrix, str_tokens


def compare_files(file_a: Path, file_b: Path, *, measure: str | None = None, top: int = 5,
                  heatmap: Sequence[Path] = (), json_path: Path | None = None,
                  say: Callable[[str], None] = print) -> Comparison:
    """`patternlang compare`: two score files compared (see `comparison.compare`); notes on what only
    one of them holds said, the files asked for written (`json_path` "-": none, the caller prints it)."""
    outputs = OutputFiles()
    if json_path is not None and str(json_path) != "-":
        outputs.plan(json_path, (".json",), "the comparison as JSON")
    for path in heatmap:
        outputs.plan(path, HEATMAP_SUFFIXES, "a heatmap")
    files = (str(file_a), str(file_b))
    comparison = compare_scores(Scores.from_json(file_a), Scores.from_json(file_b), measure=measure)
    if heatmap:
        difference_panels(comparison)  # two shapes have no difference heatmap: say so before writing anything
    for label, file, only in zip(comparison.labels, files, (comparison.only_in_a, comparison.only_in_b)):
        left_out = "; ".join(f"{kind} {', '.join(names)}" for kind, names in only.items() if names)
        if left_out:
            say(f"note: left out, as only {label} ({file}) has them: {left_out}")
    with outputs.staged() as temporary:
        if json_path is not None and str(json_path) != "-":
            save_comparison_json(comparison, temporary(json_path), k=top, files=files)
        for path in heatmap:
            save_difference_heatmap(comparison, temporary(path), files=files)
    for path in outputs.paths:
        say(f"wrote {path}")
    return comparison


def _check_index(index: int, prompt_set: Any, where: str) -> None:
    if index >= len(prompt_set):
        raise InputError(f"--index {index} is out of range: {where} holds {len(prompt_set)} prompts",
                         hint=f"pick one from 0 to {len(prompt_set) - 1}")
