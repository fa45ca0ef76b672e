"""Comparing strategies on the same seeds: paired tests, paired ratio intervals, multiple-comparison
corrections, and the tied groups a verdict names instead of a single winner.

Two strategies run on the same seed share its split and initialization, so their figures are paired:
tests and resamples keep a seed's two values together. See ``mfbench.stats.intervals`` for the
conventions (NaN dropped, inf censored, degenerate inputs give a reason instead of raising).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np
import scipy.stats

from .intervals import AsDict, check_confidence, drop_nan, mean_ci, quantile_bounds, resample_indices

WILCOXON_MIN_PAIRS = 6
"""With 5 pairs the smallest two-sided exact Wilcoxon p-value is 2/2**5 = 0.0625, so it could never reject."""

DEFAULT_REL_TOL = 1e-6
"""Paired differences below this relative size are float round-off (float32 eps is 1.2e-7), not an effect."""


@dataclass(frozen=True)
class PairedTest(AsDict):
    """A paired two-sided test of a against b on the same seeds."""

    p: float | None
    test: str
    n: int
    median_difference: float | None
    dropped: int = 0
    reason: str | None = None


@dataclass(frozen=True)
class RatioCI(AsDict):
    """median(a)/median(b) with a paired bootstrap interval and the matching bootstrap p-value."""

    estimate: float | None
    low: float | None
    high: float | None
    n: int
    confidence: float
    excludes_one: bool
    p: float | None
    undefined_fraction: float | None
    dropped: int = 0
    reason: str | None = None


@dataclass(frozen=True)
class PairComparison(AsDict):
    """One pair inside compare_strategies; ``a`` has the better (or equal) median of the two.

    ``effect`` is the mean paired difference a - b (kind "quality") or the ratio of medians a/b (kind "time");
    ``low``/``high`` is its unadjusted interval at confidence 1 - alpha.
    """

    a: str
    b: str
    test: str
    n: int
    p: float | None
    p_adjusted: float | None
    effect_kind: str
    effect: float | None
    low: float | None
    high: float | None
    significant: bool
    reason: str | None = None


@dataclass(frozen=True)
class Comparison(AsDict):
    """All strategies of one workload: order by median, pairwise tests, tied groups."""

    kind: str
    lower_is_better: bool
    alpha: float
    correction: str
    n_seeds: int
    order: tuple[str, ...]
    medians: tuple[float, ...]
    groups: tuple[tuple[str, ...], ...]
    pairs: tuple[PairComparison, ...]
    excluded: tuple[tuple[str, str], ...]
    method: str

    def median(self, name: str) -> float:
        """Median of one strategy (looked up by name, since medians is stored in ``order``'s order)."""
        return self.medians[self.order.index(name)]

    def pair(self, x: str, y: str) -> PairComparison | None:
        """The pair result regardless of which of the two was stored as ``a``."""
        for pc in self.pairs:
            if {pc.a, pc.b} == {x, y}:
                return pc
        return None


def _paired_arrays(a: Sequence[float], b: Sequence[float], keep_inf: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Keep seeds measured on both sides; the pairing is the whole point, so a seed lacking one side goes."""
    xa, xb = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    ok = ~(np.isnan(xa) | np.isnan(xb)) if keep_inf else np.isfinite(xa) & np.isfinite(xb)
    return xa[ok], xb[ok], int(xa.size - ok.sum())


def _length_mismatch(a: Sequence[float], b: Sequence[float]) -> str | None:
    if len(a) != len(b):
        return f"a has {len(a)} values and b has {len(b)}: not paired by seed"
    return None


def paired_test(a: Sequence[float], b: Sequence[float], rel_tol: float = DEFAULT_REL_TOL) -> PairedTest:
    """Two-sided paired test of a vs b: Wilcoxon signed-rank for n >= 6, paired t-test for 2 <= n < 6.

    Why the switch: with 5 pairs the smallest two-sided exact Wilcoxon p is 0.0625, so it could never reject
    at 0.05; below 6 pairs only a parametric test can say anything.  Pairs with a non-finite value on either
    side (NaN, or inf: use paired_ratio_ci for censored times) are dropped.  Differences no larger than
    ``rel_tol * max(|a|, |b|)`` count as exactly zero so that float round-off between otherwise identical
    strategies cannot become "significant"; if all differences are zero, p = 1.
    """
    mismatch = _length_mismatch(a, b)
    if mismatch:
        return PairedTest(None, "none", 0, None, reason=mismatch)
    xa, xb, dropped = _paired_arrays(a, b, keep_inf=False)
    n = int(xa.size)
    if n < 2:
        return PairedTest(None, "none", n, None, dropped, f"{n} complete pair(s): need at least 2")
    diff = xa - xb
    median_diff = float(np.median(diff))
    d = np.where(np.abs(diff) <= rel_tol * np.maximum(np.abs(xa), np.abs(xb)), 0.0, diff)
    if np.all(d == 0):
        return PairedTest(1.0, "all-differences-zero", n, median_diff, dropped)
    test = "wilcoxon" if n >= WILCOXON_MIN_PAIRS else "paired-t"
    p = _run_paired(test, d)
    reason = None if p is not None else f"{test} returned no p-value"
    return PairedTest(p, test, n, median_diff, dropped, reason)


def _run_paired(test: str, d: np.ndarray) -> float | None:
    """scipy's own tests on the differences; scipy chooses exact/permutation/normal for Wilcoxon itself."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if test == "wilcoxon":
            p = scipy.stats.wilcoxon(d, alternative="two-sided", method="auto").pvalue
        else:
            p = scipy.stats.ttest_rel(d, np.zeros_like(d)).pvalue
    p = float(p)
    return None if math.isnan(p) else min(1.0, p)


def _ratio(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    """num/den with inf/finite = inf, finite/inf = 0 and inf/inf (or 0/0) = nan, meaning undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.divide(num, den), dtype=float)


def paired_ratio_ci(
    a: Sequence[float], b: Sequence[float], seed: int = 0, resamples: int = 9999, confidence: float = 0.95
) -> RatioCI:
    """Ratio of median times median(a)/median(b) with a paired percentile bootstrap over seed indices.

    Seeds are resampled as pairs (one index draws both a[i] and b[i]) because both strategies of one seed
    share the data split and initialisation, so their times are correlated.  Censoring: inf/finite is inf,
    finite/inf is 0, and a resample where both medians are inf (or both 0) is *undefined*: neither strategy
    reached the target in it, which says nothing about which one is faster, so it is left out of the
    interval and the p-value (counting it as a tie would let two seeds that neither strategy finished
    hide a 100x difference on every seed that did). When more than half the resamples are undefined there
    is no interval: the strategies did not reach the target on enough seeds to compare their times.
    As soon as any resample is undefined the bounds use the non-interpolating 'lower'/'higher' order
    statistics. The p-value inverts the same bootstrap: p = 2 * (min(#{r >= 1}, #{r <= 1}) + 1) / (B + 1)
    over the B defined resamples, ties (r = 1) counting on both sides, and the +1 (Davison & Hinkley 1997,
    ch. 4) keeps it from being 0.
    """
    check_confidence(confidence)
    base = RatioCI(None, None, None, 0, confidence, excludes_one=False, p=None, undefined_fraction=None)
    mismatch = _length_mismatch(a, b)
    if mismatch:
        return replace(base, reason=mismatch)
    xa, xb, dropped = _paired_arrays(a, b, keep_inf=True)
    n = int(xa.size)
    if n == 0:
        return replace(base, dropped=dropped, reason="no complete pairs")
    est = float(_ratio(np.median(xa), np.median(xb)))
    estimate = None if math.isnan(est) else est
    why_not = _ratio_no_interval_reason(xa, xb, estimate)
    if why_not is not None:
        return replace(base, estimate=estimate, n=n, dropped=dropped, reason=why_not)
    idx = resample_indices(n, resamples, seed)
    r = _ratio(np.median(xa[idx], axis=-1), np.median(xb[idx], axis=-1))
    return _ratio_result(estimate, r, n, confidence, dropped)


def _ratio_no_interval_reason(xa: np.ndarray, xb: np.ndarray, estimate: float | None) -> str | None:
    if xa.size < 2:
        return "one pair: no interval from a single seed"
    if estimate is None:
        return "both medians censored (inf) or zero: ratio undefined"
    if np.all(np.isposinf(xa)) and np.all(np.isposinf(xb)):
        return "all values censored (inf) on both sides"
    return None


#: Above this share of undefined resamples (both medians censored) a ratio has no interval.
MAX_UNDEFINED = 0.5


def _ratio_result(estimate: float | None, r: np.ndarray, n: int, confidence: float, dropped: int) -> RatioCI:
    undefined = np.isnan(r)
    n_und = int(undefined.sum())
    share = n_und / r.size
    if share > MAX_UNDEFINED:
        reason = f"{n_und} of {r.size} resamples had both medians censored (inf/inf): too few seeds reached the target"
        return RatioCI(estimate, None, None, n, confidence, False, None, share, dropped, reason)
    defined = r[~undefined]
    low, high = quantile_bounds(defined, confidence, interpolate=n_und == 0)
    p = min(1.0, 2 * (min(int((defined >= 1).sum()), int((defined <= 1).sum())) + 1) / (defined.size + 1))
    note = f"{n_und} of {r.size} resamples had both medians censored (inf/inf): left out" if n_und else None
    return RatioCI(estimate, low, high, n, confidence, bool(low > 1 or high < 1), p, share, dropped, note)


def _present(pvalues: Sequence[float | None]) -> tuple[list[int], np.ndarray]:
    """Indices and values of the real p-values; None/NaN are not part of the family."""
    idx = [i for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    ps = np.asarray([pvalues[i] for i in idx], dtype=float)
    if np.any((ps < 0) | (ps > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    return idx, ps


def _scatter(n: int, idx: list[int], order: np.ndarray, adjusted_sorted: np.ndarray) -> list[float | None]:
    out: list[float | None] = [None] * n
    for rank, k in enumerate(order):
        out[idx[k]] = float(adjusted_sorted[rank])
    return out


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm (1979) step-down adjusted p-values, in input order; None/NaN pass through as None.

    Holm rather than Bonferroni because it controls the same family-wise error and is uniformly more powerful.
    adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)) over the ascending order.
    """
    idx, ps = _present(pvalues)
    m = ps.size
    order = np.argsort(ps, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * ps[order]))
    return _scatter(len(pvalues), idx, order, adjusted)


def benjamini_hochberg(pvalues: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg (1995) false-discovery-rate adjusted p-values, in input order; None passes through.

    adjusted p_(i) = min_{j >= i} min(1, m p_(j) / j) over the ascending order.
    """
    idx, ps = _present(pvalues)
    m = ps.size
    order = np.argsort(ps, kind="stable")
    scaled = m * ps[order] / np.arange(1, m + 1)
    adjusted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return _scatter(len(pvalues), idx, order, adjusted)


_CORRECTIONS: dict[str, Callable[[Sequence[float | None]], list[float | None]]] = {
    "holm": holm,
    "bh": benjamini_hochberg,
    "benjamini-hochberg": benjamini_hochberg,
    "none": lambda ps: [None if p is None or math.isnan(p) else float(p) for p in ps],
}


def compare_strategies(
    per_strategy: Mapping[str, Sequence[float]],
    lower_is_better: bool = True,
    alpha: float = 0.05,
    correction: str = "holm",
    kind: str = "quality",
    seed: int = 0,
    resamples: int = 9999,
    rel_tol: float = DEFAULT_REL_TOL,
) -> Comparison:
    """Every pair of strategies on the same seeds, multiplicity-corrected, then greedy tied groups.

    kind "quality": paired_test (Wilcoxon n >= 6, paired t below) and the mean paired difference with a t-interval.
    kind "time": paired_ratio_ci; its bootstrap p-value feeds the correction, and a pair is significant only if
    the adjusted p < alpha *and* the (1 - alpha) ratio interval excludes 1.
    Groups: the best remaining strategy by median leads a group with every remaining strategy not significantly
    different from it; repeat on the rest.  Strategies whose value count differs from the most common count, or
    that have no values, are excluded with a reason.
    """
    if kind not in ("quality", "time"):
        raise ValueError(f"kind must be 'quality' or 'time', got {kind!r}")
    if correction not in _CORRECTIONS:
        raise ValueError(f"correction must be one of {sorted(_CORRECTIONS)}, got {correction!r}")
    data, excluded, n_seeds = _usable_strategies(per_strategy)
    medians = {name: _median(vals) for name, vals in data.items()}
    sign = 1.0 if lower_is_better else -1.0
    order = tuple(sorted(data, key=lambda s: (sign * medians[s], s)))
    raw = [_compare_pair(data[x], data[y], x, y, kind, alpha, seed, resamples, rel_tol) for x, y in combinations(order, 2)]
    adjusted = _CORRECTIONS[correction]([pc.p for pc in raw])
    pairs = tuple(_finish_pair(pc, q, alpha, kind) for pc, q in zip(raw, adjusted, strict=True))
    groups = _tied_groups(order, pairs)
    method = _method_text(kind, correction, alpha, len(pairs), resamples, seed)
    return Comparison(
        kind,
        lower_is_better,
        alpha,
        correction,
        n_seeds,
        order,
        tuple(medians[s] for s in order),
        groups,
        pairs,
        tuple(excluded.items()),
        method,
    )


def _usable_strategies(per_strategy: Mapping[str, Sequence[float]]) -> tuple[dict[str, list[float]], dict[str, str], int]:
    """Pairing by seed needs equal lengths; the most common length wins (ties: the longer), others are excluded."""
    lengths = Counter(len(v) for v in per_strategy.values())
    n_seeds = max(lengths, key=lambda L: (lengths[L], L)) if lengths else 0
    data: dict[str, list[float]] = {}
    excluded: dict[str, str] = {}
    for name, vals in per_strategy.items():
        if len(vals) != n_seeds:
            excluded[name] = f"has {len(vals)} values, expected {n_seeds} (one per seed, same seeds)"
        elif np.all(np.isnan(np.asarray(vals, dtype=float))):
            excluded[name] = "no values (all NaN)"
        else:
            data[name] = [float(v) for v in vals]
    return data, excluded, n_seeds


def _median(vals: Sequence[float]) -> float:
    x, _ = drop_nan(vals)
    return float(np.median(x))


def _compare_pair(
    xa: list[float], xb: list[float], a: str, b: str, kind: str, alpha: float, seed: int, resamples: int, rel_tol: float
) -> PairComparison:
    """Unadjusted result of one pair; adjustment and the significance verdict come later."""
    if kind == "quality":
        t = paired_test(xa, xb, rel_tol=rel_tol)
        fa, fb, _ = _paired_arrays(xa, xb, keep_inf=False)
        eff = mean_ci(fa - fb, confidence=1 - alpha)
        return PairComparison(a, b, t.test, t.n, t.p, None, "difference", eff.estimate, eff.low, eff.high, False, t.reason)
    r = paired_ratio_ci(xa, xb, seed=seed, resamples=resamples, confidence=1 - alpha)
    return PairComparison(a, b, "paired-bootstrap-ratio", r.n, r.p, None, "ratio", r.estimate, r.low, r.high, False, r.reason)


def _finish_pair(pc: PairComparison, p_adjusted: float | None, alpha: float, kind: str) -> PairComparison:
    significant = p_adjusted is not None and p_adjusted < alpha
    if kind == "time":
        significant = significant and pc.low is not None and pc.high is not None and (pc.low > 1 or pc.high < 1)
    return PairComparison(
        pc.a, pc.b, pc.test, pc.n, pc.p, p_adjusted, pc.effect_kind, pc.effect, pc.low, pc.high, bool(significant), pc.reason
    )


def _tied_groups(order: tuple[str, ...], pairs: tuple[PairComparison, ...]) -> tuple[tuple[str, ...], ...]:
    """Greedy: the best remaining strategy leads a group with every remaining one not significantly different."""
    significant = {frozenset((pc.a, pc.b)) for pc in pairs if pc.significant}
    remaining = list(order)
    groups: list[tuple[str, ...]] = []
    while remaining:
        leader = remaining[0]
        group = [leader] + [s for s in remaining[1:] if frozenset((leader, s)) not in significant]
        groups.append(tuple(group))
        remaining = [s for s in remaining if s not in group]
    return tuple(groups)


def _method_text(kind: str, correction: str, alpha: float, n_pairs: int, resamples: int, seed: int) -> str:
    if kind == "quality":
        test = (
            "paired Wilcoxon signed-rank (n >= 6) or paired t-test (n < 6) per pair; "
            f"effect = mean paired difference with {1 - alpha:.0%} t-interval"
        )
    else:
        test = (
            f"ratio of medians with a paired percentile bootstrap over seeds ({resamples} resamples, seed {seed}); "
            f"p inverts the same bootstrap; significant also requires the {1 - alpha:.0%} interval to exclude 1"
        )
    return (
        f"{test}; {correction} correction over {n_pairs} pair(s) at alpha = {alpha}; groups: the best remaining "
        "strategy by median leads a group with every remaining strategy not significantly different from it"
    )
