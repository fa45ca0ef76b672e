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

The grid and each epoch's plan come from ``mfbench.plugins.common.blocks``, shared with
``native-sgd``. What the choices below were measured to gain, and the speeds measured
while writing them, are in ``results/README.md`` ("numba"), with the machine.

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
from mfbench import Tables
from mfbench.plugins.common.blocks import BLOCK_CONSTRAINTS, BLOCK_PARAMS, block_layout, grid_size, index_dtype, stratum_plan
from mfbench.plugins.common.compiled_sgd import STEP_CONSTRAINTS, STEP_PARAMS, CompiledSGD

# An optional extra: the class still registers, marked unavailable.
UNAVAILABLE = mfbench.missing_library("numba", "llvmlite.binding", install="pip install 'mfbench[numba]'")
if UNAVAILABLE is None:
    import llvmlite.binding as llvm
    import numba
    from numba import prange
else:
    numba = llvm = None
    prange = range

SCHEDULES = ("epoch", "blocked")
#: Ratings, users and items of the scratch problem that compiles the kernels in setup.
WARMUP_SHAPE = (8, 5, 3)
#: LLVM may reorder sums and fuse multiply-adds, nothing else (NaN and infinity keep their meaning, so a
#: diverging run still shows as NaN). It lets the step's dot product vectorize (measured: results/README.md).
FASTMATH = {"reassoc", "contract"}
#: Ratings the epoch schedule gathers at once into a per-thread buffer (fits in L1 with its reads).
GATHER = 1024
#: LLVM options set before the kernels compile. LLVM's loop vectorizer interleaves a vector loop 4x
#: by default, so a k=20 float32 row never enters the 64-wide main loop: the dot product ran as two
#: 8-wide steps plus 4 scalar ones and the update as five 4-wide steps. Without interleaving both are
#: one 16-wide and one 4-wide step, as GCC compiles native-sgd's C (the ratio to native-sgd it bought:
#: results/README.md). LLVM's options are process-wide: numba functions compiled later in the process
#: are compiled this way too (it changes speed, not results beyond rounding).
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
    pu = P[u]  # 1-D row views: LLVM keeps the row addresses in registers (faster than P[u, j])
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
    which it cannot do when each one sits inside the dependent SGD step.
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


def blocked_pass(
    P, Q, bu, bi, biased, users, items, values, offsets, blocks, row_perm, col_perm, strata, mean, lr2, decay, zero, sse
):
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


class NumbaSGD(CompiledSGD):
    """Per-rating SGD compiled by numba on the model's own weights: exact with one thread, Hogwild or blocked with more."""

    name = "numba"
    params = {
        **STEP_PARAMS,
        "threads": 1,
        # "epoch": epoch_permutation order (exact with one thread, Hogwild with more);
        # "blocked": a blocks x blocks grid visited in conflict-free strata (LIBMF/DSGD).
        "schedule": "epoch",
        # the blocked schedule's grid: blocks per side, and the order inside a cell.
        **BLOCK_PARAMS,
    }
    constraints = {**STEP_CONSTRAINTS, "threads": ">= 1", "schedule": SCHEDULES, **BLOCK_CONSTRAINTS}
    devices = ("cpu",)
    exact = True
    deterministic = True
    scales_with = "threads"
    unavailable = UNAVAILABLE

    def device_problem(self, device: torch.device) -> str | None:
        if device.type != "cpu":
            return f"{self.name} works on numpy views of CPU tensors; it runs on cpu, not {device.type}"
        # This machine's limit, not a bad value: a suite asking for more threads still plans, and skips here.
        if numba is not None and self.params["threads"] > numba.config.NUMBA_NUM_THREADS:
            return (
                f"{self.name} threads={self.params['threads']} is more than numba's pool of "
                f"{numba.config.NUMBA_NUM_THREADS} (set NUMBA_NUM_THREADS to allow more)"
            )
        return None

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        tables = self.setup_tables(model, train, device)
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
            self.blocks = grid_size(self.params["blocks"], tables, self.params["threads"])
            users, items, values, self.offsets = block_layout(
                users,
                items,
                values,
                train.n_users,
                train.n_items,
                self.blocks,
                self.seed,
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

    def warm_up(self) -> None:
        """Compile the kernels this case calls, on a scratch problem of the same types."""
        n, n_users, n_items = WARMUP_SHAPE
        P, Q, bu, bi, biased = self.arrays
        scratch = (
            np.zeros((n_users, P.shape[1]), P.dtype),
            np.zeros((n_items, P.shape[1]), P.dtype),
            np.zeros(n_users, P.dtype),
            np.zeros(n_items, P.dtype),
            biased,
        )
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
        lr = self.epoch_lr(epoch)
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
