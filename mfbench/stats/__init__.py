"""Statistics over measurements: per-case summaries (medians, spreads, time-to-target), speed
verdicts with their intervals, derived targets, the performance profile over workloads, the
roofline (the work a strategy states per update, against the machine's ceilings), and the figures
over seeds: intervals (``intervals``), paired comparisons and tied groups (``paired``), a run's
cases over their seeds with each workload's verdict and baselines (``seeds``), and the aggregation
over workloads (``across_workloads``, ``overall``).

Functions take the plain JSON structures of a results file, so the runner, ``report`` and
``compare`` share them. Imports only ``mfbench.errors``, ``mfbench.data``, ``mfbench.plugin`` and
``mfbench.results.files``; never ``run`` or anything above it.
"""

from . import roofline

__all__ = ["roofline"]
