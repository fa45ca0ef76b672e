"""Aggregation over several workloads (datasets x sizes) and seeds.

Two complementary views, following the two standard references:

* rliable (Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice"): an interquartile mean
  over all (workload, seed) scores with a *stratified* bootstrap that resamples seeds within each workload,
  and the average probability of improvement of one strategy over another.
* Demsar (2006, JMLR 7:1-30) / autorank: average ranks over workloads, the Friedman test, and the Nemenyi
  critical difference whose cliques a critical-difference diagram draws as bars.

Scores across workloads must be on a common scale (e.g. normalised by a reference strategy): an IQM of raw
seconds over workloads is dominated by the slowest workload.  Ranks (Friedman) need no such normalisation.
Conventions are those of ``mfbench.stats.intervals``: NaN = no measurement (dropped), inf = censored; degenerate inputs return
results with None fields and a ``reason`` instead of raising.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.stats

from .intervals import AsDict, Interval, check_confidence, drop_nan, quantile_bounds

Scores = Mapping[str, Mapping[str, Sequence[float]]]
"""scores[workload][strategy] = one value per seed."""


# --------------------------------------------------------------------------------------------------------------
# interquartile mean with a stratified bootstrap
# --------------------------------------------------------------------------------------------------------------


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean, rliable's ``aggregate_iqm``: ``scipy.stats.trim_mean(x, 0.25)`` over all scores.

    Why IQM: robust to a few outlier seeds/workloads like the median, yet uses the middle 50% of the data so it
    is far less noisy than the median with few seeds (Agarwal et al. 2021, sec. 4.3).  NaN is dropped; an empty
    input gives NaN.
    """
    x, _ = drop_nan(np.asarray(values, dtype=float).ravel())
    if x.size == 0:
        return math.nan
    with np.errstate(invalid="ignore"):
        return float(scipy.stats.trim_mean(x, 0.25))


def _rowwise(statistic: Callable[[np.ndarray], float], rows: np.ndarray) -> np.ndarray:
    """The statistic of each bootstrap resample; IQM has a vectorised path because it dominates the run time."""
    if statistic is iqm:
        with np.errstate(invalid="ignore"):
            return np.asarray(scipy.stats.trim_mean(rows, 0.25, axis=1), dtype=float)
    return np.asarray([statistic(row) for row in rows], dtype=float)


def _workloads(scores: Scores) -> list[str]:
    """Sorted, so that the random draws do not depend on the dict's insertion order."""
    return sorted(scores, key=str)


def _strategies(scores: Scores) -> list[str]:
    seen: dict[str, None] = {}
    for w in _workloads(scores):
        seen.update(dict.fromkeys(scores[w]))
    return list(seen)


def stratified_bootstrap_ci(
    scores: Scores, statistic: Callable[[np.ndarray], float] = iqm, seed: int = 0, resamples: int = 2000, confidence: float = 0.95
) -> dict[str, Interval]:
    """Per strategy: statistic over all (workload, seed) scores, with a bootstrap stratified by workload.

    Stratified (seeds resampled within each workload, workloads kept fixed) because the question is "what if
    we reran with other seeds on these workloads", rliable's ``StratifiedBootstrap(task_bootstrap=False)``.
    Percentile interval as rliable's default.  Every strategy uses a fresh ``default_rng(seed)`` so its interval
    does not change when other strategies are added.  A strategy missing (or all-NaN) on some workload gets no
    result values, since its aggregate would cover other workloads than the rest.
    """
    check_confidence(confidence)
    out: dict[str, Interval] = {}
    for strategy in _strategies(scores):
        out[strategy] = _stratified_one(scores, strategy, statistic, seed, resamples, confidence)
    return out


def _stratified_one(
    scores: Scores, strategy: str, statistic: Callable[[np.ndarray], float], seed: int, resamples: int, confidence: float
) -> Interval:
    name = getattr(statistic, "__name__", "statistic")
    parts, missing, dropped = _parts(scores, strategy)
    n = sum(p.size for p in parts)
    base = Interval(None, None, None, n, name, confidence, dropped)
    if missing:
        return replace(base, reason=f"no values on workload(s): {', '.join(missing)}")
    estimate = float(statistic(np.concatenate(parts)))
    if all(p.size < 2 for p in parts):
        return replace(base, estimate=estimate, reason="at most one seed per workload: no interval")
    rng = np.random.default_rng(seed)
    rows = np.concatenate([p[rng.integers(0, p.size, (resamples, p.size))] for p in parts], axis=1)
    dist = _rowwise(statistic, rows)
    if np.any(np.isnan(dist)):
        return replace(base, estimate=estimate, reason="statistic undefined in some resamples")
    low, high = quantile_bounds(dist, confidence)
    return replace(base, estimate=estimate, low=low, high=high)


def _parts(scores: Scores, strategy: str) -> tuple[list[np.ndarray], list[str], int]:
    parts, missing, dropped = [], [], 0
    for w in _workloads(scores):
        x, d = drop_nan(scores[w].get(strategy, []))
        dropped += d
        if x.size == 0:
            missing.append(str(w))
        else:
            parts.append(x)
    return parts, missing, dropped


# --------------------------------------------------------------------------------------------------------------
# probability of improvement
# --------------------------------------------------------------------------------------------------------------


def _improvement(x: np.ndarray, y: np.ndarray, lower_is_better: bool) -> np.ndarray:
    """P(X better than Y) over all seed pairs, ties 1/2 (Mann-Whitney U / (n m)), along the last two axes.

    inf == inf (both censored) is a tie, which is what 'neither reached the target' should mean.
    """
    xa, ya = x[..., :, None], y[..., None, :]
    better = (xa < ya) if lower_is_better else (xa > ya)
    return np.mean(better + 0.5 * (xa == ya), axis=(-2, -1))


def probability_of_improvement(
    scores: Scores, a: str, b: str, lower_is_better: bool = True, seed: int = 0, resamples: int = 2000, confidence: float = 0.95
) -> Interval:
    """Average over workloads of P(a better than b), rliable's ``probability_of_improvement``, with a CI.

    Why: it answers "how likely is a better than b on a new seed of a typical workload" and, unlike an
    aggregate mean, does not let one workload with large values dominate (Agarwal et al. 2021, sec. 4.4;
    Bouthillier et al. 2021).  Default ``lower_is_better=True`` because mfbench's metrics (time, RMSE) are;
    rliable's scores are higher-is-better.  The CI resamples a's and b's seeds independently within each workload
    (rliable's ``StratifiedIndependentBootstrap``).  Workloads lacking a or b are skipped and named in ``reason``.
    """
    check_confidence(confidence)
    pairs, skipped = [], []
    for w in _workloads(scores):
        x, _ = drop_nan(scores[w].get(a, []))
        y, _ = drop_nan(scores[w].get(b, []))
        if x.size and y.size:
            pairs.append((x, y))
        else:
            skipped.append(str(w))
    note = f"skipped workload(s) lacking {a} or {b}: {', '.join(skipped)}" if skipped else None
    base = Interval(None, None, None, len(pairs), "probability_of_improvement", confidence)
    if not pairs:
        return replace(base, reason=note or "no workloads")
    estimate = float(np.mean([_improvement(x, y, lower_is_better) for x, y in pairs]))
    if all(x.size < 2 and y.size < 2 for x, y in pairs):
        why = _join_reasons("one seed per strategy and workload: no interval", note)
        return replace(base, estimate=estimate, reason=why)
    rng = np.random.default_rng(seed)
    dist = np.zeros(resamples)
    for x, y in pairs:
        xs = x[rng.integers(0, x.size, (resamples, x.size))]
        ys = y[rng.integers(0, y.size, (resamples, y.size))]
        dist += _improvement(xs, ys, lower_is_better)
    low, high = quantile_bounds(dist / len(pairs), confidence)
    return replace(base, estimate=estimate, low=low, high=high, reason=note)


def _join_reasons(*reasons: str | None) -> str | None:
    kept = [r for r in reasons if r]
    return "; ".join(kept) if kept else None


# --------------------------------------------------------------------------------------------------------------
# Friedman test, average ranks, Nemenyi critical difference
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FriedmanResult(AsDict):
    """Average ranks (1 = best) over workloads, Friedman test, Nemenyi critical difference and its cliques.

    ``strategies``/``average_ranks`` are sorted best first.  ``cliques`` are the maximal runs of consecutive
    strategies whose average ranks differ by less than the critical difference, size >= 2 only (the bars of a
    CD diagram); a strategy in no clique differs significantly from every other one under Nemenyi.
    """

    strategies: tuple[str, ...]
    average_ranks: tuple[float, ...]
    n_workloads: int
    k: int
    statistic: float | None
    p: float | None
    significant: bool
    alpha: float
    q_alpha: float | None
    critical_difference: float | None
    cliques: tuple[tuple[str, ...], ...]
    excluded_strategies: tuple[tuple[str, str], ...]
    excluded_workloads: tuple[tuple[str, str], ...]
    reason: str | None = None


def nemenyi_q_alpha(k: int, alpha: float = 0.05) -> float:
    """Demsar's q_alpha: the studentized range quantile with infinite df divided by sqrt(2).

    Computed rather than tabulated so any k and alpha work; matches Demsar (2006) Table 5 to 3 decimals
    (his 2.343 and 2.949 for k = 3 and 7 are 2.3437 and 2.9483 truncated).
    """
    if k < 2:
        raise ValueError(f"need k >= 2 strategies, got {k}")
    return float(scipy.stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))


def friedman_ranking(
    matrix: Mapping[str, Mapping[str, float]], lower_is_better: bool = True, alpha: float = 0.05
) -> FriedmanResult:
    """Rank strategies within each workload, average the ranks, test them (Friedman) and draw CD cliques.

    Ranks (ties share the average rank) make workloads of very different scales comparable without
    normalisation, the reason Demsar recommends them for comparing methods over many datasets.  A strategy
    absent from some workload is excluded; then a workload with a NaN among the remaining strategies is excluded
    (listwise deletion), both with reasons.  The Friedman test needs >= 3 strategies and >= 2 workloads; the CD
    and cliques are given whenever k >= 2 and N >= 1, but read them only if the Friedman test rejects
    (``significant``), as Demsar prescribes.
    """
    strategies, ex_strat = _complete_strategies(matrix)
    rows, workloads, ex_work = _complete_workloads(matrix, strategies)
    k, n = len(strategies), len(workloads)
    if k == 0 or n == 0:
        return FriedmanResult(
            (), (), n, k, None, None, False, alpha, None, None, (), ex_strat, ex_work, "no strategy measured on every workload"
        )
    data = np.asarray(rows, dtype=float) * (1.0 if lower_is_better else -1.0)
    avg = np.mean(scipy.stats.rankdata(data, axis=1), axis=0)
    order = sorted(range(k), key=lambda j: (avg[j], strategies[j]))
    names, ranks = tuple(strategies[j] for j in order), tuple(float(avg[j]) for j in order)
    stat, p, reason = _friedman(data, k, n)
    q = nemenyi_q_alpha(k, alpha) if k >= 2 else None
    cd = q * math.sqrt(k * (k + 1) / (6 * n)) if q is not None else None
    cliques = _cliques(names, ranks, cd) if cd is not None else ()
    return FriedmanResult(
        names, ranks, n, k, stat, p, p is not None and p < alpha, alpha, q, cd, cliques, ex_strat, ex_work, reason
    )


def _complete_strategies(matrix: Mapping[str, Mapping[str, float]]) -> tuple[list[str], tuple[tuple[str, str], ...]]:
    seen: dict[str, None] = {}
    for w in matrix:
        seen.update(dict.fromkeys(matrix[w]))
    kept, excluded = [], []
    for s in seen:
        missing = [str(w) for w in matrix if s not in matrix[w]]
        if missing:
            excluded.append((s, f"not measured on workload(s): {', '.join(missing)}"))
        else:
            kept.append(s)
    return kept, tuple(excluded)


def _complete_workloads(
    matrix: Mapping[str, Mapping[str, float]], strategies: list[str]
) -> tuple[list[list[float]], list[str], tuple[tuple[str, str], ...]]:
    rows, kept, excluded = [], [], []
    for w in matrix:
        row = [float(matrix[w][s]) for s in strategies]
        if any(math.isnan(v) for v in row):
            excluded.append((str(w), "NaN value for some strategy"))
        else:
            rows.append(row)
            kept.append(str(w))
    return rows, kept, tuple(excluded)


def _friedman(data: np.ndarray, k: int, n: int) -> tuple[float | None, float | None, str | None]:
    if k < 3:
        return None, None, f"Friedman test needs at least 3 strategies, got {k}"
    if n < 2:
        return None, None, f"Friedman test needs at least 2 workloads, got {n}"
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        res = scipy.stats.friedmanchisquare(*data.T)
    stat, p = float(res.statistic), float(res.pvalue)
    if math.isnan(p):
        return None, None, "all strategies tied on every workload: Friedman statistic undefined"
    return stat, p, None


def _cliques(names: tuple[str, ...], ranks: tuple[float, ...], cd: float) -> tuple[tuple[str, ...], ...]:
    """autorank's ``get_sorted_rank_groups``: for each i the furthest j within CD; keep runs not inside earlier ones.

    Difference < CD (Demsar: significant when the average ranks differ by at least CD); autorank uses <= CD,
    which differs only when a difference equals CD exactly.
    """
    out: list[tuple[str, ...]] = []
    reach = -1
    for i in range(len(ranks)):
        j = max((j for j in range(i + 1, len(ranks)) if ranks[j] - ranks[i] < cd), default=None)
        if j is not None and j > reach:
            reach = j
            out.append(names[i : j + 1])
    return tuple(out)
