"""What every results table shares, whether a row is one record or one case over its seeds: number
formats, the shape decided once from all cases (target, scaling, hosts), the parameters label, the notes."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..run.selection import format_params
from ..stats.criterion import Criterion
from ..stats.summary import IMPROVING, LEVELLED, as_number, scaling_efficiencies, tuning_seconds, unreached_trend


def number_text(value: Any, spec: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):  # "nan"/"inf" as stored in JSON
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return format(value, spec)


def short_text(text: str, width: int) -> str:
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


def params_label(case: dict[str, Any]) -> str:
    """The strategy's non-default parameters and, for a case whose study tuned the model too, the
    model's as tuned (``lr=0.012,reg=0.05; biased[n_factors=96]``)."""
    label = strategy_params_label(case["strategy"])
    tuned_model = (case.get("model") or {}).get("tuned_label")
    return f"{label}; {tuned_model}" if tuned_model else label


def with_tuning_time(columns: dict[str, Any], case: dict[str, Any]) -> float | None:
    """Time to target plus what the case's tuning cost: the price of the answer for who starts from
    nothing (None where the target was not reached, or the case was not tuned)."""
    time = next((v for k, v in columns.items() if k.startswith("time to")), None)
    cost = tuning_seconds(case)
    if not isinstance(time, (int, float)) or not math.isfinite(time) or not cost:
        return None
    return time + cost


@dataclass(frozen=True)
class TableShape:
    """What a table shows beyond the fixed columns, decided once from all its cases."""

    target: float | None = None
    scaling: dict[tuple[str, int | None], float] = field(default_factory=dict)
    hosts: bool = False
    #: Cases carry targets of their own (suite groups, ``auto`` per workload): show each one's.
    per_case_target: bool = False
    #: Some cases raced tuned parameters: show what tuning cost beside time-to-target.
    tuned: bool = False
    #: The target was asked for (``--target-rmse``): it applies to every case, not only to
    #: those whose suite group set it.
    asked: bool = False
    #: A target in a metric (``--target 'ndcg[k=10]>=0.3'``), shared by every case.
    criterion: Criterion | None = None
    #: The metrics the cases evaluated beside RMSE: (key in the results, title), shown as test columns.
    metrics: tuple[tuple[str, str], ...] = ()


def table_shape(cases: list[dict[str, Any]], target: float | None, hosts: bool | None) -> TableShape:
    """The host column appears when cases ran on more than one host (or when asked for)."""
    if hosts is None:
        hosts = len({c.get("host") for c in cases if c.get("host")}) > 1
    shown = case_target(cases, target)
    own = shown is None and any("target_rmse" in (c.get("summary") or {}) for c in cases)
    tuned = any(c.get("tuning") for c in cases)
    criteria = {json.dumps(c["summary"]["target"], sort_keys=True) for c in cases if "target" in (c.get("summary") or {})}
    criterion = Criterion.from_dict(json.loads(criteria.pop())) if len(criteria) == 1 and shown is None else None
    titles = {k: v for c in cases for k, v in ((c.get("summary") or {}).get("metric_titles") or {}).items()}
    metrics = tuple(titles.items())
    return TableShape(shown, scaling_efficiencies(cases), hosts, own, tuned, target is not None, criterion, metrics)


def metric_columns(summaries: list[dict[str, Any]], shape: TableShape) -> dict[str, list[float]]:
    """Each metric's final test values over ``summaries`` (one per record), by column name (``test NDCG@10``)."""
    columns = {}
    for key, title in shape.metrics:
        values = [as_number(((s.get("final_metrics") or {}).get("test") or {}).get(key)) for s in summaries]
        columns[f"test {title}"] = [v for v in values if math.isfinite(v)]
    return columns


def criterion_column(shape: TableShape) -> str | None:
    """The time-to-target column of a metric target: ``time to NDCG@10 >= 0.3``."""
    return f"time to {shape.criterion.text()}" if shape.criterion is not None else None


def half_iqr(relative_iqr: Any) -> Any:
    """``spread``: ± half the interquartile range of epoch times relative to their median.

    The results file stores the full relative IQR (``relative_iqr``); the table and
    the CSV both show half of it, under the one name ``spread``.
    """
    if isinstance(relative_iqr, (int, float)) and not isinstance(relative_iqr, bool):
        return relative_iqr / 2
    return relative_iqr


def worse_than_mean(case: dict[str, Any]) -> float | None:
    """The global mean's test RMSE on a record's split when the record's final test RMSE does not beat it."""
    summary = case.get("summary") or {}
    mean = ((case.get("dataset") or {}).get("baselines") or {}).get("global_mean") or {}
    final, constant = summary.get("final_test_rmse"), mean.get("test_rmse")
    if case.get("status") != "ok" or (case.get("strategy") or {}).get("objective", "rating") != "rating":
        return None
    if isinstance(final, (int, float)) and isinstance(constant, (int, float)) and math.isfinite(constant):
        return constant if final >= constant else None
    return None


def below_popularity(case: dict[str, Any]) -> str | None:
    """A note when a case's test value of a ranking metric does not beat recommending the most popular
    unseen items (the dataset's ``popularity`` baseline), as ``worse_than_mean`` does for RMSE."""
    summary = case.get("summary") or {}
    floor = (((case.get("dataset") or {}).get("baselines") or {}).get("popularity") or {}).get("test") or {}
    finals = (summary.get("final_metrics") or {}).get("test") or {}
    titles = summary.get("metric_titles") or {}
    if case.get("status") != "ok" or case["strategy"]["name"] == "popularity":
        return None
    worse = [
        f"{titles.get(key, key)} {as_number(value):.4f}"
        for key, value in floor.items()
        if key in finals and key in titles and not as_number(finals[key]) > as_number(value)
        and key.split("[")[0] != "coverage"
    ]  # fmt: skip
    return f"no better than popularity ({', '.join(worse)})" if worse else None


def mean_note(constant: float) -> str:
    return f"held-out RMSE no better than the global mean's ({constant:.4f})"


def case_note(case: dict[str, Any]) -> str:
    notes = [case.get("reason", "")]
    constant = worse_than_mean(case)
    if constant is not None:
        notes.append(mean_note(constant))
    strategy = case["strategy"]
    if strategy.get("objective", "rating") != "rating":
        ranked = "target" in (case.get("summary") or {}) or "final_metrics" in (case.get("summary") or {})
        compare = "compare it on the ranking metrics" if ranked else "compare s/epoch only"
        notes.append(f"{strategy['objective']}-feedback objective: RMSE not comparable, {compare}")
    popularity = below_popularity(case)
    if popularity:
        notes.append(popularity)
    if not strategy.get("stepwise", True) and case.get("summary"):
        covered = max((e.get("epochs_covered", 1) for r in case["repeats"] for e in r.get("epochs", [])), default=1)
        notes.append(f"whole fit of {covered} epochs timed as one call")
    return "; ".join(n for n in notes if n)


#: The marks of a narrow table for ``not reached (improving)`` and ``not reached (levelled)``.
TREND_MARKS = {IMPROVING: "↘", LEVELLED: "→"}
#: What each trend means, in words (a narrow table's legend, the HTML charts' note).
TREND_WORDS = {IMPROVING: "still improving when its epochs ran out", LEVELLED: "levelled off above the target"}


def not_reached_words(trend: str | None) -> str:
    return f"not reached ({trend})" if trend else "not reached"


def not_reached(records: list[dict[str, Any]], target: Any) -> str:
    """``not reached``, with why where the curves tell: ``(improving)`` when the epochs ran out while
    validation RMSE was still falling toward the target, ``(levelled)`` when it had stopped short."""
    value = as_number(target)
    return not_reached_words(unreached_trend(records, value) if math.isfinite(value) else None)
