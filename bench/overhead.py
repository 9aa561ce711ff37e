"""What `detect` costs over the model's own forward pass, on the same batches.

    python bench/overhead.py [--prompts 64] [--tokens 64] [--patterns 4 64] [--repeats 3] [--measure mass] [--tiny]
                             [--json bench/results_overhead.json]

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

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    TargetRow,
    alternate,
    as_token_lists,
    detect_plan,
    load_bench_model,
    model_label,
    pattern_set,
    plain_forward,
    runs_phrase,
    standalone,
    stopped_forward,
    table,
    token_prompts,
)

TARGETS = {4: 1.2, 64: 1.5}  # detect / plain forward, the targets
FULL = {"n_prompts": 64, "n_tokens": 64, "pattern_counts": (4, 64), "repeats": 3}
TINY = {"n_prompts": 8, "n_tokens": 16, "pattern_counts": (4, 64), "repeats": 1}


def run(*, tiny: bool, log=print, repeats: int | None = None, n_prompts: int | None = None,
        n_tokens: int | None = None, patterns: Sequence[int] | None = None, measure: str = "mass") -> dict[str, Any]:
    """Time the plain and the stopped forward pass and `detect` over the same batches, in turn."""
    from patternlang.engine import detect

    sizes = TINY if tiny else FULL
    model = load_bench_model(tiny=tiny)
    n_prompts = n_prompts or sizes["n_prompts"]
    n_tokens = n_tokens or sizes["n_tokens"]
    repeats = repeats or sizes["repeats"]
    targets = {} if tiny else TARGETS
    prompts = token_prompts(model, n_prompts, n_tokens)
    token_lists = as_token_lists(model, prompts)
    sets = {n: pattern_set(n) for n in sorted(patterns or sizes["pattern_counts"])}
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
            contenders[f"stopped forward ({n})"] = lambda p=plans[n]: stopped_forward(model, token_lists, p)
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
    log(f"overhead: plain forward {forward:.2f} s, stopped forward {stopped:.2f} s ({runs_phrase(repeats)})")
    for n in sets:
        own = f" ({n})" if f"plain forward ({n})" in timings.runs else ""
        floor, stopped_floor = timings.best(f"plain forward{own}"), timings.best(f"stopped forward{own}")
        best = timings.best(f"detect {n}")
        ratio = best / floor
        target = targets.get(n)
        goal = f" (target <= {target}x)" if target else ""
        results["sets"][n] = {"detect_s": best, "ratio_plain": ratio, "ratio_stopped": best / stopped_floor,
                              "target": target, "seq_per_min": 60 * n_prompts / best, "own_batches": bool(own)}
        log(f"overhead, {n} patterns: detect {best:.2f} s; ratio detect/plain forward {ratio:.2f}x{goal}; "
            f"ratio detect/stopped forward {best / stopped_floor:.2f}x")
    return results


def target_rows(results: dict[str, Any]) -> list[TargetRow]:
    """The issue's ratio to the plain forward pass, with the ratio to the stopped one beside it."""
    rows = []
    for n, s in results["sets"].items():
        if s.get("target"):
            rows.append((f"`detect` <= {s['target']}x a plain forward pass, {n} patterns, "
                         f"{results['n_prompts']} prompts x {results['n_tokens']} tokens",
                         f"{s['ratio_plain']:.2f}x the plain pass; {s['ratio_stopped']:.2f}x the stopped pass",
                         s["ratio_plain"] <= s["target"]))
    return rows


def render(results: dict[str, Any]) -> str:
    ov = results
    method = (
        f"{ov['n_prompts']} prompts of {ov['n_tokens']} token ids (BOS + random tokens repeated), measure "
        f"`{ov['measure']}`, the same batches for every run ({', '.join(str(b) for b in ov['batches'])} "
        f"prompts), {runs_phrase(ov['repeats'])} of each, alternating. *Plain forward*: "
        "`model(tokens, return_type=None)`, no hooks: the floor the issue sets. *Stopped forward*: the pass "
        "`detect` runs, hooked on every layer's `hook_pattern` and stopped right after the last one (so "
        "without the last MLP and the unembedding), with empty hooks. `detect` can beat the plain forward pass "
        "because it stops early; the ratio to the stopped forward is the price of the scoring itself.")
    rows = [["plain forward (the floor)", f"{ov['plain_forward_s']:.2f} s", "1.00x", ""],
            ["stopped forward (detect's own pass, empty hooks)", f"{ov['stopped_forward_s']:.2f} s",
             f"{ov['stopped_forward_s'] / ov['plain_forward_s']:.2f}x", "1.00x"]]
    for n, s in ov["sets"].items():
        own = " (its own batches)" if s.get("own_batches") else ""
        rows.append([f"`detect`, {n} patterns{own}", f"{s['detect_s']:.2f} s", f"**{s['ratio_plain']:.2f}x**",
                     f"{s['ratio_stopped']:.2f}x"])
    return "\n".join(["## Overhead over the model's own forward pass", "", f"Model: {ov['model']}.", "", method, "",
                      table(["run", "time", "ratio to the plain forward", "ratio to the stopped forward"], rows), ""])


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    def options(parser) -> None:
        parser.add_argument("--prompts", dest="n_prompts", type=int, default=None)
        parser.add_argument("--tokens", dest="n_tokens", type=int, default=None)
        parser.add_argument("--patterns", type=int, nargs="+", default=None)
        parser.add_argument("--measure", default="mass")

    return standalone("overhead", run, argv, __doc__.split("\n\n")[0], options)


if __name__ == "__main__":
    main()
