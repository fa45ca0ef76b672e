"""Intervals over seeds: a median's bootstrap interval, a mean's t-interval, a success rate's Wilson interval.

mfbench runs every case once per seed; a figure then says how much of it is the strategy and how much the
seed. Everything here is numpy/scipy, and every random draw comes from ``numpy.random.default_rng(seed)``,
so a report is reproducible bit for bit.

Conventions shared by ``intervals``, ``paired`` and ``across_workloads``:

* inputs are plain sequences of floats, one value per seed, in the same seed order for every strategy;
* ``math.inf`` means "censored": the run never reached the target (time-to-target);
* ``NaN`` means "no measurement" and is dropped (the number dropped is reported);
* degenerate inputs (one seed, all values equal, all censored, all NaN) never raise: the result carries
  ``None`` bounds and a ``reason`` string. Only programming errors (unknown option names, p-values
  outside [0, 1]) raise ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import scipy.stats


class AsDict:
    """Mixin: dataclasses.asdict gives nested plain dicts/tuples/floats, which json.dumps accepts."""

    def as_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))  # type: ignore[call-overload]


def jsonable(obj: Any) -> Any:
    """Tuples become lists so that a round trip through JSON compares equal to ``as_dict()``."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


@dataclass(frozen=True)
class Interval(AsDict):
    """A point estimate with an optional confidence interval.

    ``low``/``high`` are None when no interval can be given; ``reason`` then says why.  ``reason`` may also
    carry a caveat while bounds are present (e.g. a zero-width interval because all values are equal).
    ``estimate`` may be ``math.inf`` (censored); ``json.dumps`` writes it as ``Infinity``.
    """

    estimate: float | None
    low: float | None
    high: float | None
    n: int
    statistic: str
    confidence: float
    dropped: int = 0
    reason: str | None = None


@dataclass(frozen=True)
class SuccessRate(AsDict):
    """How many seeds reached the target, with a Wilson score interval on the rate."""

    reached: int
    total: int
    rate: float | None
    low: float | None
    high: float | None
    confidence: float
    dropped: int = 0
    reason: str | None = None


def drop_nan(values: Sequence[float] | np.ndarray) -> tuple[np.ndarray, int]:
    """NaN is 'no measurement'; dropping it (and counting) keeps inf, which carries information."""
    x = np.asarray(values, dtype=float).ravel()
    keep = ~np.isnan(x)
    return x[keep], int(x.size - keep.sum())


_STATISTICS: dict[str, Callable[..., Any]] = {"median": np.median, "mean": np.mean}


def _statistic(name: str) -> Callable[..., Any]:
    if name not in _STATISTICS:
        raise ValueError(f"statistic must be one of {sorted(_STATISTICS)}, got {name!r}")
    return _STATISTICS[name]


def quantile_bounds(dist: np.ndarray, confidence: float, interpolate: bool = True) -> tuple[float, float]:
    """Percentile-interval bounds that reproduce scipy for finite data and never turn inf into nan.

    For an all-finite bootstrap distribution this is exactly what ``scipy.stats.bootstrap(method="percentile")``
    does (``scipy.stats.quantile`` with its default 'linear' method on [alpha, 1 - alpha]).  As soon as a
    value is infinite (or the caller says interpolation would mislead) we switch to non-interpolating order
    statistics: 'lower' for the low bound and 'higher' for the high bound, so each bound is an actually
    observed bootstrap value and the interval can only get wider (conservative), never nan.

    The interpolated value is clipped to its two bracketing order statistics: scipy's ``(1-g)*a + g*b`` can round
    one ulp outside [a, b] (e.g. a == b), which would put low above the estimate of an all-equal sample.
    """
    alpha = (1 - confidence) / 2
    p = np.asarray([alpha, 1 - alpha])
    below, above = np.quantile(dist, p, method="lower"), np.quantile(dist, p, method="higher")
    if interpolate and bool(np.all(np.isfinite(dist))):
        lo, hi = np.clip(scipy.stats.quantile(dist, p), below, above)
        return float(lo), float(hi)
    return float(below[0]), float(above[1])


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """Same call as scipy.stats.bootstrap (rng.integers(0, n, (resamples, n))), so the draws are identical."""
    return np.random.default_rng(seed).integers(0, n, (resamples, n))


def check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def bootstrap_ci(
    values: Sequence[float], statistic: str = "median", confidence: float = 0.95, resamples: int = 9999, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of the median (or mean) over seeds.

    Why percentile bootstrap: it is what rliable and scipy offer for small seed counts without a normality
    assumption, and for finite data it reproduces ``scipy.stats.bootstrap(method="percentile",
    rng=np.random.default_rng(seed))``: same draws, same quantiles, bit for bit except the 1-ulp clip described
    in ``quantile_bounds``.  Unlike scipy it accepts ``inf`` (censored time-to-target):
    the median of a resample that is at least half inf is inf (for an even count numpy averages the two
    middle values, so one inf among them makes the median inf).  See ``quantile_bounds`` for the quantile rule.
    """
    check_confidence(confidence)
    fn = _statistic(statistic)
    x, dropped = drop_nan(values)
    n = int(x.size)
    base = Interval(None, None, None, n, statistic, confidence, dropped)
    if n == 0:
        return replace(base, reason="no values (empty or all NaN)")
    with np.errstate(invalid="ignore"):
        estimate = float(fn(x))
    why_not = _no_interval_reason(x, estimate)
    if why_not is not None:
        return replace(base, estimate=estimate, reason=why_not)
    with np.errstate(invalid="ignore"):
        dist = fn(x[resample_indices(n, resamples, seed)], axis=-1)
    if np.any(np.isnan(dist)):
        return replace(base, estimate=estimate, reason="statistic undefined in some resamples (+inf and -inf)")
    low, high = quantile_bounds(dist, confidence)
    note = "all values equal: zero-width interval" if np.all(x == x[0]) else None
    return replace(base, estimate=estimate, low=low, high=high, reason=note)


def _no_interval_reason(x: np.ndarray, estimate: float) -> str | None:
    """The degenerate cases in which a bootstrap interval would be meaningless."""
    if x.size < 2:
        return "one value: no interval from a single seed"
    if np.all(np.isposinf(x)):
        return "all values censored (inf): no interval"
    if math.isnan(estimate):
        return "statistic undefined (+inf and -inf)"
    return None


def success_rate(values: Sequence[float], confidence: float = 0.95) -> SuccessRate:
    """Fraction of seeds that reached the target (finite values), with a Wilson score interval.

    Wilson rather than the normal (Wald) interval because with 5 seeds and 0 or 5 successes Wald collapses to
    a zero-width interval; Wilson stays inside [0, 1] and is informative (Brown, Cai & DasGupta 2001).
    """
    check_confidence(confidence)
    x, dropped = drop_nan(values)
    total = int(x.size)
    reached = int(np.isfinite(x).sum())
    if total == 0:
        return SuccessRate(0, 0, None, None, None, confidence, dropped, "no values (empty or all NaN)")
    low, high = _wilson(reached, total, confidence)
    return SuccessRate(reached, total, reached / total, low, high, confidence, dropped)


def _wilson(k: int, n: int, confidence: float) -> tuple[float, float]:
    z = float(scipy.stats.norm.ppf(0.5 + confidence / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean with a Student-t interval, for qualities (RMSE) that are roughly normal over seeds.

    All-equal values give a zero-width interval (the limit of the t-interval) with a note, because a
    deterministic strategy genuinely has no seed spread.  Non-finite values give no interval.
    """
    check_confidence(confidence)
    x, dropped = drop_nan(values)
    n = int(x.size)
    base = Interval(None, None, None, n, "mean", confidence, dropped)
    if n == 0:
        return replace(base, reason="no values (empty or all NaN)")
    with np.errstate(invalid="ignore"):
        mean = float(np.mean(x))
    if not np.all(np.isfinite(x)):
        return replace(base, estimate=mean, reason="non-finite values: no t-interval")
    if n < 2:
        return replace(base, estimate=mean, reason="one value: no interval from a single seed")
    sd = float(np.std(x, ddof=1))
    if sd == 0.0:
        return replace(base, estimate=mean, low=mean, high=mean, reason="all values equal: zero-width interval")
    half = float(scipy.stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return replace(base, estimate=mean, low=mean - half, high=mean + half)
