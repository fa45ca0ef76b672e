"""Planted low-rank ratings with power-law popularity: a few users and items carry most ratings.

Real rating data is skewed (in MovieLens the top 10% of movies hold over half of
the ratings), and skew changes how strategies behave: hot rows collide in Hogwild
updates, minibatches repeat the same items, caches hit more. The signal and noise
are those of ``lowrank``, so the best achievable RMSE is still the noise σ.
"""

from __future__ import annotations

import numpy as np

import mfbench
from mfbench.data import plant, power_law
from mfbench.plugins.common.planted import PLANTED_CONSTRAINTS, PLANTED_PARAMS, Planted, ratings_count

#: Salt for the stream that deals popularity ranks, kept apart from the planted draws.
POPULARITY_STREAM = 0x5A1F


class Zipf(Planted):
    """Planted low-rank ratings where user and item popularity follow power laws (rank**-exponent)."""

    name = "zipf"
    params = {**PLANTED_PARAMS, "user_exponent": 0.5, "item_exponent": 1.0}
    constraints = {
        **PLANTED_CONSTRAINTS,
        "user_exponent": "non-negative",
        "item_exponent": "non-negative",
    }

    def load(self, seed: int) -> mfbench.Ratings:
        p = self.params
        nnz = ratings_count(p)
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, POPULARITY_STREAM])
        user_p = power_law(p["n_users"], p["user_exponent"], rng)
        item_p = power_law(p["n_items"], p["item_exponent"], rng)
        return plant(p["n_users"], p["n_items"], nnz, p["rank"], p["noise"], seed, p["mean"], user_p, item_p)[0]


@mfbench.hookimpl
def mfbench_register_datasets(register):
    register(Zipf)
