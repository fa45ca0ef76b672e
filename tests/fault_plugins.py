"""Strategies and observers that fail in every way a plugin can, for tests/test_faults.py (``-p fault_plugins``).

Each strategy finishes its first epoch, then fails in its second, so a row shows the
epochs kept and the epoch named. They end their own process: run them only in worker
processes (the default ``process`` executor), never with ``--executor inprocess``.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import resource
import signal
import time

import mfbench

#: Set by a test: makes the observer hooks below raise.
BROKEN_OBSERVERS = os.environ.get("MFBENCH_TEST_BROKEN_OBSERVERS") == "1"


class Fault(mfbench.Strategy):
    """Trains nothing; its second epoch does what ``fail`` does."""

    name = "fault-base"
    devices = ("cpu",)

    def setup(self, model, train, device, seed):
        pass

    def run_epoch(self, epoch):
        if epoch == 1:
            if multiprocessing.parent_process() is None:  # never take a test's own process down
                raise RuntimeError("fault strategies run only in worker processes (the process executor)")
            self.fail()
        return 1.0

    def fail(self) -> None:
        raise NotImplementedError


class Raises(Fault):
    """Raises a Python exception."""

    name = "fault-raise"

    def fail(self):
        raise ValueError("injected failure")


class Segfaults(Fault):
    """Reads address 0."""

    name = "fault-segfault"

    def fail(self):
        ctypes.string_at(0)


class Aborts(Fault):
    """Calls abort(3)."""

    name = "fault-abort"

    def fail(self):
        os.abort()


class Exits(Fault):
    """Ends its process with exit code 3, skipping every cleanup."""

    name = "fault-exit"

    def fail(self):
        os._exit(3)


class Killed(Fault):
    """Is SIGKILLed, as by the kernel's OOM killer."""

    name = "fault-sigkill"

    def fail(self):
        os.kill(os.getpid(), signal.SIGKILL)


class Hangs(Fault):
    """An epoch that never returns."""

    name = "fault-hang"

    def fail(self):
        while True:
            time.sleep(1)


class GrowsMemory(Fault):
    """Allocates without end under an address-space limit 300 MB above what it uses."""

    name = "fault-memory"

    def setup(self, model, train, device, seed):
        super().setup(model, train, device, seed)
        with open("/proc/self/statm", encoding="ascii") as handle:
            used = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (used + 300 * 2**20, resource.getrlimit(resource.RLIMIT_AS)[1]))

    def fail(self):
        hoard = []
        while True:
            hoard.append(bytearray(32 * 2**20))


class BadInfo(Fault):
    """Trains normally; its info() returns something no results file can hold."""

    name = "fault-info"

    def fail(self):
        pass

    def info(self):
        return {"handle": object()}


class SegfaultsWhenFast(Segfaults):
    """Tunable: its second epoch reads address 0 when ``lr`` is above 0.1 (a trial that crashes)."""

    name = "fault-segfault-fast"
    params = {"lr": 0.01}
    search_space = {"lr": mfbench.LogUniform(1e-3, 1.0)}

    def run_epoch(self, epoch):
        if self.params["lr"] > 0.1:
            return super().run_epoch(epoch)
        return 1.0


@mfbench.hookimpl
def mfbench_register_strategies(register):
    for cls in (Raises, Segfaults, Aborts, Exits, Killed, Hangs, GrowsMemory, BadInfo, SegfaultsWhenFast):
        register(cls)


@mfbench.hookimpl
def mfbench_case_finished(case):
    if BROKEN_OBSERVERS:
        raise RuntimeError("observer failed")


@mfbench.hookimpl
def mfbench_machine_info():
    if BROKEN_OBSERVERS:
        raise RuntimeError("machine facts failed")
    return None
