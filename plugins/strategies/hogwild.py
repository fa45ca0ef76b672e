"""Hogwild: lock-free minibatch SGD in several worker processes on shared-memory factor tables.

The model's own weight tensors are moved into shared memory in ``setup``
(``share_memory_`` swaps the storage in place, so the parameters stay the same
objects and the runner's evaluation sees every update). Worker processes are
started in ``setup`` and live across epochs; each epoch, the parent sends every
worker the epoch number and waits for all of them. Workers update the shared
tables with ``index_add_`` without any lock: concurrent updates to the same row
may overwrite each other, which is what Hogwild (Niu et al., 2011) accepts in
exchange for no synchronization.

Work split: the training ratings are shuffled once in ``setup`` and cut into one
contiguous shard per worker; every epoch each worker visits its own shard in a
fresh random order (drawn from seed, epoch and worker), so reshuffling is part
of the timed epoch but runs in parallel. The per-rating objective and gradient
are those of every mfbench SGD strategy, ``(pred - r)**2 + reg * (||p_u||^2 +
||q_i||^2 [+ b_u^2 + b_i^2])``; a minibatch applies, to each row, the sum of its
ratings' steps, each computed from the rows as they were when the batch was read,
divided by the row's expected count per batch when above 1 (``row_step=expected``,
the default), by its count in the batch (``mean``) or not at all (``sum``), so
``lr`` means the same thing as a per-rating SGD learning rate (see
``minibatch.ExpectedCounts`` for why).

Failure handling: the parent waits on the workers' pipes *and* their process
sentinels, so a worker that dies makes ``run_epoch`` raise at once, and an
epoch that takes longer than ``timeout`` seconds raises too; nothing waits
forever. ``teardown`` asks workers to stop, then terminates and finally kills
any that do not exit in time. Workers exit by themselves when the parent dies
(their pipe reaches end-of-file).
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Mapping
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp
from torch import nn

import mfbench
from mfbench.plugins.strategies.als import factor_tables
from mfbench.plugins.strategies.minibatch import ROW_STEPS, row_weights

START_METHODS = ("spawn", "forkserver", "fork")


class HogwildWorkerError(RuntimeError):
    """A worker process failed or died; the message says which and how."""


class HogwildTimeout(HogwildWorkerError, mfbench.CaseTimeout):
    """Workers did not answer within ``timeout``: the case ends as ``timeout``."""


def shard_bounds(n: int, workers: int, rank: int) -> tuple[int, int]:
    """The contiguous slice of ``n`` pre-shuffled ratings that worker ``rank`` owns."""
    return n * rank // workers, n * (rank + 1) // workers


def shard_order(length: int, seed: int, epoch: int, rank: int) -> torch.Tensor:
    """The order in which worker ``rank`` visits its shard in ``epoch``."""
    child = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(rank)]).generate_state(1, np.uint64)[0]
    generator = torch.Generator().manual_seed(int(child) & 0x7FFFFFFFFFFFFFFF)
    return torch.randperm(length, generator=generator)


class ShardTrainer:
    """One worker's side: minibatch SGD over its shard, writing into the shared tables.

    Kept apart from the process plumbing so that it can be unit-tested in-process.
    """

    def __init__(self, tables: dict[str, torch.Tensor], data: tuple[torch.Tensor, ...], rank: int,
                 config: dict[str, Any]) -> None:
        self.P, self.Q = tables["user_factors"], tables["item_factors"]
        self.bu, self.bi = tables.get("user_bias"), tables.get("item_bias")
        self.mean = float(config["global_mean"])
        self.lr, self.reg = float(config["lr"]), float(config["reg"])
        self.lr_decay = float(config["lr_decay"])
        self.batch_size = int(config["batch_size"])
        self.seed, self.rank = int(config["seed"]), rank
        start, stop = shard_bounds(len(data[0]), int(config["workers"]), rank)
        self.users, self.items, self.values = (t[start:stop] for t in data)
        n = stop - start
        # Per-epoch shuffled copies of the shard, allocated once (fresh large tensors cost page faults).
        self.u = torch.empty(n, dtype=torch.int64)
        self.i = torch.empty(n, dtype=torch.int64)
        self.r = torch.empty(n, dtype=self.P.dtype)
        # What a row's summed step in a batch is divided by (minibatch.ExpectedCounts, RowCounts). Expected
        # counts come from all training ratings: a row's share of a shard's batch is its share of the data.
        self.counts = None
        if config["row_step"] != "sum":
            self.counts = (row_weights(config["row_step"], data[0], self.P.shape[0], self.batch_size, self.P.dtype),
                           row_weights(config["row_step"], data[1], self.Q.shape[0], self.batch_size, self.P.dtype))

    def run_epoch(self, epoch: int) -> tuple[float, int]:
        """Visit the shard once in this epoch's order; return (sum of squared errors, ratings)."""
        n = len(self.u)
        order = shard_order(n, self.seed, epoch, self.rank)
        torch.index_select(self.users, 0, order, out=self.u)
        torch.index_select(self.items, 0, order, out=self.i)
        torch.index_select(self.values.to(self.r.dtype), 0, order, out=self.r)
        P, Q, bu, bi = self.P, self.Q, self.bu, self.bi
        # Inverse-time decay: constant-step SGD stalls at a noise floor that grows with lr.
        step = -2.0 * self.lr / (1.0 + self.lr_decay * epoch)
        shrink = step * self.reg
        sse = torch.zeros((), dtype=torch.float64)
        with torch.no_grad():
            for start in range(0, n, self.batch_size):
                u = self.u[start: start + self.batch_size]
                i = self.i[start: start + self.batch_size]
                r = self.r[start: start + self.batch_size]
                pu = P.index_select(0, u)
                qi = Q.index_select(0, i)
                err = (pu * qi).sum(1)
                if bu is not None:
                    bu_u = bu.index_select(0, u)
                    bi_i = bi.index_select(0, i)
                    err += bu_u.squeeze(1) + bi_i.squeeze(1) + self.mean
                err -= r
                sse += err.double().square().sum()
                # The step of (pred - r)^2 + reg ||p_u||^2 on p_u is -2 lr (err q_i + reg p_u); likewise for
                # the rest. The step size is folded into the factors here because index_add_ with
                # alpha != 1 takes a path several times slower on CPU (torch 2.13).
                scaled = err.mul_(step)
                if self.counts is None:
                    col_u = col_i = scaled.unsqueeze(1)
                    shrink_u = shrink_i = shrink
                else:
                    inv_u, inv_i = self.counts[0].inverse(u), self.counts[1].inverse(i)
                    col_u, col_i = (scaled * inv_u).unsqueeze(1), (scaled * inv_i).unsqueeze(1)
                    shrink_u, shrink_i = inv_u.mul_(shrink).unsqueeze(1), inv_i.mul_(shrink).unsqueeze(1)
                # The item step reads pu before the user step reuses its buffer.
                Q.index_add_(0, i, torch.addcmul(qi * shrink_i, pu, col_i))
                P.index_add_(0, u, pu.mul_(shrink_u).addcmul_(qi, col_u))
                if bu is not None:
                    bu.index_add_(0, u, bu_u.mul_(shrink_u).add_(col_u))
                    bi.index_add_(0, i, bi_i.mul_(shrink_i).add_(col_i))
        return float(sse), n


def worker_main(rank: int, conn: Connection, tables: dict[str, torch.Tensor], data: tuple[torch.Tensor, ...],
                config: dict[str, Any], inherited: tuple[Connection, ...] = ()) -> None:
    """A worker process: train an epoch per request until told to stop or the parent goes away.

    ``inherited`` are the parent's pipe ends a forked child got a copy of; they are closed first,
    or the child would hold its own pipe open and never see end-of-file when the parent dies.
    """
    for parent_end in inherited:
        parent_end.close()
    torch.set_num_threads(1)
    try:
        trainer = ShardTrainer(tables, data, rank, config)
        conn.send(("ready", os.getpid()))
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the parent is gone: nobody needs this worker any more
                return
            if message[0] == "stop":
                return
            sse, count = trainer.run_epoch(message[1])
            conn.send(("done", message[1], sse, count))
    except BaseException:  # report anything, then exit; the parent turns it into an error
        try:
            conn.send(("error", traceback.format_exc()))
        except Exception:
            pass


class Hogwild(mfbench.Strategy):
    """Lock-free asynchronous minibatch SGD in worker processes on shared-memory factor tables."""

    name = "hogwild"
    params = {
        "workers": 2,
        "batch_size": 1024,
        # per-rating SGD step on (pred - r)^2: the gradient carries the factor 2.
        "lr": 0.01,
        "reg": 0.05,
        # epoch e steps with lr / (1 + lr_decay * e).
        "lr_decay": 0.0,
        # what a row's summed step from a worker's batch is divided by: "expected" (its expected count
        # per batch, when above 1), "mean" (its count in the batch) or "sum" (nothing); see minibatch.
        "row_step": "expected",
        # "forkserver" (default: workers are forks of a clean single-threaded server that has torch
        # imported, ~0.1 s each after the server's first start), "spawn" (a fresh interpreter per
        # worker, seconds each), or "fork" (fastest; unsafe if the parent runs other threads).
        "start_method": "forkserver",
        # seconds an epoch (or the workers' start-up) may take before run_epoch gives up.
        "timeout": 600.0,
    }
    constraints = {"workers": ">= 1", "batch_size": ">= 1", "lr": "positive", "reg": "non-negative", "lr_decay": "non-negative",
                   "start_method": START_METHODS, "timeout": "positive", "row_step": ROW_STEPS}
    devices = ("cpu",)
    exact = False
    deterministic = False
    #: Seconds teardown waits for workers to exit after asking; then terminate, then kill.
    stop_timeout = 5.0
    #: What mfbench tune searches (validation RMSE decides).
    search_space = {"lr": mfbench.LogUniform(1e-3, 0.3), "reg": mfbench.LogUniform(1e-4, 0.3)}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.processes: list[Any] = []
        self.conns: list[Connection] = []
        self.data: tuple[torch.Tensor, ...] = ()

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        if torch.device(device).type != "cpu":
            return "hogwild shares tables between CPU processes; it runs on cpu only"
        tables, reason = factor_tables(model)
        return None if tables is not None else reason

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> list[str]:
        problems = super().check_params(params)
        if params["start_method"] in START_METHODS and params["start_method"] not in mp.get_all_start_methods():
            problems.append(f"{cls.problem_prefix()}start method {params['start_method']!r} is not available on this platform")
        return problems

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        reason = self.skip(model, device)
        if reason:
            raise mfbench.MfbenchError(f"hogwild cannot train this model: {reason}")
        tables, _ = factor_tables(model)
        if tables["user_factors"].shape[0] != train.n_users or tables["item_factors"].shape[0] != train.n_items:
            raise mfbench.MfbenchError(
                f"model tables are {tables['user_factors'].shape[0]} x {tables['item_factors'].shape[0]} "
                f"but the ratings are {train.n_users} x {train.n_items}"
            )
        global_mean = float(tables.pop("global_mean")) if "global_mean" in tables else 0.0
        shared = {}
        for name, weight in tables.items():
            weight.share_memory_()  # in place: the parameter keeps its identity, its storage moves to shm
            shared[name] = weight.detach()
        self.n = len(train)
        generator = torch.Generator().manual_seed(int(seed))
        order = torch.randperm(self.n, generator=generator)
        data = tuple(t.index_select(0, order).share_memory_() for t in (train.users, train.items, train.values))
        self.data = data  # the shuffled training ratings the workers read (shared memory)
        config = dict(self.params, global_mean=global_mean, seed=int(seed))
        context = mp.get_context(self.params["start_method"])
        if self.params["start_method"] == "forkserver":
            # The fork server imports torch and this module once; every later worker is a cheap fork of it.
            # (Only takes effect if this process has not started its fork server yet.)
            context.set_forkserver_preload([__name__])
        try:
            self.start_workers(context, shared, data, config)
        except BaseException:
            self.teardown()  # leave nothing behind, even if the runner never got to call teardown
            raise

    def start_workers(self, context: Any, shared: dict[str, torch.Tensor], data: tuple[torch.Tensor, ...],
                      config: dict[str, Any]) -> None:
        for rank in range(self.params["workers"]):
            parent_end, child_end = context.Pipe(duplex=True)
            # Only a forked child inherits (copies of) the parent's ends; spawn and forkserver pass
            # just the arguments, and pickling a parent end for them would hand them a duplicate.
            inherited = (*self.conns, parent_end) if self.params["start_method"] == "fork" else ()
            process = context.Process(
                target=worker_main, args=(rank, child_end, shared, data, config, inherited),
                name=f"mfbench-hogwild-{rank}", daemon=True,
            )
            self.conns.append(parent_end)
            self.processes.append(process)
            process.start()
            child_end.close()  # only the child holds it now, so its death reads as EOF here
        self.collect("ready", "start-up")

    def collect(self, expected: str, what: str, epoch: int | None = None) -> list[tuple]:
        """Wait for one ``expected`` message from every worker; raise if one fails, dies or is late.

        A "done" from an earlier, aborted epoch is skipped, never counted for ``epoch``.
        """
        deadline = time.monotonic() + self.params["timeout"]
        pending = dict(enumerate(self.conns))
        replies: list[tuple] = []
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                late = ", ".join(f"{rank} (pid {self.processes[rank].pid})" for rank in sorted(pending))
                raise HogwildTimeout(
                    f"hogwild {what}: workers {late} did not finish within timeout={self.params['timeout']} s"
                )
            sentinels = {self.processes[rank].sentinel: rank for rank in pending}
            ready = wait(list(pending.values()) + list(sentinels), timeout=remaining)
            # Read messages first: a worker that fails sends its traceback, then exits.
            for rank, conn in list(pending.items()):
                if conn in ready or conn.poll():
                    try:
                        message = conn.recv()
                    except (EOFError, OSError):
                        raise self.died(rank, what) from None
                    if message[0] == "error":
                        raise HogwildWorkerError(
                            f"hogwild worker {rank} (pid {self.processes[rank].pid}) failed during {what}:\n"
                            f"{message[1]}"
                        )
                    if message[0] == "done" and message[1] != epoch:
                        continue
                    if message[0] != expected:
                        raise HogwildWorkerError(f"hogwild worker {rank} sent {message[0]!r}, expected {expected!r}")
                    replies.append(message)
                    del pending[rank]
            for sentinel, rank in sentinels.items():
                if sentinel in ready and rank in pending:
                    raise self.died(rank, what)
        return replies

    def died(self, rank: int, what: str) -> HogwildWorkerError:
        process = self.processes[rank]
        process.join(1.0)
        code = process.exitcode
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        return HogwildWorkerError(
            f"hogwild worker {rank} (pid {process.pid}) {how} during {what}; the case cannot continue "
            f"(out of memory? killed from outside?)"
        )

    def run_epoch(self, epoch: int) -> float:
        if not self.processes:
            raise HogwildWorkerError("hogwild has no running workers: setup failed or teardown already ran")
        what = f"epoch {epoch}"
        for rank, conn in enumerate(self.conns):
            try:
                conn.send(("epoch", epoch))
            except (BrokenPipeError, ConnectionResetError, OSError):
                raise self.died(rank, what) from None
        replies = self.collect("done", what, epoch)
        sse = sum(reply[2] for reply in replies)
        count = sum(reply[3] for reply in replies)
        return sse / max(count, 1)

    def teardown(self) -> None:
        """Stop every worker: ask, wait up to ``stop_timeout`` s, then terminate, then kill."""
        for conn in self.conns:
            try:
                conn.send(("stop",))
            except (BrokenPipeError, ConnectionResetError, OSError, ValueError):
                pass
        deadline = time.monotonic() + self.stop_timeout
        for process in self.processes:
            if process.pid is not None:
                process.join(max(0.0, deadline - time.monotonic()))
        for process in self.processes:
            if process.pid is not None and process.is_alive():
                process.terminate()
                process.join(1.0)
        for process in self.processes:
            if process.pid is not None and process.is_alive():
                process.kill()
                process.join(5.0)
        for conn in self.conns:
            conn.close()
        for process in self.processes:
            try:
                process.close()
            except ValueError:  # still running after kill + join: nothing more can be done from here
                pass
        self.processes, self.conns = [], []
        self.data = ()


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(Hogwild)
