"""Is NEW slower than BASE, or is the machine just noisy? Intervals and verdicts for speed ratios.

A speed ratio is NEW's updates/s over BASE's (below 1: slower). Every comparison
in mfbench ends in one of four verdicts, decided from a 95% confidence interval
of that ratio and a *margin* (the smallest change worth reporting, in percent):

* ``slower`` -- the whole interval is below 1 and the estimate is more than the
  margin below 1;
* ``faster`` -- the mirror image;
* ``no change`` -- the whole interval lies within ``1 +- margin``;
* ``too noisy to tell`` -- anything else: the interval is too wide to say whether
  the change exceeds the margin. The cure is more data (more repeats or blocks),
  or the A/B mode (``mfbench ab``), whose interleaved blocks cancel the load that
  two separate runs see differently.

Why not a p-value test, as pyperf (Student's t on the samples, alpha 0.05, plus
``--min-speed``) and asv (Mann-Whitney U at p < 0.002 with a ``--factor``) do:
both treat the samples of a run as independent draws from one machine state.
On a shared machine the state drifts between runs, so consecutive epochs of one
run agree with each other far better than with a run made a minute later; a
test on within-run samples then calls that drift significant, and a gate built
on it raises false alarms on unchanged code. Two answers here:

* :func:`bootstrap_ratio` resamples repeats and, within them, epochs (a
  two-level bootstrap), so the interval reflects the variation *between*
  repeats, not only between epochs, and :func:`widen` stretches it further by
  the drift the calibration workload saw between and across the two runs;
* :func:`median_interval` is the distribution-free interval of a median
  (binomial order statistics) used on the A/B mode's per-block ratios, where
  BASE and NEW alternate in short blocks and share the load.

And a fourth verdict, which neither tool has: saying "too noisy" is how a gate
avoids crying wolf without missing what a quieter measurement would catch.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from .summary import as_number, quantile

SLOWER, FASTER, SAME, NOISY = "slower", "faster", "no change", "too noisy to tell"
VERDICTS = (SLOWER, FASTER, SAME, NOISY)
#: Confidence level of every interval.
CONFIDENCE = 0.95
#: Bootstrap resamples: enough that the 2.5% and 97.5% percentiles move by well under 1%.
RESAMPLES = 2000
#: The margin when none is given: changes under 5% are not reported as changes.
DEFAULT_MARGIN = 5.0


@dataclass(frozen=True)
class Interval:
    """A speed ratio NEW/BASE with its confidence interval, and how it was obtained."""

    estimate: float
    low: float
    high: float
    method: str
    #: The interval was widened by this factor on each side (1.0: not widened).
    widened: float = 1.0

    @property
    def known(self) -> bool:
        return all(math.isfinite(v) and v > 0 for v in (self.estimate, self.low, self.high))

    def change_pct(self) -> float:
        """The estimate as a signed percent change of updates/s (-20.0: 20% fewer updates/s)."""
        return (self.estimate - 1.0) * 100.0

    def describe(self) -> str:
        if not self.known:
            return "no interval"
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


UNKNOWN = Interval(math.nan, math.nan, math.nan, "none")


def decide(interval: Interval, margin_pct: float = DEFAULT_MARGIN) -> str:
    """One of :data:`VERDICTS` for a speed ratio's interval (see the module docstring)."""
    if margin_pct < 0:
        raise ValueError(f"the margin is a percentage, 0 or more; got {margin_pct}")
    if not interval.known:
        return NOISY
    m = margin_pct / 100.0
    if interval.high < 1.0 and interval.estimate < 1.0 - m:
        return SLOWER
    if interval.low > 1.0 and interval.estimate > 1.0 + m:
        return FASTER
    if interval.low >= 1.0 - m and interval.high <= 1.0 + m:
        return SAME
    return NOISY


def could_be_slower_than(interval: Interval, threshold_pct: float) -> bool:
    """Whether the interval leaves room for a loss of more than ``threshold_pct`` percent."""
    return not interval.known or interval.low < 1.0 - threshold_pct / 100.0


def advice(verdict: str, blocks: bool = False) -> str:
    """What to do about a verdict of ``too noisy to tell``."""
    if verdict != NOISY:
        return ""
    if blocks:
        return "too noisy: run more blocks (--blocks), longer blocks (--block-seconds), or on a quieter machine"
    return "too noisy: rerun with more --repeats, or measure both sides interleaved with `mfbench ab`"


def median_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """The median and a distribution-free confidence interval for it, from order statistics.

    For n independent values, the interval between the r-th smallest and the r-th
    largest covers the true median with probability ``1 - 2 P(Binomial(n, 1/2) < r)``;
    r is the largest rank that keeps that at or above ``confidence``. Below 6 values no
    rank does at 95%: the interval is (nan, nan).
    """
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return math.nan, math.nan, math.nan
    median = statistics.median(ordered)
    tail = (1.0 - confidence) / 2.0
    rank, cumulative = 0, 0.0
    for k in range(n + 1):
        cumulative += math.comb(n, k) / 2.0**n  # P(K <= k)
        if cumulative > tail:
            break
        rank = k + 1  # P(K < k + 1) <= tail
    if rank == 0:
        return median, math.nan, math.nan
    return median, ordered[rank - 1], ordered[n - rank]


def bootstrap_ratio(
    base: Sequence[Sequence[float]],
    new: Sequence[Sequence[float]],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Ratio of median epoch seconds BASE/NEW (= NEW's speed over BASE's) with a percentile-bootstrap interval.

    ``base`` and ``new`` hold epoch seconds grouped by repeat. Each resample draws
    repeats with replacement and then epochs with replacement within each drawn
    repeat, so a side whose repeats disagree gets a wide interval even when the
    epochs within each repeat agree. A side with a single epoch has no spread to
    resample: the interval is unknown (and the verdict "too noisy to tell").
    """
    base_groups = [list(g) for g in base if len(g)]
    new_groups = [list(g) for g in new if len(g)]
    if not base_groups or not new_groups:
        return UNKNOWN
    estimate = statistics.median(_flat(base_groups)) / statistics.median(_flat(new_groups))
    if len(_flat(base_groups)) < 2 or len(_flat(new_groups)) < 2:
        return Interval(estimate, math.nan, math.nan, "one epoch on a side: no spread")
    rng = random.Random(seed)
    ratios = sorted(_resampled_median(base_groups, rng) / _resampled_median(new_groups, rng) for _ in range(resamples))
    tail = (1.0 - confidence) / 2.0
    low = ratios[int(math.floor(tail * (resamples - 1)))]
    high = ratios[int(math.ceil((1.0 - tail) * (resamples - 1)))]
    return Interval(estimate, min(low, estimate), max(high, estimate), "bootstrap of repeats and epochs")


def _flat(groups: list[list[float]]) -> list[float]:
    return [v for g in groups for v in g]


def _resampled_median(groups: list[list[float]], rng: random.Random) -> float:
    drawn: list[float] = []
    for _ in groups:
        group = groups[rng.randrange(len(groups))]
        drawn.extend(group[rng.randrange(len(group))] for _ in group)
    return statistics.median(drawn)


def widen(interval: Interval, factor: float) -> Interval:
    """The interval stretched by ``factor`` (>= 1) on each side, in ratio terms: [low / f, high * f]."""
    if factor <= 1.0 or not interval.known:
        return interval
    return Interval(interval.estimate, interval.low / factor, interval.high * factor, interval.method, interval.widened * factor)


def calibration_scores(document: dict) -> list[float]:
    """Every calibration score a results file holds: each timing at the start, and after each case.

    The schema leaves ``machine`` free-form, so what is not a number where one is expected
    (a hand-edited or foreign file) is passed over, not an error.
    """
    scores: list[float] = []
    calibration = _mapping(_mapping(document.get("machine")).get("calibration"))
    timings = calibration.get("seconds_all")
    seconds = [as_number(s) for s in timings] if isinstance(timings, list) else []
    seconds = [s for s in seconds if usable(s)]
    score, median_s = as_number(calibration.get("score")), as_number(calibration.get("seconds"))
    if usable(score) and usable(median_s) and seconds:
        units = score * median_s  # the workload's units: score = units / median seconds
        scores += [units / s for s in seconds]
    elif usable(score):
        scores.append(score)
    cases = document.get("cases")
    for case in cases if isinstance(cases, list) else []:
        after = as_number(_mapping(_mapping(case).get("calibration_after")).get("score"))
        if usable(after):
            scores.append(after)
    return scores


def _mapping(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def usable(value: float) -> bool:
    """A positive finite number."""
    return value > 0 and math.isfinite(value)


def drift_factor(base_scores: Sequence[float], new_scores: Sequence[float], normalized: bool = False) -> float:
    """How much the machine's speed could have moved between and within two runs, as a factor >= 1.

    The product of the level shift (ratio of the two runs' median calibration scores:
    left out when the throughputs were already divided by them, ``normalized``) and
    half the larger relative interquartile range of either run's scores (the drift
    within a run). 1.0 when either run has no calibration.
    """
    if not base_scores or not new_scores:
        return 1.0
    level = 1.0
    if not normalized:
        b, n = statistics.median(base_scores), statistics.median(new_scores)
        level = max(b, n) / min(b, n)
    within = max(_half_relative_iqr(base_scores), _half_relative_iqr(new_scores))
    return level * (1.0 + within)


def _half_relative_iqr(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    ordered = sorted(values)
    q1 = quantile(ordered, 0.25)
    q3 = quantile(ordered, 0.75)
    median = statistics.median(ordered)
    return (q3 - q1) / (2.0 * median) if median > 0 else 0.0
