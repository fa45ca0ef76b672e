"""Execution machinery: the executors that run a suite's cases, the worker processes they
and the distributed strategies use, and torchrun.

Plugin authors import ``Executor``, ``Job`` and the worker side from ``mfbench`` itself
(``mfbench.executors.Executor`` keeps working for plugins written before the core moved into
folders); strategies that start workers of their own use the pool's names from here. The modules
are ``base`` (the executor contract, the in-process executor, the worker side), ``pool`` (the one
worker pool every worker process goes through), ``process`` (the default executor: a watched
worker process per case), ``choice`` (collecting executors from plugins and making the one asked
for) and ``distributed`` (rank groups and torchrun).
"""

from .base import (
    BUILTIN_PLUGIN,
    CHECK_REPEATS,
    DEFAULT_EXECUTOR,
    HOOK,
    INPROCESS,
    LOCAL_EXECUTORS,
    TIMING_ENVIRONMENT,
    Executor,
    InProcessExecutor,
    Job,
    calibrated_machine,
    call_observers,
    case_spec,
    config_dict,
    lost_case_record,
    machine_ceilings,
    machine_info,
    merge_hosts,
    plugin_modules,
    probe_host,
    rebuild_case,
    run_case_spec,
    timing_environment,
    worker_plugin_manager,
    worker_session,
)
from .choice import collect_executors, make_executor
from .pool import START_METHODS, WorkerContext, WorkerError, WorkerGroup, WorkerTimeout

__all__ = [
    "START_METHODS",
    "WorkerContext",
    "WorkerError",
    "WorkerGroup",
    "WorkerTimeout",
    "BUILTIN_PLUGIN",
    "CHECK_REPEATS",
    "DEFAULT_EXECUTOR",
    "Executor",
    "HOOK",
    "INPROCESS",
    "InProcessExecutor",
    "Job",
    "LOCAL_EXECUTORS",
    "TIMING_ENVIRONMENT",
    "calibrated_machine",
    "call_observers",
    "case_spec",
    "collect_executors",
    "config_dict",
    "lost_case_record",
    "machine_ceilings",
    "machine_info",
    "make_executor",
    "merge_hosts",
    "plugin_modules",
    "probe_host",
    "rebuild_case",
    "run_case_spec",
    "timing_environment",
    "worker_plugin_manager",
    "worker_session",
]
