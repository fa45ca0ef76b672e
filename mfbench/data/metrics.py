"""Quality: RMSE of a model's predictions, computed the same way for every strategy."""

from __future__ import annotations

import math

import torch
from torch import nn

from .ratings import Ratings

EVAL_BATCH = 1 << 16


@torch.no_grad()
def rmse(model: nn.Module, ratings: Ratings, batch_size: int = EVAL_BATCH) -> float:
    """Root mean squared error of ``model`` on ``ratings`` (on the ratings' device), in float64."""
    if len(ratings) == 0:
        return math.nan
    was_training = model.training
    model.eval()
    try:
        total = torch.zeros((), dtype=torch.float64, device=ratings.device)
        for start in range(0, len(ratings), batch_size):
            stop = start + batch_size
            prediction = model(ratings.users[start:stop], ratings.items[start:stop])
            error = prediction.double() - ratings.values[start:stop].double()
            total += (error * error).sum()
        return math.sqrt(float(total) / len(ratings))
    finally:
        model.train(was_training)


@torch.no_grad()
def mae(model: nn.Module, ratings: Ratings, batch_size: int = EVAL_BATCH) -> float:
    """Mean absolute error of ``model`` on ``ratings``, in float64."""
    if len(ratings) == 0:
        return math.nan
    was_training = model.training
    model.eval()
    try:
        total = torch.zeros((), dtype=torch.float64, device=ratings.device)
        for start in range(0, len(ratings), batch_size):
            stop = start + batch_size
            prediction = model(ratings.users[start:stop], ratings.items[start:stop])
            total += (prediction.double() - ratings.values[start:stop].double()).abs().sum()
        return float(total) / len(ratings)
    finally:
        model.train(was_training)
