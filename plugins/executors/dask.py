"""The Dask executor: each case on a Dask worker, so a suite spreads over machines.

    dask scheduler --scheduler-file sched.json              # on one machine
    dask worker --scheduler-file sched.json --nworkers 1    # on each machine that times cases
    mfbench run --executor dask --scheduler sched.json      # here; or --scheduler tcp://host:8786

How it keeps timings honest:

* One case per worker process at a time. mfbench hands a worker its next case only
  when the previous one has come back (each task is pinned to that worker), whatever
  the worker's ``--nthreads``. Several worker processes on one host do run cases at the
  same time: the run says so, since they share the host's cores, caches and memory
  bandwidth. Dask's nanny starts workers with OMP_NUM_THREADS=1, so torch uses one
  thread per worker unless ``--threads`` says otherwise.
* The nanny also sets MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's adaptive
  mmap threshold: every large temporary tensor is then mapped and unmapped afresh,
  and minibatch epochs ran 2-3x slower than in-process on a 2-core Xeon. Each host's
  timing-relevant environment is recorded under ``machine.hosts[HOST].environment`` and
  the run warns, naming the fix (``dask worker --no-nanny``, or the nanny's
  ``pre-spawn-environ`` setting).
* Calibration per host: before any case, one worker on each host records the host's
  machine facts and times the calibration workload; every case's relative throughput
  is divided by the score of the host it ran on. Results keep each host under
  ``machine.hosts``. Workers that join later run cases uncalibrated.
* A worker lost mid-case (crash, out of memory, ``os._exit``) ends that case as an
  ``error`` row naming the worker; the case is not retried (a case that killed one
  worker would likely kill the next), and the other cases go on.

Dask and distributed are an optional extra: ``pip install 'mfbench[dask]'``.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import mfbench
from mfbench import Case, Executor, Job, MfbenchError, merge_hosts, probe_host, run_case_spec

INSTALL = "pip install 'mfbench[dask]'"
#: How often the parent asks the scheduler which workers are alive (seconds).
LIVENESS_S = 1.0
#: How long the parent sleeps when no case came back (seconds).
POLL_S = 0.05


def host_notes(probe: dict[str, Any], workers: int) -> list[str]:
    """What may make this host's timings differ from an in-process run's."""
    notes = []
    facts, name = probe["machine"], probe["host"]
    cores = facts.get("cpu_affinity") or facts.get("cpu_count")
    if workers > 1:
        note = f"{workers} Dask workers share host {name}" + (f" ({cores} cores)" if cores else "")
        note += ": their cases run at the same time and can disturb each other's timing"
        threads = facts.get("torch_threads")
        if cores and threads and workers * threads > cores:
            note += f"; with {threads} torch threads each they oversubscribe its cores: lower --threads"
        notes.append(note + "; for the cleanest timings run one worker per host (dask worker --nworkers 1)")
    trim = facts.get("environment", {}).get("MALLOC_TRIM_THRESHOLD_")
    if trim is not None:
        notes.append(
            f"the workers on {name} run with MALLOC_TRIM_THRESHOLD_={trim} (Dask's nanny sets it): glibc then maps "
            f"and unmaps every large tensor, which made minibatch epochs 2-3x slower than in-process on a 2-core Xeon. "
            f"For comparable timings start workers with --no-nanny, or set "
            f"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_ to null in their Dask config"
        )
    return notes


def run_case_on_worker(plugins, config, spec, scores) -> dict[str, Any]:
    """The task a worker runs: rebuild the case from its plugins, run it, say which worker ran it."""
    from distributed import get_worker

    record = run_case_spec(plugins, config, spec, scores)
    record["worker"] = get_worker().address
    return record


class DaskExecutor(Executor):
    """Each case on a Dask worker, one case per worker process at a time; calibrated per host."""

    name = "dask"
    params = {"scheduler": None, "connect_timeout": 30.0}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.client: Any = None
        self.address = ""
        self.plugins: list[tuple[str, str]] = []
        self.config: dict[str, Any] = {}
        #: Worker address -> hostname (the scheduler's host address until the host was probed).
        self.hostnames: dict[str, str] = {}
        self.seen: dict[str, dict[str, Any]] = {}
        self.used: set[str] = set()
        self.scores: dict[str, float] = {}

    # -- start: connect, look at the workers, probe each host ---------------

    def _connect(self) -> None:
        from distributed import Client

        target, timeout = self.params["scheduler"], self.params["connect_timeout"]
        if not target:
            raise MfbenchError(
                "the dask executor needs --scheduler ADDRESS_OR_FILE: a scheduler address (tcp://host:8786) "
                "or the file written by `dask scheduler --scheduler-file FILE`"
            )
        if os.path.isfile(target):
            where = {"scheduler_file": target}
        elif "://" in target or ":" in target:
            where = {"address": target}
        else:
            raise MfbenchError(
                f"--scheduler {target!r} is neither a scheduler address (tcp://host:8786) nor an existing scheduler file"
            )
        try:
            self.client = Client(**where, timeout=timeout, set_as_default=False)
        except Exception as exc:
            raise MfbenchError(f"cannot reach the Dask scheduler at {target}: {type(exc).__name__}: {exc}") from exc
        self.address = self.client.scheduler.address
        try:
            self.client.wait_for_workers(1, timeout=timeout)
        except Exception as exc:
            raise MfbenchError(
                f"no Dask worker joined the scheduler at {self.address} within {timeout:g} s; "
                f"start some with `dask worker {self.address} --nworkers 1`"
            ) from exc

    def _live_workers(self) -> dict[str, dict[str, Any]]:
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        for address, info in workers.items():
            if address not in self.seen:
                self.seen[address] = {
                    "address": address,
                    "host": info.get("host"),
                    "nthreads": info.get("nthreads"),
                    "name": str(info.get("name")),
                }
                self.hostnames.setdefault(address, str(info.get("host")))
        return workers

    def start(self, job: Job) -> dict[str, Any]:
        self._connect()
        self.plugins = job.plugin_modules()
        self.config = job.config_dict()
        by_ip: dict[str, list[str]] = {}
        for address, info in self._live_workers().items():
            by_ip.setdefault(str(info.get("host")), []).append(address)
        if job.calibration:
            job.say(f"mfbench: timing the calibration workload on {len(by_ip)} Dask host(s)...")
        probes, by_host = [], {}
        futures = {
            ip: self.client.submit(
                probe_host,
                self.plugins,
                self.config,
                job.calibration,
                workers=[addresses[0]],
                allow_other_workers=False,
                pure=False,
            )
            for ip, addresses in by_ip.items()
        }
        for ip, future in futures.items():
            try:  # bounded: a probe pinned to a worker that died would otherwise wait for it forever
                probe = future.result(timeout=self.params["connect_timeout"] + 60)
            except Exception as exc:
                raise MfbenchError(
                    f"the Dask worker {by_ip[ip][0]} could not prepare for the run "
                    f"(import the plugins, time the calibration): {type(exc).__name__}: {exc}"
                ) from exc
            probes.append(probe)
            by_host.setdefault(probe["host"], []).extend(by_ip[ip])
            for address in by_ip[ip]:
                self.hostnames[address] = probe["host"]
                self.seen[address]["hostname"] = probe["host"]
            if "calibration" in probe:
                self.scores[probe["host"]] = probe["calibration"]["score"]
        for probe in probes:
            for note in host_notes(probe, len(by_host[probe["host"]])):
                job.say(f"mfbench: {note}")
        return merge_hosts(probes, by_host)

    # -- run: one case per idle worker, results as they come back ------------

    def run(self, job: Job, on_case: Callable[[dict[str, Any]], None], on_epoch: Any = None) -> None:
        token = uuid.uuid4().hex[:8]
        pending = deque(enumerate(job.cases))
        running: dict[Any, tuple[Case, str]] = {}
        live: dict[str, Any] = {}
        checked = -LIVENESS_S
        no_worker_since: float | None = None
        try:
            while pending or running:
                finished = [future for future in running if future.done()]
                for future in finished:
                    case, address = running.pop(future)
                    on_case(self._record(future, case, address, job))
                # Ask the scheduler who is alive every LIVENESS_S, and before handing out cases
                # (so a case never goes to a worker that has just gone).
                if time.monotonic() - checked >= LIVENESS_S or (pending and len(running) < len(live)):
                    live, checked = self._live_workers(), time.monotonic()
                    for future, (case, address) in list(running.items()):
                        if address not in live and not future.done():
                            del running[future]
                            future.cancel()
                            on_case(self._lost(case, address, job))
                busy = {address for _, address in running.values()}
                idle = [address for address in live if address not in busy]
                while pending and idle:
                    index, case = pending.popleft()
                    address = idle.pop(0)
                    future = self.client.submit(
                        run_case_on_worker,
                        self.plugins,
                        self.config,
                        job.case_spec(case),
                        self.scores,
                        key=f"mfbench-case-{index}-{token}",
                        workers=[address],
                        allow_other_workers=False,
                        pure=False,
                    )
                    running[future] = (case, address)
                    self.used.add(address)
                no_worker_since = self._give_up_without_workers(job, pending, running, live, no_worker_since, on_case)
                if not finished:
                    time.sleep(POLL_S)
        except BaseException:  # Ctrl-C included: stop what is still queued or running
            for future in running:
                future.cancel()
            raise

    def _give_up_without_workers(self, job, pending, running, live, since, on_case) -> float | None:
        """With no worker left and none back within ``connect_timeout``, the cases still waiting end as errors."""
        if live or running or not pending:
            return None
        now = time.monotonic()
        if since is None:
            return now
        if now - since < self.params["connect_timeout"]:
            return since
        while pending:
            _, case = pending.popleft()
            reason = f"no Dask worker was left to run this case (none for {self.params['connect_timeout']:g} s)"
            on_case(job.lost_case(case, reason, host=None))
        return None

    def _lost(self, case: Case, address: str, job: Job, detail: str = "") -> dict[str, Any]:
        host = self.hostnames.get(address)
        reason = (
            f"worker lost: the Dask worker {address} on {host} died while running this case "
            f"(a crash, out of memory, or the process exited; see that worker's log); the case was not retried"
        )
        record = job.lost_case(case, reason + (f" [{detail}]" if detail else ""), host=host)
        record["worker"] = address
        return record

    def _record(self, future: Any, case: Case, address: str, job: Job) -> dict[str, Any]:
        from distributed.scheduler import KilledWorker

        if future.status == "finished":
            return future.result()
        if future.status == "error":
            exc = future.exception()
            if isinstance(exc, KilledWorker):
                return self._lost(case, address, job, f"{type(exc).__name__}: {exc}")
            import traceback

            trace = "".join(traceback.format_exception(type(exc), exc, future.traceback()))
            record = job.lost_case(
                case, f"{type(exc).__name__} on the Dask worker: {exc}", host=self.hostnames.get(address), trace=trace
            )
        else:
            record = job.lost_case(case, f"the Dask task ended as {future.status}", host=self.hostnames.get(address))
        record["worker"] = address
        return record

    # -- describe and close --------------------------------------------------

    def describe(self) -> dict[str, Any]:
        import dask
        import distributed

        return {
            "name": self.name,
            "options": dict(self.params),
            "scheduler": self.address,
            "client_host": socket.gethostname(),
            "versions": {"dask": dask.__version__, "distributed": distributed.__version__},
            "one_case_per_worker": "each worker process is sent its next case only when the previous one came back",
            "workers": [self.seen[a] for a in sorted(self.seen)],
            "workers_used": sorted(self.used),
        }

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def unavailable_executor(reason: str) -> type[DaskExecutor]:
    """The executor as registered where a library is missing: listed, and refused with the reason."""
    return type("DaskExecutor", (DaskExecutor,), {"unavailable": reason, "__doc__": DaskExecutor.__doc__})


#: The dask paragraph of ``mfbench run --help``.
RUN_HELP = f"""\
dask runs each case on a Dask worker and gathers the records into the one results
file as they come back: mfbench run --executor dask --scheduler tcp://HOST:8786
(or --scheduler FILE from `dask scheduler --scheduler-file FILE`). Each worker
process is sent one case at a time, whatever its --nthreads; workers on one host
run cases side by side (the run warns), so start one per host for clean timings.
The calibration is timed once per host, and each case's relative throughput uses
its own host's score. A worker that dies mid-case gives that case an error row;
the others finish. Every case records its host (the table shows it when there are
several). Dask's nanny starts workers with OMP_NUM_THREADS=1: compare with an
in-process run at --threads 1. Its other option: --executor-option connect_timeout=60
(seconds to reach the scheduler and its workers). Needs the dask extra:
{INSTALL}.
"""


@mfbench.hookimpl
def mfbench_add_run_options(options):
    options.add_executor_option(
        "--scheduler",
        "scheduler",
        metavar="ADDRESS_OR_FILE",
        help="for --executor dask: the scheduler's address (tcp://host:8786) or a scheduler file",
    )
    options.add_help(RUN_HELP)


@mfbench.hookimpl
def mfbench_register_executors(register):
    # Looked up, not imported: importing distributed here would slow every mfbench command.
    missing = mfbench.missing_library("dask", "distributed", install=INSTALL, load=False)
    register(DaskExecutor if missing is None else unavailable_executor(missing))
