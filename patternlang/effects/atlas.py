"""Effects in an atlas document: which metrics on which probes (`plan_effects`), measured
(`gather_effects`, `attribute` on every head, the top K ablated exactly) and stored compact under
`doc["effects"][metric]` (`add_effects`), beside the document's pattern scores, so that a head's
verdict can say "attends like X, and matters for Y" (`engine/matters.py`; the head pages list
the effects, the model page maps them).

    doc["effects"]["logit_diff(IO, S1)"] = {"probe": "ioi", "prompts": ..., "kind": "attribution",
        "method": "zero", "positions": "END", "direction": "higher", "n_prompts": 32, "top_k": 5,
        "clean": 3.34, "rank_correlation": 0.97, "digest": ...,
        "heads": {"L23H3": {"estimate": -1.71, "ablation": -1.49, "ci": [-1.92, -1.07]}, ...}}

The default set (`--effects` alone, or `auto`): every metric the registry says belongs to a probe
(`effects/metrics.py`: `loss` on `natural`, `induction_loss` on `repeated_random`,
`logit_diff(IO, S1)` at `END` on `ioi`, `retrieval` on `needle`), each on its own probe, kept to
the probes the atlas already uses: `natural` always (the atlas's statistics are read on it), the
others when one of the document's patterns is scored on that probe.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from patternlang.atlas.document import STATS_PROBE, prompts_digest
from patternlang.effects.effect_results import Effects
from patternlang.effects.interventions import attribute
from patternlang.effects.metrics import Metric, probe_metrics, resolve_metric
from patternlang.errors import InputError
from patternlang.library import probe_argument
from patternlang.probes import make_probe
from patternlang.settings import ProbeSpec

DIGITS = 3
AUTO = "auto"
"""`--effects auto` (or `--effects` alone): the default set of metrics, each on its own probe."""
EFFECTS_TOP_K = 5
"""Heads ablated exactly per metric (the largest estimates); each costs about one forward pass."""
EFFECTS_PROMPTS = 32
"""Prompts per effects probe, at most (the probe's first ones): attribution costs about 1.8 forward
passes over them, and each exact ablation one more."""


def _round(value: Any) -> float | None:
    if value is None or not math.isfinite(float(value)):
        return None
    return round(float(value), DIGITS)


def document_effects(effects: Effects, *, probe: str | None = None, digest: str | None = None) -> dict[str, Any]:
    """The compact form of `effects` an atlas document keeps (`probe`: the probe's spec as the
    document names it; default: the prompts' own name)."""
    data = effects.to_dict()
    key = effects.exact_key
    heads = {label: {"estimate": _round(entry["estimate"]), "ablation": _round(entry[key]),
                     "ci": None if entry["ci"] is None else [_round(entry["ci"][0]), _round(entry["ci"][1])]}
             for label, entry in data["effects"].items()}
    found = {"probe": probe or data["settings"].get("prompts"), "prompts": data["settings"].get("prompts"),
             "kind": data["kind"], "method": data["method"], "positions": data["positions"],
             "direction": data["direction"], "n_prompts": data["n_prompts"], "top_k": data["top_k"],
             "clean": _round(data["clean"]["mean"]), "rank_correlation": _round(data["rank_correlation"]),
             "heads": heads}
    if digest is not None:
        found["digest"] = digest
    return found


def add_effects(doc: MutableMapping[str, Any], effects: Effects, *, probe: str | None = None,
                digest: str | None = None) -> MutableMapping[str, Any]:
    """Add `effects` to an atlas document of the same model shape (in place; returned)."""
    shape = effects.settings.get("shape")
    model = doc.get("model", {})
    if shape and isinstance(model, dict) and [model.get("n_layers"), model.get("n_heads")] != list(shape):
        raise InputError(f"the effects are of a {shape[0]} x {shape[1]} model, the atlas document's is "
                         f"{model.get('n_layers')} x {model.get('n_heads')}")
    doc.setdefault("effects", {})[effects.metric] = document_effects(effects, probe=probe, digest=digest)
    return doc


@dataclass(frozen=True)
class PlannedEffect:
    """One metric to measure: on `probe`, intervening at `positions` (None: every token)."""

    metric: Metric
    probe: ProbeSpec
    positions: str | None

    @property
    def label(self) -> str:
        return self.metric.label


def _is_auto(item: Any) -> bool:
    return isinstance(item, str) and item.strip().lower() == AUTO


def check_effects(requested: Sequence[str]) -> list[str]:
    """`--effects` as written, checked before any model loads: `auto` or metric names."""
    for item in requested:
        if not _is_auto(item):
            resolve_metric(item)
    return [item.strip() for item in requested]


def used_probes(doc: Mapping[str, Any]) -> dict[str, str]:
    """The probes the document already uses, by name -> its spec as the document writes it: each
    pattern's probe (the first pattern's spec of a name), and `natural` (the statistics' probe) always."""
    found: dict[str, str] = {}
    probes = doc.get("probes") or {}
    for entry in (doc.get("patterns") or {}).values():
        key = entry.get("probe") if isinstance(entry, Mapping) else None
        if isinstance(key, str) and key:
            name = (probes.get(key) or {}).get("name") or key.split("(")[0].strip()
            found.setdefault(name, key)
    found.setdefault(STATS_PROBE, STATS_PROBE)
    return found


def plan_effects(requested: Sequence[str | Metric], doc: Mapping[str, Any], *, probe: ProbeSpec | None = None,
                 effects_probe: ProbeSpec | None = None) -> tuple[list[PlannedEffect], list[str]]:
    """Which metrics on which probes, and a note for each default metric left out.

    `requested`: metric names (or `Metric`s) and/or `auto` (the default set, module docstring). A metric is
    measured on `effects_probe` when given, else on its own probe (as the document writes that
    probe when it uses it), else (a user metric without a probe) on `probe`, else `natural`."""
    used = used_probes(doc)
    chosen: dict[str, PlannedEffect] = {}
    notes: list[str] = []

    def spec_of(metric: Metric) -> ProbeSpec:
        if effects_probe is not None:
            return effects_probe
        if metric.probe:
            return probe_argument(used.get(metric.probe, metric.probe))
        return probe if probe is not None else ProbeSpec(STATS_PROBE, ())

    named = {resolve_metric(item).label for item in requested if not _is_auto(item)}
    for item in requested:
        if _is_auto(item):
            for metric in probe_metrics():
                if metric.label in named:
                    continue  # asked for by name: measured on its own probe, whatever the atlas uses
                if effects_probe is None and metric.probe not in used:
                    notes.append(f"{metric.label} (on {metric.probe}) left out: no pattern of this atlas is scored on "
                                 f"{metric.probe}; ask for it with --effects {metric.name}")
                    continue
                chosen.setdefault(metric.label, PlannedEffect(metric, spec_of(metric), metric.positions))
        else:
            metric = resolve_metric(item)
            chosen[metric.label] = PlannedEffect(metric, spec_of(metric), metric.positions)
    return list(chosen.values()), notes


def gather_effects(doc: MutableMapping[str, Any], model: Any, planned: Sequence[PlannedEffect], *,
                   n_prompts: int | None = EFFECTS_PROMPTS, top_k: int = EFFECTS_TOP_K,
                   batch_size: int | None = None, progress: bool = False,
                   say: Callable[[str], None] = lambda text: None) -> list[str]:
    """Measure each planned metric (`attribute`: every head estimated, the `top_k` largest ablated
    exactly, zero ablation) on at most `n_prompts` of its probe's prompts (its first ones), and add
    it to `doc`. A metric the document already holds with the same probe, prompts, method,
    positions and top K is kept as it is. Returns (and says) one line per metric: what was
    measured on what."""
    if n_prompts is not None and (isinstance(n_prompts, bool) or not isinstance(n_prompts, int) or n_prompts < 2):
        raise InputError(f"effects need at least 2 prompts per probe (an interval over prompts), not {n_prompts!r}")
    lines = []
    for plan in planned:
        prompts = make_probe(plan.probe.name, plan.probe.args, model)
        if n_prompts is not None and len(prompts) > n_prompts:
            prompts = prompts.take(n_prompts)
        digest = prompts_digest(prompts)
        old = (doc.get("effects") or {}).get(plan.label)
        if isinstance(old, Mapping) and old.get("digest") == digest and old.get("top_k") == top_k \
                and old.get("method") == "zero" and old.get("positions") == plan.positions:
            line = f"{plan.label} on {plan.probe}: kept (measured before on the same {len(prompts)} prompts)"
        else:
            started = time.perf_counter()
            found = attribute(model, prompts, metric=plan.metric, positions=plan.positions, top_k=top_k,
                              batch_size=batch_size, progress=progress)
            add_effects(doc, found, probe=str(plan.probe), digest=digest)
            where = f" at {plan.positions}" if plan.positions else ""
            line = (f"{plan.label} on {plan.probe}: {len(prompts)} prompts, every head estimated, the top "
                    f"{min(top_k, len(found.entries))} ablated exactly (zero{where}); clean {_show(found.clean_mean)}, "
                    f"{time.perf_counter() - started:.0f} s")
        say(line)
        lines.append(line)
    return lines


def _show(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "n/a"
