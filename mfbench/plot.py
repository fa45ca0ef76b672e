"""One PNG per results file: quality against time, and throughput, for every case that ended ok.

Left panel: held-out RMSE after each epoch against cumulative training seconds
(log axis; warm-up epochs included, since they trained the model; setup and
evaluation excluded, as in time-to-target). Of several repeats, the one whose
total training time is the median is drawn, so the curve is a typical run and
not the luckiest. Right panel: median updates/s of the counted epochs with
min-max error bars, on a log axis when the fastest and slowest differ by more
than ``LOG_RANGE``. Cases that did not end ok are left out and counted in the title.

matplotlib is an optional extra, imported only here and only when called;
the figure is drawn on an Agg canvas of its own, so no global backend or
pyplot state is touched.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

from .stats import case_throughput
from .errors import MfbenchError
from .selection import format_selection

MISSING = "plotting needs matplotlib: pip install 'mfbench[plot]'"
#: Use a log axis for throughput when max/min of the medians exceeds this.
LOG_RANGE = 20.0
LABEL_WIDTH = 38
#: Past this many cases the legend takes two columns.
ONE_COLUMN_LEGEND = 8
#: After ten cases the colours repeat: the line style (curves) and hatch (bars) of the next ten differ.
LINE_STYLES = ("-", "--", ":", "-.")
HATCHES = ("", "//", "..", "xx")


def _matplotlib() -> tuple[Any, Any]:
    try:
        import matplotlib  # noqa: F401  first, so a blocked matplotlib is noticed even with submodules cached
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MfbenchError(MISSING) from exc
    return Figure, FigureCanvasAgg


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def median_repeat(case: dict[str, Any]) -> dict[str, Any] | None:
    """The repeat whose total training time is the median (the lower middle for an even count)."""
    repeats = [r for r in case.get("repeats", []) if r.get("epochs")]
    if not repeats:
        return None
    totals = sorted(
        ((sum(_finite(e.get("seconds")) or 0.0 for e in r["epochs"]), index) for index, r in enumerate(repeats))
    )
    return repeats[totals[(len(totals) - 1) // 2][1]]


def rmse_curve(case: dict[str, Any]) -> tuple[list[float], list[float]]:
    """Cumulative training seconds and held-out RMSE after each epoch of the median repeat."""
    repeat = median_repeat(case)
    times: list[float] = []
    values: list[float] = []
    total = 0.0
    for epoch in (repeat or {}).get("epochs", []):
        total += _finite(epoch.get("seconds")) or 0.0
        value = _finite(epoch.get("test_rmse"))
        if value is not None and total > 0:
            times.append(total)
            values.append(value)
    return times, values


def case_labels(cases: list[dict[str, Any]]) -> list[str]:
    """strategy label (its non-default params) @ device, prefixed by dataset and model where those vary."""

    def part(record: dict[str, Any], use_label: bool = True) -> str:
        if use_label and record.get("label"):
            return record["label"]
        return format_selection(record["name"], record.get("params", {}))

    datasets = {part(c["dataset"]) for c in cases}
    models = {part(c["model"]) for c in cases}
    labels = []
    for case in cases:
        prefix = ""
        if len(datasets) > 1:
            prefix += part(case["dataset"]) + " / "
        if len(models) > 1:
            prefix += part(case["model"]) + " / "
        labels.append(f"{prefix}{part(case['strategy'])} @ {case['device']}")
    return labels


def wrap_label(label: str, width: int = LABEL_WIDTH) -> str:
    """Break a long label after ``[`` or ``,`` (never inside a parameter), greedily up to ``width`` per line."""
    lines: list[str] = []
    current = ""
    for token in re.split(r"(?<=[\[,])", label):
        if current and len(current) + len(token) > width:
            lines.append(current)
            current = token
        else:
            current += token
    return "\n".join(lines + [current])


def _rate(value: float, _position: Any = None) -> str:
    """Axis ticks for updates/s: 950, 12k, 1.5M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _title(document: dict[str, Any], plotted: list[dict[str, Any]], left_out: list[dict[str, Any]]) -> str:
    cases = plotted or left_out
    datasets = sorted({c["dataset"].get("label") or c["dataset"]["name"] for c in cases})
    models = sorted({c["model"].get("label") or c["model"]["name"] for c in cases})
    first = f"{', '.join(datasets)} with {', '.join(models)}"
    machine = (document.get("machine") or {}).get("cpu_model")
    second = f"{len(plotted)} case(s) plotted"
    if left_out:
        counts = Counter(c["status"] for c in left_out)
        second += f"; {len(left_out)} left out (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")"
    if machine:
        second += f"; {machine}"
    if document.get("created"):
        second += f"; {document['created']}"
    return first + "\n" + second


def throughput_scale(medians: list[float]) -> str:
    """"log" when the fastest and slowest median differ by more than ``LOG_RANGE``, else "linear"."""
    present = [m for m in medians if m > 0]
    return "log" if present and max(present) / min(present) > LOG_RANGE else "linear"


def _draw_curves(curves: Any, plotted: list[dict[str, Any]], labels: list[str], colors: list[str], target: float | None) -> None:
    for index, (case, label) in enumerate(zip(plotted, labels)):
        times, values = rmse_curve(case)
        if times:
            curves.plot(
                times, values, marker="o", markersize=3, color=colors[index],
                linestyle=LINE_STYLES[(index // 10) % len(LINE_STYLES)], label=label,
            )
    if target is not None:
        curves.axhline(target, color="black", linestyle="--", linewidth=1, label=f"target {target:g}")
    curves.set_xscale("log")
    curves.set_xlabel("cumulative training time, s (log; warm-up epochs included)")
    curves.set_ylabel("held-out RMSE")
    curves.ticklabel_format(axis="y", useOffset=False)  # RMSE itself on the ticks, not an offset above them
    curves.set_title("held-out RMSE after each epoch (median repeat by training time)", fontsize=10)
    curves.grid(True, which="both", alpha=0.3)


def _draw_bars(bars: Any, plotted: list[dict[str, Any]], labels: list[str], colors: list[str]) -> None:
    speeds = [case_throughput(case) for case in plotted]
    positions = list(range(len(plotted)))
    medians = [s.median if s else 0.0 for s in speeds]
    errors = [[s.median - s.min if s else 0.0 for s in speeds], [s.max - s.median if s else 0.0 for s in speeds]]
    drawn = bars.barh(positions, medians, color=colors, xerr=errors, capsize=3, error_kw={"elinewidth": 1})
    for index, bar in enumerate(drawn.patches):
        bar.set_hatch(HATCHES[(index // 10) % len(HATCHES)])
    bars.set_axisbelow(True)
    bars.set_yticks(positions, labels, fontsize=8)
    bars.invert_yaxis()
    scale = throughput_scale(medians)
    bars.set_xscale(scale)
    log = " (log)" if scale == "log" else ""
    bars.set_xlabel(f"median updates/s{log}, error bars min-max over counted epochs")
    for position, median, speed in zip(positions, medians, speeds):
        if speed is not None:  # right of the whisker, so the figure never sits on the error bar
            bars.annotate(f"  {median:,.0f}", (speed.max, position), va="center", fontsize=7)
    bars.margins(x=0.12)
    bars.xaxis.set_major_formatter(_rate)
    bars.set_title("throughput", fontsize=10)
    bars.grid(True, axis="x", which="major", alpha=0.3)


def build_figure(document: dict[str, Any], target: float | None = None) -> Any:
    """The two-panel matplotlib Figure (on its own Agg canvas); ``plot_results`` saves it."""
    cases = document.get("cases", [])
    plotted = [c for c in cases if c.get("status") == "ok"]
    left_out = [c for c in cases if c.get("status") != "ok"]
    if not plotted:
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(Counter(c.get("status") for c in cases).items()))
        raise MfbenchError(f"nothing to plot: no case ended ok ({statuses or 'the file has no cases'})")
    Figure, FigureCanvasAgg = _matplotlib()
    if target is None:
        target = (document.get("config") or {}).get("target_rmse")
    target = None if target is None else float(target)
    labels = case_labels(plotted)
    wrapped = [wrap_label(label) for label in labels]
    label_lines = sum(label.count("\n") + 1 for label in wrapped)
    legend_entries = len(plotted) + (target is not None)
    legend_columns = 1 if len(plotted) <= ONE_COLUMN_LEGEND else 2
    legend_rows = -(-legend_entries // legend_columns)

    panel_height = max(4.0, 0.8 + 0.15 * label_lines + 0.2 * len(plotted))
    legend_height = 0.19 * legend_rows + 0.1
    figure = Figure(figsize=(14, panel_height + legend_height), layout="constrained")
    FigureCanvasAgg(figure)
    # A row of its own for the legend: inside the panel it hides the curves it names.
    grid = figure.add_gridspec(2, 2, width_ratios=[1.15, 1], height_ratios=[panel_height, legend_height])
    curves, bars = figure.add_subplot(grid[0, 0]), figure.add_subplot(grid[0, 1])
    legend_area = figure.add_subplot(grid[1, :])
    legend_area.axis("off")
    colors = [f"C{i % 10}" for i in range(len(plotted))]

    _draw_curves(curves, plotted, labels, colors, target)
    handles, names = curves.get_legend_handles_labels()
    legend_area.legend(handles, names, fontsize=8, loc="upper left", ncol=legend_columns, borderaxespad=0.0, frameon=False)
    _draw_bars(bars, plotted, wrapped, colors)
    figure.suptitle(_title(document, plotted, left_out), fontsize=10)
    return figure


def plot_results(document: dict[str, Any], path: Path, target: float | None = None) -> Path:
    """Write the two-panel PNG for ``document`` to ``path`` and return the path.

    :param target: held-out RMSE drawn as a horizontal line; by default the file's ``config.target_rmse``.
    """
    figure = build_figure(document, target)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=110)
    return path
