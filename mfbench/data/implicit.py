"""Implicit feedback from explicit ratings: which (user, item) pairs count as a positive interaction.

Ranking metrics and implicit-feedback models (ALS on confidences, BPR) see only "this user chose this
item", a 1, never how many stars. A ratings data set becomes such data by keeping the pairs rated at
least a threshold (4 of 5 stars, say: a low rating is an interaction the user regretted, not a
preference) or, with no threshold, every pair rated at all. Timestamps are kept, so the temporal
split protocols work on the result as on the ratings.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import MfbenchError
from .ratings import Ratings


def _positives(ratings: Ratings, threshold: float | None) -> torch.Tensor | None:
    """A mask of the ratings at or above ``threshold`` (None: every rating counts)."""
    if threshold is None:
        return None
    if not math.isfinite(threshold):
        raise MfbenchError(f"the implicit-feedback threshold must be a finite number, got {threshold}")
    return ratings.values >= threshold


def as_implicit(ratings: Ratings, threshold: float | None) -> Ratings:
    """The positive interactions of ``ratings``, each with value 1.0, in their original order, timestamps kept.

    :param threshold: a rating at or above it is a positive; below it the pair is dropped.
        None: every rated pair is a positive.
    :raises MfbenchError: when no positive is left (no ratings at all, or none reaching ``threshold``).
    """
    keep = _positives(ratings, threshold)
    kept = ratings if keep is None else ratings.subset(torch.nonzero(keep).flatten())
    if len(kept) == 0:
        raise MfbenchError(_nothing_left(ratings, threshold))
    values = torch.ones(len(kept), dtype=torch.float32, device=kept.device)
    return Ratings(kept.users, kept.items, values, kept.n_users, kept.n_items, kept.times)


def implicit_counts(ratings: Ratings, threshold: float | None) -> dict[str, Any]:
    """What :func:`as_implicit` keeps, for a dataset's ``facts``: the threshold, the positives kept and
    the ratings dropped (below the threshold)."""
    keep = _positives(ratings, threshold)
    positives = len(ratings) if keep is None else int(keep.sum())
    return {"implicit_threshold": threshold, "positives": positives, "dropped": len(ratings) - positives}


def _nothing_left(ratings: Ratings, threshold: float | None) -> str:
    if len(ratings) == 0:
        return "no ratings to turn into implicit feedback: the data set is empty"
    low, high = float(ratings.values.min()), float(ratings.values.max())
    return (
        f"no rating reaches the implicit-feedback threshold {threshold:g}: the {len(ratings):,} ratings range from "
        f"{low:g} to {high:g}; choose a threshold at most {high:g}, or none to count every rated pair"
    )
