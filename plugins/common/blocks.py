"""The block grid that ``numba[schedule=blocked]`` and ``native-sgd`` train on: one layout, one plan.

LIBMF's cache trick, scheduled as DSGD (Gemulla et al. 2011): users and items are cut
into ``blocks`` contiguous id ranges each, which makes a ``blocks x blocks`` grid; the
ratings are stored cell by cell, and an epoch visits ``blocks`` strata of ``blocks``
cells that share no user range and no item range, so threads can train one stratum's
cells at once with no conflict. Both strategies take the grid and each epoch's plan from
here, so with the same seed and ``blocks`` they visit the ratings in the same order and
train the same model (up to the compilers' rounding): their ratio is the compiler's cost.
"""

from __future__ import annotations

import numpy as np

from mfbench import Tables

#: Order of the ratings inside one grid cell: shuffled once (LIBMF), or grouped by user (shuffled within).
CELL_ORDERS = ("shuffled", "user")
#: The grid's parameters, as both strategies declare them.
BLOCK_PARAMS = {
    # grid size per side; 0 picks it from the table sizes and threads (~1 MiB of rows per cell).
    "blocks": 0,
    # order inside a cell: "user" (grouped by user, shuffled within a user: each user row is read
    # once per cell) or "shuffled" (LIBMF's order).
    "cell_order": "user",
}
BLOCK_CONSTRAINTS = {"blocks": ">= 0", "cell_order": CELL_ORDERS}


def index_dtype(n: int) -> type:
    """int32 ids where they fit: less memory traffic per rating than int64."""
    return np.int32 if n < 2**31 else np.int64


def block_of(ids: np.ndarray, n: int, blocks: int) -> np.ndarray:
    """The block (contiguous id range, sizes differing by at most one id) of each id in ``0..n-1``."""
    return (ids.astype(np.int64) * blocks // n).astype(np.int64)


def block_layout(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    n_users: int,
    n_items: int,
    blocks: int,
    seed: int,
    by_user: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ratings stored cell by cell of a ``blocks x blocks`` grid, shuffled within each cell.

    Returns (users, items, values, offsets) with cell ``b = row_block * blocks + col_block``
    at ``offsets[b]:offsets[b + 1]``. The shuffle is a seeded permutation followed by a
    stable sort by cell, so it is reproducible from ``seed``.
    """
    cell = block_of(users, n_users, blocks) * blocks + block_of(items, n_items, blocks)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x6C6F636B]))
    shuffle = rng.permutation(len(cell))
    key = cell * n_users + users if by_user else cell
    order = shuffle[np.argsort(key[shuffle], kind="stable")]
    counts = np.bincount(cell, minlength=blocks * blocks)
    offsets = np.zeros(blocks * blocks + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return np.take(users, order), np.take(items, order), np.take(values, order), offsets


def auto_block_count(tables: Tables, threads: int) -> int:
    """Enough blocks that one cell's rows take ~1 MiB, at least 2 per thread (at most 64 per side)."""
    row_bytes = tables.user_factors.shape[1] * tables.user_factors.element_size()
    table_bytes = (tables.n_users + tables.item_factors.shape[0]) * row_bytes
    wanted = int(np.ceil(table_bytes / (1 << 20)))
    return int(min(64, max(2 * threads, wanted)))


def grid_size(requested: int, tables: Tables, threads: int) -> int:
    """The grid's blocks per side: ``requested``, or picked when 0; never more than there are users or items."""
    blocks = requested or auto_block_count(tables, threads)
    return max(1, min(blocks, tables.n_users, tables.n_items))


def stratum_plan(blocks: int, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This epoch's row-block and column-block permutations and the strata's order (from the seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), 0x626C6B]))
    return (
        rng.permutation(blocks).astype(np.int64),
        rng.permutation(blocks).astype(np.int64),
        rng.permutation(blocks).astype(np.int64),
    )
