"""The HTML page of ``mfbench compare --html``: the verdicts first, the table, ratio charts, both machines."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from .._version import __version__
from .colors import strategy_color
from .compare import Comparison
from .comparison import comparison_headers, comparison_row, summary_lines
from .html_page import data_table, facts, page, section, write_page
from .svgcharts import Bar, bar_chart, esc


def render_comparison_report(
    base: dict[str, Any], new: dict[str, Any], comparison: Comparison, names: tuple[str, str] = ("base", "new")
) -> str:
    """The page for ``mfbench compare --html``: the verdicts first, the table, ratio charts, both machines."""
    rows = comparison.rows
    verdicts = Counter(row.speed for row in rows if row.speed)
    counts = ", ".join(f"{n} {word}" for word, n in sorted(verdicts.items())) or "no case with figures on both sides"
    answer = f"<p><b>Is {esc(names[1])} faster than {esc(names[0])}?</b> Speed, case by case: {esc(counts)}.</p>"
    answer += "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in summary_lines(comparison)) + "</ul>"
    headers = comparison_headers(comparison)
    cells = [comparison_row(comparison, row) for row in rows]
    bars = []
    for index, row in enumerate(rows):
        ratio = getattr(row, "speed_ratio", None)
        if ratio is not None and ratio > 0:
            label = f"{row.strategy} @ {row.device}"
            bars.append(
                Bar(label, ratio, strategy_color(row.strategy.split("[")[0]), text=f"{ratio:.3g}× {row.speed}", case=index)
            )
    chart = (
        bar_chart(bars, x_label="updates/s, new over base (right of 1: faster)", log=True, origin=1.0, label_width=260)
        if bars
        else '<p class="empty">No case has figures on both sides.</p>'
    )
    machines = (
        '<div class="columns">'
        f"<div><h3>{esc(names[0])}</h3>{facts({'created': base.get('created'), **(base.get('machine') or {})})}</div>"
        f"<div><h3>{esc(names[1])}</h3>{facts({'created': new.get('created'), **(new.get('machine') or {})})}</div>"
        "</div>"
    )
    sections = [
        f"<header><h1>mfbench compare: {esc(names[0])} → {esc(names[1])}</h1></header>",
        section("answer", "The answer", f'<div class="answer">{answer}</div>'),
        section("table", "Case by case", data_table(headers, cells, cases=list(range(len(rows))))),
        section("charts", "Throughput ratios", chart),
        section("machine", "Machines", machines),
        f'<footer class="note">Written by mfbench {esc(__version__)}; this page fetches nothing.</footer>',
    ]
    return page(f"mfbench compare {names[0]} {names[1]}", sections)


def write_comparison_report(
    base: dict[str, Any], new: dict[str, Any], comparison: Comparison, path: Path, names: tuple[str, str] = ("base", "new")
) -> Path:
    return write_page(render_comparison_report(base, new, comparison, names), path)
