"""Statistics over seeds (mfbench.stats.intervals, mfbench.stats.paired, mfbench.report.answer): known values,
agreement with scipy, reference-library numbers (hard-coded; benchmarks/stats_references.py computed them),
properties, degenerate inputs, and two scenarios the harness relies on (tiny-noise tie, 100x slower)."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings, strategies as st

from mfbench.report.answer import answer_sentence
from mfbench.stats.intervals import bootstrap_ci, mean_ci, success_rate
from mfbench.stats.paired import Comparison, benjamini_hochberg, compare_strategies, holm, paired_ratio_ci, paired_test

INF = math.inf
# more examples for a one-off deeper search: STATS_HYPOTHESIS_EXAMPLES=2000 pytest ...
FAST = settings(max_examples=int(os.environ.get("STATS_HYPOTHESIS_EXAMPLES", "60")), deadline=None, database=None)
finite_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
positive_times = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False)


# --------------------------------------------------------------------------------------------------------------
# bootstrap_ci
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("statistic, fn", [("median", np.median), ("mean", np.mean)])
@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_bootstrap_reproduces_scipy_percentile_exactly(statistic, fn, seed, confidence):
    x = [1.2, 3.4, 2.2, 5.1, 0.7, 2.9, 4.4, 3.3]
    ours = bootstrap_ci(x, statistic=statistic, confidence=confidence, resamples=999, seed=seed)
    ref = scipy.stats.bootstrap(
        (np.asarray(x),), fn, method="percentile", n_resamples=999, confidence_level=confidence, rng=np.random.default_rng(seed)
    ).confidence_interval
    assert (ours.low, ours.high) == (float(ref.low), float(ref.high))
    assert ours.estimate == float(fn(x))
    assert ours.n == 8 and ours.reason is None


def test_bootstrap_agrees_with_scipy_to_the_last_bit_on_random_samples():
    # identical except where scipy's (1-g)*a + g*b rounds outside [a, b]; there we return the order statistic (1 ulp)
    rng = np.random.default_rng(42)
    exact = 0
    for _ in range(40):
        x = rng.lognormal(size=int(rng.integers(2, 20))) * 10.0 ** int(rng.integers(-3, 4))
        seed = int(rng.integers(0, 1000))
        ours = bootstrap_ci(x, statistic="mean", resamples=999, seed=seed)
        ref = scipy.stats.bootstrap(
            (x,), np.mean, method="percentile", n_resamples=999, rng=np.random.default_rng(seed)
        ).confidence_interval
        np.testing.assert_array_max_ulp(np.array([ours.low, ours.high]), np.array([ref.low, ref.high]), maxulp=1)
        exact += (ours.low, ours.high) == (float(ref.low), float(ref.high))
    assert exact >= 36


def test_bootstrap_all_equal_bounds_are_exact_even_where_scipy_rounds():
    # scipy.stats.quantile on 199 copies of this value returns low = value + 1 ulp; we clip to the order statistic
    v = 1716.2648777046418
    r = bootstrap_ci([v, v], resamples=199)
    assert (r.low, r.estimate, r.high) == (v, v, v)
    same = paired_ratio_ci([3.0, 4.0, 5.0], [3.0, 4.0, 5.0], resamples=199)
    assert (same.low, same.high, same.excludes_one, same.p) == (1.0, 1.0, False, 1.0)


def test_bootstrap_known_value():
    # scipy 1.17.1: scipy.stats.bootstrap((x,), np.mean, method="percentile", rng=np.random.default_rng(0))
    # -> ConfidenceInterval(low=0.8033333333333332, high=0.8416666666666667)
    x = [0.81, 0.84, 0.79, 0.86, 0.80, 0.83]
    r = bootstrap_ci(x, statistic="mean")
    assert r.estimate == pytest.approx(0.8216666666666667, abs=1e-15)
    assert (r.low, r.high) == pytest.approx((0.8033333333333332, 0.8416666666666667), abs=1e-15)
    # the same scipy call with np.median on this sample -> ConfidenceInterval(low=1.2, high=4.4)
    med = bootstrap_ci([1.2, 3.4, 2.2, 5.1, 0.7, 2.9, 4.4])
    assert (med.estimate, med.low, med.high) == (2.9, 1.2, 4.4)


def test_bootstrap_with_censored_values_never_gives_nan():
    r = bootstrap_ci([1.0, 2.0, 3.0, INF, INF])
    assert r.estimate == 3.0
    assert r.low == 1.0 and r.high == INF
    # more than half censored: the median is inf, the low bound is still an observed finite resample median
    r = bootstrap_ci([1.0, 2.0, INF, INF, INF])
    assert r.estimate == INF and r.low == 1.0 and r.high == INF
    for stat in ("median", "mean"):
        r = bootstrap_ci([4.0, 5.0, 6.0, 7.0, INF, 5.5], statistic=stat)
        assert not any(math.isnan(v) for v in (r.estimate, r.low, r.high))


def test_bootstrap_censored_bounds_are_observed_order_statistics():
    # with an inf in the bootstrap distribution, bounds use 'lower'/'higher': every bound is an actual resample median
    x = np.array([1.0, 2.0, 3.0, 4.0, INF, INF])
    r = bootstrap_ci(x, resamples=499, seed=3)
    idx = np.random.default_rng(3).integers(0, 6, (499, 6))
    dist = np.median(x[idx], axis=-1)
    assert r.low in set(dist.tolist()) and r.high in set(dist.tolist())
    assert r.low == np.quantile(dist, 0.025, method="lower")


def test_bootstrap_even_count_half_inf_median_is_inf():
    # numpy averages the two middle values; one of them inf makes the median inf (documented)
    assert bootstrap_ci([1.0, 2.0, INF, INF]).estimate == INF


@pytest.mark.parametrize(
    "values, estimate, reason_part",
    [
        ([], None, "no values"),
        ([math.nan, math.nan], None, "no values"),
        ([3.0], 3.0, "one value"),
        ([3.0, math.nan], 3.0, "one value"),
        ([INF, INF, INF], INF, "censored"),
    ],
)
def test_bootstrap_degenerate_inputs_give_no_interval(values, estimate, reason_part):
    r = bootstrap_ci(values)
    assert r.estimate == estimate and r.low is None and r.high is None
    assert reason_part in r.reason


def test_bootstrap_all_equal_is_zero_width_with_note():
    r = bootstrap_ci([2.5] * 5)
    assert (r.estimate, r.low, r.high) == (2.5, 2.5, 2.5)
    assert "zero-width" in r.reason


def test_bootstrap_drops_nan_and_counts_them():
    r = bootstrap_ci([1.0, math.nan, 2.0, 3.0])
    clean = bootstrap_ci([1.0, 2.0, 3.0])
    assert r.n == 3 and r.dropped == 1 and (r.estimate, r.low, r.high) == (clean.estimate, clean.low, clean.high)


def test_bootstrap_is_reproducible_and_seed_dependent():
    x = [0.3, 1.7, 0.9, 2.2, 1.1, 0.4]
    assert bootstrap_ci(x, seed=1) == bootstrap_ci(x, seed=1)
    assert bootstrap_ci(x, statistic="mean", seed=1) != bootstrap_ci(x, statistic="mean", seed=2)


def test_bootstrap_rejects_programming_errors():
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], statistic="mode")
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], confidence=95)


@FAST
@given(st.lists(finite_floats, min_size=2, max_size=12), st.sampled_from(["median", "mean"]), st.integers(0, 2**16))
def test_bootstrap_bounds_are_ordered(values, statistic, seed):
    r = bootstrap_ci(values, statistic=statistic, resamples=199, seed=seed)
    assert r.low <= r.high
    tol = 1e-9 * max(1.0, max(abs(v) for v in values))  # the mean's summation order may differ in the last bit
    assert r.low - tol <= r.estimate <= r.high + tol


@FAST
@given(st.lists(st.one_of(positive_times, st.just(INF)), min_size=2, max_size=10), st.integers(0, 2**16))
def test_bootstrap_with_inf_bounds_ordered_and_never_nan(values, seed):
    r = bootstrap_ci(values, resamples=199, seed=seed)
    if all(v == INF for v in values):
        assert r.low is None
        return
    assert not math.isnan(r.low) and not math.isnan(r.high)
    assert r.low <= r.estimate <= r.high


# --------------------------------------------------------------------------------------------------------------
# success_rate
# --------------------------------------------------------------------------------------------------------------

# statsmodels 0.15.0: statsmodels.stats.proportion.proportion_confint(k, n, alpha=0.05, method="wilson")
WILSON_STATSMODELS = {
    (3, 5): (0.2307242812760129, 0.8823792257673522),
    (0, 5): (0.0, 0.43448246478317487),
    (5, 5): (0.5655175352168252, 1.0),
    (1, 1): (0.2065493143772374, 1.0),
    (7, 20): (0.18119182410108203, 0.5671457233147638),
}


@pytest.mark.parametrize("k, n", sorted(WILSON_STATSMODELS))
def test_success_rate_matches_statsmodels_wilson(k, n):
    r = success_rate([1.0] * k + [INF] * (n - k))
    assert (r.reached, r.total, r.rate) == (k, n, k / n)
    assert (r.low, r.high) == pytest.approx(WILSON_STATSMODELS[(k, n)], abs=1e-12)


def test_success_rate_hand_computed_and_degenerate():
    # 1 of 2, z = 1.959964: centre = (0.5 + z^2/4) / (1 + z^2/2) = 0.5, half = z/(1+z^2/2)*sqrt(1/8 + z^2/16)
    z = 1.959963984540054
    half = z / (1 + z * z / 2) * math.sqrt(0.125 + z * z / 16)
    r = success_rate([2.0, INF, math.nan])
    assert r.dropped == 1 and r.rate == 0.5
    assert (r.low, r.high) == pytest.approx((0.5 - half, 0.5 + half), abs=1e-12)
    empty = success_rate([math.nan])
    assert empty.rate is None and empty.low is None and "no values" in empty.reason


# --------------------------------------------------------------------------------------------------------------
# mean_ci
# --------------------------------------------------------------------------------------------------------------


def test_mean_ci_hand_value_and_scipy():
    # mean 2.1667, sd 1.2583, t_{0.975, 2} = 4.302653 -> half width 3.125805
    r = mean_ci([1.0, 2.0, 3.5])
    assert r.estimate == pytest.approx(13 / 6)
    assert (r.low, r.high) == pytest.approx((-0.9591380730212209, 5.292471406354554), abs=1e-12)
    x = [0.91, 0.93, 0.9, 0.95, 0.92, 0.94]
    lo, hi = scipy.stats.t.interval(0.9, len(x) - 1, loc=np.mean(x), scale=scipy.stats.sem(x))
    assert (mean_ci(x, confidence=0.9).low, mean_ci(x, confidence=0.9).high) == pytest.approx((lo, hi), abs=1e-14)


def test_mean_ci_degenerate():
    assert mean_ci([0.9]).low is None and "one value" in mean_ci([0.9]).reason
    same = mean_ci([0.9, 0.9, 0.9])
    assert (same.low, same.high) == (0.9, 0.9) and "zero-width" in same.reason
    inf = mean_ci([0.9, INF])
    assert inf.estimate == INF and inf.low is None
    assert mean_ci([]).estimate is None


# --------------------------------------------------------------------------------------------------------------
# paired_test
# --------------------------------------------------------------------------------------------------------------


def test_paired_test_uses_exact_wilcoxon_from_six_pairs():
    a = [0.91, 0.88, 0.95, 0.90, 0.87, 0.93, 0.89, 0.92]
    b = [0.90, 0.86, 0.96, 0.87, 0.84, 0.90, 0.85, 0.91]
    r = paired_test(a, b)
    assert r.test == "wilcoxon" and r.n == 8
    assert r.p == pytest.approx(scipy.stats.wilcoxon(a, b).pvalue, rel=1e-12)
    # all six differences positive: exact two-sided p = 2 / 2**6 (hand computed)
    six = paired_test([2.0, 3.0, 4.0, 5.0, 6.0, 7.5], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert six.test == "wilcoxon" and six.p == pytest.approx(0.03125)


def test_paired_test_uses_t_test_below_six_pairs():
    a = [1.0, 2.0, 3.0, 4.0, 5.0]
    b = [1.1, 2.3, 2.9, 4.5, 5.6]
    r = paired_test(a, b)
    assert r.test == "paired-t"
    assert r.p == pytest.approx(scipy.stats.ttest_rel(a, b).pvalue, rel=1e-12)
    assert r.median_difference == pytest.approx(-0.3)


def test_paired_test_five_pairs_wilcoxon_could_never_reject():
    # the reason for the switch: the most extreme 5-pair outcome gives p = 0.0625 > 0.05
    assert scipy.stats.wilcoxon([1.0, 2.0, 3.0, 4.0, 5.0]).pvalue == pytest.approx(0.0625)
    assert paired_test([2.0, 3.1, 4.0, 5.2, 6.0], [1.0, 2.0, 3.0, 4.0, 5.0]).p < 0.05


def test_paired_test_degenerate():
    assert paired_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]).p == 1.0
    r = paired_test([1.0, math.nan, 3.0, 4.0], [1.5, 2.0, math.nan, 4.4])
    assert r.n == 2 and r.dropped == 2 and r.test == "paired-t"
    one = paired_test([1.0, math.nan], [2.0, 3.0])
    assert one.p is None and "need at least 2" in one.reason
    assert paired_test([1.0, 2.0], [1.0]).p is None
    assert paired_test([INF, 1.0, 2.0, 3.0], [INF, 1.5, 2.5, 3.6]).dropped == 1


def test_paired_test_constant_nonzero_difference_is_significant():
    # a deterministic strategy exactly 0.01 better on every seed: t = inf, p = 0 (scipy's answer)
    r = paired_test([0.90, 0.91, 0.92], [0.91, 0.92, 0.93])
    assert r.p is not None and r.p < 1e-6


# --------------------------------------------------------------------------------------------------------------
# paired_ratio_ci
# --------------------------------------------------------------------------------------------------------------


def test_ratio_keeps_pairs_together():
    # b = 2a exactly on every seed but seeds vary 10x: a paired bootstrap gives exactly 0.5 in every resample
    a = [1.0, 10.0, 3.0, 7.0, 0.5]
    r = paired_ratio_ci(a, [2 * v for v in a])
    assert (r.estimate, r.low, r.high) == (0.5, 0.5, 0.5)
    assert r.excludes_one and r.p == pytest.approx(2 / 10000)


def test_ratio_censoring_rules():
    a_only = paired_ratio_ci([1.0, 2.0, 3.0], [INF, INF, INF])
    assert (a_only.estimate, a_only.low, a_only.high, a_only.excludes_one) == (0.0, 0.0, 0.0, True)
    b_only = paired_ratio_ci([INF, INF, INF], [1.0, 2.0, 3.0])
    assert (b_only.estimate, b_only.low, b_only.high, b_only.excludes_one) == (INF, INF, INF, True)
    both = paired_ratio_ci([INF, INF, INF], [INF, INF, INF])
    assert both.estimate is None and both.low is None and not both.excludes_one


def test_ratio_leaves_out_resamples_where_neither_reached_the_target():
    a = [1.0, 1.2, INF, 1.1, 1.3]
    b = [100.0, 130.0, INF, INF, 95.0]
    r = paired_ratio_ci(a, b)
    assert r.estimate == pytest.approx(1.2 / 130)
    assert 0.025 < r.undefined_fraction < 0.1 and "left out" in r.reason
    assert r.high < 0.02 and r.excludes_one and r.p < 0.001  # a is ~100x faster on every seed either finished
    assert not math.isnan(r.low)


def test_ratio_has_no_interval_when_most_resamples_are_undefined():
    import numpy as np

    from mfbench.stats.paired import _ratio_result

    r = _ratio_result(0.5, np.array([0.5, math.nan, math.nan, 0.4, math.nan]), 5, 0.95, 0)
    assert r.low is None and r.high is None and not r.excludes_one and r.p is None
    assert "too few seeds reached the target" in r.reason
    assert paired_ratio_ci([1.0, INF, INF, INF, INF], [INF] * 5).reason.startswith("both medians censored")


def test_ratio_degenerate():
    assert paired_ratio_ci([1.0], [2.0]).estimate == 0.5 and paired_ratio_ci([1.0], [2.0]).low is None
    assert paired_ratio_ci([1.0, 2.0], [1.0]).reason.startswith("a has 2 values")
    r = paired_ratio_ci([1.0, math.nan, 2.0, 3.0], [2.0, 4.0, math.nan, 6.0])
    assert r.n == 2 and r.dropped == 2 and r.estimate == 0.5
    assert paired_ratio_ci([math.nan], [1.0]).estimate is None


@FAST
@given(st.lists(st.tuples(positive_times, positive_times), min_size=2, max_size=8), st.integers(0, 2**16))
def test_ratio_bounds_ordered_and_p_consistent_with_interval(pairs, seed):
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    r = paired_ratio_ci(a, b, seed=seed, resamples=199)
    assert r.low <= r.estimate * (1 + 1e-12) and r.estimate <= r.high * (1 + 1e-12)
    if r.excludes_one:  # the p-value inverts the same bootstrap: an interval excluding 1 is never contradicted
        assert r.p <= 0.06
    swapped = paired_ratio_ci(b, a, seed=seed, resamples=199)
    assert swapped.estimate == pytest.approx(1 / r.estimate)


# --------------------------------------------------------------------------------------------------------------
# holm / benjamini_hochberg
# --------------------------------------------------------------------------------------------------------------

P1 = [0.01, 0.04, 0.03, 0.005, 0.20, 0.04]
P2 = [0.001, 0.5, 0.02]


def test_holm_hand_computed():
    # sorted: 0.005*6=0.03, 0.01*5=0.05, 0.03*4=0.12, 0.04*3=0.12, max(0.04*2, 0.12)=0.12, 0.20*1=0.20
    assert holm(P1) == pytest.approx([0.05, 0.12, 0.12, 0.03, 0.20, 0.12])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_bh_hand_computed():
    # sorted p*m/rank: 0.005*6/1=0.03, 0.01*6/2=0.03, 0.03*6/3=0.06, 0.04*6/4=0.06, 0.04*6/5=0.048, 0.2*6/6=0.2
    # then the running minimum from the top: 0.03, 0.03, 0.048, 0.048, 0.048, 0.2
    assert benjamini_hochberg(P1) == pytest.approx([0.03, 0.048, 0.048, 0.03, 0.20, 0.048])


# statsmodels 0.15.0: statsmodels.stats.multitest.multipletests(p, method=m)[1]
STATSMODELS_MULTIPLETESTS = {
    ("holm", 1): [0.05, 0.12, 0.12, 0.03, 0.2, 0.12],
    ("fdr_bh", 1): [0.030000000000000002, 0.048, 0.048, 0.030000000000000002, 0.2, 0.048],
    ("holm", 2): [0.003, 0.5, 0.04],
    ("fdr_bh", 2): [0.003, 0.5, 0.030000000000000002],
}


@pytest.mark.parametrize("method, which", sorted(STATSMODELS_MULTIPLETESTS))
def test_corrections_match_statsmodels(method, which):
    fn = holm if method == "holm" else benjamini_hochberg
    assert fn(P1 if which == 1 else P2) == pytest.approx(STATSMODELS_MULTIPLETESTS[(method, which)], abs=1e-15)


def test_corrections_pass_none_through():
    assert holm([0.01, None, 0.04, math.nan]) == pytest.approx([0.02, None, 0.04, None])
    assert benjamini_hochberg([None, 0.01, 0.04]) == pytest.approx([None, 0.02, 0.04])
    assert holm([]) == [] and benjamini_hochberg([None]) == [None]
    with pytest.raises(ValueError):
        holm([1.2])


@FAST
@given(st.lists(st.one_of(st.none(), st.floats(0, 1)), max_size=15))
def test_corrections_properties(ps):
    h, bh = holm(ps), benjamini_hochberg(ps)
    real = [i for i, p in enumerate(ps) if p is not None]
    assert all(h[i] is None and bh[i] is None for i in range(len(ps)) if ps[i] is None)
    for i in real:
        assert ps[i] <= bh[i] + 1e-15 <= h[i] + 2e-15 and h[i] <= 1.0
    for i in real:
        for j in real:
            if ps[i] <= ps[j]:
                assert h[i] <= h[j] and bh[i] <= bh[j]


# --------------------------------------------------------------------------------------------------------------
# compare_strategies + answer_sentence
# --------------------------------------------------------------------------------------------------------------


def test_scenario_a_tiny_noise_is_a_tie():
    rng = np.random.default_rng(12345)
    base = rng.uniform(0.85, 0.95, 5)
    noise = 1e-9 * rng.choice([-1.0, 1.0], 5) * rng.uniform(0.5, 1.5, 5)
    assert 0 < np.sum(noise > 0) < 5  # mixed signs
    per = {"als": list(base), "numba": list(base + noise)}
    c = compare_strategies(per, kind="quality")
    assert c.groups == (tuple(c.order),) and len(c.groups[0]) == 2
    assert c.pairs[0].p == 1.0 and not c.pairs[0].significant and c.pairs[0].test == "all-differences-zero"
    # even without the round-off tolerance, the paired t-test on +/-1e-9 noise does not reject
    raw = compare_strategies(per, kind="quality", rel_tol=0.0)
    assert raw.pairs[0].test == "paired-t" and raw.pairs[0].p > 0.05 and len(raw.groups) == 1
    assert answer_sentence(c, metric="held-out RMSE").startswith(f"{c.order[0]} and {c.order[1]} tie on held-out RMSE")


def test_scenario_b_hundred_times_slower_is_not_a_tie():
    rng = np.random.default_rng(2024)
    base = rng.uniform(5.0, 20.0, 5)
    fast = base * rng.uniform(0.7, 1.3, 5)
    slow = 100 * base * rng.uniform(0.7, 1.3, 5)
    r = paired_ratio_ci(fast, slow)
    assert r.excludes_one and r.high < 0.02 and r.low <= r.estimate <= r.high
    c = compare_strategies({"vectorized": list(slow), "numba": list(fast)}, kind="time")
    assert c.order == ("numba", "vectorized") and c.groups == (("numba",), ("vectorized",))
    pc = c.pairs[0]
    assert pc.significant and pc.high < 1 and pc.p_adjusted < 0.05
    assert answer_sentence(c).startswith("numba is faster than vectorized by ")


TIME_CASE = {
    "vectorized": [4.1, 5.0, 4.4, 3.9, 6.1],
    "numba": [1.0, 1.2, 0.9, 1.1, 1.3],
    "native-sgd": [1.05, 1.1, 1.0, 1.0, 1.25],
}
QUALITY_CASE = {
    "surprise-svd": [0.912, 0.905, 0.921, 0.915, 0.909],
    "als": [0.899, 0.894, 0.905, 0.901, 0.896],
    "numba": [0.898, 0.896, 0.903, 0.902, 0.895],
}


def test_answer_sentence_time_exact():
    c = compare_strategies(TIME_CASE, kind="time")
    assert c.groups == (("native-sgd", "numba"), ("vectorized",))
    assert answer_sentence(c) == "native-sgd and numba tie (p = 0.64); both faster than vectorized by 4.2× [3.9×, 4.9×]"


def test_answer_sentence_quality_exact():
    c = compare_strategies(QUALITY_CASE, kind="quality")
    assert answer_sentence(c, metric="held-out RMSE") == (
        "numba and als tie on held-out RMSE (p = 0.80); both lower than surprise-svd by 0.014 [0.0096, 0.018]"
    )


def test_answer_sentence_single_winner_and_special_cases():
    c = compare_strategies({"numba": [1.0, 1.1, 0.9, 1.2, 1.05], "vectorized": [4.0, 4.6, 3.8, 5.0, 4.1]}, kind="time")
    assert answer_sentence(c) == "numba is faster than vectorized by 3.9× [3.9×, 4.2×] (p < 0.001)"
    one = compare_strategies({"numba": [1.2], "vectorized": [4.9], "surprise": [INF]}, kind="time")
    assert answer_sentence(one) == (
        "One seed only (numba 1.2 s, vectorized 4.9 s, surprise never reached): there is no "
        "uncertainty estimate from one seed; run with --seeds 5 to get one"
    )
    alone = compare_strategies({"als": [0.9, 0.91]})
    assert answer_sentence(alone, unit="RMSE") == "Only als was measured: median 0.905 RMSE"
    assert answer_sentence(compare_strategies({})) == "No strategies to compare"
    tie3 = compare_strategies({"a": [1.0, 2.0, 3.0], "b": [1.1, 1.9, 3.2], "c": [0.9, 2.1, 3.1]}, kind="time")
    assert answer_sentence(tie3) == "b, a and c tie (p >= 1.00)"  # medians 1.9, 2.0, 2.1


def test_compare_holm_applied_across_all_pairs():
    c = compare_strategies(TIME_CASE, kind="time")
    assert [pc.p_adjusted for pc in c.pairs] == pytest.approx(holm([pc.p for pc in c.pairs]))
    bh = compare_strategies(TIME_CASE, kind="time", correction="bh")
    assert [pc.p_adjusted for pc in bh.pairs] == pytest.approx(benjamini_hochberg([pc.p for pc in bh.pairs]))
    assert "holm correction over 3 pair(s)" in c.method


def test_compare_quality_uses_wilcoxon_with_enough_seeds_and_reports_difference_ci():
    a = [0.90, 0.91, 0.89, 0.92, 0.90, 0.91, 0.90]
    b = [0.92, 0.93, 0.92, 0.94, 0.93, 0.92, 0.93]
    c = compare_strategies({"b": b, "a": a})
    pc = c.pairs[0]
    assert (pc.a, pc.b, pc.test, pc.effect_kind) == ("a", "b", "wilcoxon", "difference")
    assert pc.p == pytest.approx(scipy.stats.wilcoxon(a, b).pvalue)
    ref = mean_ci(np.subtract(a, b))
    assert (pc.effect, pc.low, pc.high) == pytest.approx((ref.estimate, ref.low, ref.high))
    assert pc.significant and c.groups == (("a",), ("b",))


def test_compare_excludes_mismatched_and_empty_strategies():
    c = compare_strategies({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 3.1], "short": [1.0, 2.0], "blank": [math.nan] * 3})
    assert set(c.order) == {"a", "b"} and c.n_seeds == 3
    reasons = dict(c.excluded)
    assert "has 2 values, expected 3" in reasons["short"] and "no values" in reasons["blank"]


def test_compare_higher_is_better_reverses_order():
    c = compare_strategies({"lo": [1.0, 1.1, 0.9], "hi": [2.0, 2.1, 1.9]}, lower_is_better=False)
    assert c.order == ("hi", "lo")
    assert answer_sentence(c).startswith("hi is higher than lo by 1 [")


def test_compare_is_deterministic_and_json_serializable():
    c1 = compare_strategies(TIME_CASE, kind="time", seed=3)
    c2 = compare_strategies(dict(reversed(list(TIME_CASE.items()))), kind="time", seed=3)
    assert c1 == c2
    d = c1.as_dict()
    assert json.loads(json.dumps(d)) == d
    assert isinstance(c1, Comparison) and c1.pair("numba", "native-sgd") is c1.pair("native-sgd", "numba")


def test_compare_censored_times():
    c = compare_strategies(
        {"fast": [1.0, 1.2, 1.1, 0.9, 1.0], "never": [INF] * 5, "slow": [9.0, 12.0, INF, 10.0, 11.0]}, kind="time"
    )
    assert c.order == ("fast", "slow", "never")
    assert c.groups[0] == ("fast",)
    assert json.loads(json.dumps(c.as_dict()))["medians"][-1] == INF


def test_compare_rejects_unknown_options():
    with pytest.raises(ValueError):
        compare_strategies({"a": [1.0]}, kind="speed")
    with pytest.raises(ValueError):
        compare_strategies({"a": [1.0]}, correction="bonferroni-ish")


@FAST
@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.lists(st.floats(0.5, 1.5), min_size=4, max_size=4), min_size=1))
def test_compare_groups_partition_strategies_and_ignore_dict_order(per):
    c = compare_strategies(per)
    flat = [s for g in c.groups for s in g]
    assert sorted(flat) == sorted(per) and len(flat) == len(set(flat))
    assert c.groups[0][0] == c.order[0]
    assert compare_strategies(dict(reversed(list(per.items())))) == c
    for g in c.groups:  # nobody in a group differs significantly from its leader
        assert all(not c.pair(g[0], m).significant for m in g[1:])
