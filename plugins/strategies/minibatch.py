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
steps, a rare one its per-rating steps (``ExpectedCounts``). ``row_step=mean``
divides by the row's actual count in the batch (``RowCounts``); ``row_step=sum``
keeps the plain gradient of the summed loss.

``reg`` is a loss term on the embedding rows the batch looked up, one term per
rating (a row looked up three times is penalized three times), not optimizer
weight decay: SparseAdam refuses weight decay, and a decay on the whole table
would shrink rows the batch never touched. The rows are caught with forward
hooks on the model's ``nn.Embedding`` modules, so any embedding model gets the
same convention; other parameters (a dense layer, say) are not regularized.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

import mfbench

#: Optimizers by parameter value: each takes the parameters and ``lr``.
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "sparseadam": torch.optim.SparseAdam,
}


#: How a row's steps from one batch combine: divided by its "expected" count in a batch, by its
#: actual count ("mean" of its ratings' per-rating steps), or not at all ("sum"). See RowCounts.
ROW_STEPS = ("expected", "mean", "sum")


def check_batch_params(part: str, batch_size: int, lr: float, reg: float, row_step: str = "expected") -> None:
    """Refuse values no training run could use, saying which and why."""
    if row_step not in ROW_STEPS:
        raise mfbench.MfbenchError(f"{part}: row_step must be one of {', '.join(ROW_STEPS)}, got {row_step!r}")
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


class RowCounts:
    """How often each row of a table occurs in the current batch, for ``row_step=mean``.

    A batch step that *sums* its ratings' steps moves a row that occurs ``c`` times in
    the batch by about ``c x lr``: on real data a popular user or item occurs dozens of
    times in a batch of thousands, and the sum diverges at an ``lr`` that per-rating SGD
    takes in its stride. Dividing each row's summed step by its count in the batch makes
    every row take one per-rating-sized step per batch, however popular the row and
    however large the batch: an ``lr`` that is stable for per-rating SGD is stable here.
    The price: a row that occurs twice by chance also takes one step, so on uniform data
    rows advance more slowly per epoch than under per-rating SGD (``ExpectedCounts``
    keeps their pace). The counts live in one zeroed buffer per table; only the rows of
    a batch are touched (scatter, gather, reset), so the cost grows with the batch.
    """

    def __init__(self, n_rows: int, dtype: torch.dtype, device: torch.device | str) -> None:
        self.counts = torch.zeros(n_rows, dtype=dtype, device=device)

    def inverse(self, index: torch.Tensor, reduce: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
        """``1 / count`` of each position's row within ``index`` (a 1-D batch of row indices).

        ``reduce``, when given, sums the counts over the processes that share one batch
        (each holding part of it) before they are read, so every part is weighted by the
        whole batch's counts.
        """
        counts = self.counts
        counts.index_add_(0, index, torch.ones(index.shape, dtype=counts.dtype, device=counts.device))
        if reduce is not None:
            reduce(counts)
        weights = counts.index_select(0, index).reciprocal_()
        if reduce is not None:
            counts.zero_()  # other processes' rows were added too
        else:
            counts.index_fill_(0, index, 0)
        return weights


class RowStepHooks:
    """``row_step=mean`` or ``expected`` for any embedding model trained through autograd.

    A forward hook on every ``nn.Embedding`` scales the gradient reaching each looked-up
    row by ``1 / count`` of that row (its count in the batch, or its expected count: a
    hook on the lookup's output), so what the optimizer receives for a row is combined as
    ``vectorized`` combines it, data and ``reg`` terms alike. Which training index feeds
    which embedding is the model's business, so for ``expected`` the rows' training
    counts are found by one forward pass over the training ratings, counting each
    embedding's lookups. Lookups made without gradients (evaluation) are left alone.
    """

    def __init__(self, model: nn.Module, row_step: str, users: torch.Tensor, items: torch.Tensor, batch_size: int,
                 reduce: Callable[[torch.Tensor], None] | None = None) -> None:
        self.reduce = reduce
        embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
        self.counts: dict[nn.Module, RowCounts | ExpectedCounts] = {}
        if row_step == "expected":
            looked_up = training_lookups(model, embeddings, users, items, batch_size)
            for module in embeddings:
                self.counts[module] = ExpectedCounts(looked_up[module], module.num_embeddings, batch_size,
                                                     module.weight.dtype)
        else:
            for module in embeddings:
                self.counts[module] = RowCounts(module.num_embeddings, module.weight.dtype, module.weight.device)
        self.handles = [module.register_forward_hook(self._scale_gradient) for module in embeddings]

    def _scale_gradient(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if not output.requires_grad:
            return
        index = inputs[0]
        weights = self.counts[module].inverse(index.reshape(-1), self.reduce).view(*index.shape, 1)
        output.register_hook(lambda grad: grad * weights)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        self.counts.clear()


def training_lookups(model: nn.Module, embeddings: list[nn.Module], users: torch.Tensor, items: torch.Tensor,
                     batch_size: int) -> dict[nn.Module, torch.Tensor]:
    """Every row index each embedding looks up when the model predicts all training ratings once."""
    seen: dict[nn.Module, list[torch.Tensor]] = {module: [] for module in embeddings}

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        seen[module].append(inputs[0].reshape(-1))

    handles = [module.register_forward_hook(record) for module in embeddings]
    try:
        with torch.no_grad():
            for part in batch_slices(len(users), max(batch_size, 65536)):
                model(users[part], items[part])
    finally:
        for handle in handles:
            handle.remove()
    empty = users.new_empty(0)
    return {module: torch.cat(found) if found else empty for module, found in seen.items()}


class ExpectedCounts:
    """Each row's *expected* count in a batch, at least 1, for ``row_step=expected`` (the default).

    A row with ``n`` of the ``N`` training ratings occurs about ``n * B / N`` times in a
    batch of ``B``. Dividing its summed step by that (when above 1) gives a popular row
    about the mean of its ratings' steps, as ``RowCounts`` does, while a row that occurs
    about once per batch or less keeps its plain per-rating steps: on data without
    popular rows this is the summed step, and rows keep per-rating SGD's pace per epoch.
    The weights are fixed by the training data, so they cost one gather per batch and
    need no communication between processes that share a batch.
    """

    def __init__(self, index: torch.Tensor, n_rows: int, batch_size: int, dtype: torch.dtype) -> None:
        n = max(len(index), 1)
        expected = torch.bincount(index, minlength=n_rows).to(dtype) * (min(batch_size, n) / n)
        self.weights = expected.clamp_(min=1.0).reciprocal_()

    def inverse(self, index: torch.Tensor, reduce: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
        """``1 / max(1, expected count)`` of each position's row (``reduce`` is not needed: the weights are fixed)."""
        return self.weights.index_select(0, index)


def row_weights(row_step: str, index: torch.Tensor, n_rows: int, batch_size: int,
                dtype: torch.dtype) -> RowCounts | ExpectedCounts | None:
    """The divisor of one table's row steps under ``row_step``; None for ``sum``."""
    if row_step == "expected":
        return ExpectedCounts(index, n_rows, batch_size, dtype)
    if row_step == "mean":
        return RowCounts(n_rows, dtype, index.device)
    return None


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
    ratings among them (README, "Defaults").
    """

    name = "minibatch"
    params = {"optimizer": "sgd", "batch_size": 1024, "lr": 0.01, "reg": 0.05, "row_step": "expected"}
    constraints = {"optimizer": tuple(OPTIMIZERS), "batch_size": ">= 1", "lr": "positive", "reg": "non-negative",
                   "row_step": ROW_STEPS}
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
        p = self.params
        check_batch_params("minibatch", p["batch_size"], p["lr"], p["reg"], p["row_step"])
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._row_mean: RowStepHooks | None = None
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
        if self.params["row_step"] != "sum":
            self._row_mean = RowStepHooks(model, self.params["row_step"], self.users, self.items,
                                          self.params["batch_size"])
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
        if self._row_mean is not None:
            self._row_mean.remove()
            self._row_mean = None
        self.__dict__.pop("optimizer", None)
        self.__dict__.pop("model", None)


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(Minibatch)
