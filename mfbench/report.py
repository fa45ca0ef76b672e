"""Tables of results, rendered with tabulate in any of its formats."""

from __future__ import annotations

import math
from typing import Any, Iterable

from tabulate import tabulate, tabulate_formats

from .errors import SelectionError, unknown_name
from .selection import format_params, format_selection

HEADERS = [
    "dataset",
    "model",
    "strategy",
    "device",
    "params",
    "status",
    "updates/s",
    "s/epoch",
    "train RMSE",
    "test RMSE",
    "note",
]
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


def case_row(case: dict[str, Any]) -> list[str]:
    summary = case.get("summary") or {}
    dataset, model, strategy = case["dataset"], case["model"], case["strategy"]
    return [
        dataset.get("label") or format_selection(dataset["name"], dataset.get("params", {})),
        model.get("label") or format_selection(model["name"], model.get("params", {})),
        strategy["name"],
        case["device"],
        format_params(strategy.get("params", {})),
        case["status"],
        _number(summary.get("median_updates_per_s"), ",.0f"),
        _number(summary.get("median_epoch_s"), ".4g"),
        _number(summary.get("final_train_rmse"), ".4f"),
        _number(summary.get("final_test_rmse"), ".4f"),
        _short(case.get("reason", "")),
    ]


def render_table(cases: Iterable[dict[str, Any]], fmt: str = "simple") -> str:
    rows = [case_row(case) for case in cases]
    return tabulate(rows, headers=HEADERS, tablefmt=check_format(fmt), disable_numparse=True)


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
