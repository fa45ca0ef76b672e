"""A strategy whose first trial in each tuner waits for the other tuner's, for tests/test_tuning.py
(``-p rendezvous_plugins``): two processes sharing one study are then both at work, however slowly
a loaded machine starts them.

Each tuner runs with ``MFBENCH_RENDEZVOUS`` (a folder) and ``MFBENCH_RENDEZVOUS_AS`` (its name); a
trial's worker marks its tuner as started in the folder, then waits (up to a minute) until the
folder holds both names. Only the first trial of each tuner waits: the others find both marks there.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import mfbench
from mfbench.plugins.strategies.vectorized import Vectorized

#: Tuners that must meet; a trial past this many seconds without the other fails, saying why.
PARTIES = ("a", "b")
PATIENCE_S = 60.0


class Rendezvous(Vectorized):
    """vectorized, whose setup waits until both tuners have started a trial."""

    name = "rendezvous"

    def setup(self, model, train, device, seed):
        folder = Path(os.environ["MFBENCH_RENDEZVOUS"])
        (folder / os.environ["MFBENCH_RENDEZVOUS_AS"]).touch()
        deadline = time.monotonic() + PATIENCE_S
        while not all((folder / party).exists() for party in PARTIES):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the other tuner started no trial within {PATIENCE_S:g} s")
            time.sleep(0.05)
        super().setup(model, train, device, seed)


@mfbench.hookimpl
def mfbench_register_strategies(register):
    register(Rendezvous)
