"""The cost of the `prediction` family: `collect_stats` + scoring over SmolLM2-135M, 64 token-id prompts
x 64 tokens, every head, the default families without vs with `prediction` (alternating, best of 2).

    OMP_WAIT_POLICY=PASSIVE python bench/describe_prediction_cost.py
"""
import sys
import time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import as_token_lists, load_bench_model, token_prompts
from patternlang.discovery.families import bases_of, candidates_of, choose_families
from patternlang.discovery.search import _compile_bases, collect_stats
from patternlang.discovery.scoring import score_candidates
from patternlang.models.facts import model_facts

model = load_bench_model(tiny=False)
prompts = token_prompts(model, 64, 64)
tl = as_token_lists(model, prompts)
facts = model_facts(model)
n_off = max(t.numel() for t in tl)
layers = list(range(facts.n_layers))
runs = {}
for label, fams in (("without prediction", [f.name for f in choose_families(None) if f.name != "prediction"]),
                    ("with prediction", None)):
    bases = bases_of(choose_families(fams), frozenset({"predictions"}))
    cands = [c for b in bases for c in candidates_of(b, n_off - 1)]
    runs[label] = (bases, cands, _compile_bases(bases), {b.cond: i for i, b in enumerate(bases)})
best = {}
for r in range(2):
    for label, (bases, cands, compiled, index) in runs.items():
        t0 = time.perf_counter()
        stats = collect_stats(model, prompts, tl, list(range(64)), layers, bases, compiled, n_off, batch_size=16)
        score_candidates(stats, cands, index)
        dt = time.perf_counter() - t0
        best[label] = min(best.get(label, 1e9), dt)
        print(f"round {r} {label}: {len(bases)} bases, {len(cands)} candidates, {dt:.2f} s", flush=True)
print(best, f"ratio {best['with prediction'] / best['without prediction']:.3f}")
