"""One model's atlas document: every head's scores against every pattern with their evidence,
simple per-head statistics, and a few drawn examples, as one JSON-ready dict (docs/atlas.md).

The recipe: `survey(..., per_prompt=True)` on the patterns the document lacks (each on its own
default probe) -> each (pattern, head)'s best and worst prompts -> each head's best pattern
(`ranking.py`) -> one forward pass per example prompt (all layers hooked) for the head's
attention beside the pattern's matrix -> one batched pass over natural text for the statistics.
The site (`site.py`) is rendered from these documents alone.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from patternlang.atlas.ranking import best_pattern, head_verdict
from patternlang.engine.batching import pad_batch, tokenize
from patternlang.engine.forward import run_attention_hooks
from patternlang.engine.measures import MEASURES
from patternlang.engine.pattern_tensors import resolve_patterns
from patternlang.engine.matters import matters_for
from patternlang.engine.verdicts import verdict_measures
from patternlang.atlas.schema import FORMAT, validate_document
from patternlang.errors import InputError
from patternlang.engine.inputs import _token_texts, model_pass, prompt_inputs
from patternlang.heads import head_label
from patternlang.library import load_patterns, shipped_patterns
from patternlang.models.facts import model_facts
from patternlang.probes import make_probe
from patternlang.prompts import Prompts
from patternlang.engine import survey as surveying  # the module: read at call time (tests spy on `survey`)
from patternlang.engine.survey import FALLBACK_PROBE, _distinct_names
from patternlang.version import __version__

EXAMPLE_TOKENS = 64
"""Examples are drawn on the first this-many tokens of a prompt (attention is causal, so the
crop is exactly what the head did on those tokens)."""
SAMPLE_TOKENS = 24  # a pattern's matrix on its sample prompt
BEST_PROMPTS, WORST_PROMPTS = 3, 2  # kept per (pattern, head)
EXAMPLE_PROMPTS = 4
"""Each head is drawn on the first this-many prompts of its best pattern's probe where it matches
most and least: every head shares these few prompts, so drawing them all costs one forward pass
per probe (a forward pass per head's own best prompt would cost as much as the survey)."""
PREVIEW_CHARACTERS = 100  # of each text prompt, for the lists of best and worst prompts
STATS_PROMPTS = 16  # natural-text prompts the statistics are averaged over
STATS_PROBE = "natural"
DIGITS = 3


def model_id(name: str) -> str:
    """A file-name-safe id for a model: `HuggingFaceTB/SmolLM2-135M-Instruct` -> `SmolLM2-135M-Instruct`."""
    tail = name.rstrip("/").split("/")[-1] or "model"
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in tail).strip("-.") or "model"
    return safe[:80]


def _round(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), DIGITS)


def _rounded_grid(grid: Any) -> Any:
    if isinstance(grid, dict):
        return {k: _rounded_grid(v) for k, v in grid.items()}
    if isinstance(grid, list):
        return [_rounded_grid(v) for v in grid]
    return _round(grid) if grid is not None else None


def _triangle(matrix: Tensor) -> list[int]:
    """The lower triangle of a `[n, n]` matrix row by row, as integers in thousandths."""
    n = matrix.shape[0]
    rows, cols = torch.tril_indices(n, n)
    values = torch.nan_to_num(matrix[rows, cols].float(), nan=0.0)
    return [int(v) for v in torch.round(values * 1000).tolist()]


def prompts_digest(prompts: Any) -> str:
    digest = hashlib.blake2b(digest_size=8)
    for item in (prompts.texts or prompts.tokens):
        digest.update(repr(item if isinstance(item, str) else list(item)).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def build_document(model: Any, patterns: Any = None, *, probe: Any = None, existing: Mapping[str, Any] | None = None,
                   progress: bool = False, batch_size: int | None = None) -> dict[str, Any]:
    """The atlas document of `model` over `patterns` (None: every shipped pattern), each scored on
    its own default probe (or every one on `probe`, a `ProbeSpec`).

    `existing`: a document of the same model to extend: patterns it holds with the same rule and
    probe are kept as they are, only the others are scored.

    >>> doc = build_document(load_model())            # doctest: +SKIP
    >>> doc["patterns"]["induction_head"]["scores"]["mass"][5][1]  # doctest: +SKIP
    0.912
    """
    facts = model_facts(model)
    chosen = _distinct_names(shipped_patterns() if patterns is None else _load(patterns))
    specs = {p.name: probe or p.settings.probe or FALLBACK_PROBE for p in chosen}
    doc = _start(facts, existing)
    probes = {str(spec): spec for spec in specs.values()}
    prompt_sets = {key: make_probe(spec.name, spec.args, model=model) for key, spec in probes.items()}
    for key, prompts in prompt_sets.items():
        _check_probe(doc, key, prompts)
    missing = [p for p in chosen if not _kept(doc, p, str(specs[p.name]))]
    if missing:
        # The verdicts read sink and offsink (the attention not parked on BOS) and the `require` measures.
        measures = tuple(dict.fromkeys([*doc["measures"], *verdict_measures(chosen)]))
        if set(measures) != set(doc["measures"]) and doc["patterns"]:
            # A new measure: the kept patterns lack it, so every pattern is scored again.
            doc["patterns"], missing = {}, chosen
        doc["measures"] = list(measures)
        doc["measure_bounds"] = {m: [_bound(MEASURES[m].bounds[0]), _bound(MEASURES[m].bounds[1])] for m in measures}
        scores = surveying.survey(model, missing, probe=probe, per_prompt=True, progress=progress,
                        measures=measures, batch_size=batch_size)
        _add_patterns(doc, scores, missing, specs, prompt_sets)
        for spec_key, prompts in prompt_sets.items():
            doc["probes"][spec_key] = {"name": probes[spec_key].name, "n_prompts": len(prompts),
                                       "kind": prompts.kind, "digest": prompts_digest(prompts),
                                       "description": prompts.description}
            if prompts.texts is not None:
                doc["probes"][spec_key]["previews"] = [text[:PREVIEW_CHARACTERS] for text in prompts.texts]
        # Patterns no longer chosen stay: a document only grows (delete the file to start over).
    add_verdicts(doc)
    _add_examples(doc, model, chosen, prompt_sets)
    if not doc.get("stats"):
        doc["stats"] = head_statistics(model, make_probe(STATS_PROBE, (), model=model), batch_size=batch_size)
    doc["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return doc


def _bound(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _load(patterns: Any) -> list:
    return load_patterns(patterns if isinstance(patterns, (list, tuple)) else [patterns])


def _start(facts: Any, existing: Mapping[str, Any] | None) -> dict[str, Any]:
    model = {"name": facts.name, "id": model_id(facts.name), "described": facts.described,
             "quantisation": facts.quantisation, "n_layers": facts.n_layers, "n_heads": facts.n_heads,
             "n_ctx": facts.n_ctx, "d_vocab": facts.d_vocab}
    if existing is not None:
        check_document(existing)
        _check_model(existing, facts)
        old = existing["model"]
        doc = {key: value for key, value in existing.items()}
        doc["model"] = {**old, **model}
        doc["patternlang"] = __version__
        return doc
    return {"format": FORMAT, "patternlang": __version__, "model": model, "measures": [], "measure_bounds": {},
            "probes": {}, "patterns": {}, "prompts": {}, "heads": {}, "stats": {}}


def check_same_model(doc: Mapping[str, Any], model: Any) -> None:
    """Raise `InputError` unless `doc` is the atlas document of `model` (name and shape)."""
    _check_model(doc, model_facts(model))


def _check_model(doc: Mapping[str, Any], facts: Any) -> None:
    old = doc["model"]
    if (old["name"], old["n_layers"], old["n_heads"]) != (facts.name, facts.n_layers, facts.n_heads):
        raise InputError(f"the atlas document is of {old['name']} ({old['n_layers']}x{old['n_heads']}), "
                         f"not of {facts.name} ({facts.n_layers}x{facts.n_heads})",
                         hint="write each model's atlas to its own document")


def _check_probe(doc: dict[str, Any], key: str, prompts: Any) -> None:
    """A probe whose prompts changed (another seed, another corpus) invalidates what was scored on it."""
    known = doc["probes"].get(key)
    if known is not None and known.get("digest") != prompts_digest(prompts):
        for name in [n for n, entry in doc["patterns"].items() if entry.get("probe") == key]:
            del doc["patterns"][name]
        doc["prompts"].pop(key, None)


def _kept(doc: Mapping[str, Any], pattern: Any, probe: str) -> bool:
    entry = doc["patterns"].get(pattern.name)
    return entry is not None and entry.get("rule") == pattern.rule and entry.get("probe") == probe


def _add_patterns(doc: dict[str, Any], scores: Any, patterns: Sequence[Any], specs: Mapping[str, Any],
                  prompt_sets: Mapping[str, Any]) -> None:
    data = scores.to_dict()["patterns"]
    exclusions = dict(scores.settings).get("exclusions", {})
    for pattern in patterns:
        name = pattern.name
        entry = dict(data[name])
        entry.pop("per_prompt", None)
        entry["scores"] = _rounded_grid(entry["scores"])
        if "ci95" in entry:
            entry["ci95"] = _rounded_grid(entry["ci95"])
        entry["baseline"] = {m: _round(v) if v is not None else None for m, v in entry.get("baseline", {}).items()}
        measure = scores.measure_of(name)
        spec_key = str(specs[name])
        per_prompt = scores.per_prompt[name][measure]  # [prompt, layer, head]
        best, worst = _ranked_prompts(per_prompt)
        if scores.ranks_lowest(name):  # `rank lowest`: a head's best prompts are its lowest scores
            best, worst = _ranked_prompts(-per_prompt)
            best, worst = _negated(best), _negated(worst)
        candidates = _rounded_grid(per_prompt[:EXAMPLE_PROMPTS].tolist())
        entry.update({
            "rule": pattern.rule, "doc": pattern.doc or "", "description": getattr(pattern, "description", ""),
            "probe": spec_key, "measure": measure, "exclusions": exclusions.get(name, {}),
            "file": _file_name(pattern), "best_prompts": best, "worst_prompts": worst,
            "example_scores": candidates,
            "rank": dict(scores.settings).get("pattern_ranks", {}).get(name, "highest"),
            "requires": list(dict(scores.settings).get("pattern_requires", {}).get(name, [])),
        })
        doc["patterns"][name] = entry


def add_verdicts(doc: dict[str, Any]) -> None:
    """Every head's verdict (`ranking.head_verdict`: label or None, runner-up, margin, sink share,
    evidence), under `heads[label]["verdict"]`; the sink share is data beside it, not a label.
    With effects in the document, each verdict's `matters_for` (`engine/matters.py`) too."""
    n_layers, n_heads = doc["model"]["n_layers"], doc["model"]["n_heads"]
    footing = None
    for layer in range(n_layers):
        for head in range(n_heads):
            found = head_verdict(doc, layer, head)
            matters = matters_for(doc.get("effects"), head_label(layer, head))
            found = found if matters is None else replace(found, matters_for=matters)
            footing = found.footing
            doc["heads"].setdefault(head_label(layer, head), {})["verdict"] = found.to_dict()
    doc["verdict_footing"] = footing


def _negated(table: list) -> list:
    return [[[[index, None if value is None else -value] for index, value in cell] for cell in row] for row in table]


def _file_name(pattern: Any) -> str | None:
    filename = getattr(pattern, "filename", None)
    return str(filename).replace("\\", "/").split("/")[-1] if filename else None


def _ranked_prompts(per_prompt: Tensor) -> tuple[list, list]:
    """Per head (`[layer][head]`), its best and worst prompts as `[[index, score], ...]`;
    prompts without target rows (NaN) never rank."""
    n_prompts, n_layers, n_heads = per_prompt.shape
    finite = ~torch.isnan(per_prompt)
    high = torch.where(finite, per_prompt, torch.tensor(-math.inf))
    low = torch.where(finite, per_prompt, torch.tensor(math.inf))
    k_best, k_worst = min(BEST_PROMPTS, n_prompts), min(WORST_PROMPTS, n_prompts)
    best_values, best_index = torch.topk(high, k_best, dim=0)
    worst_values, worst_index = torch.topk(low, k_worst, dim=0, largest=False)

    def table(values: Tensor, index: Tensor) -> list:
        return [[[[int(index[i, layer, head]), _round(float(values[i, layer, head]))]
                  for i in range(values.shape[0]) if math.isfinite(float(values[i, layer, head]))]
                 for head in range(n_heads)] for layer in range(n_layers)]

    return table(best_values, best_index), table(worst_values, worst_index)


# --------------------------------------------------------------------------- examples


def _add_examples(doc: dict[str, Any], model: Any, chosen: Sequence[Any], prompt_sets: Mapping[str, Any]) -> None:
    """For each head, its attention beside its best pattern's matrix on that pattern's best and
    worst prompts; only heads whose best pattern changed are drawn again. Each pattern's matrix on
    its sample prompt (the probe's first) too."""

    n_layers, n_heads = doc["model"]["n_layers"], doc["model"]["n_heads"]
    by_name = {p.name: p for p in chosen}
    wanted: dict[tuple[str, int], dict[str, Any]] = {}  # (probe, prompt) -> what to draw on it

    def want(probe_key: str, index: int) -> dict[str, Any]:
        return wanted.setdefault((probe_key, index), {"heads": [], "patterns": set()})

    for name, entry in doc["patterns"].items():
        if "sample" not in entry and name in by_name and entry["probe"] in prompt_sets:
            want(entry["probe"], 0)["patterns"].add(name)
    plans = {}
    for layer in range(n_layers):
        for head in range(n_heads):
            label = head_label(layer, head)
            best = best_pattern(doc, layer, head)
            current = doc["heads"].get(label, {})
            if best is None or current.get("pattern") == best or best not in by_name:
                continue
            entry = doc["patterns"][best]
            if entry["probe"] not in prompt_sets:
                continue
            scores = [(i, row[layer][head]) for i, row in enumerate(entry["example_scores"])
                      if row[layer][head] is not None]
            if not scores:
                continue
            top = max(scores, key=lambda pair: pair[1])
            bottom = min(scores, key=lambda pair: pair[1])
            chosen_prompts = [(top[0], "best")] + ([(bottom[0], "worst")] if bottom[0] != top[0] else [])
            plans[label] = (best, chosen_prompts)
            for index, _ in chosen_prompts:
                slot = want(entry["probe"], index)
                slot["heads"].append((layer, head))
                slot["patterns"].add(best)
    if not wanted:
        return
    keys = sorted(wanted)
    views = _draw_prompts(model, [list(prompt_sets[key[0]])[key[1]] for key in keys],
                          [resolve_patterns([by_name[name] for name in sorted(wanted[key]["patterns"])]) for key in keys],
                          [wanted[key]["heads"] for key in keys],
                          spans=[_labels_of(prompt_sets[key[0]], key[1]) for key in keys])
    views = dict(zip(keys, views))
    for (probe_key, index), view in views.items():
        doc["prompts"].setdefault(probe_key, {})[str(index)] = view["tokens"]
    for (probe_key, index), slot in wanted.items():
        view = views[(probe_key, index)]
        for name in slot["patterns"]:
            entry = doc["patterns"][name]
            if "sample" not in entry and entry["probe"] == probe_key and index == 0:
                matrix = view["matrices"][name]
                # The shortest crop that shows the pattern (a repeat starts half-way into its prompt).
                n = next((size for size in (SAMPLE_TOKENS, 40, EXAMPLE_TOKENS)
                          if bool((matrix[:size, :size] != 0).any())), SAMPLE_TOKENS)
                n = min(n, len(view["tokens"]))
                entry["sample"] = {"prompt": 0, "n_tokens": n, "matrix": _triangle(view["matrices"][name][:n, :n])}
    for label, (name, prompt_indices) in plans.items():
        entry = doc["patterns"][name]
        layer, head = int(label[1:].split("H")[0]), int(label.split("H")[1])
        examples = []
        for index, kind in prompt_indices:
            view = views[(entry["probe"], index)]
            score = _prompt_score(entry, layer, head, index)
            examples.append({"probe": entry["probe"], "prompt": index, "kind": kind, "score": score,
                             "n_tokens": len(view["tokens"]),
                             "attention": _triangle(view["attention"][(layer, head)]),
                             "matrix": _triangle(view["matrices"][name])})
        doc["heads"][label] = {**doc["heads"].get(label, {}), "pattern": name, "examples": examples}


def _prompt_score(entry: Mapping[str, Any], layer: int, head: int, index: int) -> float | None:
    return entry["example_scores"][index][layer][head]


def _labels_of(prompts: Any, index: int) -> Any:
    """Prompt `index`'s labelled spans: None for a set without labels, () for a prompt without any."""
    spans = getattr(prompts, "spans", None)
    return None if spans is None else (spans[index] or ())


def _draw_prompts(model: Any, prompts: Sequence[Any], detectors: Sequence[Sequence[Any]],
                  heads: Sequence[Iterable[tuple[int, int]]], batch_size: int = 16,
                  spans: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """Each prompt cropped to `EXAMPLE_TOKENS`: its token texts, its detectors' matrices (computed on
    the whole prompt, with its labelled spans `spans[i]` and, for patterns reading the model's
    predictions, the predictions of a pass to the logits over the whole prompts in batches, by the
    engine's own code) and the chosen heads' attention (forward passes in batches, every layer up to
    the last needed hooked)."""
    facts = model_facts(model)
    cpu = torch.device("cpu")
    token_lists = [tokenize(model, [prompt], prepend_bos=True)[0] for prompt in prompts]
    predictions = _predictions(model, token_lists, detectors, batch_size)
    views = []
    crops = []
    for number, (prompt, chosen) in enumerate(zip(prompts, detectors)):
        labels = None if spans is None else spans[number]
        labelled = None if labels is None else Prompts(texts=(prompt,), spans=(labels,))
        own = token_lists[number:number + 1]
        inputs = prompt_inputs(model, labelled, [prompt], own, chosen)
        batch = pad_batch(own, [0], facts.pad_id, cpu)
        detection = inputs.detection(model, batch, chosen, predictions.get(number))
        ids = token_lists[number].tolist()
        n = min(EXAMPLE_TOKENS, len(ids))
        crops.append(token_lists[number][:n])
        views.append({"tokens": _token_texts(model, ids, prompt)[:n], "attention": {},
                      "matrices": {d.name: detection[i, 0, :n, :n].float() for i, d in enumerate(chosen)}})
    wanted = [sorted(set(h)) for h in heads]
    for start in range(0, len(crops), batch_size):
        rows = list(range(start, min(start + batch_size, len(crops))))
        layers = sorted({layer for row in rows for layer, _ in wanted[row]})
        if not layers:
            continue
        batch = pad_batch(crops, rows, facts.pad_id, cpu)

        def keep(layer: int, pattern: Tensor, rows: list[int] = rows) -> None:
            for position, row in enumerate(rows):
                n = crops[row].numel()
                for hl, h in wanted[row]:
                    if hl == layer:
                        views[row]["attention"][(layer, h)] = pattern[position, h, :n, :n].detach().to(cpu, torch.float32)

        run_attention_hooks(model, batch.tokens.to(facts.device), layers, keep)
    return views


def _predictions(model: Any, token_lists: Sequence[Tensor], detectors: Sequence[Sequence[Any]],
                 batch_size: int) -> dict[int, dict[int | None, Tensor]]:
    """`{prompt: predictions}` for the prompts whose detectors read the model's predictions, from
    passes to the logits over the whole prompts, `batch_size` at a time (right-padded: a causal
    model's predictions at a prompt's own positions do not see the padding)."""
    facts = model_facts(model)
    needing = [i for i, chosen in enumerate(detectors)
               if any("predictions" in getattr(d.pattern, "needs", ()) for d in chosen)]
    found: dict[int, dict[int | None, Tensor]] = {}
    for start in range(0, len(needing), batch_size):
        rows = needing[start:start + batch_size]
        batch = pad_batch(token_lists, rows, facts.pad_id, torch.device("cpu"))
        passed = model_pass(model, batch.tokens, [], [d for row in rows for d in detectors[row]], ())
        for position, row in enumerate(rows):
            n = token_lists[row].numel()
            found[row] = {layer: top[position:position + 1, :n].cpu() for layer, top in passed.predictions.items()}
    return found


# --------------------------------------------------------------------------- statistics


def head_statistics(model: Any, prompts: Any, *, n_prompts: int = STATS_PROMPTS,
                    batch_size: int | None = None) -> dict[str, Any]:
    """Per head, averaged over the query rows after the first of `n_prompts` prompts: `bos`, the
    share of attention on position 0; `distance`, the mean distance q - k attended to; `entropy`,
    the attention's entropy in nats. Grids `[layer][head]`, with the prompts they came from."""
    facts = model_facts(model)
    n_layers, n_heads = facts.shape
    items = list(prompts)[:n_prompts]
    token_lists = tokenize(model, items, prepend_bos=True)
    order = sorted(range(len(token_lists)), key=lambda i: token_lists[i].numel())
    size = batch_size or 8
    sums = torch.zeros(3, n_layers, n_heads, dtype=torch.float64)
    rows = 0
    for start in range(0, len(order), size):
        batch = pad_batch(token_lists, order[start:start + size], facts.pad_id, torch.device("cpu"))
        width = batch.tokens.shape[1]
        positions = torch.arange(width)
        valid = (positions[None, :] < batch.lengths[:, None]) & (positions[None, :] > 0)  # [b, q]
        distance = (positions[:, None] - positions[None, :]).clamp(min=0).float()  # [q, k]
        rows += int(valid.sum())

        def reduce(layer: int, pattern: Tensor, valid: Tensor = valid, distance: Tensor = distance) -> None:
            a = pattern.detach().to("cpu", torch.float32)  # [b, h, q, k]
            mask = valid[:, None, :].float()
            entropy = -(torch.where(a > 0, a * torch.log(a.clamp(min=1e-30)), torch.zeros(()))).sum(-1)
            for i, value in enumerate((a[..., 0], (a * distance).sum(-1), entropy)):
                sums[i, layer] += (torch.nan_to_num(value) * mask).sum(dim=(0, 2)).double()

        run_attention_hooks(model, batch.tokens.to(facts.device), list(range(n_layers)), reduce)
    means = sums / max(rows, 1)
    names = ("bos", "distance", "entropy")
    return {"probe": STATS_PROBE, "n_prompts": len(items), "n_rows": rows,
            **{name: _rounded_grid(means[i].tolist()) for i, name in enumerate(names)}}


# --------------------------------------------------------------------------- checks


def check_document(doc: Any) -> None:
    """Raise `InputError` unless `doc` is an atlas document this patternlang reads (`schema.py`)."""
    validate_document(doc)
