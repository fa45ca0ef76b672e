"""Planted low-rank ratings: data whose best achievable RMSE is known (the noise σ).

Used by the data generators and by the strategy contract, so a strategy's
quality can be judged against a number rather than against another strategy.
Scales to tens of millions of ratings: indices are sampled, never a dense matrix.
"""

from __future__ import annotations

import numpy as np

from .ratings import Ratings

CHUNK = 1 << 20


def sample_pairs(
    rng: np.random.Generator,
    n_users: int,
    n_items: int,
    nnz: int,
    user_p: np.ndarray | None = None,
    item_p: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """About ``nnz`` distinct (user, item) pairs, each side drawn from its popularity (uniform if None).

    Pairs are drawn independently and duplicates dropped, then topped up, so the
    result has exactly ``min(nnz, n_users * n_items)`` pairs, in a random order.
    """
    target = min(int(nnz), n_users * n_items)
    keys = np.empty(0, dtype=np.int64)
    for _ in range(64):
        missing = target - len(keys)
        if missing <= 0:
            break
        draw = int(missing * 1.1) + 16
        users = rng.choice(n_users, size=draw, p=user_p) if user_p is not None else rng.integers(0, n_users, draw)
        items = rng.choice(n_items, size=draw, p=item_p) if item_p is not None else rng.integers(0, n_items, draw)
        new = users.astype(np.int64) * n_items + items
        keys = np.unique(np.concatenate([keys, new]))
    if len(keys) < target:
        raise ValueError(
            f"could only place {len(keys)} distinct ratings of {target} requested: "
            "the popularity is too concentrated for this many ratings"
        )
    keys = rng.permutation(keys)[:target]
    return keys // n_items, keys % n_items


def planted(
    n_users: int,
    n_items: int,
    nnz: int,
    rank: int,
    noise: float,
    seed: int,
    mean: float = 3.0,
    user_p: np.ndarray | None = None,
    item_p: np.ndarray | None = None,
) -> Ratings:
    """Ratings ``mean + <P[u], Q[i]> + noise * N(0, 1)`` with a planted rank-``rank`` P, Q.

    The planted signal has unit variance, so a perfect model's RMSE is ``noise``.
    """
    if min(n_users, n_items, nnz, rank) <= 0:
        raise ValueError("n_users, n_items, nnz and rank must be positive")
    if noise < 0:
        raise ValueError(f"noise must be non-negative, got {noise}")
    rng = np.random.default_rng(seed)
    scale = rank ** -0.25  # var(<P[u], Q[i]>) = rank * scale**4 = 1
    P = (rng.standard_normal((n_users, rank)) * scale).astype(np.float32)
    Q = (rng.standard_normal((n_items, rank)) * scale).astype(np.float32)
    users, items = sample_pairs(rng, n_users, n_items, nnz, user_p, item_p)
    values = np.empty(len(users), dtype=np.float32)
    for start in range(0, len(users), CHUNK):
        stop = start + CHUNK
        u, i = users[start:stop], items[start:stop]
        values[start:stop] = np.einsum("ij,ij->i", P[u], Q[i])
    values += mean
    values += (rng.standard_normal(len(values)) * noise).astype(np.float32)
    return Ratings.from_arrays(users, items, values, n_users, n_items)
