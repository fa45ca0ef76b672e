"""Per-rating SGD compiled with numba, in place on the model's own weights.

The reference's arithmetic (error ``e = pred - r``, the MSE gradient's factor 2,
both rows stepped from their pre-step values, optional L2 ``reg`` on the rows a
rating touches) as one machine-code loop over ratings. The kernels work on numpy
views of the model's parameter storage (``weight.detach().numpy()`` shares memory
with a CPU tensor), so every update lands in the parameters the runner evaluates;
nothing is copied per epoch.

Schedules (parameter ``schedule``):

- ``"epoch"``: the ratings in ``mfbench.epoch_permutation(n, seed, epoch)`` order.
  With one thread this is the reference's order, so the strategy is exact. With
  ``threads > 1`` each numba thread takes a contiguous share of that order and
  all of them update the tables at once without locks (Hogwild, Niu et al. 2011):
  concurrent steps on one row may overwrite each other, and the result depends on
  thread timing.
- ``"blocked"``: LIBMF's cache trick, scheduled as DSGD (Gemulla et al. 2011).
  Users and items are cut into ``blocks`` contiguous id ranges each, which makes a
  ``blocks x blocks`` grid; ``setup`` stores the ratings block by block, shuffled
  once within each block. An epoch is ``blocks`` strata; a stratum is ``blocks``
  grid cells that share no user range and no item range, so threads can train the
  cells of one stratum concurrently with no conflict, and a thread's rows are a
  few contiguous slabs of the tables that stay in cache. Which cells make up each
  stratum and the strata's order are drawn per epoch from the seed. Because cells
  of a stratum are disjoint, the trained model does not depend on the thread count
  or on thread timing: it is the same, bit for bit, for any ``threads``. Inside a
  cell the ratings are grouped by user (``cell_order="user"``; a user has a few
  ratings per cell, so little randomness is lost and each user row is read once
  per cell) or kept in LIBMF's shuffled order (``cell_order="shuffled"``).

Rough speeds (updates/s, biased model, k=20, measured on the shared 2-core AMD EPYC
with a load average of 1.5-5 from other tenants, so noisy: measure again before relying on them):
sprand 1000x1000 1% (8,100 training ratings, dot): epoch 1 thread ~24M (of its
~0.63 ms, ~0.16 ms is ``epoch_permutation``), blocked ~21-34M. Planted 20k x 5k,
1M: epoch ~7-9M with 1 thread (3.5x slower before the gather buffer), ~11M with
2; blocked 15-26M with 1 thread, ~14-23M with 2. Planted 200k x 50k, 10M:
epoch ~3M with 1 thread (0.36 s of each ~3 s epoch is the permutation),
~3.5M with 2; blocked/shuffled 11-12M (20 blocks; 5M with 8, 3.7M with 4),
blocked/user 15-19M with 1 thread, 10-16M with 2 (16 blocks best). Two threads
rarely beat one on that machine: every stratum ends in a barrier, and a
descheduled thread stalls both.

Defaults: ``schedule="epoch"`` with one thread, because that is the exact
reference order (the contract checks exactness on the defaults); for speed on
large data choose ``schedule=blocked``. ``blocks=0`` picks ~1 MiB of factor rows
per cell (20 per side at 10M, k=20), at least two per thread.

``threads=1`` never enters numba's thread pool (no parallel-region launch cost).
Compilation (1-3 s on first use in a process) happens in ``setup``, on a scratch
problem of the model's dtype, never on the real tables.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

import mfbench
from mfbench import roofline
from mfbench.plugins.strategies.scripted import Tables, find_tables

try:
    import llvmlite.binding as llvm
    import numba
    from numba import prange
except ImportError as exc:  # an optional extra: the class still registers, marked unavailable
    numba = llvm = None
    prange = range
    UNAVAILABLE: str | None = f"numba is not installed ({exc}); install it with: pip install 'mfbench[numba]'"
else:
    UNAVAILABLE = None

SCHEDULES = ("epoch", "blocked")
#: Order of the ratings inside one grid cell: shuffled once (LIBMF), or grouped by user (shuffled within).
CELL_ORDERS = ("shuffled", "user")
DTYPES = (torch.float32, torch.float64)
#: Ratings, users and items of the scratch problem that compiles the kernels in setup.
WARMUP_SHAPE = (8, 5, 3)
#: LLVM may reorder sums and fuse multiply-adds, nothing else (NaN and infinity keep their meaning, so a
#: diverging run still shows as NaN). Measured: the step's dot product vectorizes, 42->62M updates/s on
#: 9k in-cache ratings, 21->29M at 200k (one thread, side by side in one run).
FASTMATH = {"reassoc", "contract"}
#: Ratings the epoch schedule gathers at once into a per-thread buffer (fits in L1 with its reads).
GATHER = 1024
#: LLVM options set before the kernels compile. LLVM's loop vectorizer interleaves a vector loop 4x
#: by default, so a k=20 float32 row never enters the 64-wide main loop: the dot product ran as two
#: 8-wide steps plus 4 scalar ones and the update as five 4-wide steps. Without interleaving both are
#: one 16-wide and one 4-wide step, as GCC compiles native-sgd's C. Measured side by side with
#: native-sgd (interleaved epochs, 1 thread, shared 2-core machine under load): 1M ratings
#: numba/native 0.85-0.94 -> 0.96-1.12, 10M (32 blocks) 0.87 -> 0.94. LLVM's options are
#: process-wide: numba functions compiled later in the process are compiled this way too (it
#: changes speed, not results beyond rounding).
LLVM_OPTIONS = ("-force-vector-interleave=1",)


# ---------------------------------------------------------------------------------------------
# Kernels: plain Python functions, compiled by :func:`compiled_kernels` (numba resolves ``prange``
# from this module's globals: a parallel range when numba is present).


def sgd_step(P, Q, bu, bi, biased, u, i, r, mean, lr2, decay, zero):
    """One reference SGD step on rating ``r`` of (``u``, ``i``); returns the error before the step.

    ``lr2`` is ``2 * lr`` and ``decay`` is ``1 - 2 * lr * reg``: the step of
    ``(pred - r)**2 + reg * ||p_u||**2`` on ``p_u`` is ``p_u * decay - lr2 * err * q_i``.
    The kernels compile with FASTMATH (reassociation and fused multiply-adds only): the dot
    product's sum may be reordered, which changes results by rounding, never by more.
    """
    pu = P[u]  # 1-D row views: LLVM keeps the row addresses in registers (~20% faster than P[u, j])
    qi = Q[i]
    k = pu.shape[0]
    pred = zero
    for j in range(k):  # vectorized by LLVM, which FASTMATH's "reassoc" allows to reorder the sum
        pred += pu[j] * qi[j]
    if biased:
        pred += mean + bu[u] + bi[i]
    err = pred - r
    g = lr2 * err
    for j in range(k):
        p = pu[j]
        q = qi[j]
        pu[j] = p * decay - g * q
        qi[j] = q * decay - g * p
    if biased:
        bu[u] = bu[u] * decay - g
        bi[i] = bi[i] * decay - g
    return err


def epoch_pass(P, Q, bu, bi, biased, users, items, values, order, threads, mean, lr2, decay, zero, sse):
    """Visit ratings ``order[t]``; thread ``c`` of ``threads`` takes the ``c``-th contiguous share.

    Compiled serially this is the exact reference order (``threads`` must be 1);
    compiled with ``parallel=True`` the shares run concurrently (Hogwild).
    ``sse[c]`` receives share ``c``'s sum of squared errors.

    The ratings are first gathered ``GATHER`` at a time into a small buffer: those
    loads are independent of each other, so the CPU overlaps their cache misses,
    which it cannot do when each one sits inside the dependent SGD step (3x at 1M ratings).
    """
    n = order.shape[0]
    for c in prange(threads):
        lo = n * c // threads
        hi = n * (c + 1) // threads
        chunk_u = np.empty(GATHER, dtype=users.dtype)
        chunk_i = np.empty(GATHER, dtype=items.dtype)
        chunk_r = np.empty(GATHER, dtype=values.dtype)
        total = 0.0
        for start in range(lo, hi, GATHER):
            stop = min(start + GATHER, hi)
            for t in range(start, stop):
                idx = order[t]
                chunk_u[t - start] = users[idx]
                chunk_i[t - start] = items[idx]
                chunk_r[t - start] = values[idx]
            for t in range(stop - start):
                err = sgd_step(P, Q, bu, bi, biased, chunk_u[t], chunk_i[t], chunk_r[t], mean, lr2, decay, zero)
                total += np.float64(err) * np.float64(err)
        sse[c] = total


def blocked_pass(P, Q, bu, bi, biased, users, items, values, offsets, blocks, row_perm, col_perm, strata,
                 mean, lr2, decay, zero, sse):
    """Visit the grid stratum by stratum; the cells of one stratum share no rows and run concurrently.

    Stratum ``s`` holds the cells (``row_perm[j]``, ``col_perm[(j + strata[s]) % blocks]``),
    ``j = 0..blocks-1``; cell ``b``'s ratings are ``offsets[b]:offsets[b + 1]`` of the stored
    arrays, visited in stored order. ``sse[b]`` receives cell ``b``'s sum of squared errors.
    """
    for s in range(blocks):
        shift = strata[s]
        for j in prange(blocks):
            cell = row_perm[j] * blocks + col_perm[(j + shift) % blocks]
            total = 0.0
            for t in range(offsets[cell], offsets[cell + 1]):
                err = sgd_step(P, Q, bu, bi, biased, users[t], items[t], values[t], mean, lr2, decay, zero)
                total += np.float64(err) * np.float64(err)
            sse[cell] = total


class Kernels:
    """The compiled kernels: serial ones (never touch numba's thread pool) and parallel ones."""

    def __init__(self) -> None:
        for option in LLVM_OPTIONS:  # before the first call compiles anything below
            llvm.set_option("", option)
        options = dict(cache=False, nogil=True, fastmath=FASTMATH)
        step = numba.njit(inline="always", **options)(sgd_step)
        scope = dict(globals(), sgd_step=step)
        self.epoch_serial = numba.njit(**options)(rebind(epoch_pass, scope))
        self.epoch_parallel = numba.njit(parallel=True, **options)(rebind(epoch_pass, scope))
        self.blocked_serial = numba.njit(**options)(rebind(blocked_pass, scope))
        self.blocked_parallel = numba.njit(parallel=True, **options)(rebind(blocked_pass, scope))


def rebind(function, scope: dict[str, Any]):
    """A copy of ``function`` that resolves globals in ``scope`` (so it calls the compiled step)."""
    copy = types.FunctionType(function.__code__, scope, function.__name__, function.__defaults__, function.__closure__)
    copy.__doc__ = function.__doc__
    return copy


_KERNELS: Kernels | None = None


def compiled_kernels() -> Kernels:
    """The process's kernels, made on first use (numba compiles each signature on its first call)."""
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = Kernels()
    return _KERNELS


# ---------------------------------------------------------------------------------------------
# Data layouts


def index_dtype(n: int) -> type:
    """int32 ids where they fit: less memory traffic per rating than int64."""
    return np.int32 if n < 2**31 else np.int64


def block_of(ids: np.ndarray, n: int, blocks: int) -> np.ndarray:
    """The block (contiguous id range, sizes differing by at most one id) of each id in ``0..n-1``."""
    return (ids.astype(np.int64) * blocks // n).astype(np.int64)


def block_layout(users: np.ndarray, items: np.ndarray, values: np.ndarray, n_users: int, n_items: int,
                 blocks: int, seed: int, by_user: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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


def stratum_plan(blocks: int, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This epoch's row-block and column-block permutations and the strata's order (from the seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), 0x626C6B]))
    return (rng.permutation(blocks).astype(np.int64), rng.permutation(blocks).astype(np.int64),
            rng.permutation(blocks).astype(np.int64))


class NumbaSGD(mfbench.Strategy):
    """Per-rating SGD compiled by numba on the model's own weights: exact with one thread, Hogwild or blocked with more."""

    name = "numba"
    params = {
        # per-rating step on (pred - r)^2 (the gradient carries the factor 2), as every mfbench SGD.
        "lr": 0.01,
        "reg": 0.05,
        # epoch e steps with lr / (1 + lr_decay * e); 0 keeps the reference's constant step.
        "lr_decay": 0.0,
        "threads": 1,
        # "epoch": epoch_permutation order (exact with one thread, Hogwild with more);
        # "blocked": a blocks x blocks grid visited in conflict-free strata (LIBMF/DSGD).
        "schedule": "epoch",
        # grid size of the blocked schedule, per side; 0 picks it from the table sizes and threads.
        "blocks": 0,
        # order inside a cell: "user" (grouped by user, shuffled within a user: each user row is
        # read once per cell, 1.3-1.5x faster at 10M) or "shuffled" (LIBMF's order).
        "cell_order": "user",
    }
    constraints = {"lr": "positive", "reg": "non-negative", "lr_decay": "non-negative", "threads": ">= 1", "schedule": SCHEDULES,
                   "blocks": ">= 0", "cell_order": CELL_ORDERS}
    devices = ("cpu",)
    exact = True
    deterministic = True
    scales_with = "threads"
    unavailable = UNAVAILABLE
    #: What mfbench tune searches (validation RMSE decides).
    search_space = {"lr": mfbench.LogUniform(1e-3, 0.2), "reg": mfbench.LogUniform(1e-4, 0.3)}

    def problem(self, model: nn.Module) -> str | None:
        """Why ``model`` or the parameters do not fit, or None."""
        p = self.params
        if not p["lr"] > 0 or not p["reg"] >= 0 or not p["lr_decay"] >= 0:
            return f"{self.name} needs lr > 0, reg >= 0 and lr_decay >= 0, got lr={p['lr']}, reg={p['reg']}, lr_decay={p['lr_decay']}"
        if p["schedule"] not in SCHEDULES:
            return f"{self.name} schedule must be one of {', '.join(SCHEDULES)}, got {p['schedule']!r}"
        if p["cell_order"] not in CELL_ORDERS:
            return f"{self.name} cell_order must be one of {', '.join(CELL_ORDERS)}, got {p['cell_order']!r}"
        if p["threads"] < 1:
            return f"{self.name} threads must be at least 1, got {p['threads']}"
        if numba is not None and p["threads"] > numba.config.NUMBA_NUM_THREADS:
            return (f"{self.name} threads={p['threads']} is more than numba's pool of "
                    f"{numba.config.NUMBA_NUM_THREADS} (set NUMBA_NUM_THREADS to allow more)")
        if p["blocks"] < 0:
            return f"{self.name} blocks must be >= 0 (0 picks one), got {p['blocks']}"
        tables, reason = find_tables(model, self.name)
        if tables is None:
            return reason
        if tables.user_factors.dtype not in DTYPES:
            return f"{self.name} trains float32 or float64 tables, not {tables.user_factors.dtype}"
        weights = [tables.user_factors, tables.item_factors]
        if tables.user_bias is not None:
            weights += [tables.user_bias, tables.item_bias]
        if not all(w.is_contiguous() for w in weights):
            return f"{self.name} works in place on contiguous weight tables; this model's are not contiguous"
        return None

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        if torch.device(device).type not in self.devices:
            return f"{self.name} works on numpy views of CPU tensors; it runs on cpu, not {torch.device(device).type}"
        return self.problem(model)

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        if self.unavailable:
            raise mfbench.MfbenchError(self.unavailable)
        reason = self.skip(model, device)
        if reason:
            raise mfbench.MfbenchError(reason)
        tables, _ = find_tables(model, self.name)
        assert tables is not None
        if tables.n_users != train.n_users or tables.item_factors.shape[0] != train.n_items:
            raise mfbench.MfbenchError(
                f"model tables are {tables.n_users} x {tables.item_factors.shape[0]} "
                f"but the ratings are {train.n_users} x {train.n_items}"
            )
        self.seed = int(seed)
        self.n = len(train)
        self.arrays = self.weight_views(tables)
        dtype = self.arrays[0].dtype
        self.scalar = dtype.type
        self.mean = self.scalar(tables.global_mean)
        users = train.users.cpu().numpy().astype(index_dtype(train.n_users))
        items = train.items.cpu().numpy().astype(index_dtype(train.n_items))
        values = train.values.cpu().numpy().astype(dtype)
        self.blocks = 0
        if self.params["schedule"] == "blocked":
            self.blocks = self.params["blocks"] or self.auto_blocks(tables)
            self.blocks = max(1, min(self.blocks, train.n_users, train.n_items))
            users, items, values, self.offsets = block_layout(
                users, items, values, train.n_users, train.n_items, self.blocks, self.seed,
                self.params["cell_order"] == "user",
            )
            self.sse = np.zeros(self.blocks * self.blocks, dtype=np.float64)
        else:
            self.sse = np.zeros(self.params["threads"], dtype=np.float64)
        self.users, self.items, self.values = users, items, values
        self.kernels = compiled_kernels()
        self.warm_up()

    @staticmethod
    def weight_views(tables: Tables) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
        """(P, Q, b_u, b_i, biased): numpy views sharing memory with the model's tables.

        Bias tables are (n, 1): their 1-D views. For ``dot`` the bias slots hold
        one-element dummies of the same dtype (one compiled signature for both models).
        """
        P = tables.user_factors.numpy()
        Q = tables.item_factors.numpy()
        if tables.user_bias is None:
            dummy = np.zeros(1, dtype=P.dtype)
            return P, Q, dummy, dummy.copy(), False
        return P, Q, tables.user_bias.view(-1).numpy(), tables.item_bias.view(-1).numpy(), True

    def auto_blocks(self, tables: Tables) -> int:
        return auto_block_count(tables, self.params["threads"])

    def warm_up(self) -> None:
        """Compile the kernels this case calls, on a scratch problem of the same types."""
        n, n_users, n_items = WARMUP_SHAPE
        P, Q, bu, bi, biased = self.arrays
        scratch = (np.zeros((n_users, P.shape[1]), P.dtype), np.zeros((n_items, P.shape[1]), P.dtype),
                   np.zeros(n_users, P.dtype), np.zeros(n_items, P.dtype), biased)
        users = (np.arange(n) % n_users).astype(self.users.dtype)
        items = (np.arange(n) % n_items).astype(self.items.dtype)
        values = np.ones(n, dtype=P.dtype)
        if self.params["schedule"] == "blocked":
            layout = block_layout(users, items, values, n_users, n_items, 2, 0)
            self.blocked(scratch, layout, 2, 0, np.zeros(4))
        else:
            self.epoch_order(scratch, users, items, values, np.arange(n, dtype=np.int64), 0, np.zeros(self.params["threads"]))

    def step_scalars(self, epoch: int) -> tuple[Any, Any, Any]:
        """(2 lr, 1 - 2 lr reg, 0) for ``epoch``, in the tables' dtype so float32 math stays float32."""
        lr = self.params["lr"] / (1.0 + self.params["lr_decay"] * epoch)
        return self.scalar(2.0 * lr), self.scalar(1.0 - 2.0 * lr * self.params["reg"]), self.scalar(0.0)

    def epoch_order(self, arrays, users, items, values, order, epoch: int, sse) -> None:
        """Train on ``order`` (the epoch's permutation): serially, or in shares on numba's threads."""
        threads = self.params["threads"]
        lr2, decay, zero = self.step_scalars(epoch)
        if threads == 1:
            self.kernels.epoch_serial(*arrays, users, items, values, order, 1, self.mean, lr2, decay, zero, sse)
        else:
            with numba_threads(threads):
                self.kernels.epoch_parallel(*arrays, users, items, values, order, threads, self.mean, lr2, decay, zero, sse)

    def blocked(self, arrays, layout, blocks: int, epoch: int, sse) -> None:
        """Train on a block layout, stratum by stratum, in ``epoch``'s plan."""
        users, items, values, offsets = layout
        row_perm, col_perm, strata = stratum_plan(blocks, self.seed, epoch)
        lr2, decay, zero = self.step_scalars(epoch)
        args = (*arrays, users, items, values, offsets, blocks, row_perm, col_perm, strata, self.mean, lr2, decay, zero, sse)
        if self.params["threads"] == 1:
            self.kernels.blocked_serial(*args)
        else:
            with numba_threads(self.params["threads"]):
                self.kernels.blocked_parallel(*args)

    def run_epoch(self, epoch: int) -> float | None:
        """One pass over the training ratings; returns their mean squared error, each taken before its step.

        The loss is the data term only (no ``reg`` term), accumulated in float64 as training goes.
        """
        if self.n == 0:
            return None
        if self.params["schedule"] == "blocked":
            layout = (self.users, self.items, self.values, self.offsets)
            self.blocked(self.arrays, layout, self.blocks, epoch, self.sse)
        else:
            order = mfbench.epoch_permutation(self.n, self.seed, epoch).numpy()
            self.epoch_order(self.arrays, self.users, self.items, self.values, order, epoch, self.sse)
        return float(self.sse.sum()) / self.n

    def work_per_update(self, model: nn.Module) -> Mapping[str, Any] | None:
        tables, _ = find_tables(model, self.name)
        if tables is None:
            return None
        return roofline.per_rating_sgd(tables.user_factors.shape[1], tables.user_factors.element_size(), tables.user_bias is not None)

    def info(self) -> Mapping[str, Any] | None:
        facts: dict[str, Any] = {
            "numba": numba.__version__ if numba is not None else None,
            "threads": self.params["threads"],
            "schedule": self.params["schedule"],
        }
        if self.params["schedule"] == "blocked":
            facts["blocks"] = self.blocks
        if self.params["threads"] > 1 and numba is not None:
            try:
                facts["threading_layer"] = numba.threading_layer()
            except ValueError:  # no parallel region has run in this process
                facts["threading_layer"] = None
        return facts

    def teardown(self) -> None:
        self.arrays = ()
        self.users = self.items = self.values = None


class numba_threads:
    """Run a block with numba's thread count set (numba's own, per calling thread; torch's is untouched)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def __enter__(self) -> None:
        self.previous = numba.get_num_threads()
        numba.set_num_threads(self.threads)

    def __exit__(self, *exc: Any) -> None:
        numba.set_num_threads(self.previous)


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(NumbaSGD)
