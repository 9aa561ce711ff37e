"""The atlas as a static site, rendered from atlas documents alone (no model, no torch).

    DIR/index.html                 models, patterns, comparisons, search
    DIR/models/ID.html             the layer x head grid (filters), a sortable table of heads, provenance
    DIR/heads/ID/L5H1.html         one head: every pattern's score with its evidence, statistics, examples
    DIR/patterns/NAME.html         rule, docstring, matrix on a sample prompt, mosaic across models
    DIR/compare/A__B.html          two models head by head (same shape) or side by side
    DIR/assets/                    atlas.css, atlas.js, search-index.js (no CDN, no network)
    DIR/data/ID.json               the documents themselves

Pages open from disk: data a page's script reads is inline (`<script type="application/json">`),
the search index a `<script src>` beside it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from patternlang.atlas.assets import CSS, palettes, script
from patternlang.atlas.document import check_document
from patternlang.atlas.ranking import contenders, head_matches
from patternlang.files import inside, safe_file_name
from patternlang.heads import head_label
from patternlang.report.html import escape

MOSAIC_HEIGHT = 220  # pixels: every model's layers span the same height (depth-normalised)
MOSAIC_WIDTH = 120
DATA_DIR = "data"  # the documents, `DIR/data/ID.json` (atlas/__init__.py)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


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

    def write(self, url: str, title: str, body: str, data: Any = None) -> None:
        depth = url.count("/")
        root = "../" * depth
        payload = f'<script type="application/json" id="atlas-data">{_json(data)}</script>\n' if data is not None else ""
        text = (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{escape(title)} · patternlang atlas</title>\n"
            f'<link rel="stylesheet" href="{root}assets/atlas.css">\n</head>\n'
            f'<body data-root="{root}">\n<header class="top"><a href="{root}index.html">patternlang atlas</a>'
            + "".join(f'<a href="{root}{self.model_url(d)}">{escape(d["model"]["id"])}</a>' for d in self.docs)
            + '<span class="search"><input id="search" type="search" placeholder="find a head (L18H6), pattern or model" '
            'autocomplete="off"><span id="search-results"></span></span></header>\n'
            f"<main>\n{body}\n</main>\n{payload}"
            f'<script src="{root}assets/search-index.js"></script>\n<script src="{root}assets/atlas.js"></script>\n'
            "</body>\n</html>\n"
        )
        path = inside(self.out, url)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.written.append(path)


def render_site(docs: Sequence[Mapping[str, Any]], out: str | Path) -> list[Path]:
    """Write the whole site for `docs` (atlas documents) into `out`; returns the files written.

    >>> render_site([doc], "atlas")  # then open atlas/index.html  # doctest: +SKIP
    """
    for doc in docs:
        check_document(doc)
    site = Site(sorted(docs, key=lambda d: d["model"]["id"]), Path(out))
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


def _index_page(site: Site) -> None:
    rows = []
    for doc in site.docs:
        m = doc["model"]
        rows.append(f'<tr><td><a href="{site.model_url(doc)}">{escape(m["id"])}</a></td><td>{escape(m["name"])}</td>'
                    f'<td class="n">{m["n_layers"]}</td><td class="n">{m["n_heads"]}</td>'
                    f'<td class="n">{len(doc["patterns"])}</td><td>{escape(m.get("quantisation") or "–")}</td>'
                    f'<td>{escape(doc.get("updated", ""))}</td></tr>')
    patterns = []
    for name in site.patterns:
        entry = _pattern_entry(site, name)
        patterns.append(f'<tr><td><a href="{site.pattern_url(name)}">{escape(name)}</a></td>'
                        f'<td>{escape(entry.get("description") or entry.get("doc") or "")}</td>'
                        f'<td><code>{escape(entry.get("probe", ""))}</code></td></tr>')
    compares = [f'<li><a href="{site.compare_url(a, b)}">{escape(a["model"]["id"])} vs {escape(b["model"]["id"])}</a></li>'
                for i, a in enumerate(site.docs) for b in site.docs[i + 1:]]
    body = (
        "<h1>Head atlas</h1>\n<p class=\"meta\">Every attention head of every model below, scored against every "
        "pattern on the pattern's own probe, with sample sizes, chance baselines and 95% intervals. "
        "Rendered from the JSON documents in <code>data/</code>.</p>\n"
        '<h2>Models</h2>\n<table class="data sortable"><thead><tr><th>model</th><th>name</th><th>layers</th>'
        "<th>heads</th><th>patterns</th><th>quantisation</th><th>updated</th></tr></thead><tbody>\n"
        + "\n".join(rows) + "\n</tbody></table>\n"
        '<h2>Patterns</h2>\n<table class="data sortable"><thead><tr><th>pattern</th><th>what it detects</th>'
        "<th>probe</th></tr></thead><tbody>\n" + "\n".join(patterns) + "\n</tbody></table>\n"
        + ("<h2>Comparisons</h2>\n<ul>" + "".join(compares) + "</ul>\n" if compares else "")
    )
    site.write("index.html", "Head atlas", body)


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
    data = {
        "kind": "model", "patterns": names, "hues": {p: site.hues[p] for p in names},
        "short": _short_names(names),
        "own": {p: doc["patterns"][p].get("measure") or doc["measures"][0] for p in names},
        "bounds": doc.get("measure_bounds", {}),
        "scores": {meas: {p: e["scores"][meas] for p, e in doc["patterns"].items() if meas in e["scores"]}
                   for meas in doc["measures"]},
        "baseline": {p: e.get("baseline", {}) for p, e in doc["patterns"].items()},
        "n": {p: [e.get("n_rows", 0), e.get("n_prompts", 0)] for p, e in doc["patterns"].items()},
    }
    header = "".join(f"<th>H{h}</th>" for h in range(n_heads))
    rows = [f"<tr><th></th>{header}</tr>"]
    for layer in range(n_layers):
        cells = "".join(
            f'<td class="cell" data-layer="{layer}" data-head="{h}" data-label="{head_label(layer, h)}">'
            f'<a href="../{site.head_url(doc, head_label(layer, h))}"></a></td>' for h in range(n_heads))
        rows.append(f"<tr><th>L{layer}</th>{cells}</tr>")
    options = "".join(f'<option value="{escape(p)}">{escape(p)}</option>' for p in names)
    measures = "".join(f'<option value="{escape(x)}">{escape(x)}</option>' for x in doc["measures"])
    shorts = _short_names(names)
    legend = "".join(f'<span class="sw" style="background:hsl({site.hues[p]},70%,45%)"></span>{escape(shorts[p])} '
                     f"{escape(p)}" for p in names)
    stats = doc.get("stats") or {}
    table = []
    for layer in range(n_layers):
        for head in range(n_heads):
            label = head_label(layer, head)
            matches = head_matches(doc, layer, head)
            top = matches[0] if matches else None
            also = [x.pattern for x in contenders(matches)[1:]]
            stat = [_stat(stats, key, layer, head) for key in ("bos", "distance", "entropy")]
            table.append(
                f'<tr data-layer="{layer}" data-head="{head}"><td data-v="{layer * n_heads + head}">'
                f'<a href="../{site.head_url(doc, label)}">{label}</a></td>'
                f"<td>{escape(top.pattern if top else '–')}</td>"
                f'<td class="n" data-v="{_v(top.score if top else None)}">{_fmt(top.score if top else None)}</td>'
                f'<td class="n" data-v="{_v(top.baseline if top else None)}">{_fmt(top.baseline if top else None)}</td>'
                f'<td class="n" data-v="{_v(top.lift if top else None)}">{_fmt(top.lift if top else None, 1)}</td>'
                f'<td class="n" data-v="{_v(top.excess if top else None)}">{_fmt(top.excess if top else None, 2)}</td>'
                f'<td class="n" data-v="{top.n_prompts if top else ""}">{top.n_prompts if top else "–"}</td>'
                f"<td>{escape(', '.join(also))}</td>"
                + "".join(f'<td class="n" data-v="{_v(s)}">{_fmt(s, 2)}</td>' for s in stat) + "</tr>")
    body = (
        f"<h1>{escape(m['id'])}</h1>\n" + _provenance(doc) +
        '<h2>Heads</h2>\n<div class="controls">'
        f'<label>colour by <select id="f-pattern"><option value="">best-matching pattern</option>{options}</select></label>'
        f'<label>measure <select id="f-measure"><option value="own">each pattern\'s own</option>{measures}</select></label>'
        '<label>threshold (excess over chance) <input id="f-threshold" type="range" min="0" max="1" step="0.05" value="0.2">'
        ' <span id="f-threshold-value">0.20</span></label></div>\n'
        '<div id="hover">hover a head: its best pattern, score, chance, lift and sample size; click: its page</div>\n'
        f'<table class="heads" id="head-grid">\n' + "\n".join(rows) + "\n</table>\n"
        '<p class="legend meta">Colour: the pattern a head matches best, by excess over chance '
        "(score − chance) / (1 − chance); darker is higher; grey: below the threshold. " + legend + "</p>\n"
        '<h2>All heads</h2>\n<table class="data sortable" id="head-table"><thead><tr><th>head</th><th>best pattern</th>'
        "<th>score</th><th>chance</th><th>lift</th><th>excess</th><th>prompts</th><th>also matches</th>"
        "<th>BOS share</th><th>mean distance</th><th>entropy</th></tr></thead><tbody>\n"
        + "\n".join(table) + "\n</tbody></table>\n"
    )
    site.write(site.model_url(doc), m["id"], body, data)


def _stat(stats: Mapping[str, Any], key: str, layer: int, head: int) -> float | None:
    grid = stats.get(key)
    return grid[layer][head] if grid else None


def _provenance(doc: Mapping[str, Any]) -> str:
    m = doc["model"]
    probes = "; ".join(f"<code>{escape(k)}</code>: {v['n_prompts']} {escape(v.get('kind', ''))} prompts"
                       + (f" ({escape(v['description'])})" if v.get("description") else "")
                       for k, v in doc.get("probes", {}).items())
    stats = doc.get("stats") or {}
    return (f'<p class="meta">{escape(m["name"])} · {m["n_layers"]} layers x {m["n_heads"]} heads · '
            f'quantisation: {escape(m.get("quantisation") or "none")} · patternlang {escape(doc.get("patternlang", ""))} · '
            f'updated {escape(doc.get("updated", ""))}<br>prompts: {probes}'
            + (f"<br>statistics over {stats.get('n_prompts')} {escape(stats.get('probe', ''))} prompts "
               f"({stats.get('n_rows')} query rows)" if stats else "")
            + f' · <a href="../{escape(DATA_DIR + "/" + safe_name(m["id"]))}.json">the JSON document</a></p>\n')


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
        flat = sorted((v for row in grid for v in row if v is not None), reverse=True)
        place = (flat.index(x.score) + 1) if x.score is not None and not math.isnan(x.score) and x.score in flat else None
        rows.append(
            f'<tr data-pattern="{escape(x.pattern)}"><td><a href="../../{site.pattern_url(x.pattern)}">{escape(x.pattern)}</a></td>'
            f"<td>{escape(x.measure)}</td><td class=\"n score\" data-v=\"{_v(x.score)}\">{_fmt(x.score)}</td>"
            f'<td class="n">{_fmt(x.ci_low)} – {_fmt(x.ci_high)}</td>'
            f'<td class="n" data-v="{_v(x.baseline)}">{_fmt(x.baseline)}</td>'
            f'<td class="n" data-v="{_v(x.lift)}">{_fmt(x.lift, 1)}</td>'
            f'<td class="n" data-v="{_v(x.excess)}">{_fmt(x.excess, 2)}</td>'
            f'<td class="n" data-v="{x.n_rows}">{x.n_rows}</td><td class="n" data-v="{x.n_prompts}">{x.n_prompts}</td>'
            f'<td class="n" data-v="{place or ""}">{place or "–"} of {m["n_layers"] * m["n_heads"]}</td></tr>')
    if len(near) > 1:
        verdict = ('<p class="note ambiguous">Ambiguous: this head matches ' + ", ".join(
            f"<b>{escape(x.pattern)}</b> ({_fmt(x.excess, 2)})" for x in near)
            + f" about equally well (excess over chance within {0.1:g} of the best).</p>")
    elif near:
        verdict = f'<p class="note">Best match: <b>{escape(near[0].pattern)}</b> (excess over chance {_fmt(near[0].excess, 2)}).</p>'
    else:
        verdict = '<p class="note">No pattern clearly matches this head (every excess over chance is below 0.2).</p>'
    stat = [_stat(stats, key, layer, head) for key in ("bos", "distance", "entropy")]
    stat_line = (f'<p class="meta stats">share of attention on BOS <b>{_fmt(stat[0], 2)}</b> · mean attention distance '
                 f'<b>{_fmt(stat[1], 1)}</b> tokens · entropy <b>{_fmt(stat[2], 2)}</b> nats '
                 f"(over {stats.get('n_prompts', 0)} {escape(stats.get('probe', ''))} prompts)</p>") if stats else ""
    drawn = doc.get("heads", {}).get(label)
    examples, prompts, views = [], {}, []
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
            kind = "matches most" if ex.get("kind", "best") == "best" else "matches least"
            views.append(f'<div class="view" data-example="{len(examples) - 1}"><h3>prompt {ex["prompt"]} of '
                         f'<code>{escape(ex["probe"])}</code> ({kind} of the first {len(entry.get("example_scores", []))}):'
                         f' {escape(drawn["pattern"])} {_fmt(ex["score"])}'
                         f'{" (first " + str(ex["n_tokens"]) + " tokens drawn)" if ex["n_tokens"] >= 64 else ""}</h3>'
                         '<div class="info meta">hover a cell: query and key tokens, attention and target</div></div>')
        previews = doc.get("probes", {}).get(entry.get("probe"), {}).get("previews")
        lists = []
        for word, table in (("most", entry.get("best_prompts")), ("least", entry.get("worst_prompts"))):
            if table:
                items = "".join(f"<li>prompt {i}: {_fmt(score)}"
                                + (f' <span class="meta">{escape(previews[i])}…</span>' if previews and i < len(previews)
                                   else "") + "</li>" for i, score in table[layer][head])
                lists.append(f"<p>Where it matches {escape(drawn['pattern'])} {word} (of all "
                             f"{entry.get('n_prompts_run', '?')} prompts):</p><ul class=\"prompts-{word}\">{items}</ul>")
        views.insert(0, '<div class="lists">' + "".join(lists) + "</div>")
    nav = []
    if head > 0 or layer > 0:
        prev = (layer, head - 1) if head > 0 else (layer - 1, m["n_heads"] - 1)
        nav.append(f'<a href="{head_label(*prev)}.html">← {head_label(*prev)}</a>')
    nav.append(f'<a href="../../{site.model_url(doc)}">{escape(m["id"])}</a>')
    if (layer, head) != (m["n_layers"] - 1, m["n_heads"] - 1):
        nxt = (layer, head + 1) if head + 1 < m["n_heads"] else (layer + 1, 0)
        nav.append(f'<a href="{head_label(*nxt)}.html">{head_label(*nxt)} →</a>')
    body = (
        f"<h1>{label} · {escape(m['id'])}</h1>\n<p class=\"meta\">{' · '.join(nav)}</p>\n{verdict}\n{stat_line}\n"
        '<h2>Scores on every pattern</h2>\n<table class="data sortable" id="scores"><thead><tr><th>pattern</th>'
        "<th>measure</th><th>score</th><th>95% interval</th><th>chance</th><th>lift</th><th>excess</th>"
        "<th>rows</th><th>prompts</th><th>rank</th></tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>\n"
        + (f"<h2>Attention beside {escape(drawn['pattern'])}</h2>\n" + '<div class="views">' + "\n".join(views) + "</div>"
           if drawn else "")
    )
    data = {"kind": "head", "head": label, "examples": examples, "prompts": prompts}
    site.write(site.head_url(doc, label), f"{label} {m['id']}", body, data)


# --------------------------------------------------------------------------- pattern


def _mosaic_svg(site: Site, doc: Mapping[str, Any], name: str, values: Any, *, diverging: bool = False,
                prefix: str = "../") -> str:
    """A layer x head heatmap at a fixed height: layers as relative depth, so models of any size compare."""
    from patternlang.atlas.assets import palettes as colours

    pal = colours()["div" if diverging else "seq"]
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
            rects.append(f'<a href="{prefix}{site.head_url(doc, label)}"><rect x="{head * w:.2f}" y="{layer * h:.2f}" '
                         f'width="{w:.2f}" height="{h:.2f}" fill="{colour}"><title>{label} {escape(name)}: '
                         f"{_fmt(value)}</title></rect></a>")
    return (f'<svg class="mosaic-svg" width="{MOSAIC_WIDTH}" height="{MOSAIC_HEIGHT}" viewBox="0 0 {MOSAIC_WIDTH} '
            f'{MOSAIC_HEIGHT}" role="img">' + "".join(rects) + "</svg>")


def _excess_grid(doc: Mapping[str, Any], name: str) -> list[list[float]]:
    from patternlang.atlas.ranking import excess, pattern_measure

    entry = doc["patterns"][name]
    meas = pattern_measure(doc, name)
    upper = (doc.get("measure_bounds", {}).get(meas) or [None, None])[1]
    base = entry.get("baseline", {}).get(meas)
    return [[excess(v, base, upper) for v in row] for row in entry["scores"][meas]]


def _pattern_page(site: Site, name: str) -> None:
    entry = _pattern_entry(site, name)
    sample_doc = next(d for d in site.docs if name in d["patterns"])
    sample = entry.get("sample")
    data: dict[str, Any] = {"kind": "pattern", "head": "", "examples": [], "prompts": {}}
    sample_html = ""
    if sample:
        tokens = sample_doc.get("prompts", {}).get(entry["probe"], {}).get(str(sample["prompt"]))
        if tokens:
            key = f"{entry['probe']}#{sample['prompt']}"
            data["prompts"][key] = tokens[:sample["n_tokens"]]
            data["examples"].append({"key": key, "n": sample["n_tokens"], "sparse": _sparse(sample["matrix"]),
                                     "pattern": name})
            sample_html = (f"<h2>Compiled matrix on a sample prompt</h2>\n<p class=\"meta\">prompt 0 of "
                           f"<code>{escape(entry['probe'])}</code> tokenized by {escape(sample_doc['model']['id'])}, "
                           f"first {sample['n_tokens']} tokens</p>\n"
                           '<div class="view" data-example="0"><div class="info meta">hover a cell</div></div>')
    figures, tops = [], []
    for doc in site.docs:
        if name not in doc["patterns"]:
            continue
        e = doc["patterns"][name]
        grid = _excess_grid(doc, name)
        ranked = sorted(((v, layer, head) for layer, row in enumerate(grid) for head, v in enumerate(row)
                         if v is not None and math.isfinite(v)), reverse=True)[:3]
        best = ", ".join(f'<a href="../{site.head_url(doc, head_label(la, he))}">{head_label(la, he)}</a> '
                         f"{_fmt(v, 2)}" for v, la, he in ranked)
        figures.append(f'<figure>{_mosaic_svg(site, doc, name, grid)}<figcaption><b>{escape(doc["model"]["id"])}</b> '
                       f'({doc["model"]["n_layers"]}x{doc["model"]["n_heads"]}); n = {e.get("n_rows", 0)} rows, '
                       f'{e.get("n_prompts", 0)} prompts; best: {best}</figcaption></figure>')
        tops.append(doc["model"]["id"])
    body = (
        f"<h1>{escape(name)}</h1>\n<p class=\"meta\">{escape(entry.get('description') or '')}</p>\n"
        f'<pre class="rule">{escape(entry.get("rule", ""))}</pre>\n'
        + (f"<p>{escape(entry['doc'])}</p>\n" if entry.get("doc") else "")
        + f'<p class="meta">probe <code>{escape(entry.get("probe", ""))}</code> · measure {escape(entry.get("measure", ""))}'
        f' · exclusions {escape(json.dumps(entry.get("exclusions", {})))}'
        + (f" · from {escape(entry['file'])}" if entry.get("file") else "") + "</p>\n"
        + sample_html
        + f"\n<h2>Mosaic across {len(tops)} model{'s' if len(tops) != 1 else ''}</h2>\n"
        '<p class="meta">Each model\'s layer x head grid at the same height (layer 0 at the top, the last layer at '
        "the bottom), so depth compares across sizes; colour: excess over chance (0 to 1).</p>\n"
        f'<div class="mosaic">{"".join(figures)}</div>\n'
    )
    site.write(site.pattern_url(name), name, body, data)


# --------------------------------------------------------------------------- compare


def _compare_page(site: Site, a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
    ida, idb = a["model"]["id"], b["model"]["id"]
    shared = [p for p in a["patterns"] if p in b["patterns"]]
    same_shape = (a["model"]["n_layers"], a["model"]["n_heads"]) == (b["model"]["n_layers"], b["model"]["n_heads"])
    sections = []
    for name in shared:
        ga, gb = _excess_grid(a, name), _excess_grid(b, name)
        figures = [f'<figure>{_mosaic_svg(site, a, name, ga)}<figcaption>{escape(ida)}</figcaption></figure>',
                   f'<figure>{_mosaic_svg(site, b, name, gb)}<figcaption>{escape(idb)}</figcaption></figure>']
        if same_shape:
            diff = [[(y - x) if math.isfinite(x) and math.isfinite(y) else math.nan for x, y in zip(ra, rb)]
                    for ra, rb in zip(ga, gb)]
            figures.append(f'<figure>{_mosaic_svg(site, b, name, diff, diverging=True)}<figcaption>{escape(idb)} − '
                           f"{escape(ida)}</figcaption></figure>")
        sections.append(f'<h2><a href="../{site.pattern_url(name)}">{escape(name)}</a></h2><div class="mosaic">'
                        + "".join(figures) + "</div>")
    table = ""
    if same_shape:
        rows = []
        for layer in range(a["model"]["n_layers"]):
            for head in range(a["model"]["n_heads"]):
                label = head_label(layer, head)
                ma, mb = head_matches(a, layer, head), head_matches(b, layer, head)
                if not ma or not mb:
                    continue
                xa = ma[0]
                xb = next((x for x in mb if x.pattern == xa.pattern), None)
                change = (xb.excess - xa.excess) if xb is not None else math.nan
                rows.append(f'<tr><td data-v="{layer * a["model"]["n_heads"] + head}">{label}</td>'
                            f'<td><a href="../{site.head_url(a, label)}">{escape(xa.pattern)}</a> {_fmt(xa.excess, 2)}</td>'
                            f'<td><a href="../{site.head_url(b, label)}">{escape(mb[0].pattern)}</a> {_fmt(mb[0].excess, 2)}</td>'
                            f'<td class="n" data-v="{_v(change)}">{_fmt(change, 2)}</td></tr>')
        table = ('<h2>Head by head</h2>\n<table class="data sortable"><thead><tr><th>head</th>'
                 f"<th>best in {escape(ida)} (excess)</th><th>best in {escape(idb)}</th>"
                 f"<th>change of {escape(ida)}'s best</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    body = (f"<h1>{escape(ida)} vs {escape(idb)}</h1>\n<p class=\"meta\">"
            + ("Same shape: compared head by head (B − A in the third mosaic, red: lower, blue: higher)."
               if same_shape else "Different shapes: each pattern's mosaic side by side, at the same height so depth "
               "compares.") + f" {len(shared)} patterns in both.</p>\n" + table + "\n".join(sections))
    site.write(site.compare_url(a, b), f"{ida} vs {idb}", body, {"kind": "compare"})


def palette_json() -> str:
    return _json(palettes())
