"""Implicit ALS (Hu, Koren and Volinsky 2008): exact confidence-weighted solves over every user-item pair, in torch.

Implicit feedback says what a user interacted with and how strongly (``r``, the training
value: 1.0 for plain implicit data), never what they disliked. The model of Hu et al.
reads every one of the ``n_users x n_items`` pairs: an observed pair (``r > 0``) is a
preference of 1 held with confidence ``c = 1 + alpha r``, every other pair a preference of
0 with confidence 1. The objective is

    sum over all pairs of c_ui (p_ui - <x_u, y_i>)^2 + reg (sum_u ||x_u||^2 + sum_i ||y_i||^2),

an ordinary (not weighted-lambda) L2, as in the paper. With the items fixed, each user's
factors solve

    (Y^T Y + Y^T (C_u - I) Y + reg I) x_u = Y^T C_u p(u),

where ``Y^T Y`` is the same for every user and ``C_u - I`` is zero outside the user's
observed items: the Gram trick computes ``Y^T Y`` once per half-step and, per user, only the
observed items' correction ``sum alpha r y_i y_i^T`` and right-hand side ``sum (1 + alpha r) y_i``.
An epoch solves every user, then every item the same way with the users fixed.

The observed rows are laid out as the explicit ``als`` strategy lays out its ratings (its
``Side``: rows sorted by degree, cut into groups of at most ``chunk`` padded slots, padded
slots pointing at a zero row), one gather and two batched matmuls per group form the
corrections and right-hand sides, and every row's system is solved with one batched Cholesky
factorization. Rows with no observed pair solve ``(Y^T Y + reg I) x = 0``: zero.

Before the solves, repeated (user, item) pairs are merged by adding their values, and a pair
whose value is not positive counts as unobserved (preference 0, confidence 1), as in the
paper. ``run_epoch`` returns the objective per observed pair after the epoch, read off the
item half-step's systems (for a solution ``y = A^-1 b`` a row's part of the objective is
``sum c p^2 - b . y``), so it costs no pass over the data.

The ranking score is ``<x_u, y_i>`` plus the item bias: on the ``biased`` layout both bias
tables are set to zero every epoch (iALS has no biases; the user bias and the global mean do
not change a user's ranking, and the global mean is left as it is). Runs on CPU and CUDA in
float32 or float64; deterministic on CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

import mfbench
from mfbench import find_tables, layout_problem
from mfbench.plugins.common.row_groups import Side


def observed_pairs(train: mfbench.Ratings) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(users, items, values) with repeated pairs merged (values added) and non-positive pairs dropped."""
    keys = train.users * train.n_items + train.items
    unique, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    values = torch.zeros(len(unique), dtype=torch.float64, device=keys.device)
    values.index_add_(0, inverse, train.values.double())
    keep = values > 0
    unique, values = unique[keep], values[keep]
    return unique // train.n_items, unique % train.n_items, values


class IALS(mfbench.Strategy):
    """Implicit ALS (Hu et al. 2008): exact confidence-weighted solves, Gram trick, batched Cholesky (implicit feedback)."""

    name = "ials"
    params = {
        # plain L2 on every user's and item's factors (not scaled by the row's degree, as in Hu et al.):
        # its right size grows with the data's interactions per row, so tune it; 1.0 keeps 20 factors
        # from fitting noise on small data sets.
        "reg": 1.0,
        # confidence of an observed pair: 1 + alpha * value (Hu et al. found 40 best on their data;
        # implicit's default is 1); between the two.
        "alpha": 10.0,
        # most padded observed pairs gathered at once; bounds the two work buffers to chunk * k floats each.
        "chunk": 262144,
    }
    constraints = {"reg": "positive", "alpha": "non-negative", "chunk": ">= 1"}
    exact = False
    deterministic = True
    objective = "implicit"
    #: What mfbench tune searches (a ranking metric should decide: RMSE says nothing about iALS).
    search_space = {"reg": mfbench.LogUniform(1e-3, 100.0), "alpha": mfbench.LogUniform(0.1, 100.0)}

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        return layout_problem(model, self.name)

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        chunk = self.params["chunk"]
        tables = find_tables(model, self.name, ratings=train)
        self.P, self.Q = tables.user_factors, tables.item_factors
        self.biases = (tables.user_bias, tables.item_bias) if tables.biased else ()
        self.dtype = tables.dtype
        self.k = k = tables.n_factors
        users, items, values = observed_pairs(train)
        weights = (self.params["alpha"] * values).to(self.dtype)  # c - 1 on observed pairs
        self.n_observed = len(values)
        self.total_confidence = float((1.0 + self.params["alpha"] * values).sum())
        self.users = Side(users, items, weights, train.n_users, train.n_items, chunk)
        self.items = Side(items, users, weights, train.n_items, train.n_users, chunk)
        largest = max(self.users.largest, self.items.largest, 1)
        # Work buffers, allocated once: the other side's factors with a zero pad row, one group's
        # gathered rows and their weighted copy, and every row's system and right-hand side.
        self.other_user = torch.zeros(train.n_users + 1, k, dtype=self.dtype, device=device)
        self.other_item = torch.zeros(train.n_items + 1, k, dtype=self.dtype, device=device)
        self.gathered = torch.empty(largest * k, dtype=self.dtype, device=device)
        self.weighted = torch.empty(largest * k, dtype=self.dtype, device=device)
        n_solve = max(len(self.users.solve_rows), len(self.items.solve_rows), 1)
        self.system = torch.empty(n_solve, k, k, dtype=self.dtype, device=device)
        self.rhs = torch.empty(n_solve, k, 1, dtype=self.dtype, device=device)

    def solve_side(self, side: Side, rows: torch.Tensor, other: torch.Tensor, other_factors: torch.Tensor) -> float:
        """Re-solve every row of ``side`` in place in ``rows`` against the fixed ``other_factors``.

        Returns ``sum over solved rows of b . x``, the amount by which the solves bring the data
        term below ``sum c p^2`` (in float64).
        """
        k = self.k
        with torch.no_grad():
            other[:-1] = other_factors
            gram = other_factors.T @ other_factors  # Y^T Y over every row of the other side
            n = len(side.solve_rows)
            system, rhs = self.system[:n], self.rhs[:n]
            for group in side.groups:
                b, length = group.size, group.length
                z = self.gathered[: b * length * k].view(b * length, k)
                torch.index_select(other, 0, group.other, out=z)
                z = z.view(b, length, k)
                weights = group.target.unsqueeze(2)  # alpha r per slot; 0 at pads, whose rows are zero
                zw = self.weighted[: b * length * k].view(b, length, k)
                torch.mul(z, weights, out=zw)
                rows_of = slice(group.start, group.start + b)
                torch.bmm(zw.transpose(1, 2), z, out=system[rows_of])  # sum alpha r y y^T
                torch.bmm(z.transpose(1, 2), (weights + 1), out=rhs[rows_of])  # sum (1 + alpha r) y
            system += gram
            system.diagonal(dim1=1, dim2=2).add_(self.params["reg"])
            factor, info = torch.linalg.cholesky_ex(system)
            if bool((info != 0).any()):
                bad = int((info != 0).sum())
                raise mfbench.MfbenchError(
                    f"{self.name}: {bad} normal-equation systems were not positive definite (non-finite factors?); "
                    f"try a larger reg"
                )
            solution = torch.cholesky_solve(rhs, factor)
            reduction = (solution * rhs).double().sum()
            rows.index_copy_(0, side.solve_rows, solution.squeeze(2))
            if len(side.empty):
                rows.index_fill_(0, side.empty, 0)
        return float(reduction)

    def run_epoch(self, epoch: int) -> float | None:
        """Solve every user, then every item; returns the objective per observed pair after the epoch."""
        with torch.no_grad():
            for bias in self.biases:
                bias.zero_()
        self.solve_side(self.users, self.P, self.other_item, self.Q)
        reduction = self.solve_side(self.items, self.Q, self.other_user, self.P)
        # With the items just solved, their rows' part of the objective (data term and the items' L2)
        # is sum c p^2 - sum b . y; the users' L2 is added.
        with torch.no_grad():
            penalty = self.params["reg"] * self.P.double().square().sum()
        objective = self.total_confidence - reduction + float(penalty)
        return objective / max(self.n_observed, 1)

    def info(self) -> Mapping[str, Any] | None:
        return {"observed_pairs": getattr(self, "n_observed", None), "solver": "batched Cholesky, Gram trick"}

    def teardown(self) -> None:
        for name in ("users", "items", "other_user", "other_item", "gathered", "weighted", "system", "rhs", "P", "Q"):
            self.__dict__.pop(name, None)
        self.biases = ()


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(IALS)
