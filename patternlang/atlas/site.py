"""The atlas as a static site, rendered from atlas documents alone (no model, no torch).

    DIR/index.html                 models, patterns, comparisons, search
    DIR/models/ID.html             the layer x head grid (filters), a sortable table of heads, provenance
    DIR/heads/ID/L5H1.html         one head: every pattern's score with its evidence, statistics, examples
    DIR/patterns/NAME.html         rule, docstring, matrix on a sample prompt, mosaic across models
    DIR/compare/A__B.html          two models head by head (same shape) or side by side
    DIR/assets/                    atlas.css, atlas.js, search-index.js (no CDN, no network)
    DIR/data/ID.json               the documents themselves

Pages open from disk: data a page's script reads is inline (`<script type="application/json">`),
the search index a `<script src>` beside it. Every page is rendered from the autoescaping templates
in `templates/atlas/` (`templating.py`); every path from a document is a `safe_file_name` and
every write is checked to lie inside DIR (`files.inside`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patternlang.atlas.assets import CSS, palettes, script
from patternlang.atlas.schema import normalised_document
from patternlang.atlas.maps import Scale, colour_bar, diverging_scale, excess_scale, heatmap, top_heads
from patternlang.atlas.ranking import (contenders, head_matches, is_signed, pattern_measure, positional_baseline,
                                       ranks_lowest, strength)
from patternlang.engine.matters import RULE, sentence
from patternlang.engine.verdicts import FLOOR, SINK_PATTERN, holds, parse_requirement
from patternlang.files import inside, safe_file_name
from patternlang.heads import head_label
from patternlang.measure_table import MEASURE_TABLE
from patternlang.report.templating import render

MOSAIC_HEIGHT = 220  # pixels: every model's layers span the same height (depth-normalised)
MOSAIC_WIDTH = 120
DATA_DIR = "data"  # the documents, `DIR/data/ID.json` (atlas/__init__.py)


def _json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _v(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.6g}"


def _sparse(triangle: Sequence[int]) -> list[int]:
    """A pattern's triangle (mostly zeros) as `[index, value, index, value, ...]` of its nonzero cells."""
    return [x for i, v in enumerate(triangle) if v for x in (i, v)]


def safe_name(name: str) -> str:
    return safe_file_name(name)


class Site:
    """Paths and the shared frame of every page."""

    def __init__(self, docs: Sequence[Mapping[str, Any]], out: Path):
        self.docs = list(docs)
        self.out = Path(out)
        self.patterns: list[str] = list(dict.fromkeys(p for d in self.docs for p in d["patterns"]))
        self.hues = {p: round(i * 137.508) % 360 for i, p in enumerate(self.patterns)}
        self.written: list[Path] = []

    # paths relative to the root
    # Every part taken from a document goes through `safe_file_name`: no `/`, no `..`, no quote,
    # bounded, so a URL is a path inside the site whatever the document holds.
    @staticmethod
    def model_url(doc: Mapping[str, Any]) -> str:
        return f"models/{safe_name(doc['model']['id'])}.html"

    @staticmethod
    def head_url(doc: Mapping[str, Any], label: str) -> str:
        return f"heads/{safe_name(doc['model']['id'])}/{safe_name(label)}.html"

    @staticmethod
    def pattern_url(name: str) -> str:
        return f"patterns/{safe_name(name)}.html"

    @staticmethod
    def compare_url(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
        return f"compare/{safe_name(a['model']['id'] + '__' + b['model']['id'])}.html"

    def write(self, url: str, template: str, title: str, data: Any = None, **context: Any) -> None:
        """Render `atlas/TEMPLATE` (autoescaped) into `url`, a path that must lie inside the site."""
        root = "../" * url.count("/")
        nav = [{"url": self.model_url(d), "id": d["model"]["id"]} for d in self.docs]
        text = render(f"atlas/{template}", title=title, root=root, nav=nav, data=data, **context)
        path = inside(self.out, url)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.written.append(path)


def render_site(docs: Sequence[Mapping[str, Any]], out: str | Path) -> list[Path]:
    """Write the whole site for `docs` (atlas documents) into `out`; returns the files written.

    >>> render_site([doc], "atlas")  # then open atlas/index.html  # doctest: +SKIP
    """
    checked = [normalised_document(doc) for doc in docs]  # every field the pages render, defaults filled
    site = Site(sorted(checked, key=lambda d: d["model"]["id"]), Path(out))
    assets = site.out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    for name, text in (("atlas.css", CSS), ("atlas.js", script()), ("search-index.js", _search_index(site))):
        (assets / name).write_text(text, encoding="utf-8")
        site.written.append(assets / name)
    _index_page(site)
    for doc in site.docs:
        _model_page(site, doc)
        for layer in range(doc["model"]["n_layers"]):
            for head in range(doc["model"]["n_heads"]):
                _head_page(site, doc, layer, head)
    for name in site.patterns:
        _pattern_page(site, name)
    for i, a in enumerate(site.docs):
        for b in site.docs[i + 1:]:
            _compare_page(site, a, b)
    return site.written


def _search_index(site: Site) -> str:
    entries = []
    for doc in site.docs:
        m = doc["model"]
        entries.append([m["id"], "model", f"{m['n_layers']} layers x {m['n_heads']} heads", site.model_url(doc)])
        for layer in range(m["n_layers"]):
            for head in range(m["n_heads"]):
                label = head_label(layer, head)
                best = doc.get("heads", {}).get(label, {}).get("pattern", "")
                entries.append([label, m["id"], best, site.head_url(doc, label)])
    for name in site.patterns:
        entries.append([name, "pattern", "", site.pattern_url(name)])
    return "window.ATLAS_INDEX = " + _json(entries) + ";\n"


# --------------------------------------------------------------------------- index


def _cell(value: float | None, digits: int = 3) -> dict[str, str]:
    """A number for a sortable cell: `v` to sort by, `f` to show."""
    return {"v": _v(value), "f": _fmt(value, digits)}


def _index_page(site: Site) -> None:
    models = [{"url": site.model_url(doc), "id": doc["model"]["id"], "name": doc["model"]["name"],
               "n_layers": doc["model"]["n_layers"], "n_heads": doc["model"]["n_heads"],
               "n_patterns": len(doc["patterns"]), "quantisation": doc["model"].get("quantisation") or "–",
               "updated": doc.get("updated", "")} for doc in site.docs]
    patterns = []
    for name in site.patterns:
        entry = _pattern_entry(site, name)
        patterns.append({"url": site.pattern_url(name), "name": name,
                         "description": entry.get("description") or entry.get("doc") or "",
                         "probe": entry.get("probe", "")})
    compares = [{"url": site.compare_url(a, b), "a": a["model"]["id"], "b": b["model"]["id"]}
                for i, a in enumerate(site.docs) for b in site.docs[i + 1:]]
    site.write("index.html", "index.html", "Head atlas", models=models, patterns=patterns, compares=compares)


def _pattern_entry(site: Site, name: str) -> Mapping[str, Any]:
    return next(d["patterns"][name] for d in site.docs if name in d["patterns"])


# --------------------------------------------------------------------------- model


def _short_names(names: Sequence[str]) -> dict[str, str]:
    """A short, distinct label per pattern for the grid's cells: initials, lengthened on a clash."""
    shorts: dict[str, str] = {}
    for name in names:
        parts = [p for p in name.replace("#", "_").split("_") if p and p != "head"] or [name]
        for width in (1, 2, 3):
            short = "".join(p[:width] for p in parts[:3]).upper()[:4]
            if short not in shorts.values():
                break
        else:
            short = str(len(shorts))
        shorts[name] = short
    return shorts


def _model_page(site: Site, doc: Mapping[str, Any]) -> None:
    m = doc["model"]
    n_layers, n_heads = m["n_layers"], m["n_heads"]
    names = list(doc["patterns"])
    shorts = _short_names(names)
    own = {p: pattern_measure(doc, p) for p in names}
    measures = list(dict.fromkeys([*doc["measures"], *own.values()]))  # a pattern's own may be its alone (copying)
    data = {
        "kind": "model", "patterns": names, "hues": {p: site.hues[p] for p in names},
        "short": shorts, "own": own,
        "bounds": doc.get("measure_bounds", {}),
        "scores": {meas: {p: e["scores"][meas] for p, e in doc["patterns"].items() if meas in e["scores"]}
                   for meas in measures},
        "baseline": {p: e.get("baseline", {}) for p, e in doc["patterns"].items()},
        "n": {p: [e.get("n_rows", 0), e.get("n_prompts", 0)] for p, e in doc["patterns"].items()},
        # signed measures: no chance, a two-sided scale; which way each pattern and measure ranks
        "signed": {meas: is_signed(doc, meas) for meas in measures},
        "lower": {meas: meas in MEASURE_TABLE and MEASURE_TABLE[meas].direction == "lower" for meas in measures},
        "rank": {p: e.get("rank", "highest") for p, e in doc["patterns"].items()},
    }
    verdicts = {label: v for label, v in ((head_label(la, he), _verdict_of(doc, head_label(la, he)))
                                          for la in range(n_layers) for he in range(n_heads)) if v is not None}
    # `shown`: a label drawn as a letter; a sink head's (bos_head) is its band alone
    data["verdicts"] = {label: {"p": v.get("label"), "sink": v.get("sink_share"),
                                "shown": bool(v.get("label")) and v.get("label") != SINK_PATTERN}
                        for label, v in verdicts.items()}
    grid = [{"layer": layer, "cells": [_map_cell(site, doc, shorts, verdicts, layer, h) for h in range(n_heads)]}
            for layer in range(n_layers)]
    stats = doc.get("stats") or {}
    table = []
    for layer in range(n_layers):
        for head in range(n_heads):
            label = head_label(layer, head)
            matches = head_matches(doc, layer, head)
            top = matches[0] if matches else None
            table.append({
                "layer": layer, "head": head, "order": layer * n_heads + head, "url": site.head_url(doc, label),
                "label": label, "verdict": _verdict_text(verdicts.get(label)), "pattern": top.pattern if top else "–",
                "score": _cell(top.score if top else None), "baseline": _cell(top.baseline if top else None),
                "lift": _cell(top.lift if top else None, 1), "excess": _cell(top.excess if top else None, 2),
                "prompts": {"v": top.n_prompts if top else "", "f": top.n_prompts if top else "–"},
                "also": ", ".join(x.pattern for x in contenders(matches)[1:]),
                "stats": [_cell(_stat(stats, key, layer, head), 2) for key in ("bos", "distance", "entropy")],
            })
    legend = [{"hue": site.hues[p], "short": shorts[p], "name": p} for p in names]
    site.write(site.model_url(doc), "model.html", m["id"], data, model=m, provenance=_provenance(doc),
               names=names, measures=doc["measures"], heads=range(n_heads), grid=grid, legend=legend, table=table,
               has_verdicts=bool(verdicts), effect_maps=_effect_maps(site, doc),
               description_map=_description_map(site, doc))


def _verdict_text(verdict: Mapping[str, Any] | None) -> str:
    """A verdict in the heads table: its label, "none", and whether position explains it."""
    if verdict is None:
        return "–"
    text = verdict.get("label") or "none"
    return f"{text} (explained by position)" if verdict.get("explained_by_position") else text


def _verdict_of(doc: Mapping[str, Any], label: str) -> Mapping[str, Any] | None:
    verdict = (doc.get("heads") or {}).get(label, {}).get("verdict")
    return verdict if isinstance(verdict, Mapping) else None


def _map_cell(site: Site, doc: Mapping[str, Any], shorts: Mapping[str, str], verdicts: Mapping[str, Any],
              layer: int, head: int) -> dict[str, Any]:
    """A cell of the model map: the verdict's letter (none without a label), the sink share as a shade
    (a dark band at the cell's foot, its height the share), never as a letter."""
    label = head_label(layer, head)
    verdict = verdicts.get(label) or {}
    name = verdict.get("label")
    if name == SINK_PATTERN:  # a sink head: its band says so, never a letter
        name = None
    sink = verdict.get("sink_share")
    shade = max(0.0, min(1.0, sink)) if isinstance(sink, (int, float)) and math.isfinite(sink) else None
    return {"head": head, "label": label, "url": site.head_url(doc, label), "verdict": name or "",
            "letter": (shorts.get(name) or _short_names([name])[name]) if name else "",
            "sink": _fmt(shade, 2) if shade is not None else "",
            "shade": f"{round(shade * 18)}" if shade is not None else "0"}


def _stat(stats: Mapping[str, Any], key: str, layer: int, head: int) -> float | None:
    grid = stats.get(key)
    return grid[layer][head] if grid else None


def _provenance(doc: Mapping[str, Any]) -> dict[str, Any]:
    probes = [{"key": k, "n_prompts": v.get("n_prompts", 0), "kind": v.get("kind", ""), "description": v.get("description")}
              for k, v in doc.get("probes", {}).items()]
    stats = doc.get("stats") or {}
    return {"version": doc.get("patternlang", ""), "updated": doc.get("updated", ""), "probes": probes,
            "stats": {"n_prompts": stats.get("n_prompts"), "probe": stats.get("probe", ""),
                      "n_rows": stats.get("n_rows")} if stats else None,
            "document": f"{DATA_DIR}/{safe_name(doc['model']['id'])}.json"}


# --------------------------------------------------------------------------- head


def _head_page(site: Site, doc: Mapping[str, Any], layer: int, head: int) -> None:
    m = doc["model"]
    label = head_label(layer, head)
    matches = head_matches(doc, layer, head)
    near = contenders(matches)
    stats = doc.get("stats") or {}
    rows = []
    for x in matches:
        grid = doc["patterns"][x.pattern]["scores"][x.measure]
        lowest = ranks_lowest(doc, x.pattern, x.measure)  # `rank lowest`: its place counts from the lowest
        flat = sorted((v for row in grid for v in row if v is not None), reverse=not lowest)
        place = (flat.index(x.score) + 1) if x.score is not None and not math.isnan(x.score) and x.score in flat else None
        rows.append({"pattern": x.pattern, "url": site.pattern_url(x.pattern), "measure": x.measure,
                     "score": _cell(x.score), "low": _fmt(x.ci_low), "high": _fmt(x.ci_high),
                     "baseline": {"v": "", "f": "none (signed)"} if is_signed(doc, x.measure) else _cell(x.baseline),
                     "lift": _cell(x.lift, 1), "excess": _cell(x.excess, 2),
                     "rows": {"v": x.n_rows, "f": x.n_rows}, "prompts": {"v": x.n_prompts, "f": x.n_prompts},
                     "place": {"v": place or "", "f": place or "–"}, "of": m["n_layers"] * m["n_heads"]})
    stat = [_stat(stats, key, layer, head) for key in ("bos", "distance", "entropy")]
    stat_line = {"bos": _fmt(stat[0], 2), "distance": _fmt(stat[1], 1), "entropy": _fmt(stat[2], 2),
                 "n_prompts": stats.get("n_prompts", 0), "probe": stats.get("probe", "")} if stats else None
    drawn = doc.get("heads", {}).get(label)
    examples, prompts, views, lists = [], {}, [], []
    if drawn:
        entry = doc["patterns"].get(drawn["pattern"], {})
        for ex in drawn["examples"]:
            key = f"{ex['probe']}#{ex['prompt']}"
            tokens = doc.get("prompts", {}).get(ex["probe"], {}).get(str(ex["prompt"]))
            if tokens is None:
                continue
            prompts[key] = tokens[:ex["n_tokens"]]
            examples.append({"key": key, "n": ex["n_tokens"], "attention": ex["attention"],
                             "sparse": _sparse(ex["matrix"]), "pattern": drawn["pattern"]})
            views.append({"example": len(examples) - 1, "prompt": ex["prompt"], "probe": ex["probe"],
                          "kind": "matches most" if ex.get("kind", "best") == "best" else "matches least",
                          "n_first": len(entry.get("example_scores", [])), "score": _fmt(ex["score"]),
                          "crop": ex["n_tokens"] >= 64, "n_tokens": ex["n_tokens"]})
        previews = doc.get("probes", {}).get(entry.get("probe"), {}).get("previews")
        for word, ranked in (("most", entry.get("best_prompts")), ("least", entry.get("worst_prompts"))):
            if ranked:
                items = [{"index": i, "score": _fmt(score), "preview": _prompt_text(doc, entry, previews, i)}
                         for i, score in ranked[layer][head]]
                lists.append({"word": word, "n_run": entry.get("n_prompts_run", "?"), "entries": items})
    nav = []
    if head > 0 or layer > 0:
        prev = (layer, head - 1) if head > 0 else (layer - 1, m["n_heads"] - 1)
        nav.append({"url": f"{head_label(*prev)}.html", "text": f"← {head_label(*prev)}"})
    nav.append({"url": f"../../{site.model_url(doc)}", "text": m["id"]})
    if (layer, head) != (m["n_layers"] - 1, m["n_heads"] - 1):
        nxt = (layer, head + 1) if head + 1 < m["n_heads"] else (layer + 1, 0)
        nav.append({"url": f"{head_label(*nxt)}.html", "text": f"{head_label(*nxt)} →"})
    data = {"kind": "head", "head": label, "examples": examples, "prompts": prompts}
    site.write(site.head_url(doc, label), "head.html", f"{label} {m['id']}", data, label=label, model=m, steps=nav,
               verdict=_verdict_view(site, _verdict_of(doc, label)), effects=_head_effects(doc, label),
               described=_description_view(doc, label),
               near=[{"pattern": x.pattern, "excess": _fmt(x.excess, 2)} for x in near], within=f"{0.1:g}",
               stats=stat_line, rows=rows, drawn=drawn["pattern"] if drawn else None, lists=lists, views=views)


def _head_effects(doc: Mapping[str, Any], label: str) -> list[dict[str, Any]]:
    """The head's effect on each metric of `doc["effects"]` (effects/atlas.py), as its page shows it."""
    shown = []
    for metric, entry in (doc.get("effects") or {}).items():
        found = (entry.get("heads") or {}).get(label)
        if found is None:
            continue
        ci = found.get("ci") or [None, None]
        shown.append({"metric": metric, "direction": entry.get("direction") or "", "method": entry.get("method") or "",
                      "probe": entry.get("probe") or "", "n_prompts": entry.get("n_prompts", 0),
                      "estimate": _number(found.get("estimate")), "ablation": _number(found.get("ablation")),
                      "exact": found.get("ablation") is not None, "low": _number(ci[0]), "high": _number(ci[1]),
                      "interval": found.get("ci") is not None, "positions": entry.get("positions") or "",
                      "top_k": entry.get("top_k")})
    return shown


def _effect_maps(site: Site, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A second map per metric of `doc["effects"]`: each head's estimated effect, on a diverging scale
    (divided by the largest in size, so the strongest head is the palette's end)."""
    m = doc["model"]
    maps = []
    for metric, entry in (doc.get("effects") or {}).items():
        heads = entry.get("heads") or {}
        values = [[(heads.get(head_label(la, he)) or {}).get("estimate") for he in range(m["n_heads"])]
                  for la in range(m["n_layers"])]
        finite = [abs(v) for row in values for v in row if isinstance(v, (int, float)) and math.isfinite(v)]
        scale = max(finite) if finite and max(finite) > 0 else 1.0
        scaled = [[v / scale if isinstance(v, (int, float)) else None for v in row] for row in values]
        mosaic = _mosaic(site, doc, metric, scaled, diverging=True)
        for rect, value in zip(mosaic["rects"], (v for row in values for v in row)):
            rect["title"] = f"{rect['label']} effect on {metric}: {_number(value)}"
        maps.append({"metric": metric, "direction": entry.get("direction") or "", "scale": _number(scale),
                     "mosaic": mosaic, "probe": entry.get("probe") or "", "n_prompts": entry.get("n_prompts", 0)})
    return maps


def _description_map(site: Site, doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """The model map coloured by each head's description (`--describe`): its rule's family as the
    hue, its held-out IoU as the depth of the colour (pale: low), grey where no rule is above chance;
    None when no head has a description."""
    m = doc["model"]
    found = {label: entry["description"] for label, entry in (doc.get("heads") or {}).items()
             if isinstance(entry, Mapping) and isinstance(entry.get("description"), Mapping)}
    if not found:
        return None
    families = sorted({str(d.get("family")) for d in found.values() if d.get("above_chance") and d.get("family")})
    hues = {family: round(i * 137.508 + 20) % 360 for i, family in enumerate(families)}
    mosaic = _mosaic(site, doc, "description", [[None] * m["n_heads"] for _ in range(m["n_layers"])])
    counts = dict.fromkeys(families, 0)
    n_none = 0
    for rect in mosaic["rects"]:
        label = rect["label"]
        described = found.get(label)
        if described is None:
            continue
        if not described.get("above_chance") or not described.get("family"):
            n_none += 1
            rect["title"] = f"{label}: no rule above chance"
            continue
        family = str(described["family"])
        counts[family] += 1
        iou = described.get("iou")
        depth = max(0.0, min(1.0, float(iou))) if isinstance(iou, (int, float)) and math.isfinite(iou) else 0.0
        rect["colour"] = f"hsl({hues[family]},65%,{round(88 - 50 * depth)}%)"
        rect["title"] = (f"{label}: {described.get('rule')} ({family}; held-out mass {_number(described.get('score'))}, "
                         f"IoU {_number(iou)})")
    legend = [{"hue": hues[f], "name": f, "count": counts[f]} for f in families]
    return {"mosaic": mosaic, "legend": legend, "none": n_none}


def _description_view(doc: Mapping[str, Any], label: str) -> dict[str, Any] | None:
    """The head's description (`patternlang atlas --describe`), as its page shows it."""
    found = (doc.get("heads") or {}).get(label, {}).get("description")
    if not isinstance(found, Mapping):
        return None
    interval = found.get("interval") or [None, None]
    return {"rule": found.get("rule"), "best_rule": found.get("best_rule"), "family": found.get("family") or "",
            "score": _number(found.get("score")), "low": _number(interval[0]), "high": _number(interval[1]),
            "chance": _number(found.get("chance")), "iou": _number(found.get("iou")),
            "coverage": _number(found.get("coverage")), "above_chance": bool(found.get("above_chance")),
            "n_prompts": found.get("n_prompts", 0),
            "mixture": [{"rule": part.get("rule"), "weight": _number(part.get("weight"))}
                        for part in found.get("mixture") or [] if isinstance(part, Mapping)],
            "mixture_fit": _number(found.get("mixture_fit")), "mixture_iou": _number(found.get("mixture_iou")),
            "rule_fit": _number(found.get("rule_fit"))}


PREVIEW_CHARS = 160


def _prompt_text(doc: Mapping[str, Any], entry: Mapping[str, Any], previews: Sequence[str] | None,
                 index: int) -> str | None:
    """A prompt's text for the lists of best and worst prompts: the probe's preview, else the
    document's tokens of it (`prompts`), cut to PREVIEW_CHARS; None when the document holds neither."""
    if previews and 0 <= index < len(previews):
        return previews[index]
    tokens = doc.get("prompts", {}).get(entry.get("probe"), {}).get(str(index))
    return "".join(tokens)[:PREVIEW_CHARS] if tokens else None


def _number(value: Any, digits: int = 3) -> str:
    return _fmt(float(value), digits) if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


def _verdict_view(site: Site, verdict: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A head's verdict (`engine/verdicts.py` `Verdict.to_dict()`) as the head page shows it."""
    if verdict is None:
        return None

    def named(name: Any) -> dict[str, Any] | None:
        if not isinstance(name, str) or not name:
            return None
        return {"name": name, "url": site.pattern_url(name) if name in site.patterns else None}

    def mapping(value: Any) -> Mapping[str, Any]:
        return value if isinstance(value, Mapping) else {}

    evidence = mapping(verdict.get("evidence"))
    found = evidence.get("interval")
    interval: list[Any] = found if isinstance(found, list) else []
    position = mapping(verdict.get("position"))
    failed = mapping(verdict.get("failed"))
    return {
        "label": named(verdict.get("label")), "runner_up": named(verdict.get("runner_up")),
        "margin": _number(verdict.get("margin"), 2), "sink": _number(verdict.get("sink_share"), 2),
        "footing": str(verdict.get("footing") or ""), "reason": str(verdict.get("reason") or ""),
        "strength": _number(verdict.get("strength"), 2),
        "evidence": {"measure": str(evidence.get("measure") or ""), "probe": str(evidence.get("probe") or ""),
                     "score": _number(evidence.get("score")), "chance": _number(evidence.get("chance")),
                     "low": _number(interval[0] if len(interval) > 0 else None),
                     "high": _number(interval[1] if len(interval) > 1 else None),
                     "rows": evidence.get("rows"), "prompts": evidence.get("prompts")}
        if evidence.get("measure") else None,
        "position": {"rule": str(position.get("rule") or "–"), "score": _number(position.get("score"), 2),
                     "margin": _number(position.get("margin"), 2),
                     "is_rule": bool(position.get("pattern_is_positional"))} if position else None,
        "explained": bool(verdict.get("explained_by_position")),
        "passed_over": [str(p) for p in verdict.get("passed_over") or []],
        # What the head matters for (engine/matters.py), and the verdict in words; None: no effects measured.
        "matters": None if not isinstance(verdict.get("matters_for"), list) else
        [{"text": str(m.get("text") or ""), "basis": str(m.get("basis") or ""), "role": str(m.get("role") or "")}
         for m in verdict["matters_for"] if isinstance(m, Mapping)],
        "matters_rule": RULE,
        "summary": sentence(verdict.get("label"), verdict.get("runner_up"), verdict.get("matters_for")
                            if isinstance(verdict.get("matters_for"), list) else None),
        "failed": [{"pattern": str(k), "why": ", ".join(str(x) for x in v) if isinstance(v, list) else str(v)}
                   for k, v in failed.items()],
    }


# --------------------------------------------------------------------------- pattern


def _mosaic(site: Site, doc: Mapping[str, Any], name: str, values: Any, *, diverging: bool = False,
            prefix: str = "../") -> dict[str, Any]:
    """A layer x head heatmap at a fixed height: layers as relative depth, so models of any size compare."""
    pal = palettes()["div" if diverging else "seq"]
    m = doc["model"]
    n_layers, n_heads = m["n_layers"], m["n_heads"]
    h, w = MOSAIC_HEIGHT / n_layers, MOSAIC_WIDTH / n_heads
    rects = []
    for layer in range(n_layers):
        for head in range(n_heads):
            value = values[layer][head]
            if value is None or not math.isfinite(value):
                colour = "#d9d9d9"
            else:
                x = (max(-1.0, min(1.0, value)) + 1) / 2 if diverging else max(0.0, min(1.0, value))
                colour = pal[round(x * (len(pal) - 1))]
            label = head_label(layer, head)
            rects.append({"label": label, "url": prefix + site.head_url(doc, label), "x": f"{head * w:.2f}",
                          "y": f"{layer * h:.2f}", "w": f"{w:.2f}", "h": f"{h:.2f}", "colour": colour,
                          "title": f"{label} {name}: {_fmt(value)}"})
    return {"width": MOSAIC_WIDTH, "height": MOSAIC_HEIGHT, "rects": rects}


PATTERN_MAP = (120, 220)  # width, height in pixels of a pattern page's map (depth-normalised: every model's)
COMPARE_MAP = (180, 300)  # a compare page's, larger: three side by side
TOP_HEADS = 5  # the heads listed beside a compare page's map
BEST_HEADS = 10  # the best heads a pattern page lists per model


@dataclass(frozen=True, slots=True)
class PatternFacts:
    """How a pattern's scores read in one document: its own measure, whether that measure is signed
    (no chance; a two-sided map), whether the pattern ranks lowest first, and each head's
    `strength` (`ranking.strength`: excess over chance, or the signed score, the pattern's way up)."""

    name: str
    measure: str
    signed: bool
    lowest: bool
    scores: list[list[float | None]]
    strength: list[list[float | None]]
    baseline: float | None


def _facts(doc: Mapping[str, Any], name: str) -> PatternFacts:
    entry = doc["patterns"][name]
    meas = pattern_measure(doc, name)
    bounds = doc.get("measure_bounds", {}).get(meas) or [None, None]
    signed, lowest = is_signed(doc, meas), ranks_lowest(doc, name)
    base = entry.get("baseline", {}).get(meas)
    scores = [[_finite(v) for v in row] for row in entry["scores"][meas]]
    grid = [[_finite(strength(v, base, bounds[1], signed=signed, lowest=lowest, lower=bounds[0])) for v in row]
            for row in scores]
    return PatternFacts(name, meas, signed, lowest, scores, grid, None if signed else base)


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _shown(facts: PatternFacts) -> list[list[float | None]]:
    """What a pattern's map colours: the signed score itself, else the excess over chance."""
    return facts.scores if facts.signed else facts.strength


def _scale(all_facts: Sequence[PatternFacts]) -> Scale:
    """One colour scale for a pattern's maps side by side (the same measure in every document)."""
    first = all_facts[0]
    if first.signed:
        return diverging_scale([f.scores for f in all_facts],
                               f"{first.measure} (signed: 0 in the middle){', lowest first' if first.lowest else ''}")
    way = " (lowest first: chance − score)" if first.lowest else ""
    return excess_scale([f.strength for f in all_facts], f"{first.measure}: excess over chance{way}")


def _hover(facts: PatternFacts) -> Callable[[int, int, float | None], str]:
    def title(layer: int, head: int, value: float | None) -> str:
        score = facts.scores[layer][head]
        text = f"{head_label(layer, head)} · {facts.name}: {facts.measure} {_fmt(score)}"
        if not facts.signed:
            text += f" (chance {_fmt(facts.baseline)}, excess over chance {_fmt(facts.strength[layer][head], 2)})"
        return text
    return title


def _pattern_map(site: Site, doc: Mapping[str, Any], facts: PatternFacts, scale: Scale, size: tuple[int, int],
                 prefix: str = "../") -> dict[str, Any]:
    return heatmap(_shown(facts), scale, url=lambda label: prefix + site.head_url(doc, label), title=_hover(facts),
                   width=size[0], height=size[1])


def _best_heads(site: Site, doc: Mapping[str, Any], facts: PatternFacts, n: int) -> dict[str, Any]:
    """A pattern's best heads in one document, its way up (lowest first for `rank lowest`), with each
    head's interval, chance and excess (not for a signed measure), its margin over the pattern's best
    positional rule (`positional_baseline`) and whether that rule explains it (the rule scores
    inside the head's interval, for heads at least `FLOOR` above chance, as `engine/verdicts.py`
    decides it), and the `require` conditions it fails."""
    entry = doc["patterns"][facts.name]
    ci = (entry.get("ci95") or {}).get(facts.measure)
    position = positional_baseline(entry) or {}
    pos_score = _finite(position.get("score")) if isinstance(position, Mapping) else None
    if pos_score is not None and (position.get("measure") or facts.measure) != facts.measure:
        pos_score = None  # a rule scored in another measure does not compare
    is_rule = bool(position.get("pattern_is_rule")) if pos_score is not None else False
    requires = [parse_requirement(text) + (text,) for text in entry.get("requires") or []]
    rows = []
    for place, (layer, head, _) in enumerate(top_heads(facts.strength, n), start=1):
        label = head_label(layer, head)
        score = facts.scores[layer][head]
        low = _finite(ci["low"][layer][head]) if ci else None
        high = _finite(ci["high"][layer][head]) if ci else None
        margin = explained = None
        if pos_score is not None and score is not None:
            margin = (pos_score - score) if facts.lowest else (score - pos_score)
            if not is_rule and (facts.strength[layer][head] or 0.0) >= FLOOR:  # a candidate (as the verdict's)
                # explained: the head's margin over the rule is within its interval
                edge = (high if high is not None else score) if facts.lowest else (low if low is not None else score)
                explained = pos_score <= edge if facts.lowest else pos_score >= edge
        failed = [text for meas, op, value, text in requires
                  if not holds(op, _grid_value(entry, meas, layer, head), value)]
        rows.append({"place": place, "label": label, "url": site.head_url(doc, label), "score": _fmt(score),
                     "low": _fmt(low), "high": _fmt(high), "chance": _fmt(facts.baseline),
                     "excess": _fmt(facts.strength[layer][head], 2), "margin": _fmt(margin),
                     "explained": explained, "failed": failed})
    return {"rows": rows, "signed": facts.signed, "lowest": facts.lowest, "measure": facts.measure,
            "position": {"rule": str(position.get("rule") or "–"), "score": _fmt(pos_score), "is_rule": is_rule}
            if pos_score is not None else None,
            "requires": bool(requires)}


def _grid_value(entry: Mapping[str, Any], measure: str, layer: int, head: int) -> float:
    grid = entry["scores"].get(measure)
    value = None if grid is None else grid[layer][head]
    return math.nan if value is None else float(value)  # a measure not scored: the condition fails


def _pattern_page(site: Site, name: str) -> None:
    entry = _pattern_entry(site, name)
    sample_doc = next(d for d in site.docs if name in d["patterns"])
    sample = entry.get("sample")
    data: dict[str, Any] = {"kind": "pattern", "head": "", "examples": [], "prompts": {}}
    shown_sample = None
    if sample:
        tokens = sample_doc.get("prompts", {}).get(entry["probe"], {}).get(str(sample["prompt"]))
        if tokens:
            key = f"{entry['probe']}#{sample['prompt']}"
            data["prompts"][key] = tokens[:sample["n_tokens"]]
            data["examples"].append({"key": key, "n": sample["n_tokens"], "sparse": _sparse(sample["matrix"]),
                                     "pattern": name})
            shown_sample = {"model": sample_doc["model"]["id"], "n_tokens": sample["n_tokens"]}
    docs = [d for d in site.docs if name in d["patterns"]]
    all_facts = [_facts(doc, name) for doc in docs]
    scale = _scale(all_facts)
    figures = []
    for doc, facts in zip(docs, all_facts):
        e = doc["patterns"][name]
        figures.append({"map": _pattern_map(site, doc, facts, scale, PATTERN_MAP), "id": doc["model"]["id"],
                        "n_layers": doc["model"]["n_layers"], "n_heads": doc["model"]["n_heads"],
                        "n_rows": e.get("n_rows", 0), "n_prompts": e.get("n_prompts", 0),
                        "best": _best_heads(site, doc, facts, BEST_HEADS)})
    site.write(site.pattern_url(name), "pattern.html", name, data, name=name, entry=entry,
               exclusions=json.dumps(entry.get("exclusions", {}), ensure_ascii=False), sample=shown_sample,
               figures=figures, bar=colour_bar(scale), signed=all_facts[0].signed, lowest=all_facts[0].lowest,
               measure=all_facts[0].measure)


# --------------------------------------------------------------------------- compare


def _top_list(site: Site, doc: Mapping[str, Any], facts: PatternFacts) -> list[dict[str, Any]]:
    return [{"label": head_label(la, he), "url": site.head_url(doc, head_label(la, he)),
             "score": _fmt(facts.scores[la][he]), "excess": _fmt(v, 2)}
            for la, he, v in top_heads(facts.strength, TOP_HEADS)]


def _compare_page(site: Site, a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
    """Two models, pattern by pattern: each one's map on one shared scale with axes, its colour bar
    and its top heads with their numbers; for models of one shape the difference B − A too (on a
    two-sided scale of its own), the heads that changed most, and a head-by-head table."""
    ida, idb = a["model"]["id"], b["model"]["id"]
    shared = [p for p in a["patterns"] if p in b["patterns"]]
    same_shape = (a["model"]["n_layers"], a["model"]["n_heads"]) == (b["model"]["n_layers"], b["model"]["n_heads"])
    sections = []
    for name in shared:
        fa, fb = _facts(a, name), _facts(b, name)
        if fa.measure != fb.measure:  # scored in different measures: each on its own scale
            scales = [_scale([fa]), _scale([fb])]
        else:
            scales = [_scale([fa, fb])] * 2
        figures = [{"map": _pattern_map(site, doc, facts, scale, COMPARE_MAP), "caption": doc["model"]["id"],
                    "top": _top_list(site, doc, facts), "bar": colour_bar(scale), "kind": "model"}
                   for doc, facts, scale in ((a, fa, scales[0]), (b, fb, scales[1]))]
        if same_shape and fa.measure == fb.measure:
            ga, gb = _shown(fa), _shown(fb)
            diff = [[(y - x) if x is not None and y is not None else None for x, y in zip(ra, rb)]
                    for ra, rb in zip(ga, gb)]
            what = f"{fa.measure}" if fa.signed else f"{fa.measure}: excess over chance"
            dscale = diverging_scale([diff], f"change in {what}, {idb} − {ida}", at_least=0.0 if fa.signed else 1.0)

            def title(layer: int, head: int, value: float | None, what: str = what, name: str = name) -> str:
                return f"{head_label(layer, head)} · {name}: change in {what}, {idb} − {ida}: {_fmt(value)}"
            figures.append({"map": heatmap(diff, dscale, url=lambda label: "../" + site.head_url(b, label),
                                           title=title, width=COMPARE_MAP[0], height=COMPARE_MAP[1]),
                            "caption": f"{idb} − {ida}", "bar": colour_bar(dscale), "kind": "difference",
                            "top": [{"label": head_label(la, he), "url": site.head_url(b, head_label(la, he)),
                                     "change": f"{v:+.3f}"} for la, he, v in top_heads(diff, TOP_HEADS, by_size=True)]})
        sections.append({"url": site.pattern_url(name), "name": name, "figures": figures, "measure": fa.measure,
                         "signed": fa.signed, "lowest": fa.lowest, "shared": scales[0] is scales[1]})
    rows = []
    if same_shape:
        for layer in range(a["model"]["n_layers"]):
            for head in range(a["model"]["n_heads"]):
                label = head_label(layer, head)
                ma, mb = head_matches(a, layer, head), head_matches(b, layer, head)
                if not ma or not mb:
                    continue
                xa = ma[0]
                xb = next((x for x in mb if x.pattern == xa.pattern), None)
                change = (xb.excess - xa.excess) if xb is not None else math.nan
                rows.append({"order": layer * a["model"]["n_heads"] + head, "label": label,
                             "url_a": site.head_url(a, label), "pattern_a": xa.pattern, "excess_a": _fmt(xa.excess, 2),
                             "url_b": site.head_url(b, label), "pattern_b": mb[0].pattern,
                             "excess_b": _fmt(mb[0].excess, 2), "change": _cell(change, 2)})
    site.write(site.compare_url(a, b), "compare.html", f"{ida} vs {idb}", {"kind": "compare"}, a=ida, b=idb,
               same_shape=same_shape, sections=sections, rows=rows)


def palette_json() -> str:
    return _json(palettes())
