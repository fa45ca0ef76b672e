"""Statistics over measurements: per-case summaries (medians, spreads, time-to-target), speed
verdicts with their intervals, derived targets, the performance profile over workloads, and the
roofline (the work a strategy states per update, against the machine's ceilings).

Functions take the plain JSON structures of a results file, so the runner, ``report`` and
``compare`` share them. Imports only ``mfbench.errors``, ``mfbench.data``, ``mfbench.plugin`` and
``mfbench.results.files``; never ``run`` or anything above it.
"""

from . import roofline

__all__ = ["roofline"]
