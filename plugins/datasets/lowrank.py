"""Planted low-rank ratings: the data on which the best achievable RMSE is known (the noise σ).

``rating = mean + <P[u], Q[i]> + noise * N(0, 1)``, with the signal ``<P[u], Q[i]>``
scaled to unit variance, so a model that recovered P and Q exactly would score
RMSE = noise on held-out ratings: "how close to σ" is a quality scale that needs no
other strategy to compare against. Ratings are continuous (not rounded or clipped).
"""

from __future__ import annotations

import mfbench
from mfbench.data import plant
from mfbench.plugins.common.planted import Planted, ratings_count


class LowRank(Planted):
    """Planted rank-r ratings plus Gaussian noise σ, uniform over users and items: best RMSE ≈ σ."""

    name = "lowrank"

    def load(self, seed: int) -> mfbench.Ratings:
        p = self.params
        nnz = ratings_count(p)
        return plant(p["n_users"], p["n_items"], nnz, p["rank"], p["noise"], seed, p["mean"])[0]


@mfbench.hookimpl
def mfbench_register_datasets(register):
    register(LowRank)
