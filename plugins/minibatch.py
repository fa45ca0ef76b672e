"""Minibatch training through autograd: the model itself, a torch optimizer, shuffled batches.

This is what most PyTorch MF code does: sparse embeddings, a batch of ratings
through ``model(users, items)``, ``loss.backward()`` and ``optimizer.step()``.
It trains any model whose forward is differentiable, not just known layouts.

The loss of a batch is the **sum** over its ratings of the per-rating objective
every mfbench strategy shares, ``(pred - r)**2 + reg * (||p_u||^2 + ||q_i||^2
[+ b_u^2 + b_i^2])``. A sum rather than a mean keeps ``lr`` a per-rating step
size, as in the reference loop: with ``batch_size=1`` and ``reg=0`` one SGD
step is exactly the reference's step, and a good ``lr`` does not move when the
batch size does (a mean would need ``lr`` scaled with the batch). Each row still
takes one step per batch built from stale values, so very large batches on
small or dense data need a smaller ``lr``.

``reg`` is a loss term on the embedding rows the batch looked up, one term per
rating (a row looked up three times is penalized three times), not optimizer
weight decay: SparseAdam refuses weight decay, and a decay on the whole table
would shrink rows the batch never touched. The rows are caught with forward
hooks on the model's ``nn.Embedding`` modules, so any embedding model gets the
same convention; other parameters (a dense layer, say) are not regularized.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

import mfbench

#: Optimizers by parameter value: each takes the parameters and ``lr``.
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "sparseadam": torch.optim.SparseAdam,
}


def check_batch_params(part: str, batch_size: int, lr: float, reg: float) -> None:
    """Refuse values no training run could use, saying which and why."""
    if batch_size <= 0:
        raise mfbench.MfbenchError(f"{part}: batch_size must be a positive number of ratings, got {batch_size}")
    if not lr > 0:
        raise mfbench.MfbenchError(f"{part}: lr must be positive, got {lr}")
    if not reg >= 0:
        raise mfbench.MfbenchError(f"{part}: reg must be >= 0 (0 turns it off), got {reg}")


def shuffled(
    users: torch.Tensor, items: torch.Tensor, values: torch.Tensor, seed: int, epoch: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The training ratings in ``epoch``'s order, on their own device.

    The order is :func:`mfbench.epoch_permutation`, the one the exact strategies
    use, so a batch of one rating visits ratings exactly as the reference does,
    and two minibatch strategies with the same seed see the same batches.
    """
    order = mfbench.epoch_permutation(len(values), seed, epoch).to(values.device)
    return users.index_select(0, order), items.index_select(0, order), values.index_select(0, order)


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive slices of at most ``batch_size`` positions covering ``range(n)``."""
    return [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype the model computes in (its first floating parameter's)."""
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return torch.get_default_dtype()


class Minibatch(mfbench.Strategy):
    """Shuffled minibatches through autograd with torch's SGD, Adagrad or SparseAdam.

    Parameters: ``optimizer`` (sgd, adagrad, sparseadam), ``batch_size``
    (ratings per step), ``lr`` (a per-rating step size for sgd: the batch loss
    is a sum, see the module docstring; adagrad and sparseadam scale their steps
    themselves and want their own lr: on the contract's planted data about 0.3
    for adagrad and 0.03 for sparseadam), ``reg`` (L2 on the looked-up rows, per
    rating).

    Each epoch reshuffles the training ratings (``mfbench.epoch_permutation``
    of the seed and the epoch) and then takes one optimizer step per batch. The
    reshuffle is part of the epoch's work, so it is inside the timed epoch: a
    strategy that skipped it would be timed on less work.

    The defaults (batch 4096, lr 0.01, reg 0.01) are shared with ``vectorized``,
    so the two compare step for step. On the contract's planted data (100k
    ratings) they reach held-out RMSE 1.15x the noise at epoch 21 (biased, k=5)
    and 26 (dot, k=6). Bigger batches run faster through autograd (~2M vs ~1M
    updates/s at 131072 on 1M ratings) but at this lr leave the dot model above
    the target; a higher lr makes SGD's noise floor miss it.
    """

    name = "minibatch"
    params = {"optimizer": "sgd", "batch_size": 4096, "lr": 0.01, "reg": 0.01}
    exact = False
    #: Bit for bit on CPU; on CUDA the sparse updates are scatter-adds with atomics,
    #: so two runs agree only to float rounding.
    deterministic = True
    #: What mfbench tune searches (validation RMSE decides).
    search_space = {"lr": mfbench.LogUniform(1e-4, 0.3), "reg": mfbench.LogUniform(1e-4, 0.3), "batch_size": mfbench.IntRange(256, 65536, log=True)}

    def __init__(self, **params) -> None:
        super().__init__(**params)
        name = self.params["optimizer"]
        if name not in OPTIMIZERS:
            raise mfbench.MfbenchError(
                f"minibatch: unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        check_batch_params("minibatch", self.params["batch_size"], self.params["lr"], self.params["reg"])
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._looked_up: list[torch.Tensor] = []

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
        if self.params["reg"] > 0:
            for module in model.modules():
                if isinstance(module, nn.Embedding):
                    self._hooks.append(module.register_forward_hook(self._catch_lookup))
        model.train()

    def _catch_lookup(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self._looked_up.append(output)

    def run_epoch(self, epoch: int) -> float:
        """One reshuffle and one optimizer step per batch; returns the epoch's mean squared error.

        Each batch's error is measured before its own step, so the figure is a
        running training MSE, not the error of the model at the end of the epoch.
        """
        users, items, values = shuffled(self.users, self.items, self.values, self.seed, epoch)
        model, optimizer, reg, looked_up = self.model, self.optimizer, self.params["reg"], self._looked_up
        squared = torch.zeros((), dtype=values.dtype, device=values.device)
        for part in batch_slices(len(values), self.params["batch_size"]):
            optimizer.zero_grad(set_to_none=True)
            looked_up.clear()
            errors = model(users[part], items[part]) - values[part]
            data_term = errors.square().sum()
            loss = data_term
            if reg > 0:
                loss = loss + reg * sum(rows.square().sum() for rows in looked_up)
            loss.backward()
            optimizer.step()
            squared += data_term.detach()
        looked_up.clear()
        return float(squared) / max(len(values), 1)

    def teardown(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()
        self._looked_up.clear()
        self.__dict__.pop("optimizer", None)
        self.__dict__.pop("model", None)


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(Minibatch)
