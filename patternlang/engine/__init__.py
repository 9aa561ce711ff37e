"""The scoring engine: run a model once per batch and score every head against every pattern.

    from patternlang.engine import detect
    scores = detect(model, prompts, ["previous_token_head", "induction_head"], measures=("mass", "tv"))
    scores.top("induction_head")

Modules, one per stage: `batching` (tokenize, bucket, pad), `pattern_tensors` (the
patterns as the engine sees them, `Detector`, and their detection tensors per batch),
`forward` (the hooked, early-stopped forward pass), `measures` (the measure registry),
`accumulate` (running sums), `options` (DetectOptions), `plan` (RunPlan, built once), `readers`
(AttentionReader strategies, Intervention), `inputs`, `run` (the loop), `detection` (the recipe),
`scores` (the result), `explanation` (one head on one prompt), `survey`, `tl_compat`
(TransformerLens' `detect_head`, batched).
"""

from patternlang.lazy_torch import lazy_members

# Imported on first use: `patternlang.engine.measures` (the measure registry, read by the
# checker) must not pull in the model loaders that `detect` needs.
_LAZY = {
    "detect": "patternlang.engine.detection",
    "detect_with": "patternlang.engine.detection",
    "DetectOptions": "patternlang.engine.options",
    "RunPlan": "patternlang.engine.plan",
    "AttentionReader": "patternlang.engine.readers",
    "Intervention": "patternlang.engine.readers",
    "HookedModel": "patternlang.engine.hooked",
    "RunSettings": "patternlang.engine.scores",
    "detect_head": "patternlang.engine.tl_compat",
    "Scores": "patternlang.engine.scores",
    "head_label": "patternlang.heads",
    "parse_heads": "patternlang.heads",
    "MEASURES": "patternlang.engine.measures",
    "MEASURE_DOCS": "patternlang.engine.measures",
    "Measure": "patternlang.engine.measures",
    "Exclusions": "patternlang.engine.measures",
}


__getattr__ = lazy_members(__name__, _LAZY)


__all__ = ["detect", "detect_with", "DetectOptions", "RunPlan", "AttentionReader", "Intervention", "HookedModel",
           "RunSettings", "detect_head", "Scores", "MEASURES", "MEASURE_DOCS", "Measure", "Exclusions",
           "head_label", "parse_heads"]
