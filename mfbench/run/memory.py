"""Peak memory of a case: resident memory on CPU, the caching allocator's peak on CUDA.

The process's lifetime peak (``ru_maxrss``) cannot tell one case from the one
before, so on CPU a background thread samples the resident set size while the
case runs. Memory of child processes (workers a strategy starts) is not counted.
"""

from __future__ import annotations

import os
import resource
import sys
import threading

import torch

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
INTERVAL_S = 0.005


def current_rss() -> int | None:
    """Resident set size of this process in bytes (Linux), or None where unknown."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return None


def lifetime_peak_rss() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class PeakMemory:
    """Context manager measuring peak memory on ``device`` while its block runs."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_bytes: int | None = None
        self.method = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak = 0

    def _sample(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            rss = current_rss()
            if rss is not None and rss > self._peak:
                self._peak = rss

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.method = "torch.cuda.max_memory_allocated"
            return self
        start = current_rss()
        if start is None:
            self.method = "ru_maxrss (process lifetime)"
            return self
        self.method = "sampled RSS (this process)"
        self._peak = start
        self._thread = threading.Thread(target=self._sample, name="mfbench-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak_bytes = int(torch.cuda.max_memory_allocated(self.device))
            return
        if self._thread is None:
            self.peak_bytes = lifetime_peak_rss()
            return
        self._stop.set()
        self._thread.join()
        final = current_rss() or 0
        self.peak_bytes = max(self._peak, final)

    def record(self) -> dict:
        return {"peak_bytes": self.peak_bytes, "method": self.method}
