"""A plugin module for tests/test_executors.py, loaded with ``-p executor_plugins``.

It must be a real module on disk: Dask workers rebuild the run's plugins by importing
them (tests/ reaches their sys.path through the parent's, as pytest puts it there).
"""

from __future__ import annotations

import os

import mfbench

#: Set by a test: raise KeyboardInterrupt (a Ctrl-C) once this many cases have finished.
INTERRUPT_AFTER: int | None = None
finished: list[str] = []


def in_dask_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


class AlwaysFails(mfbench.Strategy):
    """Raises in setup: an error row."""

    name = "always-fails"

    def setup(self, model, train, device, seed):
        raise RuntimeError("this strategy always fails")


class EndsItsProcess(mfbench.Strategy):
    """Ends the Dask worker process running it mid-case, as a crash or the OOM killer would."""

    name = "ends-its-process"

    def setup(self, model, train, device, seed):
        pass

    def run_epoch(self, epoch):
        if in_dask_worker():
            os._exit(13)
        raise RuntimeError("ends-its-process only ends Dask worker processes, never the test's own")


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(AlwaysFails)
    register(EndsItsProcess)


@mfbench.hookimpl
def mfbench_case_finished(case):
    finished.append(case["id"])
    if INTERRUPT_AFTER is not None and len(finished) >= INTERRUPT_AFTER:
        raise KeyboardInterrupt
