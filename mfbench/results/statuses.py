"""The one word every case ends with, and the groups of them that readers act on.

Defined once: the runner writes them, the results schema allows exactly these,
``compare`` gates on the failed ones and ``ab`` times the ones whose epochs ran.
"""

from __future__ import annotations

OK = "ok"
SKIPPED = "skipped"
ERROR = "error"
DIVERGED = "diverged"
TIMEOUT = "timeout"

#: Every status a case record may have.
STATUSES = (OK, SKIPPED, ERROR, DIVERGED, TIMEOUT)
#: A case that ran but did not finish well: a base case that was ok and now ends so trips the gate.
FAILED_STATUSES = (ERROR, DIVERGED, TIMEOUT)
#: A case whose timed epochs count for speed: a diverged case still timed its epochs.
TIMED_STATUSES = (OK, DIVERGED)
