"""Quality: RMSE and MAE of a model's predictions, computed the same way for every strategy."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .ratings import Ratings

EVAL_BATCH = 1 << 16


@torch.no_grad()
def summed_error(
    model: nn.Module, ratings: Ratings, per_error: Callable[[torch.Tensor], torch.Tensor], batch_size: int = EVAL_BATCH
) -> float:
    """``per_error(prediction - rating)`` summed over ``ratings`` in batches (on the ratings' device), in
    float64, with the model in eval mode (its mode restored); nan for no ratings."""
    if len(ratings) == 0:
        return math.nan
    was_training = model.training
    model.eval()
    try:
        total = torch.zeros((), dtype=torch.float64, device=ratings.device)
        for start in range(0, len(ratings), batch_size):
            stop = start + batch_size
            prediction = model(ratings.users[start:stop], ratings.items[start:stop])
            total += per_error(prediction.double() - ratings.values[start:stop].double()).sum()
        return float(total)
    finally:
        model.train(was_training)


def rmse(model: nn.Module, ratings: Ratings, batch_size: int = EVAL_BATCH) -> float:
    """Root mean squared error of ``model`` on ``ratings`` (on the ratings' device), in float64."""
    return math.sqrt(summed_error(model, ratings, lambda e: e * e, batch_size) / max(len(ratings), 1))


def mae(model: nn.Module, ratings: Ratings, batch_size: int = EVAL_BATCH) -> float:
    """Mean absolute error of ``model`` on ``ratings``, in float64."""
    return summed_error(model, ratings, torch.abs, batch_size) / max(len(ratings), 1)
