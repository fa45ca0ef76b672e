"""Executors: the engines that run a suite's cases, in this process or elsewhere.

``mfbench run`` plans the cases, then hands them to one executor. The built-in
``inprocess`` executor (the default) runs them one after another in this process.
Plugins add others through the ``mfbench_register_executors`` hook (the Dask one
in ``mfbench.plugins.executors.dask``; Ray or SLURM could follow). Whatever the
engine, the parent side stays the same: each finished case record comes back to
:func:`mfbench.run.execute.execute`, which writes it to the results file, calls
``mfbench_case_finished`` and shows progress, in the order cases finish.

Executors that run cases in other processes use the worker-side helpers at the
end of this module, so every engine rebuilds a case the same way: a case travels
as a plain dict (its parts' names and parameters, and its device), the worker
imports the parent's plugin modules into a fresh plugin manager, looks the case
up again and runs it with mfbench's own :class:`~mfbench.run.runner.Runner`.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import socket
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pluggy
import torch

from ...errors import PluginError
from ...plugin import hookspecs
from ...plugin.parts import Dataset, Metric, Model, Part, SplitProtocol, Strategy
from ...plugin.registry import P, Registry, collect
from ...stats.criterion import Criterion
from ..calibration import calibrate
from ..plan import Case, Choice, RunConfig
from ..runner import EpochObserver, Observer, Runner

HOOK = "mfbench_register_executors"
#: Each case in its own watched worker process (mfbench.run.executors.process).
DEFAULT_EXECUTOR = "process"
#: Every case in the ``mfbench run`` process: for debugging a strategy with pdb.
INPROCESS = "inprocess"
#: Executors that run every case on this host (the table needs no host column).
LOCAL_EXECUTORS = (DEFAULT_EXECUTOR, INPROCESS)
BUILTIN_PLUGIN = "mfbench.executors"
#: Timings of the calibration workload after each case (the one before the run takes 5).
CHECK_REPEATS = 3


@dataclass
class Job:
    """What an executor is asked to do: the planned cases and how to run them."""

    pm: pluggy.PluginManager
    cases: list[Case]
    config: RunConfig
    #: Time the calibration workload, so summaries carry relative throughput.
    calibration: bool = True
    #: Prints a progress line (silent with --quiet).
    say: Callable[[str], None] = lambda text: None
    #: What went wrong beside the measurement (a plugin's hook that raised...): the results' ``warnings``.
    warnings: list[str] = field(default_factory=list)

    # What an executor that runs cases in other processes sends them, and what it hands back
    # for a case that never returned: the worker side is mfbench.probe_host and mfbench.run_case_spec.

    def plugin_modules(self) -> list[tuple[str, str]]:
        """(registered name, module path) of every plugin of this run, for a worker to import (see :func:`plugin_modules`)."""
        return plugin_modules(self.pm)

    def config_dict(self) -> dict[str, Any]:
        """The run's settings as a plain dict, to send to a worker."""
        return config_dict(self.config)

    def case_spec(self, case: Case) -> dict[str, Any]:
        """What travels to a worker for ``case``: its parts' names and parameters, and its device."""
        return case_spec(case)

    def lost_case(self, case: Case, reason: str, host: str | None, trace: str | None = None) -> dict[str, Any]:
        """The ``error`` record of a case that never came back (its worker died, its task failed)."""
        return lost_case_record(case, self.config, reason, host, trace)


class Executor(Part):
    """Runs a job's cases somewhere and hands back each case record as it finishes.

    Declared ``params`` are the executor's options (``--executor-option KEY=VALUE``);
    the resolved values are in ``self.params``. ``execute`` calls ``start`` (untimed:
    connect, check the workers, time the calibration), writes the results header with
    ``describe()``, calls ``run``, and always calls ``close``.
    """

    kind = "executor"

    def start(self, job: Job) -> dict[str, Any]:
        """Get ready to run ``job``; return the results file's ``machine`` section."""
        raise NotImplementedError

    def run(self, job: Job, on_case: Observer, on_epoch: EpochObserver | None = None) -> None:
        """Run every case of ``job``; call ``on_case(record)`` once per case as it finishes, in any order.

        A case that cannot finish (its worker died, say) must still come back, as an
        ``error`` record with the reason. Ctrl-C (KeyboardInterrupt) propagates: the
        caller keeps the cases already handed back.
        """
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The results header's ``executor`` section; asked after ``start`` and again at the end."""
        return {"name": self.name, "options": dict(self.params)}

    def close(self) -> None:
        """Release what ``start`` acquired (connections, workers). Always called."""


def call_observers(pm: pluggy.PluginManager, hook: str, warnings: list[str], **kwargs: Any) -> list[tuple[str, Any]]:
    """Call each plugin's implementation of ``hook`` first-registered first; (plugin, result) of those that worked.

    An observer that raises cannot stop a run: its failure becomes a warning naming the plugin.
    """
    results = []
    for impl in getattr(pm.hook, hook).get_hookimpls():
        try:
            results.append((impl.plugin_name, impl.function(*(kwargs[arg] for arg in impl.argnames))))
        except Exception as exc:
            warnings.append(f"plugin {impl.plugin_name!r}: {hook} raised {type(exc).__name__}: {exc}")
    return results


def machine_info(pm: pluggy.PluginManager, warnings: list[str] | None = None) -> dict[str, Any]:
    """Every plugin's ``mfbench_machine_info`` merged, first-registered first (so later plugins win).

    A plugin whose hook raises, or returns something that is not a JSON-able dict, is left
    out and named in ``warnings``.
    """
    warnings = [] if warnings is None else warnings
    info: dict[str, Any] = {}
    for plugin, part in call_observers(pm, "mfbench_machine_info", warnings):
        if not part:
            continue
        try:
            if not isinstance(part, dict):
                raise TypeError(f"returned a {type(part).__name__}, not a dict")
            json.dumps(part, allow_nan=True)
        except (TypeError, ValueError) as exc:
            warnings.append(f"plugin {plugin!r}: mfbench_machine_info is left out: {exc}")
            continue
        info.update(part)
    return info


def calibrated_machine(job: Job) -> tuple[dict[str, Any], float | None, dict[str, Any] | None]:
    """The machine's facts, with the calibration timed when the job asks for it; its score and ceilings."""
    machine = machine_info(job.pm, job.warnings)
    if not job.calibration:
        return machine, None, None
    job.say("mfbench: timing the calibration workload...")
    machine["calibration"] = calibrate()
    return machine, machine["calibration"]["score"], machine_ceilings(machine["calibration"])


def machine_ceilings(calibration: Mapping[str, Any]) -> dict[str, Any]:
    """The ceilings in a calibration record that the roofline fields divide by."""
    return {key: calibration[key] for key in ("memory_bytes_per_s", "peak_flops_per_s") if calibration.get(key)}


class InProcessExecutor(Executor):
    """Every case in this process, one after another: a crash or a hang in a strategy ends the run (for pdb)."""

    name = INPROCESS

    def start(self, job: Job) -> dict[str, Any]:
        if job.config.threads is not None:
            torch.set_num_threads(job.config.threads)  # before machine_info, which records the count
        machine, self.calibration_score, self.ceilings = calibrated_machine(job)
        return machine

    def run(self, job: Job, on_case: Observer, on_epoch: EpochObserver | None = None) -> None:
        def checked(record: dict[str, Any]) -> None:
            # The calibration again after every case: how the machine's speed moved during the
            # run, which `mfbench compare` uses to widen its intervals (a short timing: ~0.1 s).
            if self.calibration_score is not None:
                record["calibration_after"] = calibrate(repeats=CHECK_REPEATS)
            on_case(record)

        runner = Runner(job.config, on_case=checked, on_epoch=on_epoch)
        runner.calibration_score = self.calibration_score
        runner.ceilings = self.ceilings
        runner.run(job.cases)


# --- worker side: rebuilding and running a case in another process ---


def plugin_modules(pm: pluggy.PluginManager) -> list[tuple[str, str]]:
    """(registered name, module path) of every loaded plugin, in loading order, for a worker to import.

    Blocked plugins are left out, so the worker gets exactly this run's plugins.
    """
    modules = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        if not isinstance(plugin, types.ModuleType):
            raise PluginError(
                f"plugin {name!r} is a {type(plugin).__name__} object, not a module: workers in other "
                f"processes rebuild the plugins by importing their modules. Put it in a module and load it with -p."
            )
        modules.append((name, plugin.__name__))
    return modules


def worker_plugin_manager(plugins: Sequence[Sequence[str]]) -> pluggy.PluginManager:
    """A plugin manager with exactly ``plugins`` ((name, module) pairs), for a worker process."""
    pm = pluggy.PluginManager("mfbench")
    pm.add_hookspecs(hookspecs)
    for name, module_name in plugins:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise PluginError(
                f"cannot import plugin module {module_name!r} on host {socket.gethostname()}: {exc}. "
                f"Install it (or put its folder on PYTHONPATH) wherever cases run."
            ) from exc
        pm.register(module, name=name)
    pm.check_pending()
    return pm


def case_spec(case: Case) -> dict[str, Any]:
    """What travels to a worker: enough to find the same case again in the worker's registry."""
    return {
        "id": case.id,
        "dataset": [case.dataset.name, case.dataset.params],
        "model": [case.model.name, case.model.params],
        "strategy": [case.strategy.name, case.strategy.params],
        "device": str(case.device),
        "target_rmse": case.target_rmse,
        "seed": case.seed,
        "epochs": case.epochs,
        "split": [case.split.name, case.split.params] if case.split is not None else None,
        "metrics": [[m.name, m.params] for m in case.metrics],
        "criterion": case.criterion.as_dict() if case.criterion is not None else None,
    }


def rebuild_case(registry: Registry, spec: Mapping[str, Any]) -> Case:
    def choice(base: type[P], key: str, named: Any = None) -> Choice[P]:
        name, params = spec[key] if named is None else named
        entry = registry.get(base, name)
        return Choice(entry, entry.cls.resolve_params(params))

    case = Case(
        choice(Dataset, "dataset"),
        choice(Model, "model"),
        choice(Strategy, "strategy"),
        torch.device(spec["device"]),
        spec.get("target_rmse"),
        spec.get("seed"),
        epochs=spec.get("epochs"),
        split=choice(SplitProtocol, "split") if spec.get("split") else None,
        metrics=tuple(choice(Metric, "metrics", named) for named in spec.get("metrics") or []),
        criterion=Criterion.from_dict(spec["criterion"]) if spec.get("criterion") else None,
    )
    if case.id != spec["id"]:
        raise PluginError(
            f"the worker on {socket.gethostname()} rebuilt case {spec['id']!r} as {case.id!r}: "
            f"its plugins differ from the parent's; install the same versions everywhere"
        )
    return case


def config_dict(config: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


@dataclass
class _Session:
    pm: pluggy.PluginManager
    registry: Registry
    runner: Runner


#: The worker process's current (plugins, config) session: consecutive cases reuse its
#: registry and the runner's loaded data. Only one is kept, so memory does not grow.
_session: dict[str, _Session] = {}


def worker_session(plugins: Sequence[Sequence[str]], config: Mapping[str, Any]) -> _Session:
    key = json.dumps([[list(p) for p in plugins], dict(config)], sort_keys=True, default=str)
    if key not in _session:
        _session.clear()
        pm = worker_plugin_manager(plugins)
        _session[key] = _Session(pm, collect(pm), Runner(RunConfig(**config)))
    session = _session[key]
    if session.runner.config.threads is not None:
        torch.set_num_threads(session.runner.config.threads)
    return session


#: Environment variables that change timings (allocator behaviour, thread pools); a worker
#: launcher may set them where an interactive shell does not (Dask's nanny sets all of these).
TIMING_ENVIRONMENT = (
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
)


def timing_environment() -> dict[str, str]:
    return {key: os.environ[key] for key in TIMING_ENVIRONMENT if key in os.environ}


def probe_host(plugins: Sequence[Sequence[str]], config: Mapping[str, Any], calibration: bool) -> dict[str, Any]:
    """Run once per host before any case: its machine facts and, if asked, its calibration."""
    session = worker_session(plugins, config)
    machine = {**machine_info(session.pm), "environment": timing_environment()}
    result: dict[str, Any] = {"host": socket.gethostname(), "machine": machine}
    if calibration:
        result["calibration"] = calibrate()
    return result


def run_case_spec(
    plugins: Sequence[Sequence[str]],
    config: Mapping[str, Any],
    spec: Mapping[str, Any],
    scores: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Rebuild and run one case in this (worker) process; its throughput is divided by this host's score."""
    session = worker_session(plugins, config)
    case = rebuild_case(session.registry, spec)
    session.runner.calibration_score = (scores or {}).get(socket.gethostname())
    return session.runner.run_case(case)


def lost_case_record(case: Case, config: RunConfig, reason: str, host: str | None, trace: str | None = None) -> dict[str, Any]:
    """The ``error`` record for a case that never came back (its worker died, the task failed)."""
    record = Runner(config).base_record(case)
    record.update(status="error", reason=reason, host=host, summary={})
    if trace:
        record["traceback"] = trace
    return record


def merge_hosts(probes: Sequence[Mapping[str, Any]], workers: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """A ``machine`` section for cases run on several hosts.

    ``hosts`` holds each host's facts, calibration and workers; the top level keeps the
    facts every host shares, so a run on one host reads like an in-process run.
    """
    hosts: dict[str, dict[str, Any]] = {}
    for probe in probes:
        facts = dict(probe["machine"])
        if "calibration" in probe:
            facts["calibration"] = probe["calibration"]
        facts["workers"] = sorted(workers.get(probe["host"], ()))
        hosts[probe["host"]] = facts
    if not hosts:
        return {"hosts": {}}
    first, *others = hosts.values()
    shared = {
        key: value
        for key, value in first.items()
        if key != "workers" and all(key in other and other[key] == value for other in others)
    }
    return {**shared, "hosts": hosts}
