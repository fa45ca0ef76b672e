"""BPR-MF (Rendle et al. 2009): pairwise ranking SGD on implicit feedback, compiled with numba.

Bayesian personalized ranking learns from positives only: for a user ``u``, an item ``i``
the user interacted with should score above an item ``j`` the user did not. Each step takes
one training positive ``(u, i)``, draws one negative ``j`` and descends

    -ln sigma(x) + reg * (||p_u||^2 + ||q_i||^2 + ||q_j||^2 [+ b_i^2 + b_j^2]),
    x = <p_u, q_i - q_j> [+ b_i - b_j],

with step ``lr`` (the SGD family's ``lr_decay`` schedule, plugins.common.sgd). With
``g = sigma(-x)`` and ``decay = 1 - 2 lr reg`` the three rows are stepped from their
pre-step values: ``p_u <- decay p_u + lr g (q_i - q_j)``, ``q_i <- decay q_i + lr g p_u``,
``q_j <- decay q_j - lr g p_u`` (and ``b_i <- decay b_i + lr g``, ``b_j <- decay b_j - lr g``
on the ``biased`` layout). The score a model ranks by is ``<p_u, q_i> + b_i``: the user
bias and the global mean shift all of a user's items alike, so they are left as they are.

Visiting order and negatives. Every training entry is a positive and its value is not read
(a ratings file given as-is makes every rated pair a positive, whatever its rating). One epoch
visits every training positive once (a pair listed twice in the training ratings is visited
twice), in ``mfbench.epoch_permutation(n, seed, epoch)`` order, the order every mfbench SGD
shares. Negatives are uniform over the items the user has *no* training interaction with.
``setup`` builds each user's sorted, distinct item list (a CSR); a negative is then drawn by
rank, not by rejection: with ``d`` items seen out of ``n_items``, one uniform draw ``r`` in
``[0, n_items - d)`` is mapped to the ``r``-th unseen item by a binary search over
``seen[k] - k`` (the number of unseen items below ``seen[k]``). That is the distribution
rejection sampling gives, at the cost of one of its membership searches, with exactly one
draw per positive and no retry loop however dense a user is. A user who interacted with every
item has no negative: that user's positives are skipped (not stepped, not counted in the loss)
and ``info()`` reports how many were.

The draws come from a SplitMix64 stream written in the kernel, keyed by ``(seed, epoch)``
through numpy's ``SeedSequence`` (apart from the key of the visiting order). The kernel runs
on one thread, so the same seed gives the same visiting order and the same negatives, hence
the same model bit for bit on the same machine; another seed changes both.

The kernel works on numpy views of the model's tables (CPU only), as the numba SGD does, and
compiles in ``setup`` on a scratch problem of the tables' dtype, never on the real tables.
``run_epoch`` returns the epoch's mean ``-ln sigma(x)`` (the data term, each ``x`` taken
before its step, accumulated in float64).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

import mfbench
from mfbench.plugins.common.blocks import index_dtype
from mfbench.plugins.common.compiled_sgd import CompiledSGD
from mfbench.plugins.common.sgd import SCHEDULE_CONSTRAINTS, SCHEDULE_PARAMS, SCHEDULE_SPACE

UNAVAILABLE = mfbench.missing_library("numba", install="pip install 'mfbench[numba]'")
if UNAVAILABLE is None:
    import numba
else:
    numba = None

#: Keys the negatives' stream apart from the visiting order's (which uses no key) for the same seed and epoch.
NEGATIVE_STREAM = 0x42505231
#: LLVM may reorder sums and fuse multiply-adds (as the numba SGD allows), so the dot product vectorizes.
FASTMATH = {"reassoc", "contract"}
#: SplitMix64's constants (Steele, Lea and Flood 2014).
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
SHIFT30, SHIFT27, SHIFT31, SHIFT11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
#: 2**-53: turns the top 53 bits of a draw into a float in [0, 1).
UNIT = 1.0 / 9007199254740992.0


# ---------------------------------------------------------------------------------------------
# Kernels: plain Python functions, compiled by :func:`compiled_kernel`.


def next_draw(state):
    """SplitMix64: (the advanced state, its 64-bit output)."""
    state = state + GOLDEN
    z = state
    z = (z ^ (z >> SHIFT30)) * MIX1
    z = (z ^ (z >> SHIFT27)) * MIX2
    return state, z ^ (z >> SHIFT31)


def unseen_item(seen, lo, hi, r):
    """The ``r``-th (from 0) item id missing from the sorted distinct ids ``seen[lo:hi]``.

    ``seen[lo + k] - k`` counts the missing ids below ``seen[lo + k]`` and never decreases in
    ``k``; the answer is ``r`` plus the number of seen ids with at most ``r`` missing ids below.
    """
    a, b = 0, hi - lo
    while a < b:
        mid = (a + b) >> 1
        if seen[lo + mid] - mid <= r:
            a = mid + 1
        else:
            b = mid
    return r + a


def bpr_pass(P, Q, bi, biased, users, items, indptr, seen, order, n_items, state, lr, decay, zero, cast, out):
    """Visit positives ``order[t]`` in turn, one negative and one BPR step each.

    ``state`` seeds the negatives' stream; ``lr``, ``decay`` (``1 - 2 lr reg``) and ``zero`` are in the
    tables' dtype and ``cast`` is a one-element array of that dtype, through which the step
    factor is rounded to it (so float32 tables are stepped in float32). ``out`` receives the
    summed loss and the number of positives stepped.
    """
    k = P.shape[1]
    total = 0.0
    stepped = 0
    for t in range(order.shape[0]):
        idx = order[t]
        u = users[idx]
        i = items[idx]
        lo = indptr[u]
        hi = indptr[u + 1]
        free = n_items - (hi - lo)
        if free <= 0:
            continue  # the user saw every item: no negative exists
        state, z = next_draw(state)
        r = np.int64(np.float64(z >> SHIFT11) * UNIT * free)
        if r >= free:  # the product's rounding can reach ``free`` itself
            r = free - 1
        j = unseen_item(seen, lo, hi, r)
        pu = P[u]
        qi = Q[i]
        qj = Q[j]
        x = zero
        for f in range(k):
            x += pu[f] * (qi[f] - qj[f])
        if biased:
            x += bi[i] - bi[j]
        x64 = np.float64(x)
        e = np.exp(-abs(x64))
        # sigma(-x) and -ln sigma(x), in float64 and stable for either sign of x.
        g = e / (1.0 + e) if x64 >= 0.0 else 1.0 / (1.0 + e)
        total += np.log1p(e) + max(-x64, 0.0)
        stepped += 1
        cast[0] = g
        step = lr * cast[0]
        for f in range(k):
            p = pu[f]
            a = qi[f]
            b = qj[f]
            pu[f] = p * decay + step * (a - b)
            qi[f] = a * decay + step * p
            qj[f] = b * decay - step * p
        if biased:
            b_i = bi[i]
            b_j = bi[j]
            bi[i] = b_i * decay + step
            bi[j] = b_j * decay - step
    out[0] = total
    out[1] = stepped


_KERNEL: Any = None


def compiled_kernel() -> Any:
    """The process's BPR kernel, made on first use (numba compiles each signature on its first call)."""
    global _KERNEL
    if _KERNEL is None:
        options = dict(cache=False, nogil=True, fastmath=FASTMATH)
        draw = numba.njit(inline="always", **options)(next_draw)
        search = numba.njit(inline="always", **options)(unseen_item)
        scope = dict(globals(), next_draw=draw, unseen_item=search)
        function = type(bpr_pass)(bpr_pass.__code__, scope, bpr_pass.__name__)
        _KERNEL = numba.njit(**options)(function)
    return _KERNEL


def seen_items(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, seen): each user's distinct training items, sorted, as CSR rows ``seen[indptr[u]:indptr[u + 1]]``."""
    keys = np.unique(users.astype(np.int64) * n_items + items.astype(np.int64))
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // n_items, minlength=n_users), out=indptr[1:])
    return indptr, (keys % n_items).astype(index_dtype(n_items))


def negative_seed(seed: int, epoch: int) -> np.uint64:
    """The first state of ``epoch``'s negatives stream."""
    entropy = [int(seed) & 0xFFFFFFFF, int(epoch), NEGATIVE_STREAM]
    return np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]


class BPR(CompiledSGD):
    """BPR-MF: pairwise ranking SGD with uniformly sampled unseen negatives, compiled by numba (implicit feedback)."""

    name = "bpr"
    params = {
        # the step on -ln sigma(x) (its gradient has no factor 2); larger than implicit's 0.01, which
        # runs 100 iterations by default, so that some 20 epochs reach a useful model.
        "lr": 0.05,
        # L2 on the three rows (and two item biases) each step touches: the reg part of the step is 2 lr reg,
        # so 0.005 is implicit's BPR default of 0.01 (which steps by lr reg).
        "reg": 0.005,
        # epoch e steps with lr / (1 + lr_decay * e) (plugins.common.sgd's schedule).
        **SCHEDULE_PARAMS,
    }
    constraints = {"lr": "positive", "reg": "non-negative", **SCHEDULE_CONSTRAINTS}
    #: What mfbench tune searches (a ranking metric should decide: RMSE says nothing about BPR).
    search_space = {"lr": mfbench.LogUniform(1e-3, 0.5), "reg": mfbench.LogUniform(1e-5, 0.1), **SCHEDULE_SPACE}
    devices = ("cpu",)
    exact = False
    deterministic = True
    objective = "implicit"
    unavailable = UNAVAILABLE

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        tables = self.setup_tables(model, train, device)
        self.seed = int(seed)
        self.n = len(train)
        self.n_items = train.n_items
        self.P = tables.user_factors.numpy()
        self.Q = tables.item_factors.numpy()
        self.biased = tables.biased
        dtype = self.P.dtype
        self.scalar = dtype.type
        # dot: a one-element dummy of the same dtype, so both layouts share one compiled signature.
        self.bi = tables.item_bias.view(-1).numpy() if tables.item_bias is not None else np.zeros(1, dtype)
        self.users = train.users.cpu().numpy().astype(index_dtype(train.n_users))
        self.items = train.items.cpu().numpy().astype(index_dtype(train.n_items))
        self.indptr, self.seen = seen_items(self.users, self.items, train.n_users, train.n_items)
        full = np.flatnonzero(np.diff(self.indptr) >= train.n_items)
        self.full_users = len(full)
        self.skipped = int(np.isin(self.users, full).sum()) if len(full) else 0
        self.cast = np.zeros(1, dtype)
        self.out = np.zeros(2, np.float64)
        self.kernel = compiled_kernel()
        self.warm_up()

    def warm_up(self) -> None:
        """Compile the kernel for this case's types on a scratch problem (3 users, 5 items)."""
        n_users, n_items, k = 3, 5, self.P.shape[1]
        users = np.array([0, 0, 1, 2], dtype=self.users.dtype)
        items = np.array([1, 3, 0, 4], dtype=self.items.dtype)
        indptr, seen = seen_items(users, items, n_users, n_items)
        dtype = self.P.dtype
        P, Q, bi = np.zeros((n_users, k), dtype), np.zeros((n_items, k), dtype), np.zeros(n_items if self.biased else 1, dtype)
        order = np.arange(len(users), dtype=np.int64)
        lr, decay, zero = self.scalar(0.0), self.scalar(1.0), self.scalar(0.0)
        args = (users, items, indptr, seen, order, n_items, np.uint64(1), lr, decay, zero, self.cast, self.out)
        self.kernel(P, Q, bi, self.biased, *args)

    def run_epoch(self, epoch: int) -> float | None:
        """One pass over the training positives; returns their mean ``-ln sigma(x)`` (None when nothing was stepped)."""
        if self.n == 0:
            return None
        lr = self.epoch_lr(epoch)
        order = mfbench.epoch_permutation(self.n, self.seed, epoch).numpy()
        self.kernel(
            self.P,
            self.Q,
            self.bi,
            self.biased,
            self.users,
            self.items,
            self.indptr,
            self.seen,
            order,
            self.n_items,
            negative_seed(self.seed, epoch),
            self.scalar(lr),
            self.scalar(1.0 - 2.0 * lr * self.params["reg"]),
            self.scalar(0.0),
            self.cast,
            self.out,
        )
        stepped = int(self.out[1])
        return float(self.out[0]) / stepped if stepped else None

    def work_per_update(self, model: nn.Module) -> Mapping[str, Any] | None:
        """One positive: its ids and order entry read, three factor rows (two item biases) read and written.

        The negative's binary search over the user's item list is not counted (its reads mostly hit
        cache lines of one short array). Flops: the difference and dot product (3k), and the three
        row updates (3k, 2k and 2k) with the decay; plus the bias steps.
        """
        try:
            tables = self.tables_of(model)
        except mfbench.LayoutError:
            return None
        k, size, biased = tables.n_factors, tables.user_factors.element_size(), tables.biased
        rows = 3 * k + (2 if biased else 0)
        return {
            "bytes_per_update": 8 + 4 + 4 + 2 * rows * size,
            "flops_per_update": 10 * k + 10 + (6 if biased else 0),
            "work_model": f"BPR step, k={k}, {size}-byte floats{', biased' if biased else ''}",
        }

    def info(self) -> Mapping[str, Any] | None:
        return {
            "numba": numba.__version__ if numba is not None else None,
            "threads": 1,
            "negatives": "uniform over the user's unseen items, drawn by rank",
            "users_without_negatives": getattr(self, "full_users", 0),
            "positives_skipped_per_epoch": getattr(self, "skipped", 0),
        }

    def teardown(self) -> None:
        for name in ("P", "Q", "bi", "users", "items", "indptr", "seen"):
            self.__dict__.pop(name, None)


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(BPR)
