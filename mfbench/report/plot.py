"""One PNG per results file: quality against time, and throughput, for every case that ended ok.

One row of two panels per workload (data set and model), so curves of different
data never share an axis. Left: held-out RMSE after each epoch against cumulative
training seconds (log axis; warm-up epochs included, since they trained the model;
setup and evaluation excluded, as in time-to-target), the target drawn as a dashed
line; the y axis spans that workload's curves and target only, so the region near
the target is not squashed. Of several repeats, the one whose total training time
is the median is drawn, so the curve is a typical run and not the luckiest.
Strategies with an implicit-feedback objective are left out of it (their RMSE is
not comparable), and the panel's title says so. Right: median updates/s of the
counted epochs with min-max error bars, on a log axis when the fastest and slowest
differ by more than ``LOG_RANGE``; each figure sits inside the axes. Every strategy
has its own colour in every panel and run (``mfbench.report.colors``); devices differ by
line style, parameter variants of one strategy by marker. Cases that did not end ok
are left out and counted in the title.

matplotlib is an optional extra, imported only here and only when called;
the figure is drawn on an Agg canvas of its own, so no global backend or
pyplot state is touched.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import MfbenchError
from ..run.selection import format_selection
from ..stats.performance_profile import rho
from ..stats.summary import case_throughput
from .colors import device_dash, strategy_color
from .escape import printable

MISSING = "plotting needs matplotlib: pip install 'mfbench[plot]'"
#: Use a log axis for throughput when max/min of the medians exceeds this.
LOG_RANGE = 20.0
LABEL_WIDTH = 34
#: Parameter variants of one strategy in one workload: one marker each, in label order.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


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
    totals = sorted(((sum(_finite(e.get("seconds")) or 0.0 for e in r["epochs"]), index) for index, r in enumerate(repeats)))
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


def seed_curve(records: list[dict[str, Any]]) -> tuple[list[tuple[float, float]], list[tuple[float, float, float]]]:
    """A case over its seeds: after each epoch, the median over seeds of cumulative training seconds and of
    held-out RMSE (each seed's median repeat), and the band from the lowest to the highest seed's RMSE."""
    curves = [rmse_curve(record) for record in records]
    points: list[tuple[float, float]] = []
    band: list[tuple[float, float, float]] = []
    for epoch in range(max((len(times) for times, _ in curves), default=0)):
        at = [(times[epoch], values[epoch]) for times, values in curves if epoch < len(times)]
        if len(at) * 2 < len(curves):  # fewer than half the seeds got this far (diverged, timed out)
            break
        x = statistics.median(t for t, _ in at)
        values = [v for _, v in at]
        points.append((x, statistics.median(values)))
        band.append((x, min(values), max(values)))
    return points, band


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


#: The longest workload name that shares a line with its panel's title (at fontsize 9.5 in a 12-inch figure).
TITLE_NAME_WIDTH = 40
#: The longest line of a panel's title (the narrower, throughput panel holds about 55 characters at 9.5 points).
TITLE_LINE_WIDTH = 52
#: The longest line of the figure's title (the whole width, at 10 points).
SUPTITLE_LINE_WIDTH = 110


def wrap_label(label: str, width: int = LABEL_WIDTH, breaks: str = r"[\[,]") -> str:
    """Break a long label after ``[`` or ``,`` (never inside a parameter), greedily up to ``width`` per line."""
    lines: list[str] = []
    current = ""
    for token in re.split(rf"(?<={breaks})", label):
        if current and len(current) + len(token) > width:
            lines.append(current)
            current = token
        else:
            current += token
    return "\n".join(lines + [current])


def wrap_title(text: str, width: int) -> str:
    """A title in lines of at most ``width`` characters: broken after ``[ , ; /`` or a space where it
    can be, and a word longer than a line (a long path) cut, so that no line runs off the figure."""
    lines = []
    for line in text.splitlines():
        for part in wrap_label(line, width, breaks=r"[\[,;/ ]").splitlines():
            lines += [part[i : i + width] for i in range(0, len(part), width)] or [""]
    return "\n".join(lines)


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
    """ "log" when the fastest and slowest median differ by more than ``LOG_RANGE``, else "linear"."""
    present = [m for m in medians if m > 0]
    return "log" if present and max(present) / min(present) > LOG_RANGE else "linear"


def line_style(device: str) -> Any:
    """matplotlib's line style for a device: solid on CPU, dashed on CUDA (the dash of ``mfbench.report.colors``)."""
    dash = device_dash(device)
    return "-" if not dash else (0, tuple(float(d) for d in dash.split(",")))


def case_markers(cases: list[dict[str, Any]], labels: list[str]) -> list[str]:
    """One marker per parameter variant of a strategy (and device), so variants sharing a colour differ."""
    seen: dict[str, list[str]] = {}
    for case, label in zip(cases, labels, strict=True):
        variants = seen.setdefault(case["strategy"]["name"], [])
        if label not in variants:
            variants.append(label)
    return [
        MARKERS[sorted(seen[c["strategy"]["name"]]).index(label) % len(MARKERS)] for c, label in zip(cases, labels, strict=True)
    ]


def _draw_curves(curves: Any, plotted: list[dict[str, Any]], labels: list[str], target: float | None) -> list[str]:
    """The RMSE panel; returns the labels of the cases left out of it (implicit objectives)."""
    markers = case_markers(plotted, labels)
    left_out = []
    for case, label, marker in zip(plotted, labels, markers, strict=True):
        if (case.get("strategy") or {}).get("objective", "rating") != "rating":
            left_out.append(label)
            continue
        times, values = rmse_curve(case)
        if times:
            curves.plot(
                times,
                values,
                marker=marker,
                markersize=4,
                linewidth=1.6,
                color=strategy_color(case["strategy"]["name"]),
                linestyle=line_style(case["device"]),
                label=label,
            )
    if target is not None:
        curves.axhline(target, color="black", linestyle="--", linewidth=1, label=f"target {target:g}")
    curves.set_xscale("log")
    curves.set_xlabel("cumulative training seconds (log; warm-up epochs included)")
    curves.set_ylabel("held-out RMSE")
    curves.ticklabel_format(axis="y", useOffset=False)  # RMSE itself on the ticks, not an offset above them
    curves.grid(True, which="both", alpha=0.3)
    return left_out


def _value_labels(bars: Any, positions: list[int], medians: list[float], speeds: list[Any]) -> None:
    """Each bar's figure right of its whisker, inside the axes (their right limit leaves it room)."""
    for position, median, speed in zip(positions, medians, speeds, strict=True):
        if speed is not None and median > 0:
            bars.text(speed.max, position, f"  {_rate(median)}", va="center", ha="left", fontsize=8, clip_on=True)


def _draw_bars(bars: Any, plotted: list[dict[str, Any]], labels: list[str]) -> None:
    speeds = [case_throughput(case) for case in plotted]
    positions = list(range(len(plotted)))
    medians = [s.median if s else 0.0 for s in speeds]
    errors = [[s.median - s.min if s else 0.0 for s in speeds], [s.max - s.median if s else 0.0 for s in speeds]]
    colors = [strategy_color(case["strategy"]["name"]) for case in plotted]
    drawn = bars.barh(positions, medians, color=colors, xerr=errors, capsize=3, error_kw={"elinewidth": 1})
    for bar, case in zip(drawn.patches, plotted, strict=True):
        if device_dash(case["device"]):  # another device than the CPU: hatched, as its curve is dashed
            bar.set_hatch("//")
    bars.set_axisbelow(True)
    bars.set_yticks(positions, labels, fontsize=8)
    bars.invert_yaxis()
    scale = throughput_scale(medians)
    bars.set_xscale(scale)
    present = [m for m in medians if m > 0]
    tops = [s.max for s in speeds if s is not None] or [1.0]
    if scale == "log" and present:  # room right of the longest whisker for its figure
        bars.set_xlim(min(present) / 3, max(tops) * 4)
    elif present:
        bars.set_xlim(0, max(tops) * 1.3)
    log = " (log)" if scale == "log" else ""
    bars.set_xlabel(f"median updates/s{log}, error bars min-max over counted epochs")
    bars.xaxis.set_major_formatter(_rate)
    bars.grid(True, axis="x", which="major", alpha=0.3)
    _value_labels(bars, positions, medians, speeds)


def workloads(cases: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Cases by data set and model, in the order they first appear."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for case in cases:
        key = " / ".join(
            c.get("label") or format_selection(c["name"], c.get("params", {})) for c in (case["dataset"], case["model"])
        )
        groups.setdefault(key, []).append(case)
    return groups


def _group_target(group: list[dict[str, Any]], target: float | None) -> float | None:
    """The target drawn for a workload: the one given, else the one its cases raced to."""
    if target is not None:
        return target
    found = {_finite((c.get("summary") or {}).get("target_rmse")) for c in group} - {None}
    return found.pop() if len(found) == 1 else None


def build_figure(document: dict[str, Any], target: float | None = None) -> Any:
    """One row of panels per workload (RMSE curves, throughput) on its own Agg canvas; ``plot_results`` saves it."""
    cases = document.get("cases", [])
    plotted = [c for c in cases if c.get("status") == "ok"]
    left_out = [c for c in cases if c.get("status") != "ok"]
    if not plotted:
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(Counter(c.get("status") for c in cases).items()))
        raise MfbenchError(f"nothing to plot: no case ended ok ({statuses or 'the file has no cases'})")
    Figure, FigureCanvasAgg = _matplotlib()
    if target is None:
        target = (document.get("config") or {}).get("target_rmse")
    target = _finite(target)  # a word such as "auto": each workload's cases carry their own
    groups = workloads(plotted)
    targets = {name: _group_target(group, target) for name, group in groups.items()}
    heights = []
    for group in groups.values():
        lines = sum(wrap_label(label).count("\n") + 1 for label in case_labels(group))
        legend_rows = -(-(len(group) + 1) // 3)
        heights.append(max(3.4, 0.9 + 0.17 * lines + 0.2 * len(group)) + 0.22 * legend_rows)
    figure = Figure(figsize=(12, sum(heights) + 0.7), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(len(groups), 2, width_ratios=[1.2, 1], height_ratios=heights)
    for row, (name, group) in enumerate(groups.items()):
        curves, bars = figure.add_subplot(grid[row, 0]), figure.add_subplot(grid[row, 1])
        labels = [plain(label) for label in case_labels(group)]
        implicit = _draw_curves(curves, group, labels, targets[name])
        sep = "\n" if len(name) > TITLE_NAME_WIDTH else ": "  # a long workload name on its own line(s), not cut off
        name = plain(wrap_title(name, TITLE_LINE_WIDTH))
        title = f"{name}{sep}held-out RMSE after each epoch (median repeat)"
        if implicit:
            title += f"\nleft out (implicit objective, RMSE not comparable): {', '.join(implicit)}"
        curves.set_title(title, fontsize=9.5)
        handles, names = curves.get_legend_handles_labels()
        if handles:  # below the panel: inside it, it would hide the curves it names
            curves.legend(handles, names, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
        _draw_bars(bars, group, [wrap_label(label) for label in labels])
        bars.set_title(f"{name}{sep}throughput", fontsize=9.5)
    figure.suptitle(plain(wrap_title(_title(document, plotted, left_out), SUPTITLE_LINE_WIDTH)), fontsize=10)
    return figure


def plot_results(document: dict[str, Any], path: Path, target: float | None = None) -> Path:
    """Write the two-panel PNG for ``document`` to ``path`` and return the path.

    :param target: held-out RMSE drawn as a horizontal line; by default the file's ``config.target_rmse``.
    """
    figure = build_figure(document, target)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    return path


def plain(text: str) -> str:
    """A label from a results file as matplotlib text: a ``$`` is a dollar sign, not the start of
    mathtext (which would render it as math, or raise on what mathtext cannot parse)."""
    return printable(text).replace("$", r"\$")


def plot_profile(profile: dict[str, Any], path: Path) -> Path:
    """rho(tau) of every strategy as a step line, tau from 1 to tau_max; the score in the legend."""
    Figure, FigureCanvasAgg = _matplotlib()
    tau_max = profile["tau_max"]
    workloads = profile["workloads"]
    figure = Figure(figsize=(7, 4.2), dpi=110, layout="tight")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    steps = [1.0 + i * (tau_max - 1.0) / 300 for i in range(301)]
    for entry in profile["strategies"]:
        values = [rho(entry["ratios"], workloads, t) for t in steps]
        axes.step(steps, values, where="post", label=f"{plain(entry['strategy'])} ({entry['score']:.2f})", linewidth=1.8)
    axes.set_xlim(1.0, tau_max)
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("tau: time-to-target within tau x the fastest")
    axes.set_ylabel("rho(tau): share of workloads")
    axes.set_title(f"Performance profiles over {len(workloads)} workload(s); score in brackets")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
