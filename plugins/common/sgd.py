"""The hand-written minibatch SGD step shared by ``vectorized``, ``sharded`` and ``hogwild`` (not a plugin).

One batch of ratings, no autograd: gather the rows with ``index_select``, form
the error, and scatter-add the steps with ``index_add_`` straight into the
tables. For a rating with error ``e = pred - r`` the step of the per-rating
objective ``(pred - r)**2 + reg * (||p_u||^2 + ||q_i||^2 [+ b_u^2 + b_i^2])`` is
``-2 lr (e q_i + reg p_u)`` on ``p_u``, ``-2 lr (e p_u + reg q_i)`` on ``q_i`` and
``-2 lr (e + reg b)`` on a bias; every term of a batch is formed from the values
before the batch's step, and a row's summed terms are divided by what its
``row_step`` divisor says (``plugins.common.batching``). The three strategies
differ in what they hand it (whole tables, a rank's blocks, a worker's shard of
shared tables), not in the step, so the step is written once, here.

Why it is written this way (``results/README.md``, "vectorized", has the
measurements): the step size is folded into the factors before the scatter,
never passed as ``index_add_``'s ``alpha``, which takes a much slower path on
CPU; biases are 1-D views, since gathering and scattering an ``(n, 1)`` table
costs several times more; ``bmm`` forms the dot products; and each gathered
block is overwritten in place by its own step once nothing reads it.
"""

from __future__ import annotations

from typing import Any

import torch

import mfbench

#: The SGD family's step schedule, one declaration for every SGD strategy: epoch e steps with
#: ``lr / (1 + lr_decay * e)`` (inverse-time decay; 0, the default, keeps a constant step).
SCHEDULE_PARAMS: dict[str, Any] = {"lr_decay": 0.0}
SCHEDULE_CONSTRAINTS: dict[str, Any] = {"lr_decay": "non-negative"}
#: What mfbench tune searches for it: from no decay to a step halved by the third epoch.
SCHEDULE_SPACE: dict[str, Any] = {"lr_decay": mfbench.Uniform(0.0, 0.5)}


def epoch_lr(lr: float, lr_decay: float, epoch: int) -> float:
    """The step of ``epoch`` (counted from 0) under inverse-time decay."""
    return lr / (1.0 + lr_decay * epoch)


def set_optimizer_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """A torch optimizer's step for the epoch about to run (the schedule of ``epoch_lr``)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def column(factor: float | torch.Tensor) -> float | torch.Tensor:
    """A per-position factor shaped to scale rows of a (batch, k) block; a scalar as it is."""
    return factor.unsqueeze(1) if isinstance(factor, torch.Tensor) else factor


def sgd_batch(
    P: torch.Tensor,
    Q: torch.Tensor,
    biases: tuple[torch.Tensor, torch.Tensor] | None,
    u: torch.Tensor,
    i: torch.Tensor,
    target: torch.Tensor,
    step: float,
    decay: float,
    counts: tuple[Any, Any] | None,
) -> torch.Tensor:
    """One SGD step on a batch, in place in ``P``, ``Q`` (and ``biases``); returns its sum of squared errors.

    :param P, Q: the row and column factor tables, (rows, k).
    :param biases: the 1-D bias tables of P's and Q's rows, or None for the dot layout.
    :param u, i: the batch's row indices into P and Q.
    :param target: the batch's ratings, less any constant (a global mean) the prediction carries.
    :param step: ``-2 lr`` of this epoch; ``decay``: ``step * reg``, the reg part of a step per row value.
    :param counts: the divisors of P's and Q's row steps (``batching.row_weights``), or None to sum them.
    :returns: the batch's squared errors summed, measured before the step (0-dim, ``target``'s dtype).
    """
    p, q = P.index_select(0, u), Q.index_select(0, i)
    error = torch.bmm(p.unsqueeze(1), q.unsqueeze(2)).view(-1)
    error -= target
    if biases is not None:
        bu, bi = biases[0].index_select(0, u), biases[1].index_select(0, i)
        error += bu
        error += bi
    squared = torch.dot(error, error)
    # Per-position step factors of the row and the column: scalars for row_step=sum,
    # 1-D tensors (each row's divisor applied) otherwise.
    scaled = error.mul_(step)
    if counts is None:
        scaled_u = scaled_i = scaled
        decay_u = decay_i = decay
    else:
        inv_u, inv_i = counts[0].inverse(u), counts[1].inverse(i)
        scaled_u, scaled_i = scaled * inv_u, scaled * inv_i
        decay_u, decay_i = inv_u.mul_(decay), inv_i.mul_(decay)
    if decay:
        step_q = q.mul(column(decay_i)).addcmul_(p, scaled_i.unsqueeze(1))
        step_p = p.mul_(column(decay_u)).addcmul_(q, scaled_u.unsqueeze(1))  # p is not needed after this
    else:
        step_q = p * scaled_i.unsqueeze(1)
        step_p = q.mul_(scaled_u.unsqueeze(1))  # q is not needed after this
    P.index_add_(0, u, step_p)
    Q.index_add_(0, i, step_q)
    if biases is not None:
        biases[0].index_add_(0, u, bu.mul_(decay_u).add_(scaled_u) if decay else scaled_u)
        biases[1].index_add_(0, i, bi.mul_(decay_i).add_(scaled_i) if decay else scaled_i)
    return squared
