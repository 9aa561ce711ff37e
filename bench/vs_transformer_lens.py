"""patternlang.detect against TransformerLens' `detect_head`, called the way its users call it.

    python bench/vs_transformer_lens.py [--prompts 64] [--tokens 64] [--patterns 4 16] [--repeats 3]
                                        [--tl-prompts 16] [--tiny]

The same texts (~`--tokens` tokens each, BOS included) and the same patterns on the same
model, `mul` measure, no exclusions:

- TransformerLens: one `detect_head` call per pattern. Its own three heads
  (previous/duplicate/induction) take the list of prompts: `detect_head(model, prompts, name)`.
  Any other pattern must be given as a tensor, which `detect_head` accepts for one prompt
  only, so each prompt gets `detect_head(model, prompt, matrix)` and the scores are averaged
  as `detect_head` averages a list (`torch.stack(...).mean(0)`). The matrices are
  `pattern.matrix(tokens, str_tokens)` per prompt, built before the clock starts: that work
  is not counted against TransformerLens.
- patternlang: one `detect(model, prompts, patterns, measures="mul")` call for all patterns
  (tokenizing and compiling included), on all `--prompts` prompts.

TransformerLens runs a full forward pass per prompt and per pattern (about a second each on
two CPU cores), so it is timed on `--tl-prompts` of the prompts, evenly spread, and its time
is scaled to all of them: its cost is a Python loop of independent calls, linear in the
prompts. `--tl-prompts` equal to `--prompts` times every call. Each TransformerLens call runs
once, in chunks between patternlang's runs; patternlang's time is the best of `--repeats`.

Both sides' scores must agree, every head of every pattern within 1e-5: on two prompts
before the clock starts, and on every prompt TransformerLens was timed on before any
speed-up is printed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    Timings,
    load_bench_model,
    model_label,
    pattern_set,
    text_prompts,
    time_call,
)

TOLERANCE = 1e-5
TARGETS = {4: 10.0, 16: 30.0}  # the speed-up targets on this CPU, 64 prompts of ~64 tokens


def transformer_lens_runner(model: Any, texts: Sequence[str], names: Sequence[str]):
    """`run(name) -> [n_layers, n_heads]`: TransformerLens' `detect_head` on every text, as a user calls it."""
    from transformer_lens import head_detector

    from patternlang.engine.batching import TokenStrings
    from patternlang.engine.tl_compat import TL_HEAD_NAMES
    from patternlang.library import load_pattern
    from patternlang.models.facts import model_facts

    specials = model_facts(model).special_ids
    token_texts = TokenStrings(model)  # each token's text, as patternlang reads it (`compile --prompt` shows it)
    matrices: dict[str, list[torch.Tensor]] = {}
    for name in names:
        if name in TL_HEAD_NAMES:
            continue
        pattern = load_pattern(name)
        matrices[name] = []
        for text in texts:
            tokens = model.to_tokens(text)[0].cpu()
            str_tokens = token_texts(tokens.tolist())
            matrices[name].append(pattern.matrix(tokens, str_tokens, special_ids=specials).to(torch.float32))

    def run(name: str) -> torch.Tensor:
        if name in TL_HEAD_NAMES:
            return head_detector.detect_head(model, list(texts), name, error_measure="mul")
        scores = [head_detector.detect_head(model, text, matrix, error_measure="mul")
                  for text, matrix in zip(texts, matrices[name])]
        return torch.stack(scores).mean(0)

    return run


def run(model: Any, *, n_prompts: int = 64, n_tokens: int = 64, pattern_counts: Sequence[int] = (4, 16),
        repeats: int = 3, tl_prompts: int | None = 16, targets: dict[int, float] | None = None,
        tolerance: float = TOLERANCE, log=print) -> dict[str, Any]:
    """Time both sides, check their scores agree within `tolerance`, and return the figures
    (`targets`: the speed-ups to print beside the figures, by number of patterns)."""
    from patternlang.engine import detect

    texts = text_prompts(model, n_prompts, n_tokens)
    lengths = [int(model.to_tokens(t).shape[-1]) for t in texts]
    n_tl = n_prompts if tl_prompts is None else max(1, min(tl_prompts, n_prompts))
    tl_texts = [texts[(i * n_prompts) // n_tl] for i in range(n_tl)]  # evenly spread
    scale = n_prompts / n_tl
    sets = {n: pattern_set(n) for n in sorted(pattern_counts)}
    every_name = sets[max(sets)]
    log(f"vs TransformerLens: {model_label(model)}, {n_prompts} prompts of {min(lengths)}-{max(lengths)} tokens "
        f"(mean {sum(lengths) / len(lengths):.1f}), patterns {', '.join(str(n) for n in sets)}, measure mul; "
        f"detect_head timed on {n_tl} of the prompts" + (f" and scaled x{scale:g}" if scale != 1 else ""))

    def our_detect(names: Sequence[str], prompts: Sequence[str]):
        return detect(model, list(prompts), list(names), measures="mul", exclude_bos=False,
                      exclude_current_token=False, progress=False)

    tl_run = transformer_lens_runner(model, tl_texts, every_name)
    previous_level = logging.root.manager.disable
    logging.disable(logging.WARNING)  # TransformerLens warns at every call on weighted patterns under "mul"
    try:
        # Warm-up: compile the patterns, touch every code path once.
        for names in sets.values():
            our_detect(names, texts[:2])
        from transformer_lens import head_detector

        head_detector.detect_head(model, texts[0], "previous_token_head")
        # Fail fast: the same numbers on two prompts before any timing (checked again on
        # every prompt both sides timed, below).
        first = tl_texts[:2]
        check_run = transformer_lens_runner(model, first, every_name)
        check_same_numbers(check_run, our_detect(every_name, first), every_name, tolerance)

        timings = Timings()
        tl_scores: dict[str, torch.Tensor] = {}
        tl_seconds: dict[str, float] = {}
        n_chunks = max(1, min(3, len(every_name)))
        chunks = [every_name[i::n_chunks] for i in range(n_chunks)]
        for round_index in range(max(repeats, n_chunks)):
            if round_index < repeats:
                for n, names in sets.items():
                    seconds, _ = time_call(lambda names=names: our_detect(names, texts))
                    timings.add(f"detect_{n}", seconds)
            if round_index < n_chunks:
                for name in chunks[round_index]:
                    tl_seconds[name], tl_scores[name] = time_call(lambda name=name: tl_run(name))
    finally:
        logging.disable(previous_level)

    results: dict[str, Any] = {"n_prompts": n_prompts, "tl_prompts": n_tl, "tokens": lengths, "repeats": repeats,
                               "model": model_label(model), "sets": {}}
    for n, names in sets.items():
        same_prompts = our_detect(names, tl_texts)  # the check: the prompts TransformerLens scored
        worst = check_same_numbers(tl_scores.__getitem__, same_prompts, names, tolerance)
        tl_measured = sum(tl_seconds[name] for name in names)
        tl_total = tl_measured * scale
        best = timings.best(f"detect_{n}")
        speedup = tl_total / best
        target = (targets or {}).get(n)
        results["sets"][n] = {
            "patterns": list(names),
            "transformer_lens_s": tl_total,
            "transformer_lens_measured_s": tl_measured,
            "transformer_lens_calls_measured": sum(1 if name in _tl_names() else n_tl for name in names),
            "patternlang_s": best,
            "patternlang_runs_s": timings.runs[f"detect_{n}"],
            "speedup": speedup,
            "target": target,
            "max_abs_diff": worst,
            "tolerance": tolerance,
            "tl_seq_per_min": 60 * n_prompts / tl_total,
            "patternlang_seq_per_min": 60 * n_prompts / best,
        }
        goal = f" (target >= {target:.0f}x)" if target else ""
        scaled = f" ({tl_measured:.1f} s on {n_tl} prompts x{scale:g})" if scale != 1 else ""
        log(f"vs TransformerLens, {n} patterns: speed-up {speedup:.1f}x{goal}: detect_head {tl_total:.1f} s{scaled}, "
            f"patternlang.detect {best:.2f} s (best of {len(timings.runs[f'detect_{n}'])}); "
            f"max |diff| of mul scores {worst:.1e}")
    results["per_pattern_transformer_lens_measured_s"] = tl_seconds
    return results


def check_same_numbers(tl_scores: Callable[[str], torch.Tensor], ours: Any, names: Sequence[str],
                       tolerance: float) -> float:
    """The largest |difference| between our `mul` scores and TransformerLens' over every head
    of every pattern; stops the benchmark when it exceeds `tolerance`."""
    diffs = [float((ours.get(i, "mul") - tl_scores(name)).abs().max()) for i, name in enumerate(names)]
    worst = max(diffs)
    if not worst <= tolerance:
        bad = names[diffs.index(worst)]
        raise SystemExit(f"vs TransformerLens: scores differ for {bad!r} by {worst:.2e} (> {tolerance}); "
                         "no speed-up is reported for different numbers")
    return worst


def _tl_names() -> tuple[str, ...]:
    from patternlang.engine.tl_compat import TL_HEAD_NAMES

    return TL_HEAD_NAMES


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=64, help="about this many tokens per prompt")
    parser.add_argument("--patterns", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tl-prompts", type=int, default=16,
                        help="prompts TransformerLens is timed on (its time is scaled to --prompts)")
    parser.add_argument("--tiny", action="store_true", help="the hand-set tiny model, a few prompts (CI)")
    args = parser.parse_args(argv)
    if args.tiny:
        model = load_bench_model(tiny=True)
        return run(model, n_prompts=min(args.prompts, 6), n_tokens=min(args.tokens, 20),
                   pattern_counts=args.patterns, repeats=1, tl_prompts=3)
    model = load_bench_model()
    return run(model, n_prompts=args.prompts, n_tokens=args.tokens, pattern_counts=args.patterns, repeats=args.repeats,
               tl_prompts=args.tl_prompts, targets=TARGETS)


if __name__ == "__main__":
    main()
