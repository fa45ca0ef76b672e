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
step, and a row that occurs several times in the batch receives the sum of its terms.

What was measured (1M planted ratings, k=20, batch 4096, one thread, 2-core
Xeon; see the issue's report for the table):

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

import torch
from torch import nn

import mfbench

from .minibatch import batch_slices, check_batch_params, shuffled

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


class Vectorized(mfbench.Strategy):
    """Minibatch SGD by hand: index_select the rows, index_add_ the steps, no autograd.

    Parameters: ``batch_size`` (ratings per step), ``lr`` (per-rating step
    size: the batch loss is a sum), ``reg`` (L2 per rating on the rows used).
    The same steps as ``minibatch`` with ``optimizer=sgd`` and the same params.

    Each epoch reshuffles the training ratings (``mfbench.epoch_permutation``
    of the seed and the epoch); the reshuffle is part of the epoch's work and
    is inside the timed epoch.
    """

    name = "vectorized"
    params = {"batch_size": 4096, "lr": 0.01, "reg": 0.01}
    exact = False
    #: Bit for bit on CPU; on CUDA ``index_add_`` uses atomics, so two runs agree
    #: only to float rounding.
    deterministic = True
    #: What mfbench tune searches (validation RMSE decides).
    search_space = {"lr": mfbench.LogUniform(1e-4, 0.3), "reg": mfbench.LogUniform(1e-4, 0.3), "batch_size": mfbench.IntRange(256, 65536, log=True)}

    def __init__(self, **params) -> None:
        super().__init__(**params)
        check_batch_params("vectorized", self.params["batch_size"], self.params["lr"], self.params["reg"])

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
            scaled = (error * step).unsqueeze(1)
            # The steps are scaled here, not through index_add_'s alpha: on CPU an alpha != 1
            # sends a 2-D index_add_ down a path measured 3-4x slower.
            if decay:
                step_q = q.mul(decay).addcmul_(p, scaled)
                step_p = p.mul_(decay).addcmul_(q, scaled)  # p is not needed after this
            else:
                step_q = p * scaled
                step_p = q.mul_(scaled)  # q is not needed after this
            P.index_add_(0, u, step_p)
            Q.index_add_(0, i, step_q)
            if self.biased:
                scaled = scaled.view(-1)
                user_bias.index_add_(0, u, torch.add(scaled, bu, alpha=decay) if decay else scaled)
                item_bias.index_add_(0, i, torch.add(scaled, bi, alpha=decay) if decay else scaled)
        return float(squared) / max(len(targets), 1)

    def teardown(self) -> None:
        self.__dict__.pop("tables", None)


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(Vectorized)
