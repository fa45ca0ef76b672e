"""Statistics over a case's measurements: medians, spreads, time-to-target.

Functions take the plain JSON structures of a results file, so the same code
serves the runner (as it writes a case), ``report`` and ``compare``.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Iterable, Sequence

#: A case whose IQR of epoch times exceeds this share of their median is flagged
#: unstable (±10%): on shared 2-core machines a quiet case stays well under it.
UNSTABLE_SPREAD = 0.20


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), for small samples without numpy."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, extremes, and the IQR relative to the median."""
    if not values:
        return {}
    median = statistics.median(values)
    q1, q3 = quantile(values, 0.25), quantile(values, 0.75)
    return {
        "median": median,
        "q1": q1,
        "q3": q3,
        "min": min(values),
        "max": max(values),
        "relative_iqr": (q3 - q1) / median if median > 0 else math.inf,
        "n": len(values),
    }


def timed_epochs(case: dict[str, Any]) -> list[dict[str, Any]]:
    """Every counted epoch of every repeat (warm-up epochs are not counted)."""
    return [e for r in case.get("repeats", []) for e in r.get("epochs", []) if not e.get("warmup")]


def time_to_target(epochs: Iterable[dict[str, Any]], target: float) -> float | None:
    """Training seconds until held-out RMSE first reaches ``target``; None if never.

    Every epoch that trained the model counts, warm-up epochs included: they moved
    the model toward the target, so their time is part of the price of getting there.
    Setup time is reported beside it, not inside it.
    """
    total = 0.0
    for epoch in epochs:
        total += epoch["seconds"]
        value = epoch.get("test_rmse")
        if isinstance(value, (int, float)) and math.isfinite(value) and value <= target:
            return total
    return None


def case_time_to_target(case: dict[str, Any], target: float) -> float | None:
    """Median over repeats of time-to-target; None when no repeat reached it (or fewer than half did)."""
    times = [time_to_target(r.get("epochs", []), target) for r in case.get("repeats", [])]
    reached = [t for t in times if t is not None]
    if not reached or len(reached) * 2 < len(times):
        return None
    return statistics.median(reached)
