"""What a model-aware pattern costs: 16 patterns of which one reads the model's predictions.

    python bench/model_aware.py [--prompts 64] [--tokens 64] [--repeats 3] [--tiny]

Prompts: `--prompts` token-id prompts of `--tokens` tokens (BOS + random tokens repeated).
Contenders, run in turn (`--repeats` rounds after a warm-up), best time each:

- plain forward: `model(tokens, return_type=None)` over the batches the model-aware `detect`
  makes (it plans smaller batches: it holds the needed layers' attention until the logits);
- `detect`, 16 attention-only patterns (today's single stopped pass);
- `detect`, 15 of them and `attend k where tok[k] == pred[q]` (one pass to the logits per batch,
  scoring deferred to after it: engine/model_outputs.py);
- the same with the `copying` measure as well (the pass also keeps every layer's `hook_z`).

The target (issue 9): the model-aware run <= 2.0x the plain forward pass over the same batches.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternate, as_token_lists, load_bench_model, model_label, pattern_set, plain_forward, token_prompts

TARGET = 2.0
MODEL_AWARE = "attend k where tok[k] == pred[q] and k < q"


def deferred_plan(model: Any, token_lists: Sequence[Any], patterns: Sequence[str], measures: Sequence[str]):
    """The batches `detect` makes for a model-aware run (the same functions, the same free memory)."""
    from patternlang.engine.batching import auto_budget, bytes_per_prompt_estimate, plan_batches
    from patternlang.engine.model_outputs import extra_bytes_per_prompt, outputs_plan
    from patternlang.engine.pattern_tensors import resolve_patterns
    from patternlang.models.facts import model_facts

    facts = model_facts(model)
    base = bytes_per_prompt_estimate(model, len(patterns), len(measures))
    extra = extra_bytes_per_prompt(model, outputs_plan(resolve_patterns(list(patterns)), measures, facts.n_layers),
                                   facts.n_layers)
    return plan_batches([t.numel() for t in token_lists], None, bytes_per_prompt=lambda n: base(n) + extra(n),
                        memory_budget=auto_budget(facts.device))


def run(model: Any, *, n_prompts: int = 64, n_tokens: int = 64, repeats: int = 3, log=print) -> dict[str, Any]:
    from patternlang.engine import detect

    prompts = token_prompts(model, n_prompts, n_tokens)
    token_lists = as_token_lists(model, prompts)
    plain = pattern_set(16)
    aware = plain[:15] + [MODEL_AWARE]
    plan = deferred_plan(model, token_lists, aware, ["mass", "copying"])
    log(f"model_aware: {model_label(model)}, {n_prompts} prompts x {n_tokens} tokens, "
        f"batches of {', '.join(str(len(b)) for b in plan)}")
    batch_size = max(len(b) for b in plan)  # every contender on the same batches
    contenders = {
        "plain forward": lambda: plain_forward(model, token_lists, plan),
        "detect 16 plain": lambda: detect(model, prompts, plain, batch_size=batch_size, progress=False),
        "detect 15 + 1 model-aware": lambda: detect(model, prompts, aware, batch_size=batch_size, progress=False),
        "detect 15 + 1 model-aware, mass + copying": lambda: detect(
            model, prompts, aware, measures=["mass", "copying"], batch_size=batch_size, progress=False),
    }
    detect(model, prompts[:2], aware, measures=["mass", "copying"], progress=False)  # warm-up
    timings = alternate(contenders, repeats, warmup=False)
    forward = timings.best("plain forward")
    results: dict[str, Any] = {"model": model_label(model), "n_prompts": n_prompts, "n_tokens": n_tokens,
                               "batches": [len(b) for b in plan], "plain_forward_s": forward, "runs": timings.runs,
                               "target": TARGET, "ratios": {}}
    for name in contenders:
        best = timings.best(name)
        results["ratios"][name] = best / forward
        log(f"model_aware: {name}: {best:.2f} s, {best / forward:.2f}x the plain forward pass")
    met = results["ratios"]["detect 15 + 1 model-aware"] <= TARGET
    log(f"model_aware: target <= {TARGET}x: {'met' if met else 'NOT met'}")
    return results


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="the hand-set tiny model, a few prompts (CI)")
    args = parser.parse_args(argv)
    if args.tiny:
        return run(load_bench_model(tiny=True), n_prompts=8, n_tokens=16, repeats=1)
    return run(load_bench_model(), n_prompts=args.prompts, n_tokens=args.tokens, repeats=args.repeats)


if __name__ == "__main__":
    main()
