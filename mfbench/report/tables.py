"""Tables of results, rendered with tabulate in any of its formats."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tabulate import tabulate_formats

from ..errors import SelectionError, unknown_name
from ..run.selection import format_params, format_selection
from ..stats.summary import case_time_to_target, scaling_efficiencies
from .tablefit import WIDE, Table, View, render
from .tuning import tuning_cost


def check_format(fmt: str) -> str:
    if fmt not in tabulate_formats:
        raise SelectionError(unknown_name("table format", fmt, tabulate_formats))
    return fmt


def _number(value: Any, spec: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):  # "nan"/"inf" as stored in JSON
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return format(value, spec)


def _short(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def case_target(cases: list[dict[str, Any]], target: float | None) -> float | None:
    """The time-to-target threshold to show: the one asked for, else the one the run used."""
    if target is not None:
        return target
    found = {c.get("summary", {}).get("target_rmse") for c in cases} - {None}
    return found.pop() if len(found) == 1 else None


def strategy_params_label(strategy: dict[str, Any]) -> str:
    """The strategy's parameters that differ from its defaults (all of them are in the results file)."""
    label = strategy.get("label")
    if label is None:
        return format_params(strategy.get("params", {}))
    inner = label[len(strategy["name"]) + 1 : -1] if label.endswith("]") else ""
    return inner or "(defaults)"


@dataclass(frozen=True)
class TableShape:
    """What a table shows beyond the fixed columns, decided once from all its cases."""

    target: float | None = None
    scaling: dict[str, float] = field(default_factory=dict)
    hosts: bool = False
    #: Cases carry targets of their own (suite groups, ``auto`` per workload): show each one's.
    per_case_target: bool = False
    #: Some cases raced tuned parameters: show what tuning cost beside time-to-target.
    tuned: bool = False
    #: The target was asked for (``--target-rmse``): it applies to every case, not only to
    #: those whose suite group set it.
    asked: bool = False


def table_shape(cases: list[dict[str, Any]], target: float | None, hosts: bool | None) -> TableShape:
    """The host column appears when cases ran on more than one host (or when asked for)."""
    if hosts is None:
        hosts = len({c.get("host") for c in cases if c.get("host")}) > 1
    shown = case_target(cases, target)
    own = shown is None and any("target_rmse" in (c.get("summary") or {}) for c in cases)
    tuned = any(c.get("tuning") for c in cases)
    return TableShape(shown, scaling_efficiencies(cases), hosts, own, tuned, target is not None)


def half_iqr(relative_iqr: Any) -> Any:
    """``spread``: ± half the interquartile range of epoch times relative to their median.

    The results file stores the full relative IQR (``relative_iqr``); the table and
    the CSV both show half of it, under the one name ``spread``.
    """
    if isinstance(relative_iqr, (int, float)) and not isinstance(relative_iqr, bool):
        return relative_iqr / 2
    return relative_iqr


def case_note(case: dict[str, Any]) -> str:
    notes = [case.get("reason", "")]
    strategy = case["strategy"]
    if strategy.get("objective", "rating") != "rating":
        notes.append(f"{strategy['objective']}-feedback objective: RMSE not comparable, compare s/epoch only")
    if not strategy.get("stepwise", True) and case.get("summary"):
        covered = max((e.get("epochs_covered", 1) for r in case["repeats"] for e in r.get("epochs", [])), default=1)
        notes.append(f"whole fit of {covered} epochs timed as one call")
    return "; ".join(n for n in notes if n)


def case_columns(case: dict[str, Any], shape: TableShape) -> dict[str, Any]:
    """Raw values of one row, by column name (numbers stay numbers, for CSV)."""
    summary = case.get("summary") or {}
    dataset, model, strategy = case["dataset"], case["model"], case["strategy"]
    target = shape.target
    columns = {
        "dataset": dataset.get("label") or format_selection(dataset["name"], dataset.get("params", {})),
        "model": model.get("label") or format_selection(model["name"], model.get("params", {})),
        "strategy": strategy["name"],
        "device": case["device"],
        **({"host": case.get("host", "")} if shape.hosts else {}),
        "params": strategy_params_label(strategy),
        "status": case["status"],
        "updates/s": summary.get("median_updates_per_s"),
        "spread": half_iqr(summary.get("relative_iqr")),
        "s/epoch": summary.get("median_epoch_s"),
        "setup s": summary.get("median_setup_s"),
    }
    if shape.scaling:
        columns["scaling"] = shape.scaling.get(case["id"])
    if target is not None:
        applies = shape.asked or "target_rmse" in summary or not summary
        # "": a case of a group without a target (the notebook's data beside a planted race).
        columns[f"time to {target:g}"] = (case_time_to_target(case, target) if summary else None) if applies else ""
    elif shape.per_case_target:
        columns["target"] = summary.get("target_rmse")
        columns["time to target"] = summary.get("time_to_target_s")
    if shape.tuned:
        columns["tuning"] = tuning_cost(case.get("tuning"))
    peak = summary.get("peak_memory_bytes")
    columns.update(
        {
            "train RMSE": summary.get("final_train_rmse"),
            "test RMSE": summary.get("final_test_rmse"),
            "peak MB": peak / 2**20 if peak else None,
            "note": case_note(case),
        }
    )
    return columns


def _display(name: str, value: Any, case: dict[str, Any]) -> str:
    if name == "updates/s":
        return _number(value, ",.0f")
    if name == "spread":
        if value is None:
            return ""
        text = f"±{_number(value * 100, '.0f')}%"
        return text + " unstable" if (case.get("summary") or {}).get("unstable") else text
    implicit = case["strategy"].get("objective", "rating") != "rating"
    if name.startswith("time to"):
        if not case.get("summary") or value == "":
            return ""
        if implicit:
            return "n/a"
        return "not reached" if value is None else _number(value, ".3g")
    if name == "target":
        return _number(value, ".4g")
    if name == "scaling":
        return "" if value is None else f"{value * 100:.0f}%"
    if name in ("s/epoch", "setup s"):
        return _number(value, ".4g")
    if name.endswith("RMSE"):
        text = _number(value, ".4f")
        return f"({text})" if implicit and text else text
    if name == "peak MB":
        return _number(value, ",.0f")
    if name == "note":  # in full: a terminal view turns long notes into footnotes
        return " ".join(str(value).split())
    return "" if value is None else str(value)


#: The columns a terminal shows by default: what ran, whether it worked, how fast, how good.
#: ``params`` joins them when some strategy ran with non-default parameters; ``host`` and
#: ``scaling`` whenever the table has them (they are only there when they say something).
DEFAULT_COLUMNS = (
    "dataset",
    "model",
    "strategy",
    "device",
    "host",
    "status",
    "updates/s",
    "spread",
    "scaling",
    "target",
    "time-to-target",
    "tuning",
    "test RMSE",
    "note",
)
#: Shortened to fit a terminal: labels in the middle, the note turned into footnotes.
SHORTENED = {"dataset": "middle", "model": "middle", "params": "middle", "note": "footnote"}
#: Left out, in this order, when shortening labels is not enough.
EXPENDABLE = ("spread", "tuning", "note", "params", "model")


def results_table(cases: list[dict[str, Any]], shape: TableShape) -> Table:
    """Every column of every case, and what a terminal view may leave out or collapse."""
    rows = [case_columns(case, shape) for case in cases]
    headers = list(rows[0]) if rows else []
    body = [[_display(name, row[name], case) for name in headers] for row, case in zip(rows, cases, strict=True)]
    default = list(DEFAULT_COLUMNS)
    if any(row["params"] != "(defaults)" for row in rows):
        default.insert(default.index("strategy") + 1, "params")
    return Table(
        headers=headers,
        rows=body,
        skipped=[case.get("reason", "") if case["status"] == "skipped" else None for case in cases],
        groups=[str(case["device"]) for case in cases],
        default=default,
        shorten=SHORTENED,
        expendable=EXPENDABLE,
    )


def render_table(
    cases: Iterable[dict[str, Any]],
    fmt: str = "simple",
    target: float | None = None,
    hosts: bool | None = None,
    view: View = WIDE,
) -> str:
    """The results table; ``spread`` is ± half the IQR of epoch times relative to their median.

    ``scaling`` (when any strategy declares ``scales_with``) is updates/s over workers
    times the one-worker case's; RMSE in parentheses belongs to an implicit-feedback strategy.
    ``view`` chooses columns and width (see ``mfbench.report.tablefit``); by default, every column and row.
    """
    cases = list(cases)
    if not cases:
        return "(no cases)"
    return render(results_table(cases, table_shape(cases, target, hosts)), check_format(fmt), view)


#: Roofline fields of the summary (mfbench.stats.roofline) that the CSV adds when any case has them.
ROOFLINE_CSV = ("bytes_per_update", "flops_per_update", "bandwidth_fraction", "compute_fraction")


def render_csv(cases: Iterable[dict[str, Any]], target: float | None = None, hosts: bool | None = None) -> str:
    """The same rows as the table, with raw numbers, as CSV (plus the roofline fields where present)."""
    cases = list(cases)
    shape = table_shape(cases, target, hosts)
    roofline = [key for key in ROOFLINE_CSV if any(key in (c.get("summary") or {}) for c in cases)]
    rows = [{**case_columns(case, shape), **{key: (case.get("summary") or {}).get(key) for key in roofline}} for case in cases]
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def case_line(index: int, total: int, case: dict[str, Any]) -> str:
    """The one line printed as a case finishes."""
    summary = case.get("summary") or {}
    parts = [f"[{index}/{total}] {case['id']}: {case['status']}"]
    if summary.get("median_updates_per_s") is not None:
        parts.append(f"{_number(summary['median_updates_per_s'], ',.0f')} updates/s")
    if summary.get("final_test_rmse") is not None:
        parts.append(f"test RMSE {_number(summary['final_test_rmse'], '.4f')}")
    if case.get("reason"):
        parts.append(f"({_short(case['reason'], 100)})")
    return "  ".join(parts)
