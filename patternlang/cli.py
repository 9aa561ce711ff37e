"""The `patternlang` command: a thin typer layer over the public functions.

Exit codes: 0 fine, 1 a user error (bad rule, file, prompt or argument value),
2 a usage error (unknown option, missing argument), 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .errors import ErrorGroup, InputError, PatternError
from .settings import MEASURES

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
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show the shipped patterns with their rules, default probes and docstrings."""
    from .library import shipped_patterns

    patterns = shipped_patterns()
    if as_json:
        rows = [{"name": p.name, "rule": _rule_text(p), "doc": p.doc, "probe": str(p.settings.probe or ""),
                 "measure": p.settings.measure, "file": Path(p.filename).name if p.filename else None}
                for p in patterns]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table(title="Shipped patterns (patternlang compile NAME --prompt TEXT shows one)", show_lines=True)
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("rule and settings", ratio=3)
    table.add_column("what it detects", ratio=2)
    for p in patterns:
        table.add_row(p.name, Text(_rule_text(p)), Text(p.description))
    out.print(table)


def _rule_text(pattern) -> str:
    """The expression and settings of a definition, without its header and docstring."""
    if pattern.filename and Path(pattern.filename).suffix in (".yaml", ".yml"):
        return " ".join(pattern.source.split() + [str(pattern.settings)])
    source = pattern.source
    if '"""' in source:
        source = source.rsplit('"""', 1)[1]
    elif ":" in source and source.lstrip().startswith("pattern"):
        source = source.split(":", 1)[1]
    return " ".join(line.strip() for line in source.strip().splitlines() if line.strip())


# ---- check -----------------------------------------------------------------------------------
@app.command()
def check(
    files: List[Path] = typer.Argument(..., help=".pattern or YAML rule files."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: the patterns found, or the problems."),
) -> None:
    """Check rule files and report every problem at once."""
    from .library import check_files

    try:
        found = check_files(files)
    except PatternError as error:
        if as_json:
            errors = error.errors if isinstance(error, ErrorGroup) else [error]
            print(json.dumps({"ok": False, "problems": [_problem(e) for e in errors]}, indent=2))
            raise typer.Exit(1)
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
    from .library import load_pattern
    from .report import matrix_to_json, render_matrix_text, save_matrix

    if (prompt is None) == (tokens is None):
        raise InputError("give exactly one of --prompt TEXT or --tokens \"a b c\"")
    spec = f"{source}:{pattern}" if pattern else source
    compiled = load_pattern(Path(spec) if Path(spec).suffix in (".pattern", ".yaml", ".yml") and not pattern else spec)
    if tokens is not None:
        str_tokens = tokens.split()
        if not str_tokens:
            raise InputError("--tokens is empty")
        matrix = compiled.matrix(str_tokens=str_tokens)
    else:
        from .tokenize import special_ids_of, tokenize_prompt

        loaded = None
        if model is not None:
            from .models import load_model
            loaded = load_model(model)
        if not prompt:
            raise InputError("--prompt is empty")
        ids, str_tokens = tokenize_prompt(prompt, model=loaded, prepend_bos=not no_bos)
        matrix = compiled.matrix(ids, str_tokens, special_ids=special_ids_of(loaded))
    for path in output:
        save_matrix(matrix, str_tokens, path, title=compiled.name, name=compiled.name)
        err.print(f"wrote {path}")
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
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="Prompt file: .txt (one per line) or .jsonl."),
    probe: Optional[str] = typer.Option(None, "--probe",
                                        help="A probe for every pattern: repeated_random, natural "
                                             "(default: each pattern's own probe)."),
    measure: List[str] = typer.Option([], "--measure", help=f"Measures ({', '.join(MEASURES)}); repeat or use commas."),
    exclude_bos: Optional[bool] = typer.Option(None, "--exclude-bos/--include-bos",
                                               help="Leave key 0 out (default: each pattern's setting)."),
    exclude_current: Optional[bool] = typer.Option(None, "--exclude-current/--include-current",
                                                   help="Leave the diagonal out (default: each pattern's setting)."),
    heads: Optional[str] = typer.Option(None, "--heads", help='Only these heads: "5.1,6.9" or "L5H1,L6H9".'),
    top: int = typer.Option(5, "--top", "-k", help="Heads to list per pattern.", min=1),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write all scores as JSON ('-' for stdout)."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write all scores as CSV."),
    heatmap: List[Path] = typer.Option([], "--heatmap", help="Write layer x head heatmaps: FILE.png or FILE.html."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Prompts per forward pass (default: auto).",
                                             min=1),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1, mps (default: the model's)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Score every head of a model against patterns and list the best heads."""
    from .engine import detect as run_detect
    from .engine.detect import check_measures
    from .library import load_patterns, shipped_patterns
    from .models import load_model
    from .probes import from_file
    from .report import save_heatmap, top_heads_table
    from .survey import survey
    from .tokenize import check_token_ids_before_loading

    if prompts is not None and probe is not None:
        raise InputError("give --prompts or --probe, not both")
    # Everything the user wrote is checked before the model loads (that takes a while).
    measures = check_measures(",".join(measure)) if measure else None
    chosen = load_patterns(list(patterns)) if patterns else shipped_patterns()
    probe_spec = _parse_probe(probe) if probe else None
    prompt_set = from_file(prompts) if prompts is not None else None
    if prompt_set is not None:
        check_token_ids_before_loading(prompt_set, model)
    options = dict(measures=measures, exclude_bos=exclude_bos, exclude_current_token=exclude_current, heads=heads,
                   batch_size=batch_size, device=device, progress=not no_progress)
    with err.status("loading the model...", spinner="dots") if err.is_terminal else nullcontext():
        loaded = load_model(model, device=device)
    if prompt_set is not None:
        scores = run_detect(loaded, prompt_set, chosen, **options)
    else:
        scores = survey(loaded, chosen, probe=probe_spec, **options)
    if json_path is not None:
        if str(json_path) == "-":
            print(scores.to_json())
        else:
            scores.to_json(json_path)
            err.print(f"wrote {json_path}")
    if csv_path is not None:
        scores.to_csv(csv_path)
        err.print(f"wrote {csv_path}")
    for path in heatmap:
        save_heatmap(scores, path)
        err.print(f"wrote {path}")
    if str(json_path) != "-":
        out.print(top_heads_table(scores, k=top))


def _parse_probe(text: str):
    """`repeated_random` or `repeated_random(length=64, seed=1)`, read by the language's grammar."""
    from .probes import validate_probe_args
    from .settings import ProbeSpec
    from .syntax.parser import parse_probe

    name, args = parse_probe(text)
    validate_probe_args(name, args)
    return ProbeSpec(name, args)


# ---- entry point -------------------------------------------------------------------------------
def main(argv: Optional[list[str]] = None) -> None:
    """Run the CLI; user errors print a clear message and exit 1, never a traceback."""
    try:
        # click itself turns usage errors into exit code 2 and --help into 0.
        app(args=argv, prog_name="patternlang")
    except PatternError as error:
        _print_error(error)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


def _print_error(error: PatternError) -> None:
    # Plain text: rule sources contain brackets that rich would read as markup.
    err.print("patternlang: ", style="bold red", end="")
    err.print(str(error), markup=False, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    main()
