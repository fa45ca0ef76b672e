"""The shell of mfbench's HTML pages: one file with its styles and script inline, fetching nothing.

The page's Content-Security-Policy forbids every fetch (``default-src 'none'``), so a
page that opens correctly once opens the same offline, from an archive, later. The
script is small and optional: without it the page still shows every table and
chart; with it, a click on a table row opens the case's parameters, and pointing at
a case (row, bar, curve or legend entry) lights it up in every chart. It sets
``data-rendered`` on ``<body>`` when it has run, and ``data-script-error`` when any
script failed: the browser test reads both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .svgcharts import esc

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

STYLE = """
:root { --fg: #1d2127; --muted: #5d6670; --line: #d8dde3; --band: #f4f6f8; --accent: #1f5fa8; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; max-width: 1280px; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 2px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 16px 0 6px; } .meta, .note, .empty { color: var(--muted); }
.answer { background: var(--band); border-left: 4px solid var(--accent); padding: 10px 14px; }
.answer li { margin: 4px 0; }
table.data { border-collapse: collapse; font-size: 12.5px; width: 100%; }
table.data th, table.data td { border-bottom: 1px solid var(--line); padding: 3px 6px; text-align: left; white-space: nowrap; }
table.data td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.data tr.case { cursor: pointer; } table.data tr.case:hover, tr.hl { background: #eaf1fb; }
table.data tr.detail td { background: var(--band); white-space: normal; }
.scroll { overflow-x: auto; }
.workloads { display: grid; grid-template-columns: repeat(auto-fit, minmax(600px, 1fr)); gap: 8px 24px; }
.panel { min-width: 0; }
svg.chart { max-width: 100%; height: auto; font-size: 11px; }
svg.chart .grid { stroke: #e6e9ed; } svg.chart .axis { stroke: #6b7580; }
svg.chart .tick, svg.chart .bar-label { fill: #444c55; } svg.chart .label { fill: #444c55; font-size: 11.5px; }
svg.chart .series path { fill: none; stroke-width: 1.8; }
svg.chart .target { stroke: #111; stroke-dasharray: 5,4; } svg.chart .target-label { fill: #111; }
svg.chart .cd { stroke: #111; } svg.chart .clique { stroke: #333; stroke-linecap: round; }
tr.baseline td { color: #6b7580; font-style: italic; }
svg.chart .whisker { stroke: #222; stroke-width: 1.2; } svg.chart .value { fill: #222; } svg.chart .value.inside { fill: #fff; }
.highlighting svg.chart .series:not(.hl) { opacity: 0.18; }
.legend { list-style: none; padding: 0; margin: 2px 0 8px; display: flex; flex-wrap: wrap; gap: 2px 14px; font-size: 12px; }
.legend li { cursor: default; }
.swatch { display: inline-block; width: 14px; height: 4px; vertical-align: middle; margin-right: 5px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; font-size: 12.5px; margin: 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.columns { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 16px 32px; }
code, pre { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
"""

SCRIPT = """
(function () {
  function light(id, on) {
    document.querySelectorAll('[data-case="' + id + '"]').forEach(function (el) { el.classList.toggle('hl', on); });
    document.body.classList.toggle('highlighting', on);
  }
  document.querySelectorAll('[data-case]').forEach(function (el) {
    var id = el.getAttribute('data-case');
    if (id === '-1') { return; }
    el.addEventListener('mouseenter', function () { light(id, true); });
    el.addEventListener('mouseleave', function () { light(id, false); });
  });
  document.querySelectorAll('tr.case').forEach(function (row) {
    row.addEventListener('click', function () {
      var detail = row.nextElementSibling;
      if (detail && detail.classList.contains('detail')) { detail.hidden = !detail.hidden; }
    });
  });
  document.body.setAttribute('data-rendered', String(document.querySelectorAll('svg.chart').length));
})();
"""

#: Registered first, so an error in any later script is recorded where a test can read it.
ERROR_TRAP = (
    "window.addEventListener('error', function (e) {"
    " document.documentElement.setAttribute('data-script-error', String(e.message || e)); });"
)


def page(title: str, sections: Iterable[str]) -> str:
    """A complete HTML document: ``sections`` are HTML fragments, in order."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style><script>{ERROR_TRAP}</script></head>\n<body>\n"
        + "\n".join(sections)
        + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )


def section(anchor: str, heading: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(heading)}</h2>\n{body}\n</section>'


def facts(items: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> str:
    """A definition list; nested values are shown as compact JSON."""
    pairs = items.items() if isinstance(items, Mapping) else items
    rows = []
    for key, value in pairs:
        if value is None or value == "" or value == [] or value == {}:
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        rows.append(f"<dt>{esc(key)}</dt><dd>{esc(text)}</dd>")
    return '<dl class="facts">' + "".join(rows) + "</dl>" if rows else '<p class="empty">(none recorded)</p>'


def legend(entries: Iterable[tuple[str, str, str, int]]) -> str:
    """Colour swatches naming curves: (label, colour, dash, case index)."""
    items = []
    for label, color, dash, case in entries:
        style = (
            f"background:{color}"
            if not dash
            else f"background:repeating-linear-gradient(90deg,{color} 0 5px,transparent 5px 8px)"
        )
        items.append(f'<li data-case="{case}"><span class="swatch" style="{style}"></span>{esc(label)}</li>')
    return '<ul class="legend">' + "".join(items) + "</ul>"


NUMERIC = (
    "updates/s",
    "spread",
    "s/epoch",
    "setup s",
    "scaling",
    "time to",
    "train RMSE",
    "test RMSE",
    "peak MB",
    "ratio",
    "upd/s",
    "RMSE",
    "TTT",
)


def data_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    details: Sequence[str] | None = None,
    cases: Sequence[int | None] | None = None,
) -> str:
    """A table of already formatted cells; each row may carry a hidden detail row opened by a click
    (a row with no case, a baseline, has none)."""
    numeric = [any(word in h for word in NUMERIC) for h in headers]
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for index, row in enumerate(rows):
        cells = "".join(
            f'<td class="num">{esc(c)}</td>' if n else f"<td>{esc(c)}</td>" for c, n in zip(row, numeric, strict=True)
        )
        case = cases[index] if cases is not None else -1
        if case is None:
            body.append(f'<tr class="baseline">{cells}</tr>')
        elif details is not None:
            body.append(f'<tr class="case" data-case="{case}" title="click for the parameters">{cells}</tr>')
            body.append(f'<tr class="detail" hidden><td colspan="{len(headers)}">{details[index]}</td></tr>')
        else:
            body.append(f'<tr data-case="{case}">{cells}</tr>')
    return f'<div class="scroll"><table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def write_page(text: str, path: Path) -> Path:
    """Write a page, making its folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
