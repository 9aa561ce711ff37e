"""The scoring engine: run a model once per batch and score every head against every pattern.

    from patternlang.engine import detect
    scores = detect(model, prompts, ["previous_token_head", "induction_head"], measures=("mass", "tv"))
    scores.top("induction_head")

Modules, one per stage: `batching` (tokenize, bucket, pad), `detection` (detection
tensors per batch), `forward` (the hooked, early-stopped forward pass), `measures`
(pure functions), `accumulate` (running sums), `detect` (the recipe), `scores`
(the result), `tl_compat` (TransformerLens' `detect_head`, batched).
"""

from patternlang.engine.detect import detect
from patternlang.engine.measures import MEASURE_DOCS, MEASURES, Exclusions, Measure
from patternlang.engine.scores import Scores
from patternlang.engine.tl_compat import detect_head
from patternlang.heads import head_label, parse_heads

__all__ = ["detect", "detect_head", "Scores", "MEASURES", "MEASURE_DOCS", "Measure", "Exclusions",
           "head_label", "parse_heads"]
