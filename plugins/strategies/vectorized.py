"""Minibatch SGD with the gradient written by hand: no autograd, no optimizer, no sparse tensors.

Per batch: gather the rows with ``index_select``, form the error, and
scatter-add the SGD steps with ``index_add_`` straight into the model's own
embedding weights. It computes the same steps as ``minibatch`` with
``optimizer=sgd`` (same shuffle, same batches, same loss scaling: the batch
loss is the *sum* of the per-rating objective ``(pred - r)**2 + reg *
(||p_u||^2 + ||q_i||^2 [+ b_u^2 + b_i^2])``, so ``lr`` is a per-rating step),
only without building a graph, sparse gradient tensors and an optimizer step
over them.

For a rating with error ``e = pred - r`` the gradient is ``2 * (e * q_i + reg * p_u)``
for ``p_u``, ``2 * (e * p_u + reg * q_i)`` for ``q_i`` and ``2 * (e + reg * b)``
for a bias; all of a batch's terms are formed from the values before the batch's
step. A row that occurs several times in the batch receives the sum of its terms
divided by its expected count in a batch when that exceeds 1 (``row_step=expected``,
the default), by its count in this batch (``mean``), or not divided (``sum``): the
plain sum moves a popular row by about count x lr and diverges on real data at
steps per-rating SGD takes safely (see ``batching.ExpectedCounts``).

The step itself is ``plugins.common.sgd.sgd_batch``, shared with ``sharded`` and
``hogwild``; why it is written the way it is, measured, is in ``results/README.md``
("vectorized").
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import mfbench
from mfbench import find_tables, layout_problem
from mfbench.plugins.common.batching import ROW_STEPS, batch_slices, row_weights, shuffled
from mfbench.plugins.common.sgd import SCHEDULE_CONSTRAINTS, SCHEDULE_PARAMS, SCHEDULE_SPACE, epoch_lr, sgd_batch


def row_counts(row_step: str, train: mfbench.Ratings, batch_size: int, dtype: torch.dtype) -> tuple[Any, Any] | None:
    """What the user and the item row steps are divided by under ``row_step``; None for ``sum``."""
    if row_step == "sum":
        return None
    return (
        row_weights(row_step, train.users, train.n_users, batch_size, dtype),
        row_weights(row_step, train.items, train.n_items, batch_size, dtype),
    )


class Vectorized(mfbench.Strategy):
    """Minibatch SGD by hand: index_select the rows, index_add_ the steps, no autograd.

    Parameters: ``batch_size`` (ratings per step), ``lr`` (per-rating step
    size), ``reg`` (L2 per rating on the rows used), ``row_step`` (what a row's
    summed step in a batch is divided by: ``expected``, its expected count per
    batch when above 1; ``mean``, its count in the batch; ``sum``, nothing). The same steps as
    ``minibatch`` with ``optimizer=sgd`` and the same params.

    Each epoch reshuffles the training ratings (``mfbench.epoch_permutation``
    of the seed and the epoch); the reshuffle is part of the epoch's work and
    is inside the timed epoch.
    """

    name = "vectorized"
    params = {"batch_size": 1024, "lr": 0.01, "reg": 0.05, "row_step": "expected", **SCHEDULE_PARAMS}
    constraints = {
        "batch_size": ">= 1",
        "lr": "positive",
        "reg": "non-negative",
        "row_step": ROW_STEPS,
        **SCHEDULE_CONSTRAINTS,
    }
    exact = False
    #: Bit for bit on CPU; on CUDA ``index_add_`` uses atomics, so two runs agree
    #: only to float rounding.
    deterministic = True
    #: What mfbench tune searches (validation RMSE decides).
    search_space = {
        "lr": mfbench.LogUniform(1e-4, 0.3),
        "reg": mfbench.LogUniform(1e-4, 0.3),
        "batch_size": mfbench.IntRange(256, 65536, log=True),
        **SCHEDULE_SPACE,
    }

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.counts: tuple[Any, Any] | None = None

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        return layout_problem(model, self.name)

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        tables = find_tables(model, self.name).weights()
        # Detached views share storage with the parameters: the steps land in the model itself.
        self.tables = {name: weight.detach() for name, weight in tables.items()}
        self.biased = "user_bias" in tables
        dtype = self.tables["user_factors"].dtype
        targets = train.values.to(dtype)
        if self.biased:
            # The global mean is a constant of the model: fold it into the targets once.
            targets = targets - model.global_mean.detach().to(dtype)
        self.users, self.items, self.targets = train.users, train.items, targets
        self.seed = seed
        self.counts = row_counts(self.params["row_step"], train, self.params["batch_size"], dtype)

    @torch.no_grad()
    def run_epoch(self, epoch: int) -> float:
        """One reshuffle and one SGD step per batch; returns the epoch's mean squared error.

        Each batch's error is measured before its own step (a running training MSE).
        """
        users, items, targets = shuffled(self.users, self.items, self.targets, self.seed, epoch)
        P, Q = self.tables["user_factors"], self.tables["item_factors"]
        step = -2.0 * epoch_lr(self.params["lr"], self.params["lr_decay"], epoch)
        decay = step * self.params["reg"]  # the reg part of a step is decay * row
        squared = torch.zeros((), dtype=targets.dtype, device=targets.device)
        # 1-D views of the bias tables: gathering and scattering (n, 1) tables costs several times more.
        biases = (self.tables["user_bias"].view(-1), self.tables["item_bias"].view(-1)) if self.biased else None
        for part in batch_slices(len(targets), self.params["batch_size"]):
            squared += sgd_batch(P, Q, biases, users[part], items[part], targets[part], step, decay, self.counts)
        return float(squared) / max(len(targets), 1)

    def teardown(self) -> None:
        self.__dict__.pop("tables", None)
        self.counts = None


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(Vectorized)
