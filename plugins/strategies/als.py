"""Explicit alternating least squares: solve every user's, then every item's, ridge regression exactly.

One epoch is two half-steps. With the item factors fixed, each user's factors
(and, on the biased model, its bias) are the exact minimizer of that user's
regularized squared error; then the same for every item with the users fixed.

Regularization is *weighted-lambda* (Zhou et al., 2008): a row with ``n``
training ratings is penalized ``reg * n * ||x||^2``. That is not an arbitrary
choice: it is the per-rating objective every mfbench strategy shares,
``(pred - r)**2 + reg * (||p_u||^2 + ||q_i||^2 [+ b_u^2 + b_i^2])``, summed over
the training ratings, so ALS and the SGD strategies minimize the same thing.

How the k x k Gram matrices are formed: rows (users, then items) are sorted by
their number of ratings and cut into groups of at most ``chunk`` padded
ratings; each group's rated factor vectors are gathered into a preallocated
(rows, longest row, k + 2) buffer and one batched matmul gives every row's
Gram matrix and right-hand side at once. Sorting by degree keeps the padding
small, and the buffers are allocated once in ``setup`` (a fresh 80 MB tensor
per epoch costs more in page faults than the gather itself on CPU). The systems
are solved batched with a Cholesky factorization.

Rows with no training ratings have no data term: their factors and bias are set
to zero, the minimizer of the plain ridge penalty, so such a user predicts the
global mean plus the item's bias rather than noise from the initialization.
"""

from __future__ import annotations

import torch
from torch import nn

import mfbench
from mfbench import find_tables, layout_problem
from mfbench.plugins.common.row_groups import Side


class ALS(mfbench.Strategy):
    """Explicit ALS: exact weighted-lambda ridge solves for all users, then all items, per epoch."""

    name = "als"
    params = {
        # weighted-lambda L2: a row with n ratings is penalized reg * n * ||x||^2 (see module docstring);
        # positive, since a row with fewer ratings than factors has singular normal equations without it.
        # Larger than the SGD strategies' 0.05: ALS reaches the objective's minimizer in a few epochs,
        # while 20 epochs of SGD stop short of it, so at one reg ALS overfits real ratings more.
        "reg": 0.08,
        # most padded ratings gathered at once; bounds the work buffer to chunk * (k + 2) floats.
        "chunk": 262144,
    }
    constraints = {"reg": "positive", "chunk": ">= 1"}
    exact = False
    deterministic = True
    #: What mfbench tune searches (validation RMSE decides).
    search_space = {"reg": mfbench.LogUniform(1e-3, 1.0)}

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        return layout_problem(model, self.name)

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        chunk = self.params["chunk"]
        tables = find_tables(model, self.name, ratings=train)
        self.tables = tables.weights()
        self.biased = tables.biased
        self.dtype = tables.dtype
        self.k = tables.n_factors
        # Features per rating: the other side's factors, plus a constant 1 on the biased model
        # (its coefficient is this row's bias). One more column carries the target.
        self.width = self.k + (1 if self.biased else 0)
        targets = (train.values.to(self.dtype) - tables.global_mean).contiguous()
        self.users = Side(train.users, train.items, targets, train.n_users, train.n_items, chunk)
        self.items = Side(train.items, train.users, targets, train.n_items, train.n_users, chunk)
        largest = max(self.users.largest, self.items.largest, 1)
        w = self.width + 1
        # Work buffers, allocated once: the other side's augmented table (with a zero pad row),
        # the gathered ratings of one group, and every row's augmented Gram matrix.
        self.other_user = torch.zeros(train.n_users + 1, w, dtype=self.dtype, device=device)
        self.other_item = torch.zeros(train.n_items + 1, w, dtype=self.dtype, device=device)
        if self.biased:
            self.other_user[:-1, self.k] = 1
            self.other_item[:-1, self.k] = 1
        self.gathered = torch.empty(largest * w, dtype=self.dtype, device=device)
        n_solve = max(len(self.users.solve_rows), len(self.items.solve_rows), 1)
        self.gram = torch.empty(n_solve, w, w, dtype=self.dtype, device=device)

    def solve_side(
        self,
        side: Side,
        rows_factors: torch.Tensor,
        rows_bias: torch.Tensor | None,
        other: torch.Tensor,
        other_factors: torch.Tensor,
        other_bias: torch.Tensor | None,
    ) -> float:
        """Re-solve every row of ``side`` in place against the fixed ``other`` side.

        Returns the training mean squared error after the solve, read off the Gram
        matrices: for a ridge solution x of (A + lam I) x = F^T t, the residual is
        t^T t - x . F^T t - lam ||x||^2, so the loss costs no second pass over the ratings.
        """
        k, width, w = self.k, self.width, self.width + 1
        with torch.no_grad():
            # Refresh the other side's augmented table: [factors, 1 | bias] per row, zeros on the pad row.
            other[:-1, :k] = other_factors
            if other_bias is not None:
                other[:-1, width] = other_bias.squeeze(1)
            n = len(side.solve_rows)
            gram = self.gram[:n]
            for group in side.groups:
                b, length = group.size, group.length
                z = self.gathered[: b * length * w].view(b * length, w)
                torch.index_select(other, 0, group.other, out=z)
                z = z.view(b, length, w)
                # Target column: (r - mean) - other side's bias (the pad row holds 0 bias, 0 target).
                t = z[:, :, width]
                t.neg_().add_(group.target)
                torch.bmm(z.transpose(1, 2), z, out=gram[group.start : group.start + b])
            # gram = [[F^T F, F^T t], [t^T F, t^T t]]: add reg * n to the diagonal and solve.
            a = gram[:, :width, :width]
            lam = self.params["reg"] * side.degree.to(self.dtype)
            a.diagonal(dim1=1, dim2=2).add_(lam.unsqueeze(1))
            rhs = gram[:, :width, width:]
            factor, info = torch.linalg.cholesky_ex(a)
            if bool((info != 0).any()):
                bad = int((info != 0).sum())
                raise mfbench.MfbenchError(
                    f"als: {bad} normal-equation systems were not positive definite (non-finite factors?); try a larger reg"
                )
            solution = torch.cholesky_solve(rhs, factor).squeeze(2)
            sse = (
                gram[:, width, width].double().sum()
                - (solution * rhs.squeeze(2)).double().sum()
                - (lam.double() * solution.double().square().sum(1)).sum()
            )
            rows_factors.index_copy_(0, side.solve_rows, solution[:, :k])
            if rows_bias is not None:
                rows_bias.index_copy_(0, side.solve_rows, solution[:, k:width])
            if len(side.empty):
                rows_factors.index_fill_(0, side.empty, 0)
                if rows_bias is not None:
                    rows_bias.index_fill_(0, side.empty, 0)
        return max(float(sse), 0.0) / max(int(side.degree.sum()), 1)

    def run_epoch(self, epoch: int) -> float:
        t = self.tables
        ub, ib = t.get("user_bias"), t.get("item_bias")
        self.solve_side(self.users, t["user_factors"], ub, self.other_item, t["item_factors"], ib)
        # The item half-step's loss is the training MSE of the model as the epoch leaves it.
        return self.solve_side(self.items, t["item_factors"], ib, self.other_user, t["user_factors"], ub)

    def teardown(self) -> None:
        for name in ("users", "items", "other_user", "other_item", "gathered", "gram", "tables"):
            self.__dict__.pop(name, None)


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(ALS)
