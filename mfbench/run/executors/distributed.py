"""Running a strategy's epochs on several ranks: a single-host launcher, and torchrun.

Two ways a distributed strategy gets its ranks:

- **Single host, launched here** (the default): the worker pool
  (:class:`mfbench.run.executors.pool.WorkerGroup`) starts ``world_size`` ranks that
  build the process group and a rank-side object, then serve calls. The parent is
  not a rank: it sends every rank the same call and waits for all of them; the pool
  makes a dead rank raise at once and a hung one after ``call_timeout`` seconds, and its
  ranks exit by themselves when the parent goes away.
- **Under torchrun** (``RANK``/``WORLD_SIZE``/``MASTER_ADDR`` set): ``mfbench run``
  runs on every rank; the strategy joins the default process group (initializing it
  from ``env://`` if the CLI has not) and builds its rank-side object in this
  process. :func:`is_primary` says which process writes results and prints.

:class:`DistributedStrategy` (``mfbench.DistributedStrategy``; ``RankStrategy`` is its
older name) wraps both behind the runner's protocol. This module knows
no particular strategy: a strategy names a picklable rank-side class and what to
hand it; every call on it returns a tuple of numbers, summed over ranks.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from torch import nn

from ...data.ratings import Ratings
from ...errors import MfbenchError
from ...plugin.parts import Strategy
from .pool import WorkerContext, WorkerError, WorkerGroup

#: Environment variables torchrun sets on every rank it starts.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
#: What a rank-side object is built with: where it runs (its rank, the world size, its device...).
RankContext = WorkerContext


# -- torchrun ------------------------------------------------------------------


def launched_by_torchrun() -> bool:
    """True in a process that torchrun (or any env:// launcher) started as one rank of a job."""
    return all(key in os.environ for key in TORCHRUN_ENV)


def rank() -> int:
    """This process's global rank: 0 outside a distributed job."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ["RANK"]) if launched_by_torchrun() else 0


def world_size() -> int:
    """The number of ranks of the job this process belongs to: 1 outside a distributed job."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ["WORLD_SIZE"]) if launched_by_torchrun() else 1


def local_rank() -> int:
    """This process's rank on its host (torchrun's LOCAL_RANK): picks its GPU."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_primary() -> bool:
    """Whether this process writes the results file and prints: rank 0, or any non-distributed run."""
    return rank() == 0


def backend_for(device: torch.device | str) -> str:
    """gloo for CPU tensors, nccl for CUDA tensors."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def join_torchrun_group(backend: str, timeout: float | None = None) -> None:
    """Make sure the default process group of a torchrun job exists (from env:// if nobody made it)."""
    if not launched_by_torchrun():
        raise MfbenchError("not started by torchrun: RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT are not all set")
    if dist.is_initialized():
        if dist.get_backend() != backend:
            raise MfbenchError(
                f"the job's process group uses {dist.get_backend()}, this strategy needs {backend} "
                f"(gloo for cpu, nccl for cuda): run the cases of one device type per torchrun job"
            )
        return
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    kwargs: dict[str, Any] = {"timeout": timedelta(seconds=timeout)} if timeout else {}
    dist.init_process_group(backend, init_method="env://", **kwargs)


def barrier() -> None:
    """Wait for every rank (a no-op outside a distributed job): call before rank 0 finishes the results."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def finish() -> None:
    """Leave the torchrun job's process group at the end of ``mfbench run`` (a no-op if none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# -- shared tensors and sums --------------------------------------------------------


def share_model(model: nn.Module) -> nn.Module:
    """Move a CPU model's parameters and buffers to shared memory in place (they keep their identity)."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.device.type == "cpu":
            tensor.share_memory_()
    return model


def shared_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A copy of ``tensor`` that worker processes can read without another copy (CPU: shared memory)."""
    return tensor.clone().share_memory_() if tensor.device.type == "cpu" else tensor


def sum_over_ranks(values: Sequence[float], device: torch.device) -> list[float]:
    """Sum a few numbers over the torchrun job's ranks (float64)."""
    total = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.tolist()


# -- the strategy side -----------------------------------------------------------


class DistributedStrategy(Strategy):
    """A strategy whose epochs run on ``world_size`` ranks, launched here or by torchrun.

    Subclasses set ``rank_worker`` (a picklable class built as ``rank_worker(RankContext,
    **payload)``, whose ``run_epoch(epoch)`` returns ``(sum of squared errors, ratings,
    bytes sent)`` for its rank and whose ``info()`` returns a tuple of numbers) and
    implement :meth:`payloads`. Their ``params`` must include ``world_size`` and ``call_timeout``
    (seconds one call to the ranks may take; a strategy written when it was named ``timeout`` works too).
    """

    scales_with = "world_size"
    rank_worker: ClassVar[type]
    #: Modules each worker imports while starting, before its timers matter: torch builds its first
    #: optimizer or DistributedDataParallel after a lazy ``import torch._dynamo`` of 2-5 s.
    preimport: ClassVar[tuple[str, ...]] = ("torch._dynamo",)
    start_method: str = "forkserver"
    #: Names of the numbers the rank objects' ``info()`` return, summed over ranks.
    info_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.group: WorkerGroup | None = None
        self.local: Any = None
        self.launcher = "torchrun" if launched_by_torchrun() else "spawn"
        self.last_epoch: tuple[float, float, float] | None = None
        self.startup: dict[str, float] = {}

    def skip(self, model: nn.Module, device: torch.device) -> str | None:
        if launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) != self.params["world_size"]:
            return (
                f"torchrun started {os.environ['WORLD_SIZE']} ranks but {self.name} has world_size="
                f"{self.params['world_size']}: select it with world_size={os.environ['WORLD_SIZE']}"
            )
        return None

    def call_timeout(self) -> float:
        """Seconds one call to the ranks may take (``timeout`` in strategies written before it was renamed)."""
        return float(self.params["call_timeout"] if "call_timeout" in self.params else self.params["timeout"])

    def payloads(self, model: nn.Module, train: Ratings, device: torch.device, seed: int) -> list[dict[str, Any]]:
        """What each rank's object is built from (one mapping per rank; this process's rank only under torchrun)."""
        raise NotImplementedError

    def setup(self, model: nn.Module, train: Ratings, device: torch.device, seed: int) -> None:
        device = torch.device(device)
        reason = self.skip(model, device)
        if reason:
            raise MfbenchError(f"{self.name} cannot run this case: {reason}")
        backend = backend_for(device)
        began = time.perf_counter()
        if self.launcher == "torchrun":
            join_torchrun_group(backend, self.call_timeout())
            grouped = time.perf_counter()
            payload = self.payloads(model, train, device, seed)[0]
            context = RankContext(dist.get_rank(), dist.get_world_size(), backend, device, "torchrun")
            self.local = self.rank_worker(context, **payload)
            self.startup = {"process_group_s": grouped - began, "rank_setup_s": time.perf_counter() - grouped}
            return
        payloads = self.payloads(model, train, device, seed)
        self.group = WorkerGroup(
            self.params["world_size"],
            backend=backend,
            device_type=device.type,
            timeout=self.call_timeout(),
            start_method=self.start_method,
            preimport=self.preimport,
            name=f"mfbench-{self.name}",
        )
        self.group.start(self.rank_worker, payloads)
        self.startup = dict(self.group.startup, total_s=time.perf_counter() - began)

    def call_sum(self, method: str, *args: Any) -> list[float]:
        """Call ``method`` on every rank and sum the returned tuples of numbers element-wise."""
        if self.local is not None:
            return sum_over_ranks(getattr(self.local, method)(*args), self.local_device())
        if self.group is None:
            raise WorkerError(f"{self.name} has no running ranks: setup failed or teardown already ran")
        replies = self.group.call(method, *args)
        return [float(sum(column)) for column in zip(*replies, strict=True)]

    def local_device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")

    def run_epoch(self, epoch: int) -> float:
        sse, count, sent = self.call_sum("run_epoch", epoch)
        self.last_epoch = (sse, count, sent)
        return sse / max(count, 1.0)

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "world_size": self.params["world_size"],
            "backend": self.group.backend if self.group else (dist.get_backend() if dist.is_initialized() else None),
            "launcher": self.launcher,
            "bytes_per_epoch": int(self.last_epoch[2]) if self.last_epoch else None,
            "startup_s": dict(self.startup),
        }
        if self.group is not None:
            info["threads_per_rank"] = self.group.threads
        if self.info_fields and (self.group is not None or self.local is not None):
            info.update(zip(self.info_fields, self.call_sum("info"), strict=True))
        return info

    def teardown(self) -> None:
        if self.group is not None:
            self.group.close()
        if self.local is not None and hasattr(self.local, "close"):
            self.local.close()
        self.group = None
        self.local = None


#: The older name of :class:`DistributedStrategy`.
RankStrategy = DistributedStrategy


def replica(model: nn.Module, device: torch.device, in_place: bool) -> nn.Module:
    """The model itself (``in_place``) or a private copy of it on ``device``."""
    return model if in_place else copy.deepcopy(model).to(device)
