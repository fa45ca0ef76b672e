"""Evaluating a run's metrics after an epoch: the shared ranking pass, then the others one by one.

RMSE is not evaluated here: every epoch records ``train_rmse``, ``valid_rmse`` and ``test_rmse``
(``mfbench.run.runner.evaluate``) whether or not a metric names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..data.ratings import Ratings
from .ranking import evaluate_ranking

#: Metrics every epoch records anyway, under their own keys.
ALWAYS = ("rmse",)


def metric_values(metrics: Sequence[Any], model: nn.Module, heldout: Ratings, seen: Sequence[Ratings]) -> dict[str, float]:
    """Each metric's value on ``heldout`` by its full label (``ndcg[k=10]``); ``metrics`` are resolved
    choices of registered metrics; ``seen``: the ratings the model trained or decided on, never ranked.

    Ranking metrics that the shared pass computes (a ``measure``) are ranked once, together.
    """
    values: dict[str, float] = {}
    shared = [m for m in metrics if m.entry.cls.measure is not None]
    if shared:
        requests = [(m.entry.cls.measure, int(m.params["k"])) for m in shared]
        result = evaluate_ranking(model, heldout, seen, requests)
        for metric, (measure, k) in zip(shared, requests, strict=True):
            values[metric.full_label] = result.metrics[f"{measure}@{k}"]
    for metric in metrics:
        if metric.entry.cls.measure is None and metric.name not in ALWAYS:
            values[metric.full_label] = float(metric.make().compute(model, heldout, seen))
    return values


def epoch_metrics(metrics: Sequence[Any], model: nn.Module, train: Ratings, valid: Ratings, test: Ratings) -> dict[str, Any]:
    """``{"valid": {...}, "test": {...}}``: validation judged against training, test against both."""
    return {
        "valid": metric_values(metrics, model, valid, [train]),
        "test": metric_values(metrics, model, test, [train, valid]),
    }


class PopularityScores(nn.Module):
    """Scores every item by its number of training interactions, the same for every user, in the ``dot``
    layout (one factor: 1 for every user, the item's count for the item) so the ranking pass reads it."""

    def __init__(self, train: Ratings) -> None:
        super().__init__()
        counts = torch.bincount(train.items.cpu(), minlength=train.n_items).float().unsqueeze(1)
        self.user_factors = nn.Embedding(train.n_users, 1)
        self.item_factors = nn.Embedding(train.n_items, 1)
        with torch.no_grad():
            self.user_factors.weight.fill_(1.0)
            self.item_factors.weight.copy_(counts)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.user_factors(users) * self.item_factors(items)).sum(1)


def popularity_baseline(metrics: list, train: Ratings, valid: Ratings, test: Ratings) -> dict[str, dict[str, float]]:
    """The ranking metrics of recommending the most popular items the user has not seen: the floor every
    ranking strategy must clear (``{"valid": {"ndcg[k=10]": ...}, "test": {...}}``, keyed as epochs key them)."""
    return epoch_metrics(metrics, PopularityScores(train), train, valid, test)
