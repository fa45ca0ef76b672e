"""How ``mfbench compare`` shows a comparison: its table, its verdict counts and its summary lines."""

from __future__ import annotations

import math
import textwrap

from ..stats.verdict import VERDICTS
from . import tablefit
from .compare import EXIT_NOISY, RMSE_TOLERANCE, Comparison, Row
from .github_summary import markdown_comparison
from .tables import check_format


def _fmt(value: float | None, spec: str, missing: str = "") -> str:
    if value is None:
        return missing
    if not math.isfinite(value):
        return str(value)
    return format(value, spec)


def _ttt(row: Row, side: str) -> str:
    case = row.base if side == "base" else row.new
    if case is None or case["status"] != "ok":
        return ""
    return _fmt(getattr(row, f"ttt_{side}"), ".3g", "not reached")


def comparison_headers(comparison: Comparison) -> list[str]:
    unit = "rel. upd/s" if comparison.normalize else "upd/s"
    headers = [
        "dataset",
        "model",
        "strategy",
        "device",
        "status",
        f"base {unit}",
        f"new {unit}",
        "ratio",
        "95% interval",
        "speed",
    ]
    if comparison.timed:
        headers += ["base TTT s", "new TTT s", "TTT ratio"]
    return headers + ["base RMSE", "new RMSE", "RMSE ratio", "quality", "note"]


def _interval_cell(row: Row) -> str:
    interval = row.speed_interval
    if interval is None or not interval.known:
        return ""
    return f"[{interval.low:.3f}, {interval.high:.3f}]"


def comparison_row(comparison: Comparison, row: Row) -> list[str]:
    spec = ".4g" if comparison.normalize else ",.0f"
    cells = [
        row.dataset,
        row.model,
        row.strategy,
        row.device,
        row.status,
        _fmt(row.speed_base.median if row.speed_base else None, spec),
        _fmt(row.speed_new.median if row.speed_new else None, spec),
        _fmt(row.speed_ratio, ".3f"),
        _interval_cell(row),
        row.speed,
    ]
    if comparison.timed:
        both_ok = row.base is not None and row.new is not None and row.base["status"] == row.new["status"] == "ok"
        cells += [_ttt(row, "base"), _ttt(row, "new"), _fmt(row.ttt_ratio, ".3f", "-" if both_ok else "")]
    note = [f"FAIL: {trip}" for trip in row.trips] + row.notes
    cells += [
        _fmt(row.rmse_base.median if row.rmse_base else None, ".4f"),
        _fmt(row.rmse_new.median if row.rmse_new else None, ".4f"),
        _fmt(row.rmse_ratio, ".4f"),
        row.quality,
        "; ".join(note),
    ]
    return cells


def verdict_counts(comparison: Comparison) -> str:
    """ "2 slower, 1 too noisy to tell, 5 no change" over the matched cases with a speed verdict."""
    counts = [f"{comparison.count_speed(v)} {v}" for v in VERDICTS if comparison.count_speed(v)]
    return ", ".join(counts) if counts else "no speed verdicts"


def summary_lines(comparison: Comparison) -> list[str]:
    """What the table means and whether the threshold tripped, for below the table."""
    lines = [
        f"{comparison.count('both')} case(s) matched, {comparison.count('only in base')} only in base, "
        f"{comparison.count('only in new')} only in new. Ratios are new/base. Speed: {verdict_counts(comparison)}.",
        "speed: from a 95% bootstrap interval of the ratio of median epoch times (repeats and epochs resampled)"
        + (f", widened x{comparison.drift:.3f} for the machine's drift seen by the calibration" if comparison.drift > 1 else "")
        + f"; 'no change' = the interval within +-{comparison.margin:g}%; "
        f"quality '~': held-out RMSE moved by at most max({RMSE_TOLERANCE:.0%}, spread across repeats).",
    ]
    if comparison.normalize:
        lines.append("updates/s are divided by each machine's calibration score.")
    if comparison.target is not None:
        lines.append(f"TTT: training seconds to held-out RMSE <= {comparison.target:g} ({comparison.target_source}).")
    elif comparison.timed:
        lines.append(f"TTT: training seconds to held-out RMSE <= {comparison.target_source}.")
    lines += comparison.notes
    if comparison.fail_threshold is not None:
        tripped = comparison.tripped
        if tripped or comparison.trips:
            lines.append(f"fail threshold {comparison.fail_threshold:g}% tripped by {len(tripped)} case(s):")
            lines += [f"  {row.id}: {'; '.join(row.trips)}" for row in tripped]
            lines += [f"  {trip}" for trip in comparison.trips]
        elif comparison.undecided:
            lines.append(
                f"fail threshold {comparison.fail_threshold:g}%: not tripped, but {len(comparison.undecided)} case(s) are "
                f"too noisy to rule it out (exit {EXIT_NOISY}): rerun with more --repeats, or compare with `mfbench ab`:"
            )
            lines += [
                f"  {row.id}: {row.speed_interval.describe() if row.speed_interval else ''}" for row in comparison.undecided
            ]
        else:
            lines.append(f"fail threshold {comparison.fail_threshold:g}%: not tripped.")
    return lines


#: Raw figures of either side: the terminal view shows the ratios and verdicts (--wide adds these).
COMPARISON_DETAIL = (
    "base upd/s",
    "new upd/s",
    "base rel. upd/s",
    "new rel. upd/s",
    "base TTT s",
    "new TTT s",
    "base RMSE",
    "new RMSE",
)


def render_comparison(
    comparison: Comparison, fmt: str = "simple", *, footer: bool = True, view: tablefit.View = tablefit.WIDE
) -> str:
    """The comparison as a table in any tabulate format, followed by what it means (unless ``footer=False``).

    ``view`` chooses columns and width (see ``mfbench.report.tablefit``); by default, every column and row.

    ``github`` gives Markdown for a job summary or a pull-request comment: a headline with
    the outcome, the table, and the notes as a list.
    """
    skipped = [((row.new or row.base or {}).get("reason") or "") if row.status == "skipped" else None for row in comparison.rows]
    table = tablefit.render(
        tablefit.Table(
            headers=comparison_headers(comparison),
            rows=[comparison_row(comparison, row) for row in comparison.rows],
            skipped=skipped,
            groups=[row.device for row in comparison.rows],
            detail=COMPARISON_DETAIL,
            shorten={"dataset": "middle", "model": "middle", "strategy": "middle", "note": "footnote"},
            expendable=("note", "model", "TTT ratio", "95% interval"),
        ),
        check_format(fmt),
        view,
    )
    if fmt == "github":
        return markdown_comparison(comparison, table, summary_lines(comparison) if footer else [], verdict_counts(comparison))
    if not footer:
        return table
    lines = summary_lines(comparison)
    if view.width is not None and not view.wide:
        lines = [wrapped for line in lines for wrapped in textwrap.wrap(line, view.width, subsequent_indent="  ")]
    return table + "\n\n" + "\n".join(lines)
