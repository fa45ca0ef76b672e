"""Biased matrix factorization: global mean + user bias + item bias + dot product.

The model that Surprise, LIBMF and most papers call SVD or biased MF.
"""

from __future__ import annotations

import torch
from torch import nn

import mfbench


class BiasedDotProduct(nn.Module):
    """``prediction = mean + user_bias[u] + item_bias[i] + <user_factors[u], item_factors[i]>``.

    ``global_mean`` is a buffer (the training mean, not learned); the biases are
    one-column sparse embeddings initialized to zero, the factors N(0, init_std).
    """

    def __init__(
        self, n_users: int, n_items: int, n_factors: int, global_mean: float, init_std: float = 0.1, sparse: bool = True
    ):
        super().__init__()
        self.user_factors = nn.Embedding(n_users, n_factors, sparse=sparse)
        self.item_factors = nn.Embedding(n_items, n_factors, sparse=sparse)
        self.user_bias = nn.Embedding(n_users, 1, sparse=sparse)
        self.item_bias = nn.Embedding(n_items, 1, sparse=sparse)
        nn.init.normal_(self.user_factors.weight, std=init_std)
        nn.init.normal_(self.item_factors.weight, std=init_std)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        self.register_buffer("global_mean", torch.tensor(float(global_mean)))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dot = (self.user_factors(users) * self.item_factors(items)).sum(1)
        biases = self.user_bias(users).squeeze(1) + self.item_bias(items).squeeze(1)
        return self.global_mean + biases + dot


class Biased(mfbench.Model):
    """Global mean + user and item biases + dot product (biased MF, 'SVD' in Surprise)."""

    name = "biased"
    params = {"n_factors": 20, "init_std": 0.1}
    constraints = {"n_factors": ">= 1", "init_std": "non-negative"}
    #: What mfbench tune searches with the strategy's space: the width on a log scale (Rendle et al.
    #: 2019 tune the factors of SGD matrix factorization up to 512) and the initial spread.
    search_space = {"n_factors": mfbench.IntRange(8, 512, log=True), "init_std": mfbench.LogUniform(0.01, 0.3)}

    def build(self, train: mfbench.Ratings) -> nn.Module:
        return BiasedDotProduct(train.n_users, train.n_items, self.params["n_factors"], train.mean(), self.params["init_std"])


@mfbench.hookimpl
def mfbench_register_models(register):
    register(Biased)
