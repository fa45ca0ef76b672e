"""Split protocols: the ways a data set's ratings are cut into train, validation and test.

How the held-out ratings are chosen decides what a score means. A random cut (``random``) asks
"how well are missing entries filled in?"; a cut per user (``per_user``) makes every active user
count in the test set, not just the heavy raters; a cut in time (``temporal``, ``leave_last_out``)
asks "how well is the future predicted from the past?", the question a deployed recommender
answers, and the one a random cut flatters by letting a model train on ratings made after the
ones it is tested on.

Every protocol is a function ``(ratings, valid_fraction, test_fraction, seed) -> Split``, the same
arguments giving the same split everywhere. Each part keeps the ratings in their original order
(ascending positions), with their timestamps. Everything is done with whole-array sorts and
gathers, never a loop over users or ratings: 25M ratings split in seconds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..errors import MfbenchError, unknown_name
from .ratings import Ratings, Split

#: The signature every protocol has: ``(ratings, valid_fraction, test_fraction, seed) -> Split``.
SplitFunction = Callable[[Ratings, float, float, int], Split]

#: A user needs at least this many ratings to give any to validation or test under ``per_user`` and
#: ``leave_last_out``: with fewer, one held out would leave too little to learn that user from.
MIN_HELD_OUT_USER = 3


class MissingTimestamps(MfbenchError):
    """A protocol that cuts by time was asked to split ratings that carry no timestamps."""


def check_fractions(valid_fraction: float, test_fraction: float) -> None:
    """Each fraction in [0, 1) and their sum below 1 (the rule ``Ratings.split_three`` applies)."""
    if not (0.0 <= test_fraction < 1.0 and 0.0 <= valid_fraction < 1.0 and test_fraction + valid_fraction < 1.0):
        raise ValueError(
            f"test and validation fractions must be in [0, 1) and sum below 1, got {test_fraction} and {valid_fraction}"
        )


def _times(ratings: Ratings, protocol: str) -> np.ndarray:
    if ratings.times is None:
        raise MissingTimestamps(
            f"the {protocol} split cuts by time, and these ratings have no timestamps (their file has no timestamp "
            f"column, or the dataset makes none). For a file dataset, name the column that holds them with time= "
            f"(file[path=...,time=when], or a 0-based position such as time=3); a header column named 'timestamp' "
            f"(or RecBole's 'timestamp:float') is found without it. Otherwise choose a split that does not cut by "
            f"time: random or per-user"
        )
    return ratings.times.detach().cpu().numpy()


def _assemble(ratings: Ratings, part: np.ndarray) -> Split:
    """The split where ``part[k]`` is 0 (train), 1 (validation) or 2 (test) for rating ``k``."""
    sides = []
    for code in (0, 1, 2):
        positions = torch.from_numpy(np.flatnonzero(part == code)).to(ratings.device)
        sides.append(ratings.subset(positions))
    return Split(*sides)


def _sorted_order(key: np.ndarray) -> np.ndarray:
    """Positions that sort ``key``, equal keys in position order (torch's stable sort: 3-4x numpy's on int64)."""
    return torch.sort(torch.from_numpy(np.ascontiguousarray(key)), stable=True)[1].numpy()


def _user_major(users: np.ndarray, within: np.ndarray, n_users: int) -> np.ndarray:
    """Positions ordered by user, and within a user by ``within`` (int64), equal ones in position order."""
    if len(users) == 0:
        return np.empty(0, dtype=np.int64)
    low, high = int(within.min()), int(within.max())
    span = high - low + 1
    if n_users * span < 2**62:  # one sort of a combined key
        return _sorted_order(users * np.int64(span) + (within - np.int64(low)))
    order = _sorted_order(within)
    return order[_sorted_order(users[order])]


def _ranks(counts: np.ndarray) -> np.ndarray:
    """Each rating's rank within its user, for ratings ordered by user (``counts`` of each user)."""
    starts = np.cumsum(counts) - counts
    return np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)


def random_split(ratings: Ratings, valid_fraction: float, test_fraction: float, seed: int) -> Split:
    """Ratings drawn uniformly at random: exactly :meth:`Ratings.split_three` (the default protocol)."""
    return ratings.split_three(valid_fraction, test_fraction, seed)


def per_user_split(ratings: Ratings, valid_fraction: float, test_fraction: float, seed: int) -> Split:
    """Each user's ratings cut in proportion, drawn at random from ``seed``.

    A user with ``n`` ratings gives ``round(n * test_fraction)`` of them to test and
    ``round(n * valid_fraction)`` to validation (rounded half to even, as ``round`` does), and always
    keeps at least one for training: when the two would take them all, validation gets fewer, then test.
    Users with fewer than :data:`MIN_HELD_OUT_USER` (3) ratings keep all of them in train.
    """
    check_fractions(valid_fraction, test_fraction)
    n = len(ratings)
    users = ratings.users.detach().cpu().numpy()
    draw = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))).numpy()
    grouped = _user_major(users, draw, ratings.n_users)  # each user's ratings in a random order
    counts = np.bincount(users, minlength=ratings.n_users)
    n_test = np.rint(counts * test_fraction).astype(np.int64)
    n_valid = np.rint(counts * valid_fraction).astype(np.int64)
    small = counts < MIN_HELD_OUT_USER
    n_test[small] = 0
    n_valid[small] = 0
    np.minimum(n_test, np.maximum(counts - 1, 0), out=n_test)
    np.minimum(n_valid, np.maximum(counts - 1 - n_test, 0), out=n_valid)
    rank = _ranks(counts)
    held = (rank < np.repeat(n_test + n_valid, counts)).view(np.int8)  # 1: validation or test
    held += (rank < np.repeat(n_test, counts)).view(np.int8)  # 2: test
    part = np.empty(n, dtype=np.int8)
    part[grouped] = held
    return _assemble(ratings, part)


def temporal_split(ratings: Ratings, valid_fraction: float, test_fraction: float, seed: int) -> Split:
    """One cut in time for everyone: the latest ``test_fraction`` of all ratings are the test set, the
    ``valid_fraction`` just before them the validation set, everything earlier the training set.

    The counts are rounded as for ``random`` (``round(n * fraction)``). Ratings are ordered by time, and
    equal times by position (a stable sort), so when one timestamp straddles a cut its earlier rows fall
    on the earlier side: no training rating is later than any validation or test rating, and no
    validation rating later than any test rating. ``seed`` is not used: the cut is the data's own.
    """
    check_fractions(valid_fraction, test_fraction)
    times = _times(ratings, "temporal")
    n = len(times)
    n_test = int(round(test_fraction * n))
    n_valid = int(round(valid_fraction * n))
    order = _sorted_order(times)
    part = np.zeros(n, dtype=np.int8)
    part[order[n - n_test - n_valid : n - n_test]] = 1
    part[order[n - n_test :]] = 2
    return _assemble(ratings, part)


def leave_last_out_split(ratings: Ratings, valid_fraction: float, test_fraction: float, seed: int) -> Split:
    """Per user, the last rating goes to test and the one before it to validation; the rest is training.

    "Last" is by time, equal times broken by position (the later row counts as later). Users with fewer
    than :data:`MIN_HELD_OUT_USER` (3) ratings keep all of them in train. The fractions are ignored
    (each active user holds out exactly one rating for each) and so is ``seed``: the cut is the data's own.
    """
    times = _times(ratings, "leave_last_out")
    users = ratings.users.detach().cpu().numpy()
    grouped = _user_major(users, times, ratings.n_users)
    counts = np.bincount(users, minlength=ratings.n_users)
    ends = np.cumsum(counts)[counts >= MIN_HELD_OUT_USER]  # one past each active user's last rating in ``grouped``
    part = np.zeros(len(users), dtype=np.int8)
    part[grouped[ends - 1]] = 2
    part[grouped[ends - 2]] = 1
    return _assemble(ratings, part)


#: Every protocol by name (what a ``--split`` option would take).
PROTOCOLS: dict[str, SplitFunction] = {
    "random": random_split,
    "per_user": per_user_split,
    "temporal": temporal_split,
    "leave_last_out": leave_last_out_split,
}

#: One line each, for listings.
DESCRIPTIONS: dict[str, str] = {
    "random": "ratings drawn uniformly at random (the fractions of all ratings)",
    "per_user": "each user's ratings cut in the given fractions at random; users with under 3 ratings stay in train",
    "temporal": "one cut in time: the latest ratings are test, the ones before them validation (needs timestamps)",
    "leave_last_out": "each user's last rating is test, the one before validation; fractions ignored (needs timestamps)",
}

#: The protocols that need ratings with timestamps.
NEEDS_TIMES = frozenset({"temporal", "leave_last_out"})


def split_by(protocol: str, ratings: Ratings, valid_fraction: float, test_fraction: float, seed: int) -> Split:
    """Split with the protocol named ``protocol`` (``per_user`` or ``per-user``: either spelling); an unknown
    name is an MfbenchError listing the known ones."""
    name = protocol.replace("-", "_")
    if name not in PROTOCOLS:
        raise MfbenchError(unknown_name("split protocol", protocol, PROTOCOLS))
    return PROTOCOLS[name](ratings, valid_fraction, test_fraction, seed)
