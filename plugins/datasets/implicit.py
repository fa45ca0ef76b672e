"""Planted implicit feedback: interactions (value 1.0) whose ideal ranking is known.

A ranking metric (recall@k, NDCG@k) needs data on which the best possible ranking is known, as
``lowrank`` gives ratings whose best RMSE is known. Here each user ``u`` and item ``i`` has planted
factors ``p_u``, ``q_i`` (rank ``n_factors``, scaled so that ``<p_u, q_i>`` has unit variance) and
each item a popularity weight ``w_i ∝ rank**-popularity`` (the ranks dealt to items at random).
User ``u``'s interactions are ``n_u`` distinct items drawn, one after another without replacement,
from

    P(i | u) = softmax_i(<p_u, q_i> / temperature + log w_i)

(the Gumbel-top-k trick: the ``n_u`` largest of ``score + Gumbel noise``). The known signal is
that score: ranking every item by ``<p_u, q_i> / temperature + log w_i`` is the best any model can
do, and :meth:`ImplicitTruth.scores` returns it. A lower temperature sharpens the preferences
(an easier ranking problem); ``popularity`` 0 leaves only the factors, larger values let a few
items dominate as in real data. ``n_u`` is ``1 + Poisson(interactions - 1)``, at most ``n_items``.

Each interaction has a synthetic timestamp (seconds): a user starts at a random moment of a year
and then interacts every few hours, so a user's times increase and users interleave in time. The
order of a user's interactions is random, independent of the scores (no drift), so the temporal
split protocols cut this data as they would real logs, and every held-out interaction is still a
draw from the same known distribution.

Every (user, item) score is computed and drawn from, in blocks of users, so the cost grows with
``n_users * n_items``, not with the interactions: 1M interactions over 20,000 users x 5,000 items take
about 3 CPU seconds, over 100,000 x 10,000 about 30.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import mfbench
from mfbench.data import too_big

#: Salt for this generator's random stream, kept apart from the other planted generators' draws.
STREAM = 0x1A1C
#: Scores computed at once (users x items): bounds the temporary score, noise and index blocks.
BLOCK_CELLS = 1 << 22
#: Beyond this many (user, item) scores the generator would take minutes: refused while planning.
MAX_CELLS = 5 * 10**9
#: Timestamps: the first moment (2020-09-13), the span over which users start, the mean gap.
EPOCH = 1_600_000_000
START_SPAN = 365 * 86_400
MEAN_GAP = 6 * 3_600


@dataclass(frozen=True)
class ImplicitTruth:
    """What generated planted implicit data: ``P(i | u) = softmax_i(<p_u, q_i> / temperature + log w_i)``."""

    user_factors: np.ndarray  # (n_users, n_factors) float32
    item_factors: np.ndarray  # (n_items, n_factors) float32
    log_popularity: np.ndarray  # (n_items,) float32, log w_i (the w_i sum to 1)
    temperature: float

    def scores(self, users) -> np.ndarray:
        """The planted score of every item for each of ``users``: an ``(len(users), n_items)`` float32 array
        whose order per row is the ideal ranking (the logits of the softmax the interactions came from)."""
        rows = np.take(self.user_factors, np.asarray(users, dtype=np.int64), axis=0)
        out = rows @ self.item_factors.T
        out *= np.float32(1.0 / self.temperature)
        out += self.log_popularity
        return out


def _log_popularity(rng: np.random.Generator, n_items: int, popularity: float) -> np.ndarray:
    """``log w_i`` for weights ``∝ rank**-popularity``, normalized, the ranks dealt to items at random."""
    log_w = -float(popularity) * np.log(np.arange(1, n_items + 1, dtype=np.float64))
    log_w -= np.logaddexp.reduce(log_w)
    return log_w[rng.permutation(n_items)].astype(np.float32)


def _gumbel_top(scores: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row by row, ``counts[r]`` distinct columns drawn without replacement from ``softmax(scores[r])``,
    in a random order, concatenated.

    The ``k`` largest of ``score + Gumbel(0, 1)`` are such a draw (largest first: the order of successive
    draws), so the first ``counts[r]`` of the ``max(counts)`` largest are one for row ``r``. The noise is
    made from uniforms and two logarithms, and torch's top-k picks: together about half the time of
    numpy's exponential draws and ``np.argpartition``.
    """
    uniform = rng.random(scores.shape, dtype=np.float32)
    with np.errstate(divide="ignore"):  # a uniform of exactly 0 is a key of -inf: never chosen
        np.log(uniform, out=uniform)
        np.negative(uniform, out=uniform)
        np.log(uniform, out=uniform)
    scores -= uniform  # + Gumbel(0, 1)
    k = int(counts.max())
    top = torch.topk(torch.from_numpy(scores), k, dim=1, sorted=True).indices.numpy()
    chosen = np.arange(k) < counts[:, None]
    shuffle = rng.random(top.shape)
    shuffle[~chosen] = 2.0  # the chosen first, each row's in a random order
    top = np.take_along_axis(top, np.argsort(shuffle, axis=1), axis=1)
    return top[chosen]


def plant_implicit(
    n_users: int,
    n_items: int,
    n_factors: int,
    interactions: float,
    popularity: float,
    temperature: float,
    seed: int,
) -> tuple[mfbench.Ratings, ImplicitTruth]:
    """Planted implicit interactions (see the module's description) and the truth behind them.

    The same arguments give the same interactions, user by user, each user's in time order.
    """
    if min(n_users, n_items, n_factors) <= 0:
        raise mfbench.MfbenchError(f"n_users, n_items and n_factors must be positive, got {n_users}, {n_items}, {n_factors}")
    if not (interactions >= 1 and popularity >= 0 and temperature > 0):
        raise mfbench.MfbenchError(
            f"need interactions >= 1, popularity >= 0 and temperature > 0, got {interactions}, {popularity}, {temperature}"
        )
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, STREAM])
    scale = np.float32(n_factors**-0.25)  # var(<p_u, q_i>) = n_factors * (scale**2)**2 = 1
    truth = ImplicitTruth(
        rng.standard_normal((n_users, n_factors), dtype=np.float32) * scale,
        rng.standard_normal((n_items, n_factors), dtype=np.float32) * scale,
        _log_popularity(rng, n_items, popularity),
        float(temperature),
    )
    counts = np.minimum(1 + rng.poisson(interactions - 1.0, n_users), n_items).astype(np.int64)
    block = max(1, BLOCK_CELLS // n_items)
    items = np.empty(int(counts.sum()), dtype=np.int64)
    filled = 0
    for start in range(0, n_users, block):
        stop = min(start + block, n_users)
        chosen = _gumbel_top(truth.scores(np.arange(start, stop)), counts[start:stop], rng)
        items[filled : filled + len(chosen)] = chosen
        filled += len(chosen)
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    gaps = 1 + rng.exponential(MEAN_GAP, len(items)).astype(np.int64)
    starts = EPOCH + rng.integers(0, START_SPAN, n_users)
    first = np.cumsum(counts) - counts
    clock = np.cumsum(gaps)
    times = np.repeat(starts - (clock[first] - gaps[first]), counts) + clock  # per user: start + its own gaps
    values = np.ones(len(items), dtype=np.float32)
    return mfbench.Ratings.from_arrays(users, items, values, n_users, n_items, times), truth


class ImplicitPlanted(mfbench.Dataset):
    """Planted implicit feedback: each user's items drawn from softmax(<p_u, q_i>/temperature + log popularity)."""

    name = "implicit-planted"
    params = {
        "n_users": 2000,
        "n_items": 1000,
        "n_factors": 8,
        "interactions": 20.0,
        "popularity": 0.5,
        "temperature": 0.5,
    }
    constraints = {
        "n_users": ">= 1",
        "n_items": ">= 1",
        "n_factors": ">= 1",
        "interactions": ">= 1",
        "popularity": "non-negative",
        "temperature": "positive",
    }

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> list[str]:
        problems = super().check_params(params)
        if problems:
            return problems
        prefix = cls.problem_prefix()
        cells = params["n_users"] * params["n_items"]
        if cells > MAX_CELLS:
            problems.append(
                f"{prefix}{params['n_users']:,} users x {params['n_items']:,} items is {cells:,} planted scores to draw "
                f"from (at most {MAX_CELLS:,}, or generating takes many minutes): ask for fewer users or items"
            )
        return problems + too_big(prefix, params["n_users"] * min(params["interactions"], params["n_items"]))

    def load(self, seed: int) -> mfbench.Ratings:
        p = self.params
        ratings, _ = plant_implicit(
            p["n_users"], p["n_items"], p["n_factors"], p["interactions"], p["popularity"], p["temperature"], seed
        )
        self.facts = {"interactions": ratings.nnz, "mean_per_user": round(ratings.nnz / p["n_users"], 2)}
        return ratings


@mfbench.hookimpl
def mfbench_register_datasets(register):
    register(ImplicitPlanted)
