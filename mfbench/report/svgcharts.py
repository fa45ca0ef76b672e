"""Inline SVG charts for the HTML report: lines against a (log) time axis, and horizontal bars.

Drawn as text in Python, so the page needs no charting library and fetches
nothing: it opens offline, from a file, in any browser, years later. Each mark
carries a ``<title>`` (the browser's tooltip) naming its case and value, and a
``data-case`` attribute the page's script uses to light up a case everywhere.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

WIDTH = 600
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 46


@dataclass
class Series:
    """One curve: a case's points, in its strategy's colour and its device's dash."""

    label: str
    color: str
    points: list[tuple[float, float]]
    dash: str = ""
    case: int = -1
    #: A shaded band around the curve, as (x, low, high): the spread over seeds.
    band: list[tuple[float, float, float]] = field(default_factory=list)


@dataclass
class Bar:
    """One horizontal bar, with an optional whisker from ``low`` to ``high``."""

    label: str
    value: float
    color: str
    low: float | None = None
    high: float | None = None
    text: str = ""
    case: int = -1
    dash: str = ""


@dataclass
class Axis:
    """A value range mapped onto pixels, linear or log."""

    low: float
    high: float
    start: float
    end: float
    log: bool = False
    ticks: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.log:
            self.low, self.high = math.log10(self.low), math.log10(self.high)
        if self.high <= self.low:
            self.high = self.low + 1.0

    def __call__(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        return self.start + (v - self.low) / (self.high - self.low) * (self.end - self.start)


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def fmt_number(value: float) -> str:
    """Tick and tooltip numbers: 0.05, 1.5, 950, 12k, 3.4M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def linear_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round ticks (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        if value >= low - step * 1e-9:
            ticks.append(round(value, 12))
        value += step
    return ticks


def log_ticks(low: float, high: float) -> list[float]:
    """Powers of ten in [low, high]; with 2 and 5 between them when the range spans two decades or fewer."""
    ticks = []
    for power in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in (1, 2, 5) if math.log10(high / low) <= 2 else (1,):
            value = mantissa * 10.0**power
            if low <= value <= high:
                ticks.append(value)
    return ticks or [low, high]


def padded(low: float, high: float, log: bool, share: float = 0.05) -> tuple[float, float]:
    if log:
        span = math.log10(high) - math.log10(low) or 1.0
        return 10 ** (math.log10(low) - span * share), 10 ** (math.log10(high) + span * share)
    span = (high - low) or abs(high) or 1.0
    return low - span * share, high + span * share


def _frame(width: int, height: int, label: str) -> list[str]:
    return [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{esc(label)}">'
    ]


def _x_axis(parts: list[str], axis: Axis, y: float, top: float, label: str, width: int, left: float = LEFT) -> None:
    for tick in axis.ticks:
        x = axis(tick)
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{x:.1f}" y="{y + 14:.1f}" text-anchor="middle">{esc(fmt_number(tick))}</text>')
    parts.append(f'<line class="axis" x1="{left}" y1="{y:.1f}" x2="{width - RIGHT}" y2="{y:.1f}"/>')
    parts.append(
        f'<text class="label" x="{(left + width - RIGHT) / 2:.1f}" y="{y + 32:.1f}" text-anchor="middle">{esc(label)}</text>'
    )


def line_chart(
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    target: float | None = None,
    log_x: bool = True,
    width: int = WIDTH,
    height: int = 320,
) -> str:
    """Curves of ``series`` (points with x > 0 on a log axis); ``target`` as a dashed horizontal line.

    The y range is that of the curves and the target, so the region near the target is
    not squashed by an axis that starts at zero.
    """
    points = [p for s in series for p in s.points if (p[0] > 0 or not log_x) and math.isfinite(p[1])]
    if not points:
        return '<p class="empty">no finished epoch to draw</p>'
    banded = [(x, v) for s in series for x, low, high in s.band for v in (low, high) if (x > 0 or not log_x) and math.isfinite(v)]
    xs = [p[0] for p in points]
    ys = [p[1] for p in points] + [v for _, v in banded] + ([target] if target is not None else [])
    x_low, x_high = padded(min(xs), max(xs), log_x)
    y_low, y_high = padded(min(ys), max(ys), False, 0.08)
    x_axis = Axis(x_low, x_high, LEFT, width - RIGHT, log_x)
    x_axis.ticks = log_ticks(x_low, x_high) if log_x else linear_ticks(x_low, x_high)
    y_axis = Axis(y_low, y_high, height - BOTTOM, TOP)
    y_axis.ticks = linear_ticks(y_low, y_high)
    parts = _frame(width, height, y_label + " against " + x_label)
    for tick in y_axis.ticks:
        y = y_axis(tick)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{width - RIGHT}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(f"{tick:g}")}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{height - BOTTOM}"/>')
    parts.append(
        f'<text class="label" transform="translate(14 {(TOP + height - BOTTOM) / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{esc(y_label)}</text>'
    )
    _x_axis(parts, x_axis, height - BOTTOM, TOP, x_label, width)
    if target is not None:
        y = y_axis(target)
        parts.append(f'<line class="target" x1="{LEFT}" y1="{y:.1f}" x2="{width - RIGHT}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="target-label" x="{width - RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end">target {target:.4g}</text>'
        )
    for s in series:  # bands first, under every curve
        edge = [
            (x_axis(x), y_axis(low), y_axis(high))
            for x, low, high in s.band
            if (x > 0 or not log_x) and math.isfinite(low + high)
        ]
        if len(edge) > 1:
            outline = [(px, hi) for px, _, hi in edge] + [(px, lo) for px, lo, _ in reversed(edge)]
            shape = " ".join(f"{px:.1f},{py:.1f}" for px, py in outline)
            parts.append(f'<polygon class="band" data-case="{s.case}" points="{shape}" fill="{s.color}" fill-opacity="0.15"/>')
    for s in series:
        drawn = [(x_axis(x), y_axis(y), x, y) for x, y in s.points if (x > 0 or not log_x) and math.isfinite(y)]
        if not drawn:
            continue
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        path = " ".join(f"{'M' if i == 0 else 'L'}{px:.1f},{py:.1f}" for i, (px, py, _, _) in enumerate(drawn))
        parts.append(f'<g class="series" data-case="{s.case}"><title>{esc(s.label)}</title>')
        parts.append(f'<path d="{path}" stroke="{s.color}"{dash}/>')
        for px, py, x, y in drawn:
            parts.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.6" fill="{s.color}">'
                f"<title>{esc(s.label)}: {y:.4f} after {fmt_number(x)} s</title></circle>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    bars: Sequence[Bar],
    *,
    x_label: str,
    log: bool | None = None,
    width: int = WIDTH,
    label_width: int = 190,
    origin: float | None = None,
) -> str:
    """Horizontal bars, one per row, labels left of the axis and values inside the plot area.

    ``log`` None picks a log axis when the largest and smallest value differ by more than 20x.
    ``origin``: bars grow from this value (1 for ratios: left of it is less, right more), marked by a line.
    """
    shown = [b for b in bars if b.value > 0 and math.isfinite(b.value)]
    if not shown:
        return '<p class="empty">nothing to draw</p>'
    values = [b.value for b in shown] + [b.high for b in shown if b.high] + [b.low for b in shown if b.low]
    values = [v for v in values if v > 0 and math.isfinite(v)] + ([origin] if origin is not None else [])
    if log is None:
        log = max(values) / min(values) > 20
    row, top = 20, TOP
    height = top + row * len(shown) + BOTTOM
    left = label_width
    if log:
        low, high = padded(min(values), max(values), True, 0.04)
        low = min(low, min(b.value for b in shown) / 2)
    else:
        low, high = 0.0, max(values) * 1.04
    axis = Axis(low, high, left, width - RIGHT, log)
    axis.ticks = log_ticks(low, high) if log else linear_ticks(low, high)
    parts = _frame(width, height, x_label)
    _x_axis(parts, axis, height - BOTTOM, top, x_label + (" (log)" if log else ""), width, left)
    middle = (left + width - RIGHT) / 2
    base = axis(origin if origin is not None else low)
    if origin is not None:
        parts.append(f'<line class="axis" x1="{base:.1f}" y1="{top}" x2="{base:.1f}" y2="{height - BOTTOM}"/>')
    for index, bar in enumerate(shown):
        y = top + index * row
        x0, x1 = sorted((base, axis(bar.value)))
        dash = f' stroke="{bar.color}" stroke-dasharray="{bar.dash}" fill-opacity="0.55"' if bar.dash else ""
        parts.append(
            f'<g class="series" data-case="{bar.case}"><title>{esc(bar.label)}: {esc(bar.text or fmt_number(bar.value))}</title>'
        )
        parts.append(
            f'<text class="bar-label" x="{left - 6}" y="{y + row / 2 + 4:.1f}" text-anchor="end">'
            f"{esc(_clip(bar.label, label_width))}</text>"
        )
        parts.append(
            f'<rect x="{x0:.1f}" y="{y + 3:.1f}" width="{max(1.0, x1 - x0):.1f}" height="{row - 6}" fill="{bar.color}"{dash}/>'
        )
        if bar.low is not None and bar.high is not None and bar.low > 0 and bar.high > 0:
            a, b = axis(bar.low), axis(bar.high)
            parts.append(f'<line class="whisker" x1="{a:.1f}" y1="{y + row / 2:.1f}" x2="{b:.1f}" y2="{y + row / 2:.1f}"/>')
        text = bar.text or fmt_number(bar.value)
        # Inside the plot area: right of a short bar, inside the end of a long one.
        if origin is not None and (bar.value < origin or x1 + 6.5 * len(text) < width - RIGHT):
            parts.append(f'<text class="value" x="{x1 + 4:.1f}" y="{y + row / 2 + 4:.1f}">{esc(text)}</text>')
        elif x1 < middle:  # past the whisker, so the figure never sits on it
            end = axis(bar.high) if bar.high is not None and bar.high > 0 else x1
            parts.append(f'<text class="value" x="{max(x1, end) + 4:.1f}" y="{y + row / 2 + 4:.1f}">{esc(text)}</text>')
        else:
            parts.append(
                f'<text class="value inside" x="{x1 - 4:.1f}" y="{y + row / 2 + 4:.1f}" text-anchor="end">{esc(text)}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _clip(label: str, pixels: int) -> str:
    """A label short enough for ``pixels`` at the chart's font (about 6.8 px a character), cut in the middle."""
    room = max(6, int((pixels - 10) / 6.8))
    if len(label) <= room:
        return label
    head = room // 2
    return label[:head] + "…" + label[len(label) - (room - 1 - head) :]


def rank_diagram(
    names: Sequence[str], ranks: Sequence[float], critical: float | None, groups: Sequence[Sequence[str]], width: int = WIDTH
) -> str:
    """A critical-difference diagram (Demsar 2006): the strategies on an axis of average rank (1 = best,
    at the left), the critical difference as a bar of its length, and a thick line under each group
    of strategies whose ranks lie within it of one another."""
    k = len(names)
    if k < 2:
        return '<p class="empty">fewer than two strategies to rank</p>'
    row = 18
    height = TOP + 56 + row * k + 12 * len(groups) + 20
    axis = Axis(1.0, float(k), LEFT, width - RIGHT)
    parts = _frame(width, height, "average ranks over workloads, with the critical difference")
    y0 = TOP + 40
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{y0}" x2="{width - RIGHT}" y2="{y0}"/>')
    for tick in range(1, k + 1):
        x = axis(float(tick))
        parts.append(f'<line class="axis" x1="{x:.1f}" y1="{y0 - 4}" x2="{x:.1f}" y2="{y0}"/>')
        parts.append(f'<text class="tick" x="{x:.1f}" y="{y0 - 8}" text-anchor="middle">{tick}</text>')
    if critical is not None and math.isfinite(critical):
        end = min(axis(1.0 + critical), width - RIGHT)
        parts.append(f'<line class="cd" x1="{axis(1.0):.1f}" y1="{TOP + 12}" x2="{end:.1f}" y2="{TOP + 12}" stroke-width="2"/>')
        parts.append(f'<text class="label" x="{axis(1.0):.1f}" y="{TOP + 6}">critical difference {critical:.2f}</text>')
    for index, (name, rank) in enumerate(zip(names, ranks, strict=True)):
        x, y = axis(rank), y0 + 20 + row * index
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y - 4:.1f}"/>')
        parts.append(f'<circle cx="{x:.1f}" cy="{y0}" r="3"><title>{esc(name)}: average rank {rank:.2f}</title></circle>')
        anchor = "start" if x < (LEFT + width - RIGHT) / 2 else "end"
        parts.append(
            f'<text class="tick" x="{x + (4 if anchor == "start" else -4):.1f}" y="{y:.1f}" text-anchor="{anchor}">'
            f"{esc(name)} ({rank:.2f})</text>"
        )
    position = dict(zip(names, ranks, strict=True))
    for index, group in enumerate(groups):
        y = y0 + 20 + row * k + 12 * index
        low, high = min(position[g] for g in group), max(position[g] for g in group)
        parts.append(
            f'<line class="clique" x1="{axis(low) - 3:.1f}" y1="{y}" x2="{axis(high) + 3:.1f}" y2="{y}" stroke-width="4">'
            f"<title>within the critical difference: {esc(', '.join(group))}</title></line>"
        )
    parts.append("</svg>")
    return "".join(parts)
