"""Does a head matter? Ablation, activation patching and attribution patching on `hook_z`.

    from patternlang.effects import ablate, attribute, patch
    effects = attribute(model, get_probe("ioi"), metric="logit_diff", positions="END", top_k=20)
    effects["L23H1"].estimate, effects["L23H1"].mean, effects["L23H1"].ci, effects.rank_correlation

Modules: `metrics` (the metric registry: `loss`, `induction_loss`, `logit_diff(A, B)`,
`retrieval`, user metrics; each names its probe and default positions), `effect_inputs` (prompts,
token labels, batches), `passes` (the clean, the gradient and the intervened forward passes;
several interventions per pass), `interventions` (`ablate`, `patch`, `attribute`, random
baselines), `effect_results` (`Effects`), `scored_effects` (effects beside pattern scores:
`attach_effects`), `atlas` (effects in an atlas document: which metric on which probe, measured
and stored), `cli` (`patternlang effects`, `patternlang ablate`, `detect --effects`).

Members load on first use, so that registering the commands (`cli.register`) imports no torch.
"""

from patternlang.lazy_torch import lazy_members

_LAZY = {
    "METHODS": "patternlang.effects.interventions",
    "ablate": "patternlang.effects.interventions",
    "attribute": "patternlang.effects.interventions",
    "patch": "patternlang.effects.interventions",
    "METRICS": "patternlang.effects.metrics",
    "Metric": "patternlang.effects.metrics",
    "MetricBatch": "patternlang.effects.metrics",
    "register_metric": "patternlang.effects.metrics",
    "resolve_metric": "patternlang.effects.metrics",
    "Effect": "patternlang.effects.effect_results",
    "Effects": "patternlang.effects.effect_results",
    "RandomBaseline": "patternlang.effects.effect_results",
    "rank_correlation": "patternlang.effects.effect_results",
    "attach_effects": "patternlang.effects.scored_effects",
}


__getattr__ = lazy_members(__name__, _LAZY)


__all__ = sorted(_LAZY)
