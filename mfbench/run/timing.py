"""The clock: time device work honestly.

CUDA kernels run asynchronously: a timer read right after launching them
measures the launch, not the work. Every timed region synchronizes the device
before starting the clock and before stopping it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")
Clock = Callable[[], float]
Sync = Callable[[torch.device], None]


def synchronize(device: torch.device) -> None:
    """Wait until every queued kernel on ``device`` has finished (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(
    fn: Callable[[], T], device: torch.device, sync: Sync = synchronize, clock: Clock = time.perf_counter
) -> tuple[T, float]:
    """Run ``fn`` and return (its result, the seconds it took including the device's work)."""
    sync(device)
    start = clock()
    result = fn()
    sync(device)
    return result, clock() - start
