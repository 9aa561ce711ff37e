"""The head atlas: a browsable static site about every head of every model, with evidence on every page.

`build_atlas` is the recipe: for each model, its atlas document (`document.py`: scores,
evidence, statistics and examples; extended in place when one exists) written to
`DIR/data/ID.json`, then the whole site rendered from every document in `DIR/data/`
(`site.py`), so atlases built on different machines merge by copying their documents.
The document's schema is in docs/atlas.md.

>>> build_atlas([load_model()], "atlas")   # open atlas/index.html  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from patternlang.atlas.document import FORMAT, add_verdicts, build_document, check_document, check_same_model, model_id
from patternlang.atlas.schema import normalised_document, validate_document
from patternlang.atlas.site import render_site
from patternlang.models.facts import model_facts
from patternlang.files import inside, read_json, safe_file_name

__all__ = ["FORMAT", "build_atlas", "build_document", "load_documents", "read_document", "render_site",
           "with_current_verdicts", "write_document"]

DATA = "data"


def read_document(path: str | Path) -> dict[str, Any]:
    """The atlas document in `path`, checked (depth before parsing, then the schema, `schema.py`)."""
    return normalised_document(read_json(path, "the atlas document"), path)


def document_path(out: str | Path, model_id: str) -> Path:
    """Where the document of the model `model_id` lives: `out/data/ID.json`, ID a safe file name,
    the path checked to lie inside `out`."""
    return inside(out, Path(DATA) / f"{safe_file_name(model_id)}.json")


def write_document(doc: dict[str, Any], out: str | Path) -> Path:
    """Write a document to `out/data/ID.json` (atomically: a temporary file renamed into place)."""
    validate_document(doc)
    path = document_path(out, doc["model"]["id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n",
                         encoding="utf-8")
    temporary.replace(path)
    return path


def load_documents(out: str | Path) -> list[dict[str, Any]]:
    """Every atlas document in `out/data/`, by file name."""
    folder = Path(out) / DATA
    return [read_document(path) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def build_atlas(models: Sequence[Any], out: str | Path, *, patterns: Any = None, probe: Any = None,
                progress: bool = False, batch_size: int | None = None, on_model: Any = None,
                effects: Sequence[Any] = (), effects_probe: Any = None, effects_top_k: int | None = None,
                effects_prompts: int | None = None, describe: bool = False, keep_patterns: bool = False,
                say: Callable[[str], None] | None = None) -> list[Path]:
    """Build (or extend) the atlas in `out` for each loaded model, then render the site from every
    document in `out/data/`. Returns the documents written.

    `models`: loaded models, or zero-argument callables that load one (loaded one at a time).
    `effects`: metrics (`loss`, `induction_loss`, `logit_diff`, ...) and/or `"auto"`, the default
    set: `loss` on natural text and each labelled probe's own metric on that probe, for the probes
    the atlas uses (`effects/atlas.py`, `plan_effects`). Each metric on its own probe (the metric
    registry's entry says which; `effects_probe`: one probe for all), at most `effects_prompts`
    of its first prompts (default 32; 0: all of them), every head estimated by `patternlang.effects.attribute` and the
    top `effects_top_k` (default 5) ablated exactly; then every verdict says what the head
    matters for (`engine/matters.py`).
    `describe`: each head's description (`patternlang.describe`: its rule, held-out score and IoU) on
    `probe`'s prompts (else `natural` and `repeated_random`, as `patternlang describe`), under
    `heads[label]["description"]`.
    `keep_patterns`: where the model's document exists, keep its patterns as they are and score
    none (only effects and descriptions are added); without a document, build one as usual.
    `say`: told what is done (which metric on which probe, what was kept).
    """
    # Inside: effects/atlas.py imports atlas/document.py, which runs this package's __init__ first.
    from patternlang.effects.atlas import EFFECTS_PROMPTS, EFFECTS_TOP_K, gather_effects, plan_effects

    tell = say or (lambda text: None)
    written = []
    for item in models:
        model = item() if callable(item) and not hasattr(item, "run_with_hooks") else item
        name = model_facts(model).name
        existing_path = document_path(out, model_id(name))
        existing = read_document(existing_path) if existing_path.is_file() else None
        if keep_patterns and existing is not None:
            check_document(existing)
            check_same_model(existing, model)
            doc = dict(existing)
            tell(f"{doc['model']['id']}: the document exists; its {len(doc['patterns'])} patterns are kept as they "
                 "are (give --patterns to score more)")
        else:
            doc = build_document(model, patterns, probe=probe, existing=existing, progress=progress,
                                 batch_size=batch_size)
        if describe:
            _add_descriptions(doc, model, probe)
        if effects:
            planned, notes = plan_effects(effects, doc, probe=probe, effects_probe=effects_probe)
            for note in notes:
                tell(f"effects: {note}")
            limit = EFFECTS_PROMPTS if effects_prompts is None else (effects_prompts or None)
            gather_effects(doc, model, planned, n_prompts=limit,
                           top_k=EFFECTS_TOP_K if effects_top_k is None else effects_top_k, batch_size=batch_size,
                           progress=progress, say=lambda line: tell(f"effects: {line}"))
        add_verdicts(doc)  # by this version's rules (a kept document may predate them), with what each head matters for
        doc["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        written.append(write_document(doc, out))
        if on_model is not None:
            on_model(doc)
    render_site([with_current_verdicts(doc) for doc in load_documents(out)], out)
    return written


def with_current_verdicts(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with every head's verdict computed again from the document alone, by this version's
    rules, so that a site never shows a verdict an older version stored (a copy; the file is
    unchanged until a run with its model writes it again)."""
    fresh = dict(doc)
    fresh["heads"] = {label: dict(entry) for label, entry in (doc.get("heads") or {}).items()}
    add_verdicts(fresh)
    return fresh


def _rounded(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else round(float(value), 4)


def _add_descriptions(doc: dict[str, Any], model: Any, probe: Any) -> None:
    """Each head's description (`discovery.describe`) under `doc["heads"][label]["description"]`."""
    from patternlang.discovery import describe
    from patternlang.probes import make_probe
    from patternlang.settings import ProbeSpec

    specs = [probe] if probe is not None else [ProbeSpec("natural", ()), ProbeSpec("repeated_random", ())]
    items: list[Any] = []
    for spec in specs:
        items += list(make_probe(spec.name, spec.args, model).items)
    found = describe(model, items)
    for label, head in found.heads.items():
        doc.setdefault("heads", {}).setdefault(label, {})["description"] = {
            "rule": head.rule, "family": head.family, "score": _rounded(head.score),
            "interval": [_rounded(x) for x in head.interval] if head.interval else None,
            "chance": _rounded(head.chance), "iou": _rounded(head.iou), "coverage": _rounded(head.coverage),
            "above_chance": bool(head.above_chance), "best_rule": head.best_rule,
            "n_prompts": found.n_prompts_held_out,
            "mixture": [{"rule": part.rule, "weight": _rounded(part.weight)} for part in head.mixture],
            "mixture_fit": _rounded(head.mixture_fit), "mixture_iou": _rounded(head.mixture_iou),
            "rule_fit": _rounded(head.rule_fit)}
