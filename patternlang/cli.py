"""The `patternlang` command: a thin typer layer over the public functions.

Exit codes: 0 fine, 1 a user error (bad rule, file, prompt or argument value),
2 a usage error (unknown option, missing argument), 130 interrupted.

Every verb reads its options and calls one public function (`commands.py`, `report/listing.py`,
`library.py`, `atlas/cli.py`), then prints. The torch-free ones (the language layer, the listings,
the model-name check) are imported here; those that import torch (`commands`, the engine, the report
formats, the atlas) inside the verbs that use them, on purpose: `list`, `measures`, `features`,
`check` and `--help` never import torch (tests/test_architecture.py checks it).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console

from .collector import collector_paused
from .console import _exit_status, quick_exit
from .discovery.cli import describe_command
from .errors import ErrorGroup, InputError, PatternError
from .library import check_files, not_a_directory, pattern_files, probe_argument, shipped_patterns
from .models.resolve import check_model_name
from .report.listing import (cache_lines, clear_cache, features_json, features_tables, measures_json, measures_table,
                             patterns_json, patterns_table)
from .syntax.features import features_markdown

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
    if source is None:
        patterns = shipped_patterns()
        title = "Shipped patterns (patternlang compile NAME --prompt TEXT shows one)"
    else:
        patterns = [p for found in check_files(pattern_files(source)).values() for p in found]
        title = f"Patterns in {source} (patternlang compile FILE:NAME --prompt TEXT shows one)"
    if as_json:
        print(json.dumps(patterns_json(patterns), indent=2, ensure_ascii=False))
    else:
        out.print(patterns_table(patterns, title))


# ---- features and measures -------------------------------------------------------------------
@app.command("features")
def list_features(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the Markdown table of docs/language.md."),
) -> None:
    """Show the token features a rule can read (tok, str, word, sentence, ...) and the string functions."""
    if markdown:
        print(features_markdown())
    elif as_json:
        print(json.dumps(features_json(), indent=2))
    else:
        for table in features_tables():
            out.print(table)


@app.command("measures")
def list_measures(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show the measures a head can be scored with (docs/measures.md explains each)."""
    if as_json:
        print(json.dumps(measures_json(), indent=2))
    else:
        out.print(measures_table())


# ---- cache --------------------------------------------------------------------------------------
@app.command("cache")
def cache(
    action: str = typer.Argument("info", metavar="[info|clear]", help="Show the cached models, or delete them."),
) -> None:
    """What patternlang caches (de-quantised GGUF weights, so that models load in seconds; joined GGUF
    files; the embedded tokenizer): list it, or delete it all (safe: each is rebuilt when needed)."""
    if action == "info":
        for line in cache_lines():
            out.print(line, markup=False, highlight=False)
    elif action == "clear":
        out.print(clear_cache(), markup=False, highlight=False)
    else:
        raise InputError(f"unknown cache action {action!r}", hint="use `patternlang cache info` or `cache clear`")


# ---- check -----------------------------------------------------------------------------------
@app.command()
def check(
    files: List[Path] = typer.Argument(..., help=".pattern or YAML rule files."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: the patterns found, or the problems."),
) -> None:
    """Check rule files and report every problem at once."""
    for file in files:
        not_a_directory(str(file))
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
    for checked, patterns in found.items():
        names = ", ".join(p.name for p in patterns)
        out.print(f"[green]ok[/green] {checked}: {len(patterns)} pattern(s) ({names})")


def _problem(error: PatternError) -> dict[str, Any]:
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
    spans: Optional[str] = typer.Option(None, "--spans", help='Labelled spans of --prompt, JSON: \'{"IO": [[5, 9]]}\'.'),
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="A prompt file (.jsonl with \"spans\"); --index picks one."),
    index: int = typer.Option(0, "--index", min=0, help="Which prompt of --prompts, from 0."),
) -> None:
    """Compile a pattern on one prompt and show its detection matrix (patterns reading the parser, spans
    or the model's predictions: the prompt is parsed and the model run, as `show` does)."""
    from .commands import pattern_matrix  # lazy, as every command's: `list` and `check` load no torch
    from .report import matrix_to_json, render_matrix_text

    compiled, matrix, str_tokens = pattern_matrix(source, pattern=pattern, prompt=prompt, tokens=tokens, model=model,
                                                  prepend_bos=not no_bos, output=output, spans=spans,
                                                  prompts=prompts, index=index, say=_say)
    if as_json:
        print(json.dumps(matrix_to_json(matrix, str_tokens, name=compiled.name), ensure_ascii=False))
    if show or not (output or as_json):
        out.print(render_matrix_text(matrix, str_tokens, max_tokens=max_tokens, title=compiled.name))


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
    measure: List[str] = typer.Option([], "--measure", help="Measures (`patternlang measures` lists them); "
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
    verdicts: bool = typer.Option(False, "--verdicts",
                                  help="Also say what each head is called: label, runner-up, margin, sink share, "
                                       "evidence (docs/verdicts.md); scores sink and offsink too."),
    effects: Optional[str] = typer.Option(None, "--effects", metavar="METRIC",
                                          help="Add each head's effect on a metric (logit_diff, loss, ...) beside "
                                               "its scores: `patternlang effects` on the run's probe or prompts."),
) -> None:
    """Score every head of a model against patterns and list the best heads.

    Under `torchrun --nproc-per-node N -m patternlang detect ...` the prompts are shared out
    among the N processes and only rank 0 prints and writes files (docs/scale.md)."""
    if model is not None:  # a mistyped name fails here, in a fraction of a second, before torch loads
        check_model_name(model)
    with collector_paused():  # these import torch (lazy, as every verb's): see collector_paused
        from .commands import score_heads
        from .engine import distributed
        from .engine.options import DetectOptions
        from .report import top_heads_table

    if distributed.torchrun_rank() != 0:  # rank 0 speaks for the run; the others work quietly
        no_progress = True
        warnings.simplefilter("ignore")
    if attention not in ("auto", "blocks", "pattern"):
        raise InputError(f"--attention must be auto, blocks or pattern, got {attention!r}")
    options = DetectOptions(
        measures=",".join(measure) if measure else None, exclude_bos=exclude_bos, exclude_current_token=exclude_current,
        heads=heads, batch_size=batch_size, progress=not no_progress, attention=attention, checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        device=distributed.local_device(device) if distributed.launched_by_torchrun() else device)
    scores = score_heads(model, patterns or [], options, prompts=prompts, prompt_column=prompt_column, probe=probe,
                         json_path=json_path, csv_path=csv_path, heatmap=heatmap, heatmap_measure=heatmap_measure,
                         verdicts=verdicts, effects=effects, loading=_loading, say=_say)
    if scores is None:  # another rank than 0
        return
    if json_path is not None and str(json_path) == "-":
        print(scores.to_json(verdicts=verdicts))
    else:
        out.print(top_heads_table(scores, k=top, ci=ci, width=out.width))
        if verdicts:  # [verdicts]
            from .report.text import verdicts_table  # torch: lazy, as every verb's

            out.print(verdicts_table(scores))


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
    from .commands import explain_head  # torch: lazy, as every verb's
    from .report import render_explanation_text

    why = explain_head(source, head, prompt=prompt, tokens=tokens, probe=probe, prompts=prompts, index=index,
                       model=model, output=output, measures=",".join(measure) if measure else None,
                       exclude_bos=exclude_bos, exclude_current=exclude_current, prepend_bos=not no_bos,
                       device=device, loading=_loading, say=_say)
    if as_json:
        print(json.dumps(why.to_dict(), ensure_ascii=False))
    else:
        out.print(render_explanation_text(why, max_tokens=max_tokens))


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
    from .commands import compare_files  # torch: lazy, as every verb's
    from .report.changes import comparison_json, comparison_table

    files = (str(file_a), str(file_b))
    comparison = compare_files(file_a, file_b, measure=measure, top=top, heatmap=heatmap, json_path=json_path,
                               say=_say)
    if json_path is not None and str(json_path) == "-":
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
    effects: List[str] = typer.Option([], "--effects", metavar="[METRIC]",
                                      help="Add each head's effect to its page and verdict. Alone (or `auto`): loss "
                                           "on natural text and each labelled probe's own metric on it "
                                           "(induction_loss on repeated_random, logit_diff at END on ioi, retrieval "
                                           "on needle), for the probes the atlas uses; or a metric (repeatable). "
                                           "On an existing atlas without --patterns, only the effects are added."),
    effects_top_k: Optional[int] = typer.Option(None, "--effects-top-k", min=0, help="Heads ablated exactly per "
                                                                                    "--effects metric (default 5)."),
    effects_prompts: Optional[int] = typer.Option(None, "--effects-prompts", min=0,
                                                  help="Prompts per --effects probe, its first ones (default 32; "
                                                       "0: all)."),
    describe: bool = typer.Option(False, "--describe", help="Add each head's description (patternlang describe: "
                                                            "its rule, held-out score and IoU) to the head pages."),
) -> None:
    """Build (or extend) the head atlas: a static site about every head of each model, with its evidence."""
    from .atlas.cli import run_atlas  # torch: lazy, as every verb's

    run_atlas(out_dir, models=model, patterns=patterns, probe=probe_argument(probe) if probe else None, add=add,
              render_only=render_only, batch_size=batch_size, device=device, progress=not no_progress,
              say=lambda text: err.print(text, markup=False, highlight=False), effects=effects,
              effects_top_k=effects_top_k, effects_prompts=effects_prompts, describe=describe)


from .effects.cli import register as _register_effects  # noqa: E402 - `effects`, `ablate`: patternlang/effects/cli.py

_register_effects(app)
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
        app(args=bare_effects(sys.argv[1:] if argv is None else argv), prog_name="patternlang")
    except PatternError as error:
        _print_error(error)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


def bare_effects(argv: list[str]) -> list[str]:
    """`patternlang atlas --effects` with no metric means the default set: `--effects auto` (the
    parser has no options with an optional value). A metric name never starts with `-`."""
    if not argv or argv[0] != "atlas":
        return list(argv)
    return [word for i, item in enumerate(argv)
            for word in ([item, "auto"] if item == "--effects" and (i + 1 == len(argv) or argv[i + 1].startswith("-"))
                         else [item])]


def run(argv: Optional[list[str]] = None) -> None:
    """The `patternlang` command (and `python -m patternlang`): `main`, then a quick exit
    (`console.quick_exit`: the atexit handlers, a flush, and no second-long interpreter teardown)."""
    try:
        main(argv)
    except SystemExit as stop:
        quick_exit(_exit_status(stop.code))
    else:
        quick_exit(0)


def _say(text: str) -> None:
    """What a command says on the way (files written, notes): stderr, as typed."""
    err.print(text, markup=False, highlight=False, soft_wrap=True)


def _loading() -> Any:
    """The spinner while a model loads, on a terminal."""
    return err.status("loading the model...", spinner="dots") if err.is_terminal else nullcontext()


def _print_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                   file: Any = None, line: str | None = None) -> None:
    # Warnings about the user's data (undefined scores, ...) read like errors, without a source line.
    err.print("patternlang: warning: ", style="bold yellow", end="")
    err.print(str(message), markup=False, highlight=False, soft_wrap=True)


def _print_error(error: PatternError) -> None:
    # Plain text: rule sources contain brackets that rich would read as markup.
    err.print("patternlang: ", style="bold red", end="")
    err.print(str(error), markup=False, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    run()
