"""scikit-surprise's SVD as an mfbench strategy: per-rating SGD in Cython, timed as whole fits.

What Surprise does, read from its source (``SVD.sgd`` in
``surprise/prediction_algorithms/matrix_factorization.pyx``, 1.1.5):

- Every ``fit`` draws fresh factors (N(init_mean, init_std_dev) from its
  ``random_state``) and zero biases, then runs ``n_epochs`` passes. It cannot
  continue from trained factors, so this strategy is whole-fit only
  (``stepwise = False``): the runner times one ``fit(epochs)`` call, which
  trains ``n_epochs=epochs`` and then copies Surprise's arrays into the model
  (``(n_users + n_items) * k`` float64 -> model dtype, small next to training).
- Each pass visits ``trainset.all_ratings()``: user by user in the trainset's
  order, each user's ratings in their order, the same order every epoch and no
  shuffling. The trainset built here lists users in order of their first
  training rating and each user's ratings in training order, as Surprise's own
  ``Dataset`` would from the same rows.
- The step is ``p_u += lr_all * (err * q_i - reg_all * p_u)`` with
  ``err = r - pred`` and both rows updated from their pre-step values (biases
  alike). That is SGD on mfbench's per-rating objective
  ``(pred - r)**2 + reg * (||p_u||^2 + ||q_i||^2 [+ b_u^2 + b_i^2])`` with step
  ``lr`` when ``lr_all = 2 * lr`` and ``reg_all = reg``: mfbench's ``lr`` and
  ``reg`` mean the same step here as for every other per-rating SGD strategy.
  Surprise computes in float64.

Models: ``biased`` is Surprise's SVD(biased=True), with the trainset's global
mean set to the model's ``global_mean`` buffer so both predict from the same
mean; ``dot`` is SVD(biased=False). Users or items without training ratings
keep Surprise's random initial factors (and zero biases) in the copied model,
as they keep their initial draw under any other SGD strategy; Surprise's own
``estimate`` ignores those rows instead.

Setup (untimed) builds the :class:`surprise.Trainset` straight from the COO
tensors, inner ids equal to mfbench's indices; it makes two Python tuples per
rating (rough, on a busy 2-core machine: ~1 s at 1M ratings, ~15 s at 10M,
~3.5 GB peak at 10M).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

import mfbench
from mfbench.plugins.common.peers import collector_paused, coo_arrays, copy_rows, missing, model_tables, setup_tables, version

DISTRIBUTION = "scikit-surprise"

UNAVAILABLE = missing(DISTRIBUTION, "surprise")  # optional: registered anyway, set aside with the reason
if UNAVAILABLE is None:
    import surprise
else:
    surprise = None

ORDER = (
    "Surprise's trainset order, the same every epoch, no shuffling: users in order of their first "
    "training rating, each user's ratings consecutively in training order"
)


def grouped(keys: np.ndarray, others: np.ndarray, values: np.ndarray, by_first_appearance: bool) -> dict[int, list]:
    """``{key: [(other, value), ...]}`` with each key's pairs in input order (Surprise's ``ur``/``ir``).

    Keys are inserted in order of first appearance when ``by_first_appearance``,
    else in ascending order. One stable sort, one list of tuples sliced per key:
    no Python loop per rating.
    """
    table: defaultdict[int, list] = defaultdict(list)
    if len(keys) == 0:
        return table
    order = np.argsort(keys, kind="stable")
    sorted_keys = np.take(keys, order)
    starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    ends = np.append(starts[1:], len(sorted_keys))
    pairs = list(zip(np.take(others, order).tolist(), np.take(values, order).astype(np.float64).tolist(), strict=True))
    key_list, start_list, end_list = sorted_keys[starts].tolist(), starts.tolist(), ends.tolist()
    # With a stable sort, order[start] is the key's first position in the input.
    sequence = np.argsort(np.take(order, starts), kind="stable").tolist() if by_first_appearance else range(len(starts))
    for j in sequence:
        table[key_list[j]] = pairs[start_list[j] : end_list[j]]
    return table


def build_trainset(train: mfbench.Ratings, global_mean: float | None = None) -> surprise.Trainset:
    """A Surprise trainset whose inner ids are mfbench's user and item indices.

    ``n_users``/``n_items`` are the full index ranges (Surprise sizes its factor
    arrays by them), so a user without training ratings still has a row.
    ``global_mean`` (the biased model's buffer) replaces Surprise's own float64 mean.
    """
    users, items, values = coo_arrays(train)
    with collector_paused():
        ur = grouped(users, items, values, by_first_appearance=True)
        ir = grouped(items, users, values, by_first_appearance=False)
    scale = (float(values.min()), float(values.max())) if len(values) else (0.0, 0.0)
    trainset = surprise.Trainset(ur, ir, train.n_users, train.n_items, len(values), scale, {}, {})
    # Raw ids are the indices themselves: map them lazily instead of two dicts of n entries.
    trainset._raw2inner_id_users = IdentityIds(train.n_users)
    trainset._raw2inner_id_items = IdentityIds(train.n_items)
    if global_mean is not None:
        trainset._global_mean = float(global_mean)
    return trainset


class IdentityIds(Mapping):
    """``{i: i for i in range(n)}`` without storing it (Surprise's raw-to-inner id maps)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __getitem__(self, key: Any) -> int:
        if isinstance(key, (int, np.integer)) and 0 <= int(key) < self.n:
            return int(key)
        raise KeyError(key)

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n


class SurpriseSVD(mfbench.Strategy):
    """scikit-surprise's SVD (biased or not): per-rating SGD in Cython, user-grouped order, whole fits."""

    name = "surprise-svd"
    params = {
        # mfbench's per-rating step, as for every SGD strategy; Surprise gets lr_all = 2 * lr (module doc).
        # Surprise's own lr_all 0.005 (lr 0.0025) leaves held-out RMSE at 1.05 after 30 epochs on the
        # contract's planted data; lr 0.01 reaches 0.564 (biased) and 0.572 (dot) at 30 (see the tests).
        "lr": 0.01,
        # L2 on every row (and bias) a rating touches: Surprise's reg_all (its own default is 0.02;
        # 0.05 is mfbench's per-rating SGD default, which keeps 20 factors from overfitting real ratings).
        "reg": 0.05,
        # Surprise's init_std_dev (its default): it draws its own start, the model's initial weights are not used.
        "init_std": 0.1,
        # Surprise's init_mean. None: 0 for the biased model; for dot sqrt(training mean / k), so that
        # p.q starts at the mean, the start the biased model gets from its global mean. From 0, dot's
        # factors spend their first epochs learning the mean and end above 0.575 at every lr tried.
        "init_mean": None,
    }
    constraints = {"lr": "positive", "reg": "non-negative", "init_std": "non-negative"}
    devices = ("cpu",)
    exact = False  # the reference's step, but Surprise visits ratings in its own fixed order
    deterministic = True  # one thread; the case seed is Surprise's random_state
    stepwise = False
    unavailable = UNAVAILABLE
    #: What mfbench tune searches (validation RMSE decides).
    search_space = {"lr": mfbench.LogUniform(1e-3, 0.1), "reg": mfbench.LogUniform(1e-3, 0.3)}

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> list[str]:
        """The declared constraints, and init_mean: a default of None takes any type, so its type is checked here."""
        problems = super().check_params(params)
        mean = params.get("init_mean")
        if mean is not None and (isinstance(mean, bool) or not isinstance(mean, (int, float)) or not math.isfinite(mean)):
            problems.append(f"{cls.problem_prefix()}init_mean must be a number or None (picked from the data), got {mean!r}")
        return problems

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        tables, reason = model_tables(self, model, device, biases=True)
        return reason if tables is None else None

    def library_options(self, k: int, biased: bool, mean: float, seed: int) -> dict[str, Any]:
        """The keyword arguments given to ``surprise.SVD`` (without ``n_epochs``)."""
        p = self.params
        init_mean = p["init_mean"]
        if init_mean is None:
            init_mean = 0.0 if biased else math.sqrt(max(mean, 0.0) / k)
        return {
            "n_factors": k,
            "biased": biased,
            "lr_all": 2.0 * p["lr"],
            "reg_all": p["reg"],
            "init_mean": float(init_mean),
            "init_std_dev": p["init_std"],
            "random_state": int(seed) & 0xFFFFFFFF,
        }

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        self.tables = tables = setup_tables(self, model, train, device, biases=True)
        self.biased = tables.user_bias is not None
        self.trainset = build_trainset(train, tables.global_mean if self.biased else None)
        self.options = self.library_options(tables.user_factors.shape[1], self.biased, train.mean(), seed)
        self.algo = None
        self.epochs = 0

    def fit(self, epochs: int) -> float | None:
        """Surprise's whole fit of ``epochs`` epochs, then its arrays copied into the model (both timed)."""
        self.algo = surprise.SVD(n_epochs=epochs, **self.options)
        self.algo.fit(self.trainset)
        self.epochs = epochs
        copy_rows(self.tables.user_factors, self.algo.pu)
        copy_rows(self.tables.item_factors, self.algo.qi)
        if self.biased:
            copy_rows(self.tables.user_bias, self.algo.bu)
            copy_rows(self.tables.item_bias, self.algo.bi)
        return None

    def info(self) -> Mapping[str, Any] | None:
        return {
            "library": DISTRIBUTION,
            "version": version(DISTRIBUTION),
            "whole_fit": True,
            "epochs_per_fit": self.epochs,
            "threads": 1,
            "order": ORDER,
            "library_options": dict(getattr(self, "options", {})),
            "start": "Surprise's own N(init_mean, init_std_dev) draw from random_state; zero biases",
        }

    def teardown(self) -> None:
        self.algo = None
        self.trainset = None


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(SurpriseSVD)
