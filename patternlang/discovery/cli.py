"""`patternlang describe`: its options and what it does (registered by one line in cli.py).

Only typer is imported here: torch, the model and the engine load inside the command (a deliberate
lazy load, so that `patternlang --help` stays fast and a bad option fails before the model loads).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from patternlang.errors import InputError
from patternlang.library import probe_argument

__all__ = ["describe_command"]


def describe_command(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The model (default: the embedded "
                                                                    "SmolLM2-135M-Instruct)."),
    probe: List[str] = typer.Option([], "--probe", help="A probe for the prompts (repeatable): natural, "
                                                        "repeated_random, repeated_random(length=32)..."),
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="A prompt file (.txt, .jsonl, .json), "
                                                                   "besides or instead of --probe."),
    heads: Optional[str] = typer.Option(None, "--heads", help="Only these heads: \"L16H0 L17H3\" or \"16.0,17.3\"."),
    families: Optional[str] = typer.Option(None, "--families", help="Comma-separated candidate families "
                                                                    "(default: all)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the description as JSON."),
    replace: Optional[float] = typer.Option(None, "--replace", help="Replacement check: replace this share of "
                                                                    "all heads (the best described) by their rules."),
    show: Optional[str] = typer.Option(None, "--show", help="Draw this head's attention beside its rule on "
                                                            "the first held-out prompt."),
    mixture: int = typer.Option(3, "--mixture", min=0, help="The most rules of each head's weighted description "
                                                            "(a mixture of rules and BOS); 0: none."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Prompts per forward pass."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, mps (default: the model's)."),
) -> None:
    """Describe every head by the rule of the language that best explains its attention."""
    from patternlang.files import check_writable
    from patternlang.heads import check_heads, head_label, parse_head

    started = time.perf_counter()
    say = _reporter()
    if not probe and prompts is None:
        probe = ["natural", "repeated_random"]
    specs = [probe_argument(text) for text in probe]
    if json_path is not None:
        if json_path.suffix.lower() != ".json":
            raise InputError(f"--json {json_path}: the file must end in .json")
        check_writable(json_path)
    if replace is not None and not 0 < replace <= 1:
        raise InputError(f"--replace takes a share of the heads in (0, 1], got {replace}")
    check_heads(heads)
    if show is not None:
        parse_head(show)
    family_names = [f.strip() for f in families.split(",") if f.strip()] if families else None
    from patternlang.discovery.families import choose_families

    choose_families(family_names)
    from patternlang.discovery.search import describe
    from patternlang.models import load_model
    from patternlang.probes import from_file, make_probe

    say(f"loading {model or 'the embedded model'} ...")
    loaded = load_model(model, device=device)
    items: list = []
    for spec in specs:
        items += list(make_probe(spec.name, spec.args, model=loaded).items)
    if prompts is not None:
        items += list(from_file(prompts).items)
    description = describe(loaded, items, heads=heads, families=family_names, batch_size=batch_size,
                           progress=say, replace=replace, mixture=mixture)
    if json_path is not None:
        description.to_json(json_path)
        say(f"wrote {json_path}")
    print(description.table())
    print(f"{len(description.described)}/{len(description.heads)} heads above chance; mean held-out IoU "
          f"{_fmt(description.mean_iou)} over them; by family: {description.by_family()}")
    if description.mixture_size:
        print(f"mixtures (up to {description.mixture_size} rules and BOS): mean held-out IoU {_fmt(description.mean_mixture_iou)}"
              f" over the same heads; held-out fit (attention in common) {_fmt(description.mean_fit('mixture_fit'))}"
              f" against {_fmt(description.mean_fit('rule_fit'))} for the single rules")
    if description.replacement is not None:
        r = description.replacement
        print(f"replacing {len(r.heads)} heads by their rules: perplexity {r.perplexity_before:.3f} -> "
              f"{r.perplexity_after:.3f} ({r.increase:+.1%}) on {r.n_prompts} held-out prompts")
        s = description.replacement_with_sink
        if s is not None:
            print(f"  keeping each head's share of attention on BOS: {s.perplexity_after:.3f} ({s.increase:+.1%})")
        m = description.replacement_mixture
        if m is not None:
            print(f"replacing the {len(m.heads)} best-fitted heads by their mixtures: perplexity "
                  f"{m.perplexity_before:.3f} -> {m.perplexity_after:.3f} ({m.increase:+.1%})")
    if show is not None:
        _show(loaded, description, head_label(*parse_head(show)), items[1])
    say(f"done in {time.perf_counter() - started:.0f} s")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _show(model, description, label: str, prompt) -> None:
    from patternlang.engine.explanation import explain
    from patternlang.report.explain_text import explanation_to_text

    entry = description.heads.get(label)
    if entry is None:
        raise InputError(f"head {label} was not described", hint="include it in --heads")
    rule = entry.rule or entry.best_rule
    if rule is None:
        print(f"{label}: none above chance, and no rule to draw")
        return
    print(f"{label}: {rule}" + ("" if entry.rule else "  (best rule, not above chance)"))
    if entry.mixture:
        print(f"{label} as a mixture: {entry.mixture_text()}")
    print(explanation_to_text(explain(model, rule, label, prompt)))


def _reporter():
    """Progress: one line updated in place on a terminal, timestamped log lines otherwise (stderr)."""
    start = time.perf_counter()
    if sys.stderr.isatty():
        def say(message: str) -> None:
            sys.stderr.write("\r\x1b[2K" + message[:200])
            sys.stderr.flush()
            if message.startswith(("wrote", "done")):
                sys.stderr.write("\n")
        return say

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {message}", file=sys.stderr, flush=True)
    return log
