"""The seed notebook's model: the dot product of a user and an item embedding."""

from __future__ import annotations

import torch
from torch import nn

import mfbench


class DotProduct(nn.Module):
    """``prediction = <user_factors[u], item_factors[i]>``, with sparse-gradient embeddings."""

    def __init__(self, n_users: int, n_items: int, n_factors: int, init_std: float = 1.0, sparse: bool = True):
        super().__init__()
        self.user_factors = nn.Embedding(n_users, n_factors, sparse=sparse)
        self.item_factors = nn.Embedding(n_items, n_factors, sparse=sparse)
        if init_std != 1.0:  # nn.Embedding already draws N(0, 1): keep the notebook's draws untouched
            nn.init.normal_(self.user_factors.weight, std=init_std)
            nn.init.normal_(self.item_factors.weight, std=init_std)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.user_factors(users) * self.item_factors(items)).sum(1)


class Dot(mfbench.Model):
    """Two nn.Embedding(sparse=True) tables and their dot product, as in the notebook."""

    name = "dot"
    params = {"n_factors": 20, "init_std": 1.0}
    constraints = {"n_factors": ">= 1", "init_std": "non-negative"}
    #: What mfbench tune searches with the strategy's space: the width on a log scale (Rendle et al.
    #: 2019 tune the factors of SGD matrix factorization up to 512) and the initial spread.
    search_space = {"n_factors": mfbench.IntRange(8, 512, log=True), "init_std": mfbench.LogUniform(0.01, 0.3)}

    def build(self, train: mfbench.Ratings) -> nn.Module:
        return DotProduct(train.n_users, train.n_items, self.params["n_factors"], self.params["init_std"])


@mfbench.hookimpl
def mfbench_register_models(register):
    register(Dot)
