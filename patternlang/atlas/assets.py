"""The atlas site's one style sheet and one script, written beside the pages (`assets/`), so every
page opens from disk with no server and no network. Colours come from `report.colors`.

The script reads each page's data from `<script type="application/json" id="atlas-data">` and
puts texts in with `textContent`, never as HTML.
"""

from __future__ import annotations

import json

from patternlang.report.colors import ColorScale

LEVELS = 64


def palettes() -> dict[str, list[str]]:
    """The sequential scale over [0, 1] and the diverging one over [-1, 1], `LEVELS` colours each."""
    sequential = ColorScale(0.0, 1.0, "sequential")
    diverging = ColorScale(-1.0, 1.0, "diverging")
    return {"seq": [sequential.hex(i / (LEVELS - 1)) for i in range(LEVELS)],
            "div": [diverging.hex(-1 + 2 * i / (LEVELS - 1)) for i in range(LEVELS)]}


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0; color: #222; }
header.top { display: flex; gap: 1.2em; align-items: center; background: #1f3b5b; color: #fff; padding: 0.5em 1.2em; }
header.top a { color: #fff; text-decoration: none; font-weight: 600; }
header.top .search { margin-left: auto; position: relative; }
header.top input { width: 22em; padding: 0.3em 0.5em; border-radius: 4px; border: none; }
#search-results { position: absolute; right: 0; top: 2.1em; background: #fff; color: #222; min-width: 22em;
  box-shadow: 0 2px 8px rgba(0,0,0,0.3); z-index: 10; max-height: 60vh; overflow: auto; }
#search-results a { display: block; padding: 0.25em 0.6em; color: #1f3b5b; font-weight: normal; }
#search-results a:hover, #search-results a.sel { background: #eef3fa; }
#search-results small { color: #777; margin-left: 0.5em; }
main { padding: 0.8em 1.5em 2em; }
h1 { font-size: 1.35em; margin: 0.3em 0; }
h2 { font-size: 1.1em; margin: 1.3em 0 0.4em; border-bottom: 1px solid #ddd; }
p.meta, .meta { color: #555; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }
pre.rule { background: #f6f8fa; padding: 0.6em; white-space: pre-wrap; }
table.data { border-collapse: collapse; font-size: 13px; }
table.data th, table.data td { padding: 0.2em 0.6em; border-bottom: 1px solid #eee; text-align: left; }
table.data td.n { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th.asc::after { content: " \\25B2"; } table.sortable th.desc::after { content: " \\25BC"; }
.controls { display: flex; gap: 1.2em; flex-wrap: wrap; align-items: center; margin: 0.5em 0; }
table.heads { border-collapse: separate; border-spacing: 1px; font-size: 10px; }
table.heads td.cell { width: 30px; height: 18px; padding: 0; text-align: center; background: #eee; }
table.heads td.cell a { display: block; width: 100%; height: 100%; color: inherit; text-decoration: none; line-height: 18px; }
table.heads th { font-weight: normal; color: #666; padding: 0 0.3em; }
.legend span.sw { display: inline-block; width: 0.9em; height: 0.9em; margin: 0 0.25em 0 0.7em; vertical-align: -0.1em; }
#hover { position: sticky; top: 0; background: #fffef4; border: 1px solid #ddd; padding: 0.3em 0.6em; min-height: 1.3em;
  font-size: 13px; z-index: 2; }
.note { background: #fff4e0; border-left: 4px solid #f0a020; padding: 0.4em 0.8em; margin: 0.6em 0; }
.mosaic { display: flex; flex-wrap: wrap; gap: 1.2em; align-items: flex-start; }
.mosaic figure { margin: 0; } .mosaic figcaption { font-size: 12px; color: #444; max-width: 180px; }
.views { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.view h3 { font-size: 0.95em; margin: 0.8em 0 0.3em; }
table.attn { border-collapse: collapse; font-family: "DejaVu Sans Mono", Menlo, monospace; font-size: 9px; }
table.attn td { width: 7px; height: 7px; padding: 0; border: 0; }
table.attn td.hi { outline: 2px solid #e41a1c; outline-offset: -1px; }
table.attn th { font-weight: normal; color: #555; white-space: pre; padding: 0 3px; text-align: right; font-size: 9px; }
.pair { display: flex; gap: 1em; }
svg.heatmap text, svg.colourbar text { font-size: 9px; fill: #444; }
.colour-bar { display: inline-block; margin: 0.3em 0; } .colour-bar .bar-label { font-size: 12px; color: #444; }
figure.compare-map { max-width: 260px; } figure.compare-map table.top { margin-top: 0.3em; }
table.best tr.explained td { background: #f3f3f3; color: #777; } b.explained, b.failed { color: #b35900; }
.tokens span { padding: 0 1px; } .tokens span.q { background: #ffe08a; } .tokens span.k { background: #9fd0ff; }
"""

SCRIPT = r"""
(function () {
  "use strict";
  var root = document.body.dataset.root || "";
  var P = %(palettes)s;
  function dataOf() { var e = document.getElementById("atlas-data"); return e ? JSON.parse(e.textContent) : null; }
  function level(x) { return Math.max(0, Math.min(P.seq.length - 1, Math.round(x * (P.seq.length - 1)))); }
  function seq(x) { return isFinite(x) && x !== null ? P.seq[level(x)] : "#d9d9d9"; }
  function div(x) { return isFinite(x) && x !== null ? P.div[level((Math.max(-1, Math.min(1, x)) + 1) / 2)] : "#d9d9d9"; }
  function ink(x) { return isFinite(x) && x !== null && x > 0.6 ? "#fff" : "#222"; }
  function fmt(x, d) { return x === null || x === undefined || !isFinite(x) ? "–" : x.toFixed(d === undefined ? 3 : d); }
  function excess(s, b, hi) {
    if (s === null || b === null || s === undefined || b === undefined) return NaN;
    return (hi !== null && hi !== undefined && hi > b) ? (s - b) / (hi - b) : s - b;
  }
  // the pattern's way up (ranking.strength): excess over chance, mirrored when ranked lowest; a signed
  // measure's score itself (negated when ranked lowest), chance meaning nothing there
  function strength(s, b, hi, lo, signed, lowest) {
    if (signed) return s === null || s === undefined ? NaN : (lowest ? -s : s);
    if (lowest) return excess(s === null || s === undefined ? s : -s, b === null || b === undefined ? b : -b,
                              lo === null || lo === undefined ? lo : -lo);
    return excess(s, b, hi);
  }

  // ---- a view's state in the URL's hash (#colour=induction_head&t=0.3&q=L18), so a view can be linked:
  // every control writes it (history.replaceState: no new history entry) and reads it on load
  var state = {
    read: function () {
      var out = {}, h = window.location.hash.replace(/^#/, "");
      if (!h) return out;
      new URLSearchParams(h).forEach(function (v, k) { out[k] = v; });
      return out;
    },
    write: function (changes) {
      var now = state.read();
      Object.keys(changes).forEach(function (k) {
        var v = changes[k];
        if (v === null || v === undefined || v === "") delete now[k]; else now[k] = String(v);
      });
      var text = new URLSearchParams(now).toString();
      var url = window.location.pathname + window.location.search + (text ? "#" + text : "");
      try { window.history.replaceState(null, "", url); } catch (e) { window.location.replace(text ? "#" + text : "#"); }
      return now;
    }
  };
  window.Atlas = {seq: seq, div: div, fmt: fmt, excess: excess, strength: strength, state: state};

  // ---- search: heads (L18H6 or 18.6), patterns, models, from any page
  var box = document.getElementById("search"), out = document.getElementById("search-results");
  if (box && out && window.ATLAS_INDEX) {
    var norm = function (q) {
      q = q.trim().toLowerCase(); var m = /^(\d+)\.(\d+)$/.exec(q); return m ? "l" + m[1] + "h" + m[2] : q;
    };
    var show = function () {
      var q = norm(box.value); out.textContent = "";
      if (!q) return;
      var hits = window.ATLAS_INDEX.filter(function (e) {
        return e[0].toLowerCase().indexOf(q) >= 0 || (e[2] || "").toLowerCase().indexOf(q) >= 0;
      }).sort(function (a, b) { return (a[0].toLowerCase() === q ? 0 : 1) - (b[0].toLowerCase() === q ? 0 : 1); });
      hits.slice(0, 30).forEach(function (e, i) {
        var a = document.createElement("a"); a.href = root + e[3]; a.textContent = e[0];
        if (i === 0) a.className = "sel";
        var s = document.createElement("small"); s.textContent = e[1] + (e[2] ? " · " + e[2] : ""); a.appendChild(s);
        out.appendChild(a);
      });
    };
    box.addEventListener("input", function () { show(); state.write({q: box.value.trim()}); });
    box.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") { var first = out.querySelector("a"); if (first) window.location.href = first.href; }
      if (ev.key === "Escape") { box.value = ""; out.textContent = ""; state.write({q: ""}); }
    });
    var asked = state.read().q;
    if (asked) { box.value = asked; show(); }
  }

  // ---- sortable tables: click a header; the sort is kept in the URL as sort.TABLE=COLUMN.a|d
  document.querySelectorAll("table.sortable").forEach(function (table, index) {
    var name = "sort." + (table.id || index);
    var heads = table.querySelectorAll("thead th");
    var sortBy = function (col, asc) {
      var th = heads[col];
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      heads.forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(asc ? "asc" : "desc");
      var key = function (r) { var c = r.cells[col]; if (!c) return ""; var v = c.dataset.v;
        return v !== undefined ? (v === "" ? -Infinity : +v) : c.textContent.toLowerCase(); };
      rows.sort(function (a, b) { var x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1); });
      rows.forEach(function (r) { body.appendChild(r); });
    };
    heads.forEach(function (th, col) {
      th.addEventListener("click", function () {
        var asc = !th.classList.contains("asc");
        sortBy(col, asc);
        var change = {}; change[name] = col + (asc ? ".a" : ".d"); state.write(change);
      });
    });
    var asked = /^(\d+)\.([ad])$/.exec(state.read()[name] || "");
    if (asked && +asked[1] < heads.length) sortBy(+asked[1], asked[2] === "a");
  });

  var data = dataOf();
  if (!data) return;

  // ---- model page: the layer x head grid, coloured by best pattern or by one pattern's score
  var grid = document.getElementById("head-grid");
  if (grid && data.kind === "model") {
    var pick = document.getElementById("f-pattern"), meas = document.getElementById("f-measure");
    var thr = document.getElementById("f-threshold"), thrOut = document.getElementById("f-threshold-value");
    var hover = document.getElementById("hover");
    var cells = grid.querySelectorAll("td.cell");
    var measureOf = function (p) { var m = meas.value; return m === "own" ? data.own[p] : m; };
    var lowestIn = function (p, m) {  // ranking.ranks_lowest
      var r = (data.rank || {})[p];
      return (m === data.own[p] && r) ? r === "lowest" : !!(data.lower || {})[m];
    };
    var match = function (p, l, h) {
      var m = measureOf(p); var g = data.scores[m] && data.scores[m][p]; var s = g ? g[l][h] : null;
      var signed = !!(data.signed || {})[m], lowest = lowestIn(p, m);
      var b = signed ? null : data.baseline[p][m]; var bd = data.bounds[m] || [null, null];
      return {p: p, m: m, s: s, b: b, signed: signed, lowest: lowest, e: strength(s, b, bd[1], bd[0], signed, lowest),
              lift: (!signed && s !== null && b > 0) ? s / b : NaN};
    };
    var words = function (x) {  // a match in words: no chance, lift or excess for a signed measure
      var n = data.n[x.p];
      return x.p + ": " + x.m + " " + fmt(x.s) + (x.signed ? " (signed" + (x.lowest ? ", lowest first" : "") + ")" :
        " (chance " + fmt(x.b) + ", lift ×" + fmt(x.lift, 1) + ", excess over chance " + fmt(x.e, 2) +
        (x.lowest ? ", lowest first" : "") + ")") + " · n = " + n[0] + " rows, " + n[1] + " prompts";
    };
    var best = function (l, h) {
      var top = null;
      data.patterns.forEach(function (p) {  // a signed measure has no excess over chance to compare (head_matches)
        var x = match(p, l, h); if (!x.signed && isFinite(x.e) && (!top || x.e > top.e)) top = x; });
      return top;
    };
    var sizeOf = function (p) {  // a signed pattern's map: two-sided, to its largest score in size
      var top = 0;
      cells.forEach(function (td) { var x = match(p, +td.dataset.layer, +td.dataset.head);
        if (x.s !== null && isFinite(x.s)) top = Math.max(top, Math.abs(x.s)); });
      return top > 0 ? top : 1;
    };
    var paint = function () {
      var t = +thr.value; thrOut.textContent = t.toFixed(2);
      var size = pick.value && pick.value !== "verdict" ? sizeOf(pick.value) : 1;
      cells.forEach(function (td) {
        var l = +td.dataset.layer, h = +td.dataset.head;
        var a = td.querySelector("a");
        if (pick.value === "verdict") {
          var v = (data.verdicts || {})[td.dataset.label];
          var y = v && v.shown ? match(v.p, l, h) : null;
          if (!y) { td.style.background = "#eee"; a.style.color = "#999"; a.textContent = ""; }
          else {
            var ev = isFinite(y.e) ? Math.max(0, Math.min(1, y.e)) : 0.5;
            td.style.background = "hsl(" + (data.hues[v.p] || 0) + ",70%," + (92 - 50 * ev) + "%)";
            a.style.color = ev > 0.6 ? "#fff" : "#222"; a.textContent = data.short[v.p] || "";
          }
          td.title = td.dataset.label + " · verdict: " + (v && v.p ? v.p : "none") + (y ? " · " + words(y) : "") +
            (v && v.sink !== null && v.sink !== undefined ? " · share of attention on BOS " + fmt(v.sink, 2) : "");
          return;
        }
        var x = pick.value === "" ? best(l, h) : match(pick.value, l, h);
        if (!x || !isFinite(x.e) || (x.e < t && !(x.signed && pick.value !== ""))) {
          td.style.background = "#eee"; a.style.color = "#999"; a.textContent = "";
        } else if (pick.value === "") {
          var e = Math.max(0, Math.min(1, x.e));
          td.style.background = "hsl(" + data.hues[x.p] + ",70%," + (92 - 50 * e) + "%)";
          a.style.color = e > 0.6 ? "#fff" : "#222"; a.textContent = data.short[x.p];
        } else if (x.signed) {  // two-sided, 0 in the middle
          td.style.background = div(x.s / size); a.style.color = Math.abs(x.s / size) > 0.6 ? "#fff" : "#222";
          a.textContent = fmt(x.s, 2).replace(/^(-?)0\./, "$1.");
        } else {
          td.style.background = seq(x.s); a.style.color = ink(x.s); a.textContent = fmt(x.s, 2).replace(/^0/, "");
        }
        td.title = x ? td.dataset.label + " · " + words(x) : td.dataset.label + ": not scored";
      });
      document.querySelectorAll("#head-table tbody tr").forEach(function (tr) {
        var x = best(+tr.dataset.layer, +tr.dataset.head);
        tr.style.display = (!x || !isFinite(x.e) || x.e < t) && t > 0 ? "none" : "";
      });
    };
    // the view in the URL: #colour=PATTERN|verdict|best&measure=M&t=0.2
    var asked = state.read();
    var choose = function (select, value) {
      if (value === undefined) return;
      if (Array.prototype.some.call(select.options, function (o) { return o.value === value; })) select.value = value;
    };
    choose(pick, asked.colour === "best" ? "" : asked.colour);
    choose(meas, asked.measure);
    if (asked.t !== undefined && isFinite(+asked.t) && asked.t !== "") thr.value = Math.max(0, Math.min(1, +asked.t));
    var remember = function () {
      state.write({colour: pick.value === "" ? "best" : pick.value, measure: meas.value === "own" ? "" : meas.value,
                   t: thr.value === "0.2" ? "" : thr.value});
    };
    // "change" only: a slider fires "input" at every step, and browsers throttle replaceState
    [pick, meas, thr].forEach(function (e) { e.addEventListener("change", remember); });
    [pick, meas, thr].forEach(function (e) { e.addEventListener("input", paint); e.addEventListener("change", paint); });
    grid.addEventListener("mouseover", function (ev) {
      var td = ev.target.closest("td.cell"); if (td) hover.textContent = td.title;
    });
    paint();
  }

  // ---- attention views: a head's attention beside the pattern's matrix (hover: tokens and weights)
  document.querySelectorAll("div.view[data-example]").forEach(function (view) {
    var ex = data.examples[+view.dataset.example];
    var toks = data.prompts[ex.key], n = ex.n;
    var info = view.querySelector(".info");
    var tri = function (arr) { var m = [], i = 0; for (var q = 0; q < n; q++) { m.push(arr.slice(i, i + q + 1).map(function (v) { return v / 1000; })); i += q + 1; } return m; };
    var grids = [];
    if (ex.attention) grids.push({name: "attention", m: tri(ex.attention)});
    var dense = ex.matrix;
    if (!dense) { dense = new Array(n * (n + 1) / 2).fill(0); for (var j = 0; j < ex.sparse.length; j += 2) dense[ex.sparse[j]] = ex.sparse[j + 1]; }
    grids.push({name: "pattern", m: tri(dense)});
    var pair = document.createElement("div"); pair.className = "pair";
    var tables = grids.map(function (g) {
      var t = document.createElement("table"); t.className = "attn"; t.dataset.grid = g.name;
      for (var q = 0; q < n; q++) {
        var tr = t.insertRow(); var th = document.createElement("th"); th.textContent = toks[q] + " " + q; tr.appendChild(th);
        for (var k = 0; k <= q; k++) { var td = tr.insertCell(); td.style.background = seq(g.m[q][k]); td.dataset.q = q; td.dataset.k = k; }
      }
      var wrap = document.createElement("div"); var h = document.createElement("div"); h.className = "meta";
      h.textContent = g.name === "attention" ? "attention of " + data.head : "pattern " + ex.pattern; wrap.appendChild(h);
      wrap.appendChild(t); pair.appendChild(wrap); return t;
    });
    view.appendChild(pair);
    var lit = [];
    view.addEventListener("mouseover", function (ev) {
      var td = ev.target.closest("td"); if (!td || td.dataset.q === undefined) return;
      var q = +td.dataset.q, k = +td.dataset.k;
      lit.forEach(function (e) { e.classList.remove("hi"); }); lit = [];
      var parts = ["query " + q + " " + JSON.stringify(toks[q]) + " \u2192 key " + k + " " + JSON.stringify(toks[k])];
      tables.forEach(function (t, i) { var c = t.rows[q].cells[k + 1]; c.classList.add("hi"); lit.push(c);
        parts.push(grids[i].name + " " + grids[i].m[q][k].toFixed(3)); });
      info.textContent = parts.join(" · ");
    });
  });
})();
"""


def script() -> str:
    return SCRIPT.replace("%(palettes)s", json.dumps(palettes()))
