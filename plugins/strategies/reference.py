"""The reference strategy: the seed notebook's training loop, kept exactly as it ran.

One ``optim.SGD`` step per rating through autograd and ``MSELoss``, with fresh
one-element tensors made for every rating. It is deliberately slow: it is the
baseline every other strategy is measured against, so it keeps the notebook's
semantics *and* its cost. Do not optimize it; write a new strategy instead.
"""

from __future__ import annotations

import torch
from torch import nn

import mfbench


class Reference(mfbench.Strategy):
    """The notebook's loop: sparse embeddings, optim.SGD, MSELoss, one step per rating."""

    name = "reference"
    params = {"lr": 1e-6}
    constraints = {"lr": "positive"}
    exact = True
    reference = True
    deterministic = True
    #: What mfbench tune searches (validation RMSE decides).
    search_space = {"lr": mfbench.LogUniform(1e-6, 0.1)}

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        self.model = model
        self.device = device
        self.seed = seed
        self.loss_func = nn.MSELoss()
        self.optimizer = torch.optim.SGD(model.parameters(), lr=self.params["lr"])
        self.dtype = next(model.parameters()).dtype
        # The notebook iterated over numpy row/column arrays and read each rating
        # from the matrix; keep plain host arrays so each step builds its tensors as it did.
        self.rows = train.users.cpu().numpy()
        self.cols = train.items.cpu().numpy()
        self.values = train.values.cpu().double().numpy()

    def run_epoch(self, epoch: int) -> None:
        order = mfbench.epoch_permutation(len(self.rows), self.seed, epoch).numpy()
        model, optimizer, loss_func = self.model, self.optimizer, self.loss_func
        for index in order:
            optimizer.zero_grad()
            rating = torch.tensor([self.values[index]], dtype=self.dtype, device=self.device)
            row = torch.tensor([self.rows[index]], dtype=torch.long, device=self.device)
            col = torch.tensor([self.cols[index]], dtype=torch.long, device=self.device)
            prediction = model(row, col)
            loss = loss_func(prediction, rating)
            loss.backward()
            optimizer.step()
        return None


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(Reference)
