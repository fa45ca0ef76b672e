"""Running a suite: run settings, suites and selections planned into cases, the runner that times
one case the same way whoever wrote the strategy, the executors that run cases here or in worker
processes, and what surrounds them (calibration, timing, memory, devices, resuming, A/B blocks).

Imports the folders below it (``errors``, ``data``, ``plugin``, ``results``, ``stats``); never
``tuning``, ``report`` or ``cli``: what those add to a run (tuned parameters, a progress display)
is handed in by the command that starts it.
"""

from .plan import Case, Choice, RunConfig, plan
from .runner import Runner

__all__ = ["Case", "Choice", "RunConfig", "Runner", "plan"]
