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
fresh random order (:func:`mfbench.epoch_permutation` of seed and epoch, in the
worker's own stream), so reshuffling is part of the timed epoch but runs in
parallel. Each batch takes the hand-written step every mfbench minibatch SGD
strategy takes (``plugins.common.sgd.sgd_batch``): the per-rating objective
``(pred - r)**2 + reg * (||p_u||^2 + ||q_i||^2 [+ b_u^2 + b_i^2])``, each row
moved by the sum of its ratings' steps from the rows as they were when the batch
was read, divided by the row's expected count per batch when above 1
(``row_step=expected``, the default), by its count in the batch (``mean``) or
not at all (``sum``), so ``lr`` means the same thing as a per-rating SGD
learning rate (see ``batching.ExpectedCounts`` for why).

The workers are a :class:`mfbench.run.executors.WorkerGroup` without a process
group: a worker that dies makes ``run_epoch`` raise at once, an epoch that takes
longer than ``call_timeout`` seconds raises ``CaseTimeout`` (its late answer is never
counted for a later epoch), ``teardown`` stops every worker (ask, terminate,
kill), and workers exit by themselves when the parent dies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.multiprocessing as mp
from torch import nn

import mfbench
from mfbench import find_tables, layout_problem
from mfbench.plugins.common.batching import ROW_STEPS, batch_slices, row_weights
from mfbench.plugins.common.sgd import SCHEDULE_CONSTRAINTS, SCHEDULE_PARAMS, SCHEDULE_SPACE, epoch_lr, sgd_batch
from mfbench.run.executors import START_METHODS, WorkerContext, WorkerError, WorkerGroup, WorkerTimeout

#: The pool's errors under the names hogwild has always raised.
HogwildWorkerError = WorkerError
HogwildTimeout = WorkerTimeout


def shard_bounds(n: int, workers: int, rank: int) -> tuple[int, int]:
    """The contiguous slice of ``n`` pre-shuffled ratings that worker ``rank`` owns."""
    return n * rank // workers, n * (rank + 1) // workers


class ShardTrainer:
    """One worker's side: minibatch SGD over its shard, writing into the shared tables.

    Kept apart from the process plumbing so that it can be unit-tested in-process.
    """

    def __init__(
        self, tables: dict[str, torch.Tensor], data: tuple[torch.Tensor, ...], rank: int, config: dict[str, Any]
    ) -> None:
        self.P, self.Q = tables["user_factors"], tables["item_factors"]
        # 1-D views of the bias tables (shared storage): what the step gathers from and scatters into.
        self.biases = (tables["user_bias"].view(-1), tables["item_bias"].view(-1)) if "user_bias" in tables else None
        self.lr, self.reg = float(config["lr"]), float(config["reg"])
        self.lr_decay = float(config["lr_decay"])
        self.batch_size = int(config["batch_size"])
        self.seed, self.rank = int(config["seed"]), rank
        start, stop = shard_bounds(len(data[0]), int(config["workers"]), rank)
        self.users, self.items = (t[start:stop] for t in data[:2])
        # The global mean is a constant of the model: folded into the shard's targets once.
        self.targets = data[2][start:stop].to(self.P.dtype) - float(config["global_mean"])
        n = stop - start
        # Per-epoch shuffled copies of the shard, allocated once (fresh large tensors cost page faults).
        self.u = torch.empty(n, dtype=torch.int64)
        self.i = torch.empty(n, dtype=torch.int64)
        self.r = torch.empty(n, dtype=self.P.dtype)
        # What a row's summed step in a batch is divided by (batching.ExpectedCounts, RowCounts). Expected
        # counts come from all training ratings: a row's share of a shard's batch is its share of the data.
        self.counts = None
        if config["row_step"] != "sum":
            self.counts = (
                row_weights(config["row_step"], data[0], self.P.shape[0], self.batch_size, self.P.dtype),
                row_weights(config["row_step"], data[1], self.Q.shape[0], self.batch_size, self.P.dtype),
            )

    @torch.no_grad()
    def run_epoch(self, epoch: int) -> tuple[float, int]:
        """Visit the shard once in this epoch's order; return (sum of squared errors, ratings)."""
        n = len(self.u)
        order = mfbench.epoch_permutation(n, self.seed, epoch, stream=self.rank)
        torch.index_select(self.users, 0, order, out=self.u)
        torch.index_select(self.items, 0, order, out=self.i)
        torch.index_select(self.targets, 0, order, out=self.r)
        # Inverse-time decay: constant-step SGD stalls at a noise floor that grows with lr.
        step = -2.0 * epoch_lr(self.lr, self.lr_decay, epoch)
        decay = step * self.reg
        sse = torch.zeros((), dtype=torch.float64)
        for part in batch_slices(n, self.batch_size):
            sse += sgd_batch(
                self.P, self.Q, self.biases, self.u[part], self.i[part], self.r[part], step, decay, self.counts
            ).double()
        return float(sse), n


def shard_worker(
    context: WorkerContext, tables: dict[str, torch.Tensor], data: tuple[torch.Tensor, ...], config: dict[str, Any]
) -> ShardTrainer:
    """What a worker of the pool serves: the trainer of shard ``context.rank``."""
    return ShardTrainer(tables, data, context.rank, config)


class Hogwild(mfbench.Strategy):
    """Lock-free asynchronous minibatch SGD in worker processes on shared-memory factor tables."""

    name = "hogwild"
    params = {
        "workers": 2,
        "batch_size": 1024,
        # per-rating SGD step on (pred - r)^2: the gradient carries the factor 2.
        "lr": 0.01,
        "reg": 0.05,
        # epoch e steps with lr / (1 + lr_decay * e): plugins.common.sgd's schedule.
        **SCHEDULE_PARAMS,
        # what a row's summed step from a worker's batch is divided by: "expected" (its expected count
        # per batch, when above 1), "mean" (its count in the batch) or "sum" (nothing); see minibatch.
        "row_step": "expected",
        # "forkserver" (default: workers are forks of a clean single-threaded server that has torch
        # imported), "spawn" (a fresh interpreter per worker, the slowest to start), or "fork" (the
        # fastest to start; unsafe if the parent runs other threads). Start-up times: results/README.md.
        "start_method": "forkserver",
        # seconds an epoch (or the workers' start-up) may take before run_epoch gives up.
        "call_timeout": 600.0,
    }
    constraints = {
        "workers": ">= 1",
        "batch_size": ">= 1",
        "lr": "positive",
        "reg": "non-negative",
        **SCHEDULE_CONSTRAINTS,
        "start_method": START_METHODS,
        "call_timeout": "positive",
        "row_step": ROW_STEPS,
    }
    devices = ("cpu",)
    exact = False
    deterministic = False
    #: What mfbench tune searches (validation RMSE decides).
    search_space = {
        "lr": mfbench.LogUniform(1e-3, 0.3),
        "reg": mfbench.LogUniform(1e-4, 0.3),
        **SCHEDULE_SPACE,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.group: WorkerGroup | None = None
        self.data: tuple[torch.Tensor, ...] = ()

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        if torch.device(device).type != "cpu":
            return "hogwild shares tables between CPU processes; it runs on cpu only"
        return layout_problem(model, self.name)

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
        found = find_tables(model, self.name, ratings=train)
        global_mean = found.global_mean
        shared = {}
        for name, weight in found.weights().items():
            weight.share_memory_()  # in place: the parameter keeps its identity, its storage moves to shm
            shared[name] = weight.detach()
        self.n = len(train)
        generator = torch.Generator().manual_seed(int(seed))
        order = torch.randperm(self.n, generator=generator)
        data = tuple(t.index_select(0, order).share_memory_() for t in (train.users, train.items, train.values))
        self.data = data  # the shuffled training ratings the workers read (shared memory)
        config = dict(self.params, global_mean=global_mean, seed=int(seed))
        # forkserver: the fork server imports torch and this module once; every later worker is a cheap fork of it.
        self.group = WorkerGroup(
            self.params["workers"],
            backend=None,
            timeout=self.params["call_timeout"],
            start_method=self.params["start_method"],
            threads=1,
            name="mfbench-hogwild",
            label="hogwild worker",
        )
        self.group.start(shard_worker, dict(tables=shared, data=data, config=config))  # stops its workers if it fails

    @property
    def processes(self) -> list[Any]:
        """The worker processes (empty before setup and after teardown)."""
        return self.group.processes if self.group is not None else []

    def run_epoch(self, epoch: int) -> float:
        if self.group is None:
            raise HogwildWorkerError("hogwild has no running workers: setup failed or teardown already ran")
        replies = self.group.call("run_epoch", epoch, what=f"epoch {epoch}")
        return sum(sse for sse, _ in replies) / max(sum(count for _, count in replies), 1)

    def teardown(self) -> None:
        """Stop every worker (the pool asks, then terminates, then kills)."""
        if self.group is not None:
            self.group.close()
        self.group = None
        self.data = ()


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(Hogwild)
