"""Minibatch training through autograd: the model itself, a torch optimizer, shuffled batches.

This is what most PyTorch MF code does: sparse embeddings, a batch of ratings
through ``model(users, items)``, ``loss.backward()`` and ``optimizer.step()``.
It trains any model whose forward is differentiable, not just known layouts.

The loss of a batch is the **sum** over its ratings of the per-rating objective
every mfbench strategy shares, ``(pred - r)**2 + reg * (||p_u||^2 + ||q_i||^2
[+ b_u^2 + b_i^2])``. A sum rather than a mean keeps ``lr`` a per-rating step
size, as in the reference loop: with ``batch_size=1`` and ``reg=0`` one SGD
step is exactly the reference's step, and a good ``lr`` does not move when the
batch size does (a mean over the batch would need ``lr`` scaled with the batch).

A row that occurs ``c`` times in a batch would then take ``c`` summed steps at
once, from stale values: on real data, where a popular user or item occurs dozens
of times in a batch of thousands, that diverges at an ``lr`` per-rating SGD takes
safely. So by default (``row_step=expected``) each row's gradient is divided by
its expected count in a batch (its share of the training ratings times the batch
size) when that is above 1: a popular row takes about the mean of its ratings'
steps, a rare one its per-rating steps (``batching.ExpectedCounts``). ``row_step=mean``
divides by the row's actual count in the batch (``batching.RowCounts``); ``row_step=sum``
keeps the plain gradient of the summed loss.

``reg`` is a loss term on the embedding rows the batch looked up, one term per
rating (a row looked up three times is penalized three times), not optimizer
weight decay: SparseAdam refuses weight decay, and a decay on the whole table
would shrink rows the batch never touched. The rows are caught with forward
hooks on the model's ``nn.Embedding`` modules, so any embedding model gets the
same convention; other parameters (a dense layer, say) are not regularized.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

import mfbench
from mfbench.plugins.common.batching import (
    OPTIMIZERS,
    ROW_STEPS,
    Lookups,
    RowStepHooks,
    batch_loss,
    batch_slices,
    model_dtype,
    shuffled,
)
from mfbench.plugins.common.sgd import SCHEDULE_CONSTRAINTS, SCHEDULE_PARAMS, SCHEDULE_SPACE, epoch_lr, set_optimizer_lr


class Minibatch(mfbench.Strategy):
    """Shuffled minibatches through autograd with torch's SGD, Adagrad or SparseAdam.

    Parameters: ``optimizer`` (sgd, adagrad, sparseadam), ``batch_size``
    (ratings per step), ``lr`` (a per-rating step size for sgd, see the module
    docstring; adagrad and sparseadam scale their steps
    themselves and want their own lr: on small planted data about 0.3 for
    adagrad and 0.03 for sparseadam), ``reg`` (L2 on the looked-up rows, per
    rating), ``row_step`` (``expected``, ``mean`` or ``sum``: how a row's gradients
    from one batch combine, see the module docstring; for every optimizer).

    Each epoch reshuffles the training ratings (``mfbench.epoch_permutation``
    of the seed and the epoch) and then takes one optimizer step per batch. The
    reshuffle is part of the epoch's work, so it is inside the timed epoch: a
    strategy that skipped it would be timed on less work.

    The defaults are shared with ``vectorized`` (and ``ddp``), so they compare
    step for step; they were chosen to hold on several data sets at once, real
    ratings among them (docs/parts.md, "Default step sizes").
    """

    name = "minibatch"
    params = {"optimizer": "sgd", "batch_size": 1024, "lr": 0.01, "reg": 0.05, "row_step": "expected", **SCHEDULE_PARAMS}
    constraints = {
        "optimizer": tuple(OPTIMIZERS),
        "batch_size": ">= 1",
        "lr": "positive",
        "reg": "non-negative",
        "row_step": ROW_STEPS,
        **SCHEDULE_CONSTRAINTS,
    }
    exact = False
    #: Bit for bit on CPU; on CUDA the sparse updates are scatter-adds with atomics,
    #: so two runs agree only to float rounding.
    deterministic = True
    #: What mfbench tune searches (validation RMSE decides): the optimizer too, and the SGD family's
    #: step schedule only in trials that draw plain SGD (adagrad and sparseadam adapt their steps).
    search_space = {
        "optimizer": mfbench.Categorical(tuple(OPTIMIZERS)),
        "lr": mfbench.LogUniform(1e-4, 0.3),
        "reg": mfbench.LogUniform(1e-4, 0.3),
        "batch_size": mfbench.IntRange(256, 65536, log=True),
        **{key: replace(dim, when={"optimizer": "sgd"}) for key, dim in SCHEDULE_SPACE.items()},
    }

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._row_mean: RowStepHooks | None = None
        self._lookups: Lookups | None = None

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            return f"model {type(model).__name__} has no trainable parameters"
        embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
        if self.params["reg"] > 0 and not embeddings:
            return (
                f"reg > 0 regularizes the rows of nn.Embedding lookups, and model {type(model).__name__} "
                f"has none; run it with reg=0"
            )
        if self.params["optimizer"] == "sparseadam":
            sparse = {id(m.weight) for m in embeddings if m.sparse}
            dense = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in sparse]
            if dense:
                return (
                    f"SparseAdam takes only sparse gradients, and model {type(model).__name__} has dense "
                    f"parameters: {', '.join(dense)}; use optimizer=sgd or adagrad"
                )
        return None

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        self.model = model
        self.seed = seed
        self.users, self.items = train.users, train.items
        self.values = train.values.to(model_dtype(model))
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = OPTIMIZERS[self.params["optimizer"]](trainable, lr=self.params["lr"])
        if self.params["row_step"] != "sum":
            self._row_mean = RowStepHooks(model, self.params["row_step"], self.users, self.items, self.params["batch_size"])
        self._lookups = Lookups(model, enabled=self.params["reg"] > 0)
        model.train()

    def run_epoch(self, epoch: int) -> float:
        """One reshuffle and one optimizer step per batch; returns the epoch's mean squared error.

        Each batch's error is measured before its own step, so the figure is a
        running training MSE, not the error of the model at the end of the epoch.
        """
        users, items, values = shuffled(self.users, self.items, self.values, self.seed, epoch)
        model, optimizer, reg, lookups = self.model, self.optimizer, self.params["reg"], self._lookups
        assert lookups is not None, "run_epoch before setup"
        set_optimizer_lr(optimizer, epoch_lr(self.params["lr"], self.params["lr_decay"], epoch))
        squared = torch.zeros((), dtype=values.dtype, device=values.device)
        for part in batch_slices(len(values), self.params["batch_size"]):
            optimizer.zero_grad(set_to_none=True)
            loss, data_term = batch_loss(model, lookups, users[part], items[part], values[part], reg)
            loss.backward()
            optimizer.step()
            squared += data_term.detach()
        lookups.rows.clear()
        return float(squared) / max(len(values), 1)

    def teardown(self) -> None:
        if self._lookups is not None:
            self._lookups.remove()
            self._lookups = None
        if self._row_mean is not None:
            self._row_mean.remove()
            self._row_mean = None
        self.__dict__.pop("optimizer", None)
        self.__dict__.pop("model", None)


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(Minibatch)
