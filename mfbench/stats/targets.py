"""``--target-rmse auto``: a validation target per workload, derived from the run itself.

AlgoPerf sets each workload's target from its best tuned baseline: the median over
seeds of the validation error that baseline reaches. Within one race that rule would
favour a participant: the case whose quality sets the target reaches it by
construction. mfbench derives the target from the whole field instead, and writes
down how:

1. A *workload* is a (dataset, model, device) triple of the run.
2. For every case of it that ended ``ok`` with a rating objective, take each repeat's
   best validation RMSE over its epochs, the median over repeats, and, when the case ran
   with several seeds, the median of that over its seeds: one lucky seed does not set
   the target, as AlgoPerf's median over seeds does not.
3. The target is the **median over the workload's cases** of those bests, times
   ``1 + slack`` (``--target-slack``, 2% by default): a quality the typical strategy of
   the race reaches, set by no single one of them. At least half the cases reach it at
   their best epoch; the race is how fast each gets there. (The earlier rule, the lowest
   best times 1 + slack, let the best-quality case define the target and reach it for
   sure; on the quick suite it left one strategy per workload able to reach it.)
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
    "per workload (dataset, model, device): (1 + slack) x the median, over its ok rating-objective cases, "
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
    bests: dict[tuple[str, str, str], dict[str, float]] = {}
    seeds: dict[tuple[str, str, str], int] = {}
    for case_id, values in per_case.items():
        key = workload_key(first[case_id])
        bests.setdefault(key, {})[case_id] = statistics.median(values)
        seeds[key] = max(seeds.get(key, 0), len(values))
    targets = []
    for key, field in bests.items():
        median = statistics.median(field.values())
        cases_of = [first[case_id] for case_id in field]
        targets.append(
            {
                "workload": workload_name(key),
                "dataset": key[0],
                "model": key[1],
                "device": key[2],
                "target_rmse": median * (1 + slack),
                "median_best_valid_rmse": median,
                "case_bests": dict(sorted(field.items(), key=lambda kv: kv[1])),
                "slack": slack,
                "from_tuned": all((c.get("tuning") or {}).get("status") == "ok" for c in cases_of),
                "seeds": seeds[key],
                "rule": RULE,
            }
        )
    return targets


def describe_target(target: dict[str, Any]) -> str:
    """How one derived target was set, in a line (results of both rules: the median and the older lowest)."""
    origin = "tuned" if target.get("from_tuned") else "untuned"
    seeds = f", each the median over {target['seeds']} seeds" if target.get("seeds", 1) > 1 else ""
    value = float(target["target_rmse"])
    if "median_best_valid_rmse" in target:
        count = len(target.get("case_bests") or {})
        return (
            f"{value:.4f} = (1 + {target['slack']:g}) x the median best validation RMSE "
            f"{float(target['median_best_valid_rmse']):.4f} of its {count} {origin} case(s){seeds}"
        )
    return (
        f"{value:.4f} = (1 + {target['slack']:g}) x the best validation RMSE {float(target['best_valid_rmse']):.4f} "
        f"of {origin} case {target.get('from_case')}{seeds} (an earlier mfbench's rule: the lowest best)"
    )


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
