"""What `detect` costs over the model's own forward pass, on the same batches.

    python bench/overhead.py [--prompts 64] [--tokens 64] [--patterns 4 64] [--repeats 3] [--measure mass] [--tiny]

Prompts: `--prompts` token-id prompts of exactly `--tokens` tokens (BOS + random tokens
repeated). Contenders, run in turn (`--repeats` rounds after a warm-up), best time each:

- plain forward: `model(tokens, return_type=None)` over the batches `detect` makes, no hooks:
  the floor the issue sets (targets: detect <= 1.2x with 4 patterns, <= 1.5x with 64);
- stopped forward: the pass `detect` itself runs (hooked on every layer's attention pattern,
  stopped after the last layer's, so no unembedding), with nothing done in the hooks;
- `detect` with N patterns.

detect / plain forward is the issue's ratio; detect / stopped forward is the cost of the
scoring itself (detection tensors and reductions) over the model's own work.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    alternate,
    as_token_lists,
    detect_plan,
    load_bench_model,
    model_label,
    pattern_set,
    plain_forward,
    stopped_forward,
    token_prompts,
)

TARGETS = {4: 1.2, 64: 1.5}  # detect / plain forward, the targets


def run(model: Any, *, n_prompts: int = 64, n_tokens: int = 64, pattern_counts: Sequence[int] = (4, 64),
        repeats: int = 3, measure: str = "mass", targets: dict[int, float] | None = None,
        log=print) -> dict[str, Any]:
    from patternlang.engine import detect

    prompts = token_prompts(model, n_prompts, n_tokens)
    token_lists = as_token_lists(model, prompts)
    sets = {n: pattern_set(n) for n in sorted(pattern_counts)}
    plans = {n: detect_plan(model, token_lists, n, 1) for n in sets}
    plan = plans[min(sets)]
    if any(p != plan for p in plans.values()):
        # Different pattern counts chose different batches: compare each with its own.
        log("overhead: note: the automatic batch sizes differ between pattern counts; "
            "each detect is compared with forward passes over its own batches")
    log(f"overhead: {model_label(model)}, {n_prompts} prompts x {n_tokens} tokens, measure {measure}, "
        f"batches of {', '.join(str(len(b)) for b in plan)}")

    contenders = {"plain forward": lambda: plain_forward(model, token_lists, plan),
                  "stopped forward": lambda: stopped_forward(model, token_lists, plan)}
    for n, names in sets.items():
        if plans[n] != plan:
            contenders[f"plain forward ({n})"] = lambda p=plans[n]: plain_forward(model, token_lists, p)
        contenders[f"detect {n}"] = lambda names=names: detect(model, prompts, names, measures=measure, progress=False)
    # Warm-up on a few prompts (patterns compiled, code paths touched) instead of a full round.
    small = prompts[:2]
    for names in sets.values():
        detect(model, small, names, measures=measure, progress=False)
    plain_forward(model, token_lists[:2], [[0, 1]])
    timings = alternate(contenders, repeats, warmup=False)

    forward = timings.best("plain forward")
    stopped = timings.best("stopped forward")
    results: dict[str, Any] = {
        "model": model_label(model), "n_prompts": n_prompts, "n_tokens": n_tokens, "measure": measure, "repeats": repeats,
        "batches": [len(b) for b in plan], "plain_forward_s": forward, "stopped_forward_s": stopped,
        "runs": timings.runs, "sets": {},
    }
    log(f"overhead: plain forward {forward:.2f} s, stopped forward {stopped:.2f} s "
        f"(best of {len(timings.runs['plain forward'])})")
    for n in sets:
        floor = timings.best(f"plain forward ({n})") if f"plain forward ({n})" in timings.runs else forward
        best = timings.best(f"detect {n}")
        ratio = best / floor
        target = (targets or {}).get(n)
        goal = f" (target <= {target}x)" if target else ""
        results["sets"][n] = {"detect_s": best, "ratio_plain": ratio, "ratio_stopped": best / stopped,
                              "target": target, "seq_per_min": 60 * n_prompts / best}
        log(f"overhead, {n} patterns: detect {best:.2f} s; ratio detect/plain forward {ratio:.2f}x{goal}; "
            f"ratio detect/stopped forward {best / stopped:.2f}x")
    return results


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--patterns", type=int, nargs="+", default=[4, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measure", default="mass")
    parser.add_argument("--tiny", action="store_true", help="the hand-set tiny model, a few prompts (CI)")
    args = parser.parse_args(argv)
    if args.tiny:
        return run(load_bench_model(tiny=True), n_prompts=8, n_tokens=16, pattern_counts=args.patterns, repeats=1,
                   measure=args.measure)
    return run(load_bench_model(), n_prompts=args.prompts, n_tokens=args.tokens, pattern_counts=args.patterns,
               repeats=args.repeats, measure=args.measure, targets=TARGETS)


if __name__ == "__main__":
    main()
