"""Tables of results, rendered with tabulate in any of its formats."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from tabulate import tabulate, tabulate_formats

from .errors import SelectionError, unknown_name
from .selection import format_params, format_selection
from .stats import case_time_to_target, scaling_efficiencies

NOTE_WIDTH = 60


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


def _short(text: str, width: int = NOTE_WIDTH) -> str:
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


def table_shape(cases: list[dict[str, Any]], target: float | None, hosts: bool | None) -> TableShape:
    """The host column appears when cases ran on more than one host (or when asked for)."""
    if hosts is None:
        hosts = len({c.get("host") for c in cases if c.get("host")}) > 1
    return TableShape(case_target(cases, target), scaling_efficiencies(cases), hosts)


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
        "spread": summary.get("relative_iqr"),
        "s/epoch": summary.get("median_epoch_s"),
        "setup s": summary.get("median_setup_s"),
    }
    if shape.scaling:
        columns["scaling"] = shape.scaling.get(case["id"])
    if target is not None:
        columns[f"time to {target:g}"] = case_time_to_target(case, target) if summary else None
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
        text = f"±{_number(value * 100 / 2, '.0f')}%"
        return text + " unstable" if (case.get("summary") or {}).get("unstable") else text
    implicit = case["strategy"].get("objective", "rating") != "rating"
    if name.startswith("time to"):
        if not case.get("summary"):
            return ""
        if implicit:
            return "n/a"
        return "not reached" if value is None else _number(value, ".3g")
    if name == "scaling":
        return "" if value is None else f"{value * 100:.0f}%"
    if name in ("s/epoch", "setup s"):
        return _number(value, ".4g")
    if name.endswith("RMSE"):
        text = _number(value, ".4f")
        return f"({text})" if implicit and text else text
    if name == "peak MB":
        return _number(value, ",.0f")
    if name == "note":
        return _short(value)
    return "" if value is None else str(value)


def render_table(
    cases: Iterable[dict[str, Any]], fmt: str = "simple", target: float | None = None, hosts: bool | None = None
) -> str:
    """The results table; ``spread`` is half the IQR of epoch times relative to their median.

    ``scaling`` (when any strategy declares ``scales_with``) is updates/s over workers
    times the one-worker case's; RMSE in parentheses belongs to an implicit-feedback strategy.
    """
    cases = list(cases)
    shape = table_shape(cases, target, hosts)
    rows = [case_columns(case, shape) for case in cases]
    if not rows:
        return "(no cases)"
    headers = list(rows[0])
    body = [[_display(name, row[name], case) for name in headers] for row, case in zip(rows, cases)]
    return tabulate(body, headers=headers, tablefmt=check_format(fmt), disable_numparse=True)


#: Roofline fields of the summary (mfbench.roofline) that the CSV adds when any case has them.
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
