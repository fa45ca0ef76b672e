"""Full-catalog ranking metrics (mfbench.metrics.ranking) against hand arithmetic and independent references.

The references are written apart from the module on purpose: a per-user Python loop that ranks
with ``sorted(candidates, key=lambda i: (-score, i))`` and plain float arithmetic, and, for NDCG on
tie-free scores, scikit-learn's ``ndcg_score``. Scores are integers (or sums of integers) wherever
ties matter, so every scorer computes them exactly and an order never hangs on rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from torch import nn

import mfbench
from mfbench.metrics import ranking
from mfbench.metrics.ranking import METRICS, RankingResult, evaluate_ranking
from mfbench.plugins.models.biased import BiasedDotProduct
from mfbench.plugins.models.dot import DotProduct

NAN, INF = math.nan, math.inf
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class MatrixModel(nn.Module):
    """Scores read from a fixed matrix: no table layout, so the evaluation calls forward."""

    def __init__(self, scores):
        super().__init__()
        self.register_buffer("scores", torch.as_tensor(np.asarray(scores, dtype=np.float64)))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.scores[users, items]


def pairs(mask) -> mfbench.Ratings:
    """The ratings at the True cells of a users x items boolean matrix."""
    mask = np.asarray(mask, dtype=bool)
    users, items = np.nonzero(mask)
    return mfbench.Ratings.from_arrays(users, items, np.ones(len(users)), *mask.shape)


def table_model(factors_u, factors_i, item_bias=None, user_bias=None, mean=0.0) -> nn.Module:
    """A built-in dot (no biases) or biased model holding the given weights."""
    p, q = np.asarray(factors_u, dtype=np.float32), np.asarray(factors_i, dtype=np.float32)
    if item_bias is None:
        model: nn.Module = DotProduct(len(p), len(q), p.shape[1])
    else:
        model = BiasedDotProduct(len(p), len(q), p.shape[1], mean)
    with torch.no_grad():
        model.user_factors.weight.copy_(torch.as_tensor(p))
        model.item_factors.weight.copy_(torch.as_tensor(q))
        if item_bias is not None:
            model.item_bias.weight.copy_(torch.as_tensor(np.asarray(item_bias, dtype=np.float32)).reshape(-1, 1))
            bias_u = np.zeros(len(p)) if user_bias is None else np.asarray(user_bias)
            model.user_bias.weight.copy_(torch.as_tensor(bias_u, dtype=torch.float32).reshape(-1, 1))
    return model


def reference(scores, held, excluded, requests) -> tuple[dict[str, float], int, int]:
    """(metrics, evaluated, skipped) by a per-user loop: rank by (-score, item), NaN after every number."""
    scores = np.asarray(scores, dtype=np.float64)
    held, excluded = np.asarray(held, dtype=bool), np.asarray(excluded, dtype=bool)
    n_users, n_items = scores.shape
    sums = {f"{m}@{k}": 0.0 for m, k in requests}
    covered: dict[str, set[int]] = {f"{m}@{k}": set() for m, k in requests if m == "coverage"}
    evaluated = 0
    for u in range(n_users):
        relevant = {i for i in range(n_items) if held[u, i]}
        if not relevant:
            continue
        evaluated += 1
        candidates = [i for i in range(n_items) if not excluded[u, i]]
        row = [float(s) for s in scores[u]]
        ranked = sorted(candidates, key=lambda i: (1, 0.0, i) if math.isnan(row[i]) else (0, -row[i], i))
        for metric, k in requests:
            name, top = f"{metric}@{k}", ranked[:k]
            rels = [1 if i in relevant else 0 for i in top]
            hits = sum(rels)
            if metric == "coverage":
                covered[name].update(top)
            elif metric == "recall":
                sums[name] += hits / len(relevant)
            elif metric == "precision":
                sums[name] += hits / k
            elif metric == "ndcg":
                dcg = sum(rel / math.log2(r + 1) for r, rel in enumerate(rels, start=1))
                idcg = sum(1 / math.log2(r + 1) for r in range(1, min(k, len(relevant)) + 1))
                sums[name] += dcg / idcg
            elif metric == "map":
                seen, total = 0, 0.0
                for r, rel in enumerate(rels, start=1):
                    seen += rel
                    total += seen / r * rel
                sums[name] += total / min(k, len(relevant))
            elif metric == "mrr":
                sums[name] += next((1 / r for r, rel in enumerate(rels, start=1) if rel), 0.0)
            else:
                sums[name] += 1.0 if hits else 0.0
    out = {}
    for name in sums:
        if evaluated == 0:
            out[name] = math.nan
        elif name in covered:
            out[name] = len(covered[name]) / n_items
        else:
            out[name] = sums[name] / evaluated
    return out, evaluated, n_users - evaluated


def assert_metrics(result: RankingResult, expected: dict[str, float], tol: float = 1e-9) -> None:
    assert list(result.metrics) == list(expected)
    for name, value in expected.items():
        got = result.metrics[name]
        assert (math.isnan(got) and math.isnan(value)) or got == pytest.approx(value, abs=tol, rel=0), (name, got, value)


def check_against_reference(model, scores, held, excluded_sets, requests, **kwargs) -> RankingResult:
    excluded = np.zeros_like(np.asarray(held, dtype=bool))
    for mask in excluded_sets:
        excluded |= np.asarray(mask, dtype=bool)
    result = evaluate_ranking(model, pairs(held), [pairs(m) for m in excluded_sets], requests, **kwargs)
    expected, evaluated, skipped = reference(scores, held, excluded, requests)
    assert_metrics(result, expected)
    assert (result.n_users, result.n_skipped) == (evaluated, skipped)
    return result


# ---- hand-computed cases -------------------------------------------------------------------------------


ALL_AT_3 = [(metric, 3) for metric in METRICS]


def test_every_metric_on_a_hand_computed_case():
    # user 0: scores 5..0 rank items 0,1,2,3,4,5; item 1 is a training item (excluded), so the
    #   list at 3 is [0, 2, 3]; relevant {2, 4, 5}: rels [0, 1, 0], hits 1
    #   recall 1/3, precision 1/3, DCG 1/log2(3), IDCG 1 + 1/log2(3) + 1/log2(4) (min(3, 3) terms),
    #   MAP (P@2 = 1/2) / min(3, 3) = 1/6, MRR 1/2, hit 1
    # user 1: all scores tie, so items in index order: list [0, 1, 2]; relevant {0, 3}: rels [1, 0, 0]
    #   recall 1/2, precision 1/3, DCG 1, IDCG 1 + 1/log2(3) (min(3, 2) terms),
    #   MAP (P@1 = 1) / min(3, 2) = 1/2, MRR 1, hit 1
    # user 2: no held-out item: skipped
    # coverage@3: {0, 2, 3} | {0, 1, 2} = 4 of 6 items
    scores = [[5, 4, 3, 2, 1, 0], [1, 1, 1, 1, 1, 1], [0, 1, 2, 3, 4, 5]]
    held = [[0, 0, 1, 0, 1, 1], [1, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0]]
    train = [[0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]]
    result = evaluate_ranking(MatrixModel(scores), pairs(held), [pairs(train)], ALL_AT_3)
    log3 = math.log2(3)
    expected = {
        "recall@3": (1 / 3 + 1 / 2) / 2,
        "precision@3": (1 / 3 + 1 / 3) / 2,
        "ndcg@3": ((1 / log3) / (1 + 1 / log3 + 1 / 2) + 1 / (1 + 1 / log3)) / 2,
        "map@3": (1 / 6 + 1 / 2) / 2,
        "mrr@3": (1 / 2 + 1) / 2,
        "hit@3": 1.0,
        "coverage@3": 4 / 6,
    }
    assert_metrics(result, expected, tol=1e-12)
    assert (result.n_users, result.n_skipped, result.scorer) == (2, 1, "forward")
    assert result["ndcg@3"] == result.metrics["ndcg@3"] and result.seconds >= 0


def test_fewer_candidates_than_k_keeps_k_in_precision():
    # 4 items, items 0 and 1 excluded: candidates 3 (score 2) then 2 (score 1); relevant {2}
    # list at 5 is [3, 2]: rels [0, 1]; precision 1/5 (k, not |L|), recall 1, DCG 1/log2(3), IDCG 1
    # (min(5, 1) = 1 term), MAP (P@2 = 1/2) / 1, MRR 1/2, coverage 2 of 4
    result = evaluate_ranking(
        MatrixModel([[0, 0, 1, 2]]), pairs([[0, 0, 1, 0]]), [pairs([[1, 1, 0, 0]])], [(m, 5) for m in METRICS]
    )
    expected = {
        "recall@5": 1.0,
        "precision@5": 1 / 5,
        "ndcg@5": 1 / math.log2(3),
        "map@5": 1 / 2,
        "mrr@5": 1 / 2,
        "hit@5": 1.0,
        "coverage@5": 2 / 4,
    }
    assert_metrics(result, expected, tol=1e-12)


def test_a_tie_across_the_cut_takes_the_lowest_items():
    # scores [3, 2, 2, 2, 1]: the list at 2 is [0, 1] (items 2 and 3 tie with 1 but come later)
    scores = [[3, 2, 2, 2, 1]] * 3
    held = [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0]]
    result = evaluate_ranking(MatrixModel(scores), pairs(held), [], [("hit", 2), ("mrr", 4)])
    # hit@2: only user 0's item 1 is in [0, 1]; mrr@4 over the list [0, 1, 2, 3]: 1/2, 1/3, 1/4
    assert_metrics(result, {"hit@2": 1 / 3, "mrr@4": (1 / 2 + 1 / 3 + 1 / 4) / 3}, tol=1e-12)


def test_a_tie_inside_the_list_orders_by_item():
    # scores [0, 5, 1, 5, 5, -1, ...]: the cut at 3 is clean (5 above 1), the three 5s list as 1, 3, 4
    row = [0.0, 5.0, 1.0, 5.0, 5.0] + [-1.0] * 20
    held = np.zeros((3, 25), dtype=bool)
    held[[0, 1, 2], [4, 4, 3]] = True
    result = evaluate_ranking(MatrixModel([row] * 3), pairs(held), [], [("mrr", 3)])
    assert_metrics(result, {"mrr@3": (1 / 3 + 1 / 3 + 1 / 2) / 3}, tol=1e-12)


def test_nan_ranks_after_every_number_and_inf_is_a_value():
    # order of [nan, -inf, 0, nan, inf]: 4 (inf), 2 (0), 1 (-inf), then the NaN items 0 and 3
    scores = [[NAN, -INF, 0.0, NAN, INF]] * 4
    held = np.eye(5, dtype=bool)[[0, 1, 3, 4]]  # users relevant to items 0, 1, 3, 4
    result = evaluate_ranking(MatrixModel(scores), pairs(held), [], [("mrr", 5)])
    assert_metrics(result, {"mrr@5": (1 / 4 + 1 / 3 + 1 / 5 + 1 / 1) / 4}, tol=1e-12)
    # excluding item 2 (score 0): the -inf candidate moves up, the excluded item is not ranked
    result = evaluate_ranking(MatrixModel(scores), pairs(held), [pairs(np.tile([0, 0, 1, 0, 0], (4, 1)))], [("mrr", 5)])
    assert_metrics(result, {"mrr@5": (1 / 3 + 1 / 2 + 1 / 4 + 1 / 1) / 4}, tol=1e-12)


def test_negative_zero_ties_with_zero():
    # -0.0 on item 0 and 0.0 on item 1 tie: item 0 comes first, whichever zero it has
    result = evaluate_ranking(MatrixModel([[-0.0, 0.0, -1.0]] * 2), pairs([[0, 1, 0], [1, 0, 0]]), [], [("mrr", 1)])
    assert_metrics(result, {"mrr@1": 1 / 2}, tol=1e-12)


def test_nan_in_a_table_model_ranks_that_item_last_on_both_scorers():
    model = table_model([[1.0], [2.0]], [[3.0], [NAN], [1.0], [2.0]], item_bias=[0, 0, 0, 0])
    held = pairs([[0, 1, 0, 0], [0, 0, 0, 1]])
    # user 0: items by score 0 (3), 3 (2), 2 (1), then NaN item 1: its MRR 1/4; user 1: item 3 second: 1/2
    for scorer in ("tables", "forward"):
        result = evaluate_ranking(model, held, [], [("mrr", 4)], scorer=scorer)
        assert result.scorer == scorer
        assert_metrics(result, {"mrr@4": (1 / 4 + 1 / 2) / 2}, tol=1e-12)


def test_users_without_heldout_items_are_skipped_and_counted():
    held = np.zeros((5, 4), dtype=bool)
    held[2, 1] = True
    result = evaluate_ranking(MatrixModel(np.arange(20).reshape(5, 4)), pairs(held), [], [("recall", 1), ("coverage", 2)])
    # user 2 ranks items 3, 2, 1, 0: item 1 is third, so recall@1 0; coverage@2: {3, 2} of 4
    assert (result.n_users, result.n_skipped) == (1, 4)
    assert_metrics(result, {"recall@1": 0.0, "coverage@2": 2 / 4}, tol=0)


def test_no_user_with_heldout_items_gives_nan():
    result = evaluate_ranking(MatrixModel(np.zeros((3, 4))), pairs(np.zeros((3, 4))), [], [("ndcg", 3), ("coverage", 3)])
    assert (result.n_users, result.n_skipped) == (0, 3)
    assert all(math.isnan(v) for v in result.metrics.values())


def test_k_larger_than_the_catalog_lists_every_candidate():
    scores = [[1, 4, 2, 3, 0], [0, 0, 0, 0, 0]]
    held = [[1, 0, 0, 0, 0], [0, 0, 0, 0, 1]]
    train = [[0, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
    # user 0: list [3, 2, 0, 4] (item 1 excluded): item 0 third; user 1: [0, 1, 2, 3, 4]: item 4 fifth
    result = evaluate_ranking(MatrixModel(scores), pairs(held), [pairs(train)], [(m, 100) for m in METRICS])
    expected = {
        "recall@100": 1.0,
        "precision@100": 1 / 100,
        "ndcg@100": (1 / math.log2(4) + 1 / math.log2(6)) / 2,
        "map@100": (1 / 3 + 1 / 5) / 2,
        "mrr@100": (1 / 3 + 1 / 5) / 2,
        "hit@100": 1.0,
        "coverage@100": 1.0,
    }
    assert_metrics(result, expected, tol=1e-12)


def test_a_user_with_every_item_excluded_scores_zero_but_counts():
    held = [[1, 0, 0], [0, 1, 0]]
    train = [[0, 1, 1], [1, 0, 1]]
    valid = [[1, 0, 0], [0, 0, 0]]  # with training, user 0's whole catalog (its held-out item too)
    result = evaluate_ranking(MatrixModel(np.zeros((2, 3))), pairs(held), [pairs(train), pairs(valid)], ALL_AT_3)
    # user 0: empty list, every metric 0; user 1: list [1], relevant: recall 1, precision 1/3, ndcg 1,
    # map 1, mrr 1, hit 1; coverage {1} of 3
    expected = {"recall@3": 1 / 2, "precision@3": 1 / 6, "ndcg@3": 1 / 2, "map@3": 1 / 2, "mrr@3": 1 / 2}
    assert_metrics(result, {**expected, "hit@3": 1 / 2, "coverage@3": 1 / 3}, tol=1e-12)
    assert result.n_users == 2


def test_item_biases_change_the_order_and_user_terms_do_not():
    # scores <p_u, q_i> + b_i: user 0 (p = 1): items 0..2 get 1 + 0, 2 + 0, 0 + 5 -> order 2, 1, 0
    # the global mean and the user biases are the same along a row and cannot change it
    model = table_model([[1.0], [-1.0]], [[1.0], [2.0], [0.0]], item_bias=[0, 0, 5], user_bias=[100, -100], mean=7.0)
    held = pairs([[0, 0, 1], [1, 0, 0]])
    # user 1 (p = -1): -1, -2, 5 -> order 2, 0, 1: item 0 second
    for scorer in ("tables", "forward", "auto"):
        result = evaluate_ranking(model, held, [], [("mrr", 3)], scorer=scorer)
        assert_metrics(result, {"mrr@3": (1 + 1 / 2) / 2}, tol=1e-12)
        assert result.scorer == ("forward" if scorer == "forward" else "tables")


# ---- independent references ----------------------------------------------------------------------------


values = st.integers(-2, 2).map(float)
special = st.sampled_from([NAN, INF, -INF, -0.0])
requests_st = st.lists(st.tuples(st.sampled_from(METRICS), st.integers(1, 11)), min_size=1, max_size=6, unique=True)


@st.composite
def matrices(draw, n_users: int, n_items: int, elements):
    return np.array(draw(st.lists(elements, min_size=n_users * n_items, max_size=n_users * n_items))).reshape(n_users, n_items)


@st.composite
def ranking_cases(draw, elements):
    n_users, n_items = draw(st.integers(1, 6)), draw(st.integers(1, 9))
    scores = draw(matrices(n_users, n_items, elements))
    held = draw(matrices(n_users, n_items, st.booleans()))
    # two exclusion sets that may overlap each other and the held-out pairs
    excluded = [draw(matrices(n_users, n_items, st.sampled_from([False, False, True]))) for _ in range(2)]
    batch = draw(st.one_of(st.none(), st.integers(1, n_users + 1)))
    return scores, held, excluded, draw(requests_st), batch


@EXAMPLES
@given(ranking_cases(st.one_of(values, values, special)))
def test_matches_the_reference_with_ties_and_special_values(case):
    scores, held, excluded, requests, batch = case
    check_against_reference(MatrixModel(scores), scores, held, excluded, requests, batch_users=batch)


@st.composite
def table_cases(draw):
    n_users, n_items, width = draw(st.integers(1, 6)), draw(st.integers(1, 9)), draw(st.integers(1, 3))
    p = draw(matrices(n_users, width, values))
    q = draw(matrices(n_items, width, values))
    bias = draw(st.one_of(st.none(), matrices(1, n_items, values)))
    held = draw(matrices(n_users, n_items, st.booleans()))
    excluded = draw(matrices(n_users, n_items, st.sampled_from([False, False, True])))
    return p, q, bias, held, excluded, draw(requests_st), draw(st.one_of(st.none(), st.integers(1, n_users + 1)))


@EXAMPLES
@given(table_cases())
def test_table_and_forward_scorers_match_the_reference(case):
    # small integer weights: every score is an exact integer on both scorers, so many ties
    p, q, bias, held, excluded, requests, batch = case
    scores = p @ q.T + (0 if bias is None else bias)
    biases = None if bias is None else bias[0]
    model = table_model(p, q, item_bias=biases, user_bias=np.arange(len(p)), mean=3.0)
    for scorer in ("tables", "forward"):
        result = check_against_reference(model, scores, held, [excluded], requests, batch_users=batch, scorer=scorer)
        assert result.scorer == scorer


def random_split(rng, n_users, n_items, held_share=0.05, train_share=0.2):
    draw = rng.random((n_users, n_items))
    return draw < held_share, (draw >= held_share) & (draw < held_share + train_share)


def test_larger_random_case_mixes_exact_rows_and_ties():
    # continuous scores in most rows (the topk path) and rows of few distinct values (ties at every cut)
    rng = np.random.default_rng(7)
    scores = rng.normal(size=(60, 300))
    scores[::3] = rng.integers(0, 3, size=(20, 300))
    held, train = random_split(rng, 60, 300)
    requests = [("ndcg", 10), ("recall", 20), ("precision", 5), ("map", 10), ("mrr", 10), ("hit", 3), ("coverage", 10)]
    check_against_reference(MatrixModel(scores), scores, held, [train], requests)


def test_small_memory_budget_ranks_tied_rows_in_groups(monkeypatch):
    # a budget of 2 tied rows at a time (and 6 users of float64 scores per batch): the grouping must not change the lists
    rng = np.random.default_rng(3)
    n_items = 40
    monkeypatch.setattr(ranking, "MEMORY_BUDGET_BYTES", n_items * ranking._EXACT_BYTES_PER_SCORE * 2)
    scores = rng.integers(0, 4, size=(30, n_items)).astype(float)
    held, train = random_split(rng, 30, n_items, 0.1, 0.3)
    result = check_against_reference(MatrixModel(scores), scores, held, [train], [("ndcg", 5), ("map", 7), ("coverage", 3)])
    assert result.batch_users == 6


def test_batch_size_does_not_change_results():
    rng = np.random.default_rng(11)
    scores = rng.normal(size=(25, 80))
    scores[:, 40:] = np.round(scores[:, 40:])
    held, train = random_split(rng, 25, 80, 0.1, 0.2)
    requests = [(metric, k) for metric in METRICS for k in (1, 10, 100)]
    results = [evaluate_ranking(MatrixModel(scores), pairs(held), [pairs(train)], requests, batch_users=b) for b in (1, 7, None)]
    assert [r.batch_users for r in results][:2] == [1, 7] and results[2].batch_users >= 25
    for other in results[1:]:
        assert_metrics(other, results[0].metrics, tol=1e-12)


def test_fallback_gives_the_table_numbers_on_a_trained_like_model():
    # random float weights: the two scorers add in a different order, but no two scores here are
    # within rounding of each other, so the lists and the numbers are the same
    torch.manual_seed(0)
    model = BiasedDotProduct(40, 120, 8, global_mean=3.5)
    with torch.no_grad():
        model.item_bias.weight.normal_()
        model.user_bias.weight.normal_()
    held, train = random_split(np.random.default_rng(5), 40, 120)
    requests = [(metric, 10) for metric in METRICS]
    tables = evaluate_ranking(model, pairs(held), [pairs(train)], requests, scorer="tables")
    forward = evaluate_ranking(model, pairs(held), [pairs(train)], requests, scorer="forward")
    assert (tables.scorer, forward.scorer) == ("tables", "forward")
    assert_metrics(forward, tables.metrics, tol=1e-12)


def test_sklearn_ndcg_on_tie_free_scores():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    n_users, n_items = 30, 50
    scores = rng.normal(size=(n_users, n_items))
    held, train = random_split(rng, n_users, n_items, 0.2, 0.3)
    held[:, 0] = True  # every user evaluated, several with |R_u| > k
    train[:, 0] = False
    for k in (1, 3, 10, 60):
        result = evaluate_ranking(MatrixModel(scores), pairs(held), [pairs(train)], [("ndcg", k)])
        # sklearn ranks what it is given: each user's candidates only (the excluded items left out, so that
        # its ideal DCG sees the same relevant items, none excluded here); its IDCG at k is then ours,
        # Σ_{r <= min(k, |R_u|)} 1/log2(r + 1), and its DCG with k past the candidates stops at the last one
        per_user = []
        for u in range(n_users):
            keep = ~train[u]
            y_true, y_score = held[u][keep].astype(float)[None], scores[u][keep][None]
            per_user.append(sklearn_metrics.ndcg_score(y_true, y_score, k=k))
        assert result.n_users == n_users
        assert result["ndcg@" + str(k)] == pytest.approx(float(np.mean(per_user)), abs=1e-9, rel=0)


def test_table_model_with_dot_layout_and_a_gpu_free_device():
    # the dot layout (no biases) on the tables scorer, against the reference with the same scores
    rng = np.random.default_rng(4)
    p, q = rng.integers(-3, 4, size=(20, 4)), rng.integers(-3, 4, size=(70, 4))
    held, train = random_split(rng, 20, 70, 0.1, 0.3)
    model = table_model(p, q)
    result = check_against_reference(model, p @ q.T, held, [train], [("ndcg", 10), ("map", 20), ("coverage", 5)])
    assert result.scorer == "tables"


# ---- arguments -----------------------------------------------------------------------------------------


def test_requests_are_checked_and_repeats_dropped():
    model, held = MatrixModel(np.zeros((2, 3))), pairs([[1, 0, 0], [0, 1, 0]])
    for bad in ([("auc", 3)], [("ndcg", 0)], [("ndcg", 2.5)], [("ndcg", True)], [], [("ndcg",)]):
        with pytest.raises(ValueError):
            evaluate_ranking(model, held, [], bad)
    result = evaluate_ranking(model, held, [], [("hit", 2), ("ndcg", 2), ("hit", 2)])
    assert list(result.metrics) == ["hit@2", "ndcg@2"]
    with pytest.raises(ValueError, match="batch_users"):
        evaluate_ranking(model, held, [], [("hit", 2)], batch_users=0)
    with pytest.raises(ValueError, match="excluded ratings are 2 x 4"):
        evaluate_ranking(model, held, [pairs(np.zeros((2, 4)))], [("hit", 2)])


def test_tables_scorer_refuses_a_model_without_tables_and_wrong_shapes():
    with pytest.raises(mfbench.LayoutError, match="scorer='tables'"):
        evaluate_ranking(MatrixModel(np.zeros((2, 3))), pairs([[1, 0, 0], [0, 0, 0]]), [], [("hit", 1)], scorer="tables")
    with pytest.raises(ValueError, match="tables are 2 x 3"):
        evaluate_ranking(table_model(np.ones((2, 1)), np.ones((3, 1))), pairs(np.eye(2, 4)), [], [("hit", 1)])


def test_the_models_mode_is_restored():
    model = table_model(np.ones((2, 1)), np.ones((3, 1)))
    model.train()
    evaluate_ranking(model, pairs([[1, 0, 0], [0, 0, 1]]), [], [("hit", 1)])
    assert model.training
    model.eval()
    evaluate_ranking(model, pairs([[1, 0, 0], [0, 0, 1]]), [], [("hit", 1)], scorer="forward")
    assert not model.training
