"""What a model-aware pattern costs: 16 patterns of which one reads the model's predictions.

    python bench/model_aware.py [--tiny] [--repeats 3] [--prompts 64] [--tokens 64] [--json PATH]

Prompts: `--prompts` token-id prompts of `--tokens` tokens (BOS + random tokens repeated).
Contenders, run in turn (`--repeats` rounds after a warm-up), best time each, all over the
batches the model-aware `detect` makes (it plans smaller ones: it holds the needed layers'
attention until the logits):

- plain forward: `model(tokens, return_type=None)`, no hooks (the floor the target is set on);
- stopped forward: the pass an attention-only `detect` runs (hooked on `hook_pattern`, stopped
  after the last layer's attention), with empty hooks;
- `detect`, 16 attention-only patterns (the stopped pass, scoring included);
- `detect`, 15 of them and `attend k where tok[k] == pred[q] and k < q` (one pass to the logits
  per batch, scoring deferred to after it: engine/model_outputs.py);
- the same with the `copying` measure as well (the pass also keeps every layer's `hook_z`).

The target (issue 9): the model-aware run <= 2.0x the plain forward pass over the same batches.
A module of the benchmark protocol (bench/common.py): `run`, `render`, `target_rows`; standalone
it writes bench/results_model_aware.json.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    alternate,
    as_token_lists,
    load_bench_model,
    model_label,
    pattern_set,
    plain_forward,
    standalone,
    stopped_forward,
    table,
    token_prompts,
)

TARGET = 2.0
MODEL_AWARE = "attend k where tok[k] == pred[q] and k < q"
FULL = {"n_prompts": 64, "n_tokens": 64, "repeats": 3}
TINY = {"n_prompts": 8, "n_tokens": 16, "repeats": 1}
AWARE = "detect 15 + 1 model-aware"
CONTENDERS = ("plain forward", "stopped forward", "detect 16 plain", AWARE, f"{AWARE}, mass + copying")


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


def run(*, tiny: bool, log=print, repeats: int | None = None, n_prompts: int | None = None,
        n_tokens: int | None = None) -> dict[str, Any]:
    """Time the plain and stopped passes and the three `detect` runs over the same batches, in turn."""
    from patternlang.engine import detect

    sizes = TINY if tiny else FULL
    model = load_bench_model(tiny=tiny)
    n_prompts = n_prompts or sizes["n_prompts"]
    n_tokens = n_tokens or sizes["n_tokens"]
    repeats = repeats or sizes["repeats"]
    prompts = token_prompts(model, n_prompts, n_tokens)
    token_lists = as_token_lists(model, prompts)
    plain = pattern_set(16)
    aware = plain[:15] + [MODEL_AWARE]
    plan = deferred_plan(model, token_lists, aware, ["mass", "copying"])
    batch_size = max(len(b) for b in plan)  # every contender on the same batches
    log(f"model_aware: {model_label(model)}, {n_prompts} prompts x {n_tokens} tokens, "
        f"batches of {', '.join(str(len(b)) for b in plan)}")
    contenders = {
        "plain forward": lambda: plain_forward(model, token_lists, plan),
        "stopped forward": lambda: stopped_forward(model, token_lists, plan),
        "detect 16 plain": lambda: detect(model, prompts, plain, batch_size=batch_size, progress=False),
        AWARE: lambda: detect(model, prompts, aware, batch_size=batch_size, progress=False),
        f"{AWARE}, mass + copying": lambda: detect(model, prompts, aware, measures=["mass", "copying"],
                                                    batch_size=batch_size, progress=False),
    }
    # Warm-up on a few prompts (patterns compiled, code paths touched) instead of a full round.
    detect(model, prompts[:2], plain, progress=False)
    detect(model, prompts[:2], aware, measures=["mass", "copying"], progress=False)
    timings = alternate(contenders, repeats, warmup=False)
    forward, stopped = timings.best("plain forward"), timings.best("stopped forward")
    results: dict[str, Any] = {
        "model": model_label(model), "tiny": tiny, "n_prompts": n_prompts, "n_tokens": n_tokens, "repeats": repeats,
        "batches": [len(b) for b in plan], "model_aware_rule": MODEL_AWARE, "patterns": aware,
        "target": None if tiny else TARGET, "runs": timings.runs, "best_s": {}, "ratio_plain": {}, "ratio_stopped": {},
    }
    for name in CONTENDERS:
        best = timings.best(name)
        results["best_s"][name] = best
        results["ratio_plain"][name] = best / forward
        results["ratio_stopped"][name] = best / stopped
        log(f"model_aware: {name}: {best:.2f} s, {best / forward:.2f}x the plain forward pass, "
            f"{best / stopped:.2f}x the stopped one")
    if results["target"] is not None:
        met = results["ratio_plain"][AWARE] <= TARGET
        log(f"model_aware: target <= {TARGET}x the plain forward pass: {'met' if met else 'NOT met'}")
    return results


def target_rows(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """Issue 9's target: 16 patterns, one model-aware, <= 2.0x a plain forward pass (none for --tiny)."""
    if results.get("target") is None:
        return []
    ratio, stopped = results["ratio_plain"][AWARE], results["ratio_stopped"][AWARE]
    return [(f"16 patterns of which one reads the model's predictions <= {results['target']}x a plain forward "
             f"pass, {results['n_prompts']} prompts x {results['n_tokens']} tokens",
             f"{ratio:.2f}x the plain pass; {stopped:.2f}x the stopped pass", ratio <= results["target"])]


def render(results: dict[str, Any]) -> str:
    """The markdown section: the method, then every contender's best time and ratios."""
    r = results
    method = (
        f"{r['n_prompts']} prompts of {r['n_tokens']} token ids (BOS + random tokens repeated), the batches the "
        f"model-aware run plans ({', '.join(str(b) for b in r['batches'])} prompts) for every contender, best of "
        f"{r['repeats']} alternating run(s) each. The 16 patterns: the shipped attention-only ones and generated "
        f"rules; the model-aware run swaps the last for `{r['model_aware_rule']}`, which reads the model's "
        "predictions, so its pass runs to the logits with the needed layers' attention kept and scored after it "
        "(one pass per batch, not two). *Plain forward*: `model(tokens, return_type=None)`, no hooks, the floor "
        "the target is set on. *Stopped forward*: the pass an attention-only `detect` runs, stopped after the "
        "last layer's attention, with empty hooks. `copying` also keeps every layer's `hook_z` and computes each "
        "head's direct logit attribution on the attended tokens.")
    rows = []
    for name in CONTENDERS:
        bold = "**" if name == AWARE else ""
        rows.append([name, f"{r['best_s'][name]:.2f} s", f"{bold}{r['ratio_plain'][name]:.2f}x{bold}",
                     f"{r['ratio_stopped'][name]:.2f}x"])
    return "\n".join(["## Patterns that see the model", "", f"Model: {r['model']}.", "", method, "",
                      table(["run", "time", "ratio to the plain forward", "ratio to the stopped forward"], rows), ""])


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    def add_arguments(parser):
        parser.add_argument("--prompts", dest="n_prompts", type=int, default=None)
        parser.add_argument("--tokens", dest="n_tokens", type=int, default=None)

    results = standalone("model_aware", run, argv, description=__doc__.split("\n\n")[0], add_arguments=add_arguments)
    print(render(results))
    return results

if __name__ == "__main__":
    main()
