"""One score across workloads: performance profiles, as AlgoPerf scores training algorithms.

For each workload (dataset, model, device) of a run, each strategy's time-to-target is
divided by the best strategy's on that workload: r = 1 for the fastest, infinity for a
strategy that did not reach the target (or failed). A strategy's performance profile
rho(tau) is the share of workloads on which r <= tau; its score is the area under rho
from tau = 1 to TAU_MAX = 4, divided by TAU_MAX - 1: 1.0 for a strategy fastest
everywhere, 0 for one never within 4x of the best. (Dolan & More's profiles; AlgoPerf's
benchmark score with its r_max = 4.)

Strategies are matched across workloads by their label before tuning (a tuned case's
``tuning.base_label``), since tuning gives each workload its own parameter values.
Workloads where no strategy reached the target say nothing about speed and are left
out (and listed). Cases with an implicit objective have no time-to-target and are left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .summary import as_number
from .targets import workload_key, workload_name

TAU_MAX = 4.0


def strategy_key(case: dict[str, Any]) -> str:
    tuning = case.get("tuning") or {}
    return str(tuning.get("base_label") or (case.get("strategy") or {}).get("label") or "?")


def ratios(cases: Iterable[dict[str, Any]]) -> tuple[dict[str, dict[str, float]], list[str]]:
    """(ratio by strategy then workload, workloads left out because nobody reached the target)."""
    times: dict[str, dict[str, float]] = {}
    for case in cases:
        if (case.get("strategy") or {}).get("objective", "rating") != "rating":
            continue
        if case.get("status") == "skipped":
            continue
        summary = case.get("summary") or {}
        if "target_rmse" not in summary and case.get("status") == "ok":
            continue  # no target on this workload: nothing to score
        value = as_number(summary.get("time_to_target_s"))
        seconds = value if case.get("status") == "ok" and math.isfinite(value) and value > 0 else math.inf
        workload = workload_name(workload_key(case))
        by_strategy = times.setdefault(workload, {})
        key = strategy_key(case)
        by_strategy[key] = min(seconds, by_strategy.get(key, math.inf))
    result: dict[str, dict[str, float]] = {}
    dropped = []
    for workload, by_strategy in times.items():
        best = min(by_strategy.values())
        if not math.isfinite(best):
            dropped.append(workload)
            continue
        for key, seconds in by_strategy.items():
            result.setdefault(key, {})[workload] = seconds / best
    return result, dropped


def rho(strategy_ratios: dict[str, float], workloads: list[str], tau: float) -> float:
    """Share of ``workloads`` on which the strategy's ratio is at most ``tau`` (absent: not reached)."""
    if not workloads:
        return 0.0
    return sum(strategy_ratios.get(w, math.inf) <= tau for w in workloads) / len(workloads)


def score(strategy_ratios: dict[str, float], workloads: list[str], tau_max: float = TAU_MAX) -> float:
    """Normalized area under rho from 1 to ``tau_max``; exact for the step function rho is:
    a workload with ratio r adds (tau_max - r) / (tau_max - 1) once r <= tau_max."""
    if not workloads:
        return 0.0
    total = 0.0
    for w in workloads:
        r = strategy_ratios.get(w, math.inf)
        if r <= tau_max:
            total += (tau_max - max(r, 1.0)) / (tau_max - 1.0)
    return total / len(workloads)


def performance_profile(cases: Iterable[dict[str, Any]], tau_max: float = TAU_MAX) -> dict[str, Any]:
    """The profile of a run: per strategy its ratios per workload and its score, best first."""
    table, dropped = ratios(list(cases))
    workloads = sorted({w for r in table.values() for w in r})
    strategies: list[dict[str, Any]] = [
        {
            "strategy": key,
            "score": score(r, workloads, tau_max),
            "ratios": {w: r.get(w, math.inf) for w in workloads},
            "reached": sum(math.isfinite(r.get(w, math.inf)) for w in workloads),
        }
        for key, r in table.items()
    ]
    strategies.sort(key=lambda s: (-s["score"], s["strategy"]))
    return {
        "tau_max": tau_max,
        "workloads": workloads,
        "left_out": dropped,
        "strategies": strategies,
        "rule": "ratio = time-to-target / best time-to-target on the workload (inf when not reached); "
        f"score = area under rho(tau) for tau in [1, {tau_max:g}], divided by {tau_max - 1:g}",
    }
