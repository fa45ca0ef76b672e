"""The seed notebook's data: a uniformly sparse random matrix with integer ratings 1..4."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse

import mfbench
from mfbench.data import too_big


class SparseRandom(mfbench.Dataset):
    """scipy.sparse.rand matrix with integer ratings drawn uniformly from 1..4 (the notebook's data)."""

    name = "sprand"
    params = {"n_users": 1000, "n_items": 1000, "density": 0.01}
    constraints = {"n_users": ">= 1", "n_items": ">= 1", "density": "(0, 1]"}

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> list[str]:
        problems = super().check_params(params)
        if problems:
            return problems
        return too_big(cls.problem_prefix(), params["n_users"] * params["n_items"] * params["density"])

    def load(self, seed: int) -> mfbench.Ratings:
        n_users, n_items, density = self.params["n_users"], self.params["n_items"], self.params["density"]
        rng = np.random.default_rng(seed)
        # Passed positionally: the generator argument is `rng` in new SciPy, `random_state` in old.
        matrix = scipy.sparse.rand(n_users, n_items, density, "coo", None, rng)
        values = rng.integers(1, 5, size=matrix.nnz).astype(np.float32)
        return mfbench.Ratings.from_arrays(matrix.row, matrix.col, values, n_users, n_items)


@mfbench.hookimpl
def mfbench_register_datasets(register):
    register(SparseRandom)
