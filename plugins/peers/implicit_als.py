"""implicit's ALS (``implicit.cpu.als.AlternatingLeastSquares``) as an mfbench strategy, one iteration per epoch.

Its objective is implicit feedback (Hu, Koren and Volinsky 2008): every
user-item pair is a preference of 1 (rated) or 0 (not), weighted by a
confidence that grows with the rating. It does not predict ratings, so its
held-out RMSE says nothing about it: ``objective = "implicit"``, and it is
compared on time per iteration only.

What implicit 0.7.3 does, read from its source (``implicit/cpu/als.py``):

- ``fit`` draws factors only when ``user_factors``/``item_factors`` are None,
  so a second ``fit`` continues from the trained ones: with ``iterations=1``
  each ``run_epoch`` is one ALS iteration (all users, then all items, each by
  three conjugate-gradient steps), and N such calls give the same factors, bit
  for bit, as one fit of N iterations (tested). Each call also transposes the
  user x item matrix (~1% of an iteration at 1M ratings), inside the timed epoch.
- Its input is a user x item ``scipy.sparse`` CSR matrix; the ratings are the
  confidences (``alpha`` scales them; negative values mean "disliked").
- Its factors are float32 arrays of exactly (n, factors) on the CPU; after each
  iteration they are copied into the model (inside the timed epoch: (n_users +
  n_items) * k floats), whose ``model(u, i)`` is then implicit's own score
  ``user_factors[u] . item_factors[i]``.
- The start is implicit's own: uniform [0, 0.01) from ``random_state`` (the
  case seed), not the model's initial weights.
- implicit warns that a multi-threaded BLAS makes it "10x slower" and asks for
  one BLAS thread: each fit runs under ``threadpoolctl.threadpool_limits(1,
  "blas")`` (restored after the call); ``threads`` sets implicit's own OpenMP threads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

import mfbench
from mfbench.plugins.common.peers import coo_arrays, copy_rows, missing, model_tables, setup_tables, version

DISTRIBUTION = "implicit"

UNAVAILABLE = missing(DISTRIBUTION, "scipy.sparse", "implicit.cpu.als")  # optional: registered anyway, set aside
if UNAVAILABLE is None:
    import scipy.sparse
    from implicit.cpu.als import AlternatingLeastSquares
else:
    AlternatingLeastSquares = None

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # implicit depends on it; without it BLAS keeps its own thread count
    threadpool_limits = None


def one_blas_thread():
    """A context in which BLAS uses one thread, as implicit asks (a no-op without threadpoolctl)."""
    return threadpool_limits(1, "blas") if threadpool_limits is not None else contextlib.nullcontext()


class ImplicitALS(mfbench.Strategy):
    """implicit's ALS (conjugate gradient): an implicit-feedback objective, compare it on time per iteration."""

    name = "implicit-als"
    params = {
        # implicit's regularization (its default): L2 on each user's and item's factors per solve.
        "reg": 0.01,
        # implicit's alpha (its default): confidence = alpha * rating.
        "alpha": 1.0,
        # implicit's num_threads (its default 0 means every core); one is steady on a shared machine.
        "threads": 1,
    }
    constraints = {"reg": "non-negative", "alpha": "positive", "threads": ">= 1"}
    devices = ("cpu",)
    exact = False
    deterministic = True  # each row's solve is independent of thread timing; the seed is random_state
    objective = "implicit"
    scales_with = "threads"
    unavailable = UNAVAILABLE
    #: What mfbench tune searches (validation RMSE decides).
    search_space = {"reg": mfbench.LogUniform(1e-3, 1.0), "alpha": mfbench.LogUniform(0.1, 100.0)}

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        tables, reason = model_tables(self, model, device, biases=False)
        return reason if tables is None else None

    def library_options(self, k: int, seed: int) -> dict[str, Any]:
        """The keyword arguments given to ``AlternatingLeastSquares``."""
        p = self.params
        return {
            "factors": k,
            "regularization": p["reg"],
            "alpha": p["alpha"],
            "dtype": np.float32,
            "use_cg": True,
            "iterations": 1,
            "calculate_training_loss": False,
            "num_threads": p["threads"],
            "random_state": int(seed) & 0xFFFFFFFF,
        }

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        self.tables = tables = setup_tables(self, model, train, device, biases=False)
        users, items, values = coo_arrays(train)
        # Duplicate (user, item) pairs, if a data set has them, add up their confidences.
        self.user_items = scipy.sparse.csr_matrix(
            (values, (users, items)), shape=(train.n_users, train.n_items), dtype=np.float32
        )
        self.options = self.library_options(tables.user_factors.shape[1], seed)
        with one_blas_thread():  # implicit checks the BLAS thread count when constructed
            self.als = AlternatingLeastSquares(**self.options)
        self.iterations = 0

    def run_epoch(self, epoch: int) -> float | None:
        """One ALS iteration (continuing from the last), then its factors copied into the model."""
        with one_blas_thread():
            self.als.fit(self.user_items, show_progress=False)
        self.iterations += 1
        copy_rows(self.tables.user_factors, self.als.user_factors)
        copy_rows(self.tables.item_factors, self.als.item_factors)
        return None

    def info(self) -> Mapping[str, Any] | None:
        return {
            "library": DISTRIBUTION,
            "version": version(DISTRIBUTION),
            "whole_fit": False,
            "iterations": getattr(self, "iterations", 0),
            "threads": self.params["threads"],
            "blas_threads": 1 if threadpool_limits is not None else None,
            "objective": "implicit feedback (confidence-weighted preferences), not ratings",
            "solver": "conjugate gradient, 3 steps per row per half-iteration",
            "library_options": {
                k: (v if not isinstance(v, type) else np.dtype(v).name) for k, v in getattr(self, "options", {}).items()
            },
        }

    def teardown(self) -> None:
        self.als = None
        self.user_items = None


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(ImplicitALS)
