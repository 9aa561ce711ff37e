"""The `patternlang` command: a thin typer layer over the public functions.

Exit codes: 0 fine, 1 a user error (bad rule, file, prompt or argument value),
2 a usage error (unknown option, missing argument), 130 interrupted.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .describe.cli import describe_command
from .errors import ErrorGroup, InputError, PatternError, PatternFileError

app = typer.Typer(
    name="patternlang",
    help="Find attention heads by their patterns: write rules, see their matrices, score every head.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console()
err = Console(stderr=True)


# ---- list ------------------------------------------------------------------------------------
@app.command("list")
def list_patterns(
    source: Optional[Path] = typer.Argument(None, metavar="[FILE|DIR]",
                                            help="Your own .pattern/YAML file, or a directory of them "
                                                 "(default: the shipped patterns)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show patterns with their rules, default probes and docstrings: the shipped ones, or a file's."""
    from .library import check_files, pattern_files, shipped_patterns

    if source is None:
        patterns = shipped_patterns()
        title = "Shipped patterns (patternlang compile NAME --prompt TEXT shows one)"
    else:
        patterns = [p for found in check_files(pattern_files(source)).values() for p in found]
        title = f"Patterns in {source} (patternlang compile FILE:NAME --prompt TEXT shows one)"
    if as_json:
        rows = [{"name": p.name, "rule": p.rule, "doc": p.doc, "probe": str(p.settings.probe or ""),
                 "measure": p.settings.measure, "file": Path(p.filename).name if p.filename else None}
                for p in patterns]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table(title=Text(title), show_lines=True)
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("rule and settings", ratio=3)
    table.add_column("what it detects", ratio=2)
    for p in patterns:
        table.add_row(p.name, Text(p.rule), Text(p.description))
    out.print(table)


# ---- features and measures -------------------------------------------------------------------
@app.command("features")
def list_features(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the Markdown table of docs/language.md."),
) -> None:
    """Show the token features a rule can read (tok, str, word, sentence, ...) and the string functions."""
    from .syntax.builtins import FUNCTIONS
    from .syntax.features import FEATURES, NEEDS, features_markdown

    if markdown:
        print(features_markdown())
        return
    if as_json:
        print(json.dumps({"features": [{"name": f.name, "kind": f.kind, "needs": sorted(f.needs), "doc": f.doc}
                                       for f in FEATURES.entries()],
                          "functions": [{"name": f.name, "args": list(f.args), "result": f.result,
                                         "doc": f.description} for f in FUNCTIONS.values()]}, indent=2))
        return
    table = Table(title=Text("Token features: write NAME[position], e.g. tok[k], str[q - 1]"))
    for column in ("feature", "kind", "needs", "value"):
        table.add_column(column, style="bold cyan" if column == "feature" else None)
    for feature in FEATURES.entries():
        needs = ", ".join(n for n in NEEDS if n in feature.needs)
        table.add_row(Text(f"{feature.name}[i]"), feature.kind, needs, Text(feature.doc))
    out.print(table)
    functions = Table(title="String functions")
    for column in ("function", "result", "value"):
        functions.add_column(column, style="bold cyan" if column == "function" else None)
    for function in FUNCTIONS.values():
        functions.add_row(Text(f"{function.name}({', '.join(function.args)})"), function.result,
                          Text(function.description))
    out.print(functions)


@app.command("measures")
def list_measures(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show the measures a head can be scored with (docs/measures.md explains each)."""
    from .engine.measures import MEASURES

    if as_json:
        print(json.dumps([{"name": m.name, "range": m.range, "averaged_over": m.averaged_over, "doc": m.doc}
                          for m in MEASURES.entries()], indent=2))
        return
    table = Table(title="Measures: --measure NAME, or `measure NAME` in a pattern")
    for column in ("measure", "range", "mean over", "what it says"):
        table.add_column(column, style="bold cyan" if column == "measure" else None)
    for measure in MEASURES.entries():
        table.add_row(measure.name, measure.range, measure.averaged_over, Text(measure.doc))
    out.print(table)


# ---- cache --------------------------------------------------------------------------------------
@app.command("cache")
def cache(
    action: str = typer.Argument("info", metavar="[info|clear]", help="Show the cached models, or delete them."),
) -> None:
    """What patternlang caches (de-quantised GGUF weights, so that models load in seconds; joined GGUF
    files; the embedded tokenizer): list it, or delete it all (safe: each is rebuilt when needed)."""
    from .models import weights_cache

    if action == "info":
        entries = weights_cache.cached_entries()
        others = weights_cache.other_cached()
        out.print(f"cache folder: {weights_cache.cache_base()} (move it with ${weights_cache.CACHE_ENV})",
                  markup=False, highlight=False)
        out.print("de-quantised weights (weights/):", markup=False, highlight=False)
        for entry, size in entries:
            out.print(f"  {entry.name}  {size / 2**20:,.0f} MiB", markup=False, highlight=False)
        if not entries:
            out.print("  (empty: the next load of a GGUF model fills it)")
        if others:
            out.print("also (joined GGUF files, saved tokenizers; rebuilt when needed):")
        for kind, item, size in others:
            out.print(f"  {kind}/{item.name}  {size / 2**20:,.0f} MiB", markup=False, highlight=False)
        total = sum(size for _, size in entries) + sum(size for _, _, size in others)
        out.print(f"in all: {total / 2**20:,.0f} MiB (`patternlang cache clear` deletes it)", markup=False,
                  highlight=False)
    elif action == "clear":
        models, others = len(weights_cache.cached_entries()), len(weights_cache.other_cached())
        weights_cache.clear_cache()
        out.print(f"deleted {models} cached model(s) and {others} other item(s) from {weights_cache.cache_base()}",
                  markup=False, highlight=False)
    else:
        raise InputError(f"unknown cache action {action!r}", hint="use `patternlang cache info` or `cache clear`")


# ---- check -----------------------------------------------------------------------------------
@app.command()
def check(
    files: List[Path] = typer.Argument(..., help=".pattern or YAML rule files."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: the patterns found, or the problems."),
) -> None:
    """Check rule files and report every problem at once."""
    from .library import check_files

    for file in files:
        _not_a_directory(str(file))
    try:
        found = check_files(files)
    except PatternError as error:
        if as_json:
            errors = error.errors if isinstance(error, ErrorGroup) else [error]
            print(json.dumps({"ok": False, "problems": [_problem(e) for e in errors]}, indent=2))
            raise typer.Exit(1) from None
        raise
    if as_json:
        print(json.dumps({"ok": True, "files": {f: [p.name for p in ps] for f, ps in found.items()}}, indent=2))
        return
    for file, patterns in found.items():
        names = ", ".join(p.name for p in patterns)
        out.print(f"[green]ok[/green] {file}: {len(patterns)} pattern(s) ({names})")


def _problem(error: PatternError) -> dict:
    loc = error.location
    return {"kind": type(error).__name__, "message": error.message, "hint": error.hint,
            "file": loc.filename if loc else None, "line": loc.line if loc else None,
            "column": loc.column if loc else None}


# ---- compile ---------------------------------------------------------------------------------
@app.command("compile")
def compile_(
    source: str = typer.Argument(..., metavar="FILE|NAME|RULE",
                                 help="A .pattern/YAML file, a shipped pattern name, or rule text in quotes."),
    pattern: Optional[str] = typer.Option(None, "--pattern", "-p", help="Which pattern of a file holding several."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="Text to tokenize (BOS is prepended)."),
    tokens: Optional[str] = typer.Option(None, "--tokens", help='Tokens written out, separated by spaces: "A B C A B C".'),
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="Tokenize with this model's tokenizer (default: the embedded SmolLM2)."),
    no_bos: bool = typer.Option(False, "--no-bos", help="Do not prepend BOS to --prompt."),
    show: bool = typer.Option(False, "--show", help="Print the matrix as a grid labelled with the tokens."),
    output: List[Path] = typer.Option([], "--out", "-o", help="Write the matrix to FILE.png, FILE.html or FILE.json."),
    as_json: bool = typer.Option(False, "--json", help="Print the matrix as JSON."),
    max_tokens: int = typer.Option(40, "--max-tokens", help="Show at most this many tokens in the grid.", min=1),
) -> None:
    """Compile a pattern on one prompt and show its detection matrix."""
    from .files import OutputFiles
    from .report import MATRIX_SUFFIXES, matrix_to_json, render_matrix_text, save_matrix

    if (prompt is None) == (tokens is None):
        raise InputError("give exactly one of --prompt TEXT or --tokens \"a b c\"")
    # Everything the user wrote is checked before a tokenizer or model loads.
    outputs = OutputFiles()
    for path in output:
        outputs.plan(path, MATRIX_SUFFIXES, "a detection matrix")
    if pattern is not None:
        source_file = _pattern_spec(source)
        if not isinstance(source_file, Path):
            raise InputError(f"--pattern chooses a pattern from a file, and {source!r} is not a .pattern or YAML file",
                             hint="leave out --pattern, or name a file")
        compiled = _named_pattern(source_file, pattern)
    else:
        compiled = _load_pattern(source)
    if prompt is not None and not prompt:
        raise InputError("--prompt is empty")
    if tokens is not None:
        str_tokens = tokens.split()
        if not str_tokens:
            raise InputError("--tokens is empty")
        matrix = compiled.matrix(str_tokens=str_tokens)
    else:
        from .models.facts import model_facts
        from .tokenize import default_special_ids, tokenize_prompt

        loaded = None
        if model is not None:
            from .models import load_model
            loaded = load_model(model)
        ids, str_tokens = tokenize_prompt(prompt, model=loaded, prepend_bos=not no_bos)
        specials = model_facts(loaded).special_ids if loaded is not None else default_special_ids()
        matrix = compiled.matrix(ids, str_tokens, special_ids=specials)
    with outputs.staged() as temporary:
        for path in output:
            save_matrix(matrix, str_tokens, temporary(path), title=compiled.name, name=compiled.name)
    for path in outputs.paths:
        err.print(f"wrote {path}")
    if as_json:
        print(json.dumps(matrix_to_json(matrix, str_tokens, name=compiled.name), ensure_ascii=False))
    if show or not (output or as_json):
        out.print(render_matrix_text(matrix, str_tokens, max_tokens=max_tokens, title=compiled.name))


def _pattern_spec(text: str) -> str | Path | tuple[Path, str]:
    """One pattern argument as the library reads it: a shipped name or rule text as it is, a file
    as a `Path`, `file.pattern:NAME` as `(Path, NAME)`.

    The library reads a string with spaces as rule text, so files are handed over as `Path`s:
    that way `"my heads/x.pattern:induction"` is a file and a name, not a broken rule.
    """
    from .library import PATTERN_SUFFIXES, YAML_SUFFIXES, shipped_names

    suffixes = PATTERN_SUFFIXES + YAML_SUFFIXES
    if text in shipped_names():
        return text
    _not_a_directory(text)
    if Path(text).suffix in suffixes:
        if not _is_file(text):  # checked here too: the library's own check fails on names too long for the OS
            raise PatternFileError(f"no such file: {text}")
        return Path(text)
    file_part, sep, name = text.rpartition(":")
    # A rule may hold ".pattern:" inside a string; it is a file only when it exists or has no spaces.
    if sep and Path(file_part).suffix in suffixes and (_is_file(file_part) or not any(c.isspace() for c in text)):
        _not_a_directory(file_part)
        if not _is_file(file_part):
            raise PatternFileError(f"no such file: {file_part}")
        return Path(file_part), name
    return text


def _load_pattern(text: str):
    """One pattern from a CLI argument (see `_pattern_spec`)."""
    from .library import load_pattern

    spec = _pattern_spec(text)
    return _named_pattern(*spec) if isinstance(spec, tuple) else load_pattern(spec)


def _load_patterns(texts: List[str]) -> list:
    """Every pattern the CLI arguments name; a file gives all of its patterns."""
    from .library import load_patterns

    found = []
    for text in texts:
        spec = _pattern_spec(text)
        found += [_named_pattern(*spec)] if isinstance(spec, tuple) else load_patterns(spec)
    return found


def _named_pattern(path: Path, name: str):
    """The pattern `name` in the file at `path`."""
    from .errors import UnknownNameError, did_you_mean
    from .library import load_patterns

    patterns = {p.name: p for p in load_patterns(path)}
    if name not in patterns:
        raise UnknownNameError(f"{path} has no pattern {name!r}; it has " + ", ".join(patterns),
                               hint=did_you_mean(name, patterns))
    return patterns[name]


def _not_a_directory(text: str) -> None:
    try:
        is_directory = Path(text).is_dir()
    except (OSError, ValueError):  # a name too long for the file system is no directory either
        return
    if is_directory:
        raise InputError(f"{text!r} is a directory, not a pattern file",
                         hint=f"name the .pattern or YAML files in it, e.g. {str(Path(text) / '*.pattern')!r}")


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


# ---- detect ----------------------------------------------------------------------------------
@app.command()
def detect(
    patterns: List[str] = typer.Argument(None, metavar="[PATTERNS]...",
                                         help="Shipped names, files, file.pattern:NAME or rule text "
                                              "(default: every shipped pattern)."),
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="TransformerLens name, HF checkpoint folder or model.pt "
                                             "(default: the embedded SmolLM2-135M-Instruct)."),
    prompts: Optional[Path] = typer.Option(None, "--prompts",
                                           help="Prompt file, read as a stream: .txt (one per line), .jsonl, "
                                                ".json, .parquet, or a Hugging Face datasets folder."),
    prompt_column: Optional[str] = typer.Option(None, "--prompt-column",
                                                help="The column of a .parquet file or datasets folder holding "
                                                     "the prompts (default: text, prompt or tokens)."),
    probe: Optional[str] = typer.Option(None, "--probe",
                                        help="A probe for every pattern: repeated_random, natural "
                                             "(default: each pattern's own probe)."),
    measure: List[str] = typer.Option([], "--measure", help="Measures (mass, tv, argmax, mul, abs, lift: `patternlang measures` lists them); "
                                                                "repeat or use commas."),
    exclude_bos: Optional[bool] = typer.Option(None, "--exclude-bos/--include-bos",
                                               help="Leave key 0 out (default: each pattern's setting)."),
    exclude_current: Optional[bool] = typer.Option(None, "--exclude-current/--include-current",
                                                   help="Leave the diagonal out (default: each pattern's setting)."),
    heads: Optional[str] = typer.Option(None, "--heads", help='Only these heads: "5.1,6.9" or "L5H1,L6H9".'),
    top: int = typer.Option(5, "--top", "-k", help="Heads to list per pattern.", min=1),
    ci: bool = typer.Option(False, "--ci", help="Show each score's 95% interval over prompts (JSON and CSV always "
                                                 "have them)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write all scores as JSON ('-' for stdout)."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write all scores as CSV."),
    heatmap: List[Path] = typer.Option([], "--heatmap", help="Write layer x head heatmaps: FILE.png or FILE.html."),
    heatmap_measure: Optional[str] = typer.Option(None, "--heatmap-measure",
                                                  help="The measure the heatmaps show, one of those scored "
                                                       "(default: each pattern's own)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Prompts per forward pass (default: auto).",
                                             min=1),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1, mps (default: the model's)."),
    no_progress: bool = typer.Option(False, "--no-progress",
                                     help="Hide the progress bar (shown on a terminal when a run takes over ~2 s)."),
    attention: str = typer.Option("auto", "--attention",
                                  help="auto: long prompts (over 1024 tokens) by blocks of query rows, memory "
                                       "linear in length, where the model allows; blocks: always (else an error); "
                                       "pattern: always whole from hook_pattern. Same scores."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint",
                                              help="Folder: save the running sums there every few batches, and "
                                                   "resume from it when rerun with the same arguments."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", min=1,
                                                   help="Batches between checkpoints (default 50)."),
) -> None:
    """Score every head of a model against patterns and list the best heads.

    Under `torchrun --nproc-per-node N -m patternlang detect ...` the prompts are shared out
    among the N processes and only rank 0 prints and writes files (docs/scale.md)."""
    if model is not None:  # a mistyped name fails here, in a fraction of a second, before torch loads
        from .models.resolve import check_model_name

        check_model_name(model)
    from .collector import collector_paused

    with collector_paused():  # these import torch: see collector_paused
        from .engine import detect as run_detect
        from .engine.detection import check_measures, span_readers, unlabelled_prompts_error
        from .files import OutputFiles
        from .library import shipped_patterns
        from .engine import distributed
        from .models import load_model
        from .probes.stream import open_prompts
        from .heads import check_heads
        from .report import HEATMAP_SUFFIXES, save_heatmap, top_heads_table
        from .survey import survey

    if prompts is not None and probe is not None:
        raise InputError("give --prompts or --probe, not both")
    if prompts is None and (checkpoint is not None or checkpoint_every is not None or prompt_column is not None):
        option = "--checkpoint" if checkpoint is not None else (
            "--checkpoint-every" if checkpoint_every is not None else "--prompt-column")
        raise InputError(f"{option} needs --prompts FILE", hint="checkpoints and columns apply to a prompt file")
    if checkpoint_every is not None and checkpoint is None:
        raise InputError("--checkpoint-every needs --checkpoint DIR")
    # Everything the user wrote is checked before the model loads (that takes a while).
    json_to_stdout = json_path is not None and str(json_path) == "-"
    outputs = OutputFiles()
    if json_path is not None and not json_to_stdout:
        outputs.plan(json_path, (".json",), "the scores as JSON")
    if csv_path is not None:
        outputs.plan(csv_path, (".csv",), "the scores as CSV")
    for path in heatmap:
        outputs.plan(path, HEATMAP_SUFFIXES, "a heatmap")
    measures = check_measures(",".join(measure)) if measure else None
    check_heads(heads)
    chosen = _load_patterns(list(patterns)) if patterns else shipped_patterns()
    probe_spec = _parse_probe(probe) if probe else None
    prompt_set = open_prompts(prompts, column=prompt_column) if prompts is not None else None
    if heatmap_measure is not None:
        _check_heatmap_measure(heatmap_measure, measures, chosen, heatmap, survey=prompt_set is None)
    if prompt_set is not None:  # one pass over the file: every line checked, and counted for the progress bar
        prompt_set.total, labelled = _check_prompt_stream(prompt_set, model)
        readers = span_readers(chosen)
        if readers and not labelled:
            raise unlabelled_prompts_error(readers[0])
    if attention not in ("auto", "blocks", "pattern"):
        raise InputError(f"--attention must be auto, blocks or pattern, got {attention!r}")
    rank = distributed.torchrun_rank()
    if rank != 0:  # rank 0 speaks for the run; the others work quietly
        no_progress = True
        warnings.simplefilter("ignore")
    device = distributed.local_device(device) if distributed.launched_by_torchrun() else device
    options = dict(measures=measures, exclude_bos=exclude_bos, exclude_current_token=exclude_current, heads=heads,
                   batch_size=batch_size, device=device, progress=not no_progress, attention=attention)
    with err.status("loading the model...", spinner="dots") if err.is_terminal and rank == 0 else nullcontext():
        loaded = load_model(model, device=device)
    from .models.facts import model_facts

    started_group = distributed.init_from_environment(model_facts(loaded).device)
    try:
        if prompt_set is not None:
            scores = run_detect(loaded, prompt_set, chosen, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                                **options)
        else:
            scores = survey(loaded, chosen, probe=probe_spec, **options)
    finally:
        if started_group:
            distributed.end_group()
    if rank != 0:
        return
    # All files or none: each is written beside its target, and renamed into place at the end.
    with outputs.staged() as temporary:
        if json_path is not None and not json_to_stdout:
            scores.to_json(temporary(json_path))
        if csv_path is not None:
            scores.to_csv(temporary(csv_path))
        for path in heatmap:
            save_heatmap(scores, temporary(path), measure=heatmap_measure)
    for path in outputs.paths:
        err.print(f"wrote {path}")
    if json_to_stdout:
        print(scores.to_json())
    else:
        out.print(top_heads_table(scores, k=top, ci=ci, width=out.width))


def _check_prompt_stream(source, model_name: Optional[str]) -> tuple[int, bool]:
    """Read a streamed prompt file once before the model loads: every entry checked (token ids
    against the embedded model's vocabulary where that is known), memory flat; its count, and
    whether any entry has labelled spans."""
    from .prompts import check_token_ids
    from .tokenize import vocabulary_size_before_loading

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
    return count, labelled


def _check_heatmap_measure(name: str, measures: tuple[str, ...] | None, patterns: list, heatmap: List[Path], *,
                           survey: bool) -> None:
    """`--heatmap-measure` names a measure the run scores: one of `--measure`, or else of the
    patterns' own measures (and mass, which a survey always scores)."""
    from .engine.detection import check_measures

    if not heatmap:
        raise InputError("--heatmap-measure chooses what --heatmap draws, and no --heatmap FILE is given")
    check_measures(name)  # a measure at all (with a did-you-mean)
    scored = measures or tuple(dict.fromkeys((("mass",) if survey else ()) + check_measures(None, patterns)))
    if name not in scored:
        raise InputError(f"--heatmap-measure {name} is not among the measures scored ({', '.join(scored)})",
                         hint=f"score it too: --measure {','.join((*scored, name))}")


def _parse_probe(text: str):
    """`repeated_random` or `repeated_random(length=64, seed=1)`, read by the language's grammar."""
    from .probes import validate_probe_args
    from .settings import ProbeSpec
    from .syntax.parser import parse_probe

    name, args = parse_probe(text)
    validate_probe_args(name, args)
    return ProbeSpec(name, args)


# ---- show -------------------------------------------------------------------------------------
@app.command()
def show(
    source: str = typer.Argument(..., metavar="PATTERN",
                                 help="A shipped pattern name, file.pattern:NAME, a file with one pattern, or rule text."),
    head: str = typer.Argument(..., metavar="HEAD", help='The head: "L5H1" or "5.1".'),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="Text to tokenize (BOS is prepended)."),
    tokens: Optional[str] = typer.Option(None, "--tokens", help='Token ids, separated by spaces: "1 504 2".'),
    probe: Optional[str] = typer.Option(None, "--probe",
                                        help="A prompt of a probe, with its labelled spans: ioi, "
                                             "'needle(length=10)', natural... (--index picks which)."),
    prompts: Optional[Path] = typer.Option(None, "--prompts",
                                           help='A prompt of a prompt file: .txt, or .jsonl with "spans" '
                                                "(--index picks which)."),
    index: Optional[int] = typer.Option(None, "--index", min=0,
                                        help="Which prompt of --probe or --prompts, from 0 (default 0)."),
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="TransformerLens name, HF checkpoint folder or model.pt "
                                             "(default: the embedded SmolLM2-135M-Instruct)."),
    output: List[Path] = typer.Option([], "--out", "-o",
                                      help="Write FILE.png, FILE.html (interactive: hover a cell) or FILE.json."),
    measure: List[str] = typer.Option([], "--measure", help="Measures to score the prompt with "
                                                            "(default: the pattern's own); repeat or use commas."),
    exclude_bos: Optional[bool] = typer.Option(None, "--exclude-bos/--include-bos",
                                               help="Leave key 0 out (default: the pattern's setting)."),
    exclude_current: Optional[bool] = typer.Option(None, "--exclude-current/--include-current",
                                                   help="Leave the diagonal out (default: the pattern's setting)."),
    no_bos: bool = typer.Option(False, "--no-bos", help="Do not prepend BOS to --prompt."),
    as_json: bool = typer.Option(False, "--json", help="Print the attention, matrix and scores as JSON."),
    max_tokens: int = typer.Option(40, "--max-tokens", help="Show at most this many tokens in the terminal grids.",
                                   min=1),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1, mps (default: the model's)."),
) -> None:
    """Why a head scored: its attention beside the pattern's matrix on one prompt, with the prompt's scores.

    The prompt is --prompt TEXT, --tokens IDS, or prompt --index N of --probe NAME or --prompts FILE
    (with its labelled spans, for patterns reading span[...]: --probe ioi, --probe needle, or a
    JSONL file whose lines carry "spans").
    """
    from .engine.detection import check_measures
    from .files import OutputFiles
    from .heads import parse_head
    from .report import EXPLANATION_SUFFIXES, render_explanation_text, save_explanation

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
    measures = check_measures(",".join(measure)) if measure else None
    parse_head(head)
    pattern = _load_pattern(source)
    probe_spec = _parse_probe(probe) if probe is not None else None
    prompt_set = None
    if prompts is not None:
        from .probes import from_file

        prompt_set = from_file(prompts)
        _check_index(index or 0, prompt_set, f"--prompts {prompts}")
    item = _show_prompt(prompt, tokens, model) if prompt is not None or tokens is not None else None
    with err.status("loading the model...", spinner="dots") if err.is_terminal else nullcontext():
        from .models import load_model

        loaded = load_model(model, device=device)
    from .explanation import explain

    spans = None
    if probe_spec is not None:
        from .probes import make_probe

        prompt_set = make_probe(probe_spec.name, probe_spec.args, loaded)
        _check_index(index or 0, prompt_set, f"--probe {probe}")
    if prompt_set is not None:
        item = list(prompt_set)[index or 0]
        if prompt_set.spans is not None:  # a labelled set: this prompt's labels, () when it has none
            spans = prompt_set.spans[index or 0] or ()
    why = explain(loaded, pattern, head, item, measures=measures, exclude_bos=exclude_bos,
                  exclude_current_token=exclude_current, prepend_bos=not no_bos, spans=spans,
                  prompt_index=None if prompt_set is None else index or 0)
    with outputs.staged() as temporary:
        for path in output:
            save_explanation(why, temporary(path))
    for path in outputs.paths:
        err.print(f"wrote {path}")
    if as_json:
        print(json.dumps(why.to_dict(), ensure_ascii=False))
    else:
        out.print(render_explanation_text(why, max_tokens=max_tokens))


def _check_index(index: int, prompt_set: Any, where: str) -> None:
    if index >= len(prompt_set):
        raise InputError(f"--index {index} is out of range: {where} holds {len(prompt_set)} prompts",
                         hint=f"pick one from 0 to {len(prompt_set) - 1}")


def _show_prompt(prompt: Optional[str], tokens: Optional[str], model: Optional[str]):
    """`--prompt` as its text, or `--tokens` as token ids, checked before the model loads."""
    from .explanation import MAX_TOKENS
    from .prompts import Prompts
    from .tokenize import check_token_ids_before_loading

    if prompt is not None:
        if not prompt:
            raise InputError("--prompt is empty")
        return prompt
    parts = tokens.replace(",", " ").split()
    if not parts:
        raise InputError("--tokens is empty")
    bad = next((part for part in parts if not part.isdigit()), None)
    if bad is not None:
        raise InputError(f"--tokens takes token ids (integers), and {bad!r} is not one",
                         hint='write --tokens "1 504 2", or give the text with --prompt')
    ids = tuple(int(part) for part in parts)
    if len(ids) > MAX_TOKENS:
        raise InputError(f"--tokens has {len(ids)} tokens; a head's attention is drawn for at most {MAX_TOKENS}",
                         hint="shorten the prompt")
    check_token_ids_before_loading(Prompts(tokens=(ids,), name="--tokens"), model)
    return list(ids)


# ---- compare ---------------------------------------------------------------------------------
@app.command()
def compare(
    file_a: Path = typer.Argument(..., metavar="A.json", help="Scores written by `detect --json` (the before)."),
    file_b: Path = typer.Argument(..., metavar="B.json", help="Scores to compare with A (the after)."),
    measure: Optional[str] = typer.Option(None, "--measure",
                                          help="Compare by this measure (default: each pattern's own)."),
    top: int = typer.Option(5, "--top", "-k", help="Heads to list per pattern.", min=1),
    heatmap: List[Path] = typer.Option([], "--heatmap", help="Write B − A heatmaps: FILE.png or FILE.html."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the comparison as JSON ('-' for stdout)."),
) -> None:
    """Two runs side by side (two models, checkpoints or prompt sets): the heads that changed most.

    Scores of the same shape are compared head by head (B − A); scores of two shapes (two
    different models) share no head, so each one's best heads are listed side by side."""
    from .comparison import compare as run_compare
    from .engine import Scores
    from .files import OutputFiles
    from .report import HEATMAP_SUFFIXES
    from .report.comparison import (comparison_json, comparison_table, difference_panels, save_comparison_json,
                                 save_difference_heatmap)

    json_to_stdout = json_path is not None and str(json_path) == "-"
    outputs = OutputFiles()
    if json_path is not None and not json_to_stdout:
        outputs.plan(json_path, (".json",), "the comparison as JSON")
    for path in heatmap:
        outputs.plan(path, HEATMAP_SUFFIXES, "a heatmap")
    files = (str(file_a), str(file_b))
    comparison = run_compare(Scores.from_json(file_a), Scores.from_json(file_b), measure=measure)
    if heatmap:
        difference_panels(comparison)  # two shapes have no difference heatmap: say so before writing anything
    for label, file, only in zip(comparison.labels, files, (comparison.only_in_a, comparison.only_in_b)):
        left_out = "; ".join(f"{kind} {', '.join(names)}" for kind, names in only.items() if names)
        if left_out:
            err.print(f"note: left out, as only {label} ({file}) has them: {left_out}", markup=False,
                      highlight=False, soft_wrap=True)
    with outputs.staged() as temporary:
        if json_path is not None and not json_to_stdout:
            save_comparison_json(comparison, temporary(json_path), k=top, files=files)
        for path in heatmap:
            save_difference_heatmap(comparison, temporary(path), files=files)
    for path in outputs.paths:
        err.print(f"wrote {path}")
    if json_to_stdout:
        print(comparison_json(comparison, k=top, files=files))
    else:
        out.print(comparison_table(comparison, k=top, files=files))


# ---- atlas -------------------------------------------------------------------------------------
@app.command()
def atlas(
    out_dir: Path = typer.Option(..., "--out", "-o", help="The atlas folder: DIR/index.html, DIR/data/MODEL.json."),
    model: List[str] = typer.Option([], "--model", "-m", help="A model to add (repeat for several; default: the "
                                                               "embedded SmolLM2-135M-Instruct)."),
    patterns: Optional[str] = typer.Option(None, "--patterns", help="Comma-separated shipped names or files "
                                                                    "(default: every shipped pattern)."),
    probe: Optional[str] = typer.Option(None, "--probe", help="One probe for every pattern (default: each "
                                                              "pattern's own)."),
    add: List[Path] = typer.Option([], "--add", help="An atlas document built elsewhere, merged in (repeatable)."),
    render_only: bool = typer.Option(False, "--render-only", help="Only render the site from DIR/data/*.json "
                                                                  "(no model is loaded)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Prompts per forward pass."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1, mps (default: the model's)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Build (or extend) the head atlas: a static site about every head of each model, with its evidence."""
    from .atlas.cli import run_atlas

    run_atlas(out_dir, models=model, patterns=patterns, probe=_parse_probe(probe) if probe else None, add=add,
              render_only=render_only, batch_size=batch_size, device=device, progress=not no_progress,
              say=lambda text: err.print(text, markup=False, highlight=False))


app.command("describe")(describe_command)


# ---- entry point -------------------------------------------------------------------------------
def main(argv: Optional[list[str]] = None) -> None:
    """Run the CLI; user errors print a clear message and exit 1, never a traceback."""
    # torch's OpenMP threads spin while they wait; on a busy small machine that makes a short
    # forward pass 10x slower (5.8 s instead of 0.45 s for 2 prompts with 2 cores shared). Read
    # when torch loads, which is later: a user's own setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    warnings.showwarning = _print_warning
    try:
        # click itself turns usage errors into exit code 2 and --help into 0.
        app(args=argv, prog_name="patternlang")
    except PatternError as error:
        _print_error(error)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


def run(argv: Optional[list[str]] = None) -> None:
    """The `patternlang` command (and `python -m patternlang`): `main`, then a quick exit.

    Once the command is done, tearing the interpreter down (freeing the thousands of modules
    torch, transformers and TransformerLens import, and the model's tensors) takes over a second
    on 2 cores and changes nothing the command wrote. So the atexit handlers run, the output is
    flushed, and the process ends there. While another non-daemon thread runs, or when the
    command failed with an exception, the interpreter ends as usual.
    """
    try:
        main(argv)
    except SystemExit as stop:
        code = _exit_status(stop.code)
    else:
        code = 0
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None or any(thread.is_alive() and not thread.daemon
                                        for thread in threading.enumerate()
                                        if thread is not threading.main_thread()):
        sys.exit(code)
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`): what could be written was
            pass
    os._exit(code)


def _exit_status(code: object) -> int:
    """The status `sys.exit(code)` would end the process with (a message is printed, as it does)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # Warnings about the user's data (undefined scores, ...) read like errors, without a source line.
    err.print("patternlang: warning: ", style="bold yellow", end="")
    err.print(str(message), markup=False, highlight=False, soft_wrap=True)


def _print_error(error: PatternError) -> None:
    # Plain text: rule sources contain brackets that rich would read as markup.
    err.print("patternlang: ", style="bold red", end="")
    err.print(str(error), markup=False, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    run()
