"""Why a head scored, as HTML: the head's attention and the pattern's matrix as two tables over the
prompt's tokens, with the prompt's scores. Self-contained (inline CSS and a few lines of inline
script, nothing fetched), so the page opens offline, and the same fragment is the Jupyter view.

Hovering a cell of either grid shows its query token, key token, attention and target value in a
box above the grids, and outlines the same cell in the other grid (the script); every cell also
carries a `title` tooltip (prompts up to `TITLE_TOKENS` tokens) for viewers that run no script,
such as an untrusted notebook. Each cell holds its value in `data-v`; each row its query position
in `data-q`, and cell k of a row is key k. Cells the measures do not count are hatched; target
rows are marked "•". Colours come from `report.colors`, the scale of every other figure.
"""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patternlang.files import writing
from patternlang.report.colors import ColorScale, fit_scale
from patternlang.report.html import page
from patternlang.report.explain_text import token_notes
from patternlang.report.tokens import display_tokens
from patternlang.report.templating import render, trusted

if TYPE_CHECKING:
    from patternlang.engine.explanation import Explanation

TOKEN_WIDTH = 16  # characters of a token in a row or column header
TITLE_TOKENS = 128  # above this, cells carry no `title` (the page would grow by megabytes)
VALUE_TEXT_TOKENS = 32  # up to this, cells print their value too
LEVELS = 64  # colour levels: cells name a class per level instead of an inline style
TARGET_MARK = "•"

_CSS = """
.plw { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222; }
.plw h2 { font-size: 1.15em; margin: 0.2em 0; }
.plw h3 { font-size: 1em; margin: 0.6em 0 0.3em; }
.plw .plw-meta { color: #555; margin: 0.2em 0; }
.plw .plw-meta code { color: #333; }
.plw .plw-info { position: sticky; top: 0; z-index: 2; background: #fffef4; border: 1px solid #ddd;
  padding: 0.35em 0.6em; min-height: 2.6em; font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: 12px; white-space: pre-wrap; }
.plw .plw-panels { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.plw .plw-panel { flex: none; max-width: 100%; overflow: auto; }
.plw table.plw-grid { border-collapse: collapse; font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: var(--plw-font); }
.plw table.plw-grid td { width: var(--plw-cell); min-width: var(--plw-cell); height: var(--plw-cell);
  padding: 0; border: 1px solid #fff; text-align: center; font-size: 9px; }
.plw table.plw-grid td.x { background-image: repeating-linear-gradient(135deg, rgba(255,255,255,0.7) 0 1.5px,
  transparent 1.5px 4px); }
.plw table.plw-grid td.hi { outline: 2px solid #e41a1c; outline-offset: -2px; }
.plw table.plw-grid th { font-weight: normal; color: #444; padding: 0 0.3em; white-space: pre; }
.plw table.plw-grid th.r { text-align: right; }
.plw table.plw-grid th.r.t { color: #000; font-weight: bold; }
.plw table.plw-grid th.c { vertical-align: bottom; }
.plw table.plw-grid th.c span { writing-mode: vertical-rl; transform: rotate(180deg); display: inline-block; }
.plw table.plw-grid th.hi { background: #ffe9a8; }
.plw table.plw-grid th.axis { color: #888; font-style: italic; }
.plw .plw-legend { color: #555; font-size: 0.9em; margin-top: 0.6em; }
"""

# Event delegation on the explanation's own root, so several explanations on one page (a notebook)
# do not see each other; texts go in with textContent, never as HTML.
_SCRIPT = """
(function () {
  var root = document.getElementById(%(id)s);
  if (!root) return;
  var data = JSON.parse(root.querySelector("script.plw-data").textContent);
  var grids = root.querySelectorAll("table.plw-grid");
  var info = root.querySelector(".plw-info");
  var lit = [];
  function cell(grid, q, k) { var row = grids[grid].rows[q + 1]; return row ? row.cells[k + 1] : null; }
  function clear() { lit.forEach(function (e) { e.classList.remove("hi"); }); lit = []; }
  function light(e) { if (e) { e.classList.add("hi"); lit.push(e); } }
  root.addEventListener("mouseover", function (event) {
    var td = event.target.closest ? event.target.closest("td") : null;
    if (!td || !root.contains(td) || !td.parentNode.dataset.q) return;
    var q = +td.parentNode.dataset.q, k = td.cellIndex - 1;
    var a = cell(0, q, k), t = cell(1, q, k);
    clear(); light(a); light(t);
    light(grids[0].rows[q + 1].cells[0]); light(grids[1].rows[q + 1].cells[0]);
    light(grids[0].rows[0].cells[k + 1]); light(grids[1].rows[0].cells[k + 1]);
    var why = "";
    if (td.classList.contains("x")) {
      why = k === 0 && data.bos ? "key 0, exclude bos" : "the diagonal, exclude current";
    }
    info.textContent = "query " + q + " " + data.tokens[q] + "  \\u2192  key " + k + " " + data.tokens[k] +
      "\\nattention " + (a ? a.dataset.v : "?") + " \\u00b7 target " + (t ? t.dataset.v : "?") +
      (why ? " \\u00b7 not counted (" + why + ")" : "") +
      (data.targetRows[q] ? " \\u00b7 target row" : " \\u00b7 not a target row");
  });
  root.addEventListener("mouseleave", clear);
})();
"""


def _value(value: float) -> str:
    return "NaN" if math.isnan(value) else f"{value:.4g}"


def _level(scale: ColorScale, value: float) -> int | None:
    """The colour level of `value`, None for NaN."""
    if math.isnan(value):
        return None
    span = scale.vmax - scale.vmin
    position = 0.0 if span <= 0 else min(1.0, max(0.0, (value - scale.vmin) / span))
    return round(position * (LEVELS - 1))


def _level_css(prefix: str, scale: ColorScale, levels: set[int]) -> str:
    rules = []
    for level in sorted(levels):
        value = scale.vmin + (scale.vmax - scale.vmin) * level / (LEVELS - 1)
        rules.append(f".plw td.{prefix}{level} {{ {scale.css(value)} }}")
    rules.append(f".plw td.{prefix}n {{ {scale.css(math.nan)} }}")
    return "\n".join(rules)


def _sizes(n: int) -> tuple[int, int]:
    """Cell size and header font size in pixels: big enough to hover, small enough to fit."""
    cell = 22 if n <= 40 else 14 if n <= 80 else 8
    return cell, min(11, cell - 1)


def explanation_html(explanation: Explanation) -> str:
    """The explanation as an HTML fragment (a `div` with its own style and script): the Jupyter view."""
    why = explanation
    n = why.n_tokens
    root_id = f"plw-{uuid.uuid4().hex[:10]}"
    notes = token_notes(why, n)  # labelled spans and predictions, for patterns that read them
    full = [token + note for token, note in zip(display_tokens(list(why.tokens)), notes)]
    short = [token + note for token, note in zip(display_tokens(list(why.tokens), TOKEN_WIDTH), notes)]
    attention = why.attention.tolist()
    matrix = why.matrix.tolist()
    counted = why.counted.tolist()
    target_rows = why.target_rows.tolist()
    scales = {"a": fit_scale([why.attention]), "p": fit_scale([why.matrix])}
    used: dict[str, set[int]] = {"a": set(), "p": set()}
    with_titles = n <= TITLE_TOKENS
    with_text = n <= VALUE_TEXT_TOKENS

    def reason(q: int, k: int) -> str:
        return "key 0, exclude bos" if k == 0 and why.exclude_bos else "the diagonal, exclude current"

    def grid(prefix: str, values: list[list[float]], what: str) -> dict[str, Any]:
        scale = scales[prefix]
        rows = []
        for q in range(n):
            cells = []
            for k in range(q + 1):
                value = values[q][k]
                level = _level(scale, value)
                if level is not None:
                    used[prefix].add(level)
                text = ""
                if with_text and not math.isnan(value) and abs(value) >= 0.005:
                    text = f"{value:.2f}".removeprefix("0") if prefix == "a" else f"{value:.2g}"
                title = None
                if with_titles:
                    title = (f"query {q} {full[q]} → key {k} {full[k]}\nattention {_value(attention[q][k])} · "
                             f"target {_value(matrix[q][k])}")
                    if not counted[q][k]:
                        title += f" · not counted ({reason(q, k)})"
                cells.append({"classes": f"{prefix}{'n' if level is None else level}" + ("" if counted[q][k] else " x"),
                              "v": _value(value), "title": title, "text": text})
            rows.append({"q": q, "target": target_rows[q], "mark": f"{TARGET_MARK} " if target_rows[q] else "",
                         "full": full[q], "short": short[q], "cells": cells})
        return {"what": what, "name": "attention" if prefix == "a" else "pattern", "rows": rows}

    grids = [grid("a", attention, f"attention of {why.head}"), grid("p", matrix, f"pattern {why.pattern}")]
    cell, font = _sizes(n)
    style = _CSS + _level_css("a", scales["a"], used["a"]) + "\n" + _level_css("p", scales["p"], used["p"])
    scores = [why.scores_line()]
    for measure in why.scores:
        reason_text = why.why_undefined(measure)
        if reason_text:
            scores.append(f"{measure} undefined: {reason_text}")
    legend = (f"Rows are query positions, columns key positions; colours: attention {scales['a'].vmin:g} to "
              f"{scales['a'].vmax:g}, pattern {scales['p'].vmin:g} to {scales['p'].vmax:g}. "
              f"{TARGET_MARK} marks a target row (the rows mass, tv and argmax average over); hatched cells "
              "are not counted. Spaces show as ␣, newlines as \\n.")
    if not with_titles:
        legend += f" Cells carry no tooltips above {TITLE_TOKENS} tokens: the box above the grids needs the script."
    return render(
        "report/explanation.html", root_id=root_id, cell=cell, font=font, css=trusted(style), title=why.title,
        rule=why.rule, scores=scores, excluded=f"not counted: {why.excluded} (hatched)" if why.excluded else "",
        columns=[{"index": k, "full": full[k], "short": short[k]} for k in range(n)], grids=grids, legend=legend,
        data={"tokens": full, "targetRows": target_rows, "bos": why.exclude_bos, "current": why.exclude_current},
        script=trusted(_SCRIPT % {"id": json.dumps(root_id)})).rstrip("\n")


def save_explanation_html(explanation: Explanation, path: str | Path) -> Path:
    """Write the explanation as a self-contained HTML page (no network: inline CSS and script).

    >>> save_explanation_html(why, "why.html")  # doctest: +SKIP
    """
    with writing(path) as target:
        target.write_text(page(explanation.title, explanation_html(explanation)), encoding="utf-8")
    return Path(path)
