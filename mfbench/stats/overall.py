"""A suite's overall answer: the strategies compared over every workload and seed at once.

Each workload answers its own question (:mod:`mfbench.stats.seeds`); a suite of several workloads
also asks which strategy does best *across* them. Times of different workloads are not on one scale,
so each seed's time-to-target is turned into a **relative speed**: the workload's best median
time-to-target divided by that seed's time (1 = as fast as the fastest strategy's typical seed,
above 1 faster than it, 0 = never reached). Over those scores, as the statistics literature for
benchmarks does:

* rliable (Agarwal et al. 2021): the interquartile mean of each strategy's relative speeds over all
  (workload, seed) pairs, with a bootstrap stratified by workload, and the probability that one
  strategy beats another on a random workload and seed;
* Demsar (2006): average ranks of the median times over workloads, the Friedman test, and the groups
  within the Nemenyi critical difference (the bars of a critical-difference diagram).

Strategies are matched across workloads by their label (before tuning); only those measured on every
compared workload take part, and the others are named.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from .across_workloads import FriedmanResult, friedman_ranking, probability_of_improvement, stratified_bootstrap_ci
from .intervals import Interval
from .seeds import BOOTSTRAP_SEED, WorkloadVerdict


@dataclass(frozen=True)
class Overall:
    """Strategies over the workloads with a time-to-target, best first by interquartile mean."""

    workloads: tuple[str, ...]
    strategies: tuple[str, ...]
    #: Interquartile mean of relative speed (higher is better) with its stratified-bootstrap interval.
    iqm: dict[str, Interval]
    #: P(a is faster than b) on a random workload and seed, for each strategy and the next one down.
    improvement: tuple[tuple[str, str, Interval], ...]
    ranking: FriedmanResult
    left_out: tuple[str, ...]


def relative_speeds(verdicts: Sequence[WorkloadVerdict]) -> dict[str, dict[str, list[float]]]:
    """scores[workload][strategy] = per-seed relative speed (best median time / this time; 0 if not reached)."""
    scores: dict[str, dict[str, list[float]]] = {}
    for verdict in verdicts:
        if verdict.time is None:
            continue
        finite = [m for m in verdict.time.medians if math.isfinite(m) and m > 0]
        if not finite:
            continue
        best = min(finite)
        per_strategy: dict[str, list[float]] = {}
        for case in verdict.cases:
            if not case.rating or not case.per_seed_time:
                continue
            times = case.per_seed_time if len(verdict.seeds) > 1 else case.per_seed_wall
            per_strategy[case.strategy] = [
                math.nan if math.isnan(t) else (best / t if math.isfinite(t) and t > 0 else 0.0) for t in times
            ]
        scores[verdict.workload] = per_strategy
    return scores


def overall(verdicts: Sequence[WorkloadVerdict]) -> Overall | None:
    """The across-workload figures, or None with fewer than two workloads that raced to a target."""
    scores = relative_speeds(verdicts)
    if len(scores) < 2:
        return None
    everywhere = [s for s in {s for w in scores.values() for s in w} if all(s in scores[w] for w in scores)]
    left_out = tuple(sorted({s for w in scores.values() for s in w} - set(everywhere)))
    scores = {w: {s: v for s, v in by.items() if s in everywhere} for w, by in scores.items()}
    iqm = stratified_bootstrap_ci(scores, seed=BOOTSTRAP_SEED)
    order = tuple(sorted(everywhere, key=lambda s: (-(iqm[s].estimate or 0.0), s)))
    improvement = tuple(
        (a, b, probability_of_improvement(scores, a, b, lower_is_better=False, seed=BOOTSTRAP_SEED)) for a, b in pairwise(order)
    )
    medians = {
        w: {s: (-statistics.median(v) if v and not any(math.isnan(x) for x in v) else math.nan) for s, v in by.items()}
        for w, by in scores.items()
    }
    ranking = friedman_ranking(medians, lower_is_better=True)
    return Overall(tuple(scores), order, {s: iqm[s] for s in order}, improvement, ranking, left_out)
