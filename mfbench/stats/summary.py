"""Statistics over a case's measurements: medians, spreads, time-to-target.

Functions take the plain JSON structures of a results file, so the same code
serves the runner (as it writes a case), ``report`` and ``compare``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

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


def epoch_seconds(entry: dict[str, Any]) -> float:
    """Seconds per epoch of one timed entry (a whole-fit entry covers several epochs)."""
    return as_number(entry.get("seconds")) / int(entry.get("epochs_covered", 1))


def decision_rmse(entry: dict[str, Any]) -> float:
    """The RMSE that decisions (targets, tuning, early stopping) may see: validation.

    Results written before the validation split existed have only ``test_rmse``, their
    one held-out set; it stands in there, so old files still report and compare.
    """
    return as_number(entry["valid_rmse"] if "valid_rmse" in entry else entry.get("test_rmse"))


def best_decision_rmse(case: dict[str, Any]) -> float | None:
    """Median over repeats of the lowest validation RMSE each repeat reached, or None."""
    bests = []
    for repeat in case.get("repeats", []):
        values = [v for v in (decision_rmse(e) for e in repeat.get("epochs", [])) if math.isfinite(v)]
        if values:
            bests.append(min(values))
    return statistics.median(bests) if bests else None


def best_epoch(epochs: Sequence[dict[str, Any]]) -> int:
    """The index of the epoch with the lowest validation RMSE (the first of equals; 0 when none is finite)."""
    curve = [decision_rmse(e) for e in epochs]
    finite = [i for i, v in enumerate(curve) if math.isfinite(v)]
    return min(finite, key=lambda i: curve[i]) if finite else 0


def test_at_best_decision(case: dict[str, Any]) -> float | None:
    """Median over repeats of the test RMSE at each repeat's epoch of lowest validation RMSE:
    the final figure of a model stopped early on validation (a decision test ratings never see)."""
    values = []
    for repeat in case.get("repeats", []):
        epochs = repeat.get("epochs", [])
        if any(math.isfinite(decision_rmse(e)) for e in epochs):
            values.append(as_number(epochs[best_epoch(epochs)].get("test_rmse")))
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else None


def time_to_target(epochs: Iterable[dict[str, Any]], target: float) -> float | None:
    """Training seconds until validation RMSE first reaches ``target``; None if never.

    Every epoch that trained the model counts, warm-up epochs included: they moved
    the model toward the target, so their time is part of the price of getting there.
    Setup time is reported beside it, not inside it.
    """
    total = 0.0
    for epoch in epochs:
        total += as_number(epoch.get("seconds"))
        value = decision_rmse(epoch)
        if math.isfinite(value) and value <= target:
            return total
    return None


def case_time_to_target(case: dict[str, Any], target: float) -> float | None:
    """Median over repeats of time-to-target; None when no repeat reached it (or fewer than half did).

    None as well for a strategy with an implicit-feedback objective: it does not aim at the ratings.
    """
    if (case.get("strategy") or {}).get("objective", "rating") != "rating":
        return None
    times = [time_to_target(r.get("epochs", []), target) for r in case.get("repeats", [])]
    reached = [t for t in times if t is not None]
    if not reached or len(reached) * 2 < len(times):
        return None
    return statistics.median(reached)


def unstable_case(records: Sequence[dict[str, Any]]) -> bool:
    """A case (its records over seeds) whose timing is unstable: on more than half of its ok records the
    interquartile range of epoch times exceeded ``UNSTABLE_SPREAD`` of their median."""
    ok = [r for r in records if r.get("status") == "ok" and (r.get("summary") or {}).get("relative_iqr") is not None]
    return bool(ok) and 2 * sum(bool(r["summary"].get("unstable")) for r in ok) > len(ok)


def tuning_seconds(case: dict[str, Any]) -> float:
    """Wall seconds the case's tuning cost (its study's trials, ``tuning.cost_s``); 0 for an untuned case."""
    tuning = case.get("tuning") or {}
    value = as_number(tuning.get("cost_s")) if tuning.get("status") == "ok" else 0.0
    return value if math.isfinite(value) else 0.0


def is_reference(strategy: dict[str, Any]) -> bool:
    """The strategy the others are measured against (``Strategy.reference``); in files written
    before the flag, the built-in exact strategy named ``reference``."""
    if "reference" in strategy:
        return bool(strategy["reference"])
    return strategy.get("name") == "reference" and bool(strategy.get("exact"))


#: Why a case did not reach its target, from the shape of its validation curves.
IMPROVING, LEVELLED = "improving", "levelled"


def repeat_trend(epochs: Sequence[dict[str, Any]], target: float) -> str | None:
    """``improving`` when a repeat that missed ``target`` was still getting there at its last epoch:
    its last epoch was its best and, at that epoch's gain, as many epochs again would reach the
    target (a straight line from the last two points: optimistic for a curve that flattens, which
    is why it asks for no more than doubling the budget); ``levelled`` otherwise; None with fewer
    than two epochs of validation RMSE."""
    values = [v for v in (decision_rmse(e) for e in epochs) if math.isfinite(v)]
    if len(values) < 2:
        return None
    last, gain = values[-1], values[-2] - values[-1]
    if last > min(values) or gain <= 0:
        return LEVELLED
    return IMPROVING if (last - target) / gain <= len(values) else LEVELLED


def unreached_trend(records: Iterable[dict[str, Any]], target: float) -> str | None:
    """Over the repeats (of every seed) that missed ``target``: ``improving`` when at least half of
    them were still improving, ``levelled`` when more were not, None when none can tell."""
    trends = [
        trend
        for record in records
        for repeat in record.get("repeats", [])
        if time_to_target(repeat.get("epochs", []), target) is None
        for trend in [repeat_trend(repeat.get("epochs", []), target)]
        if trend is not None
    ]
    if not trends:
        return None
    return IMPROVING if 2 * trends.count(IMPROVING) >= len(trends) else LEVELLED


def as_number(value: Any) -> float:
    """JSON numbers, and the strings "nan"/"inf" the results file stores for non-finite floats."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass(frozen=True)
class Throughput:
    """Per-epoch updates/s of one case: the median and the spread it was measured with."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    n: int
    relative_iqr: float

    def scaled(self, factor: float) -> Throughput:
        return Throughput(
            self.median / factor,
            self.q1 / factor,
            self.q3 / factor,
            self.min / factor,
            self.max / factor,
            self.n,
            self.relative_iqr,
        )


def updates_per_epoch(case: dict[str, Any]) -> int:
    dataset = case.get("dataset") or {}
    if "train_nnz" in dataset:
        return int(dataset["train_nnz"])
    return int((case.get("summary") or {}).get("updates_per_epoch", 0))


def case_throughput(case: dict[str, Any]) -> Throughput | None:
    """updates/s over counted (non-warm-up) epochs: the one computation behind the summary's
    ``median_updates_per_s`` (the runner's), the report and compare.

    The median is updates / median epoch seconds (not the median of per-epoch rates, which differs
    for an even count); the quartiles and extremes are those of the per-epoch rates. Epochs
    without a positive, finite time are left out; None when none is left.
    """
    seconds = [epoch_seconds(e) for e in timed_epochs(case)]
    seconds = [s for s in seconds if s > 0 and math.isfinite(s)]
    if not seconds:
        return None
    updates = updates_per_epoch(case)
    rates = spread([updates / s for s in seconds])
    times = spread(seconds)
    return Throughput(
        median=updates / times["median"],
        q1=rates["q1"],
        q3=rates["q3"],
        min=rates["min"],
        max=rates["max"],
        n=len(seconds),
        relative_iqr=times["relative_iqr"],
    )


@dataclass(frozen=True)
class FinalRmse:
    """Final held-out RMSE: the median over repeats, and the range across them."""

    median: float
    low: float
    high: float


def final_test_rmse(case: dict[str, Any]) -> FinalRmse | None:
    """The final figure: test RMSE after the last epoch."""
    finals = [as_number(r["epochs"][-1].get("test_rmse")) for r in case.get("repeats", []) if r.get("epochs")]
    finals = [f for f in finals if not math.isnan(f)]
    if not finals:
        value = as_number((case.get("summary") or {}).get("final_test_rmse"))
        return None if math.isnan(value) else FinalRmse(value, value, value)
    return FinalRmse(statistics.median(finals), min(finals), max(finals))


def final_decision_rmse(case: dict[str, Any]) -> FinalRmse | None:
    """Validation RMSE after the last epoch: what a decision about the case may use."""
    finals = [decision_rmse(r["epochs"][-1]) for r in case.get("repeats", []) if r.get("epochs")]
    finals = [f for f in finals if not math.isnan(f)]
    return FinalRmse(statistics.median(finals), min(finals), max(finals)) if finals else None


def run_key(case: dict[str, Any]) -> tuple[str, int | None]:
    """What tells one record of a results file from another: its case and its seed (absent: None)."""
    seed = case.get("seed")
    return case["id"], seed if isinstance(seed, int) else None


def scaling_efficiencies(cases: Iterable[dict[str, Any]]) -> dict[tuple[str, int | None], float]:
    """Scaling efficiency of each case of a strategy that declares ``scales_with``, by :func:`run_key`.

    updates/s with w workers over w times updates/s with one worker, the one-worker case
    being the one that differs from it only in that parameter (same data, model,
    device, other parameters and seed). Cases without such a partner, or not ok, are left out, and so is
    a lone one-worker case (its 100% would say nothing).
    """
    cases = [c for c in cases if c.get("status") == "ok" and (c.get("strategy") or {}).get("scales_with")]

    def key(case: dict[str, Any], knob: str) -> tuple:
        params = {k: v for k, v in case["strategy"].get("params", {}).items() if k != knob}
        return (
            (case.get("dataset") or {}).get("label"),
            (case.get("model") or {}).get("label"),
            case["strategy"]["name"],
            case.get("device"),
            tuple(sorted((k, repr(v)) for k, v in params.items())),
            run_key(case)[1],
        )

    by_run = {run_key(case): case for case in cases}
    single: dict[tuple, float] = {}
    for case in cases:
        knob = case["strategy"]["scales_with"]
        if case["strategy"].get("params", {}).get(knob) == 1:
            rate = as_number((case.get("summary") or {}).get("median_updates_per_s"))
            if rate > 0 and math.isfinite(rate):
                single[key(case, knob)] = rate
    found: dict[tuple[str, int | None], float] = {}
    scaled: set[tuple] = set()  # groups that have a case with more than one worker
    for case in cases:
        knob = case["strategy"]["scales_with"]
        workers = case["strategy"].get("params", {}).get(knob)
        base = single.get(key(case, knob))
        rate = as_number((case.get("summary") or {}).get("median_updates_per_s"))
        if base and isinstance(workers, int) and workers >= 1 and math.isfinite(rate):
            found[run_key(case)] = rate / (workers * base)
            if workers > 1:
                scaled.add(key(case, knob))
    return {i: v for i, v in found.items() if key(by_run[i], by_run[i]["strategy"]["scales_with"]) in scaled}


def set_scaling_efficiencies(cases: list[dict[str, Any]]) -> None:
    """Write each case's ``scaling_efficiency`` into its summary (and take stale ones out): the
    ``derive`` step of a results file, since a case that arrives may be an earlier one's partner."""
    efficiencies = scaling_efficiencies(cases)
    for case in cases:
        if case.get("summary"):
            case["summary"].pop("scaling_efficiency", None)
            if run_key(case) in efficiencies:
                case["summary"]["scaling_efficiency"] = efficiencies[run_key(case)]
