"""LIBMF through its PyPI Python bindings (``libmf``, ``from libmf import mf``), timed as whole fits.

LIBMF trains by parallel blocked SGD (FPSG): the rating matrix is cut into
``bins x bins`` blocks, threads take blocks that share no row or column, and
each row's step size adapts per row (AdaGrad-like, so ``eta`` is an initial
rate, not the constant step of the other SGD strategies). It shuffles rows,
columns and ratings itself with its own fixed-seed generator, draws its own
start, and the bindings expose no seed: the case seed is not used. With one
thread two fits give the same model; with more, the block schedule depends on
thread timing.

What the bindings (0.9.2) do, and how this strategy uses them:

- ``MF.fit(X)`` takes an (n, 3) float32 array [user, item, rating], row-major,
  and calls LIBMF's ``mf_train``, which always starts from a fresh random model:
  there is no warm start, so this strategy is whole-fit only (``stepwise =
  False``): the runner times one ``fit(epochs)`` call with ``nr_iters = epochs``.
  Indices travel as float32, exact only below 2**24; larger tables are refused.
- The bindings default to L1 regularization (``lambda_p1 = lambda_q1 = 0.04``,
  no L2), which collapsed the factors to zero on planted data; mfbench's ``reg``
  is mapped to L2 (``lambda_p2 = lambda_q2 = reg``) with the L1 terms set to 0.
- The trained model has ``m = max user index + 1`` rows (not necessarily
  ``n_users``) and ``k`` unpadded columns (``p_factors()`` returns (m, k)). Rows
  LIBMF did not train (users or items without training ratings) come back as
  NaN; LIBMF's own ``mf_predict`` then falls back to the training average. This
  strategy copies only trained rows into the model; the others keep the model's
  initial values, as under any other SGD strategy. The copy is inside the timed
  call (``(n_users + n_items) * k`` floats, small next to training).
- ``MF.predict(X)`` is wrong for an (n, 2) C-ordered array, the layout its own
  docstring asks for: the C side reads user ``X[i]`` and item ``X[i + n]`` of
  the flat buffer (column-major), so it pairs the wrong users with the wrong
  items. That is why its RMSE came out worse than LIBMF's training log. Passing
  ``np.asfortranarray(X)`` gives LIBMF's true predictions, which equal
  mfbench's ``model(users, items)`` after the copy (tested).
- The bindings never free a trained model; this strategy frees it (LIBMF's
  ``mf_destroy_model``) before the next fit and in ``teardown``. They also leak
  the (n x 12 bytes) copy of the ratings they build per fit, which this strategy
  cannot reach. ``copy_data`` is off: LIBMF may then shuffle that per-fit copy
  in place, which saves a second copy inside the timed call.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import math
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

import mfbench
from mfbench import roofline
from mfbench.plugins.common.peers import coo_arrays, copy_rows, missing, model_tables, setup_tables, version

DISTRIBUTION = "libmf"
#: Largest index count whose indices float32 carries exactly (the bindings pass indices as float32).
MAX_INDEX = 1 << 24

# The bindings print where they found the compiled library on import: keep stdout clean.
with contextlib.redirect_stdout(io.StringIO()):
    UNAVAILABLE = missing(DISTRIBUTION, "libmf.mf")  # optional: registered anyway, set aside with the reason
if UNAVAILABLE is None:
    from libmf import mf as libmf_mf
else:
    libmf_mf = None


def auto_bins(nnz: int, threads: int) -> int:
    """Blocks per side: the bindings' 26, fewer when blocks would hold under ~1,000 ratings.

    Tiny blocks make LIBMF's worker threads spin on the scheduler's mutex between
    microsecond jobs, which starves the main thread at the end of a fit (see
    :func:`fit_within`); from 676k ratings up this is the bindings' default.
    """
    return max(2 * threads + 1, min(26, int(math.sqrt(max(nnz, 0) / 1000))))


class LibmfHung(mfbench.CaseTimeout):
    """A LIBMF fit that did not return: the case ends as ``timeout`` once every attempt hung."""


#: Seconds every thread a fit started may sleep at once before the fit counts as deadlocked.
#: A fit that returns never has them all asleep for more than microseconds (measured: 1 µs
#: longest over 1,000 fits of 5,400 ratings under a full 2-core load); a deadlocked one sleeps forever.
STALL_S = 0.5
TASKS = "/proc/self/task"
#: Fits tried in one ``fit`` call: a deadlocked one is tried again, from LIBMF's same fixed start.
ATTEMPTS = 3


def thread_ids() -> set[str]:
    """The process's threads (Linux ``/proc``); empty where there is no ``/proc``."""
    try:
        return set(os.listdir(TASKS))
    except OSError:
        return set()


def asleep(tids: set[str]) -> bool:
    """Whether every thread in ``tids`` still alive sleeps (state ``S``) and at least one is alive."""
    states = []
    for tid in tids:
        try:
            with open(f"{TASKS}/{tid}/stat") as stat:
                text = stat.read()
        except OSError:  # exited since it was listed
            continue
        states.append(text[text.rindex(")") + 2])  # the field after the command name, which may hold spaces
    return bool(states) and all(state == "S" for state in states)


def fit_within(engine: Any, X: np.ndarray, timeout: float, stall: float = STALL_S) -> None:
    """``engine.fit(X)`` on a daemon thread, given up when it deadlocks or after ``timeout`` seconds.

    LIBMF 0.9.2's scheduler has a race (src_cpp/mf.cpp, fpsg_core): after the last
    iteration the main thread calls ``resume()`` then ``terminate()``; a worker that
    finishes a whole further iteration in between (tiny problems: ~0.35 ms an iteration
    for 5,400 ratings, within one preemption of the main thread) waits in ``put_job`` for
    a resume that never comes, and the main thread waits in ``join`` for it. Measured
    (benchmarks/libmf_deadlock.py --fits 1500 --load 2): 11 of 1,500 fits of 5,400
    ratings hung under a full 2-core load. Where ``/proc`` exists, a
    fit whose threads (the ones started since this call) have all been asleep for
    ``stall`` seconds is that deadlock and is given up then; elsewhere only ``timeout``
    catches it. The stuck C threads cannot be stopped from Python: they are left behind,
    asleep, on a daemon thread, which does not keep the process alive.
    """
    failure: list[BaseException] = []

    def train() -> None:
        try:
            engine.fit(X)
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    before = thread_ids()
    worker = threading.Thread(target=train, name="libmf-fit", daemon=True)
    started = time.monotonic()
    worker.start()
    asleep_since: float | None = None
    while True:
        worker.join(0.005)
        if not worker.is_alive():
            break
        now = time.monotonic()
        if now - started >= timeout:
            raise LibmfHung(
                f"LIBMF's fit did not return within call_timeout={timeout:g} s (its scheduler can deadlock "
                f"on tiny problems; its threads are left behind)"
            )
        if asleep(thread_ids() - before) and worker.is_alive():
            asleep_since = now if asleep_since is None else asleep_since
            if now - asleep_since >= stall:
                raise LibmfHung(
                    f"LIBMF's fit deadlocked: every thread it started slept for {stall:g} s (its scheduler's "
                    f"race at the end of a fit; the threads are left behind)"
                )
        else:
            asleep_since = None
    if failure:
        raise failure[0]


class LibMF(mfbench.Strategy):
    """LIBMF (Python bindings): parallel blocked SGD with per-row adaptive steps; whole fits, dot model only."""

    name = "libmf"
    params = {
        # LIBMF's eta: the initial step of its per-row adaptive rate. Its default 0.1 leaves held-out
        # RMSE at 0.95 after 30 epochs on the contract's planted data (dot, k=6); 0.25 reaches 0.570
        # at 25; 0.35 and above diverge to NaN in the first epochs there.
        "lr": 0.25,
        # L2 on p_u and q_i (lambda_p2 = lambda_q2; the L1 terms are set to 0). LIBMF's C default 0.1
        # ends at 0.65 on the same data; 0.02 is the other SGD strategies' default.
        "reg": 0.02,
        # nr_threads. The bindings default to 12; one thread is steady on a shared machine and
        # deterministic; sweep it to see LIBMF scale.
        "threads": 1,
        # nr_bins: blocks per side of LIBMF's grid; 0 picks it (see auto_bins): the bindings' 26 from
        # 676k training ratings up, fewer on smaller data. LIBMF raises it to 2 * threads + 1 at least.
        "bins": 0,
        # Seconds one attempt at a whole fit may take. LIBMF's scheduler can deadlock at the end of a
        # fit (see fit_within): where /proc exists that is seen within STALL_S and the fit is tried
        # again, up to ATTEMPTS times; this limit catches the rest, and the case ends as timeout.
        "call_timeout": 600.0,
    }
    constraints = {"lr": "positive", "reg": "non-negative", "threads": ">= 1", "bins": ">= 0", "call_timeout": "positive"}
    devices = ("cpu",)
    exact = False  # blocked order and adaptive per-row steps, not the reference's SGD
    deterministic = False  # with threads > 1 the block schedule depends on thread timing
    stepwise = False
    scales_with = "threads"
    unavailable = UNAVAILABLE
    #: What mfbench tune searches (validation RMSE decides).
    search_space = {"lr": mfbench.LogUniform(0.01, 1.0), "reg": mfbench.LogUniform(1e-3, 0.3)}

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        tables, reason = model_tables(self, model, device, biases=False)
        if tables is None:
            return reason
        if max(tables.n_users, tables.item_factors.shape[0]) > MAX_INDEX:
            return f"{self.name}: LIBMF's Python bindings pass indices as float32, exact only for tables up to {MAX_INDEX} rows"
        return None

    def library_options(self, k: int, epochs: int) -> dict[str, Any]:
        """The options given to ``libmf.mf.MF`` for a fit of ``epochs`` epochs."""
        p = self.params
        return {
            "fun": libmf_mf.P_L2_MFR if libmf_mf is not None else 0,  # real-valued MF, squared error
            "k": k,
            "nr_threads": p["threads"],
            "nr_bins": p["bins"] or auto_bins(len(self.X), p["threads"]),
            "nr_iters": epochs,
            "lambda_p1": 0.0,
            "lambda_q1": 0.0,
            "lambda_p2": p["reg"],
            "lambda_q2": p["reg"],
            "eta": p["lr"],
            "do_nmf": False,
            "quiet": True,
            "copy_data": False,
        }

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        self.tables = tables = setup_tables(self, model, train, device, biases=False)
        self.k = tables.user_factors.shape[1]
        users, items, values = coo_arrays(train)
        # The bindings' input: [user, item, rating] rows, float32, C order.
        self.X = np.empty((len(values), 3), dtype=np.float32)
        self.X[:, 0], self.X[:, 1], self.X[:, 2] = users, items, values
        self.mf = None
        self.options: dict[str, Any] = {}
        self.trained_rows: tuple[int, int] = (0, 0)
        #: Seconds each deadlocked attempt took before it was given up (inside the timed fit that retried it).
        self.hung: list[float] = []

    def fit(self, epochs: int) -> float | None:
        """LIBMF's whole fit of ``epochs`` iterations, then its trained rows copied into the model (both timed)."""
        self.release()
        self.options = self.library_options(self.k, epochs)
        for attempt in range(1, ATTEMPTS + 1):
            self.mf = libmf_mf.MF(**self.options)
            if len(self.X) == 0:
                return None
            started = time.perf_counter()
            try:
                fit_within(self.mf, self.X, self.params["call_timeout"])
                break
            except LibmfHung:
                self.mf = None  # its C threads still hold it: never free it under them
                self.hung.append(round(time.perf_counter() - started, 6))
                if attempt == ATTEMPTS:
                    raise
        trained = []
        for table, rows in ((self.tables.user_factors, self.mf.p_factors()), (self.tables.item_factors, self.mf.q_factors())):
            if rows.shape[1] != self.k:
                raise mfbench.MfbenchError(f"LIBMF returned {rows.shape[1]} factors per row, the model has {self.k}")
            ok = np.flatnonzero(~np.isnan(rows).any(axis=1))
            copy_rows(table, rows, ok)
            trained.append(len(ok))
        self.trained_rows = (trained[0], trained[1])
        return None

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """LIBMF's own prediction for (user, item) pairs, through the bindings with the layout its C side reads."""
        pairs = np.asfortranarray(np.column_stack([users, items]).astype(np.float32))
        return self.mf.predict(pairs)

    def release(self) -> None:
        """Free the last trained LIBMF model (the bindings never do)."""
        mf_obj = getattr(self, "mf", None)
        if mf_obj is not None and getattr(mf_obj, "model", None) is not None and libmf_mf is not None:
            pointer = ctypes.pointer(mf_obj.model)  # the struct LIBMF allocated, not a copy
            libmf_mf.mf.mf_destroy_model(ctypes.byref(pointer))
            mf_obj.model = None
        self.mf = None

    def work_per_update(self, model: nn.Module) -> Mapping[str, Any] | None:
        """Per-rating SGD on fp32 rows of k factors (a 12-byte rating record, as LIBMF stores it), plus the
        one fp32 step-size accumulator per row that LIBMF's adaptive steps read and write."""
        work = roofline.per_rating_sgd(model.user_factors.weight.shape[1], 4)
        return {
            **work,
            "bytes_per_update": work["bytes_per_update"] + 2 * 2 * 4,
            "work_model": work["work_model"] + ", adaptive step (one accumulator per row)",
        }

    def info(self) -> Mapping[str, Any] | None:
        return {
            "library": DISTRIBUTION,
            "version": version(DISTRIBUTION),
            "whole_fit": True,
            "threads": self.params["threads"],
            "deterministic": self.params["threads"] == 1,
            "order": "LIBMF's own: rows, columns and ratings shuffled, blocks scheduled across threads",
            "seed": "not settable through the bindings (LIBMF's fixed internal generator)",
            "library_options": dict(getattr(self, "options", {})),
            # A retried fit's time includes its deadlocked attempts: these say how many and how long.
            "hung_attempts": list(getattr(self, "hung", [])),
            "trained_rows": {"users": self.trained_rows[0], "items": self.trained_rows[1]}
            if hasattr(self, "trained_rows")
            else None,
        }

    def teardown(self) -> None:
        self.release()
        self.X = None


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(LibMF)
