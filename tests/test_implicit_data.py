"""Implicit feedback: ratings turned into positives, and the planted implicit generator's known signal."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mfbench
from mfbench.data.implicit import as_implicit, implicit_counts
from mfbench.data.splits import leave_last_out_split, temporal_split
from mfbench.plugin import registry
from mfbench.plugins.datasets import implicit as planted
from mfbench.plugins.datasets.implicit import ImplicitPlanted, plant_implicit


def rated() -> mfbench.Ratings:
    return mfbench.Ratings.from_arrays([0, 0, 1, 2, 2], [0, 1, 1, 0, 2], [4.5, 2.0, 4.0, 1.0, 5.0], 4, 3, [50, 10, 30, 20, 40])


def test_a_threshold_keeps_the_pairs_rated_at_or_above_it():
    implicit = as_implicit(rated(), 4.0)
    assert list(zip(implicit.users.tolist(), implicit.items.tolist(), strict=True)) == [(0, 0), (1, 1), (2, 2)]
    assert implicit.values.tolist() == [1.0, 1.0, 1.0] and implicit.values.dtype == torch.float32
    assert implicit.times.tolist() == [50, 30, 40] and (implicit.n_users, implicit.n_items) == (4, 3)
    assert implicit_counts(rated(), 4.0) == {"implicit_threshold": 4.0, "positives": 3, "dropped": 2}


def test_no_threshold_counts_every_rated_pair():
    implicit = as_implicit(rated(), None)
    assert implicit.values.tolist() == [1.0] * 5 and torch.equal(implicit.users, rated().users)
    assert implicit_counts(rated(), None)["dropped"] == 0
    untimed = mfbench.Ratings.from_arrays([0], [0], [3.0])
    assert as_implicit(untimed, None).times is None


def test_no_positive_left_says_how_many_ratings_their_range_and_the_threshold():
    with pytest.raises(mfbench.MfbenchError, match=r"threshold 6: the 5 ratings range from 1 to 5"):
        as_implicit(rated(), 6.0)
    with pytest.raises(mfbench.MfbenchError, match="empty"):
        as_implicit(mfbench.Ratings.from_arrays([], [], [], 1, 1), None)
    with pytest.raises(mfbench.MfbenchError, match="finite"):
        as_implicit(rated(), float("nan"))


def small(seed: int = 0, **params) -> mfbench.Ratings:
    dataset = ImplicitPlanted(**{"n_users": 300, "n_items": 200, "interactions": 15.0, **params})
    return dataset.load(seed)


def test_registers_as_implicit_planted():
    pm = mfbench.make_plugin_manager(["mfbench.plugins.datasets.implicit"], defaults=False, entry_points=False, env=False)
    assert registry.collect(pm).get(mfbench.Dataset, "implicit-planted").cls is ImplicitPlanted


def test_interactions_are_distinct_ones_with_increasing_times_per_user():
    ratings = small()
    users, items, times = ratings.users.numpy(), ratings.items.numpy(), ratings.times.numpy()
    assert (ratings.values == 1.0).all() and (ratings.n_users, ratings.n_items) == (300, 200)
    assert len(np.unique(users * 200 + items)) == len(users)  # each pair once
    assert (np.diff(users) >= 0).all() and (np.diff(times)[np.diff(users) == 0] > 0).all()
    assert abs(len(ratings) / 300 - 15) < 1.5
    assert small().fingerprint() == ratings.fingerprint() != small(seed=1).fingerprint()
    split = leave_last_out_split(ratings, 0.0, 0.0, 0)
    assert len(split.test) == len(split.valid) == int((np.bincount(users) >= 3).sum())
    assert len(temporal_split(ratings, 0.1, 0.1, 0).test) == round(0.1 * len(ratings))


def test_the_draws_follow_the_planted_softmax():
    """Gumbel-top-k with one pick is the softmax; with two, successive sampling without replacement."""
    rng = np.random.default_rng(3)
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    rows = 40_000
    picks = planted._gumbel_top(np.tile(logits, (rows, 1)).astype(np.float32), np.ones(rows, dtype=np.int64), rng)
    np.testing.assert_allclose(np.bincount(picks, minlength=4) / rows, np.exp(logits), atol=0.01)
    pairs = planted._gumbel_top(np.tile(logits, (rows, 1)).astype(np.float32), np.full(rows, 2, dtype=np.int64), rng)
    first, second = pairs[0::2], pairs[1::2]
    p = np.exp(logits)
    want = p[0] * p[1] / (1 - p[0]) + p[1] * p[0] / (1 - p[1])  # the set {0, 1}, drawn in either order
    got = np.mean(np.minimum(first, second) * 10 + np.maximum(first, second) == 1)
    assert abs(got - want) < 0.01 and (first != second).all()


def test_the_planted_scores_rank_the_held_out_items_high():
    ratings, truth = plant_implicit(400, 300, 8, 20.0, 0.5, 0.5, seed=0)
    split = leave_last_out_split(ratings, 0.0, 0.0, 0)
    users, items = split.test.users.numpy(), split.test.items.numpy()
    scores = truth.scores(users)
    rank = (scores > scores[np.arange(len(users)), items][:, None]).sum(axis=1)  # 0: the top item
    assert np.median(rank) < 300 / 8  # a random ranking would put it near 150
    assert scores.shape == (len(users), 300) and scores.dtype == np.float32


def test_too_many_scores_are_refused_while_planning():
    params = ImplicitPlanted.resolve_params({"n_users": 10**6, "n_items": 10**5})
    assert any("planted scores" in p for p in ImplicitPlanted.check_params(params))
    assert ImplicitPlanted.check_params(ImplicitPlanted.resolve_params({})) == []
    assert any("temperature" in p for p in ImplicitPlanted.check_params({**ImplicitPlanted.params, "temperature": 0.0}))
