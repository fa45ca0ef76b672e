"""The ``process`` executor (the default): every case in a fresh worker process that this one watches.

A strategy is code the user may not have written, often native code: a segfault,
an ``abort()``, an ``os._exit`` or the kernel's OOM killer takes its process
down with it. Run in a worker, that ends one case, not the suite: the parent
sees the worker die (its pipe and its process sentinel, through
:class:`mfbench.run.executors.pool.WorkerGroup`), writes one ``error`` row naming the
signal or exit code and the epoch it was in, keeps the epochs that had streamed
back, and starts the next case in a new worker. The parent also owns the clock
of ``--timeout``: an epoch that never returns is killed, and the case ends as
``timeout``.

A worker runs one case and exits, so a case's peak memory (measured inside the
worker) is its own, and nothing a strategy leaves behind (threads, global
state, leaked memory) reaches the next case. Workers are forks of a server
process that has imported torch and the built-in plugins already, so starting
one costs a fork and the case's own data loading. ``--executor inprocess``
runs the cases in this process instead, for debugging with pdb.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ...errors import PluginError
from ..plan import Case, RunConfig
from ..runner import EpochObserver, Observer, Runner, summarize
from .base import (
    Executor,
    Job,
    calibrated_machine,
    case_spec,
    config_dict,
    plugin_modules,
    rebuild_case,
    worker_session,
)
from .pool import WorkerError, WorkerGroup, WorkerTimeout, exit_description

NAME = "process"


class CaseWorker:
    """The worker side: rebuilds the run's plugins, then runs the case it is sent, streaming its epochs."""

    def __init__(
        self,
        context: Any,
        plugins: Sequence[Sequence[str]],
        config: Mapping[str, Any],
        sys_path: Sequence[str],
        calibration_score: float | None,
        crash_log: str,
        ceilings: Mapping[str, Any] | None = None,
    ) -> None:
        # Ctrl-C reaches every process of the terminal's group: the parent handles it and stops this worker.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # A crash in native code writes where the Python code was; the parent puts it in the case's row.
        self.crash_log = open(crash_log, "w", encoding="utf-8")  # noqa: SIM115 (open for the process's life)
        faulthandler.enable(file=self.crash_log, all_threads=False)
        sys.path.extend(entry for entry in sys_path if entry not in sys.path)  # plugins found by the parent's path
        self.notify = context.notify
        self.session = worker_session(plugins, config)
        self.session.runner.calibration_score = calibration_score
        self.session.runner.ceilings = dict(ceilings) if ceilings else None

    def run(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        runner = self.session.runner
        case = rebuild_case(self.session.registry, spec)
        runner.on_epoch = lambda case, repeat, epoch, entry: self.notify(("epoch", repeat, epoch, entry))
        try:
            data = runner.load_data(case)
        except Exception:
            pass  # run_case reports it as the case's error
        else:
            self.notify(("data", data.info))
        return runner.run_case(case)


class CaseProgress:
    """What the parent heard of a running case: enough for its row if the worker never answers."""

    def __init__(self, case: Case, config: RunConfig) -> None:
        self.case, self.config = case, config
        self.dataset: dict[str, Any] | None = None
        self.repeats: list[dict[str, Any]] = []
        self.last: tuple[int, int] | None = None

    def event(self, event: tuple) -> None:
        if event[0] == "data":
            self.dataset = event[1]
        elif event[0] == "epoch":
            _, repeat, epoch, entry = event
            while len(self.repeats) <= repeat:
                self.repeats.append({"repeat": len(self.repeats), "epochs": []})
            self.repeats[repeat]["epochs"].append(entry)
            self.last = (repeat, epoch)

    def where(self) -> str:
        """Where the case was when its worker stopped answering, counting from 1 (warm-up epochs included)."""
        total = self.config.warmup + self.case.counted_epochs(self.config)
        whole_fit = not getattr(self.case.strategy.entry.cls, "stepwise", True)
        if self.last is None:
            return "before its first epoch finished (loading data, setup, or epoch 1 of repeat 1)"
        repeat, epoch = self.last
        if epoch + 1 < total and not whole_fit:
            return f"during epoch {epoch + 2} of repeat {repeat + 1} ({epoch + 1} finished)"
        if repeat + 1 < self.config.repeats:
            return f"in repeat {repeat + 2}, before its first epoch finished"
        return "after its last epoch (evaluation or teardown)"

    def record(self, status: str, reason: str, calibration_score: float | None) -> dict[str, Any]:
        runner = Runner(self.config)
        record = runner.base_record(self.case)
        if self.dataset is not None:
            record["dataset"] = self.dataset
        record.update(status=status, reason=reason, repeats=self.repeats)
        # A case's own target wins over the run's; a target still to be derived ("auto") gives no time-to-target yet.
        target = getattr(self.case, "target_rmse", None)
        target = self.config.target_rmse if target is None else target
        record["summary"] = summarize(record, target if isinstance(target, (int, float)) else None, calibration_score)
        return record


class ProcessExecutor(Executor):
    """Every case in its own worker process, watched: a crash or a hang ends that case only (the default)."""

    name = NAME
    #: start_timeout: seconds a worker may take to start (import the plugins) before its case is an error.
    #: grace: seconds past --timeout before a case's worker is killed (the runner's own check between
    #: epochs ends a case whose epochs return, keeping its last epoch).
    params = {"start_timeout": 120.0, "grace": 1.0}

    def start(self, job: Job) -> dict[str, Any]:
        if job.config.threads is not None:
            torch.set_num_threads(job.config.threads)
        try:
            self.plugins = plugin_modules(job.pm)
        except PluginError as exc:
            raise PluginError(f"{exc} (or run the cases in this process: --executor inprocess)") from None
        for name, module in self.plugins:
            if getattr(sys.modules.get(module), "__spec__", True) is None:
                raise PluginError(
                    f"plugin {name!r}: module {module!r} was not imported from a file, so the worker processes "
                    f"that run the cases cannot import it; put it in a file on PYTHONPATH, or run the cases "
                    f"in this process: --executor inprocess"
                )
        machine, self.calibration_score, self.ceilings = calibrated_machine(job)
        self.started = self.crashed = self.killed = 0
        return machine

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        described["isolation"] = "one worker process per case"
        if hasattr(self, "started"):
            described.update(workers_started=self.started, workers_crashed=self.crashed, workers_killed=self.killed)
        return described

    def run(self, job: Job, on_case: Observer, on_epoch: EpochObserver | None = None) -> None:
        payload = {
            "plugins": [list(p) for p in self.plugins],
            "config": config_dict(job.config),
            "sys_path": list(sys.path),
            "calibration_score": self.calibration_score,
            "ceilings": self.ceilings,
        }
        # Forks of a server that has imported these already: a new worker does not import torch again.
        # torch._dynamo: torch imports it lazily (2-5 s) when a case builds its first optimizer.
        preload = ["torch._dynamo", *(module for _, module in self.plugins if module.startswith("mfbench."))]
        for case in job.cases:
            reason = Runner(job.config).skip_reason(case)
            if reason is not None:  # no worker needed to say so
                on_case(Runner(job.config).skipped_record(case, reason))
                continue
            on_case(self.run_one(case, job.config, payload, preload, on_epoch))

    def run_one(
        self, case: Case, config: RunConfig, payload: Mapping[str, Any], preload: Sequence[str], on_epoch: EpochObserver | None
    ) -> dict[str, Any]:
        progress = CaseProgress(case, config)

        def on_event(_rank: int, event: tuple) -> None:
            progress.event(event)
            if on_epoch is not None and event[0] == "epoch":
                on_epoch(case, event[1], event[2], event[3])

        crash_log = tempfile.NamedTemporaryFile(prefix="mfbench-crash-", suffix=".txt", delete=False)
        crash_log.close()
        payload = {**payload, "crash_log": crash_log.name}
        group = WorkerGroup(
            1,
            backend=None,
            timeout=self.params["start_timeout"],
            start_method="forkserver",
            threads=config.threads,
            preimport=preload,
            name="mfbench-case",
            daemon=False,
        )  # a strategy may start worker processes of its own
        limit = None if config.case_timeout is None else config.case_timeout + self.params["grace"]
        began = None
        try:
            self.started += 1
            group.start(CaseWorker, payload)
            began = time.monotonic()
            [record] = group.call("run", case_spec(case), timeout=limit, on_event=on_event)
            return record
        except WorkerTimeout as exc:
            if began is None:
                return progress.record("error", f"the case's worker could not start: {exc}", self.calibration_score)
            self.killed += 1
            reason = (
                f"worker killed after {time.monotonic() - began:.1f} s, over the {config.case_timeout:g} s limit, "
                f"{progress.where()}; finished epochs are kept"
            )
            return progress.record("timeout", reason, self.calibration_score)
        except WorkerError as exc:
            process = group.processes[0] if group.processes else None
            if process is not None:
                process.join(1.0)
            code = process.exitcode if process is not None else None
            if code is None or code == 0:  # it answered with an exception of its own
                what = "could not start" if began is None else "failed"
                return progress.record(
                    "error", f"the case's worker {what}: {str(exc).splitlines()[-1]}", self.calibration_score
                ) | {"traceback": str(exc)}
            self.crashed += 1
            how = exit_description(code).replace("was killed by", "killed by")
            hint = " (out of memory? killed from outside?)" if code == -signal.SIGKILL else ""
            reason = f"worker died: {how}{hint} {progress.where()}"
            record = progress.record("error", reason, self.calibration_score)
            trace = Path(crash_log.name).read_text(encoding="utf-8", errors="replace").strip()
            if trace:
                record["traceback"] = trace
            return record
        except BaseException:  # Ctrl-C, SIGTERM: stop the worker at once rather than wait for its case
            group.broken = group.broken or "the run was interrupted"
            raise
        finally:
            group.close()
            Path(crash_log.name).unlink(missing_ok=True)
