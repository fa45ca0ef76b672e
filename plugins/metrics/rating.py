"""Rating-prediction metrics: the error of predicted ratings on the held-out pairs.

RMSE is also what every case records without being asked (``train_rmse``, ``valid_rmse``,
``test_rmse`` of each epoch); registering it as a metric lets ``--target 'rmse<=0.9'`` and
``--metric`` name it like any other.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

import mfbench
from mfbench.data.metrics import mae, rmse


class RMSE(mfbench.Metric):
    """Root mean squared error of the predicted ratings (lower is better)."""

    name = "rmse"
    direction = "lower"

    def compute(self, model: nn.Module, heldout: mfbench.Ratings, seen: Sequence[mfbench.Ratings]) -> float:
        return rmse(model, heldout)


class MAE(mfbench.Metric):
    """Mean absolute error of the predicted ratings (lower is better)."""

    name = "mae"
    direction = "lower"

    def compute(self, model: nn.Module, heldout: mfbench.Ratings, seen: Sequence[mfbench.Ratings]) -> float:
        return mae(model, heldout)


@mfbench.hookimpl
def mfbench_register_metrics(register):
    register(RMSE)
    register(MAE)
