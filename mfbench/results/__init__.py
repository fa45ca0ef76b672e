"""Results files: writing a run's document as it grows (atomically, after every case), reading
and checking one against the published JSON Schema, the fixed set of case statuses, the source
revision every file records, and where results go.

Imports only ``mfbench.errors``. Derived figures (summaries, verdicts, intervals) are
``mfbench.stats.summary``'s: a results file stores measurements and the summaries the run computed.
"""

from .files import ResultsFile, atomic_write_json, load_results
from .statuses import STATUSES

__all__ = ["STATUSES", "ResultsFile", "atomic_write_json", "load_results"]
