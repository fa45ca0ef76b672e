"""``--target-rmse auto``: a validation target per workload, derived from the run itself.

AlgoPerf sets each workload's target from its best tuned baseline: the median over
seeds of the validation error that baseline reaches. mfbench does the same within a
run, and writes down how:

1. A *workload* is a (dataset, model, device) triple of the run.
2. For every case of it that ended ``ok`` with a rating objective, take each repeat's
   best validation RMSE over its epochs, the median over repeats, and, when the case ran
   with several seeds, the median of that over its seeds: one lucky seed does not set
   the target, as AlgoPerf's median over seeds does not.
3. The case with the lowest such median is the reference; the target is that median
   times ``1 + slack`` (``--target-slack``, 2% by default), so that the reference reaches
   it for sure and strategies within 2% of the best quality count as reaching it. With no
   slack only the best-quality strategy reaches the target and time-to-target degenerates
   into a quality ranking: measured on the ``tuned`` suite, a 1% slack left one strategy
   per workload (two of them the same per-rating SGD as the losers, luckier in 8 trials).
4. Every case's time-to-target on that workload is then computed against that target,
   from its recorded validation curve: no case runs twice.

The rule is deterministic for a seed: the same run gives the same targets. It uses
validation ratings only, never test ratings. When the run raced tuned parameters
(``--tuned``), the targets come from tuned cases, as AlgoPerf's do; otherwise the
results say they come from untuned cases.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from .summary import best_decision_rmse, case_time_to_target

DEFAULT_SLACK = 0.02
RULE = (
    "per workload (dataset, model, device): (1 + slack) x the lowest, over its ok rating-objective cases, "
    "of the median over seeds of the median over repeats of each repeat's best validation RMSE"
)


def workload_key(case: dict[str, Any]) -> tuple[str, str, str]:
    return (
        str((case.get("dataset") or {}).get("label")),
        str((case.get("model") or {}).get("label")),
        str(case.get("device")),
    )


def workload_name(key: tuple[str, str, str]) -> str:
    return " / ".join(key)


def derive_targets(cases: Iterable[dict[str, Any]], slack: float = DEFAULT_SLACK) -> list[dict[str, Any]]:
    """One target per workload that has an ok rating-objective case, with its provenance."""
    per_case: dict[str, list[float]] = {}
    first: dict[str, dict[str, Any]] = {}
    for case in cases:
        if case.get("status") != "ok" or (case.get("strategy") or {}).get("objective", "rating") != "rating":
            continue
        value = best_decision_rmse(case)
        if value is None:
            continue
        per_case.setdefault(case["id"], []).append(value)
        first.setdefault(case["id"], case)
    best: dict[tuple, tuple[float, dict[str, Any], int]] = {}
    order: list[tuple] = []
    for case_id, values in per_case.items():
        case, value = first[case_id], statistics.median(values)
        key = workload_key(case)
        if key not in best:
            order.append(key)
        if key not in best or value < best[key][0]:
            best[key] = (value, case, len(values))
    targets = []
    for key in order:
        value, case, seeds = best[key]
        tuned = (case.get("tuning") or {}).get("status") == "ok"
        targets.append(
            {
                "workload": workload_name(key),
                "dataset": key[0],
                "model": key[1],
                "device": key[2],
                "target_rmse": value * (1 + slack),
                "best_valid_rmse": value,
                "slack": slack,
                "from_case": case["id"],
                "from_tuned": tuned,
                "repeats": len(case.get("repeats", [])),
                "seeds": seeds,
                "rule": RULE,
            }
        )
    return targets


def apply_targets(cases: list[dict[str, Any]], targets: list[dict[str, Any]], only: set[str] | None = None) -> None:
    """Set each case's target and time-to-target from its workload's derived target.

    ``only``: the ids of the cases that asked for ``auto`` (a suite group may set its own
    number); None applies to every case.
    """
    by_workload = {t["workload"]: t["target_rmse"] for t in targets}
    for case in cases:
        if only is not None and case["id"] not in only:
            continue
        summary = case.get("summary")
        target = by_workload.get(workload_name(workload_key(case)))
        if not summary or target is None:
            continue
        summary["target_rmse"] = target
        summary["target_rule"] = "auto"
        summary["time_to_target_s"] = case_time_to_target(case, target)
