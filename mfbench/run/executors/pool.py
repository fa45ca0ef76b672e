"""The one worker pool: watched worker processes on this host, each serving calls on an object of its own.

Every part of mfbench that runs code in other processes goes through
:class:`WorkerGroup`: the process executor's per-case worker, the ranks of the
distributed strategies (``mfbench.run.executors.distributed``) and hogwild's
workers. It holds what each of them needs and none should write twice:

- **Start-up**: ``size`` processes (forkserver, spawn or fork), each building
  ``factory(WorkerContext, **payload)``; optionally joined in a
  ``torch.distributed`` process group through a ``TCPStore`` the parent owns
  (port 0: the OS picks a free port, so there is no port race).
- **Calls**: the parent sends every worker the same call and waits for all of
  them, on their pipes *and* their process sentinels, so a dead worker raises at
  once (:class:`WorkerError`, naming the signal or exit code) and a hung one after
  ``timeout`` seconds (:class:`WorkerTimeout`, a ``CaseTimeout``: the runner ends
  the case as ``timeout``). Each call carries a sequence number, so a late answer
  to a call that gave up is never counted for the next one.
- **Lifeline**: workers exit by themselves when the parent goes away, however it
  goes (a watcher thread in each sees its lifeline pipe close), so no worker
  outlives a killed benchmark.
- **Stop**: ``close`` asks, waits, terminates, then kills; it waits only briefly
  for a group that cannot continue or a worker still busy with a call, since
  those will not read the request to stop.
"""

from __future__ import annotations

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
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ...errors import CaseTimeout, MfbenchError

START_METHODS = ("forkserver", "spawn", "fork")
#: Exit code of a worker whose parent went away.
ORPHAN_EXIT = 70


class WorkerError(RuntimeError):
    """A worker failed, died or could not start; the message says which and how."""


class WorkerTimeout(WorkerError, CaseTimeout):
    """Workers did not answer within the timeout (hung, or stuck in a collective with a dead peer)."""


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


# -- the worker side -------------------------------------------------------------


@dataclass(frozen=True)
class WorkerContext:
    """What the object a worker serves knows about where it runs."""

    rank: int
    world_size: int
    #: The process group's backend, or None for workers that form no process group.
    backend: str | None
    device: torch.device
    #: "spawn": a worker of :class:`WorkerGroup` (the parent's tensors are in shared memory);
    #: "torchrun": the runner's own process (the model is this process's own).
    launcher: str
    #: Sends a progress message to the parent while a call runs (a worker of
    #: :class:`WorkerGroup` only): ``WorkerGroup.call(..., on_event=...)`` receives it.
    notify: Callable[[Any], None] | None = None


def rank_device(device_type: str, rank_on_host: int) -> torch.device:
    """The device a worker computes on: GPU ``rank_on_host`` modulo the GPUs present, or the CPU."""
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


def _worker_main(
    rank_: int,
    spec: dict[str, Any],
    conn: Connection,
    lifeline: Connection,
    factory: Callable[..., Any],
    payload: Mapping[str, Any],
    inherited: tuple[Connection, ...],
) -> None:
    """A worker process: join the group if any, build the served object, answer calls until told to stop."""
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
        context = WorkerContext(
            rank_, spec["world_size"], spec["backend"], rank_device(spec["device_type"], rank_), "spawn", notify
        )
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


# -- the parent side -------------------------------------------------------------


class WorkerGroup:
    """``world_size`` worker processes on this host, each serving calls on an object of its own.

    :param world_size: workers to start.
    :param backend: the process group's backend (gloo, nccl), or None for independent workers
        that form no process group (one process per benchmark case, hogwild's workers).
    :param device_type: "cpu" or "cuda" (worker r uses GPU r modulo the GPUs present).
    :param timeout: seconds start-up or one call may take before :class:`WorkerTimeout`;
        also the process group's own timeout, so survivors of a dead peer give up too.
    :param start_method: forkserver (default: forks of a clean server process), spawn or fork.
    :param threads: intra-op threads per worker (None leaves torch's default).
    :param preimport: modules every worker imports before it joins the group (counted as start-up).
    :param name: the processes' name prefix.
    :param daemon: start the workers as daemon processes (they cannot start processes of their own);
        False for workers that run code which may (a benchmark case whose strategy has workers).
    :param label: how messages name one worker ("rank", "hogwild worker"); its plural adds an "s".
    """

    #: Seconds teardown waits for workers to exit after asking; then terminate, then kill.
    stop_timeout: float = 5.0
    #: What teardown waits instead when the group cannot continue or a worker is still busy with a call.
    quick_stop_timeout: float = 0.5

    def __init__(
        self,
        world_size: int,
        *,
        backend: str | None = "gloo",
        device_type: str = "cpu",
        timeout: float = 600.0,
        start_method: str = "forkserver",
        threads: int | None = 1,
        preimport: Sequence[str] = (),
        name: str = "mfbench-rank",
        daemon: bool = True,
        label: str = "rank",
    ) -> None:
        if world_size < 1:
            raise MfbenchError(f"world_size must be at least 1, got {world_size}")
        if start_method not in START_METHODS or start_method not in mp.get_all_start_methods():
            raise MfbenchError(f"start method {start_method!r} is not available here; use one of {START_METHODS}")
        if not timeout > 0:
            raise MfbenchError(f"timeout must be positive seconds, got {timeout}")
        self.world_size, self.backend, self.device_type = world_size, backend, device_type
        self.timeout, self.start_method, self.threads = float(timeout), start_method, threads
        self.preimport, self.name, self.daemon, self.label = tuple(preimport), name, daemon, label
        self.processes: list[Any] = []
        self.conns: list[Connection] = []
        self.lifelines: list[Connection] = []
        self.store: Any = None
        self.startup: dict[str, float] = {}
        self.broken: str | None = None
        #: Workers that have not answered the latest call yet (busy, hung or late).
        self.owing: set[int] = set()
        self._seq = 0

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def start(self, factory: Callable[..., Any], payloads: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
        """Start every worker with ``factory(WorkerContext, **payload)``; returns once all are ready.

        ``payloads`` is one mapping for every worker or one per worker; tensors in it travel
        through shared memory (``torch.multiprocessing``), so share what workers must write.
        On any failure every started worker is stopped before the error propagates.
        """
        if isinstance(payloads, Mapping):
            payloads = [payloads] * self.world_size
        if len(payloads) != self.world_size:
            raise MfbenchError(f"{len(payloads)} payloads for {self.world_size} workers")
        began = time.perf_counter()
        try:
            if self.backend is not None:
                self.store = dist.TCPStore(
                    "127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=self.timeout)
                )
            spec = {
                "host": "127.0.0.1",
                "port": self.store.port if self.store else None,
                "world_size": self.world_size,
                "backend": self.backend,
                "device_type": self.device_type,
                "timeout": self.timeout,
                "threads": self.threads,
                "preimport": self.preimport,
            }
            context = mp.get_context(self.start_method)
            if self.start_method == "forkserver":
                # Takes effect only if this process has not started its fork server yet.
                context.set_forkserver_preload([factory.__module__, *self.preimport])
            for rank_, payload in enumerate(payloads):
                parent_end, child_end = context.Pipe(duplex=True)
                life_read, life_write = context.Pipe(duplex=False)
                # Only a forked child inherits (copies of) the parent's ends; spawn and forkserver pass
                # just the arguments, and pickling a parent end for them would hand them a duplicate.
                inherited = (*self.conns, *self.lifelines, parent_end, life_write) if self.start_method == "fork" else ()
                # typeshed's BaseContext, what get_context(str) returns, lacks Process; every start method's context has it.
                process = context.Process(  # type: ignore[attr-defined]
                    target=_worker_main,
                    args=(rank_, spec, child_end, life_read, factory, payload, inherited),
                    name=f"{self.name}-{rank_}",
                    daemon=self.daemon,
                )
                self.conns.append(parent_end)
                self.lifelines.append(life_write)
                self.processes.append(process)
                process.start()
                child_end.close()  # only the child holds these now: its death reads as EOF here
                life_read.close()
            launched = time.perf_counter()
            self.owing = set(range(self.world_size))
            replies = self._collect("ready", "start-up", 0, self.timeout, None)
        except BaseException:
            self.close()
            raise
        ready = time.perf_counter()
        self.startup = {"processes_s": launched - began, "total_s": ready - began}
        for key in ("import_s", "process_group_s", "rank_setup_s"):
            self.startup[key] = max(reply[3][key] for reply in replies)

    def call(
        self,
        method: str,
        *args: Any,
        timeout: float | None | Literal["default"] = "default",
        on_event: Callable[[int, Any], None] | None = None,
        what: str | None = None,
    ) -> list[Any]:
        """Call ``method(*args)`` on every worker's object; the replies in worker order.

        :param timeout: seconds to wait for every reply (default: the group's ``timeout``;
            None waits as long as the workers live).
        :param on_event: called as ``on_event(rank, event)`` for each message a worker sends
            with ``WorkerContext.notify`` while serving this call.
        :param what: how error messages name the call (default: ``method(args)``).
        """
        if self.broken:
            raise WorkerError(f"the worker group cannot continue: {self.broken}")
        if not self.processes:
            raise WorkerError(f"no running {self.label}s: start() failed or close() already ran")
        self._seq += 1
        what = what if what is not None else f"{method}{args!r}"
        self.owing = set(range(self.world_size))
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

    def _late(self, error: WorkerTimeout) -> WorkerTimeout:
        """A timeout ends a process group (a collective may be stuck half-way); independent workers
        may answer late, and their late answers are skipped by sequence number."""
        if self.backend is not None:
            self._broke(error)
        return error

    def _collect(
        self, expected: str, what: str, seq: int, timeout: float | None, on_event: Callable[[int, Any], None] | None
    ) -> list[tuple]:
        """One ``expected`` reply per worker, in worker order; raise if one fails, dies or is late."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = dict(enumerate(self.conns))
        replies: dict[int, tuple] = {}
        while pending:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                late = ", ".join(f"{r} (pid {self.processes[r].pid})" for r in sorted(pending))
                hint = "hung, or waiting in a collective for a rank that is" if self.backend is not None else "hung?"
                raise self._late(
                    WorkerTimeout(f"{what}: {self.label}s {late} did not answer within timeout={timeout:g} s ({hint})")
                )
            sentinels = {self.processes[r].sentinel: r for r in pending}
            ready = wait(list(pending.values()) + list(sentinels), timeout=remaining)
            # Messages first: a worker that fails sends its traceback, then exits.
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
                    raise self._broke(WorkerError(f"{self.label} {rank_} sent {message[0]!r}, expected {expected!r}"))
                replies[rank_] = message
                del pending[rank_]
                self.owing.discard(rank_)
            for sentinel, rank_ in sentinels.items():
                if sentinel in ready and rank_ in pending and not self.conns[rank_].poll():
                    raise self._broke(self._died(rank_, what))
        return [replies[r] for r in sorted(replies)]

    def _failed(self, rank_: int, what: str, trace: str) -> WorkerError:
        """A worker's exception, unless a peer died: then the death is the cause and is reported first."""
        deadline = time.monotonic() + (1.0 if self.backend is not None else 0.0)
        while time.monotonic() < deadline:
            # Killed by a signal: a worker that failed by itself reports its error and exits normally.
            dead = [r for r, p in enumerate(self.processes) if r != rank_ and (p.exitcode or 0) < 0]
            if dead:
                error = self._died(dead[0], what)
                return WorkerError(f"{error}\n({self.label} {rank_} then failed too:\n{trace})")
            time.sleep(0.05)
        return WorkerError(f"{self.label} {rank_} (pid {self.processes[rank_].pid}) failed during {what}:\n{trace}")

    def _died(self, rank_: int, what: str) -> WorkerError:
        process = self.processes[rank_]
        process.join(1.0)
        code = process.exitcode
        return WorkerError(
            f"{self.label} {rank_} (pid {process.pid}) {exit_description(code)} during {what}; the job cannot continue "
            f"(out of memory? killed from outside?)"
        )

    def close(self) -> None:
        """Stop every worker: ask, wait up to ``stop_timeout`` s, then terminate, then kill. Always safe to call."""
        for conn in self.conns:
            try:
                conn.send(("stop",))
            except (BrokenPipeError, ConnectionResetError, OSError, ValueError):
                pass
        # A worker still busy with a call reads the request only once it is done: do not wait it out.
        quick = self.broken or self.owing
        deadline = time.monotonic() + (self.quick_stop_timeout if quick else self.stop_timeout)
        for process in self.processes:
            if process.pid is not None:
                process.join(max(0.0, deadline - time.monotonic()))
        for how in ("terminate", "kill"):
            for process in self.processes:
                if process.pid is not None and process.is_alive():
                    getattr(process, how)()
                    process.join(1.0 if how == "terminate" else 5.0)
        for conn in (*self.conns, *self.lifelines):
            conn.close()
        for process in self.processes:
            try:
                process.close()
            except ValueError:  # still running after kill + join: nothing more can be done from here
                pass
        self.processes, self.conns, self.lifelines = [], [], []
        self.owing = set()
        self.store = None
