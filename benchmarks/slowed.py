"""A strategy made slower by a known factor, to measure what a speed comparison can detect.

``slowed[slowdown=1.25]`` trains exactly as ``vectorized`` does, timing its own
epoch, then repeats part of that work on a scratch copy of the model (epochs of the
same kernel over a small slice of the ratings) until the epoch has lasted
``slowdown`` times as long, the last fraction of a slice topped up with a busy wait
on the clock, so the factor holds whatever one slice costs. The model it hands back
is ``vectorized``'s; only the time grows, by that factor. ``slowed`` (``slowdown=1.0``) is
``vectorized`` itself: A/A comparisons of it measure false alarms.

Load it as a plugin module: ``PYTHONPATH=benchmarks mfbench ab -p slowed -s slowed
-s 'slowed[slowdown=1.5]'``; ``benchmarks/noise_study.py`` and the tests use it.
"""

from __future__ import annotations

import copy
import math
import time

import torch
from torch import nn

import mfbench
from mfbench.plugins.strategies.vectorized import Vectorized

#: Ratings in the scratch slice: small, so one slice of repeated work overshoots the target by little.
SCRATCH_RATINGS = 128


class Slowed(Vectorized):
    """vectorized, plus ``slowdown - 1`` epochs' worth of the same work on a scratch copy (test strategy)."""

    name = "slowed"
    params = {**Vectorized.params, "slowdown": 1.0}

    def __init__(self, **params) -> None:
        super().__init__(**params)
        if not self.params["slowdown"] >= 1.0:
            raise mfbench.MfbenchError(f"slowed needs slowdown >= 1, got {self.params['slowdown']}")

    def setup(self, model: nn.Module, train: mfbench.Ratings, device: torch.device, seed: int) -> None:
        super().setup(model, train, device, seed)
        self.scratch: Vectorized | None = None
        if self.params["slowdown"] > 1.0:
            plain = {k: v for k, v in self.params.items() if k != "slowdown"}
            self.scratch = Vectorized(**plain)
            part = train.subset(torch.arange(min(train.nnz, SCRATCH_RATINGS), device=train.users.device))
            self.scratch.setup(copy.deepcopy(model), part, device, seed)
            self.slice_s = math.inf
            for _ in range(3):  # how long one slice of repeated work takes (the fastest of 3)
                start = time.perf_counter()
                self.scratch.run_epoch(0)
                self.slice_s = min(self.slice_s, time.perf_counter() - start)

    def run_epoch(self, epoch: int) -> float | None:
        start = time.perf_counter()
        loss = super().run_epoch(epoch)
        if self.scratch is not None:
            now = time.perf_counter()
            deadline = start + (now - start) * float(self.params["slowdown"])
            while now + self.slice_s < deadline:  # repeat work while a whole slice fits...
                self.scratch.run_epoch(epoch)
                now = time.perf_counter()
            while time.perf_counter() < deadline:  # ...then wait out the rest on the clock
                pass
        return loss


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(Slowed)
