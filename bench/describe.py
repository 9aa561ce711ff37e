"""What `describe`'s family scoring costs beside the model's own forward pass, on the same prompts.

    python bench/describe.py [--prompts 64] [--tokens 64] [--repeats 1] [--tiny] [--json bench/results_describe.json]

Prompts: `--prompts` token-id prompts of exactly `--tokens` tokens (BOS + random tokens repeated).
Contenders, run in turn (`--repeats` rounds after a warm-up), best time each:

- plain forward: `model(tokens, return_type=None)` over the same batches, no hooks;
- family scoring: every default family's candidates (at least 10^4 rules) for every head of every
  layer: the hooked pass that reads each layer's attention, the base matrices compiled by the
  normal compiler, the sufficient statistics (`describe.stats`) and every candidate's scores read
  off them (`describe.scoring`): what `describe` does on one half of its prompts.

The issue's target: family scoring <= 3x the plain forward pass.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    TargetRow,
    alternate,
    as_token_lists,
    load_bench_model,
    model_label,
    plain_forward,
    runs_phrase,
    standalone,
    table,
    token_prompts,
)

TARGET = 3.0
FULL = {"n_prompts": 64, "n_tokens": 64, "repeats": 1}
TINY = {"n_prompts": 8, "n_tokens": 16, "repeats": 1}
BATCH = 16


def run(*, tiny: bool, log=print, repeats: int | None = None, n_prompts: int | None = None,
        n_tokens: int | None = None) -> dict[str, Any]:
    """Time the plain forward pass and the family scoring of every head, in turn."""
    from patternlang.discovery.families import bases_of, candidates_of, choose_families
    from patternlang.discovery.search import _compile_bases, collect_stats
    from patternlang.discovery.scoring import score_candidates
    from patternlang.engine.batching import plan_batches
    from patternlang.models.facts import model_facts

    sizes = TINY if tiny else FULL
    model = load_bench_model(tiny=tiny)
    n_prompts = n_prompts or sizes["n_prompts"]
    n_tokens = n_tokens or sizes["n_tokens"]
    repeats = repeats or sizes["repeats"]
    prompts = token_prompts(model, n_prompts, n_tokens)
    token_lists = as_token_lists(model, prompts)
    facts = model_facts(model)
    indices = list(range(len(prompts)))
    plan = [[indices[i] for i in group] for group in plan_batches([t.numel() for t in token_lists], BATCH)]
    n_offsets = max(t.numel() for t in token_lists)
    bases = bases_of(choose_families(None), frozenset({"predictions"} if hasattr(model, "W_U") else ()))
    candidates = [c for base in bases for c in candidates_of(base, n_offsets - 1)]
    base_index = {base.cond: i for i, base in enumerate(bases)}
    compiled = _compile_bases(bases)
    layers = list(range(facts.n_layers))
    log(f"describe: {model_label(model)}, {n_prompts} prompts x {n_tokens} tokens, {len(bases)} bases, "
        f"{len(candidates):,} candidates, {facts.n_layers * facts.n_heads} heads, batches of {BATCH}")

    def family_scoring():
        stats = collect_stats(model, prompts, token_lists, indices, layers, bases, compiled, n_offsets,
                              batch_size=BATCH)
        return score_candidates(stats, candidates, base_index)

    timings = alternate({"plain forward": lambda: plain_forward(model, token_lists, plan),
                         "family scoring": family_scoring}, repeats)
    best = {name: timings.best(name) for name in ("plain forward", "family scoring")}
    ratio = best["family scoring"] / best["plain forward"]
    log(f"describe: plain forward {best['plain forward']:.2f} s, family scoring {best['family scoring']:.2f} s, "
        f"ratio {ratio:.2f}")
    return {"model": model_label(model), "n_prompts": n_prompts, "n_tokens": n_tokens, "repeats": repeats,
            "n_bases": len(bases), "n_candidates": len(candidates), "n_heads": facts.n_layers * facts.n_heads,
            "seconds": best, "ratio": ratio, "target": None if tiny else TARGET, "tiny": tiny}


def render(results: dict[str, Any]) -> str:
    s = results["seconds"]
    rows = [["plain forward", f"{s['plain forward']:.2f}", "1.00"],
            ["family scoring", f"{s['family scoring']:.2f}", f"{results['ratio']:.2f}"]]
    return "\n".join([
        "## describe: family scoring vs a plain forward pass", "",
        f"{results['model']}, {results['n_prompts']} prompts x {results['n_tokens']} tokens, "
        f"{results['n_candidates']:,} candidate rules ({results['n_bases']} bases) for {results['n_heads']} heads; "
        f"{runs_phrase(results['repeats'])}.", "",
        table(["contender", "seconds", "x plain forward"], rows), ""])


def target_rows(results: dict[str, Any]) -> list[TargetRow]:
    if results.get("target") is None:
        return []
    return [(f"describe: 10^4 candidates, every head <= {results['target']:g}x a plain forward",
             f"{results['ratio']:.2f}x ({results['n_candidates']:,} candidates)", results["ratio"] <= results["target"])]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    def options(parser) -> None:
        parser.add_argument("--prompts", dest="n_prompts", type=int, default=None)
        parser.add_argument("--tokens", dest="n_tokens", type=int, default=None)

    return standalone("describe", run, argv, description=__doc__.splitlines()[0], add_arguments=options)


if __name__ == "__main__":
    main()
