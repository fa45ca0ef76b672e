"""The built-in split protocols as parts: ``--split random`` (the default), ``per-user``, ``temporal``,
``leave-last-out``. What each does, and its rules for ties and for users with few ratings, is in
``mfbench.data.splits``, where the functions live."""

from __future__ import annotations

import mfbench
from mfbench.data import splits


class Random(mfbench.SplitProtocol):
    """Ratings drawn uniformly at random, in the run's fractions (the default)."""

    name = "random"

    def split(self, ratings, valid_fraction, test_fraction, seed):
        return splits.random_split(ratings, valid_fraction, test_fraction, seed)


class PerUser(mfbench.SplitProtocol):
    """Each user's ratings cut in the run's fractions at random; users with under 3 ratings stay in train."""

    name = "per-user"

    def split(self, ratings, valid_fraction, test_fraction, seed):
        return splits.per_user_split(ratings, valid_fraction, test_fraction, seed)


class Temporal(mfbench.SplitProtocol):
    """One cut in time: the latest ratings are test, the ones just before them validation (timestamps)."""

    name = "temporal"
    needs_times = True

    def split(self, ratings, valid_fraction, test_fraction, seed):
        return splits.temporal_split(ratings, valid_fraction, test_fraction, seed)


class LeaveLastOut(mfbench.SplitProtocol):
    """Per user, the last interaction is test and the one before validation; fractions unused (timestamps)."""

    name = "leave-last-out"
    needs_times = True

    def split(self, ratings, valid_fraction, test_fraction, seed):
        return splits.leave_last_out_split(ratings, valid_fraction, test_fraction, seed)


@mfbench.hookimpl
def mfbench_register_splits(register):
    for protocol in (Random, PerUser, Temporal, LeaveLastOut):
        register(protocol)
