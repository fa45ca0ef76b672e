"""Running a strategy's epochs on several ranks: a single-host launcher, and torchrun.

Two ways a distributed strategy gets its ranks:

- **Single host, launched here** (the default): :class:`WorkerGroup` starts
  ``world_size`` worker processes with ``torch.multiprocessing``; they meet through
  a ``TCPStore`` the parent owns (port 0: the OS picks a free port, so there is no
  port race), build the process group and a rank-side object, then serve calls.
  The parent is not a rank: it sends every rank the same call and waits for all of
  them, on their pipes *and* their process sentinels, so a dead worker raises at
  once and a hung one raises after ``timeout`` seconds. Workers exit by themselves
  when the parent goes away (a watcher thread sees their lifeline pipe close).
- **Under torchrun** (``RANK``/``WORLD_SIZE``/``MASTER_ADDR`` set): ``mfbench run``
  runs on every rank; the strategy joins the default process group (initializing it
  from ``env://`` if the CLI has not) and builds its rank-side object in this
  process. :func:`is_primary` says which process writes results and prints.

:class:`RankStrategy` wraps both behind the runner's protocol. This module knows
no particular strategy: a strategy names a picklable rank-side class and what to
hand it; every call on it returns a tuple of numbers, summed over ranks.
"""

from __future__ import annotations

import copy
import importlib
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.connection import Connection, wait
from typing import Any, ClassVar, Literal

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ..errors import CaseTimeout, MfbenchError
from ..parts import Strategy
from ..ratings import Ratings

#: Environment variables torchrun sets on every rank it starts.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
START_METHODS = ("forkserver", "spawn", "fork")
#: Exit code of a worker whose parent went away.
ORPHAN_EXIT = 70


class WorkerError(RuntimeError):
    """A rank failed, died or could not start; the message says which and how."""


class WorkerTimeout(WorkerError, CaseTimeout):
    """Ranks did not answer within the timeout (hung, or stuck in a collective with a dead peer)."""


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


# -- the rank side -------------------------------------------------------------


@dataclass(frozen=True)
class RankContext:
    """What a rank-side object knows about where it runs."""

    rank: int
    world_size: int
    backend: str
    device: torch.device
    #: "spawn": a worker of :class:`WorkerGroup` (the parent's model is in shared memory);
    #: "torchrun": the runner's own process (the model is this process's own).
    launcher: str
    #: Sends a progress message to the parent while a call runs (a worker of
    #: :class:`WorkerGroup` only): ``WorkerGroup.call(..., on_event=...)`` receives it.
    notify: Callable[[Any], None] | None = None


def rank_device(device_type: str, rank_on_host: int) -> torch.device:
    if device_type == "cuda":
        index = rank_on_host % max(torch.cuda.device_count(), 1)
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device(device_type)


def _exit_when_orphaned(lifeline: Connection) -> None:
    """Block until the parent's end of the lifeline closes (it never writes), then exit at once."""
    try:
        lifeline.poll(None)
    except (EOFError, OSError):
        pass
    os._exit(ORPHAN_EXIT)


def _rank_main(rank_: int, spec: dict[str, Any], conn: Connection, lifeline: Connection,
               factory: Callable[..., Any], payload: Mapping[str, Any], inherited: tuple[Connection, ...]) -> None:
    """A worker process: join the group, build the rank object, answer calls until told to stop."""
    for parent_end in inherited:  # forked children hold copies of the parent's ends: drop them
        parent_end.close()
    threading.Thread(target=_exit_when_orphaned, args=(lifeline,), daemon=True, name="mfbench-lifeline").start()
    current = [0]  # the call being served: its events carry its sequence number

    def notify(event: Any) -> None:
        conn.send(("event", current[0], event))

    try:
        if spec["threads"]:
            torch.set_num_threads(spec["threads"])
        started = time.perf_counter()
        for module in spec["preimport"]:
            importlib.import_module(module)
        imported = time.perf_counter()
        if spec["backend"] is not None:
            timeout = timedelta(seconds=spec["timeout"])
            store = dist.TCPStore(spec["host"], spec["port"], is_master=False, timeout=timeout)
            dist.init_process_group(spec["backend"], store=store, rank=rank_, world_size=spec["world_size"], timeout=timeout)
        grouped = time.perf_counter()
        context = RankContext(rank_, spec["world_size"], spec["backend"], rank_device(spec["device_type"], rank_), "spawn",
                              notify)
        worker = factory(context, **payload)
        built = time.perf_counter()
        times = {"import_s": imported - started, "process_group_s": grouped - imported, "rank_setup_s": built - grouped}
        conn.send(("ready", 0, os.getpid(), times))
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                return
            if message[0] == "stop":
                return
            _, seq, method, args = message
            current[0] = seq
            conn.send(("done", seq, getattr(worker, method)(*args)))
    except BaseException:
        try:
            conn.send(("error", -1, traceback.format_exc()))
        except Exception:
            pass
    finally:
        if dist.is_initialized():
            try:
                dist.destroy_process_group()
            except Exception:
                pass


# -- the parent side -----------------------------------------------------------


class WorkerGroup:
    """``world_size`` worker processes on this host, one rank each, serving calls on a rank-side object.

    :param world_size: ranks to start.
    :param backend: the process group's backend (gloo, nccl), or None for independent workers
        that form no process group (one process per benchmark case, say).
    :param device_type: "cpu" or "cuda" (rank r uses GPU r modulo the GPUs present).
    :param timeout: seconds start-up or one call may take before :class:`WorkerTimeout`;
        also the process group's own timeout, so survivors of a dead peer give up too.
    :param start_method: forkserver (default: forks of a clean server process), spawn or fork.
    :param threads: intra-op threads per rank (None leaves torch's default).
    :param preimport: modules every rank imports before it joins the group (counted as start-up).
    :param daemon: start the workers as daemon processes (they cannot start processes of their own);
        False for workers that run code which may (a benchmark case whose strategy has workers).
    """

    #: Seconds teardown waits for workers to exit after asking; then terminate, then kill.
    stop_timeout: float = 5.0

    def __init__(self, world_size: int, *, backend: str | None = "gloo", device_type: str = "cpu", timeout: float = 600.0,
                 start_method: str = "forkserver", threads: int | None = 1, preimport: Sequence[str] = (),
                 name: str = "mfbench-rank", daemon: bool = True) -> None:
        if world_size < 1:
            raise MfbenchError(f"world_size must be at least 1, got {world_size}")
        if start_method not in START_METHODS or start_method not in mp.get_all_start_methods():
            raise MfbenchError(f"start method {start_method!r} is not available here; use one of {START_METHODS}")
        if not timeout > 0:
            raise MfbenchError(f"timeout must be positive seconds, got {timeout}")
        self.world_size, self.backend, self.device_type = world_size, backend, device_type
        self.timeout, self.start_method, self.threads = float(timeout), start_method, threads
        self.preimport, self.name, self.daemon = tuple(preimport), name, daemon
        self.processes: list[Any] = []
        self.conns: list[Connection] = []
        self.lifelines: list[Connection] = []
        self.store: Any = None
        self.startup: dict[str, float] = {}
        self.broken: str | None = None
        self._seq = 0

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def start(self, factory: Callable[..., Any], payloads: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
        """Start every rank with ``factory(RankContext, **payload)``; returns once all are ready.

        ``payloads`` is one mapping for every rank or one per rank; tensors in it travel
        through shared memory (``torch.multiprocessing``), so share what ranks must write.
        """
        if isinstance(payloads, Mapping):
            payloads = [payloads] * self.world_size
        if len(payloads) != self.world_size:
            raise MfbenchError(f"{len(payloads)} payloads for {self.world_size} ranks")
        began = time.perf_counter()
        try:
            if self.backend is not None:
                self.store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False,
                                           timeout=timedelta(seconds=self.timeout))
            spec = {"host": "127.0.0.1", "port": self.store.port if self.store else None, "world_size": self.world_size,
                    "backend": self.backend, "device_type": self.device_type, "timeout": self.timeout,
                    "threads": self.threads, "preimport": self.preimport}
            context = mp.get_context(self.start_method)
            if self.start_method == "forkserver":
                # Takes effect only if this process has not started its fork server yet.
                context.set_forkserver_preload([factory.__module__, *self.preimport])
            for rank_, payload in enumerate(payloads):
                parent_end, child_end = context.Pipe(duplex=True)
                life_read, life_write = context.Pipe(duplex=False)
                inherited = (*self.conns, *self.lifelines, parent_end, life_write) if self.start_method == "fork" else ()
                # typeshed's BaseContext, what get_context(str) returns, lacks Process; every start method's context has it.
                process = context.Process(  # type: ignore[attr-defined]
                    target=_rank_main, args=(rank_, spec, child_end, life_read, factory, payload, inherited),
                    name=f"{self.name}-{rank_}", daemon=self.daemon,
                )
                self.conns.append(parent_end)
                self.lifelines.append(life_write)
                self.processes.append(process)
                process.start()
                child_end.close()  # only the child holds these now: its death reads as EOF here
                life_read.close()
            launched = time.perf_counter()
            replies = self._collect("ready", "start-up", 0, self.timeout, None)
        except BaseException:
            self.close()
            raise
        ready = time.perf_counter()
        self.startup = {"processes_s": launched - began, "total_s": ready - began}
        for key in ("import_s", "process_group_s", "rank_setup_s"):
            self.startup[key] = max(reply[3][key] for reply in replies)

    def call(self, method: str, *args: Any, timeout: float | None | Literal["default"] = "default",
             on_event: Callable[[int, Any], None] | None = None) -> list[Any]:
        """Call ``method(*args)`` on every rank's object; the replies in rank order.

        :param timeout: seconds to wait for every reply (default: the group's ``timeout``;
            None waits as long as the workers live).
        :param on_event: called as ``on_event(rank, event)`` for each message a rank sends
            with ``RankContext.notify`` while serving this call.
        """
        if self.broken:
            raise WorkerError(f"the worker group cannot continue: {self.broken}")
        if not self.processes:
            raise WorkerError("no running ranks: start() failed or close() already ran")
        self._seq += 1
        what = f"{method}{args!r}"
        for rank_, conn in enumerate(self.conns):
            try:
                conn.send(("call", self._seq, method, args))
            except (BrokenPipeError, ConnectionResetError, OSError):
                raise self._broke(self._died(rank_, what)) from None
        limit = self.timeout if isinstance(timeout, str) else timeout
        return [reply[2] for reply in self._collect("done", what, self._seq, limit, on_event)]

    def _broke(self, error: WorkerError) -> WorkerError:
        self.broken = str(error).splitlines()[0]
        return error

    def _collect(self, expected: str, what: str, seq: int, timeout: float | None,
                 on_event: Callable[[int, Any], None] | None) -> list[tuple]:
        """One ``expected`` reply per rank, in rank order; raise if one fails, dies or is late."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = dict(enumerate(self.conns))
        replies: dict[int, tuple] = {}
        while pending:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                late = ", ".join(f"{r} (pid {self.processes[r].pid})" for r in sorted(pending))
                raise self._broke(WorkerTimeout(
                    f"{what}: ranks {late} did not answer within timeout={timeout:g} s "
                    f"(hung, or waiting in a collective for a rank that is)"
                ))
            sentinels = {self.processes[r].sentinel: r for r in pending}
            ready = wait(list(pending.values()) + list(sentinels), timeout=remaining)
            for rank_, conn in list(pending.items()):
                if not (conn in ready or conn.poll()):
                    continue
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    raise self._broke(self._died(rank_, what)) from None
                if message[0] == "error":
                    raise self._broke(self._failed(rank_, what, message[2]))
                if message[1] != seq:  # a late answer to an earlier call that gave up
                    continue
                if message[0] == "event":
                    if on_event is not None:
                        on_event(rank_, message[2])
                    continue
                if message[0] != expected:
                    raise self._broke(WorkerError(f"rank {rank_} sent {message[0]!r}, expected {expected!r}"))
                replies[rank_] = message
                del pending[rank_]
            for sentinel, rank_ in sentinels.items():
                if sentinel in ready and rank_ in pending and not self.conns[rank_].poll():
                    raise self._broke(self._died(rank_, what))
        return [replies[r] for r in sorted(replies)]

    def _failed(self, rank_: int, what: str, trace: str) -> WorkerError:
        """A rank's exception, unless a peer died: then the death is the cause and is reported first."""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            # Killed by a signal: a rank that failed by itself reports its error and exits normally.
            dead = [r for r, p in enumerate(self.processes) if r != rank_ and (p.exitcode or 0) < 0]
            if dead:
                error = self._died(dead[0], what)
                return WorkerError(f"{error}\n(rank {rank_} then failed too:\n{trace})")
            time.sleep(0.05)
        return WorkerError(f"rank {rank_} (pid {self.processes[rank_].pid}) failed during {what}:\n{trace}")

    def _died(self, rank_: int, what: str) -> WorkerError:
        process = self.processes[rank_]
        process.join(1.0)
        code = process.exitcode
        return WorkerError(
            f"rank {rank_} (pid {process.pid}) {exit_description(code)} during {what}; the job cannot continue "
            f"(out of memory? killed from outside?)"
        )

    def close(self) -> None:
        """Stop every rank: ask, wait up to ``stop_timeout`` s, then terminate, then kill. Always safe to call."""
        for conn in self.conns:
            try:
                conn.send(("stop",))
            except (BrokenPipeError, ConnectionResetError, OSError, ValueError):
                pass
        deadline = time.monotonic() + (0.5 if self.broken else self.stop_timeout)
        for process in self.processes:
            if process.pid is not None:
                process.join(max(0.0, deadline - time.monotonic()))
        for signal_name in ("terminate", "kill"):
            for process in self.processes:
                if process.pid is not None and process.is_alive():
                    getattr(process, signal_name)()
                    process.join(1.0 if signal_name == "terminate" else 5.0)
        for conn in (*self.conns, *self.lifelines):
            conn.close()
        for process in self.processes:
            try:
                process.close()
            except ValueError:  # still running after kill + join: nothing more can be done from here
                pass
        self.processes, self.conns, self.lifelines = [], [], []
        self.store = None


def signal_name(number: int) -> str:
    """SIGSEGV for 11, and so on; the number where the platform has no name for it."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_description(code: int | None) -> str:
    """How a process ended, from its exit code (negative: the signal that killed it)."""
    if code is None:
        return "is still running"
    if code < 0:
        return f"was killed by signal {-code} ({signal_name(-code)})"
    return f"exited with code {code}"


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


class RankStrategy(Strategy):
    """A strategy whose epochs run on ``world_size`` ranks, launched here or by torchrun.

    Subclasses set ``rank_worker`` (a picklable class built as ``rank_worker(RankContext,
    **payload)``, whose ``run_epoch(epoch)`` returns ``(sum of squared errors, ratings,
    bytes sent)`` for its rank and whose ``info()`` returns a tuple of numbers) and
    implement :meth:`payloads`. Their ``params`` must include ``world_size`` and ``timeout``.
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
            join_torchrun_group(backend, self.params["timeout"])
            grouped = time.perf_counter()
            payload = self.payloads(model, train, device, seed)[0]
            context = RankContext(dist.get_rank(), dist.get_world_size(), backend, device, "torchrun")
            self.local = self.rank_worker(context, **payload)
            self.startup = {"process_group_s": grouped - began, "rank_setup_s": time.perf_counter() - grouped}
            return
        payloads = self.payloads(model, train, device, seed)
        self.group = WorkerGroup(
            self.params["world_size"], backend=backend, device_type=device.type, timeout=self.params["timeout"],
            start_method=self.start_method, preimport=self.preimport, name=f"mfbench-{self.name}",
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
        return [float(sum(column)) for column in zip(*replies)]

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
            info.update(zip(self.info_fields, self.call_sum("info")))
        return info

    def teardown(self) -> None:
        if self.group is not None:
            self.group.close()
        if self.local is not None and hasattr(self.local, "close"):
            self.local.close()
        self.group = None
        self.local = None


def replica(model: nn.Module, device: torch.device, in_place: bool) -> nn.Module:
    """The model itself (``in_place``) or a private copy of it on ``device``."""
    return model if in_place else copy.deepcopy(model).to(device)
