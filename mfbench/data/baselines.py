"""Trivial baselines every quality figure is read against: the global mean, and the global mean plus
user and item biases.

A strategy whose held-out RMSE does not beat the global mean has learned nothing a constant does
not know (on the notebook's uniform random ratings nothing can); a report must say so rather than
crown it. The bias baseline is the "baseline predictor" of Koren (2008) as Surprise's ``BaselineOnly``
fits it by default: alternating least squares, 10 sweeps, item damping 10 and user damping 15, so the
figure matches a well-known implementation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from .ratings import Ratings

#: Surprise's BaselineOnly defaults (bsl_options: method "als", n_epochs 10, reg_i 10, reg_u 15).
SWEEPS = 10
ITEM_DAMPING = 10.0
USER_DAMPING = 15.0
RULE = (
    "global mean: every rating predicted as the training mean; biases: mean + user bias + item bias, "
    f"fitted by {SWEEPS} alternating sweeps with damping {ITEM_DAMPING:g} (items) and {USER_DAMPING:g} (users), "
    "as Surprise's BaselineOnly"
)


def _rmse(predicted: torch.Tensor, ratings: Ratings) -> float:
    if not len(ratings):
        return math.nan
    return float(torch.sqrt(torch.mean((predicted - ratings.values.double()) ** 2)))


def fit_biases(train: Ratings) -> tuple[float, torch.Tensor, torch.Tensor]:
    """(global mean, user biases, item biases) of the damped alternating least-squares baseline."""
    users, items = train.users.cpu(), train.items.cpu()
    values = train.values.cpu().double()
    mean = float(values.mean())
    user_count = torch.bincount(users, minlength=train.n_users).double()
    item_count = torch.bincount(items, minlength=train.n_items).double()
    user_bias = torch.zeros(train.n_users, dtype=torch.float64)
    item_bias = torch.zeros(train.n_items, dtype=torch.float64)
    for _ in range(SWEEPS):
        residual = values - mean - user_bias[users]
        item_bias = torch.bincount(items, weights=residual, minlength=train.n_items) / (item_count + ITEM_DAMPING)
        residual = values - mean - item_bias[items]
        user_bias = torch.bincount(users, weights=residual, minlength=train.n_users) / (user_count + USER_DAMPING)
    return mean, user_bias, item_bias


def baselines(train: Ratings, held_out: Mapping[str, Ratings]) -> dict[str, dict[str, float]]:
    """Each baseline's RMSE on each held-out set (``{"global_mean": {"valid_rmse": ..., ...}, "biases": ...}``).

    Users and items without training ratings get no bias (a bias of 0), as a model would.
    """
    mean, user_bias, item_bias = fit_biases(train)
    found: dict[str, dict[str, float]] = {"global_mean": {}, "biases": {}}
    for name, ratings in held_out.items():
        users, items = ratings.users.cpu(), ratings.items.cpu()
        constant = torch.full((len(ratings),), mean, dtype=torch.float64)
        found["global_mean"][f"{name}_rmse"] = _rmse(constant, ratings)
        found["biases"][f"{name}_rmse"] = _rmse(constant + user_bias[users] + item_bias[items], ratings)
    return found
