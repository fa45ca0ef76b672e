"""Exact per-rating SGD with the loop compiled by TorchScript: the reference's arithmetic, without its overhead.

The reference strategy spends a rating's time in autograd, ``optim.SGD`` and
tensor creation; the arithmetic is two dot-product-sized updates. Here the loop
over ratings is a TorchScript function working on the weights directly, so a
rating costs a handful of tensor calls and no Python.

The layout that makes it cheap: both tables live in one matrix ``W`` (users'
rows, then items' rows), so the two rows one rating touches are *one* strided
``(2, w)`` view of ``W``. One rating is then five calls: take that view, copy it
into a scratch buffer (the pre-step values), one ``dot`` (and its ``item``) for
the error, and one ``addmm_`` that applies ``decay * row + g * partner`` to both
rows at once, the partner rows coming from the scratch copy through a 2x2 swap
matrix. With biases, the scratch buffer holds ``[b_u, p_u, 1]`` and
``[1, q_i, b_i]`` (the two 1s are written once), so the same ``dot`` gives
``b_u + b_i + <p_u, q_i>`` and the same ``addmm_`` steps each bias by ``g * 1``.
``W`` is filled from the model's weights at the start of each epoch and written
back at its end (both inside the timed epoch; they cost O(rows), not O(ratings)).

This layout was the fastest of the per-rating loops tried (one-row views with
``add_``/``mul_``, ``addmv_`` with ``beta``, eager Python, ``torch.compile`` of a
step or of an unrolled chunk); what each cost per rating is in ``results/README.md``
("scripted").

Semantics are the reference's: visiting order ``mfbench.epoch_permutation``,
error ``e = pred - r``, the MSE gradient's factor 2, and both rows stepped from
their pre-step values. With ``reg`` the per-rating objective is
``(pred - r)**2 + reg * (||p_u||^2 + ||q_i||^2 [+ b_u^2 + b_i^2])``. The only
differences from the reference are float rounding (a BLAS dot instead of a
product and a sum; the error kept in double), which the exactness tests bound.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import torch
from torch import nn

import mfbench
from mfbench import Tables, find_tables, layout_problem
from mfbench.plugins.common.sgd import SCHEDULE_CONSTRAINTS, SCHEDULE_PARAMS, SCHEDULE_SPACE, epoch_lr

#: Ratings the warm-up passes in setup train on (a scratch copy of the tables).
WARMUP_RATINGS = 16
#: TorchScript's profiling executor specializes a function on its second call.
WARMUP_CALLS = 2


def pair_sgd_epoch(
    W: torch.Tensor,
    n_users: int,
    bias: int,
    users: torch.Tensor,
    items: torch.Tensor,
    values: torch.Tensor,
    offset: float,
    lr: float,
    reg: float,
) -> float:
    """One SGD step per rating, in the given order, on the stacked tables ``W``; returns the sum of squared errors.

    ``W`` has the users' rows first, then the items' rows (``n_users`` of the
    first). With ``bias`` 1, a user row is ``[b_u, p_u]`` and an item row
    ``[q_i, b_i]``; with 0 they are ``p_u`` and ``q_i``. ``offset`` is added to
    every prediction (the global mean). Errors are taken before each step.
    """
    if not W.is_contiguous() or W.storage_offset() != 0 or W.size(0) <= n_users:
        raise ValueError("W must be a contiguous (n_users + n_items, width) tensor that owns its storage from offset 0")
    user_list: list[int] = users.tolist()
    item_list: list[int] = items.tolist()
    value_list: list[float] = values.tolist()
    width = W.size(1)
    k = width - bias
    span = k + 2 * bias  # length of the augmented rows [b_u, p_u, 1] and [1, q_i, b_i]
    scratch = torch.zeros(2 * span, dtype=W.dtype, device=W.device)
    if bias == 1:
        scratch[span - 1] = 1.0
        scratch[span] = 1.0
    user_aug = scratch.narrow(0, 0, span)
    item_aug = scratch.narrow(0, span, span)
    # Where the copy of the two rows lands: [b_u, p_u] at the start of user_aug, [q_i, b_i] after item_aug's 1.
    landing = scratch.as_strided((2, width), (span + bias, 1), 0)
    # What each row steps along: [p_u, 1] for the item row, [1, q_i] for the user row (swapped by the matmul).
    partners = scratch.as_strided((2, width), (width, 1), bias)
    swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=W.dtype, device=W.device)
    decay = 1.0 - 2.0 * lr * reg
    squared = 0.0
    for t in range(len(user_list)):
        u = user_list[t]
        rows = W.as_strided((2, width), ((n_users + item_list[t] - u) * width, 1), u * width)
        landing.copy_(rows)
        err = offset + torch.dot(user_aug, item_aug).item() - value_list[t]
        squared += err * err
        rows.addmm_(swap, partners, beta=decay, alpha=-2.0 * lr * err)
    return squared


@functools.cache
def scripted_kernel() -> Callable[..., float]:
    """The TorchScript version of :func:`pair_sgd_epoch`, compiled on first use (not at import).

    torch 2.13 marks ``torch.jit.script`` deprecated in favour of ``torch.compile``,
    which cannot compile a loop over ratings (it unrolls Python loops): the
    warning is silenced here, where that choice was made deliberately.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=DeprecationWarning)
        return torch.jit.script(pair_sgd_epoch)


def stacked(tables: Tables) -> torch.Tensor:
    """A fresh ``W``: user rows ``[b_u, p_u]`` then item rows ``[q_i, b_i]`` (no bias columns for dot)."""
    P, Q = tables.user_factors, tables.item_factors
    W = torch.empty(P.shape[0] + Q.shape[0], P.shape[1] + int(tables.biased), dtype=P.dtype, device=P.device)
    pack(tables, W)
    return W


@torch.no_grad()
def pack(tables: Tables, W: torch.Tensor) -> None:
    """Copy the model's weights into ``W``."""
    n, k, b = tables.n_users, tables.n_factors, int(tables.biased)
    W[:n, b:].copy_(tables.user_factors)
    W[n:, :k].copy_(tables.item_factors)
    if tables.user_bias is not None and tables.item_bias is not None:
        W[:n, :1].copy_(tables.user_bias)
        W[n:, k:].copy_(tables.item_bias)


@torch.no_grad()
def unpack(tables: Tables, W: torch.Tensor) -> None:
    """Copy ``W`` back into the model's weights."""
    n, k, b = tables.n_users, tables.n_factors, int(tables.biased)
    tables.user_factors.copy_(W[:n, b:])
    tables.item_factors.copy_(W[n:, :k])
    if tables.user_bias is not None and tables.item_bias is not None:
        tables.user_bias.copy_(W[:n, :1])
        tables.item_bias.copy_(W[n:, k:])


class ScriptedSGD(mfbench.Strategy):
    """The reference's per-rating SGD, exact, as one TorchScript loop over the weights (no autograd).

    Defaults (lr 0.01, reg 0.05) are chosen to hold on several data sets at once
    (docs/parts.md, "Default step sizes"): lr 0.01 is a step the notebook's N(0, 1) start survives
    (per-rating SGD diverges there from about 0.03), and reg 0.05 keeps the
    default 20-factor model from overfitting real ratings over a 20-epoch run
    while still letting a rank-matched model reach the planted target.
    """

    name = "scripted"
    params = {"lr": 0.01, "reg": 0.05, **SCHEDULE_PARAMS}
    constraints = {"lr": "positive", "reg": "non-negative", **SCHEDULE_CONSTRAINTS}
    devices = ("cpu", "cuda")
    exact = True
    deterministic = True
    #: What mfbench tune searches (validation RMSE decides).
    search_space = {"lr": mfbench.LogUniform(1e-3, 0.2), "reg": mfbench.LogUniform(1e-4, 0.3), **SCHEDULE_SPACE}

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        if device.type not in self.devices:
            return f"{self.name} runs on {', '.join(self.devices)}, not {device.type}"
        return layout_problem(model, self.name)

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        tables = find_tables(model, self.name, ratings=train)
        self.tables = tables
        self.seed = seed
        self.lr = self.params["lr"]
        self.W = stacked(tables)
        # The loop reads host lists: keep host copies so each epoch only permutes them.
        self.users = train.users.cpu()
        self.items = train.items.cpu()
        self.values = train.values.cpu()
        self.kernel = scripted_kernel()
        self.warm_up()

    def warm_up(self) -> None:
        """Compile and specialize the kernel on a scratch copy, so no epoch pays for it."""
        n = min(WARMUP_RATINGS, len(self.users))
        if n == 0:
            return
        scratch = self.W.clone()
        for _ in range(WARMUP_CALLS):
            self.step(scratch, self.users[:n], self.items[:n], self.values[:n])

    def step(self, W: torch.Tensor, users: torch.Tensor, items: torch.Tensor, values: torch.Tensor) -> float:
        return self.kernel(
            W,
            self.tables.n_users,
            int(self.tables.biased),
            users,
            items,
            values,
            self.tables.global_mean,
            float(self.lr),
            float(self.params["reg"]),
        )

    def run_epoch(self, epoch: int) -> float | None:
        """One pass in ``epoch_permutation`` order; returns the mean squared error seen before each step.

        The loss is the data term only (no ``reg`` term), measured as training
        goes, so a NaN or an explosion shows in it at once.
        """
        n = len(self.users)
        if n == 0:
            return None
        order = mfbench.epoch_permutation(n, self.seed, epoch)
        self.lr = epoch_lr(self.params["lr"], self.params["lr_decay"], epoch)
        pack(self.tables, self.W)
        squared = self.step(
            self.W,
            self.users.index_select(0, order),
            self.items.index_select(0, order),
            self.values.index_select(0, order),
        )
        unpack(self.tables, self.W)
        return squared / n

    def teardown(self) -> None:
        self.W = None


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(ScriptedSGD)
