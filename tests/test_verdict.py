"""The speed verdict's statistics, on hand-made numbers: every outcome, the intervals, the drift."""

from __future__ import annotations

import math

import pytest

from mfbench.stats.verdict import (
    FASTER,
    NOISY,
    SAME,
    SLOWER,
    Interval,
    bootstrap_ratio,
    calibration_scores,
    could_be_slower_than,
    decide,
    drift_factor,
    median_interval,
    widen,
)


def interval(estimate, low, high):
    return Interval(estimate, low, high, "hand-made")


@pytest.mark.parametrize(
    ("estimate", "low", "high", "expected"),
    [
        (0.80, 0.75, 0.85, SLOWER),  # wholly below 1, estimate beyond the 5% margin
        (1.20, 1.15, 1.25, FASTER),
        (1.00, 0.97, 1.03, SAME),  # wholly inside +-5%
        (0.99, 0.96, 0.999, SAME),  # significant but smaller than the margin: no change worth reporting
        (0.97, 0.85, 0.99, NOISY),  # below 1, but it cannot say whether by more than 5%
        (0.80, 0.60, 1.10, NOISY),  # could be anything
        (math.nan, math.nan, math.nan, NOISY),
    ],
)
def test_each_outcome(estimate, low, high, expected):
    assert decide(interval(estimate, low, high), margin_pct=5) == expected


def test_the_margin_moves_the_line_between_no_change_and_a_change():
    moved = interval(0.93, 0.91, 0.95)
    assert decide(moved, 5) == SLOWER
    assert decide(moved, 10) == SAME
    with pytest.raises(ValueError, match="percentage"):
        decide(moved, -1)


def test_could_be_slower_than_a_threshold():
    assert could_be_slower_than(interval(0.97, 0.85, 1.1), 10)
    assert not could_be_slower_than(interval(0.97, 0.92, 1.3), 10)
    assert could_be_slower_than(interval(math.nan, math.nan, math.nan), 10)


def test_median_interval_uses_order_statistics():
    values = [float(v) for v in range(1, 11)]  # 10 values: 2nd and 9th, coverage 97.9%
    assert median_interval(values) == (5.5, 2.0, 9.0)
    values = [float(v) for v in range(1, 21)]  # 20 values: 6th and 15th, coverage 95.9%
    assert median_interval(values) == (10.5, 6.0, 15.0)
    median, low, high = median_interval([1.0, 2.0, 3.0, 4.0, 5.0])  # too few for a 95% interval
    assert median == 3.0 and math.isnan(low) and math.isnan(high)


def test_bootstrap_ratio_is_new_speed_over_base_speed_and_deterministic():
    base = [[1.0, 1.02, 0.98, 1.01, 0.99]]
    new = [[2.0, 2.04, 1.96, 2.02, 1.98]]  # twice as long: half the speed
    first = bootstrap_ratio(base, new)
    assert first.estimate == pytest.approx(0.5)
    assert 0.48 < first.low <= first.estimate <= first.high < 0.52
    assert bootstrap_ratio(base, new) == first  # seeded


def test_one_epoch_on_a_side_gives_no_interval():
    result = bootstrap_ratio([[1.0]], [[1.0, 1.1]])
    assert result.estimate == pytest.approx(1 / 1.05) and not result.known
    assert decide(result) == NOISY


def test_widen_stretches_both_sides_and_records_the_factor():
    wide = widen(interval(0.9, 0.85, 0.95), 1.1)
    assert (wide.low, wide.high, wide.widened) == (pytest.approx(0.85 / 1.1), pytest.approx(0.95 * 1.1), 1.1)
    assert widen(wide, 1.0) is wide


def test_drift_is_the_level_shift_times_the_spread_within_a_run():
    assert drift_factor([100.0, 100.0], [100.0, 100.0]) == 1.0
    assert drift_factor([100.0, 100.0], [80.0, 80.0]) == pytest.approx(1.25)
    assert drift_factor([100.0, 100.0], [80.0, 80.0], normalized=True) == 1.0  # the shift was divided out
    # within-run spread: half the relative IQR of the scores
    assert drift_factor([90.0, 100.0, 110.0], [90.0, 100.0, 110.0]) == pytest.approx(1.05)
    assert drift_factor([], [100.0]) == 1.0


def test_calibration_scores_come_from_the_start_timings_and_after_each_case():
    document = {
        "machine": {"calibration": {"score": 100.0, "seconds": 2.0, "seconds_all": [2.0, 4.0]}},
        "cases": [{"calibration_after": {"score": 90.0}}, {}],
    }
    assert calibration_scores(document) == [100.0, 50.0, 90.0]
    assert calibration_scores({"cases": []}) == []


def test_calibration_scores_pass_over_what_is_not_a_positive_number():
    """``machine`` is free-form in the schema: a null timing once raised a TypeError in compare (found by test_fuzz)."""
    odd = {"score": 10, "seconds": 2, "seconds_all": [None, 2, "x", 4, -1, "inf"]}
    cases = [{"calibration_after": {"score": None}}, {"calibration_after": {"score": 5}}, 3, {"calibration_after": [1]}]
    assert calibration_scores({"machine": {"calibration": odd}, "cases": cases}) == [10.0, 5.0, 5.0]
    assert calibration_scores({"machine": {"calibration": [1]}, "cases": {}}) == []
    assert calibration_scores({"machine": None}) == []
    assert calibration_scores({"machine": {"calibration": {"score": "fast", "seconds_all": 3}}}) == []


def test_an_in_process_run_times_the_calibration_again_after_every_case(fresh_pm):
    from mfbench.plugin.registry import collect
    from mfbench.run.executors import InProcessExecutor, Job
    from mfbench.run.plan import RunConfig, plan

    config = RunConfig(epochs=1, repeats=1, warmup=0)
    cases = plan(
        collect(fresh_pm), ["sprand[n_users=40,n_items=30,density=0.2]"], ["dot"], ["vectorized", "als"], ["cpu"], config
    )
    executor = InProcessExecutor()
    machine = executor.start(Job(fresh_pm, cases, config, calibration=True))
    records: list[dict] = []
    executor.run(Job(fresh_pm, cases, config, calibration=True), records.append)
    assert [r["calibration_after"]["score"] > 0 for r in records] == [True, True]
    document = {"machine": machine, "cases": records}
    assert len(calibration_scores(document)) == len(machine["calibration"]["seconds_all"]) + 2
