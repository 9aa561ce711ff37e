"""`patternlang effects` and `patternlang ablate`: the commands, registered on the main app by `register`.

Everything the user wrote (metric, method, heads, probe, files) is checked before the model
loads; torch is imported only when a command runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from patternlang.errors import InputError
from patternlang.library import probe_argument


def _prompt_source(probe: Optional[str], prompts: Optional[Path], what: str) -> tuple[Any, str]:
    """A checked probe spec or prompt file (not yet built), and the probe's name (for defaults)."""
    from patternlang.probes import check_prompt_file

    if probe is not None and prompts is not None:
        raise InputError(f"give {what} as --probe or --prompts, not both")
    if prompts is not None:
        check_prompt_file(prompts)
        return prompts, ""
    spec = probe_argument(probe or "natural")
    return spec, spec.name


def _build(source: Any, model: Any) -> Any:
    from patternlang.probes import as_prompts, make_probe

    if isinstance(source, Path):
        return as_prompts(source, model)
    return make_probe(source.name, source.args, model)


def _corrupted(text: Optional[str]) -> Any:
    """`--corrupted`: a prompt file when one exists at that path, else a probe (`ioi(variant=abc)`)."""
    if text is None:
        return None
    path = Path(text)
    if path.suffix in (".txt", ".jsonl", ".json") or path.exists():
        from patternlang.probes import check_prompt_file

        check_prompt_file(path)
        return path
    return probe_argument(text)


def _check_common(metric: Optional[str], method: str, probe_name: str, positions: Optional[str]) -> tuple[str, Any]:
    from patternlang.effects.interventions import METHODS
    from patternlang.effects.metrics import metric_of_probe, resolve_metric

    chosen = metric or metric_of_probe(probe_name)  # the probe's own metric (the registry's entries say)
    resolved = resolve_metric(chosen)
    if method not in METHODS:
        raise InputError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    if positions is None:
        positions = resolved.positions
    elif positions.lower() in ("all", "none", "*"):
        positions = None
    return chosen, positions


def _load(model: Optional[str], device: Optional[str], say: Callable[[str], None]) -> Any:
    from patternlang.collector import collector_paused
    from patternlang.models.resolve import check_model_name

    if model is not None:
        check_model_name(model)
    with collector_paused():  # torch and the model loaders import here (see collector_paused)
        from patternlang.models import load_model

        say(f"loading {model or 'the embedded model'} ...")
        return load_model(model, device=device)


def _write(effects: Any, json_path: Optional[Path], say: Callable[[str], None]) -> None:
    if json_path is None:
        return
    if str(json_path) == "-":
        print(effects.to_json())
        return
    effects.to_json(json_path)
    say(f"wrote {json_path}")


def _check_json(json_path: Optional[Path]) -> None:
    if json_path is not None and str(json_path) != "-":
        from patternlang.files import check_writable, suffix_of

        suffix_of(json_path, (".json",), "the effects as JSON")
        check_writable(json_path)


def run_effects(*, model: Optional[str], probe: Optional[str], prompts: Optional[Path], metric: Optional[str],
                method: str, positions: Optional[str], heads: Optional[str], top_k: int, corrupted: Optional[str],
                json_path: Optional[Path], batch_size: Optional[int], device: Optional[str], progress: bool,
                seed: int, say: Callable[[str], None]) -> Any:
    """`patternlang effects`: every head's estimate (attribution patching), the top K ablated exactly."""
    from patternlang.heads import check_heads

    source, probe_name = _prompt_source(probe, prompts, "the prompts")
    chosen, positions = _check_common(metric, method, probe_name, positions)
    corrupted_source = _corrupted(corrupted)
    check_heads(heads)
    _check_json(json_path)
    loaded = _load(model, device, say)
    from patternlang.effects.interventions import attribute

    started = time.perf_counter()
    built = _build(source, loaded)
    say(f"{len(built)} prompts; estimating every head's effect on {chosen} from one forward and one backward pass, "
        f"then the top {top_k} {'patched' if corrupted_source is not None else f'ablated ({method})'} exactly")
    effects = attribute(loaded, built, heads, metric=chosen, method=method, positions=positions,  # type: ignore[arg-type]
                        corrupted=None if corrupted_source is None else _build(corrupted_source, loaded),
                        top_k=top_k, seed=seed, batch_size=batch_size, progress=progress)
    say(f"done in {time.perf_counter() - started:.0f} s")
    _write(effects, json_path, say)
    return effects


def run_ablate(*, model: Optional[str], probe: Optional[str], prompts: Optional[Path], heads: str,
               metric: Optional[str], method: str, positions: Optional[str], together: bool, random_sets: int,
               seed: int, json_path: Optional[Path], batch_size: Optional[int], device: Optional[str],
               progress: bool, say: Callable[[str], None]) -> Any:
    """`patternlang ablate`: the chosen heads ablated (alone or together), with random-set baselines."""
    from patternlang.heads import check_heads

    source, probe_name = _prompt_source(probe, prompts, "the prompts")
    chosen, positions = _check_common(metric, method, probe_name, positions)
    check_heads(heads)
    _check_json(json_path)
    loaded = _load(model, device, say)
    from patternlang.effects.interventions import ablate

    started = time.perf_counter()
    built = _build(source, loaded)
    effects = ablate(loaded, built, heads, metric=chosen, method=method, positions=positions,  # type: ignore[arg-type]
                     together=together, random_sets=random_sets, seed=seed, batch_size=batch_size, progress=progress)
    say(f"done in {time.perf_counter() - started:.0f} s")
    _write(effects, json_path, say)
    return effects


def register(app: typer.Typer) -> None:
    """Add `effects` and `ablate` to the `patternlang` command."""
    from rich.console import Console

    err = Console(stderr=True)

    def say(text: str) -> None:
        err.print(text, markup=False, highlight=False)

    @app.command("effects")
    def effects_command(
        model: Optional[str] = typer.Option(None, "--model", "-m", help="TransformerLens name, HF checkpoint folder "
                                            "or model.pt (default: the embedded SmolLM2-135M-Instruct)."),
        probe: Optional[str] = typer.Option(None, "--probe", help='A probe: ioi, "ioi(batch=64)", needle, natural, '
                                            "repeated_random (default: natural)."),
        prompts: Optional[Path] = typer.Option(None, "--prompts", help="A prompt file (.txt, .jsonl with \"spans\", "
                                               ".json), read into memory."),
        metric: Optional[str] = typer.Option(None, "--metric", help="loss, induction_loss, logit_diff, "
                                             "\"logit_diff(IO, S2)\", retrieval (default: the probe's: ioi "
                                             "logit_diff, needle retrieval, repeated_random induction_loss, else loss)."),
        method: str = typer.Option("zero", "--method", help="zero, mean or resample ablation."),
        positions: Optional[str] = typer.Option(None, "--positions", help="A span label (END, IO, S2, ...) or all "
                                                "(default: END for logit_diff, else all)."),
        heads: Optional[str] = typer.Option(None, "--heads", help='Only these heads: "5.1,6.9" or "L5H1,L6H9".'),
        top_k: int = typer.Option(20, "--top-k", "-k", min=0, help="Heads ablated exactly, by the size of their "
                                  "estimate."),
        corrupted: Optional[str] = typer.Option(None, "--corrupted", help='Patch from this run instead of ablating: '
                                                'a probe ("ioi(variant=\\"abc\\")") or a prompt file, paired with '
                                                "the prompts."),
        seed: int = typer.Option(0, "--seed", help="Seed of resample ablation."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Write the effects as JSON ('-' for stdout)."),
        top: int = typer.Option(5, "--top", help="Heads listed each way."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Prompts per forward pass "
                                                 "(default: by memory)."),
        device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1, mps (default: the model's)."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    ) -> None:
        """Every head's effect on a metric: attribution patching for all heads, exact ablation of the top K."""
        effects = run_effects(model=model, probe=probe, prompts=prompts, metric=metric, method=method,
                              positions=positions, heads=heads, top_k=top_k, corrupted=corrupted, json_path=json_path,
                              batch_size=batch_size, device=device, progress=not no_progress, seed=seed, say=say)
        if json_path is None or str(json_path) != "-":
            print(effects.summary(k=top))

    @app.command("ablate")
    def ablate_command(
        heads: str = typer.Option(..., "--heads", help='The heads: "L23H1,L24H4" or "23.1,24.4".'),
        model: Optional[str] = typer.Option(None, "--model", "-m", help="TransformerLens name, HF checkpoint folder "
                                            "or model.pt (default: the embedded SmolLM2-135M-Instruct)."),
        probe: Optional[str] = typer.Option(None, "--probe", help="A probe (default: natural)."),
        prompts: Optional[Path] = typer.Option(None, "--prompts", help="A prompt file, read into memory."),
        metric: Optional[str] = typer.Option(None, "--metric", help="As for `patternlang effects`."),
        method: str = typer.Option("zero", "--method", help="zero, mean or resample."),
        positions: Optional[str] = typer.Option(None, "--positions", help="A span label or all (default: END for "
                                                "logit_diff, else all)."),
        together: bool = typer.Option(False, "--together", help="Ablate the heads as one set (default: each alone)."),
        random_sets: int = typer.Option(0, "--random-sets", min=0, max=10_000, help="Random same-size sets from the "
                                        "same layers, ablated as a baseline."),
        seed: int = typer.Option(0, "--seed", help="Seed of the random sets and of resampling."),
        json_path: Optional[Path] = typer.Option(None, "--json", help="Write the effects as JSON ('-' for stdout)."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Prompts per forward pass."),
        device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1, mps (default: the model's)."),
        no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    ) -> None:
        """Ablate heads (hook_z) and report the metric's change per head or set, with a 95% interval."""
        effects = run_ablate(model=model, probe=probe, prompts=prompts, heads=heads, metric=metric, method=method,
                             positions=positions, together=together, random_sets=random_sets, seed=seed,
                             json_path=json_path, batch_size=batch_size, device=device, progress=not no_progress,
                             say=say)
        if json_path is None or str(json_path) != "-":
            print(effects.summary(k=10))


__all__: List[str] = ["register", "run_ablate", "run_effects"]


# ---- `detect --effects METRIC` -----------------------------------------------------------------
DETECT_TOP_K = 10


def check_effects_metric(metric: str) -> str:
    """`detect --effects METRIC`, checked before the model loads."""
    from patternlang.effects.metrics import resolve_metric

    resolve_metric(metric)
    return metric


def detect_effects(scores: Any, model: Any, metric: str, *, probe: Any = None, prompts: Optional[Path] = None,
                   progress: bool = True, say: Callable[[str], None] = print) -> Any:
    """`scores` with every head's effect on `metric` beside it: attribution for all heads, the top
    `DETECT_TOP_K` ablated exactly (zero, at the metric's own positions: END for `logit_diff`), on the
    run's probe or prompt file, else the metric's own probe (its registry entry's, else `natural`)."""
    from patternlang.effects.interventions import attribute
    from patternlang.effects.metrics import resolve_metric
    from patternlang.effects.scored_effects import attach_effects
    from patternlang.settings import ProbeSpec

    resolved = resolve_metric(metric)
    source = prompts if prompts is not None else probe or ProbeSpec(resolved.probe or "natural", ())
    built = _build(source, model)
    say(f"effects on {resolved.label}: {len(built)} prompts, every head estimated, the top {DETECT_TOP_K} ablated")
    effects = attribute(model, built, metric=resolved, positions=resolved.positions,
                        top_k=DETECT_TOP_K, progress=progress)
    return attach_effects(scores, effects)
