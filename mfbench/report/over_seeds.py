"""Rows of a run with several seeds: one row per case over its seeds, figures with their intervals.

Cells are compact: ``0.031 [0.012, 0.044]`` (median time-to-target over seeds, epochs to target x
the case's median epoch, with its 95% bootstrap interval), ``4/5`` (seeds that reached the target),
``0.8712 ±0.0040`` (mean final test RMSE over seeds with the half-width of its 95% t-interval), and
the throughput's median over seeds with ``±`` half its range over seeds.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from ..run.selection import format_selection
from ..stats.intervals import Interval, mean_ci
from ..stats.seeds import CaseOverSeeds, case_over_seeds
from ..stats.summary import as_number, run_key, unstable_case
from .rows import (
    TableShape,
    case_note,
    criterion_column,
    half_iqr,
    mean_note,
    metric_columns,
    not_reached,
    number_text,
    params_label,
    with_tuning_time,
)
from .tuning import tuning_cost

#: Figures the CSV adds for a row over seeds: the intervals the cells print in one.
CSV_EXTRA = ("seeds", "time low", "time high", "wall time", "reached", "test RMSE low", "test RMSE high")


def status_text(statuses: dict[str, int], total: int) -> str:
    """``ok`` when every seed ended ok; otherwise each status with its count (``ok 4/5, error 1/5``)."""
    if len(statuses) == 1:
        return next(iter(statuses))
    return ", ".join(f"{status} {count}/{total}" for status, count in sorted(statuses.items(), key=lambda kv: -kv[1]))


def interval_text(interval: Interval | None, spec: str, missed: str = "not reached") -> str:
    if interval is None or interval.estimate is None:
        return ""
    if math.isinf(interval.estimate):
        return missed
    text = number_text(interval.estimate, spec)
    if interval.low is None or interval.high is None:
        return text
    high = "inf" if math.isinf(interval.high) else number_text(interval.high, spec)
    return f"{text} [{number_text(interval.low, spec)}, {high}]"


def plus_minus(interval: Interval) -> str:
    if interval.estimate is None or not math.isfinite(interval.estimate):
        return ""
    text = number_text(interval.estimate, ".4f")
    if interval.low is None or interval.high is None:
        return text
    return f"{text} ±{(interval.high - interval.low) / 2:.4f}"


def median_of(records: list[dict[str, Any]], key: str) -> float | None:
    values = [as_number((r.get("summary") or {}).get(key)) for r in records if r.get("status") == "ok"]
    values = [v for v in values if math.isfinite(v)]
    return statistics.median(values) if values else None


def over_seeds_row(
    records: list[dict[str, Any]],
    shape: TableShape,
    worse: dict[str, float],
    run_seeds: list[int | None],
    group: int | None = None,
) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """(raw values, cells, CSV extras) of one case over its seeds, by column name.

    ``worse``: the global mean's test RMSE by case id, for cases whose mean does not beat it;
    ``run_seeds``: every seed of its workload, so a case that lacks some is shown as partial;
    ``group``: its tied group in the workload (1 = the best; by time to target, else by quality).
    """
    first = records[0]
    # A target given to report applies to every case; a suite group's only to the cases of its group.
    applies = shape.asked or any("target_rmse" in (r.get("summary") or {}) for r in records)
    figures: CaseOverSeeds = case_over_seeds(records, shape.target if applies else None)
    dataset, model, strategy = first["dataset"], first["model"], first["strategy"]
    implicit = not figures.rating
    rate = figures.updates_per_s.estimate
    spread = None
    if figures.n == 1:  # one seed: the spread of its epochs, as a table of one seed per case shows it
        spread = half_iqr((first.get("summary") or {}).get("relative_iqr"))
    elif figures.updates_range is not None and rate:
        spread = (figures.updates_range[1] - figures.updates_range[0]) / 2 / rate
    raw: dict[str, Any] = {
        "dataset": dataset.get("label") or format_selection(dataset["name"], dataset.get("params", {})),
        "model": model.get("label") or format_selection(model["name"], model.get("params", {})),
        "strategy": strategy["name"],
        "device": first["device"],
        **({"host": ", ".join(sorted({str(r.get("host")) for r in records}))} if shape.hosts else {}),
        "params": params_label(first),
        "status": status_text(figures.statuses, figures.n),
        "seeds": figures.n,
        "updates/s": rate,
        "spread": spread,
        "s/epoch": figures.median_epoch_s,
        "setup s": median_of(records, "median_setup_s"),
    }
    cells = {name: "" if value is None else str(value) for name, value in raw.items()}
    missing = [seed for seed in run_seeds if seed not in figures.seeds]
    if missing:
        cells["seeds"] = f"{figures.n}/{len(run_seeds)}"
    cells["updates/s"] = number_text(rate, ",.0f")
    cells["spread"] = "" if spread is None else f"±{spread * 100:.0f}%"
    if spread is not None and unstable_case(records):
        cells["spread"] += " unstable"
    cells["s/epoch"] = number_text(figures.median_epoch_s, ".4g")
    cells["setup s"] = number_text(raw["setup s"], ".4g")
    if shape.scaling:
        found = [shape.scaling[run_key(r)] for r in records if run_key(r) in shape.scaling]
        raw["scaling"] = statistics.median(found) if found else None
        cells["scaling"] = "" if raw["scaling"] is None else f"{raw['scaling'] * 100:.0f}%"
    time_name = f"time to {shape.target:g}" if shape.target is not None else "time to target" if shape.per_case_target else None
    if shape.per_case_target and shape.target is None:
        raw["target"] = figures.target
        cells["target"] = number_text(figures.target, ".4g")
    if time_name is not None:
        time = figures.time_to_target
        raw[time_name] = time.estimate if time is not None else None
        missed = not_reached(records, figures.target if shape.target is None else shape.target)
        cells[time_name] = "n/a" if implicit and applies else interval_text(time, ".3g", missed)
        raw["reached"] = figures.success.reached if figures.success else None
        cells["reached"] = f"{figures.success.reached}/{figures.success.total}" if figures.success else ""
    criterion_name = criterion_column(shape) if shape.target is None and not shape.per_case_target else None
    if criterion_name is not None:
        # a metric target: each seed's time to it; the interval is over the seeds that reached it
        times = [as_number((r.get("summary") or {}).get("time_to_target_s")) for r in records if r.get("status") == "ok"]
        reached = [t for t in times if math.isfinite(t)]
        time_ci = mean_ci(reached) if reached and 2 * len(reached) >= len(times) else None
        raw[criterion_name] = time_ci.estimate if time_ci is not None else None
        cells[criterion_name] = interval_text(time_ci, ".3g") if time_ci is not None else "not reached"
        raw["reached"] = f"{len(reached)}/{len(times)}"
        cells["reached"] = raw["reached"]
    raw["group"] = group
    cells["group"] = "" if group is None else str(group)
    if shape.tuned:
        raw["tuning"] = cells["tuning"] = tuning_cost(first.get("tuning"))
        raw["time with tuning"] = with_tuning_time(raw, first)
        cells["time with tuning"] = number_text(raw["time with tuning"], ".3g")
    peak = max((as_number((r.get("summary") or {}).get("peak_memory_bytes")) for r in records), default=math.nan)
    train = median_of(records, "final_train_rmse")
    notes = list(dict.fromkeys(note for r in records for note in [case_note(r)] if note and "global mean" not in note))
    if first["id"] in worse:
        notes.insert(0, mean_note(worse[first["id"]]))
    if missing:
        notes.insert(0, f"partial: no record for seed(s) {', '.join(map(str, missing))}")
    raw.update(
        {
            "train RMSE": train,
            "test RMSE": figures.final_test_rmse.estimate,
            "peak MB": peak / 2**20 if math.isfinite(peak) else None,
            "note": "; ".join(notes),
        }
    )
    for name, values in metric_columns([r.get("summary") or {} for r in records if r.get("status") == "ok"], shape).items():
        figure = mean_ci(values) if values else None
        raw[name] = figure.estimate if figure is not None else None
        cells[name] = plus_minus(figure) if figure is not None else ""
    test = plus_minus(figures.final_test_rmse)
    cells.update(
        {
            "train RMSE": number_text(train, ".4f"),
            "test RMSE": f"({test})" if implicit and test else test,
            "peak MB": number_text(raw["peak MB"], ",.0f"),
            "note": raw["note"],
        }
    )
    time, wall, rmse = figures.time_to_target, figures.wall_time_to_target, figures.final_test_rmse
    extra = {
        "seeds": figures.n,
        "time low": time.low if time else None,
        "time high": time.high if time else None,
        "wall time": wall.estimate if wall else None,
        "reached": f"{figures.success.reached}/{figures.success.total}" if figures.success else None,
        "test RMSE low": rmse.low,
        "test RMSE high": rmse.high,
    }
    return raw, cells, extra
