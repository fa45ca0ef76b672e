"""Where mfbench keeps files it makes: downloaded data and run results."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "MFBENCH_CACHE"


def cache_dir() -> Path:
    """Downloaded data sets: ``$MFBENCH_CACHE``, else ``$XDG_CACHE_HOME/mfbench``, else ``~/.cache/mfbench``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mfbench"


def default_results_dir() -> Path:
    """Where ``mfbench run`` writes results when ``--output`` is not given."""
    return Path(".mfbench") / "runs"
