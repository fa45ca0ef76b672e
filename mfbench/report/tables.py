"""Tables of results, rendered with tabulate in any of its formats.

One row per record when every case ran with one seed; one row per case over its seeds when some ran
with several (mfbench.report.over_seeds). Either way, each dataset's baselines (the global mean and
the bias model: mfbench.data.baselines) follow its rows, so every held-out RMSE is read beside them.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate_formats

from ..errors import SelectionError, unknown_name
from ..run.selection import format_selection
from ..stats.seeds import baseline_figures, by_case, record_seed, several_seeds, workload_verdicts
from ..stats.summary import as_number, case_time_to_target, is_reference, run_key
from ..stats.targets import workload_key
from .over_seeds import CSV_EXTRA, over_seeds_row, plus_minus
from .rows import (
    TREND_MARKS,
    TREND_WORDS,
    TableShape,
    case_note,
    criterion_column,
    half_iqr,
    metric_columns,
    not_reached,
    not_reached_words,
    number_text,
    params_label,
    short_text,
    table_shape,
    with_tuning_time,
)
from .tablefit import WIDE, Table, View, render
from .tuning import tuning_cost

__all__ = ["TableShape", "case_line", "check_format", "render_csv", "render_table", "results_table", "table_shape"]


#: Every column a results table can have (``--columns`` names); tests/test_command_matrix.py checks
#: that the tables of every committed results file and of the files the tests write have no other.
RESULT_COLUMNS = (
    "dataset", "model", "strategy", "device", "host", "params", "status", "seeds", "updates/s", "spread",
    "s/epoch", "setup-s", "scaling", "target", "time-to-target", "vs-fastest", "vs-reference", "reached", "group",
    "time-with-tuning", "train-rmse",
    "test-rmse", "peak-mb", "tuning", "note",
)  # fmt: skip


def check_format(fmt: str) -> str:
    if fmt not in tabulate_formats:
        raise SelectionError(unknown_name("table format", fmt, tabulate_formats))
    return fmt


def dataset_label(case: dict[str, Any]) -> str:
    dataset = case["dataset"]
    return str(dataset.get("label") or format_selection(dataset["name"], dataset.get("params", {})))


def case_columns(case: dict[str, Any], shape: TableShape) -> dict[str, Any]:
    """Raw values of one row, by column name (numbers stay numbers, for CSV)."""
    summary = case.get("summary") or {}
    model, strategy = case["model"], case["strategy"]
    target = shape.target
    columns = {
        "dataset": dataset_label(case),
        "model": model.get("label") or format_selection(model["name"], model.get("params", {})),
        "strategy": strategy["name"],
        "device": case["device"],
        **({"host": case.get("host", "")} if shape.hosts else {}),
        "params": params_label(case),
        "status": case["status"],
        "updates/s": summary.get("median_updates_per_s"),
        "spread": half_iqr(summary.get("relative_iqr")),
        "s/epoch": summary.get("median_epoch_s"),
        "setup s": summary.get("median_setup_s"),
    }
    if shape.scaling:
        columns["scaling"] = shape.scaling.get(run_key(case))
    if target is not None:
        applies = shape.asked or "target_rmse" in summary or not summary
        # "": a case of a group without a target (the notebook's data beside a planted race).
        columns[f"time to {target:g}"] = (case_time_to_target(case, target) if summary else None) if applies else ""
    elif shape.per_case_target:
        columns["target"] = summary.get("target_rmse")
        columns["time to target"] = summary.get("time_to_target_s")
    elif shape.criterion is not None:
        columns[str(criterion_column(shape))] = summary.get("time_to_target_s")
    if shape.tuned:
        columns["tuning"] = tuning_cost(case.get("tuning"))
        columns["time with tuning"] = with_tuning_time(columns, case)
    peak = summary.get("peak_memory_bytes")
    columns.update(
        {
            "train RMSE": summary.get("final_train_rmse"),
            "test RMSE": summary.get("final_test_rmse"),
            **{name: values[0] if values else None for name, values in metric_columns([summary], shape).items()},
            "peak MB": peak / 2**20 if peak else None,
            "note": case_note(case),
        }
    )
    return columns


def _display(name: str, value: Any, case: dict[str, Any], target: float | None) -> str:
    if name == "updates/s":
        return number_text(value, ",.0f")
    if name == "spread":
        if value is None:
            return ""
        text = f"±{number_text(value * 100, '.0f')}%"
        return text + " unstable" if (case.get("summary") or {}).get("unstable") else text
    implicit = case["strategy"].get("objective", "rating") != "rating"
    if name.startswith("time to"):
        if not case.get("summary") or value == "":
            return ""
        if "target" in case["summary"]:  # a metric target: every objective is judged on it
            return "not reached" if value is None else number_text(value, ".3g")
        if implicit:
            return "n/a"
        return not_reached([case], target) if value is None else number_text(value, ".3g")
    if name == "target":
        return number_text(value, ".4g")
    if name == "time with tuning":
        return number_text(value, ".3g")
    if name == "scaling":
        return "" if value is None else f"{value * 100:.0f}%"
    if name in ("s/epoch", "setup s"):
        return number_text(value, ".4g")
    if name.startswith("test ") and not name.endswith("RMSE"):  # a metric the run named
        return number_text(value, ".4f")
    if name.endswith("RMSE"):
        text = number_text(value, ".4f")
        return f"({text})" if implicit and text else text
    if name == "peak MB":
        return number_text(value, ",.0f")
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
    "vs-fastest",
    "vs-reference",
    "reached",
    "group",
    "tuning",
    "time-with-tuning",
    "test RMSE",
    "note",
)
#: Shortened to fit a terminal: labels in the middle, the note turned into footnotes.
SHORTENED = {"dataset": "middle", "model": "middle", "params": "middle", "note": "footnote"}
#: Why a case missed its target, briefly, where the table is too wide for it in words.
MISSED_BRIEF = {not_reached_words(trend): f"not reached {mark}" for trend, mark in TREND_MARKS.items()}
MISSED_LEGEND = "; ".join(
    f"{'not reached ' if i == 0 else ''}{TREND_MARKS[trend]}: {TREND_WORDS[trend]}" for i, trend in enumerate(TREND_MARKS)
)
#: Left out, in this order, when shortening labels is not enough.
EXPENDABLE = ("spread", "vs reference", "tuning", "note", "params", "model", "vs fastest")


@dataclass(frozen=True)
class Row:
    """One row of a results table: raw values (for CSV), cells (for tabulate), and where it came from."""

    raw: dict[str, Any]
    cells: dict[str, str]
    #: The index, among the table's cases, of the record the row stands for (its first seed); None for a baseline.
    source: int | None
    skipped: str | None
    group: str
    extra: dict[str, Any]


BASELINE_NAMES = {"global_mean": "(global mean)", "biases": "(biases)"}


def record_rows(cases: list[dict[str, Any]], shape: TableShape) -> list[Row]:
    if not several_seeds(cases):
        rows = []
        for index, case in enumerate(cases):
            raw = case_columns(case, shape)
            target = shape.target if shape.target is not None else (case.get("summary") or {}).get("target_rmse")
            cells = {name: _display(name, value, case, target) for name, value in raw.items()}
            skipped = case.get("reason", "") if case["status"] == "skipped" else None
            rows.append(Row(raw, cells, index, skipped, str(case["device"]), {}))
        return rows
    verdicts = workload_verdicts(cases, shape.target)
    worse = {
        case.id: verdict.baselines["global_mean"].estimate
        for verdict in verdicts
        for case in verdict.cases
        if case.strategy in verdict.worse_than_mean and "global_mean" in verdict.baselines
    }
    # Each case's tied group in its workload, best first: by time to target where there is one, else by quality.
    groups: dict[str, int] = {}
    for verdict in verdicts:
        comparison = verdict.time or verdict.quality
        if comparison is not None and comparison.n_seeds > 1:
            number = {name: index for index, group in enumerate(comparison.groups, 1) for name in group}
            groups.update({case.id: number[case.strategy] for case in verdict.cases if case.strategy in number})
    positions = {id(case): i for i, case in enumerate(cases)}
    # The seeds each workload ran with (suite groups may run different seeds): a case lacking some is partial.
    workload_seeds: dict[tuple[str, str, str], set[int | None]] = {}
    for case in cases:
        if case["status"] != "skipped":
            workload_seeds.setdefault(workload_key(case), set()).add(record_seed(case))
    rows = []
    for records in by_case(cases).values():
        seeds = sorted(workload_seeds.get(workload_key(records[0]), set()), key=lambda s: -1 if s is None else s)
        raw, cells, extra = over_seeds_row(
            records, shape, {k: v for k, v in worse.items() if v is not None}, seeds, groups.get(records[0]["id"])
        )
        first = records[0]
        skipped = first.get("reason", "") if all(r["status"] == "skipped" for r in records) else None
        rows.append(Row(raw, cells, positions[id(first)], skipped, str(first["device"]), extra))
    return rows


def with_baselines(rows: list[Row], cases: list[dict[str, Any]]) -> list[Row]:
    """Each dataset's baseline rows after its last row (on its device): the test RMSE of a constant and
    of the bias model, on the same split (over seeds: the mean over the seeds' splits)."""
    if not rows:
        return rows
    records: dict[tuple[str, str], list[dict[str, Any]]] = {}
    last: dict[tuple[str, str], int] = {}
    for position, row in enumerate(rows):
        key = (str(row.raw["dataset"]), row.group)
        last[key] = position
    for case in cases:
        key = (
            str(case["dataset"].get("label") or format_selection(case["dataset"]["name"], case["dataset"].get("params", {}))),
            str(case["device"]),
        )
        records.setdefault(key, []).append(case)
    after: dict[int, list[Row]] = {}
    for key, position in last.items():
        figures = baseline_figures(records.get(key, []))
        for name, label in BASELINE_NAMES.items():
            if name not in figures:
                continue
            raw = dict.fromkeys(rows[0].raw, None)
            raw.update({"dataset": key[0], "model": "", "strategy": label, "device": key[1], "status": "baseline"})
            raw["test RMSE"] = figures[name].estimate
            cells = {column: "" if value is None else str(value) for column, value in raw.items()}
            cells["test RMSE"] = plus_minus(figures[name]) if figures[name].n > 1 else number_text(figures[name].estimate, ".4f")
            after.setdefault(position, []).append(Row(raw, cells, None, None, key[1], {}))
    return [r for position, row in enumerate(rows) for r in (row, *after.get(position, []))]


def ratio_text(ratio: float | None) -> str:
    if ratio is None:
        return ""
    return f"{ratio:.2f}×" if ratio < 10 else f"{ratio:,.0f}×" if ratio >= 100 else f"{ratio:.1f}×"


def with_ratios(rows: list[Row], cases: list[dict[str, Any]]) -> list[Row]:
    """By how much: each row's time-to-target over the fastest one's on its workload (dataset, model,
    device) and, where the reference strategy reached the target there, over the reference's.

    Over seeds the times are each case's median over its seeds (the tied groups and the answer say
    whether a difference is real). Cases that did not reach the target have no ratio.
    """
    name = next((n for n in rows[0].raw if n.startswith("time to")), None) if rows else None
    if name is None:
        return rows

    def time_of(row: Row) -> float | None:
        value = row.raw.get(name)
        number = as_number(value) if value not in ("", None) else math.nan
        return number if math.isfinite(number) and number > 0 else None

    def workload(row: Row) -> tuple[str, str, str]:
        assert row.source is not None, "ratios come before the baselines' rows"
        return workload_key(cases[row.source])

    fastest: dict[tuple[str, str, str], float] = {}
    reference: dict[tuple[str, str, str], float] = {}
    for row in rows:
        time = time_of(row)
        if time is None:
            continue
        fastest[workload(row)] = min(time, fastest.get(workload(row), math.inf))
        if row.source is not None and is_reference(cases[row.source]["strategy"]):
            reference[workload(row)] = time
    out = []
    for row in rows:
        time, key = time_of(row), workload(row)
        ratios = {"vs fastest": time / fastest[key] if time is not None else None}
        if reference:
            ratios["vs reference"] = time / reference[key] if time is not None and key in reference else None
        raw, cells = {}, {}
        for column, value in row.raw.items():
            raw[column], cells[column] = value, row.cells.get(column, "")
            if column == name:
                raw.update(ratios)
                cells.update({c: ratio_text(v) for c, v in ratios.items()})
        out.append(Row(raw, cells, row.source, row.skipped, row.group, row.extra))
    return out


def table_rows(cases: list[dict[str, Any]], shape: TableShape) -> list[Row]:
    """Every row of the table: records (or cases over seeds) with their ratios, then each dataset's baselines."""
    return with_baselines(with_ratios(record_rows(cases, shape), cases), cases)


def results_table(cases: list[dict[str, Any]], shape: TableShape, rows: list[Row] | None = None) -> Table:
    """Every column of every row, and what a terminal view may leave out or collapse."""
    rows = table_rows(cases, shape) if rows is None else rows
    headers = list(rows[0].raw) if rows else []
    default = list(DEFAULT_COLUMNS)
    default[default.index("test RMSE") + 1 : default.index("test RMSE") + 1] = [
        name for name in headers if name.startswith("test ") and name != "test RMSE"
    ]
    if any(row.raw["params"] not in ("(defaults)", None) for row in rows):
        default.insert(default.index("strategy") + 1, "params")
    if any("seeds" in row.raw for row in rows):
        default.insert(default.index("status") + 1, "seeds")
    return Table(
        headers=headers,
        rows=[[row.cells.get(name, "") for name in headers] for row in rows],
        skipped=[row.skipped for row in rows],
        groups=[row.group for row in rows],
        default=default,
        shorten={**SHORTENED, **{name: "brief" for name in headers if name.startswith("time to")}},
        expendable=EXPENDABLE,
        known=RESULT_COLUMNS,
        brief=MISSED_BRIEF,
        brief_legend=MISSED_LEGEND,
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
    """The same rows as the table, with raw numbers, as CSV (plus the roofline fields where present,
    and for cases over seeds the bounds of their intervals)."""
    cases = list(cases)
    shape = table_shape(cases, target, hosts)
    rows = table_rows(cases, shape)
    if not rows:
        return ""
    roofline = [key for key in ROOFLINE_CSV if any(key in (c.get("summary") or {}) for c in cases)]
    extras = [key for key in CSV_EXTRA if any(key in row.extra for row in rows)]
    records = [
        {
            **row.raw,
            **{key: (cases[row.source].get("summary") or {}).get(key) if row.source is not None else None for key in roofline},
            **{key: row.extra.get(key) for key in extras},
        }
        for row in rows
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return buffer.getvalue()


def case_line(index: int, total: int, case: dict[str, Any]) -> str:
    """The one line printed as a case finishes."""
    summary = case.get("summary") or {}
    parts = [f"[{index}/{total}] {case['id']}: {case['status']}"]
    if summary.get("median_updates_per_s") is not None:
        parts.append(f"{number_text(summary['median_updates_per_s'], ',.0f')} updates/s")
    if summary.get("final_test_rmse") is not None:
        parts.append(f"test RMSE {number_text(summary['final_test_rmse'], '.4f')}")
    if case.get("reason"):
        parts.append(f"({short_text(case['reason'], 100)})")
    return "  ".join(parts)
