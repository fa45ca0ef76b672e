"""Batching and row-step helpers shared by the minibatch SGD strategies (not a plugin).

``minibatch``, ``vectorized``, ``ddp``, ``sharded`` and ``hogwild`` all cut the
training ratings into batches and combine a row's steps from one batch the same
way (``row_step``: divided by its expected count per batch, by its count in the
batch, or summed). Kept here, in one place, so that "the same steps" means the
same code in each of them.
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

    def __init__(
        self,
        model: nn.Module,
        row_step: str,
        users: torch.Tensor,
        items: torch.Tensor,
        batch_size: int,
        reduce: Callable[[torch.Tensor], None] | None = None,
    ) -> None:
        self.reduce = reduce
        embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
        self.counts: dict[nn.Module, RowCounts | ExpectedCounts] = {}
        if row_step == "expected":
            looked_up = training_lookups(model, embeddings, users, items, batch_size)
            for module in embeddings:
                self.counts[module] = ExpectedCounts(looked_up[module], module.num_embeddings, batch_size, module.weight.dtype)
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


def training_lookups(
    model: nn.Module, embeddings: list[nn.Module], users: torch.Tensor, items: torch.Tensor, batch_size: int
) -> dict[nn.Module, torch.Tensor]:
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


class Lookups:
    """The rows a model's ``nn.Embedding`` modules look up in each forward pass (a forward hook
    on every one), for the ``reg`` term of :func:`batch_loss`; no hooks when ``enabled`` is false
    (``reg=0``)."""

    def __init__(self, model: nn.Module, enabled: bool = True) -> None:
        self.rows: list[torch.Tensor] = []
        self.handles = [
            module.register_forward_hook(self._catch)
            for module in model.modules()
            if enabled and isinstance(module, nn.Embedding)
        ]

    def _catch(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.rows.append(output)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        self.rows.clear()


def batch_loss(
    model: nn.Module, lookups: Lookups, users: torch.Tensor, items: torch.Tensor, values: torch.Tensor, reg: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, data term) of one batch: the summed squared errors, plus ``reg`` times the squared
    norms of the rows the forward pass looked up (caught by ``lookups``, cleared first). The
    per-rating objective every strategy shares, summed over the batch."""
    looked_up = lookups.rows
    looked_up.clear()
    errors = model(users, items) - values
    data_term = errors.square().sum()
    loss = data_term
    if reg > 0:
        loss = loss + reg * sum(rows.square().sum() for rows in looked_up)
    return loss, data_term


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


def row_weights(
    row_step: str, index: torch.Tensor, n_rows: int, batch_size: int, dtype: torch.dtype
) -> RowCounts | ExpectedCounts | None:
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
