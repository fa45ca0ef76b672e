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

Over several seeds the score is computed per seed, and the profile reports the median of the
seeds' scores with their range (AlgoPerf's median over studies); the ratios and rho(tau) curves
are those of each case's median time-to-target over its seeds.
Workloads where no strategy reached the target say nothing about speed and are left
out (and listed). Cases with an implicit objective have no time-to-target and are left out.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any

from .summary import as_number, tuning_seconds
from .targets import workload_key, workload_name

TAU_MAX = 4.0


def strategy_key(case: dict[str, Any]) -> str:
    tuning = case.get("tuning") or {}
    return str(tuning.get("base_label") or (case.get("strategy") or {}).get("label") or "?")


def ratios(cases: Iterable[dict[str, Any]], with_tuning: bool = False) -> tuple[dict[str, dict[str, float]], list[str]]:
    """(ratio by strategy then workload, workloads left out because nobody reached the target).

    A strategy's time on a workload is the median over seeds (of the best of its cases on a seed,
    when several share its label); inf where it did not reach the target. ``with_tuning`` adds what
    each case's tuning cost (AlgoPerf's rule when tuning is part of the submission's budget).
    """
    times: dict[str, dict[str, dict[Any, float]]] = {}
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
        if with_tuning:
            seconds += tuning_seconds(case)
        workload = workload_name(workload_key(case))
        per_seed = times.setdefault(workload, {}).setdefault(strategy_key(case), {})
        seed = case.get("seed")
        per_seed[seed] = min(seconds, per_seed.get(seed, math.inf))
    result: dict[str, dict[str, float]] = {}
    dropped = []
    for workload, by_strategy in times.items():
        medians = {key: median_time(list(seeds.values())) for key, seeds in by_strategy.items()}
        best = min(medians.values())
        if not math.isfinite(best):
            dropped.append(workload)
            continue
        for key, seconds in medians.items():
            result.setdefault(key, {})[workload] = seconds / best
    return result, dropped


def median_time(values: list[float]) -> float:
    """The median of times where inf means "not reached" (so more than half unreached is inf)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    low, high = ordered[middle - 1], ordered[middle]
    return math.inf if math.isinf(high) else (low + high) / 2


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


def performance_profile(cases: Iterable[dict[str, Any]], tau_max: float = TAU_MAX, with_tuning: bool = False) -> dict[str, Any]:
    """The profile of a run: per strategy its ratios per workload and its score, best first.

    Over several seeds, ``score`` is the median of the seeds' scores and ``score_range`` their
    range; ``seed_scores`` lists them by seed.
    """
    cases = list(cases)
    table, dropped = ratios(cases, with_tuning)
    workloads = sorted({w for r in table.values() for w in r})
    seeds: list[int] = sorted({c["seed"] for c in cases if isinstance(c.get("seed"), int)})
    per_seed: dict[str, dict[int, float]] = {}
    if len(seeds) > 1:
        for seed in seeds:
            seed_table, _ = ratios((c for c in cases if c.get("seed") == seed), with_tuning)
            seed_workloads = sorted({w for r in seed_table.values() for w in r})
            for key, r in seed_table.items():
                per_seed.setdefault(key, {})[seed] = score(r, seed_workloads, tau_max)
    strategies: list[dict[str, Any]] = []
    for key, r in table.items():
        entry: dict[str, Any] = {
            "strategy": key,
            "score": score(r, workloads, tau_max),
            "ratios": {w: r.get(w, math.inf) for w in workloads},
            "reached": sum(math.isfinite(r.get(w, math.inf)) for w in workloads),
        }
        if per_seed:
            scores = [per_seed.get(key, {}).get(seed, 0.0) for seed in seeds]
            entry.update(
                score=statistics.median(scores),
                score_range=[min(scores), max(scores)],
                seed_scores={str(seed): value for seed, value in zip(seeds, scores, strict=True)},
            )
        strategies.append(entry)
    strategies.sort(key=lambda s: (-s["score"], s["strategy"]))
    time = "time-to-target + tuning cost" if with_tuning else "time-to-target"
    rule = (
        f"ratio = {time} / best {time} on the workload (inf when not reached); "
        f"score = area under rho(tau) for tau in [1, {tau_max:g}], divided by {tau_max - 1:g}"
    )
    if per_seed:
        rule += f"; computed per seed, the median over {len(seeds)} seeds with its range"
    return {
        "tau_max": tau_max,
        "workloads": workloads,
        "left_out": dropped,
        "strategies": strategies,
        "rule": rule,
        "seeds": len(seeds) or 1,
        "with_tuning": with_tuning,
    }
