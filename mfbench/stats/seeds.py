"""A run's figures over its seeds: each case's intervals, and each workload's paired verdicts and baselines.

A results file holds one record per case and seed (``seed``; a file from before seeds were an axis
has one record per case). This module reads those records back as cases over seeds:

* per case: how many seeds ran and how they ended, the success rate at the target, the median
  time-to-target with a bootstrap interval, the mean final held-out RMSE with a t-interval, and the
  median throughput with its range over seeds;
* per workload (dataset, model, device): every pair of strategies compared on the seeds they share
  (:func:`mfbench.stats.paired.compare_strategies`), the tied groups, and the trivial baselines
  (:mod:`mfbench.data.baselines`) that every quality figure is read against.

**Time-to-target over seeds** is *epochs to target x the case's median epoch time* over all its
seeds: how many epochs a seed needed is the strategy's business, how long an epoch took on a shared
machine is the machine's, and multiplying the seed's epochs by the case's typical epoch keeps timing
noise out of the seed-to-seed comparison. The wall-clock figure (the seconds the epochs actually took)
is kept beside it. Epochs count from the first, warm-up included, as the wall-clock figure does.

What the intervals mean: the spread of a figure over seeds (split, initialization and visiting
order) and timing noise on this machine, not what another machine would measure.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .intervals import Interval, SuccessRate, bootstrap_ci, mean_ci, success_rate
from .paired import Comparison, compare_strategies
from .performance_profile import strategy_key
from .summary import as_number, decision_rmse, epoch_seconds, time_to_target, timed_epochs, unstable_case
from .targets import workload_key, workload_name

#: Seeds of a bootstrap's own draws: fixed, so the same results file always prints the same intervals.
BOOTSTRAP_SEED = 0
BASELINES = ("global_mean", "biases")


def record_seed(case: dict[str, Any], default: int | None = None) -> int | None:
    """The seed a record ran with (files from before seeds were an axis: ``default``, the run's seed)."""
    seed = case.get("seed", default)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else default


def by_case(cases: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The records of each case, in the order cases first appear, each case's records by seed."""
    found: dict[str, list[dict[str, Any]]] = {}
    for case in cases:
        found.setdefault(case["id"], []).append(case)
    return {key: sorted(records, key=lambda r: record_seed(r, -1) or 0) for key, records in found.items()}


def unstable_share(cases: Iterable[dict[str, Any]]) -> tuple[list[str], int]:
    """The ids of the unstable cases (``unstable_case`` over each case's ok records) and how many cases were timed."""
    timed = by_case(c for c in cases if c.get("status") == "ok")
    return [case_id for case_id, records in timed.items() if unstable_case(records)], len(timed)


def several_seeds(cases: Iterable[dict[str, Any]]) -> bool:
    """Whether any case ran with more than one seed (the tables then show one row per case, over seeds)."""
    return any(len(records) > 1 for records in by_case(cases).values())


def epochs_to_target(epochs: Iterable[dict[str, Any]], target: float) -> int | None:
    """Epochs trained until validation RMSE first reaches ``target`` (warm-up included; a whole fit
    counts the epochs it covered); None if never."""
    count = 0
    for epoch in epochs:
        count += int(epoch.get("epochs_covered", 1))
        value = decision_rmse(epoch)
        if math.isfinite(value) and value <= target:
            return count
    return None


def _median_over_repeats(values: Sequence[float | None]) -> float:
    """The median over repeats of a per-repeat figure; inf when fewer than half the repeats reached it."""
    reached = [v for v in values if v is not None]
    if not reached or len(reached) * 2 < len(values):
        return math.inf
    return float(statistics.median(reached))


def median_epoch_seconds(records: Iterable[dict[str, Any]]) -> float | None:
    """The case's typical epoch: the median over every counted epoch of every seed."""
    seconds = [epoch_seconds(e) for r in records for e in timed_epochs(r)]
    seconds = [s for s in seconds if math.isfinite(s) and s > 0]
    return statistics.median(seconds) if seconds else None


def seed_times(record: dict[str, Any], target: float, epoch_s: float | None) -> tuple[float, float]:
    """(epochs to target x the case's median epoch, wall-clock seconds to target) of one seed's record:
    inf when it did not reach the target, nan when nothing was measured (an error, a skip)."""
    if record.get("status") in ("error", "skipped") or not record.get("repeats"):
        return math.nan, math.nan
    repeats = [r.get("epochs", []) for r in record["repeats"]]
    epochs = _median_over_repeats([epochs_to_target(e, target) for e in repeats])
    wall = _median_over_repeats([time_to_target(e, target) for e in repeats])
    if not math.isfinite(epochs):
        return math.inf, wall
    return (epochs * epoch_s if epoch_s is not None else math.nan), wall


def seed_quality(record: dict[str, Any]) -> float:
    """One seed's final held-out (test) RMSE; nan when the case did not end ok."""
    if record.get("status") != "ok":
        return math.nan
    return as_number((record.get("summary") or {}).get("final_test_rmse"))


@dataclass(frozen=True)
class CaseOverSeeds:
    """One case over the seeds it ran with; per-seed lists follow ``seeds``."""

    id: str
    workload: str
    strategy: str
    rating: bool
    seeds: tuple[int | None, ...]
    statuses: dict[str, int]
    updates_per_s: Interval
    #: The range over seeds of the per-seed median updates/s.
    updates_range: tuple[float, float] | None
    target: float | None
    success: SuccessRate | None
    time_to_target: Interval | None
    wall_time_to_target: Interval | None
    median_epoch_s: float | None
    final_test_rmse: Interval
    test_rmse_at_best_valid: Interval
    per_seed_time: tuple[float, ...] = ()
    per_seed_wall: tuple[float, ...] = ()
    per_seed_quality: tuple[float, ...] = ()

    @property
    def n(self) -> int:
        return len(self.seeds)


def case_over_seeds(records: Sequence[dict[str, Any]], target: float | None = None) -> CaseOverSeeds:
    """The figures of one case over its seeds (``records``: that case's records, one per seed).

    ``target``: the time-to-target threshold; None takes the one the records carry (their summaries'
    ``target_rmse``, the same for every seed of a case).
    """
    first = records[0]
    summaries = [r.get("summary") or {} for r in records]
    if target is None:
        found = {s.get("target_rmse") for s in summaries} - {None}
        target = found.pop() if len(found) == 1 and isinstance(next(iter(found)), (int, float)) else None
    statuses: dict[str, int] = {}
    for record in records:
        statuses[record.get("status", "?")] = statuses.get(record.get("status", "?"), 0) + 1
    rates = [as_number(s.get("median_updates_per_s")) for r, s in zip(records, summaries, strict=True) if r.get("status") == "ok"]
    rates = [x for x in rates if math.isfinite(x) and x > 0]
    rating = (first.get("strategy") or {}).get("objective", "rating") == "rating"
    epoch_s = median_epoch_seconds(records)
    times: tuple[float, ...] = ()
    walls: tuple[float, ...] = ()
    success = time = wall = None
    if target is not None and rating:
        pairs = [seed_times(r, target, epoch_s) for r in records]
        times = tuple(p[0] for p in pairs)
        walls = tuple(p[1] for p in pairs)
        success = success_rate(times)
        time = bootstrap_ci(times, seed=BOOTSTRAP_SEED)
        wall = bootstrap_ci(walls, seed=BOOTSTRAP_SEED)
    quality = tuple(seed_quality(r) if rating else math.nan for r in records)
    at_best = [
        as_number(s.get("test_rmse_at_best_valid")) if r.get("status") == "ok" else math.nan
        for r, s in zip(records, summaries, strict=True)
    ]
    return CaseOverSeeds(
        id=first["id"],
        workload=workload_name(workload_key(first)),
        strategy=strategy_key(first),
        rating=rating,
        seeds=tuple(record_seed(r) for r in records),
        statuses=statuses,
        updates_per_s=bootstrap_ci(rates, seed=BOOTSTRAP_SEED),
        updates_range=(min(rates), max(rates)) if rates else None,
        target=target,
        success=success,
        time_to_target=time,
        wall_time_to_target=wall,
        median_epoch_s=epoch_s,
        final_test_rmse=mean_ci(quality),
        test_rmse_at_best_valid=mean_ci(at_best),
        per_seed_time=times,
        per_seed_wall=walls,
        per_seed_quality=quality,
    )


@dataclass(frozen=True)
class WorkloadVerdict:
    """Every case of one workload compared on the seeds they share, and the baselines of its data."""

    workload: str
    seeds: tuple[int | None, ...]
    cases: tuple[CaseOverSeeds, ...]
    target: float | None
    #: Time-to-target comparison (None without a target or with fewer than two strategies): over
    #: several seeds of epochs to target x the case's median epoch, for one seed of wall-clock seconds.
    time: Comparison | None
    #: Final held-out RMSE comparison of the rating-objective strategies.
    quality: Comparison | None
    #: Mean over seeds of each baseline's test RMSE (``global_mean``, ``biases``).
    baselines: dict[str, Interval] = field(default_factory=dict)
    #: Strategies whose mean final test RMSE does not beat the global mean's.
    worse_than_mean: tuple[str, ...] = ()


def _aligned(case: CaseOverSeeds, values: tuple[float, ...], seeds: Sequence[int | None]) -> list[float]:
    """A case's per-seed values on the workload's seed list (nan where the case lacks a seed)."""
    by_seed = dict(zip(case.seeds, values, strict=True))
    return [by_seed.get(seed, math.nan) for seed in seeds]


def baseline_figures(records: Iterable[dict[str, Any]]) -> dict[str, Interval]:
    """Each baseline's test RMSE over the seeds of a workload (one split per seed: duplicates counted once)."""
    per_seed: dict[str, dict[Any, float]] = {name: {} for name in BASELINES}
    for record in records:
        found = (record.get("dataset") or {}).get("baselines") or {}
        for name in BASELINES:
            value = as_number((found.get(name) or {}).get("test_rmse"))
            if math.isfinite(value):
                per_seed[name][(record_seed(record), (record.get("dataset") or {}).get("fingerprint"))] = value
    return {name: mean_ci(list(values.values())) for name, values in per_seed.items() if values}


def workload_verdicts(cases: Iterable[dict[str, Any]], target: float | None = None, alpha: float = 0.05) -> list[WorkloadVerdict]:
    """One verdict per workload of the run, in the order workloads first appear.

    ``target`` overrides the records' own time-to-target threshold (``report --target-rmse``).
    """
    cases = [c for c in cases if c.get("status") != "skipped"]
    grouped: dict[str, list[list[dict[str, Any]]]] = {}
    for records in by_case(cases).values():
        grouped.setdefault(workload_name(workload_key(records[0])), []).append(records)
    verdicts = []
    for workload, case_records in grouped.items():
        figures = [case_over_seeds(records, target) for records in case_records]
        seeds = sorted({s for f in figures for s in f.seeds}, key=lambda s: -1 if s is None else s)
        rated = [f for f in figures if f.rating]
        targets = {f.target for f in rated if f.target is not None}
        shown_target = targets.pop() if len(targets) == 1 else None
        time = None
        # Cases that carry no target (a file that mixes runs with and without one) sit out the race.
        timed = [f for f in rated if f.target == shown_target]
        if shown_target is not None and len(timed) >= 2:
            per_seed = {f.strategy: _aligned(f, f.per_seed_time if len(seeds) > 1 else f.per_seed_wall, seeds) for f in timed}
            time = compare_strategies(per_seed, kind="time", alpha=alpha, seed=BOOTSTRAP_SEED)
        quality = None
        measured = [f for f in rated if any(math.isfinite(v) for v in f.per_seed_quality)]
        if len(measured) >= 2:
            quality = compare_strategies(
                {f.strategy: _aligned(f, f.per_seed_quality, seeds) for f in measured},
                kind="quality",
                alpha=alpha,
                seed=BOOTSTRAP_SEED,
            )
        reference = baseline_figures(r for records in case_records for r in records)
        worse: tuple[str, ...] = ()
        mean = reference.get("global_mean")
        if mean is not None and mean.estimate is not None:
            worse = tuple(
                f.strategy
                for f in measured
                if f.final_test_rmse.estimate is not None and f.final_test_rmse.estimate >= mean.estimate
            )
        verdicts.append(WorkloadVerdict(workload, tuple(seeds), tuple(figures), shown_target, time, quality, reference, worse))
    return verdicts
