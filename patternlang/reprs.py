"""How `Pattern`, `Prompts` and `Scores` look in a notebook: short text reprs and `_repr_html_`.

Text reprs fit on a line or two however big the object is. The HTML is self-contained: inline
styles only (no style element, which JupyterLab and GitHub strip from untrusted output), no
script, nothing fetched; every text from a user, a file or a model is escaped, and the size is
bounded (a million prompts or a hundred patterns give a summary, not every item). A repr never
raises: when drawing fails, the HTML falls back to the escaped text repr.

The markup is in the autoescaping templates `templates/reprs/` (`report/templating.py`); this module
builds the data they show. Importing it imports no torch (a `Prompts` is torch-free): the Pattern and
Scores views import `report.data` (torch) when they draw. Only the values' `__repr__`/`_repr_html_`
import this module, when a value is shown.

>>> from patternlang.prompts import Prompts
>>> prompts_repr(Prompts(texts=("The cat sat.", "A dog ran on."), name="pets"))
"Prompts('pets', 2 texts, 12..13 characters, first: 'The cat sat.')"
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from markupsafe import Markup, escape

from patternlang.heads import parse_head
from patternlang.report.colors import BLANK_COLOR, fit_scale
from patternlang.report.templating import render as render_template
from patternlang.report.templating import trusted
from patternlang.report.tokens import display_tokens

if TYPE_CHECKING:
    from patternlang.engine.scores import Scores
    from patternlang.pattern import Pattern
    from patternlang.prompts import Prompts

ELLIPSIS = "…"
NAME_WIDTH = 60  # characters of a pattern or probe name in a repr
RULE_WIDTH = 160  # characters of a rule in a text repr
DOC_CHARS = 2_000  # characters of a docstring in HTML
SAMPLE_CHARS = 300  # characters of a text prompt shown as a sample
SAMPLE_IDS = 40  # token ids of a token-id prompt shown as a sample
MAX_TABLE_PATTERNS = 50  # rows of the top-heads table
MAX_PANELS = 12  # heatmaps drawn, one per pattern
MAX_HEATMAP_CELLS = 2_500  # heads drawn over all heatmaps together (about 60 bytes each)
TOP_K = 3  # best heads listed per pattern

# The sample prompt a Pattern's matrix is drawn on: "The unbelievable cat sat. The unbelievable
# cat sat down." as the embedded model's tokenizer splits it (ids and texts written out, so a repr
# needs no tokenizer): BOS, a word in two tokens, a repeated phrase, two sentences, punctuation.
SAMPLE_TOKEN_IDS = (1, 504, 33282, 16275, 2644, 2643, 30, 378, 33282, 16275, 2644, 2643, 1187, 30)
SAMPLE_STR_TOKENS = ("<|im_start|>", "The", " unbelie", "vable", " cat", " sat", ".", " The", " unbelie", "vable",
                     " cat", " sat", " down", ".")
SAMPLE_SPECIAL_IDS = (0, 1, 2)

# Inline styles (see the module docstring for why not a style sheet): constants of the code, given to
# every template of `templates/reprs/` as `s` (`s.box`...), unescaped.
_BOX = ("font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:13px;line-height:1.4;"
        "color:#222;max-width:100%;overflow-x:auto")
_MUTED = "color:#666"
_CODE = "font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:12px;background:#f4f4f4;padding:0 3px"
_PRE = f"{_CODE};white-space:pre-wrap;word-break:break-all;display:block;padding:3px 5px;margin:2px 0"
_TABLE = "border-collapse:collapse;margin:4px 0"
_TH = "text-align:left;font-weight:600;padding:1px 8px 1px 0;vertical-align:top;color:#444"
_TD = "text-align:left;padding:1px 8px 1px 0;vertical-align:top"
_GRID = "border-collapse:separate;border-spacing:1px;text-align:center;line-height:1;font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:10px;margin:4px 0"
_GRID_TH = "font-weight:normal;color:#555;padding:0 3px;white-space:pre;font-size:10px"
_STYLES = {"box": _BOX, "muted": _MUTED, "code": _CODE, "pre": _PRE, "table": _TABLE, "th": _TH, "td": _TD,
           "code_wrap": f"{_CODE};white-space:pre-wrap", "grid": _GRID, "grid_th": _GRID_TH}


def _render(template: str, /, **context: Any) -> Markup:
    """The template `template` of `templates/reprs/` rendered (autoescaped) with `context` and the
    styles `s`: HTML to show, or to put in another view's template as it is."""
    styles = {name: trusted(css) for name, css in _STYLES.items()}
    return Markup(render_template(f"reprs/{template}", s=styles, **context))


def shorten(text: str, width: int) -> str:
    """`text` on one line (whitespace runs become one space), cut to `width` characters with "…".

    >>> shorten("attend k\\n   where k == q - 1", 14)
    'attend k wher…'
    """
    one_line = " ".join(str(text).split())
    return one_line if len(one_line) <= width else one_line[: max(0, width - 1)] + ELLIPSIS


def safe_html(render: Callable[[Any], str], obj: Any) -> str:
    """`render(obj)`, or the escaped text repr when drawing fails: a repr must never raise."""
    try:
        return render(obj)
    except Exception as error:  # noqa: BLE001 - anything at all; the notebook must still show the object
        try:
            text = repr(obj)
        except Exception:  # noqa: BLE001
            text = object.__repr__(obj)
        note = f"(HTML view failed: {type(error).__name__}: {shorten(str(error), 200)})"
        try:
            return _render("fallback.html", text=text, note=note)
        except Exception:  # noqa: BLE001 - not even the template: the text alone, escaped
            return str(escape(f"{text} {note}"))


def _row(label: str, text: str, code: str | None = None) -> dict[str, Any]:
    """A row of a two-column table (`parts.table`): its label and text, set as code in the style
    named `code` (a key of `_STYLES`) if given."""
    return {"label": label, "text": text, "code": code}


def _names(names: Sequence[str], limit: int = 8) -> str:
    """Names joined with commas, at most `limit` of them, each shortened (plain text)."""
    shown = [shorten(n, NAME_WIDTH) for n in names[:limit]]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(shown) + more


# --------------------------------------------------------------------------- Pattern


def pattern_repr(pattern: Pattern) -> str:
    """One line: `Pattern('induction_head', rule='attend k where tok[k] == tok[q] shift +1 ...')`."""
    name, rule = str(pattern.name), str(pattern.rule or "")
    if not rule or name == rule:
        return f"Pattern({shorten(name, RULE_WIDTH)!r})"
    return f"Pattern({shorten(name, NAME_WIDTH)!r}, rule={shorten(rule, RULE_WIDTH)!r})"


def pattern_html(pattern: Pattern) -> Markup:
    """Name, docstring, rule, settings, where it was defined, and its matrix on the sample prompt."""
    settings = pattern.settings
    where = pattern.filename or ""
    if where and pattern.loc is not None:
        where += f":{pattern.loc.line}"
    doc = pattern.doc.strip()
    if len(doc) > DOC_CHARS:
        doc = doc[:DOC_CHARS] + ELLIPSIS
    measure = settings.measure or "mass (the default)"
    exclude = [word for word, on in (("bos", settings.exclude_bos), ("current", settings.exclude_current)) if on]
    rows = [
        _row("rule", str(pattern.rule), code="code_wrap"),
        _row("measure", str(measure)),
        _row("exclude", ", ".join(exclude) or "nothing"),
        _row("probe", str(settings.probe) if settings.probe else "none named (natural text)"),
        _row("reads", ", ".join(sorted(pattern.needs))),
    ]
    if settings.normalize:
        rows.append(_row("normalize", "rows scaled to sum 1"))
    return _render("pattern.html", name=shorten(pattern.name, 200), where=shorten(where, 200) if where else "",
                  doc=doc, rows=rows, matrix=Markup(safe_html(sample_matrix_html, pattern)))


def sample_offsets(str_tokens: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans of the sample's tokens in their joined text (BOS: `(0, 0)`)."""
    spans, position = [(0, 0)], 0
    for text in str_tokens[1:]:
        spans.append((position, position + len(text)))
        position += len(text)
    return spans


def sample_matrix_html(pattern: Pattern) -> Markup:
    """The pattern's detection matrix on the sample prompt, as a coloured grid with its summary."""
    from patternlang.report.data import summarize_matrix  # report/ (torch, numpy): only for the HTML views

    matrix = pattern.matrix(list(SAMPLE_TOKEN_IDS), list(SAMPLE_STR_TOKENS), special_ids=SAMPLE_SPECIAL_IDS,
                            offsets=sample_offsets(SAMPLE_STR_TOKENS))
    summary = summarize_matrix(matrix, list(SAMPLE_STR_TOKENS))
    return _render("sample_matrix.html", text="".join(SAMPLE_STR_TOKENS[1:]), summary=summary.describe(),
                  grid=matrix_grid(matrix, SAMPLE_STR_TOKENS))


def matrix_grid(matrix: Any, str_tokens: Sequence[str]) -> Markup:
    """A `[q, k]` matrix as an HTML table, coloured with the reports' scale (`report.colors`); the
    cells above the diagonal blank."""
    values = matrix.tolist() if hasattr(matrix, "tolist") else [list(row) for row in matrix]
    n = len(values)
    scale = fit_scale([values])
    names = display_tokens(list(str_tokens), 12)
    rows = []
    for q in range(n):
        cells: list[dict[str, str] | None] = []
        for k in range(q + 1):
            value = float(values[q][k])
            cells.append({"colors": f"background:{scale.hex(value)}" if value == 0 else scale.css(value),
                          "text": "" if value == 0 else f"{value:.2g}",
                          "tip": f"q {q} {names[q]} → k {k} {names[k]}: {value:g}"})
        cells += [None] * (n - q - 1)  # above the diagonal: blank
        rows.append({"name": names[q], "cells": cells})
    return _render("matrix_grid.html", names=names[:n], rows=rows, blank=BLANK_COLOR)


# --------------------------------------------------------------------------- Prompts


def _lengths(prompts: Prompts) -> list[int]:
    return [len(item) for item in prompts.items]


def _unit(prompts: Prompts) -> str:
    return "characters" if prompts.kind == "text" else "tokens"


def _sample(item: Any, width: int = SAMPLE_CHARS, ids: int = SAMPLE_IDS) -> str:
    """One prompt for showing: a text cut to `width` characters, or the first `ids` token ids."""
    if isinstance(item, str):
        return item if len(item) <= width else item[:width] + ELLIPSIS
    shown = ", ".join(str(i) for i in item[:ids])
    return f"({shown}{', …' if len(item) > ids else ''})"


def prompts_repr(prompts: Prompts) -> str:
    """One line: name, count, length range and the start of the first prompt."""
    lengths = _lengths(prompts)
    what = "texts" if prompts.kind == "text" else "token-id prompts"
    if len(lengths) == 1:
        what = what.replace("texts", "text").replace("prompts", "prompt")
    first = prompts.items[0]
    sample = repr(shorten(first, 50)) if isinstance(first, str) else _sample(first, ids=8)
    span = f"{min(lengths)}" if min(lengths) == max(lengths) else f"{min(lengths)}..{max(lengths)}"
    return (f"Prompts({shorten(prompts.name, NAME_WIDTH)!r}, {len(lengths):,} {what}, {span} {_unit(prompts)}, "
            f"first: {sample})")


def prompts_html(prompts: Prompts) -> Markup:
    """Name, description, count, lengths (min, median, max) and the first two prompts, cut short."""
    lengths = _lengths(prompts)
    kind = "texts (tokenized by the model, BOS prepended)" if prompts.kind == "text" else \
        "token ids (used exactly as given)"
    rows = [
        _row("prompts", f"{len(lengths):,}"),
        _row("kind", kind),
        _row(f"length ({_unit(prompts)})", f"min {min(lengths):,} · median {statistics.median(lengths):,g} · "
                                           f"max {max(lengths):,} · total {sum(lengths):,}"),
    ]
    for index in range(min(2, len(lengths))):
        rows.append(_row(f"prompt {index}", _sample(prompts.items[index]), code="pre"))
    description = shorten(prompts.description, 500) if prompts.description else ""
    return _render("prompts.html", name=shorten(prompts.name, 200), description=description, rows=rows)


# --------------------------------------------------------------------------- Scores


def sample_sizes(scores: Scores, pattern: str) -> dict[str, str]:
    """What one pattern's scores rest on, as column title -> text: the one place the Scores HTML
    reads sample sizes from.

    From the pattern's `Scores.evidence`: target rows (what the row measures average over),
    prompts with a target row of the prompts run, and the chance baseline of its measure. Scores
    without evidence (read from a version-1 file, or built by hand) show the run's totals.
    """
    evidence = scores.evidence.get(pattern)
    if evidence is None:
        return {"prompts": f"{scores.n_prompts:,}", "tokens": f"{scores.n_tokens:,}"}
    baseline = scores.baseline(pattern)
    return {
        "target rows": f"{evidence.n_rows:,}",
        "prompts with a target": f"{evidence.n_prompts:,} of {evidence.n_prompts_run:,}",
        "chance": "–" if math.isnan(baseline) else f"{baseline:.3f}",
    }


def _top_heads(scores: Scores, pattern: str) -> list[dict[str, str]]:
    """The best heads with their scores, and their 95% intervals where the scores have them."""
    top = scores.top(pattern, TOP_K)
    if not top:
        return []
    low, high = scores.interval(pattern)  # NaN where the scores hold no intervals
    heads = []
    for label, value in top:
        layer, head = parse_head(label)
        a, b = float(low[layer, head]), float(high[layer, head])
        interval = "" if math.isnan(a) or math.isnan(b) else f"[{a:.3f}, {b:.3f}]"
        heads.append({"label": label, "value": f"{value:.3f}", "interval": interval})
    return heads


def _patterns_table(scores: Scores) -> dict[str, Any]:
    """The patterns table's columns, rows (the first `MAX_TABLE_PATTERNS`) and how many more there are."""
    patterns = list(scores.patterns)
    undefined = dict(scores.settings).get("undefined") or {}
    sizes = {p: sample_sizes(scores, p) for p in patterns[:MAX_TABLE_PATTERNS]}
    columns = list(dict.fromkeys(c for row in sizes.values() for c in row))
    top_title = f"top {TOP_K} heads" + (" [95% interval]" if scores.ci_low else "")
    rows = []
    for pattern in patterns[:MAX_TABLE_PATTERNS]:
        reasons = ""
        if pattern in undefined:
            reasons = shorten("; ".join(f"{m}: {why}" for m, why in undefined[pattern].items()), 300)
        rows.append({"name": shorten(pattern, NAME_WIDTH), "measure": str(scores.measure_of(pattern)),
                     "top": _top_heads(scores, pattern), "undefined": reasons,
                     "sizes": [sizes[pattern].get(c, "") for c in columns]})
    return {"columns": ["pattern", "measure", top_title, *columns], "patterns": rows,
            "more": max(0, len(patterns) - MAX_TABLE_PATTERNS)}


def _exclusions_text(scores: Scores) -> str:
    exclusions = dict(scores.settings).get("exclusions") or {}
    groups: dict[str, list[str]] = {}
    for pattern, flags in exclusions.items():
        words = [w for w in ("bos", "current") if isinstance(flags, Mapping) and flags.get(w)]
        groups.setdefault(" and ".join(words) or "nothing", []).append(str(pattern))
    if not groups:
        return "not recorded"
    if len(groups) == 1:
        return f"{next(iter(groups))} (every pattern)"
    return "; ".join(f"{what}: {_names(names)}" for what, names in groups.items())


def provenance_rows(scores: Scores) -> list[tuple[str, str]]:
    """Where the scores come from, as (label, text) rows: model, prompts, heads, measures, settings."""
    settings = dict(scores.settings)
    rows = [
        ("model", str(scores.model)),
        ("prompts", f"{scores.n_prompts:,} prompts · {scores.n_tokens:,} tokens"),
        ("heads", f"{scores.n_layers} layers × {scores.n_heads} heads"
                  + (f" · scored: {shorten(str(settings['heads']), 200)}" if settings.get("heads") else "")),
        ("patterns", f"{len(scores.patterns):,}"),
        ("measures", ", ".join(scores.measures)),
        ("excluded keys", _exclusions_text(scores)),
    ]
    run = [f"{k.replace('_', ' ')} {settings[k]}" for k in ("batch_size", "n_batches", "prepend_bos") if k in settings]
    path = settings.get("attention") or {}
    if path.get("path") == "mixed":
        run.append("attention partly in query blocks of "
                   f"{path['paths'].get('blocks', {}).get('query_block')}, partly from hook_pattern")
    elif path.get("path") == "blocks":
        run.append(f"attention in query blocks of {path.get('query_block')}")
    elif path.get("path"):
        run.append(f"attention from {path['path']} ({path.get('why', '')})")
    if run:
        rows.append(("run", " · ".join(run)))
    return rows


def heatmap_html(scores: Scores) -> Markup:
    """Layer × head grids, one per pattern (the first `MAX_PANELS`, within `MAX_HEATMAP_CELLS`)."""
    from patternlang.report.data import MISSING, heatmap_panels  # report/data imports torch: only for this view

    cells_per_panel = max(1, scores.n_layers * scores.n_heads)
    n_panels = max(1, min(len(scores.patterns), MAX_PANELS, MAX_HEATMAP_CELLS // cells_per_panel))
    panels = heatmap_panels(scores, None)[:n_panels]
    scale = fit_scale([p.grid for p in panels])
    size = 12 if scores.n_heads <= 16 else 6
    shown = []
    for panel in panels:
        n_layers, n_heads = panel.grid.shape
        best = panel.best[:2] if panel.best is not None else None
        rows = []
        for layer in range(n_layers):
            cells = []
            for head in range(n_heads):
                value = float(panel.grid[layer, head])
                tip = f"L{layer}H{head} {value:.4f}" if not math.isnan(value) else f"L{layer}H{head} not scored"
                cells.append({"color": scale.hex(value), "best": best == (layer, head), "tip": tip})
            rows.append(cells)
        shown.append({"title": shorten(panel.title(False).replace("\n", " · "), 90), "n_heads": n_heads,
                      "rows": rows})
    notes = [f"colour scale {scale.vmin:g} to {scale.vmax:g}, shared", f"grey {MISSING}: not scored",
             "outlined: best head", "hover a cell for its score"]
    if n_panels < len(scores.patterns):
        notes.append(f"showing {n_panels} of {len(scores.patterns)} patterns (save_heatmap draws all)")
    return _render("heatmaps.html", panels=shown, size=size, mark=scale.mark, notes=" · ".join(notes))


def scores_html(scores: Scores) -> Markup:
    """Provenance, the best heads and sample sizes per pattern, and a layer × head heatmap per pattern."""
    shape = f"{len(scores.patterns):,} patterns × {scores.n_layers} layers × {scores.n_heads} heads"
    provenance = [_row(label, text) for label, text in provenance_rows(scores)]
    heatmaps = Markup(safe_html(heatmap_html, scores)) if scores.patterns else ""
    return _render("scores.html", shape=shape, provenance=provenance, **_patterns_table(scores), heatmaps=heatmaps)
