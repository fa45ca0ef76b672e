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
steps per-rating SGD takes safely (see ``minibatch.ExpectedCounts``).

What was measured (1M planted ratings, k=20, batch 4096, one thread, 2-core
Xeon):

- ``index_add_`` with ``alpha != 1`` on a 2-D table takes a path 3-4x slower
  than without (~690 vs ~180 us per 4096 x 20 batch), so the steps are scaled
  before the scatter, never through ``alpha``. Fixing only this took the dot
  model from ~1.9M to ~3.4M updates/s.
- ``index_select`` / ``index_add_`` on an ``(n, 1)`` bias table cost ~4x / ~30x
  what they cost on its 1-D view, so the biases are updated through 1-D views
  (biased model: ~1.1M to ~2.6M updates/s).
- ``bmm`` of (B,1,k) x (B,k,1) forms the dot products a little faster than
  ``(p * q).sum(1)`` (~70 vs ~88 us). Preallocated ``out=`` buffers were
  within the machine's noise (+-20%) and are not used; each gathered row
  block is overwritten in place by its own step once nothing reads it.
- The reshuffle (``epoch_permutation`` and three gathers, ~80 ms per 1M
  ratings) is about a third of an epoch; without it the same loop ran ~5M/s.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import mfbench
from mfbench.plugins.strategies.minibatch import ROW_STEPS, batch_slices, check_batch_params, row_weights, shuffled

DOT_TABLES = ("user_factors", "item_factors")
BIAS_TABLES = ("user_bias", "item_bias")


def find_tables(model: nn.Module) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The weight tensors of a ``dot`` or ``biased`` layout, or None and why not.

    The layout is told by attributes: ``user_factors`` and ``item_factors``
    embeddings (dot), plus one-column ``user_bias`` and ``item_bias`` embeddings
    and a ``global_mean`` tensor (biased). A model with any other learned
    parameter is refused, since the hand-written gradient would leave it untrained.
    """
    kind = type(model).__name__
    names = list(DOT_TABLES)
    if any(hasattr(model, name) for name in BIAS_TABLES):
        names += BIAS_TABLES
        if not isinstance(getattr(model, "global_mean", None), torch.Tensor):
            return None, f"model {kind} has bias tables but no global_mean tensor; vectorized knows the biased layout only"
    for name in names:
        table = getattr(model, name, None)
        if not isinstance(table, nn.Embedding):
            return None, f"model {kind} has no nn.Embedding {name!r}: vectorized trains the dot and biased layouts only"
        if name in BIAS_TABLES and table.embedding_dim != 1:
            return None, f"model {kind}'s {name} has {table.embedding_dim} columns, not 1"
    expected = {f"{name}.weight" for name in names}
    learned = {name for name, p in model.named_parameters() if p.requires_grad}
    if learned != expected:
        extra, missing = sorted(learned - expected), sorted(expected - learned)
        if extra:
            return None, f"model {kind} has parameters vectorized cannot train: {', '.join(extra)}"
        return None, f"model {kind} does not train {', '.join(missing)}"
    tables = {name: getattr(model, name).weight for name in names}
    if tables["user_factors"].shape[1] != tables["item_factors"].shape[1]:
        return None, f"model {kind}'s user_factors and item_factors have different widths"
    dtypes = {t.dtype for t in tables.values()}
    if len(dtypes) != 1:
        return None, f"model {kind} mixes dtypes {sorted(map(str, dtypes))} across its tables"
    return tables, ""


def row_counts(row_step: str, train: mfbench.Ratings, batch_size: int, dtype: torch.dtype) -> tuple[Any, Any] | None:
    """What the user and the item row steps are divided by under ``row_step``; None for ``sum``."""
    if row_step == "sum":
        return None
    return (row_weights(row_step, train.users, train.n_users, batch_size, dtype),
            row_weights(row_step, train.items, train.n_items, batch_size, dtype))


def column(factor: float | torch.Tensor) -> float | torch.Tensor:
    """A per-position factor shaped to scale rows of a (batch, k) block; a scalar as it is."""
    return factor.unsqueeze(1) if isinstance(factor, torch.Tensor) else factor


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
    params = {"batch_size": 1024, "lr": 0.01, "reg": 0.05, "row_step": "expected"}
    constraints = {"batch_size": ">= 1", "lr": "positive", "reg": "non-negative", "row_step": ROW_STEPS}
    exact = False
    #: Bit for bit on CPU; on CUDA ``index_add_`` uses atomics, so two runs agree
    #: only to float rounding.
    deterministic = True
    #: What mfbench tune searches (validation RMSE decides).
    search_space = {"lr": mfbench.LogUniform(1e-4, 0.3), "reg": mfbench.LogUniform(1e-4, 0.3), "batch_size": mfbench.IntRange(256, 65536, log=True)}

    def __init__(self, **params) -> None:
        super().__init__(**params)
        p = self.params
        check_batch_params("vectorized", p["batch_size"], p["lr"], p["reg"], p["row_step"])
        self.counts: tuple[Any, Any] | None = None

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        tables, reason = find_tables(model)
        return None if tables is not None else reason

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        tables, reason = find_tables(model)
        if tables is None:
            raise mfbench.MfbenchError(reason)
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
        step = -2.0 * self.params["lr"]
        decay = step * self.params["reg"]  # the reg part of a step is decay * row
        squared = torch.zeros((), dtype=targets.dtype, device=targets.device)
        if self.biased:
            # 1-D views: index_select/index_add_ on an (n, 1) table cost ~4x and ~30x more here.
            user_bias, item_bias = self.tables["user_bias"].view(-1), self.tables["item_bias"].view(-1)
        for part in batch_slices(len(targets), self.params["batch_size"]):
            u, i = users[part], items[part]
            p, q = P.index_select(0, u), Q.index_select(0, i)
            error = torch.bmm(p.unsqueeze(1), q.unsqueeze(2)).view(-1)
            error -= targets[part]
            if self.biased:
                bu, bi = user_bias.index_select(0, u), item_bias.index_select(0, i)
                error += bu
                error += bi
            squared += torch.dot(error, error)
            # Per-position step factors of the user and the item rows: scalars for row_step=sum,
            # 1-D tensors (divided by each row's count in the batch) for row_step=mean.
            scaled = error.mul_(step)
            if self.counts is None:
                scaled_u = scaled_i = scaled
                decay_u = decay_i = decay
            else:
                inv_u, inv_i = self.counts[0].inverse(u), self.counts[1].inverse(i)
                scaled_u, scaled_i = scaled * inv_u, scaled * inv_i
                decay_u, decay_i = inv_u.mul_(decay), inv_i.mul_(decay)
            # The steps are scaled here, not through index_add_'s alpha: on CPU an alpha != 1
            # sends a 2-D index_add_ down a path measured 3-4x slower.
            if decay:
                step_q = q.mul(column(decay_i)).addcmul_(p, scaled_i.unsqueeze(1))
                step_p = p.mul_(column(decay_u)).addcmul_(q, scaled_u.unsqueeze(1))  # p is not needed after this
            else:
                step_q = p * scaled_i.unsqueeze(1)
                step_p = q.mul_(scaled_u.unsqueeze(1))  # q is not needed after this
            P.index_add_(0, u, step_p)
            Q.index_add_(0, i, step_q)
            if self.biased:
                user_bias.index_add_(0, u, bu.mul_(decay_u).add_(scaled_u) if decay else scaled_u)
                item_bias.index_add_(0, i, bi.mul_(decay_i).add_(scaled_i) if decay else scaled_i)
        return float(squared) / max(len(targets), 1)

    def teardown(self) -> None:
        self.__dict__.pop("tables", None)
        self.counts = None


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(Vectorized)
