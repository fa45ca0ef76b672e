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

What was measured on the 2-core Xeon (k=20, 20k ratings, one loop, median
thread time per rating; reg 0 / reg 0.02): one-row ``select`` views with
``add_`` and ``mul_`` 10 / 20 us (a ``mul_`` by a Python float costs ~5 us),
``add_(self, alpha)`` for the decay - / 13 us, ``addmv_`` with ``beta`` for the
decay 10 / 11.5 us, this pair layout 9.5 / 9.5 us; the one-row loop in eager
Python 21 / 20 us; ``torch.compile`` of a one-rating step ~150 us, of an
unrolled 16-rating chunk ~15 us after a 36-57 s cold compile. Not kept: a list
of the pair views made once in setup (~15% faster per rating, but one tensor
object per training rating).

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
from dataclasses import dataclass

import torch
from torch import nn

import mfbench

FACTOR_TABLES = ("user_factors", "item_factors")
BIAS_TABLES = ("user_bias", "item_bias")
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


@dataclass
class Tables:
    """The weights a pair-layout strategy trains, found on a ``dot`` or ``biased`` model."""

    user_factors: torch.Tensor
    item_factors: torch.Tensor
    user_bias: torch.Tensor | None = None
    item_bias: torch.Tensor | None = None
    global_mean: float = 0.0

    @property
    def bias(self) -> int:
        return 0 if self.user_bias is None else 1

    @property
    def n_users(self) -> int:
        return self.user_factors.shape[0]

    def stacked(self) -> torch.Tensor:
        """A fresh ``W``: user rows ``[b_u, p_u]`` then item rows ``[q_i, b_i]`` (no bias columns for dot)."""
        P, Q = self.user_factors, self.item_factors
        W = torch.empty(P.shape[0] + Q.shape[0], P.shape[1] + self.bias, dtype=P.dtype, device=P.device)
        self.pack(W)
        return W

    @torch.no_grad()
    def pack(self, W: torch.Tensor) -> None:
        """Copy the model's weights into ``W``."""
        n, k, b = self.n_users, self.user_factors.shape[1], self.bias
        W[:n, b:].copy_(self.user_factors)
        W[n:, :k].copy_(self.item_factors)
        if self.user_bias is not None and self.item_bias is not None:
            W[:n, :1].copy_(self.user_bias)
            W[n:, k:].copy_(self.item_bias)

    @torch.no_grad()
    def unpack(self, W: torch.Tensor) -> None:
        """Copy ``W`` back into the model's weights."""
        n, k, b = self.n_users, self.user_factors.shape[1], self.bias
        self.user_factors.copy_(W[:n, b:])
        self.item_factors.copy_(W[n:, :k])
        if self.user_bias is not None and self.item_bias is not None:
            self.user_bias.copy_(W[:n, :1])
            self.item_bias.copy_(W[n:, k:])


def find_tables(model: nn.Module, strategy: str) -> tuple[Tables | None, str]:
    """The weights of a ``dot`` or ``biased`` layout, or None and the reason this model does not fit.

    The layout is told by attributes: ``user_factors`` and ``item_factors``
    embeddings (dot), plus one-column ``user_bias`` and ``item_bias`` embeddings
    and a ``global_mean`` tensor (biased). A model with any other learned
    parameter is refused: the hand-written step would leave it untrained.
    """
    kind = type(model).__name__
    names = list(FACTOR_TABLES)
    biased = any(hasattr(model, name) for name in BIAS_TABLES)
    if biased:
        names += BIAS_TABLES
        mean = getattr(model, "global_mean", None)
        if not isinstance(mean, torch.Tensor) or mean.numel() != 1:
            return None, f"model {kind} has bias tables but no one-element global_mean tensor; {strategy} trains the dot and biased layouts only"
    weights = {}
    for name in names:
        table = getattr(model, name, None)
        if not isinstance(table, nn.Embedding):
            return None, f"model {kind} has no nn.Embedding {name!r}: {strategy} trains the dot and biased layouts only"
        weights[name] = table.weight.detach()
    if biased and any(weights[name].shape[1] != 1 for name in BIAS_TABLES):
        return None, f"model {kind}'s bias tables must have one column each"
    if weights["user_factors"].shape[1] != weights["item_factors"].shape[1]:
        return None, f"model {kind}'s user and item factors differ in width"
    expected = {f"{name}.weight" for name in names}
    learned = {name for name, p in model.named_parameters() if p.requires_grad}
    if learned - expected:
        return None, f"model {kind} has parameters {strategy} does not train: {sorted(learned - expected)}"
    dtypes = {w.dtype for w in weights.values()}
    devices = {w.device for w in weights.values()}
    if len(dtypes) != 1 or not next(iter(dtypes)).is_floating_point:
        return None, f"model {kind}'s tables must share one floating dtype, got {sorted(map(str, dtypes))}"
    if len(devices) != 1:
        return None, f"model {kind}'s tables are on several devices: {sorted(map(str, devices))}"
    if not biased:
        return Tables(weights["user_factors"], weights["item_factors"]), ""
    return (
        Tables(
            weights["user_factors"],
            weights["item_factors"],
            weights["user_bias"],
            weights["item_bias"],
            float(model.global_mean),
        ),
        "",
    )


class ScriptedSGD(mfbench.Strategy):
    """The reference's per-rating SGD, exact, as one TorchScript loop over the weights (no autograd).

    Defaults (lr 0.01, reg 0.05) are chosen to hold on several data sets at once
    (README, "Defaults"): lr 0.01 is a step the notebook's N(0, 1) start survives
    (per-rating SGD diverges there from about 0.03), and reg 0.05 keeps the
    default 20-factor model from overfitting real ratings over a 20-epoch run
    while still letting a rank-matched model reach the planted target.
    """

    name = "scripted"
    params = {"lr": 0.01, "reg": 0.05}
    constraints = {"lr": "positive", "reg": "non-negative"}
    devices = ("cpu", "cuda")
    exact = True
    deterministic = True
    #: What mfbench tune searches (validation RMSE decides).
    search_space = {"lr": mfbench.LogUniform(1e-3, 0.2), "reg": mfbench.LogUniform(1e-4, 0.3)}

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        if device.type not in self.devices:
            return f"{self.name} runs on {', '.join(self.devices)}, not {device.type}"
        tables, reason = find_tables(model, self.name)
        if tables is None:
            return reason
        if self.params["lr"] <= 0 or self.params["reg"] < 0:
            return f"{self.name} needs lr > 0 and reg >= 0, got lr={self.params['lr']}, reg={self.params['reg']}"
        return None

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        tables, reason = find_tables(model, self.name)
        if tables is None:
            raise mfbench.MfbenchError(reason)
        self.tables = tables
        self.seed = seed
        self.W = tables.stacked()
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
            self.tables.bias,
            users,
            items,
            values,
            self.tables.global_mean,
            float(self.params["lr"]),
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
        self.tables.pack(self.W)
        squared = self.step(
            self.W,
            self.users.index_select(0, order),
            self.items.index_select(0, order),
            self.values.index_select(0, order),
        )
        self.tables.unpack(self.W)
        return squared / n

    def teardown(self) -> None:
        self.W = None


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(ScriptedSGD)
