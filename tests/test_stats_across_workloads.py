"""mfbench.stats.across_workloads: rliable's IQM / stratified bootstrap / probability of improvement, and Demsar's
Friedman + Nemenyi as autorank does it (reference numbers hard-coded, the libraries themselves not needed)."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings, strategies as st

from mfbench.stats.across_workloads import (
    friedman_ranking,
    iqm,
    nemenyi_q_alpha,
    probability_of_improvement,
    stratified_bootstrap_ci,
)

INF = math.inf
# more examples for a one-off deeper search: STATS_HYPOTHESIS_EXAMPLES=2000 pytest ...
FAST = settings(max_examples=int(os.environ.get("STATS_HYPOTHESIS_EXAMPLES", "40")), deadline=None, database=None)

# rliable example: scores (num_runs x num_tasks), higher is better as rliable assumes
X = np.array([[0.9, 1.4, 0.3], [1.1, 1.2, 0.5], [0.7, 1.9, 0.2], [1.3, 1.1, 0.6], [0.8, 1.5, 0.4]])
Y = np.array([[0.8, 1.0, 0.35], [0.9, 1.3, 0.1], [0.6, 1.2, 0.3], [1.0, 0.9, 0.5], [0.7, 1.1, 0.25]])
SCORES = {f"w{t}": {"x": list(X[:, t]), "y": list(Y[:, t])} for t in range(3)}

# rliable 1.2.0 (arch 7.2.0), np.random.seed(0), rliable.library.get_interval_estimates(..., reps=50000):
#   {"x": X} with lambda s: np.array([metrics.aggregate_iqm(s)])            -> 0.9111111111111112 [0.8, 1.0333333333333334]
#   {"x,y": (X, Y)} with metrics.probability_of_improvement                 -> 0.7400000000000001 [0.5466666666666667, 0.9]
RLIABLE_IQM = (0.9111111111111112, 0.8, 1.0333333333333334)
RLIABLE_POI = (0.7400000000000001, 0.5466666666666667, 0.9)


# --------------------------------------------------------------------------------------------------------------
# iqm and stratified bootstrap
# --------------------------------------------------------------------------------------------------------------


def test_iqm_known_values():
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == 4.5  # mean of the middle four (hand computed)
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8, math.nan]) == 4.5
    assert iqm([1, 2, 3, 4, 5, 6, 7, INF]) == 4.5  # a censored value in the top quarter is trimmed away
    assert math.isnan(iqm([]))
    x = np.random.default_rng(0).normal(size=37)
    assert iqm(x) == scipy.stats.trim_mean(x, 0.25)


def test_iqm_matches_rliable():
    assert iqm(X) == pytest.approx(RLIABLE_IQM[0], abs=1e-15)


def test_stratified_bootstrap_matches_rliable():
    r = stratified_bootstrap_ci(SCORES, resamples=20000)["x"]
    assert r.estimate == pytest.approx(RLIABLE_IQM[0], abs=1e-15)
    # different random streams (rliable uses np.random's global state); 20000 vs 50000 reps: bounds agree closely
    assert (r.low, r.high) == pytest.approx(RLIABLE_IQM[1:], abs=0.005)
    assert r.n == 15 and r.statistic == "iqm"


def test_stratified_bootstrap_resamples_within_workloads():
    # workload A is all 0, B all 1: any stratified resample has five 0s and five 1s, so the mean is exactly 0.5;
    # an unstratified bootstrap over the pooled ten values would vary
    scores = {"A": {"s": [0.0] * 5}, "B": {"s": [1.0] * 5}}
    r = stratified_bootstrap_ci(scores, statistic=np.mean)["s"]
    assert (r.estimate, r.low, r.high) == (0.5, 0.5, 0.5)


def test_stratified_bootstrap_independent_of_dict_order_and_other_strategies():
    full = stratified_bootstrap_ci(SCORES, resamples=500, seed=4)
    flipped = {w: dict(reversed(list(SCORES[w].items()))) for w in reversed(list(SCORES))}
    assert stratified_bootstrap_ci(flipped, resamples=500, seed=4) == full
    only_x = {w: {"x": SCORES[w]["x"]} for w in SCORES}
    assert stratified_bootstrap_ci(only_x, resamples=500, seed=4)["x"] == full["x"]


def test_stratified_bootstrap_degenerate():
    scores = {"w1": {"a": [1.0, 2.0], "b": [3.0]}, "w2": {"a": [1.5, 2.5], "b": [math.nan]}, "w3": {"a": [2.0, 2.2]}}
    out = stratified_bootstrap_ci(scores, resamples=200)
    assert out["a"].low is not None
    assert out["b"].estimate is None and "w2, w3" in out["b"].reason
    one_seed = stratified_bootstrap_ci({"w1": {"a": [1.0]}, "w2": {"a": [2.0]}})["a"]
    assert one_seed.estimate == 1.5 and one_seed.low is None and "one seed" in one_seed.reason
    assert stratified_bootstrap_ci({}) == {}


@FAST
@given(st.lists(st.lists(st.floats(-100, 100), min_size=1, max_size=6), min_size=1, max_size=4), st.integers(0, 999))
def test_stratified_bootstrap_bounds_ordered(workloads, seed):
    scores = {f"w{i}": {"s": v} for i, v in enumerate(workloads)}
    r = stratified_bootstrap_ci(scores, resamples=100, seed=seed)["s"]
    if r.low is not None:
        assert r.low <= r.high and r.low - 1e-9 <= r.estimate <= r.high + 1e-9


# --------------------------------------------------------------------------------------------------------------
# probability of improvement
# --------------------------------------------------------------------------------------------------------------


def test_probability_of_improvement_hand_computed():
    # w1: a=[1,3] vs b=[2,2]: pairs (1<2),(1<2),(3>2),(3>2) -> 2/4 lower-better wins = 0.5
    # w2: a=[1,1] vs b=[1,5]: (1=1 -> 1/2),(1<5),(1=1 -> 1/2),(1<5) -> 3/4
    scores = {"w1": {"a": [1.0, 3.0], "b": [2.0, 2.0]}, "w2": {"a": [1.0, 1.0], "b": [1.0, 5.0]}}
    r = probability_of_improvement(scores, "a", "b")
    assert r.estimate == pytest.approx((0.5 + 0.75) / 2)
    assert probability_of_improvement(scores, "a", "b", lower_is_better=False).estimate == pytest.approx((0.5 + 0.25) / 2)


def test_probability_of_improvement_matches_rliable():
    r = probability_of_improvement(SCORES, "x", "y", lower_is_better=False, resamples=20000)
    assert r.estimate == pytest.approx(RLIABLE_POI[0], abs=1e-15)
    assert (r.low, r.high) == pytest.approx(RLIABLE_POI[1:], abs=0.01)


def test_probability_of_improvement_mann_whitney_agreement():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=6), rng.normal(size=7)
    u = scipy.stats.mannwhitneyu(x, y, alternative="greater").statistic
    r = probability_of_improvement({"w": {"a": list(x), "b": list(y)}}, "a", "b", lower_is_better=False)
    assert r.estimate == pytest.approx(u / 42)


def test_probability_of_improvement_censoring_and_degenerate():
    both_never = {"w": {"a": [INF, INF], "b": [INF, INF]}}
    assert probability_of_improvement(both_never, "a", "b").estimate == 0.5  # inf vs inf is a tie
    a_reaches = {"w": {"a": [3.0, 4.0], "b": [INF, INF]}}
    assert probability_of_improvement(a_reaches, "a", "b").estimate == 1.0
    partial = {"w1": {"a": [1.0, 2.0], "b": [3.0, 4.0]}, "w2": {"a": [1.0]}}
    r = probability_of_improvement(partial, "a", "b")
    assert r.n == 1 and r.estimate == 1.0 and "w2" in r.reason
    one = probability_of_improvement({"w": {"a": [1.0], "b": [2.0]}}, "a", "b")
    assert one.estimate == 1.0 and one.low is None
    none = probability_of_improvement({"w": {"a": [1.0]}}, "a", "b")
    assert none.estimate is None and none.low is None


@FAST
@given(
    st.lists(
        st.tuples(st.lists(st.floats(0, 10), min_size=1, max_size=5), st.lists(st.floats(0, 10), min_size=1, max_size=5)),
        min_size=1,
        max_size=3,
    )
)
def test_probability_of_improvement_is_complementary(workloads):
    scores = {f"w{i}": {"a": xa, "b": xb} for i, (xa, xb) in enumerate(workloads)}
    ab = probability_of_improvement(scores, "a", "b", resamples=100)
    ba = probability_of_improvement(scores, "b", "a", resamples=100)
    assert ab.estimate + ba.estimate == pytest.approx(1.0)
    assert 0.0 <= ab.estimate <= 1.0
    if ab.low is not None:
        assert ab.low <= ab.estimate + 1e-12 and ab.estimate <= ab.high + 1e-12


# --------------------------------------------------------------------------------------------------------------
# Nemenyi q_alpha, Friedman ranking, critical difference cliques
# --------------------------------------------------------------------------------------------------------------

# Demsar (2006), JMLR 7:1-30, Table 5(a): critical values q_alpha for the two-tailed Nemenyi test, k = 2..10
DEMSAR_Q05 = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
DEMSAR_Q10 = [1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920]


@pytest.mark.parametrize("alpha, table", [(0.05, DEMSAR_Q05), (0.10, DEMSAR_Q10)])
def test_nemenyi_q_alpha_matches_demsar_table(alpha, table):
    # the table is rounded/truncated to 3 decimals (e.g. k=3: 2.3437 is printed as 2.343)
    assert [nemenyi_q_alpha(k, alpha) for k in range(2, 11)] == pytest.approx(table, abs=1e-3)
    with pytest.raises(ValueError):
        nemenyi_q_alpha(1)


# 10 workloads x 5 strategies, lower is better
AUTORANK_COLS = ["als", "numba", "vectorized", "surprise", "native"]
AUTORANK_DATA = [
    [1.00, 1.10, 1.30, 2.00, 1.05],
    [0.90, 1.20, 1.10, 1.80, 1.00],
    [1.20, 1.15, 1.40, 2.20, 1.25],
    [0.80, 1.00, 1.20, 1.90, 0.95],
    [1.10, 1.30, 1.20, 2.10, 1.00],
    [0.95, 1.05, 1.50, 1.70, 1.10],
    [1.00, 1.20, 1.10, 2.30, 1.15],
    [0.85, 0.90, 1.30, 1.60, 0.88],
    [1.05, 1.25, 1.35, 1.95, 1.02],
    [0.99, 1.10, 1.25, 2.05, 1.20],
]
MATRIX = {f"w{i}": dict(zip(AUTORANK_COLS, row, strict=True)) for i, row in enumerate(AUTORANK_DATA)}


def test_friedman_ranking_matches_autorank():
    # autorank 1.3.0: autorank(pd.DataFrame(AUTORANK_DATA, columns=AUTORANK_COLS), alpha=0.05, order="ascending",
    #   force_mode="nonparametric") -> omnibus friedman, posthoc nemenyi, pvalue 2.309172982907953e-06,
    #   cd 1.9288111473713958, meanrank als 1.3, native 2.2, numba 2.9, vectorized 3.6, surprise 5.0;
    #   autorank._util.get_sorted_rank_groups(result, reverse=False) ->
    #   [als, native, numba], [native, numba, vectorized], [vectorized, surprise]
    r = friedman_ranking(MATRIX)
    assert r.strategies == ("als", "native", "numba", "vectorized", "surprise")
    assert r.average_ranks == pytest.approx((1.3, 2.2, 2.9, 3.6, 5.0))
    assert r.p == pytest.approx(2.309172982907953e-06, rel=1e-9) and r.significant
    # autorank uses statsmodels' qsturng approximation; scipy's studentized_range is exact: they differ by ~2e-5
    assert r.critical_difference == pytest.approx(1.9288111473713958, abs=1e-4)
    assert r.cliques == (("als", "native", "numba"), ("native", "numba", "vectorized"), ("vectorized", "surprise"))
    assert (r.k, r.n_workloads) == (5, 10)


def test_friedman_ranking_matches_scipy_and_hand_cd():
    r = friedman_ranking(MATRIX)
    cols = [[row[j] for row in AUTORANK_DATA] for j in range(5)]
    ref = scipy.stats.friedmanchisquare(*cols)
    assert (r.statistic, r.p) == pytest.approx((ref.statistic, ref.pvalue))
    assert r.critical_difference == pytest.approx(2.7277743708703763 * math.sqrt(5 * 6 / (6 * 10)))
    assert json.loads(json.dumps(r.as_dict()))["cliques"][0] == ["als", "native", "numba"]


def test_friedman_ties_get_average_ranks_and_direction():
    m = {"w1": {"a": 1.0, "b": 1.0, "c": 3.0}, "w2": {"a": 2.0, "b": 1.0, "c": 1.0}}
    # w1 ranks a 1.5, b 1.5, c 3; w2 ranks a 3, b 1.5, c 1.5 (hand computed)
    r = friedman_ranking(m)
    assert dict(zip(r.strategies, r.average_ranks, strict=True)) == {"a": 2.25, "b": 1.5, "c": 2.25}
    assert r.strategies == ("b", "a", "c")  # equal average ranks: by name, so the order is deterministic
    hi = friedman_ranking(m, lower_is_better=False)  # w1: c 1, a/b 2.5; w2: a 1, b/c 2.5
    assert dict(zip(hi.strategies, hi.average_ranks, strict=True)) == {"a": 1.75, "b": 2.5, "c": 1.75}
    censored = friedman_ranking({"w1": {"a": 1.0, "b": INF, "c": INF}, "w2": {"a": 2.0, "b": 3.0, "c": INF}})
    assert dict(zip(censored.strategies, censored.average_ranks, strict=True)) == {"a": 1.0, "b": 2.25, "c": 2.75}


def test_friedman_degenerate_inputs_say_why():
    two = friedman_ranking({"w1": {"a": 1.0, "b": 2.0}, "w2": {"a": 1.0, "b": 3.0}})
    assert two.p is None and "at least 3 strategies" in two.reason and two.critical_difference is not None
    one_w = friedman_ranking({"w1": {"a": 1.0, "b": 2.0, "c": 3.0}})
    assert one_w.p is None and "at least 2 workloads" in one_w.reason and one_w.average_ranks == (1.0, 2.0, 3.0)
    ties = friedman_ranking({"w1": {"a": 1.0, "b": 1.0, "c": 1.0}, "w2": {"a": 2.0, "b": 2.0, "c": 2.0}})
    assert ties.p is None and "tied" in ties.reason and not ties.significant
    empty = friedman_ranking({})
    assert empty.k == 0 and empty.reason


def test_friedman_excludes_missing_strategies_and_nan_workloads():
    m = {
        "w1": {"a": 1.0, "b": 2.0, "c": 3.0, "d": 0.5},
        "w2": {"a": 1.0, "b": 3.0, "c": 2.0},
        "w3": {"a": 2.0, "b": math.nan, "c": 1.0},
        "w4": {"a": 1.0, "b": 2.0, "c": 3.0},
    }
    r = friedman_ranking(m)
    assert set(r.strategies) == {"a", "b", "c"} and r.n_workloads == 3
    assert dict(r.excluded_strategies)["d"].startswith("not measured on workload(s): w2, w3, w4")
    assert dict(r.excluded_workloads) == {"w3": "NaN value for some strategy"}


def test_cliques_boundary_is_strict():
    # k=3, N=2: CD = 2.3437 * sqrt(3*4/12) = 2.3437; ranks 1, 2, 3 -> a..c differ by 2 < CD: one clique
    m = {"w1": {"a": 1.0, "b": 2.0, "c": 3.0}, "w2": {"a": 1.0, "b": 2.0, "c": 3.0}}
    r = friedman_ranking(m)
    assert r.critical_difference == pytest.approx(2.343700586378409)
    assert r.cliques == (("a", "b", "c"),)
    # N=4 identical orderings: CD = 2.3437 * sqrt(12/24) = 1.657 -> a-b and b-c within, a-c (2.0) not
    r4 = friedman_ranking({f"w{i}": m["w1"] for i in range(4)})
    assert r4.cliques == (("a", "b"), ("b", "c"))


@FAST
@given(st.lists(st.lists(st.integers(0, 5), min_size=4, max_size=4), min_size=2, max_size=6), st.randoms())
def test_ranks_are_permutation_invariant(rows, rnd):
    names = ["p", "q", "r", "s"]
    m = {f"w{i}": {n: float(v) for n, v in zip(names, row, strict=True)} for i, row in enumerate(rows)}
    base = friedman_ranking(m)
    shuffled_names = names[:]
    rnd.shuffle(shuffled_names)
    workloads = list(m)
    rnd.shuffle(workloads)
    m2 = {w: {n: m[w][n] for n in shuffled_names} for w in workloads}
    other = friedman_ranking(m2)
    ranks = dict(zip(base.strategies, base.average_ranks, strict=True))
    assert ranks == pytest.approx(dict(zip(other.strategies, other.average_ranks, strict=True)))
    assert sum(base.average_ranks) == pytest.approx(4 * 5 / 2)  # ranks 1..k always sum to k(k+1)/2
    assert base.cliques == other.cliques
    assert (base.p is None and other.p is None) or base.p == pytest.approx(other.p)
