"""Where mfbench keeps what it downloads or builds once and reuses: data sets, compiled kernels."""

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
