"""The split protocols: each one a partition, deterministic, and free of leakage across time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import mfbench
from mfbench import Ratings
from mfbench.data import splits
from mfbench.data.ratings import Split, split_positions
from mfbench.data.splits import DESCRIPTIONS, NEEDS_TIMES, PROTOCOLS, MissingTimestamps, split_by
from mfbench.plugins.datasets.movielens import MovieLens

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def make(n_users: int, n_items: int, users, times=None) -> Ratings:
    """Ratings whose values are their positions, so every part says which ratings it holds."""
    users = np.asarray(users, dtype=np.int64)
    items = np.arange(len(users), dtype=np.int64) % n_items
    return Ratings.from_arrays(users, items, np.arange(len(users)), n_users, n_items, times)


def positions(part: Ratings) -> list[int]:
    return [int(v) for v in part.values.tolist()]


@st.composite
def timed_ratings(draw, min_size: int = 0) -> Ratings:
    n_users = draw(st.integers(1, 6))
    n = draw(st.integers(min_size, 40))
    users = draw(st.lists(st.integers(0, n_users - 1), min_size=n, max_size=n))
    times = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))  # a small clock: many ties
    return make(n_users, 5, users, times)


fractions = st.tuples(st.sampled_from([0.0, 0.1, 0.25, 0.3]), st.sampled_from([0.0, 0.1, 0.2, 0.5]))


@SETTINGS
@given(timed_ratings(), fractions, st.integers(0, 2**31))
def test_every_protocol_is_a_deterministic_partition_that_keeps_order_and_times(ratings, fraction, seed):
    valid, test = fraction
    for name, protocol in PROTOCOLS.items():
        split = protocol(ratings, valid, test, seed)
        parts = [positions(p) for p in (split.train, split.valid, split.test)]
        assert sorted(sum(parts, [])) == list(range(len(ratings))), name  # every rating once
        for part, held in zip(parts, (split.train, split.valid, split.test), strict=True):
            assert part == sorted(part), name  # each part in the ratings' own order
            assert torch.equal(held.times, ratings.times[torch.tensor(part, dtype=torch.int64)]), name
            assert (held.n_users, held.n_items) == (ratings.n_users, ratings.n_items)
        assert protocol(ratings, valid, test, seed).fingerprint() == split.fingerprint(), name


@SETTINGS
@given(timed_ratings(), fractions, st.integers(0, 2**31))
def test_random_is_split_three_bit_for_bit(ratings, fraction, seed):
    valid, test = fraction
    ours, theirs = splits.random_split(ratings, valid, test, seed), ratings.split_three(valid, test, seed)
    for a, b in zip((ours.train, ours.valid, ours.test), (theirs.train, theirs.valid, theirs.test), strict=True):
        for name in ("users", "items", "values", "times"):
            assert torch.equal(getattr(a, name), getattr(b, name))
    assert ours.fingerprint() == theirs.fingerprint()


@pytest.mark.parametrize("n", [0, 1, 2, 7, 100, 1001])
@pytest.mark.parametrize(("test", "valid"), [(0.0, 0.0), (0.1, 0.1), (0.5, 0.49), (0.0, 0.9), (0.33, 0.0)])
def test_split_positions_are_what_sorting_each_part_of_the_permutation_gives(n, test, valid):
    """The held-out positions of every run so far came from sorting each part of one permutation."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(11))
    n_test, n_valid = round(test * n), round(valid * n)
    expected = [p.sort()[0] for p in (order[:n_test], order[n_test : n_test + n_valid], order[n_test + n_valid :])]
    for got, want in zip(split_positions(n, test, valid, 11), expected, strict=True):
        assert got.dtype == torch.int64 and torch.equal(got, want)


@SETTINGS
@given(timed_ratings(), fractions)
def test_temporal_trains_on_the_past_only(ratings, fraction):
    valid, test = fraction
    split = splits.temporal_split(ratings, valid, test, seed=0)
    n = len(ratings)
    assert (len(split.test), len(split.valid)) == (round(test * n), round(valid * n))
    # In (time, position) order the three parts are three consecutive runs: train, then validation, then test.
    keyed = [
        (t, p)
        for part in (split.train, split.valid, split.test)
        for t, p in zip(part.times.tolist(), positions(part), strict=True)
    ]
    sides = [0] * len(split.train) + [1] * len(split.valid) + [2] * len(split.test)
    assert [side for _, side in sorted(zip(keyed, sides, strict=True))] == sorted(sides)
    if len(split.train) and len(split.test):
        assert int(split.train.times.max()) <= int(split.test.times.min())


@SETTINGS
@given(timed_ratings(), fractions, st.integers(0, 2**31))
def test_leave_last_out_holds_out_each_users_last_two(ratings, fraction, seed):
    valid, test = fraction
    split = splits.leave_last_out_split(ratings, valid, test, seed)
    assert split.fingerprint() == splits.leave_last_out_split(ratings, 0.0, 0.0, seed + 1).fingerprint()  # fractions, seed unused
    users = ratings.users.tolist()
    for user in range(ratings.n_users):
        mine = [p for p, u in enumerate(users) if u == user]

        def keys(part: Ratings, user: int = user) -> list[tuple[int, int]]:
            return [
                (t, p) for u, t, p in zip(part.users.tolist(), part.times.tolist(), positions(part), strict=True) if u == user
            ]

        train, held_valid, held_test = keys(split.train), keys(split.valid), keys(split.test)
        if len(mine) < splits.MIN_HELD_OUT_USER:
            assert len(train) == len(mine) and not held_valid and not held_test
            continue
        assert len(held_valid) == len(held_test) == 1 and len(train) == len(mine) - 2
        assert max(train) < held_valid[0] < held_test[0]  # by time, then by position
        assert max(t for t, _ in train) <= held_valid[0][0] <= held_test[0][0]


@SETTINGS
@given(timed_ratings(), fractions, st.integers(0, 2**31))
def test_per_user_cuts_each_user_in_proportion(ratings, fraction, seed):
    valid, test = fraction
    split = splits.per_user_split(ratings, valid, test, seed)
    counts = np.bincount(ratings.users.numpy(), minlength=ratings.n_users)
    got = [np.bincount(part.users.numpy(), minlength=ratings.n_users) for part in (split.train, split.valid, split.test)]
    for user, n in enumerate(counts):
        if n < splits.MIN_HELD_OUT_USER:
            assert (got[0][user], got[1][user], got[2][user]) == (n, 0, 0)
            continue
        n_test = min(round(n * test), n - 1)
        n_valid = min(round(n * valid), n - 1 - n_test)
        assert (got[1][user], got[2][user]) == (n_valid, n_test)
        assert got[0][user] >= 1


def test_per_user_depends_on_the_seed_and_reaches_every_active_user():
    rng = np.random.default_rng(0)
    ratings = make(50, 30, rng.integers(0, 50, 2000))
    first, again, other = (splits.per_user_split(ratings, 0.1, 0.2, seed) for seed in (1, 1, 2))
    assert first.fingerprint() == again.fingerprint() != other.fingerprint()
    assert set(first.test.users.tolist()) == set(range(50))  # every user (~40 ratings each) is tested


def test_large_clocks_sort_the_same_as_small_ones():
    """A clock too wide for one combined (user, time) key takes two sorts; the order is the same."""
    rng = np.random.default_rng(1)
    users = rng.integers(0, 20, 500)
    small = rng.integers(0, 30, 500)
    wide = small * 2**57  # the same order and ties, over a span 20 users x 29 * 2**57 that int64 cannot combine
    for protocol in (splits.leave_last_out_split, splits.temporal_split):
        a = protocol(make(20, 7, users, small), 0.1, 0.2, 0)
        b = protocol(make(20, 7, users, wide), 0.1, 0.2, 0)
        assert [positions(p) for p in (a.train, a.valid, a.test)] == [positions(p) for p in (b.train, b.valid, b.test)]


@pytest.mark.parametrize("name", sorted(NEEDS_TIMES))
def test_cutting_by_time_without_timestamps_says_how_to_name_the_column(name):
    ratings = make(3, 3, [0, 1, 2, 0])
    with pytest.raises(MissingTimestamps, match=r"no timestamps.*time=") as caught:
        split_by(name, ratings, 0.1, 0.1, 0)
    assert isinstance(caught.value, mfbench.MfbenchError)
    for other in set(PROTOCOLS) - NEEDS_TIMES:
        assert isinstance(split_by(other, ratings, 0.1, 0.1, 0), Split)


def test_fractions_are_checked_and_names_listed():
    ratings = make(3, 3, [0, 1, 2, 0], [1, 2, 3, 4])
    for protocol in (splits.per_user_split, splits.temporal_split):
        with pytest.raises(ValueError, match="sum below 1"):
            protocol(ratings, 0.5, 0.5, 0)
    with pytest.raises(mfbench.MfbenchError, match="Did you mean 'per_user'"):
        split_by("per_usr", ratings, 0.1, 0.1, 0)
    assert (
        split_by("leave-last-out", ratings, 0.1, 0.1, 0).fingerprint()
        == splits.leave_last_out_split(ratings, 0, 0, 0).fingerprint()
    )
    assert set(DESCRIPTIONS) == set(PROTOCOLS) and all(DESCRIPTIONS.values())


def test_a_user_without_ratings_and_an_empty_set_are_fine():
    empty = Ratings.from_arrays([], [], [], 2, 2, times=[])
    for protocol in PROTOCOLS.values():
        split = protocol(empty, 0.1, 0.1, 0)
        assert len(split.train) == len(split.valid) == len(split.test) == 0
    sparse = make(10, 4, [9, 9, 9, 0], [5, 1, 3, 2])  # users 1..8 have none
    split = splits.leave_last_out_split(sparse, 0.1, 0.1, 0)
    assert (positions(split.train), positions(split.valid), positions(split.test)) == ([1, 3], [2], [0])


REAL = Path(__file__).parents[1].parent / "shared/data/ml-latest-small/ratings.csv"


@pytest.mark.skipif(not REAL.is_file(), reason="../shared/data/ml-latest-small is absent")
def test_real_ratings_cut_in_time():
    ratings = MovieLens(path=str(REAL)).load(0)
    timed = splits.temporal_split(ratings, 0.1, 0.1, 0)
    assert int(timed.train.times.max()) <= int(timed.valid.times.min()) <= int(timed.valid.times.max())
    assert int(timed.valid.times.max()) <= int(timed.test.times.min())
    last = splits.leave_last_out_split(ratings, 0.1, 0.1, 0)
    assert len(last.test) == len(last.valid) == ratings.n_users  # every ml-latest-small user rated 20 or more
    latest_train = np.zeros(ratings.n_users, dtype=np.int64)
    np.maximum.at(latest_train, last.train.users.numpy(), last.train.times.numpy())
    by_user = np.argsort(last.test.users.numpy())
    assert (latest_train <= last.valid.times.numpy()[np.argsort(last.valid.users.numpy())]).all()
    assert (last.valid.times.numpy()[np.argsort(last.valid.users.numpy())] <= last.test.times.numpy()[by_user]).all()
